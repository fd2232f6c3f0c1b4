#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "tcp_state.h"

namespace {

using tcptrail::parse_state;
using tcptrail::state_label;
using tcptrail::state_name;
using tcptrail::TcpState;

TEST(StateTest, NamesOfEveryKernelState) {
  const struct {
    std::uint8_t value;
    const char *name;
  } cases[] = {
      {1, "ESTABLISHED"}, {2, "SYN_SENT"},   {3, "SYN_RECV"},
      {4, "FIN_WAIT1"},   {5, "FIN_WAIT2"},  {6, "TIME_WAIT"},
      {7, "CLOSE"},       {8, "CLOSE_WAIT"}, {9, "LAST_ACK"},
      {10, "LISTEN"},     {11, "CLOSING"},   {12, "NEW_SYN_RECV"},
  };
  for (const auto &c : cases) {
    EXPECT_EQ(state_name(c.value), c.name);
    EXPECT_EQ(state_label(c.value), c.name);
  }
}

TEST(StateTest, UnknownValues) {
  EXPECT_EQ(state_name(0), "");
  EXPECT_EQ(state_name(13), "");
  EXPECT_EQ(state_label(0), "UNKNOWN(0)");
  EXPECT_EQ(state_label(13), "UNKNOWN(13)");
  EXPECT_EQ(state_label(99), "UNKNOWN(99)");
  EXPECT_EQ(state_label(255), "UNKNOWN(255)");
}

TEST(StateTest, ParseAcceptsCaseAndDashes) {
  EXPECT_EQ(parse_state("ESTABLISHED"), TcpState::Established);
  EXPECT_EQ(parse_state("established"), TcpState::Established);
  EXPECT_EQ(parse_state("close-wait"), TcpState::CloseWait);
  EXPECT_EQ(parse_state("Close_Wait"), TcpState::CloseWait);
  EXPECT_EQ(parse_state("new-syn-recv"), TcpState::NewSynRecv);
  EXPECT_EQ(parse_state("close"), TcpState::Close);
}

TEST(StateTest, ParseRoundTripsEveryName) {
  for (std::uint8_t v = 1; v <= tcptrail::kMaxTcpState; ++v) {
    auto parsed = parse_state(state_name(v));
    ASSERT_TRUE(parsed.has_value()) << int(v);
    EXPECT_EQ(static_cast<std::uint8_t>(*parsed), v);
  }
}

TEST(StateTest, ParseRejectsJunk) {
  for (const char *bad :
       {"", "UNKNOWN(99)", "established ", " listen", "FIN_WAIT", "FIN_WAIT3",
        "closewait", "7", "TIME WAIT"})
    EXPECT_FALSE(parse_state(bad).has_value()) << '"' << bad << '"';
}

} // namespace
