// HTTP/HTTPS origin (a CDN or web server) with Boost.Beast + OpenSSL: ranged GETs over a
// pool of keep-alive connections, bounded redirects, retries with exponential backoff and
// jitter, connect and idle timeouts, TLS verification (system CAs or a CA file), optional
// client certificate, and an HTTP proxy (CONNECT for https, absolute-form for http).
//
// Plugin reads are blocking calls on the core's source I/O threads. Each connection owns a
// small io_context; operations are asynchronous with Beast's timeouts and driven to
// completion on the calling thread, which gives sync code real timeouts.
#include "http_url.h"
#include "source.h"

#include <utility>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <functional>
#include <optional>
#include <random>
#include <thread>
#include <vector>

namespace pd_origin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// A failure classified for the retry loop.
struct failure {
    int32_t code;
    std::string message;
    bool retryable;
};

class connection {
public:
    connection(const url &target, const settings &s, ssl::context *tls_ctx) : target_(target), settings_(s) {
        if (target.tls) tls_.emplace(ioc_, *tls_ctx);
        else plain_.emplace(ioc_);
    }

    const url &target() const { return target_; }
    bool reusable() const { return reusable_; }

    std::optional<failure> connect() {
        bool via_proxy = !settings_.proxy.empty();
        std::string host = target_.host, port = target_.port;
        std::optional<url> proxy;
        if (via_proxy) {
            proxy = parse_url(settings_.proxy);
            if (!proxy || proxy->tls) return failure{PD_PLUGIN_E_INVALID, "proxy '" + settings_.proxy + "' is not an http:// URL", false};
            host = proxy->host, port = proxy->port;
        }
        tcp::resolver resolver(ioc_);
        error_code ec;
        tcp::resolver::results_type endpoints;
        resolver.async_resolve(host, port, [&](error_code e, tcp::resolver::results_type r) { ec = e, endpoints = r; });
        run();
        if (ec) return failure{PD_PLUGIN_E_IO, "cannot resolve '" + host + "': " + ec.message(), true};
        auto &layer = lowest();
        layer.expires_after(std::chrono::milliseconds(settings_.connect_timeout_ms));
        layer.async_connect(endpoints, [&](error_code e, const tcp::endpoint &) { ec = e; });
        run();
        if (ec) return failure{PD_PLUGIN_E_IO, "cannot connect to " + host + ":" + port + ": " + describe(ec), true};
        if (via_proxy && target_.tls) {
            if (auto f = proxy_connect()) return f;
        }
        if (target_.tls) {
            if (!SSL_set_tlsext_host_name(tls_->native_handle(), target_.host.c_str()))
                return failure{PD_PLUGIN_E_IO, "cannot set TLS server name", false};
            if (settings_.verify_tls) tls_->set_verify_callback(ssl::host_name_verification(target_.host));
            layer.expires_after(std::chrono::milliseconds(settings_.connect_timeout_ms));
            tls_->async_handshake(ssl::stream_base::client, [&](error_code e) { ec = e; });
            run();
            if (ec)
                return failure{PD_PLUGIN_E_IO, "TLS handshake with " + target_.host + " failed: " + describe(ec),
                               !is_certificate_error(ec)};
        }
        connected_ = true;
        return std::nullopt;
    }

    bool connected() const { return connected_; }

