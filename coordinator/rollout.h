// How contents spread through the offices, for administrators (docs/console.md): the bytes
// each job brought into an office by source, and each office's receive rate measured from
// the progress its devices report. The console's rollout and office pages, the pre-staging
// status and /metrics read it; nothing routes by it. Not thread-safe: the server's network
// thread owns it.
#pragma once

#include "coordinator/store.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>

namespace pd::coord {

// Bytes by source as replies show them: {origin, wan, lan, local}.
nlohmann::json bytes_json(const content_office_stats &b);

class rollout {
public:
    // `window_ms`: how far back an office's receive rate looks (a few heartbeats, so one
    // device's report does not make the rate jump).
    rollout(coordinator_store &store, std::int64_t window_ms);
    // Reads the byte counts back from the store (restart).
    void load();

    // Bytes a finished job brought into the office, by source (agents' "job_stats").
    void add_bytes(const content_office_stats &delta);
    // What the office has received of the content so far (zeros when nothing).
    content_office_stats bytes(const std::string &content, const std::string &office) const;
    // Every office's totals over the contents in the catalogue.
    std::map<std::string, content_office_stats> bytes_by_office() const;
    // A retired content: its counts leave with it (the store dropped them).
    void forget_content(const std::string &content);

    // Verified bytes an office's devices gained since their last report (heartbeats'
    // progress, completions).
    void received(const std::string &office, std::uint64_t bytes, std::int64_t now_ms);
    // The office's receive rate over the window, bytes per second.
    double rate(const std::string &office, std::int64_t now_ms) const;

private:
    coordinator_store &store_;
    std::int64_t window_ms_;
    std::map<std::pair<std::string, std::string>, content_office_stats> bytes_;  // (content, office)
    // office -> (second, bytes received in it), oldest first, at most a window's seconds.
    std::map<std::string, std::deque<std::pair<std::int64_t, std::uint64_t>>> received_;
};

}  // namespace pd::coord
