// End-to-end through the C ABI with the real origin plugin and real files.
#include "helpers.h"

#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#ifdef __linux__
#include <sys/mount.h>
#endif

namespace {

struct fixture {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    pd_manifest *m = nullptr;
    std::vector<std::uint8_t> data;

    explicit fixture(std::size_t size = 3 * 1024 * 1024 + 4321, std::uint64_t quota = 0,
                     const std::string &cache = "") {
        EXPECT_EQ(pdtest::open_session(s, cache.empty() ? dir / "cache" : cache, quota), PD_OK) << pdtest::last_error();
        EXPECT_EQ(pd_session_load_plugin(s, PD_TEST_PLUGIN_DIR), PD_OK) << pdtest::last_error();
        data = pdtest::random_bytes(size, static_cast<std::uint32_t>(size));
        pdtest::write_file(dir / "origin.bin", data);
        EXPECT_EQ(pd_manifest_hash_file(&m, (dir / "origin.bin").c_str(), "package.bin"), PD_OK);
    }
    ~fixture() { pd_manifest_free(m); }

    std::uint64_t start(const std::string &dest, const char *origin = nullptr) {
        std::string org = origin ? origin : pdtest::file_url(dir / "origin.bin");
        EXPECT_EQ(pd_content_import(s, m, org.c_str()), PD_OK);
        pd_job_options jo = PD_JOB_OPTIONS_INIT;
        jo.destination = dest.empty() ? nullptr : dest.c_str();
        uint64_t job = 0;
        EXPECT_EQ(pd_job_start(&job, s, pd_manifest_id(m), &jo), PD_OK) << pdtest::last_error();
        return job;
    }
};

}  // namespace

TEST(capi, version_and_errors) {
    EXPECT_EQ(pd_version(), static_cast<uint32_t>(PD_VERSION_NUM));
    EXPECT_STREQ(pd_version_string(), PD_VERSION_STRING);
    EXPECT_TRUE(PD_AT_LEAST_VERSION(0, 4, 0));
    EXPECT_STREQ(pd_strerror(PD_E_NOSPACE), "disk full");
    EXPECT_STREQ(pd_strerror(12345), "unknown error code");
    EXPECT_EQ(pd_session_new(nullptr, nullptr), PD_E_MISUSE);
    EXPECT_EQ(pd_error_last()->code, PD_E_MISUSE);
    EXPECT_EQ(pd_error_last()->category, PD_CATEGORY_API);
    pd_content_id id;
    EXPECT_EQ(pd_content_id_from_hex(&id, "abc"), PD_E_INVALID);
    EXPECT_EQ(pd_content_id_to_hex(nullptr, &id), PD_E_MISUSE);
    pd_error_clear();
    EXPECT_EQ(pd_error_last()->code, PD_OK);
}

TEST(capi, misuse_never_crashes) {
    pd_event ev;
    size_t n = 0;
    uint64_t job = 0;
    pd_buf b = PD_BUF_INIT;
    EXPECT_EQ(pd_session_poll_events(nullptr, &ev, sizeof ev, 1, &n), PD_E_MISUSE);
    EXPECT_EQ(pd_job_start(&job, nullptr, nullptr, nullptr), PD_E_MISUSE);
    EXPECT_EQ(pd_job_cancel(nullptr, 1), PD_E_MISUSE);
    EXPECT_EQ(pd_session_get_setting(&b, nullptr, "x"), PD_E_MISUSE);
    EXPECT_EQ(pd_manifest_parse(nullptr, "x", 1), PD_E_MISUSE);
    EXPECT_EQ(pd_manifest_size(nullptr), 0u);
    EXPECT_EQ(pd_manifest_id(nullptr), nullptr);
    pd_session_free(nullptr);
    pd_manifest_free(nullptr);
    pd_buf_dispose(nullptr);
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    pd_session *s = nullptr;
    EXPECT_EQ(pd_session_new(&s, &o), PD_E_MISUSE);  // no cache_dir
    o.version = 99;
    EXPECT_EQ(pd_session_new(&s, &o), PD_E_VERSION);
    EXPECT_EQ(pd_session_options_init(&o, 99), PD_E_VERSION);
    EXPECT_EQ(s, nullptr);
}

// A host built against 0.4's headers passes the shorter version-1 struct: the library reads
// no byte past it (the bytes after it here are garbage: reading them would crash or load
// plugins from a wild path) and loads the default plugin directory for NULL.
TEST(capi, a_version_1_session_options_struct_is_read_only_as_far_as_it_goes) {
    pdtest::temp_dir dir;
    std::string cache = dir / "cache";
    struct {
        pd_session_options o;
        char after[64];
    } padded;
    std::memset(&padded, 0xAB, sizeof padded);
    ASSERT_EQ(pd_session_options_init(&padded.o, 1), PD_OK);
    padded.o.cache_dir = cache.c_str();
    pd_session *s = nullptr;
    ASSERT_EQ(pd_session_new(&s, &padded.o), PD_OK) << pdtest::last_error();
    // NULL: the default directory, which for this test binary's library does not exist.
    int rc = pd_session_load_plugin(s, nullptr);
    EXPECT_TRUE(rc == PD_OK || rc == PD_E_NOT_FOUND) << pdtest::last_error();
    pd_session_free(s);
}

// pd_session_options.plugin_dir is what pd_session_load_plugin(session, NULL) loads.
TEST(capi, the_session_plugin_dir_is_what_a_null_path_loads) {
    pdtest::temp_dir dir;
    std::string cache = dir / "cache", plugins = dir / "no-plugins-here";
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.cache_dir = cache.c_str();
    o.plugin_dir = plugins.c_str();
    pd_session *s = nullptr;
    ASSERT_EQ(pd_session_new(&s, &o), PD_OK) << pdtest::last_error();
    EXPECT_EQ(pd_session_load_plugin(s, nullptr), PD_E_NOT_FOUND);
    EXPECT_NE(pdtest::last_error().find("no-plugins-here"), std::string::npos) << pdtest::last_error();
    pd_session_free(s);
}

