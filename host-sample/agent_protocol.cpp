#include "agent_protocol.h"

#include <set>
#include <vector>

namespace pd_agent {

const char *const level_names[4] = {"error", "warn", "info", "debug"};

namespace {

// Parses JSON, bounding nesting as the parser goes (deep "[[[[" costs memory per level).
json parse_bounded(const std::string &text, const std::string &what) {
    auto depth_limit = [&](int depth, json::parse_event_t, json &) {
        if (depth > max_json_depth) throw input_error(what + " nests deeper than " + std::to_string(max_json_depth) + " levels");
        return true;
    };
    json j = json::parse(text, depth_limit, false);
    if (j.is_discarded()) throw input_error(what + " is not valid JSON");
    return j;
}

std::string quoted(const std::string &key) { return "'" + key + "'"; }

// A non-negative integer ("-0" parses as a signed zero).
bool is_unsigned(const json &v) { return v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() == 0); }

// An unsigned integer of a JSON value, within `max`.
std::uint64_t unsigned_of(const json &v, const std::string &key, std::uint64_t max) {
    if (!is_unsigned(v)) throw input_error(quoted(key) + " must be a non-negative integer");
    auto n = v.get<std::uint64_t>();
    if (n > max) throw input_error(quoted(key) + " must be at most " + std::to_string(max));
    return n;
}

int choice_of(const json &v, const std::string &key, const std::vector<std::string> &names) {
    std::string all;
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (v.is_string() && v.get_ref<const std::string &>() == names[i]) return static_cast<int>(i);
        all += (i ? ", " : "") + names[i];
    }
    throw input_error(quoted(key) + " must be one of " + all);
}

// What a command takes. `scalar`: a setting value (see setting_text).
enum class arg_type { string, unsigned_integer, boolean, scalar };
struct argument {
    const char *name;
    arg_type type;
    bool required;
};
struct command {
    const char *name;
    std::vector<argument> args;
};

const std::vector<command> &commands() {
    static const std::vector<command> table = {
        {"version", {}},
        // A manifest file, or a content id the coordinator's catalogue describes.
        {"download",
         {{"manifest", arg_type::string, false},
          {"content", arg_type::string, false},
          {"url", arg_type::string, false},
          {"origin", arg_type::string, false},
          {"dest", arg_type::string, false},
          {"pin", arg_type::boolean, false},
          {"publication", arg_type::string, false},
          {"content_info", arg_type::string, false}}},
        {"jobs", {}},
        {"job", {{"job", arg_type::unsigned_integer, true}}},
        {"cancel", {{"job", arg_type::unsigned_integer, true}}},
        {"pause", {{"job", arg_type::unsigned_integer, true}}},
        {"resume", {{"job", arg_type::unsigned_integer, true}}},
        {"cache", {}},
        {"evict", {{"content", arg_type::string, true}}},
        {"facts", {}},
        {"setting", {{"key", arg_type::string, true}, {"value", arg_type::scalar, false}}},
    };
    return table;
}

void check_type(const json &v, const argument &a) {
    bool fits = false;
    switch (a.type) {
    case arg_type::string: fits = v.is_string(); break;
    case arg_type::unsigned_integer: fits = is_unsigned(v); break;
    case arg_type::boolean: fits = v.is_boolean(); break;
    case arg_type::scalar: (void)setting_text(v, a.name); fits = true; break;
    }
    static const char *const type_names[] = {"a string", "a non-negative integer", "true or false", ""};
    if (!fits) throw input_error(quoted(a.name) + " must be " + type_names[static_cast<int>(a.type)]);
}

}  // namespace

std::string setting_text(const json &v, const std::string &key) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_unsigned()) return std::to_string(v.get<std::uint64_t>());
    if (v.is_number_integer()) return std::to_string(v.get<std::int64_t>());
    if (v.is_boolean()) return v.get<bool>() ? "1" : "0";
    if (v.is_object() || v.is_array()) return v.dump();
    throw input_error(quoted(key) + " must be a string, integer, boolean, object or array");
}

