// The branchcache backend's discovery datagrams (docs/protocol.md §3), sealed and opened
// without I/O so the fuzz target (tests/fuzz) reaches the decoder every datagram from the
// LAN goes through. Little-endian, fixed sizes, XChaCha20-Poly1305 (libsodium) under the
// fleet's discovery key (pd_host_api.discovery_key, derived from the fleet key):
//
//   QUERY  "PDQ2" · window u64 · nonce (24) · sealed(label (32))                    84 bytes
//   ANSWER "PDA2" · query nonce (24) · nonce (24) · sealed(port u16 · verified u64 · blocks u64)  86 bytes
//
// What this buys against a LAN attacker without the fleet key: a query shows neither the
// content nor whether two queries ask for the same one (the sealed label is fresh each
// time); an answer shows nothing and is bound to its query (its associated data holds the
// query's nonce); a recorded query is good for one time window, and a replay within it is
// dropped (replay_guard). A decoder returns nothing for anything else: another size or
// magic, a seal that does not open, port 0, more verified blocks than the content has
// (none verified is an answer: a device fetching it right now). An answer stays a hint to
// connect: the core's secure channel and block verification decide what is trusted.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>

namespace pd_branchcache {

using key = std::array<std::uint8_t, 32>;
using label = std::array<std::uint8_t, 32>;
using nonce = std::array<std::uint8_t, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES>;

constexpr std::size_t seal_overhead = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr std::size_t query_head = 4 + 8 + 24;
constexpr std::size_t query_size = query_head + 32 + seal_overhead;
constexpr std::size_t answer_head = 4 + 24 + 24;
constexpr std::size_t answer_size = answer_head + 2 + 8 + 8 + seal_overhead;
// A query is accepted in its own time window and the ones either side (clock skew).
constexpr std::uint64_t window_seconds = 30;

struct query {
    std::uint64_t window = 0;  // unix time / window_seconds when it was sent
    nonce id{};                // random: the replay guard's key, and the answers' binding
    label content{};           // the core's keyed label of the content (content_label)
};

struct answer {
    nonce query_id{};
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
// Seals `plain` into out[head..]: the first `head` bytes (magic, clear fields) are the
// associated data, `n` the nonce.
inline void seal(std::uint8_t *out, std::size_t head, const std::uint8_t *plain, std::size_t len, const nonce &n, const key &k) {
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + head, nullptr, plain, len, out, head, nullptr, n.data(), k.data());
}
inline bool open(std::uint8_t *plain, const std::uint8_t *p, std::size_t head, std::size_t sealed_len, const nonce &n, const key &k) {
    return crypto_aead_xchacha20poly1305_ietf_decrypt(plain, nullptr, nullptr, p + head, sealed_len, p, head, n.data(), k.data()) == 0;
}
}  // namespace detail

// `q.id` must be fresh random bytes (randombytes_buf) for every query.
inline std::array<std::uint8_t, query_size> encode(const query &q, const key &k) {
    std::array<std::uint8_t, query_size> out{};
    std::memcpy(out.data(), "PDQ2", 4);
    detail::put(out.data() + 4, q.window, 8);
    std::memcpy(out.data() + 12, q.id.data(), q.id.size());
    detail::seal(out.data(), query_head, q.content.data(), q.content.size(), q.id, k);
    return out;
}

// Seals with a fresh nonce of its own; bound to the query by its id.
inline std::array<std::uint8_t, answer_size> encode(const answer &a, const key &k) {
    std::array<std::uint8_t, answer_size> out{};
    std::memcpy(out.data(), "PDA2", 4);
    std::memcpy(out.data() + 4, a.query_id.data(), a.query_id.size());
    nonce n;
    randombytes_buf(n.data(), n.size());
    std::memcpy(out.data() + 28, n.data(), n.size());
    std::uint8_t plain[18];
    detail::put(plain, a.port, 2);
    detail::put(plain + 2, a.verified_blocks, 8);
    detail::put(plain + 10, a.block_count, 8);
    detail::seal(out.data(), answer_head, plain, sizeof plain, n, k);
    return out;
}

inline std::optional<query> decode_query(const std::uint8_t *p, std::size_t n, const key &k) {
    if (n != query_size || std::memcmp(p, "PDQ2", 4) != 0) return std::nullopt;
    query q;
    q.window = detail::get(p + 4, 8);
    std::memcpy(q.id.data(), p + 12, q.id.size());
    if (!detail::open(q.content.data(), p, query_head, 32 + seal_overhead, q.id, k)) return std::nullopt;
    return q;
}

inline std::optional<answer> decode_answer(const std::uint8_t *p, std::size_t n, const key &k) {
    if (n != answer_size || std::memcmp(p, "PDA2", 4) != 0) return std::nullopt;
    answer a;
    std::memcpy(a.query_id.data(), p + 4, a.query_id.size());
    nonce own;
    std::memcpy(own.data(), p + 28, own.size());
    std::uint8_t plain[18];
    if (!detail::open(plain, p, answer_head, sizeof plain + seal_overhead, own, k)) return std::nullopt;
    a.port = static_cast<std::uint16_t>(detail::get(plain, 2));
    a.verified_blocks = detail::get(plain + 2, 8);
    a.block_count = detail::get(plain + 10, 8);
    if (a.port == 0 || a.verified_blocks > a.block_count) return std::nullopt;
    return a;
}

// The responder's memory of queries it has seen: a query outside the current window ±1, or
// seen before, is dropped, so a recorded query cannot be replayed to use up the answer
// budget (a replayed flood once left a legitimate query unanswered). Bounded: the oldest
// ids are forgotten first, and an id older than the windows it could be accepted in needs
// no memory.
class replay_guard {
public:
    static constexpr std::size_t capacity = 8192;

    // True (and remembered) for a fresh query in an acceptable window.
    bool admit(const query &q, std::uint64_t now_window) {
        if (q.window + 1 < now_window || q.window > now_window + 1) return false;
        if (!seen_.insert(q.id).second) return false;
        order_.push_back(q.id);
        if (order_.size() > capacity) {
            seen_.erase(order_.front());
            order_.pop_front();
        }
        return true;
    }

private:
    std::set<nonce> seen_;
    std::deque<nonce> order_;
};

// Answers a second, per source address and in all: one flooder uses up its own share,
// not the budget other askers need. Bounded: the table resets every second and holds at
// most max_sources addresses (more in one second are not answered).
class answer_budget {
public:
    static constexpr std::size_t max_sources = 4096;

    // The limits are passed each time: they are live settings.
    bool allow(const std::string &source, std::uint64_t now_ms, unsigned per_second, unsigned per_source) {
        if (now_ms - second_start_ >= 1000) second_start_ = now_ms, total_ = 0, by_source_.clear();
        if (total_ >= per_second) return false;
        auto it = by_source_.find(source);
        if (it == by_source_.end()) {
            if (by_source_.size() >= max_sources) return false;
            it = by_source_.emplace(source, 0).first;
        }
        if (it->second >= per_source) return false;
        ++it->second;
        ++total_;
        return true;
    }

private:
    std::uint64_t second_start_ = 0;
    unsigned total_ = 0;
    std::map<std::string, unsigned> by_source_;
};

}  // namespace pd_branchcache
