// pd_admin_*: the coordinator's admin operations over the C ABI (docs/coordinator.md).
#include "capi/translate.h"
#include "coordinator_client/protocol.h"
#include "util/text.h"
#include "util/hex.h"

#include <peerdist/admin.h>

struct pd_admin {
    std::unique_ptr<pd::coord::coordinator_client> client;
};

namespace {

using pd::coord::json;
using pd::capi::fill_buf;
using pd::capi::guard;
using pd::capi::misuse;
using pd::capi::require;

pd::coord::coordinator_client &checked(pd_admin *a) {
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

int text_reply(pd_buf *out, pd_admin *a, const json &request, const char *field) {
    return guard([&] {
        require(out, "out");
        auto reply = call(a, request);
        std::string text = field ? reply.value(field, std::string()) : reply.dump();
        fill_buf(out, text.data(), text.size());
        return PD_OK;
    });
}

}  // namespace

PD_API int pd_admin_connect(pd_admin **out, const char *address, const uint8_t *fleet_key, size_t fleet_key_len,
                            uint32_t timeout_ms) {
    return guard([&] {
        require(out, "out");
        *out = nullptr;
        require(address, "address");
        require(fleet_key, "fleet_key");
        if (fleet_key_len != 32) pd::fail(PD_E_INVALID, PD_CATEGORY_API, "a fleet key is 32 bytes");
        auto a = std::make_unique<pd_admin>();
        a->client = std::make_unique<pd::coord::coordinator_client>(address, fleet_key,
                                                                     timeout_ms ? static_cast<int>(timeout_ms) : 10000);
        *out = a.release();
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

PD_API int pd_admin_devices_csv(pd_buf *out, pd_admin *admin) {
    return text_reply(out, admin, {{"op", "admin.devices.csv"}}, "csv");
}

PD_API int pd_admin_office_stats_csv(pd_buf *out, pd_admin *admin) {
    return guard([&] {
        require(out, "out");
        auto reply = call(admin, {{"op", "admin.stats"}});
        std::string csv = "office,origin_bytes,wan_bytes,lan_bytes\n";
        for (auto &o : reply["offices"]) {
            csv += pd::csv_field(o.value("office", std::string())) + "," + std::to_string(o.value("origin_bytes", 0ull)) + "," + std::to_string(o.value("wan_bytes", 0ull)) +
                   "," + std::to_string(o.value("lan_bytes", 0ull)) + "\n";
        }
        fill_buf(out, csv.data(), csv.size());
        return PD_OK;
    });
}

namespace {
// One publication as the coordinator's publish ops take it; `origins` newline-separated,
// NULL to leave them out.
json publication(const pd_manifest *manifest, const char *origins) {
    auto &m = manifest->m;
    json p = {{"content", pd::to_hex(m.id.data(), m.id.size())}, {"name", m.name}, {"size", m.size}, {"block_count", m.block_count()}};
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
}  // namespace

PD_API int pd_admin_publish(pd_admin *admin, const pd_manifest *manifest, const char *origins) {
    return guard([&] {
        require(manifest, "manifest");
        json request = publication(manifest, origins ? origins : "");
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
            list.push_back(publication(manifests[i], origins ? origins[i] : nullptr));
        }
        auto reply = call(admin, {{"op", "admin.republish"}, {"contents", list}});
        reply.erase("ok");
        auto text = reply.dump();
        fill_buf(out, text.data(), text.size());
        return PD_OK;
    });
}

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
        call(admin, {{"op", "admin.groups.set"}, {"name", name}, {"devices", dev}, {"contents", con}});
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

PD_API int pd_admin_rvp(pd_buf *out, pd_admin *admin, const char *office) {
    return guard([&] {
        require(office, "office");
        return text_reply(out, admin, {{"op", "admin.rvp"}, {"office", office}}, "device_id");
    });
}
