#include "capi/translate.h"

#include "platform/file.h"
#include "util/key_file.h"

#include <peerdist/events.h>
#include <peerdist/session.h>

#include <cstddef>
#include <cstring>

#include <cstdlib>
#include <filesystem>

#ifndef PD_PLUGIN_INSTALL_DIR
#define PD_PLUGIN_INSTALL_DIR "/usr/local/lib/peerdist/plugins"
#endif
#ifndef PD_PLUGIN_DIR_FROM_LIBRARY
#define PD_PLUGIN_DIR_FROM_LIBRARY "peerdist/plugins"
#endif

using namespace pd::capi;

template <std::size_t N>
static void copy_text(char (&dst)[N], const std::string &src) {
    std::strncpy(dst, src.c_str(), N - 1);
    dst[N - 1] = '\0';
}

extern "C" {

// The struct's size in each version, for callers built against older headers.
static const std::initializer_list<std::size_t> session_options_sizes = {offsetof(pd_session_options, plugin_dir),
                                                                         sizeof(pd_session_options)};
static_assert(PD_SESSION_OPTIONS_VERSION == 2, "list the new version's struct size");

PD_API int pd_session_options_init(pd_session_options *opts, uint32_t version) {
    const pd_session_options defaults = PD_SESSION_OPTIONS_INIT;
    return init_options(opts, version, defaults, session_options_sizes, "pd_session_options");
}

PD_API int pd_session_new(pd_session **out, const pd_session_options *opts) {
    return guard([&] {
        require(out, "out");
        *out = nullptr;
        require(opts, "opts");
        if (opts->version == 0 || opts->version > PD_SESSION_OPTIONS_VERSION)
            pd::fail(PD_E_VERSION, PD_CATEGORY_API,
                     "pd_session_options version " + std::to_string(opts->version) + " is newer than this library");
        // A caller built against older headers passed a shorter struct: the rest are defaults.
        const pd_session_options defaults = PD_SESSION_OPTIONS_INIT;
        pd_session_options o = complete_options(opts, defaults, session_options_sizes);
        if (!o.cache_dir || !*o.cache_dir) misuse("cache_dir is required");
        if (o.fleet_key && o.fleet_key_len != 32) misuse("fleet_key must be 32 bytes");
        auto s = std::make_unique<pd_session>();
        s->plugin_dir = o.plugin_dir && *o.plugin_dir ? o.plugin_dir : pd_plugin_dir_default();
        s->impl = std::make_unique<pd::core::session>(o);
        *out = s.release();
        return PD_OK;
    });
}

PD_API void pd_session_free(pd_session *session) {
    if (!session || pd::core::in_notify_callback()) return;
    try {
        delete session;
    } catch (...) {
    }
}

PD_API int pd_session_set_setting(pd_session *session, const char *key, const char *value) {
    return guard([&] {
        auto &s = checked(session);
        require(key, "key");
        require(value, "value");
        s.apply_setting(key, value);
        return PD_OK;
    });
}

PD_API int pd_session_get_setting(pd_buf *out, pd_session *session, const char *key) {
    return guard([&] {
        auto &s = checked(session);
        require(out, "out");
        require(key, "key");
        auto v = s.config().get(key);
        if (!v) pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_API, std::string("unknown setting '") + key + "'");
        fill_buf(out, v->data(), v->size());
        return PD_OK;
    });
}

PD_API int pd_session_load_plugin(pd_session *session, const char *path) {
    return guard([&] {
        auto &s = checked(session);
        const std::string where = path ? path : session->plugin_dir;
        auto before = s.plugins().backends().size();
        std::optional<pd::error> failure;
        try {
            s.plugins().load(where);
        } catch (const pd::error &e) {
            failure = e;
        }
        auto all = s.plugins().backends();
        for (auto i = before; i < all.size(); ++i) {
            auto e = pd::core::make_event(PD_EVENT_PLUGIN_LOADED, 0, all[i]->name().c_str());
            e.count = all[i]->abi_version();
            s.emit(e);
        }
        if (failure) throw *failure;
        return PD_OK;
    });
}

PD_API int pd_session_listen_addresses(pd_buf *out, pd_session *session) {
    return guard([&] {
        auto &s = checked(session);
        std::string joined;
        for (auto &a : s.listen_addresses()) joined += (joined.empty() ? "" : ",") + a;
        fill_buf(out, joined.data(), joined.size());
        return PD_OK;
    });
}

PD_API const char *pd_plugin_dir_default(void) {
    static const std::string dir = [] {
        if (const char *env = std::getenv("PEERDIST_PLUGIN_DIR"); env && *env) return std::string(env);
        try {
            // Relative to this library: the SDK works from whatever prefix it was installed to.
            auto lib = pd::platform::fs_path(pd::platform::this_library_path());
            auto beside = (lib.parent_path() / pd::platform::fs_path(PD_PLUGIN_DIR_FROM_LIBRARY)).lexically_normal();
            std::error_code ec;
            if (std::filesystem::is_directory(beside, ec)) return pd::platform::utf8_path(beside);
        } catch (const std::exception &) {
        }
        return std::string(PD_PLUGIN_INSTALL_DIR);
    }();
    return dir.c_str();
}

