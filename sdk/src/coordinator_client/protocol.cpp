#include "coordinator_client/protocol.h"

#include "crypto/hash.h"
#include "platform/socket.h"
#include "util/endpoint.h"
#include "util/error.h"
#include "util/hex.h"

#include <sodium.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace pd::coord {

std::vector<net::bytes> frame_message(const json &message) {
    std::string text = message.dump();
    if (text.size() > max_message_bytes) fail(PD_E_INVALID, PD_CATEGORY_NET, "coordinator message over 64 MiB");
    if (text.size() <= max_part_bytes) return {net::bytes(text.begin(), text.end())};
    std::size_t parts = (text.size() + max_part_bytes - 1) / max_part_bytes;
    std::vector<net::bytes> out;
    std::string head = json{{"parts", parts}}.dump();
    out.emplace_back(head.begin(), head.end());
    for (std::size_t i = 0; i < text.size(); i += max_part_bytes) {
        auto end = std::min(text.size(), i + max_part_bytes);
        out.emplace_back(text.begin() + static_cast<std::ptrdiff_t>(i), text.begin() + static_cast<std::ptrdiff_t>(end));
    }
    return out;
}

json parse_object(const std::string &text, const char *what) {
    // Nesting is bounded as the parser goes: 8 MB of "[[[[" once cost 270 MB of memory.
    auto depth_limit = [what](int depth, json::parse_event_t, json &) {
        if (depth > max_json_depth)
            fail(PD_E_INVALID, PD_CATEGORY_NET, std::string(what) + " nests deeper than " + std::to_string(max_json_depth) + " levels");
        return true;
    };
    json j = json::parse(text, depth_limit, false);
    if (j.is_discarded() || !j.is_object()) fail(PD_E_INVALID, PD_CATEGORY_NET, std::string(what) + " is not a JSON object");
    return j;
}

std::optional<json> message_assembler::feed(const net::bytes &record) {
    if (parts_left_) {
        text_.append(record.begin(), record.end());
        if (text_.size() > max_message_bytes) fail(PD_E_INVALID, PD_CATEGORY_NET, "coordinator message over 64 MiB");
        if (--parts_left_) return std::nullopt;
    } else {
        text_.assign(record.begin(), record.end());
    }
    std::string text = std::move(text_);
    text_.clear();
    json j = parse_object(text, "coordinator message");
    if (j.size() == 1 && j.contains("parts")) {
        auto &p = j["parts"];
        if (!p.is_number_unsigned() || p.get<std::uint64_t>() < 2 ||
            p.get<std::uint64_t>() > max_message_bytes / max_part_bytes + 1)
            fail(PD_E_INVALID, PD_CATEGORY_NET, "coordinator message with a bad part count");
        parts_left_ = p.get<std::size_t>();
        return std::nullopt;
    }
    return j;
}

namespace {

net::bytes statement(signer who, const std::array<std::uint8_t, 32> &transcript) {
    return crypto::labelled(who == signer::administrator ? "peerdist coordinator administrator v1" : "peerdist coordinator server v1",
                            transcript.data(), transcript.size());
}

}  // namespace

signature sign_transcript(signer who, const std::array<std::uint8_t, 32> &transcript, const std::uint8_t secret_key[64]) {
    auto m = statement(who, transcript);
    signature sig{};
    crypto_sign_detached(sig.data(), nullptr, m.data(), m.size(), secret_key);
    return sig;
}

bool verify_transcript(signer who, const std::array<std::uint8_t, 32> &transcript, const std::uint8_t public_key[32],
                       const signature &sig) {
    auto m = statement(who, transcript);
    return crypto_sign_verify_detached(sig.data(), m.data(), m.size(), public_key) == 0;
}

net::bytes device_statement(const std::array<std::uint8_t, 32> &transcript) {
    return crypto::labelled("peerdist coordinator device v1", transcript.data(), transcript.size());
}

const char *role_name(admin_role r) { return r == admin_role::administrator ? "admin" : "viewer"; }

