#include "net/secure_channel.h"

#include "crypto/hash.h"

#include <cstring>

namespace pd::net {

namespace {

const std::uint8_t magic[4] = {'P', 'D', 'S', 'C'};
constexpr std::uint8_t protocol_version = 1;
const char transcript_label[] = "peerdist secure channel v1";
constexpr std::uint8_t flag_keyless = 1;  // HELLO flags: the client holds no fleet key
// What a keyless channel derives its keys from in place of the fleet key: public, so such
// a channel proves nothing until an identity is proven inside it.
const char keyless_label[] = "peerdist secure channel v1 keyless";

std::array<std::uint8_t, 32> keyed_hash(const std::uint8_t key[32], const std::string &label,
                                        std::initializer_list<std::pair<const std::uint8_t *, std::size_t>> parts) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, 32, 32);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char *>(label.data()), label.size());
    for (auto &[p, n] : parts) crypto_generichash_update(&st, p, n);
    std::array<std::uint8_t, 32> out{};
    crypto_generichash_final(&st, out.data(), out.size());
    return out;
}

}  // namespace

handshake::handshake(role r, const std::uint8_t *fleet_key, keyless policy) : role_(r), policy_(policy) {
    crypto::ensure_initialised();
    if (fleet_key) {
        std::memcpy(fleet_key_.data(), fleet_key, 32);
    } else {
        if (r == role::server) fail(PD_E_MISUSE, PD_CATEGORY_NET, "secure channel: a server needs the fleet key");
        keyless_ = true;
        fleet_key_ = crypto::sha256(keyless_label, sizeof keyless_label - 1);
    }
    crypto_box_keypair(eph_pk_.data(), eph_sk_.data());
    hello_.assign(magic, magic + 4);
    hello_.push_back(protocol_version);
    hello_.push_back(keyless_ ? flag_keyless : 0);  // flags
    hello_.push_back(0);
    hello_.push_back(0);  // reserved
    hello_.insert(hello_.end(), eph_pk_.begin(), eph_pk_.end());
    std::uint8_t nonce[32];
    randombytes_buf(nonce, sizeof nonce);
    hello_.insert(hello_.end(), nonce, nonce + 32);
}

handshake::~handshake() {
    sodium_memzero(eph_sk_.data(), eph_sk_.size());
    sodium_memzero(fleet_key_.data(), fleet_key_.size());
}

bytes handshake::on_peer_hello(const std::uint8_t *peer, std::size_t len) {
    if (len != hello_size || std::memcmp(peer, magic, 4) != 0)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: peer did not send a peerdist HELLO");
    if (peer[4] != protocol_version)
        fail(PD_E_VERSION, PD_CATEGORY_NET,
             "secure channel: peer speaks version " + std::to_string(peer[4]) + ", this side speaks 1");
    // Only a client may be keyless, and only a server that admits it takes its word.
    std::uint8_t allowed_flags = role_ == role::server ? flag_keyless : 0;
    if ((peer[5] & ~allowed_flags) != 0 || peer[6] != 0 || peer[7] != 0)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: peer sent unknown HELLO flags");
    if (role_ == role::server && (peer[5] & flag_keyless)) {
        if (policy_ == keyless::refused)
            fail(PD_E_AUTH, PD_CATEGORY_NET, "secure channel: this server admits fleet members only, and the client holds no fleet key");
        keyless_ = true;
        fleet_key_ = crypto::sha256(keyless_label, sizeof keyless_label - 1);
    }    std::uint8_t shared[32];
    if (crypto_scalarmult(shared, eph_sk_.data(), peer + 8) != 0)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: peer sent a degenerate key");
    // The transcript orders the two HELLOs client first, whoever computes it.
    const std::uint8_t *client = role_ == role::client ? hello_.data() : peer;
    const std::uint8_t *server = role_ == role::client ? peer : hello_.data();
    auto th = crypto::sha256(transcript_label, sizeof transcript_label - 1);
    bytes t(th.begin(), th.end());
    t.insert(t.end(), client, client + hello_size);
    t.insert(t.end(), server, server + hello_size);
    transcript_ = crypto::sha256(t.data(), t.size());
    // Every key depends on the fleet key: with another fleet key nothing verifies.
    auto c2s = keyed_hash(fleet_key_.data(), "c2s", {{shared, 32}, {transcript_.data(), 32}});
    auto s2c = keyed_hash(fleet_key_.data(), "s2c", {{shared, 32}, {transcript_.data(), 32}});
    auto cfin = keyed_hash(fleet_key_.data(), "client finished", {{shared, 32}, {transcript_.data(), 32}});
    auto sfin = keyed_hash(fleet_key_.data(), "server finished", {{shared, 32}, {transcript_.data(), 32}});
    sodium_memzero(shared, sizeof shared);
    bool client_side = role_ == role::client;
    keys_.send = client_side ? c2s : s2c;
    keys_.receive = client_side ? s2c : c2s;
    peer_finish_key_ = client_side ? sfin : cfin;
    auto mine = keyed_hash((client_side ? cfin : sfin).data(), "finish", {{transcript_.data(), 32}});
    return bytes(mine.begin(), mine.end());
}

