/*
 * peerdist/session.h - the session: one cache, one fleet, one network thread.
 *
 * A session owns a verified block store (a cache directory locked against other
 * processes), the loaded backend plugins, the download jobs and the event queue.
 * Every function taking a pd_session is thread-safe: calls are marshalled onto the
 * session's network thread. Asynchronous happenings are reported as events
 * (peerdist/events.h); the library never calls into the host from its own threads
 * except the notify callback, which must only wake the host.
 */
#ifndef PEERDIST_SESSION_H
#define PEERDIST_SESSION_H

#include "common.h"

PD_BEGIN_DECL

/** Opaque session handle. */
typedef struct pd_session pd_session;

/**
 * Wake-up callback: called from a library thread, without any library lock held,
 * when the event queue goes from empty to non-empty. It must only wake the host
 * (signal a condition, write to a pipe); calling back into the session from it is
 * not allowed and returns PD_E_MISUSE.
 */
typedef void(PD_CALLBACK *pd_notify_cb)(void *user_data);

#define PD_SESSION_OPTIONS_VERSION 2

/** Options for pd_session_new(). Initialise with PD_SESSION_OPTIONS_INIT or pd_session_options_init(). */
typedef struct pd_session_options {
    uint32_t version;            /**< PD_SESSION_OPTIONS_VERSION. */
    const char *cache_dir;       /**< Required. Created if missing; locked for this session. UTF-8, copied. */
    const uint8_t *fleet_key;    /**< Fleet shared authentication key, or NULL. Copied. */
    size_t fleet_key_len;        /**< 32 when fleet_key is set. */
    const char *listen_addresses;/**< Comma-separated "ip:port" list ("[v6]:port" for IPv6; port 0 picks one)
                                      the peer server binds at pd_session_new, or NULL. Copied. */
    uint32_t worker_threads;     /**< Disk and hashing workers; 0 picks the number of cores (at least 4: they block on disk). */
    uint32_t event_queue_capacity; /**< Events kept before DROPPED accounting starts; 0 = 4096. */
    uint64_t cache_quota_bytes;  /**< Byte cap on the store's own data; 0 = no byte cap. */
    uint32_t cache_quota_percent;/**< Cap as % of the cache filesystem's size; 0 = no percentage cap. */
    pd_notify_cb notify;         /**< Optional wake-up callback; see pd_notify_cb. */
    void *notify_user_data;      /**< Passed to notify. */
    /* version 2 */
    const char *plugin_dir;      /**< What pd_session_load_plugin(session, NULL) loads; NULL: pd_plugin_dir_default(). UTF-8, copied. */
} pd_session_options;

#define PD_SESSION_OPTIONS_INIT { PD_SESSION_OPTIONS_VERSION, NULL, NULL, 0, NULL, 0, 0, 0, 0, NULL, NULL, NULL }

/**
 * Fill `opts` with defaults for the given struct version.
 * @return PD_OK, or PD_E_VERSION when `version` is newer than this library knows.
 * THREAD: any.
 */
PD_API int pd_session_options_init(pd_session_options *opts, uint32_t version);

/**
 * Read a fleet key file, the one format every peerdist tool uses: a random key as 64 hex
 * digits (what `pd-coordinator init --key-out` writes; whitespace around them allowed), in
 * a file its group and other users cannot read or write.
 * @param key   receives the 32 key bytes.
 * @return PD_OK; PD_E_NOT_FOUND / PD_E_IO / PD_E_READONLY when the file cannot be read;
 *         PD_E_INVALID when it holds anything else, a key with fewer than 16 distinct byte
 *         values, or when others can read it (the message names the file and its mode).
 *         THREAD: any.
 */
PD_API int pd_fleet_key_read_file(uint8_t key[32], const char *path);

/**
 * Open a session on a cache directory.
 * @param out   receives the session. OWNERSHIP: the caller frees it with pd_session_free().
 * @param opts  options; cache_dir is required.
 * @return PD_OK; PD_E_MISUSE (NULL or bad option); PD_E_VERSION (options newer than the library);
 *         PD_E_READONLY (cache directory not writable); PD_E_BUSY (another process holds the cache);
 *         PD_E_IO or PD_E_INVALID (cache database unreadable; a malformed listen address);
 *         PD_E_BUSY also when a listen address is already in use.
 * THREAD: any.
 */
PD_API int pd_session_new(pd_session **out, const pd_session_options *opts);

/**
 * Stop the session: running jobs are paused (their verified blocks are made durable
 * first), plugins are destroyed and unloaded, the cache lock is released.
 * Accepts NULL. THREAD: any thread but the notify callback's.
 */
PD_API void pd_session_free(pd_session *session);

/**
 * Set a setting. Keys are documented in docs/settings.md; keys starting with
 * "plugin.<name>." belong to plugins and are passed through unchecked.
 * @return PD_OK; PD_E_NOT_FOUND (unknown key); PD_E_INVALID (value out of range or unparsable).
 * THREAD: any.
 */
PD_API int pd_session_set_setting(pd_session *session, const char *key, const char *value);

/**
 * Read a setting's current value as text.
 * @param out  receives the value. OWNERSHIP: caller disposes with pd_buf_dispose().
 * @return PD_OK or PD_E_NOT_FOUND. THREAD: any.
 */
