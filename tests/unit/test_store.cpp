#include "content/manifest.h"
#include "helpers.h"
#include "store/block_store.h"
#include "util/error.h"
#include <functional>
#include <thread>

#ifdef __linux__
#include <sys/mount.h>
#endif

using pd::store::block_store;

namespace {

pd::content::manifest make(pdtest::temp_dir &dir, const std::string &name, std::size_t size, std::uint32_t seed) {
    pdtest::write_random_file(dir / name, size, seed);
    return pd::content::hash_file(dir / name, name);
}

int code_of(const std::function<void()> &fn) {
    try {
        fn();
        return PD_OK;
    } catch (const pd::error &e) {
        return e.code();
    }
}

}  // namespace

TEST(store, manifests_and_verified_bits_survive_reopen) {
    pdtest::temp_dir dir;
    auto m = make(dir, "a", 300000, 1);
    {
        block_store st(dir / "cache", {});
        st.put_manifest(m, "/srv/a");
        EXPECT_EQ(st.mark_verified(m.id, {0, 2}), 2u * 65536);
        EXPECT_EQ(st.mark_verified(m.id, {2, 4}), 2u * 65536 + (300000 - 4 * 65536));
    }
    block_store st(dir / "cache", {});
    auto rec = st.get(m.id);
    ASSERT_TRUE(rec);
    EXPECT_EQ(rec->origin, "/srv/a");
    EXPECT_EQ(rec->verified_blocks, 3u);
    EXPECT_TRUE(rec->block_verified(4));
    EXPECT_FALSE(rec->block_verified(1));
    EXPECT_EQ(rec->state, pd::store::content_state::partial);
    EXPECT_EQ(st.manifest(m.id)->serialize(), m.serialize());
}

TEST(store, a_second_process_on_the_same_cache_is_refused) {
    pdtest::temp_dir dir;
    block_store first(dir / "cache", {});
    // flock locks belong to the open file description: a second open in this process
    // conflicts exactly as another process would.
    EXPECT_EQ(code_of([&] { block_store second(dir / "cache", {}); }), PD_E_BUSY);
}

TEST(store, quota_evicts_least_recently_used_unpinned_complete_content) {
    pdtest::temp_dir dir;
    auto a = make(dir, "a", 100000, 1), b = make(dir, "b", 100000, 2), c = make(dir, "c", 100000, 3),
         d = make(dir, "d", 100000, 4);
    block_store st(dir / "cache", {250000, 0});
    for (auto *m : {&a, &b, &c}) st.put_manifest(*m, "");
    st.reserve(a.id, a.size, {});
    st.mark_complete(a.id);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st.reserve(b.id, b.size, {});
    st.mark_complete(b.id);
    st.set_pinned(a.id, true);
    // c does not fit: a is pinned (older), so b goes.
    auto evicted = st.reserve(c.id, c.size, {});
    ASSERT_EQ(evicted.size(), 1u);
    EXPECT_EQ(evicted[0].first, b.id);
    EXPECT_EQ(st.get(b.id)->state, pd::store::content_state::known);
    EXPECT_EQ(st.used_bytes(), 200000u);
    // d does not fit: a pinned, c partial (not complete) -> quota error, nothing evicted.
    st.put_manifest(d, "");
    EXPECT_EQ(code_of([&] { st.reserve(d.id, d.size, {}); }), PD_E_QUOTA);
    EXPECT_EQ(st.used_bytes(), 200000u);
    // Busy contents are never evicted either.
    st.set_pinned(a.id, false);
    EXPECT_EQ(code_of([&] { st.reserve(d.id, d.size, {a.id}); }), PD_E_QUOTA);
    EXPECT_EQ(st.reserve(d.id, d.size, {}).size(), 1u);
}

TEST(store, corrupt_database_is_a_clear_error) {
    pdtest::temp_dir dir;
    std::filesystem::create_directories(dir / "cache");
    pdtest::write_file(dir / "cache/peerdist.db", pdtest::random_bytes(8192, 9));
    int code = code_of([&] { block_store st(dir / "cache", {}); });
    EXPECT_EQ(code, PD_E_INVALID);
}

TEST(store, read_only_cache_directory_is_refused) {
#ifndef __linux__
    GTEST_SKIP() << "Linux only: mounts a read-only tmpfs (docs/windows.md)";
#else
    if (!pdtest::is_root()) GTEST_SKIP() << "needs root to mount a read-only tmpfs";
    pdtest::temp_dir dir;
    std::filesystem::create_directories(dir / "ro");
    ASSERT_EQ(::mount("tmpfs", (dir / "ro").c_str(), "tmpfs", MS_RDONLY, "size=1m"), 0) << strerror(errno);
    int code = code_of([&] { block_store st(dir / "ro/cache", {}); });
    int code2 = code_of([&] { block_store st(dir / "ro", {}); });
    ::umount((dir / "ro").c_str());
    EXPECT_EQ(code, PD_E_READONLY);
    EXPECT_EQ(code2, PD_E_READONLY);
#endif
}
