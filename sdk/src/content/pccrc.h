// BranchCache Content Information ([MS-PCCRC]) V1 and V2: generation, parsing,
// serialisation and key derivation. ../shared/vectors/pccrc.md is the authority where
// the spec's prose is wrong (Kp = HMAC(Ks, HoD); the segment-id constant is UTF-16LE).
#pragma once

#include "content/manifest.h"
#include "crypto/hash.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pd::content::pccrc {

using hash = crypto::digest32;

constexpr std::uint32_t v1_hash_sha256 = 0x800C;
constexpr std::uint8_t v2_hash_sha512_truncated = 0x04;
constexpr std::uint32_t block_size = 64 * 1024;
constexpr std::uint32_t segment_size = 32 * 1024 * 1024;

struct v1_segment {
    std::uint64_t offset = 0;
    std::uint32_t length = 0;
    std::uint32_t block_size = pccrc::block_size;
    hash hod{};
    hash kp{};  // segment secret
    std::vector<hash> block_hashes;
};

struct v1_info {
    std::uint32_t hash_algo = v1_hash_sha256;
    std::uint32_t offset_in_first_segment = 0;
    std::uint32_t read_bytes_in_last_segment = 0;
    std::vector<v1_segment> segments;

    std::vector<std::uint8_t> serialize() const;
    static v1_info parse(const void *data, std::size_t len);
};

struct v2_segment {
    std::uint32_t length = 0;
    hash hod{};
    hash kp{};
};

struct v2_info {
    std::uint8_t hash_algo = v2_hash_sha512_truncated;
    std::uint64_t start_in_content = 0;
    std::uint64_t index_of_first_segment = 0;
    std::uint32_t offset_in_first_segment = 0;
    std::uint64_t length_of_range = 0;
    std::vector<v2_segment> segments;  // one chunk of type 0 on output

    std::vector<std::uint8_t> serialize() const;
    static v2_info parse(const void *data, std::size_t len);
};

hash v1_server_secret(const void *passphrase, std::size_t len);  // SHA-256(passphrase)
hash v2_server_secret(const void *passphrase, std::size_t len);  // SHA-512(passphrase)[0:32]
hash v1_segment_secret(const hash &ks, const hash &hod);         // HMAC-SHA256(Ks, HoD)
hash v2_segment_secret(const hash &ks, const hash &hod);         // HMAC-SHA512(Ks, HoD)[0:32]
hash v1_segment_id(const hash &kp, const hash &hod);             // HMAC-SHA256(Kp, HoD || C)
hash v2_segment_id(const hash &kp, const hash &hod);             // HMAC-SHA512(Kp, HoD || C)[0:32]

// Whole-file Content Information. Range fields are written as Windows writes them for
// a whole content: zero (see the vectors).
v1_info generate_v1(const std::string &path, const hash &ks);

// The size of Content Information V1 (SHA-256) describing `content_size` bytes whole.
std::uint64_t v1_info_bytes(std::uint64_t content_size);

// The manifest of the content Content Information V1 describes whole (an origin's answer to
// a PeerDist request, [MS-PCCRTP]): its blocks and size, named `name`. Throws PD_E_INVALID
// for a range of a content, segments that do not follow each other in 32 MiB steps, or an
// empty content; PD_E_INTEGRITY for a segment whose HoD is not its blocks'.
manifest v1_manifest(const v1_info &info, const std::string &name);
v2_info generate_v2(const std::string &path, const hash &ks);

}  // namespace pd::content::pccrc