PD_API int pd_session_get_setting(pd_buf *out, pd_session *session, const char *key);

/**
 * Load backend plugins: `path` is a plugin file, or a directory whose plugin files
 * (by platform suffix) are all loaded, in name order; NULL loads the session's plugin
 * directory (pd_session_options.plugin_dir, else pd_plugin_dir_default()). A file that fails
 * to load is reported with a clear error and leaves the session working.
 * @return PD_OK; PD_E_NOT_FOUND (no such path); PD_E_PLUGIN (not a plugin, missing entry
 *         symbol, missing required hook, plugin create failed); PD_E_VERSION (no common ABI
 *         version); PD_E_EXISTS (a plugin with that name is already loaded). For a directory
 *         the first failure is returned after trying every file.
 * THREAD: any.
 */
PD_API int pd_session_load_plugin(pd_session *session, const char *path);

/**
 * The peer listen addresses as bound (ports chosen for port 0 resolved), comma-separated.
 * @param out  OWNERSHIP: caller disposes with pd_buf_dispose(). Empty when none.
 * @return PD_OK or PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_session_listen_addresses(pd_buf *out, pd_session *session);

/**
 * Where this library's plugins are: $PEERDIST_PLUGIN_DIR when set; else the plugin
 * directory found relative to the library file itself (`peerdist/plugins` beside
 * libpeerdist.so; `..\lib\peerdist\plugins` from libpeerdist.dll), so an SDK installed under
 * any prefix finds its own plugins; else the directory configured at build time.
 * Decided at the first call. OWNERSHIP: static. THREAD: any.
 */
PD_API const char *pd_plugin_dir_default(void);

/** A loaded plugin, as listed by pd_session_list_plugins(). */
typedef struct pd_plugin_info {
    uint32_t struct_size;    /**< Caller sets sizeof(pd_plugin_info). */
    uint32_t abi_version;    /**< Negotiated plugin ABI version. */
    uint32_t source_class;   /**< pd_source_class the backend provides. */
    char name[64];           /**< Plugin name, NUL-terminated. */
    char version[32];        /**< Plugin's own version. */
    char path[512];          /**< File it was loaded from. */
} pd_plugin_info;

/**
 * List loaded plugins with the two-call idiom.
 * @param infos     array of *count elements whose struct_size the caller set, or NULL.
 * @param info_size sizeof(pd_plugin_info) as the caller knows it: the array stride.
 * @param count     in: capacity; out: number of plugins.
 * @return PD_OK, or PD_E_BUFS when the capacity is too small (*count then holds the need).
 * THREAD: any.
 */
PD_API int pd_session_list_plugins(pd_session *session, pd_plugin_info *infos, size_t info_size, size_t *count);

/** Device facts reported to backends (elections); see pd_session_set_device_facts() for overrides. */
typedef struct pd_device_facts {
    uint32_t struct_size;        /**< Caller sets sizeof(pd_device_facts). */
    uint64_t free_bytes;         /**< Actual free space of the cache filesystem. */
    uint64_t usable_free_bytes;  /**< Free space left under the cache quota. */
    int32_t chassis;             /**< 0 unknown, 1 desktop, 2 laptop, 3 server. */
    int32_t os_type;             /**< 0 unknown, 1 workstation, 2 server. */
    uint64_t uptime_seconds;     /**< Seconds since boot. */
    /* Appended in 0.5. */
    uint64_t bytes_served;       /**< Bytes this session served to peers since it started (not overridable). */
} pd_device_facts;

/**
 * Measure this device's facts.
 * @param out  filled up to out->struct_size.
 * @return PD_OK or PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_session_device_facts(pd_device_facts *out, pd_session *session);

/**
 * Override measured device facts: the host knows better (an MDM inventory, a preferred RVP).
 * Fields of `facts` up to facts->struct_size replace the measured ones; a field set to
 * UINT64_MAX (byte counts, uptime) or -1 (chassis, os_type) keeps the measurement.
 * Pass NULL to drop every override.
 * @return PD_OK or PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_session_set_device_facts(pd_session *session, const pd_device_facts *facts);

/** What this session's peer server has done since the session started. */
typedef struct pd_session_stats {
    uint32_t struct_size;         /**< Caller sets sizeof(pd_session_stats). */
    uint64_t bytes_uploaded;      /**< Block bytes sent to peers (DATA payloads). */
    uint64_t blocks_uploaded;     /**< Blocks sent to peers. */
    uint64_t peer_connections;    /**< Peer connections accepted (over the limit ones excluded). */
    uint64_t peers_refused;       /**< Connections refused or dropped: wrong fleet key, over the limit, malformed input. */
    uint32_t connections_open;    /**< Peer connections open now. */
    /* Appended in 0.3. */
    uint64_t wan_budget_bytes;    /**< The office WAN budget in force, bytes/s (0: none): the smaller of
                                       wan.budget_bytes and the one a backend (coordinator) set. */
} pd_session_stats;

/**
 * Read the session's serving statistics and the WAN budget in force.
 * @param out  filled up to out->struct_size.
 * @return PD_OK or PD_E_MISUSE. THREAD: any (waits for the network thread).
 */
PD_API int pd_session_get_stats(pd_session_stats *out, pd_session *session);

PD_END_DECL

#endif /* PEERDIST_SESSION_H */
