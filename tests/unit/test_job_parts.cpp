// The job's parts on their own: the piece picker (pure bookkeeping), the swarm's origin
// split, rates and backoff against a real session's network thread, the flusher against a
// real store, the block sink against a real file, and the typed backend facade against the
// real origin plugin.
#include "helpers.h"
#include "peer_identity.h"
#include "fake_peer_sockets.h"

#include "core/session.h"
#include "job/block_sink.h"
#include "job/flusher.h"
#include "job/piece_picker.h"
#include "job/source_chain.h"
#include "peer/swarm.h"
#include "util/endpoint.h"
#include "util/hex.h"
#include "util/key_file.h"

#include <future>
#include <map>
#include <tuple>

#ifdef _WIN32
#include <windows.h>
#include <sddl.h>
#else
#include <sys/stat.h>
#endif

namespace {

using pd::block_bitmap;
using pd::core::piece_picker;

block_bitmap bits(std::uint64_t n, std::initializer_list<std::uint64_t> set) {
    block_bitmap b(n);
    for (auto i : set) b.set(i);
    return b;
}

block_bitmap all(std::uint64_t n) {
    block_bitmap b(n);
    for (std::uint64_t i = 0; i < n; ++i) b.set(i);
    return b;
}

piece_picker::peer_view view(const block_bitmap &have, bool wan = false, bool idle = false, std::int64_t now = 0) {
    return {have, wan, idle, 0, 42, 65536.0, now, nullptr};
}

}  // namespace

TEST(piece_picker, pieces_cover_only_missing_blocks_trimmed_to_them) {
    // 10 blocks, 4 per piece; blocks 0, 1 and 4-7 are held.
    piece_picker p(10, 4, bits(10, {0, 1, 4, 5, 6, 7}));
    ASSERT_EQ(p.piece_count(), 2u);
    EXPECT_EQ(p.at(0).first_block, 2u);
    EXPECT_EQ(p.at(0).block_count, 2u);
    EXPECT_EQ(p.at(1).first_block, 8u);
    EXPECT_EQ(p.at(1).block_count, 2u);
    EXPECT_TRUE(p.written(0));
    EXPECT_FALSE(p.written(2));
    EXPECT_FALSE(p.done());
    EXPECT_TRUE(piece_picker(5, 2, all(5)).done());
}

TEST(piece_picker, rarest_first_and_the_origin_takes_only_unheld_pieces) {
    piece_picker p(8, 2, block_bitmap(8));  // pieces 0..3
    auto a = bits(8, {0, 1, 2, 3}), b = bits(8, {2, 3, 4, 5});
    p.count(a, true, +1);
    p.count(b, true, +1);
    EXPECT_EQ(p.availability(1), 2u);
    EXPECT_EQ(p.unheld(), (std::vector<std::uint32_t>{3}));
    // Peer a holds pieces 0 (one holder) and 1 (two): the rarer first.
    EXPECT_EQ(p.choose_for(view(a)), 0u);
    p.take(0, 7, 0);
    EXPECT_EQ(p.choose_for(view(a)), 1u);
    p.count(b, true, -1);
    EXPECT_EQ(p.availability(1), 1u);
}

TEST(piece_picker, blocks_gained_count_only_the_pieces_they_complete) {
    piece_picker p(8, 4, bits(8, {6}));  // pieces [0,4) and [4,6) (block 6 held, 7 trimmed... see below)
    auto have = bits(8, {0, 1, 2});
    p.count(have, true, +1);
    EXPECT_EQ(p.availability(0), 0u);
    have.set(3);
    p.count_gained(have, {3}, true);
    EXPECT_EQ(p.availability(0), 1u) << "block 3 completed piece 0";
    have.set(4);
    p.count_gained(have, {4}, true);
    EXPECT_EQ(p.availability(1), 0u) << "piece 1 still misses a block";
    // The same result as counting the whole bitmap again.
    piece_picker q(8, 4, bits(8, {6}));
    q.count(have, true, +1);
    for (std::uint32_t i = 0; i < p.piece_count(); ++i) EXPECT_EQ(p.availability(i), q.availability(i)) << i;
}

