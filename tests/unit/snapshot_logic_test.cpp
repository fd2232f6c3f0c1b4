// tcptrail snapshot's pure logic: iterator stream validation, the owner
// join, age bounds and the three output formats (golden text).
#include <cstring>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "snapshot/enumerate.h"
#include "snapshot/records.h"
#include "snapshot/snapshot.h"

namespace tcptrail {
namespace {

constexpr std::uint64_t kSec = 1'000'000'000ULL;

tt_iter_sock sock(std::uint64_t cookie, std::uint8_t state, std::uint8_t last,
                  std::uint16_t lport, std::uint8_t rlast, std::uint16_t rport) {
  tt_iter_sock s{};
  s.hdr.kind = TT_KIND_ITER_SOCK;
  s.hdr.size = sizeof(s);
  s.hdr.ts_ns = 1000 * kSec;
  s.hdr.cookie = cookie;
  const std::uint8_t l[4] = {198, 18, 0, last}, r[4] = {198, 18, 0, rlast};
  std::memcpy(s.laddr, l, 4);
  std::memcpy(s.raddr, r, 4);
  s.lport = lport;
  s.rport = rport;
  s.af = 4;
  s.state = state;
  s.sk_kind = TT_SK_FULL;
  s.netns = 4026532000;
  s.snd_una = 100;
  s.snd_nxt = 110;
  s.rcv_nxt = 200;
  s.ino = cookie + 5000;
  return s;
}

tt_iter_file file(std::uint64_t cookie, std::uint32_t pid, std::uint32_t fd,
                  const char *comm) {
  tt_iter_file f{};
  f.hdr.kind = TT_KIND_ITER_FILE;
  f.hdr.size = sizeof(f);
  f.hdr.cookie = cookie;
  f.pid = pid;
  f.fd = fd;
  f.ino = cookie + 5000;
  f.netns = 4026532000;
  std::strncpy(f.comm, comm, TT_COMM_LEN - 1);
  return f;
}

std::string bytes_of(const void *p, std::size_t n) {
  return std::string(static_cast<const char *>(p), n);
}

TEST(SnapshotRecords, DecodesMixedStream) {
  const tt_iter_sock s = sock(1, 8, 1, 80, 2, 40000);
  const tt_iter_file f = file(1, 42, 3, "srv");
  IterRecords out;
  decode_iter_stream(bytes_of(&s, sizeof(s)) + bytes_of(&f, sizeof(f)) +
                         bytes_of(&s, sizeof(s)),
                     out);
  EXPECT_EQ(out.sockets.size(), 2u);
  EXPECT_EQ(out.files.size(), 1u);
  EXPECT_EQ(out.invalid, 0u);
}

TEST(SnapshotRecords, RefusesBadSizeKindAndTruncation) {
  tt_iter_sock s = sock(1, 8, 1, 80, 2, 40000);
  IterRecords a;
  decode_iter_stream(bytes_of(&s, sizeof(s) - 1), a); // truncated
  EXPECT_EQ(a.sockets.size(), 0u);
  EXPECT_EQ(a.invalid, 1u);
  s.hdr.size = sizeof(s) + 8; // lies about its size
  IterRecords b;
  decode_iter_stream(bytes_of(&s, sizeof(s)) + std::string(8, '\0'), b);
  EXPECT_EQ(b.invalid, 1u);
  s.hdr.size = sizeof(s);
  s.hdr.kind = TT_KIND_STATE; // a ring record has no business here
  IterRecords c;
  decode_iter_stream(bytes_of(&s, sizeof(s)), c);
  EXPECT_EQ(c.invalid, 1u);
  IterRecords d;
  decode_iter_stream(std::string(5, '\0'), d); // shorter than a header
  EXPECT_EQ(d.invalid, 1u);
}

TEST(SnapshotJoin, ByCookieAndByInodeSortedAndDeduplicated) {
  tt_iter_sock a = sock(7, 8, 1, 80, 2, 40001);
  tt_iter_sock b = sock(3, 10, 1, 80, 0, 0);
  tt_iter_sock c = sock(9, 1, 1, 80, 2, 40000);
  tt_iter_file fa = file(7, 42, 5, "srv");
  tt_iter_file fb = file(3, 42, 3, "srv");
  tt_iter_file fb2 = file(3, 40, 3, "parent"); // shared after fork
  tt_iter_file fc = file(12345, 42, 6, "srv"); // cookie differs, inode joins
  fc.ino = c.ino;
  const auto rows = join_owners({a, b, c, a}, {fa, fb, fb2, fc});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].sock.hdr.cookie, 3u); // same laddr: raddr 0 sorts first
  ASSERT_EQ(rows[0].owners.size(), 2u);
  EXPECT_EQ(rows[0].owners[0].pid, 40u);
  EXPECT_EQ(rows[1].sock.hdr.cookie, 9u);
  ASSERT_EQ(rows[1].owners.size(), 1u);
  EXPECT_EQ(rows[1].owners[0].fd, 6u);
  EXPECT_EQ(rows[2].sock.hdr.cookie, 7u);
}

