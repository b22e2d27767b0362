#include "coordinator/console/http_server.h"

#include "net/resolve.h"
#include "util/endpoint.h"
#include "util/error.h"

#include <utility>  // before Asio (toolchain.md)
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <cctype>
#include <chrono>
#include <optional>

namespace pd::coord::console {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::string http_request::header(const std::string &lower_case_name) const {
    auto it = headers.find(lower_case_name);
    return it == headers.end() ? std::string() : it->second;
}

namespace {

// The headers the console reads; others are not copied.
const char *const kept_headers[] = {"cookie", "origin", "host", "content-type", "x-csrf-token", "sec-fetch-site"};

}  // namespace

struct http_server::state : std::enable_shared_from_this<state> {
    state(asio::io_context &context, std::shared_ptr<asio::ssl::context> tls_context, http_limits bounds, http_handler on_request)
        : io(context), tls(std::move(tls_context)), limits(bounds), handler(std::move(on_request)), acceptor(context) {}

    asio::io_context &io;
    std::shared_ptr<asio::ssl::context> tls;
    http_limits limits;
    http_handler handler;
    tcp::acceptor acceptor;
    std::size_t open = 0;
    std::map<std::string, std::size_t> per_address;
    bool stopped = false;  // pending reads end with the io_context; no new request is read

    void accept_next();
};

namespace {

// One connection: requests read and answered one at a time. `Stream` is a beast::tcp_stream
// or an ssl_stream over one.
template <class Stream>
class session : public std::enable_shared_from_this<session<Stream>> {
public:
    session(std::shared_ptr<http_server::state> owner, Stream stream, std::string ip)
        : owner_(std::move(owner)), stream_(std::move(stream)), ip_(std::move(ip)) {}

    ~session() {
        --owner_->open;
        if (--owner_->per_address[ip_] == 0) owner_->per_address.erase(ip_);
    }

    void start() {
        if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
            read_next();
        } else {
            beast::get_lowest_layer(stream_).expires_after(std::chrono::milliseconds(owner_->limits.handshake_timeout_ms));
            stream_.async_handshake(asio::ssl::stream_base::server, [self = this->shared_from_this()](const error_code &ec) {
                if (ec) return self->close();
                self->read_next();
            });
        }
    }

    void close() {
        error_code ignored;
        beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
        beast::get_lowest_layer(stream_).close();
    }

private:
    void read_next() {
        if (owner_->stopped) return close();
        parser_.emplace();
        parser_->header_limit(static_cast<std::uint32_t>(owner_->limits.max_header_bytes));
        parser_->body_limit(owner_->limits.max_body_bytes);
        // One deadline for waiting for the request and reading all of it: a client dripping
        // a header byte a second is cut off with the rest.
        beast::get_lowest_layer(stream_).expires_after(std::chrono::milliseconds(owner_->limits.request_timeout_ms));
        http::async_read(stream_, buffer_, *parser_, [self = this->shared_from_this()](const error_code &ec, std::size_t) {
            self->on_read(ec);
        });
    }

    void on_read(const error_code &ec) {
        if (ec == http::error::header_limit) return refuse(431, "request headers too large");
        if (ec == http::error::body_limit) return refuse(413, "request body too large");
        if (ec) {
            // A request the parser could not read (not the peer going away): say so once.
            if (ec.category() == http::make_error_code(http::error::bad_method).category() && ec != http::error::end_of_stream)
                return refuse(400, "malformed HTTP request");
            return close();
        }
        auto &m = parser_->get();
        http_request r;
        r.method = std::string(m.method_string());
        r.target = std::string(m.target());
        r.peer_ip = ip_;
        r.secure = !std::is_same_v<Stream, beast::tcp_stream>;
        for (auto name : kept_headers) {
            auto it = m.find(name);
            if (it != m.end()) r.headers[name] = std::string(it->value());
        }
        r.body = std::move(m.body());
        keep_alive_ = m.keep_alive();
        auto self = this->shared_from_this();
        auto answered = std::make_shared<bool>(false);
        owner_->handler(r, [self, answered](http_response response) {
            if (*answered) return;
            *answered = true;
            self->write(std::move(response));
        });
    }

