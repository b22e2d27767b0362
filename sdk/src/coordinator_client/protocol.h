// The coordinator protocol (docs/protocol.md §4): one JSON object per message inside the
// secure channel, a request answered by exactly one reply, in order. A message longer than
// one record (a topology CSV, the devices report) travels as {"parts": N} followed by N
// records of raw text whose concatenation is the JSON. Limits: 64 MiB per message, JSON
// nested at most 32 levels.
#pragma once

#include "net/secure_channel.h"

#include <nlohmann/json.hpp>

#include <array>
#include <optional>
#include <string>
#include <vector>

namespace pd::coord {

using json = nlohmann::json;

constexpr std::size_t max_part_bytes = 192 * 1024;
constexpr std::size_t max_message_bytes = 64u << 20;
constexpr int max_json_depth = 32;
// Longest peer list in a sources reply: a large office is sampled, not listed whole.
constexpr std::size_t max_peers = 64;

// The records (plaintext) that carry one message.
std::vector<net::bytes> frame_message(const json &message);

// Collects records into messages. feed() returns the message once complete; throws
// pd::error PD_E_INVALID for bad JSON, a bad part count, or a message over the limit.
class message_assembler {
public:
    std::optional<json> feed(const net::bytes &record);

private:
    std::size_t parts_left_ = 0;
    std::string text_;
};

// What an agent takes from the coordinator's replies, checked field by field: a reply is
// untrusted input even under the fleet key (a buggy or compromised coordinator must cost
// an agent one reply, never its process). The readers throw pd::error PD_E_INVALID naming
// the field for a wrong type, a value out of range or a peer that is not host:port.
struct register_reply {
    std::string office;
    std::int64_t heartbeat_ms = 5000;       // clamped to [200, 3600000]
    std::optional<std::uint64_t> wan_budget;  // bytes/s, 0 = none; absent from old coordinators
};
// A register reply; "ok": false throws with the coordinator's "error".
register_reply read_register_reply(const json &reply);

// The office's WAN budget a heartbeat reply carries, when it carries one.
std::optional<std::uint64_t> read_wan_budget(const json &reply);

struct sources_reply {
    std::vector<std::string> lan;  // host:port of devices in this device's office
    std::vector<std::string> wan;  // host:port of devices in the nearest ancestor office
    bool origin_allowed = true;
};
// A sources reply with "ok": true; at most max_peers peers in each list.
sources_reply read_sources_reply(const json &reply);

// A blocking client (agents' hierarchy plugin, admin tools, tests): connects, runs the
// secure channel with the fleet key, then call() sends a request and waits for its reply.
class coordinator_client {
public:
    // `address` is host:port (util/endpoint.h); a name is resolved. Throws PD_E_INVALID (not
    // host:port, or a name that does not resolve), PD_E_TIMEOUT, PD_E_IO, PD_E_AUTH ("shared
    // key mismatch").
    coordinator_client(const std::string &address, const std::uint8_t fleet_key[32], int timeout_ms);
    ~coordinator_client();
    coordinator_client(const coordinator_client &) = delete;
    coordinator_client &operator=(const coordinator_client &) = delete;
    // Throws PD_E_IO when the connection broke, PD_E_INVALID for a malformed reply. A reply
    // with "ok": false is returned as is (its "error" says why).
    json call(const json &request);

private:
    platform::native_socket socket_ = platform::invalid_socket;
    std::unique_ptr<net::blocking_channel> channel_;
};

}  // namespace pd::coord