TEST(SnapshotFilter, AnyOwnerMatchesPidAndComm) {
  const auto rows = join_owners({sock(3, 10, 1, 80, 0, 0)},
                                {file(3, 42, 3, "srv"), file(3, 40, 3, "p")});
  FilterSpec f;
  f.pids = {40};
  EXPECT_TRUE(row_matches(f, rows[0]));
  f.pids = {41};
  EXPECT_FALSE(row_matches(f, rows[0]));
  FilterSpec g;
  g.comm = "srv";
  EXPECT_TRUE(row_matches(g, rows[0]));
  FilterSpec h;
  h.state_mask = 1U << 8; // CLOSE_WAIT; the row is LISTEN
  EXPECT_FALSE(row_matches(h, rows[0]));
  FilterSpec p;
  p.lports = {80};
  EXPECT_TRUE(row_matches(p, rows[0]));
}

TEST(SnapshotAge, ExactFromStorage) {
  tt_iter_sock s = sock(1, 8, 1, 80, 2, 40000);
  s.flags = TT_IF_STATE_TS | TT_IF_ACTIVITY;
  s.state_ts = 990 * kSec;
  const SocketAge a = socket_age(s);
  EXPECT_TRUE(a.exact);
  EXPECT_TRUE(a.known);
  EXPECT_EQ(a.ns, 10 * kSec);
}

TEST(SnapshotAge, LowerBoundIsTheSmallerWitness) {
  tt_iter_sock s = sock(1, 8, 1, 80, 2, 40000);
  s.flags = TT_IF_ACTIVITY;
  s.hz = 250;
  s.jiffies = 0x1'0000'0010ULL; // u32 wrap: rcv_tstamp is "before" 0
  s.rcv_tstamp = 0xffff'fff0u;   // 32 jiffies ago -> 31 * 4 ms
  s.mstamp_ns = 999 * kSec;      // 1 s ago -> 999 ms
  SocketAge a = socket_age(s);
  EXPECT_FALSE(a.exact);
  EXPECT_TRUE(a.known);
  EXPECT_EQ(a.ns, 31 * 4'000'000ULL);
  s.rcv_tstamp = static_cast<std::uint32_t>(s.jiffies) - 2500; // 10 s ago
  EXPECT_EQ(socket_age(s).ns, 999'000'000ULL); // tcp_mstamp - 1 ms wins
  s.hz = 0; // HZ unknown: tcp_mstamp alone
  EXPECT_EQ(socket_age(s).ns, 999'000'000ULL);
}

TEST(SnapshotAge, UnprovenStatesHaveNoBound) {
  tt_iter_sock s = sock(1, 10, 1, 80, 0, 0); // LISTEN
  s.flags = TT_IF_ACTIVITY;
  s.mstamp_ns = 1;
  EXPECT_FALSE(socket_age(s).known);
  EXPECT_EQ(socket_age(s).ns, 0u);
  s.state = 8;
  s.flags = 0; // timewait/request: no activity stamps
  EXPECT_FALSE(socket_age(s).known);
}

TEST(SnapshotAge, Format) {
  EXPECT_EQ(format_age(0), "0s");
  EXPECT_EQ(format_age(59 * kSec + 999), "59s");
  EXPECT_EQ(format_age(187 * kSec), "3m07s");
  EXPECT_EQ(format_age((2 * 3600 + 13 * 60 + 59) * kSec), "2h13m");
}

