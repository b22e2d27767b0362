#include "coordinator/rollout.h"

#include <algorithm>

namespace pd::coord {

namespace {

void add_to(content_office_stats &total, const content_office_stats &delta) {
    total.origin_bytes += delta.origin_bytes;
    total.wan_bytes += delta.wan_bytes;
    total.lan_bytes += delta.lan_bytes;
    total.local_bytes += delta.local_bytes;
}

}  // namespace

nlohmann::json bytes_json(const content_office_stats &b) {
    return {{"origin", b.origin_bytes}, {"wan", b.wan_bytes}, {"lan", b.lan_bytes}, {"local", b.local_bytes}};
}

rollout::rollout(coordinator_store &store, std::int64_t window_ms) : store_(store), window_ms_(std::max<std::int64_t>(window_ms, 1000)) {}

void rollout::load() {
    bytes_.clear();
    for (auto &s : store_.content_stats()) bytes_[{s.content_id, s.office}] = s;
}

void rollout::add_bytes(const content_office_stats &delta) {
    store_.add_content_stats(delta);
    auto &total = bytes_[{delta.content_id, delta.office}];
    total.content_id = delta.content_id;
    total.office = delta.office;
    add_to(total, delta);
}

content_office_stats rollout::bytes(const std::string &content, const std::string &office) const {
    auto it = bytes_.find({content, office});
    return it == bytes_.end() ? content_office_stats{content, office} : it->second;
}

std::map<std::string, content_office_stats> rollout::bytes_by_office() const {
    std::map<std::string, content_office_stats> out;
    for (auto &[key, b] : bytes_) {
        auto &o = out[key.second];
        o.office = key.second;
        add_to(o, b);
    }
    return out;
}

void rollout::forget_content(const std::string &content) {
    for (auto it = bytes_.begin(); it != bytes_.end();) it = it->first.first == content ? bytes_.erase(it) : std::next(it);
}

void rollout::received(const std::string &office, std::uint64_t bytes, std::int64_t now_ms) {
    if (office.empty() || bytes == 0) return;
    auto &seconds = received_[office];
    auto second = now_ms / 1000;
    if (!seconds.empty() && seconds.back().first == second)
        seconds.back().second += bytes;
    else
        seconds.emplace_back(second, bytes);
    while (!seconds.empty() && seconds.front().first <= second - window_ms_ / 1000) seconds.pop_front();
}

double rollout::rate(const std::string &office, std::int64_t now_ms) const {
    auto it = received_.find(office);
    if (it == received_.end()) return 0;
    auto since = now_ms / 1000 - window_ms_ / 1000;
    std::uint64_t total = 0;
    for (auto &[second, bytes] : it->second)
        if (second > since) total += bytes;
    return static_cast<double>(total) * 1000.0 / static_cast<double>(window_ms_);
}

}  // namespace pd::coord
