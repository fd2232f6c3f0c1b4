// tcptrail serve's pure logic: the exposition built from synthetic kernel
// counters and sockets (serialized by prometheus-cpp, as a scrape is),
// bounded labels and the series cap, /proc/net/netstat, --listen.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include "serve/listen.h"
#include "serve/metrics.h"
#include "tcp_state.h"

namespace tcptrail {
namespace {

constexpr std::uint64_t kSec = 1'000'000'000ULL;

unsigned st(TcpState s) { return static_cast<unsigned>(s); }

SocketRow row(std::uint64_t cookie, TcpState state, std::uint16_t lport,
              const char *comm, std::uint64_t age_ns = 0) {
  SocketRow r;
  tt_iter_sock &s = r.sock;
  s.hdr.kind = TT_KIND_ITER_SOCK;
  s.hdr.size = sizeof(s);
  s.hdr.ts_ns = 1000 * kSec;
  s.hdr.cookie = cookie;
  s.af = 4;
  s.lport = lport;
  s.rport = 40000;
  s.state = static_cast<std::uint8_t>(state);
  s.sk_kind = TT_SK_FULL;
  s.netns = 4026532000;
  if (age_ns) {
    s.flags |= TT_IF_STATE_TS;
    s.state_ts = s.hdr.ts_ns - age_ns;
  }
  if (comm) {
    SocketOwner o;
    o.pid = 1234;
    o.fd = 5;
    std::strncpy(o.comm, comm, sizeof(o.comm) - 1);
    r.owners.push_back(o);
  }
  return r;
}

std::string expose(const ServeSample &s, std::size_t max_series,
                   std::uint64_t &folded) {
  prometheus::TextSerializer ser;
  std::ostringstream out;
  ser.Serialize(out, build_families(s, SeriesLimits{max_series}, folded));
  return out.str();
}

bool has_line(const std::string &text, const std::string &line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST(ServeMetrics, KernelCountersBecomeCountersAndHistograms) {
  ServeSample s;
  s.kernel.transitions[st(TcpState::Close)][st(TcpState::SynSent)] = 7;
  s.kernel.transitions[st(TcpState::Listen)][st(TcpState::SynRecv)] = 4;
  s.kernel.transitions[st(TcpState::SynSent)][st(TcpState::Close)] = 3;
  s.kernel.ends[TT_ROLE_ACTIVE][TT_END_REFUSED] = 3;
  s.kernel.ends[TT_ROLE_PASSIVE][TT_END_RESET_RECEIVED] = 2;
  s.kernel.segs[TT_SEG_RST_SENT] = 5;
  s.kernel.segs[TT_SEG_RST_RECEIVED] = 3;
  s.kernel.segs[TT_SEG_RETRANS_SYNACK] = 1;
  // Two handshakes: ~1.5 us (bucket 10: [1024, 2048) ns) and ~1 ms (bucket
  // 19: [524288, 1048576) ns).
  s.kernel.hist[TT_HIST_HANDSHAKE_ACTIVE][10] = 1;
  s.kernel.hist[TT_HIST_HANDSHAKE_ACTIVE][19] = 1;
  s.kernel.hist_sum_ns[TT_HIST_HANDSHAKE_ACTIVE] = 1'001'500;
  // An observation under the first exposed bucket and one over the last.
  s.kernel.hist[TT_HIST_LIFETIME][3] = 1;
  s.kernel.hist[TT_HIST_LIFETIME][50] = 1;
  s.events_lost = 9;
  std::uint64_t folded = 0;
  const std::string text = expose(s, 1000, folded);

  EXPECT_TRUE(has_line(text, "# TYPE tcptrail_transitions_total counter"));
  EXPECT_TRUE(has_line(
      text, "tcptrail_transitions_total{from=\"close\",to=\"syn_sent\"} 7"));
  EXPECT_TRUE(has_line(
      text, "tcptrail_transitions_total{from=\"syn_sent\",to=\"close\"} 3"));
  // Pairs never seen are not listed.
  EXPECT_EQ(text.find("tcptrail_transitions_total{from=\"established\""),
            std::string::npos);
  EXPECT_TRUE(
      has_line(text, "tcptrail_connections_opened_total{role=\"active\"} 7"));
  EXPECT_TRUE(
      has_line(text, "tcptrail_connections_opened_total{role=\"passive\"} 4"));
  EXPECT_TRUE(has_line(text,
                       "tcptrail_connections_closed_total{role=\"active\","
                       "end=\"refused\"} 3"));
  EXPECT_TRUE(has_line(text, "tcptrail_connections_closed_total{role="
                             "\"passive\",end=\"reset_received\"} 2"));
  // Every role x end exists from the first scrape (increase() needs a 0).
  EXPECT_TRUE(has_line(text, "tcptrail_connections_closed_total{role="
                             "\"unknown\",end=\"orphan_fin_wait2\"} 0"));
  EXPECT_TRUE(has_line(text, "tcptrail_resets_sent_total 5"));
  EXPECT_TRUE(has_line(text, "tcptrail_resets_received_total 3"));
  EXPECT_TRUE(has_line(text, "tcptrail_retransmits_total{kind=\"synack\"} 1"));
  EXPECT_TRUE(has_line(text, "tcptrail_events_lost_total 9"));

  EXPECT_TRUE(
      has_line(text, "# TYPE tcptrail_handshake_duration_seconds histogram"));
  EXPECT_TRUE(has_line(text, "tcptrail_handshake_duration_seconds_count{role="
                             "\"active\"} 2"));
  EXPECT_TRUE(has_line(text, "tcptrail_handshake_duration_seconds_sum{role="
                             "\"active\"} 0.0010015"));
  // le 2^11 ns holds the first; 2^19 ns still only it; 2^20 ns both.
  EXPECT_TRUE(has_line(text, "tcptrail_handshake_duration_seconds_bucket{role="
                             "\"active\",le=\"2.048e-06\"} 1"));
  EXPECT_TRUE(has_line(text, "tcptrail_handshake_duration_seconds_bucket{role="
                             "\"active\",le=\"0.000524288\"} 1"));
  EXPECT_TRUE(has_line(text, "tcptrail_handshake_duration_seconds_bucket{role="
                             "\"active\",le=\"0.001048576\"} 2"));
  EXPECT_TRUE(has_line(text, "tcptrail_handshake_duration_seconds_bucket{role="
                             "\"active\",le=\"+Inf\"} 2"));
  // Below the first bound: in every bucket; beyond the last: +Inf only.
  EXPECT_TRUE(has_line(
      text, "tcptrail_connection_lifetime_seconds_bucket{le=\"1.024e-06\"} 1"));
  EXPECT_TRUE(has_line(
      text, "tcptrail_connection_lifetime_seconds_bucket{le=\"+Inf\"} 2"));
  EXPECT_TRUE(has_line(text, "tcptrail_connection_lifetime_seconds_count 2"));
  // No enumeration: no per-scrape gauges, and no bpf_stats families.
  EXPECT_EQ(text.find("tcptrail_sockets{"), std::string::npos);
  EXPECT_EQ(text.find("tcptrail_bpf_program"), std::string::npos);
}

TEST(ServeMetrics, CloseWaitByOwnerAndListeningPortWithOldestAge) {
  ServeSample s;
  s.sockets_ok = true;
  SocketRow listener = row(1, TcpState::Listen, 8080, "api");
  listener.sock.rx_queue = 3;
  listener.sock.tx_queue = 128;
  s.sockets.push_back(listener);
  s.sockets.push_back(row(2, TcpState::CloseWait, 8080, "api", 5 * kSec));
  s.sockets.push_back(row(3, TcpState::CloseWait, 8080, "api", 12 * kSec));
  // A client socket: its ephemeral port is no label.
  s.sockets.push_back(row(4, TcpState::CloseWait, 51234, "worker", 2 * kSec));
  s.sockets.push_back(row(5, TcpState::Established, 8080, "api"));
  SocketRow req = row(6, TcpState::NewSynRecv, 8080, nullptr);
  req.sock.sk_kind = TT_SK_REQUEST;
  s.sockets.push_back(req);
  std::uint64_t folded = 0;
  const std::string text = expose(s, 1000, folded);

  EXPECT_TRUE(has_line(text, "tcptrail_sockets{state=\"close_wait\"} 3"));
  EXPECT_TRUE(has_line(text, "tcptrail_sockets{state=\"listen\"} 1"));
  EXPECT_TRUE(has_line(text, "tcptrail_sockets{state=\"time_wait\"} 0"));
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"api\","
                             "lport=\"8080\"} 2"));
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_oldest_age_seconds{comm="
                             "\"api\",lport=\"8080\"} 12"));
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"worker\","
                             "lport=\"ephemeral\"} 1"));
  EXPECT_EQ(text.find("51234"), std::string::npos);
  EXPECT_TRUE(has_line(text, "tcptrail_listen_accept_queue_length{comm="
                             "\"api\",lport=\"8080\"} 3"));
  EXPECT_TRUE(has_line(text, "tcptrail_listen_accept_queue_limit{comm="
                             "\"api\",lport=\"8080\"} 128"));
  EXPECT_TRUE(has_line(text, "tcptrail_listen_syn_queue_limit{comm="
                             "\"api\",lport=\"8080\"} 128"));
  EXPECT_TRUE(has_line(text, "tcptrail_listen_syn_queue_length{comm="
                             "\"api\",lport=\"8080\"} 1"));
  EXPECT_EQ(folded, 0u);
  // Never a pid or an address.
  EXPECT_EQ(text.find("1234"), std::string::npos);
  EXPECT_EQ(text.find("198.18"), std::string::npos);
}

