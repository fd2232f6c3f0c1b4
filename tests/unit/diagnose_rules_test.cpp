// Every verdict rule of DiagnoseAggregator, fed with synthetic events.
#include <cerrno>

#include <gtest/gtest.h>

#include "diagnose/aggregator.h"
#include "diagnose/report_format.h"
#include "diagnose_test_util.h"

namespace tcptrail::diagnose {
namespace {

using namespace testutil;

constexpr std::uint8_t EST = 1, SYN_SENT = 2, SYN_RECV = 3, FIN_WAIT1 = 4,
                       FIN_WAIT2 = 5, TIME_WAIT = 6, CLOSE = 7, CLOSE_WAIT = 8,
                       LAST_ACK = 9, LISTEN = 10;
constexpr std::uint64_t kSec = 1'000'000'000ULL;

const Problem *find(const Report &r, const std::string &kind) {
  for (const auto &p : r.problems)
    if (p.kind == kind)
      return &p;
  return nullptr;
}

std::vector<std::string> kinds(const Report &r) {
  std::vector<std::string> out;
  for (const auto &p : r.problems)
    out.push_back(p.kind);
  return out;
}

// A full clean client connection: connect, data, close first (TIME_WAIT).
void clean_client(DiagnoseAggregator &agg, std::uint64_t cookie,
                  std::uint16_t lport, std::uint64_t ts) {
  Sock s{.lport = lport};
  agg.on_state(state_ev({.cookie = cookie, .old_state = CLOSE, .new_state = SYN_SENT, .ts_ns = ts, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = SYN_SENT, .new_state = EST, .ts_ns = ts + 100'000, .old_ns = 100'000, .flags = TT_F_ACTIVE, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = EST, .new_state = FIN_WAIT1, .ts_ns = ts + 1'000'000, .old_ns = 900'000, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = FIN_WAIT1, .new_state = FIN_WAIT2, .ts_ns = ts + 1'100'000, .old_ns = 100'000, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = FIN_WAIT2, .new_state = TIME_WAIT, .ts_ns = ts + 1'200'000, .old_ns = 100'000, .detail = TT_DETAIL_TW, .flags = TT_F_INFERRED, .sock = s}));
}

// The server side of it: accepted, peer closes first, we close.
void clean_server(DiagnoseAggregator &agg, std::uint64_t cookie,
                  std::uint16_t rport, std::uint64_t ts) {
  Sock s{.laddr = "198.18.0.2", .lport = 80, .raddr = "198.18.0.1", .rport = rport, .pid = 200, .comm = "server"};
  agg.on_state(state_ev({.cookie = cookie, .old_state = LISTEN, .new_state = SYN_RECV, .ts_ns = ts, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = SYN_RECV, .new_state = EST, .ts_ns = ts + 50'000, .old_ns = 50'000, .flags = TT_F_PASSIVE, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = EST, .new_state = CLOSE_WAIT, .ts_ns = ts + 1'000'000, .old_ns = 950'000, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = CLOSE_WAIT, .new_state = LAST_ACK, .ts_ns = ts + 1'050'000, .old_ns = 50'000, .sock = s}));
  agg.on_state(state_ev({.cookie = cookie, .old_state = LAST_ACK, .new_state = CLOSE, .ts_ns = ts + 1'100'000, .old_ns = 50'000, .sock = s}));
}

NetSnapshot snap(std::uint64_t netns, MibCounters mib) {
  NetSnapshot s;
  s.ok = true;
  s.netns = netns;
  s.mib = std::move(mib);
  s.sockets_ok = true;
  s.port_lo = 32768;
  s.port_hi = 60999;
  return s;
}

TEST(DiagnoseRules, CleanRunHasNoVerdict) {
  DiagnoseAggregator agg;
  for (int i = 0; i < 50; ++i) {
    clean_client(agg, 1000 + i, static_cast<std::uint16_t>(40000 + i), kSec + i * 1000);
    clean_server(agg, 5000 + i, static_cast<std::uint16_t>(40000 + i), kSec + i * 1000);
  }
  agg.set_start(snap(7, {{"Tcp.OutSegs", 100}, {"Tcp.RetransSegs", 0}}));
  agg.set_end(snap(7, {{"Tcp.OutSegs", 600}, {"Tcp.RetransSegs", 0}}));
  const Report r = agg.report(kSec, 11 * kSec);
  EXPECT_TRUE(r.problems.empty()) << render_text(r, {});
  EXPECT_EQ(exit_code(r), 0);
  EXPECT_EQ(r.totals.connect_attempts, 50u);
  EXPECT_EQ(r.totals.opened_active, 50u);
  EXPECT_EQ(r.totals.opened_passive, 50u);
  EXPECT_EQ(r.totals.closed, 100u);
  EXPECT_EQ(r.totals.time_wait, 50u);
  EXPECT_EQ(r.totals.transitions.at("FIN_WAIT2->TIME_WAIT"), 50u);
  EXPECT_EQ(r.totals.transitions.at("LAST_ACK->CLOSE"), 50u);
  ASSERT_FALSE(r.latency.empty());
  EXPECT_EQ(r.latency[0].name, "connect");
  EXPECT_EQ(r.latency[0].hist.count(), 50u);
  EXPECT_EQ(r.latency[0].hist.max(), 100'000u);
  for (const auto &c : r.checks)
    EXPECT_FALSE(c.problem) << c.kind;
  EXPECT_EQ(agg.problems_so_far(), 0u);
}

TEST(DiagnoseRules, Refused) {
  DiagnoseAggregator agg;
  for (int i = 0; i < 4; ++i) {
    Sock s{.lport = static_cast<std::uint16_t>(41000 + i), .rport = 9};
    agg.on_state(state_ev({.cookie = 10u + i, .old_state = CLOSE, .new_state = SYN_SENT, .sock = s}));
    agg.on_state(state_ev({.cookie = 10u + i, .old_state = SYN_SENT, .new_state = CLOSE, .error = ECONNREFUSED, .detail = TT_DETAIL_RESET_RCVD, .sock = s}));
    // The RST received in SYN_SENT is not an established reset.
    agg.on_segment(seg_ev({.kind = TT_KIND_RESET, .what = TT_RESET_RECEIVED, .cookie = 10u + i, .state = SYN_SENT, .sock = s}));
  }
  const Report r = agg.report(0, 10 * kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"refused"});
  const Problem *p = find(r, "refused");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->count, 4u);
  EXPECT_EQ(p->severity, Severity::Warning);
  ASSERT_EQ(p->evidence.remote_endpoints.size(), 1u);
  EXPECT_EQ(p->evidence.remote_endpoints[0].endpoint, "198.18.0.2:9");
  EXPECT_EQ(p->evidence.remote_endpoints[0].count, 4u);
  ASSERT_EQ(p->evidence.processes.size(), 1u);
  EXPECT_EQ(p->evidence.processes[0].pid, 100u);
  EXPECT_EQ(p->evidence.processes[0].comm, "client");
  ASSERT_EQ(p->evidence.examples.size(), 3u); // capped
  EXPECT_EQ(p->evidence.examples[0], "198.18.0.1:41000 -> 198.18.0.2:9");
  EXPECT_EQ(exit_code(r), 3);
}

TEST(DiagnoseRules, RefusedMostConnectsIsCritical) {
  DiagnoseAggregator agg;
  for (int i = 0; i < 12; ++i) {
    agg.on_state(state_ev({.cookie = 10u + i, .old_state = CLOSE, .new_state = SYN_SENT}));
    agg.on_state(state_ev({.cookie = 10u + i, .old_state = SYN_SENT, .new_state = CLOSE, .error = ECONNREFUSED}));
  }
  const Report r = agg.report(0, kSec);
  ASSERT_NE(find(r, "refused"), nullptr);
  EXPECT_EQ(find(r, "refused")->severity, Severity::Critical);
}

TEST(DiagnoseRules, ConnectTimeoutAndSynRetransmits) {
  DiagnoseAggregator agg;
  Sock s{.raddr = "2001:db8::2", .rport = 443};
  s.laddr = "2001:db8::1";
  agg.on_state(state_ev({.cookie = 1, .old_state = CLOSE, .new_state = SYN_SENT, .sock = s}));
  agg.on_segment(seg_ev({.what = TT_RETRANS_SYN, .cookie = 1, .state = SYN_SENT, .sock = s}));
  agg.on_segment(seg_ev({.what = TT_RETRANS_SYN, .cookie = 1, .state = SYN_SENT, .sock = s}));
  agg.on_state(state_ev({.cookie = 1, .old_state = SYN_SENT, .new_state = CLOSE, .old_ns = 3 * kSec, .error = ETIMEDOUT, .detail = TT_DETAIL_ERROR, .sock = s}));
  const Report r = agg.report(0, 10 * kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"connect_timeout"});
  const Problem *p = find(r, "connect_timeout");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->count, 1u);
  EXPECT_EQ(p->evidence.remote_endpoints.at(0).endpoint, "[2001:db8::2]:443");
  EXPECT_EQ(p->evidence.counters.at("syn_retransmits"), 2);
  // A timed-out connect is no connect latency sample.
  for (const auto &d : r.latency)
    EXPECT_NE(d.name, "connect");
}

TEST(DiagnoseRules, SlowConnectAfterSynRetransmit) {
  DiagnoseAggregator agg;
  agg.on_state(state_ev({.cookie = 1, .old_state = CLOSE, .new_state = SYN_SENT}));
  agg.on_segment(seg_ev({.what = TT_RETRANS_SYN, .cookie = 1, .state = SYN_SENT}));
  agg.on_state(state_ev({.cookie = 1, .old_state = SYN_SENT, .new_state = EST, .old_ns = kSec + 5000}));
  const Report r = agg.report(0, 10 * kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"syn_retransmits"});
  EXPECT_EQ(r.latency.at(0).hist.max(), kSec + 5000);
}

TEST(DiagnoseRules, OtherConnectErrors) {
  DiagnoseAggregator agg;
  agg.on_state(state_ev({.cookie = 1, .old_state = CLOSE, .new_state = SYN_SENT}));
  agg.on_state(state_ev({.cookie = 1, .old_state = SYN_SENT, .new_state = CLOSE, .error = EHOSTUNREACH, .detail = TT_DETAIL_ERROR}));
  // Closed by the application before the handshake ended: no error, fine.
  agg.on_state(state_ev({.cookie = 2, .old_state = CLOSE, .new_state = SYN_SENT}));
  agg.on_state(state_ev({.cookie = 2, .old_state = SYN_SENT, .new_state = CLOSE}));
  const Report r = agg.report(0, kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"connect_error"});
  EXPECT_EQ(find(r, "connect_error")->evidence.counters.at("EHOSTUNREACH"), 1);
}

TEST(DiagnoseRules, ResetReceivedOnEstablished) {
  DiagnoseAggregator agg;
  Sock s{.laddr = "198.18.0.2", .lport = 80, .raddr = "198.18.0.1", .rport = 40000, .pid = 200, .comm = "server"};
  agg.on_segment(seg_ev({.kind = TT_KIND_RESET, .what = TT_RESET_RECEIVED, .cookie = 3, .state = EST, .sock = s}));
  agg.on_state(state_ev({.cookie = 3, .old_state = EST, .new_state = CLOSE, .error = ECONNRESET, .detail = TT_DETAIL_RESET_RCVD, .sock = s}));
  const Report r = agg.report(0, kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"reset_received"});
  EXPECT_EQ(find(r, "reset_received")->evidence.processes.at(0).comm, "server");
  EXPECT_EQ(find(r, "reset_received")->evidence.remote_endpoints.at(0).endpoint,
            "198.18.0.1:40000");
}

TEST(DiagnoseRules, ResetSentByAbortAfterCloseTransition) {
  // SO_LINGER 0: the kernel moves the socket to CLOSE, then sends the RST
  // (state CLOSE in the reset event).
  DiagnoseAggregator agg;
  agg.on_state(state_ev({.cookie = 4, .old_state = EST, .new_state = CLOSE}));
  agg.on_segment(seg_ev({.kind = TT_KIND_RESET, .what = TT_RESET_SENT, .cookie = 4, .state = CLOSE}));
  // A second RST for the same socket is not counted twice; an RST from a
  // socket that closed normally (LAST_ACK -> CLOSE) is not an abort.
  agg.on_segment(seg_ev({.kind = TT_KIND_RESET, .what = TT_RESET_SENT, .cookie = 4, .state = CLOSE}));
  agg.on_state(state_ev({.cookie = 5, .old_state = LAST_ACK, .new_state = CLOSE}));
  agg.on_segment(seg_ev({.kind = TT_KIND_RESET, .what = TT_RESET_SENT, .cookie = 5, .state = CLOSE}));
  const Report r = agg.report(0, kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"reset_sent"});
  EXPECT_EQ(find(r, "reset_sent")->count, 1u);
}

TEST(DiagnoseRules, ResetForClosedPort) {
  DiagnoseAggregator agg;
  Sock s{.laddr = "198.18.0.2", .lport = 9, .raddr = "198.18.0.1", .rport = 40000, .pid = 0, .comm = ""};
  agg.on_segment(seg_ev({.kind = TT_KIND_RESET, .what = TT_RESET_SENT, .cookie = 0, .state = CLOSE, .sock = s}));
  const Report r = agg.report(0, kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"closed_port"});
  EXPECT_EQ(find(r, "closed_port")->evidence.examples.at(0),
            "198.18.0.2:9 -> 198.18.0.1:40000");
}

