// `tcptrail history` against the real kernel (issue 3): connections between
// two network namespaces (A: client, B: server), one tracer per namespace,
// and the records checked against what the test did: payload bytes equal
// what was sent and received, each end's ISNs equal the peer's own record of
// them (the handshake seen from both sides), and `end` is right for a normal
// close, refused, timeout and reset.
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <thread>

namespace tcptrail::test {
namespace {

constexpr std::size_t kRequest = 3000; // two segments at the veth's MTU 1500
constexpr std::size_t kReply = 700;

// A tracer of `history -f json` for one namespace.
std::vector<std::string> history_args(const TestNet &net, Side side) {
  return {"history", "-f", "json", "--netns",
          std::to_string(net.inode(side))};
}

// The one "connection" record whose four-tuple matches.
Json record(const std::vector<Json> &events, const std::string &laddr,
            std::uint16_t lport, const std::string &raddr,
            std::uint16_t rport) {
  std::vector<Json> found;
  for (const Json &ev : events)
    if (ev.value("event", "") == "connection" &&
        ev.value("laddr", "") == laddr && ev.value("lport", -1) == lport &&
        ev.value("raddr", "") == raddr && ev.value("rport", -1) == rport)
      found.push_back(ev);
  EXPECT_EQ(found.size(), 1u) << laddr << ":" << lport << " -> " << raddr
                              << ":" << rport << " in\n"
                              << dump(events);
  return found.empty() ? Json() : found.front();
}

std::vector<std::string> path_states(const Json &rec) {
  std::vector<std::string> out;
  for (const Json &step : rec.at("path"))
    out.push_back(step.at("state").get<std::string>());
  return out;
}

// The exact field set of issue 3's contract, with types and nullability.
void expect_contract(const Json &rec) {
  ASSERT_TRUE(rec.is_object());
  for (const char *k : {"cookie", "pid", "af", "lport", "rport", "bytes_acked",
                        "bytes_received", "retransmits"})
    EXPECT_TRUE(rec.at(k).is_number_unsigned() || rec.at(k).is_number_integer())
        << k;
  for (const char *k : {"comm", "laddr", "raddr", "end"})
    EXPECT_TRUE(rec.at(k).is_string()) << k;
  for (const char *k : {"isn_local", "isn_remote", "closed_first"})
    EXPECT_TRUE(rec.contains(k)) << k;
  EXPECT_TRUE(rec.at("role").is_string() || rec.at("role").is_null());
  for (const Json &step : rec.at("path")) {
    EXPECT_TRUE(step.at("state").is_string());
    EXPECT_TRUE(step.at("enter_ns").is_number_unsigned());
    EXPECT_TRUE(step.at("dur_ns").is_number_unsigned() ||
                step.at("dur_ns").is_null());
    for (const char *k : {"snd_una", "snd_nxt", "rcv_nxt"})
      EXPECT_TRUE(step.at(k).is_number_unsigned()) << k;
  }
}

class HistoryTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto why = missing_prerequisite())
      TT_SKIP_OR_FAIL(*why);
    net_ = std::make_unique<TestNet>();
  }

  // Starts a history tracer for each namespace.
  void start_tracers() {
    tracer_a_ = std::make_unique<TracerProcess>(history_args(*net_, Side::A));
    tracer_b_ = std::make_unique<TracerProcess>(history_args(*net_, Side::B));
    TT_START_TRACER(*tracer_a_);
    TT_START_TRACER(*tracer_b_);
  }
  // Stops both (history prints every record on exit) and returns A's, B's.
  std::pair<std::vector<Json>, std::vector<Json>> stop_tracers() {
    EXPECT_EQ(tracer_a_->stop(), 0) << tracer_a_->stderr_text();
    EXPECT_EQ(tracer_b_->stop(), 0) << tracer_b_->stderr_text();
    return {tracer_a_->events(), tracer_b_->events()};
  }

  std::unique_ptr<TestNet> net_;
  std::unique_ptr<TracerProcess> tracer_a_, tracer_b_;
};

