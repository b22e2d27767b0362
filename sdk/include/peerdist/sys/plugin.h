/*
 * peerdist/sys/plugin.h - the backend plugin ABI (a separate stability tier).
 *
 * A plugin is a shared library exporting one C symbol, pd_plugin_describe(), that
 * returns a static descriptor. The host offers its ABI range; the plugin's range must
 * overlap it, and the host then asks the plugin for the backend vtable of the chosen
 * version. Structs start with struct_size and only ever grow at the end: the host
 * copies min(sizes) into a zeroed struct, so a missing optional hook reads as NULL.
 * Plugins link nothing from libpeerdist: every host service is lent through
 * pd_host_api. No C++ object crosses this boundary. See docs/plugin-abi.md.
 */
#ifndef PEERDIST_SYS_PLUGIN_H
#define PEERDIST_SYS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "../export.h"
#include "../session.h"

PD_BEGIN_DECL

/** The newest plugin ABI version these headers describe. */
#define PD_PLUGIN_ABI_VERSION 1
/** Name of the one symbol a plugin exports. */
#define PD_PLUGIN_ENTRY_SYMBOL "pd_plugin_describe"

/** Plugins export their entry point with this. */
#if defined(_WIN32)
#  define PD_PLUGIN_EXPORT __declspec(dllexport)
#else
#  define PD_PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

/**
 * A segment of a cached content as Windows' BranchCache peers name it: by the segment ID
 * and secret of the content's Content Information (pd_content_set_branchcache_info), which
 * derive from the origin's server secret (docs/protocol.md §5–6).
 */
typedef struct pd_branchcache_segment {
    uint32_t struct_size;     /**< The plugin sets sizeof(pd_branchcache_segment) as it knows it. */
    uint32_t index;           /**< The segment's index in the content. */
    uint8_t content[32];      /**< The content's id. */
    uint8_t id[32];           /**< The segment ID (HoHoDk) [MS-PCCRD] and [MS-PCCRR] name it by. */
    uint8_t secret[32];       /**< The segment secret (Kp): [MS-PCCRR] encrypts its blocks under it. */
    uint64_t first_block;     /**< The content's index of the segment's first block. */
    uint32_t block_count;     /**< Blocks in the segment (at most 512). */
    uint32_t verified_count;  /**< Of them, how many this device holds verified. */
    uint8_t verified[64];     /**< Bit i%8 of byte i/8 set: block first_block + i is held verified. */
} pd_branchcache_segment;

