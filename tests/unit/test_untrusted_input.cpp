// The parsers of what the network, a server or a local user hands a plugin or the agent:
// the origin's URL, Location and Content-Range parsing, branchcache discovery datagrams,
// the coordinator's replies as an agent reads them, pd-agent's config and control lines.
// Each case is an input an attacker would try; the fuzz target (tests/fuzz) runs the same
// parsers on generated input.
#include "agent_protocol.h"
#include "branchcache/discovery.h"
#include "coordinator_client/protocol.h"
#include "origin/http_url.h"
#include "util/error.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace {

using pd::coord::json;

TEST(origin_url, parses_what_a_manifest_or_a_server_names) {
    auto u = pd_origin::parse_url("https://cdn.example:8443/a/b.msi?x=1#frag");
    ASSERT_TRUE(u);
    EXPECT_TRUE(u->tls);
    EXPECT_EQ(u->host, "cdn.example");
    EXPECT_EQ(u->port, "8443");
    EXPECT_EQ(u->target, "/a/b.msi?x=1");  // the fragment never goes on the wire
    auto v6 = pd_origin::parse_url("http://[2001:db8::1]/x");
    ASSERT_TRUE(v6);
    EXPECT_EQ(v6->host, "2001:db8::1");
    EXPECT_EQ(v6->text(), "http://[2001:db8::1]:80/x");
    EXPECT_EQ(pd_origin::parse_url("http://host?q")->target, "/?q");
}

TEST(origin_url, refuses_injection_credentials_and_bad_ports) {
    for (const char *bad : {"http://host/a\r\nX-Injected: 1", "http://host/a b", "http://user:pw@host/", "ftp://host/",
                            "http:///path", "http://host:0/", "http://host:65536/", "http://host:8o/", "http://[::1/",
                            "http://[::1]x/", "http://[evil.com]/", "http://host/\x80", "http://ho[st/"})
        EXPECT_FALSE(pd_origin::parse_url(bad)) << bad;
}

TEST(origin_url, resolves_locations_and_refuses_header_injection) {
    auto base = *pd_origin::parse_url("https://cdn.example/dir/file.bin");
    EXPECT_EQ(pd_origin::resolve(base, "/other")->text(), "https://cdn.example:443/other");
    EXPECT_EQ(pd_origin::resolve(base, "next.bin")->text(), "https://cdn.example:443/dir/next.bin");
    EXPECT_EQ(pd_origin::resolve(base, "//mirror.example/x")->text(), "https://mirror.example:443/x");
    EXPECT_FALSE(pd_origin::resolve(base, ""));
    EXPECT_FALSE(pd_origin::resolve(base, "/x\r\nSet-Cookie: a=b"));
    EXPECT_FALSE(pd_origin::resolve(base, "javascript://x"));
}

TEST(origin_content_range, takes_only_the_complete_form) {
    auto r = pd_origin::parse_content_range("bytes 0-99/1000");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->first, 0u);
    EXPECT_EQ(r->last, 99u);
    EXPECT_EQ(r->size, 1000u);
    // sscanf("%llu") took " -1", "+5" and trailing junk; overflow wrapped.
    for (const char *bad : {"bytes -1-99/1000", "bytes  0-99/1000", "bytes +0-99/1000", "bytes 0-99/*", "bytes 0-99/1000x",
                            "bytes 99-0/1000", "bytes 0-1000/1000", "bytes 0-99/99999999999999999999999", "items 0-1/2", "",
                            "bytes 0-99", "bytes 18446744073709551616-1/2"})
        EXPECT_FALSE(pd_origin::parse_content_range(bad)) << bad;
}