    // Sends GET for [offset, offset + length) and reads the body into `out`, keeping
    // what arrived in `received` even on failure so the caller can resume.
    std::optional<failure> get_range(const url &resource, std::uint64_t offset, std::size_t length, std::uint64_t total, char *out,
                                     std::size_t &received, std::optional<url> &redirect, std::string &etag,
                                     std::string &last_modified) {
        reusable_ = false;
        auto req = get_request(resource);
        req.set(http::field::range, "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1));
        http::response_parser<http::buffer_body> parser;
        parser.body_limit(std::numeric_limits<std::uint64_t>::max());
        if (auto f = exchange(req, parser)) return f;
        error_code ec;
        auto &res = parser.get();
        unsigned status = res.result_int();
        etag = std::string(res[http::field::etag]);
        last_modified = std::string(res[http::field::last_modified]);
        std::string where = " from " + resource.text();
        if (status >= 300 && status < 400 && status != 304) {
            auto loc = res[http::field::location];
            redirect = resolve(resource, std::string(loc));
            if (!redirect) return failure{PD_PLUGIN_E_IO, "redirect" + where + " to an unusable location '" + std::string(loc) + "'", false};
            // A downgrade would hand the request (and its client certificate's trust) to an
            // unauthenticated server: never follow one.
            if (resource.tls && !redirect->tls)
                return failure{PD_PLUGIN_E_IO, "redirect" + where + " to plain HTTP (" + redirect->text() + ") refused", false};
            drain(parser);
            return std::nullopt;
        }
        if (status == 404 || status == 410)
            return failure{PD_PLUGIN_E_NOT_FOUND, "HTTP " + std::to_string(status) + where, false};
        if (status == 416)
            return failure{PD_PLUGIN_E_CHANGED, "origin content changed: HTTP 416 (range not satisfiable) for bytes " +
                                                    std::to_string(offset) + "-" + std::to_string(offset + length - 1) + where,
                           false};
        if (status >= 500) return failure{PD_PLUGIN_E_IO, "HTTP " + std::to_string(status) + where, true};
        std::uint64_t skip = 0;
        if (status == 206) {
            std::string range(res[http::field::content_range]);
            auto parsed = parse_content_range(range);
            if (!parsed) return failure{PD_PLUGIN_E_IO, "malformed Content-Range '" + range + "'" + where, true};
            auto [first, last, size] = *parsed;
            if (size != total)
                return failure{PD_PLUGIN_E_CHANGED, "origin content changed: " + resource.text() + " is " + std::to_string(size) +
                                                        " bytes but the published content is " + std::to_string(total),
                               false};
            if (first != offset || last != offset + length - 1)
                return failure{PD_PLUGIN_E_IO, "wrong Content-Range '" + range + "' for requested bytes " + std::to_string(offset) +
                                                   "-" + std::to_string(offset + length - 1) + where,
                               true};
        } else if (status == 200) {
            // A server that ignores ranges sends everything. For the first piece that is the
            // piece; for any later one every piece would bring all the bytes before it again
            // (a 1 GiB content: about 500 GiB over the WAN). Refused, with the reason.
            if (offset > 0)
                return failure{PD_PLUGIN_E_IO, "the origin ignores HTTP Range requests (HTTP 200 for bytes " +
                                                   std::to_string(offset) + "-" + std::to_string(offset + length - 1) + where +
                                                   "): every piece would download the content from its start",
                               false};
            if (res.has_content_length() && parser.content_length() && *parser.content_length() != total)
                return failure{PD_PLUGIN_E_CHANGED, "origin content changed: " + resource.text() + " is " +
                                                        std::to_string(*parser.content_length()) +
                                                        " bytes but the published content is " + std::to_string(total),
                               false};
            skip = offset;
        } else {
            return failure{PD_PLUGIN_E_IO, "unexpected HTTP " + std::to_string(status) + where, false};
        }
        if (status == 206 && !parser.chunked() && parser.content_length() && *parser.content_length() == length) {
            // Fast path: the body goes straight from the socket into the caller's buffer in
            // large reads (Beast's parser would read it in small pieces and copy it).
            std::size_t buffered = std::min(buffer_.size(), length - received);
            asio::buffer_copy(asio::buffer(out + received, buffered), buffer_.data());
            buffer_.consume(buffered);
            received += buffered;
            // On a slow link each packet would wake this thread on its own (at 100 Mbit/s
            // that was most of the agent's CPU): the socket reports readable only once a
            // larger share of what is still due has arrived — never more than is due, so the
            // last bytes are not held back — and back to 1 byte for the next headers.
            auto &socket = lowest().socket();
            std::size_t watermark = 1;
            auto set_watermark = [&](std::size_t want) {
                if (want == watermark) return;
                error_code ignored;  // a platform without the option reads as before
                socket.set_option(asio::socket_base::receive_low_watermark(static_cast<int>(want)), ignored);
                watermark = want;
            };
            struct reset_watermark {
                std::function<void()> fn;
                ~reset_watermark() { fn(); }
            } reset{[&] { set_watermark(1); }};
            while (received < length) {
                // Whole 16 KiB steps of what is due (the value rarely changes), at most 256 KiB.
                std::size_t due = length - received;
                set_watermark(std::max<std::size_t>(1, std::min<std::size_t>(due, 256 * 1024) / (16 * 1024) * (16 * 1024)));
                std::size_t n = 0;
                lowest().expires_after(std::chrono::milliseconds(settings_.idle_timeout_ms));
                with_stream([&](auto &s) {
                    s.async_read_some(asio::buffer(out + received, length - received), [&](error_code e, std::size_t k) {
                        ec = e;
                        n = k;
                    });
                });
                run();
                received += n;
                if (ec)
                    return failure{PD_PLUGIN_E_IO, "body truncated after " + std::to_string(received) + " of " +
                                                       std::to_string(length) + " bytes" + where + ": " + describe(ec),
                                   true};
            }
            reusable_ = parser.keep_alive() && buffer_.size() == 0;
            return std::nullopt;
        }
        std::vector<char> scratch(skip ? 64 * 1024 : 0);
        while (!parser.is_done() && received < length) {
            auto &body = parser.get().body();
            if (skip) {
                body.data = scratch.data();
                body.size = static_cast<std::size_t>(std::min<std::uint64_t>(skip, scratch.size()));
            } else {
                body.data = out + received;
                body.size = length - received;
            }
            std::size_t asked = body.size;
            lowest().expires_after(std::chrono::milliseconds(settings_.idle_timeout_ms));
            with_stream([&](auto &s) { http::async_read(s, buffer_, parser, [&](error_code e, std::size_t) { ec = e; }); });
            run();
            std::size_t got = asked - parser.get().body().size;
            if (skip) skip -= got;
            else received += got;
            if (ec == http::error::need_buffer) ec = {};
            if (ec)
                return failure{PD_PLUGIN_E_IO, "body truncated after " + std::to_string(received) + " of " + std::to_string(length) +
                                                   " bytes" + where + ": " + describe(ec),
                               true};
        }
        if (received < length)
            return failure{PD_PLUGIN_E_IO, "body ended after " + std::to_string(received) + " of " + std::to_string(length) +
                                               " bytes" + where,
                           true};
        reusable_ = parser.is_done() && parser.keep_alive();
        return std::nullopt;
    }

    // Asks for the resource's Content Information ([MS-PCCRTP] 3.1.4: Accept-Encoding
    // peerdist, X-P2P-PeerDist Version=1.0, so a V1 answer). `encoded` says whether the
    // origin answered with it (Content-Encoding: peerdist, for `total` bytes of content); an
    // identity answer is not read: the connection is dropped rather than drain the content.
    std::optional<failure> get_content_info(const url &resource, std::uint64_t total, std::size_t max_bytes,
                                            std::vector<std::uint8_t> &out, bool &encoded, std::optional<url> &redirect) {
        reusable_ = false;
        encoded = false;
        auto req = get_request(resource);
        req.set(http::field::accept_encoding, "peerdist");
        req.set("X-P2P-PeerDist", "Version=1.0");
        http::response_parser<http::vector_body<std::uint8_t>> parser;
        parser.body_limit(max_bytes);
        if (auto f = exchange(req, parser)) return f;
        error_code ec;
        auto &res = parser.get();
        unsigned status = res.result_int();
        if (status >= 300 && status < 400 && status != 304) {
            redirect = resolve(resource, std::string(res[http::field::location]));
            if (!redirect || (resource.tls && !redirect->tls)) return failure{PD_PLUGIN_E_NOT_FOUND, "", false};
            return std::nullopt;
        }
        std::string encoding(res[http::field::content_encoding]);
        for (auto &c : encoding) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (status != 200 || encoding != "peerdist") return std::nullopt;  // an origin that does not speak PeerDist
        // 3.2.5.1: ContentLength is the content's size before the encoding.
        std::string params(res["X-P2P-PeerDist"]);
        auto at = params.find("ContentLength=");
        auto digits = at == std::string::npos ? std::string() : params.substr(at + 14, params.find_first_not_of("0123456789", at + 14) - at - 14);
        if (total && digits != std::to_string(total))
            return failure{PD_PLUGIN_E_CHANGED, "the origin's Content Information is for another length (" + params + ")", false};
        lowest().expires_after(std::chrono::milliseconds(settings_.idle_timeout_ms));
        with_stream([&](auto &s) { http::async_read(s, buffer_, parser, [&](error_code e, std::size_t) { ec = e; }); });
        run();
        if (ec == http::error::body_limit)
            return failure{PD_PLUGIN_E_INVALID, "the origin's Content Information is larger than the content's (" +
                                                    std::to_string(max_bytes) + " bytes)", false};
        if (ec) return failure{PD_PLUGIN_E_IO, "reading the Content Information failed: " + describe(ec), true};
        out = std::move(res.body());
        encoded = true;
        reusable_ = parser.keep_alive();
        return std::nullopt;
    }

private:
    // A keep-alive GET of `resource`, for the caller to add its headers to.
    http::request<http::empty_body> get_request(const url &resource) const {
        http::request<http::empty_body> req{http::verb::get, request_target(resource), 11};
        req.set(http::field::host, target_.host);
        req.set(http::field::user_agent, "peerdist-origin/0.1");
        req.keep_alive(true);
        return req;
    }

    // Sends `req` and reads the response's header into `parser`, each within the idle timeout.
    template <class Parser>
    std::optional<failure> exchange(http::request<http::empty_body> &req, Parser &parser) {
        error_code ec;
        lowest().expires_after(std::chrono::milliseconds(settings_.idle_timeout_ms));
        with_stream([&](auto &s) { http::async_write(s, req, [&](error_code e, std::size_t) { ec = e; }); });
        run();
        if (ec) return failure{PD_PLUGIN_E_IO, "sending the request failed: " + describe(ec), true};
        lowest().expires_after(std::chrono::milliseconds(settings_.idle_timeout_ms));
        with_stream([&](auto &s) { http::async_read_header(s, buffer_, parser, [&](error_code e, std::size_t) { ec = e; }); });
        run();
        if (ec) return failure{PD_PLUGIN_E_IO, "reading the response failed: " + describe(ec), true};
        return std::nullopt;
    }

    beast::tcp_stream &lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

    template <class Fn>
    void with_stream(Fn fn) {
        if (tls_) fn(*tls_);
        else fn(*plain_);
    }

    void run() {
        ioc_.restart();
        ioc_.run();
    }

    std::string request_target(const url &resource) const {
        // Through a proxy, plain HTTP uses the absolute form.
        if (!settings_.proxy.empty() && !resource.tls) return resource.text();
        return resource.target;
    }

    std::optional<failure> proxy_connect() {
        std::string authority = target_.host + ":" + target_.port;
        http::request<http::empty_body> req{http::verb::connect, authority, 11};
        req.set(http::field::host, authority);
        error_code ec;
        lowest().expires_after(std::chrono::milliseconds(settings_.connect_timeout_ms));
        http::async_write(lowest(), req, [&](error_code e, std::size_t) { ec = e; });
        run();
        if (ec) return failure{PD_PLUGIN_E_IO, "proxy CONNECT failed: " + describe(ec), true};
        http::response_parser<http::empty_body> p;
        p.skip(true);  // a CONNECT response has no body
        http::async_read_header(lowest(), buffer_, p, [&](error_code e, std::size_t) { ec = e; });
        run();
        if (ec) return failure{PD_PLUGIN_E_IO, "proxy CONNECT failed: " + describe(ec), true};
        if (p.get().result_int() != 200)
            return failure{PD_PLUGIN_E_IO, "proxy refused CONNECT " + authority + ": HTTP " + std::to_string(p.get().result_int()), false};
        return std::nullopt;
    }

    template <class Parser>
    void drain(Parser &parser) {
        // Small redirect bodies are read so the connection can be reused; others are dropped.
        error_code ec;
        char sink[4096];
        for (int i = 0; i < 16 && !parser.is_done(); ++i) {
            parser.get().body().data = sink;
            parser.get().body().size = sizeof sink;
            lowest().expires_after(std::chrono::milliseconds(settings_.idle_timeout_ms));
            with_stream([&](auto &s) { http::async_read(s, buffer_, parser, [&](error_code e, std::size_t) { ec = e; }); });
            run();
            if (ec && ec != http::error::need_buffer) return;
        }
        reusable_ = parser.is_done() && parser.keep_alive();
    }

    static bool is_certificate_error(const error_code &ec) {
        return ec.category() == asio::error::get_ssl_category() || ec == asio::ssl::error::stream_truncated;
    }

    static std::string describe(const error_code &ec) {
        if (ec == beast::error::timeout) return "timed out";
        std::string m = ec.message();
        if (ec.category() == asio::error::get_ssl_category()) {
            char buf[256];
            ERR_error_string_n(static_cast<unsigned long>(ec.value()), buf, sizeof buf);
            m += " (" + std::string(buf) + ")";
        }
        return m;
    }

    url target_;
    settings settings_;
    asio::io_context ioc_{1};
    std::optional<beast::tcp_stream> plain_;
    std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
    beast::flat_buffer buffer_;
    bool connected_ = false;
    bool reusable_ = false;
};

class http_source final : public source {
public:
    http_source(url u, const settings &s, read_context ctx) : url_(std::move(u)), settings_(s), ctx_(ctx) {}

