#include "content/manifest.h"
#include "helpers.h"
#include "store/block_store.h"
#include "util/error.h"
#include <chrono>
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

TEST(store, a_record_read_before_a_write_is_never_served_after_it) {
    // Records are kept in memory between writes (the peer server reads one per request):
    // each write must show at once, both to get() and to the shared find().
    pdtest::temp_dir dir;
    auto m = make(dir, "a", 300000, 1), evictable = make(dir, "b", 70000, 2);
    block_store st(dir / "cache", {});
    st.put_manifest(m, "");
    auto before = st.find(m.id);
    ASSERT_TRUE(before);
    st.put_manifest(m, "/srv/a");
    EXPECT_EQ(st.find(m.id)->origin, "/srv/a");
    st.mark_verified(m.id, {1, 3});
    EXPECT_TRUE(st.find(m.id)->block_verified(3));
    EXPECT_FALSE(before->block_verified(3)) << "a record handed out is a snapshot";
    st.unmark_verified(m.id, {3});
    EXPECT_FALSE(st.get(m.id)->block_verified(3));
    EXPECT_EQ(st.get(m.id)->verified_blocks, 1u);
    st.mark_complete(m.id);
    EXPECT_EQ(st.find(m.id)->state, pd::store::content_state::complete);
    st.set_pinned(m.id, true);
    EXPECT_TRUE(st.find(m.id)->pinned);
    auto used = st.find(m.id)->last_used_ms;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    st.touch(m.id);
    EXPECT_GT(st.find(m.id)->last_used_ms, used);
    st.reserve(m.id, 300000, {});
    EXPECT_EQ(st.find(m.id)->bytes_on_disk, 300000u);
    st.open_data(m.id, 300000);
    st.mark_shared(m.id);
    EXPECT_TRUE(st.find(m.id)->shared_mtime_ns);
    // The delivered file written to: the cache lets go of its blocks.
    pdtest::write_random_file(st.data_path(m.id), 300000, 3);
    EXPECT_FALSE(st.shared_file_intact(m.id));
    EXPECT_EQ(st.find(m.id)->verified_blocks, 0u);
    EXPECT_FALSE(st.find(m.id)->shared_mtime_ns);
    // Evicted under a quota to make room for another content.
    st.put_manifest(evictable, "");
    st.set_pinned(m.id, false);
    st.mark_verified(m.id, {0});
    st.mark_complete(m.id);
    st.reserve(m.id, 300000, {});
    EXPECT_EQ(st.find(m.id)->bytes_on_disk, 300000u);
    st.set_quota({320000, 0});
    st.reserve(evictable.id, 70000, {});
    EXPECT_EQ(st.find(m.id)->bytes_on_disk, 0u);
    EXPECT_EQ(st.find(m.id)->verified_blocks, 0u);
    st.remove(m.id);
    EXPECT_FALSE(st.find(m.id));
    EXPECT_FALSE(st.get(m.id));
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
