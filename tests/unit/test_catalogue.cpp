// The coordinator's catalogue driving distribution (docs/coordinator.md "Catalogue"): a
// device starts from a content id alone and checks everything the catalogue says; retired
// contents leave every cache; the console functions around it (agent versions, device
// retirement, eviction reports). A real coordinator on loopback, real sessions with the real
// hierarchy plugin, a real SQLite database that the attacker edits behind the server's back.
#include "coordinator_fixture.h"

#include "coordinator_client/protocol.h"
#include "platform/file.h"

#include <peerdist.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

#include <map>

using namespace pd::coord;
using namespace pdtest;

namespace {

// A device of the fleet: a session whose hierarchy plugin speaks to `coordinator` (a host
// name is fine) with the server's fleet key.
struct device {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;

    device(running_server &server, const std::string &coordinator, bool allow_unsigned = true) {
        std::string key_file = dir / "fleet.key";
        auto hex = pd::to_hex(server.key.data(), 32) + "\n";
        pd::platform::write_file_atomic(key_file, hex.data(), hex.size(), pd::platform::access::owner_only);
        pd_session_options o = PD_SESSION_OPTIONS_INIT;
        std::string cache = dir / "cache";
        o.cache_dir = cache.c_str();
        o.fleet_key = server.key.data();
        o.fleet_key_len = 32;
        EXPECT_EQ(pd_session_new(&s.s, &o), PD_OK) << pdtest::last_error();
        if (allow_unsigned) pd_session_set_setting(s, "trust.allow_unsigned", "1");
        auto config = json{{"coordinator", coordinator}, {"fleet_key_file", key_file}, {"timeout_ms", 3000}}.dump();
        pd_session_set_setting(s, "plugin.hierarchy.config", config.c_str());
        EXPECT_EQ(pd_session_load_plugin(s, PD_TEST_PLUGIN_DIR), PD_OK) << pdtest::last_error();
    }

    bool holds(const pd_content_id *id) {
        pd_cache_entry entries[16];
        for (auto &e : entries) e.struct_size = sizeof e;
        size_t n = 16;
        pd_cache_list(s, entries, sizeof(pd_cache_entry), &n);
        for (size_t i = 0; i < n; ++i)
            if (std::memcmp(entries[i].id.bytes, id->bytes, 32) == 0) return true;
        return false;
    }
};

// "127.0.0.1:PORT" as "localhost:PORT": the host name path, resolved by every client.
std::string by_name(running_server &s) {
    auto address = s.srv->bound_address();
    return "localhost" + address.substr(address.find(':'));
}

// The attacker's own connection to the coordinator's database file. The coordinator writes
// to it meanwhile (device records, audit): without a busy timeout the attacker's UPDATE
// failed with "database is locked" now and then under ASan.
SQLite::Database attackers_connection(const std::filesystem::path &db) {
    return SQLite::Database(db, SQLite::OPEN_READWRITE, 5000);
}

}  // namespace

