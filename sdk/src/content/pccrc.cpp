#include "content/pccrc.h"

#include "platform/file.h"
#include "util/bytes.h"

#include <algorithm>

namespace pd::content::pccrc {

// "MS_P2P_CACHING" and its NUL terminator in UTF-16LE: 30 bytes.
static const std::uint8_t segment_id_constant[30] = {
    'M', 0, 'S', 0, '_', 0, 'P', 0, '2', 0, 'P', 0, '_', 0, 'C', 0,
    'A', 0, 'C', 0, 'H', 0, 'I', 0, 'N', 0, 'G', 0, 0,   0};

static hash truncate32(const crypto::digest64 &d) {
    hash h;
    std::copy_n(d.begin(), 32, h.begin());
    return h;
}

hash v1_server_secret(const void *p, std::size_t n) { return crypto::sha256(p, n); }
hash v2_server_secret(const void *p, std::size_t n) { return truncate32(crypto::sha512(p, n)); }
hash v1_segment_secret(const hash &ks, const hash &hod) { return crypto::hmac_sha256(ks.data(), 32, hod.data(), 32); }
hash v2_segment_secret(const hash &ks, const hash &hod) {
    return truncate32(crypto::hmac_sha512(ks.data(), 32, hod.data(), 32));
}

static std::vector<std::uint8_t> hod_with_constant(const hash &hod) {
    std::vector<std::uint8_t> msg(hod.begin(), hod.end());
    msg.insert(msg.end(), std::begin(segment_id_constant), std::end(segment_id_constant));
    return msg;
}

hash v1_segment_id(const hash &kp, const hash &hod) {
    auto msg = hod_with_constant(hod);
    return crypto::hmac_sha256(kp.data(), 32, msg.data(), msg.size());
}

hash v2_segment_id(const hash &kp, const hash &hod) {
    auto msg = hod_with_constant(hod);
    return truncate32(crypto::hmac_sha512(kp.data(), 32, msg.data(), msg.size()));
}

static void invalid(const std::string &why) { fail(PD_E_INVALID, PD_CATEGORY_CONTENT, "Content Information: " + why); }

std::vector<std::uint8_t> v1_info::serialize() const {
    byte_writer w;
    w.u16(0x0100);
    w.u32(hash_algo);
    w.u32(offset_in_first_segment);
    w.u32(read_bytes_in_last_segment);
    w.u32(static_cast<std::uint32_t>(segments.size()));
    for (auto &s : segments) {
        w.u64(s.offset);
        w.u32(s.length);
        w.u32(s.block_size);
        w.bytes(s.hod.data(), 32);
        w.bytes(s.kp.data(), 32);
    }
    for (auto &s : segments) {
        w.u32(static_cast<std::uint32_t>(s.block_hashes.size()));
        for (auto &h : s.block_hashes) w.bytes(h.data(), 32);
    }
    return std::move(w.data());
}

std::uint64_t v1_info_bytes(std::uint64_t content_size) {
    std::uint64_t segments = (content_size + segment_size - 1) / segment_size, blocks = (content_size + block_size - 1) / block_size;
    return 18 + segments * (80 + 4) + blocks * 32;  // header; per segment its description and block count; the hashes
}

manifest v1_manifest(const v1_info &info, const std::string &name) {
    if (info.offset_in_first_segment || info.read_bytes_in_last_segment)
        invalid("it describes a range of a content, not a whole one");
    if (info.segments.empty()) invalid("it describes no content");
    std::vector<hash> blocks;
    std::uint64_t size = 0;
    for (std::size_t i = 0; i < info.segments.size(); ++i) {
        auto &s = info.segments[i];
        bool last = i + 1 == info.segments.size();
        if (s.offset != size || (!last && s.length != segment_size))
            invalid("segment " + std::to_string(i) + " does not follow the one before in 32 MiB steps");
        if (segment_hod(s.block_hashes.data(), s.block_hashes.size()) != s.hod)
            fail(PD_E_INTEGRITY, PD_CATEGORY_CONTENT, "Content Information: segment " + std::to_string(i) + "'s HoD is not its blocks'");
        blocks.insert(blocks.end(), s.block_hashes.begin(), s.block_hashes.end());
        size += s.length;
    }
    if (size > max_content_size) invalid("the content is larger than " + std::to_string(max_content_size >> 30) + " GiB");
    return manifest::from_block_hashes(size, std::move(blocks), name);
}

v1_info v1_info::parse(const void *data, std::size_t len) {
    byte_reader r(data, len, "Content Information V1");
    if (r.u16() != 0x0100) invalid("not version 1.0");
    v1_info info;
    info.hash_algo = r.u32();
    if (info.hash_algo != v1_hash_sha256) invalid("only SHA-256 (0x800C) is supported");
    info.offset_in_first_segment = r.u32();
    info.read_bytes_in_last_segment = r.u32();
    std::uint32_t count = r.u32();
    r.need(static_cast<std::size_t>(count) * 80);
    info.segments.resize(count);
    for (auto &s : info.segments) {
        s.offset = r.u64();
        s.length = r.u32();
        s.block_size = r.u32();
        if (s.block_size != block_size) invalid("block size " + std::to_string(s.block_size) + " is not 64 KiB");
        if (s.length == 0 || s.length > segment_size) invalid("bad segment length " + std::to_string(s.length));
        r.bytes(s.hod.data(), 32);
        r.bytes(s.kp.data(), 32);
    }
    for (auto &s : info.segments) {
        std::uint32_t blocks = r.u32();
        if (blocks != (s.length + s.block_size - 1) / s.block_size)
            invalid(std::to_string(blocks) + " blocks for a segment of " + std::to_string(s.length) + " bytes");
        r.need(static_cast<std::size_t>(blocks) * 32);
        s.block_hashes.resize(blocks);
        for (auto &h : s.block_hashes) r.bytes(h.data(), 32);
    }
    r.expect_end();
    return info;
}

std::vector<std::uint8_t> v2_info::serialize() const {
    byte_writer w(true);
    w.u8(0x00);  // minor
    w.u8(0x02);  // major
    w.u8(hash_algo);
    w.u64(start_in_content);
    w.u64(index_of_first_segment);
    w.u32(offset_in_first_segment);
    w.u64(length_of_range);
    w.u8(0x00);  // chunk type: segment descriptions
    w.u32(static_cast<std::uint32_t>(segments.size() * 68));
    for (auto &s : segments) {
        w.u32(s.length);
        w.bytes(s.hod.data(), 32);
        w.bytes(s.kp.data(), 32);
    }
    return std::move(w.data());
}

v2_info v2_info::parse(const void *data, std::size_t len) {
    byte_reader r(data, len, "Content Information V2", true);
    std::uint8_t minor = r.u8(), major = r.u8();
    if (major != 2 || minor != 0) invalid("not version 2.0");
    v2_info info;
    info.hash_algo = r.u8();
    if (info.hash_algo != v2_hash_sha512_truncated) invalid("only truncated SHA-512 (0x04) is supported");
    info.start_in_content = r.u64();
    info.index_of_first_segment = r.u64();
    info.offset_in_first_segment = r.u32();
    info.length_of_range = r.u64();
    while (r.remaining()) {
        std::uint8_t type = r.u8();
        if (type != 0) invalid("unknown chunk type " + std::to_string(type));
        std::uint32_t chunk_len = r.u32();
        if (chunk_len % 68) invalid("chunk length " + std::to_string(chunk_len) + " is not a multiple of 68");
        r.need(chunk_len);
        for (std::uint32_t i = 0; i < chunk_len / 68; ++i) {
            v2_segment s;
            s.length = r.u32();
            r.bytes(s.hod.data(), 32);
            r.bytes(s.kp.data(), 32);
            info.segments.push_back(s);
        }
    }
    return info;
}

template <class Fn>
static void for_each_segment(const std::string &path, Fn fn) {
    platform::file f(path, platform::file::mode::read);
    std::uint64_t size = f.size();
    std::vector<std::uint8_t> buf(segment_size);
    for (std::uint64_t off = 0; off < size; off += segment_size) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(segment_size, size - off));
        if (f.pread(off, buf.data(), want) != want) invalid("'" + path + "' changed size while being read");
        fn(off, buf.data(), want);
    }
}

v1_info generate_v1(const std::string &path, const hash &ks) {
    v1_info info;
    for_each_segment(path, [&](std::uint64_t off, const std::uint8_t *data, std::size_t len) {
        v1_segment s;
        s.offset = off;
        s.length = static_cast<std::uint32_t>(len);
        for (std::size_t b = 0; b < len; b += block_size)
            s.block_hashes.push_back(crypto::sha256(data + b, std::min<std::size_t>(block_size, len - b)));
        s.hod = crypto::sha256(s.block_hashes.data(), s.block_hashes.size() * 32);
        s.kp = v1_segment_secret(ks, s.hod);
        info.segments.push_back(std::move(s));
    });
    return info;
}

v2_info generate_v2(const std::string &path, const hash &ks) {
    v2_info info;
    for_each_segment(path, [&](std::uint64_t, const std::uint8_t *data, std::size_t len) {
        v2_segment s;
        s.length = static_cast<std::uint32_t>(len);
        s.hod = truncate32(crypto::sha512(data, len));
        s.kp = v2_segment_secret(ks, s.hod);
        info.segments.push_back(s);
    });
    return info;
}

}  // namespace pd::content::pccrc
