// File-storage download: a fresh session fetches FILE through the origin plugin into
// a cache and delivers it to DEST (verified, durable, atomic). Prints seconds.
#include <peerdist.h>

#include "bench_util.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

static int fail(const char *what) {
    std::fprintf(stderr, "%s: %s\n", what, pd_error_last()->message);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 5) {
        std::fprintf(stderr, "usage: %s FILE CACHE_DIR DEST|- [copy|hardlink]\n", argv[0]);
        return 2;
    }
    pd_manifest *m = nullptr;
    if (pd_manifest_hash_file(&m, argv[1], nullptr) != PD_OK) return fail("hash");
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.cache_dir = argv[2];
    pd_session *s = nullptr;
    if (pd_session_new(&s, &o) != PD_OK) return fail("session");
    pd_session_set_setting(s, "trust.allow_unsigned", "1");  // benchmarks measure transfer, not trust
    if (pd_session_load_plugin(s, PD_BENCH_PLUGIN_DIR) != PD_OK) return fail("plugins");
    // PD_BENCH_SETTINGS="key=value,key=value" tunes the session for experiments.
    if (const char *env = std::getenv("PD_BENCH_SETTINGS")) {
        std::string all = env;
        for (std::size_t pos = 0; pos < all.size();) {
            std::size_t end = all.find(',', pos);
            if (end == std::string::npos) end = all.size();
            std::string kv = all.substr(pos, end - pos);
            std::size_t eq = kv.find('=');
            if (eq != std::string::npos &&
                pd_session_set_setting(s, kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str()) != PD_OK)
                return fail("setting");
            pos = end + 1;
        }
    }
    // PD_BENCH_ORIGIN overrides where the bytes come from (e.g. an http:// URL of FILE).
    const char *origin = std::getenv("PD_BENCH_ORIGIN");
    if (pd_content_import(s, m, origin ? origin : argv[1]) != PD_OK) return fail("import");
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = std::string(argv[3]) == "-" ? nullptr : argv[3];
    // Without a mode, the library's default (PD_JOB_OPTIONS_INIT).
    if (argc == 5 && std::string(argv[4]) == "hardlink") jo.delivery = PD_DELIVER_HARDLINK;
    if (argc == 5 && std::string(argv[4]) == "copy") jo.delivery = PD_DELIVER_COPY;
    auto t0 = std::chrono::steady_clock::now();
    uint64_t job = 0;
    if (pd_job_start(&job, s, pd_manifest_id(m), &jo) != PD_OK) return fail("start");
    int rc = bench_wait_job(s, job);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%.4f\n", secs);
    pd_session_free(s);
    pd_manifest_free(m);
    return rc;
}
