// The loader matrix (style guide, Vulkan-Loader's approach): every broken or foreign
// plugin gives a clear error and the session keeps working.
#include "helpers.h"

#include <peerdist/sys/plugin.h>

#include "plugin_host/plugin_host.h"
#include "util/error.h"

namespace {

std::string fake(const std::string &name) { return std::string(PD_TEST_FAKE_PLUGIN_DIR) + "/" + pdtest::module_file(name); }

struct loaded_session {
    pdtest::temp_dir dir;
    pdtest::session_ptr s;
    loaded_session() { EXPECT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK); }
    size_t plugin_count() {
        size_t n = 0;
        EXPECT_EQ(pd_session_list_plugins(s, nullptr, sizeof(pd_plugin_info), &n), PD_OK);
        return n;
    }
};

}  // namespace

TEST(plugin_abi, good_plugin_loads_and_is_listed) {
    loaded_session ls;
    ASSERT_EQ(pd_session_load_plugin(ls.s, fake("good").c_str()), PD_OK) << pdtest::last_error();
    pd_plugin_info infos[2];
    infos[0].struct_size = sizeof(pd_plugin_info);
    size_t n = 2;
    ASSERT_EQ(pd_session_list_plugins(ls.s, infos, sizeof(pd_plugin_info), &n), PD_OK);
    ASSERT_EQ(n, 1u);
    EXPECT_STREQ(infos[0].name, "good");
    EXPECT_EQ(infos[0].abi_version, 1u);
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("good").c_str()), PD_E_EXISTS);
}

TEST(plugin_abi, old_plugin_on_new_host_loads_with_missing_hooks_as_null) {
    loaded_session ls;
    ASSERT_EQ(pd_session_load_plugin(ls.s, fake("old_plugin").c_str()), PD_OK) << pdtest::last_error();
    EXPECT_EQ(ls.plugin_count(), 1u);
}

TEST(plugin_abi, newer_plugin_that_still_speaks_our_abi_is_accepted) {
    loaded_session ls;
    ASSERT_EQ(pd_session_load_plugin(ls.s, fake("newer_compatible").c_str()), PD_OK) << pdtest::last_error();
}

TEST(plugin_abi, plugin_needing_a_newer_host_is_refused_with_versions) {
    loaded_session ls;
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("newer_only").c_str()), PD_E_VERSION);
    std::string msg = pdtest::last_error();
    EXPECT_NE(msg.find("implements plugin ABI 2..2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("host implements 1..1"), std::string::npos) << msg;
    EXPECT_EQ(ls.plugin_count(), 0u);
}

TEST(plugin_abi, old_plugin_on_a_host_that_dropped_its_abi_is_refused) {
    // A future host (ABI 2..3) meeting today's plugin (ABI 1).
    pd::plugin_host::plugin_host host({}, 2, 3);
    try {
        host.load(fake("good"));
        FAIL();
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_VERSION);
    }
}

TEST(plugin_abi, missing_required_hook) {
    loaded_session ls;
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("missing_hook").c_str()), PD_E_PLUGIN);
    EXPECT_NE(pdtest::last_error().find("required hook"), std::string::npos) << pdtest::last_error();
}

TEST(plugin_abi, oversized_structs_from_a_newer_plugin_are_truncated_safely) {
    loaded_session ls;
    ASSERT_EQ(pd_session_load_plugin(ls.s, fake("oversized").c_str()), PD_OK) << pdtest::last_error();
}

TEST(plugin_abi, refused_version_create_failure_and_bad_name) {
    loaded_session ls;
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("refuses").c_str()), PD_E_VERSION);
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("create_fails").c_str()), PD_E_PLUGIN);
    EXPECT_NE(pdtest::last_error().find("failed to start"), std::string::npos);
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("bad_name").c_str()), PD_E_PLUGIN);
    EXPECT_EQ(ls.plugin_count(), 0u);
}

TEST(plugin_abi, not_a_plugin_and_missing_entry_symbol) {
    loaded_session ls;
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("not_a_plugin").c_str()), PD_E_PLUGIN);
    EXPECT_NE(pdtest::last_error().find("not a loadable plugin"), std::string::npos) << pdtest::last_error();
    EXPECT_EQ(pd_session_load_plugin(ls.s, fake("no_entry").c_str()), PD_E_PLUGIN);
    EXPECT_NE(pdtest::last_error().find("does not export pd_plugin_describe"), std::string::npos) << pdtest::last_error();
    EXPECT_EQ(pd_session_load_plugin(ls.s, "/nonexistent/plugin.so"), PD_E_NOT_FOUND);
}

TEST(plugin_abi, directory_load_keeps_the_good_ones_and_reports_the_first_failure) {
    loaded_session ls;
    int rc = pd_session_load_plugin(ls.s, PD_TEST_FAKE_PLUGIN_DIR);
    EXPECT_NE(rc, PD_OK);
    // good, old_plugin, newer_compatible, oversized load; the rest are refused.
    EXPECT_EQ(ls.plugin_count(), 4u);
}

TEST(plugin_abi, session_keeps_working_after_failures_and_downloads_through_a_plugin) {
    loaded_session ls;
    EXPECT_NE(pd_session_load_plugin(ls.s, fake("missing_hook").c_str()), PD_OK);
    ASSERT_EQ(pd_session_load_plugin(ls.s, fake("good").c_str()), PD_OK);
    // Publish a file holding the fake plugin's byte pattern; download it from "fake:".
    std::vector<std::uint8_t> data(300000);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>((i * 7 + 3) & 0xff);
    pdtest::write_file(ls.dir / "pattern.bin", data);
    pd_manifest *m = nullptr;
    ASSERT_EQ(pd_manifest_hash_file(&m, (ls.dir / "pattern.bin").c_str(), nullptr), PD_OK);
    ASSERT_EQ(pd_content_import(ls.s, m, "fake:pattern"), PD_OK);
    pd_job_options jo = PD_JOB_OPTIONS_INIT;
    std::string dest = ls.dir / "out.bin";
    jo.destination = dest.c_str();
    uint64_t job = 0;
    ASSERT_EQ(pd_job_start(&job, ls.s, pd_manifest_id(m), &jo), PD_OK) << pdtest::last_error();
    auto out = pdtest::wait_job(ls.s, job);
    EXPECT_EQ(out.status.state, PD_JOB_COMPLETED) << out.status.message;
    EXPECT_EQ(pdtest::read_file(dest), data);
    pd_manifest_free(m);
}