TEST(branchcache_discovery, sealed_round_trips_and_refuses_lies_and_strangers) {
    using namespace pd_branchcache;
    key fleet{}, stranger{};
    fleet.fill(1);
    stranger.fill(2);
    query q;
    q.window = 55;
    randombytes_buf(q.id.data(), q.id.size());
    q.content.fill(7);
    auto qb = encode(q, fleet);
    auto qback = decode_query(qb.data(), qb.size(), fleet);
    ASSERT_TRUE(qback);
    EXPECT_EQ(qback->content, q.content);
    EXPECT_EQ(qback->window, 55u);
    // The label is not on the wire, and asking twice for one content looks unrelated.
    EXPECT_EQ(std::search(qb.begin(), qb.end(), q.content.begin(), q.content.end()), qb.end());
    auto again = q;
    randombytes_buf(again.id.data(), again.id.size());
    auto qb2 = encode(again, fleet);
    EXPECT_FALSE(std::equal(qb.begin() + query_head, qb.end(), qb2.begin() + query_head));
    EXPECT_FALSE(decode_query(qb.data(), qb.size(), stranger));  // another fleet's key
    auto moved = qb;
    moved[4] ^= 1;  // the window is authenticated: a replay cannot be made to look fresh
    EXPECT_FALSE(decode_query(moved.data(), moved.size(), fleet));

    answer a;
    a.query_id = q.id;
    a.port = 7400;
    a.verified_blocks = 3;
    a.block_count = 10;
    auto ab = encode(a, fleet);
    auto back = decode_answer(ab.data(), ab.size(), fleet);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->query_id, q.id);
    EXPECT_EQ(back->port, 7400);
    EXPECT_EQ(back->verified_blocks, 3u);
    EXPECT_FALSE(decode_answer(ab.data(), ab.size() - 1, fleet));
    EXPECT_FALSE(decode_answer(ab.data(), ab.size(), stranger));  // forged without the key
    auto rebound = ab;
    rebound[5] ^= 1;  // bound to its query: moving it to another query id breaks the seal
    EXPECT_FALSE(decode_answer(rebound.data(), rebound.size(), fleet));
    EXPECT_FALSE(decode_query(ab.data(), ab.size(), fleet));  // an answer is not a query
    auto lie = a;
    lie.verified_blocks = 11;  // more than the content has
    auto l = encode(lie, fleet);
    EXPECT_FALSE(decode_answer(l.data(), l.size(), fleet));
    lie = a;
    lie.port = 0;
    l = encode(lie, fleet);
    EXPECT_FALSE(decode_answer(l.data(), l.size(), fleet));
}

TEST(branchcache_discovery, replays_are_dropped_and_a_flooder_uses_up_only_its_own_share) {
    using namespace pd_branchcache;
    replay_guard guard;
    query q;
    q.window = 100;
    randombytes_buf(q.id.data(), q.id.size());
    EXPECT_TRUE(guard.admit(q, 100));
    EXPECT_FALSE(guard.admit(q, 100));  // replayed
    auto old = q;
    randombytes_buf(old.id.data(), old.id.size());
    EXPECT_FALSE(guard.admit(old, 102));  // two windows late
    EXPECT_TRUE(guard.admit(old, 101));   // one late: clock skew
    auto future = q;
    future.window = 103;
    randombytes_buf(future.id.data(), future.id.size());
    EXPECT_FALSE(guard.admit(future, 101));
    // Bounded: past its capacity the oldest ids are forgotten, but they are stale by then.
    for (std::size_t i = 0; i < replay_guard::capacity + 10; ++i) {
        randombytes_buf(old.id.data(), old.id.size());
        old.window = 100;
        guard.admit(old, 100);
    }

    answer_budget budget;
    int flooder = 0, others = 0;
    for (int i = 0; i < 1000; ++i) flooder += budget.allow("10.0.0.66", 5000, 50, 5);
    for (int i = 0; i < 20; ++i) others += budget.allow("10.0.0." + std::to_string(i), 5000, 50, 5);
    EXPECT_EQ(flooder, 5);
    EXPECT_EQ(others, 20);  // the legitimate askers are still answered
    EXPECT_TRUE(budget.allow("10.0.0.66", 6001, 50, 5));  // a new second
}

