// The coordinator protocol (docs/protocol.md §4): one JSON object per message inside the
// secure channel, a request answered by exactly one reply, in order. A message longer than
// one record (a topology CSV, the devices report) travels as {"parts": N} followed by N
// records of raw text whose concatenation is the JSON. Limits: 64 MiB per message, JSON
// nested at most 32 levels.
#pragma once

#include "content/manifest.h"
#include "net/secure_channel.h"
#include "util/key_file.h"

#include <nlohmann/json.hpp>

#include <array>
#include <map>
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

// `text` as a JSON object nested at most max_json_depth levels (checked as it is parsed);
// throws pd::error PD_E_INVALID naming `what` otherwise. Every JSON a coordinator or its
// console reads from a socket goes through here.
json parse_object(const std::string &text, const char *what);

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
    std::optional<std::uint64_t> revoked_devices;  // see read_revoked_count
};
// A register reply; "ok": false throws with the coordinator's "error".
register_reply read_register_reply(const json &reply);

// The office type ("Default", "VPN", "WiFi") a register or heartbeat reply names, when it
// names one of these.
std::optional<std::string> read_office_type(const json &reply);

// The office's WAN budget a heartbeat reply carries, when it carries one.
std::optional<std::uint64_t> read_wan_budget(const json &reply);

// How many devices the coordinator has revoked, as a register or heartbeat reply says
// (absent from coordinators before 0.6). The count only grows: an agent that has fewer keys
// asks for the rest ("revoked_devices").
std::optional<std::uint64_t> read_revoked_count(const json &reply);

// Most contents a heartbeat asks an RVP to pre-stage, and most progress entries it reports.
constexpr std::size_t max_prestage_per_reply = 1024;
constexpr std::size_t max_progress_per_heartbeat = max_prestage_per_reply;
// Most content ids one "retired_contents" reply carries.
constexpr std::size_t max_retired_per_reply = 1024;

// Most keys one "revoked_devices" reply carries.
constexpr std::size_t max_revoked_per_reply = 1024;
struct revoked_devices_reply {
    std::uint64_t total = 0;                           // revoked keys the coordinator holds
    std::vector<std::array<std::uint8_t, 32>> keys;  // those from the index asked for on
};
// A "revoked_devices" reply to a request for the keys from index `since` on.
revoked_devices_reply read_revoked_devices(const json &reply, std::uint64_t since);

// The newest content retirement a register or heartbeat reply names (absent from older
// coordinators). It only grows: an agent that has seen less asks for the rest.
std::optional<std::uint64_t> read_retired_count(const json &reply);

// The contents a heartbeat reply asks this device (its office's RVP) to pre-stage (`key`
// "prestage"), or to fetch over the foreground class to meet a deadline ("foreground");
// empty when it names none (docs/coordinator.md "Pre-staging").
std::vector<std::array<std::uint8_t, 32>> read_prestage(const json &reply, const char *key);

struct retired_contents_reply {
    std::uint64_t upto = 0;  // the agent has seen every retirement up to this one
    std::vector<std::array<std::uint8_t, 32>> contents;
};
// A "retired_contents" reply to a request for the retirements after `since`.
retired_contents_reply read_retired_contents(const json &reply, std::uint64_t since);

// What an "admin.publish" request (or an "admin.republish" entry) says of a manifest: the
// content id, name, size, block count and the manifest itself (base64). The caller adds
// "origins" and "publication" when it has them.
json publication_fields(const content::manifest &m);

// A "content" reply: the catalogue's description of a content (docs/coordinator.md
// "Catalogue"). Checked for form only; the session checks the manifest against the id and
// the record against its trusted publishers. "ok": false throws PD_E_NOT_FOUND with the
// coordinator's reason.
struct content_reply {
    std::vector<std::uint8_t> manifest;
    std::vector<std::uint8_t> publication;  // empty: none stored
    std::string origins;                    // newline-separated, in order
};
content_reply read_content_reply(const json &reply);

struct sources_reply {
    std::vector<std::string> lan;  // host:port of devices in this device's office
    std::vector<std::string> wan;  // host:port of devices in the nearest ancestor office
    bool origin_allowed = true;
    // host:port -> the device key (64 hex digits) that peer must prove, for identified devices.
    std::map<std::string, std::string> device_keys;
};
// A sources reply with "ok": true; at most max_peers peers in each list.
sources_reply read_sources_reply(const json &reply);

// Identity proofs inside a secure channel: an Ed25519 signature over a label naming the
// signer's part and the channel's transcript, so it proves the key to this peer on this
// connection and is worth nothing on any other (net::handshake::transcript()).
enum class signer { administrator, coordinator };
using signature = std::array<std::uint8_t, 64>;
// `secret_key` is libsodium's 64-byte Ed25519 secret key (seed and public key).
signature sign_transcript(signer who, const std::array<std::uint8_t, 32> &transcript, const std::uint8_t secret_key[64]);
bool verify_transcript(signer who, const std::array<std::uint8_t, 32> &transcript, const std::uint8_t public_key[32],
                       const signature &sig);

// What a device signs (through pd_host_api.device_sign, which prefixes it with the device
// domain: crypto::device_signed_message) to prove its identity on a connection: the
// "identify" operation (docs/coordinator.md "Devices").
net::bytes device_statement(const std::array<std::uint8_t, 32> &transcript);

// The roles an administrator's key can hold (docs/coordinator.md "Administrators"): an
// administrator may run every admin operation, a viewer only those that change nothing.
enum class admin_role { viewer, administrator };
const char *role_name(admin_role r);
std::optional<admin_role> parse_role(const std::string &name);
// Whether `op` (an "admin.*" operation) changes nothing: a viewer may run it.
bool read_only_operation(const std::string &op);

// A blocking client (agents' hierarchy plugin, admin tools, tests): connects, runs the
// secure channel, then call() sends a request and waits for its reply.
class coordinator_client {
public:
    // A fleet member: the channel proves the fleet key. `address` is host:port
    // (util/endpoint.h); a name is resolved. Throws PD_E_INVALID (not host:port, or a name
    // that does not resolve), PD_E_TIMEOUT, PD_E_IO, PD_E_AUTH ("shared key mismatch").
    coordinator_client(const std::string &address, const std::uint8_t fleet_key[32], int timeout_ms);
    // An administrator: a keyless channel, then the "auth" exchange — this side signs the
    // transcript with the credential's key, the coordinator must sign it with the key the
    // credential names. Throws as above, and PD_E_AUTH naming the side that failed to prove
    // itself (an unknown or revoked administrator, a server that is not the coordinator).
    coordinator_client(const std::string &address, const admin_credential &credential, int timeout_ms);
    // See net::handshake::transcript(): what an identity proof on this connection signs.
    const std::array<std::uint8_t, 32> &transcript() const { return channel_->transcript(); }
    // The administrator's name and role as the coordinator knows them (admin connections).
    const std::string &admin_name() const { return admin_name_; }
    admin_role role() const { return role_; }
    ~coordinator_client();
    coordinator_client(const coordinator_client &) = delete;
    coordinator_client &operator=(const coordinator_client &) = delete;
    // Throws PD_E_IO when the connection broke, PD_E_INVALID for a malformed reply. A reply
    // with "ok": false is returned as is (its "error" says why).
    json call(const json &request);

private:
    void open(const std::string &address, const std::uint8_t *fleet_key, int timeout_ms);

    platform::native_socket socket_ = platform::invalid_socket;
    std::unique_ptr<net::blocking_channel> channel_;
    std::string admin_name_;
    admin_role role_ = admin_role::viewer;
};

}  // namespace pd::coord