TEST(catalogue, a_device_starts_from_the_content_id_and_believes_nothing_the_catalogue_says) {
    running_server s;
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> admin(connect(s), pd_admin_free);
    pdtest::temp_dir share;
    published pkg, other;
    publish(admin.get(), pkg, share.path(), "pkg.bin", 300000, 1);
    publish(admin.get(), other, share.path(), "other.bin", 200000, 2);

    device d(s, by_name(s));
    ASSERT_EQ(pd_content_resolve(d.s, pkg.id()), PD_OK) << pdtest::last_error();
    uint64_t job = 0;
    ASSERT_EQ(pd_job_start(&job, d.s, pkg.id(), nullptr), PD_OK) << pdtest::last_error();
    auto out = pdtest::wait_job(d.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_EQ(out.status.bytes_by_source[PD_SOURCE_ORIGIN], 300000u);  // the catalogue's origin

    pd_content_id unknown{};
    unknown.bytes[0] = 1;
    EXPECT_EQ(pd_content_resolve(d.s, &unknown), PD_E_NOT_FOUND);
    EXPECT_NE(pdtest::last_error().find("is not in the catalogue"), std::string::npos) << pdtest::last_error();

    // The attacker owns the coordinator's database: it swaps another content's manifest in.
    // The manifest proves its own id, so the device refuses it and imports nothing.
    auto db = s.dir / "c.db";
    {
        auto sql = attackers_connection(db);
        SQLite::Statement q(sql, "UPDATE contents SET manifest=(SELECT manifest FROM contents WHERE id=?) WHERE id=?");
        q.bind(1, hex_of(other.id()));
        q.bind(2, hex_of(pkg.id()));
        ASSERT_EQ(q.exec(), 1);
    }
    device fresh(s, by_name(s));
    EXPECT_EQ(pd_content_resolve(fresh.s, pkg.id()), PD_E_INTEGRITY);
    EXPECT_NE(pdtest::last_error().find("with another content's manifest"), std::string::npos) << pdtest::last_error();
    pd_manifest *none = nullptr;
    EXPECT_EQ(pd_content_export(&none, fresh.s, pkg.id()), PD_E_NOT_FOUND);
    EXPECT_EQ(pd_content_export(&none, fresh.s, other.id()), PD_E_NOT_FOUND);
    {
        auto sql = attackers_connection(db);
        sql.exec("UPDATE contents SET manifest=x'504446' WHERE id='" + hex_of(pkg.id()) + "'");
    }
    EXPECT_EQ(pd_content_resolve(fresh.s, pkg.id()), PD_E_INTEGRITY);
    EXPECT_NE(pdtest::last_error().find("a manifest that does not parse"), std::string::npos) << pdtest::last_error();

    // A device that installs only what a trusted publisher signed refuses an unsigned entry.
    device strict(s, by_name(s), false);
    pd_session_set_setting(strict.s, "trust.publisher_keys", std::string(64, 'a').c_str());
    EXPECT_EQ(pd_content_resolve(strict.s, other.id()), PD_E_AUTH);
    EXPECT_NE(pdtest::last_error().find("has no publication record"), std::string::npos) << pdtest::last_error();

    // An administrator cannot file one content's manifest under another's id either.
    auto raw = s.admin();
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_manifest_serialize(&b, other.m), PD_OK);
    auto entry = json{{"op", "admin.publish"}, {"content", hex_of(pkg.id())}, {"name", "pkg.bin"}, {"size", 300000},
                      {"block_count", 5}, {"manifest", pd::to_base64(static_cast<const std::uint8_t *>(b.ptr), b.size)}};
    pd_buf_dispose(&b);
    auto refused = raw.call(entry);
    EXPECT_EQ(refused.value("error", std::string()), "the manifest is another content's") << refused.dump();
    entry["manifest"] = "not base64!";
    EXPECT_EQ(raw.call(entry).value("error", std::string()), "'manifest' must be base64");

    // Host names: one that does not resolve is a clear error, not a hang or a crash.
    device lost(s, "no-such-host.invalid:7400");
    EXPECT_EQ(pd_content_resolve(lost.s, pkg.id()), PD_E_NOT_FOUND);
    EXPECT_NE(pdtest::last_error().find("no-such-host.invalid"), std::string::npos) << pdtest::last_error();
    pd_admin *nowhere = nullptr;
    auto cred = running_server::capi(s.add_admin("lost"));
    EXPECT_NE(pd_admin_connect(&nowhere, "no-such-host.invalid:7400", &cred, 3000), PD_OK);
    EXPECT_NE(pdtest::last_error().find("no-such-host.invalid"), std::string::npos) << pdtest::last_error();
}

