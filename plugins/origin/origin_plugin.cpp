// The `origin` backend: fetches content from where it was published when no peer has
// it — a CDN or web server over HTTP(S) (http_source.cpp) or file storage, a local path
// or file:// URL (file_source.cpp). A content's origin locator may list several origins,
// one per line, in order of preference (e.g. the CDN, then a file share): a failing one is
// reported to the host (a SOURCE_FALLBACK event with the reason) and the next takes over.
// Every byte returned is verified by the core against the manifest, so a tampering
// origin is caught there; here we detect changed content (size, ETag, Last-Modified) early.
//
// Settings (session settings under "plugin.origin.", read when a stream opens; the rate
// cap is read on every read): see docs/origin.md.
#include "source.h"

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstddef>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace pd_origin {

namespace {

struct backend {
    const pd_host_api *host = nullptr;
    std::mutex rate_mu;
    std::chrono::steady_clock::time_point next_free{};
};

std::string get_string(const pd_host_api *host, const char *key) {
    char buf[4096];
    int64_t n = host->get_setting(host->host, key, buf, sizeof buf);
    if (n <= 0 || n >= static_cast<int64_t>(sizeof buf)) return "";
    return std::string(buf, static_cast<std::size_t>(n));
}

std::uint64_t get_u64(const pd_host_api *host, const char *key, std::uint64_t def) {
    std::string v = get_string(host, key);
    if (v.empty()) return def;
    char *end = nullptr;
    unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    return end && *end == '\0' ? n : def;
}

void set_message(char *buf, size_t size, const std::string &text) {
    if (buf && size) std::snprintf(buf, size, "%s", text.c_str());
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// file:///abs/path (or file://localhost/abs/path) with %XX escapes -> /abs/path;
// on Windows file:///C:/abs/path -> C:/abs/path.
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
#ifdef _WIN32
    // file:///C:/dir/file names C:/dir/file (RFC 8089 E.2: drive letters exist only here).
    if (path.size() >= 3 && path[0] == '/' && std::isalpha(static_cast<unsigned char>(path[1])) && path[2] == ':') path.erase(0, 1);
#endif
    return true;
}

std::vector<std::string> split_locators(const std::string &text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::string item = text.substr(pos, end - pos);
        while (!item.empty() && (item.back() == '\r' || item.back() == ' ')) item.pop_back();
        while (!item.empty() && item.front() == ' ') item.erase(item.begin());
        if (!item.empty()) out.push_back(item);
        pos = end + 1;
    }
    return out;
}

// A stream: the content's origins in order, the one in use, and failover between them.
struct stream {
    std::uint64_t size = 0;
    read_context ctx{};
    std::vector<std::string> locators;
    std::mutex mu;
    std::vector<std::shared_ptr<source>> sources;  // opened lazily, index = locator
    std::size_t active = 0;
    std::string failures;  // every origin's reason, for the final error
};

status make_and_open(stream &st, std::size_t index, const settings &s, std::shared_ptr<source> &out) {
    const std::string &loc = st.locators[index];
    std::unique_ptr<source> src;
    if (loc.rfind("http://", 0) == 0 || loc.rfind("https://", 0) == 0) {
        src = make_http_source(loc, s, st.ctx);
        if (!src) return status::fail(PD_PLUGIN_E_INVALID, "origin '" + loc + "' is not a valid URL");
    } else if (loc.rfind("file://", 0) == 0) {
        std::string path;
        if (!file_url_to_path(loc, path)) return status::fail(PD_PLUGIN_E_INVALID, "origin '" + loc + "' is not an absolute file:// URL");
        src = make_file_source(path);
    } else if (loc.find("://") != std::string::npos) {
        return status::fail(PD_PLUGIN_E_NOT_FOUND, "origin '" + loc + "' uses a scheme this backend does not speak");
    } else {
        src = make_file_source(loc);
    }
    status r = src->open(st.size);
    if (r.ok()) out = std::move(src);
    return r;
}

// Moves the stream past origin `failed` (if it is still the active one) to the next that
// opens; reports each fallback to the host. Returns the source to use, or null.
std::shared_ptr<source> fail_over(stream &st, std::size_t failed, const status &why, const settings &s) {
    std::lock_guard lk(st.mu);
    if (st.active != failed) return st.active < st.sources.size() ? st.sources[st.active] : nullptr;
    st.failures += (st.failures.empty() ? "" : "; ") + st.locators[failed] + ": " + why.message;
    for (std::size_t next = failed + 1; next < st.locators.size(); ++next) {
        st.ctx.host->report_fallback(st.ctx.host->host, st.ctx.job_id,
                                     ("origin '" + st.locators[next - 1] + "' failed (" +
                                      (next - 1 == failed ? why.message : std::string("could not open")) + "); trying '" +
                                      st.locators[next] + "'")
                                         .c_str());
        std::shared_ptr<source> src;
        status r = make_and_open(st, next, s, src);
        if (r.ok()) {
            st.sources[next] = src;
            st.active = next;
            return src;
        }
        st.failures += "; " + st.locators[next] + ": " + r.message;
    }
    st.active = st.locators.size();
    return nullptr;
}

// [MS-PCCRC] 2.3: the size of Content Information V1 (SHA-256) for `size` bytes of content
// (the core's content::pccrc::v1_info_bytes; a plugin links nothing from the core).
std::uint64_t content_info_v1_bytes(std::uint64_t size) {
    std::uint64_t blocks = (size + 65535) / 65536, segments = (size + (32u << 20) - 1) / (32u << 20);
    return 18 + segments * (80 + 4) + blocks * 32;
}

// When the origin answers PeerDist requests, the content's Content Information is recorded
// with the host (which checks it describes exactly the content's blocks): this device then
// answers Windows' BranchCache peers for it (the branchcache backend's wire mode), and later
// downloads of it look for them first. Only with plugin.origin.peerdist=1: against an origin
// that does not speak PeerDist the request costs what the server sends before the connection
// is dropped (a few hundred KiB). Skipped for a content whose Content Information is already
// recorded, and by hosts older than the service.
void record_content_info(const pd_host_api *host, const pd_content_ref &ref, source &src) {
    if (host->struct_size < offsetof(pd_host_api, set_branchcache_info) + sizeof host->set_branchcache_info ||
        !host->set_branchcache_info || !host->branchcache_segment_of || get_u64(host, "peerdist", 0) == 0 ||
        ref.size > (1ull << 40))
        return;
    pd_branchcache_segment known{};
    known.struct_size = sizeof known;
    if (host->branchcache_segment_of(host->host, ref.id, 0, &known) == 0) return;
    std::vector<std::uint8_t> info;
    status r = src.content_info(info, static_cast<std::size_t>(content_info_v1_bytes(ref.size)));
    if (!r.ok()) {
        if (!r.message.empty())
            host->log(host->host, 1, ("origin: " + src.describe() + ": no Content Information: " + r.message).c_str());
        return;
    }
    if (host->set_branchcache_info(host->host, ref.id, info.data(), info.size()) != 0)
        host->log(host->host, 1, ("origin: " + src.describe() + " sent Content Information of other blocks: not recorded").c_str());
    else
        host->log(host->host, 2, ("origin: recorded the Content Information " + src.describe() + " sent").c_str());
}

int32_t PD_CALLBACK origin_create(void **self, const pd_host_api *host, const char *) {
    auto b = new (std::nothrow) backend;
    if (!b) return PD_PLUGIN_E_GENERIC;
    b->host = host;
    *self = b;
    return PD_PLUGIN_OK;
}

void PD_CALLBACK origin_destroy(void *self) { delete static_cast<backend *>(self); }

int32_t PD_CALLBACK origin_open(void *self, void **out, const pd_content_ref *ref, char *msg, size_t msg_size) {
    auto b = static_cast<backend *>(self);
    auto st = std::make_unique<stream>();
    st->size = ref->size;
    st->ctx = {b->host, ref->job_id};
    st->locators = split_locators(ref->origin ? ref->origin : "");
    if (st->locators.empty()) {
        set_message(msg, msg_size, "no origin recorded for this content");
        return PD_PLUGIN_E_NOT_FOUND;
    }
    st->sources.resize(st->locators.size());
    settings s = settings::read(b->host);
    std::shared_ptr<source> first;
    status r = make_and_open(*st, 0, s, first);
    if (r.ok()) {
        st->sources[0] = first;
        record_content_info(b->host, *ref, *first);
    }
    else if (!fail_over(*st, 0, r, s)) {
        set_message(msg, msg_size, st->locators.size() == 1 ? r.message : "every origin failed: " + st->failures);
        return r.code;
    }
    *out = st.release();
    return PD_PLUGIN_OK;
}

// Paces reads to max_rate_bytes over all streams. The cap is re-read while waiting,
// so lifting or changing it takes effect within 50 ms, also for reads already waiting.
bool pace(backend *b, const read_context &ctx, std::size_t bytes) {
    using clock = std::chrono::steady_clock;
    std::uint64_t rate = get_u64(b->host, "max_rate_bytes", 0);
    if (!rate) return true;
    clock::time_point start;
    {
        std::lock_guard lk(b->rate_mu);
        start = std::max(clock::now(), b->next_free);
        b->next_free = start + std::chrono::microseconds(bytes * 1000000ull / rate);
    }
    for (;;) {
        if (ctx.should_stop()) return false;
        rate = get_u64(b->host, "max_rate_bytes", 0);
        auto now = clock::now();
        if (!rate) {
            std::lock_guard lk(b->rate_mu);
            b->next_free = now;
            return true;
        }
        auto until = start + std::chrono::microseconds(bytes * 1000000ull / rate);
        if (now >= until) return true;
        std::this_thread::sleep_for(std::min<clock::duration>(until - now, std::chrono::milliseconds(50)));
    }
}

int32_t PD_CALLBACK origin_read(void *self, void *handle, uint64_t offset, void *buffer, size_t length, size_t *read,
                                char *msg, size_t msg_size) {
    auto b = static_cast<backend *>(self);
    auto st = static_cast<stream *>(handle);
    *read = 0;
    if (offset > st->size) {
        set_message(msg, msg_size, "read beyond the end of the content");
        return PD_PLUGIN_E_INVALID;
    }
    length = static_cast<size_t>(std::min<std::uint64_t>(length, st->size - offset));
    if (!pace(b, st->ctx, length)) return PD_PLUGIN_E_CANCELLED;
    std::shared_ptr<source> src;
    std::size_t index;
    {
        std::lock_guard lk(st->mu);
        index = st->active;
        if (index < st->sources.size()) src = st->sources[index];
    }
    while (src) {
        status r = src->read(offset, buffer, length);
        if (r.ok()) {
            *read = length;
            return PD_PLUGIN_OK;
        }
        if (r.code == PD_PLUGIN_E_CANCELLED) return r.code;
        settings s = settings::read(b->host);
        src = fail_over(*st, index, r, s);
        std::lock_guard lk(st->mu);
        index = st->active;
        if (!src) {
            set_message(msg, msg_size, st->locators.size() == 1 ? r.message : "every origin failed: " + st->failures);
            return r.code;
        }
    }
    std::lock_guard lk(st->mu);
    set_message(msg, msg_size, "every origin failed: " + st->failures);
    return PD_PLUGIN_E_IO;
}

void PD_CALLBACK origin_close(void *, void *handle) { delete static_cast<stream *>(handle); }

// A download from a URL alone: the Content Information of an HTTP(S) origin answering
// PeerDist requests (pd serve, a BranchCache-enabled server).
int32_t PD_CALLBACK origin_describe_origin(void *self, const char *locator, size_t max_bytes, pd_content_info_fn accept,
                                           void *context, char *msg, size_t msg_size) {
    auto b = static_cast<backend *>(self);
    std::string loc = locator ? locator : "";
    set_message(msg, msg_size, "");
    if (loc.rfind("http://", 0) != 0 && loc.rfind("https://", 0) != 0) return PD_PLUGIN_E_NOT_FOUND;
    auto src = make_http_source(loc, settings::read(b->host), read_context{b->host, 0});
    if (!src) {
        set_message(msg, msg_size, "'" + loc + "' is not a valid URL");
        return PD_PLUGIN_E_INVALID;
    }
    std::vector<std::uint8_t> info;
    status r = src->content_info(info, max_bytes);
    if (!r.ok()) {
        set_message(msg, msg_size, r.message.empty() ? loc + " does not answer PeerDist requests" : r.message);
        return r.code;
    }
    accept(context, info.data(), info.size());
    return PD_PLUGIN_OK;
}

const pd_backend_vtable origin_vtable = {
    sizeof(pd_backend_vtable), 3 /* PD_SOURCE_ORIGIN */,
    origin_create,             origin_destroy,
    origin_open,               origin_read,
    origin_close,
    nullptr,  // content_available
    nullptr,  // find_peers
    nullptr,  // origin_allowed
    nullptr,  // job_finished
    nullptr,  // describe_content
    nullptr,  // content_removed
    origin_describe_origin,
};

const pd_backend_vtable *PD_CALLBACK origin_backend_for(uint32_t abi_version) {
    return abi_version == 1 ? &origin_vtable : nullptr;
}

const pd_plugin_descriptor origin_descriptor = {
    sizeof(pd_plugin_descriptor), PD_PLUGIN_ABI_VERSION, 1, 0, "origin", "0.2.0", "Apache-2.0",
    "Content from its origins: HTTP(S) CDNs and file storage, with failover", origin_backend_for,
};

}  // namespace

settings settings::read(const pd_host_api *host) {
    settings s;
    s.connect_timeout_ms = get_u64(host, "connect_timeout_ms", s.connect_timeout_ms);
    s.idle_timeout_ms = get_u64(host, "idle_timeout_ms", s.idle_timeout_ms);
    s.max_redirects = get_u64(host, "max_redirects", s.max_redirects);
    s.retries = get_u64(host, "retries", s.retries);
    s.retry_backoff_ms = get_u64(host, "retry_backoff_ms", s.retry_backoff_ms);
    s.max_connections = get_u64(host, "max_connections", s.max_connections);
    s.verify_tls = get_u64(host, "verify_tls", 1) != 0;
    s.ca_file = get_string(host, "ca_file");
    s.client_cert = get_string(host, "client_cert");
    s.client_key = get_string(host, "client_key");
    s.proxy = get_string(host, "proxy");
    return s;
}

}  // namespace pd_origin

extern "C" PD_PLUGIN_EXPORT const pd_plugin_descriptor *pd_plugin_describe(void) {
    return &pd_origin::origin_descriptor;
}
