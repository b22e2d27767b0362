// The coordinator's durable state behind an interface, so a PostgreSQL store can replace
// SQLite for large fleets without touching the server. Metadata only: devices, contents
// (id, size, origins — never the bytes), who holds what, assignment groups, the topology,
// per-office statistics and the server's identity. The server keeps its working set in
// memory and writes through; a restart reloads it from here.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace pd::coord {

struct device_record {
    std::string id;       // the agent's stable device id
    std::string name;     // host name, for reports
    std::string address;  // the address it registered from (office lookup)
    std::string listen;   // its peer endpoint "ip:port" ("" when it serves nothing)
    std::string version;
    std::uint64_t free_bytes = 0, usable_free_bytes = 0, uptime_seconds = 0;
    int chassis = 0, os_type = 0;
    bool preferred = false;  // the device's configured override: always a preferred device
    std::int64_t registered_ms = 0, last_seen_ms = 0;
    // Its history (docs/hierarchy.md "Election"): time online since it registered, and bytes
    // it served to peers.
    std::int64_t online_ms = 0;
    std::uint64_t served_bytes = 0;
    // Not stored: the bytes_served figure of the device's current session, as last reported.
    std::uint64_t served_bytes_now = 0;
};

struct content_record {
    std::string id;  // hex content id
    std::string name;
    std::uint64_t size = 0;
    std::uint64_t block_count = 0;
    std::string origins;  // newline-separated locators, in order
    std::int64_t published_ms = 0;
    // The publisher's signed record (hex), or "": stored and served, never made here — the
    // coordinator holds no publisher key.
    std::string publication;
    // The size of the stored manifest (0: none). The bytes stay in the store (a 1 GiB content's
    // manifest is 512 KiB): coordinator_store::manifest reads them when a device asks.
    std::uint64_t manifest_bytes = 0;
};

// A content being published: its record, and its manifest ("" keeps the stored one).
struct publication_entry {
    content_record record;
    std::string manifest;
};

// A content an administrator removed (docs/coordinator.md "Catalogue"): agents learn of it by
// its sequence number and drop it from their caches.
struct retired_content {
    std::string content_id;
    std::uint64_t seq = 0;  // increases with every retirement
    std::int64_t retired_ms = 0;
};

// An administrator's request to have a content in an office by a deadline
// (docs/coordinator.md "Pre-staging"). office "*" is every office, also those added later.
struct prestage_request {
    std::string content_id;
    std::string office;
    std::int64_t deadline_ms = 0;
    std::int64_t requested_ms = 0;
};

struct holding {
    std::string device_id;
    std::string content_id;
    std::uint64_t verified_blocks = 0;
    bool complete = false;
};

struct office_stats {
    std::string office;
    std::uint64_t origin_bytes = 0, wan_bytes = 0, lan_bytes = 0;
};

// Bytes a content brought into an office, by source (agents' job reports); local: already in
// the device's own cache.
struct content_office_stats {
    std::string content_id;
    std::string office;
    std::uint64_t origin_bytes = 0, wan_bytes = 0, lan_bytes = 0, local_bytes = 0;
};

struct assignment_group {
    std::string name;
    std::vector<std::string> devices;   // device ids or names
    std::vector<std::string> contents;  // hex content ids
};

// An administrator's key (docs/coordinator.md "Administrators"). Revoked keys stay, so the
// audit log's names keep meaning something.
struct admin_record {
    std::string name;
    std::string public_key;  // Ed25519, 64 hex digits
    std::string role;        // "admin" or "viewer"
    std::int64_t added_ms = 0;
    std::int64_t revoked_ms = 0;  // 0 while it is valid
    // The web console's password, as libsodium's Argon2id string ("": no console login).
    std::string console_password;
};

// A device's own key (docs/coordinator.md "Devices"): enrolled on its first "identify" under
// the fleet key, required from then on. A revoked device keeps its row (a key of "" when it
// was revoked before it ever enrolled), so it cannot enroll again under the same id.
struct device_identity {
    std::string device_id;
    std::string public_key;  // Ed25519, 64 hex digits
    std::int64_t enrolled_ms = 0;
    std::int64_t revoked_ms = 0;
};

