// peerdist._native.Admin: a connection to a coordinator over the C ABI's pd_admin_* calls.
#include "native.h"

#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

namespace peerdist_python {

namespace {

// A connection to a coordinator (pd_admin_*). Texts come back as str; every call releases
// the GIL while it waits for the coordinator.
class admin {
public:
    // `credential`: the path of an administrator's credential file.
    admin(const std::string &address, const std::string &credential, std::uint32_t timeout_ms) {
        pd_admin_credential c;
        check(pd_admin_credential_read_file(&c, credential.c_str()));
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = pd_admin_connect(&a_, address.c_str(), &c, timeout_ms);
        }
        std::memset(&c, 0, sizeof c);
        check(rc);
    }
    py::dict whoami() { return py::module_::import("json").attr("loads")(text([&](pd_buf *b) { return pd_admin_whoami(b, get()); })); }
    ~admin() { pd_admin_free(a_); }
    admin(const admin &) = delete;
    admin &operator=(const admin &) = delete;

    void close() {
        pd_admin_free(a_);
        a_ = nullptr;
    }
    std::string health() { return text([&](pd_buf *b) { return pd_admin_health(b, get()); }); }
    std::string server_id() { return text([&](pd_buf *b) { return pd_admin_server_id(b, get()); }); }
    std::string export_topology() { return text([&](pd_buf *b) { return pd_admin_topology_export(b, get()); }); }
    std::string devices_csv() { return text([&](pd_buf *b) { return pd_admin_devices_csv(b, get()); }); }
    std::string office_stats_csv() { return text([&](pd_buf *b) { return pd_admin_office_stats_csv(b, get()); }); }
    std::string contents() { return text([&](pd_buf *b) { return pd_admin_list_contents(b, get()); }); }
    std::string groups() { return text([&](pd_buf *b) { return pd_admin_list_groups(b, get()); }); }
    void retire_content(const std::string &id) {
        auto cid = parse_id(id);
        call([&] { return pd_admin_retire_content(get(), &cid); });
    }
    void retire_device(const std::string &device_id) {
        call([&] { return pd_admin_retire_device(get(), device_id.c_str()); });
    }
    void set_optimisation(bool enabled, unsigned prefix_v4, unsigned prefix_v6) {
        call([&] { return pd_admin_set_optimisation(get(), enabled, prefix_v4, prefix_v6); });
    }
    void prestage(const std::string &id, std::int64_t deadline_ms, const std::vector<std::string> &offices) {
        auto cid = parse_id(id);
        std::vector<const char *> names;
        for (auto &o : offices) names.push_back(o.c_str());
        call([&] { return pd_admin_prestage(get(), &cid, names.data(), names.size(), deadline_ms); });
    }
    std::string prestage_status(std::optional<std::string> id) {
        std::optional<pd_content_id> cid;
        if (id) cid = parse_id(*id);
        return text([&](pd_buf *b) { return pd_admin_prestage_status(b, get(), cid ? &*cid : nullptr); });
    }
    void prestage_cancel(const std::string &id) {
        auto cid = parse_id(id);
        call([&] { return pd_admin_prestage_cancel(get(), &cid); });
    }
    // Any operation of the table by its pd admin name (pd_admin_run), its reply as JSON text.
    std::string run_json(const std::string &operation, const std::vector<std::string> &args) {
        std::vector<const char *> argv;
        for (auto &a : args) argv.push_back(a.c_str());
        return text([&](pd_buf *b) { return pd_admin_run(b, get(), operation.c_str(), argv.data(), argv.size(), PD_ADMIN_JSON); });
    }
    std::string rvp(const std::string &office) {
        return text([&](pd_buf *b) { return pd_admin_rvp(b, get(), office.c_str()); });
    }
    void import_topology(const std::string &csv) {
        call([&] { return pd_admin_topology_import(get(), csv.data(), csv.size()); });
    }
    void publish(const manifest &m, const std::vector<std::string> &origins) {
        call([&] { return pd_admin_publish(get(), m.m, origin_lines(origins).c_str()); });
    }
    // The C ABI's origin list: one locator per line.
    static std::string origin_lines(const std::vector<std::string> &origins) {
        std::string lines;
        for (auto &o : origins) lines += (lines.empty() ? "" : "\n") + o;
        return lines;
    }
    // [(manifest, [origins] or None)]: None keeps the origins the coordinator recorded.
    std::string republish_all(const std::vector<std::pair<const manifest *, std::optional<std::vector<std::string>>>> &entries) {
        std::vector<const pd_manifest *> ms;
        std::vector<std::string> joined;
        for (auto &[m, origins] : entries) {
            if (!m) throw native_error{PD_E_INVALID, PD_CATEGORY_API, "a manifest is None"};
            ms.push_back(m->m);
            joined.push_back(origins ? origin_lines(*origins) : std::string());
        }
        std::vector<const char *> os;
        for (std::size_t i = 0; i < entries.size(); ++i) os.push_back(entries[i].second ? joined[i].c_str() : nullptr);
        return text([&](pd_buf *b) { return pd_admin_republish_all(b, get(), ms.data(), os.data(), ms.size()); });
    }
    void set_group(const std::string &name, const std::vector<std::string> &devices, const std::vector<std::string> &contents) {
        std::vector<const char *> devs;
        for (auto &d : devices) devs.push_back(d.c_str());
        std::vector<pd_content_id> ids;
        for (auto &c : contents) ids.push_back(parse_id(c));
        call([&] { return pd_admin_set_group(get(), name.c_str(), devs.data(), devs.size(), ids.data(), ids.size()); });
    }
    void remove_group(const std::string &name) {
        call([&] { return pd_admin_remove_group(get(), name.c_str()); });
    }

private:
    pd_admin *get() const {
        if (!a_) throw native_error{PD_E_MISUSE, PD_CATEGORY_API, "admin connection is closed"};
        return a_;
    }
    template <class F>
    void call(F f) {
        int rc;
        {
            py::gil_scoped_release nogil;
            rc = f();
        }
        check(rc);
    }
    template <class F>
    std::string text(F f) {
        pd_buf b = PD_BUF_INIT;
        call([&] { return f(&b); });
        std::string out(reinterpret_cast<const char *>(b.ptr), b.size);
        pd_buf_dispose(&b);
        return out;
    }
    pd_admin *a_ = nullptr;
};

}  // namespace

