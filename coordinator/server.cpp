// The coordinator's network side (connections, bounds, the accept loop) and its answers to
// each operation. Who may run what is in server_trust.cpp.
#include "coordinator/server.h"

#include "coordinator/request_fields.h"
#include "net/async_channel.h"
#include "net/resolve.h"
#include "util/endpoint.h"
#include "util/error.h"
#include "util/hex.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <tuple>

namespace pd::coord {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

using namespace fields;


// One agent or admin connection: secure channel, then request -> reply in order.
//
// Bounded everywhere a client could hold the server: the handshake must end within
// handshake_timeout_ms, a connection idle for idle_timeout_ms is closed, an address may have
// only max_handshaking_per_address connections that have not authenticated yet, and the next
// request is read only once the replies queued for this connection drained below
// max_queued_bytes.
class server::connection : public std::enable_shared_from_this<connection> {
public:
    connection(server &owner, tcp::socket socket) : owner_(owner), timer_(owner.io_) {
        error_code ec;
        auto ep = socket.remote_endpoint(ec);
        from_.ip = ec ? "" : ep.address().to_string();
        if (from_.ip.rfind("::ffff:", 0) == 0) from_.ip = from_.ip.substr(7);
        // Administrators hold no fleet key: they prove their own key inside the channel.
        channel_ = std::make_shared<net::async_channel>(std::move(socket), net::role::server, owner.options_.fleet_key.data(),
                                                        net::keyless::admitted);
    }

    const std::string &peer_ip() const { return from_.ip; }
    const std::string &device_id() const { return from_.device_id; }
    bool authenticated() const { return authenticated_; }
    bool fleet_member() const { return from_.fleet_member; }

    void start() {
        auto self = shared_from_this();
        arm(owner_.options_.handshake_timeout_ms);
        channel_->on_write_error([self](const error *) { self->close(); });
        channel_->handshake([self](const error *why) {
            if (why && why->code() == PD_E_AUTH && !self->closed_) self->owner_.refused_handshake(self->from_.ip, why->what());
            if (why || self->closed_) return self->close();
            self->from_.fleet_member = self->channel_->fleet_key_proven();
            // A keyless connection has proven nothing yet: it stays under the handshake's
            // deadline and per-address bound until its "auth" succeeds.
            if (self->from_.fleet_member) self->admit();
            self->read_next();
        });
    }

    void close() {
        if (closed_) return;
        closed_ = true;
        timer_.cancel();
        channel_->close();
        auto self = shared_from_this();
        asio::post(owner_.io_, [self] { self->owner_.connections_.erase(self); });
    }

private:
    static constexpr std::size_t max_queued_bytes = 4u << 20;
    static constexpr std::size_t max_unauthenticated_record = 4096;

    void admit() {
        authenticated_ = true;
        arm(owner_.options_.idle_timeout_ms);
    }

    void arm(std::int64_t ms) {
        timer_.expires_after(std::chrono::milliseconds(ms));
        timer_.async_wait([weak = weak_from_this()](const error_code &ec) {
            if (auto self = weak.lock(); self && !ec) self->close();
        });
    }

    void read_next() {
        channel_->receive([self = shared_from_this()](const error *why, net::bytes record) {
            if (self->closed_) return;
            if (why) return self->close();
            if (self->authenticated_) self->arm(self->owner_.options_.idle_timeout_ms);
            // Before it has proven anything, a connection gets one small record: an "auth"
            // fits in 1 KiB, and nobody without a key makes the server buffer 64 MiB parts.
            if (!self->authenticated_ && record.size() > max_unauthenticated_record) {
                self->reply({{"ok", false}, {"error", "authenticate first: this connection holds no fleet key (op 'auth')"}});
                return self->close();
            }
            std::optional<json> request;
            try {
                request = self->in_.feed(record);
            } catch (const std::exception &e) {
                self->reply({{"ok", false}, {"error", e.what()}});
                return self->close();  // the framing is lost: nothing after this can be trusted
            }
            if (!request && !self->authenticated_) {
                self->reply({{"ok", false}, {"error", "authenticate first: a message in parts needs a key"}});
                return self->close();
            }
            if (!request) return self->read_after_drain();
            if (request->is_object() && request->value("op", json()) == "auth") {
                auto answer = self->owner_.authenticate(*request, self->channel_->transcript(), self->from_.ip, self->from_.admin_key);
                self->reply(answer);
                if (self->from_.admin_key.empty()) return self->close();  // one try per connection
                self->admit();
                return self->read_after_drain();
            }
            if (request->is_object() && request->value("op", json()) == "identify") {
                auto answer = self->owner_.identify(*request, self->channel_->transcript(), self->from_, self->from_.device_id);
                self->reply(answer);
                if (self->from_.device_id.empty()) return self->close();  // one try per connection
                return self->read_after_drain();
            }
            if (!self->authenticated_) {
                self->reply({{"ok", false}, {"error", "authenticate first: this connection holds no fleet key (op 'auth')"}});
                return self->close();
            }
            // The next request is read once this one is answered: replies stay in order.
            self->owner_.handle_async(*request, self->from_, [self](json answer) {
                if (self->closed_) return;
                self->reply(answer);
                self->read_after_drain();
            });
        });
    }

