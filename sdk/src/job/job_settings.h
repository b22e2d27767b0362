// The settings a job runs by, read once from the session's string-keyed table when the job
// starts and again whenever a setting changes (session::apply_setting), so hot paths read
// plain fields. Names and ranges: docs/settings.md; validation: core/settings.cpp.
#pragma once

#include "core/settings.h"
#include "util/text.h"

#include <cstdint>
#include <string>
#include <vector>

namespace pd::core {

struct job_settings {
    std::uint64_t piece_bytes = 0;         // job.piece_size_kib
    unsigned max_origin_pieces = 0;        // job.max_pieces_in_flight
    std::int64_t flush_interval_ms = 0;
    std::uint64_t flush_bytes = 0;
    std::int64_t progress_interval_ms = 0;
    bool reverify_all = false;             // job.reverify = 2
    std::int64_t refresh_ms = 0;           // peer.refresh_ms: HAVE refresh and the peer tick
    unsigned max_requests = 0;             // peer.max_requests
    std::int64_t request_queue_ms = 0;
    int request_timeout_ms = 0;
    std::int64_t answer_deadline_ms = 0;   // a holder silent this long stops counting (swarm::demote_silent)
    int connect_timeout_ms = 0;
    std::int64_t coop_wait_ms = 0;
    std::int64_t coop_settle_ms = 0;
    std::int64_t discovery_interval_ms = 0;
    std::int64_t stall_timeout_ms = 0;
    std::vector<std::string> static_peers;
    bool lan_background = false, wan_background = true;

    static job_settings read(const settings &s) {
        job_settings j;
        j.piece_bytes = static_cast<std::uint64_t>(s.get_int("job.piece_size_kib")) * 1024;
        j.max_origin_pieces = static_cast<unsigned>(s.get_int("job.max_pieces_in_flight"));
        j.flush_interval_ms = s.get_int("job.flush_interval_ms");
        j.flush_bytes = static_cast<std::uint64_t>(s.get_int("job.flush_bytes"));
        j.progress_interval_ms = s.get_int("job.progress_interval_ms");
        j.reverify_all = s.get_int("job.reverify") >= 2;
        j.refresh_ms = s.get_int("peer.refresh_ms");
        j.max_requests = static_cast<unsigned>(s.get_int("peer.max_requests"));
        j.request_queue_ms = s.get_int("peer.request_queue_ms");
        j.request_timeout_ms = static_cast<int>(s.get_int("peer.request_timeout_ms"));
        j.answer_deadline_ms = s.get_int("peer.answer_deadline_ms");
        j.connect_timeout_ms = static_cast<int>(s.get_int("peer.connect_timeout_ms"));
        j.coop_wait_ms = s.get_int("peer.coop_wait_ms");
        j.coop_settle_ms = s.get_int("peer.coop_settle_ms");
        j.discovery_interval_ms = s.get_int("peer.discovery_interval_ms");
        j.stall_timeout_ms = s.get_int("job.stall_timeout_ms");
        j.static_peers = split_list(s.get("peer.static_peers").value_or(""), ',');
        j.lan_background = s.get("lan.transport") == std::string("background");
        j.wan_background = s.get("wan.transport") == std::string("background");
        return j;
    }
};

}  // namespace pd::core
