// pd_admin_*: the coordinator's admin operations over the C ABI (docs/coordinator.md).
#include "capi/admin_internal.h"
#include "util/endpoint.h"
#include "util/hex.h"
#include "util/text.h"

#include <sodium.h>

#include <cstring>

namespace pd::capi::admin {

coordinator_client &checked(pd_admin *a) {
    if (!a || !a->client) misuse("admin handle is NULL");
    return *a->client;
}

// One request; a refusal becomes PD_E_INVALID with the coordinator's reason (and, for a
// topology, every problem on its own line).
json call(pd_admin *a, const json &request) {
    auto reply = checked(a).call(request);
    if (!reply.value("ok", false)) {
        std::string why = reply.value("error", std::string("the coordinator refused the request"));
        if (reply.contains("problems")) {
            why = "topology refused:";
            for (auto &p : reply["problems"]) why += "\n" + p.get<std::string>();
        }
        pd::fail(PD_E_INVALID, PD_CATEGORY_NET, why);
    }
    return reply;
}

}  // namespace pd::capi::admin

using namespace pd::capi;
using namespace pd::capi::admin;

namespace {

// The reply's `field` as text, or (NULL) the whole reply without its "ok" as JSON.
int text_reply(pd_buf *out, pd_admin *a, const json &request, const char *field) {
    return guard([&] {
        require(out, "out");
        auto reply = call(a, request);
        reply.erase("ok");
        std::string text = field ? reply.value(field, std::string()) : reply.dump();
        fill_buf(out, text.data(), text.size());
        return PD_OK;
    });
}

}  // namespace

PD_API int pd_admin_credential_read_file(pd_admin_credential *out, const char *path) {
    return guard([&] {
        require(out, "out");
        require(path, "path");
        auto c = pd::read_admin_credential(path);
        std::memcpy(out->admin_key, c.admin_seed.data(), 32);
        std::memcpy(out->coordinator_key, c.coordinator_key.data(), 32);
        sodium_memzero(c.admin_seed.data(), c.admin_seed.size());
        return PD_OK;
    });
}

PD_API int pd_admin_connect(pd_admin **out, const char *address, const pd_admin_credential *credential,
                            uint32_t timeout_ms) {
    return guard([&] {
        require(out, "out");
        *out = nullptr;
        require(address, "address");
        require(credential, "credential");
        pd::admin_credential c;
        std::memcpy(c.admin_seed.data(), credential->admin_key, 32);
        std::memcpy(c.coordinator_key.data(), credential->coordinator_key, 32);
        auto a = std::make_unique<pd_admin>();
        pd::require_endpoint(address, "coordinator address");
        try {
            a->client = std::make_unique<pd::coord::coordinator_client>(address, c, timeout_ms ? static_cast<int>(timeout_ms) : 10000);
        } catch (...) {
            sodium_memzero(c.admin_seed.data(), c.admin_seed.size());
            throw;
        }
        sodium_memzero(c.admin_seed.data(), c.admin_seed.size());
        *out = a.release();
        return PD_OK;
    });
}

PD_API int pd_admin_whoami(pd_buf *out, pd_admin *admin) {
    return guard([&] {
        require(out, "out");
        auto &client = checked(admin);
        auto text = json{{"name", client.admin_name()}, {"role", pd::coord::role_name(client.role())}}.dump();
        fill_buf(out, text.data(), text.size());
        return PD_OK;
    });
}

PD_API void pd_admin_free(pd_admin *admin) { delete admin; }

PD_API int pd_admin_health(pd_buf *out, pd_admin *admin) {
    return guard([&] {
        require(out, "out");
        // Unlike the other calls, an unhealthy coordinator is an answer, not an error.
        auto reply = checked(admin).call({{"op", "admin.health"}});
        if (!reply.contains("server_id")) pd::fail(PD_E_INVALID, PD_CATEGORY_NET, reply.value("error", std::string("no health")));
        reply.erase("ok");
        auto text = reply.dump();
        fill_buf(out, text.data(), text.size());
        return PD_OK;
    });
}