    void refuse(unsigned status, const std::string &why) {
        keep_alive_ = false;
        http_response r;
        r.status = status;
        r.content_type = "text/plain; charset=utf-8";
        r.body = why + "\n";
        write(std::move(r));
    }

    void write(http_response response) {
        auto reply = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(response.status), 11);
        reply->set(http::field::server, "pd-coordinator");
        reply->set(http::field::content_type, response.content_type);
        for (auto &[name, value] : response.headers) reply->insert(name, value);
        reply->body() = std::move(response.body);
        reply->keep_alive(keep_alive_);
        reply->prepare_payload();
        beast::get_lowest_layer(stream_).expires_after(std::chrono::milliseconds(owner_->limits.request_timeout_ms));
        http::async_write(stream_, *reply, [self = this->shared_from_this(), reply](const error_code &ec, std::size_t) {
            if (ec || !self->keep_alive_) return self->close();
            self->read_next();
        });
    }

    std::shared_ptr<http_server::state> owner_;
    Stream stream_;
    std::string ip_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    bool keep_alive_ = false;
};

}  // namespace

void http_server::state::accept_next() {
    acceptor.async_accept([self = shared_from_this()](const error_code &ec, tcp::socket socket) {
        if (self->stopped || ec == asio::error::operation_aborted) return;
        if (ec) {
            // Out of descriptors: wait a little rather than spin.
            auto timer = std::make_shared<asio::steady_timer>(self->io, std::chrono::milliseconds(100));
            timer->async_wait([self, timer](const error_code &) {
                if (!self->stopped) self->accept_next();
            });
            return;
        }
        error_code e;
        auto remote = socket.remote_endpoint(e);
        std::string ip = e ? "" : remote.address().to_string();
        if (ip.rfind("::ffff:", 0) == 0) ip = ip.substr(7);
        if (self->open >= self->limits.max_connections || self->per_address[ip] >= self->limits.max_connections_per_address) {
            if (!self->per_address[ip]) self->per_address.erase(ip);
            socket.close(e);  // over a bound: dropped before any byte is read
        } else {
            ++self->open;
            ++self->per_address[ip];
            if (self->tls) {
                using tls_stream = beast::ssl_stream<beast::tcp_stream>;
                auto s = std::make_shared<session<tls_stream>>(self, tls_stream(beast::tcp_stream(std::move(socket)), *self->tls), ip);
                s->start();
            } else {
                auto s = std::make_shared<session<beast::tcp_stream>>(self, beast::tcp_stream(std::move(socket)), ip);
                s->start();
            }
        }
        self->accept_next();
    });
}

http_server::http_server(asio::io_context &io, std::shared_ptr<asio::ssl::context> tls, http_limits limits, http_handler handler)
    : state_(std::make_shared<state>(io, std::move(tls), limits, std::move(handler))) {}

http_server::~http_server() { stop(); }

void http_server::listen(const std::string &address) {
    auto e = require_endpoint(address, "console address", port_rule::listen);
    tcp::endpoint ep(net::bind_address(e, "console address"), static_cast<unsigned short>(e.port));
    error_code ec;
    state_->acceptor.open(ep.protocol(), ec);
    if (!ec) state_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) state_->acceptor.bind(ep, ec);
    if (!ec) state_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail(PD_E_IO, PD_CATEGORY_NET, "cannot listen on " + address + ": " + ec.message());
    state_->accept_next();
}

std::string http_server::bound_address() const {
    error_code ec;
    auto ep = state_->acceptor.local_endpoint(ec);
    if (ec) return "";
    auto ip = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(ep.port());
}

void http_server::stop() {
    state_->stopped = true;
    error_code ec;
    state_->acceptor.close(ec);
}

}  // namespace pd::coord::console
