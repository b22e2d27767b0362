#include "coordinator/prestaging.h"

#include "util/error.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace pd::coord {

namespace {

// How long a pull is watched before its rate is judged, and the margin a projected finish
// must keep before the deadline in the background class.
constexpr std::int64_t observe_ms = 3000;
constexpr double deadline_margin = 1.25;

double block_bytes_of(const content_record &c) {
    return c.block_count ? static_cast<double>(c.size) / static_cast<double>(c.block_count) : 0;
}

std::string seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f s", s);
    return buf;
}

}  // namespace

prestaging::prestaging(coordinator_store &store, registry &reg, const catalogue &cat, const rollout &bytes,
                       prestaging_options options)
    : store_(store), registry_(reg), catalogue_(cat), rollout_(bytes), options_(std::move(options)) {
    if (!options_.note) options_.note = [](const std::string &) {};
}

void prestaging::load() {
    requests_.clear();
    for (auto &r : store_.prestages()) {
        auto &req = requests_[r.content_id];
        req.offices.insert(r.office);
        req.deadline_ms = r.deadline_ms;
        req.requested_ms = r.requested_ms;
    }
    link_rates_.clear();
    for (auto &o : registry_.current_topology().offices())
        if (auto rate = store_.meta("link_rate:" + o.name)) link_rates_[o.name] = std::strtod(rate->c_str(), nullptr);
}

double prestaging::capacity(const std::string &office) const {
    double rate = 0;
    if (auto it = link_rates_.find(office); it != link_rates_.end()) rate = it->second;
    auto budget = static_cast<double>(registry_.wan_budget(office));
    if (budget > 0 && (rate == 0 || budget < rate)) rate = budget;
    return rate;
}

void prestaging::remember_link_rate(const std::string &content, const std::string &office, double block_bytes) {
    auto s = samples_.find({content, office});
    if (s == samples_.end() || s->second.last_ms - s->second.first_ms < observe_ms) return;
    double rate = static_cast<double>(s->second.last_blocks - s->second.first_blocks) * block_bytes * 1000.0 /
                  static_cast<double>(s->second.last_ms - s->second.first_ms);
    auto &best = link_rates_[office];
    if (rate <= best) return;
    best = rate;
    store_.set_meta("link_rate:" + office, std::to_string(static_cast<std::uint64_t>(rate)));
}

prestaging::plan prestaging::submit(const std::string &content, const std::vector<std::string> &offices,
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
    // The plan: the content streams down the tree, so an office has it when the slowest link
    // on its path has carried it, plus a heartbeat or so per level. Refused when even the
    // fastest rate measured on a link (or its budget) cannot make it.
    plan p;
    p.offices = offices_of(r);
    p.estimates = nlohmann::json::object();
    double size = static_cast<double>(c->size);
    for (auto &name : p.offices) {
        const office *o = topo.find(name);
        double slowest = 0;
        bool known = true;
        auto path = topo.path_to_root(*o);
        for (std::size_t i = 0; i + 1 < path.size(); ++i) {  // every link but the top office's origin pull
            double cap = capacity(path[i]->name);
            if (cap <= 0) known = false;
            else slowest = slowest == 0 ? cap : std::min(slowest, cap);
        }
        // The links whose rate is known bound the time from below: enough to refuse, even when
        // another link on the path is not measured yet.
        double need_s = (slowest > 0 ? size / slowest : 0) +
                        static_cast<double>(path.size() - 1) * static_cast<double>(options_.level_delay_ms) / 1000.0;
        double left_s = static_cast<double>(deadline_ms - now_ms) / 1000.0;
        if (known) p.estimates[name] = need_s;
        else p.unmeasured.push_back(name);
        if (slowest > 0 && need_s > left_s)
            fail(PD_E_INVALID, PD_CATEGORY_API,
                 "office '" + name + "' cannot have it by the deadline: " + std::to_string(c->size) + " bytes over links that carried at most " +
                     std::to_string(static_cast<std::uint64_t>(slowest)) + " bytes/s need about " + seconds(need_s) +
                     ", and the deadline is in " + seconds(left_s));
    }
    store_.remove_prestage(content, {});
    for (auto &o : r.offices) store_.put_prestage({content, o, deadline_ms, now_ms});
    requests_[content] = r;
    for (auto it = raised_.begin(); it != raised_.end();) it = it->first == content ? raised_.erase(it) : std::next(it);
    for (auto it = asked_ms_.begin(); it != asked_ms_.end();) it = it->first.first == content ? asked_ms_.erase(it) : std::next(it);
    return p;
}

bool prestaging::cancel(const std::string &content) {
    if (!requests_.erase(content)) return false;
    store_.remove_prestage(content, {});
    return true;
}

