#include "coordinator_client/protocol.h"

#include "platform/socket.h"
#include "util/error.h"
#include "util/hex.h"

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

}  // namespace pd::coord
