#include "coordinator/console/console.h"

#include "coordinator/console/assets.h"
#include "coordinator/console/request.h"
#include "coordinator_client/protocol.h"
#include "util/endpoint.h"
#include "util/error.h"

#include <boost/asio/post.hpp>

#include <sodium.h>

#include <chrono>
#include <cstring>

namespace pd::coord::console {

namespace asio = boost::asio;

namespace {

constexpr const char *cookie_name = "pd_console";

bool loopback(const std::string &ip) { return ip.rfind("127.", 0) == 0 || ip == "::1"; }

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

http_response json_response(unsigned status, const json &body) {
    http_response r;
    r.status = status;
    r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    return r;
}

http_response error_response(unsigned status, const std::string &why) { return json_response(status, {{"ok", false}, {"error", why}}); }

// The replies the API can send as a file: the CSV field of these operations.
bool csv_operation(const std::string &op) { return op == "admin.devices.csv" || op == "admin.topology.export"; }

}  // namespace

web_console::web_console(asio::io_context &io, server &srv, coordinator_store &store, console_options options)
    : io_(io), server_(srv), store_(store), options_(std::move(options)), sessions_(options_.sessions) {
    std::shared_ptr<asio::ssl::context> tls;
    if (options_.tls) {
        tls = server_context(*options_.tls);
    } else {
        auto e = require_endpoint(options_.listen, "console address", port_rule::listen);
        if (!loopback(e.host) && e.host != "localhost")
            fail(PD_E_INVALID, PD_CATEGORY_API,
                 "the console serves plain HTTP only on a loopback address (" + options_.listen + " is not one): use HTTPS");
    }
    if (!options_.audit) options_.audit = [](const std::string &) {};
    http_ = std::make_unique<http_server>(io_, std::move(tls), options_.http,
                                          [this](const http_request &r, std::function<void(http_response)> respond) {
                                              handle(r, std::move(respond));
                                          });
}

web_console::~web_console() {
    *alive_ = false;
    worker_.join();
}

void web_console::listen() { http_->listen(options_.listen); }

std::string web_console::bound_address() const { return http_->bound_address(); }

std::string web_console::url() const { return std::string(options_.tls ? "https://" : "http://") + bound_address() + "/"; }

void web_console::stop() { http_->stop(); }

bool web_console::same_origin(const http_request &r) const {
    // What a browser sends with every POST: the page's own origin. A form or script on
    // another site sends its own, and no browser lets a page forge these.
    auto site = r.header("sec-fetch-site");
    if (!site.empty() && site != "same-origin") return false;
    auto origin = r.header("origin");
    if (origin.empty()) return !site.empty();
    return origin == std::string(r.secure ? "https://" : "http://") + r.header("host");
}

void web_console::handle(const http_request &r, respond_fn respond) {
    // Every reply carries the headers that keep the pages to themselves.
    auto send = [respond = std::move(respond), secure = r.secure](http_response out) {
        out.headers.push_back({"Content-Security-Policy",
                               "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"});
        out.headers.push_back({"X-Content-Type-Options", "nosniff"});
        out.headers.push_back({"X-Frame-Options", "DENY"});
        out.headers.push_back({"Referrer-Policy", "no-referrer"});
        if (secure) out.headers.push_back({"Strict-Transport-Security", "max-age=31536000"});
        bool cached = false;
        for (auto &h : out.headers) cached = cached || h.first == "Cache-Control";
        if (!cached) out.headers.push_back({"Cache-Control", "no-store"});
        respond(std::move(out));
    };
    auto q = r.target.find('?');
    auto path = r.target.substr(0, q);
    auto query = q == std::string::npos ? std::string() : r.target.substr(q + 1);
    if (r.method == "GET" || r.method == "HEAD") {
        for (std::size_t i = 0; i < asset_count; ++i) {
            if (path != assets[i].path) continue;
            http_response out;
            out.content_type = assets[i].content_type;
            out.body.assign(reinterpret_cast<const char *>(assets[i].data), assets[i].size);
            out.headers.push_back({"Cache-Control", "no-cache"});
            return send(std::move(out));
        }
        if (path == "/metrics") {
            // Open to a scraper on this host; elsewhere only when configured, or to a
            // logged-in administrator.
            auto token = cookie_value(r.header("cookie"), cookie_name);
            if (!options_.metrics_public && !loopback(r.peer_ip) && !sessions_.find(token, now_ms()))
                return send(error_response(403, "/metrics is served to this host only (serve --console-metrics-public opens it)"));
            http_response out;
            out.content_type = "text/plain; version=0.0.4; charset=utf-8";
            out.body = server_.metrics();
            return send(std::move(out));
        }
        if (path == "/api/session") {
            auto who = require_session(r, send);
            if (!who) return;
            return send(json_response(200, {{"ok", true}, {"name", who->admin.name}, {"role", who->admin.role},
                                              {"csrf", who->s->csrf_token}, {"poll_ms", options_.poll_ms}}));
        }
    }
    if (r.method == "POST" && path == "/api/login") return login(r, send);
    if (r.method == "POST" && path == "/api/logout") {
        auto who = require_session(r, send);
        if (!who) return;
        if (!from_own_page(r, *who->s)) return send(error_response(403, "cross-site request refused"));
        sessions_.close(cookie_value(r.header("cookie"), cookie_name));
        auto out = json_response(200, {{"ok", true}});
        out.headers.push_back({"Set-Cookie", std::string(cookie_name) + "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"});
        return send(std::move(out));
    }
    if (path.rfind("/api/v1/", 0) == 0) return api(r, path, query, send);
    if (r.method != "GET" && r.method != "POST" && r.method != "HEAD") return send(error_response(405, "method not allowed"));
    send(error_response(404, "no such page"));
}

std::optional<web_console::logged_in> web_console::require_session(const http_request &r, const respond_fn &respond) {
    auto token = cookie_value(r.header("cookie"), cookie_name);
    auto s = sessions_.find(token, now_ms());
    if (!s) {
        respond(error_response(401, "log in first"));
        return std::nullopt;
    }
    // A revocation, or a new password, ends the administrator's sessions at once.
    auto admin = store_.admin_by_name(s->admin_name);
    if (!admin || admin->revoked_ms || admin->console_password.empty()) {
        sessions_.close_all_of(s->admin_name);
        respond(error_response(401, "this administrator can no longer log in"));
        return std::nullopt;
    }
    return logged_in{s, std::move(*admin)};
}

bool web_console::from_own_page(const http_request &r, const session &s) const {
    auto token = r.header("x-csrf-token");
    return same_origin(r) && token.size() == s.csrf_token.size() &&
           sodium_memcmp(token.data(), s.csrf_token.data(), token.size()) == 0;
}

void web_console::login(const http_request &r, respond_fn respond) {
    if (!same_origin(r)) return respond(error_response(403, "cross-site request refused"));
    json body;
    try {
        if (r.body.size() > 4096) fail(PD_E_INVALID, PD_CATEGORY_API, "too long");
        body = parse_object(r.body, "a login");
    } catch (const pd::error &) {
    }
    if (!body.is_object() || !body.value("name", json()).is_string() || !body.value("password", json()).is_string())
        return respond(error_response(400, "a login is {\"name\": ..., \"password\": ...}"));
    auto name = body["name"].get<std::string>();
    auto password = body["password"].get<std::string>();
    if (name.empty() || name.size() > 64 || password.size() > 1024) return respond(error_response(401, "wrong name or password"));
    auto now = now_ms();
    std::int64_t busy_ms = pending_logins_ >= options_.max_pending_logins ? 1000 : 0;
    auto retry = std::max(sessions_.retry_after_ms(r.peer_ip, name, now), busy_ms);
    if (retry > 0) {
        auto out = error_response(429, "too many login attempts: try again later");
        out.headers.push_back({"Retry-After", std::to_string((retry + 999) / 1000)});
        return respond(std::move(out));
    }
    auto admin = store_.admin_by_name(name);
    std::string hash = admin && !admin->revoked_ms ? admin->console_password : "";
    ++pending_logins_;
    asio::post(worker_, [this, alive = alive_, hash, password, name, ip = r.peer_ip, secure = r.secure,
                         role = admin ? admin->role : "", respond = std::move(respond)]() mutable {
        // An unknown name costs as long as a wrong password: the timing says nothing.
        static const std::string unknown = hash_password("no administrator has this password");
        bool ok = password_matches(hash.empty() ? unknown : hash, password) && !hash.empty();
        sodium_memzero(password.data(), password.size());
        asio::post(io_, [this, alive, ok, name, ip, secure, role, respond = std::move(respond)] {
            if (!*alive) return;
            --pending_logins_;
            auto done_ms = now_ms();
            if (!ok) {
                sessions_.failed(ip, name, done_ms);
                options_.audit("audit: console login as '" + name.substr(0, 64) + "' from " + ip + " refused");
                return respond(error_response(401, "wrong name or password"));
            }
            auto token = sessions_.open(name, ip, done_ms);
            auto s = sessions_.find(token, done_ms);
            options_.audit("audit: console login as '" + name + "' (" + role + ") from " + ip);
            auto out = json_response(200, {{"ok", true}, {"name", name}, {"role", role}, {"csrf", s->csrf_token}, {"poll_ms", options_.poll_ms}});
            out.headers.push_back({"Set-Cookie", std::string(cookie_name) + "=" + token + "; Path=/; HttpOnly; SameSite=Strict" +
                                                     (secure ? "; Secure" : "")});
            respond(std::move(out));
        });
    });
}

void web_console::api(const http_request &r, const std::string &path, const std::string &query, respond_fn respond) {
    auto op = operation_of(path);
    if (!op) return respond(error_response(404, "no such operation"));
    auto who = require_session(r, respond);
    if (!who) return;
    const auto &admin = who->admin;
    json request;
    if (r.method == "GET") {
        if (!read_only_operation(*op)) return respond(error_response(405, "'" + *op + "' changes the coordinator: POST it"));
        auto fields = query_fields(query);
        if (!fields) return respond(error_response(400, "malformed query string"));
        request = std::move(*fields);
    } else if (r.method == "POST") {
        if (!from_own_page(r, *who->s))
            return respond(error_response(403, "cross-site request refused: send the session's X-CSRF-Token"));
        try {
            request = r.body.empty() ? json::object() : parse_object(r.body, "the body");
        } catch (const pd::error &e) {
            return respond(error_response(400, e.what()));
        }
    } else {
        return respond(error_response(405, "method not allowed"));
    }
    if (admin.role != "admin" && !read_only_operation(*op))
        return respond(error_response(403, "administrator '" + admin.name + "' is a viewer: '" + *op + "' changes the coordinator"));
    bool as_csv = request.value("format", json()) == "csv" && csv_operation(*op);
    request.erase("format");
    request["op"] = *op;
    server::caller from;
    from.ip = r.peer_ip + " (console)";
    from.admin_key = admin.public_key;
    server_.handle_async(request, from, [respond = std::move(respond), as_csv, op = *op](json reply) {
        bool ok = reply.value("ok", false);
        if (ok && as_csv) {
            http_response out;
            out.content_type = "text/csv; charset=utf-8";
            out.body = reply.value("csv", std::string());
            auto file = op == "admin.devices.csv" ? "activated-devices.csv" : "topology.csv";
            out.headers.push_back({"Content-Disposition", std::string("attachment; filename=\"") + file + "\""});
            return respond(std::move(out));
        }
        auto error = reply.value("error", std::string());
        respond(json_response(ok ? 200 : error.rfind("unknown operation", 0) == 0 ? 404 : 400, reply));
    });
}

}  // namespace pd::coord::console
