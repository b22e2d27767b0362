// peerdist._native: a thin pybind11 layer over the C ABI. Every call that can block
// releases the GIL; errors become peerdist.errors exceptions; the session is pulled
// for events (poll, wait with timeout, fileno() for asyncio), never pushed into Python.
#include "native.h"

#include <peerdist.h>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;
using namespace peerdist_python;

namespace {

std::shared_ptr<manifest> hash_file(const std::string &path, std::optional<std::string> name) {
    pd_manifest *m = nullptr;
    int rc;
    {
        py::gil_scoped_release nogil;
        rc = pd_manifest_hash_file(&m, path.c_str(), name ? name->c_str() : nullptr);
    }
    check(rc);
    return std::make_shared<manifest>(m);
}

py::dict event_dict(const pd_event &e) {
    py::dict d;
    d["type"] = pd_event_type_name(e.type);
    d["type_code"] = e.type;
    d["error_code"] = e.error_code;
    d["job_id"] = e.job_id;
    static const pd_content_id zero{};
    d["content"] = std::memcmp(&e.content, &zero, sizeof zero) ? py::cast(id_hex(&e.content)) : py::none();
    d["source_class"] = e.source_class;
    d["bytes_done"] = e.bytes_done;
    d["bytes_total"] = e.bytes_total;
    d["count"] = e.count;
    d["timestamp_ms"] = e.timestamp_ms;
    d["message"] = py::str(std::string(e.message));
    return d;
}


class session {
public:
    session(const std::string &cache_dir, std::uint64_t quota_bytes, std::uint32_t quota_percent,
            std::uint32_t worker_threads, std::uint32_t event_queue_capacity, std::optional<py::bytes> fleet_key,
            std::optional<std::string> listen, std::optional<std::string> plugin_dir) {
        pd_session_options o = PD_SESSION_OPTIONS_INIT;
        o.cache_dir = cache_dir.c_str();
        std::string key = fleet_key ? std::string(*fleet_key) : std::string();
        if (fleet_key && key.size() != 32) throw native_error{PD_E_MISUSE, PD_CATEGORY_API, "fleet_key must be 32 bytes"};
        o.fleet_key = fleet_key ? reinterpret_cast<const std::uint8_t *>(key.data()) : nullptr;
        o.fleet_key_len = key.size();
        o.listen_addresses = listen ? listen->c_str() : nullptr;
        o.plugin_dir = plugin_dir ? plugin_dir->c_str() : nullptr;
        o.cache_quota_bytes = quota_bytes;
        o.cache_quota_percent = quota_percent;
        o.worker_threads = worker_threads;
        o.event_queue_capacity = event_queue_capacity;
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = pd_session_new(&s_, &o);
        }
        check(rc);
    }
    ~session() { close(); }

    void close() {
        if (!s_) return;
        py::gil_scoped_release nogil;
        pd_session_free(s_);
        s_ = nullptr;
    }

    pd_session *get() const {
        if (!s_) throw native_error{PD_E_MISUSE, PD_CATEGORY_API, "session is closed"};
        return s_;
    }

