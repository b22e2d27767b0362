// The `origin` backend: fetches content from where it was published when no peer has
// it. This version serves file storage — a local path or a file:// URL, which covers
// mounted shares. Every byte it returns is verified by the core against the manifest,
// so a tampered file is caught there; here we only detect a changed size early.
//
// Settings (session settings under "plugin.origin."):
//   max_rate_bytes  cap on bytes per second over all streams (0 = none), read live.
#include <peerdist/sys/plugin.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace {

struct origin_backend {
    const pd_host_api *host = nullptr;
    std::mutex rate_mu;
    std::chrono::steady_clock::time_point next_free{};
};

struct origin_stream {
    int fd = -1;
    std::uint64_t size = 0;
    std::uint64_t job_id = 0;
    std::string path;
};

void set_message(char *buf, size_t size, const std::string &text) {
    if (buf && size) std::snprintf(buf, size, "%s", text.c_str());
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// file:///abs/path (or file://localhost/abs/path) with %XX escapes -> /abs/path.
bool file_url_to_path(const std::string &url, std::string &path) {
    std::string rest = url.substr(7);
    if (rest.rfind("localhost/", 0) == 0) rest = rest.substr(9);
    if (rest.empty() || rest[0] != '/') return false;
    path.clear();
    for (std::size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '%' && i + 2 < rest.size() && hex_digit(rest[i + 1]) >= 0 && hex_digit(rest[i + 2]) >= 0) {
            path.push_back(static_cast<char>(hex_digit(rest[i + 1]) * 16 + hex_digit(rest[i + 2])));
            i += 2;
        } else {
            path.push_back(rest[i]);
        }
    }
    return true;
}

std::uint64_t setting_u64(const pd_host_api *host, const char *key) {
    char buf[32];
    int64_t n = host->get_setting(host->host, key, buf, sizeof buf);
    if (n <= 0 || n >= static_cast<int64_t>(sizeof buf)) return 0;
    return std::strtoull(buf, nullptr, 10);
}

int32_t PD_CALLBACK origin_create(void **self, const pd_host_api *host, const char *) {
    auto b = new (std::nothrow) origin_backend;
    if (!b) return PD_PLUGIN_E_GENERIC;
    b->host = host;
    *self = b;
    return PD_PLUGIN_OK;
}

void PD_CALLBACK origin_destroy(void *self) { delete static_cast<origin_backend *>(self); }

int32_t PD_CALLBACK origin_open(void *, void **stream, const pd_content_ref *ref, char *msg, size_t msg_size) {
    std::string locator = ref->origin ? ref->origin : "";
    std::string path;
    if (locator.empty()) {
        set_message(msg, msg_size, "no origin recorded for this content");
        return PD_PLUGIN_E_NOT_FOUND;
    }
    if (locator.rfind("file://", 0) == 0) {
        if (!file_url_to_path(locator, path)) {
            set_message(msg, msg_size, "origin '" + locator + "' is not an absolute file:// URL");
            return PD_PLUGIN_E_INVALID;
        }
    } else if (locator.find("://") != std::string::npos) {
        set_message(msg, msg_size, "origin '" + locator + "' is not file storage");
        return PD_PLUGIN_E_NOT_FOUND;
    } else {
        path = locator;
    }
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        set_message(msg, msg_size, "cannot open origin file '" + path + "': " + std::strerror(err));
        return err == ENOENT ? PD_PLUGIN_E_NOT_FOUND : PD_PLUGIN_E_IO;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        set_message(msg, msg_size, "origin '" + path + "' is not a regular file");
        return PD_PLUGIN_E_IO;
    }
    if (static_cast<std::uint64_t>(st.st_size) != ref->size) {
        ::close(fd);
        set_message(msg, msg_size,
                    "origin content changed: '" + path + "' is " + std::to_string(st.st_size) +
                        " bytes but the published content is " + std::to_string(ref->size));
        return PD_PLUGIN_E_CHANGED;
    }
    auto s = new (std::nothrow) origin_stream{fd, ref->size, ref->job_id, path};
    if (!s) {
        ::close(fd);
        return PD_PLUGIN_E_GENERIC;
    }
    *stream = s;
    return PD_PLUGIN_OK;
}

// Paces reads to max_rate_bytes over all streams; wakes every 50 ms to honour stops.
bool pace(origin_backend *b, std::uint64_t job_id, std::size_t bytes) {
    std::uint64_t rate = setting_u64(b->host, "max_rate_bytes");
    if (!rate) return true;
    using clock = std::chrono::steady_clock;
    clock::time_point until;
    {
        std::lock_guard lk(b->rate_mu);
        auto start = std::max(clock::now(), b->next_free);
        until = start + std::chrono::microseconds(bytes * 1000000ull / rate);
        b->next_free = until;
    }
    while (clock::now() < until) {
        if (b->host->job_should_stop(b->host->host, job_id)) return false;
        std::this_thread::sleep_for(std::min<clock::duration>(until - clock::now(), std::chrono::milliseconds(50)));
    }
    return true;
}

int32_t PD_CALLBACK origin_read(void *self, void *stream, uint64_t offset, void *buffer, size_t length, size_t *read,
                                char *msg, size_t msg_size) {
    auto b = static_cast<origin_backend *>(self);
    auto s = static_cast<origin_stream *>(stream);
    *read = 0;
    if (!pace(b, s->job_id, length)) return PD_PLUGIN_E_CANCELLED;
    auto p = static_cast<char *>(buffer);
    while (*read < length) {
        ssize_t n = ::pread(s->fd, p + *read, length - *read, static_cast<off_t>(offset + *read));
        if (n < 0) {
            if (errno == EINTR) continue;
            set_message(msg, msg_size, "reading origin file '" + s->path + "': " + std::strerror(errno));
            return PD_PLUGIN_E_IO;
        }
        if (n == 0) break;
        *read += static_cast<size_t>(n);
    }
    return PD_PLUGIN_OK;
}

void PD_CALLBACK origin_close(void *, void *stream) {
    auto s = static_cast<origin_stream *>(stream);
    if (s->fd >= 0) ::close(s->fd);
    delete s;
}

const pd_backend_vtable origin_vtable = {
    sizeof(pd_backend_vtable), 3 /* PD_SOURCE_ORIGIN */, origin_create, origin_destroy,
    origin_open,               origin_read,             origin_close,  nullptr,
};

const pd_backend_vtable *PD_CALLBACK origin_backend_for(uint32_t abi_version) {
    return abi_version == 1 ? &origin_vtable : nullptr;
}

const pd_plugin_descriptor origin_descriptor = {
    sizeof(pd_plugin_descriptor), PD_PLUGIN_ABI_VERSION, 1, 0, "origin", "0.1.0", "Apache-2.0",
    "Content from its origin: file storage (path or file:// URL)", origin_backend_for,
};

}  // namespace

extern "C" PD_PLUGIN_EXPORT const pd_plugin_descriptor *pd_plugin_describe(void) { return &origin_descriptor; }
