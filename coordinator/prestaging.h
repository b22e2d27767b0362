// Pre-staging (docs/coordinator.md "Pre-staging"): an administrator asks for a content to be
// in some or all offices by a deadline, and each office's RVP pulls it — over the background
// class, parents before children, each WAN link once — before any device there asks. This
// part holds the requests, decides which RVP fetches what now, and reports each office's
// progress; the registry knows the offices and who holds what, the catalogue the contents.
// Not thread-safe: the server's network thread owns it.
#pragma once

#include "coordinator/catalogue.h"
#include "coordinator/registry.h"
#include "coordinator/rollout.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace pd::coord {

struct prestaging_options {
    // At most this many offices pull one content from the same office at once: the others
    // wait their turn, so a parent's uplink is not oversubscribed (a wave).
    std::size_t wave_width = 8;
    // What a level of the office tree adds to a pre-staging (the wait for the parent's first
    // blocks: about a heartbeat), in the plan checked at submission.
    std::int64_t level_delay_ms = 5000;
    // Where a line goes when an office is raised to the foreground class.
    std::function<void(const std::string &)> note;
};

// What an RVP is told in its heartbeat reply: the contents to fetch now, and those of them it
// must fetch over the foreground class to meet their deadlines.
struct prestage_instructions {
    std::vector<std::string> fetch, foreground;
};

class prestaging {
public:
    prestaging(coordinator_store &store, registry &reg, const catalogue &cat, const rollout &bytes,
               prestaging_options options = {});
    // Reads the requests and measured link rates back from the store (restart).
    void load();

    // Asks for `content` in `offices` (empty: every office but VPN ones, also offices added
    // later) by `deadline_ms`. An office's ancestors are pre-staged with it: the content
    // reaches an office through them. Throws PD_E_INVALID: a content not in the catalogue or
    // without a manifest, an unknown or VPN office, a deadline already past, or a plan that
    // cannot be met — an office one of whose links, at the fastest rate measured on it (or
    // its WAN budget), cannot carry the content in time, naming the office and the figures.
    struct plan {
        std::vector<std::string> offices;     // ancestors included, parents first
        std::vector<std::string> unmeasured;  // offices with a link on their path whose rate is not known yet
        nlohmann::json estimates;             // office -> expected seconds, where known
    };
    plan submit(const std::string &content, const std::vector<std::string> &offices, std::int64_t deadline_ms,
                std::int64_t now_ms);
    // Withdraws every request for the content (what was fetched stays); false when none.
    bool cancel(const std::string &content);
    // A retired content: its requests are gone with it (the store dropped them).
    void forget_content(const std::string &content);

    // What `device` should fetch now: it is its office's RVP, its office was asked for the
    // content and does not hold it whole, and the office it pulls from has begun receiving it
    // (or it is the top office): parents before children.
    // Those of them the office cannot have by the deadline in the background class, judged
    // from its measured rate, are raised to the foreground class (for good, with a note).
    prestage_instructions due(const std::string &device_id, std::int64_t now_ms);
    // A device's progress on a content (heartbeats; registry::report_holding records it).
    void sample(const std::string &device_id, const std::string &content, std::uint64_t verified_blocks, std::int64_t now_ms);

    // Every request (or the content's): per office its state, progress, bytes by source, the
    // measured rate and the expected finish against the deadline (docs/coordinator.md).
    nlohmann::json status(const std::string &content, std::int64_t now_ms);

private:
    struct request {
        std::set<std::string> offices;  // "*": every office
        std::int64_t deadline_ms = 0, requested_ms = 0;
    };
    // The request's offices in the topology now, parents before children.
    std::vector<std::string> offices_of(const request &r) const;
    bool wants(const request &r, const std::string &office) const;
    // Whether the office holds any of the content yet (whole, or blocks reported).
    bool begun(const std::string &office, const std::string &content) const;
    // The office's pull, as measured: bytes per second (0: nothing yet or too early to say).
    double measured_rate(const std::string &content, const std::string &office, double block_bytes) const;
    bool needs_raising(const std::string &content, const std::string &office, const request &r, std::int64_t now_ms);
    // The fastest rate an office's link carried a whole pull at, or its WAN budget if lower;
    // 0 when neither is known.
    double capacity(const std::string &office) const;
    void remember_link_rate(const std::string &content, const std::string &office, double block_bytes);

    coordinator_store &store_;
    registry &registry_;
    const catalogue &catalogue_;
    const rollout &rollout_;  // bytes by source, for the status
    prestaging_options options_;
    using key = std::pair<std::string, std::string>;  // (content, office)
    std::map<key, std::int64_t> asked_ms_;  // when the office's RVP was first told to fetch it
    std::set<key> raised_;
    std::map<std::string, double> link_rates_;  // office -> fastest whole pull, bytes/s
    std::map<std::string, request> requests_;  // by content
    // (content, office) -> the first and latest progress samples.
    struct rate_sample {
        std::int64_t first_ms = 0, last_ms = 0;
        std::uint64_t first_blocks = 0, last_blocks = 0;
    };
    std::map<std::pair<std::string, std::string>, rate_sample> samples_;
};

}  // namespace pd::coord