std::optional<admin_role> parse_role(const std::string &name) {
    if (name == "admin") return admin_role::administrator;
    if (name == "viewer") return admin_role::viewer;
    return std::nullopt;
}

json publication_fields(const content::manifest &m) {
    auto bytes = m.serialize();
    return {{"content", to_hex(m.id.data(), m.id.size())}, {"name", m.name}, {"size", m.size},
            {"block_count", m.block_count()}, {"manifest", to_base64(bytes.data(), bytes.size())}};
}

bool read_only_operation(const std::string &op) {
    static const char *const reads[] = {"admin.health",     "admin.server_id", "admin.topology.export", "admin.devices.csv",
                                        "admin.stats",      "admin.rvp",       "admin.groups.list",     "admin.contents",
                                        "admin.admins.list", "admin.publication", "admin.prestage.status",
                                        "admin.offices",    "admin.rollouts"};
    return std::any_of(std::begin(reads), std::end(reads), [&](const char *r) { return op == r; });
}

coordinator_client::coordinator_client(const std::string &address, const std::uint8_t fleet_key[32], int timeout_ms) {
    open(address, fleet_key, timeout_ms);
}

coordinator_client::coordinator_client(const std::string &address, const admin_credential &credential, int timeout_ms) {
    open(address, nullptr, timeout_ms);
    std::array<std::uint8_t, 32> public_key{};
    std::array<std::uint8_t, 64> secret_key{};
    crypto_sign_seed_keypair(public_key.data(), secret_key.data(), credential.admin_seed.data());
    auto sig = sign_transcript(signer::administrator, channel_->transcript(), secret_key.data());
    sodium_memzero(secret_key.data(), secret_key.size());
    auto reply = call({{"op", "auth"}, {"key", to_hex(public_key.data(), 32)}, {"signature", to_hex(sig.data(), sig.size())}});
    auto text = [&](const char *key) {
        auto it = reply.find(key);
        return it != reply.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    if (reply.value("ok", false) != true)
        fail(PD_E_AUTH, PD_CATEGORY_NET, "coordinator " + address + " refused this administrator: " + text("error"));
    // The coordinator proves itself too: someone on the path could otherwise pose as it.
    auto server_sig = from_hex(text("server_signature"));
    signature ss{};
    if (!server_sig || server_sig->size() != ss.size())
        fail(PD_E_AUTH, PD_CATEGORY_NET, "coordinator " + address + " did not prove its identity");
    std::copy(server_sig->begin(), server_sig->end(), ss.begin());
    if (!verify_transcript(signer::coordinator, channel_->transcript(), credential.coordinator_key.data(), ss))
        fail(PD_E_AUTH, PD_CATEGORY_NET,
             "the server at " + address + " is not the coordinator this credential names (its key does not verify)");
    auto role = parse_role(text("role"));
    if (!role) fail(PD_E_AUTH, PD_CATEGORY_NET, "coordinator " + address + " named no role for this administrator");
    role_ = *role;
    admin_name_ = text("name");
}

void coordinator_client::open(const std::string &address, const std::uint8_t *fleet_key, int timeout_ms) {
    socket_ = platform::connect_tcp(address, timeout_ms);
    try {
        channel_ = std::make_unique<net::blocking_channel>(socket_, net::role::client, fleet_key);
    } catch (const error &e) {
        platform::close_socket(socket_);
        socket_ = platform::invalid_socket;
        fail(e.code(), e.category(), "coordinator " + address + ": " + e.what());
    }
}

coordinator_client::~coordinator_client() { platform::close_socket(socket_); }

json coordinator_client::call(const json &request) {
    for (auto &record : frame_message(request)) channel_->send(record);
    message_assembler in;
    for (;;)
        if (auto reply = in.feed(channel_->receive())) return *reply;
}

namespace {

[[noreturn]] void malformed(const std::string &what) { fail(PD_E_INVALID, PD_CATEGORY_NET, "coordinator reply: " + what); }

const json *field(const json &reply, const char *key) {
    if (!reply.is_object()) malformed("not a JSON object");
    auto it = reply.find(key);
    return it == reply.end() || it->is_null() ? nullptr : &*it;
}

// A non-negative integer field, or nullopt when absent.
std::optional<std::uint64_t> count_field(const json &reply, const char *key) {
    const json *v = field(reply, key);
    if (!v) return std::nullopt;
    if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<std::int64_t>() >= 0))
        malformed(std::string("'") + key + "' is not a non-negative integer");
    return v->get<std::uint64_t>();
}

