// The console's parts without a browser (docs/console.md): logins and sessions against a
// guesser, the request parsing against hostile bytes, and the coordinator's rollout, office,
// fleet-key and metrics answers against real agents' reports. The pages themselves and the
// HTTP server are tested in a real browser and against raw clients by test_console.py.
#include "coordinator_fixture.h"

#include "coordinator/console/request.h"
#include "coordinator/console/sessions.h"
#include "coordinator_client/protocol.h"

#include <gtest/gtest.h>

#include <future>

using namespace pd::coord;
using namespace pd::coord::console;

TEST(console_sessions, guessing_is_limited_per_address_and_per_name_until_the_window_ends) {
    session_limits limits;
    limits.max_failures = 3;
    limits.failure_window_ms = 60000;
    sessions s(limits);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(s.retry_after_ms("10.0.0.9", "admin", 1000), 0);
        s.failed("10.0.0.9", "admin", 1000);
    }
    EXPECT_EQ(s.retry_after_ms("10.0.0.9", "admin", 1000), 60000);
    // The name is locked from every address, and the address for every name.
    EXPECT_GT(s.retry_after_ms("10.0.0.10", "admin", 2000), 0);
    EXPECT_GT(s.retry_after_ms("10.0.0.9", "other", 2000), 0);
    EXPECT_EQ(s.retry_after_ms("10.0.0.10", "other", 2000), 0);
    // The window ends.
    EXPECT_EQ(s.retry_after_ms("10.0.0.9", "admin", 61000), 0);
    // Memory stays bounded against a guesser rotating addresses and names.
    session_limits small = limits;
    small.max_tracked = 50;
    sessions t(small);
    for (int i = 0; i < 10000; ++i) t.failed("ip" + std::to_string(i), "name" + std::to_string(i), i);
    EXPECT_EQ(t.retry_after_ms("ip9999", "x", 10000), 0);  // one failure each: nobody locked, nothing grew
}

TEST(console_sessions, sessions_end_when_idle_old_closed_or_crowded_out_and_tokens_are_unguessable) {
    session_limits limits;
    limits.idle_ms = 1000;
    limits.lifetime_ms = 5000;
    limits.max_sessions = 2;
    sessions s(limits);
    auto a = s.open("alice", "10.0.0.1", 0);
    ASSERT_EQ(a.size(), 64u);
    ASSERT_NE(s.find(a, 500), nullptr);
    EXPECT_EQ(s.find(a, 500)->admin_name, "alice");
    EXPECT_EQ(s.find(a, 500)->csrf_token.size(), 64u);
    EXPECT_EQ(s.find(a, 1600), nullptr);  // idle for 1.1 s
    auto b = s.open("bob", "10.0.0.1", 0);
    for (std::int64_t t = 900; t < 5000; t += 900) ASSERT_NE(s.find(b, t), nullptr) << t;
    EXPECT_EQ(s.find(b, 5400), nullptr);  // used all along, but older than its lifetime
    // The oldest-used session makes room for a new one.
    auto c1 = s.open("carol", "x", 10000), c2 = s.open("carol", "x", 10001);
    s.find(c1, 10002);
    auto d = s.open("dave", "x", 10003);
    EXPECT_NE(s.find(c1, 10004), nullptr);
    EXPECT_EQ(s.find(c2, 10004), nullptr);
    EXPECT_NE(s.find(d, 10004), nullptr);
    s.close_all_of("carol");
    EXPECT_EQ(s.find(c1, 10005), nullptr);
    // What is not a token finds nothing.
    for (auto bad : {std::string(), std::string(64, 'a'), d.substr(0, 63), d + "0", std::string(1 << 16, 'f')})
        EXPECT_EQ(s.find(bad, 10006), nullptr);
    EXPECT_NE(s.open("eve", "x", 10007), s.open("eve", "x", 10007));
}