TEST_F(HistoryTest, NormalCloseBytesIsnsAndPath) {
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  Server server(*net_, Side::B,
                {.addr = sa,
                 .exchange = {.send_bytes = kReply, .recv_bytes = kRequest}});
  ClientResult client = run_client(
      *net_, Side::A,
      {.addr = sa,
       .port = server.port(),
       .exchange = {.send_bytes = kRequest,
                    .recv_bytes = kReply,
                    .close_first = true}});
  server.finish();
  auto [a, b] = stop_tracers();

  Json c = record(a, ca, client.local_port, sa, server.port());
  Json s = record(b, sa, server.port(), ca, client.local_port);
  ASSERT_FALSE(c.is_null());
  ASSERT_FALSE(s.is_null());
  expect_contract(c);
  expect_contract(s);

  // Payload only: the SYN and FIN sequence slots are not counted.
  EXPECT_EQ(c["bytes_acked"], kRequest);
  EXPECT_EQ(c["bytes_received"], kReply);
  EXPECT_EQ(s["bytes_acked"], kReply);
  EXPECT_EQ(s["bytes_received"], kRequest);

  // The handshake from both sides: each end's ISN is the other's remote one.
  ASSERT_TRUE(c["isn_local"].is_number());
  ASSERT_TRUE(s["isn_local"].is_number());
  EXPECT_EQ(c["isn_local"], s["isn_remote"]);
  EXPECT_EQ(c["isn_remote"], s["isn_local"]);

  EXPECT_EQ(c["role"], "active");
  EXPECT_EQ(s["role"], "passive");
  EXPECT_EQ(c["end"], "closed");
  EXPECT_EQ(s["end"], "closed");
  EXPECT_EQ(c["closed_first"], "local");
  EXPECT_EQ(s["closed_first"], "remote");
  EXPECT_EQ(c["pid"], client.pid);
  EXPECT_EQ(s["pid"], server.pid());
  EXPECT_EQ(path_states(c),
            (std::vector<std::string>{"SYN_SENT", "ESTABLISHED", "FIN_WAIT1",
                                      "FIN_WAIT2", "TIME_WAIT"}));
  EXPECT_EQ(path_states(s),
            (std::vector<std::string>{"SYN_RECV", "ESTABLISHED", "CLOSE_WAIT",
                                      "LAST_ACK", "CLOSE"}));

  // seq relations along the path: ESTABLISHED at ISN + 1 on both sides;
  // the client's FIN_WAIT1 step after its request went out and was acked.
  const Json &est = c["path"][1];
  EXPECT_EQ(est["snd_una"].get<std::uint32_t>(),
            c["isn_local"].get<std::uint32_t>() + 1);
  EXPECT_EQ(est["rcv_nxt"].get<std::uint32_t>(),
            c["isn_remote"].get<std::uint32_t>() + 1);
  const Json &fw1 = c["path"][2];
  EXPECT_EQ(fw1["snd_nxt"].get<std::uint32_t>(),
            c["isn_local"].get<std::uint32_t>() + 1 + kRequest);
  EXPECT_EQ(fw1["rcv_nxt"].get<std::uint32_t>(),
            c["isn_remote"].get<std::uint32_t>() + 1 + kReply);
  // Every step but the last has a duration; durations chain enter times.
  const Json &path = c["path"];
  for (std::size_t i = 0; i + 1 < path.size(); ++i) {
    ASSERT_TRUE(path[i]["dur_ns"].is_number()) << i;
    EXPECT_EQ(path[i]["enter_ns"].get<std::uint64_t>() +
                  path[i]["dur_ns"].get<std::uint64_t>(),
              path[i + 1]["enter_ns"].get<std::uint64_t>());
  }
  EXPECT_TRUE(path.back()["dur_ns"].is_null());

  // The listener's record counts the accepted connection.
  bool listener_seen = false;
  for (const Json &ev : b)
    if (ev.value("event", "") == "connection" &&
        ev.value("lport", -1) == server.port() && ev.value("rport", -1) == 0) {
      listener_seen = true;
      EXPECT_EQ(ev.value("accepted", -1), 1) << ev.dump();
      EXPECT_EQ(path_states(ev), (std::vector<std::string>{"LISTEN", "CLOSE"}));
    }
  EXPECT_TRUE(listener_seen) << dump(b);
}

