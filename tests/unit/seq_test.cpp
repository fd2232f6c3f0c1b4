#include <cstdint>

#include <gtest/gtest.h>

#include "seq.h"

namespace {

using tcptrail::relative_seq;
using tcptrail::seq_before;
using tcptrail::seq_diff;

static_assert(relative_seq(1001, 1000) == 1);
static_assert(relative_seq(0x10, 0xfffffff0) == 0x20);

TEST(SeqTest, RelativeToIsn) {
  EXPECT_EQ(relative_seq(1000, 1000), 0u); // the SYN itself
  EXPECT_EQ(relative_seq(1001, 1000), 1u); // first data byte
  EXPECT_EQ(relative_seq(1000 + 4096, 1000), 4096u);
}

TEST(SeqTest, RelativeWrapsModulo32Bits) {
  EXPECT_EQ(relative_seq(0x10, 0xfffffff0), 0x20u);
  EXPECT_EQ(relative_seq(0, 0xffffffff), 1u);
  EXPECT_EQ(relative_seq(0xffffffff, 0), 0xffffffffu);
}

TEST(SeqTest, DiffIsSigned) {
  EXPECT_EQ(seq_diff(10, 5), 5);
  EXPECT_EQ(seq_diff(5, 10), -5);
  EXPECT_EQ(seq_diff(0x5, 0xfffffffb), 10); // across the wrap
  EXPECT_EQ(seq_diff(0xfffffffb, 0x5), -10);
  EXPECT_EQ(seq_diff(7, 7), 0);
}

TEST(SeqTest, BeforeAcrossWrap) {
  EXPECT_TRUE(seq_before(1, 2));
  EXPECT_FALSE(seq_before(2, 1));
  EXPECT_FALSE(seq_before(3, 3));
  EXPECT_TRUE(seq_before(0xfffffff0, 0x10));
  EXPECT_FALSE(seq_before(0x10, 0xfffffff0));
  // Half the space apart: a is just within 2^31 - 1 before b.
  EXPECT_TRUE(seq_before(0, 0x7fffffff));
}

} // namespace