TEST(piece_picker, a_wan_peer_gets_only_what_no_lan_peer_holds_and_no_end_game) {
    piece_picker p(4, 2, block_bitmap(4));
    auto lan = bits(4, {0, 1}), wan = all(4);
    p.count(lan, true, +1);
    p.count(wan, false, +1);
    EXPECT_EQ(p.choose_for(view(wan, true)), 1u);
    p.take(1, 9, 0);
    EXPECT_EQ(p.choose_for(view(wan, true)), piece_picker::none);  // piece 0 is the LAN's
    p.take(0, 8, 0);
    EXPECT_EQ(p.choose_for(view(wan, true, true, 100000)), piece_picker::none);
}

TEST(piece_picker, end_game_duplicates_an_overdue_piece_only_when_its_holder_is_silent) {
    piece_picker p(2, 1, block_bitmap(2));
    auto have = all(2);
    p.take(0, 5, 1000);
    p.take(1, piece_picker::origin, 1000);
    auto answered_at = std::int64_t{0};
    auto v = view(have, false, true, 1500);
    v.last_answer_ms = [&](piece_picker::holder_id) { return answered_at; };
    EXPECT_EQ(p.choose_for(v), piece_picker::none) << "not overdue after 0.5 s";
    v.now_ms = 2500;
    EXPECT_EQ(p.choose_for(v), 0u) << "overdue, holder silent since it was sent";
    answered_at = 2400;  // the holder is answering: the piece is queued there, not late
    EXPECT_EQ(p.choose_for(v), 1u) << "the origin's piece is overdue instead";
    v.idle = false;
    EXPECT_EQ(p.choose_for(v), piece_picker::none) << "a busy peer gets no duplicates";
}

TEST(piece_picker, a_piece_comes_back_to_the_queue_until_every_block_is_written) {
    piece_picker p(4, 4, block_bitmap(4));
    p.take(0, 1, 0);
    EXPECT_TRUE(p.queue_empty());
    EXPECT_EQ(p.in_flight(), 1u);
    EXPECT_TRUE(p.mark_written(0));
    EXPECT_FALSE(p.mark_written(0)) << "the second copy is not counted";
    p.give_back(0);
    EXPECT_FALSE(p.queue_empty());
    EXPECT_EQ(p.wanted(0), (std::vector<std::uint64_t>{1, 2, 3}));
    p.take(0, 1, 0);
    p.take(0, 2, 0);  // end-game: two fetches out
    for (std::uint64_t b = 1; b < 4; ++b) p.mark_written(b);
    p.give_back(0);
    EXPECT_TRUE(p.queue_empty());
    EXPECT_FALSE(p.done());
    p.give_back(0);
    EXPECT_TRUE(p.done());
}

namespace {

// A real session (its network thread, store and settings) for the parts that need one.
struct session_fixture {
    pdtest::temp_dir dir;
    std::unique_ptr<pd::core::session> s;
    session_fixture() {
        pd_session_options o = PD_SESSION_OPTIONS_INIT;
        std::string cache = dir / "cache";
        o.cache_dir = cache.c_str();
        static const std::uint8_t key[32] = {1, 2, 3};
        o.fleet_key = key;
        o.fleet_key_len = 32;
        s = std::make_unique<pd::core::session>(o);
    }
};

struct recorder : pd::peer::swarm::listener {
    std::vector<std::string> failures;
    int rounds = 0;
    bool wants_peers() const override { return true; }
    void on_availability(const pd::peer::peer_slot &, int) override {}
    void on_blocks_gained(const pd::peer::peer_slot &, const std::vector<std::uint64_t> &) override {}
    void on_peer_joined(const std::shared_ptr<pd::peer::peer_slot> &) override {}
    void on_peer_gained(const std::shared_ptr<pd::peer::peer_slot> &, bool) override {}
    void on_peer_failed(const std::string &why) override { failures.push_back(why); }
    void on_round_done() override { ++rounds; }
    void on_yield(bool, const std::string &) override {}
};

}  // namespace