// The cookie ("sk:" and the cookie in hex) of the socket from laddr:lport
// to raddr:rport in `ss -tieHn` output `out`, or 0 (and a failure).
std::uint64_t ss_cookie(const std::string &out, const std::string &laddr,
                        std::uint16_t lport, const std::string &raddr,
                        std::uint16_t rport) {
  const std::string ends = laddr + ":" + std::to_string(lport) + " " + raddr +
                           ":" + std::to_string(rport) + " ";
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(ends) == std::string::npos)
      continue;
    const auto sk = line.find(" sk:");
    if (sk != std::string::npos)
      return std::stoull(line.substr(sk + 4), nullptr, 16);
  }
  ADD_FAILURE() << "no socket " << ends << " in:\n" << out;
  return 0;
}

// The same for the TIME_WAIT socket in `side`'s namespace, now.
std::uint64_t ss_timewait_cookie(const TestNet &net, Side side,
                                 const std::string &laddr, std::uint16_t lport,
                                 const std::string &raddr,
                                 std::uint16_t rport) {
  return ss_cookie(net.sh(side, "ss -tieHn state time-wait"), laddr, lport,
                   raddr, rport);
}

// Issue 17: a connection's cookie is the one `ss` and every other BPF tool
// see for it, TIME_WAIT included. The closer's socket sits in TIME_WAIT (60
// s) after the test, as a timewait socket that took over the full socket's
// cookie; history's record must carry that same number. Whoever closes
// first: the client (its socket made by connect()) or the server (an
// accepted socket, which history keeps in the kernel where it can).
class HistoryCookieTest : public HistoryTest,
                          public ::testing::WithParamInterface<bool> {};

TEST_P(HistoryCookieTest, TimeWaitCookieIsTheOneSsShows) {
  const bool server_closes = GetParam();
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  Server server(*net_, Side::B,
                {.addr = sa,
                 .exchange = {.send_bytes = kReply,
                              .recv_bytes = kRequest,
                              .close_first = server_closes}});
  ClientResult client = run_client(
      *net_, Side::A,
      {.addr = sa,
       .port = server.port(),
       .exchange = {.send_bytes = kRequest,
                    .recv_bytes = kReply,
                    .close_first = !server_closes}});
  server.finish();
  const Side closer = server_closes ? Side::B : Side::A;
  const std::uint64_t ss_cookie =
      server_closes ? ss_timewait_cookie(*net_, closer, sa, server.port(), ca,
                                         client.local_port)
                    : ss_timewait_cookie(*net_, closer, ca, client.local_port,
                                         sa, server.port());
  auto [a, b] = stop_tracers();
  const Json rec =
      server_closes ? record(b, sa, server.port(), ca, client.local_port)
                    : record(a, ca, client.local_port, sa, server.port());
  ASSERT_FALSE(rec.is_null());
  EXPECT_EQ(path_states(rec).back(), "TIME_WAIT") << rec.dump();
  EXPECT_NE(ss_cookie, 0u);
  EXPECT_EQ(rec.at("cookie").get<std::uint64_t>(), ss_cookie) << rec.dump();
}

INSTANTIATE_TEST_SUITE_P(WhoClosesFirst, HistoryCookieTest,
                         ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool> &info) {
                           return info.param ? "ServerClosesFirst"
                                             : "ClientClosesFirst";
                         });

