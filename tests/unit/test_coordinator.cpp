// The coordinator: topology CSV, RVP election, the SQLite store across restarts, where a
// device fetches from in the office tree, and the server over real sockets.
#include "coordinator_fixture.h"
#include "helpers.h"

#include "coordinator/election.h"
#include "coordinator_client/protocol.h"
#include "coordinator/registry.h"
#include "coordinator/server.h"
#include "coordinator/store.h"
#include "coordinator/topology.h"
#include "crypto/hash.h"
#include "platform/socket.h"
#include "util/hex.h"

#include <peerdist/admin.h>
#include <cstring>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include <sodium.h>

#include <thread>
#include <sys/socket.h>
#include <unistd.h>

using namespace pd::coord;
using pdtest::add_admin_to;
using pdtest::public_key_of;
using pdtest::audit_log;
using pdtest::running_server;

namespace {

const char *good_csv =
    "# a comment\n"
    "name,parent,type,ranges\n"
    "Central Office,,Default,10.0.0.0/24\n"
    "Branch A,Central Office,Default,10.1.0.0/24;10.1.1.0/24\n"
    "Branch A WiFi,Branch A,WiFi,10.1.2.10-10.1.2.200\n"
    "Branch B,Central Office,Default,10.2.0.0/24\n"
    "\"VPN, remote\",Central Office,VPN,10.8.0.0/16\n";

std::vector<std::string> problems_of(const std::string &csv) {
    try {
        topology::parse_csv(csv);
    } catch (const topology_error &e) {
        return e.problems();
    }
    return {};
}

bool mentions(const std::vector<std::string> &problems, const std::string &needle) {
    for (auto &p : problems)
        if (p.find(needle) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST(topology, parses_locates_and_round_trips) {
    auto t = topology::parse_csv(good_csv);
    ASSERT_EQ(t.offices().size(), 5u);
    EXPECT_EQ(t.locate("10.1.1.77")->name, "Branch A");
    EXPECT_EQ(t.locate("10.1.2.10")->name, "Branch A WiFi");
    EXPECT_EQ(t.locate("10.1.2.9"), nullptr);
    EXPECT_EQ(t.locate("10.8.200.1")->name, "VPN, remote");
    EXPECT_EQ(t.locate("10.8.200.1")->type, office_type::vpn);
    auto path = t.path_to_root(*t.find("Branch A WiFi"));
    ASSERT_EQ(path.size(), 3u);
    EXPECT_EQ(path[2]->name, "Central Office");
    auto again = topology::parse_csv(t.to_csv());
    EXPECT_EQ(again.to_csv(), t.to_csv());
    EXPECT_EQ(again.find("VPN, remote")->ranges[0].text, "10.8.0.0/16");
}

TEST(topology, every_problem_is_reported_with_its_line) {
    auto p = problems_of(
        "name,parent,type,ranges\n"           // 1
        "Central Office,,Default,10.0.0.0/24\n"  // 2
        "A,Central Office,Default,10.1.0.0/24\n"  // 3
        "A,Central Office,Default,10.9.0.0/24\n"  // 4 duplicate
        "B,Nowhere,Default,10.2.0.0/24\n"         // 5 unknown parent
        "C,Central Office,Default,10.1.0.128/25\n"  // 6 overlaps A
        "D,Central Office,Default,10.1.300.0/24\n"  // 7 bad address
        "E,F,Default,\n"                          // 8 cycle E -> F -> E
        "F,E,Default,\n"                          // 9
        "G,Central Office,Satellite,\n"           // 10 bad type
        "H,Central Office\n"                      // 11 field count
        "I,Central Office,Default,10.3.0.7/24\n");  // 12 host bits set
    EXPECT_TRUE(mentions(p, "line 4: duplicate office name 'A' (first on line 3)"));
    EXPECT_TRUE(mentions(p, "line 5: unknown parent 'Nowhere'"));
    EXPECT_TRUE(mentions(p, "line 6: range 10.1.0.128/25 of 'C' overlaps 10.1.0.0/24 of 'A' (line 3)"));
    EXPECT_TRUE(mentions(p, "line 7: bad address range '10.1.300.0/24'"));
    EXPECT_TRUE(mentions(p, "line 8: office 'E' is in a cycle: E -> F -> E"));
    EXPECT_TRUE(mentions(p, "line 10: unknown office type 'Satellite'"));
    EXPECT_TRUE(mentions(p, "line 11: expected 4 fields"));
    EXPECT_TRUE(mentions(p, "line 12: bad address range '10.3.0.7/24'"));
    EXPECT_TRUE(mentions(problems_of("name,parent,type,ranges\nA,,Default,\nB,,Default,\n"), "line 3: second root office 'B'"));
    EXPECT_TRUE(mentions(problems_of("office,up\n"), "line 1: expected the header"));
}

TEST(topology, automatic_has_one_office_per_subnet_under_the_central_office) {
    auto t = topology::automatic({"10.1.0.5", "10.1.0.9", "10.2.0.5", "fd00::1"});
    ASSERT_EQ(t.offices().size(), 4u);
    EXPECT_EQ(t.locate("10.1.0.200")->name, "Subnet 10.1.0.0/24");
    EXPECT_EQ(t.locate("10.1.0.200")->parent, topology::root_name);
    EXPECT_EQ(t.locate("fd00::abcd")->name, "Subnet fd00::/64");
}

TEST(election, follows_the_documented_order) {
    election_policy strict{1};
    candidate base;
    base.device_id = "b";
    base.free_bytes = 100;
    auto better = [&](candidate a, candidate b) { return ranks_before(a, b, strict); };
    candidate more_space = base;
    more_space.free_bytes = 101;
    EXPECT_TRUE(better(more_space, base));
    candidate preferred = base;
    preferred.preferred = true;
    EXPECT_TRUE(better(preferred, base));
    EXPECT_TRUE(better(more_space, preferred));  // free space comes first
    candidate desktop = base, laptop = base;
    desktop.chassis = 1;
    laptop.chassis = 2;
    EXPECT_TRUE(better(desktop, laptop));
    EXPECT_TRUE(better(preferred, desktop));  // preferred comes before chassis
    candidate server = laptop, workstation = laptop;
    server.os_type = 2;
    workstation.os_type = 1;
    EXPECT_TRUE(better(server, workstation));
    EXPECT_TRUE(better(desktop, server));  // chassis comes before OS type
    candidate old = workstation, young = workstation;
    old.uptime_seconds = 1000;
    young.uptime_seconds = 10;
    EXPECT_TRUE(better(old, young));
    candidate roomy = young;
    roomy.usable_free_bytes = 5;
    EXPECT_TRUE(better(roomy, young));
    EXPECT_TRUE(better(old, roomy));  // uptime before usable free space
    // Buckets: 100 and 101 bytes tie in a 1 GiB bucket, so the preferred device wins.
    EXPECT_TRUE(ranks_before(preferred, more_space, election_policy{}));
    std::vector<candidate> all{base, preferred, laptop};
    EXPECT_EQ(elect(all, election_policy{}), 1);
    EXPECT_EQ(elect({}, election_policy{}), -1);
}

TEST(coordinator_store, state_survives_a_restart_and_foreign_files_are_refused) {
    pdtest::temp_dir dir;
    auto db = dir / "coord.db";
    {
        auto s = open_sqlite_store(db);
        s->set_meta("server_id", "abc");
        device_record d;
        d.id = "dev1";
        d.name = "pc-1";
        d.free_bytes = 42;
        s->put_device(d);
        s->put_contents({{{"c1", "pkg", 10, 1, "http://x/a\nhttp://y/a", 5, "", 0}, "manifest bytes"}});
        s->put_holding({"dev1", "c1", 1, true});
        s->put_group({"g", {"pc-1"}, {"c1"}});
        s->add_stats({"Branch A", 1, 2, 3});
        s->add_stats({"Branch A", 1, 2, 3});
    }
    auto s = open_sqlite_store(db);
    EXPECT_EQ(s->meta("server_id").value(), "abc");
    ASSERT_EQ(s->devices().size(), 1u);
    EXPECT_EQ(s->devices()[0].free_bytes, 42u);
    EXPECT_EQ(s->contents().at(0).origins, "http://x/a\nhttp://y/a");
    EXPECT_TRUE(s->holdings().at(0).complete);
    EXPECT_EQ(s->groups().at(0).devices, std::vector<std::string>{"pc-1"});
    EXPECT_EQ(s->stats().at(0).wan_bytes, 4u);
    EXPECT_EQ(s->check(), "ok");
    // A device's cache database is not a coordinator database.
    pd_session *sess = nullptr;
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    auto cache = dir / "cache";
    o.cache_dir = cache.c_str();
    ASSERT_EQ(pd_session_new(&sess, &o), PD_OK);
    pd_session_free(sess);
    try {
        open_sqlite_store(dir / "cache/peerdist.db");
        FAIL() << "a cache database was accepted";
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_INVALID);
    }
}

namespace {

struct fleet_registry {
    pdtest::temp_dir dir;
    std::unique_ptr<coordinator_store> store = open_sqlite_store(dir / "c.db");
    registry reg{*store, election_policy{1}, 15000};
    std::int64_t now = 1000000;

    void add(const std::string &id, const std::string &ip, std::uint64_t free_bytes = 100) {
        device_record d;
        d.id = id;
        d.name = "host-" + id;
        d.address = ip;
        d.listen = ip + ":34760";
        d.free_bytes = free_bytes;
        reg.register_device(d, now);
    }
};

const std::string cid(64, 'a');

}  // namespace

TEST(registry, the_top_office_takes_the_origin_rvps_pull_over_the_wan_members_stay_inside) {
    fleet_registry f;
    f.reg.import_topology(good_csv);
    f.add("c1", "10.0.0.11");
    f.add("c2", "10.0.0.12");
    f.add("a1", "10.1.0.11", 50);
    f.add("a2", "10.1.0.12", 500);  // most free space: Branch A's RVP
    f.add("a3", "10.1.1.13", 70);
    f.add("w1", "10.1.2.20");
    f.add("v1", "10.8.0.5");
    f.add("lost", "192.168.9.9");

    auto top = f.reg.sources("c1", cid, f.now);
    EXPECT_EQ(top.role, "top");
    EXPECT_TRUE(top.origin_allowed);
    EXPECT_EQ(top.lan_peers, std::vector<std::string>{"10.0.0.12:34760"});
    EXPECT_TRUE(top.wan_peers.empty());

    auto rvp = f.reg.sources("a2", cid, f.now);
    EXPECT_EQ(rvp.role, "rvp");
    EXPECT_FALSE(rvp.origin_allowed);
    EXPECT_EQ(rvp.wan_peers, (std::vector<std::string>{"10.0.0.11:34760", "10.0.0.12:34760"}));
    EXPECT_EQ(rvp.lan_peers.size(), 2u);

    auto member = f.reg.sources("a1", cid, f.now);
    EXPECT_EQ(member.role, "member");
    EXPECT_EQ(member.rvp, "a2");
    EXPECT_FALSE(member.origin_allowed);
    EXPECT_TRUE(member.wan_peers.empty());

    // The WiFi office below Branch A pulls from Branch A, not from the Central Office.
    auto wifi = f.reg.sources("w1", cid, f.now);
    EXPECT_EQ(wifi.role, "rvp");
    EXPECT_EQ(wifi.type, office_type::wifi);
    EXPECT_EQ(wifi.wan_peers.size(), 3u);
    EXPECT_EQ(wifi.wan_peers[0].rfind("10.1.", 0), 0u);

    auto vpn = f.reg.sources("v1", cid, f.now);
    EXPECT_FALSE(vpn.serve);
    EXPECT_FALSE(vpn.origin_allowed);
    EXPECT_EQ(vpn.wan_peers.size(), 2u);

    EXPECT_EQ(f.reg.sources("lost", cid, f.now).role, "unmanaged");
    EXPECT_TRUE(f.reg.sources("lost", cid, f.now).origin_allowed);
}

TEST(registry, an_rvp_that_goes_offline_is_replaced_and_the_role_is_sticky_meanwhile) {
    fleet_registry f;
    f.reg.import_topology(good_csv);
    f.add("c1", "10.0.0.11");
    f.add("a1", "10.1.0.11", 50);
    f.add("a2", "10.1.0.12", 500);
    EXPECT_EQ(f.reg.rvp("Branch A", f.now), "a2");
    // A bigger device arriving does not take the role from a live RVP.
    f.add("a3", "10.1.0.13", 900);
    EXPECT_EQ(f.reg.rvp("Branch A", f.now), "a2");
    // a2 stops heartbeating: after three heartbeats it is offline and a3 takes over.
    f.now += 16000;
    device_record facts;
    facts.free_bytes = 50;
    f.reg.heartbeat("a1", facts, f.now);
    facts.free_bytes = 900;
    f.reg.heartbeat("a3", facts, f.now);
    f.reg.heartbeat("c1", facts, f.now);
    EXPECT_EQ(f.reg.rvp("Branch A", f.now), "a3");
    EXPECT_EQ(f.reg.sources("a3", cid, f.now).role, "rvp");
    auto member = f.reg.sources("a1", cid, f.now);
    EXPECT_EQ(member.lan_peers, std::vector<std::string>{"10.1.0.13:34760"});  // the dead RVP is gone
}

TEST(registry, assignment_groups_decide_who_takes_part) {
    fleet_registry f;
    f.add("c1", "10.0.0.11");
    f.add("c2", "10.0.0.12");
    f.reg.put_group({"pilot", {"host-c1"}, {cid}});
    EXPECT_EQ(f.reg.sources("c1", cid, f.now).role, "top");
    EXPECT_EQ(f.reg.sources("c2", cid, f.now).role, "unmanaged");  // outside the group: origin
    EXPECT_TRUE(f.reg.sources("c1", cid, f.now).lan_peers.empty());
    EXPECT_EQ(f.reg.sources("c1", std::string(64, 'b'), f.now).role, "unmanaged");  // not assigned
}

TEST(registry, a_bad_topology_is_rejected_and_the_old_one_stays_across_a_restart) {
    fleet_registry f;
    f.reg.import_topology(good_csv);
    f.add("a1", "10.1.0.11");
    EXPECT_THROW(f.reg.import_topology("name,parent,type,ranges\nX,Y,Default,\n"), topology_error);
    EXPECT_EQ(f.reg.current_topology().offices().size(), 5u);
    registry again(*f.store, election_policy{1}, 15000);
    again.load(f.now);
    EXPECT_TRUE(again.topology_uploaded());
    EXPECT_EQ(again.current_topology().offices().size(), 5u);
    EXPECT_EQ(again.sources("a1", cid, f.now).office, "Branch A");
    EXPECT_NE(again.activated_devices_csv(f.now).find("a1,host-a1,10.1.0.11,Branch A,"), std::string::npos);
}

TEST(registry, without_a_topology_each_subnet_is_an_office_below_the_central_office) {
    fleet_registry f;
    f.add("x1", "10.5.0.1");
    f.add("x2", "10.5.0.2");
    f.add("y1", "10.6.0.1");
    EXPECT_EQ(f.reg.sources("x1", cid, f.now).office, "Subnet 10.5.0.0/24");
    EXPECT_EQ(f.reg.sources("x1", cid, f.now).lan_peers, std::vector<std::string>{"10.5.0.2:34760"});
    // Sibling subnets share a parent with no devices: both are "top" and take the origin.
    EXPECT_EQ(f.reg.sources("y1", cid, f.now).role, "top");
    EXPECT_NE(f.reg.export_topology().find("Subnet 10.6.0.0/24,Central Office,Default,10.6.0.0/24"), std::string::npos);
}

TEST(coordinator_server, agents_register_and_ask_for_sources_over_the_secure_channel) {
    running_server s;
    coordinator_client c(s.srv->bound_address(), s.key.data(), 5000);
    auto reply = c.call({{"op", "register"}, {"device_id", "d1"}, {"name", "pc1"}, {"listen", "0.0.0.0:34760"},
                         {"facts", {{"free_bytes", 10}}}});
    ASSERT_TRUE(reply["ok"].get<bool>()) << reply.dump();
    EXPECT_EQ(reply["server_id"], "s1");
    EXPECT_EQ(reply["address"], "127.0.0.1");
    EXPECT_EQ(reply["office"], "Subnet 127.0.0.0/24");
    c.call({{"op", "register"}, {"device_id", "d2"}, {"listen", "0.0.0.0:34761"}});
    auto src = c.call({{"op", "sources"}, {"device_id", "d1"}, {"content", cid}});
    ASSERT_TRUE(src["ok"].get<bool>()) << src.dump();
    EXPECT_EQ(src["role"], "top");
    EXPECT_EQ(src["lan"], json::array({"127.0.0.1:34761"}));  // the wildcard became the source address
    // Bad requests get an answer that says why, and the connection goes on.
    EXPECT_NE(c.call({{"op", "sources"}, {"device_id", "d1"}, {"content", "xyz"}})["error"].get<std::string>().find("64 lowercase hex"),
              std::string::npos);
    EXPECT_NE(c.call({{"op", "fly"}})["error"].get<std::string>().find("unknown operation"), std::string::npos);
    EXPECT_TRUE(c.call({{"op", "heartbeat"}, {"device_id", "nobody"}})["unregistered"].get<bool>());
    EXPECT_EQ(s.admin("viewer").call({{"op", "admin.health"}})["devices"], 2);
}

TEST(topology, an_office_wan_budget_is_an_optional_fifth_column) {
    auto t = topology::parse_csv("name,parent,type,ranges,wan_budget\n"
                                 "Central Office,,Default,10.0.0.0/24,\n"
                                 "Branch A,Central Office,Default,10.1.0.0/24,1250000\n");
    EXPECT_EQ(t.find("Central Office")->wan_budget, 0);
    EXPECT_EQ(t.find("Branch A")->wan_budget, 1250000);
    EXPECT_NE(t.to_csv().find("Branch A,Central Office,Default,10.1.0.0/24,1250000\n"), std::string::npos);
    EXPECT_EQ(topology::parse_csv(t.to_csv()).to_csv(), t.to_csv());
    // Four-column files (the first format) still import; mixing is a line-numbered error.
    EXPECT_EQ(topology::parse_csv(good_csv).find("Branch A")->wan_budget, 0);
    auto problems = problems_of("name,parent,type,ranges,wan_budget\nA,,Default,10.0.0.0/24,fast\nB,A,Default,10.1.0.0/24\n");
    EXPECT_TRUE(mentions(problems, "line 2: bad WAN budget 'fast'"));
    EXPECT_TRUE(mentions(problems, "line 3: expected 5 fields"));
}

TEST(coordinator_server, registration_and_heartbeats_carry_the_office_wan_budget) {
    running_server s;
    coordinator_client c(s.srv->bound_address(), s.key.data(), 5000);
    auto admin = s.admin();
    auto set = [&](const std::string &budget) {
        auto r = admin.call({{"op", "admin.topology.import"},
                         {"csv", "name,parent,type,ranges,wan_budget\nCentral Office,,Default,10.0.0.0/8,\n"
                                 "Loopback,Central Office,Default,127.0.0.0/8," + budget + "\n"}});
        ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
    };
    set("2500000");
    auto reply = c.call({{"op", "register"}, {"device_id", "d1"}, {"listen", "0.0.0.0:34760"}});
    EXPECT_EQ(reply["office"], "Loopback");
    EXPECT_EQ(reply["wan_budget"], 2500000);
    set("");  // changed at run time: the next heartbeat says so
    EXPECT_EQ(c.call({{"op", "heartbeat"}, {"device_id", "d1"}})["wan_budget"], 0);
}

TEST(coordinator_client, a_silent_absent_or_misnamed_coordinator_is_a_clear_error) {
    std::array<std::uint8_t, 32> key{1};
    auto error_of = [&](const std::string &address) -> std::pair<int, std::string> {
        try {
            coordinator_client c(address, key.data(), 300);
            return {PD_OK, ""};
        } catch (const pd::error &e) {
            return {e.code(), e.what()};
        }
    };
    namespace asio = boost::asio;
    asio::io_context io;
    asio::ip::tcp::acceptor silent(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    auto silent_address = "127.0.0.1:" + std::to_string(silent.local_endpoint().port());
    // Accepted by the kernel's backlog, never answered: the handshake waits out the timeout.
    auto [code, msg] = error_of(silent_address);
    EXPECT_EQ(code, PD_E_TIMEOUT) << msg;
    EXPECT_NE(msg.find("coordinator " + silent_address), std::string::npos) << msg;
    EXPECT_NE(msg.find("timed out"), std::string::npos) << msg;
    silent.close();
    std::tie(code, msg) = error_of(silent_address);  // nobody listens there now
    EXPECT_EQ(code, PD_E_IO) << msg;
    EXPECT_NE(msg.find("cannot connect to " + silent_address), std::string::npos) << msg;
    std::tie(code, msg) = error_of("coordinator.invalid:7000");  // RFC 6761: never resolves
    EXPECT_EQ(code, PD_E_INVALID) << msg;
    EXPECT_NE(msg.find("cannot resolve 'coordinator.invalid'"), std::string::npos) << msg;
    std::tie(code, msg) = error_of("coordinator:seven");
    EXPECT_EQ(code, PD_E_INVALID) << msg;
    EXPECT_NE(msg.find("is not host:port"), std::string::npos) << msg;
}

TEST(coordinator_client, a_host_name_is_resolved) {
    running_server s;
    auto port = s.srv->bound_address().substr(s.srv->bound_address().rfind(':') + 1);
    coordinator_client by_name("localhost:" + port, s.key.data(), 5000);
    EXPECT_TRUE(by_name.call({{"op", "register"}, {"device_id", "d1"}}).value("ok", false));
}

// A wrong key is refused and audited, once a minute per address however often it is tried
// (a scanner must not fill the log).
TEST(coordinator_server, a_wrong_key_is_a_shared_key_mismatch_and_big_messages_travel_in_parts) {
    audit_log audit;
    auto o = running_server::legacy();
    o.audit = audit.sink();
    running_server s(o);
    std::array<std::uint8_t, 32> other{9};
    for (int attempt = 0; attempt < 5; ++attempt) {
        try {
            coordinator_client bad(s.srv->bound_address(), other.data(), 5000);
            FAIL() << "a client with another key connected";
        } catch (const pd::error &e) {
            EXPECT_EQ(e.code(), PD_E_AUTH);
            EXPECT_NE(std::string(e.what()).find("shared key mismatch"), std::string::npos);
        }
    }
    const std::string refused = "audit: secure channel refused from 127.0.0.1: ";
    for (int i = 0; i < 50 && !audit.has(refused); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(audit.count(refused), 1u);
    auto c = s.admin();
    // A topology of 5000 offices is well over one record each way.
    std::string csv = "name,parent,type,ranges\nCentral Office,,Default,\n";
    for (int i = 0; i < 5000; ++i)
        csv += "Office number " + std::to_string(i) + ",Central Office,Default,10." + std::to_string(i / 256) + "." +
               std::to_string(i % 256) + ".0/24\n";
    ASSERT_GT(csv.size(), max_part_bytes);
    auto r = c.call({{"op", "admin.topology.import"}, {"csv", csv}});
    ASSERT_TRUE(r["ok"].get<bool>()) << r.dump().substr(0, 300);
    EXPECT_EQ(r["offices"], 5001);
    auto out = c.call({{"op", "admin.topology.export"}});
    EXPECT_GT(out["csv"].get<std::string>().size(), max_part_bytes);
    auto bad = c.call({{"op", "admin.topology.import"}, {"csv", "name,parent,type,ranges\nA,B,Default,\n"}});
    EXPECT_FALSE(bad["ok"].get<bool>());
    EXPECT_EQ(bad["problems"][0], "line 2: unknown parent 'B' of 'A'");
    EXPECT_EQ(c.call({{"op", "admin.health"}})["offices"], 5001);  // the old topology stays
}

TEST(admin_capi, every_admin_operation_over_the_c_abi) {
    auto o = running_server::legacy();
    o.trust_claimed_addresses = true;  // one "device" below poses as a Branch A machine from loopback
    running_server s(o);
    auto addr = s.srv->bound_address();
    auto cred = running_server::capi(s.add_admin("alice"));
    pd_admin *a = nullptr;
    ASSERT_EQ(pd_admin_connect(&a, addr.c_str(), &cred, 3000), PD_OK) << pdtest::last_error();
    auto text = [](pd_buf &b) {
        std::string t(reinterpret_cast<char *>(b.ptr), b.size);
        pd_buf_dispose(&b);
        return t;
    };
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_admin_server_id(&b, a), PD_OK);
    EXPECT_EQ(text(b), "s1");
    ASSERT_EQ(pd_admin_health(&b, a), PD_OK);
    auto health = json::parse(text(b));
    EXPECT_EQ(health["database"], "ok");
    EXPECT_EQ(health["topology"], "automatic");

    ASSERT_EQ(pd_admin_topology_import(a, good_csv, std::strlen(good_csv)), PD_OK) << pdtest::last_error();
    const char *broken = "name,parent,type,ranges\nCentral Office,,Default,\nX,Nowhere,Default,10.9.0.300/24\n";
    EXPECT_EQ(pd_admin_topology_import(a, broken, std::strlen(broken)), PD_E_INVALID);
    std::string why = pd_error_last()->message;
    EXPECT_NE(why.find("line 3: unknown parent 'Nowhere'"), std::string::npos) << why;
    EXPECT_NE(why.find("line 3: bad address range '10.9.0.300/24'"), std::string::npos) << why;
    ASSERT_EQ(pd_admin_topology_export(&b, a), PD_OK);
    EXPECT_NE(text(b).find("Branch A WiFi,Branch A,WiFi,10.1.2.10-10.1.2.200"), std::string::npos);

    pdtest::temp_dir dir;
    pdtest::write_file(dir / "pkg.bin", pdtest::random_bytes(200000, 5));
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_manifest_hash_file(&m, (dir / "pkg.bin").c_str(), nullptr), PD_OK);
    EXPECT_EQ(pd_admin_publish(a, m, "http://cdn/pkg.bin\nfile:///share/pkg.bin"), PD_OK) << pdtest::last_error();
    const char *devs[] = {"pc-1"};
    EXPECT_EQ(pd_admin_set_group(a, "pilot", devs, 1, pd_manifest_id(m), 1), PD_OK) << pdtest::last_error();
    EXPECT_EQ(s.store->groups().at(0).contents.size(), 1u);
    EXPECT_EQ(s.store->contents().at(0).origins, "http://cdn/pkg.bin\nfile:///share/pkg.bin");
    EXPECT_EQ(pd_admin_remove_group(a, "pilot"), PD_OK);
    EXPECT_TRUE(s.store->groups().empty());
    pd_manifest_free(m);

    coordinator_client agent(addr, s.key.data(), 3000);
    agent.call({{"op", "register"}, {"device_id", "d1"}, {"name", "pc-1"}, {"address", "10.1.0.5"}, {"listen", "10.1.0.5:34760"}});
    agent.call({{"op", "job_stats"}, {"device_id", "d1"}, {"content", cid}, {"bytes", {{"wan", 5}, {"lan", 7}}}});
    ASSERT_EQ(pd_admin_devices_csv(&b, a), PD_OK);
    EXPECT_NE(text(b).find("d1,pc-1,10.1.0.5,Branch A,"), std::string::npos);
    ASSERT_EQ(pd_admin_office_stats_csv(&b, a), PD_OK);
    EXPECT_EQ(text(b), "office,origin_bytes,wan_bytes,lan_bytes\nBranch A,0,5,7\n");
    ASSERT_EQ(pd_admin_rvp(&b, a, "Branch A"), PD_OK);
    EXPECT_EQ(text(b), "d1");
    ASSERT_EQ(pd_admin_rvp(&b, a, "Branch B"), PD_OK);
    EXPECT_EQ(text(b), "");
    pd_admin_free(a);
    pd_admin_free(nullptr);
}

TEST(admin_capi, republish_all_is_checked_first_and_stored_all_or_none) {
    running_server s;
    pd_admin *a = nullptr;
    auto cred = running_server::capi(s.add_admin("alice"));
    ASSERT_EQ(pd_admin_connect(&a, s.srv->bound_address().c_str(), &cred, 3000), PD_OK) << pdtest::last_error();
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> close(a, pd_admin_free);
    pdtest::temp_dir dir;
    std::vector<pd_manifest *> m(3, nullptr);
    for (int i = 0; i < 3; ++i) {
        auto path = dir / ("pkg" + std::to_string(i));
        pdtest::write_file(path, pdtest::random_bytes(100000 + i, static_cast<unsigned>(20 + i)));
        ASSERT_EQ(pd_manifest_hash_file(&m[i], path.c_str(), nullptr), PD_OK);
    }
    auto hex = [](const pd_manifest *x) {
        char out[65];
        pd_content_id_to_hex(out, pd_manifest_id(x));
        return std::string(out);
    };
    auto origins_of = [&](const pd_manifest *x) {
        for (auto &c : s.store->contents())
            if (c.id == hex(x)) return c.origins;
        return std::string("(not published)");
    };
    ASSERT_EQ(pd_admin_publish(a, m[0], "http://old-cdn/pkg0"), PD_OK) << pdtest::last_error();

    // A new origin for the known content, a new content with none given.
    pd_buf b = PD_BUF_INIT;
    const pd_manifest *both[] = {m[0], m[1]};
    const char *moved[] = {"http://new-cdn/pkg0\nfile:///share/pkg0", nullptr};
    ASSERT_EQ(pd_admin_republish_all(&b, a, both, moved, 2), PD_OK) << pdtest::last_error();
    auto report = json::parse(std::string(reinterpret_cast<char *>(b.ptr), b.size));
    pd_buf_dispose(&b);
    EXPECT_EQ(report["added"], 1);
    EXPECT_EQ(report["updated"], 1);
    EXPECT_EQ(report["contents"][0]["status"], "updated");
    EXPECT_EQ(report["contents"][1]["status"], "added");
    EXPECT_EQ(origins_of(m[0]), "http://new-cdn/pkg0\nfile:///share/pkg0");
    EXPECT_EQ(origins_of(m[1]), "");

    // Again without origins: the recorded ones stay.
    ASSERT_EQ(pd_admin_republish_all(&b, a, both, nullptr, 2), PD_OK) << pdtest::last_error();
    report = json::parse(std::string(reinterpret_cast<char *>(b.ptr), b.size));
    pd_buf_dispose(&b);
    EXPECT_EQ(report["unchanged"], 2);
    EXPECT_EQ(origins_of(m[0]), "http://new-cdn/pkg0\nfile:///share/pkg0");

    // One damaged entry (a known id with another size) refuses the lot, naming it: the good
    // entry before it is not stored either.
    auto raw = s.admin();
    auto entry = [&](const pd_manifest *x, std::uint64_t size) {
        return json{{"content", hex(x)}, {"name", "n"}, {"size", size}, {"block_count", 2}};
    };
    auto refused = raw.call({{"op", "admin.republish"}, {"contents", {entry(m[2], 100002), entry(m[0], 5)}}});
    EXPECT_FALSE(refused.value("ok", true));
    auto why = refused.value("error", std::string());
    EXPECT_NE(why.find("contents[1]: content " + hex(m[0]) + " is published with another size"), std::string::npos) << why;
    refused = raw.call({{"op", "admin.republish"}, {"contents", {entry(m[2], 100002), entry(m[2], 100002)}}});
    EXPECT_NE(refused.value("error", std::string()).find("contents[1]: content " + hex(m[2]) + " is listed twice"), std::string::npos);
    refused = raw.call({{"op", "admin.republish"}, {"contents", {entry(m[2], 100002), {{"content", "xyz"}}}}});
    EXPECT_NE(refused.value("error", std::string()).find("contents[1]: 'content' must be 64 lowercase hex digits"), std::string::npos);
    EXPECT_EQ(s.store->contents().size(), 2u);
    EXPECT_EQ(origins_of(m[2]), "(not published)");

    const pd_manifest *none[] = {nullptr};
    EXPECT_EQ(pd_admin_republish_all(&b, a, none, nullptr, 1), PD_E_INVALID);
    EXPECT_EQ(pd_admin_republish_all(&b, a, both, nullptr, 0), PD_E_INVALID);
    for (auto *x : m) pd_manifest_free(x);
}

// ---- hostile input: imports, messages and sockets that once froze or killed the server ----

TEST(topology, a_long_chain_is_checked_in_linear_time_and_a_cycle_is_reported_once) {
    // 4,000 offices in one chain (86 KB) took 11.1 s with the cubic walk.
    std::string csv = "name,parent,type,ranges\nCentral Office,,Default,\n";
    std::string parent = "Central Office";
    for (int i = 0; i < 4000; ++i) {
        std::string name = "o" + std::to_string(i);
        csv += name + "," + parent + ",Default,10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24\n";
        parent = name;
    }
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(problems_of(csv).empty());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));  // a bound on complexity, not a speed target
    // The same chain closed into a ring below the root: one problem, at its first office.
    auto ring = csv + "x,o3999,Default,\n";
    ring.replace(ring.find("o0,Central Office"), 17, "o0,x");
    auto p = problems_of(ring);
    ASSERT_EQ(p.size(), 1u) << p.front();
    EXPECT_EQ(p.front().rfind("line 3: office 'o0' is in a cycle: o0 -> x -> o3999 -> ", 0), 0u) << p.front().substr(0, 80);
}