TEST(swarm, a_peer_that_cannot_be_reached_is_backed_off_before_it_is_dialled_again) {
    session_fixture f;
    auto rec = std::make_shared<recorder>();
    auto sw = f.s->call([&] {
        auto s = std::make_shared<pd::peer::swarm>(*f.s, pd::content::hash{}, pd::content::block_layout{16 * 65536, 65536}, 1, rec);
        auto settings = pd::core::job_settings::read(f.s->config());
        settings.connect_timeout_ms = 200;
        s->apply(settings);
        return s;
    });
    // A listening socket that is closed at once: connection refused.
    auto round = [&] {
        f.s->call([&] {
            sw->begin_round();
            sw->consider({"127.0.0.1:9"});
        });
        for (int i = 0; i < 100 && f.s->call([&] { return sw->busy(); }); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    };
    round();
    EXPECT_EQ(f.s->call([&] { return rec->rounds; }), 1);
    EXPECT_FALSE(f.s->call([&] { return sw->busy(); }));
    // Dialled again at once: the backoff (1 s after the first failure) keeps it out; the
    // round ends with nothing to connect.
    auto t0 = std::chrono::steady_clock::now();
    round();
    EXPECT_EQ(f.s->call([&] { return rec->rounds; }), 2);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(150));
    EXPECT_TRUE(f.s->call([&] { return sw->peers().empty(); }));
}

