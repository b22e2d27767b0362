// The console's HTTP/1.1 server (Boost.Beast): HTTPS with the coordinator's certificate, or
// plain HTTP where the console allows it (loopback only). It parses and bounds requests and
// hands each whole one to the console; it knows nothing of sessions or operations.
//
// Bounded everywhere a client could hold it: header and body sizes, a deadline for every
// request (a slow drip of headers is cut off) and every reply (a client that never reads),
// the TLS handshake's own deadline, connections in all and per address.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pd::coord::console {

struct http_request {
    std::string method;  // "GET", "POST", ...
    std::string target;  // the path and query, as sent
    std::string peer_ip;
    bool secure = false;                         // it came over TLS
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    // The header's value, "" when absent.
    std::string header(const std::string &lower_case_name) const;
};

struct http_response {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

// Called on the io_context's thread with each request; answers through `respond`, exactly
// once, now or later (from the same thread).
using http_handler = std::function<void(const http_request &, std::function<void(http_response)> respond)>;

struct http_limits {
    std::size_t max_header_bytes = 8 * 1024;
    std::size_t max_body_bytes = 8u << 20;      // a topology CSV of ~100,000 offices, manifests to publish
    std::int64_t handshake_timeout_ms = 10000;  // the TLS handshake
    std::int64_t request_timeout_ms = 15000;    // waiting for and reading a whole request; writing a reply
    std::size_t max_connections = 256;
    std::size_t max_connections_per_address = 32;
};

class http_server {
public:
    // `tls`: serve HTTPS with it; null: plain HTTP.
    http_server(boost::asio::io_context &io, std::shared_ptr<boost::asio::ssl::context> tls, http_limits limits,
                http_handler handler);
    ~http_server();
    http_server(const http_server &) = delete;
    http_server &operator=(const http_server &) = delete;
    // Binds "ip:port" (port 0: any) and starts accepting. Throws pd::error.
    void listen(const std::string &address);
    std::string bound_address() const;
    // Stops accepting and closes every connection.
    void stop();

    struct state;  // the listener and its connections' counts (http_server.cpp)

private:
    std::shared_ptr<state> state_;
};

}  // namespace pd::coord::console
