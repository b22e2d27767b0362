// A content's BranchCache identities (core/branchcache_index.h): Content Information V1
// recorded through the C API only when it describes the content's own blocks, its segments
// found by their IDs with the secrets the origin derived, kept across sessions and forgotten
// with the content; and Content Information an attacker bends, refused.
//
// What the C API records is read back by a core session of the test's own opened on the
// same cache once the C session is closed: libpeerdist.dll keeps its own SQLite, so the
// test never reaches behind the C ABI into a live session (docs/windows.md).
#include "content/pccrc.h"
#include "core/session.h"
#include "helpers.h"

#include <peerdist/content.h>

#include <gtest/gtest.h>

#include <fstream>

namespace pc = pd::content::pccrc;

namespace {

const std::string passphrase = "branch office secret";

struct published {
    pd::content::hash id{};
    std::vector<std::uint8_t> info;  // Content Information V1 of the file, under `passphrase`
};

published publish(pd_session *s, const std::string &path, std::uint32_t ci_version = 1) {
    published out;
    pd_publish_options po = PD_PUBLISH_OPTIONS_INIT;
    po.add_to_cache = 1;
    pd_manifest *m = nullptr;
    EXPECT_EQ(pd_content_publish(&m, s, path.c_str(), &po), PD_OK) << pdtest::last_error();
    std::memcpy(out.id.data(), pd_manifest_id(m)->bytes, 32);
    pd_manifest_free(m);
    pd_buf b = PD_BUF_INIT;
    EXPECT_EQ(pd_content_info_generate(&b, path.c_str(), ci_version, reinterpret_cast<const std::uint8_t *>(passphrase.data()),
                                       passphrase.size()),
              PD_OK);
    out.info.assign(static_cast<std::uint8_t *>(b.ptr), static_cast<std::uint8_t *>(b.ptr) + b.size);
    pd_buf_dispose(&b);
    return out;
}

// The test's own core session on a cache no C session has open.
std::unique_ptr<pd::core::session> core_session(const std::string &cache) {
    pd_session_options o = PD_SESSION_OPTIONS_INIT;
    o.cache_dir = cache.c_str();
    return std::make_unique<pd::core::session>(o);
}

pd_content_id cid(const pd::content::hash &h) {
    pd_content_id id;
    std::memcpy(id.bytes, h.data(), 32);
    return id;
}

}  // namespace

TEST(branchcache_index, segments_are_found_by_the_ids_the_origin_derived) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "two-segments.bin", 32 * 1024 * 1024 + 100000, 7);  // 512 + 2 blocks
    published p;
    {
        pdtest::session_ptr s;
        ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
        p = publish(s, dir / "two-segments.bin");
        auto id = cid(p.id);
        ASSERT_EQ(pd_content_set_branchcache_info(s, &id, p.info.data(), p.info.size()), PD_OK) << pdtest::last_error();
    }
    auto ci = pc::v1_info::parse(p.info.data(), p.info.size());
    ASSERT_EQ(ci.segments.size(), 2u);
    auto ks = pc::v1_server_secret(passphrase.data(), passphrase.size());
    auto s = core_session(dir / "cache");
    auto &index = s->branchcache();
    for (std::uint32_t i = 0; i < 2; ++i) {
        auto &cs = ci.segments[i];
        auto segment_id = pc::v1_segment_id(pc::v1_segment_secret(ks, cs.hod), cs.hod);
        auto found = index.find(segment_id.data(), segment_id.size());
        ASSERT_TRUE(found) << i;
        EXPECT_EQ(found->content, p.id);
        EXPECT_EQ(found->index, i);
        EXPECT_EQ(found->first_block, i * 512u);
        EXPECT_EQ(found->block_count, i == 0 ? 512u : 2u);
        EXPECT_EQ(found->secret, cs.kp);
        // As a plugin sees it: every block held verified, and the block's bytes.
        pd_branchcache_segment seg{};
        ASSERT_TRUE(s->describe_segment(*found, seg));
        EXPECT_EQ(seg.verified_count, found->block_count);
        EXPECT_EQ(seg.verified[0] & 1, 1);
    }
    auto data = pdtest::read_file(dir / "two-segments.bin");
    auto block = s->read_held(p.id, 513 * 65536ull, 100000 - 65536);
    EXPECT_TRUE(std::equal(block.begin(), block.end(), data.begin() + 513 * 65536));
    EXPECT_EQ(index.segments_of(p.id).size(), 2u);
    pc::hash unknown{};
    EXPECT_FALSE(index.find(unknown.data(), unknown.size()));
    EXPECT_FALSE(index.find(unknown.data(), 16));  // no ID of that size
}

TEST(branchcache_index, what_is_recorded_outlives_the_session_and_leaves_with_the_content) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "a.bin", 300000, 1);
    published p;
    {
        pdtest::session_ptr s;
        ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
        p = publish(s, dir / "a.bin");
        auto id = cid(p.id);
        ASSERT_EQ(pd_content_set_branchcache_info(s, &id, p.info.data(), p.info.size()), PD_OK);
    }
    auto s = core_session(dir / "cache");
    auto &index = s->branchcache();
    auto segments = index.segments_of(p.id);
    ASSERT_EQ(segments.size(), 1u);
    ASSERT_TRUE(index.find(segments[0].id.data(), 32));  // loaded from the store
    // The content leaves the cache (what pd_cache_remove does): its segments are no longer
    // answered for, and recording again needs the content back.
    s->remove_content(p.id);
    EXPECT_FALSE(index.find(segments[0].id.data(), 32));
    EXPECT_THROW(index.set_info(p.id, p.info.data(), p.info.size()), pd::error);
}