TEST(topology, a_file_of_garbage_gets_a_bounded_list_of_problems) {
    // 1.2 MB of bad lines once made a reply over 64 MiB and the process exit.
    std::string csv = "name,parent,type,ranges\n";
    for (int i = 0; i < 40000; ++i) csv += "bad line " + std::to_string(i) + "\n";
    auto p = problems_of(csv);
    ASSERT_EQ(p.size(), topology::max_problems + 1);
    EXPECT_EQ(p.back(), "... and " + std::to_string(40000 - topology::max_problems) + " more problems");
    // 4,000 copies of one range: each overlapping office once, not every pair.
    std::string same = "name,parent,type,ranges\nCentral Office,,Default,\n";
    for (int i = 0; i < 4000; ++i) same += "o" + std::to_string(i) + ",Central Office,Default,10.0.0.0/8\n";
    EXPECT_EQ(problems_of(same).size(), topology::max_problems + 1);
}

TEST(coordinator_protocol, deep_nesting_and_wrong_types_are_errors_not_crashes) {
    message_assembler in;
    std::string deep(8u << 20, '[');
    try {
        in.feed(pd::net::bytes(deep.begin(), deep.begin() + 100000));
        ADD_FAILURE() << "accepted 100,000 levels of nesting";
    } catch (const pd::error &e) {
        EXPECT_NE(std::string(e.what()).find("nests deeper than"), std::string::npos) << e.what();
    }
    pdtest::temp_dir dir;
    auto store = open_sqlite_store(dir / "c.db");
    registry reg{*store, election_policy{}, 15000};
    boost::asio::io_context io;
    auto o = running_server::legacy();  // the parsers behind the identity check
    o.server_id = "s1";
    server srv(io, reg, *store, o);
    auto cred = add_admin_to(*store, {}, "alice", "admin");
    server::caller from{"10.0.0.1", true, public_key_of(cred), ""};
    for (auto bad : {json{{"op", 7}}, json{{"op", "register"}, {"device_id", json::array()}},
                     json{{"op", "register"}, {"device_id", "d"}, {"facts", {{"free_bytes", "lots"}}}},
                     json{{"op", "admin.topology.import"}, {"csv", 5}}, json{{"op", "holding"}, {"device_id", "d"}}}) {
        auto reply = srv.handle(bad, from);
        EXPECT_FALSE(reply.value("ok", true)) << bad.dump();
        EXPECT_TRUE(reply.contains("error")) << bad.dump();
    }
}

