// The peer wire protocol (docs/protocol.md §2): the messages peers exchange inside the
// secure channel, one message per record. Every length is bounded; a parser accepts a
// message only when it is exactly the size its fields say.
#pragma once

#include "content/manifest.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

namespace pd::peer::wire {

using content::hash;

// 2 (0.5): HELLO proves the sender's device key. A version 1 HELLO is refused (PD_E_VERSION).
constexpr std::uint16_t protocol_version = 2;
constexpr std::uint64_t max_blocks = content::max_content_size / 4096;  // 64 Mi blocks
constexpr std::uint32_t max_have_delta = 4096;
constexpr std::uint32_t max_request_blocks = 64;
constexpr std::uint32_t max_block_bytes = 128 * 1024;
constexpr std::size_t max_reason = 256;

enum class type : std::uint8_t {
    hello = 1, have = 2, have_delta = 3, request = 4, data = 5, cancel = 6,
    reject = 7, ping = 8, pong = 9, goodbye = 10, timed_data = 11, request_part = 12, part = 13,
};

// HELLO capability bits.
constexpr std::uint32_t capability_timestamps = 1;  // "send me TIMED_DATA": DATA stamped as it is written
constexpr std::uint32_t capability_parts = 2;       // "I answer REQUEST_PART" (a server's HELLO)
// "Stamp my answers as your TCP sends them" (a client's HELLO; its background class paces
// this link): the server keeps its socket's unsent bytes small and stamps each TIMED_DATA
// and PART as the socket takes it, so waiting for its own TCP window does not read as
// queueing on the path (docs/background-transport.md "Stamped as sent").
constexpr std::uint32_t capability_stamp_as_sent = 4;

struct hello {
    std::uint16_t version = protocol_version;
    std::uint32_t capabilities = 0;
    std::uint32_t max_request_blocks = wire::max_request_blocks;
    std::uint64_t node_id = 0;  // random per session: orders devices for the cooperative origin split
    std::array<std::uint8_t, 32> device_key{};  // the sender's device key (Ed25519)
    std::array<std::uint8_t, 64> proof{};       // its signature of hello_statement()
};

// What a HELLO's proof signs, inside the device-key domain (crypto::device_signed_message):
// which side sends it and the secure channel's transcript — a proof is good for this
// connection and this direction only, so it can be neither replayed nor reflected.
std::vector<std::uint8_t> hello_statement(bool from_client, const std::array<std::uint8_t, 32> &transcript);

// This device's side of the proof: its public key, and the session's signer over
// crypto::device_signed_message(statement).
struct device_identity {
    std::array<std::uint8_t, 32> public_key{};
    std::function<std::array<std::uint8_t, 64>(const std::vector<std::uint8_t> &statement)> sign;
};
// A HELLO from this device on a connection with `transcript`.
hello signed_hello(const device_identity &me, bool from_client, const std::array<std::uint8_t, 32> &transcript);
// Whether `h` proves its device key for this connection, sent by the other side.
bool proves_identity(const hello &h, bool from_client, const std::array<std::uint8_t, 32> &transcript);
constexpr std::uint8_t have_fetching = 1;  // HAVE flag: the sender is downloading this content now
struct have {
    hash content{};
    std::uint64_t block_count = 0;
    std::uint8_t flags = 0;
    std::vector<std::uint8_t> bitmap;
};
struct have_delta { hash content{}; std::vector<std::uint64_t> blocks; };
struct request { std::uint32_t id = 0; hash content{}; std::uint64_t first_block = 0; std::uint32_t count = 0; };
// A range of one block: the background class asks in pieces smaller than a block when its
// window holds only a few blocks (docs/background-transport.md "Sub-block requests").
struct request_part {
    std::uint32_t id = 0;
    hash content{};
    std::uint64_t block = 0;
    std::uint32_t offset = 0;
    std::uint32_t length = 0;
};
// DATA, or TIMED_DATA when `timed`: the same plus the sender's monotonic clock (µs,
// util/clock.h) when it queued the answer to the socket (or, with
// capability_stamp_as_sent, when the socket took it), which the
// receiver's background class turns into one-way delays. PART when `part`: the answer to a
// REQUEST_PART, `bytes` from `offset` of the block, always stamped (`timed`).
struct data {
    std::uint32_t id = 0;
    hash content{};
    std::uint64_t block = 0;
    std::vector<std::uint8_t> bytes;
    bool timed = false;
    std::uint64_t sent_us = 0;
    bool part = false;
    std::uint32_t offset = 0;
};
struct cancel { std::uint32_t id = 0; };
struct reject { std::uint32_t id = 0; std::uint16_t code = 0; std::string reason; };
struct ping { std::uint64_t sent_us = 0; };
struct pong { std::uint64_t sent_us = 0; std::uint64_t echo_us = 0; };
struct goodbye { std::uint16_t code = 0; std::string reason; };

using message = std::variant<hello, have, have_delta, request, data, cancel, reject, ping, pong, goodbye, request_part>;

std::vector<std::uint8_t> encode(const message &m);
// Throws PD_E_INVALID (category NET) naming the message and the bound it broke.
message decode(const std::uint8_t *p, std::size_t len);
const char *name(const message &m);
// Sets the sender's clock (`sent_us`) of an encoded TIMED_DATA or PART in place: the serving
// peer encodes an answer on a worker and stamps it on the network thread as the socket takes
// it. Throws PD_E_INVALID for any other message.
void restamp(std::vector<std::uint8_t> &encoded, std::uint64_t sent_us);

}  // namespace pd::peer::wire