// Simultaneous close: both ends send their FIN before they receive the
// other's. Each namespace drops incoming FINs while both ends close, then
// lets them through: the FINs retransmitted after that cross, and one end
// at least goes FIN_WAIT1 -> CLOSING -> TIME_WAIT (which one depends on
// whose FIN is retransmitted first; the other may see the ACK of its FIN
// first and go through FIN_WAIT2). Both end in TIME_WAIT, with the cookie
// ss shows.
TEST_F(HistoryTest, SimultaneousCloseCookiesAreTheOnesSsShows) {
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  for (Side side : {Side::A, Side::B})
    net_->sh(side, "nft add table inet ttsim && "
                   "nft add chain inet ttsim in "
                   "'{ type filter hook input priority 0; }' && "
                   "nft add rule inet ttsim in tcp flags fin drop");
  Server server(*net_, Side::B,
                {.addr = sa,
                 .exchange = {.send_bytes = kReply,
                              .recv_bytes = kRequest,
                              .close_first = true,
                              .active_close_delay = 100ms}});
  // Both ends wait for the other's FIN (shutdown, then read to EOF): let
  // the FINs through once both have closed.
  std::thread open_up([&] {
    std::this_thread::sleep_for(800ms);
    for (Side side : {Side::A, Side::B})
      net_->sh(side, "nft delete table inet ttsim");
  });
  ClientResult client = run_client(
      *net_, Side::A,
      {.addr = sa,
       .port = server.port(),
       .exchange = {.send_bytes = kRequest,
                    .recv_bytes = kReply,
                    .close_first = true}});
  open_up.join();
  server.finish();
  const std::uint64_t ss_c = ss_timewait_cookie(
      *net_, Side::A, ca, client.local_port, sa, server.port());
  const std::uint64_t ss_s = ss_timewait_cookie(
      *net_, Side::B, sa, server.port(), ca, client.local_port);
  auto [a, b] = stop_tracers();
  const Json c = record(a, ca, client.local_port, sa, server.port());
  const Json s = record(b, sa, server.port(), ca, client.local_port);
  ASSERT_FALSE(c.is_null());
  ASSERT_FALSE(s.is_null());
  EXPECT_EQ(path_states(c).back(), "TIME_WAIT") << c.dump();
  EXPECT_EQ(path_states(s).back(), "TIME_WAIT") << s.dump();
  EXPECT_TRUE(c["closed_first"] == "simultaneous" ||
              s["closed_first"] == "simultaneous")
      << c.dump() << "\n" << s.dump();
  EXPECT_EQ(c.at("cookie").get<std::uint64_t>(), ss_c) << c.dump();
  EXPECT_EQ(s.at("cookie").get<std::uint64_t>(), ss_s) << s.dump();
}

// An abort: no TIME_WAIT, the sockets are gone once reset. Their cookies,
// read with ss while both were ESTABLISHED, are the records' cookies.
TEST_F(HistoryTest, ResetConnectionCookiesAreTheOnesSsShowed) {
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  Server server(*net_, Side::B,
                {.addr = sa,
                 .exchange = {.send_bytes = kReply, .recv_bytes = kRequest}});
  // The client aborts 1.5 s after its exchange; ss looks in between.
  std::string ss_a, ss_b;
  std::thread peek([&] {
    std::this_thread::sleep_for(700ms);
    ss_a = net_->sh(Side::A, "ss -tieHn state established");
    ss_b = net_->sh(Side::B, "ss -tieHn state established");
  });
  ClientResult client = run_client(
      *net_, Side::A,
      {.addr = sa,
       .port = server.port(),
       .exchange = {.send_bytes = kRequest,
                    .recv_bytes = kReply,
                    .close_first = true,
                    .close_mode = CloseMode::Abort,
                    .active_close_delay = 1500ms}});
  peek.join();
  server.finish();
  auto [a, b] = stop_tracers();
  const Json c = record(a, ca, client.local_port, sa, server.port());
  const Json s = record(b, sa, server.port(), ca, client.local_port);
  ASSERT_FALSE(c.is_null());
  ASSERT_FALSE(s.is_null());
  EXPECT_EQ(c["end"], "reset_sent") << c.dump();
  EXPECT_EQ(s["end"], "reset_received") << s.dump();
  EXPECT_EQ(c.at("cookie").get<std::uint64_t>(),
            ss_cookie(ss_a, ca, client.local_port, sa, server.port()))
      << c.dump();
  EXPECT_EQ(s.at("cookie").get<std::uint64_t>(),
            ss_cookie(ss_b, sa, server.port(), ca, client.local_port))
      << s.dump();
}

