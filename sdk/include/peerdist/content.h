/*
 * peerdist/content.h - manifests, publishing, publication records, BranchCache
 * Content Information and the local cache.
 *
 * A manifest describes one content: its size, 64 KiB block hashes (SHA-256) grouped
 * in 32 MiB segments, the segments' hashes of data and a display name. The content id
 * is SHA-256 over the manifest's canonical header and segment hashes, so a manifest
 * from any source is checked against the id alone. See docs/content-model.md.
 */
#ifndef PEERDIST_CONTENT_H
#define PEERDIST_CONTENT_H

#include "session.h"

PD_BEGIN_DECL

/** Opaque, immutable, parsed and self-consistent manifest. */
typedef struct pd_manifest pd_manifest;

/**
 * Hash a file into a manifest (no session needed; calls pd_init() internally).
 * @param out   receives the manifest. OWNERSHIP: caller frees with pd_manifest_free().
 * @param path  file to hash.
 * @param name  display name (never used as a path), or NULL for the file's base name.
 * @return PD_OK; PD_E_NOT_FOUND; PD_E_IO; PD_E_INVALID (name has '/', '\\', "..", control chars).
 * THREAD: any.
 */
PD_API int pd_manifest_hash_file(pd_manifest **out, const char *path, const char *name);

/**
 * Parse a serialised manifest, checking every length and every segment hash.
 * @param out  OWNERSHIP: caller frees with pd_manifest_free().
 * @return PD_OK; PD_E_INVALID (truncated, trailing bytes, inconsistent hashes, bad name);
 *         PD_E_VERSION (unknown format version or hash algorithm). THREAD: any.
 */
PD_API int pd_manifest_parse(pd_manifest **out, const void *data, size_t len);

/** pd_manifest_parse() on a file's contents. Adds PD_E_NOT_FOUND and PD_E_IO. THREAD: any. */
PD_API int pd_manifest_read_file(pd_manifest **out, const char *path);

/**
 * Serialise a manifest in its canonical encoding.
 * @param out OWNERSHIP: caller disposes with pd_buf_dispose(). THREAD: any.
 */
PD_API int pd_manifest_serialize(pd_buf *out, const pd_manifest *manifest);

/** Write the canonical encoding to `path` atomically (temporary file + rename). THREAD: any. */
PD_API int pd_manifest_write_file(const pd_manifest *manifest, const char *path);

/** Free a manifest. Accepts NULL. THREAD: any. */
PD_API void pd_manifest_free(pd_manifest *manifest);

/** The content id. OWNERSHIP: borrowed, lives as long as the manifest. THREAD: any. */
PD_API const pd_content_id *pd_manifest_id(const pd_manifest *manifest);
/** Content size in bytes (0 for NULL). THREAD: any. */
PD_API uint64_t pd_manifest_size(const pd_manifest *manifest);
/** Display name, UTF-8. OWNERSHIP: borrowed, lives as long as the manifest. THREAD: any. */
PD_API const char *pd_manifest_name(const pd_manifest *manifest);
/** Block size in bytes (65536 in format 1). THREAD: any. */
PD_API uint32_t pd_manifest_block_size(const pd_manifest *manifest);
/** Number of blocks. THREAD: any. */
PD_API uint64_t pd_manifest_block_count(const pd_manifest *manifest);

#define PD_PUBLISH_OPTIONS_VERSION 1

/** Options for pd_content_publish(). */
typedef struct pd_publish_options {
    uint32_t version;      /**< PD_PUBLISH_OPTIONS_VERSION. */
    const char *name;      /**< Display name, or NULL for the file's base name. Copied. */
    const char *origin;    /**< Where devices fetch it when no peer has it: a path, file:// or
                                http(s):// URL of the same bytes. NULL = the published file itself. */
    uint32_t add_to_cache; /**< Non-zero: also copy the data into the cache as complete content
                                so this device can serve it. */
} pd_publish_options;

#define PD_PUBLISH_OPTIONS_INIT { PD_PUBLISH_OPTIONS_VERSION, NULL, NULL, 0 }

/** Fill `opts` with defaults. @return PD_OK or PD_E_VERSION. THREAD: any. */
PD_API int pd_publish_options_init(pd_publish_options *opts, uint32_t version);