// An options struct filled with garbage first, then initialised: init must write every field
// of the version, not rely on a zeroed struct.
template <class Options>
Options initialised(int (*init)(Options *, uint32_t), uint32_t version) {
    Options o;
    std::memset(&o, 0xAB, sizeof o);
    EXPECT_EQ(init(&o, version), PD_OK) << pdtest::last_error();
    return o;
}

TEST(capi, options_init_fills_the_defaults_of_a_known_version_only) {
    auto so = initialised(pd_session_options_init, PD_SESSION_OPTIONS_VERSION);
    EXPECT_EQ(so.version, PD_SESSION_OPTIONS_VERSION);
    EXPECT_EQ(so.cache_dir, nullptr);
    EXPECT_EQ(so.fleet_key, nullptr);
    EXPECT_EQ(so.listen_addresses, nullptr);
    EXPECT_EQ(so.worker_threads + so.event_queue_capacity + so.cache_quota_percent, 0u);
    EXPECT_EQ(so.cache_quota_bytes, 0u);
    EXPECT_EQ(so.notify, nullptr);
    EXPECT_EQ(so.notify_user_data, nullptr);
    EXPECT_EQ(so.plugin_dir, nullptr);
    // Version 1 (before plugin_dir) is still filled, and only as far as its size.
    pd_session_options v1;
    std::memset(&v1, 0xAB, sizeof v1);
    EXPECT_EQ(pd_session_options_init(&v1, 1), PD_OK);
    EXPECT_EQ(v1.version, 1u);
    EXPECT_EQ(v1.notify_user_data, nullptr);
    EXPECT_NE(v1.plugin_dir, nullptr);  // beyond a version-1 struct: untouched
    auto jo = initialised(pd_job_options_init, PD_JOB_OPTIONS_VERSION);
    EXPECT_EQ(jo.version, PD_JOB_OPTIONS_VERSION);
    EXPECT_EQ(jo.destination, nullptr);
    EXPECT_EQ(jo.origin, nullptr);
    EXPECT_EQ(jo.pin, 0u);
    EXPECT_EQ(jo.delivery, static_cast<uint32_t>(PD_DELIVER_HARDLINK));
    auto po = initialised(pd_publish_options_init, PD_PUBLISH_OPTIONS_VERSION);
    EXPECT_EQ(po.version, PD_PUBLISH_OPTIONS_VERSION);
    EXPECT_EQ(po.name, nullptr);
    EXPECT_EQ(po.origin, nullptr);
    EXPECT_EQ(po.add_to_cache, 0u);
    for (uint32_t bad : {0u, 3u, 99u}) {
        EXPECT_EQ(pd_session_options_init(&so, bad), PD_E_VERSION) << bad;
        EXPECT_NE(std::string(pd_error_last()->message).find("pd_session_options version"), std::string::npos);
    }
    for (uint32_t bad : {0u, 2u, 99u}) {
        EXPECT_EQ(pd_job_options_init(&jo, bad), PD_E_VERSION) << bad;
        EXPECT_EQ(pd_publish_options_init(&po, bad), PD_E_VERSION) << bad;
    }
    EXPECT_EQ(pd_session_options_init(nullptr, 1), PD_E_MISUSE);
    EXPECT_EQ(pd_job_options_init(nullptr, 1), PD_E_MISUSE);
    EXPECT_EQ(pd_publish_options_init(nullptr, 1), PD_E_MISUSE);
}

TEST(capi, settings_are_validated) {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
    EXPECT_EQ(pd_session_set_setting(s, "no.such.key", "1"), PD_E_NOT_FOUND);
    EXPECT_EQ(pd_session_set_setting(s, "job.max_pieces_in_flight", "0"), PD_E_INVALID);
    EXPECT_EQ(pd_session_set_setting(s, "job.max_pieces_in_flight", "12x"), PD_E_INVALID);
    EXPECT_EQ(pd_session_set_setting(s, "job.max_pieces_in_flight", "12"), PD_OK);
    EXPECT_EQ(pd_session_set_setting(s, "plugin.origin.max_rate_bytes", "1000"), PD_OK);
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_session_get_setting(&b, s, "job.max_pieces_in_flight"), PD_OK);
    EXPECT_STREQ(reinterpret_cast<char *>(b.ptr), "12");
    ASSERT_EQ(pd_session_get_setting(&b, s, "job.piece_size_kib"), PD_OK);
    EXPECT_STREQ(reinterpret_cast<char *>(b.ptr), "1024");
    pd_buf_dispose(&b);
    EXPECT_EQ(pd_session_get_setting(&b, s, "plugin.none.x"), PD_E_NOT_FOUND);
}

TEST(capi, publish_then_download_from_file_storage_with_progress) {
    fixture f;
    std::string dest = f.dir / "delivered.bin";
    auto job = f.start(dest);
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_TRUE(out.has(PD_EVENT_JOB_STARTED));
    EXPECT_TRUE(out.has(PD_EVENT_JOB_PROGRESS));
    EXPECT_EQ(out.message_of(PD_EVENT_JOB_COMPLETED), dest);
    EXPECT_EQ(pdtest::read_file(dest), f.data);
    EXPECT_EQ(out.status.bytes_verified, f.data.size());
    EXPECT_EQ(out.status.bytes_by_source[PD_SOURCE_ORIGIN], f.data.size());
    EXPECT_FALSE(std::filesystem::exists(dest + ".pdpart"));
    // The cache now holds it complete and the path points at identical bytes.
    pd_cache_entry entries[4];
    entries[0].struct_size = sizeof(pd_cache_entry);
    size_t n = 4;
    ASSERT_EQ(pd_cache_list(f.s, entries, sizeof(pd_cache_entry), &n), PD_OK);
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(entries[0].state, PD_CACHE_COMPLETE);
    EXPECT_STREQ(entries[0].name, "package.bin");
    pd_buf path = PD_BUF_INIT;
    ASSERT_EQ(pd_cache_path(&path, f.s, pd_manifest_id(f.m)), PD_OK);
    EXPECT_EQ(pdtest::read_file(reinterpret_cast<char *>(path.ptr)), f.data);
    pd_buf_dispose(&path);
    // Second job: everything is local, still re-verified and delivered.
    std::string dest2 = f.dir / "again.bin";
    auto job2 = f.start(dest2);
    auto out2 = pdtest::wait_job(f.s, job2);
    ASSERT_EQ(out2.status.state, PD_JOB_COMPLETED) << out2.status.message;
    EXPECT_EQ(out2.status.bytes_by_source[PD_SOURCE_LOCAL], f.data.size());
    EXPECT_EQ(out2.status.bytes_fetched, 0u);
    EXPECT_EQ(pdtest::read_file(dest2), f.data);
}

