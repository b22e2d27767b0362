// The two ends of a transfer between offices, for the lab benchmark of the background class
// (bench/background_bench.py runs them in network namespaces on either side of a shaped link).
//   pd_bench_wan seed FILE CACHE LISTEN MANIFEST_OUT   publish FILE, serve it until killed
//   pd_bench_wan fetch MANIFEST CACHE PEER DEST [KEY=VALUE...]
//                                                      pull it from PEER as a peer in another
//                                                      office ("ip:port wan"), no origin
// fetch prints one line per transfer event ("<seconds> paused|resumed <message>") and, at the
// end, "done <seconds> <bytes>".
#include <peerdist.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

static const uint8_t fleet_key[32] = {7, 7, 7, 1};

static int fail(const char *what) {
    std::fprintf(stderr, "%s: %s\n", what, pd_error_last()->message);
    return 1;
}

static int seed(char **argv) {
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.fleet_key = fleet_key;
    o.fleet_key_len = 32;
    o.listen_addresses = argv[2];
    o.cache_dir = argv[1];
    pd_session *s = nullptr;
    if (pd_session_new(&s, &o) != PD_OK) return fail("session");
    pd_session_set_setting(s, "trust.allow_unsigned", "1");  // benchmarks measure transfer, not trust
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    po.add_to_cache = 1;
    pd_manifest *m = nullptr;
    if (pd_content_publish(&m, s, argv[0], &po) != PD_OK) return fail("publish");
    if (pd_manifest_write_file(m, argv[3]) != PD_OK) return fail("manifest");
    std::printf("ready\n");
    std::fflush(stdout);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    int sig = 0;
    sigwait(&set, &sig);
    pd_manifest_free(m);
    pd_session_free(s);
    return 0;
}

static int fetch(int argc, char **argv) {
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.fleet_key = fleet_key;
    o.fleet_key_len = 32;
    o.cache_dir = argv[1];
    pd_session *s = nullptr;
    if (pd_session_new(&s, &o) != PD_OK) return fail("session");
    pd_session_set_setting(s, "trust.allow_unsigned", "1");  // benchmarks measure transfer, not trust
    std::string peer = std::string(argv[2]) + " wan";
    pd_session_set_setting(s, "peer.static_peers", peer.c_str());
    for (int i = 4; i < argc; ++i) {
        std::string kv = argv[i];
        auto eq = kv.find('=');
        if (eq == std::string::npos || pd_session_set_setting(s, kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str()) != PD_OK)
            return fail(argv[i]);
    }
    pd_manifest *m = nullptr;
    if (pd_manifest_read_file(&m, argv[0]) != PD_OK) return fail("manifest");
    if (pd_content_import(s, m, "/nonexistent-origin") != PD_OK) return fail("import");
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = argv[3];
    auto t0 = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    uint64_t job = 0;
    if (pd_job_start(&job, s, pd_manifest_id(m), &jo) != PD_OK) return fail("start");
    int rc = -1;
    while (rc < 0) {
        pd_event ev[64];
        size_t n = 0;
        if (pd_session_wait_events(s, ev, sizeof(pd_event), 64, &n, 1000) != PD_OK) continue;
        for (size_t i = 0; i < n; ++i) {
            if (ev[i].job_id != job) continue;
            if (ev[i].type == PD_EVENT_TRANSFER_PAUSED || ev[i].type == PD_EVENT_TRANSFER_RESUMED)
                std::printf("%.3f %s %s\n", seconds(), ev[i].type == PD_EVENT_TRANSFER_PAUSED ? "paused" : "resumed", ev[i].message);
            if (ev[i].type == PD_EVENT_JOB_COMPLETED) rc = 0;
            if (ev[i].type == PD_EVENT_JOB_FAILED) {
                std::fprintf(stderr, "%s\n", ev[i].message);
                rc = 1;
            }
            std::fflush(stdout);
        }
    }
    std::printf("done %.3f %llu\n", seconds(), static_cast<unsigned long long>(pd_manifest_size(m)));
    pd_manifest_free(m);
    pd_session_free(s);
    return rc;
}

int main(int argc, char **argv) {
    if (argc == 6 && std::strcmp(argv[1], "seed") == 0) return seed(argv + 2);
    if (argc >= 6 && std::strcmp(argv[1], "fetch") == 0) return fetch(argc - 2, argv + 2);
    std::fprintf(stderr, "usage: %s seed FILE CACHE LISTEN MANIFEST_OUT\n"
                         "       %s fetch MANIFEST CACHE PEER DEST [KEY=VALUE...]\n", argv[0], argv[0]);
    return 2;
}
