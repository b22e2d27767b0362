#include "core/settings.h"

#include "util/error.h"
#include "util/hex.h"
#include "util/text.h"

#include <charconv>

namespace pd::core {

settings::settings() {
    specs_ = {
        {"job.piece_size_kib", {1024, 64, 4096}},  // a REQUEST carries at most 64 blocks of 64 KiB
        {"job.max_pieces_in_flight", {8, 1, 256}},
        {"job.flush_interval_ms", {500, 10, 60000}},
        {"job.flush_bytes", {32 << 20, 64 << 10, 1ll << 32}},
        {"job.progress_interval_ms", {250, 10, 60000}},
        {"job.reverify", {1, 1, 2}},
        {"store.quota_bytes", {0, 0, INT64_MAX}},
        {"store.quota_percent", {0, 0, 100}},
        {"log.level", {2, 0, 3}},
        {"peer.max_connections", {64, 1, 4096}},
        {"peer.upload_rate_bytes", {0, 0, INT64_MAX}},
        {"peer.idle_timeout_ms", {60000, 100, 3600000}},
        {"peer.handshake_timeout_ms", {5000, 100, 60000}},
        {"peer.connect_timeout_ms", {3000, 50, 60000}},
        {"peer.refresh_ms", {500, 50, 60000}},
        {"peer.max_requests", {8, 1, 64}},
        {"peer.request_queue_ms", {250, 10, 10000}},
        {"peer.request_timeout_ms", {10000, 100, 600000}},
        {"peer.answer_deadline_ms", {5000, 100, 600000}},
        {"wan.budget_bytes", {0, 0, INT64_MAX}},
        {"wan.target_delay_ms", {25, 5, 100}},
        {"peer.coop_wait_ms", {30000, 0, 600000}},
        {"peer.coop_settle_ms", {1000, 0, 60000}},
        {"peer.discovery_interval_ms", {3000, 100, 600000}},
        {"job.stall_timeout_ms", {60000, 500, 86400000}},
        // 1: contents without a publication record may be imported (labs; docs/security.md).
        {"trust.allow_unsigned", {0, 0, 1}},
    };
    // Peers to try for every job ("ip:port,ip:port"): operators and tests; backends add more.
    // Publishers whose records admit a content: Ed25519 public keys, hex, comma-separated.
    string_defaults_ = {{"peer.static_peers", ""}, {"lan.transport", "foreground"}, {"wan.transport", "background"},
                        {"trust.publisher_keys", ""}};
}

std::vector<std::array<std::uint8_t, 32>> parse_publisher_keys(const std::string &list) {
    std::vector<std::array<std::uint8_t, 32>> keys;
    for (auto &entry : split_list(list, ',')) {
        auto raw = from_hex(entry);
        if (!raw || raw->size() != 32)
            fail(PD_E_INVALID, PD_CATEGORY_API,
                 "setting 'trust.publisher_keys': '" + entry.substr(0, 80) + "' is not a publisher key (64 hex digits)");
        if (keys.size() == max_publisher_keys)
            fail(PD_E_INVALID, PD_CATEGORY_API, "setting 'trust.publisher_keys' lists more than " + std::to_string(max_publisher_keys) + " keys");
        std::array<std::uint8_t, 32> k{};
        std::copy(raw->begin(), raw->end(), k.begin());
        keys.push_back(k);
    }
    return keys;
}

static bool is_plugin_key(const std::string &key) {
    // plugin.<name>.<key>
    if (key.rfind("plugin.", 0) != 0) return false;
    auto dot = key.find('.', 7);
    return dot != std::string::npos && dot > 7 && dot + 1 < key.size();
}

void settings::set(const std::string &key, const std::string &value) {
    if (key == "trust.publisher_keys") {
        parse_publisher_keys(value);  // throws naming the bad entry
    } else if (key == "lan.transport" || key == "wan.transport") {
        if (value != "foreground" && value != "background")
            fail(PD_E_INVALID, PD_CATEGORY_API, "setting '" + key + "' is 'foreground' or 'background', got '" + value + "'");
    } else if (!is_plugin_key(key) && !string_defaults_.count(key)) {
        auto it = specs_.find(key);
        if (it == specs_.end()) fail(PD_E_NOT_FOUND, PD_CATEGORY_API, "unknown setting '" + key + "'");
        std::int64_t v = 0;
        auto res = std::from_chars(value.data(), value.data() + value.size(), v);
        if (res.ec != std::errc() || res.ptr != value.data() + value.size())
            fail(PD_E_INVALID, PD_CATEGORY_API, "setting '" + key + "' needs an integer, got '" + value + "'");
        if (v < it->second.min || v > it->second.max)
            fail(PD_E_INVALID, PD_CATEGORY_API,
                 "setting '" + key + "' must be in [" + std::to_string(it->second.min) + ", " +
                     std::to_string(it->second.max) + "], got " + value);
    }
    std::lock_guard lk(mu_);
    values_[key] = value;
}

std::optional<std::string> settings::get(const std::string &key) const {
    {
        std::lock_guard lk(mu_);
        auto it = values_.find(key);
        if (it != values_.end()) return it->second;
    }
    auto s = specs_.find(key);
    if (s != specs_.end()) return std::to_string(s->second.def);
    auto t = string_defaults_.find(key);
    if (t != string_defaults_.end()) return t->second;
    return std::nullopt;
}

std::int64_t settings::get_int(const std::string &key) const {
    auto v = get(key);
    if (!v) fail(PD_E_NOT_FOUND, PD_CATEGORY_API, "unknown setting '" + key + "'");
    std::int64_t out = 0;
    std::from_chars(v->data(), v->data() + v->size(), out);
    return out;
}

}  // namespace pd::core
