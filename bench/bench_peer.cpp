// Peer-to-peer transfer: a seeder session holds FILE (published into its cache, not timed);
// a second session with the seeder as its only peer and no usable origin downloads it over
// the secure channel (encrypted, every block verified, durable, delivered). Prints the job's
// seconds and the CPU seconds (user + system) both sessions spent over it.
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
    if (argc != 5) {
        std::fprintf(stderr, "usage: %s FILE SEEDER_CACHE LEECHER_CACHE DEST\n", argv[0]);
        return 2;
    }
    const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8};
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.fleet_key = key;
    o.fleet_key_len = 32;
    o.listen_addresses = "127.0.0.1:0";
    o.cache_dir = argv[2];
    pd_session *seeder = nullptr, *leecher = nullptr;
    if (pd_session_new(&seeder, &o) != PD_OK) return fail("seeder");
    pd_session_set_setting(seeder, "trust.allow_unsigned", "1");  // benchmarks measure transfer, not trust
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    po.add_to_cache = 1;
    pd_manifest *m = nullptr;
    if (pd_content_publish(&m, seeder, argv[1], &po) != PD_OK) return fail("publish");
    pd_buf addr = PD_BUF_INIT;
    pd_session_listen_addresses(&addr, seeder);
    o.cache_dir = argv[3];
    o.listen_addresses = nullptr;
    if (pd_session_new(&leecher, &o) != PD_OK) return fail("leecher");
    pd_session_set_setting(leecher, "trust.allow_unsigned", "1");  // benchmarks measure transfer, not trust
    pd_session_set_setting(leecher, "peer.static_peers", reinterpret_cast<char *>(addr.ptr));
    if (pd_content_import(leecher, m, "/nonexistent-origin") != PD_OK) return fail("import");
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = argv[4];
    auto t0 = std::chrono::steady_clock::now();
    double cpu0 = bench_cpu_seconds();
    uint64_t job = 0;
    if (pd_job_start(&job, leecher, pd_manifest_id(m), &jo) != PD_OK) return fail("start");
    int rc = bench_wait_job(leecher, job);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = bench_cpu_seconds() - cpu0;
    pd_job_status st{};
    st.struct_size = sizeof st;
    pd_job_status_get(&st, leecher, job);
    if (st.bytes_by_source[PD_SOURCE_LAN] != st.bytes_total) {
        std::fprintf(stderr, "not everything came from the peer\n");
        rc = 1;
    }
    std::printf("%.4f %.4f\n", secs, cpu);
    pd_buf_dispose(&addr);
    pd_manifest_free(m);
    pd_session_free(leecher);
    pd_session_free(seeder);
    return rc;
}
