// History formatters: records -> exact table / JSON / CSV text.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "history/history_format.h"
#include "history_test_util.h"

namespace tcptrail::history_test {
namespace {

constexpr std::uint8_t kSynSent = 2, kEstablished = 1, kFinWait1 = 4,
                       kFinWait2 = 5, kTimeWait = 6, kClose = 7, kListen = 10;

ConnectionRecord base_record() {
  ConnectionRecord r;
  r.cookie = kCookieA;
  r.pid = 1234;
  r.comm = "curl";
  r.af = 4;
  const std::uint8_t l[4] = {198, 18, 0, 1}, rr[4] = {198, 18, 0, 2};
  std::memcpy(r.laddr, l, 4);
  std::memcpy(r.raddr, rr, 4);
  r.lport = 40000;
  r.rport = 80;
  r.netns = 4026531840U;
  r.role = ConnRole::Active;
  return r;
}

// The record of the assembler test's active close.
ConnectionRecord active_close_record() {
  ConnectionRecord r = base_record();
  r.isn_local = 1000;
  r.isn_remote = 5000;
  r.bytes_acked = 100;
  r.bytes_received = 300;
  r.end = ConnEnd::Closed;
  r.closed_first = ClosedFirst::Local;
  r.path = {
      {kSynSent, 1000000000, 210000, 1000, 1001, 0},
      {kEstablished, 1000210000, 11900000000, 1001, 1001, 5001},
      {kFinWait1, 12900210000, 50000, 1101, 1102, 5301},
      {kFinWait2, 12900260000, 100000, 1102, 1102, 5301},
      {kTimeWait, 12900360000, std::nullopt, 1102, 1102, 5302},
  };
  return r;
}

ConnectionRecord refused_record() {
  ConnectionRecord r = base_record();
  r.isn_local = 1000;
  r.resets_received = 1;
  r.end = ConnEnd::Refused;
  r.error = 111;
  r.path = {
      {kSynSent, 1000000000, 100000, 1000, 1001, 0},
      {kClose, 1000100000, std::nullopt, 1000, 1001, 0},
  };
  return r;
}

// ISNs near 2^32; the payload crossed it.
ConnectionRecord wrapped_record() {
  constexpr std::uint32_t il = 0xffffff00U, ir = 0xfffffff0U;
  ConnectionRecord r = base_record();
  r.isn_local = il;
  r.isn_remote = ir;
  r.bytes_acked = 512;
  r.bytes_received = 256;
  r.end = ConnEnd::Closed;
  r.closed_first = ClosedFirst::Local;
  r.path = {
      {kSynSent, 1000000000, 1000000, il, il + 1, 0},
      {kEstablished, 1001000000, 999000000, il + 1, il + 1, ir + 1},
      {kFinWait1, 2000000000, 50000, il + 513, il + 514, ir + 257},
      {kFinWait2, 2000050000, 40000, il + 514, il + 514, ir + 257},
      {kTimeWait, 2000090000, std::nullopt, il + 514, il + 514, ir + 258},
  };
  return r;
}

ConnectionRecord listener_record() {
  ConnectionRecord r = base_record();
  r.pid = 77;
  r.comm = "nginx";
  r.lport = 80;
  r.rport = 0;
  std::memset(r.raddr, 0, sizeof(r.raddr));
  r.role = ConnRole::Passive;
  r.listener = true;
  r.accepted = 2;
  r.end = ConnEnd::Closed;
  r.path = {
      {kListen, 1000000000, 10000000000, 0, 0, 0},
      {kClose, 11000000000, std::nullopt, 0, 0, 0},
  };
  return r;
}

ConnectionRecord already_open_record() {
  ConnectionRecord r = base_record();
  r.af = 6;
  const std::uint8_t base[16] = {0x20, 0x01, 0x0d, 0xb8};
  std::memcpy(r.laddr, base, 16);
  std::memcpy(r.raddr, base, 16);
  r.laddr[15] = 1;
  r.raddr[15] = 2;
  r.pid = 0;
  r.comm.clear();
  r.role = ConnRole::Unknown;
  r.bytes_acked = 5000;
  r.bytes_received = 7000 * 1024;
  r.end = ConnEnd::Open;
  r.closed_first = ClosedFirst::Local;
  r.prior_state = kEstablished;
  r.path = {
      {kFinWait1, 1000000000, 40000, 3000, 3001, 8000},
      {kFinWait2, 1000040000, std::nullopt, 3001, 3001, 8000},
  };
  return r;
}

std::string render(const OutputOptions &opts, bool show_seq,
                   const std::vector<ConnectionRecord> &records,
                   bool with_header = true) {
  auto f = make_history_formatter(opts, show_seq);
  Buffer out;
  if (with_header)
    f->header(out);
  for (const auto &r : records)
    f->record(out, r);
  return fmt::to_string(out);
}

OutputOptions with_format(Format format) {
  OutputOptions opts;
  opts.format = format;
  return opts;
}

const char *const kTableHeader =
    "PID/COMM             LOCAL                 REMOTE                ROLE    "
    "    SENT     RECV RETR END              PATH\n";

TEST(HistoryTable, GoldenLines) {
  struct {
    const char *description;
    ConnectionRecord record;
    std::string expected;
  } cases[] = {
      {"active close", active_close_record(),
       "1234/curl            198.18.0.1:40000      198.18.0.2:80         "
       "active      100B     300B    0 closed/local     SYN_SENT 0.21ms > "
       "ESTABLISHED 11.9s > FIN_WAIT1 50us > FIN_WAIT2 0.1ms > TIME_WAIT\n"},
      {"refused", refused_record(),
       "1234/curl            198.18.0.1:40000      198.18.0.2:80         "
       "active        0B       0B    0 refused          SYN_SENT 0.1ms > "
       "CLOSE\n"},
      {"listener with accepted count", listener_record(),
       "77/nginx             198.18.0.1:80         0.0.0.0:*             "
       "listen         -        -    0 closed           LISTEN 10s > CLOSE  "
       "(accepted 2)\n"},
      {"already open, IPv6, owner unknown", already_open_record(),
       "-                    [2001:db8::1]:40000   [2001:db8::2]:80      "
       "-         4.9KiB   6.8MiB    0 open/local       (ESTABLISHED) > "
       "FIN_WAIT1 40us > FIN_WAIT2\n"},
  };
  for (const auto &tc : cases) {
    SCOPED_TRACE(tc.description);
    EXPECT_EQ(render(with_format(Format::Table), false, {tc.record}),
              std::string(kTableHeader) + tc.expected);
  }
}

TEST(HistoryTable, SeqRelativeToIsnsAcrossWraparound) {
  EXPECT_EQ(render(with_format(Format::Table), true, {wrapped_record()}, false),
            "1234/curl            198.18.0.1:40000      198.18.0.2:80         "
            "active      512B     256B    0 closed/local     "
            "SYN_SENT 1ms [una 0 nxt 1 rcv ?] > "
            "ESTABLISHED 999ms [una 1 nxt 1 rcv 1] > "
            "FIN_WAIT1 50us [una 513 nxt 514 rcv 257] > "
            "FIN_WAIT2 40us [una 514 nxt 514 rcv 257] > "
            "TIME_WAIT [una 514 nxt 514 rcv 258]\n");
}

TEST(HistoryTable, RawSeq) {
  OutputOptions opts = with_format(Format::Table);
  opts.raw_seq = true;
  const std::string out = render(opts, true, {wrapped_record()}, false);
  EXPECT_NE(out.find("SYN_SENT 1ms [una 4294967040 nxt 4294967041 rcv 0] > "
                     "ESTABLISHED 999ms [una 4294967041 nxt 4294967041 rcv "
                     "4294967281] > FIN_WAIT1 50us [una 257 nxt 258 rcv 241]"),
            std::string::npos)
      << out;
}

TEST(HistoryTable, ColourOnlyWhenAskedAndOnlyTheEnd) {
  OutputOptions opts = with_format(Format::Table);
  EXPECT_EQ(render(opts, false, {refused_record()}).find('\x1b'),
            std::string::npos);
  opts.color = true;
  const std::string refused = render(opts, false, {refused_record()}, false);
  EXPECT_NE(refused.find("    0 \x1b[31mrefused\x1b[0m          SYN_SENT"),
            std::string::npos)
      << refused;
  const std::string closed =
      render(opts, false, {active_close_record()}, false);
  EXPECT_NE(closed.find(" \x1b[32mclosed/local\x1b[0m     SYN_SENT"),
            std::string::npos)
      << closed;
  const std::string open = render(opts, false, {already_open_record()}, false);
  EXPECT_EQ(open.find('\x1b'), std::string::npos) << open;
}

TEST(HistoryTable, CommIsTerminalSafe) {
  ConnectionRecord r = active_close_record();
  r.comm = "ev\x1b[2Jil\n";
  const std::string out = render(with_format(Format::Table), false, {r}, false);
  EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
  EXPECT_EQ(out.find('\n'), out.size() - 1) << out;
  EXPECT_EQ(out.rfind("1234/ev\\x1b[2Jil\\x0a ", 0), 0u) << out;
}

TEST(HistoryTable, WallTimeColumn) {
  OutputOptions opts = with_format(Format::Table);
  opts.wall_time = true;
  opts.wall_offset_ns = 1'700'000'000'000'000'000LL - 1'000'000'000LL;
  const std::string out = render(opts, false, {refused_record()});
  EXPECT_EQ(out.rfind("TIME                           PID/COMM ", 0), 0u)
      << out;
  EXPECT_NE(out.find("\n2023-11-14T22:13:20.000000000Z 1234/curl "),
            std::string::npos)
      << out;
}

TEST(HistoryJson, GoldenLine) {
  EXPECT_EQ(
      render(with_format(Format::Json), false, {active_close_record()}),
      "{\"event\":\"connection\",\"cookie\":4097,\"pid\":1234,\"comm\":"
      "\"curl\",\"af\":4,\"laddr\":\"198.18.0.1\",\"lport\":40000,\"raddr\":"
      "\"198.18.0.2\",\"rport\":80,\"role\":\"active\",\"isn_local\":1000,"
      "\"isn_remote\":5000,\"bytes_acked\":100,\"bytes_received\":300,"
      "\"retransmits\":0,\"end\":\"closed\",\"closed_first\":\"local\","
      "\"path\":["
      "{\"state\":\"SYN_SENT\",\"enter_ns\":1000000000,\"dur_ns\":210000,"
      "\"snd_una\":1000,\"snd_nxt\":1001,\"rcv_nxt\":0},"
      "{\"state\":\"ESTABLISHED\",\"enter_ns\":1000210000,\"dur_ns\":"
      "11900000000,\"snd_una\":1001,\"snd_nxt\":1001,\"rcv_nxt\":5001},"
      "{\"state\":\"FIN_WAIT1\",\"enter_ns\":12900210000,\"dur_ns\":50000,"
      "\"snd_una\":1101,\"snd_nxt\":1102,\"rcv_nxt\":5301},"
      "{\"state\":\"FIN_WAIT2\",\"enter_ns\":12900260000,\"dur_ns\":100000,"
      "\"snd_una\":1102,\"snd_nxt\":1102,\"rcv_nxt\":5301},"
      "{\"state\":\"TIME_WAIT\",\"enter_ns\":12900360000,\"dur_ns\":null,"
      "\"snd_una\":1102,\"snd_nxt\":1102,\"rcv_nxt\":5302}],"
      "\"time\":\"1970-01-01T00:00:01.000000000Z\",\"netns\":4026531840,"
      "\"listener\":false,\"accepted\":null,\"resets_sent\":0,"
      "\"resets_received\":0,\"error\":null,\"prior_state\":null,"
      "\"steps_dropped\":0,\"cgroup_id\":null,\"cgroup\":null,"
      "\"container\":null,\"pod\":null}\n");
}

// The contract's types and nulls, checked by a JSON parser.
TEST(HistoryJson, ParsesWithContractTypes) {
  ConnectionRecord evil = refused_record();
  evil.comm = std::string("a\"b\\c\x01\xff", 7);
  const std::vector<ConnectionRecord> records = {
      active_close_record(), refused_record(), listener_record(),
      already_open_record(), wrapped_record(), evil};
  const std::string out = render(with_format(Format::Json), false, records);
  std::vector<nlohmann::json> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos;
       start = nl + 1)
    lines.push_back(nlohmann::json::parse(out.substr(start, nl - start)));
  ASSERT_EQ(lines.size(), records.size());
  EXPECT_EQ(start, out.size());

  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(i);
    const nlohmann::json &j = lines[i];
    EXPECT_EQ(j.at("event"), "connection");
    for (const char *key : {"cookie", "pid", "af", "lport", "rport",
                            "bytes_acked", "bytes_received", "retransmits"})
      EXPECT_TRUE(j.at(key).is_number_unsigned()) << key;
    for (const char *key : {"comm", "laddr", "raddr", "end"})
      EXPECT_TRUE(j.at(key).is_string()) << key;
    for (const char *key : {"role", "closed_first"})
      EXPECT_TRUE(j.at(key).is_string() || j.at(key).is_null()) << key;
    for (const char *key : {"isn_local", "isn_remote"})
      EXPECT_TRUE(j.at(key).is_number_unsigned() || j.at(key).is_null()) << key;
    const auto &path = j.at("path");
    ASSERT_TRUE(path.is_array());
    ASSERT_FALSE(path.empty());
    for (std::size_t k = 0; k < path.size(); ++k) {
      const auto &step = path[k];
      EXPECT_TRUE(step.at("state").is_string());
      for (const char *key : {"enter_ns", "snd_una", "snd_nxt", "rcv_nxt"})
        EXPECT_TRUE(step.at(key).is_number_unsigned()) << key;
      // Known while a next state follows; the last one is null.
      EXPECT_EQ(step.at("dur_ns").is_null(), k + 1 == path.size());
    }
  }
  EXPECT_EQ(lines[1].at("end"), "refused");
  EXPECT_TRUE(lines[1].at("closed_first").is_null());
  EXPECT_EQ(lines[1].at("isn_local"), 1000);
  EXPECT_TRUE(lines[1].at("isn_remote").is_null());
  EXPECT_EQ(lines[1].at("error"), "ECONNREFUSED");
  EXPECT_EQ(lines[1].at("resets_received"), 1);
  EXPECT_EQ(lines[2].at("listener"), true);
  EXPECT_EQ(lines[2].at("accepted"), 2);
  EXPECT_EQ(lines[2].at("role"), "passive");
  EXPECT_EQ(lines[3].at("af"), 6);
  EXPECT_EQ(lines[3].at("laddr"), "2001:db8::1");
  EXPECT_TRUE(lines[3].at("role").is_null());
  EXPECT_EQ(lines[3].at("end"), "open");
  EXPECT_EQ(lines[3].at("prior_state"), "ESTABLISHED");
  EXPECT_EQ(lines[4].at("path")[4].at("snd_una"), 258); // raw, wrapped
  EXPECT_EQ(lines[5].at("comm").get<std::string>(), "a\"b\\c\x01\xef\xbf\xbd")
      << "invalid UTF-8 becomes U+FFFD, controls \\u0001";
}

