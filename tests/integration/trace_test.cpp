// `tcptrail trace` against the real kernel: real connections between two
// network namespaces (A: client side, B: server side), the exact state path
// of both ends, seq/ack relations, owner attribution, filters, and the JSON
// contract of issue 2 on every line.
//
// --netns takes one inode, so a conversation is watched by two tracers, one
// per namespace; sockets are told apart by cookie, which is unique machine-
// wide. A socket's cookie is found through any of its events' four-tuple
// (lport is still 0 at CLOSE -> SYN_SENT, so never through that one alone).
#include "harness.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>

namespace tcptrail::test {
namespace {

constexpr std::uint16_t kPort = 5001;
constexpr std::size_t kRequest = 1000; // client -> server payload
constexpr std::size_t kReply = 300;    // server -> client payload
constexpr Duration kSettle = 300ms; // for events that must NOT arrive

using Seq = std::vector<std::string>;

// The kernel's paths (inet_sock_set_state), checked on 6.18:
// The active closer that shutdown()s and reads to EOF is not orphaned, so
// the peer's FIN finds it in FIN_WAIT2 and tcp_time_wait() hands it over to
// a TIME_WAIT timewait socket: the full socket goes FIN_WAIT2 -> CLOSE, which
// tcptrail reports as FIN_WAIT2 -> TIME_WAIT, "inferred":true.
const Seq kActiveCloser = {"CLOSE->SYN_SENT", "SYN_SENT->ESTABLISHED",
                           "ESTABLISHED->FIN_WAIT1", "FIN_WAIT1->FIN_WAIT2",
                           "FIN_WAIT2->TIME_WAIT"};
const Seq kPassiveCloser = {"CLOSE->SYN_SENT", "SYN_SENT->ESTABLISHED",
                            "ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK",
                            "LAST_ACK->CLOSE"};
// An accepted socket is born in inet_csk_clone_lock() with the listener's
// state as its old state: LISTEN -> SYN_RECV.
const Seq kServerPassive = {"LISTEN->SYN_RECV", "SYN_RECV->ESTABLISHED",
                            "ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK",
                            "LAST_ACK->CLOSE"};
const Seq kServerActive = {"LISTEN->SYN_RECV", "SYN_RECV->ESTABLISHED",
                           "ESTABLISHED->FIN_WAIT1", "FIN_WAIT1->FIN_WAIT2",
                           "FIN_WAIT2->TIME_WAIT"};
const Seq kListener = {"CLOSE->LISTEN", "LISTEN->CLOSE"};

std::uint32_t u32(const Json &v) { return v.get<std::uint32_t>(); }

std::string join(const std::vector<std::string> &v) {
  std::string out;
  for (const auto &s : v)
    out += (out.empty() ? "" : "; ") + s;
  return out;
}

// Matches a socket by any of its events.
using SockPred = std::function<bool(const Json &)>;

SockPred tuple(const std::string &laddr, std::uint16_t lport,
               const std::string &raddr, std::uint16_t rport) {
  return [=](const Json &ev) {
    return ev.value("laddr", "") == laddr && ev.value("lport", -1) == lport &&
           ev.value("raddr", "") == raddr && ev.value("rport", -1) == rport;
  };
}

SockPred listener(std::uint16_t port) {
  return [=](const Json &ev) {
    return ev.value("lport", -1) == port && ev.value("rport", -1) == 0 &&
           (ev.value("new", "") == "LISTEN" || ev.value("old", "") == "LISTEN");
  };
}

// True once a socket matching `sock` reported old->new.
bool seen(const std::vector<Json> &events, const SockPred &sock,
          const std::string &old_state, const std::string &new_state) {
  for (auto cookie : cookies_where(events, sock))
    for (const auto &ev : events_of(events, cookie))
      if (ev.value("old", "") == old_state && ev.value("new", "") == new_state)
        return true;
  return false;
}

// The one cookie of the socket matching `sock`; 0 (and a failure) otherwise.
std::uint64_t one_cookie(const std::vector<Json> &events, const SockPred &sock,
                         const std::string &what) {
  auto cookies = cookies_where(events, sock);
  EXPECT_EQ(cookies.size(), 1u) << "sockets for " << what << ":\n"
                                << dump(events);
  return cookies.size() == 1 ? cookies[0] : 0;
}

std::set<std::uint64_t> all_cookies(const std::vector<Json> &events) {
  auto v = cookies_where(events, [](const Json &) { return true; });
  return {v.begin(), v.end()};
}

enum class Closer { Client, Server };

struct ConversationSpec {
  bool ipv6 = false;
  Closer closer = Closer::Client;
  CloseMode mode = CloseMode::Shutdown;
  Duration passive_close_delay = 50ms;
  Duration active_close_delay = 0ms;
};

struct Conversation {
  std::vector<Json> a_events, b_events; // tracer on A (client), on B (server)
  ClientResult client;
  pid_t server_pid = -1;
  std::string caddr, saddr;
  std::uint64_t client_cookie = 0, server_cookie = 0, listener_cookie = 0;
};

class TraceTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto missing = missing_prerequisite())
      TT_SKIP_OR_FAIL(*missing);
    net_ = std::make_unique<TestNet>();
  }

  std::vector<std::string> json_args(Side side,
                                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"trace", "--format", "json", "--netns",
                                  std::to_string(net_->inode(side))};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  // SIGINT, exit 0, and every stdout line conforms to the JSON contract.
  std::vector<Json> stop_and_collect(TracerProcess &tracer) {
    int code = tracer.stop();
    EXPECT_EQ(code, 0) << tracer.command_line() << "\nstderr:\n"
                       << tracer.stderr_text();
    auto events = tracer.events();
    for (const auto &ev : events) {
      auto problems = contract_violations(ev);
      EXPECT_TRUE(problems.empty())
          << "JSON contract: " << join(problems) << "\n  " << ev.dump();
    }
    for (const auto &line : tracer.stderr_lines()) {
      if (!expected_warning_.empty() &&
          line.find(expected_warning_) != std::string::npos)
        continue;
      EXPECT_EQ(line.find("warning"), std::string::npos)
          << "tracer warned: " << line;
    }
    return events;
  }

  // One client (A) <-> server (B) connection, watched by a tracer in each
  // namespace (started before the server, so the listener is seen too).
  void converse(const ConversationSpec &spec, Conversation &out) {
    TracerProcess ta(json_args(Side::A)), tb(json_args(Side::B));
    TT_START_TRACER(ta);
    TT_START_TRACER(tb);
    out.saddr = spec.ipv6 ? TestNet::addr6(Side::B) : TestNet::addr4(Side::B);
    out.caddr = spec.ipv6 ? TestNet::addr6(Side::A) : TestNet::addr4(Side::A);
    bool server_closes = spec.closer == Closer::Server;
    Server server(*net_, Side::B,
                  {.addr = out.saddr,
                   .port = kPort,
                   .exchange = {.send_bytes = kReply,
                                .recv_bytes = kRequest,
                                .close_first = server_closes,
                                .close_mode = spec.mode,
                                .passive_close_delay = spec.passive_close_delay,
                                .active_close_delay =
                                    spec.active_close_delay}});
    out.server_pid = server.pid();
    out.client = run_client(
        *net_, Side::A,
        {.addr = out.saddr,
         .port = kPort,
         .exchange = {.send_bytes = kRequest,
                      .recv_bytes = kReply,
                      .close_first = !server_closes,
                      .close_mode = spec.mode,
                      .passive_close_delay = spec.passive_close_delay,
                      .active_close_delay = spec.active_close_delay}});
    auto peers = server.finish();
    ASSERT_EQ(peers, std::vector<std::uint16_t>{out.client.local_port});

    auto client_sock =
        tuple(out.caddr, out.client.local_port, out.saddr, kPort);
    auto server_sock =
        tuple(out.saddr, kPort, out.caddr, out.client.local_port);
    auto final_of = [](const std::vector<Json> &evs, const SockPred &sock) {
      for (auto c : cookies_where(evs, sock))
        for (const auto &ev : events_of(evs, c))
          if (ev.value("new", "") == "CLOSE" ||
              ev.value("new", "") == "TIME_WAIT")
            return true;
      return false;
    };
    EXPECT_TRUE(ta.wait_for(
        [&](const auto &evs) { return final_of(evs, client_sock); }))
        << "client socket never reached CLOSE/TIME_WAIT:\n"
        << dump(ta.events());
    EXPECT_TRUE(tb.wait_for([&](const auto &evs) {
      return final_of(evs, server_sock) &&
             seen(evs, listener(kPort), "LISTEN", "CLOSE");
    })) << "server sockets never closed:\n"
        << dump(tb.events());

    out.a_events = stop_and_collect(ta);
    out.b_events = stop_and_collect(tb);
    out.client_cookie = one_cookie(out.a_events, client_sock, "the client");
    out.server_cookie =
        one_cookie(out.b_events, server_sock, "the accepted socket");
    out.listener_cookie =
        one_cookie(out.b_events, listener(kPort), "the listener");
    // Nothing else happens in these namespaces.
    EXPECT_EQ(all_cookies(out.a_events),
              std::set<std::uint64_t>{out.client_cookie})
        << dump(out.a_events);
    EXPECT_EQ(all_cookies(out.b_events),
              (std::set<std::uint64_t>{out.server_cookie,
                                       out.listener_cookie}))
        << dump(out.b_events);
  }

  // A client-first exchange from A to addr:port (a Server must be there).
  ClientResult exchange(const std::string &addr, std::uint16_t port) {
    return run_client(*net_, Side::A,
                      {.addr = addr,
                       .port = port,
                       .exchange = {.send_bytes = kRequest,
                                    .recv_bytes = kReply,
                                    .close_first = true}});
  }

  Server server(const std::string &addr, std::uint16_t port,
                const std::string &comm = "tt-server") {
    return Server(*net_, Side::B,
                  {.addr = addr,
                   .port = port,
                   .exchange = {.send_bytes = kReply, .recv_bytes = kRequest},
                   .comm = comm});
  }

  // Connections held open across the tracers' start, closed after it,
  // with TCPTRAIL_FORCE_FALLBACK set to `forced` (if not null) for the
  // tracers: see ConnectionsOpenBeforeStartShowTheirOwners.
  void check_held_owners(const char *forced);

  std::unique_ptr<TestNet> net_;
  std::string expected_warning_; // a warning stop_and_collect() accepts
};

