// Every output format against golden text: {description, synthetic event,
// expected exact output}. JSON is also parsed and checked field by field,
// CSV is parsed and checked against its header.
#include <arpa/inet.h>
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "format/formatter.h"
#include "tcp_state.h"

namespace {

using tcptrail::Buffer;
using tcptrail::Format;
using tcptrail::OutputOptions;

constexpr std::uint64_t kStartNs = 1'000'000'000;
// 2023-11-14T22:13:20Z, minus kStartNs: ts_ns kStartNs is that instant.
constexpr std::int64_t kWallOffsetNs =
    1'700'000'000'000'000'000 - 1'000'000'000;

struct Lost {
  std::uint64_t count;
};
using Event = std::variant<tt_state_event, tt_seg_event, Lost>;

void set_addr(std::uint8_t af, const char *text, std::uint8_t (&out)[16]) {
  std::memset(out, 0, sizeof(out));
  ASSERT_EQ(inet_pton(af == 6 ? AF_INET6 : AF_INET, text, out), 1) << text;
}

tt_sock sock_v4() {
  tt_sock sk{};
  sk.af = 4;
  set_addr(4, "198.18.0.1", sk.laddr);
  set_addr(4, "198.18.0.2", sk.raddr);
  sk.lport = 40000;
  sk.rport = 80;
  sk.netns = 4026532001U;
  sk.pid = 1234;
  sk.cpu_pid = 1234;
  std::strcpy(sk.comm, "curl");
  std::strcpy(sk.cpu_comm, "curl");
  return sk;
}

tt_sock sock_v6() {
  tt_sock sk{};
  sk.af = 6;
  set_addr(6, "2001:db8::1", sk.laddr);
  set_addr(6, "2001:db8:ffff::2", sk.raddr);
  sk.lport = 443;
  sk.rport = 51000;
  sk.netns = 4026532001U;
  sk.pid = 0; // owner unknown
  sk.cpu_pid = 0;
  std::strcpy(sk.cpu_comm, "swapper/3");
  return sk;
}

tt_state_event state_event(const tt_sock &sk, std::uint64_t ts_ns,
                           std::uint8_t old_state, std::uint8_t new_state) {
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.cpu = 3;
  ev.hdr.ts_ns = ts_ns;
  ev.hdr.cookie = 8193;
  ev.sk = sk;
  ev.old_state = old_state;
  ev.new_state = new_state;
  return ev;
}

// SYN_SENT -> ESTABLISHED on an IPv4 connect(), everything known.
tt_state_event v4_established() {
  tt_state_event ev = state_event(sock_v4(), 2'001'234'567, 2, 1);
  ev.flags =
      TT_F_OLD_TS | TT_F_ISN_LOCAL | TT_F_ISN_REMOTE | TT_F_ACTIVE | TT_F_OWNER;
  ev.old_state_ns = 1'234'567;
  ev.isn_local = 1000;
  ev.isn_remote = 5000;
  ev.snd_una = 1001;
  ev.snd_nxt = 1001;
  ev.rcv_nxt = 5001;
  ev.bytes_acked = 1;
  ev.bytes_received = 0;
  return ev;
}

// SYN_RECV -> ESTABLISHED on an accepted IPv6 socket, owner unknown, whose
// local ISN makes the relative numbers wrap: 0x10 - 0xfffffff0 = 0x20.
tt_state_event v6_accepted_wrap() {
  tt_state_event ev = state_event(sock_v6(), 1'500'000'000, 3, 1);
  ev.hdr.cookie = 18446744073709551615ULL;
  ev.flags = TT_F_OLD_TS | TT_F_ISN_LOCAL | TT_F_ISN_REMOTE | TT_F_PASSIVE;
  ev.old_state_ns = 250'000;
  ev.isn_local = 0xfffffff0;
  ev.snd_una = 0x10;
  ev.snd_nxt = 0x10;
  ev.isn_remote = 7;
  ev.rcv_nxt = 8;
  return ev;
}

// SYN_SENT -> CLOSE after the peer's RST: ECONNREFUSED, no remote ISN.
tt_state_event v4_refused() {
  tt_state_event ev = state_event(sock_v4(), 3'000'000'000, 2, 7);
  ev.sk.lport = 40001;
  ev.flags = TT_F_OLD_TS | TT_F_ISN_LOCAL | TT_F_ACTIVE | TT_F_OWNER;
  ev.old_state_ns = 999;
  ev.isn_local = 4000000000U;
  ev.snd_una = 4000000000U;
  ev.snd_nxt = 4000000001U;
  ev.rcv_nxt = 0;
  ev.error = 111;
  ev.detail = TT_DETAIL_RESET_RCVD;
  return ev;
}

// FIN_WAIT2 -> TIME_WAIT inferred from the timewait socket.
tt_state_event v4_time_wait() {
  tt_state_event ev = state_event(sock_v4(), 4'000'000'001, 5, 6);
  ev.flags = TT_F_OLD_TS | TT_F_ISN_LOCAL | TT_F_ISN_REMOTE | TT_F_ACTIVE |
             TT_F_OWNER | TT_F_INFERRED;
  ev.old_state_ns = 40'000'000'123ULL;
  ev.isn_local = 1000;
  ev.isn_remote = 5000;
  ev.snd_una = 1078;
  ev.snd_nxt = 1078;
  ev.rcv_nxt = 7202;
  ev.bytes_acked = 77;
  ev.bytes_received = 2201;
  ev.total_retrans = 2;
  ev.detail = TT_DETAIL_TW;
  return ev;
}

// A state value this build does not know, nothing else known.
tt_state_event v4_unknown_state() {
  tt_state_event ev = state_event(sock_v4(), kStartNs, 1, 99);
  ev.snd_una = 1;
  ev.snd_nxt = 2;
  ev.rcv_nxt = 3;
  return ev;
}

tt_seg_event seg_event(unsigned kind, const tt_sock &sk, std::uint64_t ts_ns,
                       std::uint8_t state, std::uint8_t what) {
  tt_seg_event ev{};
  ev.hdr.kind = static_cast<__u16>(kind);
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = ts_ns;
  ev.hdr.cookie = 8193;
  ev.sk = sk;
  ev.state = state;
  ev.what = what;
  return ev;
}

tt_seg_event v4_retransmit() {
  tt_seg_event ev = seg_event(TT_KIND_RETRANSMIT, sock_v4(), 2'500'000'000, 1,
                              TT_RETRANS_DATA);
  ev.sk.cpu_pid = 0;
  std::strcpy(ev.sk.cpu_comm, "swapper/0"); // retransmit timer
  ev.flags = TT_F_ISN_LOCAL | TT_F_ISN_REMOTE | TT_F_OWNER | TT_F_ACTIVE;
  ev.isn_local = 1000;
  ev.isn_remote = 5000;
  ev.seq = 1001;
  ev.snd_una = 1001;
  ev.snd_nxt = 1078;
  ev.rcv_nxt = 5001;
  return ev;
}

tt_seg_event v6_synack_retransmit() {
  tt_seg_event ev = seg_event(TT_KIND_RETRANSMIT, sock_v6(), 1'200'000'000, 12,
                              TT_RETRANS_SYNACK);
  ev.flags = TT_F_ISN_LOCAL | TT_F_ISN_REMOTE;
  ev.isn_local = 0xfffffff0;
  ev.isn_remote = 7;
  ev.seq = 0xfffffff0;
  ev.snd_una = 0xfffffff0;
  ev.snd_nxt = 0xfffffff1;
  ev.rcv_nxt = 8;
  return ev;
}

tt_seg_event v4_reset_sent() {
  tt_seg_event ev =
      seg_event(TT_KIND_RESET, sock_v4(), 2'750'000'000, 1, TT_RESET_SENT);
  ev.flags = TT_F_ISN_LOCAL | TT_F_OWNER; // remote ISN unknown
  ev.isn_local = 1000;
  ev.snd_una = 1001;
  ev.snd_nxt = 1001;
  ev.rcv_nxt = 5001;
  ev.reason = 2;
  return ev;
}

tt_seg_event v4_reset_received() {
  tt_seg_event ev = v4_reset_sent();
  ev.what = TT_RESET_RECEIVED;
  ev.reason = 0;
  ev.state = 8; // CLOSE_WAIT
  return ev;
}

OutputOptions options(Format format) {
  OutputOptions o;
  o.format = format;
  o.start_ns = kStartNs;
  o.wall_offset_ns = kWallOffsetNs;
  return o;
}

std::string render(const OutputOptions &opts, const Event &ev,
                   bool with_header = false) {
  auto f = tcptrail::make_formatter(opts);
  Buffer out;
  if (with_header)
    f->header(out);
  if (const auto *s = std::get_if<tt_state_event>(&ev))
    f->state(out, *s);
  else if (const auto *g = std::get_if<tt_seg_event>(&ev))
    f->segment(out, *g);
  else
    f->lost(out, std::get<Lost>(ev).count);
  return fmt::to_string(out);
}

struct Case {
  const char *description;
  OutputOptions opts;
  Event event;
  std::string expected;
};

// ---------------------------------------------------------------- table

const std::string kTableHeader =
    "TIME(s)      PID     COMM             LOCAL                 REMOTE      "
    "          TRANSITION                 MS         SND_UNA    SND_NXT    "
    "RCV_NXT\n";

// A kernel whose BTF names RST reasons (enum sk_rst_reason, 6.10+): the
// first three of Linux 6.18's, as KernelProbes::rst_reason_names() gives
// them.
OutputOptions named_reasons(OutputOptions o) {
  o.rst_reasons = {"not_specified", "no_socket", "tcp_invalid_ack_sequence"};
  return o;
}

OutputOptions table(bool raw_seq = false, bool color = false) {
  OutputOptions o = options(Format::Table);
  o.raw_seq = raw_seq;
  o.color = color;
  return o;
}

std::vector<Case> table_cases() {
  return {
      {"table: IPv4 SYN_SENT -> ESTABLISHED, relative seq", table(),
       v4_established(),
       "1.001234     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         SYN_SENT -> ESTABLISHED    1.234      1          "
       "1          1\n"},
      {"table: raw seq", table(true), v4_established(),
       "1.001234     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         SYN_SENT -> ESTABLISHED    1.234      1001       "
       "1001       5001\n"},
      {"table: colour ESTABLISHED green", table(false, true), v4_established(),
       "1.001234     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         SYN_SENT -> \x1b[32mESTABLISHED\x1b[0m    1.234  "
       "    1          1          1\n"},
      {"table: IPv6 passive, owner unknown, relative seq wraps", table(),
       v6_accepted_wrap(),
       "0.500000     0       -                [2001:db8::1]:443     "
       "[2001:db8:ffff::2]:51000 SYN_RECV -> ESTABLISHED    0.250      32      "
       "   32         1\n"},
      {"table: IPv6 raw seq", table(true), v6_accepted_wrap(),
       "0.500000     0       -                [2001:db8::1]:443     "
       "[2001:db8:ffff::2]:51000 SYN_RECV -> ESTABLISHED    0.250      16      "
       "   16         8\n"},
      {"table: ECONNREFUSED, remote ISN unknown", table(), v4_refused(),
       "2.000000     1234    curl             198.18.0.1:40001      "
       "198.18.0.2:80         SYN_SENT -> CLOSE          0.000      0          "
       "1          -          ECONNREFUSED reset_received\n"},
      {"table: ECONNREFUSED raw", table(true), v4_refused(),
       "2.000000     1234    curl             198.18.0.1:40001      "
       "198.18.0.2:80         SYN_SENT -> CLOSE          0.000      4000000000 "
       "4000000001 0          ECONNREFUSED reset_received\n"},
      {"table: colour CLOSE with error red", table(false, true), v4_refused(),
       "2.000000     1234    curl             198.18.0.1:40001      "
       "198.18.0.2:80         SYN_SENT -> \x1b[31mCLOSE\x1b[0m          0.000  "
       "    0          1          -          ECONNREFUSED reset_received\n"},
      {"table: inferred TIME_WAIT", table(), v4_time_wait(),
       "3.000000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         FIN_WAIT2 -> TIME_WAIT     40000.000  78         "
       "78         2202       (inferred) time_wait\n"},
      {"table: colour TIME_WAIT yellow", table(false, true), v4_time_wait(),
       "3.000000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         FIN_WAIT2 -> \x1b[33mTIME_WAIT\x1b[0m     "
       "40000.000  78         78         2202       (inferred) time_wait\n"},
      {"table: unknown state 99, no ISN", table(), v4_unknown_state(),
       "0.000000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         ESTABLISHED -> UNKNOWN(99) -          -          "
       "-          -\n"},
      {"table: unknown state 99, raw", table(true), v4_unknown_state(),
       "0.000000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         ESTABLISHED -> UNKNOWN(99) -          1          "
       "2          3\n"},
      {"table: colour leaves unknown state plain", table(false, true),
       v4_unknown_state(),
       "0.000000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         ESTABLISHED -> UNKNOWN(99) -          -          "
       "-          -\n"},
      {"table: data retransmit", table(), v4_retransmit(),
       "1.500000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         RETRANS data seq=1 (ESTABLISHED) -          1    "
       "      78         1\n"},
      {"table: data retransmit raw", table(true), v4_retransmit(),
       "1.500000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         RETRANS data seq=1001 (ESTABLISHED) -          "
       "1001       1078       5001\n"},
      {"table: colour retransmit", table(false, true), v4_retransmit(),
       "1.500000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         \x1b[35mRETRANS\x1b[0m data seq=1 (ESTABLISHED) "
       "-          1          78         1\n"},
      {"table: IPv6 SYN-ACK retransmit at the wrapping ISN", table(),
       v6_synack_retransmit(),
       "0.200000     0       -                [2001:db8::1]:443     "
       "[2001:db8:ffff::2]:51000 RETRANS synack seq=0 (NEW_SYN_RECV) -         "
       " 0          1          1\n"},
      {"table: RST sent", table(), v4_reset_sent(),
       "1.750000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         RST sent (ESTABLISHED)     -          1          "
       "1          -\n"},
      {"table: RST sent, the kernel names its reasons", named_reasons(table()),
       v4_reset_sent(),
       "1.750000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         RST sent (ESTABLISHED)     -          1          "
       "1          -          tcp_invalid_ack_sequence\n"},
      {"table: RST received", table(), v4_reset_received(),
       "1.750000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         RST received (CLOSE_WAIT)  -          1          "
       "1          -\n"},
      {"table: colour RST red", table(false, true), v4_reset_sent(),
       "1.750000     1234    curl             198.18.0.1:40000      "
       "198.18.0.2:80         \x1b[31mRST\x1b[0m sent (ESTABLISHED)     -      "
       "    1          1          -\n"},
  };
}

TEST(FormatTest, TableHeader) {
  auto f = tcptrail::make_formatter(table());
  Buffer out;
  f->header(out);
  EXPECT_EQ(fmt::to_string(out), kTableHeader);
}

TEST(FormatTest, TableGolden) {
  for (const auto &c : table_cases()) {
    SCOPED_TRACE(c.description);
    EXPECT_EQ(render(c.opts, c.event), c.expected);
  }
}

TEST(FormatTest, TableLostWritesNothing) {
  // The caller warns on stderr; stdout stays a clean table.
  EXPECT_EQ(render(table(), Lost{3}), "");
  EXPECT_EQ(render(table(false, true), Lost{3}), "");
}

TEST(FormatTest, TableColumnsAlignWithHeader) {
  // Where the header puts each column, an IPv4 line puts it too.
  const std::string line = render(table(), v4_refused());
  for (const char *col : {"PID", "COMM", "LOCAL", "REMOTE", "TRANSITION", "MS",
                          "SND_UNA", "SND_NXT", "RCV_NXT"}) {
    const std::size_t at = kTableHeader.find(col);
    ASSERT_NE(at, std::string::npos);
    EXPECT_EQ(line[at - 1], ' ') << col;
    EXPECT_NE(line[at], ' ') << col;
  }
}

TEST(FormatTest, TableTimeBeforeStartIsNegative) {
  tt_state_event ev = v4_unknown_state();
  ev.hdr.ts_ns = kStartNs - 500'000'000;
  const std::string line = render(table(), ev);
  EXPECT_EQ(line.substr(0, 13), "-0.500000    ");
}

// Sets TZ for the scope of a test and restores it.
class ScopedTz {
public:
  explicit ScopedTz(const char *tz) {
    if (const char *old = std::getenv("TZ"))
      old_ = old;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ScopedTz() {
    if (old_)
      setenv("TZ", old_->c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }
  ScopedTz(const ScopedTz &) = delete;
  ScopedTz &operator=(const ScopedTz &) = delete;

private:
  std::optional<std::string> old_;
};

TEST(FormatTest, TableWallClockIsLocalTime) {
  const ScopedTz tz("XYZ-2"); // POSIX: UTC+2
  OutputOptions o = table();
  o.wall_time = true;
  auto f = tcptrail::make_formatter(o);
  Buffer out;
  f->header(out);
  f->state(out, v4_established());
  tt_state_event later = v4_established();
  later.hdr.ts_ns += 2'000'000'000; // a different second: not the cached one
  f->state(out, later);
  // 2023-11-14T22:13:21.001234567Z is 00:13:21 at UTC+2.
  EXPECT_EQ(
      fmt::to_string(out),
      "TIME            PID     COMM             LOCAL                 REMOTE  "
      "              TRANSITION                 MS         SND_UNA    "
      "SND_NXT    RCV_NXT\n"
      "00:13:21.001234 1234    curl             198.18.0.1:40000      "
      "198.18.0.2:80         SYN_SENT -> ESTABLISHED    1.234      1          "
      "1          1\n"
      "00:13:23.001234 1234    curl             198.18.0.1:40000      "
      "198.18.0.2:80         SYN_SENT -> ESTABLISHED    1.234      1          "
      "1          1\n");
}

TEST(FormatTest, TableHostileComm) {
  tt_state_event ev = v4_established();
  std::memcpy(ev.sk.comm, "\x1b]0;x\x07\xc2\x9b\\\n\xff", 11);
  const std::string line = render(table(false, true), ev);
  // Longer than the column once escaped: one space, then LOCAL.
  const std::string want = "1.001234     1234    "
                           "\\x1b]0;x\\x07\\xc2\\x9b\\\\\\x0a\\xff "
                           "198.18.0.1:40000 ";
  EXPECT_EQ(line.substr(0, want.size()), want);
  // One line; the only escape sequences are our own colours.
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  std::string stripped = line;
  for (const char *sgr : {"\x1b[32m", "\x1b[0m"})
    stripped.erase(stripped.find(sgr), std::strlen(sgr));
  EXPECT_EQ(stripped.find('\x1b'), std::string::npos);
}

// ----------------------------------------------------------------- JSON

OutputOptions json_opts() { return options(Format::Json); }

std::vector<Case> json_cases() {
  return {
      {"json: IPv4 SYN_SENT -> ESTABLISHED", json_opts(), v4_established(),
       R"json({"event":"state","time":"2023-11-14T22:13:21.001234567Z","ts_ns":2001234567,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40000,"raddr":"198.18.0.2","rport":80,"old":"SYN_SENT","new":"ESTABLISHED","old_state_ns":1234567,"snd_una":1001,"snd_nxt":1001,"rcv_nxt":5001,"isn_local":1000,"isn_remote":5000,"netns":4026532001,"role":"active","inferred":false,"error":null,"detail":null,"bytes_acked":1,"bytes_received":0,"retransmits":0,"cpu_pid":1234,"cpu_comm":"curl","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: raw_seq does not matter, seq is always raw",
       [] {
         OutputOptions o = json_opts();
         o.raw_seq = false;
         return o;
       }(),
       v6_accepted_wrap(),
       R"json({"event":"state","time":"2023-11-14T22:13:20.500000000Z","ts_ns":1500000000,"cookie":18446744073709551615,"pid":0,"comm":"","af":6,"laddr":"2001:db8::1","lport":443,"raddr":"2001:db8:ffff::2","rport":51000,"old":"SYN_RECV","new":"ESTABLISHED","old_state_ns":250000,"snd_una":16,"snd_nxt":16,"rcv_nxt":8,"isn_local":4294967280,"isn_remote":7,"netns":4026532001,"role":"passive","inferred":false,"error":null,"detail":null,"bytes_acked":0,"bytes_received":0,"retransmits":0,"cpu_pid":0,"cpu_comm":"swapper/3","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: ECONNREFUSED, remote ISN unknown", json_opts(), v4_refused(),
       R"json({"event":"state","time":"2023-11-14T22:13:22.000000000Z","ts_ns":3000000000,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40001,"raddr":"198.18.0.2","rport":80,"old":"SYN_SENT","new":"CLOSE","old_state_ns":999,"snd_una":4000000000,"snd_nxt":4000000001,"rcv_nxt":0,"isn_local":4000000000,"isn_remote":null,"netns":4026532001,"role":"active","inferred":false,"error":"ECONNREFUSED","detail":"reset_received","bytes_acked":0,"bytes_received":0,"retransmits":0,"cpu_pid":1234,"cpu_comm":"curl","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: inferred TIME_WAIT", json_opts(), v4_time_wait(),
       R"json({"event":"state","time":"2023-11-14T22:13:23.000000001Z","ts_ns":4000000001,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40000,"raddr":"198.18.0.2","rport":80,"old":"FIN_WAIT2","new":"TIME_WAIT","old_state_ns":40000000123,"snd_una":1078,"snd_nxt":1078,"rcv_nxt":7202,"isn_local":1000,"isn_remote":5000,"netns":4026532001,"role":"active","inferred":true,"error":null,"detail":"time_wait","bytes_acked":77,"bytes_received":2201,"retransmits":2,"cpu_pid":1234,"cpu_comm":"curl","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: unknown state 99, nothing known", json_opts(), v4_unknown_state(),
       R"json({"event":"state","time":"2023-11-14T22:13:20.000000000Z","ts_ns":1000000000,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40000,"raddr":"198.18.0.2","rport":80,"old":"ESTABLISHED","new":"UNKNOWN(99)","old_state_ns":null,"snd_una":1,"snd_nxt":2,"rcv_nxt":3,"isn_local":null,"isn_remote":null,"netns":4026532001,"role":null,"inferred":false,"error":null,"detail":null,"bytes_acked":0,"bytes_received":0,"retransmits":0,"cpu_pid":1234,"cpu_comm":"curl","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: data retransmit", json_opts(), v4_retransmit(),
       R"json({"event":"retransmit","time":"2023-11-14T22:13:21.500000000Z","ts_ns":2500000000,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40000,"raddr":"198.18.0.2","rport":80,"state":"ESTABLISHED","seq":1001,"what":"data","snd_una":1001,"snd_nxt":1078,"rcv_nxt":5001,"isn_local":1000,"isn_remote":5000,"netns":4026532001,"cpu_pid":0,"cpu_comm":"swapper/0","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: IPv6 SYN-ACK retransmit", json_opts(), v6_synack_retransmit(),
       R"json({"event":"retransmit","time":"2023-11-14T22:13:20.200000000Z","ts_ns":1200000000,"cookie":8193,"pid":0,"comm":"","af":6,"laddr":"2001:db8::1","lport":443,"raddr":"2001:db8:ffff::2","rport":51000,"state":"NEW_SYN_RECV","seq":4294967280,"what":"synack","snd_una":4294967280,"snd_nxt":4294967281,"rcv_nxt":8,"isn_local":4294967280,"isn_remote":7,"netns":4026532001,"cpu_pid":0,"cpu_comm":"swapper/3","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: RST sent", json_opts(), v4_reset_sent(),
       R"json({"event":"reset","dir":"sent","time":"2023-11-14T22:13:21.750000000Z","ts_ns":2750000000,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40000,"raddr":"198.18.0.2","rport":80,"state":"ESTABLISHED","reason":2,"reason_name":null,"snd_una":1001,"snd_nxt":1001,"rcv_nxt":5001,"isn_local":1000,"isn_remote":null,"netns":4026532001,"cpu_pid":1234,"cpu_comm":"curl","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: RST sent, the kernel names its reasons", named_reasons(json_opts()),
       v4_reset_sent(),
       R"json({"event":"reset","dir":"sent","time":"2023-11-14T22:13:21.750000000Z","ts_ns":2750000000,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40000,"raddr":"198.18.0.2","rport":80,"state":"ESTABLISHED","reason":2,"reason_name":"tcp_invalid_ack_sequence","snd_una":1001,"snd_nxt":1001,"rcv_nxt":5001,"isn_local":1000,"isn_remote":null,"netns":4026532001,"cpu_pid":1234,"cpu_comm":"curl","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: RST received", json_opts(), v4_reset_received(),
       R"json({"event":"reset","dir":"received","time":"2023-11-14T22:13:21.750000000Z","ts_ns":2750000000,"cookie":8193,"pid":1234,"comm":"curl","af":4,"laddr":"198.18.0.1","lport":40000,"raddr":"198.18.0.2","rport":80,"state":"CLOSE_WAIT","reason":null,"reason_name":null,"snd_una":1001,"snd_nxt":1001,"rcv_nxt":5001,"isn_local":1000,"isn_remote":null,"netns":4026532001,"cpu_pid":1234,"cpu_comm":"curl","cgroup_id":null,"cgroup":null,"container":null,"pod":null})json"
       "\n"},
      {"json: lost", json_opts(), Lost{3},
       "{\"event\":\"lost\",\"count\":3}\n"},
  };
}

TEST(FormatTest, JsonGolden) {
  for (const auto &c : json_cases()) {
    SCOPED_TRACE(c.description);
    EXPECT_EQ(render(c.opts, c.event), c.expected);
  }
}

TEST(FormatTest, JsonHasNoHeader) {
  auto f = tcptrail::make_formatter(json_opts());
  Buffer out;
  f->header(out);
  EXPECT_EQ(out.size(), 0u);
}

using nlohmann::json;

void expect_uint(const json &j, const char *key) {
  ASSERT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j[key].is_number_unsigned()) << key << ": " << j[key];
}

void expect_string(const json &j, const char *key) {
  ASSERT_TRUE(j.contains(key)) << key;
  EXPECT_TRUE(j[key].is_string()) << key << ": " << j[key];
}

void expect_uint_or_null(const json &j, const char *key, bool valid) {
  ASSERT_TRUE(j.contains(key)) << key;
  if (valid)
    EXPECT_TRUE(j[key].is_number_unsigned()) << key << ": " << j[key];
  else
    EXPECT_TRUE(j[key].is_null()) << key << ": " << j[key];
}

void expect_identity(const json &j) {
  expect_string(j, "time");
  for (const char *key : {"ts_ns", "cookie", "pid", "af", "lport", "rport"})
    expect_uint(j, key);
  for (const char *key : {"comm", "laddr", "raddr"})
    expect_string(j, key);
  EXPECT_TRUE(j["af"] == 4 || j["af"] == 6);
}

// The contract other tools rely on, checked on the parsed object: every
// field present with its type, whatever the golden text says.
TEST(FormatTest, JsonContract) {
  for (const auto &c : json_cases()) {
    SCOPED_TRACE(c.description);
    const std::string text = render(c.opts, c.event);
    ASSERT_FALSE(text.empty());
    ASSERT_EQ(text.find('\n'), text.size() - 1) << "one object per line";
    json j;
    ASSERT_NO_THROW(j = json::parse(text));
    ASSERT_TRUE(j.is_object());
    expect_string(j, "event");
    if (const auto *s = std::get_if<tt_state_event>(&c.event)) {
      EXPECT_EQ(j["event"], "state");
      expect_identity(j);
      EXPECT_EQ(j["ts_ns"], s->hdr.ts_ns);
      EXPECT_EQ(j["cookie"], s->hdr.cookie);
      EXPECT_EQ(j["old"], tcptrail::state_label(s->old_state));
      EXPECT_EQ(j["new"], tcptrail::state_label(s->new_state));
      expect_uint_or_null(j, "old_state_ns", s->flags & TT_F_OLD_TS);
      EXPECT_EQ(j["snd_una"], s->snd_una);
      EXPECT_EQ(j["snd_nxt"], s->snd_nxt);
      EXPECT_EQ(j["rcv_nxt"], s->rcv_nxt);
      expect_uint_or_null(j, "isn_local", s->flags & TT_F_ISN_LOCAL);
      expect_uint_or_null(j, "isn_remote", s->flags & TT_F_ISN_REMOTE);
      EXPECT_EQ(j["inferred"], (s->flags & TT_F_INFERRED) != 0);
      EXPECT_EQ(j["error"].is_null(), s->error == 0);
      EXPECT_TRUE(j["role"].is_null() || j["role"] == "active" ||
                  j["role"] == "passive");
      for (const char *key :
           {"netns", "bytes_acked", "bytes_received", "retransmits", "cpu_pid"})
        expect_uint(j, key);
      expect_string(j, "cpu_comm");
    } else if (const auto *g = std::get_if<tt_seg_event>(&c.event)) {
      expect_identity(j);
      expect_string(j, "state");
      for (const char *key :
           {"snd_una", "snd_nxt", "rcv_nxt", "netns", "cpu_pid"})
        expect_uint(j, key);
      expect_string(j, "cpu_comm");
      if (g->hdr.kind == TT_KIND_RETRANSMIT) {
        EXPECT_EQ(j["event"], "retransmit");
        EXPECT_EQ(j["seq"], g->seq);
        expect_string(j, "what");
      } else {
        EXPECT_EQ(j["event"], "reset");
        EXPECT_TRUE(j["dir"] == "sent" || j["dir"] == "received");
        expect_uint_or_null(j, "reason", g->what == TT_RESET_SENT);
      }
    } else {
      EXPECT_EQ(j["event"], "lost");
      EXPECT_EQ(j["count"], std::get<Lost>(c.event).count);
    }
  }
}

TEST(FormatTest, JsonHostileComm) {
  tt_state_event ev = v4_established();
  std::memcpy(ev.sk.comm, "\"},\n{\"x\":\x1b[2J\xc2\x9b\x9b", 16); // no NUL
  std::memcpy(ev.sk.cpu_comm, "a\\b\"c", 6);
  const std::string text = render(json_opts(), ev);
  ASSERT_EQ(text.find('\n'), text.size() - 1);
  EXPECT_NE(text.find(R"("comm":"\"},\n{\"x\":\u001b[2J\u009b\ufffd")"),
            std::string::npos)
      << text;
  const json j = json::parse(text);
  EXPECT_EQ(j["comm"], "\"},\n{\"x\":\x1b[2J\xc2\x9b\xef\xbf\xbd");
  EXPECT_EQ(j["cpu_comm"], "a\\b\"c");
  EXPECT_EQ(j["pid"], 1234);
}

// ------------------------------------------------------------------ CSV

const std::string kCsvHeader =
    "event,time,ts_ns,cookie,pid,comm,af,laddr,lport,raddr,rport,old,new,"
    "state,seq,what,dir,reason,old_state_ns,snd_una,snd_nxt,rcv_nxt,"
    "isn_local,isn_remote,netns,role,inferred,error,detail,bytes_acked,"
    "bytes_received,retransmits,cpu_pid,cpu_comm,count,cgroup_id,cgroup,"
    "container\n";

OutputOptions csv(bool raw_seq = false) {
  OutputOptions o = options(Format::Csv);
  o.raw_seq = raw_seq;
  return o;
}

std::vector<Case> csv_cases() {
  return {
      {"csv: IPv4 SYN_SENT -> ESTABLISHED", csv(), v4_established(),
       "state,2023-11-14T22:13:21.001234567Z,2001234567,8193,1234,curl,4,"
       "198.18.0.1,40000,198.18.0.2,80,SYN_SENT,ESTABLISHED,,,,,,1234567,"
       "1001,1001,5001,1000,5000,4026532001,active,false,,,1,0,0,1234,curl,"
       ",,,\n"},
      {"csv: IPv6, owner unknown, seq raw even without raw_seq", csv(false),
       v6_accepted_wrap(),
       "state,2023-11-14T22:13:20.500000000Z,1500000000,18446744073709551615,"
       "0,,6,2001:db8::1,443,2001:db8:ffff::2,51000,SYN_RECV,ESTABLISHED,,,,"
       ",,250000,16,16,8,4294967280,7,4026532001,passive,false,,,0,0,0,0,"
       "swapper/3,,,,\n"},
      {"csv: ECONNREFUSED", csv(true), v4_refused(),
       "state,2023-11-14T22:13:22.000000000Z,3000000000,8193,1234,curl,4,"
       "198.18.0.1,40001,198.18.0.2,80,SYN_SENT,CLOSE,,,,,,999,4000000000,"
       "4000000001,0,4000000000,,4026532001,active,false,ECONNREFUSED,"
       "reset_received,0,0,0,1234,curl,,,,\n"},
      {"csv: inferred TIME_WAIT", csv(), v4_time_wait(),
       "state,2023-11-14T22:13:23.000000001Z,4000000001,8193,1234,curl,4,"
       "198.18.0.1,40000,198.18.0.2,80,FIN_WAIT2,TIME_WAIT,,,,,,40000000123,"
       "1078,1078,7202,1000,5000,4026532001,active,true,,time_wait,77,2201,2,"
       "1234,curl,,,,\n"},
      {"csv: unknown state 99", csv(), v4_unknown_state(),
       "state,2023-11-14T22:13:20.000000000Z,1000000000,8193,1234,curl,4,"
       "198.18.0.1,40000,198.18.0.2,80,ESTABLISHED,UNKNOWN(99),,,,,,,1,2,3,,,"
       "4026532001,,false,,,0,0,0,1234,curl,,,,\n"},
      {"csv: data retransmit", csv(), v4_retransmit(),
       "retransmit,2023-11-14T22:13:21.500000000Z,2500000000,8193,1234,curl,"
       "4,198.18.0.1,40000,198.18.0.2,80,,,ESTABLISHED,1001,data,,,,1001,1078,"
       "5001,1000,5000,4026532001,,,,,,,,0,swapper/0,,,,\n"},
      {"csv: IPv6 SYN-ACK retransmit", csv(), v6_synack_retransmit(),
       "retransmit,2023-11-14T22:13:20.200000000Z,1200000000,8193,0,,6,"
       "2001:db8::1,443,2001:db8:ffff::2,51000,,,NEW_SYN_RECV,4294967280,"
       "synack,,,,4294967280,4294967281,8,4294967280,7,4026532001,,,,,,,,0,"
       "swapper/3,,,,\n"},
      {"csv: RST sent", csv(), v4_reset_sent(),
       "reset,2023-11-14T22:13:21.750000000Z,2750000000,8193,1234,curl,4,"
       "198.18.0.1,40000,198.18.0.2,80,,,ESTABLISHED,,,sent,2,,1001,1001,"
       "5001,1000,,4026532001,,,,,,,,1234,curl,,,,\n"},
      {"csv: RST received", csv(), v4_reset_received(),
       "reset,2023-11-14T22:13:21.750000000Z,2750000000,8193,1234,curl,4,"
       "198.18.0.1,40000,198.18.0.2,80,,,CLOSE_WAIT,,,received,,,1001,1001,"
       "5001,1000,,4026532001,,,,,,,,1234,curl,,,,\n"},
      {"csv: lost", csv(), Lost{3},
       "lost,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,3,,,\n"},
  };
}

TEST(FormatTest, CsvHeader) {
  auto f = tcptrail::make_formatter(csv());
  Buffer out;
  f->header(out);
  EXPECT_EQ(fmt::to_string(out), kCsvHeader);
}

TEST(FormatTest, CsvGolden) {
  for (const auto &c : csv_cases()) {
    SCOPED_TRACE(c.description);
    EXPECT_EQ(render(c.opts, c.event), c.expected);
  }
}

// A minimal RFC 4180 reader for one record (without the line break).
std::vector<std::string> parse_csv_record(std::string_view line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"' && fields.back().empty()) {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  EXPECT_FALSE(quoted) << "unterminated quote in " << line;
  return fields;
}

std::map<std::string, std::string> csv_row(const std::string &text) {
  const auto names = parse_csv_record(
      std::string_view(kCsvHeader).substr(0, kCsvHeader.size() - 1));
  EXPECT_EQ(text.find('\n'), text.size() - 1) << "one record per line";
  const auto values =
      parse_csv_record(std::string_view(text).substr(0, text.size() - 1));
  EXPECT_EQ(values.size(), names.size()) << text;
  std::map<std::string, std::string> row;
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i)
    row[names[i]] = values[i];
  return row;
}

TEST(FormatTest, CsvColumnsMatchHeader) {
  for (const auto &c : csv_cases()) {
    SCOPED_TRACE(c.description);
    auto row = csv_row(render(c.opts, c.event));
    if (const auto *s = std::get_if<tt_state_event>(&c.event)) {
      EXPECT_EQ(row["event"], "state");
      EXPECT_EQ(row["ts_ns"], std::to_string(s->hdr.ts_ns));
      EXPECT_EQ(row["new"], tcptrail::state_label(s->new_state));
      EXPECT_EQ(row["snd_nxt"], std::to_string(s->snd_nxt)); // always raw
      EXPECT_EQ(row["isn_remote"], s->flags & TT_F_ISN_REMOTE
                                       ? std::to_string(s->isn_remote)
                                       : "");
      EXPECT_EQ(row["cpu_comm"], s->sk.cpu_comm);
      EXPECT_EQ(row["count"], "");
    } else if (const auto *g = std::get_if<tt_seg_event>(&c.event)) {
      EXPECT_EQ(row["state"], tcptrail::state_label(g->state));
      EXPECT_EQ(row["snd_una"], std::to_string(g->snd_una));
      EXPECT_EQ(row["old"], "");
      if (g->hdr.kind == TT_KIND_RETRANSMIT)
        EXPECT_EQ(row["seq"], std::to_string(g->seq));
      else
        EXPECT_TRUE(row["dir"] == "sent" || row["dir"] == "received");
    } else {
      EXPECT_EQ(row["event"], "lost");
      EXPECT_EQ(row["count"], "3");
      EXPECT_EQ(row["time"], "");
    }
  }
}

TEST(FormatTest, CsvHostileComm) {
  tt_state_event ev = v4_established();
  std::memcpy(ev.sk.comm, "a,\"b\"\r\n\x1b[2J ", 13);
  const std::string text = render(csv(), ev);
  EXPECT_NE(text.find(R"(,"a,""b""\x0d\x0a\x1b[2J ",)"), std::string::npos)
      << text;
  auto row = csv_row(text);
  EXPECT_EQ(row["comm"], R"(a,"b"\x0d\x0a\x1b[2J )");
  EXPECT_EQ(row["af"], "4");
}

// ------------------------------------------------------------ RFC 3339

std::string rfc3339(std::int64_t ns) {
  Buffer out;
  tcptrail::append_rfc3339(out, ns);
  return fmt::to_string(out);
}

TEST(FormatTest, Rfc3339Golden) {
  EXPECT_EQ(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
  EXPECT_EQ(rfc3339(1), "1970-01-01T00:00:00.000000001Z");
  EXPECT_EQ(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
  EXPECT_EQ(rfc3339(1'700'000'000'123'456'789),
            "2023-11-14T22:13:20.123456789Z");
  EXPECT_EQ(rfc3339(1'709'164'800'000'000'000),
            "2024-02-29T00:00:00.000000000Z");
  EXPECT_EQ(rfc3339(951'868'799'999'999'999), "2000-02-29T23:59:59.999999999Z");
  EXPECT_EQ(rfc3339(4'102'444'800'000'000'000),
            "2100-01-01T00:00:00.000000000Z");
}

TEST(FormatTest, Rfc3339AgreesWithGmtime) {
  std::mt19937_64 rng(42);
  // 1900 .. 2200
  std::uniform_int_distribution<std::int64_t> secs(-2'208'988'800LL,
                                                   7'258'118'400LL);
  for (int i = 0; i < 20000; ++i) {
    const std::int64_t s = secs(rng);
    const auto t = static_cast<time_t>(s);
    struct tm tm = {};
    ASSERT_NE(gmtime_r(&t, &tm), nullptr);
    const std::string want = fmt::format(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000000007Z", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    ASSERT_EQ(rfc3339(s * 1'000'000'000 + 7), want) << s;
  }
}

TEST(FormatTest, UnknownKindsWriteNothing) {
  tt_seg_event ev = v4_retransmit();
  ev.hdr.kind = TT_KIND_STATE; // not a segment kind
  for (Format f : {Format::Table, Format::Json, Format::Csv})
    EXPECT_EQ(render(options(f), ev), "");
}

} // namespace