TEST_F(HistoryTest, RefusedConnection) {
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  // Nothing listens on port 9 in B: its kernel answers the SYN with RST.
  NsProcess proc = net_->spawn(Side::A, "tt-refused", [&](ChildChannel &ch) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(9);
    inet_pton(AF_INET, sa.c_str(), &sin.sin_addr);
    int rc = connect(fd, reinterpret_cast<sockaddr *>(&sin), sizeof(sin));
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    getsockname(fd, reinterpret_cast<sockaddr *>(&local), &len);
    ch.send("result " + std::to_string(rc == 0 ? 0 : errno) + " " +
            std::to_string(ntohs(local.sin_port)));
    close(fd);
  });
  std::string result = proc.expect("result ");
  proc.finish();
  auto [a, b] = stop_tracers();
  ASSERT_EQ(result.substr(0, result.find(' ')), std::to_string(ECONNREFUSED));

  std::vector<Json> recs;
  for (const Json &ev : a)
    if (ev.value("event", "") == "connection" && ev.value("rport", -1) == 9)
      recs.push_back(ev);
  ASSERT_EQ(recs.size(), 1u) << dump(a);
  expect_contract(recs[0]);
  EXPECT_EQ(recs[0]["end"], "refused");
  EXPECT_EQ(recs[0]["role"], "active");
  EXPECT_EQ(recs[0]["pid"], proc.pid());
  EXPECT_EQ(path_states(recs[0]),
            (std::vector<std::string>{"SYN_SENT", "CLOSE"}));
  EXPECT_EQ(recs[0]["bytes_acked"], 0);
}

TEST_F(HistoryTest, ConnectTimeoutWhenSynsAreDropped) {
  const std::string sa = TestNet::addr4(Side::B);
  // B drops every SYN to 5009; A gives up after one retransmission (~3 s).
  net_->sh(Side::B, "nft add table inet tthist && "
                    "nft add chain inet tthist in "
                    "'{ type filter hook input priority 0; }' && "
                    "nft add rule inet tthist in tcp dport 5009 counter drop");
  net_->sysctl(Side::A, "net.ipv4.tcp_syn_retries", "1");
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  NsProcess proc = net_->spawn(Side::A, "tt-timeout", [&](ChildChannel &ch) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(5009);
    inet_pton(AF_INET, sa.c_str(), &sin.sin_addr);
    int rc = connect(fd, reinterpret_cast<sockaddr *>(&sin), sizeof(sin));
    ch.send("result " + std::to_string(rc == 0 ? 0 : errno));
    close(fd);
  });
  std::string result = proc.expect("result ", 20s);
  proc.finish();
  auto [a, b] = stop_tracers();
  ASSERT_EQ(result, std::to_string(ETIMEDOUT));

  std::vector<Json> recs;
  for (const Json &ev : a)
    if (ev.value("event", "") == "connection" && ev.value("rport", -1) == 5009)
      recs.push_back(ev);
  ASSERT_EQ(recs.size(), 1u) << dump(a);
  expect_contract(recs[0]);
  EXPECT_EQ(recs[0]["end"], "timeout");
  EXPECT_EQ(path_states(recs[0]),
            (std::vector<std::string>{"SYN_SENT", "CLOSE"}));
  // Every SYN after the first is a retransmission: count them on the wire
  // (the drop rule's counter) rather than assume the kernel's schedule
  // (6.x retransmits SYNs on linear timeouts first).
  const std::string counter =
      net_->sh(Side::B, "nft list ruleset | grep -o 'packets [0-9]*'");
  const int syns = std::stoi(counter.substr(counter.find(' ') + 1));
  ASSERT_GE(syns, 2) << counter;
  EXPECT_EQ(recs[0]["retransmits"], syns - 1);
  // The SYN's sequence number is the ISN even though nothing was answered.
  EXPECT_TRUE(recs[0]["isn_local"].is_number());
  EXPECT_NE(recs[0]["lport"], 0);
}

TEST_F(HistoryTest, ResetByAbortingClient) {
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  Server server(*net_, Side::B,
                {.addr = sa,
                 .exchange = {.send_bytes = kReply, .recv_bytes = kRequest}});
  ClientResult client = run_client(
      *net_, Side::A,
      {.addr = sa,
       .port = server.port(),
       .exchange = {.send_bytes = kRequest,
                    .recv_bytes = kReply,
                    .close_first = true,
                    .close_mode = CloseMode::Abort}});
  try {
    server.finish();
  } catch (const std::exception &) {
    // The server may see ECONNRESET: that is the point of the test.
  }
  auto [a, b] = stop_tracers();

  Json c = record(a, ca, client.local_port, sa, server.port());
  Json s = record(b, sa, server.port(), ca, client.local_port);
  ASSERT_FALSE(c.is_null());
  ASSERT_FALSE(s.is_null());
  EXPECT_EQ(c["end"], "reset_sent");
  EXPECT_EQ(s["end"], "reset_received");
  EXPECT_EQ(c["bytes_acked"], kRequest);
  EXPECT_EQ(s["bytes_received"], kRequest);
  EXPECT_EQ(path_states(c),
            (std::vector<std::string>{"SYN_SENT", "ESTABLISHED", "CLOSE"}));
  EXPECT_EQ(path_states(s),
            (std::vector<std::string>{"SYN_RECV", "ESTABLISHED", "CLOSE"}));
  EXPECT_EQ(c["closed_first"], nullptr);
}