TEST(coordinator_server, silent_sockets_are_closed_and_cannot_lock_out_a_keyed_client) {
    running_server s;
    auto port = s.srv->bound_address().substr(s.srv->bound_address().rfind(':') + 1);
    // More silent sockets from one address than it may have handshaking: the surplus is
    // refused at once, the rest closed when the handshake deadline (10 s by default;
    // shortened here through a second server below) passes.
    std::vector<pd::platform::native_socket> silent;
    // 50 ms: also the receive timeout below, for the sockets the server keeps.
    for (int i = 0; i < 40; ++i) silent.push_back(pd::platform::connect_tcp("127.0.0.1:" + port, 50));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    int closed = 0;
    for (auto fd : silent) {
        char c;
        try {
            // Refused sockets read EOF; kept ones wait for the client to speak first.
            closed += pd::platform::receive_some(fd, &c, 1, "silent socket") == 0;
        } catch (const pd::error &e) {
            EXPECT_EQ(e.code(), PD_E_TIMEOUT) << e.what();
        }
    }
    EXPECT_GE(closed, 40 - 16) << "more than 16 handshaking connections from one address were kept";
    for (auto fd : silent) pd::platform::close_socket(fd);
}

TEST(coordinator_server, a_connection_that_never_authenticates_is_closed_at_the_deadline) {
    auto o = running_server::legacy();
    o.handshake_timeout_ms = 200;
    running_server s(o);
    auto fd = pd::platform::connect_tcp(s.srv->bound_address(), 5000);
    auto t0 = std::chrono::steady_clock::now();
    char buf[256];
    std::size_t n;
    while ((n = pd::platform::receive_some(fd, buf, sizeof buf, "silent socket")) > 0) {
    }
    EXPECT_EQ(n, 0u) << "not closed by the server";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    pd::platform::close_socket(fd);
    // A keyed client is served as before.
    coordinator_client c(s.srv->bound_address(), s.key.data(), 5000);
    EXPECT_TRUE(c.call({{"op", "register"}, {"device_id", "d1"}}).value("ok", false));
}

