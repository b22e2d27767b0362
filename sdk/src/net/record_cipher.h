// The records of a secure channel (docs/protocol.md §1): a u32 little-endian ciphertext
// length, then the ciphertext of at most max_record_plaintext bytes with its tag, under the
// cipher the handshake negotiated for the connection:
//
//   xchacha20poly1305  libsodium's secretstream, which every peerdist peer speaks (the only
//                      cipher of 0.4 and earlier): a 24-byte stream header goes first.
//   aes256gcm          OpenSSL's AES-256-GCM, offered only by a machine with AES and
//                      carry-less multiply instructions, where it runs several times faster.
//                      No header; the nonce is 32 zero bits and the record number (u64 LE);
//                      the key moves on every 2^16 records, so no key seals more than 16 GiB.
//
// Each direction of a connection has its own key, so nonces never repeat under one key.
// A record that was altered, replayed, reordered or dropped fails authentication.
#pragma once

#include "util/error.h"

#include <sodium.h>

#include <array>
#include <cstdint>
#include <vector>

struct evp_cipher_ctx_st;  // OpenSSL's EVP_CIPHER_CTX

namespace pd::net {

using bytes = std::vector<std::uint8_t>;
using key32 = std::array<std::uint8_t, 32>;

// The values are bits of a cipher_set (the HELLO's cipher offer).
enum class cipher : std::uint8_t { xchacha20poly1305 = 1, aes256gcm = 2 };
using cipher_set = std::uint32_t;
constexpr cipher_set bit(cipher c) { return static_cast<cipher_set>(c); }
constexpr cipher_set all_ciphers = bit(cipher::xchacha20poly1305) | bit(cipher::aes256gcm);

// What this machine offers: XChaCha20-Poly1305 always, AES-256-GCM when the CPU has AES-NI
// and PCLMULQDQ (without them AES-GCM is slower than ChaCha and not constant-time).
cipher_set local_ciphers();
const char *cipher_name(cipher c);

// Largest plaintext record: a DATA message with one 64 KiB block and its header, with room.
constexpr std::size_t max_record_plaintext = 256 * 1024;
// The longest header a cipher sends before its first record.
constexpr std::size_t max_stream_header = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
// Bytes a record adds to its plaintext (the tag, and secretstream's tag byte).
std::size_t record_overhead(cipher c);
std::size_t stream_header_size(cipher c);

// AES-256-GCM for one direction: the key in use, the record number, and the OpenSSL context.
class gcm_direction {
public:
    gcm_direction() = default;
    ~gcm_direction();
    gcm_direction(const gcm_direction &) = delete;
    gcm_direction &operator=(const gcm_direction &) = delete;

    void start(const key32 &key, bool sealing);
    // out: len + 16 bytes (ciphertext, then the tag).
    void seal(std::uint8_t *out, const std::uint8_t *plaintext, std::size_t len);
    // out: len - 16 bytes; false when the record does not authenticate. `out` may be `in`.
    bool open(std::uint8_t *out, const std::uint8_t *in, std::size_t len);

private:
    void next_record();

    evp_cipher_ctx_st *ctx_ = nullptr;
    key32 key_{};
    std::uint64_t record_ = 0;
    bool sealing_ = false;
};

// Encrypts records for one direction.
class record_sealer {
public:
    // Returns the header to send before the first record (empty for AES-256-GCM).
    bytes start(cipher c, const key32 &key);
    // Returns u32 little-endian length + ciphertext.
    bytes seal(const std::uint8_t *plaintext, std::size_t len);

private:
    cipher cipher_ = cipher::xchacha20poly1305;
    crypto_secretstream_xchacha20poly1305_state stream_{};
    gcm_direction gcm_;
};

// Decrypts records for one direction; input may arrive in any slicing.
class record_opener {
public:
    // `header`: stream_header_size(c) bytes from the peer.
    void start(cipher c, const key32 &key, const std::uint8_t *header);
    cipher kind() const { return cipher_; }
    // Parses a length prefix: returns the ciphertext length that follows. Throws PD_E_INVALID
    // for a record outside [overhead, max_record_plaintext + overhead], before anything is
    // allocated for it.
    std::size_t record_length(const std::uint8_t prefix[4]) const;
    // Authenticates and decrypts one ciphertext record; throws PD_E_AUTH when it was
    // altered, replayed, reordered or truncated.
    bytes open(const std::uint8_t *ciphertext, std::size_t len);
    // The same in place: `record` becomes the plaintext.
    void open_in_place(bytes &record);

private:
    cipher cipher_ = cipher::xchacha20poly1305;
    crypto_secretstream_xchacha20poly1305_state stream_{};
    gcm_direction gcm_;
};

}  // namespace pd::net