void handshake::on_peer_finish(const std::uint8_t *mac, std::size_t len) {
    auto expect = keyed_hash(peer_finish_key_.data(), "finish", {{transcript_.data(), 32}});
    if (len != finish_size || sodium_memcmp(mac, expect.data(), 32) != 0)
        fail(PD_E_AUTH, PD_CATEGORY_NET, "shared key mismatch: the peer does not hold this fleet's key");
    verified_ = true;
}

channel_keys handshake::keys() const {
    if (!verified_) fail(PD_E_MISUSE, PD_CATEGORY_NET, "secure channel: keys requested before the peer was verified");
    return keys_;
}

bytes record_sealer::start(const std::array<std::uint8_t, 32> &key) {
    bytes header(stream_header_size);
    crypto_secretstream_xchacha20poly1305_init_push(&state_, header.data(), key.data());
    return header;
}

bytes record_sealer::seal(const std::uint8_t *plaintext, std::size_t len) {
    if (len > max_record_plaintext) fail(PD_E_MISUSE, PD_CATEGORY_NET, "record too large to send");
    bytes out(4 + len + record_overhead);
    std::uint32_t clen = static_cast<std::uint32_t>(len + record_overhead);
    for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(clen >> (8 * i));
    crypto_secretstream_xchacha20poly1305_push(&state_, out.data() + 4, nullptr, plaintext, len, nullptr, 0, 0);
    return out;
}

void record_opener::start(const std::array<std::uint8_t, 32> &key, const std::uint8_t header[stream_header_size]) {
    if (crypto_secretstream_xchacha20poly1305_init_pull(&state_, header, key.data()) != 0)
        fail(PD_E_AUTH, PD_CATEGORY_NET, "secure channel: invalid stream header");
}

std::size_t record_opener::record_length(const std::uint8_t prefix[4]) {
    std::uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= static_cast<std::uint32_t>(prefix[i]) << (8 * i);
    if (n < record_overhead || n > max_record_plaintext + record_overhead)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: record length " + std::to_string(n) + " is out of bounds");
    return n;
}

bytes record_opener::open(const std::uint8_t *ciphertext, std::size_t len) {
    if (len < record_overhead || len > max_record_plaintext + record_overhead)
        fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: record length is out of bounds");
    bytes out(len - record_overhead);
    unsigned long long n = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&state_, out.data(), &n, &tag, ciphertext, len, nullptr, 0) != 0)
        fail(PD_E_AUTH, PD_CATEGORY_NET, "secure channel: a record failed authentication (tampered or out of order)");
    out.resize(static_cast<std::size_t>(n));
    return out;
}

blocking_channel::blocking_channel(platform::native_socket socket, role r, const std::uint8_t *fleet_key) : socket_(socket) {
    handshake hs(r, fleet_key);
    write_all(hs.hello().data(), hello_size);
    std::uint8_t peer_hello[hello_size];
    read_exact(peer_hello, sizeof peer_hello);
    auto finish = hs.on_peer_hello(peer_hello, sizeof peer_hello);
    // Both FINISH messages are sent before either is checked, so both sides can name a
    // key mismatch; neither proves anything about the key to someone without it.
    write_all(finish.data(), finish.size());
    std::uint8_t peer_finish[finish_size];
    read_exact(peer_finish, sizeof peer_finish);
    hs.on_peer_finish(peer_finish, sizeof peer_finish);
    transcript_ = hs.transcript();
    auto keys = hs.keys();
    auto header = sealer_.start(keys.send);
    write_all(header.data(), header.size());
    std::uint8_t peer_header[stream_header_size];
    read_exact(peer_header, sizeof peer_header);
    opener_.start(keys.receive, peer_header);
}

void blocking_channel::send(const bytes &plaintext) {
    auto rec = sealer_.seal(plaintext.data(), plaintext.size());
    write_all(rec.data(), rec.size());
}

bytes blocking_channel::receive() {
    std::uint8_t prefix[4];
    read_exact(prefix, 4);
    bytes ct(record_opener::record_length(prefix));
    read_exact(ct.data(), ct.size());
    return opener_.open(ct.data(), ct.size());
}

void blocking_channel::write_all(const std::uint8_t *p, std::size_t n) { platform::send_all(socket_, p, n, "secure channel"); }

void blocking_channel::read_exact(std::uint8_t *p, std::size_t n) {
    while (n) {
        std::size_t k = platform::receive_some(socket_, p, n, "secure channel");
        if (k == 0) fail(PD_E_IO, PD_CATEGORY_NET, "secure channel: the peer closed the connection");
        p += k;
        n -= k;
    }
}

}  // namespace pd::net