TEST(SnapshotFormat, TableGolden) {
  tt_iter_sock l = sock(3, 10, 1, 80, 0, 0);
  std::memset(l.raddr, 0, 4);
  l.rx_queue = 0;
  l.tx_queue = 128;
  l.snd_una = l.snd_nxt = l.rcv_nxt = 0;
  tt_iter_sock c = sock(7, 8, 1, 80, 2, 40001);
  c.rx_queue = 1;
  const auto rows = join_owners(
      {l, c}, {file(3, 42, 3, "srv"), file(7, 42, 5, "ev\x1b[2Jl")});
  Buffer out;
  format_snapshot_table(out, rows);
  EXPECT_EQ(fmt::to_string(out),
            "STATE      RECV-Q SEND-Q LOCAL         PEER                  NETNS"
            "    SND_UNA    SND_NXT    RCV_NXT PROCESS\n"
            "LISTEN          0    128 198.18.0.1:80 0.0.0.0:0        4026532000"
            "          0          0          0 42/srv/3\n"
            "CLOSE_WAIT      1      0 198.18.0.1:80 198.18.0.2:40001 4026532000"
            "        100        110        200 42/ev\\x1b[2Jl/5\n");
}

TEST(SnapshotFormat, JsonAndCsv) {
  tt_iter_sock c = sock(7, 8, 1, 80, 2, 40001);
  tt_iter_sock o = sock(8, 5, 1, 80, 2, 40002); // orphan, storage owner
  o.flags = TT_IF_OWNER;
  o.pid = 77;
  std::strcpy(o.comm, "old\"one");
  o.cgroup_id = 11;  // the storage owner's
  c.cgroup_id = 999; // the socket's: the fd holder's wins
  tt_iter_file f = file(7, 42, 5, "srv");
  f.cgroup_id = 10;
  const auto rows = join_owners({c, o}, {f});
  StaticCgroupNames names;
  names.add(10,
            "/system.slice/docker-"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ".scope");
  names.add(11, "/system.slice/ssh.service");
  Buffer js;
  format_snapshot_json(js, rows, &names);
  const std::string text = fmt::to_string(js);
  const auto nl = text.find('\n');
  const auto j0 = nlohmann::json::parse(text.substr(0, nl));
  const auto j1 = nlohmann::json::parse(text.substr(nl + 1));
  EXPECT_EQ(j0["event"], "socket");
  EXPECT_EQ(j0["state"], "CLOSE_WAIT");
  EXPECT_EQ(j0["cookie"], 7);
  EXPECT_EQ(j0["laddr"], "198.18.0.1");
  EXPECT_EQ(j0["rport"], 40001);
  EXPECT_EQ(j0["pid"], 42);
  EXPECT_EQ(j0["fd"], 5);
  EXPECT_EQ(j0["snd_nxt"], 110);
  EXPECT_EQ(j0["owners"].size(), 1u);
  EXPECT_EQ(j1["state"], "FIN_WAIT2");
  EXPECT_EQ(j1["pid"], 77);
  EXPECT_EQ(j1["comm"], "old\"one");
  EXPECT_TRUE(j1["fd"].is_null());
  EXPECT_EQ(j0["cgroup_id"], 10);
  EXPECT_EQ(j0["container"],
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_EQ(j1["cgroup_id"], 11);
  EXPECT_EQ(j1["cgroup"], "/system.slice/ssh.service");
  EXPECT_TRUE(j1["container"].is_null());
  EXPECT_TRUE(j1["pod"].is_null());
  Buffer csv;
  format_snapshot_csv(csv, rows, &names);
  EXPECT_EQ(fmt::to_string(csv),
            "state,cookie,af,laddr,lport,raddr,rport,netns,inode,rx_queue,"
            "tx_queue,snd_una,snd_nxt,rcv_nxt,pid,comm,fd,cgroup_id,cgroup,"
            "container\n"
            "CLOSE_WAIT,7,4,198.18.0.1,80,198.18.0.2,40001,4026532000,5007,0,"
            "0,100,110,200,42,srv,5,10,/system.slice/docker-"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ".scope,"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
            "FIN_WAIT2,8,4,198.18.0.1,80,198.18.0.2,40002,4026532000,5008,0,"
            "0,100,110,200,0,,,11,/system.slice/ssh.service,\n");
}

} // namespace
} // namespace tcptrail