/**
 * Publish a file: hash it on the session's workers, record the manifest and its origin
 * in the session's store, and optionally add the data to the cache.
 * @param out  receives the manifest, or NULL. OWNERSHIP: caller frees with pd_manifest_free().
 * @return as pd_manifest_hash_file(), plus PD_E_QUOTA / PD_E_NOSPACE with add_to_cache.
 * THREAD: any.
 */
PD_API int pd_content_publish(pd_manifest **out, pd_session *session, const char *path,
                              const pd_publish_options *opts);

/**
 * Make a content known to the session so jobs can fetch it, without a publication record:
 * refused unless the session's `trust.allow_unsigned` setting is 1 (labs; the default is 0:
 * only contents signed by a trusted publisher are installed, see
 * pd_content_import_published and docs/security.md).
 * @param origin  origin locator (path, file:// or http(s):// URL), or NULL to keep the
 *                one already recorded.
 * @return PD_OK (also when already known; the origin is updated); PD_E_AUTH when unsigned
 *         contents are not allowed; PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_content_import(pd_session *session, const pd_manifest *manifest, const char *origin);

/**
 * Make a content known to the session with the publisher's record about it
 * (pd_publication_sign): the record must be signed by a key in the session's
 * `trust.publisher_keys` setting and name this manifest's content id, size and name.
 * @param origin  as pd_content_import(); NULL takes the origin the record names, if any.
 * @param record  the record's bytes (`pd publish --sign` writes them to MANIFEST.sig).
 * @return PD_OK; PD_E_AUTH when no key is trusted, the record's key is not, the signature
 *         does not verify or the record is about another content (the message says which);
 *         PD_E_INVALID / PD_E_VERSION for a malformed record; PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_content_import_published(pd_session *session, const pd_manifest *manifest, const char *origin,
                                       const void *record, size_t record_len);

/**
 * Make a content known with its publication record read from a file: the one at
 * `publication_path`, else MANIFEST.sig beside `manifest_path` (what `pd publish --sign`
 * writes) when that file exists — pd_content_import_published() — and without either,
 * pd_content_import() (the session's trust.allow_unsigned decides).
 * @param manifest_path     the file `manifest` was read from, or NULL.
 * @param publication_path  the record file, or NULL to look beside the manifest.
 * @return as those two; PD_E_NOT_FOUND / PD_E_IO / PD_E_INVALID (over 64 KiB) for a record
 *         file that cannot be read (the message names it). THREAD: any.
 */
PD_API int pd_content_import_with_record_file(pd_session *session, const pd_manifest *manifest, const char *origin,
                                              const char *manifest_path, const char *publication_path);

/**
 * Make a content known from its id alone: the session asks its backends' catalogues (the
 * hierarchy plugin asks its coordinator, docs/coordinator.md "Catalogue") for the manifest,
 * the publication record and the ordered origins, and imports them like
 * pd_content_import_published() — nothing said is believed: the manifest must prove the id,
 * the record must come from a trusted publisher. Then pd_job_start() can fetch it. Asks
 * again when the content is known (origins may have moved).
 * Blocking: bounded by the backends' own timeouts (the hierarchy plugin: timeout_ms, 5 s).
 * @return PD_OK; PD_E_NOT_FOUND when no catalogue has the content (or no backend keeps one);
 *         PD_E_INTEGRITY when a catalogue answered with a manifest that is not this content's;
 *         PD_E_AUTH when the trust policy refuses it (as pd_content_import_published());
 *         PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_content_resolve(pd_session *session, const pd_content_id *id);

/**
 * Make a content known from its origin alone: the loaded backends ask the origin at `origin`
 * (an http(s):// URL) for its BranchCache Content Information ([MS-PCCRTP]: an origin that
 * answers PeerDist requests, such as `pd serve`), the content's manifest is derived from it
 * and imported like pd_content_import() (unsigned: the trust policy decides), with `origin`
 * as its origin and the Content Information recorded (pd_content_set_branchcache_info), so
 * Windows' BranchCache peers can provide its blocks. The origin is the root of trust here:
 * the blocks are verified against what it described.
 * @param out   receives the content id.
 * @param name  display name, or NULL for the URL's last path segment.
 * Blocking: bounded by the origin backend's timeouts.
 * @return PD_OK; PD_E_NOT_FOUND when no origin answered with Content Information;
 *         PD_E_INVALID / PD_E_INTEGRITY when what it sent is not Content Information V1 of a
 *         whole content; PD_E_AUTH when unsigned contents are not allowed; PD_E_MISUSE.
 *         THREAD: any.
 */
