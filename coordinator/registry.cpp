#include "coordinator/registry.h"

#include "coordinator_client/protocol.h"

#include "util/text.h"

#include <algorithm>

namespace pd::coord {

registry::registry(coordinator_store &store, election_policy policy, std::int64_t online_ms)
    : store_(store), policy_(policy), online_ms_(online_ms) {}

void registry::load(std::int64_t now_ms) {
    devices_.clear();
    for (auto &d : store_.devices()) devices_[d.id] = d;
    holdings_.clear();
    for (auto &h : store_.holdings()) holdings_[h.content_id][h.device_id] = h;
    groups_.clear();
    for (auto &g : store_.groups()) groups_[g.name] = g;
    optimisation_ = store_.meta("distribution_optimisation").value_or("on") != "off";
    v4_prefix_ = static_cast<unsigned>(std::stoul(store_.meta("automatic_prefix_v4").value_or("24")));
    v6_prefix_ = static_cast<unsigned>(std::stoul(store_.meta("automatic_prefix_v6").value_or("64")));
    use_topology();
    // A restarted coordinator gives every known device one online window to reconnect, and
    // keeps the RVPs it had: a restart must not move an office's WAN pulls to another device.
    unheard_since_load_.clear();
    for (auto &[id, d] : devices_) {
        unheard_since_load_[id] = d.last_seen_ms;
        d.last_seen_ms = std::max(d.last_seen_ms, now_ms);
    }
    for (auto &[office, members] : members_)
        if (auto id = store_.meta("rvp:" + office); id && members.count(*id)) rvp_[office] = *id;
}

void registry::use_topology() {
    uploaded_ = false;
    if (auto csv = store_.meta("topology_csv"); optimisation_ && csv && !csv->empty()) {
        topology_ = topology::parse_csv(*csv);
        uploaded_ = true;
    }
    rebuild_membership();
}

void registry::set_optimisation(bool on, unsigned v4_prefix, unsigned v6_prefix) {
    if (v4_prefix && (v4_prefix < 8 || v4_prefix > 32))
        fail(PD_E_INVALID, PD_CATEGORY_API, "the IPv4 prefix length must be 8-32, not " + std::to_string(v4_prefix));
    if (v6_prefix && (v6_prefix < 16 || v6_prefix > 128))
        fail(PD_E_INVALID, PD_CATEGORY_API, "the IPv6 prefix length must be 16-128, not " + std::to_string(v6_prefix));
    if (v4_prefix) v4_prefix_ = v4_prefix;
    if (v6_prefix) v6_prefix_ = v6_prefix;
    optimisation_ = on;
    store_.set_meta("distribution_optimisation", on ? "on" : "off");
    store_.set_meta("automatic_prefix_v4", std::to_string(v4_prefix_));
    store_.set_meta("automatic_prefix_v6", std::to_string(v6_prefix_));
    use_topology();
}

void registry::rebuild_membership() {
    if (!uploaded_) {
        std::vector<std::string> addresses;
        for (auto &[id, d] : devices_) addresses.push_back(d.address);
        std::sort(addresses.begin(), addresses.end());
        topology_ = topology::automatic(addresses, v4_prefix_, v6_prefix_);
    }
    office_of_.clear();
    members_.clear();
    rvp_.clear();
    for (auto &[id, d] : devices_) place(d);
}

std::string registry::place(device_record &d) {
    const office *o = topology_.locate(d.address);
    if (!o && !uploaded_) {  // a new subnet: the automatic tree grows
        std::vector<std::string> addresses;
        for (auto &[id, other] : devices_) addresses.push_back(other.address);
        addresses.push_back(d.address);
        std::sort(addresses.begin(), addresses.end());
        topology_ = topology::automatic(addresses, v4_prefix_, v6_prefix_);
        o = topology_.locate(d.address);
    }
    auto old = office_of_.find(d.id);
    if (old != office_of_.end()) members_[old->second].erase(d.id);
    if (!o) {
        office_of_.erase(d.id);
        return {};
    }
    office_of_[d.id] = o->name;
    members_[o->name][d.id] = &d;
    return o->name;
}

std::string registry::register_device(device_record d, std::int64_t now_ms) {
    auto it = devices_.find(d.id);
    d.registered_ms = it == devices_.end() ? now_ms : it->second.registered_ms;
    if (it != devices_.end()) {  // its history carries over a new registration
        d.online_ms = it->second.online_ms;
        d.served_bytes = it->second.served_bytes;
    }
    served_reported_[d.id] = d.served_bytes_now;
    d.last_seen_ms = now_ms;
    unheard_since_load_.erase(d.id);
    store_.put_device(d);
    auto &slot = devices_[d.id];
    slot = std::move(d);
    return place(slot);
}

std::string registry::heartbeat(const std::string &device_id, const device_record &facts, std::int64_t now_ms) {
    auto it = devices_.find(device_id);
    if (it == devices_.end()) return {};
    auto &d = it->second;
    // History: the time since the last heartbeat counts as online when it is within the
    // online window; served bytes grow by what the session reports beyond its last report (a
    // smaller figure is a new session, counted from zero).
    if (now_ms - d.last_seen_ms <= online_ms_ && now_ms > d.last_seen_ms) d.online_ms += now_ms - d.last_seen_ms;
    auto &last = served_reported_[device_id];
    d.served_bytes += facts.served_bytes_now >= last ? facts.served_bytes_now - last : facts.served_bytes_now;
    last = facts.served_bytes_now;
    history_dirty_.insert(device_id);
    d.free_bytes = facts.free_bytes;
    d.usable_free_bytes = facts.usable_free_bytes;
    d.uptime_seconds = facts.uptime_seconds;
    bool moved = !facts.address.empty() && facts.address != d.address;
    if (moved) d.address = facts.address;
    d.last_seen_ms = now_ms;
    unheard_since_load_.erase(device_id);
    // Last-seen lives in memory between registrations: writing 100k heartbeats a minute
    // buys nothing a restart needs (devices re-register within one heartbeat).
    if (moved) store_.put_device(d);
    auto office = office_of_.find(device_id);
    return moved || office == office_of_.end() ? place(d) : office->second;
}

void registry::set_device_key(const std::string &device_id, const std::string &key) {
    if (key.empty()) device_keys_.erase(device_id);
    else device_keys_[device_id] = key;
}

void registry::take_offline(const std::string &device_id) {
    auto it = devices_.find(device_id);
    if (it == devices_.end()) return;
    it->second.last_seen_ms = 0;
    store_.put_device(it->second);
}

void registry::report_holding(const holding &h) {
    if (h.verified_blocks == 0 && !h.complete) {  // evicted or removed: no longer a holder
        auto held = holdings_.find(h.content_id);
        if (held == holdings_.end() || !held->second.erase(h.device_id)) return;
        store_.remove_holding(h.device_id, h.content_id);
        return;
    }
    holdings_[h.content_id][h.device_id] = h;
    store_.put_holding(h);
}

void registry::report_progress(const std::string &device_id, const std::string &content_id, std::uint64_t verified_blocks) {
    if (verified_blocks == 0) return;
    auto &h = holdings_[content_id][device_id];
    if (h.complete || h.verified_blocks == verified_blocks) return;
    h = {device_id, content_id, verified_blocks, false};
    store_.put_holding(h);
}

void registry::forget_content(const std::string &content_id) { holdings_.erase(content_id); }

bool registry::retire_device(const std::string &device_id) {
    auto it = devices_.find(device_id);
    if (it == devices_.end()) return false;
    store_.remove_device(device_id);
    for (auto &[content, holders] : holdings_) holders.erase(device_id);
    auto office = office_of_.find(device_id);
    if (office != office_of_.end()) {
        members_[office->second].erase(device_id);
        auto rvp = rvp_.find(office->second);
        if (rvp != rvp_.end() && rvp->second == device_id) rvp_.erase(rvp);
        office_of_.erase(office);
    }
    devices_.erase(it);
    unheard_since_load_.erase(device_id);
    if (!uploaded_) rebuild_membership();  // the automatic topology may lose an office
    return true;
}

std::vector<std::string> registry::retire_absent(std::int64_t cutoff_ms) {
    std::vector<std::string> absent;
    for (auto &[id, d] : devices_) {
        auto unheard = unheard_since_load_.find(id);
        auto seen = unheard == unheard_since_load_.end() ? d.last_seen_ms : unheard->second;
        if (seen < cutoff_ms) absent.push_back(id);
    }
    for (auto &id : absent) retire_device(id);
    return absent;
}

void registry::add_stats(const std::string &device_id, std::uint64_t origin_bytes, std::uint64_t wan_bytes,
                         std::uint64_t lan_bytes) {
    auto it = office_of_.find(device_id);
    store_.add_stats({it == office_of_.end() ? std::string("(no office)") : it->second, origin_bytes, wan_bytes, lan_bytes});
}

void registry::import_topology(const std::string &csv) {
    import_topology(topology::parse_csv(csv), csv);  // parse_csv throws, leaving everything as it was
}

void registry::import_topology(topology parsed, const std::string &csv) {
    store_.set_meta("topology_csv", csv);
    if (!optimisation_) store_.set_meta("distribution_optimisation", "on");  // an upload means it
    optimisation_ = true;
    topology_ = std::move(parsed);
    uploaded_ = true;
    rebuild_membership();
}

std::string registry::export_topology() const { return topology_.to_csv(); }

void registry::put_group(const assignment_group &g) {
    groups_[g.name] = g;
    store_.put_group(g);
}

void registry::remove_group(const std::string &name) {
    groups_.erase(name);
    store_.remove_group(name);
}

bool registry::assigned(const std::string &device_id, const std::string &content_id) const {
    if (groups_.empty()) return true;
    auto dev = devices_.find(device_id);
    for (auto &[name, g] : groups_) {
        bool content = g.contents.empty() || std::find(g.contents.begin(), g.contents.end(), content_id) != g.contents.end();
        bool device = std::any_of(g.devices.begin(), g.devices.end(), [&](const std::string &m) {
            return m == device_id || (dev != devices_.end() && m == dev->second.name);
        });
        if (content && device) return true;
    }
    return false;
}

bool registry::preferred(const device_record &d, std::int64_t now_ms) const {
    if (d.preferred) return true;
    std::int64_t known = now_ms - d.registered_ms;
    return known >= history_min_ms && d.online_ms * 10 >= known * 9 && d.served_bytes >= history_min_served;
}

std::size_t registry::flush_history() {
    std::vector<device_record> changed;
    for (auto &id : history_dirty_)
        if (auto it = devices_.find(id); it != devices_.end()) changed.push_back(it->second);
    history_dirty_.clear();
    if (!changed.empty()) store_.put_devices(changed);
    return changed.size();
}

candidate registry::as_candidate(const device_record &d, std::int64_t now_ms) const {
    candidate c;
    c.device_id = d.id;
    c.free_bytes = d.free_bytes;
    c.usable_free_bytes = d.usable_free_bytes;
    c.preferred = preferred(d, now_ms);
    c.chassis = d.chassis;
    c.os_type = d.os_type;
    c.uptime_seconds = d.uptime_seconds;
    return c;
}

std::string registry::rvp(const std::string &office, std::int64_t now_ms) {
    const auto *o = topology_.find(office);
    if (!o || o->type == office_type::vpn) return {};
    // Sticky: the RVP keeps its role while it is online, so free-space jitter does not move
    // the office's WAN pulls around; it is re-elected only when it goes away.
    auto current = rvp_.find(office);
    if (current != rvp_.end()) {
        auto d = devices_.find(current->second);
        auto where = office_of_.find(current->second);
        if (d != devices_.end() && online(d->second, now_ms) && where != office_of_.end() && where->second == office)
            return current->second;
    }
    std::vector<candidate> candidates;
    auto members = members_.find(office);
    if (members != members_.end())
        for (auto &[id, d] : members->second)
            if (online(*d, now_ms) && !d->listen.empty()) candidates.push_back(as_candidate(*d, now_ms));
    int winner = elect(candidates, policy_);
    if (winner < 0) {
        rvp_.erase(office);
        return {};
    }
    auto &chosen = rvp_[office];
    chosen = candidates[static_cast<std::size_t>(winner)].device_id;
    store_.set_meta("rvp:" + office, chosen);
    return chosen;
}

std::vector<const device_record *> registry::participants(const std::string &office, const std::string &content_id,
                                                          std::int64_t now_ms, const std::string &except) const {
    std::vector<const device_record *> out;
    auto members = members_.find(office);
    if (members == members_.end()) return out;
    for (auto &[id, d] : members->second)
        if (id != except && online(*d, now_ms) && !d->listen.empty() && assigned(id, content_id)) out.push_back(d);
    return out;
}

bool registry::has_participants(const std::string &office, const std::string &content_id, std::int64_t now_ms) const {
    auto members = members_.find(office);
    if (members == members_.end()) return false;
    for (auto &[id, d] : members->second)
        if (online(*d, now_ms) && !d->listen.empty() && assigned(id, content_id)) return true;
    return false;
}

std::vector<std::string> registry::endpoints(std::vector<const device_record *> devices, const std::string &content_id,
                                             const std::string &rvp, const std::string &asker,
                                             std::map<std::string, std::string> &keys) const {
    if (devices.size() > max_peers) {
        auto held = holdings_.find(content_id);
        auto rank = [&](const device_record *d) {
            if (d->id == rvp) return 0;
            if (held != holdings_.end()) {
                auto h = held->second.find(d->id);
                if (h != held->second.end() && h->second.complete) return 1;
            }
            return 2;
        };
        std::stable_sort(devices.begin(), devices.end(), [&](auto *a, auto *b) { return rank(a) < rank(b); });
        auto rest = std::find_if(devices.begin(), devices.end(), [&](auto *d) { return rank(d) == 2; });
        if (rest != devices.end()) {
            auto offset = std::hash<std::string>{}(asker) % static_cast<std::size_t>(devices.end() - rest);
            std::rotate(rest, rest + static_cast<std::ptrdiff_t>(offset), devices.end());
        }
        devices.resize(max_peers);
    }
    std::vector<std::string> out;
    out.reserve(devices.size());
    for (auto *d : devices) {
        out.push_back(d->listen);
        if (auto k = device_keys_.find(d->id); k != device_keys_.end()) keys[d->listen] = k->second;
    }
    return out;
}

std::string registry::office_of(const std::string &device_id) const {
    auto it = office_of_.find(device_id);
    return it == office_of_.end() ? std::string() : it->second;
}

std::string registry::upstream_of(const std::string &office, const std::string &content_id, std::int64_t now_ms) const {
    const auto *o = topology_.find(office);
    if (!o) return {};
    auto path = topology_.path_to_root(*o);
    for (std::size_t i = 1; i < path.size(); ++i)
        if (path[i]->type != office_type::vpn && has_participants(path[i]->name, content_id, now_ms)) return path[i]->name;
    return {};
}

registry::office_progress registry::progress(const std::string &office, const std::string &content_id) const {
    office_progress p;
    auto held = holdings_.find(content_id);
    auto members = members_.find(office);
    if (held == holdings_.end() || members == members_.end()) return p;
    for (auto &[device, h] : held->second) {
        if (!members->second.count(device)) continue;
        p.verified_blocks = std::max(p.verified_blocks, h.verified_blocks);
        p.complete = p.complete || h.complete;
    }
    return p;
}

std::optional<holding> registry::holding_of(const std::string &device_id, const std::string &content_id) const {
    auto held = holdings_.find(content_id);
    if (held == holdings_.end()) return std::nullopt;
    auto h = held->second.find(device_id);
    if (h == held->second.end()) return std::nullopt;
    return h->second;
}

std::map<std::string, registry::office_rollout> registry::rollout_by_office(const std::string &content_id) const {
    std::map<std::string, office_rollout> out;
    for (auto &[office, devices] : members_)
        if (!devices.empty()) out[office].devices = devices.size();
    auto held = holdings_.find(content_id);
    if (held == holdings_.end()) return out;
    for (auto &[device, h] : held->second) {
        auto office = office_of_.find(device);
        if (office == office_of_.end()) continue;
        auto &r = out[office->second];
        if (h.complete) {
            ++r.complete;
        } else if (h.verified_blocks) {
            ++r.partial;
            r.partial_blocks += h.verified_blocks;
        }
    }
    return out;
}

std::map<std::string, std::size_t> registry::partial_by_office() const {
    std::map<std::string, std::size_t> out;
    for (auto &[content, holders] : holdings_)
        for (auto &[device, h] : holders) {
            if (h.complete || !h.verified_blocks) continue;
            auto office = office_of_.find(device);
            if (office != office_of_.end()) ++out[office->second];
        }
    return out;
}

const std::map<std::string, const device_record *> &registry::members(const std::string &office) const {
    static const std::map<std::string, const device_record *> none;
    auto it = members_.find(office);
    return it == members_.end() ? none : it->second;
}

sources_answer registry::sources(const std::string &device_id, const std::string &content_id, std::int64_t now_ms) {
    sources_answer a;
    auto where = office_of_.find(device_id);
    if (where == office_of_.end() || !assigned(device_id, content_id)) return a;  // origin only
    const office *o = topology_.find(where->second);
    a.office = o->name;
    a.type = o->type;
    a.serve = o->type != office_type::vpn;
    auto path = topology_.path_to_root(*o);
    // The nearest ancestor office with participants: where this office's content comes from.
    const office *upstream = nullptr;
    for (std::size_t i = 1; i < path.size() && !upstream; ++i)
        if (path[i]->type != office_type::vpn && has_participants(path[i]->name, content_id, now_ms)) upstream = path[i];
    auto upstream_peers = [&] {
        return endpoints(participants(upstream->name, content_id, now_ms), content_id, rvp(upstream->name, now_ms), device_id,
                         a.device_keys);
    };
    if (o->type == office_type::vpn) {
        // VPN devices share nothing with each other; each pulls from upstream like an RVP.
        a.role = "member";
        a.origin_allowed = !upstream;
        if (upstream) a.wan_peers = upstream_peers();
        return a;
    }
    a.rvp = rvp(o->name, now_ms);
    a.lan_peers = endpoints(participants(o->name, content_id, now_ms, device_id), content_id, a.rvp, device_id, a.device_keys);
    if (!upstream) {
        a.role = "top";  // the highest office with participants: only it touches the origin
        a.origin_allowed = true;
    } else if (a.rvp == device_id) {
        a.role = "rvp";
        a.origin_allowed = false;
        a.wan_peers = upstream_peers();
    } else {
        a.role = "member";
        a.origin_allowed = false;
    }
    return a;
}

std::string registry::activated_devices_csv(std::int64_t now_ms) {
    std::string out = "device_id,name,address,office,version,online,last_seen_ms,free_bytes,chassis,os_type,preferred,"
                      "online_ms,served_bytes\n";
    std::vector<const device_record *> sorted;
    for (auto &[id, d] : devices_) sorted.push_back(&d);
    std::sort(sorted.begin(), sorted.end(), [](auto *a, auto *b) { return a->id < b->id; });
    for (auto *d : sorted) {
        auto office = office_of_.find(d->id);
        out += csv_field(d->id) + "," + csv_field(d->name) + "," + csv_field(d->address) + "," +
               csv_field(office == office_of_.end() ? "" : office->second) + "," + csv_field(d->version) + "," +
               (online(*d, now_ms) ? "yes" : "no") + "," + std::to_string(d->last_seen_ms) + "," +
               std::to_string(d->free_bytes) + "," + std::to_string(d->chassis) + "," + std::to_string(d->os_type) + "," +
               (preferred(*d, now_ms) ? (d->preferred ? "configured" : "history") : "no") + "," + std::to_string(d->online_ms) + "," +
               std::to_string(d->served_bytes) + "\n";
    }
    return out;
}

std::int64_t registry::wan_budget(const std::string &office) const {
    const auto *o = office.empty() ? nullptr : topology_.find(office);
    return o ? o->wan_budget : 0;
}

}  // namespace pd::coord
