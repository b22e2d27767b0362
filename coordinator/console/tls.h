// The console's TLS identity: a self-signed certificate the coordinator makes for itself
// (at `init`, or at the first `serve` of an older database) unless one is configured.
#pragma once

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace pd::coord::console {

struct tls_identity {
    std::string certificate_pem;
    std::string private_key_pem;
};

// A new P-256 key and a self-signed certificate for it, valid for 825 days, naming
// `host_name` (and "localhost") as the subject and in its alternative names.
tls_identity make_self_signed(const std::string &host_name);

// The SHA-256 of the certificate's public key (SubjectPublicKeyInfo), base64: what an
// administrator compares on first visit, and what Chromium's
// --ignore-certificate-errors-spki-list pins. Throws pd::error for a PEM that is not one.
std::string public_key_pin(const std::string &certificate_pem);

// A server context (TLS 1.2 and 1.3 only) holding the identity. Throws pd::error naming
// what is wrong with it (a key that does not match the certificate, a PEM that is not one).
std::shared_ptr<boost::asio::ssl::context> server_context(const tls_identity &identity);

}  // namespace pd::coord::console