// A peer's blocks can fail verification after its link already failed (they were on the
// workers): the job then bans a peer the swarm has dropped. It once took the peer's bitmap
// out of the availability counts a second time; the counts went wrong, pieces looked held by
// a peer that was gone, the origin never took them and the job sat still (found with a peer
// that sent a short part after bad ones).
TEST(swarm, a_peer_banned_after_it_was_dropped_is_uncounted_once) {
    session_fixture f;
    // A peer that holds all 16 blocks and answers nothing but HAVE.
    std::string addr;
    auto listener = pdtest::listen_on_loopback(addr);
    std::thread holder([&] {
        auto fd = pdtest::accept_within(listener);
        if (fd == pd::platform::invalid_socket) return;
        try {
            pd::net::blocking_channel ch(fd, pd::net::role::server, f.s->fleet_key()->data());
            for (;;) {
                auto in = ch.receive();
                auto m = pd::peer::wire::decode(in.data(), in.size());
                if (std::holds_alternative<pd::peer::wire::hello>(m))
                    ch.send(pd::peer::wire::encode(pdtest::hello_for(ch, false)));
                else if (auto *h = std::get_if<pd::peer::wire::have>(&m))
                    ch.send(pd::peer::wire::encode(pd::peer::wire::have{h->content, 16, 0, {0xff, 0xff}}));
            }
        } catch (const std::exception &) {
        }
        pd::platform::close_socket(fd);
    });
    // The picker's counts, per block, as the job keeps them.
    struct counting : recorder {
        std::vector<int> held = std::vector<int>(16);
        void on_availability(const pd::peer::peer_slot &p, int sign) override {
            for (std::size_t b = 0; b < held.size(); ++b)
                if (p.have.test(b)) held[b] += sign;
        }
    };
    auto rec = std::make_shared<counting>();
    auto sw = f.s->call([&] {
        auto s = std::make_shared<pd::peer::swarm>(*f.s, pd::content::hash{}, pd::content::block_layout{16 * 65536, 65536}, 1, rec);
        s->apply(pd::core::job_settings::read(f.s->config()));
        s->begin_round();
        s->consider({addr});
        return s;
    });
    for (int i = 0; i < 250 && f.s->call([&] { return sw->busy(); }); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_EQ(f.s->call([&] { return sw->peers().size(); }), 1u);
    EXPECT_EQ(f.s->call([&] { return rec->held; }), std::vector<int>(16, 1));
    f.s->call([&] {
        auto peer = sw->peers().front();
        sw->drop(peer, pd::error(PD_E_INVALID, PD_CATEGORY_NET, "sent a block that was not asked for"));
        sw->ban(peer);  // its blocks failed verification after all
        sw->record_answer(*peer, 1, 0, pd::store::now_ms());  // a late answer of a demoted peer: not counted again either
    });
    EXPECT_EQ(f.s->call([&] { return rec->held; }), std::vector<int>(16, 0));
    holder.join();  // the swarm closed the link
    pd::platform::close_socket(listener);
}

TEST(swarm, the_origin_split_gives_each_piece_one_owner_and_a_stuck_owner_loses_it) {
    session_fixture f;
    auto rec = std::make_shared<recorder>();
    auto sw = std::make_shared<pd::peer::swarm>(*f.s, pd::content::hash{}, pd::content::block_layout{16 * 65536, 65536}, 1, rec);
    auto settings = pd::core::job_settings::read(f.s->config());
    settings.coop_wait_ms = 1000;
    sw->apply(settings);
    // Alone, this device owns every piece.
    for (std::uint64_t first = 0; first < 64; first += 4) EXPECT_TRUE(sw->origin_turn(first, 7, 0));
    // Four devices: each piece has one owner whatever the order they are listed in, the
    // pieces spread over all four, and a device leaving moves only its own pieces.
    std::vector<std::uint64_t> four{11, 22, 33, 44}, reversed{44, 33, 22, 11}, three{11, 22, 44};
    std::map<std::uint64_t, int> owned;
    for (std::uint64_t first = 0; first < 4000; first += 16) {
        auto owner = pd::peer::swarm::origin_owner(first, four);
        EXPECT_EQ(owner, pd::peer::swarm::origin_owner(first, reversed));
        ++owned[owner];
        if (owner != 33) {
            EXPECT_EQ(pd::peer::swarm::origin_owner(first, three), owner);
        }
    }
    ASSERT_EQ(owned.size(), 4u);
    for (auto &[node, n] : owned) EXPECT_GT(n, 250 / 8) << node;
}

TEST(swarm, throughput_is_a_moving_average_and_sets_the_pipeline_depth) {
    session_fixture f;
    auto rec = std::make_shared<recorder>();
    auto sw = std::make_shared<pd::peer::swarm>(*f.s, pd::content::hash{}, pd::content::block_layout{16 * 65536, 65536}, 1, rec);
    auto settings = pd::core::job_settings::read(f.s->config());  // 1 MiB pieces, 250 ms queue, max 8
    sw->apply(settings);
    pd::peer::peer_slot p;
    p.link = std::make_shared<pd::peer::peer_link>(f.s->net(), "127.0.0.1:1", *f.s->fleet_key(), 1, f.s->device_identity());
    EXPECT_EQ(sw->pipeline_depth(p), 2u) << "unknown rate: two requests";
    sw->record_answer(p, 100u << 20, 0, 1000);  // 100 MiB/s
    EXPECT_NEAR(p.rate, 100.0 * (1 << 20), 1);
    EXPECT_EQ(sw->pipeline_depth(p), 8u) << "25 pieces' worth, capped at peer.max_requests";
    sw->record_answer(p, 0, 1000, 2000);  // an answer that brought nothing in 1 s
    EXPECT_NEAR(p.rate, 70.0 * (1 << 20), 1);
}

namespace {
struct durable_recorder : pd::core::flusher::listener {
    std::promise<std::vector<std::uint64_t>> done;
    void on_durable(const std::vector<std::uint64_t> &blocks, std::uint64_t) override { done.set_value(blocks); }
    void on_flush_failed(int, const std::string &message) override { ADD_FAILURE() << message; }
};
}  // namespace

TEST(flusher, pending_blocks_become_durable_and_recorded_in_one_batch) {
    session_fixture f;
    auto data = pdtest::random_bytes(300000, 5);
    pdtest::write_file(f.dir / "src", data);
    auto m = pd::content::hash_file(f.dir / "src", "src");
    f.s->store().put_manifest(m, "");
    auto file = std::make_shared<pd::platform::file>(f.s->store().open_data(m.id, m.size));
    auto rec = std::make_shared<durable_recorder>();
    auto fut = rec->done.get_future();
    auto fl = f.s->call([&] {
        auto made = std::make_shared<pd::core::flusher>(*f.s, m.id, file, block_bitmap(m.block_count()), 0, rec);
        for (std::uint64_t b : {0, 2}) {
            file->pwrite(m.block_offset(b), data.data() + m.block_offset(b), m.block_length(b));
            made->add(b, m.block_length(b));
        }
        made->schedule(false, 1u << 30, 20);  // below flush_bytes: the 20 ms timer sends it
        EXPECT_TRUE(made->pending());
        return made;
    });
    ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_EQ(fut.get(), (std::vector<std::uint64_t>{0, 2}));
    EXPECT_TRUE(f.s->call([&] { return fl->durable(2) && !fl->durable(1) && !fl->pending(); }));
    auto rec2 = f.s->store().get(m.id);
    ASSERT_TRUE(rec2);
    EXPECT_EQ(rec2->verified_bytes, std::uint64_t{m.block_length(0)} + m.block_length(2));
}

// What a peer sends is attacker input: a block with the wrong bytes or the wrong length is
// reported bad and never reaches the file; a file that cannot be written is a local failure,
// told apart from bad data. Outcomes come back on the network thread, in order.
TEST(block_sink, writes_only_blocks_that_match_and_reports_each_on_the_network_thread) {
    session_fixture f;
    auto data = pdtest::random_bytes(5 * 65536 + 100, 6);
    pdtest::write_file(f.dir / "src", data);
    auto m = std::make_shared<const pd::content::manifest>(pd::content::hash_file(f.dir / "src", "src"));
    auto block = [&](std::uint64_t b) {
        auto *p = data.data() + m->block_offset(b);
        return std::vector<std::uint8_t>(p, p + m->block_length(b));
    };
    auto run = [&](const std::shared_ptr<pd::platform::file> &file,
                   std::vector<std::pair<std::uint64_t, std::vector<std::uint8_t>>> blocks) {
        auto sink = std::make_shared<pd::core::block_sink>(m, file, f.s->workers(), f.s->net());
        std::promise<std::vector<std::pair<std::uint64_t, pd::core::block_sink::outcome>>> all;
        auto seen = std::make_shared<std::vector<std::pair<std::uint64_t, pd::core::block_sink::outcome>>>();
        std::size_t n = blocks.size();
        f.s->call([&] {
            for (auto &[b, bytes] : blocks)
                sink->add(b, std::move(bytes), [&, seen, b = b](const pd::core::block_sink::outcome &o) {
                    EXPECT_TRUE(f.s->net().get_executor().running_in_this_thread());
                    seen->emplace_back(b, o);
                    if (seen->size() == n) all.set_value(*seen);
                });
            return 0;
        });
        auto fut = all.get_future();
        EXPECT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
        return fut.get();
    };

    std::string path = f.dir / "data";
    auto file = std::make_shared<pd::platform::file>(path, pd::platform::file::mode::read_write_create);
    auto tampered = block(1);
    tampered[100] ^= 1;
    auto truncated = block(2);
    truncated.pop_back();
    auto got = run(file, {{0, block(0)}, {1, tampered}, {2, truncated}, {5, block(5)}, {3, block(3)}});
    ASSERT_EQ(got.size(), 5u);
    std::vector<std::uint64_t> order;
    for (auto &[b, o] : got) {
        order.push_back(b);
        EXPECT_EQ(o.good, b == 0 || b == 5 || b == 3) << b;
        EXPECT_EQ(o.error, 0) << b;
    }
    EXPECT_EQ(order, (std::vector<std::uint64_t>{0, 1, 2, 5, 3}));
    std::vector<std::uint8_t> back(65536);
    ASSERT_EQ(file->pread(m->block_offset(3), back.data(), back.size()), back.size());
    EXPECT_EQ(back, block(3));
    EXPECT_EQ(file->pread(m->block_offset(1), back.data(), back.size()), back.size());  // a hole: zeros
    EXPECT_EQ(back, std::vector<std::uint8_t>(65536, 0));

    auto read_only = std::make_shared<pd::platform::file>(path, pd::platform::file::mode::read);
    got = run(read_only, {{4, block(4)}});
    ASSERT_EQ(got.size(), 1u);
    EXPECT_FALSE(got[0].second.good);
    EXPECT_NE(got[0].second.error, 0);
    EXPECT_FALSE(got[0].second.message.empty());
}

TEST(backend_facade, the_origin_plugin_through_typed_calls) {
    session_fixture f;
    f.s->plugins().load(PD_TEST_PLUGIN_DIR "/" + pdtest::module_file("peerdist-origin"));
    auto data = pdtest::random_bytes(100000, 9);
    pdtest::write_file(f.dir / "src", data);
    auto b = f.s->plugins().backends().at(0);
    pd::plugin_host::content_ref ref;
    ref.size = data.size();
    ref.name = "src";
    ref.origin = f.dir / "src";
    auto s = b->open(ref);
    std::vector<std::uint8_t> buf(1000);
    s->read(500, buf.data(), buf.size());
    EXPECT_TRUE(std::equal(buf.begin(), buf.end(), data.begin() + 500));
    // Past the end: a short read is an error, never a silent partial buffer.
    try {
        s->read(data.size() - 10, buf.data(), buf.size());
        ADD_FAILURE() << "a short read passed";
    } catch (const pd::error &e) {
        EXPECT_NE(e.code(), PD_OK);
    }
    ref.origin = f.dir / "missing";
    try {
        b->open(ref);
        ADD_FAILURE() << "opened a missing origin";
    } catch (const pd::error &e) {
        EXPECT_NE(std::string(e.what()).find("origin: "), std::string::npos) << e.what();
    }
    ref.size = data.size() + 1;  // the publication says another size: the origin changed
    ref.origin = f.dir / "src";
    try {
        b->open(ref);
        ADD_FAILURE() << "opened a changed origin";
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_CHANGED) << e.what();
    }
    EXPECT_EQ(b->origin_allowed(ref), std::nullopt) << "the origin backend has no policy";
    EXPECT_TRUE(b->find_peers(ref).empty());
}