    status open(std::uint64_t size) override {
        size_ = size;
        if (auto r = prepare(); !r.ok()) return r;
        // One byte proves reachability, follows redirects and checks the size.
        char byte;
        return read(0, &byte, size ? 1 : 0);
    }

    // The TLS context, once: what every connection of this source shares.
    status prepare() {
        if (prepared_) return {};
        prepared_ = true;
        if (url_.tls) {
            tls_ctx_.emplace(ssl::context::tls_client);
            error_code ec;
            if (!settings_.verify_tls) tls_ctx_->set_verify_mode(ssl::verify_none);
            else {
                tls_ctx_->set_verify_mode(ssl::verify_peer);
                if (!settings_.ca_file.empty()) tls_ctx_->load_verify_file(settings_.ca_file, ec);
                else tls_ctx_->set_default_verify_paths(ec);
                if (ec) return status::fail(PD_PLUGIN_E_INVALID, "cannot load CA '" + settings_.ca_file + "': " + ec.message());
            }
            if (!settings_.client_cert.empty()) {
                tls_ctx_->use_certificate_chain_file(settings_.client_cert, ec);
                if (!ec) tls_ctx_->use_private_key_file(settings_.client_key.empty() ? settings_.client_cert : settings_.client_key,
                                                        ssl::context::pem, ec);
                if (ec) return status::fail(PD_PLUGIN_E_INVALID, "cannot load client certificate: " + ec.message());
            }
        }
        return {};
    }

