// The peerdist manifest (design §3): 64 KiB SHA-256 blocks in 32 MiB segments, with
// segment hashes of data (HoD = SHA-256 of the segment's block hashes, as [MS-PCCRC]
// V1), a display name, and a content id that commits to everything but the name.
// Canonical encoding: docs/content-model.md.
#pragma once

#include "crypto/hash.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pd::content {

using hash = crypto::digest32;

constexpr std::uint32_t default_block_size = 64 * 1024;
constexpr std::uint32_t default_segment_size = 32 * 1024 * 1024;
constexpr std::uint16_t manifest_format_version = 1;
constexpr std::uint8_t hash_algo_sha256 = 1;
constexpr std::uint64_t max_content_size = 256ull << 30;  // 4 Mi blocks: 128 MiB of hashes
constexpr std::size_t max_name_bytes = 1024;
constexpr std::size_t canonical_header_size = 24;

// How content of `size` bytes divides into blocks of `block_size` (the last one short): the
// one place for the rule, which a manifest, the swarm and its links all follow.
struct block_layout {
    std::uint64_t size = 0;
    std::uint32_t block_size = default_block_size;

    std::uint64_t block_count() const { return block_size ? (size + block_size - 1) / block_size : 0; }
    std::uint64_t block_offset(std::uint64_t index) const { return index * block_size; }
    // block_size, less for the last block; 0 past the end.
    std::uint32_t block_length(std::uint64_t index) const;
};

struct manifest {
    std::uint32_t block_size = default_block_size;
    std::uint32_t segment_size = default_segment_size;
    std::uint64_t size = 0;
    std::vector<hash> segment_hods;
    std::vector<hash> block_hashes;
    std::string name;
    hash id{};

    std::uint64_t block_count() const { return block_hashes.size(); }
    std::uint32_t blocks_per_segment() const { return segment_size / block_size; }
    block_layout layout() const { return {size, block_size}; }
    std::uint64_t block_offset(std::uint64_t index) const { return layout().block_offset(index); }
    std::uint32_t block_length(std::uint64_t index) const { return layout().block_length(index); }

    std::vector<std::uint8_t> serialize() const;
    // Parses and checks lengths, limits, the name, and that every HoD matches its blocks.
    static manifest parse(const void *data, std::size_t len);
    // Builds a manifest from block hashes, computing HoDs and the id.
    static manifest from_block_hashes(std::uint64_t size, std::vector<hash> block_hashes, std::string name,
                                      std::uint32_t block_size = default_block_size,
                                      std::uint32_t segment_size = default_segment_size);
};

// Hashes a file (reading and hashing overlap on two threads).
manifest hash_file(const std::string &path, const std::string &name);
// Throws PD_E_INVALID unless `name` is safe to show and can never act as a path.
void validate_name(const std::string &name);
// The base name of a path, for default display names.
std::string base_name(const std::string &path);
hash segment_hod(const hash *block_hashes, std::size_t count);

}  // namespace pd::content
