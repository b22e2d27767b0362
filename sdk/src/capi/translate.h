// The one translator every extern "C" body goes through: no exception crosses the C
// boundary; failures become a return code plus the thread's pd_error record.
#pragma once

#include "core/event_queue.h"
#include "core/session.h"
#include "util/error.h"

#include <peerdist/common.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <string>

struct pd_session {
    std::unique_ptr<pd::core::session> impl;
    std::string plugin_dir;  // what pd_session_load_plugin(session, NULL) loads
};

struct pd_manifest {
    pd::content::manifest m;
    pd_content_id id;
};

namespace pd::capi {

void set_error(int code, int category, const std::string &message);
void clear_error();

template <class F>
int guard(F &&f) noexcept {
    try {
        int rc = f();
        if (rc == PD_OK) clear_error();
        return rc;
    } catch (const pd::error &e) {
        set_error(e.code(), e.category(), e.what());
        return e.code();
    } catch (const std::bad_alloc &) {
        set_error(PD_E_NOMEM, PD_CATEGORY_OS, "out of memory");
        return PD_E_NOMEM;
    } catch (const std::exception &e) {
        set_error(PD_E_GENERIC, PD_CATEGORY_NONE, e.what());
        return PD_E_GENERIC;
    } catch (...) {
        set_error(PD_E_GENERIC, PD_CATEGORY_NONE, "unknown internal failure");
        return PD_E_GENERIC;
    }
}

[[noreturn]] inline void misuse(const std::string &what) { pd::fail(PD_E_MISUSE, PD_CATEGORY_API, what); }

// Checks a session handle and that the caller is not inside the notify callback.
inline pd::core::session &checked(pd_session *s) {
    if (!s || !s->impl) misuse("session handle is NULL");
    if (pd::core::in_notify_callback()) misuse("the notify callback must not call back into the session");
    return *s->impl;
}

inline void require(const void *p, const char *name) {
    if (!p) misuse(std::string(name) + " is NULL");
}

// Copies a C++ string into a pd_buf (NUL-terminated).
void fill_buf(pd_buf *out, const void *data, std::size_t len);

// Copies min(caller's struct_size, ours) of `src` into `dst` (caller-set struct_size).
template <class T>
void copy_sized(T *dst, const T &src) {
    if (dst->struct_size < sizeof(std::uint32_t)) misuse("struct_size is not set");
    std::uint32_t size = dst->struct_size;
    std::memcpy(reinterpret_cast<char *>(dst) + sizeof(std::uint32_t), reinterpret_cast<const char *>(&src) + sizeof(std::uint32_t),
                std::min<std::size_t>(size, sizeof(T)) - sizeof(std::uint32_t));
}

// Fills a caller's options struct with the defaults of the version it was built against.
// `size_by_version` lists each version's struct size, oldest first (structs only grow at the
// end): a caller compiled against an older header passes a smaller struct, so only that
// version's prefix is written.
template <class Options>
int init_options(Options *opts, std::uint32_t version, const Options &defaults, std::initializer_list<std::size_t> size_by_version,
                 const char *name) {
    return guard([&] {
        require(opts, "opts");
        if (version == 0 || version > size_by_version.size())
            pd::fail(PD_E_VERSION, PD_CATEGORY_API, std::string(name) + " version " + std::to_string(version) + " is unknown");
        std::memcpy(opts, &defaults, size_by_version.begin()[version - 1]);
        opts->version = version;
        return PD_OK;
    });
}

// The caller's options of its struct version, completed with `defaults` for the fields a
// later version added (the caller's struct is only as long as its version's size).
template <typename Options>
Options complete_options(const Options *given, const Options &defaults, std::initializer_list<std::size_t> size_by_version) {
    Options o = defaults;
    std::memcpy(&o, given, size_by_version.begin()[given->version - 1]);
    return o;
}

}  // namespace pd::capi
