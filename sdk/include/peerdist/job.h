/*
 * peerdist/job.h - download jobs.
 *
 * A job brings one content into the cache, block by verified block, from the best
 * sources the loaded backends offer, then re-verifies it end to end and delivers it
 * to a destination with an atomic rename. Jobs are named by ids, not pointers, so a
 * stale id is a PD_E_NOT_FOUND, never a crash.
 */
#ifndef PEERDIST_JOB_H
#define PEERDIST_JOB_H

#include "session.h"

PD_BEGIN_DECL

#define PD_JOB_OPTIONS_VERSION 1

/** How a completed content reaches pd_job_options.destination. */
typedef enum pd_delivery {
    PD_DELIVER_COPY = 0,     /**< An independent copy: a copy-on-write clone where the filesystem
                                  supports it, else a kernel-side copy (a second full write). */
    PD_DELIVER_HARDLINK = 1, /**< The default (PD_JOB_OPTIONS_INIT): a hard link to the cache's
                                  file, no second write; a copy across filesystems. The file
                                  is the host's: if the host writes to it, the cache notices
                                  before it serves or reuses the content again, lets go of its
                                  link (never writing into the host's file) and fetches the
                                  content anew when it is next asked for. The file is the
                                  cache's: its owner; mode 0644 on POSIX, as a copy; on
                                  Windows it keeps the cache file's owner-only ACL, so a host
                                  delivering for another account asks for a copy. */
    PD_DELIVERY_FORCE32 = 0x7FFFFFFF
} pd_delivery;

/** Options for pd_job_start(). */
typedef struct pd_job_options {
    uint32_t version;        /**< PD_JOB_OPTIONS_VERSION. */
    const char *destination; /**< File to deliver to (replaced atomically), or NULL to leave the
                                  content in the cache only. Copied. */
    const char *origin;      /**< Origin locator overriding the recorded one, or NULL. Copied. */
    uint32_t pin;            /**< Non-zero: pin the content in the cache. */
    uint32_t delivery;       /**< A pd_delivery; PD_DELIVER_HARDLINK unless set. */
} pd_job_options;

#define PD_JOB_OPTIONS_INIT { PD_JOB_OPTIONS_VERSION, NULL, NULL, 0, PD_DELIVER_HARDLINK }

/** Fill `opts` with defaults. @return PD_OK or PD_E_VERSION. THREAD: any. */
PD_API int pd_job_options_init(pd_job_options *opts, uint32_t version);

typedef enum pd_job_state {
    PD_JOB_QUEUED = 0,
    PD_JOB_RUNNING = 1,
    PD_JOB_PAUSED = 2,
    PD_JOB_VERIFYING = 3,  /**< All blocks stored; end-to-end verification and delivery. */
    PD_JOB_COMPLETED = 4,
    PD_JOB_FAILED = 5,
    PD_JOB_CANCELLED = 6,
    PD_JOB_STATE_FORCE32 = 0x7FFFFFFF
} pd_job_state;

/**
 * Start downloading a content the session knows (pd_content_import()).
 * @param out_job_id  receives the job id (never 0).
 * @return PD_OK; PD_E_NOT_FOUND (unknown content); PD_E_EXISTS (a job for this content is
 *         active: its id is still written); PD_E_MISUSE. Failures after the start
 *         (no source, disk full, quota, integrity) arrive as PD_EVENT_JOB_FAILED.
 * THREAD: any.
 */
PD_API int pd_job_start(uint64_t *out_job_id, pd_session *session, const pd_content_id *id,
                        const pd_job_options *opts);

/** Cancel a job; verified blocks stay in the cache. @return PD_OK, PD_E_NOT_FOUND, PD_E_STATE. */
PD_API int pd_job_cancel(pd_session *session, uint64_t job_id);
/** Pause a running job (blocks in flight finish). @return PD_OK, PD_E_NOT_FOUND, PD_E_STATE. */
PD_API int pd_job_pause(pd_session *session, uint64_t job_id);
/** Resume a paused job. @return PD_OK, PD_E_NOT_FOUND, PD_E_STATE. */
PD_API int pd_job_resume(pd_session *session, uint64_t job_id);

/** A job's status snapshot. */
typedef struct pd_job_status {
    uint32_t struct_size;      /**< Caller sets sizeof(pd_job_status). */
    uint32_t state;            /**< pd_job_state. */
    uint64_t job_id;           /**< The job. */
    pd_content_id content;     /**< What it downloads. */
    uint64_t bytes_total;      /**< Content size. */
    uint64_t bytes_verified;   /**< Verified and durable. */
    uint64_t bytes_by_source[PD_SOURCE_CLASS_COUNT]; /**< Verified bytes per pd_source_class. */
    uint64_t bytes_fetched;    /**< Bytes received from sources this run, rejected ones included. */
    uint64_t blocks_rejected;  /**< Blocks that failed verification. */
    int32_t error_code;        /**< Why it failed, when FAILED. */
    uint32_t reserved;         /**< Zero. */
    int64_t started_ms;        /**< When it started, ms since the Unix epoch. */
    int64_t finished_ms;       /**< 0 while active. */
    char message[256];         /**< Failure reason or delivered path. */
    uint64_t source_fallbacks; /**< Sources given up during the job (each one an event with its reason). */
} pd_job_status;

/**
 * Snapshot a job's status. Finished jobs stay queryable until the session ends.
 * @param out filled up to out->struct_size. @return PD_OK, PD_E_NOT_FOUND, PD_E_MISUSE.
 * THREAD: any.
 */
PD_API int pd_job_status_get(pd_job_status *out, pd_session *session, uint64_t job_id);

/**
 * List job ids with the two-call idiom.
 * @param ids    array of *count ids, or NULL.  @param count in: capacity; out: number of jobs.
 * @return PD_OK or PD_E_BUFS. THREAD: any.
 */
PD_API int pd_job_list(pd_session *session, uint64_t *ids, size_t *count);

/** Name of a job state ("running", ...). OWNERSHIP: static. THREAD: any. */
PD_API const char *pd_job_state_name(uint32_t state);

PD_END_DECL

#endif /* PEERDIST_JOB_H */