    void set_setting(const std::string &k, const std::string &v) { check(pd_session_set_setting(get(), k.c_str(), v.c_str())); }
    std::string get_setting(const std::string &k) {
        pd_buf b = PD_BUF_INIT;
        check(pd_session_get_setting(&b, get(), k.c_str()));
        std::string out(reinterpret_cast<char *>(b.ptr), b.size);
        pd_buf_dispose(&b);
        return out;
    }
    void load_plugin(std::optional<std::string> path) {
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = pd_session_load_plugin(get(), path ? path->c_str() : nullptr);
        }
        check(rc);
    }
    std::vector<std::string> listen_addresses() {
        pd_buf b = PD_BUF_INIT;
        check(pd_session_listen_addresses(&b, get()));
        std::string all(reinterpret_cast<char *>(b.ptr), b.size);
        pd_buf_dispose(&b);
        std::vector<std::string> out;
        for (std::size_t at = 0; at < all.size();) {
            auto comma = all.find(',', at);
            out.push_back(all.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
            at = comma == std::string::npos ? all.size() : comma + 1;
        }
        return out;
    }
    py::list plugins() {
        size_t n = 0;
        check(pd_session_list_plugins(get(), nullptr, sizeof(pd_plugin_info), &n));
        std::vector<pd_plugin_info> infos(n);
        for (auto &i : infos) i.struct_size = sizeof i;
        check(pd_session_list_plugins(get(), infos.data(), sizeof(pd_plugin_info), &n));
        py::list out;
        for (size_t i = 0; i < n; ++i) {
            py::dict d;
            d["name"] = infos[i].name;
            d["version"] = infos[i].version;
            d["path"] = infos[i].path;
            d["abi_version"] = infos[i].abi_version;
            d["source_class"] = pd_source_class_name(infos[i].source_class);
            out.append(d);
        }
        return out;
    }
    std::shared_ptr<manifest> publish(const std::string &path, std::optional<std::string> name,
                                      std::optional<std::string> origin, bool add_to_cache) {
        pd_publish_options o = PD_PUBLISH_OPTIONS_INIT;
        o.name = name ? name->c_str() : nullptr;
        o.origin = origin ? origin->c_str() : nullptr;
        o.add_to_cache = add_to_cache;
        pd_manifest *m = nullptr;
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = pd_content_publish(&m, get(), path.c_str(), &o);
        }
        check(rc);
        return std::make_shared<manifest>(m);
    }
    // With `publication` (the publisher's record bytes) the content must be signed by a key in
    // trust.publisher_keys; without it, trust.allow_unsigned decides.
    void import_manifest(const manifest &m, std::optional<std::string> origin, std::optional<py::bytes> publication) {
        const char *o = origin ? origin->c_str() : nullptr;
        if (!publication) return check(pd_content_import(get(), m.m, o));
        std::string record = *publication;
        check(pd_content_import_published(get(), m.m, o, record.data(), record.size()));
    }
    // Learns a content from its id alone, from the backends' catalogues (pd_content_resolve).
    void resolve(const std::string &id) {
        auto cid = parse_id(id);
        int rc;
        {
            py::gil_scoped_release nogil;  // may wait on a coordinator
            rc = pd_content_resolve(get(), &cid);
        }
        check(rc);
    }
    std::string import_from_origin(const std::string &origin, std::optional<std::string> name) {
        pd_content_id cid;
        int rc;
        {
            py::gil_scoped_release nogil;  // asks the origin over the network
            rc = pd_content_import_from_origin(&cid, get(), origin.c_str(), name ? name->c_str() : nullptr);
        }
        check(rc);
        return id_hex(&cid);
    }
    std::shared_ptr<manifest> export_manifest(const std::string &id) {
        auto cid = parse_id(id);
        pd_manifest *m = nullptr;
        check(pd_content_export(&m, get(), &cid));
        return std::make_shared<manifest>(m);
    }
    std::uint64_t start_job(const std::string &id, std::optional<std::string> destination,
                            std::optional<std::string> origin, bool pin, bool copy) {
        auto cid = parse_id(id);
        pd_job_options o = PD_JOB_OPTIONS_INIT;
        o.destination = destination ? destination->c_str() : nullptr;
        o.origin = origin ? origin->c_str() : nullptr;
        o.pin = pin;
        if (copy) o.delivery = PD_DELIVER_COPY;
        std::uint64_t job = 0;
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = pd_job_start(&job, get(), &cid, &o);
        }
        check(rc);
        return job;
    }
    void pause(std::uint64_t j) { check(pd_job_pause(get(), j)); }
    void resume(std::uint64_t j) { check(pd_job_resume(get(), j)); }
    void cancel(std::uint64_t j) { check(pd_job_cancel(get(), j)); }
    py::dict job_status(std::uint64_t j) {
        pd_job_status st{};
        st.struct_size = sizeof st;
        check(pd_job_status_get(&st, get(), j));
        py::dict d;
        d["job_id"] = st.job_id;
        d["state"] = pd_job_state_name(st.state);
        d["content"] = id_hex(&st.content);
        d["bytes_total"] = st.bytes_total;
        d["bytes_verified"] = st.bytes_verified;
        py::dict by;
        for (int i = 0; i < PD_SOURCE_CLASS_COUNT; ++i) by[pd_source_class_name(static_cast<uint32_t>(i))] = st.bytes_by_source[i];
        d["bytes_by_source"] = by;
        d["bytes_fetched"] = st.bytes_fetched;
        d["blocks_rejected"] = st.blocks_rejected;
        d["error_code"] = st.error_code;
        d["started_ms"] = st.started_ms;
        d["finished_ms"] = st.finished_ms;
        d["message"] = py::str(std::string(st.message));
        d["source_fallbacks"] = st.source_fallbacks;
        return d;
    }
    std::vector<std::uint64_t> jobs() {
        size_t n = 0;
        check(pd_job_list(get(), nullptr, &n));
        std::vector<std::uint64_t> ids(n);
        check(pd_job_list(get(), ids.data(), &n));
        ids.resize(n);
        return ids;
    }
    py::list poll_events(size_t max) {
        std::vector<pd_event> ev(std::max<size_t>(1, max));
        size_t n = 0;
        check(pd_session_poll_events(get(), ev.data(), sizeof(pd_event), ev.size(), &n));
        py::list out;
        for (size_t i = 0; i < n; ++i) out.append(event_dict(ev[i]));
        return out;
    }
    py::list wait_events(int timeout_ms, size_t max) {
        std::vector<pd_event> ev(std::max<size_t>(1, max));
        size_t n = 0;
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = pd_session_wait_events(get(), ev.data(), sizeof(pd_event), ev.size(), &n, timeout_ms);
        }
        py::list out;
        if (rc == PD_E_TIMEOUT) return out;
        check(rc);
        for (size_t i = 0; i < n; ++i) out.append(event_dict(ev[i]));
        return out;
    }
    int fileno() {
        int fd = -1;
        check(pd_session_event_fd(&fd, get()));
        return fd;
    }
    py::list cache_list() {
        size_t n = 0;
        check(pd_cache_list(get(), nullptr, sizeof(pd_cache_entry), &n));
        std::vector<pd_cache_entry> es(n + 8);
        for (auto &e : es) e.struct_size = sizeof e;
        n = es.size();
        check(pd_cache_list(get(), es.data(), sizeof(pd_cache_entry), &n));
        static const char *states[] = {"known", "partial", "complete"};
        py::list out;
        for (size_t i = 0; i < n; ++i) {
            py::dict d;
            d["id"] = id_hex(&es[i].id);
            d["name"] = py::str(std::string(es[i].name));
            d["state"] = states[es[i].state % 3];
            d["size"] = es[i].size;
            d["bytes_verified"] = es[i].bytes_verified;
            d["bytes_on_disk"] = es[i].bytes_on_disk;
            d["pinned"] = es[i].pinned != 0;
            d["last_used_ms"] = es[i].last_used_ms;
            out.append(d);
        }
        return out;
    }
    void cache_remove(const std::string &id) {
        auto cid = parse_id(id);
        check(pd_cache_remove(get(), &cid));
    }
    void cache_pin(const std::string &id, bool pinned) {
        auto cid = parse_id(id);
        check(pd_cache_pin(get(), &cid, pinned));
    }
    void set_branchcache_info(const std::string &id, py::bytes info) {
        auto cid = parse_id(id);
        std::string bytes = info;
        check(pd_content_set_branchcache_info(get(), &cid, reinterpret_cast<const std::uint8_t *>(bytes.data()), bytes.size()));
    }
    std::string cache_path(const std::string &id) {
        auto cid = parse_id(id);
        pd_buf b = PD_BUF_INIT;
        check(pd_cache_path(&b, get(), &cid));
        std::string out(reinterpret_cast<char *>(b.ptr), b.size);
        pd_buf_dispose(&b);
        return out;
    }
    py::dict device_facts() {
        pd_device_facts f{};
        f.struct_size = sizeof f;
        check(pd_session_device_facts(&f, get()));
        static const char *chassis[] = {"unknown", "desktop", "laptop", "server"};
        static const char *os[] = {"unknown", "workstation", "server"};
        py::dict d;
        d["free_bytes"] = f.free_bytes;
        d["usable_free_bytes"] = f.usable_free_bytes;
        d["chassis"] = chassis[f.chassis & 3];
        d["os_type"] = os[f.os_type % 3];
        d["uptime_seconds"] = f.uptime_seconds;
        return d;
    }
    py::dict stats() {
        pd_session_stats st{};
        st.struct_size = sizeof st;
        check(pd_session_get_stats(&st, get()));
        py::dict d;
        d["bytes_uploaded"] = st.bytes_uploaded;
        d["blocks_uploaded"] = st.blocks_uploaded;
        d["peer_connections"] = st.peer_connections;
        d["peers_refused"] = st.peers_refused;
        d["connections_open"] = st.connections_open;
        d["wan_budget_bytes"] = st.wan_budget_bytes;
        return d;
    }