#define TT_CONVERSE(spec, conv)                                                \
  do {                                                                         \
    converse((spec), (conv));                                                  \
    if (IsSkipped() || HasFatalFailure())                                      \
      return;                                                                  \
  } while (0)

// Identity fields of every event of `cookie`.
void expect_identity(const std::vector<Json> &events, std::uint64_t cookie,
                     int af, const std::string &laddr, std::uint16_t lport,
                     const std::string &raddr, std::uint16_t rport) {
  auto evs = events_of(events, cookie);
  for (std::size_t i = 0; i < evs.size(); ++i) {
    const auto &ev = evs[i];
    SCOPED_TRACE(ev.dump());
    EXPECT_EQ(ev["af"], af);
    EXPECT_EQ(ev["laddr"], laddr);
    EXPECT_EQ(ev["raddr"], raddr);
    EXPECT_EQ(ev["rport"], rport);
    // lport is 0 at CLOSE -> SYN_SENT: the port is bound after the state
    // change (inet_hash_connect() follows tcp_set_state() in connect()).
    if (ev["old"] == "CLOSE" && ev["new"] == "SYN_SENT") {
      EXPECT_EQ(ev["lport"], 0);
    } else {
      EXPECT_EQ(ev["lport"], lport);
    }
  }
}

// "inferred" is true exactly on FIN_WAIT2 -> TIME_WAIT; no "error" anywhere.
void expect_clean_close(const std::vector<Json> &events,
                        std::uint64_t cookie) {
  for (const auto &ev : events_of(events, cookie)) {
    SCOPED_TRACE(ev.dump());
    bool tw = ev["new"] == "TIME_WAIT";
    EXPECT_EQ(ev.value("inferred", false), tw);
    EXPECT_TRUE(!ev.contains("error") || ev["error"].is_null());
  }
  EXPECT_TRUE(events_of(events, cookie, "reset").empty())
      << dump(events_of(events, cookie, "reset"));
}

