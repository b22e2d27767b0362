#include "peer/wire.h"

#include "crypto/hash.h"

#include "util/bytes.h"
#include "util/error.h"

#include <algorithm>
#include <iterator>

namespace pd::peer::wire {

namespace {

[[noreturn]] void bad(const std::string &what) { fail(PD_E_INVALID, PD_CATEGORY_NET, "peer wire: " + what); }

template <class... Fs>
struct overload : Fs... {
    using Fs::operator()...;
};
template <class... Fs>
overload(Fs...) -> overload<Fs...>;

void put_hash(byte_writer &w, const hash &h) { w.bytes(h.data(), h.size()); }
hash get_hash(byte_reader &r) {
    hash h{};
    r.bytes(h.data(), h.size());
    return h;
}

void put_reason(byte_writer &w, const std::string &s) {
    std::string cut = s.substr(0, max_reason);
    w.u16(static_cast<std::uint16_t>(cut.size()));
    w.bytes(cut.data(), cut.size());
}
std::string get_reason(byte_reader &r) {
    std::uint16_t n = r.u16();
    if (n > max_reason) bad("reason longer than 256 bytes");
    return r.string(n);
}

}  // namespace

std::vector<std::uint8_t> hello_statement(bool from_client, const std::array<std::uint8_t, 32> &transcript) {
    std::array<std::uint8_t, 33> side_and_transcript;
    side_and_transcript[0] = from_client ? 'c' : 's';
    std::copy(transcript.begin(), transcript.end(), side_and_transcript.begin() + 1);
    return crypto::labelled("peerdist peer hello v2", side_and_transcript.data(), side_and_transcript.size());
}

hello signed_hello(const device_identity &me, bool from_client, const std::array<std::uint8_t, 32> &transcript) {
    hello h;
    h.device_key = me.public_key;
    h.proof = me.sign(hello_statement(from_client, transcript));
    return h;
}

bool proves_identity(const hello &h, bool from_client, const std::array<std::uint8_t, 32> &transcript) {
    auto statement = hello_statement(from_client, transcript);
    auto m = crypto::device_signed_message(statement.data(), statement.size());
    return crypto::ed25519_verify(h.proof.data(), m.data(), m.size(), h.device_key.data());
}

std::vector<std::uint8_t> encode(const message &m) {
    byte_writer w;
    std::visit(overload{
                   [&](const hello &x) {
                       w.u8(1), w.u16(x.version), w.u32(x.capabilities), w.u32(x.max_request_blocks), w.u64(x.node_id);
                       w.bytes(x.device_key.data(), x.device_key.size());
                       w.bytes(x.proof.data(), x.proof.size());
                   },
                   [&](const have &x) {
                       w.u8(2), put_hash(w, x.content), w.u64(x.block_count), w.u8(x.flags);
                       w.bytes(x.bitmap.data(), x.bitmap.size());
                   },
                   [&](const have_delta &x) {
                       w.u8(3), put_hash(w, x.content), w.u32(static_cast<std::uint32_t>(x.blocks.size()));
                       for (auto b : x.blocks) w.u64(b);
                   },
                   [&](const request &x) { w.u8(4), w.u32(x.id), put_hash(w, x.content), w.u64(x.first_block), w.u32(x.count); },
                   [&](const data &x) {
                       w.u8(x.part ? 13 : x.timed ? 11 : 5), w.u32(x.id), put_hash(w, x.content), w.u64(x.block);
                       if (x.part) w.u32(x.offset);
                       if (x.timed || x.part) w.u64(x.sent_us);
                       w.u32(static_cast<std::uint32_t>(x.bytes.size()));
                       w.bytes(x.bytes.data(), x.bytes.size());
                   },
                   [&](const cancel &x) { w.u8(6), w.u32(x.id); },
                   [&](const reject &x) { w.u8(7), w.u32(x.id), w.u16(x.code), put_reason(w, x.reason); },
                   [&](const ping &x) { w.u8(8), w.u64(x.sent_us); },
                   [&](const pong &x) { w.u8(9), w.u64(x.sent_us), w.u64(x.echo_us); },
                   [&](const goodbye &x) { w.u8(10), w.u16(x.code), put_reason(w, x.reason); },
                   [&](const request_part &x) {
                       w.u8(12), w.u32(x.id), put_hash(w, x.content), w.u64(x.block), w.u32(x.offset), w.u32(x.length);
                   },
               },
               m);
    return std::move(w.data());
}

void restamp(std::vector<std::uint8_t> &encoded, std::uint64_t sent_us) {
    // The layout encode() writes: type, id, content, block, [offset,] sent_us.
    constexpr std::size_t before_offset = 1 + 4 + 32 + 8;
    auto t = encoded.empty() ? type{} : static_cast<type>(encoded[0]);
    if (t != type::timed_data && t != type::part) bad("only a TIMED_DATA or PART carries a send time");
    std::size_t at = before_offset + (t == type::part ? 4 : 0);
    if (encoded.size() < at + 8) bad("a TIMED_DATA or PART too short for its send time");
    byte_writer w;
    w.u64(sent_us);
    std::copy(w.data().begin(), w.data().end(), encoded.begin() + static_cast<std::ptrdiff_t>(at));
}

message decode(const std::uint8_t *p, std::size_t len) {
    byte_reader r(p, len, "peer wire message");
    std::uint8_t t = r.u8();
    message out;
    switch (static_cast<type>(t)) {
    case type::hello: {
        // A version 1 HELLO (0.4) is 19 bytes: no device identity.
        if (len == 19) fail(PD_E_VERSION, PD_CATEGORY_NET, "peer speaks peer protocol 1 (peerdist 0.4); this side needs 2 (device identities)");
        hello x;
        x.version = r.u16();
        x.capabilities = r.u32();
        x.max_request_blocks = r.u32();
        x.node_id = r.u64();
        r.bytes(x.device_key.data(), x.device_key.size());
        r.bytes(x.proof.data(), x.proof.size());
        if (x.max_request_blocks == 0 || x.max_request_blocks > max_request_blocks) bad("HELLO max_request_blocks out of range");
        out = x;
        break;
    }
    case type::have: {
        have x;
        x.content = get_hash(r);
        x.block_count = r.u64();
        x.flags = r.u8();
        if (x.block_count > max_blocks) bad("HAVE for more blocks than a content can have");
        if (x.flags & ~have_fetching) bad("HAVE with unknown flags");
        std::size_t n = static_cast<std::size_t>((x.block_count + 7) / 8);
        r.need(n);
        x.bitmap.resize(n);
        r.bytes(x.bitmap.data(), n);
        if (x.block_count % 8 && n && (x.bitmap[n - 1] >> (x.block_count % 8)))
            bad("HAVE sets bits past the last block");
        out = std::move(x);
        break;
    }
    case type::have_delta: {
        have_delta x;
        x.content = get_hash(r);
        std::uint32_t n = r.u32();
        if (n == 0 || n > max_have_delta) bad("HAVE_DELTA with " + std::to_string(n) + " blocks (1..4096)");
        r.need(static_cast<std::size_t>(n) * 8);
        for (std::uint32_t i = 0; i < n; ++i) {
            x.blocks.push_back(r.u64());
            if (x.blocks.back() >= max_blocks) bad("HAVE_DELTA block index out of range");
        }
        out = std::move(x);
        break;
    }
    case type::request: {
        request x;
        x.id = r.u32();
        x.content = get_hash(r);
        x.first_block = r.u64();
        x.count = r.u32();
        if (x.count == 0 || x.count > max_request_blocks) bad("REQUEST for " + std::to_string(x.count) + " blocks (1..64)");
        if (x.first_block >= max_blocks || x.first_block + x.count > max_blocks) bad("REQUEST beyond any content");
        out = x;
        break;
    }
    case type::request_part: {
        request_part x;
        x.id = r.u32();
        x.content = get_hash(r);
        x.block = r.u64();
        x.offset = r.u32();
        x.length = r.u32();
        if (x.block >= max_blocks) bad("REQUEST_PART block index out of range");
        if (x.length == 0 || std::uint64_t{x.offset} + x.length > max_block_bytes)
            bad("REQUEST_PART for bytes " + std::to_string(x.offset) + "+" + std::to_string(x.length) + " of a block (within 131072)");
        out = x;
        break;
    }
    case type::data:
    case type::timed_data:
    case type::part: {
        data x;
        x.id = r.u32();
        x.content = get_hash(r);
        x.block = r.u64();
        x.part = static_cast<type>(t) == type::part;
        x.timed = x.part || static_cast<type>(t) == type::timed_data;
        if (x.part) x.offset = r.u32();
        if (x.timed) x.sent_us = r.u64();
        std::uint32_t n = r.u32();
        if (n == 0 || n > max_block_bytes) bad("DATA of " + std::to_string(n) + " bytes (1..131072)");
        if (std::uint64_t{x.offset} + n > max_block_bytes) bad("PART past the end of any block");
        if (x.block >= max_blocks) bad("DATA block index out of range");
        r.need(n);
        x.bytes.resize(n);
        r.bytes(x.bytes.data(), n);
        out = std::move(x);
        break;
    }
    case type::cancel: out = cancel{r.u32()}; break;
    case type::reject: {
        reject x;
        x.id = r.u32();
        x.code = r.u16();
        x.reason = get_reason(r);
        out = std::move(x);
        break;
    }
    case type::ping: out = ping{r.u64()}; break;
    case type::pong: {
        pong x;
        x.sent_us = r.u64();
        x.echo_us = r.u64();
        out = x;
        break;
    }
    case type::goodbye: {
        goodbye x;
        x.code = r.u16();
        x.reason = get_reason(r);
        out = std::move(x);
        break;
    }
    default:
        bad("unknown message type " + std::to_string(t));
    }
    if (r.remaining()) bad(std::string(name(out)) + " has " + std::to_string(r.remaining()) + " trailing bytes");
    return out;
}

const char *name(const message &m) {
    static const char *names[] = {"HELLO", "HAVE",   "HAVE_DELTA", "REQUEST", "DATA",        "CANCEL",
                                  "REJECT", "PING", "PONG",       "GOODBYE", "REQUEST_PART"};
    static_assert(std::size(names) == std::variant_size_v<message>);
    if (auto *d = std::get_if<data>(&m); d && d->part) return "PART";
    return names[m.index()];
}

}  // namespace pd::peer::wire
