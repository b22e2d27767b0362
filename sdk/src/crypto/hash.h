// SHA-2 and HMAC from OpenSSL (SHA-NI accelerated here: design §3), Ed25519 from libsodium.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace pd::crypto {

using digest32 = std::array<std::uint8_t, 32>;
using digest64 = std::array<std::uint8_t, 64>;

digest32 sha256(const void *data, std::size_t len);
digest64 sha512(const void *data, std::size_t len);
digest32 hmac_sha256(const void *key, std::size_t key_len, const void *data, std::size_t len);
digest64 hmac_sha512(const void *key, std::size_t key_len, const void *data, std::size_t len);

// Incremental SHA-256.
class sha256_stream {
public:
    sha256_stream();
    ~sha256_stream();
    sha256_stream(const sha256_stream &) = delete;
    sha256_stream &operator=(const sha256_stream &) = delete;
    void update(const void *data, std::size_t len);
    digest32 finish();

private:
    void *ctx_;
};

// Process-wide init of libsodium; idempotent and thread-safe. Throws on failure.
void ensure_initialised();

void ed25519_keypair(std::uint8_t pk[32], std::uint8_t sk[64]);
std::array<std::uint8_t, 64> ed25519_sign(const void *msg, std::size_t len, const std::uint8_t sk[64]);
bool ed25519_verify(const std::uint8_t sig[64], const void *msg, std::size_t len, const std::uint8_t pk[32]);
// `label`, a 0 byte, then `data`: the shape of everything peerdist signs, so a signature
// made for one purpose (its label) means nothing for another.
std::vector<std::uint8_t> labelled(const char *label, const std::uint8_t *data, std::size_t len);
// What a device key signs when a plugin asks (pd_host_api.device_sign): the plugin's message
// labelled "peerdist device v1" — so no plugin can obtain a device signature that means
// anything outside this domain (a publication record, an administrator's proof).
std::vector<std::uint8_t> device_signed_message(const std::uint8_t *message, std::size_t len);
// Constant-time comparison.
bool equal(const void *a, const void *b, std::size_t len);

}  // namespace pd::crypto
