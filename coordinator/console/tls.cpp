#include "coordinator/console/tls.h"

#include "util/error.h"
#include "util/hex.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

namespace pd::coord::console {

namespace {

template <class T, void (*Free)(T *)>
struct owned {
    T *p = nullptr;
    explicit owned(T *pointer) : p(pointer) {}
    ~owned() {
        if (p) Free(p);
    }
    owned(const owned &) = delete;
    owned &operator=(const owned &) = delete;
};

[[noreturn]] void tls_fail(const std::string &what) { fail(PD_E_INVALID, PD_CATEGORY_API, "console TLS: " + what); }

std::string bio_text(BIO *bio) {
    char *data = nullptr;
    auto n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

tls_identity make_self_signed(const std::string &host_name) {
    owned<EVP_PKEY, EVP_PKEY_free> key(EVP_EC_gen("P-256"));
    if (!key.p) tls_fail("cannot make a key");
    owned<X509, X509_free> cert(X509_new());
    X509_set_version(cert.p, 2);
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) tls_fail("no randomness");
    serial[0] &= 0x7f;  // a positive serial number
    owned<BIGNUM, BN_free> bn(BN_bin2bn(serial, sizeof serial, nullptr));
    BN_to_ASN1_INTEGER(bn.p, X509_get_serialNumber(cert.p));
    X509_gmtime_adj(X509_getm_notBefore(cert.p), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.p), 825L * 24 * 3600);
    X509_set_pubkey(cert.p, key.p);
    auto *name = X509_get_subject_name(cert.p);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char *>("peerdist coordinator"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char *>(host_name.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.p, name);
    std::string alt = "DNS:localhost,IP:127.0.0.1,IP:::1";
    if (!host_name.empty() && host_name != "localhost") alt = "DNS:" + host_name + "," + alt;
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.p, cert.p, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair<int, std::string>{NID_subject_alt_name, alt},
                              {NID_basic_constraints, "critical,CA:FALSE"},
                              {NID_ext_key_usage, "serverAuth"},
                              {NID_key_usage, "critical,digitalSignature"}}) {
        owned<X509_EXTENSION, X509_EXTENSION_free> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
        if (!ext.p || X509_add_ext(cert.p, ext.p, -1) != 1) tls_fail("cannot add a certificate extension");
    }
    if (X509_sign(cert.p, key.p, EVP_sha256()) == 0) tls_fail("cannot sign the certificate");
    owned<BIO, BIO_free_all> cert_bio(BIO_new(BIO_s_mem())), key_bio(BIO_new(BIO_s_mem()));
    if (PEM_write_bio_X509(cert_bio.p, cert.p) != 1 ||
        PEM_write_bio_PrivateKey(key_bio.p, key.p, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        tls_fail("cannot write the certificate");
    return {bio_text(cert_bio.p), bio_text(key_bio.p)};
}

std::string public_key_pin(const std::string &certificate_pem) {
    owned<BIO, BIO_free_all> bio(BIO_new_mem_buf(certificate_pem.data(), static_cast<int>(certificate_pem.size())));
    owned<X509, X509_free> cert(PEM_read_bio_X509(bio.p, nullptr, nullptr, nullptr));
    if (!cert.p) tls_fail("the certificate is not a PEM X.509 certificate");
    unsigned char *der = nullptr;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert.p), &der);
    if (n <= 0) tls_fail("cannot read the certificate's public key");
    unsigned char digest[32];
    unsigned int len = 0;
    EVP_Digest(der, static_cast<std::size_t>(n), digest, &len, EVP_sha256(), nullptr);
    OPENSSL_free(der);
    return to_base64(digest, sizeof digest);
}

std::shared_ptr<boost::asio::ssl::context> server_context(const tls_identity &identity) {
    namespace ssl = boost::asio::ssl;
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    boost::system::error_code ec;
    ctx->use_certificate_chain(boost::asio::buffer(identity.certificate_pem), ec);
    if (ec) tls_fail("the certificate: " + ec.message());
    ctx->use_private_key(boost::asio::buffer(identity.private_key_pem), ssl::context::pem, ec);
    if (ec) tls_fail("the private key: " + ec.message());
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) tls_fail("the private key does not match the certificate");
    return ctx;
}

}  // namespace pd::coord::console