TEST(DiagnoseRules, RetransmitsPerConnectionAndEndpoint) {
  DiagnoseAggregator agg;
  for (int i = 0; i < 6; ++i)
    agg.on_segment(seg_ev({.what = TT_RETRANS_DATA, .cookie = 7, .state = EST}));
  agg.on_segment(seg_ev({.what = TT_RETRANS_DATA, .cookie = 8, .state = EST, .sock = {.lport = 40001}}));
  agg.set_start(snap(7, {{"Tcp.OutSegs", 1000}, {"Tcp.RetransSegs", 10}}));
  agg.set_end(snap(7, {{"Tcp.OutSegs", 1100}, {"Tcp.RetransSegs", 17}}));
  const Report r = agg.report(0, kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"retransmits"});
  const Problem *p = find(r, "retransmits");
  EXPECT_EQ(p->count, 7u);
  EXPECT_EQ(p->severity, Severity::Critical); // 7% of segments
  ASSERT_EQ(p->evidence.connections.size(), 2u);
  EXPECT_EQ(p->evidence.connections[0].cookie, 7u);
  EXPECT_EQ(p->evidence.connections[0].count, 6u);
  EXPECT_EQ(p->evidence.connections[0].tuple, "198.18.0.1:40000 -> 198.18.0.2:80");
  EXPECT_EQ(p->evidence.remote_endpoints.at(0).count, 7u);
  EXPECT_EQ(p->evidence.counters.at("rate_ppm"), 70000);
}

