// A bit per block: which blocks of a content a device holds. The byte layout is the wire's
// and the store's (bit b is bit b % 8 of byte b / 8), so bitmaps move between them as is.
#pragma once

#include <cstdint>
#include <vector>

namespace pd {

class block_bitmap {
public:
    block_bitmap() = default;
    explicit block_bitmap(std::uint64_t bits) : bytes_(static_cast<std::size_t>((bits + 7) / 8)) {}
    // Takes bytes as the wire or the store hold them, padded or cut to `bits`.
    block_bitmap(std::vector<std::uint8_t> bytes, std::uint64_t bits) : bytes_(std::move(bytes)) {
        bytes_.resize(static_cast<std::size_t>((bits + 7) / 8));
    }

    bool test(std::uint64_t b) const { return b / 8 < bytes_.size() && ((bytes_[b / 8] >> (b % 8)) & 1); }
    void set(std::uint64_t b) {
        if (b / 8 < bytes_.size()) bytes_[b / 8] |= static_cast<std::uint8_t>(1u << (b % 8));
    }
    std::uint64_t count() const {
        std::uint64_t n = 0;
        for (auto byte : bytes_) n += static_cast<std::uint64_t>(__builtin_popcount(byte));
        return n;
    }
    bool empty() const { return bytes_.empty(); }
    const std::vector<std::uint8_t> &bytes() const { return bytes_; }

private:
    std::vector<std::uint8_t> bytes_;
};

// splitmix64's finaliser: a cheap, well-mixed hash of 64 bits (rendezvous hashing, ties).
inline std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

}  // namespace pd