PD_API int pd_session_list_plugins(pd_session *session, pd_plugin_info *infos, size_t info_size, size_t *count) {
    return guard([&] {
        auto &s = checked(session);
        require(count, "count");
        auto all = s.plugins().backends();
        std::size_t capacity = *count;
        *count = all.size();
        if (!infos) return PD_OK;  // size query
        if (info_size < sizeof(std::uint32_t)) misuse("info_size is too small");
        if (capacity < all.size()) pd::fail(PD_E_BUFS, PD_CATEGORY_API, "plugin array too small");
        for (std::size_t i = 0; i < all.size(); ++i) {
            pd_plugin_info info{};
            info.struct_size = sizeof info;
            info.abi_version = all[i]->abi_version();
            info.source_class = all[i]->source_class();
            copy_text(info.name, all[i]->name());
            copy_text(info.version, all[i]->version());
            copy_text(info.path, all[i]->path());
            auto dst = reinterpret_cast<pd_plugin_info *>(reinterpret_cast<char *>(infos) + i * info_size);
            dst->struct_size = static_cast<std::uint32_t>(std::min(info_size, sizeof info));
            copy_sized(dst, info);
        }
        return PD_OK;
    });
}

PD_API int pd_session_get_stats(pd_session_stats *out, pd_session *session) {
    return guard([&] {
        auto &s = checked(session);
        require(out, "out");
        auto c = s.call([&] { return s.serving_counters(); });
        pd_session_stats st{};
        st.struct_size = sizeof st;
        st.bytes_uploaded = c.bytes_uploaded;
        st.blocks_uploaded = c.blocks_uploaded;
        st.peer_connections = c.connections_accepted;
        st.peers_refused = c.connections_refused;
        st.connections_open = c.connections_open;
        st.wan_budget_bytes = s.wan_budget();
        copy_sized(out, st);
        return PD_OK;
    });
}

PD_API int pd_session_device_facts(pd_device_facts *out, pd_session *session) {
    return guard([&] {
        auto &s = checked(session);
        require(out, "out");
        copy_sized(out, s.device_facts());
        return PD_OK;
    });
}

PD_API int pd_session_set_device_facts(pd_session *session, const pd_device_facts *facts) {
    return guard([&] {
        auto &s = checked(session);
        if (facts && facts->struct_size < sizeof(std::uint32_t)) misuse("struct_size is not set");
        s.set_device_overrides(facts);
        return PD_OK;
    });
}

PD_API int pd_session_poll_events(pd_session *session, pd_event *events, size_t event_size, size_t capacity, size_t *count) {
    return guard([&] {
        auto &s = checked(session);
        require(count, "count");
        *count = 0;
        if (capacity && !events) misuse("events is NULL");
        if (capacity && event_size < offsetof(pd_event, message)) misuse("event_size is too small");
        *count = s.events().pop(events, event_size, capacity);
        return PD_OK;
    });
}

PD_API int pd_session_wait_events(pd_session *session, pd_event *events, size_t event_size, size_t capacity,
                                  size_t *count, int32_t timeout_ms) {
    return guard([&] {
        auto &s = checked(session);
        require(count, "count");
        *count = 0;
        if (!capacity || !events) misuse("wait needs room for at least one event");
        if (event_size < offsetof(pd_event, message)) misuse("event_size is too small");
        if (!s.events().wait(timeout_ms)) pd::fail(PD_E_TIMEOUT, PD_CATEGORY_API, "no event within the timeout");
        *count = s.events().pop(events, event_size, capacity);
        if (*count == 0) pd::fail(PD_E_TIMEOUT, PD_CATEGORY_API, "no event within the timeout");
        return PD_OK;
    });
}

PD_API int pd_session_event_fd(int *out_fd, pd_session *session) {
    return guard([&] {
        auto &s = checked(session);
        require(out_fd, "out_fd");
        if (s.events().fd() < 0)
            pd::fail(PD_E_UNSUPPORTED, PD_CATEGORY_API, "no wake-up descriptor on this platform (use pd_session_event_handle)");
        *out_fd = s.events().fd();
        return PD_OK;
    });
}

PD_API int pd_session_event_handle(void **out_handle, pd_session *session) {
    return guard([&] {
        auto &s = checked(session);
        require(out_handle, "out_handle");
        if (!s.events().handle())
            pd::fail(PD_E_UNSUPPORTED, PD_CATEGORY_API, "no wake-up event object on this platform (use pd_session_event_fd)");
        *out_handle = s.events().handle();
        return PD_OK;
    });
}

PD_API const char *pd_event_type_name(uint32_t type) {
    switch (type) {
    case PD_EVENT_NONE: return "none";
    case PD_EVENT_DROPPED: return "dropped";
    case PD_EVENT_JOB_STARTED: return "job-started";
    case PD_EVENT_JOB_PROGRESS: return "job-progress";
    case PD_EVENT_JOB_COMPLETED: return "job-completed";
    case PD_EVENT_JOB_FAILED: return "job-failed";
    case PD_EVENT_JOB_PAUSED: return "job-paused";
    case PD_EVENT_JOB_RESUMED: return "job-resumed";
    case PD_EVENT_JOB_CANCELLED: return "job-cancelled";
    case PD_EVENT_SOURCE_FALLBACK: return "source-fallback";
    case PD_EVENT_BLOCK_REJECTED: return "block-rejected";
    case PD_EVENT_PLUGIN_LOADED: return "plugin-loaded";
    case PD_EVENT_PLUGIN: return "plugin";
    case PD_EVENT_CACHE_EVICTED: return "cache-evicted";
    case PD_EVENT_LOG: return "log";
    case PD_EVENT_TRANSFER_PAUSED: return "transfer_paused";
    case PD_EVENT_TRANSFER_RESUMED: return "transfer_resumed";
    case PD_EVENT_TRANSFER_RAISED: return "transfer_raised";
    default: return "unknown";
    }
}

}  // extern "C"

PD_API int pd_fleet_key_read_file(uint8_t key[32], const char *path) {
    return guard([&] {
        require(key, "key");
        require(path, "path");
        auto k = pd::read_fleet_key(path);
        std::memcpy(key, k.data(), k.size());
        return PD_OK;
    });
}