TEST(DiagnoseRules, FewRetransmitsAtLowRateAreFine) {
  DiagnoseAggregator agg;
  for (int i = 0; i < 6; ++i)
    agg.on_segment(seg_ev({.what = TT_RETRANS_DATA, .cookie = 7, .state = EST}));
  agg.set_start(snap(7, {{"Tcp.OutSegs", 0}, {"Tcp.RetransSegs", 0}}));
  agg.set_end(snap(7, {{"Tcp.OutSegs", 100000}, {"Tcp.RetransSegs", 6}}));
  EXPECT_TRUE(agg.report(0, kSec).problems.empty());
}

TEST(DiagnoseRules, ListenerSynFloodAndOverflow) {
  DiagnoseAggregator agg;
  Sock l{.laddr = "198.18.0.2", .lport = 8080, .raddr = "198.18.0.1", .rport = 50000, .pid = 300, .comm = "slowsrv"};
  for (int i = 0; i < 4; ++i)
    agg.on_segment(seg_ev({.what = TT_RETRANS_SYNACK, .cookie = 90u + i, .state = 12, .sock = l}));
  NetSnapshot a = snap(l.netns, {{"TcpExt.ListenOverflows", 5}, {"TcpExt.ListenDrops", 5}, {"TcpExt.SyncookiesSent", 0}});
  NetSnapshot b = snap(l.netns, {{"TcpExt.ListenOverflows", 25}, {"TcpExt.ListenDrops", 25}, {"TcpExt.SyncookiesSent", 3}});
  DiagSock listener;
  listener.af = 4;
  listener.state = LISTEN;
  listener.lport = 8080;
  listener.rqueue = 2;
  listener.wqueue = 1;
  listener.inode = 555;
  b.sockets.push_back(listener);
  DiagSock req = listener;
  req.state = SYN_RECV;
  req.rqueue = req.wqueue = 0;
  b.sockets.push_back(req);
  agg.set_start(a);
  agg.set_end(b);
  const Report r = agg.report(0, kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"listener"});
  const Problem *p = find(r, "listener");
  EXPECT_EQ(p->severity, Severity::Critical);
  EXPECT_EQ(p->count, 20u + 3u + 4u);
  EXPECT_EQ(p->evidence.counters.at("TcpExt.ListenOverflows"), 20);
  EXPECT_EQ(p->evidence.counters.at("TcpExt.SyncookiesSent"), 3);
  ASSERT_EQ(p->evidence.listeners.size(), 1u);
  const auto &le = p->evidence.listeners[0];
  EXPECT_EQ(le.listener, "0.0.0.0:8080");
  EXPECT_EQ(le.synack_retransmits, 4u);
  EXPECT_EQ(le.accept_queue.value(), 2u);
  EXPECT_EQ(le.accept_queue_limit.value(), 1u);
  EXPECT_EQ(le.syn_recv.value(), 1u);
  EXPECT_EQ(le.pid, 300u);
  EXPECT_EQ(le.comm, "slowsrv");
}

