// Pre-staging decisions (docs/coordinator.md "Pre-staging"): which RVP is asked for what and
// when (parents first, in waves), how progress and rates are reported per office, which
// office is raised to the foreground class for its deadline, and which plans are refused at
// submission. A real coordinator on loopback with an injected clock; the lab runs the same
// with real agents (tests/python/test_prestage.py).
#include "coordinator_fixture.h"

#include <map>

using namespace pd::coord;
using namespace pdtest;

TEST(prestaging, each_office_is_asked_once_its_parent_has_begun_and_progress_is_reported_per_office) {
    std::int64_t now = 1000000;
    server_options o = running_server::legacy();
    o.now_ms = [&] { return now; };
    o.trust_claimed_addresses = true;  // one test connection speaks for devices in four offices
    running_server s(o);
    auto admin = s.admin();
    const char *csv = "name,parent,type,ranges\nCentral Office,,Default,10.0.0.0/24\n"
                      "Branch A,Central Office,Default,10.1.0.0/24\nBranch A WiFi,Branch A,WiFi,10.1.2.0/24\n"
                      "Branch B,Central Office,Default,10.2.0.0/24\nVPN,Central Office,VPN,10.8.0.0/16\n";
    ASSERT_TRUE(admin.call({{"op", "admin.topology.import"}, {"csv", csv}}).value("ok", false));
    pdtest::temp_dir share;
    published pkg;
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> capi(connect(s), pd_admin_free);
    publish(capi.get(), pkg, share.path(), "pkg.bin", 64 * 65536, 7);  // 64 blocks
    auto cid = hex_of(pkg.id());

    auto agent = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    std::map<std::string, std::string> ip_of;
    auto reg = [&](const std::string &id, const std::string &ip) {
        ip_of[id] = ip;
        agent.call({{"op", "register"}, {"device_id", id}, {"address", ip}, {"listen", ip + ":34760"}});
    };
    reg("c1", "10.0.0.5");
    reg("a1", "10.1.0.5");
    reg("w1", "10.1.2.20");
    reg("b1", "10.2.0.5");
    auto due = [&](const std::string &id, json progress = json::array()) {
        auto r = agent.call({{"op", "heartbeat"}, {"device_id", id}, {"address", ip_of[id]}, {"progress", progress}});
        return r.value("prestage", json::array()).size();
    };

    // Refused with the reason: what cannot be pre-staged never becomes a silent no-op.
    auto ask = [&](json offices, std::int64_t deadline, const std::string &content) {
        return admin.call({{"op", "admin.prestage"}, {"content", content}, {"offices", offices}, {"deadline_ms", deadline}});
    };
    EXPECT_EQ(ask({"Nowhere"}, now + 1000, cid)["error"], "no office 'Nowhere' in the topology");
    EXPECT_NE(ask({"VPN"}, now + 1000, cid)["error"].get<std::string>().find("is a VPN office"), std::string::npos);
    EXPECT_EQ(ask(json::array(), now - 1, cid)["error"], "the deadline has passed");
    EXPECT_NE(ask(json::array(), now + 1000, std::string(64, 'e'))["error"].get<std::string>().find("is not in the catalogue"),
              std::string::npos);

    // The WiFi office brings its ancestors along, parents first; Branch B is not asked.
    auto accepted = ask({"Branch A WiFi"}, now + 3600 * 1000, cid);
    ASSERT_TRUE(accepted.value("ok", false)) << accepted.dump();
    EXPECT_EQ(accepted["offices"], json({"Central Office", "Branch A", "Branch A WiFi"}));
    EXPECT_EQ(due("c1"), 1u);  // the top office takes the origin
    EXPECT_EQ(due("a1"), 0u);  // its parent has nothing yet
    EXPECT_EQ(due("b1"), 0u);  // not asked
    EXPECT_EQ(due("c1", json{{{"content", cid}, {"verified_blocks", 8}}}), 1u);
    EXPECT_EQ(due("a1"), 1u);  // the parent has begun: the child streams from it
    EXPECT_EQ(due("w1"), 0u);
    now += 1000;
    EXPECT_EQ(due("a1", json{{{"content", cid}, {"verified_blocks", 4}}}), 1u);
    EXPECT_EQ(due("w1"), 1u);
    now += 2000;
    due("a1", json{{{"content", cid}, {"verified_blocks", 20}}});  // 16 blocks (1 MiB) in 2 s

    auto status = admin.call({{"op", "admin.prestage.status"}, {"content", cid}})["prestages"];
    ASSERT_EQ(status.size(), 1u);
    EXPECT_FALSE(status[0]["done"].get<bool>());
    std::map<std::string, json> rows;
    for (auto &r : status[0]["offices"]) rows[r["office"]] = r;
    EXPECT_EQ(rows["Central Office"]["state"], "pulling");
    EXPECT_EQ(rows["Branch A"]["rate_bytes_per_s"], 524288);
    EXPECT_EQ(rows["Branch A"]["expected_finish_ms"], now + 44LL * 65536 * 1000 / 524288);
    EXPECT_EQ(rows["Branch A WiFi"]["state"], "asked");
    EXPECT_EQ(rows["Branch A WiFi"]["upstream"], "Branch A");

    // A completed office is not asked again, a late progress report does not undo it, and
    // the bytes its jobs report are kept per office.
    agent.call({{"op", "holding"}, {"device_id", "c1"}, {"content", cid}, {"complete", true}});
    agent.call({{"op", "job_stats"}, {"device_id", "c1"}, {"content", cid}, {"bytes", {{"origin", 64 * 65536}}}});
    EXPECT_EQ(due("c1", json{{{"content", cid}, {"verified_blocks", 9}}}), 0u);
    status = admin.call({{"op", "admin.prestage.status"}})["prestages"];
    EXPECT_EQ(status[0]["offices"][0]["state"], "done");
    EXPECT_EQ(status[0]["offices"][0]["bytes"]["origin"], 64 * 65536);

    // Withdrawn: nobody is asked any more; the state survives a restart until then.
    EXPECT_TRUE(admin.call({{"op", "admin.prestage.cancel"}, {"content", cid}}).value("ok", false));
    EXPECT_EQ(due("a1"), 0u);
    EXPECT_FALSE(admin.call({{"op", "admin.prestage.cancel"}, {"content", cid}}).value("ok", true));
}