PD_API int pd_content_import_from_origin(pd_content_id *out, pd_session *session, const char *origin, const char *name);

/**
 * Get the manifest of a content the session knows.
 * @param out OWNERSHIP: caller frees with pd_manifest_free().
 * @return PD_OK or PD_E_NOT_FOUND. THREAD: any.
 */
PD_API int pd_content_export(pd_manifest **out, pd_session *session, const pd_content_id *id);

/* ---- Publication records: (id, name, size, origin, time) signed with Ed25519. ---- */

/** Length of an Ed25519 public key and of a secret key as libsodium stores it. */
#define PD_PUBLISHER_PUBLIC_KEY_BYTES 32
#define PD_PUBLISHER_SECRET_KEY_BYTES 64

/**
 * Generate a publisher key pair.
 * @return PD_OK or PD_E_MISUSE. THREAD: any.
 */
PD_API int pd_publisher_keygen(uint8_t public_key[32], uint8_t secret_key[64]);

/**
 * Create a publisher key file: a new key pair whose secret part (its 32-byte seed, as 64 hex
 * digits) is written to `path`, created owner-only (0600) through a temporary and a rename.
 * Keep it offline: only signing needs it.
 * @param public_key  receives the public key (what agents trust: trust.publisher_keys).
 * @return PD_OK; PD_E_IO / PD_E_READONLY. THREAD: any.
 */
PD_API int pd_publisher_key_create_file(uint8_t public_key[32], const char *path);

/**
 * Read a publisher key file (pd_publisher_key_create_file).
 * @return PD_OK; PD_E_NOT_FOUND / PD_E_IO; PD_E_INVALID when it holds anything else or
 *         others can read or change it (the message names the file and its mode). THREAD: any.
 */
PD_API int pd_publisher_key_read_file(uint8_t public_key[32], uint8_t secret_key[64], const char *path);

/**
 * Sign a publication record for a manifest.
 * @param out           receives the record. OWNERSHIP: caller disposes with pd_buf_dispose().
 * @param origin        origin locator recorded in it (UTF-8, ≤ 4096 bytes).
 * @param published_ms  time of publication, ms since the Unix epoch.
 * @return PD_OK, PD_E_MISUSE, PD_E_INVALID (origin too long). THREAD: any.
 */
PD_API int pd_publication_sign(pd_buf *out, const pd_manifest *manifest, const char *origin,
                               int64_t published_ms, const uint8_t secret_key[64]);

/**
 * Read a publication record file (at most 64 KiB; `pd publish --sign` writes MANIFEST.sig).
 * @param out  receives the bytes. OWNERSHIP: caller disposes with pd_buf_dispose().
 * @return PD_OK; PD_E_NOT_FOUND / PD_E_IO; PD_E_INVALID when it is larger. THREAD: any.
 */
PD_API int pd_publication_read_file(pd_buf *out, const char *path);

/** Opaque verified publication record. */
typedef struct pd_publication pd_publication;

/**
 * Parse and verify a publication record against the trusted publisher key.
 * @param out  receives the record. OWNERSHIP: caller frees with pd_publication_free().
 * @return PD_OK; PD_E_INVALID (malformed); PD_E_AUTH (signed by another key, or the
 *         signature does not verify). THREAD: any.
 */
PD_API int pd_publication_verify(pd_publication **out, const void *data, size_t len,
                                 const uint8_t trusted_public_key[32]);
/** Free a record. Accepts NULL. THREAD: any. */
PD_API void pd_publication_free(pd_publication *record);
/** Record fields. OWNERSHIP: strings and id are borrowed from the record. THREAD: any. */
PD_API const pd_content_id *pd_publication_id(const pd_publication *record);
PD_API const char *pd_publication_name(const pd_publication *record);
PD_API const char *pd_publication_origin(const pd_publication *record);
PD_API uint64_t pd_publication_size(const pd_publication *record);
PD_API int64_t pd_publication_time(const pd_publication *record);