void check_client_closes_first(const Conversation &c, int af,
                               const Seq &client = kActiveCloser) {
  EXPECT_EQ(transitions(c.a_events, c.client_cookie), client)
      << dump(c.a_events);
  EXPECT_EQ(transitions(c.b_events, c.server_cookie), kServerPassive)
      << dump(c.b_events);
  EXPECT_EQ(transitions(c.b_events, c.listener_cookie), kListener);
  expect_identity(c.a_events, c.client_cookie, af, c.caddr,
                  c.client.local_port, c.saddr, kPort);
  expect_identity(c.b_events, c.server_cookie, af, c.saddr, kPort, c.caddr,
                  c.client.local_port);
  expect_clean_close(c.a_events, c.client_cookie);
  expect_clean_close(c.b_events, c.server_cookie);
}

TEST_F(TraceTest, ClientClosesFirst) {
  Conversation c;
  TT_CONVERSE(ConversationSpec{}, c);
  check_client_closes_first(c, 4);
}

TEST_F(TraceTest, ClientClosesFirstOverIpv6) {
  Conversation c;
  TT_CONVERSE(ConversationSpec{.ipv6 = true}, c);
  check_client_closes_first(c, 6);
}

// close() orphans the socket at once; when the ACK of its FIN arrives
// alone (the server closes 300 ms later, after its delayed ACK), the kernel
// moves the full socket FIN_WAIT2 -> CLOSE right away and a timewait socket
// waits in the FIN_WAIT2 substate (tcp_rcv_state_process()) for the peer's
// FIN. That is not TIME_WAIT (ss shows FIN-WAIT-2, no FIN came): tcptrail
// keeps the kernel's CLOSE, not inferred, with detail orphan_fin_wait2.
TEST_F(TraceTest, ClientClosesFirstWithCloseOrphansTheSocket) {
  Conversation c;
  TT_CONVERSE((ConversationSpec{.mode = CloseMode::Close,
                                .passive_close_delay = 300ms}),
              c);
  check_client_closes_first(
      c, 4,
      {"CLOSE->SYN_SENT", "SYN_SENT->ESTABLISHED", "ESTABLISHED->FIN_WAIT1",
       "FIN_WAIT1->FIN_WAIT2", "FIN_WAIT2->CLOSE"});
  auto orphan = transition(c.a_events, c.client_cookie, "FIN_WAIT2", "CLOSE");
  EXPECT_EQ(orphan["detail"], "orphan_fin_wait2") << orphan.dump();
  EXPECT_EQ(orphan["inferred"], false) << orphan.dump();
  auto est = transition(c.a_events, c.client_cookie, "SYN_SENT",
                        "ESTABLISHED");
  if (est.contains("detail")) {
    EXPECT_TRUE(est["detail"].is_null()) << est.dump();
  }
}

TEST_F(TraceTest, ServerClosesFirst) {
  Conversation c;
  TT_CONVERSE(ConversationSpec{.closer = Closer::Server}, c);
  EXPECT_EQ(transitions(c.a_events, c.client_cookie), kPassiveCloser)
      << dump(c.a_events);
  EXPECT_EQ(transitions(c.b_events, c.server_cookie), kServerActive)
      << dump(c.b_events);
  EXPECT_EQ(transitions(c.b_events, c.listener_cookie), kListener);
  expect_identity(c.a_events, c.client_cookie, 4, c.caddr,
                  c.client.local_port, c.saddr, kPort);
  expect_identity(c.b_events, c.server_cookie, 4, c.saddr, kPort, c.caddr,
                  c.client.local_port);
  expect_clean_close(c.a_events, c.client_cookie);
  expect_clean_close(c.b_events, c.server_cookie);
}

TEST_F(TraceTest, ConnectionRefused) {
  constexpr std::uint16_t kClosedPort = 5009;
  TracerProcess ta(json_args(Side::A));
  TT_START_TRACER(ta);
  auto client = run_client(*net_, Side::A,
                           {.addr = TestNet::addr4(Side::B),
                            .port = kClosedPort,
                            .expect_refused = true});
  ASSERT_EQ(client.connect_errno, ECONNREFUSED);
  // The port was released at CLOSE, so the socket is found by its peer.
  auto sock = [&](const Json &ev) {
    return ev.value("raddr", "") == TestNet::addr4(Side::B) &&
           ev.value("rport", -1) == kClosedPort;
  };
  EXPECT_TRUE(ta.wait_for(
      [&](const auto &evs) { return seen(evs, sock, "SYN_SENT", "CLOSE"); }))
      << dump(ta.events());
  auto events = stop_and_collect(ta);
  auto cookie = one_cookie(events, sock, "the refused client");
  ASSERT_NE(cookie, 0u);
  EXPECT_EQ(transitions(events, cookie),
            (Seq{"CLOSE->SYN_SENT", "SYN_SENT->CLOSE"}))
      << dump(events);
  auto close = transition(events, cookie, "SYN_SENT", "CLOSE");
  EXPECT_EQ(close["error"], "ECONNREFUSED") << close.dump();
  EXPECT_EQ(close.value("inferred", false), false) << close.dump();
  // The RST from B arrives in softirq; the owner is still the client.
  for (const auto &ev : events_of(events, cookie)) {
    EXPECT_EQ(ev["pid"], client.pid) << ev.dump();
    EXPECT_EQ(ev["comm"], "tt-client") << ev.dump();
  }
  auto resets = events_of(events, cookie, "reset");
  ASSERT_EQ(resets.size(), 1u) << "expected one RST received:\n"
                               << dump(events);
  EXPECT_EQ(resets[0]["dir"], "received");
  EXPECT_EQ(resets[0]["state"], "SYN_SENT");
  EXPECT_EQ(all_cookies(events), std::set<std::uint64_t>{cookie});
}

