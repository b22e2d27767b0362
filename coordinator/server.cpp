// The coordinator's network side (connections, bounds, the accept loop) and its answers to
// each operation. Who may run what is in server_trust.cpp.
#include "coordinator/server.h"

#include "content/publication.h"
#include "coordinator/request_fields.h"
#include "net/async_channel.h"
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

namespace {

constexpr std::size_t max_publication_bytes = 16 * 1024;  // a record with a 4 KiB origin and a 1 KiB name is ~5 KiB

// One content's publication (admin.publish, an admin.republish entry): metadata only.
content_record publication(const json &j, std::int64_t now_ms) {
    content_record c;
    c.id = content_id(j);
    c.name = text(j, "name");
    c.size = number(j, "size");
    c.block_count = number(j, "block_count");
    for (auto &o : strings(j, "origins")) c.origins += (c.origins.empty() ? "" : "\n") + o;
    c.published_ms = now_ms;
    // The publisher's record, when given: kept only if it is well formed, its signature
    // verifies under the key it names and it is about this very content. Whether that key
    // is trusted is each device's decision (trust.publisher_keys); the coordinator cannot
    // make a record, it holds no publisher key.
    auto record_hex = text(j, "publication", {}, 2 * max_publication_bytes);
    if (!record_hex.empty()) {
        auto record = from_hex(record_hex);
        if (!record) fail(PD_E_INVALID, PD_CATEGORY_API, "'publication' must be hex");
        auto p = content::publication::verify_self_signed(record->data(), record->size());
        if (to_hex(p.id.data(), p.id.size()) != c.id || p.size != c.size || p.name != c.name)
            fail(PD_E_INVALID, PD_CATEGORY_API, "the publication record is about another content (id, size or name differs)");
        c.publication = to_hex(record->data(), record->size());
    }
    return c;
}

// The address a device is placed by (its office) and reached at: where its connection
// comes from. A different claim is refused, not believed (server_options::trust_claimed_addresses
// aside).
std::string claimed_address(const json &request, const server::caller &from, bool trust_claims) {
    auto claim = text(request, "address");
    if (claim.empty() || claim == from.ip) return from.ip;
    if (trust_claims) return claim;
    fail(PD_E_INVALID, PD_CATEGORY_API, "'address' " + claim + " is not the address this device connects from (" + from.ip + ")");
}

void read_facts(const json &j, device_record &d) {
    auto it = j.find("facts");
    if (it == j.end()) return;
    if (!it->is_object()) fail(PD_E_INVALID, PD_CATEGORY_API, "'facts' must be an object");
    d.free_bytes = number(*it, "free_bytes");
    d.usable_free_bytes = number(*it, "usable_free_bytes");
    d.uptime_seconds = number(*it, "uptime_seconds");
    d.chassis = static_cast<int>(number(*it, "chassis") & 3);
    d.os_type = static_cast<int>(number(*it, "os_type") % 3);
}

}  // namespace

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

    void start() {
        auto self = shared_from_this();
        arm(owner_.options_.handshake_timeout_ms);
        channel_->on_write_error([self](const error *) { self->close(); });
        channel_->handshake([self](const error *why) {
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
    : io_(io), registry_(reg), store_(store), options_(std::move(options)), acceptor_(io), accept_timer_(io) {
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
    if (e.is_name) fail(PD_E_INVALID, PD_CATEGORY_NET, "listen address '" + address + "' must be an IP address");
    auto ip = asio::ip::make_address(e.host);
    auto port = e.port;
    error_code ec;
    tcp::endpoint ep(ip, static_cast<unsigned short>(port));
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep, ec);
    if (ec) fail(PD_E_IO, PD_CATEGORY_NET, "cannot listen on " + address + ": " + ec.message());
    acceptor_.listen();
    accept_next();
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
        if (op == "register") {
            device_record d;
            d.id = required(request, "device_id");
            d.name = text(request, "name");
            d.version = text(request, "version");
            d.address = claimed_address(request, from, options_.trust_claimed_addresses);
            d.listen = text(request, "listen");
            // An agent listening on the wildcard is reached at the address it came from.
            if (d.listen.rfind("0.0.0.0:", 0) == 0) d.listen = d.address + d.listen.substr(7);
            if (d.listen.rfind("[::]:", 0) == 0) d.listen = "[" + d.address + "]" + d.listen.substr(4);
            // Handed to other agents as a peer: host:port, and at the address the device
            // comes from — a member must not point others at a host of its choosing.
            if (!d.listen.empty()) {
                auto listen = require_endpoint(d.listen, "'listen'");
                if (listen.host != d.address)
                    fail(PD_E_INVALID, PD_CATEGORY_API,
                         "'listen' " + d.listen + " is not at the address this device connects from (" + d.address +
                             "): listen on that address or on 0.0.0.0");
            }
            d.preferred = request.value("preferred", false);
            read_facts(request, d);
            auto office = registry_.register_device(d, now);
            return {{"ok", true}, {"server_id", options_.server_id}, {"office", office}, {"heartbeat_ms", options_.heartbeat_ms},
                    {"address", d.address}, {"wan_budget", registry_.wan_budget(office)},
                    {"revoked_devices", revoked_keys_.size()}};
        }
        if (op == "heartbeat") {
            device_record facts;
            read_facts(request, facts);
            facts.address = claimed_address(request, from, options_.trust_claimed_addresses);
            auto id = required(request, "device_id");
            if (!registry_.devices().count(id))
                return {{"ok", false}, {"error", "unknown device: register again"}, {"unregistered", true}};
            auto office = registry_.heartbeat(id, facts, now);
            return {{"ok", true}, {"office", office}, {"wan_budget", registry_.wan_budget(office)},
                    {"revoked_devices", revoked_keys_.size()}};
        }
        if (op == "revoked_devices") {
            // The revoked devices' keys from index `since` on (register and heartbeat replies
            // say how many there are), a page at a time: the agent's peers refuse them.
            auto since = std::min<std::uint64_t>(number(request, "since"), revoked_keys_.size());
            auto end = std::min<std::uint64_t>(since + max_revoked_per_reply, revoked_keys_.size());
            return {{"ok", true}, {"since", since}, {"total", revoked_keys_.size()},
                    {"keys", std::vector<std::string>(revoked_keys_.begin() + since, revoked_keys_.begin() + end)}};
        }
        if (op == "holding") {
            registry_.report_holding({required(request, "device_id"), content_id(request), number(request, "verified_blocks"),
                                      request.value("complete", false)});
            return {{"ok", true}};
        }
        if (op == "sources") {
            auto a = registry_.sources(required(request, "device_id"), content_id(request), now);
            return {{"ok", true}, {"role", a.role}, {"office", a.office}, {"office_type", type_name(a.type)},
                    {"rvp", a.rvp}, {"origin_allowed", a.origin_allowed}, {"serve", a.serve},
                    {"lan", a.lan_peers}, {"wan", a.wan_peers}, {"device_keys", a.device_keys}};
        }
        if (op == "publication" || op == "admin.publication") {
            // What the publisher signed for a content, for a device that has the manifest
            // but not the record: it checks the record itself (trust.publisher_keys).
            auto known = registry_.contents().find(content_id(request));
            if (known == registry_.contents().end() || known->second.publication.empty())
                return {{"ok", false}, {"error", "no publication record is stored for this content"}};
            return {{"ok", true}, {"publication", known->second.publication}};
        }
        if (op == "job_stats") {
            auto bytes = request.value("bytes", json::object());
            registry_.add_stats(required(request, "device_id"), number(bytes, "origin"), number(bytes, "wan"), number(bytes, "lan"));
            return {{"ok", true}};
        }
        if (op == "admin.health") {
            std::size_t online = 0;
            for (auto &[id, d] : registry_.devices()) online += registry_.online(d, now);
            auto db = store_.check();
            std::size_t unidentified = 0;
            for (auto &[id, d] : registry_.devices()) unidentified += !identities_.count(id);
            return {{"ok", db == "ok"}, {"server_id", options_.server_id}, {"version", PD_VERSION_STRING},
                    {"devices", registry_.device_count()}, {"online", online}, {"unidentified", unidentified},
                    {"offices", registry_.office_count()},
                    {"contents", registry_.contents().size()}, {"database", db},
                    {"topology", registry_.topology_uploaded() ? "uploaded" : "automatic"}};
        }
        if (op == "admin.server_id") return {{"ok", true}, {"server_id", options_.server_id}};
        if (op == "admin.publish") {
            registry_.put_content(publication(request, now));
            return {{"ok", true}};
        }
        if (op == "admin.republish") {
            // Many publications at once, checked first and stored in one transaction: a
            // coordinator rebuilt on a new database, or every content moved to new origins.
            auto it = request.find("contents");
            if (it == request.end() || !it->is_array() || it->empty())
                fail(PD_E_INVALID, PD_CATEGORY_API, "'contents' must be a non-empty array");
            std::vector<content_record> records;
            json report = json::array();
            std::size_t added = 0, updated = 0, unchanged = 0;
            std::set<std::string> seen;
            for (std::size_t i = 0; i < it->size(); ++i) {
                const json &entry = (*it)[i];
                content_record c;
                try {
                    if (!entry.is_object()) fail(PD_E_INVALID, PD_CATEGORY_API, "must be an object");
                    c = publication(entry, now);
                    if (!seen.insert(c.id).second) fail(PD_E_INVALID, PD_CATEGORY_API, "content " + c.id + " is listed twice");
                } catch (const error &e) {
                    fail(e.code(), e.category(), "contents[" + std::to_string(i) + "]: " + e.what());
                }
                bool keep_origins = !entry.contains("origins");
                bool keep_record = !entry.contains("publication");
                auto known = registry_.contents().find(c.id);
                std::string status = "added";
                if (known != registry_.contents().end()) {
                    const auto &k = known->second;
                    // The id is the hash of the content: the same id with another size is a
                    // damaged manifest, not a new version.
                    if (k.size != c.size || k.block_count != c.block_count)
                        fail(PD_E_INVALID, PD_CATEGORY_API, "contents[" + std::to_string(i) + "]: content " + c.id +
                                                                " is published with another size or block count");
                    if (keep_origins) c.origins = k.origins;
                    if (keep_record) c.publication = k.publication;
                    status = k.name == c.name && k.origins == c.origins && k.publication == c.publication ? "unchanged" : "updated";
                }
                (status == "added" ? added : status == "updated" ? updated : unchanged) += 1;
                report.push_back({{"content", c.id}, {"name", c.name}, {"status", status}});
                records.push_back(std::move(c));
            }
            registry_.put_contents(records);
            return {{"ok", true}, {"added", added}, {"updated", updated}, {"unchanged", unchanged}, {"contents", report}};
        }
        if (op == "admin.contents") {
            json list = json::array();
            for (auto &[id, c] : registry_.contents())
                list.push_back({{"content", id}, {"name", c.name}, {"size", c.size}, {"published_ms", c.published_ms},
                                {"signed", !c.publication.empty()}});
            return {{"ok", true}, {"contents", list}};
        }
        if (op == "admin.topology.import") return apply_topology(check_topology(request));
        if (op == "admin.topology.export")
            return {{"ok", true}, {"csv", registry_.export_topology()}, {"uploaded", registry_.topology_uploaded()}};
        if (op == "admin.groups.set") {
            registry_.put_group({required(request, "name"), strings(request, "devices"), strings(request, "contents")});
            return {{"ok", true}};
        }
        if (op == "admin.groups.remove") {
            registry_.remove_group(required(request, "name"));
            return {{"ok", true}};
        }
        if (op == "admin.groups.list") {
            json list = json::array();
            for (auto &g : store_.groups()) list.push_back({{"name", g.name}, {"devices", g.devices}, {"contents", g.contents}});
            return {{"ok", true}, {"groups", list}};
        }
        if (op == "admin.devices.csv") return {{"ok", true}, {"csv", registry_.activated_devices_csv(now)}};
        if (op == "admin.stats") {
            json list = json::array();
            for (auto &s : store_.stats())
                list.push_back({{"office", s.office}, {"origin_bytes", s.origin_bytes}, {"wan_bytes", s.wan_bytes}, {"lan_bytes", s.lan_bytes}});
            return {{"ok", true}, {"offices", list}};
        }
        if (op == "admin.devices.revoke") {
            // The device drops out at once: offline (no device is sent to it as a peer), its
            // connections closed, its key refused from now on. The others are untouched.
            auto id = required(request, "device_id");
            bool revoked = store_.revoke_device(id, now);
            auto &identity = identities_[id];
            identity.device_id = id;
            if (!identity.revoked_ms) {
                identity.revoked_ms = now;
                if (!identity.public_key.empty()) revoked_keys_.push_back(identity.public_key);
            }
            registry_.take_offline(id);
            registry_.set_device_key(id, "");
            auto all = connections_;
            for (auto &c : all)
                if (c->device_id() == id) c->close();
            return {{"ok", true}, {"revoked", revoked}};
        }
        if (op == "admin.admins.list") {
            json list = json::array();
            for (auto &a : store_.admins())
                list.push_back({{"name", a.name}, {"role", a.role}, {"public_key", a.public_key}, {"added_ms", a.added_ms},
                                {"revoked_ms", a.revoked_ms}});
            return {{"ok", true}, {"admins", list}};
        }
        if (op == "admin.rvp") return {{"ok", true}, {"device_id", registry_.rvp(required(request, "office"), now)}};
        return {{"ok", false}, {"error", "unknown operation '" + op + "'"}};
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
