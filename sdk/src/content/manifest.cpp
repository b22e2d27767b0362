#include "content/manifest.h"

#include "platform/file.h"
#include "util/bytes.h"
#include "util/error.h"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <future>

namespace pd::content {

static const char manifest_magic[4] = {'P', 'D', 'M', 'F'};

std::uint32_t block_layout::block_length(std::uint64_t index) const {
    std::uint64_t off = block_offset(index);
    return off >= size ? 0 : static_cast<std::uint32_t>(std::min<std::uint64_t>(block_size, size - off));
}

hash segment_hod(const hash *block_hashes, std::size_t count) {
    return crypto::sha256(block_hashes, count * sizeof(hash));
}

static void write_header(byte_writer &w, const manifest &m) {
    w.bytes(manifest_magic, 4);
    w.u16(manifest_format_version);
    w.u8(hash_algo_sha256);
    w.u8(0);  // flags, reserved
    w.u32(m.block_size);
    w.u32(m.segment_size);
    w.u64(m.size);
}

static hash compute_id(const manifest &m) {
    byte_writer w;
    write_header(w, m);
    for (auto &h : m.segment_hods) w.bytes(h.data(), h.size());
    return crypto::sha256(w.data().data(), w.size());
}

void validate_name(const std::string &name) {
    auto bad = [&](const std::string &why) {
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "invalid content name '" + name + "': " + why);
    };
    if (name.empty()) bad("empty");
    if (name.size() > max_name_bytes) bad("longer than 1024 bytes");
    if (name == "." || name == "..") bad("is a relative path component");
    for (unsigned char c : name) {
        if (c < 0x20 || c == 0x7f) bad("contains a control character");
        if (c == '/' || c == '\\') bad("contains a path separator");
    }
    if (name.find("..") != std::string::npos) bad("contains '..'");
    // A name may end up as a file name on the device: never a hidden file (".bashrc"), never
    // one Windows reserves or silently changes.
    if (name.front() == '.') bad("starts with '.' (a hidden file)");
    if (name.back() == '.' || name.back() == ' ') bad("ends with '.' or a space");
    for (unsigned char c : name)
        if (std::strchr("<>:\"|?*", c)) bad("contains one of < > : \" | ? *");
    std::string stem = name.substr(0, name.find('.'));
    for (auto &ch : stem) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    static const char *reserved[] = {"CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7",
                                     "COM8", "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9"};
    for (auto *r : reserved)
        if (stem == r) bad("is a reserved device name on Windows");
}

std::string base_name(const std::string &path) {
    return platform::utf8_path(platform::fs_path(path).filename());
}

static void check_geometry(std::uint32_t block_size, std::uint32_t segment_size, std::uint64_t size) {
    auto bad = [](const std::string &why) { fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "manifest: " + why); };
    if (block_size < 4096 || block_size > (4u << 20) || (block_size & (block_size - 1)))
        bad("block size " + std::to_string(block_size) + " is not a power of two in [4 KiB, 4 MiB]");
    if (segment_size < block_size || segment_size % block_size || segment_size > (1u << 30))
        bad("segment size " + std::to_string(segment_size) + " is not a multiple of the block size up to 1 GiB");
    if (size > max_content_size) bad("content size " + std::to_string(size) + " exceeds the 256 GiB limit");
}

manifest manifest::from_block_hashes(std::uint64_t size, std::vector<hash> blocks, std::string name,
                                     std::uint32_t block_size, std::uint32_t segment_size) {
    check_geometry(block_size, segment_size, size);
    validate_name(name);
    manifest m;
    m.block_size = block_size;
    m.segment_size = segment_size;
    m.size = size;
    m.name = std::move(name);
    m.block_hashes = std::move(blocks);
    if (m.block_hashes.size() != m.layout().block_count())
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "manifest: block count does not match the content size");
    std::uint32_t per = m.blocks_per_segment();
    for (std::size_t i = 0; i < m.block_hashes.size(); i += per)
        m.segment_hods.push_back(segment_hod(&m.block_hashes[i], std::min<std::size_t>(per, m.block_hashes.size() - i)));
    m.id = compute_id(m);
    return m;
}

std::vector<std::uint8_t> manifest::serialize() const {
    byte_writer w;
    write_header(w, *this);
    w.u32(static_cast<std::uint32_t>(segment_hods.size()));
    for (auto &h : segment_hods) w.bytes(h.data(), h.size());
    for (auto &h : block_hashes) w.bytes(h.data(), h.size());
    w.u16(static_cast<std::uint16_t>(name.size()));
    w.bytes(name.data(), name.size());
    return std::move(w.data());
}