// Connections still open when history exits come from the kernel's socket
// storage (bpf/history.bpf.c): both ends with their path so far, end
// "open", and the listener with its accepted count.
TEST_F(HistoryTest, OpenConnectionsAtExitWithTheirPathSoFar) {
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  Server server(*net_, Side::B,
                {.addr = sa,
                 .exchange = {.send_bytes = kReply, .recv_bytes = kRequest}});
  ClientResult client;
  std::thread client_thread([&] {
    client = run_client(*net_, Side::A,
                        {.addr = sa,
                         .port = server.port(),
                         .exchange = {.send_bytes = kRequest,
                                      .recv_bytes = kReply,
                                      .close_first = true,
                                      .active_close_delay = 3000ms}});
  });
  // The exchange is over well before the client closes: stop tracing then.
  std::this_thread::sleep_for(1000ms);
  auto [a, b] = stop_tracers();
  client_thread.join();
  server.finish();

  Json c = record(a, ca, client.local_port, sa, server.port());
  Json s = record(b, sa, server.port(), ca, client.local_port);
  ASSERT_FALSE(c.is_null());
  ASSERT_FALSE(s.is_null());
  expect_contract(c);
  expect_contract(s);
  EXPECT_EQ(c["end"], "open");
  EXPECT_EQ(s["end"], "open");
  EXPECT_EQ(path_states(c),
            (std::vector<std::string>{"SYN_SENT", "ESTABLISHED"}));
  EXPECT_EQ(path_states(s),
            (std::vector<std::string>{"SYN_RECV", "ESTABLISHED"}));
  EXPECT_EQ(c["bytes_acked"], kRequest);
  EXPECT_EQ(c["bytes_received"], kReply);
  EXPECT_EQ(c["isn_local"], s["isn_remote"]);
  EXPECT_EQ(c["isn_remote"], s["isn_local"]);
  EXPECT_EQ(c["pid"], client.pid);
  EXPECT_EQ(s["pid"], server.pid());
  EXPECT_TRUE(c["path"][1]["dur_ns"].is_null());

  bool listener_seen = false;
  for (const Json &ev : b)
    if (ev.value("event", "") == "connection" &&
        ev.value("lport", -1) == server.port() && ev.value("rport", -1) == 0) {
      listener_seen = true;
      // Accepted once; the server closes its listener after accept().
      EXPECT_EQ(ev.value("accepted", -1), 1) << ev.dump();
    }
  EXPECT_TRUE(listener_seen) << dump(b);
}

// Connections open before the tracers started, whose peer closed after:
// the leak-hunting case. Each end that got the FIN (ESTABLISHED ->
// CLOSE_WAIT, in softirq on behalf of whatever task was on the CPU) has
// made no system call since start, so only the start-up fd walk knows its
// owner; its open record at exit must name it. The closing ends name
// theirs too.
TEST_F(HistoryTest, ConnectionsOpenBeforeStartKeepTheirOwners) {
  HeldConnections held(*net_);
  start_tracers();
  if (HasFatalFailure() || IsSkipped())
    return;
  held.begin_close(0);
  held.begin_close(1);
  // The FINs are on a veth: both ends are in their new states well within
  // this.
  std::this_thread::sleep_for(300ms);
  auto [a, b] = stop_tracers();
  held.finish_close(0);
  held.finish_close(1);
  held.quit();

  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  const auto port = held.port();
  struct Case {
    Json rec;
    pid_t pid;
    const char *comm;
    const char *state;
  };
  const Case cases[] = {
      {record(a, ca, held.client_port(0), sa, port), held.client_pid(),
       HeldConnections::kClientComm, "FIN_WAIT2"},
      {record(a, ca, held.client_port(1), sa, port), held.client_pid(),
       HeldConnections::kClientComm, "CLOSE_WAIT"},
      {record(b, sa, port, ca, held.client_port(0)), held.server_pid(),
       HeldConnections::kServerComm, "CLOSE_WAIT"},
      {record(b, sa, port, ca, held.client_port(1)), held.server_pid(),
       HeldConnections::kServerComm, "FIN_WAIT2"},
  };
  for (const Case &c : cases) {
    ASSERT_FALSE(c.rec.is_null());
    expect_contract(c.rec);
    EXPECT_EQ(c.rec["end"], "open") << c.rec.dump();
    EXPECT_EQ(c.rec["pid"], c.pid) << c.rec.dump();
    EXPECT_EQ(c.rec["comm"], std::string(c.comm)) << c.rec.dump();
    EXPECT_EQ(path_states(c.rec).back(), c.state) << c.rec.dump();
  }
}