    status read(std::uint64_t offset, void *buffer, std::size_t length) override {
        if (length == 0) return {};
        std::size_t received = 0;
        std::string last_error;
        for (std::uint64_t attempt = 0;; ++attempt) {
            if (ctx_.should_stop()) return status::fail(PD_PLUGIN_E_CANCELLED, "stopped");
            auto f = attempt_read(offset + received, static_cast<char *>(buffer) + received, length - received, received);
            if (!f) return {};
            last_error = f->message;
            if (!f->retryable) return status::fail(f->code, f->message);
            if (attempt >= settings_.retries)
                return status::fail(f->code, f->message + " (after " + std::to_string(attempt + 1) + " attempts)");
            if (!sleep_backoff(attempt)) return status::fail(PD_PLUGIN_E_CANCELLED, "stopped");
        }
    }

    std::string describe() const override { return url_.text(); }

    status content_info(std::vector<std::uint8_t> &out, std::size_t max_bytes) override {
        if (auto r = prepare(); !r.ok()) return r;
        url target = effective();
        for (std::uint64_t hops = 0; hops <= settings_.max_redirects; ++hops) {
            auto conn = checkout(target);
            std::optional<failure> f;
            if (!conn->connected()) f = conn->connect();
            std::optional<url> redirect;
            bool encoded = false;
            if (!f) f = conn->get_content_info(target, size_, max_bytes, out, encoded, redirect);
            checkin(std::move(conn));
            if (f) return status::fail(f->code, f->message);
            if (!redirect) return encoded ? status{} : status::fail(PD_PLUGIN_E_NOT_FOUND, "");
            target = *redirect;
        }
        return status::fail(PD_PLUGIN_E_NOT_FOUND, "");
    }

private:
    // One request, following redirects. `received` grows with the bytes that arrived.
    std::optional<failure> attempt_read(std::uint64_t offset, char *out, std::size_t length, std::size_t &received) {
        url target = effective();
        for (std::uint64_t hops = 0;; ++hops) {
            auto conn = checkout(target);
            if (!conn->connected()) {
                if (auto f = conn->connect()) return f;
            }
            std::optional<url> redirect;
            std::string etag, last_modified;
            std::size_t got = 0;
            auto f = conn->get_range(target, offset, length, size_, out, got, redirect, etag, last_modified);
            received += got;
            if (!f && !redirect) {
                if (auto changed = check_validators(etag, last_modified)) f = changed;
            }
            checkin(std::move(conn));
            if (f) return f;
            if (!redirect) return std::nullopt;
            if (hops + 1 > settings_.max_redirects)
                return failure{PD_PLUGIN_E_IO, "too many redirects (more than " + std::to_string(settings_.max_redirects) +
                                                   ", last to " + redirect->text() + "): redirect loop?",
                               false};
            target = *redirect;
            std::lock_guard lk(mu_);
            effective_ = target;  // later reads go straight to where the origin sent us
        }
    }

