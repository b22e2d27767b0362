// The coordinator's answers to administrators (docs/coordinator.md "Admin operations"):
// health, the topology, the catalogue, pre-staging, groups, devices and reports. Who may run
// what is checked before (server_trust.cpp); every operation leaves an audit line.
#include "coordinator/server.h"

#include "content/manifest.h"
#include "content/publication.h"
#include "coordinator/request_fields.h"
#include "util/hex.h"

#include <sodium.h>

#include <algorithm>
#include <map>
#include <tuple>

namespace pd::coord {

using namespace fields;

namespace {

constexpr std::size_t max_publication_bytes = 16 * 1024;  // a record with a 4 KiB origin and a 1 KiB name is ~5 KiB

// One content's publication (admin.publish, an admin.republish entry).
publication_request publication(const json &j, std::int64_t now_ms) {
    publication_request r;
    auto &c = r.entry.record;
    if (!j.contains("content") && j.contains("manifest")) {
        // A manifest alone (the console's upload): the rest is what it says of itself.
        auto bytes = from_base64(text(j, "manifest", {}, max_message_bytes));
        if (!bytes) fail(PD_E_INVALID, PD_CATEGORY_API, "'manifest' must be base64");
        json fields = publication_fields(content::manifest::parse(bytes->data(), bytes->size()));
        for (auto &[key, value] : j.items()) fields[key] = value;  // origins, a record
        return publication(fields, now_ms);
    }
    c.id = content_id(j);
    c.name = text(j, "name");
    c.size = number(j, "size");
    c.block_count = number(j, "block_count");
    for (auto &o : strings(j, "origins")) c.origins += (c.origins.empty() ? "" : "\n") + o;
    c.published_ms = now_ms;
    r.keep_origins = !j.contains("origins");
    r.keep_record = !j.contains("publication");
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
    // The manifest (base64), which devices starting from the id alone fetch ("content");
    // the catalogue checks it is this content's.
    auto manifest = text(j, "manifest", {}, max_message_bytes);
    if (!manifest.empty()) {
        auto bytes = from_base64(manifest);
        if (!bytes) fail(PD_E_INVALID, PD_CATEGORY_API, "'manifest' must be base64");
        r.entry.manifest.assign(bytes->begin(), bytes->end());
    }
    return r;
}

json report_json(const publish_report &r) {
    json lines = json::array();
    for (auto &l : r.contents) lines.push_back({{"content", l.content}, {"name", l.name}, {"status", l.status}});
    return {{"ok", true}, {"added", r.added}, {"updated", r.updated}, {"unchanged", r.unchanged}, {"contents", lines}};
}

}  // namespace

std::optional<json> server::answer_admin(const std::string &op, const json &request, std::int64_t now) {
    if (op == "admin.health") {
        std::size_t online = 0, unidentified = 0, unsupported = 0;
        // Agents by version, each checked against the range this coordinator supports.
        std::map<std::string, std::pair<std::size_t, std::size_t>> versions;  // version -> (devices, online)
        for (auto &[id, d] : registry_.devices()) {
            bool up = registry_.online(d, now);
            online += up;
            unidentified += !identities_.count(id);
            auto &v = versions[d.version];
            v.first += 1;
            v.second += up;
        }
        json agents = json::array();
        for (auto &[version, count] : versions) {
            bool supported = options_.agent_versions.admits(version);
            if (!supported) unsupported += count.first;
            agents.push_back({{"version", version}, {"devices", count.first}, {"online", count.second}, {"supported", supported}});
        }
        // SQLite's quick_check reads the whole database (tens of ms for 100,000 devices): once
        // a minute at most, however often consoles poll the health.
        if (db_checked_ms_ == 0 || now - db_checked_ms_ > 60000) {
            db_check_ = store_.check();
            db_checked_ms_ = now;
        }
        const auto &db = db_check_;
        return json{{"ok", db == "ok"},
                    {"server_id", options_.server_id},
                    {"listen", bound_address()},
                    {"version", PD_VERSION_STRING},
                    {"supported_agent_versions", options_.agent_versions.text()},
                    {"devices", registry_.device_count()},
                    {"online", online},
                    {"unidentified", unidentified},
                    {"unsupported", unsupported},
                    {"agents", agents},
                    {"offices", registry_.office_count()},
                    {"contents", catalogue_.contents().size()},
                    {"database", db},
                    {"database_checked_ms", db_checked_ms_},
                    {"topology", registry_.topology_uploaded() ? "uploaded" : "automatic"},
                    {"distribution_optimisation", registry_.optimisation()},
                    {"automatic_prefixes", {registry_.v4_prefix(), registry_.v6_prefix()}},
                    {"key_mismatches", key_mismatches(now)}};
    }
    if (op == "admin.fleet_key.regenerate") {
        // Every agent holding the old key is cut off until it is given the new one: the
        // request must say it knows ("confirm": "regenerate"). The key is shown once, here.
        if (request.value("confirm", json()) != "regenerate")
            fail(PD_E_INVALID, PD_CATEGORY_API,
                 "regenerating the fleet key cuts off every agent until it is given the new key: send \"confirm\": \"regenerate\"");
        std::array<std::uint8_t, 32> key{};
        randombytes_buf(key.data(), key.size());
        store_.set_meta("fleet_key", to_hex(key.data(), key.size()));
        options_.fleet_key = key;
        sodium_memzero(key.data(), key.size());
        // Agents' connections proved the old key: closed, so each must prove the new one.
        auto closed = close_agent_connections();
        refusals_.clear();  // mismatches from here on are agents still on the old key
        return json{{"ok", true}, {"fleet_key", to_hex(options_.fleet_key.data(), options_.fleet_key.size())},
                    {"regenerated_ms", now}, {"agent_connections_closed", closed}};
    }
    if (op == "admin.offices") return offices_report(text(request, "office"), now);
    if (op == "admin.rollouts") {
        // A number, or its digits as a console query string carries them.
        std::uint64_t limit = 20;
        if (auto it = request.find("limit"); it != request.end()) {
            auto digits = it->is_string() ? it->get<std::string>() : std::string();
            bool decimal = !digits.empty() && digits.size() < 10 && std::all_of(digits.begin(), digits.end(), ::isdigit);
            limit = decimal ? std::stoull(digits) : number(request, "limit");
        }
        return rollouts_report(text(request, "content"), static_cast<std::size_t>(std::clamp<std::uint64_t>(limit, 1, 200)), now);
    }
    if (op == "admin.server_id") return json{{"ok", true}, {"server_id", options_.server_id}};
    if (op == "admin.publish") {
        std::vector<publication_request> one;
        one.push_back(publication(request, now));
        return report_json(catalogue_.publish(std::move(one), false));
    }
    if (op == "admin.republish") {
        // Many publications at once, checked first and stored in one transaction: a
        // coordinator rebuilt on a new database, or every content moved to new origins.
        auto it = request.find("contents");
        if (it == request.end() || !it->is_array() || it->empty())
            fail(PD_E_INVALID, PD_CATEGORY_API, "'contents' must be a non-empty array");
        std::vector<publication_request> requests;
        for (std::size_t i = 0; i < it->size(); ++i) {
            try {
                if (!(*it)[i].is_object()) fail(PD_E_INVALID, PD_CATEGORY_API, "must be an object");
                requests.push_back(publication((*it)[i], now));
            } catch (const error &e) {
                fail(e.code(), e.category(), "contents[" + std::to_string(i) + "]: " + e.what());
            }
        }
        return report_json(catalogue_.publish(std::move(requests), true));
    }
    if (op == "admin.contents") {
        json list = json::array();
        for (auto &[id, c] : catalogue_.contents()) {
            json origins = json::array();
            for (std::size_t start = 0; start < c.origins.size();) {
                auto end = c.origins.find('\n', start);
                if (end == std::string::npos) end = c.origins.size();
                origins.push_back(c.origins.substr(start, end - start));
                start = end + 1;
            }
            list.push_back({{"content", id}, {"name", c.name}, {"size", c.size}, {"published_ms", c.published_ms},
                            {"signed", !c.publication.empty()}, {"manifest", c.manifest_bytes != 0}, {"origins", origins}});
        }
        return json{{"ok", true}, {"contents", list}};
    }
    if (op == "admin.contents.retire") {
        // Gone everywhere: the catalogue forgets it, no device is sent to a holder any more,
        // and every agent drops it from its cache on its next heartbeat.
        auto id = content_id(request);
        if (!catalogue_.retire(id, now)) return json{{"ok", false}, {"error", "content " + id + " is not in the catalogue"}};
        registry_.forget_content(id);
        rollout_.forget_content(id);
        prestaging_.forget_content(id);
        return json{{"ok", true}, {"retired", catalogue_.retired_seq()}};
    }
    if (op == "admin.prestage") {
        // The content in these offices (all when none are named) by the deadline; each
        // office's RVP pulls it, parents first (docs/coordinator.md "Pre-staging").
        auto plan = prestaging_.submit(content_id(request), strings(request, "offices"),
                                       static_cast<std::int64_t>(number(request, "deadline_ms")), now);
        return json{{"ok", true}, {"offices", plan.offices}, {"unmeasured", plan.unmeasured}, {"estimates", plan.estimates}};
    }
    if (op == "admin.prestage.status")
        return json{{"ok", true}, {"prestages", prestaging_.status(text(request, "content"), now)}};
    if (op == "admin.prestage.cancel") {
        if (!prestaging_.cancel(content_id(request))) return json{{"ok", false}, {"error", "nothing is pre-staged for this content"}};
        return json{{"ok", true}};
    }
    if (op == "admin.optimisation") {
        auto on = request.find("enabled");
        if (on == request.end() || !on->is_boolean()) fail(PD_E_INVALID, PD_CATEGORY_API, "'enabled' must be true or false");
        registry_.set_optimisation(on->get<bool>(), static_cast<unsigned>(std::min<std::uint64_t>(number(request, "prefix_v4"), 1000)),
                                   static_cast<unsigned>(std::min<std::uint64_t>(number(request, "prefix_v6"), 1000)));
        return json{{"ok", true}, {"topology", registry_.topology_uploaded() ? "uploaded" : "automatic"},
                    {"offices", registry_.office_count()}};
    }
    if (op == "admin.topology.import") return import_topology(request);
    if (op == "admin.topology.export")
        return json{{"ok", true}, {"csv", registry_.export_topology()}, {"uploaded", registry_.topology_uploaded()}};
    if (op == "admin.groups.set") {
        registry_.put_group({required(request, "name"), strings(request, "devices"), strings(request, "contents")});
        return json{{"ok", true}};
    }
    if (op == "admin.groups.remove") {
        registry_.remove_group(required(request, "name"));
        return json{{"ok", true}};
    }
    if (op == "admin.groups.list") {
        json list = json::array();
        for (auto &g : store_.groups()) list.push_back({{"name", g.name}, {"devices", g.devices}, {"contents", g.contents}});
        return json{{"ok", true}, {"groups", list}};
    }
    if (op == "admin.devices.csv") return json{{"ok", true}, {"csv", registry_.activated_devices_csv(now)}};
    if (op == "admin.stats") {
        json list = json::array();
        for (auto &s : store_.stats())
            list.push_back({{"office", s.office}, {"origin_bytes", s.origin_bytes}, {"wan_bytes", s.wan_bytes}, {"lan_bytes", s.lan_bytes}});
        return json{{"ok", true}, {"offices", list}};
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
        close_connections_of(id);
        return json{{"ok", true}, {"revoked", revoked}};
    }
    if (op == "admin.devices.retire") {
        // A device that left the fleet (the activated-devices report only lists devices that
        // are still in it). Not a revocation: a retired device that comes back registers again.
        auto id = required(request, "device_id");
        if (!registry_.retire_device(id)) return json{{"ok", false}, {"error", "no device '" + id + "' is registered"}};
        return json{{"ok", true}};
    }
    if (op == "admin.admins.list") {
        json list = json::array();
        for (auto &a : store_.admins())
            list.push_back({{"name", a.name}, {"role", a.role}, {"public_key", a.public_key}, {"added_ms", a.added_ms},
                            {"revoked_ms", a.revoked_ms}});
        return json{{"ok", true}, {"admins", list}};
    }
    if (op == "admin.publication") return publication_record(content_id(request));
    if (op == "admin.rvp") return json{{"ok", true}, {"device_id", registry_.rvp(required(request, "office"), now)}};
    return std::nullopt;
}

json server::key_mismatches(std::int64_t now) const {
    constexpr std::int64_t recent_ms = 15 * 60 * 1000;
    constexpr std::size_t max_listed = 100;
    json list = json::array();
    bool any = std::any_of(refusals_.begin(), refusals_.end(), [&](auto &r) { return r.second.last_ms && now - r.second.last_ms <= recent_ms; });
    if (!any) return list;  // the usual case: no pass over the devices
    // Which registered device last came from each address, to name the agents still on an old key.
    std::unordered_map<std::string, const device_record *> by_address;
    for (auto &[id, d] : registry_.devices()) by_address[d.address] = &d;
    for (auto &[ip, r] : refusals_) {
        if (!r.last_ms || now - r.last_ms > recent_ms || list.size() == max_listed) continue;
        auto d = by_address.find(ip);
        list.push_back({{"address", ip}, {"attempts", r.attempts}, {"last_ms", r.last_ms},
                        {"device_id", d == by_address.end() ? "" : d->second->id},
                        {"name", d == by_address.end() ? "" : d->second->name}});
    }
    return list;
}

json server::offices_report(const std::string &listed_office, std::int64_t now) {
    // Devices are listed for one office at a time, at most this many (the counts are always
    // whole): a page of 100,000 devices would help nobody and cost the network thread.
    constexpr std::size_t max_listed = 500;
    json offices = json::array();
    auto totals = rollout_.bytes_by_office();
    for (auto &o : registry_.current_topology().offices()) {
        json devices = json::array();
        std::size_t online = 0;
        const auto &members = registry_.members(o.name);
        for (auto &[id, d] : members) {
            bool up = registry_.online(*d, now);
            online += up;
            if (o.name == listed_office && devices.size() < max_listed)
                devices.push_back({{"device_id", id}, {"name", d->name}, {"address", d->address}, {"version", d->version},
                                   {"online", up}, {"supported", options_.agent_versions.admits(d->version)}});
        }
        json ranges = json::array();
        for (auto &r : o.ranges) ranges.push_back(r.text);
        offices.push_back({{"name", o.name},
                           {"parent", o.parent},
                           {"type", type_name(o.type)},
                           {"ranges", ranges},
                           {"wan_budget", o.wan_budget},
                           {"rvp", registry_.rvp(o.name, now)},
                           {"device_count", members.size()},
                           {"online", online},
                           {"devices", devices},
                           {"rate_bytes_per_s", static_cast<std::uint64_t>(rollout_.rate(o.name, now))},
                           {"bytes", bytes_json(totals[o.name])}});
    }
    return {{"ok", true}, {"topology", registry_.topology_uploaded() ? "uploaded" : "automatic"}, {"offices", offices}};
}

json server::rollouts_report(const std::string &only, std::size_t limit, std::int64_t now) {
    // The newest contents first, `limit` of them (or the one asked for).
    std::vector<const content_record *> chosen;
    for (auto &[id, c] : catalogue_.contents())
        if (only.empty() || id == only) chosen.push_back(&c);
    std::sort(chosen.begin(), chosen.end(), [](auto *a, auto *b) { return std::tie(a->published_ms, a->id) > std::tie(b->published_ms, b->id); });
    if (chosen.size() > limit) chosen.resize(limit);
    json contents = json::array();
    for (auto *record : chosen) {
        auto &c = *record;
        auto &id = c.id;
        json offices = json::array();
        std::uint64_t holders = 0, fetched = 0, delivered = 0;  // bytes: crossing a WAN or from the origin / all
        auto by_office = registry_.rollout_by_office(id);
        for (auto &o : registry_.current_topology().offices()) {
            auto found = by_office.find(o.name);
            if (found == by_office.end() || found->second.devices == 0) continue;
            auto &r = found->second;
            auto b = rollout_.bytes(id, o.name);
            double blocks = static_cast<double>(r.complete) * static_cast<double>(c.block_count) + static_cast<double>(r.partial_blocks);
            double whole = static_cast<double>(r.devices) * static_cast<double>(c.block_count);
            holders += r.complete;
            fetched += b.origin_bytes + b.wan_bytes;
            delivered += b.origin_bytes + b.wan_bytes + b.lan_bytes + b.local_bytes;
            offices.push_back({{"office", o.name},
                               {"devices", r.devices},
                               {"complete", r.complete},
                               {"partial", r.partial},
                               {"percent", whole > 0 ? 100.0 * blocks / whole : 0.0},
                               {"rate_bytes_per_s", static_cast<std::uint64_t>(rollout_.rate(o.name, now))},
                               {"bytes", bytes_json(b)}});
        }
        // The default way: every device that has the content fetched it whole from the
        // origin, across its office's WAN link.
        std::uint64_t default_bytes = holders * c.size;
        contents.push_back({{"content", id},
                            {"name", c.name},
                            {"size", c.size},
                            {"holders", holders},
                            {"offices", offices},
                            {"delivered_bytes", delivered},
                            {"wan_and_origin_bytes", fetched},
                            {"default_bytes", default_bytes},
                            {"saved_fraction", default_bytes ? 1.0 - static_cast<double>(fetched) / static_cast<double>(default_bytes) : 0.0}});
    }
    return {{"ok", true}, {"contents", contents}};
}

}  // namespace pd::coord