// A client socket has no storage in history mode: user space assembles its
// path from its transitions, and the filters must still select whole
// records. A state anywhere on the path selects the record with every step;
// an owner named only at connect() selects the steps that came after.
TEST_F(HistoryTest, FiltersSelectWholePaths) {
  const std::string ca = TestNet::addr4(Side::A), sa = TestNet::addr4(Side::B);
  Server server(*net_, Side::B,
                {.addr = sa,
                 .exchange = {.send_bytes = kReply, .recv_bytes = kRequest}});
  const std::string ns = std::to_string(net_->inode(Side::A));
  const std::string port = std::to_string(server.port());
  TracerProcess fin_wait2({"history", "-f", "json", "--netns", ns, "--state",
                           "FIN_WAIT2", "--comm", "tt-filtered", "--rport",
                           port});
  TracerProcess close_wait(
      {"history", "-f", "json", "--netns", ns, "--state", "CLOSE_WAIT"});
  TracerProcess other_comm(
      {"history", "-f", "json", "--netns", ns, "--comm", "tt-other"});
  TT_START_TRACER(fin_wait2);
  TT_START_TRACER(close_wait);
  TT_START_TRACER(other_comm);
  ClientResult client = run_client(
      *net_, Side::A,
      {.addr = sa,
       .port = server.port(),
       .exchange = {.send_bytes = kRequest,
                    .recv_bytes = kReply,
                    .close_first = true},
       .comm = "tt-filtered"});
  server.finish();
  EXPECT_EQ(fin_wait2.stop(), 0) << fin_wait2.stderr_text();
  EXPECT_EQ(close_wait.stop(), 0) << close_wait.stderr_text();
  EXPECT_EQ(other_comm.stop(), 0) << other_comm.stderr_text();

  const std::vector<Json> selected = fin_wait2.events();
  Json c = record(selected, ca, client.local_port, sa, server.port());
  ASSERT_FALSE(c.is_null());
  expect_contract(c);
  EXPECT_EQ(path_states(c),
            (std::vector<std::string>{"SYN_SENT", "ESTABLISHED", "FIN_WAIT1",
                                      "FIN_WAIT2", "TIME_WAIT"}));
  EXPECT_EQ(c["pid"], client.pid);
  EXPECT_EQ(c["comm"], "tt-filtered");
  EXPECT_EQ(c["role"], "active");
  EXPECT_EQ(c["bytes_acked"], kRequest);
  EXPECT_TRUE(c["isn_local"].is_number());
  EXPECT_TRUE(c["isn_remote"].is_number());
  for (const Json &ev : selected)
    if (ev.value("event", "") == "connection")
      EXPECT_EQ(ev.value("lport", -1), client.local_port) << dump(selected);

  auto has_client = [&](const std::vector<Json> &events) {
    for (const Json &ev : events)
      if (ev.value("event", "") == "connection" &&
          ev.value("lport", -1) == client.local_port)
        return true;
    return false;
  };
  const std::vector<Json> cw = close_wait.events();
  const std::vector<Json> oc = other_comm.events();
  EXPECT_FALSE(has_client(cw)) << dump(cw);
  EXPECT_FALSE(has_client(oc)) << dump(oc);
}

} // namespace
} // namespace tcptrail::test
