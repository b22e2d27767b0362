/*
 * peerdist/admin.h - administering a pd-coordinator (hierarchy mode).
 *
 * An admin handle is one secure-channel connection to a coordinator on which an
 * administrator proved its own key, and the coordinator proved the key the administrator's
 * credential names (docs/coordinator.md "Administrators"). The fleet key does not authorise
 * admin operations. Every call is a blocking request/reply on the handle, bounded by its
 * timeout. A handle is not thread-safe: use one per thread. Texts come back in a pd_buf the
 * caller disposes with pd_buf_dispose().
 */
#ifndef PEERDIST_ADMIN_H
#define PEERDIST_ADMIN_H

#include "content.h"

PD_BEGIN_DECL

/** Opaque connection to a coordinator. */
typedef struct pd_admin pd_admin;

/** An administrator's credential, as `pd-coordinator init --admin-out` and
 *  `pd-coordinator admin-key add` write it to a file. */
typedef struct pd_admin_credential {
    uint8_t admin_key[32];        /**< The administrator's Ed25519 seed. Secret. */
    uint8_t coordinator_key[32];  /**< The coordinator's Ed25519 public key, which it must prove. */
} pd_admin_credential;

/**
 * Read a credential file (format in docs/coordinator.md).
 * @return PD_OK; PD_E_NOT_FOUND / PD_E_IO; PD_E_INVALID naming the line and the rule, or
 *         when the file can be read or changed by group or other users.
 * THREAD: any.
 */
PD_API int pd_admin_credential_read_file(pd_admin_credential *out, const char *path);

/**
 * Connect to a coordinator as an administrator.
 * @param out         receives the handle. OWNERSHIP: caller frees with pd_admin_free().
 * @param address     "host:port": an IPv4 address, "[v6]" or a DNS name (resolved at connect).
 * @param credential  the administrator's key and the coordinator's public key. Copied.
 * @param timeout_ms  bound of the connect and of every later call (0: 10 s).
 * @return PD_OK; PD_E_INVALID (address); PD_E_TIMEOUT; PD_E_IO; PD_E_AUTH when the
 *         coordinator does not know the key (or it was revoked), or when the server does not
 *         prove the credential's coordinator key — the message says which.
 * THREAD: any.
 */
PD_API int pd_admin_connect(pd_admin **out, const char *address, const pd_admin_credential *credential,
                            uint32_t timeout_ms);

/** The administrator this handle authenticated as: {"name": NAME, "role": "admin"|"viewer"}.
 *  A viewer may run only the operations that change nothing; the others are PD_E_INVALID
 *  with "is a viewer". */
PD_API int pd_admin_whoami(pd_buf *out, pd_admin *admin);

/** Close the connection and free the handle (NULL is a no-op). THREAD: any. */
PD_API void pd_admin_free(pd_admin *admin);

/**
 * Health check: a JSON object with "server_id", "version", "devices", "online", "offices",
 * "contents", "database" ("ok" or what is wrong), "topology" ("uploaded"/"automatic"),
 * "supported_agent_versions" (the range the coordinator was given, "MIN" or "MIN-MAX"),
 * "agents" ([{"version", "devices", "online", "supported"}], one per agent version) and
 * "unsupported" (devices whose version is outside the range).
 * @return PD_OK, or PD_E_IO when the connection broke (reconnect with a new handle).
 */
PD_API int pd_admin_health(pd_buf *out, pd_admin *admin);

/** The coordinator's server id (32 hex digits). */
PD_API int pd_admin_server_id(pd_buf *out, pd_admin *admin);

/**
 * Replace the office topology with a CSV (format in docs/hierarchy.md).
 * @return PD_OK; PD_E_INVALID when the CSV was refused: the topology in force stays, and
 *         pd_error_last()->message lists every problem with its line number, one per line.
 */
PD_API int pd_admin_topology_import(pd_admin *admin, const char *csv, size_t len);

/** The topology in force as CSV (the automatic one when none was uploaded). */
PD_API int pd_admin_topology_export(pd_buf *out, pd_admin *admin);