TEST(capi, tampered_file_storage_is_detected_named_and_nothing_is_delivered) {
    fixture f;
    // Same size, one byte changed in block 17.
    auto bad = f.data;
    bad[17 * 65536 + 100] ^= 0xFF;
    pdtest::write_file(f.dir / "origin.bin", bad);
    std::string dest = f.dir / "delivered.bin";
    auto job = f.start(dest);
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_FAILED);
    EXPECT_EQ(out.status.error_code, PD_E_INTEGRITY) << out.status.message;
    bool named = false;
    for (auto &e : out.events)
        if (e.type == PD_EVENT_BLOCK_REJECTED && e.count == 17) named = true;
    EXPECT_TRUE(named) << "no BLOCK_REJECTED event naming block 17";
    EXPECT_NE(std::string(out.status.message).find("block 17"), std::string::npos) << out.status.message;
    EXPECT_FALSE(std::filesystem::exists(dest));
    EXPECT_FALSE(std::filesystem::exists(dest + ".pdpart"));
    EXPECT_GE(out.status.blocks_rejected, 1u);
    EXPECT_LT(out.status.bytes_verified, f.data.size());
}

TEST(capi, origin_content_changed_is_reported) {
    fixture f;
    auto grown = f.data;
    grown.push_back(1);
    pdtest::write_file(f.dir / "origin.bin", grown);
    auto job = f.start(f.dir / "x.bin");
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_FAILED);
    EXPECT_EQ(out.status.error_code, PD_E_CHANGED);
    EXPECT_NE(std::string(out.status.message).find("origin content changed"), std::string::npos) << out.status.message;
}

TEST(capi, missing_origin_and_no_plugins_fail_with_reasons) {
    fixture f;
    auto job = f.start(f.dir / "x.bin", "/does/not/exist.bin");
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_FAILED);
    EXPECT_EQ(out.status.error_code, PD_E_NO_SOURCE);
    EXPECT_NE(std::string(out.status.message).find("/does/not/exist.bin"), std::string::npos) << out.status.message;
    EXPECT_TRUE(out.has(PD_EVENT_SOURCE_FALLBACK));

    pdtest::temp_dir dir;
    pdtest::session_ptr bare;
    ASSERT_EQ(pdtest::open_session(bare, dir / "cache"), PD_OK);
    ASSERT_EQ(pd_content_import(bare, f.m, "/whatever"), PD_OK);
    uint64_t j = 0;
    ASSERT_EQ(pd_job_start(&j, bare, pd_manifest_id(f.m), nullptr), PD_OK);
    auto o2 = pdtest::wait_job(bare, j);
    EXPECT_EQ(o2.status.error_code, PD_E_NO_SOURCE);
    EXPECT_NE(std::string(o2.status.message).find("no backend plugin"), std::string::npos) << o2.status.message;
}

TEST(capi, unknown_content_duplicate_job_and_bad_destination) {
    fixture f;
    pd_content_id unknown{};
    uint64_t job = 0;
    EXPECT_EQ(pd_job_start(&job, f.s, &unknown, nullptr), PD_E_NOT_FOUND);
    EXPECT_NE(pdtest::last_error().find("import its manifest"), std::string::npos);
    ASSERT_EQ(pd_session_set_setting(f.s, "plugin.origin.max_rate_bytes", "1000000"), PD_OK);
    auto first = f.start("");
    uint64_t second = 0;
    EXPECT_EQ(pd_job_start(&second, f.s, pd_manifest_id(f.m), nullptr), PD_E_EXISTS);
    EXPECT_EQ(second, first);
    EXPECT_EQ(pd_job_cancel(f.s, first), PD_OK);
    EXPECT_EQ(pd_job_cancel(f.s, first), PD_E_STATE);
    EXPECT_EQ(pd_job_cancel(f.s, 999), PD_E_NOT_FOUND);
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = "/no/such/dir/file.bin";
    EXPECT_EQ(pd_job_start(&job, f.s, pd_manifest_id(f.m), &jo), PD_E_NOT_FOUND);
}

TEST(capi, pause_resume_and_cancel_keep_verified_blocks) {
    fixture f(6 * 1024 * 1024);
    ASSERT_EQ(pd_session_set_setting(f.s, "plugin.origin.max_rate_bytes", "4000000"), PD_OK);
    ASSERT_EQ(pd_session_set_setting(f.s, "job.flush_interval_ms", "50"), PD_OK);
    std::string dest = f.dir / "out.bin";
    auto job = f.start(dest);
    ASSERT_TRUE(pdtest::wait_progress(f.s, job, 1024 * 1024));
    ASSERT_EQ(pd_job_pause(f.s, job), PD_OK) << pdtest::last_error();
    EXPECT_EQ(pd_job_pause(f.s, job), PD_E_STATE);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    pd_job_status st{};
    st.struct_size = sizeof st;
    ASSERT_EQ(pd_job_status_get(&st, f.s, job), PD_OK);
    EXPECT_EQ(st.state, PD_JOB_PAUSED);
    auto paused_at = st.bytes_verified;
    EXPECT_GT(paused_at, 0u);
    EXPECT_LT(paused_at, f.data.size());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(pd_job_status_get(&st, f.s, job), PD_OK);
    EXPECT_EQ(st.bytes_verified, paused_at) << "a paused job made progress";
    ASSERT_EQ(pd_session_set_setting(f.s, "plugin.origin.max_rate_bytes", "0"), PD_OK);
    ASSERT_EQ(pd_job_resume(f.s, job), PD_OK);
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_TRUE(out.has(PD_EVENT_JOB_RESUMED));
    EXPECT_EQ(pdtest::read_file(dest), f.data);
}

