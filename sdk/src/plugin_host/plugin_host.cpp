#include "plugin_host/plugin_host.h"

#include "platform/file.h"
#include "util/error.h"
#include "util/text.h"

#include <cstring>

#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>

namespace pd::plugin_host {

namespace fs = std::filesystem;

// Boost.DLL loads are serialised process-wide (dlopen runs constructors).
static std::mutex &load_mutex() {
    static std::mutex m;
    return m;
}

namespace {

// The C view of a content_ref; valid while `c` lives.
pd_content_ref c_ref(const content_ref &c) {
    pd_content_ref ref{};
    ref.struct_size = sizeof ref;
    std::memcpy(ref.id, c.id.data(), c.id.size());
    ref.size = c.size;
    ref.name = c.name.c_str();
    ref.origin = c.origin.c_str();
    ref.job_id = c.job_id;
    return ref;
}

// A plugin's failure as a pd::error: its code when it is one of ours (the plugin ABI's codes
// are pd_error_code values), its reason when it gave one.
[[noreturn]] void plugin_failed(const std::string &prefix, int rc, const char *message, const char *fallback) {
    int code = rc < 0 && rc >= PD_E_NO_SOURCE ? rc : PD_E_PLUGIN;
    fail(code, PD_CATEGORY_PLUGIN, prefix + (message[0] ? message : fallback));
}

// Fills a struct the plugin passed, whose version may be older (smaller) than ours: as much
// of `from` as the plugin's struct_size says it knows, struct_size set to that.
template <class T>
int32_t fill_known_part(T from, T *out) {
    auto n = std::min<std::size_t>(out->struct_size, sizeof from);
    if (n < sizeof from.struct_size) return PD_PLUGIN_E_INVALID;
    from.struct_size = static_cast<uint32_t>(n);
    std::memcpy(out, &from, n);
    return 0;
}

}  // namespace

stream::~stream() { backend_->vtable().close(backend_->self(), handle_); }

void stream::read(std::uint64_t offset, void *buffer, std::size_t length) const {
    char message[512] = "";
    std::size_t got = 0;
    int rc = backend_->vtable().read(backend_->self(), handle_, offset, buffer, length, &got, message, sizeof message);
    if (rc != PD_PLUGIN_OK) plugin_failed("", rc, message, "read failed");
    if (got != length)
        fail(PD_E_IO, PD_CATEGORY_PLUGIN,
             "short read: " + std::to_string(got) + " of " + std::to_string(length) +
                 " bytes at offset " + std::to_string(offset));
}

std::shared_ptr<stream> backend::open(const content_ref &content) const {
    if (!can_stream()) fail(PD_E_NOT_FOUND, PD_CATEGORY_PLUGIN, name_ + ": serves no data");
    auto ref = c_ref(content);
    char message[512] = "";
    void *handle = nullptr;
    int rc = vtable_.open(self_, &handle, &ref, message, sizeof message);
    if (rc == PD_PLUGIN_OK && handle) return std::shared_ptr<stream>(new stream(shared_from_this(), handle));
    if (rc == PD_PLUGIN_E_NOT_FOUND && !message[0]) return nullptr;  // nothing to do with this content
    plugin_failed(name_ + ": ", rc == PD_PLUGIN_OK ? PD_E_PLUGIN : rc, message, "cannot serve this content");
}

std::vector<std::string> backend::find_peers(const content_ref &content) const {
    if (!can_find_peers()) return {};
    auto ref = c_ref(content);
    std::vector<char> out(16384);
    if (vtable_.find_peers(self_, &ref, out.data(), out.size()) <= 0) return {};
    out.back() = '\0';  // a plugin that fills the buffer without a terminator
    return split_list(out.data(), '\n');
}

std::optional<bool> backend::origin_allowed(const content_ref &content) const {
    if (!has_origin_policy()) return std::nullopt;
    auto ref = c_ref(content);
    int rc = vtable_.origin_allowed(self_, &ref);
    if (rc == 0 || rc == 1) return rc == 1;
    return std::nullopt;
}

void backend::content_available(const content_ref &content) const {
    if (!vtable_.content_available) return;
    auto ref = c_ref(content);
    vtable_.content_available(self_, &ref);
}

void backend::job_finished(const content_ref &content, int state, const std::uint64_t *bytes_by_source,
                           std::size_t classes) const {
    if (!vtable_.job_finished) return;
    auto ref = c_ref(content);
    vtable_.job_finished(self_, &ref, state, bytes_by_source, classes);
}

std::optional<content_description> backend::describe(const std::array<std::uint8_t, 32> &id, std::string &not_found) const {
    if (!vtable_.describe_content) return std::nullopt;
    struct sink {
        std::optional<content_description> got;
        static void PD_CALLBACK accept(void *context, const pd_content_description *d) {
            auto self = static_cast<sink *>(context);
            if (!d || self->got) return;  // NULL, or a second call: the first description counts
            pd_content_description c{};
            std::memcpy(&c, d, std::min<std::size_t>(d->struct_size, sizeof c));
            content_description out;
            if (c.manifest && c.manifest_len) out.manifest.assign(c.manifest, c.manifest + c.manifest_len);
            if (c.publication && c.publication_len) out.publication.assign(c.publication, c.publication + c.publication_len);
            if (c.origins) out.origins = c.origins;
            self->got = std::move(out);
        }
    } s;
    char message[512] = "";
    int rc = vtable_.describe_content(self_, id.data(), &sink::accept, &s, message, sizeof message);
    message[sizeof message - 1] = '\0';
    if (rc == PD_PLUGIN_E_NOT_FOUND) {
        not_found = message;
        return std::nullopt;
    }
    if (rc != PD_PLUGIN_OK) plugin_failed(name_ + ": ", rc, message, "cannot describe this content");
    if (!s.got) fail(PD_E_PLUGIN, PD_CATEGORY_PLUGIN, name_ + ": described the content without handing over a description");
    return s.got;
}

std::optional<std::vector<std::uint8_t>> backend::describe_origin(const std::string &locator, std::size_t max_bytes,
                                                                   std::string &not_found) const {
    if (!vtable_.describe_origin) return std::nullopt;
    struct sink {
        std::optional<std::vector<std::uint8_t>> got;
        std::size_t max_bytes;
        static void PD_CALLBACK accept(void *context, const uint8_t *info, size_t len) {
            auto self = static_cast<sink *>(context);
            if (self->got || (!info && len) || len > self->max_bytes) return;  // the first call within the bound counts
            self->got.emplace(info, info + len);
        }
    } s{std::nullopt, max_bytes};
    char message[512] = "";
    int rc = vtable_.describe_origin(self_, locator.c_str(), max_bytes, &sink::accept, &s, message, sizeof message);
    message[sizeof message - 1] = '\0';
    if (rc == PD_PLUGIN_E_NOT_FOUND) {
        not_found = message;
        return std::nullopt;
    }
    if (rc != PD_PLUGIN_OK) plugin_failed(name_ + ": ", rc, message, "cannot ask the origin");
    if (!s.got) fail(PD_E_PLUGIN, PD_CATEGORY_PLUGIN, name_ + ": answered without handing over Content Information within " +
                                                         std::to_string(max_bytes) + " bytes");
    return s.got;
}

void backend::content_removed(const content_ref &content) const {
    if (!vtable_.content_removed) return;
    auto ref = c_ref(content);
    vtable_.content_removed(self_, &ref);
}

backend::~backend() {
    if (self_ && vtable_.destroy) vtable_.destroy(self_);
    self_ = nullptr;
}

plugin_host::plugin_host(host_services services, std::uint32_t abi_min, std::uint32_t abi_max)
    : services_(std::move(services)), abi_min_(abi_min), abi_max_(abi_max) {}

plugin_host::~plugin_host() { clear(); }

void plugin_host::clear() {
    std::vector<std::shared_ptr<backend>> doomed;
    {
        std::lock_guard lk(mu_);
        doomed.swap(backends_);
    }
    // Destroy in reverse load order.
    while (!doomed.empty()) doomed.pop_back();
}

std::vector<std::shared_ptr<backend>> plugin_host::backends() const {
    std::lock_guard lk(mu_);
    return backends_;
}

static bool is_plugin_file(const fs::path &p) {
    auto ext = p.extension().string();
    return ext == ".so" || ext == ".dylib" || ext == ".dll";
}

void plugin_host::load(const std::string &path) {
    std::error_code ec;
    if (fs::is_directory(platform::fs_path(path), ec)) {
        std::vector<fs::path> files;
        for (auto &entry : fs::directory_iterator(platform::fs_path(path), ec))
            if (entry.is_regular_file() && is_plugin_file(entry.path())) files.push_back(entry.path());
        std::sort(files.begin(), files.end());
        std::optional<error> first;
        for (auto &f : files) {
            try {
                load_file(platform::utf8_path(f));
            } catch (const error &e) {
                if (!first) first = e;
                if (services_.log) services_.log("", PD_LOG_WARN, e.what());
            }
        }
        if (first) throw *first;
        return;
    }
    if (!fs::exists(platform::fs_path(path), ec)) fail(PD_E_NOT_FOUND, PD_CATEGORY_PLUGIN, "plugin path '" + path + "' does not exist");
    load_file(path);
}

void plugin_host::load_file(const std::string &path) {
    std::shared_ptr<boost::dll::shared_library> lib;
    const pd_plugin_descriptor *descriptor = nullptr;
    {
        std::lock_guard lk(load_mutex());
        boost::dll::fs::error_code ec;
        lib = std::make_shared<boost::dll::shared_library>(platform::fs_path(path), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
        if (ec || !lib->is_loaded())
            fail(PD_E_PLUGIN, PD_CATEGORY_PLUGIN, "'" + path + "' is not a loadable plugin: " + ec.message());
        if (!lib->has(PD_PLUGIN_ENTRY_SYMBOL))
            fail(PD_E_PLUGIN, PD_CATEGORY_PLUGIN,
                 "'" + path + "' is a shared library but not a peerdist plugin: it does not export " PD_PLUGIN_ENTRY_SYMBOL "()");
        auto &describe = lib->get<const pd_plugin_descriptor *()>(PD_PLUGIN_ENTRY_SYMBOL);
        descriptor = describe();
    }
    adopt(descriptor, std::move(lib), path);
}

void plugin_host::add_builtin(const pd_plugin_descriptor *descriptor) { adopt(descriptor, nullptr, "(built in)"); }

static bool valid_name(const char *name) {
    if (!name || !*name || std::strlen(name) > 63) return false;
    for (const char *p = name; *p; ++p)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) return false;
    return true;
}

void plugin_host::adopt(const pd_plugin_descriptor *raw, std::shared_ptr<boost::dll::shared_library> lib,
                        const std::string &path) {
    auto bad = [&](int code, const std::string &why) { fail(code, PD_CATEGORY_PLUGIN, "plugin '" + path + "': " + why); };
    if (!raw) bad(PD_E_PLUGIN, PD_PLUGIN_ENTRY_SYMBOL "() returned NULL");
    constexpr std::size_t min_descriptor = offsetof(pd_plugin_descriptor, backend) + sizeof(raw->backend);
    if (raw->struct_size < min_descriptor)
        bad(PD_E_PLUGIN, "descriptor of " + std::to_string(raw->struct_size) + " bytes is smaller than ABI 1's " +
                             std::to_string(min_descriptor));
    // Copy what both sides know into a zeroed struct: a larger (newer) descriptor's
    // extra fields are ignored, a smaller one's missing fields read as zero.
    pd_plugin_descriptor d{};
    std::memcpy(&d, raw, std::min<std::size_t>(raw->struct_size, sizeof d));
    if (!valid_name(d.name)) bad(PD_E_PLUGIN, "name must be 1-63 characters of [a-z0-9_-]");
    std::string name = d.name;
    std::uint32_t plugin_min = d.abi_min_version ? d.abi_min_version : d.abi_version;
    if (d.abi_version < abi_min_ || plugin_min > abi_max_ || plugin_min > d.abi_version)
        bad(PD_E_VERSION, "plugin '" + name + "' implements plugin ABI " + std::to_string(plugin_min) + ".." +
                              std::to_string(d.abi_version) + " but this host implements " + std::to_string(abi_min_) +
                              ".." + std::to_string(abi_max_));
    std::uint32_t chosen = std::min(d.abi_version, abi_max_);
    if (!d.backend) bad(PD_E_PLUGIN, "plugin '" + name + "' has no backend() hook");
    const pd_backend_vtable *vt_raw = d.backend(chosen);
    if (!vt_raw) bad(PD_E_VERSION, "plugin '" + name + "' refused plugin ABI " + std::to_string(chosen));
    constexpr std::size_t min_vtable = offsetof(pd_backend_vtable, destroy) + sizeof(vt_raw->destroy);
    if (vt_raw->struct_size < min_vtable)
        bad(PD_E_PLUGIN, "plugin '" + name + "' vtable of " + std::to_string(vt_raw->struct_size) + " bytes is too small");

    auto b = std::shared_ptr<backend>(new backend());
    std::memcpy(&b->vtable_, vt_raw, std::min<std::size_t>(vt_raw->struct_size, sizeof b->vtable_));
    auto &vt = b->vtable_;
    if (!vt.create || !vt.destroy) bad(PD_E_PLUGIN, "plugin '" + name + "' lacks a required hook (create, destroy)");
    if (vt.open && (!vt.read || !vt.close))
        bad(PD_E_PLUGIN, "plugin '" + name + "' has open() but lacks read() or close()");
    if (vt.source_class >= PD_SOURCE_CLASS_COUNT)
        bad(PD_E_PLUGIN, "plugin '" + name + "' declares unknown source class " + std::to_string(vt.source_class));
    {
        std::lock_guard lk(mu_);
        for (auto &other : backends_)
            if (other->name_ == name) bad(PD_E_EXISTS, "a plugin named '" + name + "' is already loaded");
    }
    b->name_ = name;
    b->version_ = d.version ? d.version : "";
    b->path_ = path;
    b->abi_ = chosen;
    b->library_ = std::move(lib);
    b->context_ = {b.get(), &services_};

    auto &api = b->host_api_;
    api.struct_size = sizeof(pd_host_api);
    api.abi_version = chosen;
    api.host = &b->context_;
    api.log = [](void *h, int32_t level, const char *msg) {
        auto c = static_cast<host_context *>(h);
        if (c->services->log) c->services->log(c->owner->name_, level, msg ? msg : "");
    };
    api.get_setting = [](void *h, const char *key, char *buf, size_t size) -> int64_t {
        auto c = static_cast<host_context *>(h);
        if (!key || !c->services->get_setting) return PD_E_NOT_FOUND;
        auto v = c->services->get_setting("plugin." + c->owner->name_ + "." + key);
        if (!v) return PD_E_NOT_FOUND;
        if (buf && size > v->size()) std::memcpy(buf, v->c_str(), v->size() + 1);
        return static_cast<int64_t>(v->size());
    };
    api.emit_event = [](void *h, uint64_t job, int32_t code, const char *msg) {
        auto c = static_cast<host_context *>(h);
        if (c->services->emit) c->services->emit(c->owner->name_, job, code, msg ? msg : "");
    };
    api.now_ms = [](void *h) -> int64_t {
        auto c = static_cast<host_context *>(h);
        return c->services->now_ms ? c->services->now_ms() : 0;
    };
    api.job_should_stop = [](void *h, uint64_t job) -> int32_t {
        auto c = static_cast<host_context *>(h);
        return c->services->job_should_stop && c->services->job_should_stop(job) ? 1 : 0;
    };
    api.report_fallback = [](void *h, uint64_t job, const char *reason) {
        auto c = static_cast<host_context *>(h);
        if (c->services->fallback) c->services->fallback(c->owner->name_, job, reason ? reason : "");
    };
    api.content_label = [](void *h, const uint8_t id[32], uint8_t label[32]) -> int32_t {
        auto c = static_cast<host_context *>(h);
        return c->services->content_label && c->services->content_label(id, label) ? 0 : PD_PLUGIN_E_NOT_FOUND;
    };
    api.lookup_label = [](void *h, const uint8_t label[32], uint64_t *verified, uint64_t *total) -> int32_t {
        auto c = static_cast<host_context *>(h);
        std::uint64_t v = 0, t = 0;
        if (!c->services->lookup_label || !c->services->lookup_label(label, v, t)) return PD_PLUGIN_E_NOT_FOUND;
        if (verified) *verified = v;
        if (total) *total = t;
        return 0;
    };
    api.listen_addresses = [](void *h, char *buf, size_t size) -> int64_t {
        auto c = static_cast<host_context *>(h);
        std::string v = c->services->listen_addresses ? c->services->listen_addresses() : "";
        if (buf && size > v.size()) std::memcpy(buf, v.c_str(), v.size() + 1);
        return static_cast<int64_t>(v.size());
    };

    api.device_facts = [](void *h, pd_device_facts *facts, char *id, size_t id_size) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!c->services->device_facts) return PD_PLUGIN_E_GENERIC;
        pd_device_facts f{};
        std::string device_id;
        try {
            c->services->device_facts(f, device_id);
        } catch (...) {
            return PD_PLUGIN_E_GENERIC;
        }
        if (facts && fill_known_part(f, facts) != 0) return PD_PLUGIN_E_INVALID;
        if (id && id_size > device_id.size()) std::memcpy(id, device_id.c_str(), device_id.size() + 1);
        return 0;
    };

    api.set_wan_budget = [](void *h, uint64_t rate) {
        auto c = static_cast<host_context *>(h);
        if (c->services->set_wan_budget) c->services->set_wan_budget(rate);
    };

    api.device_sign = [](void *h, const uint8_t *message, size_t len, uint8_t signature[64], uint8_t public_key[32]) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if ((!message && len) || !signature || !public_key) return PD_PLUGIN_E_INVALID;
        if (!c->services->device_sign) return PD_PLUGIN_E_GENERIC;
        c->services->device_sign(message, len, signature, public_key);
        return 0;
    };

    api.discovery_key = [](void *h, uint8_t key[32]) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!key) return PD_PLUGIN_E_INVALID;
        return c->services->discovery_key && c->services->discovery_key(key) ? 0 : PD_PLUGIN_E_NOT_FOUND;
    };

    api.refuse_device = [](void *h, const uint8_t public_key[32]) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!public_key) return PD_PLUGIN_E_INVALID;
        std::array<std::uint8_t, 32> key;
        std::memcpy(key.data(), public_key, key.size());
        if (c->services->refuse_device) c->services->refuse_device(key);
        return 0;
    };

    api.request_content = [](void *h, const uint8_t id[32], uint32_t flags) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!id || (flags & ~PD_PLUGIN_REQUEST_FOREGROUND) != 0) return PD_PLUGIN_E_INVALID;
        std::array<std::uint8_t, 32> content;
        std::memcpy(content.data(), id, content.size());
        if (c->services->request_content) c->services->request_content(content, (flags & PD_PLUGIN_REQUEST_FOREGROUND) != 0);
        return 0;
    };

    api.retire_content = [](void *h, const uint8_t id[32]) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!id) return PD_PLUGIN_E_INVALID;
        std::array<std::uint8_t, 32> content;
        std::memcpy(content.data(), id, content.size());
        if (c->services->retire_content) c->services->retire_content(content);
        return 0;
    };

    api.set_discovery_broadcast = [](void *h, int32_t allowed) {
        auto c = static_cast<host_context *>(h);
        if (c->services->set_discovery_broadcast) c->services->set_discovery_broadcast(allowed != 0);
    };

    api.discovery_broadcast_allowed = [](void *h) -> int32_t {
        auto c = static_cast<host_context *>(h);
        return !c->services->discovery_broadcast_allowed || c->services->discovery_broadcast_allowed() ? 1 : 0;
    };

    api.branchcache_segment = [](void *h, const uint8_t *id, size_t id_len, pd_branchcache_segment *out) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!id || !out) return PD_PLUGIN_E_INVALID;
        pd_branchcache_segment seg{};
        try {
            if (!c->services->branchcache_segment || !c->services->branchcache_segment(id, id_len, seg)) return PD_PLUGIN_E_NOT_FOUND;
        } catch (...) {
            return PD_PLUGIN_E_GENERIC;
        }
        return fill_known_part(seg, out);
    };
    api.read_block = [](void *h, const uint8_t content[32], uint64_t block, void *buf, size_t size) -> int64_t {
        auto c = static_cast<host_context *>(h);
        if (!content || (!buf && size)) return PD_PLUGIN_E_INVALID;
        std::array<std::uint8_t, 32> key;
        std::memcpy(key.data(), content, key.size());
        try {
            auto bytes = c->services->read_block ? c->services->read_block(key, block) : std::nullopt;
            if (!bytes) return PD_PLUGIN_E_NOT_FOUND;
            if (size >= bytes->size()) std::memcpy(buf, bytes->data(), bytes->size());
            return static_cast<int64_t>(bytes->size());
        } catch (...) {
            return PD_PLUGIN_E_GENERIC;
        }
    };

    api.branchcache_segment_of = [](void *h, const uint8_t content[32], uint32_t index, pd_branchcache_segment *out) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!content || !out) return PD_PLUGIN_E_INVALID;
        std::array<std::uint8_t, 32> key;
        std::memcpy(key.data(), content, key.size());
        pd_branchcache_segment seg{};
        try {
            if (!c->services->branchcache_segment_of || !c->services->branchcache_segment_of(key, index, seg))
                return PD_PLUGIN_E_NOT_FOUND;
        } catch (...) {
            return PD_PLUGIN_E_GENERIC;
        }
        return fill_known_part(seg, out);
    };
    api.set_branchcache_info = [](void *h, const uint8_t content[32], const uint8_t *info, size_t len) -> int32_t {
        auto c = static_cast<host_context *>(h);
        if (!content || (!info && len)) return PD_PLUGIN_E_INVALID;
        if (!c->services->set_branchcache_info) return PD_PLUGIN_E_GENERIC;
        std::array<std::uint8_t, 32> key;
        std::memcpy(key.data(), content, key.size());
        try {
            c->services->set_branchcache_info(key, info, len);
            return 0;
        } catch (const pd::error &e) {
            return e.code() == PD_E_NOT_FOUND ? PD_PLUGIN_E_NOT_FOUND : PD_PLUGIN_E_INVALID;
        } catch (...) {
            return PD_PLUGIN_E_GENERIC;
        }
    };

    std::string config = "{}";
    if (services_.get_setting) {
        if (auto v = services_.get_setting("plugin." + name + ".config")) config = *v;
    }
    void *self = nullptr;
    int32_t rc = vt.create(&self, &b->host_api_, config.c_str());
    if (rc != 0 || !self)
        bad(PD_E_PLUGIN, "plugin '" + name + "' failed to start (create returned " + std::to_string(rc) + ")");
    b->self_ = self;
    std::lock_guard lk(mu_);
    backends_.push_back(std::move(b));
}

}  // namespace pd::plugin_host