// close() with SO_LINGER {1, 0}: the socket goes to CLOSE first and sends
// its RST after; the RST still belongs to the client, with its port (the
// client's socket has no storage in trace mode: SocketMemory keeps it past
// CLOSE for this).
TEST_F(TraceTest, AnAbortsResetBelongsToTheClient) {
  const auto addr = TestNet::addr4(Side::B);
  TracerProcess ta(json_args(Side::A));
  TT_START_TRACER(ta);
  Server srv(*net_, Side::B, {.addr = addr, .port = 5001});
  auto c = run_client(
      *net_, Side::A,
      {.addr = addr,
       .port = 5001,
       .exchange = {.close_first = true, .close_mode = CloseMode::Abort}});
  srv.finish();
  auto sock = tuple(TestNet::addr4(Side::A), c.local_port, addr, 5001);
  EXPECT_TRUE(ta.wait_for([&](const auto &evs) {
    return seen(evs, sock, "ESTABLISHED", "CLOSE") &&
           std::any_of(evs.begin(), evs.end(), [&](const Json &ev) {
             return ev.value("event", "") == "reset" &&
                    ev.value("rport", -1) == 5001;
           });
  })) << dump(ta.events());
  auto events = stop_and_collect(ta);
  auto cookie = one_cookie(events, sock, "the aborting client");
  EXPECT_EQ(transitions(events, cookie),
            (Seq{"CLOSE->SYN_SENT", "SYN_SENT->ESTABLISHED",
                 "ESTABLISHED->CLOSE"}))
      << dump(events);
  auto resets = events_of(events, cookie, "reset");
  ASSERT_EQ(resets.size(), 1u) << dump(events);
  EXPECT_EQ(resets[0]["dir"], "sent");
  EXPECT_EQ(resets[0]["pid"], c.pid) << resets[0].dump();
  EXPECT_EQ(resets[0]["comm"], "tt-client") << resets[0].dump();
  EXPECT_EQ(resets[0]["lport"], c.local_port) << resets[0].dump();
}

TEST_F(TraceTest, SeqAckSnapshotsAreConsistent) {
  Conversation c;
  TT_CONVERSE(ConversationSpec{}, c);
  const auto &a = c.a_events;
  const auto &b = c.b_events;
  auto fin_wait1 = transition(a, c.client_cookie, "ESTABLISHED", "FIN_WAIT1");
  SCOPED_TRACE("client ESTABLISHED->FIN_WAIT1: " + fin_wait1.dump());
  ASSERT_TRUE(fin_wait1["isn_local"].is_number_unsigned());
  ASSERT_TRUE(fin_wait1["isn_remote"].is_number_unsigned());
  const std::uint32_t isn_c = u32(fin_wait1["isn_local"]);
  const std::uint32_t isn_s = u32(fin_wait1["isn_remote"]);
  const auto req = static_cast<std::uint32_t>(kRequest);
  const auto rep = static_cast<std::uint32_t>(kReply);

  // The relation: the SYN takes one sequence number, and the FIN is
  // not yet counted when the state changes (tcp_send_fin() follows).
  EXPECT_EQ(u32(fin_wait1["snd_nxt"]), isn_c + 1 + req);
  EXPECT_EQ(u32(fin_wait1["snd_una"]), isn_c + 1 + req); // reply ACKed it
  EXPECT_EQ(u32(fin_wait1["rcv_nxt"]), isn_s + 1 + rep);

  // Both ends agree on both ISNs, on every event where they are known.
  for (const auto &ev : events_of(a, c.client_cookie)) {
    if (!ev["isn_local"].is_null()) {
      EXPECT_EQ(u32(ev["isn_local"]), isn_c) << ev.dump();
    }
    if (!ev["isn_remote"].is_null()) {
      EXPECT_EQ(u32(ev["isn_remote"]), isn_s) << ev.dump();
    }
  }
  for (const auto &ev : events_of(b, c.server_cookie)) {
    if (ev["old"] == "LISTEN")
      continue; // born at this event; checked below
    SCOPED_TRACE(ev.dump());
    ASSERT_TRUE(ev["isn_local"].is_number_unsigned());
    ASSERT_TRUE(ev["isn_remote"].is_number_unsigned());
    EXPECT_EQ(u32(ev["isn_remote"]), isn_c);
    EXPECT_EQ(u32(ev["isn_local"]), isn_s);
  }

  // Handshake: after SYN / SYN-ACK.
  auto est = transition(a, c.client_cookie, "SYN_SENT", "ESTABLISHED");
  EXPECT_EQ(u32(est["snd_nxt"]), isn_c + 1) << est.dump();
  EXPECT_EQ(u32(est["snd_una"]), isn_c + 1) << est.dump();
  EXPECT_EQ(u32(est["rcv_nxt"]), isn_s + 1) << est.dump();
  auto sest = transition(b, c.server_cookie, "SYN_RECV", "ESTABLISHED");
  EXPECT_EQ(u32(sest["snd_nxt"]), isn_s + 1) << sest.dump();
  EXPECT_EQ(u32(sest["snd_una"]), isn_s + 1) << sest.dump();
  EXPECT_EQ(u32(sest["rcv_nxt"]), isn_c + 1) << sest.dump();

  // The server has received the request and the FIN when it enters
  // CLOSE_WAIT (tcp_fin() runs after rcv_nxt moved past the FIN).
  auto cw = transition(b, c.server_cookie, "ESTABLISHED", "CLOSE_WAIT");
  EXPECT_EQ(u32(cw["rcv_nxt"]), isn_c + 1 + req + 1) << cw.dump();
  EXPECT_EQ(u32(cw["snd_nxt"]), isn_s + 1 + rep) << cw.dump();
  // Its FIN, then the client's ACK of it.
  auto la = transition(b, c.server_cookie, "CLOSE_WAIT", "LAST_ACK");
  EXPECT_EQ(u32(la["snd_nxt"]), isn_s + 1 + rep) << la.dump();
  auto done = transition(b, c.server_cookie, "LAST_ACK", "CLOSE");
  EXPECT_EQ(u32(done["snd_una"]), isn_s + 1 + rep + 1) << done.dump();
  EXPECT_EQ(u32(done["snd_nxt"]), isn_s + 1 + rep + 1) << done.dump();

  // The client's end: all sent and acknowledged, the server's FIN received.
  auto tw = transition(a, c.client_cookie, "FIN_WAIT2", "TIME_WAIT");
  EXPECT_EQ(u32(tw["snd_una"]), isn_c + 1 + req + 1) << tw.dump();
  EXPECT_EQ(u32(tw["snd_nxt"]), isn_c + 1 + req + 1) << tw.dump();
  EXPECT_EQ(u32(tw["rcv_nxt"]), isn_s + 1 + rep + 1) << tw.dump();
}