TEST(capi, cancelled_job_resumes_from_its_verified_blocks) {
    fixture f(6 * 1024 * 1024);
    ASSERT_EQ(pd_session_set_setting(f.s, "plugin.origin.max_rate_bytes", "4000000"), PD_OK);
    ASSERT_EQ(pd_session_set_setting(f.s, "job.flush_interval_ms", "50"), PD_OK);
    auto job = f.start("");
    ASSERT_TRUE(pdtest::wait_progress(f.s, job, 1024 * 1024));
    ASSERT_EQ(pd_job_cancel(f.s, job), PD_OK);
    auto out = pdtest::wait_job(f.s, job, 5);
    EXPECT_EQ(out.status.state, PD_JOB_CANCELLED);
    ASSERT_EQ(pd_session_set_setting(f.s, "plugin.origin.max_rate_bytes", "0"), PD_OK);
    auto job2 = f.start(f.dir / "out.bin");
    auto out2 = pdtest::wait_job(f.s, job2);
    ASSERT_EQ(out2.status.state, PD_JOB_COMPLETED) << out2.status.message;
    EXPECT_GT(out2.status.bytes_by_source[PD_SOURCE_LOCAL], 0u);
    EXPECT_EQ(out2.status.bytes_by_source[PD_SOURCE_LOCAL] + out2.status.bytes_by_source[PD_SOURCE_ORIGIN], f.data.size());
}

TEST(capi, on_disk_damage_to_a_resumed_block_is_caught_end_to_end) {
    for (const char *reverify : {"1", "2"}) {
        fixture f(6 * 1024 * 1024);
        ASSERT_EQ(pd_session_set_setting(f.s, "job.reverify", reverify), PD_OK);
        // One piece at a time: pieces complete in order, so 1 MiB durable means block 0 is.
        ASSERT_EQ(pd_session_set_setting(f.s, "job.max_pieces_in_flight", "1"), PD_OK);
        ASSERT_EQ(pd_session_set_setting(f.s, "plugin.origin.max_rate_bytes", "4000000"), PD_OK);
        ASSERT_EQ(pd_session_set_setting(f.s, "job.flush_interval_ms", "50"), PD_OK);
        auto job = f.start("");
        ASSERT_TRUE(pdtest::wait_progress(f.s, job, 1024 * 1024));
        ASSERT_EQ(pd_job_cancel(f.s, job), PD_OK);
        pdtest::wait_job(f.s, job, 5);
        // Block 0 is verified and durable by now: damage it behind the store's back.
        char hex[65];
        pd_content_id_to_hex(hex, pd_manifest_id(f.m));
        std::string data_file = f.dir / "cache/data/" + std::string(hex) + ".data";
        {
            std::fstream io(data_file, std::ios::in | std::ios::out | std::ios::binary);
            io.seekp(100);
            io.put('\x5a' ^ static_cast<char>(f.data[100]));
        }
        ASSERT_EQ(pd_session_set_setting(f.s, "plugin.origin.max_rate_bytes", "0"), PD_OK);
        std::string dest = f.dir / "out.bin";
        auto job2 = f.start(dest);
        auto out = pdtest::wait_job(f.s, job2);
        ASSERT_EQ(out.status.state, PD_JOB_FAILED) << reverify;
        EXPECT_EQ(out.status.error_code, PD_E_INTEGRITY);
        EXPECT_NE(std::string(out.status.message).find("block 0 changed on disk"), std::string::npos) << out.status.message;
        EXPECT_FALSE(std::filesystem::exists(dest));
        // Only the damaged block is forgotten: the next attempt fetches it and completes.
        auto job3 = f.start(dest);
        auto out3 = pdtest::wait_job(f.s, job3);
        ASSERT_EQ(out3.status.state, PD_JOB_COMPLETED) << out3.status.message;
        EXPECT_EQ(out3.status.bytes_by_source[PD_SOURCE_ORIGIN], 65536u);
        EXPECT_EQ(pdtest::read_file(dest), f.data);
    }
}

