// A peer link renewing its connection (peer_link::renew; docs/background-transport.md "A fresh
// connection after a lossy yield"): against a real peer server, every block arrives once and
// whole across the move and the old connection closes; against a peer whose address answers
// as another device, or not at all, the renewal is dropped and the transfer goes on.
#include "fake_peer.h"
#include "helpers.h"
#include "peer_identity.h"

#include "core/session.h"
#include "peer/background_path.h"
#include "peer/peer_link.h"
#include "util/clock.h"

#include <boost/asio/post.hpp>

#include <future>
#include <map>

namespace {

const std::uint8_t fleet[32] = {44, 55, 66};
constexpr std::uint32_t block = 65536;

// Bytes leave at most at `bytes_per_s`: the background path's budget, so a transfer on
// loopback lasts long enough for renewals to happen in the middle of it.
pd::peer::background_path::budget_fn paced_at(double bytes_per_s) {
    return [next = pd::steady_now_us(), bytes_per_s](std::uint64_t bytes) mutable -> std::int64_t {
        auto now = pd::steady_now_us();
        if (next > now) return (next - now + 999) / 1000;
        next = now + static_cast<std::int64_t>(static_cast<double>(bytes) / bytes_per_s * 1e6);
        return 0;
    };
}

// The receiving side: a core session (its network thread and device key), one link to
// `address` over the background class, asking for every block of `layout`. `on_block` runs
// on the network thread with the link and the number of blocks in so far.
struct transfer {
    pdtest::temp_dir dir;
    std::unique_ptr<pd::core::session> s;
    std::shared_ptr<pd::peer::peer_link> link;
    std::map<std::uint64_t, std::vector<std::uint8_t>> blocks;
    int duplicates = 0;
    std::vector<std::uint64_t> delta_blocks;  // what HAVE_DELTAs (and a renewal's HAVE) brought
    std::vector<std::string> renewals;         // "moved", or why a renewal was dropped
    std::promise<std::string> done;            // "" or why it failed

    transfer() {
        pd_session_options o = PD_SESSION_OPTIONS_INIT;
        std::string cache = dir / "cache";
        o.cache_dir = cache.c_str();
        o.fleet_key = fleet;
        o.fleet_key_len = 32;
        s = std::make_unique<pd::core::session>(o);
    }

    // Runs the whole transfer and returns its outcome ("" when every block came).
    std::string run(const std::string &address, const pd::content::hash &id, pd::content::block_layout layout,
                    int connect_timeout_ms, std::function<void(pd::peer::peer_link &, std::size_t)> on_block) {
        auto &net = s->net();
        boost::asio::post(net, [&, layout, on_block] {
            auto path = std::make_shared<pd::peer::background_path>(net, pd::net::ledbat_config{}, nullptr, paced_at(8e6));
            link = std::make_shared<pd::peer::peer_link>(net, address, *s->fleet_key(), 1, s->device_identity());
            link->on_have_delta([this](const pd::content::hash &, const std::vector<std::uint64_t> &b) {
                delta_blocks.insert(delta_blocks.end(), b.begin(), b.end());
            });
            link->on_renewal([this](bool moved, const std::string &detail) { renewals.push_back(moved ? "moved" : detail); });
            link->connect(connect_timeout_ms, [&, path, layout, on_block](const pd::error *why) {
                if (why) return done.set_value(why->what());
                link->query_have(id, layout.block_count(), [&, path, layout, on_block](const pd::error *e, pd::peer::peer_link::have_answer) {
                    if (e) return done.set_value(e->what());
                    link->set_background(path, layout);
                    auto count = static_cast<std::uint32_t>(layout.block_count());
                    link->request(
                        id, 0, count,
                        [&, on_block](std::uint64_t b, std::vector<std::uint8_t> bytes) {
                            duplicates += blocks.count(b) ? 1 : 0;
                            blocks[b] = std::move(bytes);
                            on_block(*link, blocks.size());
                        },
                        [&](const pd::error *failed, const std::string &rejected) {
                            done.set_value(failed ? failed->what() : rejected);
                        });
                });
            });
        });
        auto f = done.get_future();
        if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) return "timed out";
        return f.get();
    }

    // Reads from the link on the network thread.
    template <class F>
    auto on_net(F f) {
        std::promise<decltype(f())> p;
        boost::asio::post(s->net(), [&] { p.set_value(f()); });
        return p.get_future().get();
    }

    ~transfer() {
        if (link) on_net([&] {
            link->close("test over");
            return 0;
        });
    }
};