TEST(ServeMetrics, OwnersInContainersGetAContainerLabel) {
  const std::string id(64, 'c');
  ServeSample s;
  s.sockets_ok = true;
  SocketRow in = row(1, TcpState::CloseWait, 40000, "api", kSec);
  in.sock.cgroup_id = 77;
  SocketRow out = row(2, TcpState::CloseWait, 40000, "api", kSec);
  out.sock.cgroup_id = 78; // a cgroup outside containers
  SocketRow lis = row(3, TcpState::Listen, 8080, "api");
  lis.sock.cgroup_id = 77;
  s.sockets = {in, out, lis};
  s.containers[77] = id;
  std::uint64_t folded = 0;
  const std::string text = expose(s, 1000, folded);
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"api\","
                             "container=\"" +
                                 id + "\",lport=\"ephemeral\"} 1"))
      << text;
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"api\","
                             "lport=\"ephemeral\"} 1"))
      << text;
  EXPECT_TRUE(has_line(text, "tcptrail_listen_accept_queue_limit{comm=\"api\","
                             "container=\"" +
                                 id + "\",lport=\"8080\"} 0"))
      << text;
}

TEST(ServeMetrics, KeepGaugeRowsCountsTheOthersOnly) {
  std::vector<SocketRow> rows;
  rows.push_back(row(1, TcpState::Listen, 8080, "api"));
  rows.push_back(row(2, TcpState::CloseWait, 8080, "api", kSec));
  for (int i = 0; i < 3; ++i) {
    SocketRow tw = row(10 + i, TcpState::TimeWait, 8080, nullptr);
    tw.sock.sk_kind = TT_SK_TIMEWAIT;
    rows.push_back(tw);
  }
  rows.push_back(row(20, TcpState::Established, 8080, "api"));
  ServeSample s;
  s.sockets_ok = true;
  keep_gauge_rows(s, std::move(rows));
  EXPECT_EQ(s.sockets.size(), 2u);
  EXPECT_EQ(s.counted_only[st(TcpState::TimeWait)], 3u);
  EXPECT_EQ(s.counted_only[st(TcpState::Established)], 1u);
  std::uint64_t folded = 0;
  const std::string text = expose(s, 1000, folded);
  EXPECT_TRUE(has_line(text, "tcptrail_sockets{state=\"time_wait\"} 3"));
  EXPECT_TRUE(has_line(text, "tcptrail_sockets{state=\"established\"} 1"));
  EXPECT_TRUE(has_line(text, "tcptrail_sockets{state=\"listen\"} 1"));
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"api\","
                             "lport=\"8080\"} 1"));
}