TEST(catalogue, a_retired_content_leaves_every_cache_and_comes_back_when_published_again) {
    server_options o = running_server::legacy();
    o.heartbeat_ms = 200;
    running_server s(o);
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> admin(connect(s), pd_admin_free);
    pdtest::temp_dir share;
    published pkg;
    publish(admin.get(), pkg, share.path(), "pkg.bin", 200000, 3);
    device d(s, s.srv->bound_address());
    ASSERT_EQ(pd_content_resolve(d.s, pkg.id()), PD_OK) << pdtest::last_error();
    uint64_t job = 0;
    ASSERT_EQ(pd_job_start(&job, d.s, pkg.id(), nullptr), PD_OK);
    ASSERT_EQ(pdtest::wait_job(d.s, job).status.state, PD_JOB_COMPLETED);
    ASSERT_TRUE(d.holds(pkg.id()));
    auto held_by_coordinator = [&](const published &p) {
        for (auto &h : s.store->holdings())
            if (h.content_id == hex_of(p.id())) return true;
        return false;
    };
    auto wait_for = [](auto done) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        return done();
    };
    EXPECT_TRUE(wait_for([&] { return held_by_coordinator(pkg); }));

    // Evicted by the host: the coordinator hears it and stops counting the device as a holder.
    published other;
    publish(admin.get(), other, share.path(), "other.bin", 100000, 4);
    ASSERT_EQ(pd_content_resolve(d.s, other.id()), PD_OK);
    ASSERT_EQ(pd_job_start(&job, d.s, other.id(), nullptr), PD_OK);
    ASSERT_EQ(pdtest::wait_job(d.s, job).status.state, PD_JOB_COMPLETED);
    EXPECT_TRUE(wait_for([&] { return held_by_coordinator(other); }));
    bool removed = false;  // once the job let go of it
    wait_for([&] { return removed = removed || pd_cache_remove(d.s, other.id()) == PD_OK; });
    ASSERT_TRUE(removed) << pdtest::last_error();
    EXPECT_TRUE(wait_for([&] { return !held_by_coordinator(other); })) << "the eviction was not reported";

    ASSERT_EQ(pd_admin_retire_content(admin.get(), pkg.id()), PD_OK) << pdtest::last_error();
    EXPECT_EQ(pd_admin_retire_content(admin.get(), pkg.id()), PD_E_INVALID);  // gone already
    EXPECT_TRUE(wait_for([&] { return !d.holds(pkg.id()); })) << "the device kept a retired content";
    EXPECT_EQ(pd_content_resolve(d.s, pkg.id()), PD_E_NOT_FOUND);
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_admin_list_contents(&b, admin.get()), PD_OK);
    auto listed = json::parse(std::string(reinterpret_cast<char *>(b.ptr), b.size))["contents"];
    ASSERT_EQ(listed.size(), 1u);  // the other content only
    EXPECT_EQ(listed[0]["content"], hex_of(other.id()));
    pd_buf_dispose(&b);

    // Published again, it is no longer retired: a device that never saw the retirement is not
    // told to drop it, and devices can fetch it again.
    ASSERT_EQ(pd_admin_publish(admin.get(), pkg.m, pdtest::file_url(pkg.path).c_str()), PD_OK);
    auto agent = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    auto page = read_retired_contents(agent.call({{"op", "retired_contents"}, {"device_id", "x"}, {"since", 0}}), 0);
    EXPECT_TRUE(page.contents.empty());
    EXPECT_EQ(page.upto, 1u);
    EXPECT_EQ(pd_content_resolve(d.s, pkg.id()), PD_OK) << pdtest::last_error();
}

