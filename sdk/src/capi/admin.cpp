// pd_admin_*: the coordinator's admin operations over the C ABI (docs/coordinator.md).
#include "capi/translate.h"
#include "content/publication.h"
#include "coordinator_client/protocol.h"
#include "platform/file.h"
#include "util/endpoint.h"
#include "util/hex.h"
#include "util/text.h"

#include <peerdist/admin.h>

#include <sodium.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

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

PD_API int pd_admin_devices_csv(pd_buf *out, pd_admin *admin) {
    return text_reply(out, admin, {{"op", "admin.devices.csv"}}, "csv");
}

namespace {
std::string office_stats_csv(const json &reply) {
    std::string csv = "office,origin_bytes,wan_bytes,lan_bytes\n";
    for (auto &o : reply.value("offices", json::array()))
        csv += pd::csv_field(o.value("office", std::string())) + "," + std::to_string(o.value("origin_bytes", 0ull)) + "," +
               std::to_string(o.value("wan_bytes", 0ull)) + "," + std::to_string(o.value("lan_bytes", 0ull)) + "\n";
    return csv;
}
}  // namespace

PD_API int pd_admin_office_stats_csv(pd_buf *out, pd_admin *admin) {
    return guard([&] {
        require(out, "out");
        auto csv = office_stats_csv(call(admin, {{"op", "admin.stats"}}));
        fill_buf(out, csv.data(), csv.size());
        return PD_OK;
    });
}

