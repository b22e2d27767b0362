/*
 * peerdist/common.h - versions, error reporting, buffers, content ids and library init.
 *
 * Conventions used by every peerdist header (see docs/c-abi.md):
 *  - Functions return int: PD_OK (0) or a negative pd_error_code. After a failure,
 *    pd_error_last() describes it on the calling thread.
 *  - OWNERSHIP lines say who frees what; THREAD lines say from where a function may be called.
 *  - Option structs start with `uint32_t version`; output structs with `uint32_t struct_size`
 *    set by the caller. Both are append-only.
 */
#ifndef PEERDIST_COMMON_H
#define PEERDIST_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

PD_BEGIN_DECL

/** Compile-time version of the headers. */
#define PD_VERSION_MAJOR 0
#define PD_VERSION_MINOR 4
#define PD_VERSION_PATCH 0
#define PD_VERSION_STRING "0.4.0"
/** Version as one number: 0xMMmmpp. */
#define PD_VERSION_NUM ((PD_VERSION_MAJOR << 16) | (PD_VERSION_MINOR << 8) | PD_VERSION_PATCH)
/** True when the headers are at least version x.y.z. */
#define PD_AT_LEAST_VERSION(x, y, z) (PD_VERSION_NUM >= (((x) << 16) | ((y) << 8) | (z)))

/**
 * Run-time version of the loaded library, encoded as PD_VERSION_NUM.
 * A host compares it with PD_VERSION_NUM to detect a mismatched library.
 * THREAD: any.
 */
PD_API uint32_t pd_version(void);

/** Run-time version as text, e.g. "0.4.0". OWNERSHIP: static string. THREAD: any. */
PD_API const char *pd_version_string(void);

/** Error codes. Every failing function documents the codes it expects to return. */
typedef enum pd_error_code {
    PD_OK = 0,
    PD_E_GENERIC = -1,     /**< Unexpected failure; see the message. */
    PD_E_MISUSE = -2,      /**< API misuse: NULL handle, bad argument, wrong struct version. */
    PD_E_NOT_FOUND = -3,   /**< The named object (content, job, setting, file) does not exist. */
    PD_E_EXISTS = -4,      /**< The object already exists. */
    PD_E_BUFS = -5,        /**< Output array too small; the count holds the needed size. */
    PD_E_AGAIN = -6,       /**< Nothing available now; try again later. */
    PD_E_VERSION = -7,     /**< Incompatible version (format, plugin ABI, struct). */
    PD_E_AUTH = -8,        /**< Authentication failed: bad signature or key mismatch. */
    PD_E_INVALID = -9,     /**< Malformed input: corrupt manifest, bad record, bad name. */
    PD_E_INTEGRITY = -10,  /**< Data failed hash verification. */
    PD_E_IO = -11,         /**< Operating-system I/O failure. */
    PD_E_NOSPACE = -12,    /**< The disk is full. */
    PD_E_QUOTA = -13,      /**< The cache quota cannot hold the content. */
    PD_E_PLUGIN = -14,     /**< A plugin failed to load or misbehaved. */
    PD_E_CANCELLED = -15,  /**< The operation was cancelled. */
    PD_E_TIMEOUT = -16,    /**< A wait timed out. */
    PD_E_UNSUPPORTED = -17,/**< Not supported by this build or backend. */
    PD_E_BUSY = -18,       /**< The resource is in use (e.g. cache locked by another process). */
    PD_E_READONLY = -19,   /**< A path that must be writable is not. */
    PD_E_CHANGED = -20,    /**< Content changed at its origin since publication. */
    PD_E_NOMEM = -21,      /**< Out of memory. */
    PD_E_STATE = -22,      /**< The object is not in a state that allows the call. */
    PD_E_NO_SOURCE = -23,  /**< No backend could provide the content. */
    PD_ERROR_CODE_FORCE32 = 0x7FFFFFFF
} pd_error_code;

/** Subsystem an error came from. */
typedef enum pd_error_category {
    PD_CATEGORY_NONE = 0,
    PD_CATEGORY_API = 1,     /**< Argument checking at the C boundary. */
    PD_CATEGORY_OS = 2,      /**< System calls; the message carries errno text. */
    PD_CATEGORY_CONTENT = 3, /**< Manifests, publication records, Content Information. */
    PD_CATEGORY_STORE = 4,   /**< The verified block store and its database. */
    PD_CATEGORY_PLUGIN = 5,  /**< Plugin loading and plugin calls. */
    PD_CATEGORY_JOB = 6,     /**< Download jobs. */
    PD_CATEGORY_CRYPTO = 7,  /**< Signatures, keys, hashing. */
    PD_CATEGORY_NET = 8,     /**< Network transports. */
    PD_ERROR_CATEGORY_FORCE32 = 0x7FFFFFFF
} pd_error_category;