TEST(endpoint, one_rule_for_every_address) {
    using pd::parse_endpoint;
    using pd::port_rule;
    EXPECT_EQ(parse_endpoint("10.1.2.3:7400")->port, 7400);
    EXPECT_EQ(parse_endpoint("[2001:db8::1]:80")->host, "2001:db8::1");
    auto name = parse_endpoint("coordinator.example:7400");
    ASSERT_TRUE(name);
    EXPECT_TRUE(name->is_name);
    EXPECT_TRUE(parse_endpoint("localhost:1"));
    EXPECT_FALSE(parse_endpoint("10.1.2.3:0"));
    EXPECT_TRUE(parse_endpoint("10.1.2.3:0", port_rule::listen));
    for (const char *bad : {"", ":80", "10.1.2.3", "10.1.2.3:", "10.1.2.3:65536", "10.1.2.3:80x", "10.1.2.3:+80",
                            "2001:db8::1:80", "[10.1.2.3]:80", "[]:80", "bad_name:80", "-x:80", "a..b:80",
                            "10.1.2.3: 80"})
        EXPECT_FALSE(parse_endpoint(bad)) << bad;
    try {
        pd::require_endpoint("x", "coordinator address");
        ADD_FAILURE();
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_INVALID);
        EXPECT_NE(std::string(e.what()).find("coordinator address 'x' is not host:port"), std::string::npos);
    }
}

