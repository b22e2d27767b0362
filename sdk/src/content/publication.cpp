#include "content/publication.h"

#include "platform/file.h"
#include "util/bytes.h"

#include <algorithm>
#include <cstring>

namespace pd::content {

static const char record_magic[4] = {'P', 'D', 'P', 'R'};
constexpr std::uint16_t record_version = 1;
constexpr std::size_t max_origin_bytes = 4096;

std::optional<std::string> read_record_file(const std::string &named, const std::string &manifest_path) {
    std::string path = named;
    if (path.empty() && !manifest_path.empty()) {
        std::error_code ec;
        auto beside = manifest_path + ".sig";
        if (std::filesystem::exists(platform::fs_path(beside), ec)) path = beside;
    }
    if (path.empty()) return std::nullopt;
    return platform::read_small_file(path, max_record_file_bytes);
}

std::vector<std::uint8_t> publication::sign(const std::uint8_t secret_key[64]) const {
    if (origin.size() > max_origin_bytes)
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "publication: origin longer than 4096 bytes");
    validate_name(name);
    byte_writer w;
    w.bytes(record_magic, 4);
    w.u16(record_version);
    w.u16(0);
    w.bytes(id.data(), 32);
    w.u64(size);
    w.u64(static_cast<std::uint64_t>(published_ms));
    w.u16(static_cast<std::uint16_t>(name.size()));
    w.bytes(name.data(), name.size());
    w.u16(static_cast<std::uint16_t>(origin.size()));
    w.bytes(origin.data(), origin.size());
    // libsodium's secret key carries the public key in its second half.
    w.bytes(secret_key + 32, 32);
    auto sig = crypto::ed25519_sign(w.data().data(), w.size(), secret_key);
    w.bytes(sig.data(), sig.size());
    return std::move(w.data());
}

publication publication::verify(const void *data, std::size_t len, const std::uint8_t trusted_key[32]) {
    std::array<std::uint8_t, 32> key{};
    std::memcpy(key.data(), trusted_key, 32);
    return verify(data, len, std::vector<std::array<std::uint8_t, 32>>{key});
}

void publication::require_matches(const manifest &m) const {
    auto differs = [&](const std::string &what) {
        fail(PD_E_AUTH, PD_CATEGORY_CONTENT, "the publication record is for another content: its " + what + " differs from the manifest's");
    };
    if (!crypto::equal(id.data(), m.id.data(), 32)) differs("content id");
    if (size != m.size) differs("size");
    if (name != m.name) differs("name");
}

// Parses a record and checks its signature against the key it names; whether that key is
// trusted is the caller's question.
static publication parse_signed(const void *data, std::size_t len) {
    byte_reader r(data, len, "publication record");
    char magic[4];
    r.bytes(magic, 4);
    if (std::memcmp(magic, record_magic, 4) != 0)
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "publication record: bad magic");
    std::uint16_t version = r.u16();
    if (version != record_version)
        fail(PD_E_VERSION, PD_CATEGORY_CONTENT, "publication record: version " + std::to_string(version) + " is not supported");
    r.u16();
    publication p;
    r.bytes(p.id.data(), 32);
    p.size = r.u64();
    p.published_ms = static_cast<std::int64_t>(r.u64());
    p.name = r.string(r.u16());
    p.origin = r.string(r.u16());
    r.bytes(p.publisher.data(), 32);
    std::size_t signed_len = r.position();
    std::uint8_t sig[64];
    r.bytes(sig, 64);
    r.expect_end();
    validate_name(p.name);
    if (!crypto::ed25519_verify(sig, data, signed_len, p.publisher.data()))
        fail(PD_E_AUTH, PD_CATEGORY_CRYPTO, "publication record signature does not verify (record tampered)");
    return p;
}

publication publication::verify(const void *data, std::size_t len, const std::vector<std::array<std::uint8_t, 32>> &trusted) {
    auto p = parse_signed(data, len);
    bool known = std::any_of(trusted.begin(), trusted.end(), [&](auto &k) { return crypto::equal(p.publisher.data(), k.data(), 32); });
    if (!known) fail(PD_E_AUTH, PD_CATEGORY_CRYPTO, "publication record is signed by an untrusted publisher key");
    return p;
}

publication publication::verify_self_signed(const void *data, std::size_t len) { return parse_signed(data, len); }

}  // namespace pd::content
