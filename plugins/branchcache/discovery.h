// The branchcache backend's discovery datagrams (docs/protocol.md §3), encoded and decoded
// without I/O so the fuzz target (tests/fuzz) reaches the decoder every datagram from the
// LAN goes through. Little-endian, fixed sizes:
//   QUERY  "PDQ1" · nonce u64 · label (32)                                         44 bytes
//   ANSWER "PDA1" · nonce u64 · label (32) · port u16 · verified u64 · blocks u64  62 bytes
// A decoder returns nothing for anything else (another size, magic, port 0, more verified
// blocks than the content has; none verified is an answer: a device fetching it right now): a datagram is never trusted, only ever a hint to connect.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>

namespace pd_branchcache {

constexpr std::size_t query_size = 4 + 8 + 32;
constexpr std::size_t answer_size = query_size + 2 + 8 + 8;
using label = std::array<std::uint8_t, 32>;

struct query {
    std::uint64_t nonce = 0;
    label content{};
};

struct answer {
    std::uint64_t nonce = 0;
    label content{};
    std::uint16_t port = 0;             // the answering device's peer port
    std::uint64_t verified_blocks = 0;  // how many it holds, verified
    std::uint64_t block_count = 0;      // of the content's blocks
};

namespace detail {
inline void put(std::uint8_t *p, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
inline std::uint64_t get(const std::uint8_t *p, int bytes) {
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}
// Both packets open with magic · nonce · label.
inline void put_head(std::uint8_t *out, const char *magic, std::uint64_t nonce, const label &content) {
    std::memcpy(out, magic, 4);
    put(out + 4, nonce, 8);
    std::memcpy(out + 12, content.data(), 32);
}
inline bool get_head(const std::uint8_t *p, std::size_t n, std::size_t size, const char *magic, std::uint64_t &nonce, label &content) {
    if (n != size || std::memcmp(p, magic, 4) != 0) return false;
    nonce = get(p + 4, 8);
    std::memcpy(content.data(), p + 12, 32);
    return true;
}
}  // namespace detail

inline std::array<std::uint8_t, query_size> encode(const query &q) {
    std::array<std::uint8_t, query_size> out{};
    detail::put_head(out.data(), "PDQ1", q.nonce, q.content);
    return out;
}

inline std::array<std::uint8_t, answer_size> encode(const answer &a) {
    std::array<std::uint8_t, answer_size> out{};
    detail::put_head(out.data(), "PDA1", a.nonce, a.content);
    detail::put(out.data() + 44, a.port, 2);
    detail::put(out.data() + 46, a.verified_blocks, 8);
    detail::put(out.data() + 54, a.block_count, 8);
    return out;
}

inline std::optional<query> decode_query(const std::uint8_t *p, std::size_t n) {
    query q;
    if (!detail::get_head(p, n, query_size, "PDQ1", q.nonce, q.content)) return std::nullopt;
    return q;
}

inline std::optional<answer> decode_answer(const std::uint8_t *p, std::size_t n) {
    answer a;
    if (!detail::get_head(p, n, answer_size, "PDA1", a.nonce, a.content)) return std::nullopt;
    a.port = static_cast<std::uint16_t>(detail::get(p + 44, 2));
    a.verified_blocks = detail::get(p + 46, 8);
    a.block_count = detail::get(p + 54, 8);
    if (a.port == 0 || a.verified_blocks > a.block_count) return std::nullopt;
    return a;
}

}  // namespace pd_branchcache