    // ETag / Last-Modified must not change while a content downloads.
    std::optional<failure> check_validators(const std::string &etag, const std::string &last_modified) {
        std::lock_guard lk(mu_);
        if (!etag.empty()) {
            if (etag_.empty()) etag_ = etag;
            else if (etag != etag_)
                return failure{PD_PLUGIN_E_CHANGED, "origin content changed: ETag " + etag_ + " became " + etag, false};
        }
        if (!last_modified.empty()) {
            if (last_modified_.empty()) last_modified_ = last_modified;
            else if (last_modified != last_modified_)
                return failure{PD_PLUGIN_E_CHANGED,
                               "origin content changed: Last-Modified " + last_modified_ + " became " + last_modified, false};
        }
        return std::nullopt;
    }

    url effective() {
        std::lock_guard lk(mu_);
        return effective_ ? *effective_ : url_;
    }

    std::unique_ptr<connection> checkout(const url &target) {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return in_use_ < std::max<std::uint64_t>(1, settings_.max_connections); });
        ++in_use_;
        for (auto it = idle_.begin(); it != idle_.end(); ++it) {
            if ((*it)->target().origin() == target.origin()) {
                auto c = std::move(*it);
                idle_.erase(it);
                return c;
            }
        }
        lk.unlock();
        return std::make_unique<connection>(target, settings_, tls_ctx_ ? &*tls_ctx_ : nullptr);
    }

    void checkin(std::unique_ptr<connection> c) {
        std::lock_guard lk(mu_);
        --in_use_;
        if (c->reusable()) idle_.push_back(std::move(c));
        cv_.notify_one();
    }

    bool sleep_backoff(std::uint64_t attempt) {
        thread_local std::mt19937 rng{std::random_device{}()};
        std::uint64_t base = settings_.retry_backoff_ms << std::min<std::uint64_t>(attempt, 8);
        std::uint64_t delay = base / 2 + std::uniform_int_distribution<std::uint64_t>(0, base)(rng);  // jitter
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay);
        while (std::chrono::steady_clock::now() < until) {
            if (ctx_.should_stop()) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return true;
    }

    url url_;
    settings settings_;
    read_context ctx_;
    std::uint64_t size_ = 0;  // 0 before open(): a Content Information request checks no length
    bool prepared_ = false;
    std::optional<ssl::context> tls_ctx_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::uint64_t in_use_ = 0;
    std::vector<std::unique_ptr<connection>> idle_;
    std::optional<url> effective_;
    std::string etag_, last_modified_;
};

}  // namespace

std::unique_ptr<source> make_http_source(const std::string &text, const settings &s, read_context ctx) {
    auto u = parse_url(text);
    if (!u) return nullptr;
    return std::make_unique<http_source>(*u, s, ctx);
}

}  // namespace pd_origin
