// Reproduces ../shared/vectors/pccrc.md byte for byte (real Windows-captured vectors).
#include "content/manifest.h"
#include "content/pccrc.h"
#include "helpers.h"
#include "pccrc_vectors.h"
#include "util/error.h"
#include "util/hex.h"

namespace pc = pd::content::pccrc;

namespace {

const char *passphrase_hex = "2a3d73eb435e9f2b8a344267e7467a3c7385c6e055e2b4d30dfec7c38b0ed72c";

using pdtest::pccrc_vectors::v1_hex;

const char *v2_hex =
    "00020400000000000000000000000000000000000000000000000000000000000000"
    "0088000099de"
    "e0d0c358e2684b62330d32b5f1978724a0d0a52bdc5e781fae71ff57a8be3dd4"
    "58037ed404116bb616d9b14116088520c47cdc50abcea3fae188a98ea22df3c0"
    "0000eba0"
    "3381d0d0cb74f4b613d8210f37f002a06f3910586096a130d34398c08e66d7bc"
    "b8b6eb7783e4f807647b63f146b52f4ac89ccc7abf5fa11acafc2acf5028586c";

std::vector<std::uint8_t> unhex(const char *h) { return *pd::from_hex(h); }
std::string hex(const pc::hash &h) { return pd::to_hex(h.data(), h.size()); }

}  // namespace

TEST(pccrc, server_secrets) {
    auto pass = unhex(passphrase_hex);
    EXPECT_EQ(hex(pc::v1_server_secret(pass.data(), pass.size())),
              "7e7808bc36d0dd67f344928421614399497f0e85149f6f2bc4dd7b7856acc1a1");
    EXPECT_EQ(hex(pc::v2_server_secret(pass.data(), pass.size())),
              "68e8229a3f1d6c7fe9b3f75911c3f18c9086785177afd73f7d22615570a0e7cc");
}

TEST(pccrc, v1_vector_parses_serialises_and_derives) {
    auto bytes = unhex(v1_hex);
    ASSERT_EQ(bytes.size(), 166u);
    auto info = pc::v1_info::parse(bytes.data(), bytes.size());
    ASSERT_EQ(info.segments.size(), 1u);
    auto &s = info.segments[0];
    EXPECT_EQ(s.length, 99710u);
    EXPECT_EQ(s.block_hashes.size(), 2u);
    EXPECT_EQ(info.serialize(), bytes);
    // HoD = SHA-256 of the block hashes.
    EXPECT_EQ(hex(pd::content::segment_hod(s.block_hashes.data(), 2)), hex(s.hod));
    auto pass = unhex(passphrase_hex);
    auto ks = pc::v1_server_secret(pass.data(), pass.size());
    EXPECT_EQ(hex(pc::v1_segment_secret(ks, s.hod)), hex(s.kp));
    EXPECT_EQ(hex(pc::v1_segment_id(s.kp, s.hod)), "491b217dbee2b5f12ca79b015e06f4bbe64f9745bad7867aef17de59927edce9");
}

TEST(pccrc, v2_vector_parses_serialises_and_derives) {
    auto bytes = unhex(v2_hex);
    ASSERT_EQ(bytes.size(), 172u);
    auto info = pc::v2_info::parse(bytes.data(), bytes.size());
    ASSERT_EQ(info.segments.size(), 2u);
    EXPECT_EQ(info.segments[0].length, 39390u);
    EXPECT_EQ(info.segments[1].length, 60320u);
    EXPECT_EQ(info.serialize(), bytes);
    auto pass = unhex(passphrase_hex);
    auto ks = pc::v2_server_secret(pass.data(), pass.size());
    for (auto &s : info.segments) EXPECT_EQ(hex(pc::v2_segment_secret(ks, s.hod)), hex(s.kp));
    EXPECT_EQ(hex(pc::v2_segment_id(info.segments[0].kp, info.segments[0].hod)),
              "3371bbeaddb62353adcef970a06fdf65001e0421f4c7108276b0c37a9f9ec10f");
    EXPECT_EQ(hex(pc::v2_segment_id(info.segments[1].kp, info.segments[1].hod)),
              "d7e924425e8f4f88f01dc6a9bb1bc37be113ec7917c745d4965c2b55fa163a6e");
}

TEST(pccrc, vectors_file_matches_the_embedded_copy) {
    std::ifstream in(std::string(PD_TEST_VECTORS) + "/pccrc.md");
    if (!in) GTEST_SKIP() << "shared/vectors not beside the repository";
    std::string text((std::istreambuf_iterator<char>(in)), {});
    std::string compact;
    for (char c : text)
        if (std::isxdigit(static_cast<unsigned char>(c))) compact.push_back(c);
    EXPECT_NE(compact.find(v1_hex), std::string::npos);
}

TEST(pccrc, generated_v1_matches_the_manifest_and_round_trips) {
    pdtest::temp_dir dir;
    pdtest::write_random_file(dir / "f", 33 * 1024 * 1024 + 12345, 3);
    auto pass = unhex(passphrase_hex);
    auto ks = pc::v1_server_secret(pass.data(), pass.size());
    auto info = pc::generate_v1(dir / "f", ks);
    auto m = pd::content::hash_file(dir / "f", "f");
    ASSERT_EQ(info.segments.size(), 2u);
    // One hash pass serves both: peerdist's HoDs are BranchCache V1 HoDs.
    EXPECT_EQ(info.segments[0].hod, m.segment_hods[0]);
    EXPECT_EQ(info.segments[1].hod, m.segment_hods[1]);
    EXPECT_EQ(info.segments[1].offset, 32u * 1024 * 1024);
    auto bytes = info.serialize();
    EXPECT_EQ(pc::v1_info::parse(bytes.data(), bytes.size()).serialize(), bytes);
}

TEST(pccrc, generated_v2_segments_cover_the_file_exactly) {
    pdtest::temp_dir dir;
    auto data = pdtest::random_bytes(32 * 1024 * 1024 + 99, 4);
    pdtest::write_file(dir / "f", data);
    auto pass = unhex(passphrase_hex);
    auto info = pc::generate_v2(dir / "f", pc::v2_server_secret(pass.data(), pass.size()));
    ASSERT_EQ(info.segments.size(), 2u);
    EXPECT_EQ(std::uint64_t(info.segments[0].length) + info.segments[1].length, data.size());
    auto bytes = info.serialize();
    EXPECT_EQ(pc::v2_info::parse(bytes.data(), bytes.size()).serialize(), bytes);
}

TEST(pccrc, malformed_structures_are_rejected) {
    auto v1 = unhex(v1_hex);
    for (std::size_t len = 0; len < v1.size(); ++len)
        EXPECT_THROW(pc::v1_info::parse(v1.data(), len), pd::error) << len;
    auto v2 = unhex(v2_hex);
    for (std::size_t len = 0; len < 31; ++len) EXPECT_THROW(pc::v2_info::parse(v2.data(), len), pd::error) << len;
    v2[35] = 0x89;  // chunk length no longer a multiple of 68
    EXPECT_THROW(pc::v2_info::parse(v2.data(), v2.size()), pd::error);
}