TEST(prestaging, a_slow_office_is_raised_before_its_deadline_waves_hold_back_siblings_and_impossible_plans_are_refused) {
    std::int64_t now = 1000000;
    std::vector<std::string> notes;
    server_options o = running_server::legacy();
    o.now_ms = [&] { return now; };
    o.trust_claimed_addresses = true;
    o.wave_width = 1;
    o.heartbeat_ms = 1000;
    o.audit = [&](const std::string &line) {
        if (line.find("raised to the foreground") != std::string::npos) notes.push_back(line);
    };
    running_server s(o);
    auto admin = s.admin();
    const char *csv = "name,parent,type,ranges,wan_budget\nCentral Office,,Default,10.0.0.0/24,\n"
                      "Branch A,Central Office,Default,10.1.0.0/24,\nBranch B,Central Office,Default,10.2.0.0/24,\n"
                      "Branch C,Central Office,Default,10.3.0.0/24,1000\n"
                      "Branch C Annex,Branch C,Default,10.4.0.0/24,\n";
    ASSERT_TRUE(admin.call({{"op", "admin.topology.import"}, {"csv", csv}}).value("ok", false));
    pdtest::temp_dir share;
    published pkg;
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> capi(connect(s), pd_admin_free);
    publish(capi.get(), pkg, share.path(), "pkg.bin", 64 * 65536, 9);  // 4 MiB, 64 blocks
    auto cid = hex_of(pkg.id());
    auto agent = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    std::map<std::string, std::string> ip_of = {{"c1", "10.0.0.5"}, {"a1", "10.1.0.5"}, {"b1", "10.2.0.5"}, {"x1", "10.3.0.5"}};
    for (auto &[id, ip] : ip_of) agent.call({{"op", "register"}, {"device_id", id}, {"address", ip}, {"listen", ip + ":34760"}});
    auto beat = [&](const std::string &id, std::uint64_t blocks = 0) {
        json progress = json::array();
        if (blocks) progress.push_back({{"content", cid}, {"verified_blocks", blocks}});
        return agent.call({{"op", "heartbeat"}, {"device_id", id}, {"address", ip_of[id]}, {"progress", progress}});
    };
    auto asked = [](const json &r, const char *key) { return r.value(key, json::array()).size(); };

    // Branch C's WAN budget (1,000 bytes/s) cannot carry 4 MiB in an hour: refused, with figures.
    auto refused = admin.call({{"op", "admin.prestage"}, {"content", cid}, {"offices", {"Branch C"}}, {"deadline_ms", now + 3600 * 1000}});
    EXPECT_NE(refused.value("error", std::string()).find("office 'Branch C' cannot have it by the deadline: 4194304 bytes over links "
                                                         "that carried at most 1000 bytes/s need about 4196 s"),
              std::string::npos)
        << refused.dump();
    // Below it, an office whose own link is unmeasured is refused all the same: its content
    // comes through Branch C's budget.
    refused = admin.call({{"op", "admin.prestage"}, {"content", cid}, {"offices", {"Branch C Annex"}}, {"deadline_ms", now + 3600 * 1000}});
    EXPECT_NE(refused.value("error", std::string()).find("office 'Branch C' cannot have it by the deadline"), std::string::npos)
        << refused.dump();

    auto ok = admin.call({{"op", "admin.prestage"}, {"content", cid}, {"offices", {"Branch A", "Branch B"}}, {"deadline_ms", now + 60000}});
    ASSERT_TRUE(ok.value("ok", false)) << ok.dump();
    EXPECT_EQ(ok["unmeasured"], json({"Branch A", "Branch B"}));  // nothing measured on their links yet
    EXPECT_EQ(asked(beat("c1", 64), "prestage"), 1u);
    agent.call({{"op", "holding"}, {"device_id", "c1"}, {"content", cid}, {"complete", true}});
    EXPECT_EQ(asked(beat("a1"), "prestage"), 1u);
    EXPECT_EQ(asked(beat("b1"), "prestage"), 0u);  // a wave of one: Branch B waits for Branch A

    // Branch A crawls (a user's traffic fills its link, the background class yields): 2 blocks
    // in 4 s would take 4 minutes for the rest; the deadline is in a minute. Raised, once, with
    // a note; until the rate is known it is left alone.
    now += 1000;
    EXPECT_EQ(asked(beat("a1", 1), "foreground"), 0u);
    now += 3000;
    auto raised = beat("a1", 3);
    EXPECT_EQ(asked(raised, "foreground"), 1u) << raised.dump();
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("office 'Branch A' raised to the foreground class"), std::string::npos) << notes[0];
    now += 1000;
    EXPECT_EQ(asked(beat("a1", 40), "foreground"), 1u);  // raised for good
    now += 1000;
    beat("a1", 63);
    agent.call({{"op", "holding"}, {"device_id", "a1"}, {"content", cid}, {"complete", true}});
    now += 1000;
    EXPECT_EQ(asked(beat("a1"), "prestage"), 0u);

    // Branch B's turn: it keeps pace, so it stays in the background class.
    auto b = beat("b1");
    EXPECT_EQ(asked(b, "prestage"), 1u);
    for (std::uint64_t blocks : {16, 32, 48, 60}) {
        now += 1000;
        b = beat("b1", blocks);
        EXPECT_EQ(asked(b, "foreground"), 0u) << blocks;
    }
    auto status = admin.call({{"op", "admin.prestage.status"}, {"content", cid}})["prestages"][0]["offices"];
    std::map<std::string, json> rows;
    for (auto &r : status) rows[r["office"]] = r;
    EXPECT_TRUE(rows["Branch A"]["raised"].get<bool>());
    EXPECT_FALSE(rows["Branch B"]["raised"].get<bool>());
    EXPECT_EQ(notes.size(), 1u);

    // Branch A's link carried a whole pull at a known rate (61 blocks in 4 s, ~1 MB/s): a plan
    // that needs it faster is refused at submission.
    refused = admin.call({{"op", "admin.prestage"}, {"content", cid}, {"offices", {"Branch A"}}, {"deadline_ms", now + 2000}});
    EXPECT_NE(refused.value("error", std::string()).find("office 'Branch A' cannot have it by the deadline"), std::string::npos)
        << refused.dump();
}
