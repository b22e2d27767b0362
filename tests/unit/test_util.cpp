#include "util/bytes.h"
#include "util/hex.h"

#include <gtest/gtest.h>

TEST(hex, round_trip_and_rejects_bad_digits) {
    std::vector<std::uint8_t> v = {0x00, 0xab, 0xff};
    EXPECT_EQ(pd::to_hex(v), "00abff");
    EXPECT_EQ(*pd::from_hex("00ABff"), v);
    EXPECT_FALSE(pd::from_hex("0"));
    EXPECT_FALSE(pd::from_hex("zz"));
}

TEST(bytes, reader_never_reads_past_the_end) {
    std::uint8_t data[3] = {1, 2, 3};
    pd::byte_reader r(data, sizeof data, "test");
    EXPECT_EQ(r.u16(), 0x0201);
    try {
        r.u32();
        FAIL() << "read past the end";
    } catch (const pd::error &e) {
        EXPECT_EQ(e.code(), PD_E_INVALID);
        EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
    }
}

TEST(bytes, big_endian_writer_matches_reader) {
    pd::byte_writer w(true);
    w.u32(0x01020304);
    w.u64(0x1122334455667788ull);
    EXPECT_EQ(w.data()[0], 1);
    pd::byte_reader r(w.data().data(), w.size(), "test", true);
    EXPECT_EQ(r.u32(), 0x01020304u);
    EXPECT_EQ(r.u64(), 0x1122334455667788ull);
    r.expect_end();
}

#include "util/text.h"

TEST(text, split_list_trims_and_drops_empty_items) {
    EXPECT_EQ(pd::split_list(" a, b,,c ,", ','), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(pd::split_list("", ','), std::vector<std::string>{});
    EXPECT_EQ(pd::split_list("x:1\ny:2\n", '\n'), (std::vector<std::string>{"x:1", "y:2"}));
}
