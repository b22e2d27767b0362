// The coordinator's answers to agents (docs/coordinator.md "Protocol"): registration and
// heartbeats, the revoked devices and retired contents they must drop, what they hold, where
// they fetch a content from, and the catalogue's description of a content. Who may ask is
// checked before (server_trust.cpp).
#include "coordinator/server.h"

#include "coordinator/request_fields.h"
#include "util/endpoint.h"
#include "util/hex.h"

namespace pd::coord {

using namespace fields;

namespace {

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
    d.served_bytes_now = number(*it, "bytes_served");
}

std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (end > start) out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

}  // namespace

// "Default", "VPN" or "WiFi"; "Default" for a device in no office.
std::string server::office_type_of(const std::string &office) const {
    const auto *o = registry_.current_topology().find(office);
    return type_name(o ? o->type : office_type::standard);
}

std::optional<json> server::answer_agent(const std::string &op, const json &request, const caller &from, std::int64_t now) {
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
        ++counters_.registrations;
        return json{{"ok", true},
                    {"server_id", options_.server_id},
                    {"office", office},
                    {"office_type", office_type_of(office)},
                    {"heartbeat_ms", options_.heartbeat_ms},
                    {"address", d.address},
                    {"wan_budget", registry_.wan_budget(office)},
                    {"revoked_devices", revoked_keys_.size()},
                    {"retired_contents", catalogue_.retired_seq()}};
    }
    if (op == "heartbeat") {
        device_record facts;
        read_facts(request, facts);
        facts.address = claimed_address(request, from, options_.trust_claimed_addresses);
        auto id = required(request, "device_id");
        if (!registry_.devices().count(id))
            return json{{"ok", false}, {"error", "unknown device: register again"}, {"unregistered", true}};
        auto office = registry_.heartbeat(id, facts, now);
        ++counters_.heartbeats;
        // How far the contents it pre-stages or fetches have come (docs/coordinator.md).
        if (auto it = request.find("progress"); it != request.end()) {
            if (!it->is_array() || it->size() > max_progress_per_heartbeat)
                fail(PD_E_INVALID, PD_CATEGORY_API, "'progress' must be an array of at most " + std::to_string(max_progress_per_heartbeat));
            for (auto &p : *it) {
                if (!p.is_object()) fail(PD_E_INVALID, PD_CATEGORY_API, "'progress' entries must be objects");
                auto content = content_id(p);
                auto blocks = number(p, "verified_blocks");
                count_received(id, content, {id, content, blocks, false}, now);
                registry_.report_progress(id, content, blocks);
                prestaging_.sample(id, content, blocks, now);
            }
        }
        auto due = prestaging_.due(id, now);
        return json{{"ok", true},
                    {"office", office},
                    {"office_type", office_type_of(office)},
                    {"wan_budget", registry_.wan_budget(office)},
                    {"revoked_devices", revoked_keys_.size()},
                    {"retired_contents", catalogue_.retired_seq()},
                    {"prestage", due.fetch},
                    {"foreground", due.foreground}};
    }
    if (op == "revoked_devices") {
        // The revoked devices' keys from index `since` on (register and heartbeat replies
        // say how many there are), a page at a time: the agent's peers refuse them.
        auto since = std::min<std::uint64_t>(number(request, "since"), revoked_keys_.size());
        auto end = std::min<std::uint64_t>(since + max_revoked_per_reply, revoked_keys_.size());
        return json{{"ok", true}, {"since", since}, {"total", revoked_keys_.size()},
                    {"keys", std::vector<std::string>(revoked_keys_.begin() + since, revoked_keys_.begin() + end)}};
    }
    if (op == "retired_contents") {
        // The contents retired after sequence number `since` (register and heartbeat replies
        // carry the newest), a page at a time: the agent drops them from its cache.
        auto page = catalogue_.retired_since(number(request, "since"), max_retired_per_reply);
        json ids = json::array();
        for (auto &r : page) ids.push_back(r.content_id);
        auto upto = page.size() < max_retired_per_reply ? catalogue_.retired_seq() : page.back().seq;
        return json{{"ok", true}, {"upto", upto}, {"contents", ids}};
    }
    if (op == "holding") {
        holding h{required(request, "device_id"), content_id(request), number(request, "verified_blocks"),
                  request.value("complete", false)};
        count_received(h.device_id, h.content_id, h, now);
        registry_.report_holding(h);
        return json{{"ok", true}};
    }
    if (op == "sources") {
        ++counters_.lookups;
        auto a = registry_.sources(required(request, "device_id"), content_id(request), now);
        return json{{"ok", true},         {"role", a.role},   {"office", a.office}, {"office_type", type_name(a.type)},
                    {"rvp", a.rvp},       {"origin_allowed", a.origin_allowed},     {"serve", a.serve},
                    {"lan", a.lan_peers}, {"wan", a.wan_peers}, {"device_keys", a.device_keys}};
    }
    if (op == "content") {
        // The catalogue's description of a content: what a device needs to start downloading
        // it from its id alone. The device checks all of it (the manifest against the id, the
        // record against its trusted publishers), so a coordinator cannot slip it another.
        auto id = content_id(request);
        ++counters_.catalogue_lookups;
        auto c = catalogue_.find(id);
        if (!c) return json{{"ok", false}, {"error", "content " + id + " is not in the catalogue"}};
        auto manifest = catalogue_.manifest(id);
        if (!manifest)
            return json{{"ok", false},
                        {"error", "the catalogue has no manifest for content " + id +
                                      ": it was published without one (by an older pd admin); publish it again"}};
        return json{{"ok", true},
                    {"content", id},
                    {"name", c->name},
                    {"size", c->size},
                    {"origins", lines_of(c->origins)},
                    {"publication", c->publication},
                    {"manifest", to_base64(reinterpret_cast<const std::uint8_t *>(manifest->data()), manifest->size())}};
    }
    if (op == "publication") return publication_record(content_id(request));
    if (op == "job_stats") {
        auto bytes = request.value("bytes", json::object());
        auto id = required(request, "device_id");
        registry_.add_stats(id, number(bytes, "origin"), number(bytes, "wan"), number(bytes, "lan"));
        ++counters_.job_reports;
        auto office = registry_.office_of(id);
        if (!office.empty() && request.contains("content"))
            rollout_.add_bytes({content_id(request), office, number(bytes, "origin"), number(bytes, "wan"), number(bytes, "lan"),
                                number(bytes, "local")});
        return json{{"ok", true}};
    }
    return std::nullopt;
}

void server::count_received(const std::string &device_id, const std::string &content, const holding &now_held,
                            std::int64_t now) {
    auto c = catalogue_.find(content);
    if (!c || c->block_count == 0) return;
    auto before = registry_.holding_of(device_id, content);
    if (before && before->complete) return;
    std::uint64_t had = before ? before->verified_blocks : 0;
    std::uint64_t has = now_held.complete ? c->block_count : std::min(now_held.verified_blocks, c->block_count);
    if (has <= had) return;
    // Blocks are equal but for the last: the average is exact enough for a rate.
    auto bytes = static_cast<std::uint64_t>(static_cast<double>(has - had) * static_cast<double>(c->size) /
                                            static_cast<double>(c->block_count));
    rollout_.received(registry_.office_of(device_id), bytes, now);
}

// What the publisher signed for a content, for a device that has the manifest but not the
// record (it checks the record itself: trust.publisher_keys), or an administrator.
json server::publication_record(const std::string &content_id) const {
    auto c = catalogue_.find(content_id);
    if (!c || c->publication.empty()) return {{"ok", false}, {"error", "no publication record is stored for this content"}};
    return {{"ok", true}, {"publication", c->publication}};
}

}  // namespace pd::coord
