/*
 * pd_test_fetch: downloads one content through the C ABI and reports progress on
 * stdout, one line per event. The resume test kills it with SIGKILL mid-download.
 * usage: pd_test_fetch CACHE PLUGIN_DIR MANIFEST ORIGIN MAX_RATE DEST
 */
#include <peerdist.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what) {
    const pd_error *e = pd_error_last();
    printf("error %s: %d %s\n", what, e->code, e->message);
    return 1;
}

int main(int argc, char **argv) {
    pd_session_options opts = PD_SESSION_OPTIONS_INIT;
    pd_session *s = NULL;
    pd_manifest *m = NULL;
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    pd_job_status st;
    uint64_t job = 0;
    int done = 0, rc = 0;
    if (argc != 7) {
        fprintf(stderr, "usage: %s CACHE PLUGIN_DIR MANIFEST ORIGIN MAX_RATE DEST\n", argv[0]);
        return 2;
    }
    opts.cache_dir = argv[1];
    if (pd_session_new(&s, &opts) != PD_OK) return fail("session");
    if (pd_session_load_plugin(s, argv[2]) != PD_OK) return fail("plugins");
    if (pd_session_set_setting(s, "plugin.origin.max_rate_bytes", argv[5]) != PD_OK) return fail("setting");
    if (pd_session_set_setting(s, "job.flush_interval_ms", "50") != PD_OK) return fail("setting");
    if (pd_session_set_setting(s, "job.progress_interval_ms", "10") != PD_OK) return fail("setting");
    if (pd_session_set_setting(s, "trust.allow_unsigned", "1") != PD_OK) return fail("setting"); /* a resume test, not a trust test */
    if (pd_manifest_read_file(&m, argv[3]) != PD_OK) return fail("manifest");
    if (pd_content_import(s, m, argv[4]) != PD_OK) return fail("import");
    jo.destination = argv[6];
    if (pd_job_start(&job, s, pd_manifest_id(m), &jo) != PD_OK) return fail("start");
    while (!done) {
        pd_event ev[16];
        size_t n = 0, i;
        if (pd_session_wait_events(s, ev, sizeof(pd_event), 16, &n, 30000) != PD_OK) return fail("wait");
        for (i = 0; i < n; ++i) {
            if (ev[i].job_id != job) continue;
            if (ev[i].type == PD_EVENT_JOB_PROGRESS) printf("progress %llu\n", (unsigned long long)ev[i].bytes_done);
            if (ev[i].type == PD_EVENT_JOB_COMPLETED) done = 1;
            if (ev[i].type == PD_EVENT_JOB_FAILED) {
                printf("failed %d %s\n", ev[i].error_code, ev[i].message);
                done = 1;
                rc = 1;
            }
            fflush(stdout);
        }
    }
    st.struct_size = sizeof st;
    pd_job_status_get(&st, s, job);
    printf("stats state=%s local=%llu origin=%llu fetched=%llu\n", pd_job_state_name(st.state),
           (unsigned long long)st.bytes_by_source[PD_SOURCE_LOCAL], (unsigned long long)st.bytes_by_source[PD_SOURCE_ORIGIN],
           (unsigned long long)st.bytes_fetched);
    pd_manifest_free(m);
    pd_session_free(s);
    return rc;
}