PD_API int pd_admin_server_id(pd_buf *out, pd_admin *admin) {
    return text_reply(out, admin, {{"op", "admin.server_id"}}, "server_id");
}

PD_API int pd_admin_topology_import(pd_admin *admin, const char *csv, size_t len) {
    return guard([&] {
        require(csv, "csv");
        call(admin, {{"op", "admin.topology.import"}, {"csv", std::string(csv, len)}});
        return PD_OK;
    });
}

PD_API int pd_admin_topology_export(pd_buf *out, pd_admin *admin) {
    return text_reply(out, admin, {{"op", "admin.topology.export"}}, "csv");
}

PD_API int pd_admin_set_optimisation(pd_admin *admin, int enabled, unsigned prefix_v4, unsigned prefix_v6) {
    return guard([&] {
        call(admin, optimisation_request(enabled != 0, prefix_v4, prefix_v6));
        return PD_OK;
    });
}

PD_API int pd_admin_devices_csv(pd_buf *out, pd_admin *admin) {
    return text_reply(out, admin, {{"op", "admin.devices.csv"}}, "csv");
}

namespace pd::capi::admin {
std::string office_stats_csv(const json &reply) {
    std::string csv = "office,origin_bytes,wan_bytes,lan_bytes\n";
    for (auto &o : reply.value("offices", json::array()))
        csv += pd::csv_field(o.value("office", std::string())) + "," + std::to_string(o.value("origin_bytes", 0ull)) + "," +
               std::to_string(o.value("wan_bytes", 0ull)) + "," + std::to_string(o.value("lan_bytes", 0ull)) + "\n";
    return csv;
}
}  // namespace pd::capi::admin

PD_API int pd_admin_office_stats_csv(pd_buf *out, pd_admin *admin) {
    return guard([&] {
        require(out, "out");
        auto csv = office_stats_csv(call(admin, {{"op", "admin.stats"}}));
        fill_buf(out, csv.data(), csv.size());
        return PD_OK;
    });
}

namespace pd::capi::admin {
json publication(const pd::content::manifest &m, const char *origins) {
    json p = pd::coord::publication_fields(m);
    if (!origins) return p;
    json list = json::array();
    std::string text = origins;
    for (std::size_t pos = 0; pos < text.size();) {
        auto end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        if (end > pos) list.push_back(text.substr(pos, end - pos));
        pos = end + 1;
    }
    p["origins"] = list;
    return p;
}
}  // namespace pd::capi::admin

PD_API int pd_admin_publish(pd_admin *admin, const pd_manifest *manifest, const char *origins) {
    return guard([&] {
        require(manifest, "manifest");
        json request = publication(manifest->m, origins ? origins : "");
        request["op"] = "admin.publish";
        call(admin, request);
        return PD_OK;
    });
}

PD_API int pd_admin_republish_all(pd_buf *out, pd_admin *admin, const pd_manifest *const *manifests,
                                  const char *const *origins, size_t count) {
    return guard([&] {
        require(out, "out");
        if (count == 0) pd::fail(PD_E_INVALID, PD_CATEGORY_API, "nothing to republish: no manifests");
        require(manifests, "manifests");
        json list = json::array();
        for (size_t i = 0; i < count; ++i) {
            if (!manifests[i]) pd::fail(PD_E_INVALID, PD_CATEGORY_API, "manifests[" + std::to_string(i) + "] is NULL");
            list.push_back(publication(manifests[i]->m, origins ? origins[i] : nullptr));
        }
        auto reply = call(admin, {{"op", "admin.republish"}, {"contents", list}});
        reply.erase("ok");
        auto text = reply.dump();
        fill_buf(out, text.data(), text.size());
        return PD_OK;
    });
}