/* ---- BranchCache Content Information ([MS-PCCRC]) ---- */

/**
 * Generate BranchCache Content Information for a whole file.
 * @param out         receives the encoded structure. OWNERSHIP: pd_buf_dispose().
 * @param version     1 (V1.0: SHA-256, 64 KiB blocks, 32 MiB segments) or 2 (V2.0:
 *                    truncated SHA-512, 32 MiB segments; see docs/content-model.md).
 * @param passphrase  server passphrase (the server secret is derived from it).
 * @return PD_OK; PD_E_NOT_FOUND; PD_E_IO; PD_E_UNSUPPORTED (other versions). THREAD: any.
 */
PD_API int pd_content_info_generate(pd_buf *out, const char *path, uint32_t version,
                                    const uint8_t *passphrase, size_t passphrase_len);

/**
 * Record a content's BranchCache Content Information (V1, as its origin served it) so that
 * Windows' BranchCache peers can find and fetch its blocks from this device, and this device
 * from them (the `branchcache` backend's wire mode, docs/protocol.md §5–6). The segment IDs
 * and secrets in it derive from the origin's server secret; the rest must describe exactly
 * the content's blocks (SHA-256, the whole content, the same segments and block hashes).
 * Replaces what was recorded; forgotten with the content.
 * @return PD_OK; PD_E_NOT_FOUND (the content is not in the cache); PD_E_INVALID (not
 *         Content Information V1); PD_E_INTEGRITY (it describes other blocks). THREAD: any.
 */
PD_API int pd_content_set_branchcache_info(pd_session *session, const pd_content_id *id, const uint8_t *info, size_t len);

/* ---- The local cache ---- */

typedef enum pd_cache_state {
    PD_CACHE_KNOWN = 0,    /**< Manifest known, no data yet. */
    PD_CACHE_PARTIAL = 1,  /**< Some blocks verified. */
    PD_CACHE_COMPLETE = 2, /**< Every block verified end to end. */
    PD_CACHE_STATE_FORCE32 = 0x7FFFFFFF
} pd_cache_state;

/** A cache state's name: "known", "partial", "complete"; "unknown" otherwise. Static. THREAD: any. */
PD_API const char *pd_cache_state_name(uint32_t state);

/** One cached content, as listed by pd_cache_list(). */
typedef struct pd_cache_entry {
    uint32_t struct_size;     /**< Caller sets sizeof(pd_cache_entry). */
    uint32_t state;           /**< pd_cache_state. */
    pd_content_id id;         /**< The content. */
    uint64_t size;            /**< Content size. */
    uint64_t bytes_verified;  /**< Verified, durable bytes. */
    uint64_t bytes_on_disk;   /**< Bytes the store accounts to the quota. */
    uint32_t pinned;          /**< Non-zero: never evicted. */
    uint32_t reserved;        /**< Zero. */
    int64_t last_used_ms;     /**< Last read or written, ms since the Unix epoch (LRU eviction order). */
    char name[256];           /**< Display name, NUL-terminated, possibly truncated. */
} pd_cache_entry;

/**
 * List cached contents with the two-call idiom (see pd_session_list_plugins()).
 * @return PD_OK or PD_E_BUFS. THREAD: any.
 */
PD_API int pd_cache_list(pd_session *session, pd_cache_entry *entries, size_t entry_size, size_t *count);

/**
 * Remove a content and its data from the cache.
 * @return PD_OK; PD_E_NOT_FOUND; PD_E_BUSY (a job is using it). THREAD: any.
 */
PD_API int pd_cache_remove(pd_session *session, const pd_content_id *id);

/** Pin (non-zero) or unpin a content: pinned content is never evicted. THREAD: any. */
PD_API int pd_cache_pin(pd_session *session, const pd_content_id *id, int pinned);

/**
 * Path of a complete content's data file inside the cache, for reading in place.
 * The file must not be modified. @param out OWNERSHIP: pd_buf_dispose().
 * @return PD_OK; PD_E_NOT_FOUND; PD_E_STATE (not complete). THREAD: any.
 */
PD_API int pd_cache_path(pd_buf *out, pd_session *session, const pd_content_id *id);

PD_END_DECL

#endif /* PEERDIST_CONTENT_H */
