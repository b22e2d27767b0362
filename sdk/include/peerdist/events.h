/*
 * peerdist/events.h - the session's bounded event queue.
 *
 * Everything asynchronous (job progress, completion, failure, fallbacks, rejected
 * blocks, plugin messages) is an event. The host pulls them: poll, wait with a
 * timeout, or watch the wake-up file descriptor from its own event loop. When the
 * queue is full the oldest events are kept and new ones are counted; the next
 * event delivered after room frees up is PD_EVENT_DROPPED with that count.
 */
#ifndef PEERDIST_EVENTS_H
#define PEERDIST_EVENTS_H

#include "session.h"

PD_BEGIN_DECL

typedef enum pd_event_type {
    PD_EVENT_NONE = 0,
    PD_EVENT_DROPPED = 1,         /**< `count` events were lost because the queue was full. */
    PD_EVENT_JOB_STARTED = 2,     /**< A job started; bytes_total is the content size. */
    PD_EVENT_JOB_PROGRESS = 3,    /**< bytes_done durable and verified of bytes_total. */
    PD_EVENT_JOB_COMPLETED = 4,   /**< Verified end to end and delivered; message holds the path. */
    PD_EVENT_JOB_FAILED = 5,      /**< error_code and message say why. Verified blocks are kept. */
    PD_EVENT_JOB_PAUSED = 6,
    PD_EVENT_JOB_RESUMED = 7,
    PD_EVENT_JOB_CANCELLED = 8,
    PD_EVENT_SOURCE_FALLBACK = 9, /**< A source was given up; message says which and why. */
    PD_EVENT_BLOCK_REJECTED = 10, /**< Block `count` failed verification; message names the source. */
    PD_EVENT_PLUGIN_LOADED = 11,  /**< message holds the plugin name. */
    PD_EVENT_PLUGIN = 12,         /**< A message a plugin emitted; count is the plugin's code. */
    PD_EVENT_CACHE_EVICTED = 13,  /**< Content left the cache: evicted to make room, or retired by an authority (message says which); bytes_total is its size. */
    PD_EVENT_LOG = 14,            /**< A log line at level `count`. */
    PD_EVENT_TRANSFER_PAUSED = 15,  /**< A background transfer yields to other traffic on its link; message says which peer and the measured queueing delay. */
    PD_EVENT_TRANSFER_RESUMED = 16, /**< The link is free again and the background transfer speeds back up. */
    PD_EVENT_TRANSFER_RAISED = 17,  /**< An authority raised the job's transfers from other offices to the foreground class (a deadline the background class would miss); message says why. */
    PD_EVENT_TYPE_FORCE32 = 0x7FFFFFFF
} pd_event_type;

/** One event. The SDK writes at most the stride the caller passes. */
typedef struct pd_event {
    uint32_t type;          /**< pd_event_type. */
    int32_t error_code;     /**< pd_error_code for failures, else PD_OK. */
    uint64_t job_id;        /**< Job concerned, or 0. */
    pd_content_id content;  /**< Content concerned, or all zeroes. */
    uint32_t source_class;  /**< pd_source_class concerned, when relevant. */
    uint32_t reserved;      /**< Zero. */
    uint64_t bytes_done;    /**< Progress events: verified bytes so far. */
    uint64_t bytes_total;   /**< Progress events: the content's size. */
    uint64_t count;         /**< Type-specific number (see pd_event_type). */
    int64_t timestamp_ms;   /**< Milliseconds since the Unix epoch. */
    char message[256];      /**< UTF-8, NUL-terminated, possibly truncated. */
} pd_event;

/**
 * Take up to `capacity` queued events without waiting.
 * @param events      caller array, stride `event_size` (sizeof(pd_event) as compiled).
 * @param event_size  the caller's sizeof(pd_event); the SDK writes min(its size, event_size).
 * @param count       out: number of events written (0 when none).
 * @return PD_OK or PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_session_poll_events(pd_session *session, pd_event *events, size_t event_size,
                                  size_t capacity, size_t *count);

/**
 * Like pd_session_poll_events(), but waits up to timeout_ms (negative: forever) for
 * at least one event.
 * @return PD_OK with *count > 0, PD_E_TIMEOUT when none arrived, PD_E_MISUSE.
 * THREAD: any but the notify callback's.
 */
PD_API int pd_session_wait_events(pd_session *session, pd_event *events, size_t event_size,
                                  size_t capacity, size_t *count, int32_t timeout_ms);

/**
 * A file descriptor that is readable while events are queued, for select/poll/epoll
 * loops (POSIX). Do not read from or close it; polling the events clears it.
 * @param out_fd  receives the descriptor. OWNERSHIP: owned by the session.
 * @return PD_OK, PD_E_UNSUPPORTED on Windows (pd_session_event_handle). THREAD: any.
 */
PD_API int pd_session_event_fd(int *out_fd, pd_session *session);

/**
 * A Windows event object (a HANDLE, manual-reset) that is signalled while events are
 * queued, for WaitForMultipleObjects / MsgWaitForMultipleObjects loops. Do not reset or
 * close it; polling the events clears it.
 * @param out_handle  receives the HANDLE. OWNERSHIP: owned by the session.
 * @return PD_OK, PD_E_UNSUPPORTED on POSIX (pd_session_event_fd). THREAD: any.
 */
PD_API int pd_session_event_handle(void **out_handle, pd_session *session);

/** Name of an event type ("job-progress", ...). OWNERSHIP: static. THREAD: any. */
PD_API const char *pd_event_type_name(uint32_t type);

PD_END_DECL

#endif /* PEERDIST_EVENTS_H */
