// The coordinator's working state and decisions, without I/O: devices and where they sit in
// the office tree, who holds what, the RVP of each office, and the answer to "where does
// this device fetch this content from". Every change is written through to the store; a
// restart reloads it. Not thread-safe: the server calls it from its one network thread.
#pragma once

#include "coordinator/election.h"
#include "coordinator/store.h"
#include "coordinator/topology.h"

#include <map>
#include <optional>
#include <set>
#include <unordered_map>

namespace pd::coord {

struct sources_answer {
    // "unmanaged" (no office or not assigned: origin only), "top" (the highest office with
    // participants: it alone takes the origin), "rvp" (pulls from the nearest ancestor office
    // over the WAN), "member" (fetches inside its office).
    std::string role = "unmanaged";
    std::string office;
    office_type type = office_type::standard;
    std::string rvp;  // device id of the office's RVP
    bool origin_allowed = true;
    bool serve = true;                    // false in VPN offices
    std::vector<std::string> lan_peers;   // "ip:port" in the device's own office
    std::vector<std::string> wan_peers;   // "ip:port" in the nearest ancestor office with participants
    // The device key (hex) each listed peer must prove in its HELLO, for identified devices.
    std::map<std::string, std::string> device_keys;
};

class registry {
public:
    registry(coordinator_store &store, election_policy policy, std::int64_t online_ms);

    // Reads everything back from the store (restart). Known devices count as online for one
    // online window from `now_ms`, and each office keeps the RVP it had.
    void load(std::int64_t now_ms);

    // Registration and heartbeats update facts and last-seen; both return the device's office ("" for none).
    std::string register_device(device_record d, std::int64_t now_ms);
    std::string heartbeat(const std::string &device_id, const device_record &facts, std::int64_t now_ms);
    // A revoked device: offline at once, so no other device is told to use it as a peer.
    void take_offline(const std::string &device_id);
    // The key a device proved (docs/coordinator.md "Devices"): handed with its address to the
    // devices told to use it as a peer, which check it. "" forgets it.
    void set_device_key(const std::string &device_id, const std::string &key);
    // The office's WAN budget in bytes/s from the topology (0: none, or no such office).
    std::int64_t wan_budget(const std::string &office) const;
    void report_holding(const holding &h);
    // A device's progress on a content it is fetching: its verified blocks, unless it already
    // reported the content whole (a late progress report never undoes a completion).
    void report_progress(const std::string &device_id, const std::string &content_id, std::uint64_t verified_blocks);
    // A retired content: nobody holds it any more (the store forgot it with the content).
    void forget_content(const std::string &content_id);
    // Retires a device (docs/coordinator.md "Devices"): forgotten with its holdings, and no
    // longer in the activated-devices report; it may register again. False when unknown.
    bool retire_device(const std::string &device_id);
    // Retires every device not seen since `cutoff_ms` (automatic retirement,
    // server_options::retire_absent_ms); returns their ids. A device not heard from since a
    // restart counts from when it was last seen before it.
    std::vector<std::string> retire_absent(std::int64_t cutoff_ms);
    // Whether the device is a preferred one now: its configured override, or its history —
    // online at least 90 % of the time over at least history_min_ms since it registered, and
    // at least history_min_served bytes served to peers (docs/hierarchy.md "Election").
    bool preferred(const device_record &d, std::int64_t now_ms) const;
    static constexpr std::int64_t history_min_ms = 3600 * 1000;
    static constexpr std::uint64_t history_min_served = 256ull << 20;
    // Writes the devices whose history changed since the last call (heartbeats stay in
    // memory; the server calls this every minute). Returns how many.
    std::size_t flush_history();
    void add_stats(const std::string &device_id, std::uint64_t origin_bytes, std::uint64_t wan_bytes, std::uint64_t lan_bytes);

    sources_answer sources(const std::string &device_id, const std::string &content_id, std::int64_t now_ms);

    // Replaces the topology; on error throws topology_error and keeps the old one.
    void import_topology(const std::string &csv);
    // The same with the CSV already parsed and checked (topology::parse_csv), which the
    // server does off its network thread.
    void import_topology(topology parsed, const std::string &csv);
    // The uploaded topology, or the automatic one built from registered devices.
    std::string export_topology() const;
    const topology &current_topology() const { return topology_; }
    // Whether the uploaded topology is in force (one was uploaded and distribution
    // optimisation is on).
    bool topology_uploaded() const { return uploaded_; }