pd_session_stats stats_of(pd_session *s) {
    pd_session_stats st{};
    st.struct_size = sizeof st;
    EXPECT_EQ(pd_session_get_stats(&st, s), PD_OK);
    return st;
}

}  // namespace

TEST(peer_link, a_renewal_moves_to_a_fresh_connection_and_every_block_arrives_once) {
    pdtest::temp_dir dir;
    auto data = pdtest::random_bytes(6 * 1024 * 1024 + 1234, 5);
    pdtest::write_file(dir / "origin.bin", data);
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    std::string cache = dir / "seeder";
    o.cache_dir = cache.c_str();
    o.fleet_key = fleet;
    o.fleet_key_len = 32;
    o.listen_addresses = "127.0.0.1:0";
    pdtest::session_ptr seeder;
    ASSERT_EQ(pd_session_new(&seeder.s, &o), PD_OK) << pdtest::last_error();
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    po.add_to_cache = 1;
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_content_publish(&m, seeder, (dir / "origin.bin").c_str(), &po), PD_OK) << pdtest::last_error();
    pd::content::hash id{};
    std::memcpy(id.data(), pd_manifest_id(m)->bytes, 32);
    pd_manifest_free(m);
    pd_buf b = PD_BUF_INIT;
    pd_session_listen_addresses(&b, seeder);
    std::string address(reinterpret_cast<char *>(b.ptr), b.size);
    pd_buf_dispose(&b);

    transfer t;
    pd::content::block_layout layout{data.size(), block};
    bool asked = false;
    auto outcome = t.run(address, id, layout, 5000, [&](pd::peer::peer_link &link, std::size_t in) {
        if (in != 20) return;
        asked = link.renew();
        EXPECT_FALSE(link.renew()) << "a second renewal while one is under way";
    });
    ASSERT_EQ(outcome, "");
    EXPECT_TRUE(asked);
    EXPECT_EQ(t.on_net([&] { return t.link->renewals(); }), 1u);
    EXPECT_EQ(t.renewals, std::vector<std::string>{"moved"});
    EXPECT_EQ(t.on_net([&] { return t.link->outstanding(); }), 0u);
    ASSERT_EQ(t.blocks.size(), layout.block_count());
    EXPECT_EQ(t.duplicates, 0);
    for (auto &[n, bytes] : t.blocks) {
        auto at = data.begin() + static_cast<std::ptrdiff_t>(n * block);
        ASSERT_EQ(bytes, std::vector<std::uint8_t>(at, at + static_cast<std::ptrdiff_t>(layout.block_length(n)))) << n;
    }
    // The fresh connection asked for the HAVE again, so the peer's deltas keep coming on it.
    EXPECT_EQ(t.delta_blocks.size(), layout.block_count());
    // Two connections were made; the old one said goodbye and closed once it had answered.
    EXPECT_EQ(stats_of(seeder).peer_connections, 2u);
    for (int i = 0; i < 100 && stats_of(seeder).connections_open != 1; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(stats_of(seeder).connections_open, 1u);
    EXPECT_EQ(stats_of(seeder).peers_refused, 0u);
}

namespace {

// A peer that serves whole blocks of `data` and answers each connection as the test says:
// connection n (from 1) proves `identity_for(n)`, or stays silent when that is null.
struct scripted_peer {
    const std::vector<std::uint8_t> &data;
    std::function<const pd::peer::wire::device_identity *(int)> identity_for;
    std::atomic<int> dialled{0};
    std::map<int, std::atomic<int>> served;  // requests answered per connection, 1..4
    pdtest::fake_peer fake;

    scripted_peer(const std::vector<std::uint8_t> &bytes, std::function<const pd::peer::wire::device_identity *(int)> who)
        : data(bytes), identity_for(std::move(who)), served(make_counters()), fake(fleet, 100, [this]() -> pdtest::fake_peer::script {
              int n = ++dialled;
              return [this, n](pd::net::blocking_channel &ch, const pd::peer::wire::message *m) {
                  namespace wire = pd::peer::wire;
                  if (!m) return pdtest::fake_peer::then::read;
                  if (std::holds_alternative<wire::hello>(*m)) {
                      auto *id = identity_for(n);
                      if (!id) return pdtest::fake_peer::then::hold;  // never answers HELLO
                      auto h = pdtest::hello_for(ch, false, *id);
                      h.capabilities = wire::capability_timestamps;
                      ch.send(wire::encode(h));
                  } else if (auto *h = std::get_if<wire::have>(m)) {
                      ch.send(wire::encode(pdtest::holds_everything(h->content, (data.size() + block - 1) / block)));
                  } else if (auto *r = std::get_if<wire::request>(m)) {
                      if (n <= 4) ++served[n];
                      for (auto b = r->first_block; b < r->first_block + r->count; ++b) {
                          auto at = data.begin() + static_cast<std::ptrdiff_t>(b * block);
                          auto end = at + std::min<std::ptrdiff_t>(block, data.end() - at);
                          wire::data d{r->id, r->content, b, pd::net::bytes(at, end), true,
                                       static_cast<std::uint64_t>(pd::steady_now_us())};
                          ch.send(wire::encode(d));
                      }
                  } else if (std::holds_alternative<wire::goodbye>(*m)) {
                      return pdtest::fake_peer::then::hang_up;
                  }
                  return pdtest::fake_peer::then::read;
              };
          }) {}

