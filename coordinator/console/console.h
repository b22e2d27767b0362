// The administrator's web console (docs/console.md): pages and a JSON API served by
// pd-coordinator on its own port. The API is the admin protocol's operations — each runs
// through server::handle_async as the logged-in administrator, so roles, revocation and the
// audit line are the protocol's own — plus login, logout and /metrics.
//
// Runs on the server's network thread (it reads the registry through the server); password
// hashing, the one slow step, runs on the console's worker.
#pragma once

#include "coordinator/console/http_server.h"
#include "coordinator/console/sessions.h"
#include "coordinator/console/tls.h"
#include "coordinator/server.h"
#include "coordinator/store.h"

#include <boost/asio/thread_pool.hpp>

#include <memory>
#include <optional>
#include <string>

namespace pd::coord::console {

struct console_options {
    std::string listen;                   // HOST:PORT
    std::optional<tls_identity> tls;      // HTTPS with it; nullopt: plain HTTP, loopback only
    bool metrics_public = false;          // /metrics without a login from any address
    std::int64_t poll_ms = 2000;          // how often the pages refresh, told to them
    session_limits sessions;
    http_limits http;
    // How many logins may wait for the password check at once; more get 429.
    std::size_t max_pending_logins = 8;
    // Where a line per login goes (operations are audited by the server).
    std::function<void(const std::string &)> audit;
};

class web_console {
public:
    // Throws pd::error: plain HTTP on an address that is not loopback, a bad TLS identity.
    web_console(boost::asio::io_context &io, server &srv, coordinator_store &store, console_options options);
    ~web_console();
    void listen();
    std::string bound_address() const;
    // "https://HOST:PORT/" (or http://).
    std::string url() const;
    void stop();

private:
    using respond_fn = std::function<void(http_response)>;
    void handle(const http_request &r, respond_fn respond);
    void login(const http_request &r, respond_fn respond);
    void api(const http_request &r, const std::string &path, const std::string &query, respond_fn respond);
    // A request's session and its administrator, as the database says now.
    struct logged_in {
        const session *s;
        admin_record admin;
    };
    // The request's session, or nullopt (and `respond` already called with 401) when it has
    // none or its administrator may no longer log in.
    std::optional<logged_in> require_session(const http_request &r, const respond_fn &respond);
    bool same_origin(const http_request &r) const;
    // Whether a change comes from the console's own page: its origin and the session's CSRF
    // token (compared in constant time).
    bool from_own_page(const http_request &r, const session &s) const;

    boost::asio::io_context &io_;
    server &server_;
    coordinator_store &store_;
    console_options options_;
    sessions sessions_;
    std::unique_ptr<http_server> http_;
    boost::asio::thread_pool worker_{1};
    std::size_t pending_logins_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for work finishing after the console is gone
};

}  // namespace pd::coord::console
