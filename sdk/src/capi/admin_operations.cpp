// The admin operation table (pd_admin_operation_at, pd_admin_run): `pd admin` and
// `pd-coordinator admin` are front ends to it, so both offer the same operations with the
// same arguments (docs/coordinator.md "Admin operations").
#include "capi/admin_internal.h"
#include "content/publication.h"
#include "platform/file.h"
#include "util/hex.h"
#include "util/text.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

using namespace pd::capi;
using namespace pd::capi::admin;

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

// A content id as the coordinator takes it: 64 hex digits, lower case.
std::string content_id_arg(const std::string &text) {
    auto raw = pd::from_hex(text);
    if (!raw || raw->size() != 32) pd::fail(PD_E_INVALID, PD_CATEGORY_API, "'" + text + "' is not a 64-digit hex content id");
    return pd::to_hex(*raw);
}

// A deadline as milliseconds since the epoch: "+90s", "+30m", "+2h", "+1d" from now, or a UTC
// time "2026-12-05T18:00:00Z".
std::int64_t deadline_arg(const std::string &text) {
    auto bad = [&] {
        pd::fail(PD_E_INVALID, PD_CATEGORY_API, "--by '" + text + "' must be +N followed by s, m, h or d, or a UTC time like 2026-12-05T18:00:00Z");
    };
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    if (!text.empty() && text[0] == '+') {
        std::size_t digits = 1;
        while (digits < text.size() && digits < 10 && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
        static const std::map<std::string, std::int64_t> units = {{"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
        auto unit = units.find(text.substr(digits));
        if (digits == 1 || unit == units.end()) bad();
        return now + std::stoll(text.substr(1, digits - 1)) * unit->second;
    }
    int y, mo, d, h, mi, s;
    char z = 0;
    if (text.size() != 20 || std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z) != 7 || z != 'Z' ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        bad();
    // Days from the civil date (Howard Hinnant's algorithm): no time-zone state, same on every platform.
    y -= mo <= 2;
    std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    std::int64_t yoe = y - era * 400;
    std::int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    std::int64_t days = era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
    return ((days * 24 + h) * 60 + mi) * 60000 + s * 1000;
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
        {{"optimisation", "on|off [--prefix-v4 N] [--prefix-v6 N]",
          "distribution optimisation: on, the uploaded topology; off, one office per subnet (/24 and /64 unless given)"},
         1, 1, {"--prefix-v4", "--prefix-v6"},
         [](pd_admin *a, const op_args &args, bool j) {
             const auto &state = args.positional[0];
             if (state != "on" && state != "off") pd::fail(PD_E_INVALID, PD_CATEGORY_API, "optimisation takes 'on' or 'off', not '" + state + "'");
             auto prefix = [&](const char *option) -> unsigned {
                 auto text = args.one(option);
                 if (text.empty()) return 0;
                 if (text.size() > 3 || text.find_first_not_of("0123456789") != std::string::npos)
                     pd::fail(PD_E_INVALID, PD_CATEGORY_API, std::string(option) + " must be a prefix length");
                 return static_cast<unsigned>(std::stoul(text));
             };
             auto reply = call(a, optimisation_request(state == "on", prefix("--prefix-v4"), prefix("--prefix-v6")));
             return j ? reply_json(reply)
                      : "distribution optimisation " + state + ": the " + reply.value("topology", std::string()) + " topology is in force (" +
                            std::to_string(reply.value("offices", 0)) + " offices)\n";
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
        {{"device-retire", "DEVICE_ID", "forget a device that left the fleet (it may register again; not a revocation)"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return done_or_json(a, {{"op", "admin.devices.retire"}, {"device_id", args.positional[0]}}, "device retired", j);
         }},
        {{"contents", "", "the catalogue as JSON: each content's name, size, origins, and whether a record and a manifest are stored"},
         0, 0, {},
         [](pd_admin *a, const op_args &, bool) { return reply_json(call(a, {{"op", "admin.contents"}})); }},
        {{"content-retire", "CONTENT_ID", "retire a content everywhere: agents cancel its jobs and drop it from their caches"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return done_or_json(a, {{"op", "admin.contents.retire"}, {"content", content_id_arg(args.positional[0])}},
                                 "content retired", j);
         }},
        {{"prestage", "CONTENT_ID --by TIME [--offices A,B]",
          "have a content in these offices (all when none are named) by TIME (+2h, +30m, 2026-12-05T18:00:00Z); each RVP pulls it, parents first"},
         1, 1, {"--by", "--offices"},
         [](pd_admin *a, const op_args &args, bool j) {
             if (args.one("--by").empty()) pd::fail(PD_E_INVALID, PD_CATEGORY_API, "--by TIME is required");
             json offices = json::array();
             for (auto &o : comma_list(args.one("--offices"))) offices.push_back(o);
             auto reply = call(a, prestage_request(content_id_arg(args.positional[0]), offices, deadline_arg(args.one("--by"))));
             if (j) return reply_json(reply);
             std::string names;
             for (auto &o : reply.value("offices", json::array())) names += (names.empty() ? "" : ", ") + o.get<std::string>();
             std::string unmeasured;
             for (auto &o : reply.value("unmeasured", json::array())) unmeasured += (unmeasured.empty() ? "" : ", ") + o.get<std::string>();
             return "pre-staging into " + names + "\n" +
                    (unmeasured.empty() ? "" : "not checked against the deadline (no rate measured on their links yet): " + unmeasured + "\n");
         }},
        {{"prestage-status", "[CONTENT_ID]", "pre-staging progress per office as JSON: state, blocks, bytes by source, rate, expected finish"},
         0, 1, {},
         [](pd_admin *a, const op_args &args, bool) {
             json request = {{"op", "admin.prestage.status"}};
             if (!args.positional.empty()) request["content"] = content_id_arg(args.positional[0]);
             return reply_json(call(a, request));
         }},
        {{"offices", "[OFFICE]", "the office tree as JSON: RVP, WAN budget, devices online, receive rate, bytes by source; OFFICE's devices"},
         0, 1, {},
         [](pd_admin *a, const op_args &args, bool) {
             json request = {{"op", "admin.offices"}};
             if (!args.positional.empty()) request["office"] = args.positional[0];
             return reply_json(call(a, request));
         }},
        {{"rollouts", "[CONTENT_ID]", "each content's rollout by office as JSON: progress, rate, bytes by source, the saving"}, 0, 1, {},
         [](pd_admin *a, const op_args &args, bool) {
             json request = {{"op", "admin.rollouts"}};
             if (!args.positional.empty()) request["content"] = content_id_arg(args.positional[0]);
             return reply_json(call(a, request));
         }},
        {{"fleet-key-regenerate", "--confirm regenerate",
          "replace the fleet key (printed once): every agent on the old key is cut off until it is given the new one"},
         0, 0, {"--confirm"},
         [](pd_admin *a, const op_args &args, bool j) {
             auto reply = call(a, {{"op", "admin.fleet_key.regenerate"}, {"confirm", args.one("--confirm")}});
             if (j) return reply_json(reply);
             return reply.value("fleet_key", std::string()) + "\n";
         }},
        {{"prestage-cancel", "CONTENT_ID", "withdraw a content's pre-staging (what was fetched stays)"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return done_or_json(a, {{"op", "admin.prestage.cancel"}, {"content", content_id_arg(args.positional[0])}},
                                 "pre-staging withdrawn", j);
         }},
        {{"groups", "", "the assignment groups as JSON"}, 0, 0, {},
         [](pd_admin *a, const op_args &, bool) { return reply_json(call(a, {{"op", "admin.groups.list"}})); }},
        {{"group-set", "NAME --devices A,B [--contents ID,ID]", "create or replace an assignment group"}, 1, 1,
         {"--devices", "--contents"},
         [](pd_admin *a, const op_args &args, bool j) {
             json devices = json::array(), contents = json::array();
             for (auto &d : comma_list(args.one("--devices"))) devices.push_back(d);
             for (auto &c : comma_list(args.one("--contents"))) contents.push_back(content_id_arg(c));
             return done_or_json(a, group_request(args.positional[0], devices, contents), "group set", j);
         }},
        {{"group-remove", "NAME", "remove an assignment group"}, 1, 1, {},
         [](pd_admin *a, const op_args &args, bool j) {
             return done_or_json(a, {{"op", "admin.groups.remove"}, {"name", args.positional[0]}}, "group removed", j);
         }},
        {{"publication", "CONTENT_ID --out FILE", "the publisher's signed record the coordinator stores for a content, to FILE"},
         1, 1, {"--out"},
         [](pd_admin *a, const op_args &args, bool j) {
             auto reply = call(a, {{"op", "admin.publication"}, {"content", content_id_arg(args.positional[0])}});
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