TEST(capi, hardlink_delivery_shares_the_cache_file) {
    fixture f(1024 * 1024);
    ASSERT_EQ(pd_content_import(f.s, f.m, (f.dir / "origin.bin").c_str()), PD_OK);
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    std::string dest = f.dir / "linked.bin";
    jo.destination = dest.c_str();
    jo.delivery = PD_DELIVER_HARDLINK;
    uint64_t job = 0;
    ASSERT_EQ(pd_job_start(&job, f.s, pd_manifest_id(f.m), &jo), PD_OK);
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_EQ(pdtest::read_file(dest), f.data);
    EXPECT_EQ(pdtest::link_count(dest), 2u);
#ifndef _WIN32
    // The mode a delivered copy has, not the cache file's 0600 (docs/security.md).
    namespace fs = std::filesystem;
    auto mode = fs::status(dest).permissions() & fs::perms::all;
    EXPECT_EQ(mode, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
#endif
    jo.delivery = 7;
    EXPECT_EQ(pd_job_start(&job, f.s, pd_manifest_id(f.m), &jo), PD_E_MISUSE);
}

// The default delivery is a hard link (no second write). A host that then writes its file
// keeps what it wrote: the cache never writes into it, lets go of its link, and fetches the
// content again the next time it is asked for it.
TEST(capi, a_delivered_file_the_host_writes_is_the_hosts_and_the_cache_fetches_again) {
    fixture f(1024 * 1024);
    ASSERT_EQ(pd_content_import(f.s, f.m, (f.dir / "origin.bin").c_str()), PD_OK);
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    EXPECT_EQ(jo.delivery, static_cast<uint32_t>(PD_DELIVER_HARDLINK));
    std::string dest = f.dir / "delivered.bin";
    auto hosts = pdtest::deliver_then_host_writes(f.s, pd_manifest_id(f.m), dest, 100);
    uint64_t job = 0;
    // Asked again (to another destination): the cache notices, drops its link and fetches.
    std::string again = f.dir / "again.bin";
    jo.destination = again.c_str();
    ASSERT_EQ(pd_job_start(&job, f.s, pd_manifest_id(f.m), &jo), PD_OK);
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_EQ(out.status.bytes_by_source[PD_SOURCE_LOCAL], 0u);
    EXPECT_EQ(out.status.bytes_by_source[PD_SOURCE_ORIGIN], f.data.size());
    EXPECT_EQ(pdtest::read_file(again), f.data);
    EXPECT_EQ(pdtest::read_file(dest), hosts) << "the cache wrote into the host's file";
    EXPECT_EQ(pdtest::link_count(dest), 1u);

    // Delivered to the same place twice: one name, nothing left beside it.
    jo.destination = again.c_str();
    ASSERT_EQ(pd_job_start(&job, f.s, pd_manifest_id(f.m), &jo), PD_OK);
    ASSERT_EQ(pdtest::wait_job(f.s, job).status.state, PD_JOB_COMPLETED);
    EXPECT_EQ(pdtest::link_count(again), 2u);
    for (auto &entry : std::filesystem::directory_iterator(f.dir.path()))
        EXPECT_EQ(entry.path().filename().string().find("pdpart"), std::string::npos) << entry.path();

    // An explicit copy is independent from the start: the host may write it at once.
    std::string copy = f.dir / "copy.bin";
    jo.destination = copy.c_str();
    jo.delivery = PD_DELIVER_COPY;
    ASSERT_EQ(pd_job_start(&job, f.s, pd_manifest_id(f.m), &jo), PD_OK);
    ASSERT_EQ(pdtest::wait_job(f.s, job).status.state, PD_JOB_COMPLETED);
    EXPECT_EQ(pdtest::link_count(copy), 1u);
}

TEST(capi, quota_too_small_fails_the_job_clearly) {
    fixture f(2 * 1024 * 1024, 1024 * 1024);
    auto job = f.start(f.dir / "x.bin");
    auto out = pdtest::wait_job(f.s, job);
    ASSERT_EQ(out.status.state, PD_JOB_FAILED);
    EXPECT_EQ(out.status.error_code, PD_E_QUOTA);
    EXPECT_NE(std::string(out.status.message).find("quota"), std::string::npos);
}

TEST(capi, full_disk_is_a_clear_error_and_the_session_keeps_working) {
#ifndef __linux__
    GTEST_SKIP() << "Linux only: mounts a 4 MiB tmpfs (docs/windows.md)";
#else
    if (!pdtest::is_root()) GTEST_SKIP() << "needs root to mount a small tmpfs";
    pdtest::temp_dir mnt;
    ASSERT_EQ(::mount("tmpfs", mnt.path().c_str(), "tmpfs", 0, "size=4m"), 0) << strerror(errno);
    struct unmount {
        std::string p;
        ~unmount() { ::umount2(p.c_str(), MNT_DETACH); }
    } guard{mnt.path()};
    {
        fixture f(8 * 1024 * 1024, 0, mnt / "cache");
        auto job = f.start(f.dir / "x.bin");
        auto out = pdtest::wait_job(f.s, job);
        ASSERT_EQ(out.status.state, PD_JOB_FAILED);
        EXPECT_EQ(out.status.error_code, PD_E_NOSPACE) << out.status.message;
        EXPECT_NE(std::string(out.status.message).find("disk full"), std::string::npos) << out.status.message;
        // A content that fits still downloads in the same session.
        pd_manifest *small = nullptr;
        auto data = pdtest::random_bytes(300000, 77);
        pdtest::write_file(f.dir / "small.bin", data);
        ASSERT_EQ(pd_manifest_hash_file(&small, (f.dir / "small.bin").c_str(), nullptr), PD_OK);
        ASSERT_EQ(pd_content_import(f.s, small, (f.dir / "small.bin").c_str()), PD_OK);
        uint64_t j2 = 0;
        std::string dest = f.dir / "small.out";
        pd_job_options jo = PD_JOB_OPTIONS_INIT;
        jo.destination = dest.c_str();
        ASSERT_EQ(pd_job_start(&j2, f.s, pd_manifest_id(small), &jo), PD_OK);
        auto o2 = pdtest::wait_job(f.s, j2);
        EXPECT_EQ(o2.status.state, PD_JOB_COMPLETED) << o2.status.message;
        EXPECT_EQ(pdtest::read_file(dest), data);
        pd_manifest_free(small);
    }
#endif
}

TEST(capi, second_session_on_a_cache_is_refused) {
    pdtest::temp_dir dir;
    pdtest::session_ptr a, b;
    ASSERT_EQ(pdtest::open_session(a, dir / "cache"), PD_OK);
    EXPECT_EQ(pdtest::open_session(b, dir / "cache"), PD_E_BUSY);
    EXPECT_NE(pdtest::last_error().find("in use by another process"), std::string::npos);
}

TEST(capi, manifest_files_and_publication_records) {
    fixture f(200000);
    std::string path = f.dir / "m.pdm";
    ASSERT_EQ(pd_manifest_write_file(f.m, path.c_str()), PD_OK);
    pd_manifest *back = nullptr;
    ASSERT_EQ(pd_manifest_read_file(&back, path.c_str()), PD_OK);
    EXPECT_EQ(std::memcmp(pd_manifest_id(back), pd_manifest_id(f.m), 32), 0);
    EXPECT_EQ(pd_manifest_size(back), 200000u);
    EXPECT_EQ(pd_manifest_block_count(back), 4u);
    pd_manifest_free(back);
    pdtest::write_file(f.dir / "garbage.pdm", pdtest::random_bytes(1000, 5));
    EXPECT_EQ(pd_manifest_read_file(&back, (f.dir / "garbage.pdm").c_str()), PD_E_INVALID);
    EXPECT_NE(pdtest::last_error().find("garbage.pdm"), std::string::npos);
    EXPECT_EQ(pd_manifest_read_file(&back, (f.dir / "none.pdm").c_str()), PD_E_NOT_FOUND);

    uint8_t pk[32], sk[64], pk2[32], sk2[64];
    ASSERT_EQ(pd_publisher_keygen(pk, sk), PD_OK);
    ASSERT_EQ(pd_publisher_keygen(pk2, sk2), PD_OK);
    pd_buf rec = PD_BUF_INIT;
    ASSERT_EQ(pd_publication_sign(&rec, f.m, "https://cdn/x", 1234, sk), PD_OK);
    pd_publication *p = nullptr;
    ASSERT_EQ(pd_publication_verify(&p, rec.ptr, rec.size, pk), PD_OK);
    EXPECT_STREQ(pd_publication_origin(p), "https://cdn/x");
    EXPECT_EQ(pd_publication_time(p), 1234);
    EXPECT_EQ(pd_publication_size(p), 200000u);
    pd_publication_free(p);
    EXPECT_EQ(pd_publication_verify(&p, rec.ptr, rec.size, pk2), PD_E_AUTH);
    rec.ptr[20] ^= 1;
    EXPECT_EQ(pd_publication_verify(&p, rec.ptr, rec.size, pk), PD_E_AUTH);
    EXPECT_EQ(p, nullptr);
    pd_buf_dispose(&rec);
}

TEST(capi, content_names_with_dotdot_are_refused) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "f", 1000, 1);
    pd_manifest *m = nullptr;
    EXPECT_EQ(pd_manifest_hash_file(&m, (dir / "f").c_str(), "../../etc/cron.d/x"), PD_E_INVALID);
    EXPECT_NE(pdtest::last_error().find("invalid content name"), std::string::npos) << pdtest::last_error();
    EXPECT_EQ(pd_manifest_hash_file(&m, (dir / "f").c_str(), ".."), PD_E_INVALID);
    EXPECT_EQ(m, nullptr);
}

