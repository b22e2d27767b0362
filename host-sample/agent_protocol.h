// pd-agent's parsers of untrusted text: its config file and the request lines of its control
// socket (docs/agent.md). Pure — JSON in, checked values out, no SDK call — so the fuzz
// target (tests/fuzz) and the unit tests reach them. Every rejection is an exception whose
// message names the key and the rule; nothing here aborts on any input.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

namespace pd_agent {

using json = nlohmann::json;

// A config or request that breaks a rule; what() is the message for the user.
struct input_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Deepest JSON nesting either parser accepts (the config needs 3, requests 2).
constexpr int max_json_depth = 16;
// Largest config file.
constexpr std::size_t max_config_bytes = 1 << 20;
// Longest control request line; longer ones close the connection.
constexpr std::size_t max_request_bytes = 1 << 20;

// The log levels, in order (index = PD_LOG_* value).
extern const char *const level_names[4];

// Fact overrides for elections (the "device" object).
struct device_overrides {
    std::optional<int> chassis;  // PD_CHASSIS_*: desktop 1, laptop 2, server 3
    std::optional<int> os_type;  // PD_OS_*: workstation 1, server 2
    std::optional<std::uint64_t> free_bytes, uptime_seconds;
    bool any() const { return chassis || os_type || free_bytes || uptime_seconds; }
};

struct config {
    std::string cache_dir, control_socket, plugin_dir, fleet_key_file, listen;
    std::uint64_t quota_bytes = 0;
    std::uint32_t quota_percent = 0;
    int log_level = 2;  // info
    // Session settings as the SDK takes them (plugin ones as plugin.NAME.KEY); the SDK
    // validates their values when the agent applies them.
    std::map<std::string, std::string> settings;
    device_overrides device;
};

// Parses a config file's text; `name` (its path) goes into messages. Unknown keys, wrong
// types and out-of-range values throw input_error.
config parse_config(const std::string &text, const std::string &name);

// One control request: its command, its arguments checked against the command's table
// (docs/agent.md), and the caller's "id" to echo (null when absent).
struct request {
    std::string cmd;
    json args;  // an object holding only the command's arguments, each of its type
    json id;
};

// Parses one request line. Not JSON, not an object, no string "cmd", an unknown command, a
// missing, unknown or mistyped argument: input_error. `id` is recovered whenever the
// line was an object, so even a refusal can be matched to its request.
request parse_request(const std::string &line, json *id_out = nullptr);

// A setting value as the SDK takes it: strings as they are, integers in decimal, booleans
// as 1/0, objects and arrays as JSON text. Anything else throws input_error naming `key`.
std::string setting_text(const json &value, const std::string &key);

}  // namespace pd_agent
