// The coordinator's network side: accepts agents (the secure channel under the fleet key)
// and administrators (a keyless channel, then an Ed25519 proof over its transcript), and
// answers the JSON operations of docs/coordinator.md from one network thread that owns the
// registry. Holds metadata only: content bytes never pass through it.
#pragma once

#include "coordinator_client/protocol.h"
#include "coordinator/catalogue.h"
#include "coordinator/prestaging.h"
#include "coordinator/registry.h"
#include "coordinator/rollout.h"
#include "coordinator/version_range.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>

namespace pd::coord {

struct server_options {
    std::string server_id;
    std::array<std::uint8_t, 32> fleet_key{};
    // The coordinator's Ed25519 secret key (libsodium's 64 bytes): it proves the coordinator
    // to administrators, whose credentials name its public key.
    std::array<std::uint8_t, 64> signing_key{};
    // Where a line per admin operation and per refused "auth" goes (default: standard error).
    std::function<void(const std::string &)> audit;
    // Take a device's claimed "address" instead of the one its connection comes from. Only for
    // load generators that pose as many devices from one host (bench_coordinator); with it any
    // fleet member can place itself in any office.
    bool trust_claimed_addresses = false;
    // Refuse agent operations from a device that did not prove its own key ("identify"). Off
    // only while a fleet upgrades from 0.4 (docs/coordinator.md "Devices").
    bool require_device_identity = true;
    std::int64_t heartbeat_ms = 5000;  // told to agents; devices are online for 3 heartbeats
    version_range agent_versions;      // the health check flags agents outside it
    std::size_t wave_width = 8;  // offices pulling one content from the same office at once
    // Devices absent this long are retired (forgotten, docs/coordinator.md "Devices"); 0: never.
    std::int64_t retire_absent_ms = 0;
    std::size_t max_connections = 20000;
    std::int64_t handshake_timeout_ms = 10000;  // a connection must authenticate this soon
    std::int64_t idle_timeout_ms = 300000;      // a connection silent this long is closed
    std::size_t max_handshaking_per_address = 16;  // unauthenticated connections per IP
    std::int64_t accept_backoff_ms = 100;       // when accept fails (out of descriptors)
    std::function<std::int64_t()> now_ms;  // injectable clock (tests)
};

class server {
public:
    server(boost::asio::io_context &io, registry &reg, coordinator_store &store, server_options options);
    ~server();
    // Binds "ip:port" (port 0: any) and starts accepting. Throws pd::error.
    void listen(const std::string &address);
    std::string bound_address() const;
    void stop();
    // Who sent a request: what its connection proved.
    struct caller {
        std::string ip;             // the address the connection comes from
        bool fleet_member = false;  // the channel proved the fleet key
        std::string admin_key;      // hex Ed25519 key an "auth" proved on this connection, or ""
        std::string device_id;      // the device an "identify" proved on this connection, or ""
    };
    // One request, as the network side would answer it (also used by tests). Agent
    // operations need a fleet member, "admin.*" ones an administrator (a viewer: read-only
    // ones), whose role is looked up now, so a revocation holds at once.
    json handle(const json &request, const caller &from);
    // The same, answered through `done` on the network thread: at once for most operations;
    // a topology import is parsed and checked on the worker thread first, so a large CSV
    // never delays another connection's heartbeat.
    void handle_async(const json &request, const caller &from, std::function<void(json)> done);
    // The "auth" operation: checks the administrator's signature over `transcript`, and
    // answers with the coordinator's own. Sets `admin_key` on success.
    json authenticate(const json &request, const std::array<std::uint8_t, 32> &transcript, const std::string &ip,
                      std::string &admin_key);
    // The "identify" operation: checks the device's signature over `transcript`, enrolls the
    // key on a device's first identify, and requires it from then on. Sets `device_id`.
    json identify(const json &request, const std::array<std::uint8_t, 32> &transcript, const caller &from,
                  std::string &device_id);
    // The Prometheus text exposition of the coordinator's counters and gauges
    // (docs/console.md "Metrics").
    std::string metrics();
    // Counted since the process started, for /metrics.
    struct counters {
        std::uint64_t registrations = 0, heartbeats = 0, lookups = 0, catalogue_lookups = 0, job_reports = 0,
                      admin_operations = 0, refused_handshakes = 0;
    };

private:
    class connection;
    struct topology_check;
    json answer(const json &request, const caller &from);
    // The operations of each kind (server_agent.cpp, server_admin.cpp); nullopt: no such one.
    std::optional<json> answer_agent(const std::string &op, const json &request, const caller &from, std::int64_t now);
    std::optional<json> answer_admin(const std::string &op, const json &request, std::int64_t now);
    json publication_record(const std::string &content_id) const;
    std::string office_type_of(const std::string &office) const;
    // A refusal when `from` may not run the request's operation; `who` names the
    // administrator for the audit line.
    std::optional<json> authorise(const json &request, const caller &from, std::string &who);
    void audit(const std::string &who, const caller &from, const json &request, const json &reply);
    static topology_check check_topology(const json &request);
    json apply_topology(topology_check checked);
    // Checks and applies a topology on this thread (handle(); handle_async checks it on the worker).
    json import_topology(const json &request);
    void close_connections_of(const std::string &device_id);
    // Closes every connection that proved the fleet key (a new key: each must prove it); how many.
    std::size_t close_agent_connections();
    // An audit line for a secure channel that failed to authenticate (a wrong fleet key, a
    // forged FINISH): at most one a minute per address, with the count of those not logged,
    // so a scanner cannot fill the log.
    void refused_handshake(const std::string &ip, const std::string &why);
    struct refusal_count {
        std::int64_t logged_ms = 0;
        unsigned unlogged = 0;
        std::uint64_t attempts = 0;
        std::int64_t last_ms = 0;  // wall clock, for the health check's key mismatches
    };
    // Addresses whose secure channel failed lately: agents still on an old fleet key (or
    // scanners), for the health check.
    json key_mismatches(std::int64_t now) const;
    // The console's office tree and rollout pages (admin.offices, admin.rollouts).
    json offices_report(const std::string &listed_office, std::int64_t now);
    json rollouts_report(const std::string &content, std::size_t limit, std::int64_t now);
    // Verified bytes a device gained of a content since its last report, counted to its office's rate.
    void count_received(const std::string &device_id, const std::string &content, const holding &now_held, std::int64_t now);
    counters counters_;
    std::string db_check_;  // the health check's last quick_check, and when (network thread)
    std::int64_t db_checked_ms_ = 0;
    std::unordered_map<std::string, refusal_count> refusals_;  // network thread; bounded
    void accept_next();
    // Connections from the socket's address that have not authenticated yet.
    std::size_t handshaking_from(const boost::asio::ip::tcp::socket &socket) const;

    boost::asio::io_context &io_;
    registry &registry_;
    coordinator_store &store_;
    server_options options_;
    catalogue catalogue_{store_};
    rollout rollout_{store_, 3 * options_.heartbeat_ms};
    prestaging prestaging_{store_, registry_, catalogue_, rollout_, prestaging_settings()};
    prestaging_options prestaging_settings() const;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer accept_timer_;
    boost::asio::steady_timer retire_timer_;
    void retire_absent_devices();
    boost::asio::steady_timer history_timer_;
    void flush_history_every_minute();
    std::set<std::shared_ptr<connection>> connections_;
    boost::asio::thread_pool worker_{1};  // CPU-heavy checks (topology imports)
    // Every device identity (network thread); this process is the database's only writer.
    std::unordered_map<std::string, device_identity> identities_;
    // The keys of revoked devices that had enrolled one, in revocation order: agents fetch the
    // ones they lack ("revoked_devices") and their peers refuse them (network thread).
    std::vector<std::string> revoked_keys_;
};

}  // namespace pd::coord