// A list of 32-byte values in hex (device keys, content ids): at most `limit`, each checked.
std::vector<std::array<std::uint8_t, 32>> read_hex32_list(const json *list, const char *key, std::size_t limit, const char *what) {
    if (!list || !list->is_array() || list->size() > limit)
        malformed(std::string("'") + key + "' is not a list of at most " + std::to_string(limit) + " " + what + "s");
    std::vector<std::array<std::uint8_t, 32>> out;
    for (auto &v : *list) {
        auto raw = v.is_string() ? from_hex(v.get<std::string>()) : std::nullopt;
        if (!raw || raw->size() != 32) malformed(std::string("'") + key + "' holds something other than a " + what);
        std::array<std::uint8_t, 32> item;
        std::copy(raw->begin(), raw->end(), item.begin());
        out.push_back(item);
    }
    return out;
}

std::vector<std::string> read_peers(const json &reply, const char *key) {
    std::vector<std::string> out;
    const json *list = field(reply, key);
    if (!list) return out;
    if (!list->is_array()) malformed(std::string("'") + key + "' is not a list");
    if (list->size() > max_peers) malformed(std::string("'") + key + "' lists more than " + std::to_string(max_peers) + " peers");
    for (auto &p : *list) {
        // Each becomes a line of the backend's peer list: only host:port passes.
        if (!p.is_string() || !parse_endpoint(p.get<std::string>(), port_rule::connect))
            malformed(std::string("'") + key + "' holds something other than host:port");
        out.push_back(p.get<std::string>());
    }
    return out;
}

}  // namespace

register_reply read_register_reply(const json &reply) {
    const json *ok = field(reply, "ok");
    if (!ok || !ok->is_boolean()) malformed("'ok' is missing");
    if (!ok->get<bool>()) {
        const json *why = field(reply, "error");
        fail(PD_E_INVALID, PD_CATEGORY_NET, "register refused: " + (why && why->is_string() ? why->get<std::string>() : "no reason given"));
    }
    register_reply r;
    if (const json *office = field(reply, "office")) {
        if (!office->is_string()) malformed("'office' is not a string");
        r.office = office->get<std::string>();
    }
    if (const json *hb = field(reply, "heartbeat_ms")) {
        if (!hb->is_number_integer()) malformed("'heartbeat_ms' is not an integer");
        r.heartbeat_ms = std::clamp<std::int64_t>(hb->get<std::int64_t>(), 200, 3600000);
    }
    r.wan_budget = read_wan_budget(reply);
    r.revoked_devices = read_revoked_count(reply);
    return r;
}

std::optional<std::string> read_office_type(const json &reply) {
    const json *type = field(reply, "office_type");
    if (!type) return std::nullopt;
    if (!type->is_string() || (*type != "Default" && *type != "VPN" && *type != "WiFi")) malformed("'office_type' is not an office type");
    return type->get<std::string>();
}

std::optional<std::uint64_t> read_wan_budget(const json &reply) { return count_field(reply, "wan_budget"); }

std::optional<std::uint64_t> read_revoked_count(const json &reply) { return count_field(reply, "revoked_devices"); }

revoked_devices_reply read_revoked_devices(const json &reply, std::uint64_t since) {
    const json *ok = field(reply, "ok");
    if (!ok || !ok->is_boolean() || !ok->get<bool>()) malformed("revoked_devices refused");
    if (count_field(reply, "since") != since) malformed("'since' is not the index asked for");
    revoked_devices_reply r;
    auto total = count_field(reply, "total");
    if (!total) malformed("'total' is missing");
    r.total = *total;
    r.keys = read_hex32_list(field(reply, "keys"), "keys", max_revoked_per_reply, "device key");
    if (since + r.keys.size() > r.total) malformed("'keys' runs past 'total'");
    return r;
}

