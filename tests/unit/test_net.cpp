// The secure channel and the peer wire codec.
#include "helpers.h"

#include "crypto/hash.h"
#include "net/secure_channel.h"
#include "peer/wire.h"
#include "util/bytes.h"

#include "platform/socket.h"

#include <boost/asio/ip/tcp.hpp>

#include <future>

using namespace pd::net;
namespace wire = pd::peer::wire;

namespace {

// A connected loopback TCP pair for the blocking channel: fd[0] the client, fd[1] the
// server's end (owned by its Asio socket).
struct socket_pair {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket server{io};
    pd::platform::native_socket fd[2];
    socket_pair() {
        using tcp = boost::asio::ip::tcp;
        tcp::acceptor acceptor(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
        fd[0] = pd::platform::connect_tcp("127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()), 10000);
        acceptor.accept(server);
        fd[1] = static_cast<pd::platform::native_socket>(server.native_handle());
    }
    ~socket_pair() { pd::platform::close_socket(fd[0]); }
};

std::array<std::uint8_t, 32> key_of(std::uint8_t v) {
    std::array<std::uint8_t, 32> k;
    k.fill(v);
    return k;
}

int code_of(const std::function<void()> &fn, std::string *message = nullptr) {
    try {
        fn();
        return PD_OK;
    } catch (const pd::error &e) {
        if (message) *message = e.what();
        return e.code();
    }
}

}  // namespace

TEST(secure_channel, same_key_exchanges_records_both_ways) {
    socket_pair sp;
    auto k = key_of(7);
    auto server = std::async(std::launch::async, [&] {
        blocking_channel ch(sp.fd[1], role::server, k.data());
        auto got = ch.receive();
        got.push_back('!');
        ch.send(got);
        return got;
    });
    blocking_channel ch(sp.fd[0], role::client, k.data());
    bytes msg = {'h', 'e', 'l', 'l', 'o'};
    ch.send(msg);
    auto reply = ch.receive();
    EXPECT_EQ(std::string(reply.begin(), reply.end()), "hello!");
    server.get();
}

TEST(secure_channel, full_size_records) {
    socket_pair sp;
    auto k = key_of(8);
    bytes big(max_record_plaintext, 0x5a);
    auto server = std::async(std::launch::async, [&] {
        blocking_channel ch(sp.fd[1], role::server, k.data());
        return ch.receive();
    });
    blocking_channel ch(sp.fd[0], role::client, k.data());
    ch.send(big);
    EXPECT_EQ(server.get(), big);
    bytes too_big(max_record_plaintext + 1);
    EXPECT_EQ(code_of([&] { ch.send(too_big); }), PD_E_MISUSE);
}

TEST(secure_channel, wrong_fleet_key_fails_on_both_sides_with_a_clear_error) {
    socket_pair sp;
    auto a = key_of(1), b = key_of(2);
    std::string server_msg, client_msg;
    auto server = std::async(std::launch::async, [&] {
        return code_of([&] {
            blocking_channel ch(sp.fd[1], role::server, b.data());
            ch.receive();  // never reached: no application byte before authentication
        }, &server_msg);
    });
    int client = code_of([&] { blocking_channel ch(sp.fd[0], role::client, a.data()); }, &client_msg);
    EXPECT_EQ(client, PD_E_AUTH);
    EXPECT_EQ(server.get(), PD_E_AUTH);
    EXPECT_NE(client_msg.find("shared key mismatch"), std::string::npos) << client_msg;
    EXPECT_NE(server_msg.find("shared key mismatch"), std::string::npos) << server_msg;
}

namespace {

// A client and a server handshake run against each other in memory, in the order the
// channels use: the client's HELLO, the server's HELLO + FINISH, the client's FINISH.
struct hellos {
    bytes server_hello, server_finish, client_finish;
};

hellos exchange_hellos(handshake &c, handshake &s, const bytes *client_hello = nullptr) {
    auto answer = s.on_peer_hello((client_hello ? *client_hello : c.hello()).data(), hello_size);
    EXPECT_EQ(answer.size(), hello_size + finish_size);
    hellos h;
    h.server_hello.assign(answer.begin(), answer.begin() + hello_size);
    h.server_finish.assign(answer.begin() + hello_size, answer.end());
    h.client_finish = c.on_peer_hello(h.server_hello.data(), hello_size);
    return h;
}

void finish(handshake &c, handshake &s, const hellos &h) {
    c.on_peer_finish(h.server_finish.data(), h.server_finish.size());
    s.on_peer_finish(h.client_finish.data(), h.client_finish.size());
}

constexpr cipher_set chacha_only = bit(cipher::xchacha20poly1305);

}  // namespace

TEST(secure_channel, handshake_state_machines_and_version_check) {
    auto k = key_of(3);
    handshake c(role::client, k.data()), s(role::server, k.data());
    ASSERT_EQ(c.hello().size(), hello_size);
    EXPECT_TRUE(s.hello().empty());  // a server answers the client's offer
    EXPECT_EQ(code_of([&] { c.keys(); }), PD_E_MISUSE);
    auto h = exchange_hellos(c, s);
    EXPECT_NE(h.client_finish, h.server_finish);  // direction-bound proofs: a reflected FINISH does not verify
    EXPECT_EQ(code_of([&] { c.on_peer_finish(h.client_finish.data(), h.client_finish.size()); }), PD_E_AUTH);
    finish(c, s, h);
    EXPECT_EQ(c.keys().send, s.keys().receive);
    EXPECT_EQ(c.keys().receive, s.keys().send);
    EXPECT_NE(c.keys().send, c.keys().receive);
    EXPECT_EQ(c.record_cipher(), s.record_cipher());

    handshake other(role::client, k.data());
    auto newer = h.server_hello;
    newer[4] = 2;
    EXPECT_EQ(code_of([&] { other.on_peer_hello(newer.data(), newer.size()); }), PD_E_VERSION);
    auto junk = h.server_hello;
    junk[0] = 'X';
    EXPECT_EQ(code_of([&] { other.on_peer_hello(junk.data(), junk.size()); }), PD_E_INVALID);
    EXPECT_EQ(code_of([&] { other.on_peer_hello(junk.data(), 10); }), PD_E_INVALID);
}

// The offer and the choice as docs/protocol.md §1 lays them out: the last 8 bytes of the
// HELLO nonce, "PDCS" and a u32 cipher set.
TEST(secure_channel, ciphers_are_negotiated_in_the_hello_nonce_and_0_4_peers_get_xchacha) {
    auto k = key_of(4);
    auto field = [](const bytes &hello) { return bytes(hello.begin() + 64, hello.end()); };
    handshake c(role::client, k.data(), keyless::refused, all_ciphers), s(role::server, k.data(), keyless::refused, all_ciphers);
    EXPECT_EQ(field(c.hello()), (bytes{'P', 'D', 'C', 'S', 3, 0, 0, 0}));
    auto h = exchange_hellos(c, s);
    EXPECT_EQ(field(h.server_hello), (bytes{'P', 'D', 'C', 'S', 2, 0, 0, 0}));
    finish(c, s, h);
    EXPECT_EQ(c.record_cipher(), cipher::aes256gcm);
    EXPECT_EQ(s.record_cipher(), cipher::aes256gcm);

    // One side without AES instructions: XChaCha20-Poly1305, whichever side it is.
    for (auto [client_has, server_has] : {std::pair{chacha_only, all_ciphers}, std::pair{all_ciphers, chacha_only}}) {
        handshake c2(role::client, k.data(), keyless::refused, client_has), s2(role::server, k.data(), keyless::refused, server_has);
        auto h2 = exchange_hellos(c2, s2);
        finish(c2, s2, h2);
        EXPECT_EQ(c2.record_cipher(), cipher::xchacha20poly1305);
        EXPECT_EQ(s2.record_cipher(), cipher::xchacha20poly1305);
    }

    // A 0.4 client (no offer: a random nonce) meets a new server, a new client a 0.4 server
    // (which answers without reading the offer, and never carries a choice): both settle on
    // XChaCha20-Poly1305 and the proofs verify.
    handshake old_client(role::client, k.data(), keyless::refused, 0), s3(role::server, k.data());
    auto h3 = exchange_hellos(old_client, s3);
    EXPECT_NE(bytes(h3.server_hello.begin() + 64, h3.server_hello.begin() + 68), (bytes{'P', 'D', 'C', 'S'}));
    finish(old_client, s3, h3);
    EXPECT_EQ(s3.record_cipher(), cipher::xchacha20poly1305);
    handshake c4(role::client, k.data()), old_server(role::server, k.data(), keyless::refused, 0);
    auto h4 = exchange_hellos(c4, old_server);
    finish(c4, old_server, h4);
    EXPECT_EQ(c4.record_cipher(), cipher::xchacha20poly1305);
    EXPECT_EQ(old_server.record_cipher(), cipher::xchacha20poly1305);
}

TEST(secure_channel, a_man_in_the_middle_who_changes_the_offer_or_the_choice_breaks_both_proofs) {
    auto k = key_of(5);
    // Downgrade: the offer cut to XChaCha only on its way to the server.
    handshake c(role::client, k.data(), keyless::refused, all_ciphers), s(role::server, k.data(), keyless::refused, all_ciphers);
    auto cut = c.hello();
    cut[68] = 1;
    auto h = exchange_hellos(c, s, &cut);
    EXPECT_EQ(code_of([&] { c.on_peer_finish(h.server_finish.data(), h.server_finish.size()); }), PD_E_AUTH);
    EXPECT_EQ(code_of([&] { s.on_peer_finish(h.client_finish.data(), h.client_finish.size()); }), PD_E_AUTH);

    // The server's choice rewritten to the other cipher: the client takes it, the proofs fail.
    handshake c2(role::client, k.data(), keyless::refused, all_ciphers), s2(role::server, k.data(), keyless::refused, all_ciphers);
    auto answer = s2.on_peer_hello(c2.hello().data(), hello_size);
    answer[68] = 1;
    auto cf = c2.on_peer_hello(answer.data(), hello_size);
    EXPECT_EQ(code_of([&] { c2.on_peer_finish(answer.data() + hello_size, finish_size); }), PD_E_AUTH);
    EXPECT_EQ(code_of([&] { s2.on_peer_finish(cf.data(), cf.size()); }), PD_E_AUTH);

    // A choice that is not one cipher, or one the client did not offer, is malformed.
    for (int choice : {0, 3, 4, 2}) {
        handshake c3(role::client, k.data(), keyless::refused, chacha_only), s3(role::server, k.data(), keyless::refused, all_ciphers);
        auto a = s3.on_peer_hello(c3.hello().data(), hello_size);
        a[68] = static_cast<std::uint8_t>(choice);
        EXPECT_EQ(code_of([&] { c3.on_peer_hello(a.data(), hello_size); }), PD_E_INVALID) << int(choice);
    }
    // An offer of nothing this server runs.
    handshake c5(role::client, k.data(), keyless::refused, all_ciphers), s5(role::server, k.data());
    auto none = c5.hello();
    none[68] = 0x80;
    EXPECT_EQ(code_of([&] { s5.on_peer_hello(none.data(), hello_size); }), PD_E_VERSION);
}

TEST(secure_channel, a_keyless_client_is_admitted_only_where_allowed_and_proves_nothing) {
    auto k = key_of(3);
    // A server that admits keyless clients (the coordinator) completes the handshake, and
    // knows the client proved no fleet key; both sides share the transcript an identity
    // proof signs.
    handshake c(role::client, nullptr), s(role::server, k.data(), keyless::admitted);
    EXPECT_EQ(c.hello()[5], 1);  // the flag is in the transcript: flipping it breaks both FINISHes
    finish(c, s, exchange_hellos(c, s));
    EXPECT_FALSE(s.fleet_key_proven());
    EXPECT_FALSE(c.fleet_key_proven());
    EXPECT_EQ(c.transcript(), s.transcript());
    EXPECT_EQ(c.keys().send, s.keys().receive);

    // A keyed client meeting the same server proves the key as before.
    handshake keyed(role::client, k.data()), s2(role::server, k.data(), keyless::admitted);
    finish(keyed, s2, exchange_hellos(keyed, s2));
    EXPECT_TRUE(s2.fleet_key_proven());

    // A peer server refuses keyless clients; a man in the middle that clears the flag makes
    // the proofs disagree; unknown flags and a keyless server are malformed.
    handshake c3(role::client, nullptr), peer_server(role::server, k.data());
    std::string why;
    EXPECT_EQ(code_of([&] { peer_server.on_peer_hello(c3.hello().data(), hello_size); }, &why), PD_E_AUTH);
    EXPECT_NE(why.find("admits fleet members only"), std::string::npos) << why;
    handshake c4(role::client, nullptr), s4(role::server, k.data(), keyless::admitted);
    auto stripped = c4.hello();
    stripped[5] = 0;
    auto h4 = exchange_hellos(c4, s4, &stripped);
    EXPECT_EQ(code_of([&] { s4.on_peer_finish(h4.client_finish.data(), h4.client_finish.size()); }), PD_E_AUTH);
    auto odd = c4.hello();
    odd[5] = 2;
    handshake s5(role::server, k.data(), keyless::admitted);
    EXPECT_EQ(code_of([&] { s5.on_peer_hello(odd.data(), hello_size); }), PD_E_INVALID);
    handshake c6(role::client, k.data()), c7(role::client, k.data()), s6(role::server, k.data());
    auto flagged_server = exchange_hellos(c7, s6).server_hello;
    flagged_server[5] = 1;
    EXPECT_EQ(code_of([&] { c6.on_peer_hello(flagged_server.data(), hello_size); }), PD_E_INVALID);
    EXPECT_EQ(code_of([] { handshake h(role::server, nullptr); }), PD_E_MISUSE);
}

TEST(secure_channel, tampered_replayed_and_oversized_records_are_refused_under_either_cipher) {
    std::array<std::uint8_t, 32> key = key_of(9);
    for (auto c : {cipher::xchacha20poly1305, cipher::aes256gcm}) {
        SCOPED_TRACE(cipher_name(c));
        record_sealer sealer;
        auto header = sealer.start(c, key);
        EXPECT_EQ(header.size(), stream_header_size(c));
        bytes one = {1, 2, 3}, two = {4, 5, 6};
        auto r1 = sealer.seal(one.data(), one.size());
        auto r2 = sealer.seal(two.data(), two.size());
        EXPECT_EQ(r1.size(), 4 + one.size() + record_overhead(c));
        {
            record_opener o;
            o.start(c, key, header.data());
            EXPECT_EQ(o.record_length(r1.data()), r1.size() - 4);
            EXPECT_EQ(o.open(r1.data() + 4, r1.size() - 4), one);
            EXPECT_EQ(code_of([&] { o.open(r1.data() + 4, r1.size() - 4); }), PD_E_AUTH);  // replay
        }
        {
            record_opener o;
            o.start(c, key, header.data());
            EXPECT_EQ(code_of([&] { o.open(r2.data() + 4, r2.size() - 4); }), PD_E_AUTH);  // reordered
        }
        {
            record_opener o;
            o.start(c, key, header.data());
            auto bad = r1;
            bad[6] ^= 1;
            EXPECT_EQ(code_of([&] { o.open(bad.data() + 4, bad.size() - 4); }), PD_E_AUTH);  // tampered
            bytes body(r1.begin() + 4, r1.end());
            o.start(c, key, header.data());
            o.open_in_place(body);
            EXPECT_EQ(body, one);
        }
        {
            record_opener o;
            std::uint8_t some_header[max_stream_header] = {};
            o.start(c == cipher::aes256gcm ? cipher::xchacha20poly1305 : cipher::aes256gcm, key, some_header);
            EXPECT_NE(code_of([&] { o.open(r1.data() + 4, r1.size() - 4); }), PD_OK);  // the other cipher
        }
        record_opener o;
        o.start(c, key, header.data());
        std::uint8_t huge[4] = {0xff, 0xff, 0xff, 0x7f};
        EXPECT_EQ(code_of([&] { o.record_length(huge); }), PD_E_INVALID);
        std::uint8_t tiny[4] = {1, 0, 0, 0};
        EXPECT_EQ(code_of([&] { o.record_length(tiny); }), PD_E_INVALID);
    }
}

// AES-256-GCM moves to a new key every 2^16 records on both sides at once.
TEST(secure_channel, aes_gcm_key_switch_keeps_both_sides_in_step) {
    auto key = key_of(10);
    record_sealer sealer;
    record_opener opener;
    sealer.start(cipher::aes256gcm, key);
    opener.start(cipher::aes256gcm, key, nullptr);
    std::uint8_t b = 0;
    bytes first;
    for (std::uint32_t i = 0; i < (1u << 16) + 3; ++i) {
        b = static_cast<std::uint8_t>(i);
        auto r = sealer.seal(&b, 1);
        if (i == 0) first = r;
        ASSERT_EQ(opener.open(r.data() + 4, r.size() - 4), bytes{b}) << i;
    }
    // Record 0 again, past the switch: neither the old key nor the record number fit.
    EXPECT_EQ(code_of([&] { opener.open(first.data() + 4, first.size() - 4); }), PD_E_AUTH);
}

TEST(wire, what_signatures_cover_is_label_zero_then_data_as_docs_protocol_says) {
    // The bytes are the protocol (docs/protocol.md §2, "HELLO"): pinned, so a refactoring
    // cannot change them on one side only.
    EXPECT_EQ(pd::crypto::labelled("ab", std::vector<std::uint8_t>{1, 2}.data(), 2), (std::vector<std::uint8_t>{'a', 'b', 0, 1, 2}));
    std::array<std::uint8_t, 32> transcript;
    transcript.fill(7);
    auto m = pd::peer::wire::hello_statement(true, transcript);
    std::string label = "peerdist peer hello v2";
    ASSERT_EQ(m.size(), label.size() + 1 + 1 + 32);
    EXPECT_EQ(std::string(m.begin(), m.begin() + label.size()), label);
    EXPECT_EQ(m[label.size()], 0);
    EXPECT_EQ(m[label.size() + 1], 'c');
    EXPECT_EQ(m.back(), 7);
    EXPECT_EQ(pd::peer::wire::hello_statement(false, transcript)[label.size() + 1], 's');
}

TEST(wire, every_message_round_trips) {
    pd::content::hash h{};
    h[0] = 0xab;
    std::vector<wire::message> all = {
        wire::hello{1, 3, 32, 0x1122334455667788ull},
        wire::have{h, 11, wire::have_fetching, {0xff, 0x07}},
        wire::have{h, 0, 0, {}},  // found by the fuzzer: an empty bitmap once reached memcpy(NULL, p, 0)
        wire::have_delta{h, {1, 5, 9}},
        wire::request{7, h, 100, 16},
        wire::data{7, h, 100, bytes(65536, 0x42)},
        wire::data{7, h, 100, bytes(100, 0x42), true, 0xfedcba9876543210ull},  // TIMED_DATA
        wire::cancel{7},
        wire::reject{7, 3, "not held"},
        wire::ping{123},
        wire::pong{123, 456},
        wire::goodbye{0, "shutting down"},
        wire::request_part{7, h, 100, 16384, 16384},
        wire::data{7, h, 100, bytes(16384, 0x42), true, 99, true, 49152},  // PART
    };
    for (auto &m : all) {
        auto enc = wire::encode(m);
        auto dec = wire::decode(enc.data(), enc.size());
        EXPECT_EQ(dec.index(), m.index()) << wire::name(m);
        EXPECT_EQ(wire::encode(dec), enc) << wire::name(m);
        for (std::size_t cut = 0; cut < enc.size(); cut += std::max<std::size_t>(1, enc.size() / 50))
            EXPECT_EQ(code_of([&] { wire::decode(enc.data(), cut); }), PD_E_INVALID) << wire::name(m) << " cut " << cut;
        enc.push_back(0);
        EXPECT_EQ(code_of([&] { wire::decode(enc.data(), enc.size()); }), PD_E_INVALID) << wire::name(m) << " trailing";
    }
}

TEST(wire, timed_data_carries_the_sender_clock_and_is_a_type_of_its_own) {
    pd::content::hash h{};
    auto enc = wire::encode(wire::data{1, h, 2, bytes(10, 1), true, 12345});
    EXPECT_EQ(enc[0], 11);
    auto d = std::get<wire::data>(wire::decode(enc.data(), enc.size()));
    EXPECT_TRUE(d.timed);
    EXPECT_EQ(d.sent_us, 12345u);
    EXPECT_EQ(wire::encode(wire::data{1, h, 2, bytes(10, 1)})[0], 5);
}

TEST(wire, a_part_is_a_range_of_one_block_and_always_stamped) {
    pd::content::hash h{};
    auto enc = wire::encode(wire::data{1, h, 2, bytes(10, 1), true, 12345, true, 65526});
    EXPECT_EQ(enc[0], 13);
    auto d = std::get<wire::data>(wire::decode(enc.data(), enc.size()));
    EXPECT_TRUE(d.part && d.timed);
    EXPECT_EQ(d.offset, 65526u);
    EXPECT_EQ(d.sent_us, 12345u);
    EXPECT_STREQ(wire::name(d), "PART");
    EXPECT_STREQ(wire::name(wire::request_part{}), "REQUEST_PART");
    EXPECT_EQ(wire::encode(wire::request_part{1, h, 2, 0, 10})[0], 12);
}

TEST(wire, bounds_are_enforced) {
    pd::content::hash h{};
    auto refused = [&](const wire::message &m) {
        auto enc = wire::encode(m);
        std::string msg;
        int code = code_of([&] { wire::decode(enc.data(), enc.size()); }, &msg);
        return code == PD_E_INVALID ? msg : std::string("accepted");
    };
    EXPECT_NE(refused(wire::request{1, h, 0, 65}).find("1..64"), std::string::npos);
    EXPECT_NE(refused(wire::request{1, h, 0, 0}).find("1..64"), std::string::npos);
    EXPECT_NE(refused(wire::have{h, 9, 0, {0xff, 0xff}}).find("past the last block"), std::string::npos);
    EXPECT_NE(refused(wire::have{h, 8, 0x80, {0xff}}).find("unknown flags"), std::string::npos);
    EXPECT_NE(refused(wire::data{1, h, 0, bytes(200000, 1)}).find("DATA of 200000"), std::string::npos);
    EXPECT_NE(refused(wire::have_delta{h, {}}).find("HAVE_DELTA"), std::string::npos);
    EXPECT_NE(refused(wire::hello{1, 0, 0, 0}).find("max_request_blocks"), std::string::npos);
    // A part must lie inside a block of the largest size the wire carries: an offset near
    // 2^32 must not wrap the sum.
    EXPECT_NE(refused(wire::request_part{1, h, 0, 0, 0}).find("REQUEST_PART for bytes 0+0"), std::string::npos);
    EXPECT_NE(refused(wire::request_part{1, h, 0, 131072, 1}).find("within 131072"), std::string::npos);
    EXPECT_NE(refused(wire::request_part{1, h, 0, 0xffffffffu, 2}).find("within 131072"), std::string::npos);
    EXPECT_NE(refused(wire::request_part{1, h, wire::max_blocks, 0, 1}).find("block index"), std::string::npos);
    EXPECT_EQ(refused(wire::request_part{1, h, 0, 65536, 65536}), "accepted");
    EXPECT_NE(refused(wire::data{1, h, 0, bytes(2, 1), true, 0, true, 131071}).find("PART past the end"), std::string::npos);
    EXPECT_NE(refused(wire::data{1, h, 0, bytes(2, 1), true, 0, true, 0xffffffffu}).find("PART past the end"), std::string::npos);
    std::uint8_t unknown[] = {99};
    std::string msg;
    EXPECT_EQ(code_of([&] { wire::decode(unknown, 1); }, &msg), PD_E_INVALID);
    EXPECT_NE(msg.find("unknown message type 99"), std::string::npos);
    EXPECT_EQ(code_of([&] { wire::decode(unknown, 0); }), PD_E_INVALID);
    // A HAVE that claims 2^40 blocks never allocates: the bound is checked first.
    pd::byte_writer w;
    w.data().reserve(1 + 32 + 8);  // also keeps GCC 12 from a false -Wstringop-overread here
    w.u8(2);
    w.bytes(h.data(), 32);
    w.u64(1ull << 40);
    EXPECT_EQ(code_of([&] { wire::decode(w.data().data(), w.size()); }), PD_E_INVALID);
}

#include "net/async_channel.h"
#include "platform/socket_stamps.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include "util/clock.h"

#include <cstring>
#include <functional>
#include <thread>

namespace {

// Two async channels over a loopback TCP connection, client and server, sharing a key.
struct channel_pair {
    boost::asio::io_context io;
    std::shared_ptr<async_channel> client, server;