/** Description of the last failure on the calling thread. */
typedef struct pd_error {
    int32_t code;        /**< A pd_error_code. */
    int32_t category;    /**< A pd_error_category. */
    const char *message; /**< Human-readable, UTF-8, never NULL. */
} pd_error;

/**
 * The last error raised on the calling thread by a peerdist function, or a
 * {PD_OK, PD_CATEGORY_NONE, ""} record when the last call succeeded.
 * OWNERSHIP: borrowed; valid until the next peerdist call on this thread.
 * THREAD: any (the record is thread-local).
 */
PD_API const pd_error *pd_error_last(void);

/** Clear the calling thread's error record. THREAD: any. */
PD_API void pd_error_clear(void);

/** Static text for an error code ("no such object", ...). OWNERSHIP: static. THREAD: any. */
PD_API const char *pd_strerror(int code);

/** A growable byte buffer the library fills; the caller frees it with pd_buf_dispose(). */
typedef struct pd_buf {
    uint8_t *ptr; /**< Data; NUL-terminated when it holds text. */
    size_t size;  /**< Bytes used, without the terminating NUL. */
    size_t reserved; /**< Internal: allocated bytes. Do not change. */
} pd_buf;

/** Static initialiser for an empty pd_buf. */
#define PD_BUF_INIT { NULL, 0, 0 }

/** Free a buffer's memory and reset it to empty. Accepts NULL. THREAD: any. */
PD_API void pd_buf_dispose(pd_buf *buf);

/** Identifier of a content: SHA-256 over its manifest's canonical header and segment hashes. */
typedef struct pd_content_id {
    uint8_t bytes[32]; /**< The SHA-256 digest. */
} pd_content_id;

/**
 * Format a content id as 64 lowercase hex characters and a NUL.
 * @param out  65 bytes of caller storage.
 * @return PD_OK, or PD_E_MISUSE on NULL. THREAD: any.
 */
PD_API int pd_content_id_to_hex(char out[65], const pd_content_id *id);

/**
 * Parse 64 hex characters into a content id.
 * @return PD_OK, PD_E_INVALID when the text is not 64 hex digits, PD_E_MISUSE on NULL.
 * THREAD: any.
 */
PD_API int pd_content_id_from_hex(pd_content_id *out, const char *hex);

/**
 * Initialise the library's process-wide state (crypto libraries). Reference counted:
 * each successful call must be matched by pd_shutdown(). Sessions call it themselves,
 * so hosts only need it for session-less functions such as pd_manifest_hash_file().
 * @return PD_OK, or PD_E_GENERIC when the crypto library cannot initialise.
 * THREAD: any.
 */
PD_API int pd_init(void);

/** Release one reference taken by pd_init(). THREAD: any. */
PD_API void pd_shutdown(void);

/** Log levels used by events and plugins. */
typedef enum pd_log_level {
    PD_LOG_ERROR = 0,
    PD_LOG_WARN = 1,
    PD_LOG_INFO = 2,
    PD_LOG_DEBUG = 3,
    PD_LOG_LEVEL_FORCE32 = 0x7FFFFFFF
} pd_log_level;

/** Where bytes came from; statistics are kept per class. */
typedef enum pd_source_class {
    PD_SOURCE_LOCAL = 0,  /**< Already in the local store. */
    PD_SOURCE_LAN = 1,    /**< Peers in the same office or subnet (foreground class). */
    PD_SOURCE_WAN = 2,    /**< Peers in another office (background class). */
    PD_SOURCE_ORIGIN = 3, /**< The CDN or file storage. */
    PD_SOURCE_CLASS_COUNT = 4,
    PD_SOURCE_CLASS_FORCE32 = 0x7FFFFFFF
} pd_source_class;

/** A source class's name: "local", "lan", "wan", "origin"; "unknown" otherwise. Static. THREAD: any. */
PD_API const char *pd_source_class_name(uint32_t source_class);

PD_END_DECL

#endif /* PEERDIST_COMMON_H */