TEST(DiagnoseRules, ListenerOwnerFromInodeLookup) {
  DiagnoseAggregator agg;
  NetSnapshot a = snap(7, {});
  NetSnapshot b = snap(7, {});
  DiagSock listener;
  listener.af = 4;
  listener.state = LISTEN;
  listener.lport = 81;
  listener.rqueue = 128;
  listener.wqueue = 128;
  listener.inode = 777;
  b.sockets.push_back(listener);
  a.owners[777] = {42, "nginx"};
  agg.set_start(a);
  agg.set_end(b);
  const Report r = agg.report(0, kSec);
  const Problem *p = find(r, "listener");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->severity, Severity::Warning);
  EXPECT_EQ(p->evidence.listeners.at(0).pid, 42u);
  EXPECT_EQ(p->evidence.listeners.at(0).comm, "nginx");
}

TEST(DiagnoseRules, TimeWaitPileUpPerRemoteEndpoint) {
  DiagnoseAggregator agg;
  for (int i = 0; i < 300; ++i)
    clean_client(agg, 1000 + i, static_cast<std::uint16_t>(40000 + i), kSec);
  NetSnapshot a = snap(7, {});
  a.port_lo = 40000;
  a.port_hi = 40999; // 1000 ports
  NetSnapshot b = a;
  agg.set_start(a);
  agg.set_end(b);
  // 300 in 10s: 30/s, 1800 at steady state with 60s of TIME_WAIT.
  const Report r = agg.report(0, 10 * kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"time_wait"});
  const Problem *p = find(r, "time_wait");
  EXPECT_EQ(p->severity, Severity::Critical);
  EXPECT_EQ(p->count, 300u);
  EXPECT_EQ(p->evidence.counters.at("worst_endpoint_projected"), 1800);
  EXPECT_EQ(p->evidence.counters.at("port_range_size"), 1000);
  ASSERT_EQ(r.time_wait.size(), 1u);
  EXPECT_EQ(r.time_wait[0].endpoint, "198.18.0.2:80");
  EXPECT_DOUBLE_EQ(r.time_wait[0].rate_per_s, 30.0);
}