TEST_F(TraceTest, TimesAndNullability) {
  Conversation c;
  TT_CONVERSE(ConversationSpec{}, c);
  for (const auto *events : {&c.a_events, &c.b_events}) {
    for (auto cookie : all_cookies(*events)) {
      auto evs = events_of(*events, cookie);
      for (std::size_t i = 0; i < evs.size(); ++i) {
        SCOPED_TRACE(evs[i].dump());
        if (i == 0)
          continue;
        // Every socket was seen entering every state after its first.
        ASSERT_TRUE(evs[i]["old_state_ns"].is_number_unsigned());
        auto prev = evs[i - 1]["ts_ns"].get<std::uint64_t>();
        auto now = evs[i]["ts_ns"].get<std::uint64_t>();
        ASSERT_GE(now, prev);
        auto spent = evs[i]["old_state_ns"].get<std::uint64_t>();
        // The time in the old state is the gap between the two events.
        EXPECT_LE(spent, now - prev + 1'000'000) << "prev ts " << prev;
        EXPECT_GE(spent + 1'000'000, now - prev) << "prev ts " << prev;
      }
    }
  }
  // The client socket was not seen entering CLOSE, and has no ISN yet.
  auto first = events_of(c.a_events, c.client_cookie).front();
  EXPECT_EQ(first["old"], "CLOSE");
  EXPECT_TRUE(first["old_state_ns"].is_null()) << first.dump();
  EXPECT_TRUE(first["isn_remote"].is_null()) << first.dump();
  // The client waited for the server's FIN for at least the server's
  // passive close delay (50 ms), in FIN_WAIT1 and FIN_WAIT2 together: the
  // server ACKs the FIN with a delayed ACK (~40 ms, pingpong mode after
  // CLOSE_WAIT), so the split between the two varies.
  auto fw2 = transition(c.a_events, c.client_cookie, "FIN_WAIT1", "FIN_WAIT2");
  auto tw = transition(c.a_events, c.client_cookie, "FIN_WAIT2", "TIME_WAIT");
  EXPECT_GE(fw2["old_state_ns"].get<std::uint64_t>() +
                tw["old_state_ns"].get<std::uint64_t>(),
            45'000'000u)
      << fw2.dump() << "\n" << tw.dump();
}

TEST_F(TraceTest, PassiveTransitionsBelongToTheOwnerNotTheCpu) {
  Conversation c;
  // The client waits before its FIN, so the server is asleep in recv()
  // when the FIN is processed in softirq context, not on its CPU.
  TT_CONVERSE(ConversationSpec{.active_close_delay = 100ms}, c);
  ASSERT_NE(c.server_pid, c.client.pid);
  auto cw = transition(c.b_events, c.server_cookie, "ESTABLISHED",
                       "CLOSE_WAIT");
  EXPECT_EQ(cw["pid"], c.server_pid) << cw.dump();
  EXPECT_EQ(cw["comm"], "tt-server") << cw.dump();
  EXPECT_NE(cw["cpu_pid"], c.server_pid)
      << "the FIN should have been processed off the server's CPU: "
      << cw.dump();
  // Every transition of each socket has its owner, also the ones the peer's
  // segments caused.
  for (const auto &ev : events_of(c.b_events, c.server_cookie)) {
    EXPECT_EQ(ev["pid"], c.server_pid) << ev.dump();
    EXPECT_EQ(ev["comm"], "tt-server") << ev.dump();
  }
  for (const auto &ev : events_of(c.b_events, c.listener_cookie)) {
    EXPECT_EQ(ev["pid"], c.server_pid) << ev.dump();
  }
  for (const auto &ev : events_of(c.a_events, c.client_cookie)) {
    EXPECT_EQ(ev["pid"], c.client.pid) << ev.dump();
    EXPECT_EQ(ev["comm"], "tt-client") << ev.dump();
  }
}

// ---------------------------------------------------------------------------
// Filters: traffic that must be dropped runs first, then traffic that must
// arrive; after the last expected event, a pause for any leak to show up.

class TraceFilterTest : public TraceTest {
protected:
  // Waits for `done`, settles, stops; returns the events.
  std::vector<Json>
  finish(TracerProcess &tracer,
         const std::function<bool(const std::vector<Json> &)> &done) {
    EXPECT_TRUE(tracer.wait_for(done)) << dump(tracer.events());
    std::this_thread::sleep_for(kSettle);
    return stop_and_collect(tracer);
  }
};