std::optional<std::uint64_t> read_retired_count(const json &reply) { return count_field(reply, "retired_contents"); }

retired_contents_reply read_retired_contents(const json &reply, std::uint64_t since) {
    const json *ok = field(reply, "ok");
    if (!ok || !ok->is_boolean() || !ok->get<bool>()) malformed("retired_contents refused");
    retired_contents_reply r;
    auto upto = count_field(reply, "upto");
    if (!upto || *upto < since) malformed("'upto' is missing or before the retirements asked for");
    r.upto = *upto;
    r.contents = read_hex32_list(field(reply, "contents"), "contents", max_retired_per_reply, "content id");
    return r;
}

std::vector<std::array<std::uint8_t, 32>> read_prestage(const json &reply, const char *key) {
    const json *ids = field(reply, key);
    if (!ids) return {};
    return read_hex32_list(ids, key, max_prestage_per_reply, "content id");
}

content_reply read_content_reply(const json &reply) {
    const json *ok = field(reply, "ok");
    if (!ok || !ok->is_boolean()) malformed("'ok' is missing");
    if (!ok->get<bool>()) {
        const json *why = field(reply, "error");
        fail(PD_E_NOT_FOUND, PD_CATEGORY_NET, why && why->is_string() ? why->get<std::string>() : "the catalogue has no such content");
    }
    content_reply r;
    const json *manifest = field(reply, "manifest");
    auto bytes = manifest && manifest->is_string() ? from_base64(manifest->get<std::string>()) : std::nullopt;
    if (!bytes) malformed("'manifest' is not base64");
    r.manifest = std::move(*bytes);
    if (const json *record = field(reply, "publication")) {
        auto raw = record->is_string() ? from_hex(record->get<std::string>()) : std::nullopt;
        if (!raw || raw->size() > 64 * 1024) malformed("'publication' is not a record in hex");
        r.publication = std::move(*raw);
    }
    if (const json *origins = field(reply, "origins")) {
        if (!origins->is_array() || origins->size() > 64) malformed("'origins' is not a list of at most 64 locators");
        for (auto &o : *origins) {
            // One locator per line: a locator holding a line break would smuggle in another.
            if (!o.is_string() || o.get_ref<const std::string &>().size() > 4096 ||
                o.get_ref<const std::string &>().find_first_of("\r\n") != std::string::npos)
                malformed("'origins' holds something other than a locator");
            r.origins += (r.origins.empty() ? "" : "\n") + o.get<std::string>();
        }
    }
    return r;
}

sources_reply read_sources_reply(const json &reply) {
    const json *ok = field(reply, "ok");
    if (!ok || !ok->is_boolean() || !ok->get<bool>()) malformed("sources refused");
    sources_reply r;
    if (const json *allowed = field(reply, "origin_allowed")) {
        if (!allowed->is_boolean()) malformed("'origin_allowed' is not a boolean");
        r.origin_allowed = allowed->get<bool>();
    }
    r.lan = read_peers(reply, "lan");
    r.wan = read_peers(reply, "wan");
    if (const json *keys = field(reply, "device_keys")) {
        if (!keys->is_object()) malformed("'device_keys' is not an object");
        for (auto &[peer, key] : keys->items()) {
            bool listed = std::count(r.lan.begin(), r.lan.end(), peer) || std::count(r.wan.begin(), r.wan.end(), peer);
            auto raw = key.is_string() ? from_hex(key.get<std::string>()) : std::nullopt;
            if (!listed || !raw || raw->size() != 32) malformed("'device_keys' holds something other than a listed peer's key");
            r.device_keys[peer] = to_hex(raw->data(), raw->size());
        }
    }
    return r;
}

}  // namespace pd::coord