/**
 * Distribution optimisation on or off. On, the uploaded topology is in force; off (or on
 * with none uploaded), the automatic one: one office per subnet of the registered devices,
 * children of the Central Office. The uploaded topology is kept either way, and importing one
 * turns optimisation on.
 * @param prefix_v4  the automatic offices' IPv4 prefix length, 8-32 (0 keeps it; 24 at first).
 * @param prefix_v6  their IPv6 prefix length, 16-128 (0 keeps it; 64 at first).
 * @return PD_OK; PD_E_INVALID for a prefix length out of range.
 */
PD_API int pd_admin_set_optimisation(pd_admin *admin, int enabled, unsigned prefix_v4, unsigned prefix_v6);

/**
 * The activated-devices report, CSV with a header:
 * device_id,name,address,office,version,online,last_seen_ms,free_bytes,chassis,os_type,preferred,online_ms,served_bytes
 * (preferred: "configured", "history" or "no")
 */
PD_API int pd_admin_devices_csv(pd_buf *out, pd_admin *admin);

/** Per-office statistics, CSV with a header: office,origin_bytes,wan_bytes,lan_bytes */
PD_API int pd_admin_office_stats_csv(pd_buf *out, pd_admin *admin);

/**
 * Publish a content to the coordinator's catalogue: its manifest (devices then start a
 * download from the content id alone: pd_content_resolve), name, size and origins. The
 * coordinator checks the manifest is this content's; contents bytes never reach it.
 * @param origins  origin locators, newline-separated, in order of preference; may be NULL.
 */
PD_API int pd_admin_publish(pd_admin *admin, const pd_manifest *manifest, const char *origins);

/**
 * Publish many contents again, all or none: a coordinator rebuilt on a new database (after
 * `pd-coordinator init` on a new server, it knows no contents) learns them back from the
 * publisher's manifests; contents moved to new origins get them in one step. Every entry is
 * checked before anything is stored; a content the coordinator knows with another size or
 * block count (a damaged manifest) refuses the whole call with its index. Contents not
 * listed stay as they are.
 * @param manifests  `count` manifests.
 * @param origins    NULL, or `count` entries: newline-separated origin locators for each
 *                   manifest, or NULL to keep the origins the coordinator has recorded.
 * @param out        receives a JSON report: {"added":N,"updated":N,"unchanged":N,
 *                   "contents":[{"content":ID,"name":NAME,"status":"added"|"updated"|"unchanged"}]}.
 * @return PD_OK; PD_E_INVALID with the offending entry ("contents[3]: ...").
 */
PD_API int pd_admin_republish_all(pd_buf *out, pd_admin *admin, const pd_manifest *const *manifests,
                                  const char *const *origins, size_t count);

/**
 * Create or replace an assignment group. With groups defined, a device takes part in a
 * content only if a group lists both (a group listing no contents covers every content);
 * everyone else downloads from the origin.
 * @param devices   device ids or host names. @param contents  may be NULL when n_contents is 0.
 */
PD_API int pd_admin_set_group(pd_admin *admin, const char *name, const char *const *devices, size_t n_devices,
                              const pd_content_id *contents, size_t n_contents);

/** Remove an assignment group (removing a missing one is not an error). */
PD_API int pd_admin_remove_group(pd_admin *admin, const char *name);

/** The office's RVP now (a device id), or an empty text when no device there is online. */
PD_API int pd_admin_rvp(pd_buf *out, pd_admin *admin, const char *office);

/**
 * The catalogue as JSON: {"contents": [{"content", "name", "size", "published_ms", "signed"
 * (a publication record is stored), "manifest" (a manifest is stored: devices can start from
 * the id), "origins": [...]}]}.
 */
PD_API int pd_admin_list_contents(pd_buf *out, pd_admin *admin);

/** The assignment groups as JSON: {"groups": [{"name", "devices": [...], "contents": [...]}]}. */
PD_API int pd_admin_list_groups(pd_buf *out, pd_admin *admin);