TEST_F(TraceFilterTest, LocalPorts) {
  const auto addr = TestNet::addr4(Side::B);
  const auto caddr = TestNet::addr4(Side::A);
  TracerProcess tb(json_args(Side::B, {"--lport", "5001", "--lport", "5003"}));
  TT_START_TRACER(tb);
  auto s1 = server(addr, 5001), s2 = server(addr, 5002), s3 = server(addr, 5003);
  exchange(addr, 5002);
  s2.finish();
  auto c1 = exchange(addr, 5001);
  s1.finish();
  auto c3 = exchange(addr, 5003);
  s3.finish();
  auto events = finish(tb, [&](const auto &evs) {
    return seen(evs, tuple(addr, 5001, caddr, c1.local_port), "LAST_ACK",
                "CLOSE") &&
           seen(evs, tuple(addr, 5003, caddr, c3.local_port), "LAST_ACK",
                "CLOSE") &&
           seen(evs, listener(5003), "LISTEN", "CLOSE");
  });
  for (const auto &ev : events)
    EXPECT_TRUE(ev["lport"] == 5001 || ev["lport"] == 5003) << ev.dump();
  EXPECT_EQ(transitions(events, one_cookie(events,
                                           tuple(addr, 5001, caddr,
                                                 c1.local_port),
                                           "5001")),
            kServerPassive);
  EXPECT_EQ(transitions(events, one_cookie(events,
                                           tuple(addr, 5003, caddr,
                                                 c3.local_port),
                                           "5003")),
            kServerPassive);
  EXPECT_EQ(transitions(events, one_cookie(events, listener(5001), "l5001")),
            kListener);
  EXPECT_EQ(all_cookies(events).size(), 4u) << dump(events);
}

TEST_F(TraceFilterTest, RemotePort) {
  const auto addr = TestNet::addr4(Side::B);
  const auto caddr = TestNet::addr4(Side::A);
  TracerProcess ta(json_args(Side::A, {"--rport", "5001"}));
  TT_START_TRACER(ta);
  auto s1 = server(addr, 5001), s2 = server(addr, 5002);
  exchange(addr, 5002);
  s2.finish();
  auto c1 = exchange(addr, 5001);
  s1.finish();
  auto sock = tuple(caddr, c1.local_port, addr, 5001);
  auto events = finish(ta, [&](const auto &evs) {
    return seen(evs, sock, "FIN_WAIT2", "TIME_WAIT");
  });
  for (const auto &ev : events)
    EXPECT_EQ(ev["rport"], 5001) << ev.dump();
  auto cookie = one_cookie(events, sock, "client to 5001");
  EXPECT_EQ(transitions(events, cookie), kActiveCloser);
  EXPECT_EQ(all_cookies(events), std::set<std::uint64_t>{cookie});
}

// A client's socket has no socket storage in trace mode: the kernel names
// its owner only at connect() and close(); user space names it for the rest
// (SocketMemory) and applies --comm then. Every transition must show, with
// the owner, and none of the other client's.
TEST_F(TraceFilterTest, CommOfAClientWhoseSocketHasNoStorage) {
  const auto addr = TestNet::addr4(Side::B);
  const auto caddr = TestNet::addr4(Side::A);
  TracerProcess ta(json_args(Side::A, {"--comm", "tt-cli-one"}));
  TT_START_TRACER(ta);
  Server srv(*net_, Side::B,
             {.addr = addr,
              .port = 5001,
              .connections = 2,
              .exchange = {.send_bytes = kReply, .recv_bytes = kRequest}});
  auto client = [&](const std::string &comm) {
    return run_client(*net_, Side::A,
                      {.addr = addr,
                       .port = 5001,
                       .exchange = {.send_bytes = kRequest,
                                    .recv_bytes = kReply,
                                    .close_first = true},
                       .comm = comm});
  };
  client("tt-cli-two");
  auto one = client("tt-cli-one");
  srv.finish();
  auto sock = tuple(caddr, one.local_port, addr, 5001);
  auto events = finish(ta, [&](const auto &evs) {
    return seen(evs, sock, "FIN_WAIT2", "TIME_WAIT");
  });
  auto cookie = one_cookie(events, sock, "tt-cli-one's socket");
  EXPECT_EQ(transitions(events, cookie), kActiveCloser);
  EXPECT_EQ(all_cookies(events), std::set<std::uint64_t>{cookie})
      << dump(events);
  for (const auto &ev : events) {
    EXPECT_EQ(ev["pid"], one.pid) << ev.dump();
    EXPECT_EQ(ev["comm"], "tt-cli-one") << ev.dump();
    if (ev["old"] != "CLOSE")
      EXPECT_FALSE(ev["old_state_ns"].is_null()) << ev.dump();
  }
}

TEST_F(TraceFilterTest, RemoteAddress) {
  const auto addr = TestNet::addr4(Side::B);
  const std::string other = "198.18.0.3";
  const auto caddr = TestNet::addr4(Side::A);
  net_->add_address(Side::B, other + "/24");
  TracerProcess ta(json_args(Side::A, {"--raddr", addr + "/32"}));
  TT_START_TRACER(ta);
  auto s1 = server(addr, 5001), s2 = server(other, 5001);
  exchange(other, 5001);
  s2.finish();
  auto c1 = exchange(addr, 5001);
  s1.finish();
  auto sock = tuple(caddr, c1.local_port, addr, 5001);
  auto events = finish(ta, [&](const auto &evs) {
    return seen(evs, sock, "FIN_WAIT2", "TIME_WAIT");
  });
  for (const auto &ev : events)
    EXPECT_EQ(ev["raddr"], addr) << ev.dump();
  auto cookie = one_cookie(events, sock, "client to " + addr);
  EXPECT_EQ(transitions(events, cookie), kActiveCloser);
  EXPECT_EQ(all_cookies(events), std::set<std::uint64_t>{cookie});
}