TEST(console_sessions, passwords_are_argon2id_hashes_and_short_ones_are_refused) {
    auto hash = hash_password("correct horse battery staple");
    EXPECT_EQ(hash.rfind("$argon2id$", 0), 0u) << hash;
    EXPECT_TRUE(password_matches(hash, "correct horse battery staple"));
    EXPECT_FALSE(password_matches(hash, "correct horse battery stapl"));
    EXPECT_FALSE(password_matches("", ""));
    EXPECT_FALSE(password_matches("not a hash", "x"));
    EXPECT_FALSE(password_matches(std::string(4096, '$'), "x"));
    EXPECT_THROW(hash_password("short"), pd::error);
    EXPECT_THROW(hash_password(std::string(1025, 'x')), pd::error);
}

TEST(console_request, cookies_queries_and_paths_as_an_attacker_writes_them) {
    EXPECT_EQ(cookie_value("a=1; pd_console=abc; b=2", "pd_console"), "abc");
    EXPECT_EQ(cookie_value("pd_consolex=1;pd_console=z", "pd_console"), "z");
    EXPECT_EQ(cookie_value("xpd_console=1", "pd_console"), "");
    EXPECT_EQ(cookie_value(";;;", "pd_console"), "");
    auto q = query_fields("content=ab%20cd&x=+1&empty=&flag");
    ASSERT_TRUE(q);
    EXPECT_EQ((*q)["content"], "ab cd");
    EXPECT_EQ((*q)["x"], " 1");
    EXPECT_EQ((*q)["empty"], "");
    EXPECT_EQ((*q)["flag"], "");
    for (auto bad : {"a=%", "a=%4", "a=%zz", "=x", "op=admin.fleet_key.regenerate"}) EXPECT_FALSE(query_fields(bad)) << bad;
    EXPECT_EQ(operation_of("/api/v1/topology/import"), "admin.topology.import");
    EXPECT_EQ(operation_of("/api/v1/fleet_key/regenerate"), "admin.fleet_key.regenerate");
    for (auto bad : {"/api/v1/", "/api/v1/../x", "/api/v1/a//b", "/api/v1/a/", "/api/v1//a", "/api/v1/A", "/api/v1/a.b",
                     "/api/v2/health", "/api/v1/health%00", "/api/v1/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"})
        EXPECT_FALSE(operation_of(bad)) << bad;
}

namespace {

// Two offices, four devices, one content of 8 blocks of 1 MiB in the catalogue.
struct rollout_fleet {
    pdtest::running_server s{options()};
    coordinator_client agent{s.srv->bound_address(), s.key.data(), 3000};
    coordinator_client admin = s.admin();
    std::string content = std::string(64, 'c');
    static server_options options() {
        auto o = pdtest::running_server::legacy();
        o.trust_claimed_addresses = true;
        o.heartbeat_ms = 1000;
        return o;
    }
    rollout_fleet() {
        auto topo = admin.call({{"op", "admin.topology.import"},
                                {"csv", "name,parent,type,ranges,wan_budget\nCentral Office,,Default,10.0.0.0/24,\n"
                                        "Branch,Central Office,Default,10.1.0.0/24,1000000\n"}});
        EXPECT_TRUE(topo.value("ok", false)) << topo.dump();
        for (auto [id, address] : {std::pair{"c1", "10.0.0.2"}, {"c2", "10.0.0.3"}, {"b1", "10.1.0.2"}, {"b2", "10.1.0.3"}})
            agent.call({{"op", "register"}, {"device_id", id}, {"name", std::string("pc-") + id}, {"address", address},
                        {"listen", std::string(address) + ":7400"}, {"version", "0.4.0"}});
        auto p = admin.call({{"op", "admin.publish"}, {"content", content}, {"name", "app.msi"}, {"size", 8 << 20}, {"block_count", 8}});
        EXPECT_TRUE(p.value("ok", false)) << p.dump();
    }
    json progress(const std::string &device, std::uint64_t blocks) {
        return agent.call({{"op", "heartbeat"}, {"device_id", device}, {"address", device[0] == 'c' ? "10.0.0.2" : "10.1.0.2"},
                           {"progress", json::array({{{"content", content}, {"verified_blocks", blocks}}})}});
    }
};

}  // namespace