namespace pd::capi::admin {
json optimisation_request(bool enabled, unsigned prefix_v4, unsigned prefix_v6) {
    return {{"op", "admin.optimisation"}, {"enabled", enabled}, {"prefix_v4", prefix_v4}, {"prefix_v6", prefix_v6}};
}

json prestage_request(const std::string &content, const json &offices, std::int64_t deadline_ms) {
    return {{"op", "admin.prestage"}, {"content", content}, {"offices", offices}, {"deadline_ms", deadline_ms}};
}

json group_request(const std::string &name, const json &devices, const json &contents) {
    return {{"op", "admin.groups.set"}, {"name", name}, {"devices", devices}, {"contents", contents}};
}
}  // namespace pd::capi::admin

PD_API int pd_admin_set_group(pd_admin *admin, const char *name, const char *const *devices, size_t n_devices,
                              const pd_content_id *contents, size_t n_contents) {
    return guard([&] {
        require(name, "name");
        if (n_devices) require(devices, "devices");
        if (n_contents) require(contents, "contents");
        json dev = json::array(), con = json::array();
        for (size_t i = 0; i < n_devices; ++i) {
            require(devices[i], "a device name");
            dev.push_back(devices[i]);
        }
        for (size_t i = 0; i < n_contents; ++i) con.push_back(pd::to_hex(contents[i].bytes, 32));
        call(admin, group_request(name, dev, con));
        return PD_OK;
    });
}

PD_API int pd_admin_remove_group(pd_admin *admin, const char *name) {
    return guard([&] {
        require(name, "name");
        call(admin, {{"op", "admin.groups.remove"}, {"name", name}});
        return PD_OK;
    });
}

PD_API int pd_admin_list_contents(pd_buf *out, pd_admin *admin) {
    return text_reply(out, admin, {{"op", "admin.contents"}}, nullptr);
}

PD_API int pd_admin_list_groups(pd_buf *out, pd_admin *admin) {
    return text_reply(out, admin, {{"op", "admin.groups.list"}}, nullptr);
}

PD_API int pd_admin_retire_content(pd_admin *admin, const pd_content_id *id) {
    return guard([&] {
        require(id, "id");
        call(admin, {{"op", "admin.contents.retire"}, {"content", pd::to_hex(id->bytes, 32)}});
        return PD_OK;
    });
}

PD_API int pd_admin_prestage(pd_admin *admin, const pd_content_id *id, const char *const *offices, size_t n_offices,
                             int64_t deadline_ms) {
    return guard([&] {
        require(id, "id");
        if (n_offices) require(offices, "offices");
        json list = json::array();
        for (size_t i = 0; i < n_offices; ++i) {
            require(offices[i], "an office name");
            list.push_back(offices[i]);
        }
        if (deadline_ms <= 0) pd::fail(PD_E_INVALID, PD_CATEGORY_API, "deadline_ms must be a time (ms since the epoch)");
        call(admin, prestage_request(pd::to_hex(id->bytes, 32), list, deadline_ms));
        return PD_OK;
    });
}

PD_API int pd_admin_prestage_status(pd_buf *out, pd_admin *admin, const pd_content_id *id) {
    json request = {{"op", "admin.prestage.status"}};
    if (id) request["content"] = pd::to_hex(id->bytes, 32);
    return text_reply(out, admin, request, nullptr);
}

PD_API int pd_admin_prestage_cancel(pd_admin *admin, const pd_content_id *id) {
    return guard([&] {
        require(id, "id");
        call(admin, {{"op", "admin.prestage.cancel"}, {"content", pd::to_hex(id->bytes, 32)}});
        return PD_OK;
    });
}

PD_API int pd_admin_retire_device(pd_admin *admin, const char *device_id) {
    return guard([&] {
        require(device_id, "device_id");
        call(admin, {{"op", "admin.devices.retire"}, {"device_id", device_id}});
        return PD_OK;
    });
}

PD_API int pd_admin_rvp(pd_buf *out, pd_admin *admin, const char *office) {
    return guard([&] {
        require(office, "office");
        return text_reply(out, admin, {{"op", "admin.rvp"}, {"office", office}}, "device_id");
    });
}

