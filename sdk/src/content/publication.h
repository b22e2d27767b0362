// Publication records: (content id, name, size, origin, time) signed with the
// publisher's Ed25519 key. Encoding in docs/content-model.md.
#pragma once

#include "content/manifest.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pd::content {

// Largest publication record file read: a record is under 5 KiB (its origin ≤ 4096 bytes).
constexpr std::size_t max_record_file_bytes = 64 * 1024;
// A manifest's publication record from a file: the one `named` (when not empty; not there or
// unreadable is an error, pd::error), else MANIFEST.sig beside `manifest_path` — what `pd
// publish --sign` writes, and what agents, `pd get` and `admin publish` look for — when that
// exists. nullopt when there is neither. At most max_record_file_bytes.
std::optional<std::string> read_record_file(const std::string &named, const std::string &manifest_path);

struct publication {
    hash id{};
    std::uint64_t size = 0;
    std::int64_t published_ms = 0;
    std::string name;
    std::string origin;
    std::array<std::uint8_t, 32> publisher{};

    std::vector<std::uint8_t> sign(const std::uint8_t secret_key[64]) const;
    // Throws PD_E_INVALID when malformed, PD_E_AUTH when the key or signature is wrong.
    static publication verify(const void *data, std::size_t len, const std::uint8_t trusted_key[32]);
    // The same against several trusted publishers: the record names its key, which must be one of them.
    static publication verify(const void *data, std::size_t len, const std::vector<std::array<std::uint8_t, 32>> &trusted);
    // A well-formed record whose signature verifies under the key it names — without saying
    // whether that key is trusted (the coordinator stores records it cannot judge).
    static publication verify_self_signed(const void *data, std::size_t len);
    // Throws PD_E_AUTH naming the difference when this record is not about `m` (another
    // content id, size or name): a valid record for one package must not admit another.
    void require_matches(const manifest &m) const;
};

}  // namespace pd::content