TEST(capi, publish_with_add_to_cache_serves_locally) {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
    auto data = pdtest::random_bytes(500000, 11);
    pdtest::write_file(dir / "pkg.bin", data);
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    po.add_to_cache = 1;
    po.name = "pkg";
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_content_publish(&m, s, (dir / "pkg.bin").c_str(), &po), PD_OK) << pdtest::last_error();
    EXPECT_STREQ(pd_manifest_name(m), "pkg");
    pd_buf path = PD_BUF_INIT;
    ASSERT_EQ(pd_cache_path(&path, s, pd_manifest_id(m)), PD_OK);
    EXPECT_EQ(pdtest::read_file(reinterpret_cast<char *>(path.ptr)), data);
    pd_buf_dispose(&path);
    ASSERT_EQ(pd_cache_pin(s, pd_manifest_id(m), 1), PD_OK);
    ASSERT_EQ(pd_cache_remove(s, pd_manifest_id(m)), PD_OK);
    EXPECT_EQ(pd_cache_remove(s, pd_manifest_id(m)), PD_E_NOT_FOUND);
    pd_manifest_free(m);
}

TEST(capi, a_cache_directory_and_its_missing_parents_are_created_owner_only) {
    pdtest::temp_dir dir;
    std::string cache = dir / "deep/er/cache";
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, cache + "/"), PD_OK) << pdtest::last_error();  // a trailing separator too
    EXPECT_TRUE(std::filesystem::is_directory(std::filesystem::u8path(cache)));
#ifndef _WIN32
    for (auto *p : {"deep", "deep/er", "deep/er/cache"})
        EXPECT_EQ(std::filesystem::status(dir / p).permissions() & std::filesystem::perms::all, std::filesystem::perms::owner_all) << p;
#endif
}

TEST(capi, paths_are_utf8_everywhere) {
    // Names outside ASCII in the cache, the origin and the destination: UTF-8 through the
    // C ABI, wide at the Win32 boundary (an ANSI code page would garble them there).
    pdtest::temp_dir dir;
    std::string cache = dir / "cache-\xc3\xa9t\xc3\xa9", origin = dir / "origine-\xc3\xbc.bin";
    std::string dest_dir = dir / "\xe6\x97\xa5\xe6\x9c\xac";  // "Japan" in Japanese
    std::filesystem::create_directory(std::filesystem::u8path(dest_dir));
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, cache), PD_OK) << pdtest::last_error();
    ASSERT_EQ(pd_session_load_plugin(s, PD_TEST_PLUGIN_DIR), PD_OK) << pdtest::last_error();
    auto data = pdtest::random_bytes(200000, 12);
    pdtest::write_file(origin, data);
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_manifest_hash_file(&m, origin.c_str(), "paquet.bin"), PD_OK) << pdtest::last_error();
    ASSERT_EQ(pd_content_import(s, m, pdtest::file_url(origin).c_str()), PD_OK) << pdtest::last_error();
    std::string dest = dest_dir + "/paquet.bin";
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    jo.destination = dest.c_str();
    uint64_t job = 0;
    ASSERT_EQ(pd_job_start(&job, s, pd_manifest_id(m), &jo), PD_OK) << pdtest::last_error();
    auto out = pdtest::wait_job(s, job);
    ASSERT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_EQ(pdtest::read_file(dest), data);
    pd_manifest_free(m);
}

TEST(capi, content_information_generation) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "f", 99710, 2);
    uint8_t pass[32] = {1, 2, 3};
    pd_buf v1 = PD_BUF_INIT, v2 = PD_BUF_INIT;
    ASSERT_EQ(pd_content_info_generate(&v1, (dir / "f").c_str(), 1, pass, sizeof pass), PD_OK);
    EXPECT_EQ(v1.size, 166u);  // same shape as the Windows vector for a 99,710-byte file
    ASSERT_EQ(pd_content_info_generate(&v2, (dir / "f").c_str(), 2, pass, sizeof pass), PD_OK);
    EXPECT_EQ(v2.size, 31u + 5 + 68);
    EXPECT_EQ(pd_content_info_generate(&v2, (dir / "f").c_str(), 3, pass, sizeof pass), PD_E_UNSUPPORTED);
    pd_buf_dispose(&v1);
    pd_buf_dispose(&v2);
}