TEST(coordinator_replies, an_agent_reads_them_field_by_field) {
    auto r = pd::coord::read_register_reply(json::parse(R"({"ok":true,"office":"HQ","heartbeat_ms":1,"wan_budget":0})"));
    EXPECT_EQ(r.office, "HQ");
    EXPECT_EQ(r.heartbeat_ms, 200);  // clamped: a coordinator cannot make agents spin
    EXPECT_EQ(r.wan_budget, 0u);
    auto s = pd::coord::read_sources_reply(
        json::parse(R"({"ok":true,"origin_allowed":false,"lan":["10.0.0.2:7400"],"wan":["[fd00::1]:7400"]})"));
    EXPECT_FALSE(s.origin_allowed);
    EXPECT_EQ(s.lan, std::vector<std::string>{"10.0.0.2:7400"});
    EXPECT_EQ(s.wan.size(), 1u);
    std::string key(64, 'b');
    s = pd::coord::read_sources_reply(json::parse(R"({"ok":true,"lan":["10.0.0.2:7400"],"device_keys":{"10.0.0.2:7400":")" + key + "\"}}"));
    EXPECT_EQ(s.device_keys.at("10.0.0.2:7400"), key);
    // A key for a peer it did not list, or one that is not a key, costs the reply.
    for (std::string bad : {R"({"ok":true,"lan":["10.0.0.2:7400"],"device_keys":{"10.0.0.9:1":")" + key + "\"}}",
                            std::string(R"({"ok":true,"lan":["10.0.0.2:7400"],"device_keys":{"10.0.0.2:7400":"zz"}})"),
                            std::string(R"({"ok":true,"lan":["10.0.0.2:7400"],"device_keys":["x"]})")})
        EXPECT_THROW(pd::coord::read_sources_reply(json::parse(bad)), pd::error) << bad;
}

TEST(coordinator_replies, a_hostile_coordinator_costs_one_reply) {
    // Each of these once threw nlohmann's own exceptions through the plugin boundary, or
    // put a line of the attacker's choice into the core's peer list.
    for (const char *bad : {R"({"ok":true,"heartbeat_ms":"soon"})", R"({"ok":true,"wan_budget":-5})", R"({"ok":"yes"})",
                            R"([1,2])", R"({"ok":true,"office":7})"})
        EXPECT_THROW(pd::coord::read_register_reply(json::parse(bad)), pd::error) << bad;
    try {
        pd::coord::read_register_reply(json::parse(R"({"ok":false,"error":"no office"})"));
        FAIL();
    } catch (const pd::error &e) {
        EXPECT_NE(std::string(e.what()).find("no office"), std::string::npos);
    }
    std::string many = R"({"ok":true,"lan":[)";
    for (int i = 0; i < 65; ++i) many += std::string(i ? "," : "") + "\"10.0.0.1:" + std::to_string(1000 + i) + "\"";
    many += "]}";
    for (std::string bad : {std::string(R"({"ok":true,"lan":[1]})"), std::string(R"({"ok":true,"lan":"10.0.0.1:1"})"),
                            std::string(R"({"ok":true,"lan":["10.0.0.1:1\n6.6.6.6:1 wan"]})"),
                            std::string(R"({"ok":true,"wan":["10.0.0.1"]})"), std::string(R"({"ok":true,"origin_allowed":"no"})"),
                            std::string(R"({"ok":false})"), many})
        EXPECT_THROW(pd::coord::read_sources_reply(json::parse(bad)), pd::error) << bad;
}

TEST(agent_config, parses_the_documented_keys) {
    auto c = pd_agent::parse_config(R"({"cache_dir":"/c","control_socket":"/s","quota_percent":50,"log_level":"debug",
        "settings":{"job.piece_size_kib":256,"peer.enabled":true},"plugins":{"origin":{"max_connections":8}},
        "device":{"chassis":"laptop","os_type":"server","free_bytes":5}})",
                                    "agent.json");
    EXPECT_EQ(c.cache_dir, "/c");
    EXPECT_EQ(c.quota_percent, 50u);
    EXPECT_EQ(c.log_level, 3);
    EXPECT_EQ(c.settings.at("job.piece_size_kib"), "256");
    EXPECT_EQ(c.settings.at("peer.enabled"), "1");
    EXPECT_EQ(c.settings.at("plugin.origin.max_connections"), "8");
    EXPECT_EQ(c.device.chassis, 2);
    EXPECT_EQ(c.device.os_type, 2);
    EXPECT_EQ(c.device.free_bytes, 5u);
}