TEST(HistoryCsv, GoldenRows) {
  EXPECT_EQ(
      render(with_format(Format::Csv), false,
             {refused_record(), listener_record()}),
      "event,time,cookie,pid,comm,af,laddr,lport,raddr,rport,netns,role,"
      "listener,accepted,isn_local,isn_remote,bytes_acked,bytes_received,"
      "retransmits,resets_sent,resets_received,end,closed_first,error,"
      "prior_state,steps_dropped,path,cgroup_id,cgroup,container\n"
      "connection,1970-01-01T00:00:01.000000000Z,4097,1234,curl,4,"
      "198.18.0.1,40000,198.18.0.2,80,4026531840,active,false,,1000,,0,0,0,0,"
      "1,refused,,ECONNREFUSED,,0,"
      "SYN_SENT:1000000000:100000:1000:1001:0;CLOSE:1000100000::1000:1001:0,,,"
      "\n"
      "connection,1970-01-01T00:00:01.000000000Z,4097,77,nginx,4,198.18.0.1,"
      "80,0.0.0.0,0,4026531840,passive,true,2,,,0,0,0,0,0,closed,,,,0,"
      "LISTEN:1000000000:10000000000:0:0:0;CLOSE:11000000000::0:0:0,,,\n");
}

TEST(HistoryCsv, CommIsOneField) {
  ConnectionRecord r = refused_record();
  r.comm = "a,b\"c";
  const std::string out = render(with_format(Format::Csv), false, {r}, false);
  EXPECT_NE(out.find(",1234,\"a,b\"\"c\",4,"), std::string::npos) << out;
}

TEST(HistoryUnits, HumanBytesAndDurations) {
  struct {
    std::uint64_t value;
    const char *bytes;
    const char *duration;
  } cases[] = {
      {0, "0B", "0ns"},
      {999, "999B", "999ns"},
      {1023, "1023B", "1.02us"},
      {1024, "1.0KiB", "1.02us"},
      {1280, "1.2KiB", "1.28us"},
      {50'000, "48.8KiB", "50us"},
      {100'000, "97.7KiB", "0.1ms"},
      {210'000, "205.1KiB", "0.21ms"},
      {12'500'000, "11.9MiB", "12.5ms"},
      {11'900'000'000, "11.1GiB", "11.9s"},
      {3'600'000'000'000, "3.3TiB", "3600s"},
  };
  for (const auto &tc : cases) {
    SCOPED_TRACE(tc.value);
    Buffer b, d;
    append_human_bytes(b, tc.value);
    append_human_duration(d, tc.value);
    EXPECT_EQ(fmt::to_string(b), tc.bytes);
    EXPECT_EQ(fmt::to_string(d), tc.duration);
  }
}

} // namespace
} // namespace tcptrail::history_test
