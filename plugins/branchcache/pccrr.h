// [MS-PCCRR], the Peer Content Caching and Retrieval: Retrieval Protocol that Windows'
// BranchCache speaks between peers: its messages built and parsed without I/O (so the fuzz
// target reaches every byte a peer can send), and the block encryption it asks for.
//
// Every message is a MESSAGE_HEADER (2.2.3: ProtVer, MsgType, MsgSize, CryptoAlgoId) and a
// body, all integers big-endian. Requests travel as the body of an HTTP POST to
// retrieval_path; a response is the HTTP response's body, after a 4-byte transport header
// holding the message's length (2.2.2). Variable fields carry their size and are zero-padded
// to 4 bytes, except the last field of a message. docs/protocol.md §5 lists the messages with
// the sections they follow and where this implementation chooses where the spec is silent.
//
// A parser returns nothing but an error message for anything the spec does not allow or
// that exceeds the bounds below (a segment ID of 32, 48 or 64 bytes, at most max_ranges
// ranges, a block of at most max_block_bytes plus one cipher block): a peer's bytes never
// size an allocation beyond them. Fields a sender must zero (the padding) are checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace pd_branchcache::pccrr {

using bytes = std::vector<std::uint8_t>;

// 2.2.2: the path of every retrieval request (the HTTP POST's target).
constexpr const char *retrieval_path = "/116B50EB-ECE2-41ac-8429-9F9E963361B7/";

constexpr std::size_t header_size = 16;            // 2.2.3
constexpr std::size_t transport_header_size = 4;   // 2.2.2, before every response
constexpr std::size_t max_ranges = 512;            // a 32 MiB segment holds 512 blocks of 64 KiB
constexpr std::size_t max_block_bytes = 65536;     // [MS-PCCRC] 2.1: blocks are 64 KiB
constexpr std::size_t max_vrf_bytes = 1024;        // VrfBlock: unused by Windows; bounded
constexpr std::size_t max_message_bytes = 80 * 1024;

// 2.2.3 ProtVer: the minor version then the major, 16 bits each. Version 1.0 is the bytes
// 00 00 00 01; it is the only version this implementation speaks (2.0 adds the hosted
// cache's segment lists).
struct version {
    std::uint16_t major = 1;
    std::uint16_t minor = 0;
    std::uint32_t wire() const { return static_cast<std::uint32_t>(minor) << 16 | major; }
    static version from_wire(std::uint32_t v) { return {static_cast<std::uint16_t>(v), static_cast<std::uint16_t>(v >> 16)}; }
    bool operator==(const version &o) const { return major == o.major && minor == o.minor; }
    bool operator<(const version &o) const { return major != o.major ? major < o.major : minor < o.minor; }
};

enum class msg_type : std::uint32_t {
    nego_req = 0,
    nego_resp = 1,
    get_blk_list = 2,
    get_blks = 3,
    blk_list = 4,
    blk = 5,
    get_seg_list = 6,  // 2.0 only: parsed as unsupported
    seg_list = 7,
};

// 2.2.3 CryptoAlgoId: how MSG_BLK's block is encrypted (AES in CBC mode, the key the first
// bytes of the segment secret).
enum class crypto_algo : std::uint32_t { none = 0, aes_128 = 1, aes_192 = 2, aes_256 = 3 };

// 2.2.1 BLOCK_RANGE: `count` blocks from `index`, within one segment.
struct block_range {
    std::uint32_t index = 0;
    std::uint32_t count = 0;
    bool operator==(const block_range &o) const { return index == o.index && count == o.count; }
};

struct nego_req {  // 2.2.4.1
    version min_version, max_version;
};
struct nego_resp {  // 2.2.5.1
    version min_version, max_version;
};
struct get_blk_list {  // 2.2.4.2: which of these blocks do you hold?
    bytes segment_id;
    std::vector<block_range> needed;
};
struct blk_list {  // 2.2.5.2: these; NextBlockIndex says where a further list would start
    bytes segment_id;
    std::vector<block_range> ranges;
    std::uint32_t next_block_index = 0;
};
struct get_blks {  // 2.2.4.3: one block per request (3.1.4.3)
    bytes segment_id;
    std::vector<block_range> ranges;
    bytes vrf;  // DataForVrfBlock
};
struct blk {  // 2.2.5.3: an empty block means "not held"
    bytes segment_id;
    std::uint32_t block_index = 0;
    std::uint32_t next_block_index = 0;
    bytes block;  // encrypted as the header's algorithm says
    bytes vrf;
    bytes iv;  // the cipher's IV: 16 bytes for AES, empty for none
};

using body = std::variant<nego_req, nego_resp, get_blk_list, blk_list, get_blks, blk>;

struct message {
    version protocol;  // ProtVer as sent: the version the sender speaks
    crypto_algo algo = crypto_algo::none;
    body content;
    msg_type type() const;
};

// A parse that failed says why in `error`, for the log and the tests; `unsupported_version`
// marks a well-formed request in a version this side does not speak, which 3.2.5 answers
// with MSG_NEGO_RESP rather than dropping.
struct parsed {
    std::optional<message> msg;
    std::string error;
    bool unsupported_version = false;
};

// The message as it goes on the wire: header and body. A response also needs
// with_transport_header before it is sent.
bytes build(const message &m);
// Prefixes the 2.2.2 transport header (the message's length).
bytes with_transport_header(const bytes &message_bytes);

// A request as a server reads an HTTP POST body: NEGO_REQ, GETBLKLIST or GETBLKS.
parsed parse_request(const std::uint8_t *data, std::size_t size);
// A response as a client reads an HTTP response body, transport header first:
// NEGO_RESP, BLKLIST or BLK.
parsed parse_response(const std::uint8_t *data, std::size_t size);

// The block as MSG_BLK carries it: AES-CBC under the first 16, 24 or 32 bytes of the
// segment secret ([MS-PCCRC] Kp), with `iv`; a block that is not a whole number of cipher
// blocks (a content's last) is zero-padded to one. `none` returns the block as it is.
// Returns nothing if the secret is shorter than the key or the IV is not 16 bytes.
std::optional<bytes> encrypt_block(crypto_algo algo, const bytes &segment_secret, const bytes &iv, const bytes &block);
// The inverse: the first `block_size` bytes of the decrypted data. Returns nothing unless
// the ciphertext is a whole number of cipher blocks covering block_size with at most one
// cipher block more (a sender that pads a whole block). The caller verifies the block
// against its hash: CBC has no integrity of its own.
std::optional<bytes> decrypt_block(crypto_algo algo, const bytes &segment_secret, const bytes &iv, const bytes &ciphertext,
                                   std::size_t block_size);

}  // namespace pd_branchcache::pccrr