TEST(catalogue, retirements_are_paged_in_order_and_a_hostile_page_is_refused) {
    running_server s;
    std::unique_ptr<pd_admin, void (*)(pd_admin *)> admin(connect(s), pd_admin_free);
    pdtest::temp_dir share;
    std::vector<published> pkgs(3);
    for (unsigned i = 0; i < 3; ++i) publish(admin.get(), pkgs[i], share.path(), "p" + std::to_string(i), 1000 + i, 10 + i);
    for (auto &p : pkgs) ASSERT_EQ(pd_admin_retire_content(admin.get(), p.id()), PD_OK);
    auto agent = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    auto all = read_retired_contents(agent.call({{"op", "retired_contents"}, {"device_id", "x"}, {"since", 0}}), 0);
    ASSERT_EQ(all.contents.size(), 3u);
    EXPECT_EQ(all.upto, 3u);
    EXPECT_EQ(std::memcmp(all.contents[0].data(), pkgs[0].id()->bytes, 32), 0);
    auto later = read_retired_contents(agent.call({{"op", "retired_contents"}, {"device_id", "x"}, {"since", 2}}), 2);
    ASSERT_EQ(later.contents.size(), 1u);
    auto reg = json::parse(agent.call({{"op", "register"}, {"device_id", "x"}}).dump());
    EXPECT_EQ(read_retired_count(reg), 3u);

    // What a broken or hostile coordinator might answer: each is a clear error, never a crash.
    for (auto bad : {json{{"ok", true}, {"upto", 1}, {"contents", json::array()}},                    // before `since`
                     json{{"ok", true}, {"upto", 9}, {"contents", {"zz"}}},                           // not an id
                     json{{"ok", true}, {"upto", 9}, {"contents", std::vector<std::string>(1025, std::string(64, 'a'))}},
                     json{{"ok", true}, {"contents", json::array()}}, json{{"ok", false}}})
        EXPECT_THROW(read_retired_contents(bad, 2), pd::error) << bad.dump();
    for (auto bad : {json{{"ok", true}, {"manifest", "@@"}}, json{{"ok", true}},
                     json{{"ok", true}, {"manifest", "AAAA"}, {"origins", {"http://a/\nhttp://evil/"}}},
                     json{{"ok", true}, {"manifest", "AAAA"}, {"publication", "xyz"}}})
        EXPECT_THROW(read_content_reply(bad), pd::error) << bad.dump();
    try {
        read_content_reply(json{{"ok", false}, {"error", "content x is not in the catalogue"}});
        FAIL();
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_NOT_FOUND);
    }
}

TEST(coordinator_console, the_health_check_lists_agents_by_version_and_flags_unsupported_ones) {
    server_options o = running_server::legacy();
    o.agent_versions = version_range::parse("0.4.0-0.5.9");
    running_server s(o);
    auto agent = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    int n = 0;
    for (auto v : {"0.4.0", "0.4.0", "0.5.2-rc1", "0.3.9", "garbage", ""})
        agent.call({{"op", "register"}, {"device_id", "d" + std::to_string(++n)}, {"version", v}});
    auto health = s.admin("viewer").call({{"op", "admin.health"}});
    EXPECT_EQ(health["supported_agent_versions"], "0.4.0-0.5.9");
    EXPECT_EQ(health["unsupported"], 3);
    std::map<std::string, std::pair<int, bool>> by_version;
    for (auto &a : health["agents"]) by_version[a["version"]] = {a["devices"].get<int>(), a["supported"].get<bool>()};
    EXPECT_EQ(by_version["0.4.0"], std::make_pair(2, true));
    EXPECT_EQ(by_version["0.5.2-rc1"], std::make_pair(1, true));
    EXPECT_EQ(by_version["0.3.9"], std::make_pair(1, false));
    EXPECT_EQ(by_version["garbage"], std::make_pair(1, false));

    EXPECT_TRUE(version_range().admits(PD_VERSION_STRING));  // the default range holds this build
    EXPECT_EQ(version_range::parse("1.2.3").text(), "1.2.3");
    for (auto bad : {"", "1.2", "1.2.3-", "2.0.0-1.0.0", "a.b.c", "1.2.3x"}) EXPECT_THROW(version_range::parse(bad), pd::error) << bad;
}