/** Services the host lends a backend. Valid from create() until destroy() returns. */
typedef struct pd_host_api {
    uint32_t struct_size;   /**< sizeof as the host was built. */
    uint32_t abi_version;   /**< Negotiated plugin ABI version. */
    void *host;             /**< Pass back as the first argument of every service. */

    /** Log a line (level: pd_log_level). THREAD: any. */
    void(PD_CALLBACK *log)(void *host, int32_t level, const char *message);

    /**
     * Read one of the plugin's own settings: `key` "max_rate" reads the session setting
     * "plugin.<name>.max_rate", so hosts can change it at run time.
     * @return length of the value (written NUL-terminated when it fits in `size`),
     *         or -3 (PD_E_NOT_FOUND). THREAD: any.
     */
    int64_t(PD_CALLBACK *get_setting)(void *host, const char *key, char *buf, size_t size);

    /** Emit a PD_EVENT_PLUGIN event for a job (0: none). THREAD: any. */
    void(PD_CALLBACK *emit_event)(void *host, uint64_t job_id, int32_t code, const char *message);

    /** Monotonic clock in milliseconds (injectable in tests). THREAD: any. */
    int64_t(PD_CALLBACK *now_ms)(void *host);

    /** Non-zero once the job has been cancelled or paused: long reads should stop early. THREAD: any. */
    int32_t(PD_CALLBACK *job_should_stop)(void *host, uint64_t job_id);

    /**
     * The backend gave up one of its own sources for a job and moved to the next (e.g. the
     * CDN failed, file storage takes over). Becomes PD_EVENT_SOURCE_FALLBACK and counts in
     * the job's statistics. THREAD: any.
     */
    void(PD_CALLBACK *report_fallback)(void *host, uint64_t job_id, const char *reason);

    /**
     * The content's discovery label: a keyed hash of the content id under the fleet key, so
     * discovery traffic never shows content ids (BranchCache shows its segment ids).
     * @return 0, or PD_PLUGIN_E_NOT_FOUND when the session has no fleet key. THREAD: any.
     */
    int32_t(PD_CALLBACK *content_label)(void *host, const uint8_t id[32], uint8_t label[32]);

    /**
     * Whether this device holds blocks of the content with `label`: fills the verified and
     * total block counts. @return 0, or PD_PLUGIN_E_NOT_FOUND when no content has it. THREAD: any.
     */
    int32_t(PD_CALLBACK *lookup_label)(void *host, const uint8_t label[32], uint64_t *verified_blocks,
                                       uint64_t *block_count);

    /**
     * This device's peer listen addresses ("ip:port", comma-separated).
     * @return the text length (written NUL-terminated when it fits). THREAD: any.
     */
    int64_t(PD_CALLBACK *listen_addresses)(void *host, char *buf, size_t size);

    /* Appended in 0.2 (check struct_size before use). */

    /**
     * This device's facts with the host's overrides (what a coordinator elects by), and its
     * stable device id: 32 hex digits, the same for every session on one cache directory.
     * @param facts      filled up to facts->struct_size.
     * @param device_id  receives the id, NUL-terminated (33 bytes are enough).
     * @return 0, or PD_PLUGIN_E_GENERIC when the facts cannot be measured. THREAD: any.
     */
    int32_t(PD_CALLBACK *device_facts)(void *host, pd_device_facts *facts, char *device_id, size_t device_id_size);

    /* Appended in 0.3 (check struct_size before use). */

    /**
     * The office WAN budget an authority (a coordinator) sets for this device: bytes per
     * second it may request from other offices, all jobs together; 0 lifts it. The host
     * applies the smaller of this and its own wan.budget_bytes setting, from the next
     * request on. THREAD: any.
     */
    void(PD_CALLBACK *set_wan_budget)(void *host, uint64_t bytes_per_second);

    /* Appended in 0.5 (check struct_size before use). */

    /**
     * Sign with this device's own Ed25519 key (created once per cache directory, never
     * leaving the host), for a backend proving the device's identity to an authority (the
     * hierarchy plugin to its coordinator, docs/coordinator.md "Devices"). What is signed is
     * "peerdist device v1", a 0 byte, then `message`: no plugin can obtain a device
     * signature that means anything outside that domain.
     * @param signature   receives the 64-byte signature.
     * @param public_key  receives the device's 32-byte public key.
     * @return 0, or PD_PLUGIN_E_INVALID for a NULL argument. THREAD: any.
     */
    int32_t(PD_CALLBACK *device_sign)(void *host, const uint8_t *message, size_t len, uint8_t signature[64],
                                      uint8_t public_key[32]);

    /**
     * The fleet's discovery key: 32 bytes derived from the fleet key (HMAC, "peerdist
     * discovery key v2"), for sealing discovery datagrams so only fleet members can read or
     * forge them (docs/protocol.md §3). Never the fleet key itself.
     * @return 0, or PD_PLUGIN_E_NOT_FOUND when the session has no fleet key. THREAD: any.
     */
    int32_t(PD_CALLBACK *discovery_key)(void *host, uint8_t key[32]);

    /**
     * An authority this backend speaks for (a coordinator) revoked the device holding this
     * Ed25519 public key: from now on the host refuses it as a peer in both directions (its
     * HELLO is refused, it is never dialled) and closes the connections it has open. Lasts
     * for the session; a backend reports every revoked key again in a new session.
     * @return 0, or PD_PLUGIN_E_INVALID for a NULL key. THREAD: any.
     */
    int32_t(PD_CALLBACK *refuse_device)(void *host, const uint8_t public_key[32]);

    /* Appended in 0.5, second part (check struct_size before use). */

    /**
     * Bring a content into this device's cache, as an authority (a coordinator pre-staging
     * it into the office) asks. The host learns the content from the backends' catalogues
     * when it does not know it (describe_content), under the session's trust policy, then
     * starts a job that leaves it in the cache — unless a job for it runs or it is complete.
     * Returns at once; what follows is the job's events, or a warning in the log when the
     * content cannot be described or is refused.
     * @param flags  0, or PD_PLUGIN_REQUEST_FOREGROUND: the authority needs it sooner than the
     *               background class would bring it (a deadline): the job's transfers from
     *               other offices use the foreground class from now on (a running job is
     *               raised, with a PD_EVENT_TRANSFER_RAISED). Without the flag a raised job
     *               stays raised.
     * @return 0, or PD_PLUGIN_E_INVALID for a NULL id or unknown flags. THREAD: any.
     */
    int32_t(PD_CALLBACK *request_content)(void *host, const uint8_t id[32], uint32_t flags);

    /**
     * An authority retired the content (docs/coordinator.md "Catalogue"): the host cancels
     * its jobs and removes it from the cache, pinned or not, and logs it. Returns at once.
     * @return 0, or PD_PLUGIN_E_INVALID for a NULL id. THREAD: any.
     */
    int32_t(PD_CALLBACK *retire_content)(void *host, const uint8_t id[32]);

    /**
     * An authority's rule for this device's office: `allowed` 0 forbids multicast and
     * broadcast discovery (a WiFi office, docs/hierarchy.md), 1 allows it again. Backends
     * that broadcast ask discovery_broadcast_allowed() before each send. THREAD: any.
     */
    void(PD_CALLBACK *set_discovery_broadcast)(void *host, int32_t allowed);

    /** 1 when this device may send multicast or broadcast discovery now, 0 when not. THREAD: any. */
    int32_t(PD_CALLBACK *discovery_broadcast_allowed)(void *host);

    /* Appended in 0.5, third part (check struct_size before use): BranchCache on the wire. */

    /**
     * The cached segment with this segment ID (HoHoDk, `id_len` bytes), among the contents
     * whose Content Information is recorded. `out->struct_size` says how much to fill.
     * @return 0; PD_PLUGIN_E_NOT_FOUND; PD_PLUGIN_E_INVALID for a NULL argument. THREAD: any.
     */
    int32_t(PD_CALLBACK *branchcache_segment)(void *host, const uint8_t *id, size_t id_len, pd_branchcache_segment *out);

    /**
     * A block this device holds verified, to serve a peer: copies it into `buf` when `size`
     * holds it. @return the block's length; PD_PLUGIN_E_NOT_FOUND when the block is not
     * held verified; PD_PLUGIN_E_GENERIC when the cache cannot read it. THREAD: any but the
     * host's network thread (it reads the disk).
     */
    int64_t(PD_CALLBACK *read_block)(void *host, const uint8_t content[32], uint64_t block, void *buf, size_t size);

    /**
     * Segment `index` of a cached content whose Content Information is recorded, to fetch its
     * blocks from Windows' BranchCache peers. `out->struct_size` says how much to fill.
     * @return 0; PD_PLUGIN_E_NOT_FOUND past the last segment, or without recorded Content
     *         Information; PD_PLUGIN_E_INVALID for a NULL argument. THREAD: any.
     */
    int32_t(PD_CALLBACK *branchcache_segment_of)(void *host, const uint8_t content[32], uint32_t index,
                                                 pd_branchcache_segment *out);

    /**
     * Records the Content Information V1 an origin gave for a cached content (X-P2P-PeerDist),
     * checked as pd_content_set_branchcache_info checks it: it must describe exactly the
     * content's blocks. @return 0; PD_PLUGIN_E_NOT_FOUND for a content the cache does not
     * know; PD_PLUGIN_E_INVALID for bytes that are not Content Information V1 of this
     * content's blocks, or a NULL argument. THREAD: any but the host's network thread.
     */
    int32_t(PD_CALLBACK *set_branchcache_info)(void *host, const uint8_t content[32], const uint8_t *info, size_t len);
} pd_host_api;

