// Shared by the benchmark programs: follow one job's events to its end.
#pragma once

#include <peerdist.h>

#include <cstdio>

#include <sys/resource.h>

// This process's CPU time so far (user + system), in seconds: benchmarks report CPU per GiB
// delivered next to every time.
inline double bench_cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

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
