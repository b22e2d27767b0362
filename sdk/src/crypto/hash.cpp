#include "crypto/hash.h"

#include <cstring>

#include "util/error.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <mutex>

namespace pd::crypto {

static void digest(const EVP_MD *md, const void *data, std::size_t len, unsigned char *out) {
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, md, nullptr) != 1)
        fail(PD_E_GENERIC, PD_CATEGORY_CRYPTO, "OpenSSL digest failed");
}

digest32 sha256(const void *data, std::size_t len) {
    digest32 out;
    digest(EVP_sha256(), data, len, out.data());
    return out;
}

digest64 sha512(const void *data, std::size_t len) {
    digest64 out;
    digest(EVP_sha512(), data, len, out.data());
    return out;
}

template <class Out>
static Out hmac(const EVP_MD *md, const void *key, std::size_t key_len, const void *data, std::size_t len) {
    Out out;
    unsigned int n = 0;
    if (!HMAC(md, key, static_cast<int>(key_len), static_cast<const unsigned char *>(data), len, out.data(), &n))
        fail(PD_E_GENERIC, PD_CATEGORY_CRYPTO, "OpenSSL HMAC failed");
    return out;
}

digest32 hmac_sha256(const void *key, std::size_t key_len, const void *data, std::size_t len) {
    return hmac<digest32>(EVP_sha256(), key, key_len, data, len);
}

digest64 hmac_sha512(const void *key, std::size_t key_len, const void *data, std::size_t len) {
    return hmac<digest64>(EVP_sha512(), key, key_len, data, len);
}

sha256_stream::sha256_stream() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX *>(ctx_), EVP_sha256(), nullptr) != 1)
        fail(PD_E_NOMEM, PD_CATEGORY_CRYPTO, "cannot create a SHA-256 context");
}

sha256_stream::~sha256_stream() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX *>(ctx_)); }

void sha256_stream::update(const void *data, std::size_t len) {
    EVP_DigestUpdate(static_cast<EVP_MD_CTX *>(ctx_), data, len);
}

digest32 sha256_stream::finish() {
    digest32 out;
    unsigned int n = 0;
    EVP_DigestFinal_ex(static_cast<EVP_MD_CTX *>(ctx_), out.data(), &n);
    return out;
}

void ensure_initialised() {
    static std::once_flag once;
    static int rc = 0;
    std::call_once(once, [] { rc = sodium_init(); });
    if (rc < 0) fail(PD_E_GENERIC, PD_CATEGORY_CRYPTO, "libsodium failed to initialise");
}

void ed25519_keypair(std::uint8_t pk[32], std::uint8_t sk[64]) {
    ensure_initialised();
    crypto_sign_ed25519_keypair(pk, sk);
}

std::array<std::uint8_t, 64> ed25519_sign(const void *msg, std::size_t len, const std::uint8_t sk[64]) {
    ensure_initialised();
    std::array<std::uint8_t, 64> sig{};
    crypto_sign_ed25519_detached(sig.data(), nullptr, static_cast<const unsigned char *>(msg), len, sk);
    return sig;
}

bool ed25519_verify(const std::uint8_t sig[64], const void *msg, std::size_t len, const std::uint8_t pk[32]) {
    ensure_initialised();
    return crypto_sign_ed25519_verify_detached(sig, static_cast<const unsigned char *>(msg), len, pk) == 0;
}

bool equal(const void *a, const void *b, std::size_t len) {
    ensure_initialised();
    return sodium_memcmp(a, b, len) == 0;
}

std::vector<std::uint8_t> labelled(const char *label, const std::uint8_t *data, std::size_t len) {
    std::size_t n = std::strlen(label) + 1;  // with its 0 byte
    std::vector<std::uint8_t> m(n + len);
    std::memcpy(m.data(), label, n);
    if (len) std::memcpy(m.data() + n, data, len);
    return m;
}

std::vector<std::uint8_t> device_signed_message(const std::uint8_t *message, std::size_t len) {
    return labelled("peerdist device v1", message, len);
}

}  // namespace pd::crypto