    static std::map<int, std::atomic<int>> make_counters() {
        std::map<int, std::atomic<int>> m;
        for (int n = 1; n <= 4; ++n) m[n] = 0;
        return m;
    }
};

}  // namespace

TEST(peer_link, a_renewal_to_another_device_or_to_silence_is_dropped_and_the_transfer_goes_on) {
    // Whoever answers at the peer's address must prove the device the link has trusted: an
    // attacker on the LAN who takes the address, or a host that answers nothing, costs the
    // link only its renewal. Connection 1 is the peer; 2 another device; 3 never answers
    // HELLO; 4 the peer again, and the link moves to it.
    auto data = pdtest::random_bytes(8 * 1024 * 1024, 9);
    auto peer_key = pdtest::random_identity(), impostor = pdtest::random_identity();
    scripted_peer peer(data, [&](int n) -> const pd::peer::wire::device_identity * {
        if (n == 2) return &impostor;
        if (n == 3) return nullptr;
        return &peer_key;
    });
    transfer t;
    pd::content::block_layout layout{data.size(), block};
    pd::content::hash id{};
    id[0] = 7;
    int started = 0;
    auto outcome = t.run(peer.fake.address(), id, layout, 400, [&](pd::peer::peer_link &link, std::size_t in) {
        // From the 10th block on, a renewal whenever none is under way, three in all.
        if (in >= 10 && started < 3 && link.renew()) ++started;
    });
    ASSERT_EQ(outcome, "");
    EXPECT_EQ(started, 3);
    EXPECT_EQ(peer.dialled.load(), 4);
    EXPECT_EQ(t.on_net([&] { return t.link->renewals(); }), 1u) << "moved to the impostor or the silent host";
    ASSERT_EQ(t.renewals.size(), 3u);
    EXPECT_NE(t.renewals[0].find("answered as another device"), std::string::npos) << t.renewals[0];
    EXPECT_NE(t.renewals[1].find("did not answer within 400 ms"), std::string::npos) << t.renewals[1];
    EXPECT_EQ(t.renewals[2], "moved");
    EXPECT_EQ(peer.served[2].load(), 0);
    EXPECT_EQ(peer.served[3].load(), 0);
    EXPECT_GT(peer.served[1].load(), 0);
    EXPECT_GT(peer.served[4].load(), 0) << "the transfer ended before the last renewal: the test proves less";
    ASSERT_EQ(t.blocks.size(), layout.block_count());
    EXPECT_EQ(t.duplicates, 0);
    for (auto &[n, bytes] : t.blocks) {
        auto at = data.begin() + static_cast<std::ptrdiff_t>(n * block);
        ASSERT_EQ(bytes, std::vector<std::uint8_t>(at, at + block)) << n;
    }
}

TEST(peer_link, renewal_follows_a_yield_that_lost_packets_at_most_every_30_s) {
    pd::peer::lossy_yield_rule rule;
    constexpr std::int64_t s = 1'000'000;
    EXPECT_FALSE(rule.yield_ended(1 * s)) << "a yield without losses";
    rule.on_loss(false);
    EXPECT_FALSE(rule.yield_ended(2 * s)) << "a loss while not yielding (the class's own, or a shallow buffer)";
    rule.on_loss(true);
    EXPECT_TRUE(rule.yield_ended(3 * s));
    EXPECT_FALSE(rule.yield_ended(4 * s)) << "the loss was answered by the renewal";
    rule.on_loss(true);
    EXPECT_FALSE(rule.yield_ended(20 * s)) << "within 30 s of the last renewal";
    rule.on_loss(true);
    EXPECT_TRUE(rule.yield_ended(33 * s));
}
