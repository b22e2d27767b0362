#include "net/secure_channel.h"

#include "crypto/hash.h"

#include <cstring>
#include <optional>

namespace pd::net {

namespace {

const std::uint8_t magic[4] = {'P', 'D', 'S', 'C'};
constexpr std::uint8_t protocol_version = 1;
const char transcript_label[] = "peerdist secure channel v1";
constexpr std::uint8_t flag_keyless = 1;  // HELLO flags: the client holds no fleet key
// What a keyless channel derives its keys from in place of the fleet key: public, so such
// a channel proves nothing until an identity is proven inside it.
const char keyless_label[] = "peerdist secure channel v1 keyless";
// The cipher field in the last 8 bytes of a HELLO nonce: "PDCS", then a u32 cipher set (a
// client's offer, a server's one-bit choice). A 0.4 peer's nonce is random: it carries the
// marker by chance once in 2^32 HELLOs, and such a connection fails (at the HELLO or at its
// first record) and is dialled again.
const std::uint8_t cipher_marker[4] = {'P', 'D', 'C', 'S'};
constexpr std::size_t nonce_offset = 40, cipher_field_offset = 64;

// The cipher set a HELLO's nonce carries, or nullopt for a 0.4 peer's.
std::optional<cipher_set> cipher_field(const std::uint8_t *hello) {
    if (std::memcmp(hello + cipher_field_offset, cipher_marker, 4) != 0) return std::nullopt;
    cipher_set v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<cipher_set>(hello[cipher_field_offset + 4 + i]) << (8 * i);
    return v;
}

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

handshake::handshake(role r, const std::uint8_t *fleet_key, keyless policy, cipher_set ciphers)
    : role_(r), policy_(policy), ciphers_(ciphers & all_ciphers) {
    crypto::ensure_initialised();
    if (fleet_key) {
        std::memcpy(fleet_key_.data(), fleet_key, 32);
    } else {
        if (r == role::server) fail(PD_E_MISUSE, PD_CATEGORY_NET, "secure channel: a server needs the fleet key");
        keyless_ = true;
        fleet_key_ = crypto::sha256(keyless_label, sizeof keyless_label - 1);
    }
    crypto_box_keypair(eph_pk_.data(), eph_sk_.data());
    if (r == role::client) make_hello(ciphers_, ciphers_ != 0);
}

// Magic, version, flags, reserved, ephemeral key, then a nonce: 24 random bytes and the
// cipher field, or 32 random bytes as a 0.4 peer sends.
void handshake::make_hello(cipher_set field, bool with_field) {
    hello_.assign(magic, magic + 4);
    hello_.push_back(protocol_version);
    hello_.push_back(role_ == role::client && keyless_ ? flag_keyless : 0);  // flags: only a client's
    hello_.push_back(0);
    hello_.push_back(0);  // reserved
    hello_.insert(hello_.end(), eph_pk_.begin(), eph_pk_.end());
    hello_.resize(hello_size);
    randombytes_buf(hello_.data() + nonce_offset, hello_size - nonce_offset);
    if (!with_field) return;
    std::memcpy(hello_.data() + cipher_field_offset, cipher_marker, 4);
    for (int i = 0; i < 4; ++i) hello_[cipher_field_offset + 4 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(field >> (8 * i));
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
    }
    // The cipher: a server picks from the client's offer (AES-256-GCM when both run it) and
    // says so; a client takes the server's choice, which must be one it offered.
    auto field = cipher_field(peer);
    if (role_ == role::server) {
        bool offered = field && ciphers_;
        cipher_set common = offered ? *field & ciphers_ : 0;
        if (offered && !common)
            fail(PD_E_VERSION, PD_CATEGORY_NET, "secure channel: the peer offers no cipher this side runs");
        cipher_ = (common & bit(cipher::aes256gcm)) ? cipher::aes256gcm : cipher::xchacha20poly1305;
        make_hello(bit(cipher_), offered);
    } else if (field && ciphers_) {
        if (*field != bit(cipher::xchacha20poly1305) && *field != bit(cipher::aes256gcm))
            fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: the server chose no single cipher");
        if (!(*field & ciphers_)) fail(PD_E_INVALID, PD_CATEGORY_NET, "secure channel: the server chose a cipher this side did not offer");
        cipher_ = static_cast<cipher>(*field);
    }
    std::uint8_t shared[32];
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
    bytes next = client_side ? bytes{} : hello_;
    next.insert(next.end(), mine.begin(), mine.end());
    return next;
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

blocking_channel::blocking_channel(platform::native_socket socket, role r, const std::uint8_t *fleet_key, cipher_set ciphers)
    : socket_(socket) {
    handshake hs(r, fleet_key, keyless::refused, ciphers);
    if (r == role::client) write_all(hs.hello().data(), hello_size);
    std::uint8_t peer_hello[hello_size];
    read_exact(peer_hello, sizeof peer_hello);
    // Both FINISH messages are sent before either is checked, so both sides can name a
    // key mismatch; neither proves anything about the key to someone without it.
    auto next = hs.on_peer_hello(peer_hello, sizeof peer_hello);
    write_all(next.data(), next.size());
    std::uint8_t peer_finish[finish_size];
    read_exact(peer_finish, sizeof peer_finish);
    hs.on_peer_finish(peer_finish, sizeof peer_finish);
    transcript_ = hs.transcript();
    auto keys = hs.keys();
    auto header = sealer_.start(hs.record_cipher(), keys.send);
    write_all(header.data(), header.size());
    std::uint8_t peer_header[max_stream_header];
    read_exact(peer_header, stream_header_size(hs.record_cipher()));
    opener_.start(hs.record_cipher(), keys.receive, peer_header);
}

void blocking_channel::send(const bytes &plaintext) {
    auto rec = sealer_.seal(plaintext.data(), plaintext.size());
    write_all(rec.data(), rec.size());
}

bytes blocking_channel::receive() {
    std::uint8_t prefix[4];
    read_exact(prefix, 4);
    bytes ct(opener_.record_length(prefix));
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