TEST(coordinator_console, devices_are_retired_by_hand_and_after_an_absence_even_across_a_restart) {
    running_server s;
    auto agent = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    agent.call({{"op", "register"}, {"device_id", "d1"}, {"name", "pc-1"}, {"address", "127.0.0.1"}});
    agent.call({{"op", "register"}, {"device_id", "d2"}, {"name", "pc-2"}, {"address", "127.0.0.1"}});
    auto admin = s.admin();
    EXPECT_TRUE(admin.call({{"op", "admin.devices.retire"}, {"device_id", "d1"}}).value("ok", false));
    EXPECT_EQ(admin.call({{"op", "admin.devices.retire"}, {"device_id", "d1"}}).value("error", std::string()),
              "no device 'd1' is registered");
    auto csv = admin.call({{"op", "admin.devices.csv"}})["csv"].get<std::string>();
    EXPECT_EQ(csv.find("d1,"), std::string::npos) << csv;
    EXPECT_NE(csv.find("d2,pc-2"), std::string::npos) << csv;
    // Not a revocation: the device that comes back registers again.
    EXPECT_TRUE(agent.call({{"op", "heartbeat"}, {"device_id", "d1"}}).value("unregistered", false));

    // Automatic retirement counts from when a device was last seen, also for devices a
    // restart has not heard from yet (the restart gives them an online window, not a new life).
    pdtest::temp_dir dir;
    auto store = open_sqlite_store(dir / "c.db");
    {
        registry reg(*store, election_policy{}, 15000);
        device_record a, b;
        a.id = "old", a.address = "10.0.0.1";
        b.id = "recent", b.address = "10.0.0.2";
        reg.register_device(a, 1000);
        reg.register_device(b, 50000);
        EXPECT_EQ(reg.retire_absent(2000), std::vector<std::string>{"old"});
        EXPECT_EQ(reg.device_count(), 1u);
    }
    registry restarted(*store, election_policy{}, 15000);
    restarted.load(900000);
    EXPECT_EQ(restarted.retire_absent(60000), std::vector<std::string>{"recent"});
    EXPECT_TRUE(store->devices().empty());
}

TEST(coordinator_console, an_evicted_content_is_no_longer_counted_as_held) {
    running_server s;
    auto agent = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    std::string cid(64, 'c');
    agent.call({{"op", "register"}, {"device_id", "d1"}, {"address", "127.0.0.1"}});
    agent.call({{"op", "holding"}, {"device_id", "d1"}, {"content", cid}, {"verified_blocks", 4}, {"complete", true}});
    ASSERT_EQ(s.store->holdings().size(), 1u);
    agent.call({{"op", "holding"}, {"device_id", "d1"}, {"content", cid}, {"verified_blocks", 0}, {"complete", false}});
    EXPECT_TRUE(s.store->holdings().empty());
}

TEST(coordinator_console, distribution_optimisation_switches_between_the_upload_and_subnets_of_a_chosen_size) {
    pdtest::temp_dir dir;
    auto store = open_sqlite_store(dir / "c.db");
    {
        registry reg(*store, election_policy{}, 15000);
        device_record a, b;
        a.id = "a", a.address = "10.1.0.5";
        b.id = "b", b.address = "10.1.3.7";
        reg.register_device(a, 1000);
        reg.register_device(b, 1000);
        EXPECT_EQ(reg.office_of("a"), "Subnet 10.1.0.0/24");  // the automatic /24s
        EXPECT_EQ(reg.office_of("b"), "Subnet 10.1.3.0/24");
        reg.import_topology("name,parent,type,ranges\nCentral Office,,Default,10.0.0.0/24\nBranch,Central Office,Default,10.1.0.0/16\n");
        EXPECT_EQ(reg.office_of("b"), "Branch");
        reg.set_optimisation(false, 22, 0);  // off: subnets again, /22 this time; the upload is kept
        EXPECT_FALSE(reg.topology_uploaded());
        EXPECT_EQ(reg.office_of("a"), "Subnet 10.1.0.0/22");
        EXPECT_EQ(reg.office_of("b"), "Subnet 10.1.0.0/22");
        EXPECT_NE(reg.export_topology().find("Subnet 10.1.0.0/22,Central Office,Default,10.1.0.0/22"), std::string::npos);
        EXPECT_THROW(reg.set_optimisation(false, 33, 0), pd::error);
        EXPECT_THROW(reg.set_optimisation(false, 0, 8), pd::error);
    }
    registry restarted(*store, election_policy{}, 15000);  // the switch and the prefix survive a restart
    restarted.load(2000);
    EXPECT_EQ(restarted.office_of("b"), "Subnet 10.1.0.0/22");
    restarted.set_optimisation(true, 0, 0);
    EXPECT_TRUE(restarted.topology_uploaded());
    EXPECT_EQ(restarted.office_of("a"), "Branch");
}

