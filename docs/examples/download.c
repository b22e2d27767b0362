/*
 * download.c - the smallest useful peerdist host, in C99 against the installed SDK:
 *
 *   cc -std=c99 download.c $(pkg-config --cflags --libs peerdist) -o download
 *   ./download CACHE_DIR PLUGIN_DIR MANIFEST ORIGIN DEST PUBLISHER_KEY
 *
 * It opens a session that trusts one publisher (PUBLISHER_KEY: 64 hex digits, what
 * `pd publisher-key` printed), loads the backend plugins, imports a manifest with its
 * origin and the publisher's record (MANIFEST.sig, from `pd publish --sign`), starts a job
 * and follows its events until the content is verified and delivered.
 */
#include <peerdist.h>

#include <stdio.h>
#include <string.h>

static int report(const char *what) {
    const pd_error *e = pd_error_last();
    fprintf(stderr, "%s: %s (%s)\n", what, e->message, pd_strerror(e->code));
    return 1;
}

int main(int argc, char **argv) {
    pd_session_options opts = PD_SESSION_OPTIONS_INIT;
    pd_job_options job_opts = PD_JOB_OPTIONS_INIT;
    pd_session *session = NULL;
    pd_manifest *manifest = NULL;
    pd_buf record = PD_BUF_INIT;
    char record_path[4096];
    uint64_t job = 0;
    int finished = 0, rc = 1;

    if (argc != 7 || strlen(argv[3]) + 5 > sizeof record_path) {
        fprintf(stderr, "usage: %s CACHE_DIR PLUGIN_DIR MANIFEST ORIGIN DEST PUBLISHER_KEY\n", argv[0]);
        return 2;
    }
    if (pd_version() != PD_VERSION_NUM) fprintf(stderr, "note: library %s, headers %s\n", pd_version_string(), PD_VERSION_STRING);

    opts.cache_dir = argv[1];
    if (pd_session_new(&session, &opts) != PD_OK) return report("session");
    if (pd_session_set_setting(session, "trust.publisher_keys", argv[6]) != PD_OK) { report("publisher key"); goto out; }
    if (pd_session_load_plugin(session, argv[2]) != PD_OK) { report("plugins"); goto out; }
    if (pd_manifest_read_file(&manifest, argv[3]) != PD_OK) { report("manifest"); goto out; }
    snprintf(record_path, sizeof record_path, "%s.sig", argv[3]);
    if (pd_publication_read_file(&record, record_path) != PD_OK) { report("publication record"); goto out; }
    if (pd_content_import_published(session, manifest, argv[4], record.ptr, record.size) != PD_OK) { report("import"); goto out; }
    job_opts.destination = argv[5];
    if (pd_job_start(&job, session, pd_manifest_id(manifest), &job_opts) != PD_OK) { report("start"); goto out; }

    while (!finished) {
        pd_event events[16];
        size_t count = 0, i;
        if (pd_session_wait_events(session, events, sizeof(pd_event), 16, &count, 1000) != PD_OK) continue;
        for (i = 0; i < count; ++i) {
            const pd_event *e = &events[i];
            if (e->job_id != job) continue;
            if (e->type == PD_EVENT_JOB_PROGRESS)
                printf("%llu / %llu bytes verified\n", (unsigned long long)e->bytes_done, (unsigned long long)e->bytes_total);
            else if (e->type == PD_EVENT_JOB_COMPLETED) {
                printf("delivered to %s\n", e->message);
                finished = 1;
                rc = 0;
            } else if (e->type == PD_EVENT_JOB_FAILED) {
                fprintf(stderr, "failed: %s (%s)\n", e->message, pd_strerror(e->error_code));
                finished = 1;
            }
        }
    }
out:
    pd_buf_dispose(&record);
    pd_manifest_free(manifest);
    pd_session_free(session);
    return rc;
}