/** The content a backend is asked for. Borrowed for the duration of the call. */
typedef struct pd_content_ref {
    uint32_t struct_size;  /**< sizeof(pd_content_ref) as the host knows it. */
    uint32_t reserved;     /**< Zero. */
    uint8_t id[32];        /**< Content id. */
    uint64_t size;         /**< Content size in bytes. */
    const char *name;      /**< Display name (never a path). */
    const char *origin;    /**< Origin locator recorded at publication, or "". */
    uint64_t job_id;       /**< Job asking. */
} pd_content_ref;

/**
 * A content as a backend's catalogue describes it (describe_content). Every pointer is
 * borrowed for the duration of the callback; the host checks all of it: the manifest against
 * the content id, the record against its trusted publishers.
 */
typedef struct pd_content_description {
    uint32_t struct_size;         /**< sizeof(pd_content_description) as the plugin knows it. */
    uint32_t reserved;            /**< Zero. */
    const uint8_t *manifest;      /**< The manifest (docs/content-model.md). */
    size_t manifest_len;          /**< Its length in bytes. */
    const uint8_t *publication;   /**< The publisher's signed record, or NULL. */
    size_t publication_len;       /**< Its length in bytes (0 without one). */
    const char *origins;          /**< Origin locators, newline-separated, in order; "" for none. */
} pd_content_description;

