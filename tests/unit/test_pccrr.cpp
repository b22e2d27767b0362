// [MS-PCCRR] messages (plugins/branchcache/pccrr.h) against byte layouts written out from the
// specification's sections — the specification gives no byte dumps of its own, so each
// vector names the section whose table it follows — for the segment of the Windows-captured
// Content Information V1 in ../shared/vectors/pccrc.md; and every way a hostile peer can
// bend a message.
#include "branchcache/pccrr.h"
#include "content/pccrc.h"
#include "pccrc_vectors.h"
#include "util/hex.h"

#include <gtest/gtest.h>

namespace rr = pd_branchcache::pccrr;
namespace pc = pd::content::pccrc;

namespace {

rr::bytes unhex(const std::string &h) { return *pd::from_hex(h); }
std::string hex(const rr::bytes &b) { return pd::to_hex(b.data(), b.size()); }

using pdtest::pccrc_vectors::v1_hex;

// Its segment's ID (HoHoDk, [MS-PCCRC] 2.3) and secret (Kp), as the content information gives them.
struct segment {
    rr::bytes id, secret;
};
segment vector_segment() {
    auto bytes = unhex(v1_hex);
    auto info = pc::v1_info::parse(bytes.data(), bytes.size());
    auto &s = info.segments.at(0);
    auto id = pc::v1_segment_id(s.kp, s.hod);
    return {rr::bytes(id.begin(), id.end()), rr::bytes(s.kp.begin(), s.kp.end())};
}
const std::string id_hex = "491b217dbee2b5f12ca79b015e06f4bbe64f9745bad7867aef17de59927edce9";

rr::message parse_req(const rr::bytes &b) {
    auto p = rr::parse_request(b.data(), b.size());
    EXPECT_TRUE(p.msg) << p.error;
    return p.msg ? *p.msg : rr::message{};
}
rr::message parse_resp(const rr::bytes &b) {
    auto p = rr::parse_response(b.data(), b.size());
    EXPECT_TRUE(p.msg) << p.error;
    return p.msg ? *p.msg : rr::message{};
}

}  // namespace

TEST(pccrr, the_vector_segment_is_the_one_pccrc_derives) {
    auto s = vector_segment();
    EXPECT_EQ(hex(s.id), id_hex);
    EXPECT_EQ(hex(s.secret), "11afc0d7949243f94f9c1fab35d9fd1e331fcf7811a2e01d3587b38d770a29e2");
}

// 2.2.3 MESSAGE_HEADER + 2.2.4.1 MSG_NEGO_REQ: ProtVer 1.0 is minor (0) then major (1), 16 bits each.
TEST(pccrr, nego_req_and_resp_follow_2_2_4_1_and_2_2_5_1) {
    auto req = unhex("00000001" "00000000" "00000018" "00000000"  // ProtVer 1.0, MSG_NEGO_REQ, MsgSize 24, no crypto
                     "00000001" "00000001");                      // Min/MaxSupportedProtocolVersion 1.0
    auto m = parse_req(req);
    ASSERT_EQ(m.type(), rr::msg_type::nego_req);
    EXPECT_EQ(std::get<rr::nego_req>(m.content).max_version, (rr::version{1, 0}));
    EXPECT_EQ(rr::build(m), req);

    // 2.2.5.1, after 2.2.2's transport header (the message's length).
    auto resp = unhex("00000018" "00000001" "00000001" "00000018" "00000000" "00000001" "00000001");
    rr::message r{rr::version{}, rr::crypto_algo::none, rr::nego_resp{{1, 0}, {1, 0}}};
    EXPECT_EQ(rr::with_transport_header(rr::build(r)), resp);
    EXPECT_EQ(parse_resp(resp).type(), rr::msg_type::nego_resp);

    // A client that also speaks 2.0 (Windows 8 and later) negotiates; its version is read as sent.
    auto v2 = unhex("00000001" "00000000" "00000018" "00000000" "00000001" "00000002");
    EXPECT_EQ(std::get<rr::nego_req>(parse_req(v2).content).max_version, (rr::version{2, 0}));
}

// 2.2.4.2 MSG_GETBLKLIST and 2.2.5.2 MSG_BLKLIST.
TEST(pccrr, block_lists_follow_2_2_4_2_and_2_2_5_2) {
    auto s = vector_segment();
    auto req = unhex("00000001" "00000002" "00000040" "00000000"  // MsgSize 64
                     "00000020" + id_hex +                        // SizeOfSegmentID, SegmentID (no ZeroPad: 32 bytes)
                     "00000001" "00000000" "00000002");           // one range: blocks 0 and 1
    auto m = parse_req(req);
    ASSERT_EQ(m.type(), rr::msg_type::get_blk_list);
    auto &get = std::get<rr::get_blk_list>(m.content);
    EXPECT_EQ(get.segment_id, s.id);
    EXPECT_EQ(get.needed, (std::vector<rr::block_range>{{0, 2}}));
    EXPECT_EQ(rr::build(m), req);

    auto resp = unhex("00000044"                                  // transport header: 68
                      "00000001" "00000004" "00000044" "00000000"
                      "00000020" + id_hex +
                      "00000001" "00000001" "00000001"            // holds block 1 only
                      "00000000");                                // NextBlockIndex: nothing more
    rr::message r{rr::version{}, rr::crypto_algo::none, rr::blk_list{s.id, {{1, 1}}, 0}};
    EXPECT_EQ(rr::with_transport_header(rr::build(r)), resp);
    EXPECT_EQ(std::get<rr::blk_list>(parse_resp(resp).content).ranges, (std::vector<rr::block_range>{{1, 1}}));
}