config parse_config(const std::string &text, const std::string &name) {
    json j = parse_bounded(text, "config '" + name + "'");
    if (!j.is_object()) throw input_error("config '" + name + "' must be a JSON object");
    static const std::set<std::string> known = {"cache_dir", "quota_bytes", "quota_percent", "fleet_key_file", "listen",
                                                "control_socket", "plugin_dir", "plugins", "settings", "log_level", "device"};
    for (auto &[k, v] : j.items())
        if (!known.count(k)) throw input_error("config '" + name + "': unknown key " + quoted(k));
    config c;
    auto str = [&](const char *k, bool required) {
        if (!j.contains(k)) {
            if (required) throw input_error("config '" + name + "': " + quoted(k) + " is required");
            return std::string();
        }
        if (!j[k].is_string() || j[k].get_ref<const std::string &>().empty())
            throw input_error("config '" + name + "': " + quoted(k) + " must be a non-empty string");
        return j[k].get<std::string>();
    };
    c.cache_dir = str("cache_dir", true);
    c.control_socket = str("control_socket", true);
    c.plugin_dir = str("plugin_dir", false);
    c.fleet_key_file = str("fleet_key_file", false);
    c.listen = str("listen", false);
    if (j.contains("quota_bytes")) c.quota_bytes = unsigned_of(j["quota_bytes"], "quota_bytes", UINT64_MAX);
    if (j.contains("quota_percent")) c.quota_percent = static_cast<std::uint32_t>(unsigned_of(j["quota_percent"], "quota_percent", 100));
    if (j.contains("log_level")) {
        c.log_level = choice_of(j["log_level"], "log_level", {level_names[0], level_names[1], level_names[2], level_names[3]});
        c.settings["log.level"] = std::to_string(c.log_level);
    }
    if (j.contains("settings")) {
        if (!j["settings"].is_object()) throw input_error("'settings' must be an object");
        for (auto &[k, v] : j["settings"].items()) c.settings[k] = setting_text(v, "settings." + k);
    }
    if (j.contains("plugins")) {
        if (!j["plugins"].is_object()) throw input_error("'plugins' must be an object of per-plugin settings");
        for (auto &[plugin, opts] : j["plugins"].items()) {
            if (!opts.is_object()) throw input_error(quoted("plugins." + plugin) + " must be an object");
            for (auto &[k, v] : opts.items()) c.settings["plugin." + plugin + "." + k] = setting_text(v, "plugins." + plugin + "." + k);
        }
    }
    if (j.contains("device")) {
        const json &d = j["device"];
        if (!d.is_object()) throw input_error("'device' must be an object");
        for (auto &[k, v] : d.items()) {
            if (k == "chassis") c.device.chassis = 1 + choice_of(v, "device.chassis", {"desktop", "laptop", "server"});
            else if (k == "os_type") c.device.os_type = 1 + choice_of(v, "device.os_type", {"workstation", "server"});
            else if (k == "free_bytes") c.device.free_bytes = unsigned_of(v, "device.free_bytes", UINT64_MAX);
            else if (k == "uptime_seconds") c.device.uptime_seconds = unsigned_of(v, "device.uptime_seconds", UINT64_MAX);
            else throw input_error("config '" + name + "': unknown key " + quoted("device." + k));
        }
    }
    return c;
}

request parse_request(const std::string &line, json *id_out) {
    json j = parse_bounded(line, "request");
    if (!j.is_object() || !j.contains("cmd") || !j["cmd"].is_string())
        throw input_error("request must be an object with a string 'cmd'");
    request r;
    r.cmd = j["cmd"].get<std::string>();
    if (j.contains("id")) r.id = j["id"];
    if (id_out) *id_out = r.id;
    const command *found = nullptr;
    for (auto &c : commands())
        if (r.cmd == c.name) found = &c;
    if (!found) throw input_error("unknown command '" + r.cmd + "'");
    r.args = json::object();
    for (auto &[k, v] : j.items()) {
        if (k == "cmd" || k == "id") continue;
        const argument *a = nullptr;
        for (auto &candidate : found->args)
            if (k == candidate.name) a = &candidate;
        if (!a) throw input_error("'" + r.cmd + "' takes no argument " + quoted(k));
        check_type(v, *a);
        r.args[k] = v;
    }
    for (auto &a : found->args)
        if (a.required && !r.args.contains(a.name)) throw input_error("'" + r.cmd + "' needs the argument " + quoted(a.name));
    if (r.cmd == "download" && int(r.args.contains("manifest")) + int(r.args.contains("content")) + int(r.args.contains("url")) != 1)
        throw input_error("'download' needs one of 'manifest' (a manifest file), 'content' (a content id from the catalogue) "
                          "or 'url' (an origin answering PeerDist requests)");
    if (r.cmd == "download" && r.args.contains("url") && (r.args.contains("origin") || r.args.contains("content_info")))
        throw input_error("'download' with 'url' takes no 'origin' or 'content_info': the URL's origin gives both");
    return r;
}

}  // namespace pd_agent