TEST(DiagnoseRules, TimeWaitToManyRemoteEndpointsIsFine) {
  // A server closing first: one TIME_WAIT per client endpoint, no risk.
  DiagnoseAggregator agg;
  for (int i = 0; i < 300; ++i) {
    Sock s{.laddr = "198.18.0.2", .lport = 80, .raddr = "198.18.0.1", .rport = static_cast<std::uint16_t>(40000 + i)};
    agg.on_state(state_ev({.cookie = 1000u + i, .old_state = FIN_WAIT2, .new_state = TIME_WAIT, .detail = TT_DETAIL_TW, .flags = TT_F_INFERRED, .sock = s}));
  }
  EXPECT_TRUE(agg.report(0, 10 * kSec).problems.empty());
}

TEST(DiagnoseRules, CloseWaitLeakNeedsAge) {
  DiagnoseAggregator agg;
  Sock s{.laddr = "198.18.0.2", .lport = 80, .raddr = "198.18.0.1", .rport = 40000, .pid = 200, .comm = "leaky"};
  agg.on_state(state_ev({.cookie = 1, .old_state = EST, .new_state = CLOSE_WAIT, .ts_ns = 2 * kSec, .sock = s}));
  // Left CLOSE_WAIT: fine.
  agg.on_state(state_ev({.cookie = 2, .old_state = EST, .new_state = CLOSE_WAIT, .ts_ns = 2 * kSec, .sock = s}));
  agg.on_state(state_ev({.cookie = 2, .old_state = CLOSE_WAIT, .new_state = LAST_ACK, .ts_ns = 3 * kSec, .sock = s}));
  // Entered just before the end: not old enough to call it a leak.
  agg.on_state(state_ev({.cookie = 3, .old_state = EST, .new_state = CLOSE_WAIT, .ts_ns = 10 * kSec - 1000, .sock = s}));
  const Report r = agg.report(0, 10 * kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"close_wait"});
  const Problem *p = find(r, "close_wait");
  EXPECT_EQ(p->count, 1u);
  ASSERT_EQ(p->evidence.connections.size(), 1u);
  EXPECT_EQ(p->evidence.connections[0].cookie, 1u);
  EXPECT_EQ(p->evidence.connections[0].age_ns.value(), 8 * kSec);
  EXPECT_EQ(p->evidence.processes.at(0).comm, "leaky");
}