class TraceFamilyFilterTest : public TraceFilterTest,
                              public ::testing::WithParamInterface<int> {};

TEST_P(TraceFamilyFilterTest, AddressFamily) {
  const int af = GetParam();
  const int other_af = af == 4 ? 6 : 4;
  auto addr_of = [](int family, Side side) {
    return family == 4 ? TestNet::addr4(side) : TestNet::addr6(side);
  };
  TracerProcess ta(json_args(Side::A, {af == 4 ? "-4" : "-6"}));
  TT_START_TRACER(ta);
  auto keep = server(addr_of(af, Side::B), 5001);
  auto drop = server(addr_of(other_af, Side::B), 5001);
  exchange(addr_of(other_af, Side::B), 5001);
  drop.finish();
  auto c = exchange(addr_of(af, Side::B), 5001);
  keep.finish();
  auto sock =
      tuple(addr_of(af, Side::A), c.local_port, addr_of(af, Side::B), 5001);
  auto events = finish(ta, [&](const auto &evs) {
    return seen(evs, sock, "FIN_WAIT2", "TIME_WAIT");
  });
  for (const auto &ev : events)
    EXPECT_EQ(ev["af"], af) << ev.dump();
  auto cookie = one_cookie(events, sock, "the kept client");
  EXPECT_EQ(transitions(events, cookie), kActiveCloser);
  EXPECT_EQ(all_cookies(events), std::set<std::uint64_t>{cookie});
}

INSTANTIATE_TEST_SUITE_P(Ipv4AndIpv6, TraceFamilyFilterTest,
                         ::testing::Values(4, 6),
                         [](const auto &info) {
                           return "Ipv" + std::to_string(info.param) + "Only";
                         });

TEST_F(TraceFilterTest, StateEitherSideOfTheTransition) {
  const auto addr = TestNet::addr4(Side::B);
  const auto caddr = TestNet::addr4(Side::A);
  TracerProcess tb(json_args(Side::B, {"--state", "CLOSE_WAIT"}));
  TT_START_TRACER(tb);
  auto s = server(addr, 5001);
  auto c = exchange(addr, 5001);
  s.finish();
  auto sock = tuple(addr, 5001, caddr, c.local_port);
  auto events = finish(tb, [&](const auto &evs) {
    return seen(evs, sock, "CLOSE_WAIT", "LAST_ACK");
  });
  // The listener's and the handshake's transitions, and LAST_ACK -> CLOSE,
  // are dropped.
  auto cookie = one_cookie(events, sock, "the accepted socket");
  EXPECT_EQ(transitions(events, cookie),
            (Seq{"ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK"}))
      << dump(events);
  EXPECT_EQ(events.size(), 2u) << dump(events);
}

class TraceOwnerFilterTest : public TraceFilterTest {
protected:
  // Servers on 5001 (tt-srv-one) and 5002 (tt-srv-two), traced with
  // `filter(one's pid)`; traffic to both; only one's sockets may show. The
  // servers are forked first (pid known) and listen once the tracer runs.
  void run(const std::function<std::vector<std::string>(pid_t)> &filter) {
    const auto addr = TestNet::addr4(Side::B);
    const auto caddr = TestNet::addr4(Side::A);
    auto gated = [&](std::uint16_t port, const std::string &comm) {
      return Server(*net_, Side::B,
                    {.addr = addr,
                     .port = port,
                     .exchange = {.send_bytes = kReply,
                                  .recv_bytes = kRequest},
                     .comm = comm,
                     .gated = true});
    };
    auto one = gated(5001, "tt-srv-one");
    auto two = gated(5002, "tt-srv-two");
    TracerProcess tb(json_args(Side::B, filter(one.pid())));
    TT_START_TRACER(tb);
    one.listen();
    two.listen();
    exchange(addr, 5002);
    two.finish();
    auto c = exchange(addr, 5001);
    one.finish();
    auto sock = tuple(addr, 5001, caddr, c.local_port);
    auto events = finish(tb, [&](const auto &evs) {
      return seen(evs, sock, "LAST_ACK", "CLOSE") &&
             seen(evs, listener(5001), "LISTEN", "CLOSE");
    });
    for (const auto &ev : events) {
      EXPECT_EQ(ev["pid"], one.pid()) << ev.dump();
      EXPECT_EQ(ev["comm"], "tt-srv-one") << ev.dump();
      EXPECT_EQ(ev["lport"], 5001) << ev.dump();
    }
    EXPECT_EQ(transitions(events, one_cookie(events, sock, "accepted")),
              kServerPassive);
    EXPECT_EQ(transitions(events, one_cookie(events, listener(5001), "l")),
              kListener);
    EXPECT_EQ(all_cookies(events).size(), 2u) << dump(events);
  }
};

TEST_F(TraceOwnerFilterTest, Pid) {
  run([](pid_t pid) {
    return std::vector<std::string>{"--pid", std::to_string(pid)};
  });
}

TEST_F(TraceOwnerFilterTest, Comm) {
  run([](pid_t) { return std::vector<std::string>{"--comm", "tt-srv-one"}; });
}