TEST(coordinator_rollout, each_office_reports_its_devices_progress_rate_and_bytes_by_source_and_the_saving) {
    rollout_fleet f;
    f.progress("b1", 4);
    f.progress("b2", 2);
    f.agent.call({{"op", "holding"}, {"device_id", "c1"}, {"content", f.content}, {"complete", true}});
    auto r = f.admin.call({{"op", "admin.rollouts"}})["contents"][0];
    std::map<std::string, json> by_office;
    for (auto &o : r["offices"]) by_office[o["office"]] = o;
    EXPECT_EQ(by_office["Central Office"]["complete"], 1);
    EXPECT_DOUBLE_EQ(by_office["Central Office"]["percent"].get<double>(), 50.0);  // one of two devices
    EXPECT_EQ(by_office["Branch"]["partial"], 2);
    EXPECT_DOUBLE_EQ(by_office["Branch"]["percent"].get<double>(), 100.0 * 6 / 16);
    // The rate: 6 MiB reported in the Branch within the last three heartbeats.
    EXPECT_EQ(by_office["Branch"]["rate_bytes_per_s"], (6u << 20) / 3);
    // A progress report that goes backwards (a restarted job) adds nothing.
    f.progress("b1", 1);
    EXPECT_EQ(f.admin.call({{"op", "admin.offices"}})["offices"][1]["rate_bytes_per_s"], (6u << 20) / 3);

    // The job reports: bytes by source, the local cache included; the saving against every
    // device fetching the whole content from the origin.
    f.agent.call({{"op", "job_stats"}, {"device_id", "c1"}, {"content", f.content}, {"bytes", {{"origin", 8 << 20}}}});
    for (auto id : {"b1", "b2"}) {
        f.agent.call({{"op", "holding"}, {"device_id", id}, {"content", f.content}, {"complete", true}});
        f.agent.call({{"op", "job_stats"}, {"device_id", id}, {"content", f.content},
                      {"bytes", {{"wan", id == std::string("b1") ? 8 << 20 : 0}, {"lan", id == std::string("b1") ? 0 : 6 << 20},
                                 {"local", id == std::string("b1") ? 0 : 2 << 20}}}});
    }
    r = f.admin.call({{"op", "admin.rollouts"}, {"content", f.content}})["contents"][0];
    by_office.clear();
    for (auto &o : r["offices"]) by_office[o["office"]] = o;
    EXPECT_EQ(r["holders"], 3);
    EXPECT_EQ(by_office["Branch"]["bytes"], json({{"origin", 0}, {"wan", 8 << 20}, {"lan", 6 << 20}, {"local", 2 << 20}}));
    EXPECT_EQ(r["default_bytes"], 3 * (8 << 20));
    EXPECT_NEAR(r["saved_fraction"].get<double>(), 1.0 - 2.0 / 3.0, 1e-9);

    // The office tree: devices, RVP, WAN budget.
    auto offices = f.admin.call({{"op", "admin.offices"}})["offices"];
    ASSERT_EQ(offices.size(), 2u);
    EXPECT_EQ(offices[1]["name"], "Branch");
    EXPECT_EQ(offices[1]["parent"], "Central Office");
    EXPECT_EQ(offices[1]["wan_budget"], 1000000);
    EXPECT_EQ(offices[1]["device_count"], 2);
    EXPECT_FALSE(offices[1]["rvp"].get<std::string>().empty());
    EXPECT_TRUE(offices[1]["devices"].empty());  // devices are listed for the office asked about
    auto branch = f.admin.call({{"op", "admin.offices"}, {"office", "Branch"}})["offices"];
    EXPECT_TRUE(branch[0]["devices"].empty());
    ASSERT_EQ(branch[1]["devices"].size(), 2u);
    EXPECT_EQ(branch[1]["devices"][0]["supported"], true);
    EXPECT_EQ(branch[1]["devices"][0]["name"], "pc-b1");
    // The totals survive a restart of the coordinator's rollout state (they are in the store).
    EXPECT_EQ(f.s.store->content_stats().size(), 2u);
    // A retired content leaves the report.
    f.admin.call({{"op", "admin.contents.retire"}, {"content", f.content}});
    EXPECT_TRUE(f.admin.call({{"op", "admin.rollouts"}})["contents"].empty());

    // A viewer sees all of it.
    EXPECT_TRUE(f.s.admin("viewer").call({{"op", "admin.offices"}}).value("ok", false));
}