TEST(DiagnoseRules, CloseWaitPreexistingFromSnapshots) {
  DiagnoseAggregator agg;
  NetSnapshot a = snap(7, {}), b = snap(7, {});
  DiagSock cw;
  cw.af = 4;
  cw.state = CLOSE_WAIT;
  cw.lport = 80;
  cw.rport = 40000;
  cw.cookie = 99;
  cw.inode = 1234;
  a.sockets.push_back(cw);
  b.sockets.push_back(cw);
  DiagSock gone = cw; // closed during the run
  gone.cookie = 98;
  a.sockets.push_back(gone);
  a.owners[1234] = {77, "oldleak"};
  agg.set_start(a);
  agg.set_end(b);
  const Report r = agg.report(0, kSec);
  const Problem *p = find(r, "close_wait");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->count, 1u);
  EXPECT_TRUE(p->evidence.connections.at(0).preexisting);
  EXPECT_FALSE(p->evidence.connections.at(0).age_ns.has_value());
  EXPECT_EQ(p->evidence.connections.at(0).pid, 77u);
  EXPECT_EQ(p->evidence.counters.at("preexisting"), 1);
}

TEST(DiagnoseRules, LostEventsAreACriticalProblem) {
  DiagnoseAggregator agg;
  agg.on_lost(17);
  const Report r = agg.report(0, kSec);
  EXPECT_EQ(kinds(r), std::vector<std::string>{"events_lost"});
  EXPECT_EQ(r.lost, 17u);
  EXPECT_EQ(r.problems[0].severity, Severity::Critical);
}

TEST(DiagnoseRules, BoundedTablesCountWhatDidNotFit) {
  DiagnoseConfig cfg;
  cfg.max_endpoints = 2;
  cfg.max_connections = 3;
  DiagnoseAggregator agg(cfg);
  for (int i = 0; i < 10; ++i) {
    Sock s{.rport = static_cast<std::uint16_t>(1000 + i)};
    agg.on_state(state_ev({.cookie = 10u + i, .old_state = CLOSE, .new_state = SYN_SENT, .sock = s}));
    agg.on_state(state_ev({.cookie = 10u + i, .old_state = SYN_SENT, .new_state = CLOSE, .error = ECONNREFUSED, .sock = s}));
    agg.on_state(state_ev({.cookie = 100u + i, .old_state = EST, .new_state = CLOSE_WAIT, .sock = s}));
  }
  const Report r = agg.report(0, 100 * kSec);
  const Problem *p = find(r, "refused");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->count, 10u); // counts stay complete
  EXPECT_EQ(p->evidence.remote_endpoints.size(), 2u);
  EXPECT_GE(r.dropped.endpoints, 8u);
  EXPECT_EQ(r.dropped.connections, 7u);
  EXPECT_EQ(find(r, "close_wait")->count, 3u);
}

TEST(DiagnoseRules, ProblemsSortedCriticalFirst) {
  DiagnoseAggregator agg;
  agg.on_lost(1);
  agg.on_state(state_ev({.cookie = 1, .old_state = CLOSE, .new_state = SYN_SENT}));
  agg.on_state(state_ev({.cookie = 1, .old_state = SYN_SENT, .new_state = CLOSE, .error = ECONNREFUSED}));
  const Report r = agg.report(0, kSec);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].kind, "events_lost");
  EXPECT_EQ(r.problems[1].kind, "refused");
}

} // namespace
} // namespace tcptrail::diagnose