// 2.2.4.3 MSG_GETBLKS and 2.2.5.3 MSG_BLK with AES-128 (CryptoAlgoId 1), the block encrypted
// under the segment secret's first 16 bytes.
TEST(pccrr, get_blks_and_blk_follow_2_2_4_3_and_2_2_5_3) {
    auto s = vector_segment();
    auto req = unhex("00000001" "00000003" "00000044" "00000001"  // MSG_GETBLKS, 68 bytes, AES-128
                     "00000020" + id_hex +
                     "00000001" "00000001" "00000001"             // block 1 (one block a request: 3.1.4.3)
                     "00000000");                                 // SizeOfDataForVrfBlock 0, the last field
    auto m = parse_req(req);
    ASSERT_EQ(m.type(), rr::msg_type::get_blks);
    EXPECT_EQ(m.algo, rr::crypto_algo::aes_128);
    EXPECT_EQ(rr::build(m), req);

    rr::bytes plain(37, 0x5a);  // a content's last block: not a whole number of AES blocks
    auto iv = unhex("000102030405060708090a0b0c0d0e0f");
    auto cipher = rr::encrypt_block(rr::crypto_algo::aes_128, s.secret, iv, plain);
    ASSERT_TRUE(cipher);
    ASSERT_EQ(cipher->size(), 48u);  // zero-padded to three AES blocks
    rr::message r{rr::version{}, rr::crypto_algo::aes_128, rr::blk{s.id, 1, 0, *cipher, {}, iv}};
    auto resp = rr::with_transport_header(rr::build(r));
    auto expect = unhex("00000088"                                // transport header: 136
                        "00000001" "00000005" "00000088" "00000001"
                        "00000020" + id_hex +
                        "00000001" "00000000"                     // BlockIndex 1, NextBlockIndex 0
                        "00000030" + hex(*cipher) +               // SizeOfBlock 48, Block (no ZeroPad_2)
                        "00000000"                                // SizeOfVrfBlock 0
                        "00000010" "000102030405060708090a0b0c0d0e0f");  // SizeOfIVBlock, IVBlock
    EXPECT_EQ(hex(resp), hex(expect));
    auto got = std::get<rr::blk>(parse_resp(resp).content);
    EXPECT_EQ(rr::decrypt_block(rr::crypto_algo::aes_128, s.secret, got.iv, got.block, plain.size()), plain);
}

// The cipher itself, against NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt): the key is the
// secret's first 16 bytes, whatever follows them.
TEST(pccrr, aes_cbc_is_sp800_38a_with_the_key_cut_from_the_secret) {
    auto secret = unhex("2b7e151628aed2a6abf7158809cf4f3c" "ffffffffffffffffffffffffffffffff");
    auto iv = unhex("000102030405060708090a0b0c0d0e0f");
    auto plain = unhex("6bc1bee22e409f96e93d7e117393172a" "ae2d8a571e03ac9c9eb76fac45af8e51");
    auto cipher = rr::encrypt_block(rr::crypto_algo::aes_128, secret, iv, plain);
    ASSERT_TRUE(cipher);
    EXPECT_EQ(hex(*cipher), "7649abac8119b246cee98e9b12e9197d" "5086cb9b507219ee95db113a917678b2");
    EXPECT_EQ(rr::decrypt_block(rr::crypto_algo::aes_128, secret, iv, *cipher, plain.size()), plain);
    // Plaintext (CryptoAlgoId 0) is the block as it is.
    EXPECT_EQ(rr::encrypt_block(rr::crypto_algo::none, secret, iv, plain), plain);
}

// Padding is written as zeros and read only as zeros (2.2.5.3 ZeroPad_2).
TEST(pccrr, a_plaintext_block_is_padded_to_four_bytes) {
    auto s = vector_segment();
    rr::message r{rr::version{}, rr::crypto_algo::none, rr::blk{s.id, 0, 1, rr::bytes{1, 2, 3, 4, 5}, {}, {}}};
    auto resp = rr::with_transport_header(rr::build(r));
    auto tail = hex(resp).substr(hex(resp).size() - 2 * 20);
    EXPECT_EQ(tail, "00000005" "0102030405" "000000" "00000000" "00000000");
    EXPECT_EQ(std::get<rr::blk>(parse_resp(resp).content).block, (rr::bytes{1, 2, 3, 4, 5}));
    resp[resp.size() - 10] = 0x01;  // a pad byte
    auto p = rr::parse_response(resp.data(), resp.size());
    EXPECT_FALSE(p.msg);
    EXPECT_EQ(p.error, "padding not zero");
}