TEST(coordinator_console, a_device_that_stays_online_and_serves_its_office_becomes_a_preferred_device) {
    pdtest::temp_dir dir;
    auto store = open_sqlite_store(dir / "c.db");
    const std::int64_t window = 15000;
    {
        registry reg(*store, election_policy{}, window);
        device_record a, b;
        a.id = "a", a.address = "10.1.0.5", a.listen = "10.1.0.5:34760";
        b.id = "b", b.address = "10.1.0.6", b.listen = "10.1.0.6:34760";
        reg.register_device(a, 0);
        reg.register_device(b, 0);
        EXPECT_EQ(reg.rvp("Subnet 10.1.0.0/24", 0), "a");  // equal facts: the id decides
        // An hour of heartbeats: b online throughout and serving 300 MiB (over two sessions:
        // its second session's counter starts again from zero); a online and serving nothing.
        std::int64_t t = 0;
        for (int i = 1; i <= 360; ++i) {
            t = i * 10000;
            device_record fa = a, fb = b;
            fb.served_bytes_now = (i <= 180 ? i : i - 180) * (1ull << 20) * 300 / 360;
            reg.heartbeat("a", fa, t);
            reg.heartbeat("b", fb, t);
        }
        auto *db = &reg.devices().at("b");
        EXPECT_GE(db->served_bytes, 299ull << 20);
        EXPECT_EQ(db->online_ms, 3600000);
        EXPECT_TRUE(reg.preferred(*db, t));
        EXPECT_FALSE(reg.preferred(reg.devices().at("a"), t));
        reg.take_offline("a");  // the sticky RVP goes away: the next election prefers b's history
        EXPECT_EQ(reg.rvp("Subnet 10.1.0.0/24", t), "b");
        EXPECT_EQ(reg.flush_history(), 2u);  // both heartbeated: both histories are written
        auto csv = reg.activated_devices_csv(t);
        EXPECT_NE(csv.find(",history,3600000,"), std::string::npos) << csv;
    }
    auto stored = store->devices();
    ASSERT_EQ(stored.size(), 2u);
    EXPECT_EQ(stored[1].online_ms, 3600000);  // the history survives a restart
    // A device away half the time is not preferred, whatever it served; the override is.
    registry reg(*store, election_policy{}, window);
    device_record c;
    c.id = "c", c.address = "10.1.0.7";
    reg.register_device(c, 0);
    for (int i = 1; i <= 12; ++i) {
        device_record fc = c;
        fc.served_bytes_now = std::uint64_t(i) << 30;
        reg.heartbeat("c", fc, i * 600000);  // every 10 minutes: offline in between
    }
    EXPECT_FALSE(reg.preferred(reg.devices().at("c"), 7200000));
    c.preferred = true;
    reg.register_device(c, 7200000);
    EXPECT_TRUE(reg.preferred(reg.devices().at("c"), 7200000));
}

TEST(coordinator_console, host_names_are_accepted_wherever_an_address_is_and_one_that_does_not_resolve_is_a_clear_error) {
    // Listening: the coordinator and a session.
    pdtest::temp_dir dir;
    auto store = open_sqlite_store(dir / "c.db");
    registry reg(*store, election_policy{}, 15000);
    boost::asio::io_context io;
    server_options o;
    server srv(io, reg, *store, o);
    srv.listen("localhost:0");
    EXPECT_EQ(srv.bound_address().rfind("127.0.0.1:", 0), 0u) << srv.bound_address();
    try {
        srv.listen("no-such-host.invalid:0");
        FAIL();
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_INVALID);
        EXPECT_NE(std::string(e.what()).find("listen address 'no-such-host.invalid' does not resolve"), std::string::npos) << e.what();
    }
    std::array<std::uint8_t, 32> key = running_server::random_key();
    pd_session_options so = PD_SESSION_OPTIONS_INIT;
    std::string cache = dir / "cache";
    so.cache_dir = cache.c_str();
    so.fleet_key = key.data();
    so.fleet_key_len = 32;
    so.listen_addresses = "localhost:0";
    pdtest::session_ptr s;
    ASSERT_EQ(pd_session_new(&s.s, &so), PD_OK) << pdtest::last_error();
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_session_listen_addresses(&b, s), PD_OK);
    EXPECT_EQ(std::string(reinterpret_cast<char *>(b.ptr), b.size).rfind("127.0.0.1:", 0), 0u);
    pd_buf_dispose(&b);
    pdtest::session_ptr bad;
    std::string cache2 = dir / "cache2";
    so.cache_dir = cache2.c_str();
    so.listen_addresses = "no-such-host.invalid:0";
    EXPECT_EQ(pd_session_new(&bad.s, &so), PD_E_INVALID);
    EXPECT_NE(pdtest::last_error().find("does not resolve"), std::string::npos) << pdtest::last_error();
}