TEST(agent_config, refuses_with_the_key_named) {
    // An unknown chassis once threw std::out_of_range at start: the agent aborted.
    const std::pair<const char *, const char *> cases[] = {
        {R"({"cache_dir":"/c","control_socket":"/s","device":{"chassis":"tower"}})", "device.chassis"},
        {R"({"cache_dir":"/c","control_socket":"/s","device":{"free_bytes":"lots"}})", "device.free_bytes"},
        {R"({"cache_dir":"/c","control_socket":"/s","quota_percent":101})", "quota_percent"},
        {R"({"cache_dir":"/c","control_socket":"/s","quota_bytes":-1})", "quota_bytes"},
        {R"({"cache_dir":"/c","control_socket":"/s","settings":{"x":null}})", "settings.x"},
        {R"({"cache_dir":"/c","control_socket":"/s","settings":{"x":1.5}})", "settings.x"},
        {R"({"cache_dir":"","control_socket":"/s"})", "cache_dir"},
        {R"({"control_socket":"/s"})", "cache_dir"},
        {R"({"cache_dir":"/c","control_socket":"/s","typo":1})", "typo"},
        {R"([])", "JSON object"},
        {R"({"cache_dir":)", "not valid JSON"},
    };
    for (auto &[text, named] : cases) {
        try {
            pd_agent::parse_config(text, "agent.json");
            ADD_FAILURE() << text;
        } catch (const pd_agent::input_error &e) {
            EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
        }
    }
    std::string deep(10000, '[');
    EXPECT_THROW(pd_agent::parse_config("{\"settings\":" + deep, "agent.json"), pd_agent::input_error);
}

TEST(agent_control, requests_are_checked_against_the_command_table) {
    auto r = pd_agent::parse_request(R"({"cmd":"download","manifest":"/m.pdm","pin":true,"id":"a"})");
    EXPECT_EQ(r.cmd, "download");
    EXPECT_EQ(r.args.at("manifest"), "/m.pdm");
    EXPECT_EQ(r.id, "a");
    EXPECT_EQ(pd_agent::parse_request(R"({"cmd":"setting","key":"k","value":{"a":1}})").args.at("value"), json::parse(R"({"a":1})"));
    // A null setting value once threw the agent's config error out of the poll loop: abort.
    const std::pair<const char *, const char *> cases[] = {
        {R"({"cmd":"setting","key":"k","value":null})", "'value'"},
        {R"({"cmd":"job","job":-1})", "'job'"},
        {R"({"cmd":"job","job":"1"})", "'job'"},
        {R"({"cmd":"job"})", "needs the argument 'job'"},
        {R"({"cmd":"download","manifest":"/m","pin":"yes"})", "'pin'"},
        {R"({"cmd":"download","manifest":"/m","dst":"/x"})", "no argument 'dst'"},
        {R"({"cmd":"shutdown"})", "unknown command"},
        {R"({"cmd":42})", "string 'cmd'"},
        {R"(not json)", "not valid JSON"},
    };
    for (auto &[line, named] : cases) {
        try {
            pd_agent::parse_request(line);
            ADD_FAILURE() << line;
        } catch (const pd_agent::input_error &e) {
            EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
        }
    }
    json id;
    EXPECT_THROW(pd_agent::parse_request(R"({"cmd":"nope","id":7})", &id), pd_agent::input_error);
    EXPECT_EQ(id, 7);  // a refusal still carries the caller's id
    EXPECT_THROW(pd_agent::parse_request("{\"cmd\":\"version\",\"id\":" + std::string(5000, '[')), pd_agent::input_error);
}

}  // namespace