void bind_admin(py::module_ &mod) {
    py::class_<admin>(mod, "Admin", "An administrator's connection to a pd-coordinator (pd_admin); use peerdist.Admin.")
        .def(py::init<const std::string &, const std::string &, std::uint32_t>(), py::arg("address"), py::arg("credential"),
             py::arg("timeout_ms") = 10000,
             "Connects to HOST:PORT and proves the credential file's key over the secure channel.")
        .def("close", &admin::close, "Closes the connection; idempotent.")
        .def("whoami", &admin::whoami, "{name, role} of this credential ('admin' changes, 'viewer' reads).")
        .def("health_json", &admin::health, "The health report, JSON text (Admin.health() parses it).")
        .def("server_id", &admin::server_id, "The coordinator's server id.")
        .def("import_topology", &admin::import_topology, py::arg("csv"),
             "Replaces the office topology (CSV); every problem is reported with its line, nothing applied.")
        .def("export_topology", &admin::export_topology, "The office topology in force, as CSV.")
        .def("devices_csv", &admin::devices_csv, "The activated devices, as CSV.")
        .def("office_stats_csv", &admin::office_stats_csv, "Bytes by source per office, as CSV (Admin.office_stats()).")
        .def("publish", &admin::publish, py::arg("manifest"), py::arg("origins") = std::vector<std::string>{},
             "Adds a content to the catalogue with its origins.")
        .def("republish_all_json", &admin::republish_all, py::arg("entries"),
             "Publishes many contents again, all or none (Admin.republish_all()).")
        .def("set_group", &admin::set_group, py::arg("name"), py::arg("devices"), py::arg("contents") = std::vector<std::string>{},
             "Creates or replaces an assignment group: its devices and contents.")
        .def("remove_group", &admin::remove_group, py::arg("name"), "Removes an assignment group.")
        .def("contents_json", &admin::contents, "The catalogue, JSON text (Admin.contents()).")
        .def("groups_json", &admin::groups, "The assignment groups, JSON text (Admin.groups()).")
        .def("retire_content", &admin::retire_content, py::arg("content_id"), "Removes a content from every cache.")
        .def("retire_device", &admin::retire_device, py::arg("device_id"), "Forgets a device (it enrols again).")
        .def("set_optimisation", &admin::set_optimisation, py::arg("enabled"), py::arg("prefix_v4") = 0u,
             py::arg("prefix_v6") = 0u,
             "Distribution optimisation: on, the uploaded topology; off, one office per subnet of the given prefix.")
        .def("prestage", &admin::prestage, py::arg("content_id"), py::arg("deadline_ms"),
             py::arg("offices") = std::vector<std::string>{},
             "Pre-stages a content to the offices' branch caches (all when empty) before a deadline.")
        .def("prestage_status_json", &admin::prestage_status, py::arg("content_id") = py::none(),
             "Pre-staging progress, JSON text (Admin.prestage_status()).")
        .def("prestage_cancel", &admin::prestage_cancel, py::arg("content_id"), "Cancels a content's pre-staging.")
        .def("run_json", &admin::run_json, py::arg("operation"), py::arg("args") = std::vector<std::string>{},
             "Runs any operation of `pd admin` by name with its arguments; the reply, JSON text (Admin.run() parses it).")
        .def("rvp", &admin::rvp, py::arg("office"), "The office's elected branch cache (RVP) and its standing.");
}

}  // namespace peerdist_python