TEST(ServeMetrics, HostileCommStaysOneLabelOnOneLine) {
  ServeSample s;
  s.sockets_ok = true;
  s.sockets.push_back(
      row(1, TcpState::CloseWait, 40000, "a\"b\n}x 1\x1b[2J", kSec));
  std::uint64_t folded = 0;
  const std::string text = expose(s, 1000, folded);
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"a\\\"b\\\\x0a}"
                             "x 1\\\\x1b[2J\",lport=\"ephemeral\"} 1"))
      << text;
  EXPECT_EQ(text.find('\x1b'), std::string::npos);
}

TEST(ServeMetrics, SeriesCapFoldsTheSmallestGroupsIntoOther) {
  ServeSample s;
  s.sockets_ok = true;
  std::uint64_t cookie = 1;
  // comm0 has 10 sockets, comm1 9, ... comm9 1: 55 in all.
  for (int c = 0; c < 10; ++c)
    for (int i = 0; i < 10 - c; ++i) {
      const std::string comm = "comm" + std::to_string(c);
      s.sockets.push_back(
          row(cookie++, TcpState::CloseWait, 40000, comm.c_str(), kSec));
    }
  std::uint64_t folded = 0;
  const std::string text = expose(s, 4, folded);
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"comm0\","
                             "lport=\"ephemeral\"} 10"));
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"comm2\","
                             "lport=\"ephemeral\"} 8"));
  EXPECT_EQ(text.find("comm=\"comm3\""), std::string::npos);
  // comm3..comm9: 7 + 6 + ... + 1 = 28 sockets in one series.
  EXPECT_TRUE(has_line(text, "tcptrail_close_wait_sockets{comm=\"other\","
                             "lport=\"other\"} 28"));
  EXPECT_EQ(folded, 28u);
  EXPECT_TRUE(has_line(text, "tcptrail_series_folded_samples_total 28"));
  // Cumulative: a second scrape folds them again.
  const std::string again = expose(s, 4, folded);
  EXPECT_TRUE(has_line(again, "tcptrail_series_folded_samples_total 56"));
}