TEST(topology, an_office_named_like_a_comment_survives_export_and_import) {
    auto t = topology::parse_csv("name,parent,type,ranges\nCentral Office,,Default,\n\"#x\",Central Office,Default,10.1.0.0/24\n");
    auto csv = t.to_csv();
    EXPECT_NE(csv.find("\n\"#x\",Central Office"), std::string::npos) << csv;
    auto again = topology::parse_csv(csv);
    EXPECT_TRUE(again.find("#x")) << "dropped as a comment on re-import";
}

TEST(coordinator_server, a_topology_import_is_checked_off_the_network_thread) {
    // The network thread only applies a checked topology: while the worker parses, it keeps
    // answering (a 4,000-office chain once held a heartbeat 9.4 s).
    pdtest::temp_dir dir;
    auto store = open_sqlite_store(dir / "c.db");
    registry reg(*store, election_policy{}, 15000);
    boost::asio::io_context io;
    server srv(io, reg, *store, server_options{});
    auto cred = add_admin_to(*store, {}, "alice", "admin");
    server::caller from{"10.0.0.1", true, public_key_of(cred), ""};
    std::optional<json> heartbeat, import, refused;
    srv.handle_async({{"op", "admin.health"}}, from, [&](json r) { heartbeat = r; });
    EXPECT_TRUE(heartbeat);  // an ordinary request is answered at once
    std::string csv = "name,parent,type,ranges\nCentral Office,,Default,\n";
    for (int i = 0; i < 4000; ++i)
        csv += "o" + std::to_string(i) + "," + (i ? "o" + std::to_string(i - 1) : std::string("Central Office")) + ",Default,\n";
    srv.handle_async({{"op", "admin.topology.import"}, {"csv", csv}}, from, [&](json r) { import = r; });
    srv.handle_async({{"op", "admin.topology.import"}, {"csv", "name,parent,type,ranges\nX,Y,Default,\n"}}, from,
                     [&](json r) { refused = r; });
    EXPECT_FALSE(import);  // handed to the worker, answered later on the network thread
    auto work = boost::asio::make_work_guard(io);  // the answers are posted from the worker
    for (int i = 0; i < 100 && (!import || !refused); ++i) io.run_one_for(std::chrono::milliseconds(100));
    ASSERT_TRUE(import && refused);
    ASSERT_TRUE((*import)["ok"].get<bool>()) << import->dump();
    EXPECT_EQ((*import)["offices"], 4001);
    EXPECT_EQ(reg.office_count(), 4001u);  // the refused one left the imported topology in place
    EXPECT_FALSE((*refused)["ok"].get<bool>());
    EXPECT_FALSE((*refused)["problems"].empty());
}

