// tcptrail leaks' pure logic: enumeration and live events feeding the
// tracker, ageing, grouping worst first, and the report formats (golden
// table, JSON contract of issue 4 parsed with nlohmann::json).
#include <cstring>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "snapshot/leaks.h"
#include "tcp_state.h"

namespace tcptrail {
namespace {

constexpr std::uint64_t kSec = 1'000'000'000ULL;
constexpr std::uint8_t kCloseWait = 8, kEstablished = 1, kLastAck = 9,
                       kFinWait2 = 5, kListen = 10;
constexpr std::uint32_t kNetns = 4026532000;

tt_iter_sock isock(std::uint64_t cookie, std::uint8_t state,
                   std::uint16_t lport, std::uint8_t rlast,
                   std::uint16_t rport) {
  tt_iter_sock s{};
  s.hdr.kind = TT_KIND_ITER_SOCK;
  s.hdr.size = sizeof(s);
  s.hdr.ts_ns = 10'000 * kSec;
  s.hdr.cookie = cookie;
  const std::uint8_t l[4] = {198, 18, 0, 1}, r[4] = {198, 18, 0, rlast};
  std::memcpy(s.laddr, l, 4);
  std::memcpy(s.raddr, r, 4);
  s.lport = lport;
  s.rport = rport;
  s.af = 4;
  s.state = state;
  s.sk_kind = TT_SK_FULL;
  s.netns = kNetns;
  s.flags = TT_IF_ACTIVITY;
  s.mstamp_ns = s.hdr.ts_ns; // no age unless a test sets one
  return s;
}

tt_iter_file ifile(std::uint64_t cookie, std::uint32_t pid, std::uint32_t fd,
                   const char *comm) {
  tt_iter_file f{};
  f.hdr.kind = TT_KIND_ITER_FILE;
  f.hdr.size = sizeof(f);
  f.hdr.cookie = cookie;
  f.pid = pid;
  f.fd = fd;
  f.netns = kNetns;
  std::strncpy(f.comm, comm, TT_COMM_LEN - 1);
  return f;
}

tt_state_event state_ev(std::uint64_t cookie, std::uint64_t ts,
                        std::uint8_t old_state, std::uint8_t new_state,
                        std::uint32_t pid, const char *comm,
                        std::uint16_t rport = 50000) {
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = ts;
  ev.hdr.cookie = cookie;
  const std::uint8_t l[4] = {198, 18, 0, 1}, r[4] = {198, 18, 0, 2};
  std::memcpy(ev.sk.laddr, l, 4);
  std::memcpy(ev.sk.raddr, r, 4);
  ev.sk.af = 4;
  ev.sk.lport = 8080;
  ev.sk.rport = rport;
  ev.sk.netns = kNetns;
  ev.old_state = old_state;
  ev.new_state = new_state;
  ev.flags = TT_F_PASSIVE;
  if (pid) {
    ev.sk.pid = pid;
    std::strncpy(ev.sk.comm, comm, TT_COMM_LEN - 1);
    ev.flags |= TT_F_OWNER;
  }
  return ev;
}

constexpr std::uint32_t kWatchCloseWait = 1U << kCloseWait;

TEST(LeaksTracker, EnumerationMarksPreexistingWithLowerBound) {
  LeakTracker t(kWatchCloseWait);
  tt_iter_sock a = isock(1, kCloseWait, 5432, 5, 40000);
  a.mstamp_ns = a.hdr.ts_ns - 3600 * kSec; // last activity 1 h ago
  tt_iter_sock b = isock(2, kCloseWait, 5432, 5, 40001);
  b.flags |= TT_IF_STATE_TS; // the tracer saw it enter (after attach)
  b.state_ts = b.hdr.ts_ns - 2 * kSec;
  tt_iter_sock c = isock(3, kEstablished, 5432, 5, 40002);
  t.enumerate(join_owners({a, b, c}, {ifile(1, 42, 7, "java")}));
  ASSERT_EQ(t.tracked().size(), 2u);
  const StuckSocket &sa = t.tracked().at(1);
  EXPECT_TRUE(sa.preexisting);
  EXPECT_FALSE(sa.exact);
  EXPECT_EQ(sa.since_ns, a.hdr.ts_ns - 3600 * kSec + 1'000'000);
  EXPECT_EQ(sa.pid, 42u);
  EXPECT_EQ(sa.fd, 7);
  const StuckSocket &sb = t.tracked().at(2);
  EXPECT_FALSE(sb.preexisting);
  EXPECT_TRUE(sb.exact);
  EXPECT_EQ(sb.since_ns, b.hdr.ts_ns - 2 * kSec);
  EXPECT_EQ(sb.pid, 0u);
}

TEST(LeaksTracker, LiveEntryIsExactAndLeavingDropsAtOnce) {
  LeakTracker t(kWatchCloseWait);
  t.on_state(state_ev(5, 100 * kSec, kEstablished, kCloseWait, 42, "java"));
  ASSERT_EQ(t.tracked().count(5), 1u);
  EXPECT_TRUE(t.tracked().at(5).exact);
  EXPECT_FALSE(t.tracked().at(5).preexisting);
  EXPECT_EQ(t.tracked().at(5).since_ns, 100 * kSec);
  EXPECT_EQ(build_report(t, 200 * kSec, 30 * kSec).total, 1u);
  t.on_state(state_ev(5, 150 * kSec, kCloseWait, kLastAck, 42, "java"));
  EXPECT_EQ(t.tracked().count(5), 0u);
  EXPECT_EQ(build_report(t, 200 * kSec, 0).total, 0u);
}

TEST(LeaksTracker, QueuedEventsOlderThanEnumeration) {
  LeakTracker t(kWatchCloseWait);
  tt_iter_sock a = isock(1, kCloseWait, 8080, 2, 50000);
  a.mstamp_ns = a.hdr.ts_ns - 5 * kSec;
  t.enumerate(join_owners({a}, {}));
  // Its entry, drained after the enumeration: the exact time wins.
  t.on_state(state_ev(1, a.hdr.ts_ns - 7 * kSec, kEstablished, kCloseWait, 0,
                      ""));
  EXPECT_TRUE(t.tracked().at(1).exact);
  EXPECT_FALSE(t.tracked().at(1).preexisting);
  EXPECT_EQ(t.tracked().at(1).since_ns, a.hdr.ts_ns - 7 * kSec);
  // A stale leave event cannot drop what the enumeration saw later.
  t.on_state(state_ev(1, a.hdr.ts_ns - 8 * kSec, kCloseWait, kLastAck, 0, ""));
  EXPECT_EQ(t.tracked().count(1), 1u);
  // A leave after the enumeration does.
  t.on_state(state_ev(1, a.hdr.ts_ns + 1, kCloseWait, kLastAck, 0, ""));
  EXPECT_EQ(t.tracked().count(1), 0u);
}

TEST(LeaksTracker, OtherStatesWhenSelected) {
  LeakTracker t((1U << kFinWait2) | (1U << kLastAck));
  t.on_state(state_ev(1, 1 * kSec, kEstablished, kCloseWait, 1, "a"));
  EXPECT_TRUE(t.tracked().empty());
  t.on_state(state_ev(1, 2 * kSec, kCloseWait, kLastAck, 1, "a"));
  ASSERT_EQ(t.tracked().count(1), 1u);
  EXPECT_EQ(t.tracked().at(1).state, kLastAck);
  t.on_state(state_ev(2, 3 * kSec, 4, kFinWait2, 1, "a"));
  EXPECT_EQ(t.tracked().size(), 2u);
}

TEST(LeaksTracker, RefreshOwnersTakesLowestPidFd) {
  LeakTracker t(kWatchCloseWait);
  t.on_state(state_ev(1, 1 * kSec, kEstablished, kCloseWait, 0, ""));
  t.refresh_owners({ifile(1, 50, 9, "child"), ifile(1, 42, 7, "java"),
                    ifile(2, 1, 1, "x")});
  EXPECT_EQ(t.tracked().at(1).pid, 42u);
  EXPECT_EQ(t.tracked().at(1).fd, 7);
  EXPECT_STREQ(t.tracked().at(1).comm, "java");
}

// Java holds 3 (one pre-existing), nginx 1 older one: java first (count).
LeakTracker sample() {
  LeakTracker t(kWatchCloseWait | (1U << kFinWait2));
  tt_iter_sock l = isock(9, kListen, 8080, 0, 0);
  tt_iter_sock pre = isock(10, kCloseWait, 8080, 5, 41000);
  pre.mstamp_ns = pre.hdr.ts_ns - (2 * 3600 + 13 * 60) * kSec - 5 * kSec;
  tt_iter_sock cl = isock(11, kCloseWait, 43210, 9, 5432); // a client
  cl.mstamp_ns = cl.hdr.ts_ns - 7200 * kSec;
  t.enumerate(join_owners({l, pre, cl},
                          {ifile(9, 42, 3, "java"), ifile(10, 42, 7, "java"),
                           ifile(11, 7, 4, "ng\"inx")}));
  t.on_state(state_ev(20, 10'000 * kSec - 90 * kSec, kEstablished, kCloseWait,
                      42, "java", 50001));
  t.on_state(state_ev(21, 10'000 * kSec - 31 * kSec, kEstablished, kCloseWait,
                      42, "java", 50002));
  t.on_state(state_ev(22, 10'000 * kSec - 5 * kSec, kEstablished, kCloseWait,
                      42, "java", 50003)); // younger than min-age
  return t;
}

TEST(LeaksReport, GroupsWorstFirst) {
  const LeakTracker t = sample();
  const LeakReport r = build_report(t, 10'000 * kSec, 30 * kSec);
  EXPECT_EQ(r.total, 4u);
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[0].pid, 42u);
  EXPECT_EQ(r.groups[0].sockets.size(), 3u);
  EXPECT_EQ(r.groups[0].sockets[0].first.cookie, 10u); // oldest first
  ASSERT_EQ(r.groups[0].peers.size(), 2u);
  EXPECT_EQ(r.groups[0].peers[0].endpoint, "198.18.0.2"); // passive: address
  EXPECT_EQ(r.groups[0].peers[0].count, 2u);
  EXPECT_EQ(r.groups[1].pid, 7u);
  EXPECT_EQ(r.groups[1].peers[0].endpoint, "198.18.0.9:5432");
}

TEST(LeaksReport, TableGolden) {
  LeakReport r = build_report(sample(), 10'000 * kSec, 30 * kSec);
  r.seq = 1;
  r.wall_ns = 1'700'000'000 * static_cast<std::int64_t>(kSec);
  r.state_mask = kWatchCloseWait;
  r.min_age_ns = 30 * kSec;
  Buffer out;
  format_leaks_table(out, r);
  EXPECT_EQ(
      fmt::to_string(out),
      "tcptrail leaks: 2023-11-14T22:13:20.000000000Z 4 sockets stuck in "
      "CLOSE_WAIT for >= 30s\n"
      "pid 42 (java) holds 3 sockets in CLOSE_WAIT, oldest >=2h13m, peers "
      "198.18.0.2 (2), 198.18.0.5 (1)\n"
      "  >=2h13m   fd 7     198.18.0.1:8080 -> 198.18.0.5:41000  cookie 10 "
      "netns 4026532000 (pre-existing)\n"
      "  1m30s     fd -     198.18.0.1:8080 -> 198.18.0.2:50001  cookie 20 "
      "netns 4026532000\n"
      "  31s       fd -     198.18.0.1:8080 -> 198.18.0.2:50002  cookie 21 "
      "netns 4026532000\n"
      "pid 7 (ng\"inx) holds 1 socket in CLOSE_WAIT, oldest >=1h59m, peers "
      "198.18.0.9:5432 (1)\n"
      "  >=1h59m   fd 4     198.18.0.1:43210 -> 198.18.0.9:5432  cookie 11 "
      "netns 4026532000 (pre-existing)\n");
}

TEST(LeaksReport, EmptyTable) {
  LeakTracker t(kWatchCloseWait);
  LeakReport r = build_report(t, 10 * kSec, 30 * kSec);
  r.wall_ns = 0;
  r.state_mask = kWatchCloseWait | (1U << kFinWait2);
  Buffer out;
  format_leaks_table(out, r);
  EXPECT_EQ(fmt::to_string(out),
            "tcptrail leaks: 1970-01-01T00:00:00.000000000Z no sockets stuck "
            "in FIN_WAIT2,CLOSE_WAIT for >= 30s\n");
}

TEST(LeaksReport, JsonContract) {
  LeakReport r = build_report(sample(), 10'000 * kSec, 30 * kSec);
  r.seq = 2;
  Buffer out;
  format_leaks_json(out, r);
  std::istringstream in(fmt::to_string(out));
  std::string line;
  std::vector<nlohmann::json> objs;
  while (std::getline(in, line))
    objs.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(objs.size(), 4u); // one per stuck socket
  for (const auto &j : objs) {
    EXPECT_EQ(j["event"], "stuck");
    for (const char *k : {"state", "comm", "laddr", "raddr"})
      EXPECT_TRUE(j[k].is_string()) << k;
    for (const char *k : {"cookie", "pid", "af", "lport", "rport", "age_ns"})
      EXPECT_TRUE(j[k].is_number_unsigned()) << k;
    EXPECT_TRUE(j["preexisting"].is_boolean());
    EXPECT_EQ(j["report"], 2);
  }
  EXPECT_EQ(objs[0]["cookie"], 10);
  EXPECT_EQ(objs[0]["state"], "CLOSE_WAIT");
  EXPECT_EQ(objs[0]["pid"], 42);
  EXPECT_EQ(objs[0]["comm"], "java");
  EXPECT_EQ(objs[0]["af"], 4);
  EXPECT_EQ(objs[0]["laddr"], "198.18.0.1");
  EXPECT_EQ(objs[0]["lport"], 8080);
  EXPECT_EQ(objs[0]["raddr"], "198.18.0.5");
  EXPECT_EQ(objs[0]["rport"], 41000);
  EXPECT_EQ(objs[0]["age_ns"], ((2 * 3600 + 13 * 60) + 5) * kSec - 1'000'000);
  EXPECT_EQ(objs[0]["preexisting"], true);
  EXPECT_EQ(objs[1]["cookie"], 20);
  EXPECT_EQ(objs[1]["age_ns"], 90 * kSec);
  EXPECT_EQ(objs[1]["preexisting"], false);
  EXPECT_TRUE(objs[1]["fd"].is_null());
  EXPECT_EQ(objs[3]["comm"], "ng\"inx");
}

TEST(LeaksReport, UserFilter) {
  const LeakReport r = build_report(
      sample(), 10'000 * kSec, 0,
      [](const StuckSocket &s) { return s.pid == 7; });
  EXPECT_EQ(r.total, 1u);
}

TEST(LeaksReport, CsvRows) {
  LeakTracker t(kWatchCloseWait);
  t.on_state(state_ev(5, 1 * kSec, kEstablished, kCloseWait, 42, "a,b"));
  LeakReport r = build_report(t, 2 * kSec, 0);
  r.seq = 1;
  Buffer out;
  format_leaks_csv_header(out);
  format_leaks_csv(out, r);
  EXPECT_EQ(fmt::to_string(out),
            "report,state,cookie,pid,comm,fd,af,laddr,lport,raddr,rport,"
            "age_ns,preexisting,age_exact,netns,cgroup_id,cgroup,container\n"
            "1,CLOSE_WAIT,5,42,\"a,b\",,4,198.18.0.1,8080,198.18.0.2,50000,"
            "1000000000,0,1,4026532000,,,\n");
}

TEST(LeaksReport, CgroupOfTheOwner) {
  LeakTracker t(kWatchCloseWait);
  tt_state_event ev =
      state_ev(5, 1 * kSec, kEstablished, kCloseWait, 42, "java");
  ev.sk.cgroup_id = 4242;
  t.on_state(ev);
  // A later fd holder (iter/task_file) names its own cgroup.
  tt_iter_file f{};
  f.hdr.cookie = 5;
  f.pid = 43;
  f.fd = 7;
  f.cgroup_id = 4343;
  LeakReport r = build_report(t, 2 * kSec, 0);
  ASSERT_EQ(r.total, 1u);
  EXPECT_EQ(r.groups[0].sockets[0].first.cgroup_id, 4242u);
  t.refresh_owners({f});
  r = build_report(t, 2 * kSec, 0);
  EXPECT_EQ(r.groups[0].sockets[0].first.cgroup_id, 4343u);
  StaticCgroupNames names;
  names.add(4343, "/system.slice/docker-"
                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
                  "cdef.scope");
  Buffer out;
  format_leaks_json(out, r, &names);
  const auto j = nlohmann::json::parse(fmt::to_string(out));
  EXPECT_EQ(j["cgroup_id"], 4343);
  EXPECT_EQ(j["container"],
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  out.clear();
  format_leaks_csv(out, r, &names);
  EXPECT_NE(fmt::to_string(out).find(
                ",4343,/system.slice/docker-0123456789abcdef0123456789abcdef"
                "0123456789abcdef0123456789abcdef.scope,"
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc"
                "def\n"),
            std::string::npos)
      << fmt::to_string(out);
}

} // namespace
} // namespace tcptrail