    void read_after_drain() {
        channel_->when_drained(max_queued_bytes, [self = shared_from_this()] {
            if (!self->closed_) self->read_next();
        });
    }

    // A reply that cannot be framed (over the message limit) becomes an error reply.
    void reply(const json &j) {
        std::vector<net::bytes> records;
        try {
            records = frame_message(j);
        } catch (const std::exception &e) {
            records = frame_message(json{{"ok", false}, {"error", std::string("reply not sent: ") + e.what()}});
        }
        for (auto &r : records) channel_->send(r);
    }

    server &owner_;
    std::shared_ptr<net::async_channel> channel_;
    asio::steady_timer timer_;
    message_assembler in_;
    caller from_;
    bool closed_ = false, authenticated_ = false;
};

server::server(asio::io_context &io, registry &reg, coordinator_store &store, server_options options)
    : io_(io), registry_(reg), store_(store), options_(std::move(options)), acceptor_(io), accept_timer_(io),
      retire_timer_(io), history_timer_(io) {
    if (!options_.audit) options_.audit = [](const std::string &line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    std::vector<device_identity> revoked;
    for (auto &d : store_.device_identities()) {
        identities_[d.device_id] = d;
        if (!d.revoked_ms) registry_.set_device_key(d.device_id, d.public_key);
        else if (!d.public_key.empty()) revoked.push_back(d);
    }
    std::sort(revoked.begin(), revoked.end(), [](const device_identity &a, const device_identity &b) {
        return std::tie(a.revoked_ms, a.device_id) < std::tie(b.revoked_ms, b.device_id);
    });
    for (auto &d : revoked) revoked_keys_.push_back(d.public_key);
    catalogue_.load();
    rollout_.load();
    prestaging_.load();
    if (!options_.now_ms)
        options_.now_ms = [] {
            using namespace std::chrono;
            return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
        };
}

server::~server() {
    stop();
    worker_.stop();
    worker_.join();
}

void server::listen(const std::string &address) {
    auto e = require_endpoint(address, "listen address", port_rule::listen);
    auto ip = net::bind_address(e, "listen address");
    auto port = e.port;
    error_code ec;
    tcp::endpoint ep(ip, static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep, ec);
    if (ec) fail(PD_E_IO, PD_CATEGORY_NET, "cannot listen on " + address + ": " + ec.message());
    acceptor_.listen();
    accept_next();
    if (options_.retire_absent_ms > 0) retire_absent_devices();
    flush_history_every_minute();
}

// The devices' history (online time, bytes served) grows with every heartbeat, in memory;
// it reaches the database once a minute and when the server stops.
void server::flush_history_every_minute() {
    history_timer_.expires_after(std::chrono::minutes(1));
    history_timer_.async_wait([this](const error_code &ec) {
        if (ec) return;
        try {
            registry_.flush_history();
        } catch (const std::exception &e) {
            options_.audit(std::string("devices' history not saved: ") + e.what());
        }
        flush_history_every_minute();
    });
}

// Automatic retirement: checked a few times per absence window, at most hourly.
void server::retire_absent_devices() {
    for (auto &id : registry_.retire_absent(options_.now_ms() - options_.retire_absent_ms))
        options_.audit("retired device " + id + ": absent for longer than " + std::to_string(options_.retire_absent_ms / 1000) + " s");
    auto every = std::clamp<std::int64_t>(options_.retire_absent_ms / 4, 1000, 3600 * 1000);
    retire_timer_.expires_after(std::chrono::milliseconds(every));
    retire_timer_.async_wait([this](const error_code &ec) {
        if (!ec) retire_absent_devices();
    });
}

std::string server::bound_address() const {
    error_code ec;
    auto ep = acceptor_.local_endpoint(ec);
    return ec ? "" : ep.address().to_string() + ":" + std::to_string(ep.port());
}

void server::stop() {
    error_code ec;
    acceptor_.close(ec);
    accept_timer_.cancel();
    retire_timer_.cancel();
    history_timer_.cancel();
    try {
        registry_.flush_history();
    } catch (const std::exception &) {
        // The database is gone: history since the last minute is lost, nothing else.
    }
    auto all = connections_;
    for (auto &c : all) c->close();
}

void server::accept_next() {
    acceptor_.async_accept([this](const error_code &ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        if (ec) {
            // Out of descriptors (EMFILE, ENFILE) or memory: retrying at once spins a core
            // and starves the connections being served. Wait, then try again.
            accept_timer_.expires_after(std::chrono::milliseconds(options_.accept_backoff_ms));
            accept_timer_.async_wait([this](const error_code &e) {
                if (!e) accept_next();
            });
            return;
        }
        if (connections_.size() < options_.max_connections && handshaking_from(socket) < options_.max_handshaking_per_address) {
            error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            auto c = std::make_shared<connection>(*this, std::move(socket));
            connections_.insert(c);
            c->start();
        }
        accept_next();
    });
}

std::size_t server::handshaking_from(const tcp::socket &socket) const {
    error_code ec;
    auto ep = socket.remote_endpoint(ec);
    if (ec) return 0;
    auto ip = ep.address().to_string();
    if (ip.rfind("::ffff:", 0) == 0) ip = ip.substr(7);
    std::size_t n = 0;
    for (auto &c : connections_) n += !c->authenticated() && c->peer_ip() == ip;
    return n;
}

// admin.topology.import in two steps: the check (any thread: it is the costly part) and the
// apply (the network thread, which owns the registry).
struct server::topology_check {
    std::optional<topology> parsed;
    std::string csv;
    json refusal;  // why it was refused, when `parsed` is empty
};

server::topology_check server::check_topology(const json &request) {
    topology_check c;
    try {
        c.csv = text(request, "csv", {}, max_message_bytes);
        if (c.csv.empty()) fail(PD_E_INVALID, PD_CATEGORY_API, "'csv' is required");
        c.parsed.emplace(topology::parse_csv(c.csv));
    } catch (const topology_error &e) {
        c.refusal = {{"ok", false}, {"error", e.what()}, {"problems", e.problems()}};
    } catch (const std::exception &e) {
        c.refusal = {{"ok", false}, {"error", e.what()}};
    }
    return c;
}

json server::apply_topology(topology_check c) {
    if (!c.parsed) return c.refusal;
    registry_.import_topology(std::move(*c.parsed), c.csv);
    return {{"ok", true}, {"offices", registry_.office_count()}};
}

prestaging_options server::prestaging_settings() const {
    prestaging_options o;
    o.wave_width = std::max<std::size_t>(1, options_.wave_width);
    o.level_delay_ms = 2 * options_.heartbeat_ms;
    o.note = [this](const std::string &line) { options_.audit(line); };  // set in the constructor's body
    return o;
}

json server::import_topology(const json &request) { return apply_topology(check_topology(request)); }

void server::refused_handshake(const std::string &ip, const std::string &why) {
    constexpr std::int64_t every_ms = 60000;
    constexpr std::size_t max_addresses = 4096;
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
    if (refusals_.size() >= max_addresses && !refusals_.count(ip)) refusals_.clear();  // forget, never grow
    auto &r = refusals_[ip];
    ++counters_.refused_handshakes;
    ++r.attempts;
    r.last_ms = options_.now_ms();
    if (r.logged_ms && now - r.logged_ms < every_ms) {
        ++r.unlogged;
        return;
    }
    std::string more = r.unlogged ? " (" + std::to_string(r.unlogged) + " more from there since the last line)" : "";
    options_.audit("audit: secure channel refused from " + ip + ": " + why + more);
    r.logged_ms = now;
    r.unlogged = 0;
}

void server::close_connections_of(const std::string &device_id) {
    auto all = connections_;
    for (auto &c : all)
        if (c->device_id() == device_id) c->close();
}

std::size_t server::close_agent_connections() {
    auto all = connections_;
    std::size_t closed = 0;
    for (auto &c : all)
        if (c->fleet_member()) {
            c->close();
            ++closed;
        }
    return closed;
}

void server::handle_async(const json &request, const caller &from, std::function<void(json)> done) {
    auto op = request.find("op");
    if (op == request.end() || *op != "admin.topology.import") return done(handle(request, from));
    std::string who;
    if (auto refusal = authorise(request, from, who)) {
        audit(who, from, request, *refusal);
        return done(*refusal);
    }
    asio::post(worker_, [this, request, from, who, done = std::move(done)]() mutable {
        auto checked = std::make_shared<topology_check>(check_topology(request));
        asio::post(io_, [this, checked, request, from, who, done = std::move(done)] {
            json reply;
            try {
                reply = apply_topology(std::move(*checked));
            } catch (const std::exception &e) {  // the store's write
                reply = {{"ok", false}, {"error", e.what()}};
            }
            audit(who, from, request, reply);
            done(std::move(reply));
        });
    });
}

json server::handle(const json &request, const caller &from) {
    std::string who;
    auto refusal = authorise(request, from, who);
    json reply = refusal ? *refusal : answer(request, from);
    audit(who, from, request, reply);
    return reply;
}

json server::answer(const json &request, const caller &from) {
    try {
        auto op = required(request, "op");
        auto now = options_.now_ms();
        auto reply = op.rfind("admin.", 0) == 0 ? answer_admin(op, request, now) : answer_agent(op, request, from, now);
        return reply ? *reply : json{{"ok", false}, {"error", "unknown operation '" + op + "'"}};
    } catch (const error &e) {
        return {{"ok", false}, {"error", e.what()}};
    } catch (const json::exception &e) {
        return {{"ok", false}, {"error", std::string("malformed request: ") + e.what()}};
    } catch (const std::exception &e) {
        // SQLite and anything else: one failed request, never the server.
        return {{"ok", false}, {"error", std::string("request failed: ") + e.what()}};
    }
}

}  // namespace pd::coord
