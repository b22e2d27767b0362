#include "capi/translate.h"

#include "job/job.h"

#include <peerdist/job.h>

#include <cstring>

using namespace pd::capi;

template <class Fn>
static int with_job(pd_session *session, uint64_t job_id, Fn fn) {
    return guard([&] {
        auto &s = checked(session);
        s.call([&] { fn(*s.find_job(job_id)); });
        return PD_OK;
    });
}

extern "C" {

PD_API int pd_job_options_init(pd_job_options *opts, uint32_t version) {
    const pd_job_options defaults = PD_JOB_OPTIONS_INIT;
    static_assert(PD_JOB_OPTIONS_VERSION == 1, "list the new version's struct size");
    return init_options(opts, version, defaults, {sizeof(pd_job_options)}, "pd_job_options");
}

PD_API int pd_job_start(uint64_t *out_job_id, pd_session *session, const pd_content_id *id, const pd_job_options *opts) {
    return guard([&] {
        auto &s = checked(session);
        require(out_job_id, "out_job_id");
        *out_job_id = 0;
        require(id, "id");
        pd::core::job_request req;
        std::memcpy(req.content.data(), id->bytes, 32);
        if (opts) {
            if (opts->version == 0 || opts->version > PD_JOB_OPTIONS_VERSION)
                pd::fail(PD_E_VERSION, PD_CATEGORY_API, "pd_job_options version is newer than this library");
            if (opts->destination) req.destination = opts->destination;
            if (opts->origin) req.origin = opts->origin;
            req.pin = opts->pin != 0;
            if (opts->delivery > PD_DELIVER_HARDLINK) misuse("unknown delivery mode");
            req.hardlink = opts->delivery == PD_DELIVER_HARDLINK;
        }
        // The manifest is read here, on the caller's thread: the network thread never waits
        // on SQLite.
        auto manifest = s.store().manifest(req.content);
        *out_job_id = s.call([&] { return s.start_job(req, std::move(manifest), out_job_id); });
        return PD_OK;
    });
}

PD_API int pd_job_cancel(pd_session *session, uint64_t job_id) {
    return with_job(session, job_id, [](pd::core::job &j) { j.cancel(); });
}

PD_API int pd_job_pause(pd_session *session, uint64_t job_id) {
    return with_job(session, job_id, [](pd::core::job &j) { j.pause(); });
}

PD_API int pd_job_resume(pd_session *session, uint64_t job_id) {
    return with_job(session, job_id, [](pd::core::job &j) { j.resume(); });
}

PD_API int pd_job_status_get(pd_job_status *out, pd_session *session, uint64_t job_id) {
    return guard([&] {
        require(out, "out");
        auto &s = checked(session);
        pd_job_status st{};
        st.struct_size = sizeof st;
        s.call([&] { s.find_job(job_id)->status(st); });
        copy_sized(out, st);
        return PD_OK;
    });
}

PD_API int pd_job_list(pd_session *session, uint64_t *ids, size_t *count) {
    return guard([&] {
        auto &s = checked(session);
        require(count, "count");
        auto all = s.call([&] { return s.job_ids(); });
        std::size_t capacity = *count;
        *count = all.size();
        if (!ids) return PD_OK;
        if (capacity < all.size()) pd::fail(PD_E_BUFS, PD_CATEGORY_API, "job id array too small");
        std::copy(all.begin(), all.end(), ids);
        return PD_OK;
    });
}

PD_API const char *pd_job_state_name(uint32_t state) {
    switch (state) {
    case PD_JOB_QUEUED: return "queued";
    case PD_JOB_RUNNING: return "running";
    case PD_JOB_PAUSED: return "paused";
    case PD_JOB_VERIFYING: return "verifying";
    case PD_JOB_COMPLETED: return "completed";
    case PD_JOB_FAILED: return "failed";
    case PD_JOB_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

}  // extern "C"
