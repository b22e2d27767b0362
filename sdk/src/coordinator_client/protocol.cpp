#include "coordinator_client/protocol.h"

#include "platform/socket.h"
#include "util/endpoint.h"
#include "util/error.h"
#include "util/hex.h"

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

std::optional<json> message_assembler::feed(const net::bytes &record) {
    if (parts_left_) {
        text_.append(record.begin(), record.end());
        if (text_.size() > max_message_bytes) fail(PD_E_INVALID, PD_CATEGORY_NET, "coordinator message over 64 MiB");
        if (--parts_left_) return std::nullopt;
    } else {
        text_.assign(record.begin(), record.end());
    }
    // Nesting is bounded as the parser goes: 8 MB of "[[[[" once cost 270 MB of memory.
    auto depth_limit = [](int depth, json::parse_event_t, json &) {
        if (depth > max_json_depth)
            fail(PD_E_INVALID, PD_CATEGORY_NET, "coordinator message nests deeper than " + std::to_string(max_json_depth) + " levels");
        return true;
    };
    std::string text = std::move(text_);
    text_.clear();
    json j = json::parse(text, depth_limit, false);
    if (j.is_discarded() || !j.is_object()) fail(PD_E_INVALID, PD_CATEGORY_NET, "coordinator message is not a JSON object");
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

coordinator_client::coordinator_client(const std::string &address, const std::uint8_t fleet_key[32], int timeout_ms) {
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
    return r;
}

std::optional<std::uint64_t> read_wan_budget(const json &reply) {
    const json *budget = field(reply, "wan_budget");
    if (!budget) return std::nullopt;
    if (!budget->is_number_unsigned() && !(budget->is_number_integer() && budget->get<std::int64_t>() == 0))
        malformed("'wan_budget' is not a non-negative integer");
    return budget->get<std::uint64_t>();
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
    return r;
}

}  // namespace pd::coord