TEST(capi, device_facts) {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, dir / "cache", 1 << 20), PD_OK);
    pd_device_facts f{};
    f.struct_size = sizeof f;
    ASSERT_EQ(pd_session_device_facts(&f, s), PD_OK);
    EXPECT_GT(f.free_bytes, 0u);
    EXPECT_EQ(f.usable_free_bytes, 1u << 20);
    EXPECT_GT(f.uptime_seconds, 0u);
    // The host overrides what it knows better; the rest stays measured.
    pd_device_facts o{};
    o.struct_size = sizeof o;
    o.free_bytes = 123;
    o.usable_free_bytes = UINT64_MAX;
    o.uptime_seconds = UINT64_MAX;
    o.chassis = 3;
    o.os_type = -1;
    ASSERT_EQ(pd_session_set_device_facts(s, &o), PD_OK);
    pd_device_facts g{};
    g.struct_size = sizeof g;
    ASSERT_EQ(pd_session_device_facts(&g, s), PD_OK);
    EXPECT_EQ(g.free_bytes, 123u);
    EXPECT_EQ(g.chassis, 3);
    EXPECT_EQ(g.os_type, f.os_type);
    EXPECT_EQ(g.usable_free_bytes, 1u << 20);
    ASSERT_EQ(pd_session_set_device_facts(s, nullptr), PD_OK);
    ASSERT_EQ(pd_session_device_facts(&g, s), PD_OK);
    EXPECT_EQ(g.free_bytes, f.free_bytes > 0 ? g.free_bytes : 0u);
    EXPECT_NE(g.free_bytes, 123u);
}

TEST(capi, listen_addresses_are_bound_at_start_and_a_port_in_use_is_refused) {
    pdtest::temp_dir dir;
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    std::string c1 = dir / "c1", c2 = dir / "c2";
    o.cache_dir = c1.c_str();
    o.listen_addresses = "127.0.0.1:0";
    pdtest::session_ptr a;
    pdtest::session_ptr keyless;
    EXPECT_EQ(pd_session_new(&keyless.s, &o), PD_E_MISUSE);  // serving peers needs the fleet key
    EXPECT_NE(pdtest::last_error().find("fleet key"), std::string::npos);
    std::uint8_t key[32] = {5};
    o.fleet_key = key;
    o.fleet_key_len = 32;
    ASSERT_EQ(pd_session_new(&a.s, &o), PD_OK) << pdtest::last_error();
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_session_listen_addresses(&b, a), PD_OK);
    std::string bound(reinterpret_cast<char *>(b.ptr), b.size);
    pd_buf_dispose(&b);
    ASSERT_EQ(bound.rfind("127.0.0.1:", 0), 0u) << bound;
    EXPECT_NE(bound, "127.0.0.1:0");
    o.cache_dir = c2.c_str();
    o.listen_addresses = bound.c_str();
    pdtest::session_ptr second;
    EXPECT_EQ(pd_session_new(&second.s, &o), PD_E_BUSY);
    EXPECT_NE(pdtest::last_error().find("already in use"), std::string::npos) << pdtest::last_error();
    o.listen_addresses = "not-an-address";
    EXPECT_EQ(pd_session_new(&second.s, &o), PD_E_INVALID);
    // The cache lock of the failed attempt was released.
    o.listen_addresses = nullptr;
    EXPECT_EQ(pd_session_new(&second.s, &o), PD_OK) << pdtest::last_error();
}

TEST(capi, only_contents_a_trusted_publisher_signed_are_imported_by_default) {
    // The attacker can write the manifest share, or reach the host's download command: it
    // offers its own package, with no record, a record of its own, or a real record of
    // another package.
    fixture f(300000);
    pdtest::session_ptr s;
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    std::string cache = f.dir / "strict";
    o.cache_dir = cache.c_str();
    ASSERT_EQ(pd_session_new(&s.s, &o), PD_OK);
    ASSERT_EQ(pd_session_load_plugin(s, PD_TEST_PLUGIN_DIR), PD_OK);
    std::string origin = f.dir / "origin.bin";

    std::uint8_t pub[32], sec[64], other_pub[32], other_sec[64];
    ASSERT_EQ(pd_publisher_keygen(pub, sec), PD_OK);
    ASSERT_EQ(pd_publisher_keygen(other_pub, other_sec), PD_OK);
    auto sign = [&](const pd_manifest *m, const std::uint8_t *key) {
        pd_buf b = PD_BUF_INIT;
        EXPECT_EQ(pd_publication_sign(&b, m, origin.c_str(), 1, key), PD_OK);
        std::vector<std::uint8_t> r(b.ptr, b.ptr + b.size);
        pd_buf_dispose(&b);
        return r;
    };
    auto import = [&](const std::vector<std::uint8_t> &record, const pd_manifest *m = nullptr) {
        int rc = pd_content_import_published(s, m ? m : f.m, origin.c_str(), record.data(), record.size());
        return std::make_pair(rc, rc == PD_OK ? std::string() : pdtest::last_error());
    };
    auto record = sign(f.m, sec);

    EXPECT_EQ(pd_content_import(s, f.m, origin.c_str()), PD_E_AUTH);
    EXPECT_NE(pdtest::last_error().find("has no publication record"), std::string::npos) << pdtest::last_error();
    auto [rc, why] = import(record);
    EXPECT_EQ(rc, PD_E_AUTH);
    EXPECT_NE(why.find("no publisher key is trusted"), std::string::npos) << why;
    EXPECT_EQ(pd_session_set_setting(s, "trust.publisher_keys", "abc"), PD_E_INVALID);

    char hex[65];
    pd_content_id key_as_id;
    std::memcpy(key_as_id.bytes, pub, 32);
    pd_content_id_to_hex(hex, &key_as_id);
    ASSERT_EQ(pd_session_set_setting(s, "trust.publisher_keys", hex), PD_OK) << pdtest::last_error();
    std::tie(rc, why) = import(sign(f.m, other_sec));
    EXPECT_EQ(rc, PD_E_AUTH);
    EXPECT_NE(why.find("untrusted publisher key"), std::string::npos) << why;
    auto tampered = record;
    tampered[60] ^= 1;  // inside the signed size
    EXPECT_EQ(import(tampered).first, PD_E_AUTH);
    pd_manifest *evil = nullptr;
    pdtest::write_file(f.dir / "evil.bin", pdtest::random_bytes(300000, 666));
    ASSERT_EQ(pd_manifest_hash_file(&evil, (f.dir / "evil.bin").c_str(), "package.bin"), PD_OK);
    std::tie(rc, why) = import(record, evil);  // a genuine record, for another package
    EXPECT_EQ(rc, PD_E_AUTH);
    EXPECT_NE(why.find("its content id differs"), std::string::npos) << why;
    uint64_t job = 0;
    EXPECT_EQ(pd_job_start(&job, s, pd_manifest_id(evil), nullptr), PD_E_NOT_FOUND);  // nothing was imported

    std::tie(rc, why) = import(record);
    ASSERT_EQ(rc, PD_OK) << why;
    ASSERT_EQ(pd_job_start(&job, s, pd_manifest_id(f.m), nullptr), PD_OK);
    EXPECT_EQ(pdtest::wait_job(s, job).status.state, PD_JOB_COMPLETED);

    // Labs may allow unsigned contents; a record given is still checked.
    ASSERT_EQ(pd_session_set_setting(s, "trust.allow_unsigned", "1"), PD_OK);
    EXPECT_EQ(pd_content_import(s, evil, (f.dir / "evil.bin").c_str()), PD_OK);
    EXPECT_EQ(import(tampered).first, PD_E_AUTH);
    pd_manifest_free(evil);
}