namespace {
// One publication as the coordinator's publish ops take it; `origins` newline-separated,
// NULL to leave them out.
json publication(const pd::content::manifest &m, const char *origins) {
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

namespace {
json group_request(const std::string &name, const json &devices, const json &contents) {
    return {{"op", "admin.groups.set"}, {"name", name}, {"devices", devices}, {"contents", contents}};
}
}  // namespace

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

PD_API int pd_admin_rvp(pd_buf *out, pd_admin *admin, const char *office) {
    return guard([&] {
        require(office, "office");
        return text_reply(out, admin, {{"op", "admin.rvp"}, {"office", office}}, "device_id");
    });
}

// ---- the admin operation table: pd admin and pd-coordinator admin are front ends to it ----

namespace {

// A command line's arguments as an operation's spec splits them.
struct op_args {
    std::vector<std::string> positional;
    std::map<std::string, std::vector<std::string>> options;
    std::string one(const std::string &option) const {
        auto it = options.find(option);
        return it == options.end() ? std::string() : it->second.back();
    }
};

struct admin_op {
    pd_admin_operation info;
    unsigned min_args, max_args;              // positional arguments
    std::vector<std::string> options;         // each takes a value; may repeat
    std::string (*run)(pd_admin *admin, const op_args &args, bool json_out);
};

std::string read_text_file(const std::string &path) {
    return pd::platform::read_small_file(path, pd::coord::max_message_bytes);
}

// The publisher's record beside a manifest (MANIFEST.sig, what `pd publish --sign` writes),
// as hex, or "" when there is none.
std::string record_beside(const std::string &manifest_path) {
    auto bytes = pd::content::read_record_file("", manifest_path);
    return bytes ? pd::to_hex(reinterpret_cast<const std::uint8_t *>(bytes->data()), bytes->size()) : std::string();
}

pd::content::manifest read_manifest(const std::string &path) {
    auto bytes = pd::platform::read_small_file(path, 256u << 20);
    try {
        return pd::content::manifest::parse(bytes.data(), bytes.size());
    } catch (const pd::error &e) {
        pd::fail(e.code(), e.category(), "'" + path + "': " + e.what());
    }
}

std::vector<std::string> comma_list(const std::string &text) { return pd::split_list(text, ','); }

// The reply without its "ok", as JSON text.
std::string reply_json(json reply) {
    reply.erase("ok");
    return reply.dump(2) + "\n";
}

std::string field_or_json(pd_admin *a, const json &request, const char *field, bool json_out) {
    auto reply = call(a, request);
    return json_out ? reply_json(reply) : reply.value(field, std::string()) + "\n";
}

std::string done_or_json(pd_admin *a, const json &request, const char *done, bool json_out) {
    auto reply = call(a, request);
    return json_out ? reply_json(reply) : std::string(done) + "\n";
}

const std::vector<admin_op> &operations() {
    static const std::vector<admin_op> table = {
        {{"health", "", "the coordinator's health: version, devices, offices, contents, database"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool) {
             auto reply = checked(a).call({{"op", "admin.health"}});
             if (!reply.contains("server_id")) pd::fail(PD_E_INVALID, PD_CATEGORY_NET, reply.value("error", std::string("no health")));
             return reply_json(reply);
         }},
        {{"server-id", "", "the coordinator's server id"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool j) { return field_or_json(a, {{"op", "admin.server_id"}}, "server_id", j); }},
        {{"topology-import", "CSV_FILE", "replace the office topology (all or nothing; every problem is listed)"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return done_or_json(a, {{"op", "admin.topology.import"}, {"csv", read_text_file(args.positional[0])}},
                                 "topology imported", j);
         }},
        {{"topology-export", "", "the topology in force as CSV"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool j) {
             auto reply = call(a, {{"op", "admin.topology.export"}});
             return j ? reply_json(reply) : reply.value("csv", std::string());
         }},
        {{"devices-csv", "", "the activated-devices report as CSV"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool j) {
             auto reply = call(a, {{"op", "admin.devices.csv"}});
             return j ? reply_json(reply) : reply.value("csv", std::string());
         }},
        {{"stats", "", "per-office origin, WAN and LAN bytes as CSV"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool j) {
             auto reply = call(a, {{"op", "admin.stats"}});
             return j ? reply_json(reply) : office_stats_csv(reply);
         }},
        {{"rvp", "OFFICE", "the office's RVP now (a device id; empty when none is online)"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return field_or_json(a, {{"op", "admin.rvp"}, {"office", args.positional[0]}}, "device_id", j);
         }},
        {{"device-revoke", "DEVICE_ID", "revoke one device: offline at once, its key refused; the others are untouched"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return done_or_json(a, {{"op", "admin.devices.revoke"}, {"device_id", args.positional[0]}}, "device revoked", j);
         }},
        {{"admins", "", "the administrators' keys and roles as JSON (revoked ones too)"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool) { return reply_json(call(a, {{"op", "admin.admins.list"}})); }},
        {{"whoami", "", "the administrator this credential is, and its role"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool) {
             auto &c = checked(a);
             return json{{"name", c.admin_name()}, {"role", pd::coord::role_name(c.role())}}.dump(2) + "\n";
         }},
        {{"groups", "", "the assignment groups as JSON"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool) { return reply_json(call(a, {{"op", "admin.groups.list"}})); }},
        {{"group-set", "NAME --devices A,B [--contents ID,ID]", "create or replace an assignment group"}, 1, 1,
         {"--devices", "--contents"},
         [](pd_admin *a, const op_args &args, bool j) {
             json devices = json::array(), contents = json::array();
             for (auto &d : comma_list(args.one("--devices"))) devices.push_back(d);
             for (auto &c : comma_list(args.one("--contents"))) {
                 auto raw = pd::from_hex(c);
                 if (!raw || raw->size() != 32)
                     pd::fail(PD_E_INVALID, PD_CATEGORY_API, "'" + c + "' is not a 64-digit hex content id");
                 contents.push_back(c);
             }
             return done_or_json(a, group_request(args.positional[0], devices, contents), "group set", j);
         }},
        {{"group-remove", "NAME", "remove an assignment group"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return done_or_json(a, {{"op", "admin.groups.remove"}, {"name", args.positional[0]}}, "group removed", j);
         }},
        {{"publication", "CONTENT_ID --out FILE", "the publisher's signed record the coordinator stores for a content, to FILE"},
         1, 1, {"--out"},
         [](pd_admin *a, const op_args &args, bool j) {
             auto reply = call(a, {{"op", "admin.publication"}, {"content", args.positional[0]}});
             auto record = pd::from_hex(reply.value("publication", std::string()));
             if (!record) pd::fail(PD_E_INVALID, PD_CATEGORY_NET, "the coordinator's record is not hex");
             if (args.one("--out").empty()) pd::fail(PD_E_INVALID, PD_CATEGORY_API, "--out FILE is required");
             pd::platform::write_file_atomic(args.one("--out"), record->data(), record->size());
             return j ? reply_json(reply) : "record written to " + args.one("--out") + "\n";
         }},
        {{"publish", "MANIFEST [--origin URL]...", "publish a content (its manifest file, and MANIFEST.sig when there is one) with its origins in order"}, 1, 1,
         {"--origin"},
         [](pd_admin *a, const op_args &args, bool j) {
             std::string origins;
             auto it = args.options.find("--origin");
             if (it != args.options.end())
                 for (auto &o : it->second) origins += o + "\n";
             json request = publication(read_manifest(args.positional[0]), origins.c_str());
             if (auto record = record_beside(args.positional[0]); !record.empty()) request["publication"] = record;
             request["op"] = "admin.publish";
             return done_or_json(a, request, "published", j);
         }},
        {{"republish-all", "DIR [--origin-base URL]",
          "publish every manifest (*.pdm, with its .sig) of DIR again, all or none; with a base, each origin becomes BASE/FILE"},
         1, 1, {"--origin-base"},
         [](pd_admin *a, const op_args &args, bool) {
             std::error_code ec;
             std::vector<std::string> paths;
             for (auto &e : std::filesystem::directory_iterator(pd::platform::fs_path(args.positional[0]), ec))
                 if (e.path().extension() == ".pdm") paths.push_back(pd::platform::utf8_path(e.path()));
             if (ec) pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_API, "reading '" + args.positional[0] + "': " + ec.message());
             if (paths.empty()) pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_API, "'" + args.positional[0] + "' holds no manifests (*.pdm)");
             std::sort(paths.begin(), paths.end());
             std::string base = args.one("--origin-base");
             if (!base.empty() && base.back() != '/') base += '/';
             json list = json::array();
             for (auto &path : paths) {
                 std::string origin = base + pd::platform::utf8_path(pd::platform::fs_path(path).stem());
                 list.push_back(publication(read_manifest(path), base.empty() ? nullptr : origin.c_str()));
                 if (auto record = record_beside(path); !record.empty()) list.back()["publication"] = record;
             }
             return reply_json(call(a, {{"op", "admin.republish"}, {"contents", list}}));
         }},
    };
    return table;
}

// Splits `args` by the operation's spec: "--name VALUE" for the options it takes, the rest
// positional; anything else is refused with the operation's usage.
op_args split_args(const admin_op &op, const char *const *args, size_t n) {
    auto usage = [&](const std::string &why) {
        pd::fail(PD_E_INVALID, PD_CATEGORY_API,
                 why + "; usage: " + op.info.name + (op.info.arguments[0] ? " " : "") + op.info.arguments);
    };
    op_args out;
    for (size_t i = 0; i < n; ++i) {
        if (!args[i]) misuse("args[" + std::to_string(i) + "] is NULL");
        std::string a = args[i];
        if (a.rfind("--", 0) == 0) {
            if (std::find(op.options.begin(), op.options.end(), a) == op.options.end()) usage("unknown option '" + a + "'");
            if (i + 1 >= n || !args[i + 1]) usage("option '" + a + "' needs a value");
            out.options[a].push_back(args[++i]);
        } else {
            out.positional.push_back(a);
        }
    }
    if (out.positional.size() < op.min_args || out.positional.size() > op.max_args)
        usage(out.positional.size() < op.min_args ? "missing argument" : "too many arguments");
    return out;
}

}  // namespace

PD_API const pd_admin_operation *pd_admin_operation_at(size_t index) {
    auto &ops = operations();
    return index < ops.size() ? &ops[index].info : nullptr;
}

PD_API int pd_admin_run(pd_buf *out, pd_admin *admin, const char *operation, const char *const *args, size_t n_args,
                        uint32_t flags) {
    return guard([&] {
        require(out, "out");
        require(operation, "operation");
        if (n_args) require(args, "args");
        for (auto &op : operations()) {
            if (std::string(op.info.name) != operation) continue;
            auto parsed = split_args(op, args, n_args);
            checked(admin);
            auto text = op.run(admin, parsed, (flags & PD_ADMIN_JSON) != 0);
            fill_buf(out, text.data(), text.size());
            return PD_OK;
        }
        pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_API, std::string("unknown admin operation '") + operation + "'");
    });
}
