#include "coordinator/prestaging.h"

#include "util/error.h"

#include <algorithm>

namespace pd::coord {

prestaging::prestaging(coordinator_store &store, registry &reg, const catalogue &cat)
    : store_(store), registry_(reg), catalogue_(cat) {}

void prestaging::load() {
    requests_.clear();
    for (auto &r : store_.prestages()) {
        auto &req = requests_[r.content_id];
        req.offices.insert(r.office);
        req.deadline_ms = r.deadline_ms;
        req.requested_ms = r.requested_ms;
    }
    bytes_.clear();
    for (auto &s : store_.content_stats()) bytes_[{s.content_id, s.office}] = s;
}

std::vector<std::string> prestaging::submit(const std::string &content, const std::vector<std::string> &offices,
                                            std::int64_t deadline_ms, std::int64_t now_ms) {
    auto c = catalogue_.find(content);
    if (!c) fail(PD_E_INVALID, PD_CATEGORY_API, "content " + content + " is not in the catalogue: publish it first");
    if (!c->manifest_bytes)
        fail(PD_E_INVALID, PD_CATEGORY_API, "the catalogue has no manifest for content " + content + ": publish it again");
    if (deadline_ms <= now_ms) fail(PD_E_INVALID, PD_CATEGORY_API, "the deadline has passed");
    const auto &topo = registry_.current_topology();
    request r;
    r.deadline_ms = deadline_ms;
    r.requested_ms = now_ms;
    if (offices.empty()) r.offices.insert("*");
    for (auto &name : offices) {
        const office *o = topo.find(name);
        if (!o) fail(PD_E_INVALID, PD_CATEGORY_API, "no office '" + name + "' in the topology");
        if (o->type == office_type::vpn)
            fail(PD_E_INVALID, PD_CATEGORY_API, "office '" + name + "' is a VPN office: its devices share nothing, so nothing can be pre-staged there");
        for (auto *up : topo.path_to_root(*o))
            if (up->type != office_type::vpn) r.offices.insert(up->name);
    }
    store_.remove_prestage(content, {});
    for (auto &o : r.offices) store_.put_prestage({content, o, deadline_ms, now_ms});
    requests_[content] = r;
    return offices_of(r);
}

bool prestaging::cancel(const std::string &content) {
    if (!requests_.erase(content)) return false;
    store_.remove_prestage(content, {});
    return true;
}

void prestaging::forget_content(const std::string &content) {
    requests_.erase(content);
    for (auto it = bytes_.begin(); it != bytes_.end();) it = it->first.first == content ? bytes_.erase(it) : std::next(it);
    for (auto it = samples_.begin(); it != samples_.end();) it = it->first.first == content ? samples_.erase(it) : std::next(it);
}

std::vector<std::string> prestaging::offices_of(const request &r) const {
    const auto &topo = registry_.current_topology();
    std::vector<std::pair<std::size_t, std::string>> by_depth;
    for (auto &o : topo.offices())
        if (o.type != office_type::vpn && (r.offices.count("*") || r.offices.count(o.name)))
            by_depth.emplace_back(topo.path_to_root(o).size(), o.name);
    std::stable_sort(by_depth.begin(), by_depth.end(), [](auto &a, auto &b) { return a.first < b.first; });
    std::vector<std::string> out;
    for (auto &[depth, name] : by_depth) out.push_back(name);
    return out;
}

bool prestaging::wants(const request &r, const std::string &office) const {
    if (r.offices.count(office)) return true;
    if (!r.offices.count("*")) return false;
    const auto *o = registry_.current_topology().find(office);
    return o && o->type != office_type::vpn;
}

std::vector<std::string> prestaging::due(const std::string &device_id, std::int64_t now_ms) {
    std::vector<std::string> out;
    if (requests_.empty()) return out;
    auto office = registry_.office_of(device_id);
    if (office.empty() || registry_.rvp(office, now_ms) != device_id) return out;
    for (auto &[content, r] : requests_) {
        if (!wants(r, office) || registry_.progress(office, content).complete) continue;
        // Parents before children: the office it pulls from must have begun receiving it,
        // so its pull crosses only its own WAN link (the top office takes the origin).
        auto upstream = registry_.upstream_of(office, content, now_ms);
        if (!upstream.empty() && !begun(upstream, content)) continue;
        out.push_back(content);
    }
    return out;
}

bool prestaging::begun(const std::string &office, const std::string &content) const {
    auto p = registry_.progress(office, content);
    return p.complete || p.verified_blocks > 0;
}

void prestaging::sample(const std::string &device_id, const std::string &content, std::uint64_t verified_blocks,
                        std::int64_t now_ms) {
    auto office = registry_.office_of(device_id);
    if (office.empty() || verified_blocks == 0) return;
    auto &s = samples_[{content, office}];
    if (!s.first_ms || verified_blocks < s.first_blocks) s = {now_ms, now_ms, verified_blocks, verified_blocks};
    if (verified_blocks >= s.last_blocks) {
        s.last_ms = now_ms;
        s.last_blocks = verified_blocks;
    }
}

void prestaging::add_bytes(const std::string &content, const std::string &office, std::uint64_t origin, std::uint64_t wan,
                           std::uint64_t lan) {
    content_office_stats delta{content, office, origin, wan, lan};
    store_.add_content_stats(delta);
    auto &total = bytes_[{content, office}];
    total.content_id = content;
    total.office = office;
    total.origin_bytes += origin;
    total.wan_bytes += wan;
    total.lan_bytes += lan;
}

nlohmann::json prestaging::status(const std::string &only, std::int64_t now_ms) {
    using json = nlohmann::json;
    json list = json::array();
    for (auto &[content, r] : requests_) {
        if (!only.empty() && content != only) continue;
        auto c = catalogue_.find(content);
        if (!c) continue;
        double block_bytes = c->block_count ? static_cast<double>(c->size) / static_cast<double>(c->block_count) : 0;
        json offices = json::array();
        bool all_done = true, late = false;
        for (auto &name : offices_of(r)) {
            auto p = registry_.progress(name, content);
            auto rvp = registry_.rvp(name, now_ms);
            auto upstream = registry_.upstream_of(name, content, now_ms);
            std::string state = p.complete ? "done"
                                : p.verified_blocks ? "pulling"
                                : rvp.empty() ? "no device online"
                                : !upstream.empty() && !begun(upstream, content) ? "waiting for " + upstream
                                                                                                               : "asked";
            json row = {{"office", name}, {"state", state}, {"rvp", rvp}, {"upstream", upstream},
                        {"verified_blocks", p.complete ? c->block_count : p.verified_blocks}, {"block_count", c->block_count}};
            auto b = bytes_.find({content, name});
            row["bytes"] = {{"origin", b == bytes_.end() ? 0 : b->second.origin_bytes},
                            {"wan", b == bytes_.end() ? 0 : b->second.wan_bytes},
                            {"lan", b == bytes_.end() ? 0 : b->second.lan_bytes}};
            // The rate measured between the office's first and latest progress reports, and
            // the finish it predicts.
            auto s = samples_.find({content, name});
            if (!p.complete && s != samples_.end() && s->second.last_ms > s->second.first_ms) {
                double rate = static_cast<double>(s->second.last_blocks - s->second.first_blocks) * block_bytes * 1000.0 /
                              static_cast<double>(s->second.last_ms - s->second.first_ms);
                row["rate_bytes_per_s"] = static_cast<std::uint64_t>(rate);
                if (rate > 0) {
                    double left = static_cast<double>(c->block_count - std::min(c->block_count, p.verified_blocks)) * block_bytes;
                    auto finish = now_ms + static_cast<std::int64_t>(left * 1000.0 / rate);
                    row["expected_finish_ms"] = finish;
                    late = late || finish > r.deadline_ms;
                }
            }
            all_done = all_done && p.complete;
            if (!p.complete && now_ms > r.deadline_ms) late = true;
            offices.push_back(row);
        }
        list.push_back({{"content", content}, {"name", c->name}, {"size", c->size}, {"deadline_ms", r.deadline_ms},
                        {"requested_ms", r.requested_ms}, {"done", all_done}, {"late", late}, {"offices", offices}});
    }
    return list;
}

}  // namespace pd::coord
