#include "capi/translate.h"

#include "crypto/hash.h"
#include "util/hex.h"

#include <peerdist/common.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace pd::capi {

namespace {
struct error_state {
    pd_error record{PD_OK, PD_CATEGORY_NONE, ""};
    std::string message;
};
thread_local error_state tls_error;
}  // namespace

void set_error(int code, int category, const std::string &message) {
    tls_error.message = message;
    tls_error.record = {code, category, tls_error.message.c_str()};
}

void clear_error() {
    tls_error.message.clear();
    tls_error.record = {PD_OK, PD_CATEGORY_NONE, ""};
}

void fill_buf(pd_buf *out, const void *data, std::size_t len) {
    require(out, "out buffer");
    auto p = static_cast<std::uint8_t *>(std::malloc(len + 1));
    if (!p) throw std::bad_alloc();
    if (len) std::memcpy(p, data, len);
    p[len] = 0;
    std::free(out->ptr);
    out->ptr = p;
    out->size = len;
    out->reserved = len + 1;
}

}  // namespace pd::capi

using namespace pd::capi;

extern "C" {

PD_API uint32_t pd_version(void) { return PD_VERSION_NUM; }

PD_API const char *pd_version_string(void) { return PD_VERSION_STRING; }

PD_API const pd_error *pd_error_last(void) { return &tls_error.record; }

PD_API void pd_error_clear(void) { clear_error(); }

PD_API const char *pd_strerror(int code) {
    switch (code) {
    case PD_OK: return "success";
    case PD_E_GENERIC: return "generic failure";
    case PD_E_MISUSE: return "API misuse";
    case PD_E_NOT_FOUND: return "not found";
    case PD_E_EXISTS: return "already exists";
    case PD_E_BUFS: return "buffer too small";
    case PD_E_AGAIN: return "try again";
    case PD_E_VERSION: return "incompatible version";
    case PD_E_AUTH: return "authentication failed";
    case PD_E_INVALID: return "malformed input";
    case PD_E_INTEGRITY: return "data failed verification";
    case PD_E_IO: return "I/O error";
    case PD_E_NOSPACE: return "disk full";
    case PD_E_QUOTA: return "cache quota exceeded";
    case PD_E_PLUGIN: return "plugin error";
    case PD_E_CANCELLED: return "cancelled";
    case PD_E_TIMEOUT: return "timed out";
    case PD_E_UNSUPPORTED: return "not supported";
    case PD_E_BUSY: return "resource busy";
    case PD_E_READONLY: return "not writable";
    case PD_E_CHANGED: return "content changed at its origin";
    case PD_E_NOMEM: return "out of memory";
    case PD_E_STATE: return "wrong state for this call";
    case PD_E_NO_SOURCE: return "no source for the content";
    default: return "unknown error code";
    }
}

PD_API void pd_buf_dispose(pd_buf *buf) {
    if (!buf) return;
    std::free(buf->ptr);
    buf->ptr = nullptr;
    buf->size = 0;
    buf->reserved = 0;
}

PD_API int pd_content_id_to_hex(char out[65], const pd_content_id *id) {
    return guard([&] {
        require(out, "out");
        require(id, "id");
        auto h = pd::to_hex(id->bytes, 32);
        std::memcpy(out, h.c_str(), 65);
        return PD_OK;
    });
}

PD_API int pd_content_id_from_hex(pd_content_id *out, const char *hex) {
    return guard([&] {
        require(out, "out");
        require(hex, "hex");
        auto bytes = pd::from_hex(hex);
        if (!bytes || bytes->size() != 32)
            pd::fail(PD_E_INVALID, PD_CATEGORY_API, std::string("'") + hex + "' is not a 64-digit hex content id");
        std::memcpy(out->bytes, bytes->data(), 32);
        return PD_OK;
    });
}

static std::mutex init_mu;
static int init_refs = 0;

PD_API int pd_init(void) {
    return guard([] {
        std::lock_guard lk(init_mu);
        pd::crypto::ensure_initialised();
        ++init_refs;
        return PD_OK;
    });
}

PD_API void pd_shutdown(void) {
    std::lock_guard lk(init_mu);
    if (init_refs > 0) --init_refs;
}

}  // extern "C"

PD_API const char *pd_source_class_name(uint32_t source_class) {
    switch (source_class) {
    case PD_SOURCE_LOCAL: return "local";
    case PD_SOURCE_LAN: return "lan";
    case PD_SOURCE_WAN: return "wan";
    case PD_SOURCE_ORIGIN: return "origin";
    default: return "unknown";
    }
}