TEST(ServeMetrics, FoldGroupsKeepsAtMostMax) {
  std::map<GroupKey, GroupValue> g;
  for (int i = 0; i < 5; ++i) {
    GroupValue v;
    v.sockets = 1;
    g[{"c" + std::to_string(i), "1"}] = v;
  }
  EXPECT_EQ(fold_groups(g, 5), 0u);
  EXPECT_EQ(g.size(), 5u);
  EXPECT_EQ(fold_groups(g, 1), 5u);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g.begin()->first.comm, "other");
  EXPECT_EQ(g.begin()->second.sockets, 5u);
}

TEST(ServeMetrics, ProgramRunStatsOnlyWithBpfStats) {
  ServeSample s;
  s.bpf_stats = true;
  s.programs.push_back({"handle_inet_sock_set_state", 2'500'000'000, 10});
  std::uint64_t folded = 0;
  const std::string text = expose(s, 10, folded);
  EXPECT_TRUE(has_line(text, "tcptrail_bpf_program_run_seconds_total{program="
                             "\"handle_inet_sock_set_state\"} 2.5"));
  EXPECT_TRUE(has_line(text, "tcptrail_bpf_program_runs_total{program="
                             "\"handle_inet_sock_set_state\"} 10"));
}

TEST(ServeNetstat, ParsesTcpExtListenCounters) {
  const std::string text =
      "TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops\n"
      "TcpExt: 0 0 17 23\n"
      "IpExt: InNoRoutes\n"
      "IpExt: 0\n";
  const auto c = parse_netstat(text);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->overflows, 17u);
  EXPECT_EQ(c->drops, 23u);
  EXPECT_FALSE(parse_netstat("TcpExt: ListenOverflows ListenDrops\n"));
  EXPECT_FALSE(parse_netstat("TcpExt: ListenOverflows ListenDrops\n"
                             "TcpExt: 1 x\n"));
  EXPECT_FALSE(parse_netstat("TcpExt: A B\nTcpExt: 1 2\n"));
  EXPECT_FALSE(parse_netstat(""));
}

TEST(ServeListen, ParsesNumericAddressAndPort) {
  auto a = parse_listen("127.0.0.1:10184");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->af, 4);
  EXPECT_EQ(a->port, 10184);
  EXPECT_EQ(a->civetweb(), "127.0.0.1:10184");
  a = parse_listen("[::1]:9");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->af, 6);
  EXPECT_EQ(a->civetweb(), "[::1]:9");
  for (const char *bad :
       {"", "10184", ":10184", "localhost:10184", "127.0.0.1:", "127.0.0.1:0",
        "127.0.0.1:65536", "127.0.0.1:12x", "::1:10184", "[::1]", "[::1]10184",
        "1.2.3.4:5:6", "[127.0.0.1]:80"})
    EXPECT_FALSE(parse_listen(bad)) << bad;
}

TEST(ServeListen, TryBindTellsAPortInUse) {
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(ls, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(ls, 1), 0);
  socklen_t len = sizeof(a);
  getsockname(ls, reinterpret_cast<sockaddr *>(&a), &len);
  const auto addr =
      parse_listen("127.0.0.1:" + std::to_string(ntohs(a.sin_port)));
  ASSERT_TRUE(addr);
  EXPECT_EQ(try_bind(*addr), "Address already in use");
  close(ls);
  EXPECT_EQ(try_bind(*addr), "");
}

TEST(ServeMetrics, BucketBoundsArePowersOfTwoNanoseconds) {
  EXPECT_DOUBLE_EQ(bucket_upper_seconds(kFirstBucket), 1024e-9);
  EXPECT_DOUBLE_EQ(bucket_upper_seconds(19), 1048576e-9);
  EXPECT_GT(bucket_upper_seconds(kLastBucket), 2000.0);
}

} // namespace
} // namespace tcptrail