manifest manifest::parse(const void *data, std::size_t len) {
    byte_reader r(data, len, "manifest");
    char magic[4];
    r.bytes(magic, 4);
    if (std::memcmp(magic, manifest_magic, 4) != 0)
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "manifest: bad magic (not a peerdist manifest)");
    std::uint16_t version = r.u16();
    if (version != manifest_format_version)
        fail(PD_E_VERSION, PD_CATEGORY_CONTENT,
             "manifest: format version " + std::to_string(version) + " is not supported (this library reads 1)");
    std::uint8_t algo = r.u8();
    if (algo != hash_algo_sha256)
        fail(PD_E_VERSION, PD_CATEGORY_CONTENT, "manifest: unknown hash algorithm " + std::to_string(algo));
    if (r.u8() != 0) fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "manifest: reserved flags are set");
    manifest m;
    m.block_size = r.u32();
    m.segment_size = r.u32();
    m.size = r.u64();
    check_geometry(m.block_size, m.segment_size, m.size);
    std::uint64_t blocks = m.layout().block_count();
    std::uint64_t segments = (m.size + m.segment_size - 1) / m.segment_size;
    std::uint32_t seg_count = r.u32();
    if (seg_count != segments)
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT,
             "manifest: " + std::to_string(seg_count) + " segments for a content that needs " + std::to_string(segments));
    r.need(static_cast<std::size_t>((segments + blocks) * sizeof(hash)));
    m.segment_hods.resize(static_cast<std::size_t>(segments));
    for (auto &h : m.segment_hods) r.bytes(h.data(), h.size());
    m.block_hashes.resize(static_cast<std::size_t>(blocks));
    for (auto &h : m.block_hashes) r.bytes(h.data(), h.size());
    std::uint16_t name_len = r.u16();
    m.name = r.string(name_len);
    r.expect_end();
    validate_name(m.name);
    std::uint32_t per = m.blocks_per_segment();
    for (std::size_t s = 0; s < m.segment_hods.size(); ++s) {
        std::size_t first = s * per;
        hash expect = segment_hod(&m.block_hashes[first], std::min<std::size_t>(per, m.block_hashes.size() - first));
        if (expect != m.segment_hods[s])
            fail(PD_E_INVALID, PD_CATEGORY_CONTENT,
                 "manifest: block hashes of segment " + std::to_string(s) + " do not match its hash of data");
    }
    m.id = compute_id(m);
    return m;
}

manifest hash_file(const std::string &path, const std::string &name) {
    std::string display = name.empty() ? base_name(path) : name;
    validate_name(display);
    platform::file f(path, platform::file::mode::read);
    std::uint64_t size = f.size();
    if (size > max_content_size)
        fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "'" + path + "' exceeds the 256 GiB content limit");
    std::vector<hash> blocks(static_cast<std::size_t>((size + default_block_size - 1) / default_block_size));
    // Two buffers: the next chunk is read while the current one is hashed.
    constexpr std::size_t chunk = 64 * default_block_size;  // 4 MiB
    std::vector<std::uint8_t> bufs[2] = {std::vector<std::uint8_t>(chunk), std::vector<std::uint8_t>(chunk)};
    auto read_chunk = [&](std::uint64_t off, int which) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, size - off));
        std::size_t got = f.pread(off, bufs[which].data(), want);
        if (got != want) fail(PD_E_IO, PD_CATEGORY_OS, "'" + path + "' changed size while being hashed");
        return got;
    };
    std::uint64_t off = 0;
    int cur = 0;
    std::size_t cur_len = size ? read_chunk(0, 0) : 0;
    while (off < size) {
        std::uint64_t next_off = off + cur_len;
        std::future<std::size_t> next;
        if (next_off < size) next = std::async(std::launch::async, read_chunk, next_off, 1 - cur);
        for (std::size_t b = 0; b < cur_len; b += default_block_size) {
            std::size_t n = std::min<std::size_t>(default_block_size, cur_len - b);
            blocks[static_cast<std::size_t>((off + b) / default_block_size)] = crypto::sha256(bufs[cur].data() + b, n);
        }
        off = next_off;
        if (next.valid()) {
            cur_len = next.get();
            cur = 1 - cur;
        }
    }
    return manifest::from_block_hashes(size, std::move(blocks), display);
}

}  // namespace pd::content