TEST(key_file, a_random_key_in_hex_in_a_private_file_and_nothing_else) {
    pdtest::temp_dir dir;
    std::uint8_t random[32];
    for (int i = 0; i < 32; ++i) random[i] = static_cast<std::uint8_t>(i * 37 + 11);
    std::string hex = pd::to_hex(random, 32);
    EXPECT_EQ(pd::parse_fleet_key(" " + hex + "\n")->at(0), random[0]);
    // Passphrase-like text (the old raw form), keys with visibly little randomness, near misses.
    for (std::string bad : {std::string(), hex.substr(1), hex + "a", hex.substr(0, 63) + "g", std::string(32, '\x07'),
                            std::string("correct horse battery staple 32b"), std::string(64, 'a'), std::string("0123456789abcdef").append(48, '0')})
        EXPECT_FALSE(pd::parse_fleet_key(bad)) << bad;
    // A key file only its owner may use, or one others may read too: mode 0600 or 0644
    // (0620: the group may write) on POSIX; on Windows an owner-only DACL, or one that also
    // lets Everyone read.
    enum class who { owner, others_read, group_writes };
    auto write = [&](const std::string &name, const std::string &text, who w) {
        std::string path = dir / name;
#ifdef _WIN32
        pd::platform::write_file_atomic(path, text.data(), text.size(), pd::platform::access::owner_only);
        if (w != who::owner) {
            const wchar_t *sddl = L"D:P(A;;FA;;;OW)(A;;FR;;;WD)";
            PSECURITY_DESCRIPTOR sd = nullptr;
            EXPECT_TRUE(ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, nullptr));
            EXPECT_TRUE(SetFileSecurityW(std::filesystem::path(path).c_str(), DACL_SECURITY_INFORMATION, sd));
            LocalFree(sd);
        }
#else
        pdtest::write_file(path, std::vector<std::uint8_t>(text.begin(), text.end()));
        ::chmod(path.c_str(), w == who::owner ? 0600 : w == who::others_read ? 0644 : 0620);
#endif
        return path;
    };
    EXPECT_EQ(pd::read_fleet_key(write("good", hex + "\n", who::owner))[31], random[31]);