    // Distribution optimisation (the seed console's switch): on, the uploaded topology is in
    // force; off — or on with none uploaded — the automatic one, one office per subnet of the
    // registered devices under the Central Office, with these prefix lengths (0 keeps the
    // current one). The uploaded CSV is kept either way; importing one turns it on. Throws
    // PD_E_INVALID for a prefix out of range (IPv4 8-32, IPv6 16-128).
    void set_optimisation(bool on, unsigned v4_prefix, unsigned v6_prefix);
    bool optimisation() const { return optimisation_; }
    unsigned v4_prefix() const { return v4_prefix_; }
    unsigned v6_prefix() const { return v6_prefix_; }

    void put_group(const assignment_group &g);
    void remove_group(const std::string &name);

    // The office a device is in ("" for none).
    std::string office_of(const std::string &device_id) const;
    // Where the office's content comes from: the nearest ancestor office with participants
    // for it, "" when the office is the top one (it takes the origin).
    std::string upstream_of(const std::string &office, const std::string &content_id, std::int64_t now_ms) const;
    // How much of a content the office holds: the most verified blocks any of its devices
    // reported, and whether one holds it whole.
    struct office_progress {
        std::uint64_t verified_blocks = 0;
        bool complete = false;
    };
    office_progress progress(const std::string &office, const std::string &content_id) const;
    // What the device reported holding of the content (nullopt: nothing).
    std::optional<holding> holding_of(const std::string &device_id, const std::string &content_id) const;
    // How each office's devices stand with the content (the console's rollout page), in one
    // pass over its holders; offices with devices but no holder have devices set only.
    struct office_rollout {
        std::size_t devices = 0, complete = 0, partial = 0;
        std::uint64_t partial_blocks = 0;  // verified blocks the partial holders have
    };
    std::map<std::string, office_rollout> rollout_by_office(const std::string &content_id) const;
    // Devices part way through any content, per office: one pass over every holding (/metrics).
    std::map<std::string, std::size_t> partial_by_office() const;
    // The office's devices (device ids), "" for devices in no office.
    const std::map<std::string, const device_record *> &members(const std::string &office) const;

    // The RVP (device id) of an office now, "" when no device there is online.
    std::string rvp(const std::string &office, std::int64_t now_ms);
    bool online(const device_record &d, std::int64_t now_ms) const { return now_ms - d.last_seen_ms <= online_ms_; }
    // "device_id,name,address,office,version,online,last_seen_ms,free_bytes,chassis,os_type"
    std::string activated_devices_csv(std::int64_t now_ms);
    std::size_t device_count() const { return devices_.size(); }
    std::size_t office_count() const { return topology_.offices().size(); }
    const std::unordered_map<std::string, device_record> &devices() const { return devices_; }

private:
    std::string place(device_record &d);  // sets the office membership, returns it
    void rebuild_membership();
    bool assigned(const std::string &device_id, const std::string &content_id) const;
    candidate as_candidate(const device_record &d, std::int64_t now_ms) const;
    // Online participants of the office for the content, excluding `except`.
    std::vector<const device_record *> participants(const std::string &office, const std::string &content_id,
                                                    std::int64_t now_ms, const std::string &except = {}) const;
    bool has_participants(const std::string &office, const std::string &content_id, std::int64_t now_ms) const;
    // At most max_peers endpoints for `asker`: the RVP first, then devices holding the whole
    // content, then a slice of the rest that differs per asker (spreading the load).
    // Their listen addresses (at most max_peers), and their keys into `keys`.
    std::vector<std::string> endpoints(std::vector<const device_record *> devices, const std::string &content_id,
                                       const std::string &rvp, const std::string &asker,
                                       std::map<std::string, std::string> &keys) const;

    coordinator_store &store_;
    election_policy policy_;
    std::int64_t online_ms_;
    topology topology_;
    bool uploaded_ = false;      // the uploaded topology is in force
    bool optimisation_ = true;
    unsigned v4_prefix_ = 24, v6_prefix_ = 64;
    void use_topology();  // the uploaded or the automatic one, as the switch says
    std::unordered_map<std::string, std::string> device_keys_;  // device id -> key (hex)
    std::unordered_map<std::string, device_record> devices_;
    std::unordered_map<std::string, std::string> office_of_;             // device id -> office
    // office -> (device id -> its record in devices_; unordered_map nodes do not move)
    std::map<std::string, std::map<std::string, const device_record *>> members_;
    std::map<std::string, std::map<std::string, holding>> holdings_;     // content -> device -> holding
    std::map<std::string, assignment_group> groups_;
    std::map<std::string, std::string> rvp_;                             // office -> current RVP
    std::unordered_map<std::string, std::uint64_t> served_reported_;  // device -> its session's last bytes_served
    std::set<std::string> history_dirty_;
    // Devices not heard from since load(), with when they were last seen before it.
    std::unordered_map<std::string, std::int64_t> unheard_since_load_;
};

}  // namespace pd::coord