TEST(coordinator_rollout, metrics_count_what_agents_asked_and_each_office_s_bytes) {
    rollout_fleet f;
    f.agent.call({{"op", "sources"}, {"device_id", "b1"}, {"content", f.content}});
    f.progress("b1", 3);
    f.agent.call({{"op", "job_stats"}, {"device_id", "b2"}, {"content", f.content}, {"bytes", {{"lan", 1234}}}});
    std::string text;
    std::promise<std::string> got;
    boost::asio::post(f.s.io, [&] { got.set_value(f.s.srv->metrics()); });
    text = got.get_future().get();
    for (auto line : {"pd_coordinator_registrations_total 4", "pd_coordinator_heartbeats_total 1", "pd_coordinator_lookups_total 1",
                      "pd_coordinator_job_reports_total 1", "pd_coordinator_devices 4", "pd_coordinator_contents 1",
                      "pd_coordinator_office_bytes_total{office=\"Branch\",source=\"lan\"} 1234",
                      "pd_coordinator_office_active_transfers{office=\"Branch\"} 1",
                      "# TYPE pd_coordinator_office_receive_bytes_per_second gauge"})
        EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
}

TEST(coordinator_trust, regenerating_the_fleet_key_cuts_off_agents_on_the_old_one_and_lists_them) {
    rollout_fleet f;
    // A viewer may not, and nobody without saying they know what it breaks.
    EXPECT_NE(f.s.admin("viewer").call({{"op", "admin.fleet_key.regenerate"}, {"confirm", "regenerate"}}).value("error", std::string()).find("viewer"),
              std::string::npos);
    EXPECT_FALSE(f.admin.call({{"op", "admin.fleet_key.regenerate"}}).value("ok", true));
    auto r = f.admin.call({{"op", "admin.fleet_key.regenerate"}, {"confirm", "regenerate"}});
    ASSERT_TRUE(r.value("ok", false)) << r.dump();
    EXPECT_GE(r["agent_connections_closed"].get<int>(), 1);
    auto fresh = pd::parse_fleet_key(r["fleet_key"].get<std::string>());
    ASSERT_TRUE(fresh);
    EXPECT_EQ(f.s.store->meta("fleet_key"), r["fleet_key"].get<std::string>());
    // The old key no longer opens a channel; the new one does; the failure is listed.
    EXPECT_THROW(coordinator_client(f.s.srv->bound_address(), f.s.key.data(), 3000), pd::error);
    coordinator_client renewed(f.s.srv->bound_address(), fresh->data(), 3000);
    EXPECT_TRUE(renewed.call({{"op", "heartbeat"}, {"device_id", "c1"}}).value("ok", false));
    auto mismatches = f.admin.call({{"op", "admin.health"}})["key_mismatches"];
    ASSERT_EQ(mismatches.size(), 1u) << mismatches.dump();
    EXPECT_EQ(mismatches[0]["address"], "127.0.0.1");
    EXPECT_GE(mismatches[0]["attempts"].get<int>(), 1);
}