// ---- trust: who may administer, and where a device is ----

TEST(coordinator_trust, the_fleet_key_alone_cannot_administer_and_roles_hold_at_once) {
    audit_log audit;
    auto o = running_server::legacy();
    o.audit = audit.sink();
    running_server s(o);
    auto audited = [&](const std::string &needle) { return audit.has(needle); };
    // The attacker holds the fleet key (any device does) and tries every admin operation.
    coordinator_client member(s.srv->bound_address(), s.key.data(), 5000);
    for (auto op : {"admin.health", "admin.devices.csv", "admin.groups.set", "admin.topology.import", "admin.admins.list"}) {
        auto r = member.call({{"op", op}, {"name", "all"}, {"devices", json::array()}, {"csv", good_csv}});
        EXPECT_FALSE(r.value("ok", true)) << op;
        EXPECT_NE(r.value("error", std::string()).find("needs an administrator's credential"), std::string::npos) << r.dump();
    }
    EXPECT_TRUE(s.store->groups().empty());
    EXPECT_FALSE(s.reg.topology_uploaded());
    EXPECT_TRUE(audited("unauthenticated from 127.0.0.1: admin.groups.set refused"));

    // A viewer reads, and changes nothing.
    auto viewer = s.admin("viewer");
    EXPECT_EQ(viewer.role(), admin_role::viewer);
    EXPECT_TRUE(viewer.call({{"op", "admin.health"}}).value("ok", false));
    auto r = viewer.call({{"op", "admin.groups.set"}, {"name", "g"}, {"devices", {"x"}}});
    EXPECT_NE(r.value("error", std::string()).find("is a viewer: 'admin.groups.set' changes the coordinator"), std::string::npos)
        << r.dump();
    EXPECT_TRUE(s.store->groups().empty());

    // An administrator changes things; revoked, it is refused at once on its open connection.
    auto alice = s.add_admin("alice");
    coordinator_client admin(s.srv->bound_address(), alice, 5000);
    EXPECT_EQ(admin.admin_name(), "alice");
    EXPECT_TRUE(admin.call({{"op", "admin.groups.set"}, {"name", "g"}, {"devices", {"x"}}}).value("ok", false));
    EXPECT_TRUE(audited("administrator 'alice' (admin) from 127.0.0.1: admin.groups.set ok"));
    ASSERT_TRUE(s.store->revoke_admin("alice", 2));
    r = admin.call({{"op", "admin.groups.remove"}, {"name", "g"}});
    EXPECT_NE(r.value("error", std::string()).find("administrator 'alice' was revoked"), std::string::npos) << r.dump();
    EXPECT_EQ(s.store->groups().size(), 1u);
    try {
        coordinator_client again(s.srv->bound_address(), alice, 5000);
        ADD_FAILURE() << "a revoked administrator connected";
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_AUTH);
        EXPECT_NE(std::string(e.what()).find("refused this administrator: administrator 'alice' was revoked"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(audited("auth refused from 127.0.0.1: administrator 'alice' was revoked"));

    // A key the coordinator never saw, and a server that cannot prove the credential's key
    // (someone posing as the coordinator): both refused, saying which side failed.
    pd::admin_credential stranger;
    randombytes_buf(stranger.admin_seed.data(), 32);
    stranger.coordinator_key = s.coordinator_key;
    auto connect_error = [&](const pd::admin_credential &c) {
        try {
            coordinator_client x(s.srv->bound_address(), c, 5000);
        } catch (const pd::error &e) {
            return std::string(e.what());
        }
        return std::string("connected");
    };
    EXPECT_NE(connect_error(stranger).find("this key is not an administrator's"), std::string::npos);
    auto bob = s.add_admin("bob");
    bob.coordinator_key[0] ^= 1;
    EXPECT_NE(connect_error(bob).find("is not the coordinator this credential names"), std::string::npos) << connect_error(bob);
}

TEST(coordinator_trust, a_connection_without_the_fleet_key_gets_nothing_but_auth) {
    running_server s;
    // A keyless channel is admitted (administrators hold no fleet key), but proves nothing:
    // the first request must be a valid "auth", or the connection ends.
    // The reply (null when the server hung up before it could be read: it closes as soon as
    // the first record of a message in parts arrives, while the rest is still being sent),
    // and whether the connection ended.
    auto keyless_call = [&](const json &request) {
        auto fd = pd::platform::connect_tcp(s.srv->bound_address(), 3000);
        pd::net::blocking_channel ch(fd, pd::net::role::client, nullptr);
        json reply;
        bool closed = false;
        try {
            for (auto &rec : frame_message(request)) ch.send(rec);
            message_assembler in;
            while (true)
                if (auto m = in.feed(ch.receive())) {
                    reply = *m;
                    break;
                }
            ch.receive();
        } catch (const pd::error &e) {
            closed = e.code() == PD_E_IO;
        }
        pd::platform::close_socket(fd);
        return std::make_pair(reply, closed);
    };
    // Nothing big before a key: a message in parts, or one record over 4 KiB, ends it.
    auto [reply, closed] = keyless_call({{"op", "auth"}, {"key", std::string(300000, 'a')}});
    EXPECT_TRUE(closed);
    if (reply.is_object()) {
        EXPECT_NE(reply.value("error", std::string()).find("authenticate first"), std::string::npos);
    }
    std::tie(reply, closed) = keyless_call({{"op", "auth"}, {"key", std::string(8000, 'a')}});
    EXPECT_TRUE(closed);
    if (reply.is_object()) {
        EXPECT_NE(reply.value("error", std::string()).find("authenticate first"), std::string::npos);
    }
    std::tie(reply, closed) = keyless_call({{"op", "register"}, {"device_id", "evil"}, {"listen", "0.0.0.0:1"}});
    EXPECT_NE(reply.value("error", std::string()).find("authenticate first"), std::string::npos) << reply.dump();
    EXPECT_TRUE(closed);
    std::tie(reply, closed) = keyless_call({{"op", "auth"}, {"key", std::string(64, 'a')}, {"signature", std::string(128, 'b')}});
    EXPECT_NE(reply.value("error", std::string()).find("not an administrator's"), std::string::npos) << reply.dump();
    EXPECT_TRUE(closed);
    EXPECT_TRUE(s.reg.devices().empty());
    // A signature made for another connection's transcript does not verify here (replay).
    auto alice = s.add_admin("alice");
    std::array<std::uint8_t, 32> pk{};
    std::array<std::uint8_t, 64> sk{};
    crypto_sign_seed_keypair(pk.data(), sk.data(), alice.admin_seed.data());
    std::array<std::uint8_t, 32> other_transcript{1};
    auto sig = sign_transcript(signer::administrator, other_transcript, sk.data());
    std::tie(reply, closed) = keyless_call({{"op", "auth"}, {"key", pd::to_hex(pk.data(), 32)}, {"signature", pd::to_hex(sig.data(), 64)}});
    EXPECT_NE(reply.value("error", std::string()).find("the signature does not verify"), std::string::npos) << reply.dump();
}

TEST(coordinator_trust, a_device_is_placed_and_reached_where_its_connection_comes_from) {
    running_server s;
    coordinator_client member(s.srv->bound_address(), s.key.data(), 5000);
    // The attack of issue #16: claim another office's address and point peers at port 22 of
    // another host.
    auto r = member.call({{"op", "register"}, {"device_id", "d1"}, {"address", "10.1.0.5"}, {"listen", "0.0.0.0:34760"}});
    EXPECT_NE(r.value("error", std::string()).find("'address' 10.1.0.5 is not the address this device connects from (127.0.0.1)"),
              std::string::npos)
        << r.dump();
    r = member.call({{"op", "register"}, {"device_id", "d1"}, {"listen", "10.9.9.9:22"}});
    EXPECT_NE(r.value("error", std::string()).find("'listen' 10.9.9.9:22 is not at the address this device connects from"),
              std::string::npos)
        << r.dump();
    EXPECT_TRUE(s.reg.devices().empty());
    r = member.call({{"op", "register"}, {"device_id", "d1"}, {"address", "127.0.0.1"}, {"listen", "127.0.0.1:34760"}});
    ASSERT_TRUE(r.value("ok", false)) << r.dump();
    r = member.call({{"op", "heartbeat"}, {"device_id", "d1"}, {"address", "10.2.0.9"}});
    EXPECT_FALSE(r.value("ok", true));
    EXPECT_EQ(s.reg.devices().at("d1").address, "127.0.0.1");
}

namespace {

// A device's side of "identify": what the hierarchy plugin does through pd_host_api.device_sign.
json identify(coordinator_client &c, const std::string &device_id, const std::array<std::uint8_t, 32> &seed,
              const std::array<std::uint8_t, 32> *transcript = nullptr) {
    std::array<std::uint8_t, 32> pk{};
    std::array<std::uint8_t, 64> sk{};
    crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
    auto statement = device_statement(transcript ? *transcript : c.transcript());
    auto m = pd::crypto::device_signed_message(statement.data(), statement.size());
    auto sig = pd::crypto::ed25519_sign(m.data(), m.size(), sk.data());
    return c.call({{"op", "identify"}, {"device_id", device_id}, {"key", pd::to_hex(pk.data(), 32)},
                   {"signature", pd::to_hex(sig.data(), 64)}});
}

std::string error_of(const json &reply) { return reply.value("error", std::string()); }

}  // namespace

TEST(coordinator_trust, a_device_enrolls_once_and_nobody_else_can_speak_for_it) {
    server_options o;  // device identities required: the default
    running_server s(o);
    auto addr = s.srv->bound_address();
    std::array<std::uint8_t, 32> key_a{1, 2, 3}, key_c{4, 5, 6}, key_evil{6, 6, 6};

    coordinator_client a(addr, s.key.data(), 5000);
    auto r = a.call({{"op", "register"}, {"device_id", "d1"}, {"listen", "0.0.0.0:34760"}});
    EXPECT_NE(error_of(r).find("needs the device's identity"), std::string::npos) << r.dump();
    r = identify(a, "d1", key_a);
    ASSERT_TRUE(r.value("ok", false)) << r.dump();
    EXPECT_TRUE(r.value("enrolled", false));
    ASSERT_TRUE(a.call({{"op", "register"}, {"device_id", "d1"}, {"listen", "0.0.0.0:34760"}}).value("ok", false));
    r = a.call({{"op", "holding"}, {"device_id", "d2"}, {"content", cid}, {"complete", true}});
    EXPECT_NE(error_of(r).find("this connection proved device d1's identity: it cannot speak for d2"), std::string::npos) << r.dump();
    auto d1_transcript = a.transcript();

    // A fleet member (it holds the fleet key) tries to become d1: its own key, d1's public key
    // with its own signature, and d1's genuine signature replayed from d1's connection.
    auto attacker_error = [&](auto &&attempt, bool ends_the_connection = true) {
        coordinator_client evil(addr, s.key.data(), 5000);
        auto reply = attempt(evil);
        EXPECT_FALSE(reply.value("ok", true));
        bool closed = false;
        try {
            evil.call({{"op", "heartbeat"}, {"device_id", "d1"}});
        } catch (const pd::error &e) {
            closed = e.code() == PD_E_IO;
        }
        EXPECT_EQ(closed, ends_the_connection) << "a refused identify, and only that, ends the connection";
        return error_of(reply);
    };
    EXPECT_NE(attacker_error([&](coordinator_client &c) { return identify(c, "d1", key_evil); }).find("enrolled with another key"),
              std::string::npos);
    EXPECT_NE(attacker_error([&](coordinator_client &c) { return identify(c, "d1", key_a, &d1_transcript); })
                  .find("the signature does not verify"),
              std::string::npos);
    EXPECT_NE(attacker_error([&](coordinator_client &c) { return c.call({{"op", "heartbeat"}, {"device_id", "d1"}}); }, false)
                  .find("device d1 has an identity: prove it on this connection first"),
              std::string::npos);

    // Another device of the office, then d1 revoked: d1 drops out at once, c carries on.
    coordinator_client c(addr, s.key.data(), 5000);
    ASSERT_TRUE(identify(c, "d3", key_c).value("ok", false));
    ASSERT_TRUE(c.call({{"op", "register"}, {"device_id", "d3"}, {"listen", "0.0.0.0:34761"}}).value("ok", false));
    auto sources = c.call({{"op", "sources"}, {"device_id", "d3"}, {"content", cid}});
    EXPECT_EQ(sources["lan"], json::array({"127.0.0.1:34760"}));
    // With the key d1 enrolled: d3 checks that whoever answers there is d1.
    std::array<std::uint8_t, 32> pk_a{};
    std::array<std::uint8_t, 64> sk_a{};
    crypto_sign_seed_keypair(pk_a.data(), sk_a.data(), key_a.data());
    EXPECT_EQ(sources["device_keys"]["127.0.0.1:34760"], pd::to_hex(pk_a.data(), 32));
    EXPECT_EQ(read_sources_reply(sources).device_keys.at("127.0.0.1:34760"), pd::to_hex(pk_a.data(), 32));
    auto admin = s.admin();
    ASSERT_TRUE(admin.call({{"op", "admin.devices.revoke"}, {"device_id", "d1"}}).value("ok", false));
    EXPECT_THROW(a.call({{"op", "heartbeat"}, {"device_id", "d1"}}), pd::error);  // its connection was closed
    coordinator_client again(addr, s.key.data(), 5000);
    EXPECT_NE(error_of(identify(again, "d1", key_a)).find("device d1 was revoked"), std::string::npos);
    EXPECT_EQ(c.call({{"op", "sources"}, {"device_id", "d3"}, {"content", cid}})["lan"], json::array());
    auto beat = c.call({{"op", "heartbeat"}, {"device_id", "d3"}});
    EXPECT_TRUE(beat.value("ok", false));
    EXPECT_EQ(s.store->device_identity_of("d1")->revoked_ms > 0, true);
    // d3 learns d1's key is revoked, so its peer server refuses d1 (which still holds the
    // fleet key) too: the heartbeat says how many, "revoked_devices" lists them.
    EXPECT_EQ(read_revoked_count(beat), 1u);
    auto page = read_revoked_devices(c.call({{"op", "revoked_devices"}, {"device_id", "d3"}, {"since", 0}}), 0);
    EXPECT_EQ(page.total, 1u);
    ASSERT_EQ(page.keys.size(), 1u);
    EXPECT_EQ(page.keys[0], pk_a);
    EXPECT_TRUE(read_revoked_devices(c.call({{"op", "revoked_devices"}, {"device_id", "d3"}, {"since", 1}}), 1).keys.empty());
    // A restarted coordinator has the same list, from its database.
    registry reg2{*s.store, election_policy{}, 15000};
    boost::asio::io_context io2;
    server_options options;
    options.fleet_key = s.key;
    server restarted(io2, reg2, *s.store, options);
    pd::coord::server::caller member{"127.0.0.1", true, "", "d3"};
    EXPECT_EQ(restarted.handle({{"op", "revoked_devices"}, {"device_id", "d3"}, {"since", 0}}, member)["keys"],
              json::array({pd::to_hex(pk_a.data(), 32)}));
}

TEST(coordinator_protocol, a_revoked_devices_reply_is_checked_before_any_key_is_believed) {
    // A buggy or hostile coordinator's page costs the agent one reply, never a wrong refusal
    // list: every key is 32 bytes of hex, the page is the one asked for and within its total.
    std::string key(64, 'a');
    json good = {{"ok", true}, {"since", 2}, {"total", 3}, {"keys", {key}}};
    EXPECT_EQ(read_revoked_devices(good, 2).keys.size(), 1u);
    for (auto bad : {json{{"ok", true}, {"since", 0}, {"total", 3}, {"keys", {key}}},            // another page
                     json{{"ok", true}, {"since", 2}, {"total", 2}, {"keys", {key}}},            // past its total
                     json{{"ok", true}, {"since", 2}, {"total", 3}, {"keys", {"abc"}}},          // not a key
                     json{{"ok", true}, {"since", 2}, {"total", 3}, {"keys", {std::string(66, 'a')}}},
                     json{{"ok", true}, {"since", 2}, {"total", -1}, {"keys", json::array()}},
                     json{{"ok", true}, {"since", 2}, {"total", 3}, {"keys", "x"}},
                     json{{"ok", false}, {"error", "no"}}})
        EXPECT_THROW(read_revoked_devices(bad, 2), pd::error) << bad.dump();
    json many = {{"ok", true}, {"since", 0}, {"total", 5000}, {"keys", std::vector<std::string>(max_revoked_per_reply + 1, key)}};
    EXPECT_THROW(read_revoked_devices(many, 0), pd::error);
    EXPECT_THROW(read_revoked_count(json{{"revoked_devices", -4}}), pd::error);
    EXPECT_FALSE(read_revoked_count(json{{"ok", true}}));
}

TEST(coordinator_trust, an_upgrading_fleet_mixes_identified_and_unidentified_devices) {
    // --allow-unidentified-devices: 0.4 agents still register, but an enrolled device's id
    // is not theirs to use, and health counts who is left to upgrade.
    running_server s;  // legacy()
    coordinator_client old_agent(s.srv->bound_address(), s.key.data(), 5000);
    ASSERT_TRUE(old_agent.call({{"op", "register"}, {"device_id", "old"}}).value("ok", false));
    coordinator_client upgraded(s.srv->bound_address(), s.key.data(), 5000);
    ASSERT_TRUE(identify(upgraded, "new", std::array<std::uint8_t, 32>{9, 9}).value("ok", false));
    ASSERT_TRUE(upgraded.call({{"op", "register"}, {"device_id", "new"}}).value("ok", false));
    auto r = old_agent.call({{"op", "heartbeat"}, {"device_id", "new"}});
    EXPECT_NE(error_of(r).find("device new has an identity: prove it"), std::string::npos) << r.dump();
    EXPECT_EQ(s.admin("viewer").call({{"op", "admin.health"}})["unidentified"], 1);
}

TEST(coordinator_trust, the_coordinator_stores_and_serves_publication_records_it_cannot_make) {
    running_server s;
    pdtest::temp_dir dir;
    pdtest::write_file(dir / "pkg.bin", pdtest::random_bytes(100000, 3));
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_manifest_hash_file(&m, (dir / "pkg.bin").c_str(), nullptr), PD_OK);
    std::unique_ptr<pd_manifest, void (*)(pd_manifest *)> free_m(m, pd_manifest_free);
    std::uint8_t pub[32], sec[64];
    ASSERT_EQ(pd_publisher_keygen(pub, sec), PD_OK);
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_publication_sign(&b, m, "http://cdn/pkg.bin", 1, sec), PD_OK);
    std::string record = pd::to_hex(b.ptr, b.size);
    pd_buf_dispose(&b);
    char id[65];
    pd_content_id_to_hex(id, pd_manifest_id(m));
    json entry = {{"op", "admin.publish"}, {"content", id}, {"name", pd_manifest_name(m)}, {"size", pd_manifest_size(m)},
                  {"block_count", pd_manifest_block_count(m)}};
    auto admin = s.admin();
    auto with = [&](json e, const std::string &rec) {
        e["publication"] = rec;
        return e;
    };
    // A tampered record, and a genuine one offered for another content, are not stored.
    auto tampered = record;
    tampered[100] = tampered[100] == '0' ? '1' : '0';
    auto r = admin.call(with(entry, tampered));
    EXPECT_FALSE(r.value("ok", true)) << r.dump();
    auto other = entry;
    other["content"] = std::string(64, 'e');
    r = admin.call(with(other, record));
    EXPECT_NE(r.value("error", std::string()).find("about another content"), std::string::npos) << r.dump();
    ASSERT_TRUE(admin.call(with(entry, record)).value("ok", false));
    // A device asks for it; without one stored the answer says so.
    coordinator_client device(s.srv->bound_address(), s.key.data(), 5000);
    r = device.call({{"op", "publication"}, {"content", id}});
    EXPECT_EQ(r.value("publication", std::string()), record);
    r = device.call({{"op", "publication"}, {"content", std::string(64, 'e')}});
    EXPECT_NE(r.value("error", std::string()).find("no publication record"), std::string::npos);
    EXPECT_TRUE(admin.call({{"op", "admin.contents"}})["contents"][0].value("signed", false));
}