class coordinator_store {
public:
    virtual ~coordinator_store() = default;
    // Small named values: "server_id", "fleet_key", "signing_key" (the coordinator's Ed25519
    // seed), "topology_csv", settings.
    virtual std::optional<std::string> meta(const std::string &key) = 0;
    virtual void set_meta(const std::string &key, const std::string &value) = 0;
    virtual void put_device(const device_record &d) = 0;
    virtual std::vector<device_record> devices() = 0;
    // Several at once, in one transaction (the devices' history, written periodically).
    virtual void put_devices(const std::vector<device_record> &devices) = 0;
    // Publishes contents, all or none (republish-all): a retired one is no longer retired.
    virtual void put_contents(const std::vector<publication_entry> &contents) = 0;
    // Every content, without the manifests' bytes.
    virtual std::vector<content_record> contents() = 0;
    virtual std::optional<std::string> manifest(const std::string &content_id) = 0;
    // Removes a content (its record, manifest, holdings and pre-staging) and lists it as
    // retired under the next sequence number, which it returns.
    virtual std::uint64_t retire_content(const std::string &content_id, std::int64_t now_ms) = 0;
    virtual std::vector<retired_content> retired_contents() = 0;
    virtual void add_content_stats(const content_office_stats &delta) = 0;
    virtual std::vector<content_office_stats> content_stats() = 0;
    virtual void put_prestage(const prestage_request &r) = 0;
    // Every request for the content when `office` is empty.
    virtual void remove_prestage(const std::string &content_id, const std::string &office) = 0;
    virtual std::vector<prestage_request> prestages() = 0;
    // Forgets a device (retirement): its record and holdings. Its identity stays (a revoked
    // device stays revoked; an enrolled one keeps its key if it comes back).
    virtual void remove_device(const std::string &device_id) = 0;
    virtual void put_holding(const holding &h) = 0;
    virtual void remove_holding(const std::string &device_id, const std::string &content_id) = 0;
    virtual std::vector<holding> holdings() = 0;
    virtual void put_group(const assignment_group &g) = 0;
    virtual void remove_group(const std::string &name) = 0;
    virtual std::vector<assignment_group> groups() = 0;
    virtual void add_stats(const office_stats &delta) = 0;
    virtual std::vector<office_stats> stats() = 0;
    // Adds an administrator; PD_E_EXISTS when the name or the key is taken.
    virtual void add_admin(const admin_record &a) = 0;
    // Marks it revoked; false when there is no such valid administrator.
    virtual bool revoke_admin(const std::string &name, std::int64_t now_ms) = 0;
    virtual std::vector<admin_record> admins() = 0;
    // Sets a valid administrator's console password hash ("" removes it); false when there is
    // no such valid administrator.
    virtual bool set_console_password(const std::string &name, const std::string &hash) = 0;
    // Looked up at every console login, so a revocation or a new password holds at once.
    virtual std::optional<admin_record> admin_by_name(const std::string &name) = 0;
    // Looked up for every admin operation, so a revocation holds at once, even for open
    // connections and when another process (pd-coordinator admin-key) made it.
    virtual std::optional<admin_record> admin_by_key(const std::string &public_key) = 0;
    virtual std::optional<device_identity> device_identity_of(const std::string &device_id) = 0;
    // Enrolls a device; PD_E_EXISTS when the id has an identity (or a revocation) already.
    virtual void enroll_device(const device_identity &d) = 0;
    // Revokes a device, enrolled or not; false when it already was.
    virtual bool revoke_device(const std::string &device_id, std::int64_t now_ms) = 0;
    virtual std::vector<device_identity> device_identities() = 0;
    // "ok" or what is wrong (health check).
    virtual std::string check() = 0;
};

// SQLite (WAL) at `path`, created when missing. Throws pd::error (PD_E_BUSY when another
// coordinator holds it, PD_E_INVALID when it is not a coordinator database).
std::unique_ptr<coordinator_store> open_sqlite_store(const std::string &path);

}  // namespace pd::coord