TEST(catalogue, hostile_requests_to_the_new_operations_get_an_error_and_the_server_goes_on) {
    running_server s;
    auto member = coordinator_client(s.srv->bound_address(), s.key.data(), 3000);
    member.call({{"op", "register"}, {"device_id", "m"}});
    auto error_of = [&](coordinator_client &c, const json &request) {
        auto r = c.call(request);
        EXPECT_FALSE(r.value("ok", true)) << request.dump();
        return r.value("error", std::string());
    };
    json many = json::array();
    for (int i = 0; i < 1025; ++i) many.push_back({{"content", std::string(64, 'a')}, {"verified_blocks", 1}});
    EXPECT_NE(error_of(member, {{"op", "heartbeat"}, {"device_id", "m"}, {"progress", many}}).find("at most 1024"), std::string::npos);
    EXPECT_NE(error_of(member, {{"op", "heartbeat"}, {"device_id", "m"}, {"progress", {{{"content", "x"}}}}}).find("64 lowercase hex"),
              std::string::npos);
    EXPECT_NE(error_of(member, {{"op", "heartbeat"}, {"device_id", "m"}, {"progress", "all"}}).find("'progress' must be an array"),
              std::string::npos);
    EXPECT_NE(error_of(member, {{"op", "content"}, {"device_id", "m"}, {"content", std::string(64, 'G')}}).find("64 lowercase hex"),
              std::string::npos);
    auto page = member.call({{"op", "retired_contents"}, {"device_id", "m"}, {"since", std::uint64_t(1) << 63}});
    EXPECT_TRUE(page.value("ok", false));  // nothing after a sequence number from the far future
    EXPECT_TRUE(page["contents"].empty());
    // A fleet member is not an administrator: none of the admin operations are open to it.
    for (auto op : {"admin.prestage", "admin.prestage.status", "admin.contents.retire", "admin.optimisation", "admin.devices.retire"})
        EXPECT_NE(error_of(member, {{"op", op}, {"content", std::string(64, 'a')}}).find("administrator"), std::string::npos) << op;
    auto viewer = s.admin("viewer");
    for (auto op : {"admin.prestage", "admin.prestage.cancel", "admin.contents.retire", "admin.optimisation", "admin.devices.retire"})
        EXPECT_NE(error_of(viewer, {{"op", op}, {"content", std::string(64, 'a')}}).find("is a viewer"), std::string::npos) << op;
    EXPECT_TRUE(viewer.call({{"op", "admin.prestage.status"}}).value("ok", false));
    auto admin = s.admin();
    EXPECT_EQ(error_of(admin, {{"op", "admin.optimisation"}, {"enabled", "yes"}}), "'enabled' must be true or false");
    EXPECT_NE(error_of(admin, {{"op", "admin.optimisation"}, {"enabled", false}, {"prefix_v4", std::uint64_t(1) << 40}})
                  .find("IPv4 prefix length must be 8-32"),
              std::string::npos);
    EXPECT_NE(error_of(admin, {{"op", "admin.prestage"}, {"content", std::string(64, 'a')}, {"offices", "all"}, {"deadline_ms", 1}})
                  .find("'offices' must be an array"),
              std::string::npos);
    EXPECT_TRUE(member.call({{"op", "heartbeat"}, {"device_id", "m"}}).value("ok", false));  // the server went on
}
