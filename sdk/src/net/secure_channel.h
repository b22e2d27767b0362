// The secure channel every peerdist connection runs (design §5, docs/protocol.md §1):
// ephemeral X25519, mutual proof of the fleet's shared key over the handshake transcript,
// then one libsodium secretstream (XChaCha20-Poly1305) per direction. No application byte
// is sent or accepted before both proofs verified. The state machines here do no I/O, so
// they are tested byte for byte; blocking_channel drives them over a socket.
#pragma once

#include "platform/socket.h"
#include "util/error.h"

#include <sodium.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pd::net {

using bytes = std::vector<std::uint8_t>;

constexpr std::size_t hello_size = 72;
constexpr std::size_t finish_size = 32;
constexpr std::size_t stream_header_size = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
constexpr std::size_t record_overhead = crypto_secretstream_xchacha20poly1305_ABYTES;
// Largest plaintext record: a DATA message with one 64 KiB block and its header, with room.
constexpr std::size_t max_record_plaintext = 256 * 1024;

enum class role { client, server };

// Whether a server completes a handshake with a client that holds no fleet key. Such a
// keyless channel is encrypted and bound to its transcript, but proves nothing about either
// side: the coordinator admits administrators this way, who then prove an Ed25519 identity
// by signing transcript() inside it (docs/protocol.md §1, docs/coordinator.md). Peer servers
// admit fleet members only.
enum class keyless { refused, admitted };

struct channel_keys {
    std::array<std::uint8_t, 32> send{}, receive{};
};

class handshake {
public:
    // `fleet_key` null: a client without the fleet key (HELLO flag bit 0), see `keyless`.
    handshake(role r, const std::uint8_t *fleet_key, keyless policy = keyless::refused);
    ~handshake();
    handshake(const handshake &) = delete;
    handshake &operator=(const handshake &) = delete;

    // Our HELLO (72 bytes): magic, version, ephemeral public key, nonce.
    const bytes &hello() const { return hello_; }
    // Takes the peer's HELLO; returns our FINISH (32 bytes: a MAC of the transcript
    // under a key derived from the fleet key). Throws PD_E_VERSION / PD_E_INVALID, and
    // PD_E_AUTH when a keyless client meets a server that refuses them.
    bytes on_peer_hello(const std::uint8_t *peer_hello, std::size_t len);
    // Checks the peer's FINISH. Throws PD_E_AUTH "shared key mismatch" when the peer
    // holds another fleet key.
    void on_peer_finish(const std::uint8_t *mac, std::size_t len);
    // Traffic keys; valid after on_peer_finish() succeeded.
    channel_keys keys() const;
    // Both sides proved the fleet key (false on a keyless channel). Valid after on_peer_hello().
    bool fleet_key_proven() const { return !keyless_; }
    // The hash of both HELLOs: unique to this connection, the same on both sides. Signing it
    // proves an identity to this peer, and the signature is worth nothing on any other
    // connection (channel binding). Valid after on_peer_hello().
    const std::array<std::uint8_t, 32> &transcript() const { return transcript_; }

private:
    role role_;
    keyless policy_;
    bool keyless_ = false;
    std::array<std::uint8_t, 32> fleet_key_{};
    std::array<std::uint8_t, 32> eph_sk_{}, eph_pk_{};
    bytes hello_;
    std::array<std::uint8_t, 32> transcript_{};
    std::array<std::uint8_t, 32> peer_finish_key_{};
    channel_keys keys_;
    bool verified_ = false;
};

// Encrypts records for one direction.
class record_sealer {
public:
    // Returns the stream header to send before the first record.
    bytes start(const std::array<std::uint8_t, 32> &key);
    // Returns u32 little-endian length + ciphertext.
    bytes seal(const std::uint8_t *plaintext, std::size_t len);

private:
    crypto_secretstream_xchacha20poly1305_state state_{};
};

// Decrypts records for one direction; input may arrive in any slicing.
class record_opener {
public:
    void start(const std::array<std::uint8_t, 32> &key, const std::uint8_t header[stream_header_size]);
    // Parses a length prefix: returns the ciphertext length that follows. Throws PD_E_INVALID
    // for a record larger than max_record_plaintext.
    static std::size_t record_length(const std::uint8_t prefix[4]);
    // Authenticates and decrypts one ciphertext record; throws PD_E_AUTH when it was
    // altered, replayed, reordered or truncated.
    bytes open(const std::uint8_t *ciphertext, std::size_t len);

private:
    crypto_secretstream_xchacha20poly1305_state state_{};
};

// A blocking secure channel over a connected socket: for tools, tests and the
// coordinator client. Timeouts come from the socket (platform::connect_tcp sets them).
class blocking_channel {
public:
    // Runs the handshake on `socket` (not owned). Throws PD_E_AUTH "shared key mismatch",
    // PD_E_VERSION, PD_E_TIMEOUT, PD_E_IO.
    // `fleet_key` null: a keyless client (see `keyless`).
    blocking_channel(platform::native_socket socket, role r, const std::uint8_t *fleet_key);
    // See handshake::transcript().
    const std::array<std::uint8_t, 32> &transcript() const { return transcript_; }
    void send(const bytes &plaintext);
    // Returns the next record; throws PD_E_IO when the peer closed, PD_E_TIMEOUT.
    bytes receive();

private:
    void write_all(const std::uint8_t *p, std::size_t n);
    void read_exact(std::uint8_t *p, std::size_t n);

    platform::native_socket socket_;
    std::array<std::uint8_t, 32> transcript_{};
    record_sealer sealer_;
    record_opener opener_;
};

}  // namespace pd::net