/** What describe_content hands a description to. */
typedef void(PD_CALLBACK *pd_content_description_fn)(void *context, const pd_content_description *description);

/** What describe_origin hands Content Information to (borrowed for the call). */
typedef void(PD_CALLBACK *pd_content_info_fn)(void *context, const uint8_t *info, size_t len);

/** request_content: fetch over the foreground class (docs/plugin-abi.md). */
#define PD_PLUGIN_REQUEST_FOREGROUND 1u

/** Return codes plugins use (same values as pd_error_code). */
#define PD_PLUGIN_OK 0
#define PD_PLUGIN_E_GENERIC (-1)
#define PD_PLUGIN_E_NOT_FOUND (-3)
#define PD_PLUGIN_E_INVALID (-9)
#define PD_PLUGIN_E_IO (-11)
#define PD_PLUGIN_E_CANCELLED (-15)
#define PD_PLUGIN_E_TIMEOUT (-16)
#define PD_PLUGIN_E_CHANGED (-20)

/** Backend vtable, ABI version 1. Hooks marked REQUIRED must be non-NULL. */
typedef struct pd_backend_vtable {
    uint32_t struct_size;   /**< sizeof(pd_backend_vtable) as the plugin was built. */
    uint32_t source_class;  /**< pd_source_class of the bytes this backend provides. */

    /**
     * REQUIRED. Create the backend instance.
     * @param self    receives the instance.
     * @param host    lent services; keep the pointer.
     * @param config  plugin configuration as JSON text ("{}" when none).
     * @return PD_PLUGIN_OK or a negative code (the plugin is then unloaded).
     */
    int32_t(PD_CALLBACK *create)(void **self, const pd_host_api *host, const char *config);

    /** REQUIRED. Destroy the instance; no other hook is running or will run. */
    void(PD_CALLBACK *destroy)(void *self);

    /**
     * Optional. Open a stream of the content's bytes. THREAD: a source I/O thread.
     * @param message  on failure, a reason (NUL-terminated, at most message_size bytes).
     * @return PD_PLUGIN_OK; PD_PLUGIN_E_NOT_FOUND when this backend cannot serve the content
     *         (the host tries the next source); PD_PLUGIN_E_CHANGED when the origin's bytes
     *         no longer match the publication; another negative code on failure.
     */
    int32_t(PD_CALLBACK *open)(void *self, void **stream, const pd_content_ref *content,
                               char *message, size_t message_size);

    /**
     * Optional (required with open). Read `length` bytes at `offset` into `buffer`.
     * Blocking; called from several source I/O threads at once on one stream.
     * @param read  receives the bytes read; fewer than `length` only at the content's end.
     * @return PD_PLUGIN_OK or a negative code with a reason in `message`.
     */
    int32_t(PD_CALLBACK *read)(void *self, void *stream, uint64_t offset, void *buffer, size_t length,
                               size_t *read, char *message, size_t message_size);

    /** Optional (required with open). Close a stream; no read on it is running. */
    void(PD_CALLBACK *close)(void *self, void *stream);

    /** Optional. The device now holds a complete, verified content (announce it). */
    void(PD_CALLBACK *content_available)(void *self, const pd_content_ref *content);

    /**
     * Optional. Find peers holding blocks of a content: write their "ip:port" addresses,
     * one per line, NUL-terminated, into `out`. A line may end with " wan": that peer is in
     * another office, its bytes count as PD_SOURCE_WAN, it gets only pieces no LAN peer
     * holds, and it goes over the wan.transport class (background: delay-based, yields to
     * other traffic) within the office WAN budget (wan.budget_bytes). Blocking, bounded by the backend's own
     * timeout; the core connects to them over the secure channel and verifies every block.
     * THREAD: a source I/O thread. @return the number of peers written, or a negative code.
     */
    int32_t(PD_CALLBACK *find_peers)(void *self, const pd_content_ref *content, char *out, size_t out_size);

    /* Appended in 0.2: absent (NULL) in plugins built before; the host checks struct_size. */

    /**
     * Optional. May this device fetch the content from the origin now? Asked before origin
     * sources are opened and again at every discovery round: a hierarchy lets only its top
     * office take the origin, the others wait for their office or the office above.
     * THREAD: a source I/O thread. @return 1 allowed, 0 not now, PD_PLUGIN_E_NOT_FOUND no opinion.
     */
    int32_t(PD_CALLBACK *origin_allowed)(void *self, const pd_content_ref *content);

    /**
     * Optional. A job ended. `state` is a pd_job_state (COMPLETED, FAILED, CANCELLED);
     * `bytes_by_source[i]` the verified bytes of source class i, `classes` entries.
     * THREAD: the network thread; return quickly.
     */
    void(PD_CALLBACK *job_finished)(void *self, const pd_content_ref *content, int32_t state,
                                    const uint64_t *bytes_by_source, size_t classes);

    /* Appended in 0.5: absent (NULL) in plugins built before; the host checks struct_size. */

    /**
     * Optional. Describe a content this session does not know, from the backend's catalogue
     * (the hierarchy plugin asks its coordinator): call `accept` once, before returning, with
     * the content's manifest, publication record and origins. Blocking, bounded by the
     * backend's own timeout. THREAD: a host thread that may block (never the network thread).
     * @param message  on failure, a reason (NUL-terminated, at most message_size bytes).
     * @return PD_PLUGIN_OK after calling accept; PD_PLUGIN_E_NOT_FOUND when the catalogue does
     *         not have the content (the host asks the next backend); another negative code on
     *         failure.
     */
    int32_t(PD_CALLBACK *describe_content)(void *self, const uint8_t id[32], pd_content_description_fn accept,
                                           void *context, char *message, size_t message_size);

    /**
     * Optional. The device no longer holds the content: evicted to make room, removed by the
     * host, or retired by an authority (tell it, so it stops sending peers here).
     * THREAD: any host thread; return quickly.
     */
    void(PD_CALLBACK *content_removed)(void *self, const pd_content_ref *content);

    /**
     * Optional. Ask the origin a locator names for the BranchCache Content Information V1 of
     * what it serves there (an origin answering PeerDist requests, [MS-PCCRTP]), so that a
     * download can start from the locator alone: call `accept` once, before returning, with at
     * most `max_bytes`. The host derives the content's manifest from it and checks it.
     * Blocking, bounded by the backend's own timeouts. THREAD: a host thread that may block.
     * @return PD_PLUGIN_OK after calling accept; PD_PLUGIN_E_NOT_FOUND when the locator is
     *         not this backend's or its origin does not answer PeerDist; another negative
     *         code, with a reason in `message`, on failure.
     */
    int32_t(PD_CALLBACK *describe_origin)(void *self, const char *locator, size_t max_bytes, pd_content_info_fn accept,
                                          void *context, char *message, size_t message_size);
} pd_backend_vtable;

/** The static descriptor pd_plugin_describe() returns. */
typedef struct pd_plugin_descriptor {
    uint32_t struct_size;      /**< sizeof(pd_plugin_descriptor) as the plugin was built. */
    uint32_t abi_version;      /**< Newest plugin ABI version the plugin implements. */
    uint32_t abi_min_version;  /**< Oldest it still implements. */
    uint32_t reserved;         /**< Zero. */
    const char *name;          /**< Unique, [a-z0-9_-], ≤ 63 bytes. */
    const char *version;       /**< The plugin's own version. */
    const char *license;       /**< SPDX identifier. */
    const char *description;   /**< One line. */
    /** Return the backend vtable for `abi_version` (chosen by the host), or NULL to refuse it. */
    const pd_backend_vtable *(PD_CALLBACK *backend)(uint32_t abi_version);
} pd_plugin_descriptor;

/** Type of the exported entry point. */
typedef const pd_plugin_descriptor *(PD_CALLBACK *pd_plugin_describe_fn)(void);

PD_END_DECL

#endif /* PEERDIST_SYS_PLUGIN_H */