#ifdef _WIN32
    const char *others_read = "other users (S-1-1-0 is allowed)";
#else
    const char *others_read = "other users (mode 0644)";
#endif
    std::vector<std::pair<std::string, std::string>> refused = {{write("bad", "no", who::owner), "must hold a random key as 64 hex digits"},
                                                                {write("shared", hex, who::others_read), others_read},
                                                                {write("huge", std::string(5000, 'a'), who::owner), "too large"}};
#ifndef _WIN32
    // Wine keeps only what Unix mode bits can say of a DACL: a write grant to Users does not
    // survive there (docs/windows.md), so this case is POSIX's.
    refused.push_back({write("group", hex, who::group_writes), "other users (mode 0620)"});
    std::string fifo = dir / "fifo";  // a FIFO nobody writes: refused, not waited on
    ::mkfifo(fifo.c_str(), 0600);
    refused.push_back({fifo, "not a regular file"});
#endif
    for (auto &[path, why] : refused) {
        try {
            pd::read_fleet_key(path);
            ADD_FAILURE() << path;
        } catch (const pd::error &e) {
            EXPECT_EQ(e.code(), PD_E_INVALID);
            EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
        }
    }
    try {
        pd::read_fleet_key(dir / "missing");
        ADD_FAILURE();
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_NOT_FOUND);
    }
}

namespace {
struct chain_recorder : pd::core::source_chain::listener {
    std::promise<std::tuple<bool, std::vector<std::string>, int>> opened;
    void on_source_opened(std::shared_ptr<pd::plugin_host::stream> s, std::vector<std::string> reasons, int code) override {
        opened.set_value({s != nullptr, std::move(reasons), code});
    }
    void on_origin_withheld(const std::string &) override { ADD_FAILURE() << "no backend has an origin policy"; }
};

std::tuple<bool, std::vector<std::string>, int> open_once(pd::core::session &s, const std::shared_ptr<pd::core::source_chain> &chain,
                                                          const std::shared_ptr<chain_recorder> &rec) {
    rec->opened = {};
    auto fut = rec->opened.get_future();
    s.call([&] { chain->open_next(); });
    EXPECT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    return fut.get();
}
}  // namespace

TEST(source_chain, opens_the_first_source_that_serves_and_moves_on_when_it_fails) {
    session_fixture f;
    f.s->plugins().load(PD_TEST_PLUGIN_DIR "/" + pdtest::module_file("peerdist-origin"));
    auto data = pdtest::random_bytes(70000, 3);
    pdtest::write_file(f.dir / "src", data);
    pd::plugin_host::content_ref ref;
    ref.size = data.size();
    ref.name = "src";
    ref.job_id = 1;
    EXPECT_EQ(pd::core::source_chain::refused_by(f.s->plugins().backends(), ref), "") << "no backend has a policy";

    auto rec = std::make_shared<chain_recorder>();
    auto good = std::make_shared<pd::core::source_chain>(*f.s, ref, f.dir / "src", rec);
    auto [opened, reasons, code] = open_once(*f.s, good, rec);
    EXPECT_TRUE(opened);
    EXPECT_TRUE(reasons.empty());
    EXPECT_TRUE(f.s->call([&] { return good->stream() != nullptr; }));
    // The stream failed: the next open tries the sources after it, and there are none.
    f.s->call([&] { good->failed(); });
    auto [again, why, last] = open_once(*f.s, good, rec);
    EXPECT_FALSE(again);
    EXPECT_TRUE(why.empty());
    EXPECT_EQ(last, PD_E_NO_SOURCE);

    auto missing = std::make_shared<pd::core::source_chain>(*f.s, ref, f.dir / "missing", rec);
    auto [none, reasons2, code2] = open_once(*f.s, missing, rec);
    EXPECT_FALSE(none);
    ASSERT_EQ(reasons2.size(), 1u);
    EXPECT_EQ(reasons2[0].rfind("origin: ", 0), 0u) << reasons2[0];
}

