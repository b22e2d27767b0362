#include "content/manifest.h"
#include "content/publication.h"
#include "crypto/hash.h"
#include "helpers.h"
#include "util/error.h"

#include <sodium.h>

using pd::content::manifest;

namespace {

manifest sample_manifest(pdtest::temp_dir &dir, std::size_t size, std::uint32_t seed = 1) {
    auto path = dir / "payload.bin";
    pdtest::write_random_file(path, size, seed);
    return pd::content::hash_file(path, "payload.bin");
}

int parse_code(const std::vector<std::uint8_t> &bytes) {
    try {
        manifest::parse(bytes.data(), bytes.size());
        return PD_OK;
    } catch (const pd::error &e) {
        return e.code();
    }
}

}  // namespace

TEST(manifest, block_hashes_are_sha256_of_64k_blocks) {
    pdtest::temp_dir dir;
    auto data = pdtest::random_bytes(200000, 7);
    pdtest::write_file(dir / "f", data);
    auto m = pd::content::hash_file(dir / "f", "");
    EXPECT_EQ(m.name, "f");
    ASSERT_EQ(m.block_count(), 4u);
    EXPECT_EQ(m.block_hashes[3], pd::crypto::sha256(data.data() + 196608, 200000 - 196608));
    ASSERT_EQ(m.segment_hods.size(), 1u);
    EXPECT_EQ(m.segment_hods[0], pd::crypto::sha256(m.block_hashes.data(), 4 * 32));
}

TEST(manifest, multi_segment_content_and_round_trip) {
    pdtest::temp_dir dir;
    auto m = sample_manifest(dir, 32 * 1024 * 1024 + 70000);
    EXPECT_EQ(m.segment_hods.size(), 2u);
    EXPECT_EQ(m.block_count(), 514u);  // 512 full + 2 for the 70,000-byte tail
    auto bytes = m.serialize();
    auto back = manifest::parse(bytes.data(), bytes.size());
    EXPECT_EQ(back.id, m.id);
    EXPECT_EQ(back.serialize(), bytes);
}

TEST(manifest, id_ignores_name_but_not_content) {
    pdtest::temp_dir dir;
    auto a = sample_manifest(dir, 100000, 1);
    auto renamed = manifest::from_block_hashes(a.size, a.block_hashes, "other-name");
    EXPECT_EQ(renamed.id, a.id);
    auto b = sample_manifest(dir, 100000, 2);
    EXPECT_NE(b.id, a.id);
}

TEST(manifest, empty_content) {
    pdtest::temp_dir dir;
    auto m = sample_manifest(dir, 0);
    EXPECT_EQ(m.block_count(), 0u);
    auto bytes = m.serialize();
    EXPECT_EQ(manifest::parse(bytes.data(), bytes.size()).id, m.id);
}

TEST(manifest, every_truncation_is_rejected_cleanly) {
    pdtest::temp_dir dir;
    auto bytes = sample_manifest(dir, 150000).serialize();
    for (std::size_t len = 0; len < bytes.size(); ++len) {
        std::vector<std::uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len));
        EXPECT_EQ(parse_code(cut), PD_E_INVALID) << "length " << len;
    }
}

TEST(manifest, trailing_garbage_bad_magic_version_and_flags) {
    pdtest::temp_dir dir;
    auto bytes = sample_manifest(dir, 150000).serialize();
    auto extra = bytes;
    extra.push_back(0);
    EXPECT_EQ(parse_code(extra), PD_E_INVALID);
    auto magic = bytes;
    magic[0] = 'X';
    EXPECT_EQ(parse_code(magic), PD_E_INVALID);
    auto version = bytes;
    version[4] = 9;
    EXPECT_EQ(parse_code(version), PD_E_VERSION);
    auto algo = bytes;
    algo[6] = 2;
    EXPECT_EQ(parse_code(algo), PD_E_VERSION);
    auto flags = bytes;
    flags[7] = 1;
    EXPECT_EQ(parse_code(flags), PD_E_INVALID);
}

TEST(manifest, tampered_block_hash_fails_the_segment_check) {
    pdtest::temp_dir dir;
    auto bytes = sample_manifest(dir, 150000).serialize();
    // Header 24 + count 4 + one HoD 32 = first block hash at 60.
    bytes[60] ^= 1;
    try {
        manifest::parse(bytes.data(), bytes.size());
        FAIL();
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_INVALID);
        EXPECT_NE(std::string(e.what()).find("segment 0"), std::string::npos) << e.what();
    }
}

TEST(manifest, random_garbage_never_crashes) {
    for (std::uint32_t seed = 0; seed < 2000; ++seed) {
        auto junk = pdtest::random_bytes(seed % 300, seed);
        if (junk.size() >= 4) std::memcpy(junk.data(), "PDMF", 4);
        if (junk.size() >= 6) junk[4] = 1, junk[5] = 0;
        int code = parse_code(junk);
        EXPECT_TRUE(code == PD_E_INVALID || code == PD_E_VERSION) << seed;
    }
}

TEST(manifest, names_that_could_act_as_paths_are_refused) {
    for (const char *bad : {"..", ".", "../etc/passwd", "a/b", "a\\b", "x..y", "", "tab\there"}) {
        EXPECT_THROW(pd::content::validate_name(bad), pd::error) << bad;
    }
    EXPECT_NO_THROW(pd::content::validate_name("Office 2024 Setup (x64).msi"));
    EXPECT_NO_THROW(pd::content::validate_name("пакет-ünïcode.bin"));
}

TEST(publication, sign_verify_and_tamper) {
    pdtest::temp_dir dir;
    auto m = sample_manifest(dir, 70000);
    std::uint8_t pk[32], sk[64], other_pk[32], other_sk[64];
    pd::crypto::ed25519_keypair(pk, sk);
    pd::crypto::ed25519_keypair(other_pk, other_sk);
    pd::content::publication p;
    p.id = m.id;
    p.size = m.size;
    p.name = m.name;
    p.origin = "https://cdn.example/payload.bin";
    p.published_ms = 1700000000000;
    auto rec = p.sign(sk);
    auto back = pd::content::publication::verify(rec.data(), rec.size(), pk);
    EXPECT_EQ(back.id, m.id);
    EXPECT_EQ(back.origin, p.origin);
    EXPECT_EQ(back.published_ms, p.published_ms);
    try {
        pd::content::publication::verify(rec.data(), rec.size(), other_pk);
        FAIL();
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_AUTH);
        EXPECT_NE(std::string(e.what()).find("untrusted"), std::string::npos);
    }
    for (std::size_t i = 8; i < rec.size() - 64 - 32; i += 7) {
        auto bad = rec;
        bad[i] ^= 0x40;
        try {
            pd::content::publication::verify(bad.data(), bad.size(), pk);
            ADD_FAILURE() << "tamper at " << i << " accepted";
        } catch (const pd::error &e) {
            EXPECT_TRUE(e.code() == PD_E_AUTH || e.code() == PD_E_INVALID) << i;
        }
    }
    rec.pop_back();
    EXPECT_THROW(pd::content::publication::verify(rec.data(), rec.size(), pk), pd::error);
}