// An attacker (a hostile origin, a tampered file) offers Content Information that does not
// describe the content: refused with the reason, and nothing recorded.
TEST(branchcache_index, content_information_of_other_blocks_is_refused) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "a.bin", 300000, 1);
    pdtest::write_random_file(dir / "b.bin", 300000, 2);
    pdtest::write_random_file(dir / "longer.bin", 400000, 1);
    pdtest::session_ptr s;
    ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
    auto a = publish(s, dir / "a.bin");
    auto b = publish(s, dir / "b.bin");
    auto longer = publish(s, dir / "longer.bin");
    auto id = cid(a.id);
    auto refused = [&](const std::vector<std::uint8_t> &info, int code, const std::string &why) {
        EXPECT_EQ(pd_content_set_branchcache_info(s, &id, info.data(), info.size()), code) << why;
        EXPECT_NE(pdtest::last_error().find(why), std::string::npos) << pdtest::last_error();
    };
    refused(b.info, PD_E_INTEGRITY, "segment 0 differs");
    refused(longer.info, PD_E_INTEGRITY, "segment 0 differs");
    auto flipped = a.info;
    flipped.back() ^= 1;  // the last block hash
    refused(flipped, PD_E_INTEGRITY, "segment 0 differs");
    auto ranged = pc::v1_info::parse(a.info.data(), a.info.size());
    ranged.offset_in_first_segment = 5;
    refused(ranged.serialize(), PD_E_INTEGRITY, "a range, not the whole content");
    refused(std::vector<std::uint8_t>(a.info.begin(), a.info.end() - 1), PD_E_INVALID, "");
    refused(std::vector<std::uint8_t>{1, 2, 3}, PD_E_INVALID, "");
    auto v2 = publish(s, dir / "a.bin", 2);
    refused(v2.info, PD_E_INVALID, "");
    // And a content the cache does not know.
    pd_content_id nobody{};
    EXPECT_EQ(pd_content_set_branchcache_info(s, &nobody, a.info.data(), a.info.size()), PD_E_NOT_FOUND);
    // Nothing of it was recorded.
    pd_session_free(s.s);
    s.s = nullptr;
    EXPECT_TRUE(core_session(dir / "cache")->branchcache().segments_of(a.id).empty());
}

// Two contents sharing their first segment (the same 32 MiB from the same origin): the
// segment ID answers for whichever is still cached.
TEST(branchcache_index, a_segment_two_contents_share_answers_while_either_is_cached) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "a.bin", 32 * 1024 * 1024 + 5000, 3);
    auto bytes = pdtest::read_file(dir / "a.bin");
    bytes.resize(32 * 1024 * 1024 + 9000, 7);  // the same first segment, another tail
    {
        std::ofstream(dir / "b.bin", std::ios::binary).write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    published a, b;
    {
        pdtest::session_ptr s;
        ASSERT_EQ(pdtest::open_session(s, dir / "cache"), PD_OK);
        a = publish(s, dir / "a.bin");
        b = publish(s, dir / "b.bin");
        for (auto *p : {&a, &b}) {
            auto id = cid(p->id);
            ASSERT_EQ(pd_content_set_branchcache_info(s, &id, p->info.data(), p->info.size()), PD_OK) << pdtest::last_error();
        }
    }
    auto s = core_session(dir / "cache");
    auto &index = s->branchcache();
    auto first_a = index.segments_of(a.id), first_b = index.segments_of(b.id);
    ASSERT_EQ(first_a.size(), 2u);
    ASSERT_EQ(first_b.size(), 2u);
    ASSERT_EQ(first_a[0].id, first_b[0].id);
    EXPECT_NE(first_a[1].id, first_b[1].id);
    s->remove_content(b.id);
    auto found = index.find(first_a[0].id.data(), 32);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->content, a.id);
    EXPECT_EQ(index.segments_of(a.id).size(), 2u);
    EXPECT_TRUE(index.segments_of(b.id).empty());
}

// A download from a URL alone: the manifest derived from the origin's Content Information
// is the one `pd publish` makes of the same file (the same id), and Content Information that
// is not of a whole content, or whose HoD is not its blocks', is refused.
TEST(branchcache_index, the_manifest_from_content_information_is_the_published_one) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "a.bin", 2 * 32 * 1024 * 1024 + 12345, 5);
    auto ks = pc::v1_server_secret(passphrase.data(), passphrase.size());
    auto info = pc::generate_v1(dir / "a.bin", ks);
    auto m = pc::v1_manifest(info, "a.bin");
    auto published = pd::content::hash_file(dir / "a.bin", "other name");
    EXPECT_EQ(m.id, published.id);
    EXPECT_EQ(m.size, published.size);
    EXPECT_EQ(m.name, "a.bin");
    EXPECT_EQ(pc::v1_info_bytes(m.size), info.serialize().size());  // the bound the core gives an origin's answer
    auto refused = [&](pc::v1_info bent, int code, const std::string &why) {
        try {
            pc::v1_manifest(bent, "a.bin");
            ADD_FAILURE() << why;
        } catch (const pd::error &e) {
            EXPECT_EQ(e.code(), code) << e.what();
            EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
        }
    };
    auto ranged = info;
    ranged.read_bytes_in_last_segment = 100;
    refused(ranged, PD_E_INVALID, "range");
    auto gap = info;
    gap.segments[1].offset += 65536;
    refused(gap, PD_E_INVALID, "does not follow");
    auto short_middle = info;
    short_middle.segments[0].length -= 1;
    refused(short_middle, PD_E_INVALID, "does not follow");
    auto bent = info;
    bent.segments[2].block_hashes[0][0] ^= 1;
    refused(bent, PD_E_INTEGRITY, "HoD");
    refused(pc::v1_info{}, PD_E_INVALID, "no content");
}