namespace {
// A LAN-class stream (what BranchCache's wire mode is) in a backend whose origin policy says
// "not now" (what a hierarchy says in a branch office): built in, no file.
namespace near {
int32_t PD_CALLBACK create(void **self, const pd_host_api *, const char *) {
    static int instance;
    *self = &instance;
    return PD_PLUGIN_OK;
}
void PD_CALLBACK destroy(void *) {}
int32_t PD_CALLBACK open(void *, void **stream, const pd_content_ref *, char *, size_t) {
    static int handle;
    *stream = &handle;
    return PD_PLUGIN_OK;
}
int32_t PD_CALLBACK read(void *, void *, uint64_t, void *buffer, size_t length, size_t *got, char *, size_t) {
    std::memset(buffer, 0, length);
    *got = length;
    return PD_PLUGIN_OK;
}
void PD_CALLBACK close(void *, void *) {}
std::atomic<int> allowed{0};
int32_t PD_CALLBACK origin_allowed(void *, const pd_content_ref *) { return allowed; }
const pd_backend_vtable vtable = {sizeof(pd_backend_vtable), PD_SOURCE_LAN, create, destroy, open, read, close, nullptr,
                                  nullptr, origin_allowed, nullptr, nullptr, nullptr, nullptr};
const pd_backend_vtable *PD_CALLBACK backend_for(uint32_t abi) { return abi == 1 ? &vtable : nullptr; }
const pd_plugin_descriptor descriptor = {sizeof(pd_plugin_descriptor), PD_PLUGIN_ABI_VERSION, 1, 0, "near", "1", "Apache-2.0",
                                         "a LAN stream with an origin policy", backend_for};
}  // namespace near

struct withhold_recorder : chain_recorder {
    std::atomic<int> withheld{0};
    void on_origin_withheld(const std::string &who) override {
        EXPECT_EQ(who, "near");
        ++withheld;
        opened.set_value({false, {}, 0});
    }
};
}  // namespace

TEST(source_chain, the_origin_policy_keeps_the_device_off_the_origin_not_off_a_nearer_stream) {
    session_fixture f;
    f.s->plugins().add_builtin(&near::descriptor);
    f.s->plugins().load(PD_TEST_PLUGIN_DIR "/" + pdtest::module_file("peerdist-origin"));
    pdtest::write_file(f.dir / "src", pdtest::random_bytes(70000, 3));
    pd::plugin_host::content_ref ref;
    ref.size = 70000;
    ref.name = "src";
    ref.job_id = 1;
    auto rec = std::make_shared<withhold_recorder>();
    auto chain = std::make_shared<pd::core::source_chain>(*f.s, ref, f.dir / "src", rec);
    near::allowed = 0;
    auto [opened, reasons, code] = open_once(*f.s, chain, rec);
    EXPECT_TRUE(opened) << "the policy kept the device off its LAN stream";
    EXPECT_EQ(rec->withheld, 0);
    EXPECT_EQ(f.s->call([&] { return chain->stream()->source().source_class(); }), std::uint32_t{PD_SOURCE_LAN});
    // A discovery round repeats the refusal: the LAN stream stays.
    f.s->call([&] { chain->policy_answer("near"); });
    EXPECT_TRUE(f.s->call([&] { return chain->stream() != nullptr; }));
    // The LAN stream failed: the origin comes next, and the policy withholds it.
    f.s->call([&] { chain->failed(); });
    open_once(*f.s, chain, rec);
    EXPECT_EQ(rec->withheld, 1);
    EXPECT_EQ(f.s->call([&] { return chain->withheld_by(); }), "near");
    // The refusal ends: the sources are asked again, the nearer first.
    near::allowed = 1;
    rec->opened = {};
    auto fut = rec->opened.get_future();
    f.s->call([&] { chain->policy_answer(""); });
    ASSERT_EQ(fut.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    EXPECT_TRUE(std::get<0>(fut.get()));
    EXPECT_EQ(f.s->call([&] { return chain->stream()->source().source_class(); }), std::uint32_t{PD_SOURCE_LAN});
}

TEST(block_store, parsed_manifests_are_kept_until_their_content_is_removed) {
    session_fixture f;
    auto data = pdtest::random_bytes(200000, 8);
    pdtest::write_file(f.dir / "src", data);
    auto m = pd::content::hash_file(f.dir / "src", "src");
    auto &store = f.s->store();
    store.put_manifest(m, "");
    auto first = store.manifest(m.id);
    ASSERT_TRUE(first);
    EXPECT_EQ(store.manifest(m.id), first) << "parsed again instead of the kept copy";
    store.remove(m.id);
    EXPECT_EQ(store.manifest(m.id), nullptr) << "a removed content's manifest is still served";
}
