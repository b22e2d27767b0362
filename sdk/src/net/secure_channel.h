// The secure channel every peerdist connection runs (design §5, docs/protocol.md §1):
// ephemeral X25519, mutual proof of the fleet's shared key over the handshake transcript,
// then records under the cipher both sides run best (net/record_cipher.h), one key per
// direction. No application byte is sent or accepted before both proofs verified. The state
// machines here do no I/O, so they are tested byte for byte; blocking_channel drives them
// over a socket.
//
// Cipher negotiation stays wire-compatible with 0.4 peers, which accept only this exact
// HELLO and send theirs without waiting: the client's offer rides in the last 8 bytes of its
// HELLO nonce (random to a 0.4 server), and a server that understands it answers after
// reading it, with its choice in its own nonce. Both nonces are in the transcript, so a
// man in the middle who changes the offer or the choice makes both FINISHes fail.
#pragma once

#include "net/record_cipher.h"
#include "platform/socket.h"
#include "util/error.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pd::net {

constexpr std::size_t hello_size = 72;
constexpr std::size_t finish_size = 32;

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
    // `ciphers`: what this side offers (a client) or accepts (a server); 0 makes a client
    // send no offer and a server ignore one, exactly as a 0.4 peer does (for tests).
    handshake(role r, const std::uint8_t *fleet_key, keyless policy = keyless::refused,
              cipher_set ciphers = local_ciphers());
    ~handshake();
    handshake(const handshake &) = delete;
    handshake &operator=(const handshake &) = delete;

    // A client's HELLO (72 bytes: magic, version, flags, ephemeral public key, nonce with the
    // cipher offer), sent as soon as the connection is up. A server has none before it read
    // the client's.
    const bytes &hello() const { return hello_; }
    // Takes the peer's HELLO; returns what this side sends next: a client its FINISH (32
    // bytes: a MAC of the transcript under a key derived from the fleet key), a server its
    // HELLO (with its choice of cipher) followed by its FINISH. Throws PD_E_VERSION /
    // PD_E_INVALID, and PD_E_AUTH when a keyless client meets a server that refuses them.
    bytes on_peer_hello(const std::uint8_t *peer_hello, std::size_t len);
    // The records' cipher; valid after on_peer_hello().
    cipher record_cipher() const { return cipher_; }
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
    void make_hello(cipher_set nonce_field, bool with_field);

    role role_;
    keyless policy_;
    cipher_set ciphers_;
    cipher cipher_ = cipher::xchacha20poly1305;
    bool keyless_ = false;
    std::array<std::uint8_t, 32> fleet_key_{};
    std::array<std::uint8_t, 32> eph_sk_{}, eph_pk_{};
    bytes hello_;
    std::array<std::uint8_t, 32> transcript_{};
    std::array<std::uint8_t, 32> peer_finish_key_{};
    channel_keys keys_;
    bool verified_ = false;
};

// A blocking secure channel over a connected socket: for tools, tests and the
// coordinator client. Timeouts come from the socket (platform::connect_tcp sets them).
class blocking_channel {
public:
    // Runs the handshake on `socket` (not owned). Throws PD_E_AUTH "shared key mismatch",
    // PD_E_VERSION, PD_E_TIMEOUT, PD_E_IO.
    // `fleet_key` null: a keyless client (see `keyless`); `ciphers` as for handshake.
    blocking_channel(platform::native_socket socket, role r, const std::uint8_t *fleet_key,
                     cipher_set ciphers = local_ciphers());
    // See handshake::transcript().
    const std::array<std::uint8_t, 32> &transcript() const { return transcript_; }
    cipher record_cipher() const { return opener_.kind(); }
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