// The enumeration fallback (sock_diag, snapshot/enumerate.h) gives the same
// records the iterators give, minus what sock_diag does not know.
namespace {

TEST(EnumerateFallback, SockDiagRecordsLookLikeTheIterators) {
  tcptrail::diagnose::DiagSock d;
  d.af = 4;
  d.state = 10; // LISTEN
  d.laddr[0] = 198;
  d.laddr[1] = 18;
  d.lport = 8080;
  d.rqueue = 3;
  d.wqueue = 128;
  d.uid = 1000;
  d.inode = 4242;
  d.cookie = 77;
  const tt_iter_sock s = tcptrail::iter_sock_from_diag(d, 4026531840U);
  EXPECT_EQ(s.hdr.kind, TT_KIND_ITER_SOCK);
  EXPECT_EQ(s.hdr.size, sizeof(tt_iter_sock));
  EXPECT_EQ(s.hdr.cookie, 77u);
  EXPECT_EQ(s.sk_kind, TT_SK_FULL);
  EXPECT_EQ(s.state, 10);
  EXPECT_EQ(s.lport, 8080);
  EXPECT_EQ(s.laddr[1], 18);
  EXPECT_EQ(s.netns, 4026531840U);
  EXPECT_EQ(s.ino, 4242u);
  EXPECT_EQ(s.rx_queue, 3u);
  EXPECT_EQ(s.tx_queue, 128u);
  EXPECT_EQ(s.uid, 1000u);
  EXPECT_EQ(s.flags, 0); // no owner, state time or activity stamps
  EXPECT_EQ(s.snd_una, 0u);

  d.state = 6; // a timewait socket
  EXPECT_EQ(tcptrail::iter_sock_from_diag(d, 1).sk_kind, TT_SK_TIMEWAIT);
  d.state = 3; // sock_diag's name for a request socket
  const tt_iter_sock req = tcptrail::iter_sock_from_diag(d, 1);
  EXPECT_EQ(req.sk_kind, TT_SK_REQUEST);
  EXPECT_EQ(req.state, 12); // NEW_SYN_RECV, as iter/tcp says
}

// diagnose's snapshots read the iterators' records as sock_diag's.
TEST(EnumerateFallback, IteratorRecordsReadAsSockDiagDoes) {
  tcptrail::diagnose::DiagSock d;
  d.af = 6;
  d.state = 8; // CLOSE_WAIT
  d.laddr[0] = 0x20;
  d.raddr[15] = 2;
  d.lport = 443;
  d.rport = 50000;
  d.rqueue = 5;
  d.wqueue = 7;
  d.uid = 33;
  d.inode = 9001;
  d.cookie = 0x1234567890ULL;
  auto same = [](const tcptrail::diagnose::DiagSock &a,
                 const tcptrail::diagnose::DiagSock &b) {
    return a.af == b.af && a.state == b.state && a.lport == b.lport &&
           a.rport == b.rport && a.rqueue == b.rqueue && a.wqueue == b.wqueue &&
           a.uid == b.uid && a.inode == b.inode && a.cookie == b.cookie &&
           std::memcmp(a.laddr, b.laddr, TT_ADDR_LEN) == 0 &&
           std::memcmp(a.raddr, b.raddr, TT_ADDR_LEN) == 0;
  };
  for (std::uint8_t state : {8, 10, 6, 5, 3}) {
    d.state = state;
    const auto back =
        tcptrail::diag_from_iter_sock(tcptrail::iter_sock_from_diag(d, 1));
    EXPECT_TRUE(same(back, d)) << int(state);
  }
  // A request socket as iter/tcp gives it: sock_diag's SYN_RECV.
  tt_iter_sock req{};
  req.sk_kind = TT_SK_REQUEST;
  req.state = 12;
  EXPECT_EQ(tcptrail::diag_from_iter_sock(req).state, 3);
}

} // namespace