/**
 * Retire a content everywhere: the coordinator forgets it (and its pre-staging), and every
 * agent cancels its jobs for it and drops it from its cache at its next heartbeat.
 * Publishing it again brings it back. @return PD_OK; PD_E_INVALID when it is not in the catalogue.
 */
PD_API int pd_admin_retire_content(pd_admin *admin, const pd_content_id *id);

/**
 * Pre-stage a content: have it in `offices` (all offices but VPN ones, also those added
 * later, when n_offices is 0) by `deadline_ms` (milliseconds since the Unix epoch). Each
 * office's RVP pulls it over the background class before any device there asks, parents
 * before children; an office's ancestors are pre-staged with it (docs/coordinator.md
 * "Pre-staging"). Asking again for the same content replaces the request.
 * @return PD_OK; PD_E_INVALID with the reason (a content not in the catalogue, an unknown
 *         or VPN office, a deadline already past).
 */
PD_API int pd_admin_prestage(pd_admin *admin, const pd_content_id *id, const char *const *offices, size_t n_offices,
                             int64_t deadline_ms);

/**
 * Pre-staging progress as JSON: {"prestages": [{"content", "name", "size", "deadline_ms",
 * "requested_ms", "done", "late", "offices": [{"office", "state", "rvp", "upstream",
 * "verified_blocks", "block_count", "bytes": {"origin", "wan", "lan"}, "rate_bytes_per_s",
 * "expected_finish_ms"}]}]}, offices parents first; one content's, or every one (id NULL).
 */
PD_API int pd_admin_prestage_status(pd_buf *out, pd_admin *admin, const pd_content_id *id);

/** Withdraw a content's pre-staging (what was fetched stays). @return PD_OK; PD_E_INVALID when none. */
PD_API int pd_admin_prestage_cancel(pd_admin *admin, const pd_content_id *id);

/**
 * Retire a device that left the fleet: the coordinator forgets it and its holdings, and the
 * activated-devices report no longer lists it. Not a revocation: a retired device that comes
 * back simply registers again. @return PD_OK; PD_E_INVALID when no such device is registered.
 */
PD_API int pd_admin_retire_device(pd_admin *admin, const char *device_id);

/*
 * The admin operation table. Every operation above is also reachable by name with text
 * arguments, the way a command line gives them; `pd admin` and `pd-coordinator admin` are
 * front ends to this one table, so they offer the same operations with the same syntax.
 */

/** One admin operation, for listing and usage texts. Static storage. */
typedef struct pd_admin_operation {
    const char *name;       /**< "topology-import". */
    const char *arguments;  /**< Its arguments as a usage line shows them ("CSV_FILE"), or "". */
    const char *summary;    /**< One line. */
} pd_admin_operation;

/** The operation at `index` (0, 1, ...), or NULL past the last. THREAD: any. */
PD_API const pd_admin_operation *pd_admin_operation_at(size_t index);

/** pd_admin_run flag: the result is the coordinator's reply as JSON, for scripts. */
#define PD_ADMIN_JSON 0x1u

/**
 * Run an admin operation by name.
 * @param operation  a name from pd_admin_operation_at().
 * @param args       its arguments: positional ones, and "--option", "value" pairs for the
 *                   options its usage shows (those marked "..." may repeat). Files named
 *                   (a topology CSV, manifests) are read by the call.
 * @param flags      0 or PD_ADMIN_JSON.
 * @param out        the result as text: CSV for reports and exports, the id for server-id
 *                   and rvp, JSON for health, groups and republish-all, else a one-line
 *                   confirmation; with PD_ADMIN_JSON always the reply as JSON.
 * @return PD_OK; PD_E_NOT_FOUND for an unknown operation; PD_E_INVALID for arguments that
 *         do not fit its usage (the message shows it) or a refusal from the coordinator;
 *         the errors of reading the named files; the connection's errors.
 */
PD_API int pd_admin_run(pd_buf *out, pd_admin *admin, const char *operation, const char *const *args, size_t n_args,
                        uint32_t flags);

PD_END_DECL

#endif /* PEERDIST_ADMIN_H */