// Connections open before the tracer started, closed after it: the start-up
// fd walk found their owners, and the first program to meet each socket
// claims it, also where that is softirq on behalf of another task (each
// end's ESTABLISHED -> CLOSE_WAIT, caused by the peer's FIN).
void TraceTest::check_held_owners(const char *forced) {
  HeldConnections held(*net_);
  struct ForcedFallback { // for the tracers only: unset once they run
    explicit ForcedFallback(const char *f) {
      if (f)
        setenv("TCPTRAIL_FORCE_FALLBACK", f, 1);
    }
    ~ForcedFallback() { unsetenv("TCPTRAIL_FORCE_FALLBACK"); }
  };
  std::optional<ForcedFallback> env(std::in_place, forced);
  TracerProcess ta(json_args(Side::A)), tb(json_args(Side::B));
  TT_START_TRACER(ta);
  TT_START_TRACER(tb);
  env.reset();
  held.close_all();
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  const auto port = held.port();
  const auto cli0 = tuple(ca, held.client_port(0), sa, port);
  const auto cli1 = tuple(ca, held.client_port(1), sa, port);
  const auto srv0 = tuple(sa, port, ca, held.client_port(0));
  const auto srv1 = tuple(sa, port, ca, held.client_port(1));
  EXPECT_TRUE(ta.wait_for([&](const auto &evs) {
    return seen(evs, cli0, "FIN_WAIT2", "TIME_WAIT") &&
           seen(evs, cli1, "LAST_ACK", "CLOSE");
  })) << dump(ta.events());
  EXPECT_TRUE(tb.wait_for([&](const auto &evs) {
    return seen(evs, srv0, "LAST_ACK", "CLOSE") &&
           seen(evs, srv1, "FIN_WAIT2", "TIME_WAIT") &&
           seen(evs, listener(port), "LISTEN", "CLOSE");
  })) << dump(tb.events());
  const auto a = stop_and_collect(ta);
  const auto b = stop_and_collect(tb);

  const Seq passive = {"ESTABLISHED->CLOSE_WAIT", "CLOSE_WAIT->LAST_ACK",
                       "LAST_ACK->CLOSE"};
  const Seq active = {"ESTABLISHED->FIN_WAIT1", "FIN_WAIT1->FIN_WAIT2",
                      "FIN_WAIT2->TIME_WAIT"};
  struct Case {
    const std::vector<Json> &events;
    SockPred sock;
    const Seq &path;
    pid_t pid;
    const char *comm;
  };
  const Case cases[] = {
      {a, cli0, active, held.client_pid(), HeldConnections::kClientComm},
      {a, cli1, passive, held.client_pid(), HeldConnections::kClientComm},
      {b, srv0, passive, held.server_pid(), HeldConnections::kServerComm},
      {b, srv1, active, held.server_pid(), HeldConnections::kServerComm},
  };
  for (const Case &c : cases) {
    const auto cookie = one_cookie(c.events, c.sock, "a held connection");
    EXPECT_EQ(transitions(c.events, cookie), c.path) << dump(c.events);
    for (const Json &ev : events_of(c.events, cookie)) {
      EXPECT_EQ(ev["pid"], c.pid) << ev.dump();
      EXPECT_EQ(ev["comm"], std::string(c.comm)) << ev.dump();
    }
  }
  const auto lc =
      transition(b, one_cookie(b, listener(port), "listener"), "LISTEN", "CLOSE");
  EXPECT_EQ(lc["pid"], held.server_pid()) << lc.dump();
}

TEST_F(TraceTest, ConnectionsOpenBeforeStartShowTheirOwners) {
  check_held_owners(nullptr);
}

// Without iter/tcp only the listeners open at start lack storage: every
// other socket is still claimed from the fd walk at its first event.
TEST_F(TraceTest, ConnectionsOpenBeforeStartShowTheirOwnersWithoutIterTcp) {
  expected_warning_ = "warning: iter:tcp unavailable";
  check_held_owners("iter:tcp");
}

// A server that was already running when tcptrail started (the common
// `tcptrail trace --pid $(pidof server)` case): its listener's owner cannot
// be known at the handshake, but the accepted socket is accept()ed, read and
// written by its owner before the peer's FIN, and the listener is closed by
// it, all in process context.
TEST_F(TraceFilterTest, OwnerOfAServerStartedBeforeTheTracer) {
  const auto addr = TestNet::addr4(Side::B);
  auto s = server(addr, 5001);
  TracerProcess tb(json_args(Side::B));
  TT_START_TRACER(tb);
  auto c = exchange(addr, 5001);
  s.finish();
  auto sock = tuple(addr, 5001, TestNet::addr4(Side::A), c.local_port);
  auto events = finish(tb, [&](const auto &evs) {
    return seen(evs, sock, "LAST_ACK", "CLOSE") &&
           seen(evs, listener(5001), "LISTEN", "CLOSE");
  });
  auto cookie = one_cookie(events, sock, "the accepted socket");
  EXPECT_EQ(transitions(events, cookie), kServerPassive);
  for (const auto &ev : events_of(events, cookie)) {
    if (ev["old"] == "LISTEN" || ev["old"] == "SYN_RECV")
      continue; // before any process touched it: pid 0 is fair
    EXPECT_EQ(ev["pid"], s.pid()) << ev.dump();
  }
  auto lc = transition(events, one_cookie(events, listener(5001), "listener"),
                       "LISTEN", "CLOSE");
  EXPECT_EQ(lc["pid"], s.pid()) << "closed by its owner: " << lc.dump();
}

TEST_F(TraceFilterTest, NetworkNamespace) {
  const auto addr = TestNet::addr4(Side::B);
  TracerProcess tb(json_args(Side::B));
  TT_START_TRACER(tb);
  auto s = server(addr, 5001);
  auto c = exchange(addr, 5001);
  s.finish();
  auto sock = tuple(addr, 5001, TestNet::addr4(Side::A), c.local_port);
  auto events = finish(tb, [&](const auto &evs) {
    return seen(evs, sock, "LAST_ACK", "CLOSE") &&
           seen(evs, listener(5001), "LISTEN", "CLOSE");
  });
  // Only B's two sockets: nothing from the client in A.
  for (const auto &ev : events) {
    EXPECT_EQ(ev["laddr"], addr) << ev.dump();
    if (ev.contains("netns")) {
      EXPECT_EQ(ev["netns"], net_->inode(Side::B)) << ev.dump();
    }
  }
  EXPECT_EQ(all_cookies(events).size(), 2u) << dump(events);
}

} // namespace
} // namespace tcptrail::test