private:
    pd_session *s_ = nullptr;
};

}  // namespace

PYBIND11_MODULE(_native, mod) {
    mod.doc() = "peerdist C ABI binding (use the peerdist package, not this module)";
    if (pd_version() != PD_VERSION_NUM) throw std::runtime_error("libpeerdist version does not match the binding");

    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const native_error &e) {
            auto errors = py::module_::import("peerdist.errors");
            py::object exc = errors.attr("from_code")(e.code, e.category, e.message);
            PyErr_SetObject(exc.get_type().ptr(), exc.ptr());
        }
    });

    mod.def("version", [] { return std::string(pd_version_string()); }, "The library's version, 'MAJOR.MINOR.PATCH'.");
    mod.def("version_num", [] { return pd_version(); }, "The library's version as (major << 16 | minor << 8 | patch).");
    mod.def("strerror", [](int code) { return std::string(pd_strerror(code)); }, py::arg("code"),
            "The name of a PD_E_* error code.");
    mod.def("plugin_dir_default", [] { return std::string(pd_plugin_dir_default()); },
            "Where the installed SDK's plugins are ($PEERDIST_PLUGIN_DIR, else beside the library).");

    py::class_<manifest, std::shared_ptr<manifest>>(mod, "Manifest",
                                                    "A content's manifest: its id, size, name and block hashes (docs/content-model.md).")
        .def_static("hash_file", &hash_file, py::arg("path"), py::arg("name") = py::none(),
                    "Hashes a file into a manifest (name: the file's base name when None).")
        .def_static("parse", [](py::bytes data) {
            std::string s = data;
            pd_manifest *m = nullptr;
            check(pd_manifest_parse(&m, s.data(), s.size()));
            return std::make_shared<manifest>(m);
        }, py::arg("data"), "Parses a serialized manifest; raises peerdist.Error (INVALID, VERSION) on bad bytes.")
        .def_static("read", [](const std::string &path) {
            pd_manifest *m = nullptr;
            check(pd_manifest_read_file(&m, path.c_str()));
            return std::make_shared<manifest>(m);
        }, py::arg("path"), "Reads and parses a manifest file.")
        .def("serialize", [](const manifest &m) {
            pd_buf b = PD_BUF_INIT;
            check(pd_manifest_serialize(&b, m.m));
            return take_buf(b);
        }, "The manifest's bytes, as written by write().")
        .def("write", [](const manifest &m, const std::string &path) { check(pd_manifest_write_file(m.m, path.c_str())); },
             py::arg("path"), "Writes the manifest to a file atomically.")
        .def_property_readonly("id", [](const manifest &m) { return id_hex(pd_manifest_id(m.m)); },
                               "The content id (hex): SHA-256 of the canonical header and the segment hashes.")
        .def_property_readonly("size", [](const manifest &m) { return pd_manifest_size(m.m); }, "The content's size in bytes.")
        .def_property_readonly("name", [](const manifest &m) { return std::string(pd_manifest_name(m.m)); }, "The display name.")
        .def_property_readonly("block_size", [](const manifest &m) { return pd_manifest_block_size(m.m); }, "Bytes per block.")
        .def_property_readonly("block_count", [](const manifest &m) { return pd_manifest_block_count(m.m); },
                               "Number of blocks (the last may be short).");

    py::class_<session>(mod, "Session", "One cache directory opened by this process (pd_session); use peerdist.Session.")
        .def(py::init<const std::string &, std::uint64_t, std::uint32_t, std::uint32_t, std::uint32_t, std::optional<py::bytes>,
                      std::optional<std::string>, std::optional<std::string>>(),
             py::arg("cache_dir"), py::arg("quota_bytes") = 0, py::arg("quota_percent") = 0, py::arg("worker_threads") = 0,
             py::arg("event_queue_capacity") = 0, py::arg("fleet_key") = py::none(), py::arg("listen") = py::none(),
             py::arg("plugin_dir") = py::none(),
             "Opens (creating it) and locks a cache directory. fleet_key: the fleet's 32-byte key, to serve and use "
             "peers; listen: 'ip:port[,ip:port]' the peer server binds (port 0 picks one); plugin_dir: what "
             "load_plugin() loads by default.")
        .def("close", &session::close, "Makes verified blocks durable and releases the cache; idempotent.")
        .def("set_setting", &session::set_setting, py::arg("key"), py::arg("value"), "Sets a setting (docs/settings.md).")
        .def("get_setting", &session::get_setting, py::arg("key"), "A setting's current value, as text.")
        .def("load_plugin", &session::load_plugin, py::arg("path") = py::none(),
             "Loads a plugin file or every plugin of a directory; None: the session's plugin directory "
             "(plugin_dir, else plugin_dir_default()).")
        .def("plugins", &session::plugins, "The loaded plugins: [{name, version, path, abi_version, source_class}].")
        .def("listen_addresses", &session::listen_addresses, "The peer server's bound addresses ('ip:port'), if it listens.")
        .def("publish", &session::publish, py::arg("path"), py::arg("name") = py::none(), py::arg("origin") = py::none(),
             py::arg("add_to_cache") = false,
             "Hashes a file into a Manifest; origin is recorded in it; add_to_cache also caches the content.")
        .def("import_manifest", &session::import_manifest, py::arg("manifest"), py::arg("origin") = py::none(),
             py::arg("publication") = py::none(),
             "Makes a content known to the cache; publication: the publisher's signed record (bytes), checked against "
             "trust.publisher_keys.")
        .def("resolve", &session::resolve, py::arg("content_id"),
             "Learns a content from its id alone: manifest, record and origins from the backends' catalogues.")
        .def("import_from_origin", &session::import_from_origin, py::arg("origin"), py::arg("name") = py::none(),
             "Learns a content from its origin URL alone (an origin answering PeerDist requests, such as `pd serve`): "
             "the manifest comes from its Content Information, which is recorded too. Returns the content id.")
        .def("export_manifest", &session::export_manifest, py::arg("content_id"), "The manifest of a known content.")
        .def("start_job", &session::start_job, py::arg("content_id"), py::arg("destination") = py::none(),
             py::arg("origin") = py::none(), py::arg("pin") = false, py::arg("copy") = false,
             "Starts downloading a known content; returns the job id. destination: deliver there (a hard link; copy=True "
             "for an independent file); origin: instead of the recorded one; pin: never evict it.")
        .def("pause", &session::pause, py::arg("job_id"), "Pauses a job (keeps what it has).")
        .def("resume", &session::resume, py::arg("job_id"), "Resumes a paused job.")
        .def("cancel", &session::cancel, py::arg("job_id"), "Cancels a job.")
        .def("job_status", &session::job_status, py::arg("job_id"), "A job's status, as a dict (peerdist.Session wraps it).")
        .def("jobs", &session::jobs, "The ids of the session's jobs.")
        .def("poll_events", &session::poll_events, py::arg("max_events") = 64, "Events waiting now, as dicts; never blocks.")
        .def("wait_events", &session::wait_events, py::arg("timeout_ms"), py::arg("max_events") = 64,
             "Events, waiting up to timeout_ms for the first (the GIL is released meanwhile).")
        .def("fileno", &session::fileno, "A descriptor that becomes readable when events wait (select, asyncio).")
        .def("cache_list", &session::cache_list,
             "The cached contents: [{id, name, state, size, bytes_verified, bytes_on_disk, pinned, last_used_ms}].")
        .def("cache_remove", &session::cache_remove, py::arg("content_id"), "Removes a content from the cache.")
        .def("cache_pin", &session::cache_pin, py::arg("content_id"), py::arg("pinned") = true,
             "Pins (never evicted) or unpins a content.")
        .def("cache_path", &session::cache_path, py::arg("content_id"), "Where a complete content's file is in the cache.")
        .def("set_branchcache_info", &session::set_branchcache_info, py::arg("content_id"), py::arg("info"),
             "Records the content's BranchCache Content Information V1 (as its origin served it; checked against "
             "its blocks) so Windows' BranchCache peers can find and fetch it (docs/protocol.md §5-6).")
        .def("device_facts", &session::device_facts,
             "What the session knows of this device: {free_bytes, usable_free_bytes, chassis, os_type, uptime_seconds}.")
        .def("stats", &session::stats,
             "The peer server's counters: {bytes_uploaded, blocks_uploaded, peer_connections, peers_refused, "
             "connections_open, wan_budget_bytes}.");

    bind_admin(mod);

    mod.def("fleet_key_read_file", [](const std::string &path) {
        std::uint8_t key[32];
        check(pd_fleet_key_read_file(key, path.c_str()));
        return py::bytes(reinterpret_cast<char *>(key), 32);
    }, py::arg("path"), "A fleet key file's 32 bytes, by the library's rule (pd_fleet_key_read_file): 64 hex digits "
       "of a random key in a file others cannot read.");
    mod.def("publisher_keygen", [] {
        std::uint8_t pk[32], sk[64];
        check(pd_publisher_keygen(pk, sk));
        return py::make_tuple(py::bytes(reinterpret_cast<char *>(pk), 32), py::bytes(reinterpret_cast<char *>(sk), 64));
    }, "A new publisher key pair: (public 32 bytes, secret 64 bytes).");
    mod.def("publication_sign", [](const manifest &m, const std::string &origin, std::int64_t time_ms, py::bytes sk) {
        std::string key = sk;
        if (key.size() != 64) throw native_error{PD_E_MISUSE, PD_CATEGORY_API, "secret key must be 64 bytes"};
        pd_buf b = PD_BUF_INIT;
        check(pd_publication_sign(&b, m.m, origin.c_str(), time_ms, reinterpret_cast<const std::uint8_t *>(key.data())));
        return take_buf(b);
    }, py::arg("manifest"), py::arg("origin"), py::arg("time_ms"), py::arg("secret_key"),
       "A signed publication record (bytes) for a manifest and its origin.");
    mod.def("publication_verify", [](py::bytes record, py::bytes pk) {
        std::string r = record, key = pk;
        if (key.size() != 32) throw native_error{PD_E_MISUSE, PD_CATEGORY_API, "public key must be 32 bytes"};
        pd_publication *p = nullptr;
        check(pd_publication_verify(&p, r.data(), r.size(), reinterpret_cast<const std::uint8_t *>(key.data())));
        py::dict d;
        d["id"] = id_hex(pd_publication_id(p));
        d["name"] = std::string(pd_publication_name(p));
        d["origin"] = std::string(pd_publication_origin(p));
        d["size"] = pd_publication_size(p);
        d["published_ms"] = pd_publication_time(p);
        pd_publication_free(p);
        return d;
    }, py::arg("record"), py::arg("public_key"),
       "Checks a publication record against a publisher's public key: {id, name, origin, size, published_ms}.");
    mod.def("content_info", [](const std::string &path, std::uint32_t version, py::bytes passphrase) {
        std::string pass = passphrase;
        pd_buf b = PD_BUF_INIT;
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = pd_content_info_generate(&b, path.c_str(), version, reinterpret_cast<const std::uint8_t *>(pass.data()),
                                          pass.size());
        }
        check(rc);
        return take_buf(b);
    }, py::arg("path"), py::arg("version"), py::arg("server_passphrase"),
       "BranchCache Content Information (version 1 or 2) of a file, as bytes.");
}