TEST(capi, a_record_file_named_or_beside_the_manifest_is_the_one_checked) {
    // The attacker writes the manifest share: a record that does not match beside a manifest
    // must refuse the import even where unsigned contents are allowed (it is never skipped).
    fixture f(100000);
    std::uint8_t pub[32], sec[64];
    ASSERT_EQ(pd_publisher_keygen(pub, sec), PD_OK);
    pd_content_id key_as_id;
    std::memcpy(key_as_id.bytes, pub, 32);
    char hex[65];
    pd_content_id_to_hex(hex, &key_as_id);
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, f.dir / "strict"), PD_OK);
    ASSERT_EQ(pd_session_set_setting(s, "trust.publisher_keys", hex), PD_OK);
    std::string origin = f.dir / "origin.bin", manifest = f.dir / "pkg.pdm", sig = manifest + ".sig";
    ASSERT_EQ(pd_manifest_write_file(f.m, manifest.c_str()), PD_OK);
    pd_buf b = PD_BUF_INIT;
    ASSERT_EQ(pd_publication_sign(&b, f.m, origin.c_str(), 1, sec), PD_OK);
    std::vector<std::uint8_t> record(b.ptr, b.ptr + b.size);
    pd_buf_dispose(&b);

    // No record anywhere: the trust rules decide (allow_unsigned is on in open_session).
    EXPECT_EQ(pd_content_import_with_record_file(s, f.m, origin.c_str(), manifest.c_str(), nullptr), PD_OK);
    ASSERT_EQ(pd_session_set_setting(s, "trust.allow_unsigned", "0"), PD_OK);
    EXPECT_EQ(pd_content_import_with_record_file(s, f.m, origin.c_str(), manifest.c_str(), nullptr), PD_E_AUTH);
    // MANIFEST.sig beside it is found; a tampered one is refused, also with unsigned allowed.
    pdtest::write_file(sig, record);
    EXPECT_EQ(pd_content_import_with_record_file(s, f.m, origin.c_str(), manifest.c_str(), nullptr), PD_OK) << pdtest::last_error();
    auto tampered = record;
    tampered[60] ^= 1;
    pdtest::write_file(sig, tampered);
    ASSERT_EQ(pd_session_set_setting(s, "trust.allow_unsigned", "1"), PD_OK);
    EXPECT_EQ(pd_content_import_with_record_file(s, f.m, origin.c_str(), manifest.c_str(), nullptr), PD_E_AUTH);
    // A record named explicitly wins over the one beside; a named file that is not there is
    // an error naming it, not an unsigned import.
    std::string named = f.dir / "elsewhere.sig";
    pdtest::write_file(named, record);
    EXPECT_EQ(pd_content_import_with_record_file(s, f.m, origin.c_str(), manifest.c_str(), named.c_str()), PD_OK);
    EXPECT_EQ(pd_content_import_with_record_file(s, f.m, origin.c_str(), manifest.c_str(), (f.dir / "missing.sig").c_str()),
              PD_E_NOT_FOUND);
    EXPECT_NE(pdtest::last_error().find("missing.sig"), std::string::npos) << pdtest::last_error();
    pdtest::write_file(named, std::vector<std::uint8_t>(70000, 1));
    EXPECT_EQ(pd_content_import_with_record_file(s, f.m, origin.c_str(), manifest.c_str(), named.c_str()), PD_E_INVALID);
}

// An empty content is a content: it publishes, imports, downloads and delivers (its empty
// bitmap was once stored as NULL and reported as an I/O error).
TEST(capi, an_empty_content_works_end_to_end) {
    fixture f(0);
    std::string dest = f.dir / "empty.out";
    auto out = pdtest::wait_job(f.s, f.start(dest));
    ASSERT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_TRUE(std::filesystem::exists(dest));
    EXPECT_EQ(std::filesystem::file_size(dest), 0u);
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    po.add_to_cache = 1;
    pd_manifest *again = nullptr;
    pdtest::session_ptr other;
    ASSERT_EQ(pdtest::open_session(other, f.dir / "other"), PD_OK);
    ASSERT_EQ(pd_content_publish(&again, other, (f.dir / "origin.bin").c_str(), &po), PD_OK) << pdtest::last_error();
    pd_manifest_free(again);
}

// A symbolic link where the cache's lock file goes is refused, not followed (the lock file
// was once opened through links).
TEST(capi, a_lock_file_that_is_a_link_is_refused) {
#ifdef _WIN32
    GTEST_SKIP() << "POSIX only: symbolic links need a privilege on Windows and Wine has none (docs/windows.md)";
#else
    pdtest::temp_dir dir;
    std::filesystem::create_directories(dir / "cache");
    pdtest::write_file(dir / "victim", {'x'});
    std::filesystem::create_symlink(dir / "victim", dir / "cache/peerdist.lock");
    pdtest::session_ptr s;
    EXPECT_NE(pdtest::open_session(s, dir / "cache"), PD_OK);
    EXPECT_EQ(pdtest::read_file(dir / "victim"), std::vector<std::uint8_t>{'x'});
#endif
}
