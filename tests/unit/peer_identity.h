// Device keys for test clients and rogue peers: what any fleet member can make for itself.
// A peer proves one in its HELLO (docs/protocol.md §2); these sign like a session does.
#pragma once

#include "crypto/hash.h"
#include "net/secure_channel.h"
#include "peer/wire.h"

#include <sodium.h>

#include <memory>

namespace pdtest {

inline pd::peer::wire::device_identity random_identity() {
    auto secret = std::make_shared<std::array<std::uint8_t, 64>>();
    pd::peer::wire::device_identity id;
    crypto_sign_keypair(id.public_key.data(), secret->data());
    id.sign = [secret](const std::vector<std::uint8_t> &statement) {
        auto m = pd::crypto::device_signed_message(statement.data(), statement.size());
        return pd::crypto::ed25519_sign(m.data(), m.size(), secret->data());
    };
    return id;
}

// A HELLO that proves `id` (a fresh key when none is given) on this connection.
inline pd::peer::wire::hello hello_for(const pd::net::blocking_channel &ch, bool from_client,
                                       const pd::peer::wire::device_identity &id = random_identity()) {
    return pd::peer::wire::signed_hello(id, from_client, ch.transcript());
}

}  // namespace pdtest