    explicit channel_pair(std::uint8_t key_byte) {
        using tcp = boost::asio::ip::tcp;
        tcp::acceptor acceptor(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
        tcp::socket a(io), b(io);
        a.connect(acceptor.local_endpoint());
        acceptor.accept(b);
        auto k = key_of(key_byte);
        client = std::make_shared<async_channel>(std::move(a), role::client, k.data());
        server = std::make_shared<async_channel>(std::move(b), role::server, k.data());
    }

    // Runs both handshakes; true when both succeeded within 5 s.
    bool handshake() {
        int ok = 0, done = 0;
        auto count = [&](const pd::error *e) { ok += e == nullptr; ++done; };
        client->handshake(count);
        server->handshake(count);
        while (done < 2 && io.run_one_for(std::chrono::seconds(5))) {
        }
        return ok == 2;
    }
};

}  // namespace

// A foreground channel reads as much as the socket holds and cuts records from it: whatever
// the slicing on the wire, every record comes out whole and in order, one per receive(),
// never from inside the receive() call; a bad length or a tampered record in the buffer
// ends the stream with the error, and a record delivered after close() is an error.
TEST(async_channel, records_are_cut_from_what_one_read_brings_whatever_the_slicing) {
    namespace asio = boost::asio;
    channel_pair pair(6);
    ASSERT_TRUE(pair.handshake());
    auto &io = pair.io;
    io.restart();
    std::vector<bytes> sent;
    bytes stream;
    for (std::size_t size : std::vector<std::size_t>{0, 1, 5, 65536 + 40, 3, max_record_plaintext, 700, 1, 65536, 65536, 2, 131072}) {
        bytes b(size);
        for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>(i * 13 + size);
        auto r = pair.server->sealer().seal(b.data(), b.size());
        stream.insert(stream.end(), r.begin(), r.end());
        sent.push_back(std::move(b));
    }
    // Slices of odd sizes, each flushed before the next: reads end mid-prefix and mid-body.
    std::thread writer([&] {
        std::size_t off = 0, slice = 1;
        while (off < stream.size()) {
            std::size_t n = std::min(stream.size() - off, slice);
            asio::write(pair.server->socket(), asio::buffer(stream.data() + off, n));
            off += n;
            slice = slice * 7 % 200003 + 3;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    });
    std::vector<bytes> got;
    bool inside = false, failed = false;
    std::function<void()> next = [&] {
        inside = true;
        pair.client->receive([&](const pd::error *e, bytes plain) {
            EXPECT_FALSE(inside) << "delivered from inside receive()";
            if (e) {
                failed = true;
                return;
            }
            got.push_back(std::move(plain));
            if (got.size() < sent.size()) next();
        });
        inside = false;
    };
    next();
    while (got.size() < sent.size() && !failed && io.run_one_for(std::chrono::seconds(5))) {
    }
    writer.join();
    ASSERT_FALSE(failed);
    ASSERT_EQ(got.size(), sent.size());
    for (std::size_t i = 0; i < sent.size(); ++i) EXPECT_EQ(got[i], sent[i]) << i;

    // Two records in one write, the second tampered: the first arrives, the second is PD_E_AUTH.
    bytes one = {1}, two = {2};
    auto r1 = pair.server->sealer().seal(one.data(), one.size());
    auto r2 = pair.server->sealer().seal(two.data(), two.size());
    r2.back() ^= 1;
    r1.insert(r1.end(), r2.begin(), r2.end());
    asio::write(pair.server->socket(), asio::buffer(r1));
    std::vector<int> codes;
    std::function<void()> read_two = [&] {
        pair.client->receive([&](const pd::error *e, bytes plain) {
            codes.push_back(e ? e->code() : PD_OK);
            if (!e) {
                EXPECT_EQ(plain, one);
                read_two();
            }
        });
    };
    read_two();
    io.restart();
    while (codes.size() < 2 && io.run_one_for(std::chrono::seconds(5))) {
    }
    EXPECT_EQ(codes, (std::vector<int>{PD_OK, PD_E_AUTH}));
}

TEST(async_channel, a_length_out_of_bounds_is_refused_and_close_ends_buffered_delivery) {
    namespace asio = boost::asio;
    {
        channel_pair pair(7);
        ASSERT_TRUE(pair.handshake());
        pair.io.restart();
        std::uint8_t huge[4] = {0xff, 0xff, 0xff, 0x7f};
        asio::write(pair.server->socket(), asio::buffer(huge));
        int code = -1;
        pair.client->receive([&](const pd::error *e, bytes) { code = e ? e->code() : PD_OK; });
        while (code == -1 && pair.io.run_one_for(std::chrono::seconds(5))) {
        }
        EXPECT_EQ(code, PD_E_INVALID);
    }
    channel_pair pair(8);
    ASSERT_TRUE(pair.handshake());
    pair.io.restart();
    bytes a = {1}, b = {2};
    auto r = pair.server->sealer().seal(a.data(), a.size());
    auto r2 = pair.server->sealer().seal(b.data(), b.size());
    r.insert(r.end(), r2.begin(), r2.end());
    asio::write(pair.server->socket(), asio::buffer(r));
    std::vector<int> codes;
    pair.client->receive([&](const pd::error *e, bytes) {
        codes.push_back(e ? e->code() : PD_OK);
        // The second record is in the buffer already; the owner closes before it is delivered.
        pair.client->receive([&](const pd::error *e2, bytes) { codes.push_back(e2 ? e2->code() : PD_OK); });
        pair.client->close();
    });
    while (codes.size() < 2 && pair.io.run_one_for(std::chrono::seconds(5))) {
    }
    EXPECT_EQ(codes, (std::vector<int>{PD_OK, PD_E_IO}));
}

TEST(async_channel, a_record_reports_its_body_as_it_arrives) {
    // The background class counts an answer out of its window as it drains: the channel says
    // how many bytes of a record's body each read brought, all but the part that completes it.
    namespace asio = boost::asio;
    channel_pair pair(4);
    ASSERT_TRUE(pair.handshake());
    auto &io = pair.io;
    auto &client = pair.client, &server = pair.server;
    std::size_t reported = 0;
    int parts = 0;
    client->on_body_progress([&](std::size_t n) {
        reported += n;
        ++parts;
    });
    // The record is written in two pieces a while apart, so the first one is read alone.
    bytes block(64 * 1024);
    for (std::size_t i = 0; i < block.size(); ++i) block[i] = static_cast<std::uint8_t>(i * 7);
    auto record = server->sealer().seal(block.data(), block.size());
    auto &raw = server->socket();
    asio::write(raw, asio::buffer(record.data(), record.size() / 2));
    bool got = false;
    client->receive([&](const pd::error *e, bytes plain) {
        ASSERT_EQ(e, nullptr);
        EXPECT_EQ(plain, block);
        got = true;
    });
    io.restart();
    io.run_for(std::chrono::milliseconds(100));
    io.restart();
    EXPECT_FALSE(got);
    EXPECT_GT(reported, 0u);
    EXPECT_LE(reported, record.size() / 2);
    asio::write(raw, asio::buffer(record.data() + record.size() / 2, record.size() - record.size() / 2));
    while (!got && io.run_one_for(std::chrono::seconds(5))) {
    }
    ASSERT_TRUE(got);
    EXPECT_GE(parts, 1);
    EXPECT_LT(reported, record.size() - 4) << "the part that completes the record is not reported";
}

TEST(async_channel, arrival_is_the_kernels_receive_time_not_when_the_process_read) {
    // A record that waited 300 ms in the socket before anyone read it arrived 300 ms ago:
    // the background class must not count a busy reader as queueing on the path.
    channel_pair pair(3);
    auto &io = pair.io;
    auto &client = pair.client, &server = pair.server;
    if (!client->use_kernel_arrival_times()) GTEST_SKIP() << "no kernel receive timestamps on this platform";
    // Linux turns receive timestamping on for the whole stack from a work queue once the first
    // socket asks for it (and off again after the last one closes): until then packets carry
    // no stamp, and the arrival is timed when the process reads them.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(pair.handshake());
    std::string block = "block";
    server->send(bytes(block.begin(), block.end()));
    io.run_for(std::chrono::milliseconds(50));  // written and delivered
    io.restart();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // and nobody reads
    bool got = false;
    std::chrono::steady_clock::time_point read_at;
    client->receive([&](const pd::error *e, bytes plain) {
        ASSERT_EQ(e, nullptr);
        EXPECT_EQ(std::string(plain.begin(), plain.end()), "block");
        read_at = std::chrono::steady_clock::now();
        got = true;
    });
    while (!got && io.run_one_for(std::chrono::seconds(5))) {
    }
    ASSERT_TRUE(got);
    auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(read_at - client->record_started()).count();
    EXPECT_GE(waited, 250) << "the arrival was timed when the process read it";
    EXPECT_LT(waited, 5000);
}

namespace {

// Reads the first 8 bytes of a plaintext as the µs clock a stamp_fn wrote there.
std::int64_t stamp_in(const bytes &plain) {
    std::int64_t us = 0;
    std::memcpy(&us, plain.data(), sizeof us);
    return us;
}

}  // namespace

TEST(async_channel, a_stamped_record_is_stamped_when_tcp_can_send_it_and_sealed_in_its_turn) {
    // The serving side of a paced link: a reader that reads nothing for 300 ms leaves the
    // server's TCP unable to send. Stamped at queueing, the 40 answers would all carry the
    // time before the stall and read as 300 ms of queue on the path; held until the socket
    // has room, all but the few TCP could send at once are stamped after it. A record sent
    // plainly between them is sealed in its turn, so every record opens, in order.
    channel_pair pair(5);
    auto &io = pair.io;
    auto &client = pair.client, &server = pair.server;
    if (!server->stamp_as_sent(16 * 1024)) GTEST_SKIP() << "no limit on unsent bytes on this platform";
    ASSERT_TRUE(pair.handshake());
    constexpr int answers = 40;
    auto stamp = [](bytes &plain) {
        auto now = static_cast<std::int64_t>(pd::steady_now_us());
        std::memcpy(plain.data(), &now, sizeof now);
    };
    auto queued_at = static_cast<std::int64_t>(pd::steady_now_us());
    for (int i = 0; i < answers; ++i) {
        server->send_stamped(bytes(64 * 1024, static_cast<std::uint8_t>(i)), stamp);
        if (i == 4) server->send(bytes{'p', 'l', 'a', 'i', 'n'});
    }
    io.restart();
    io.run_for(std::chrono::milliseconds(300));
    io.restart();
    auto read_from = static_cast<std::int64_t>(pd::steady_now_us());
    std::vector<bytes> got;
    std::function<void(const pd::error *, bytes)> next = [&](const pd::error *e, bytes plain) {
        ASSERT_EQ(e, nullptr);
        got.push_back(std::move(plain));
        if (got.size() < answers + 1) client->receive(next);
    };
    client->receive(next);
    while (got.size() < answers + 1 && io.run_one_for(std::chrono::seconds(5))) {
    }
    ASSERT_EQ(got.size(), answers + 1u);
    EXPECT_EQ(got[5], (bytes{'p', 'l', 'a', 'i', 'n'}));
    int early = 0;
    for (int i = 0, k = 0; i < answers; ++i, ++k) {
        if (k == 5) ++k;
        ASSERT_EQ(got[k].size(), 64u * 1024);
        EXPECT_EQ(got[k].back(), static_cast<std::uint8_t>(i));
        EXPECT_GE(stamp_in(got[k]), queued_at);
        early += stamp_in(got[k]) < read_from;
    }
    // What TCP takes before the reader stalls: the loopback receive window (~64-128 KiB)
    // and the 16 KiB unsent limit — a few answers, never the 16 of one 1 MiB write.
    EXPECT_LE(early, 6) << "answers were stamped long before TCP could send them";
}

TEST(async_channel, a_sealed_record_behind_one_still_to_stamp_fails_the_channel_not_the_process) {
    // Records are sealed in the order they go out: a record sealed elsewhere cannot overtake
    // one the channel has still to seal. The owner's mistake is a write error, not corruption.
    channel_pair pair(6);
    auto &io = pair.io;
    auto &server = pair.server;
    if (!server->stamp_as_sent(16 * 1024)) GTEST_SKIP() << "no limit on unsent bytes on this platform";
    ASSERT_TRUE(pair.handshake());
    std::string why;
    server->on_write_error([&](const pd::error *e) { why = e->what(); });
    server->send_stamped(bytes(100, 1), [](bytes &) {});  // waits for the socket's room
    server->send_sealed(server->sealer().seal(reinterpret_cast<const std::uint8_t *>("x"), 1));
    EXPECT_NE(why.find("sealed record queued behind"), std::string::npos) << why;
    io.run_for(std::chrono::milliseconds(50));
}

TEST(wire, a_stamp_is_written_into_an_encoded_answer_in_place) {
    pd::content::hash h{};
    for (bool part : {false, true}) {
        auto enc = wire::encode(wire::data{1, h, 2, bytes(10, 1), true, 0, part, 16384});
        wire::restamp(enc, 987654321);
        auto d = std::get<wire::data>(wire::decode(enc.data(), enc.size()));
        EXPECT_EQ(d.sent_us, 987654321u);
        EXPECT_EQ(d.bytes, bytes(10, 1));
        EXPECT_EQ(d.offset, part ? 16384u : 0u);
    }
    auto untimed = wire::encode(wire::data{1, h, 2, bytes(10, 1)});
    EXPECT_EQ(code_of([&] { wire::restamp(untimed, 1); }), PD_E_INVALID);
    bytes empty;
    EXPECT_EQ(code_of([&] { wire::restamp(empty, 1); }), PD_E_INVALID);
    bytes cut{11, 0, 0};
    EXPECT_EQ(code_of([&] { wire::restamp(cut, 1); }), PD_E_INVALID);
}

TEST(platform, a_connection_that_lost_nothing_counts_no_out_of_order_arrivals) {
    // The background class reads the serving peer's losses from this count (ledbat::on_loss):
    // on a connection where every packet came in order it must read 0, not garbage.
    channel_pair pair(7);
    auto count = pd::platform::out_of_order_arrivals(pair.client->socket().native_handle());
    if (!count) GTEST_SKIP() << "no out-of-order count on this platform";
    ASSERT_TRUE(pair.handshake());
    pair.server->send(bytes(200 * 1024, 1));
    bool got = false;
    pair.client->receive([&](const pd::error *e, bytes) { got = e == nullptr; });
    pair.io.restart();
    while (!got && pair.io.run_one_for(std::chrono::seconds(5))) {
    }
    ASSERT_TRUE(got);
    EXPECT_EQ(pd::platform::out_of_order_arrivals(pair.client->socket().native_handle()), std::optional<std::uint64_t>(0));
}
