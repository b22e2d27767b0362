#include "net/record_cipher.h"

#include "crypto/hash.h"

#include <openssl/evp.h>

#include <cstring>

namespace pd::net {

namespace {

constexpr std::size_t gcm_tag = 16;
constexpr std::uint64_t gcm_records_per_key = 1u << 16;
const char gcm_next_key_label[] = "peerdist aes-256-gcm next key";

void put_u32(std::uint8_t *p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

[[noreturn]] void openssl_failed() { fail(PD_E_GENERIC, PD_CATEGORY_CRYPTO, "secure channel: OpenSSL AES-256-GCM failed"); }

}  // namespace

cipher_set local_ciphers() {
    crypto::ensure_initialised();
    cipher_set s = bit(cipher::xchacha20poly1305);
    if (crypto_aead_aes256gcm_is_available()) s |= bit(cipher::aes256gcm);
    return s;
}

const char *cipher_name(cipher c) { return c == cipher::aes256gcm ? "AES-256-GCM" : "XChaCha20-Poly1305"; }

std::size_t record_overhead(cipher c) {
    return c == cipher::aes256gcm ? gcm_tag : crypto_secretstream_xchacha20poly1305_ABYTES;
}

std::size_t stream_header_size(cipher c) { return c == cipher::aes256gcm ? 0 : crypto_secretstream_xchacha20poly1305_HEADERBYTES; }

// ---- AES-256-GCM ----

gcm_direction::~gcm_direction() {
    if (ctx_) EVP_CIPHER_CTX_free(ctx_);
    sodium_memzero(key_.data(), key_.size());
}

void gcm_direction::start(const key32 &key, bool sealing) {
    sealing_ = sealing;
    key_ = key;
    record_ = 0;
    if (!ctx_ && !(ctx_ = EVP_CIPHER_CTX_new())) openssl_failed();
    int ok = sealing ? EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key_.data(), nullptr)
                     : EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key_.data(), nullptr);
    if (ok != 1) openssl_failed();
}

// Sets the nonce of the record about to be sealed or opened; every 2^16 records the key
// becomes a keyed hash of itself (both sides count the same records).
void gcm_direction::next_record() {
    const std::uint8_t *key = nullptr;
    if (record_ && record_ % gcm_records_per_key == 0) {
        key32 next;
        crypto_generichash(next.data(), next.size(), reinterpret_cast<const unsigned char *>(gcm_next_key_label),
                           sizeof gcm_next_key_label - 1, key_.data(), key_.size());
        key_ = next;
        sodium_memzero(next.data(), next.size());
        key = key_.data();
    }
    std::uint8_t nonce[12] = {};
    for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<std::uint8_t>(record_ >> (8 * i));
    ++record_;
    int ok = sealing_ ? EVP_EncryptInit_ex(ctx_, nullptr, nullptr, key, nonce) : EVP_DecryptInit_ex(ctx_, nullptr, nullptr, key, nonce);
    if (ok != 1) openssl_failed();
}

void gcm_direction::seal(std::uint8_t *out, const std::uint8_t *plaintext, std::size_t len) {
    next_record();
    int n = 0, tail = 0;
    if (EVP_EncryptUpdate(ctx_, out, &n, plaintext, static_cast<int>(len)) != 1 || EVP_EncryptFinal_ex(ctx_, out + n, &tail) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, static_cast<int>(gcm_tag), out + len) != 1)
        openssl_failed();
}

bool gcm_direction::open(std::uint8_t *out, const std::uint8_t *in, std::size_t len) {
    next_record();
    std::size_t body = len - gcm_tag;
    std::uint8_t tag[gcm_tag];
    std::memcpy(tag, in + body, gcm_tag);  // before an in-place decryption could reach it
    int n = 0, tail = 0;
    if (EVP_DecryptUpdate(ctx_, out, &n, in, static_cast<int>(body)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, static_cast<int>(gcm_tag), tag) != 1)
        openssl_failed();
    return EVP_DecryptFinal_ex(ctx_, out + n, &tail) == 1;
}

// ---- sealing ----

bytes record_sealer::start(cipher c, const key32 &key) {
    cipher_ = c;
    if (c == cipher::aes256gcm) {
        gcm_.start(key, true);
        return {};
    }
    bytes header(crypto_secretstream_xchacha20poly1305_HEADERBYTES);
    crypto_secretstream_xchacha20poly1305_init_push(&stream_, header.data(), key.data());
    return header;
}

bytes record_sealer::seal(const std::uint8_t *plaintext, std::size_t len) {
    if (len > max_record_plaintext) fail(PD_E_MISUSE, PD_CATEGORY_NET, "record too large to send");
    std::size_t clen = len + record_overhead(cipher_);
    bytes out(4 + clen);
    put_u32(out.data(), static_cast<std::uint32_t>(clen));
    if (cipher_ == cipher::aes256gcm)
        gcm_.seal(out.data() + 4, plaintext, len);
    else
        crypto_secretstream_xchacha20poly1305_push(&stream_, out.data() + 4, nullptr, plaintext, len, nullptr, 0, 0);
    return out;
}

// ---- opening ----

void record_opener::start(cipher c, const key32 &key, const std::uint8_t *header) {
    cipher_ = c;
    if (c == cipher::aes256gcm) return gcm_.start(key, false);
    if (crypto_secretstream_xchacha20poly1305_init_pull(&stream_, header, key.data()) != 0)
        fail(PD_E_AUTH, PD_CATEGORY_NET, "secure channel: invalid stream header");
}

std::size_t record_opener::record_length(const std::uint8_t prefix[4]) const {
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= static_cast<std::uint32_t>(prefix[i]) << (8 * i);
    if (n < record_overhead(cipher_) || n > max_record_plaintext + record_overhead(cipher_))
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: record length " + std::to_string(n) + " is out of bounds");
    return n;
}

[[noreturn]] static void tampered() {
    fail(PD_E_AUTH, PD_CATEGORY_NET, "secure channel: a record failed authentication (tampered or out of order)");
}

bytes record_opener::open(const std::uint8_t *ciphertext, std::size_t len) {
    std::size_t overhead = record_overhead(cipher_);
    if (len < overhead || len > max_record_plaintext + overhead)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: record length is out of bounds");
    bytes out(len - overhead);
    if (cipher_ == cipher::aes256gcm) {
        if (!gcm_.open(out.data(), ciphertext, len)) tampered();
        return out;
    }
    unsigned long long n = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&stream_, out.data(), &n, &tag, ciphertext, len, nullptr, 0) != 0) tampered();
    out.resize(static_cast<std::size_t>(n));
    return out;
}

void record_opener::open_in_place(bytes &record) {
    // secretstream does not promise that its output may overlap its input: a copy there.
    if (cipher_ != cipher::aes256gcm) {
        record = open(record.data(), record.size());
        return;
    }
    if (record.size() < gcm_tag || record.size() > max_record_plaintext + gcm_tag)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: record length is out of bounds");
    if (!gcm_.open(record.data(), record.data(), record.size())) tampered();
    record.resize(record.size() - gcm_tag);
}

}  // namespace pd::net