void prestaging::forget_content(const std::string &content) {
    requests_.erase(content);
    for (auto it = raised_.begin(); it != raised_.end();) it = it->first == content ? raised_.erase(it) : std::next(it);
    for (auto it = asked_ms_.begin(); it != asked_ms_.end();) it = it->first.first == content ? asked_ms_.erase(it) : std::next(it);
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

prestage_instructions prestaging::due(const std::string &device_id, std::int64_t now_ms) {
    prestage_instructions out;
    if (requests_.empty()) return out;
    auto office = registry_.office_of(device_id);
    if (office.empty() || registry_.rvp(office, now_ms) != device_id) return out;
    for (auto &[content, r] : requests_) {
        if (!wants(r, office)) continue;
        if (registry_.progress(office, content).complete) {
            if (auto c = catalogue_.find(content)) remember_link_rate(content, office, block_bytes_of(*c));
            continue;
        }
        // Parents before children: the office it pulls from must have begun receiving it,
        // so its pull crosses only its own WAN link (the top office takes the origin).
        auto upstream = registry_.upstream_of(office, content, now_ms);
        if (!upstream.empty() && !begun(upstream, content)) continue;
        // A wave: at most wave_width offices pull one content from the same office at once.
        if (!upstream.empty() && !asked_ms_.count({content, office})) {
            std::size_t pulling = 0;
            for (auto &[k, ms] : asked_ms_)
                if (k.first == content && k.second != office && registry_.upstream_of(k.second, content, now_ms) == upstream &&
                    !registry_.progress(k.second, content).complete)
                    ++pulling;
            if (pulling >= options_.wave_width) continue;
        }
        asked_ms_.emplace(key{content, office}, now_ms);
        out.fetch.push_back(content);
        if (needs_raising(content, office, r, now_ms)) out.foreground.push_back(content);
    }
    return out;
}

double prestaging::measured_rate(const std::string &content, const std::string &office, double block_bytes) const {
    auto s = samples_.find({content, office});
    if (s == samples_.end() || s->second.last_ms <= s->second.first_ms) return 0;
    return static_cast<double>(s->second.last_blocks - s->second.first_blocks) * block_bytes * 1000.0 /
           static_cast<double>(s->second.last_ms - s->second.first_ms);
}

bool prestaging::needs_raising(const std::string &content, const std::string &office, const request &r, std::int64_t now_ms) {
    if (raised_.count({content, office})) return true;
    auto c = catalogue_.find(content);
    auto asked = asked_ms_.find({content, office});
    if (!c || asked == asked_ms_.end() || now_ms - asked->second < observe_ms) return false;  // too early to judge
    double block_bytes = block_bytes_of(*c);
    auto p = registry_.progress(office, content);
    double left = static_cast<double>(c->block_count - std::min(c->block_count, p.verified_blocks)) * block_bytes;
    double rate = measured_rate(content, office, block_bytes);
    double time_left_s = static_cast<double>(r.deadline_ms - now_ms) / 1000.0;
    double need_s = rate > 0 ? left / rate : 1e12;
    if (need_s * deadline_margin <= time_left_s) return false;
    raised_.insert({content, office});
    options_.note("pre-staging " + content.substr(0, 16) + "…: office '" + office +
                  "' raised to the foreground class: at " + std::to_string(static_cast<std::uint64_t>(rate)) +
                  " bytes/s in the background class it needs about " + (rate > 0 ? seconds(need_s) : std::string("forever")) +
                  " more, and the deadline is in " + seconds(time_left_s));
    return true;
}

bool prestaging::begun(const std::string &office, const std::string &content) const {
    auto p = registry_.progress(office, content);
    return p.complete || p.verified_blocks > 0;
}

void prestaging::sample(const std::string &device_id, const std::string &content, std::uint64_t verified_blocks,
                        std::int64_t now_ms) {
    auto office = registry_.office_of(device_id);
    if (office.empty() || verified_blocks == 0) return;
    // Every device reports what it fetches; the office's pull is its RVP's, for a request.
    auto r = requests_.find(content);
    if (r == requests_.end() || !wants(r->second, office) || registry_.rvp(office, now_ms) != device_id) return;
    auto &s = samples_[{content, office}];
    if (!s.first_ms || verified_blocks < s.first_blocks) s = {now_ms, now_ms, verified_blocks, verified_blocks};
    if (verified_blocks >= s.last_blocks) {
        s.last_ms = now_ms;
        s.last_blocks = verified_blocks;
    }
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
                        {"verified_blocks", p.complete ? c->block_count : p.verified_blocks}, {"block_count", c->block_count},
                        {"raised", raised_.count({content, name}) != 0}};
            row["bytes"] = bytes_json(rollout_.bytes(content, name));
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