// A hostile peer: every way to bend a message is refused with a reason, never read past its
// end, and never sizes an allocation beyond the bounds in pccrr.h.
TEST(pccrr, an_attackers_messages_are_refused_with_a_reason) {
    auto s = vector_segment();
    rr::message get{rr::version{}, rr::crypto_algo::aes_128, rr::get_blks{s.id, {{1, 1}}, {}}};
    auto good = rr::build(get);
    auto refuse = [](rr::bytes b, const std::string &why, bool request = true) {
        auto p = request ? rr::parse_request(b.data(), b.size()) : rr::parse_response(b.data(), b.size());
        EXPECT_FALSE(p.msg) << why;
        EXPECT_EQ(p.error, why);
        return p;
    };
    // Every prefix of a good message.
    for (std::size_t n = 0; n < good.size(); ++n) {
        auto p = rr::parse_request(good.data(), n);
        EXPECT_FALSE(p.msg) << n;
        EXPECT_FALSE(p.error.empty()) << n;
    }
    auto with = [&](std::size_t at, const std::string &word) {
        auto b = good;
        auto w = unhex(word);
        std::copy(w.begin(), w.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
        return b;
    };
    refuse(with(8, "00000045"), "MsgSize does not match the message");
    auto longer = good;
    longer.push_back(0);
    refuse(longer, "MsgSize does not match the message");
    longer[11] = static_cast<std::uint8_t>(longer.size());
    refuse(longer, "bytes after the message");
    refuse(with(4, "00000005"), "not a request");         // a MSG_BLK posted to the server
    refuse(with(4, "00000009"), "not a request");         // no such type
    refuse(with(12, "00000004"), "unknown CryptoAlgoId");
    refuse(with(16, "ffffffff"), "segment ID too long");  // SizeOfSegmentID of 4 GiB
    refuse(with(16, "00000010"), "segment ID of a size no hash has");
    refuse(with(52, "ffffffff"), "too many block ranges");
    refuse(with(52, "00000200"), "truncated");            // 512 ranges announced, one present
    refuse(with(56, "ffffffff"), "block range outside a segment");  // index + count wraps
    refuse(with(60, "00000000"), "block range outside a segment");  // an empty range
    refuse(with(64, "00000401"), "VrfBlock too long");
    auto v2 = refuse(with(0, "00000002"), "protocol version 2.0");
    EXPECT_TRUE(v2.unsupported_version);  // answered with MSG_NEGO_RESP (3.2.5)
    auto seglist = with(4, "00000006");
    refuse(seglist, "segment lists are protocol 2.0");
    // A response without, or with a wrong, transport header.
    refuse(good, "transport header does not match the message", false);
    refuse(rr::bytes{0, 0}, "no transport header", false);
    // Too long to be any message of this protocol.
    rr::bytes huge(rr::max_message_bytes + 1, 0);
    refuse(huge, "message too long");
}

TEST(pccrr, a_block_that_cannot_be_this_block_does_not_decrypt) {
    auto secret = rr::bytes(32, 7), iv = rr::bytes(16, 1);
    auto cipher = *rr::encrypt_block(rr::crypto_algo::aes_256, secret, iv, rr::bytes(100, 9));
    ASSERT_EQ(cipher.size(), 112u);
    EXPECT_TRUE(rr::decrypt_block(rr::crypto_algo::aes_256, secret, iv, cipher, 100));
    EXPECT_TRUE(rr::decrypt_block(rr::crypto_algo::aes_256, secret, iv, cipher, 112));
    EXPECT_TRUE(rr::decrypt_block(rr::crypto_algo::aes_256, secret, iv, cipher, 97));  // a whole pad block more
    EXPECT_FALSE(rr::decrypt_block(rr::crypto_algo::aes_256, secret, iv, cipher, 95));  // more than one pad block
    EXPECT_FALSE(rr::decrypt_block(rr::crypto_algo::aes_256, secret, iv, cipher, 113));  // shorter than the block
    EXPECT_FALSE(rr::decrypt_block(rr::crypto_algo::aes_256, secret, iv, rr::bytes(cipher.begin(), cipher.end() - 1), 100));
    EXPECT_FALSE(rr::decrypt_block(rr::crypto_algo::aes_256, rr::bytes(16, 7), iv, cipher, 100));  // secret shorter than the key
    EXPECT_FALSE(rr::decrypt_block(rr::crypto_algo::aes_256, secret, rr::bytes(8, 1), cipher, 100));  // not an AES IV
    EXPECT_FALSE(rr::decrypt_block(rr::crypto_algo::none, secret, iv, cipher, 100));  // plaintext of another size
}
