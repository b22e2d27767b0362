// Shared by the benchmark programs: follow one job's events to its end.
#pragma once

#include <peerdist.h>

#include <cstdio>

// Returns 0 when the job completed, 1 when it failed (the reason goes to stderr).
inline int bench_wait_job(pd_session *s, uint64_t job) {
    for (;;) {
        pd_event ev[64];
        size_t n = 0;
        if (pd_session_wait_events(s, ev, sizeof(pd_event), 64, &n, 1000) != PD_OK) continue;
        for (size_t i = 0; i < n; ++i) {
            if (ev[i].job_id != job) continue;
            if (ev[i].type == PD_EVENT_JOB_COMPLETED) return 0;
            if (ev[i].type == PD_EVENT_JOB_FAILED) {
                std::fprintf(stderr, "%s\n", ev[i].message);
                return 1;
            }
        }
    }
}
