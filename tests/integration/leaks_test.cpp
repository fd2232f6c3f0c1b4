// `tcptrail leaks` and `tcptrail snapshot` against the real kernel: a server
// process in namespace B leaks accepted sockets (the client in A closes,
// the server never does), some before tcptrail starts and some after, and
// closes others in time. Exactly the leaked ones must be reported, with the
// server's pid and comm, CLOSE_WAIT, and the right preexisting flag; the
// exit code follows. `snapshot` must agree with `ss -tanp` in the same
// namespace.
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

namespace tcptrail::test {
namespace {

const std::string kServerComm = "tt-leaky";

// The server: "leak" accepts one connection and keeps it open forever;
// "tidy" accepts one, reads to EOF and closes; "closeall" closes the kept
// ones. Replies "ok <peer port>".
void server_body(ChildChannel &ch) {
  const int ls = listen4(TestNet::kAddr4B, "server");
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(ls, reinterpret_cast<sockaddr *>(&a), &len);
  ch.send("port " + std::to_string(ntohs(a.sin_port)));
  std::vector<int> kept;
  while (auto line = ch.receive(std::chrono::seconds(50))) {
    if (*line == "quit")
      break;
    if (*line == "closeall") {
      for (int fd : kept)
        close(fd);
      kept.clear();
      ch.send("ok 0");
      continue;
    }
    sockaddr_in peer{};
    socklen_t plen = sizeof(peer);
    const int c = accept(ls, reinterpret_cast<sockaddr *>(&peer), &plen);
    if (c < 0)
      throw std::runtime_error("server: accept failed");
    if (*line == "tidy") {
      char buf[64];
      while (read(c, buf, sizeof(buf)) > 0) {
      }
      close(c);
    } else {
      kept.push_back(c);
    }
    ch.send("ok " + std::to_string(ntohs(peer.sin_port)));
  }
}

// The client: "conn <port>" connects, closes at once, replies with its port.
void client_body(ChildChannel &ch) {
  while (auto line = ch.receive(std::chrono::seconds(50))) {
    if (line->rfind("conn ", 0) != 0)
      break;
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(line->substr(5))));
    inet_pton(AF_INET, TestNet::kAddr4B, &a.sin_addr);
    if (connect(s, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0)
      throw std::runtime_error("client: connect failed");
    socklen_t len = sizeof(a);
    getsockname(s, reinterpret_cast<sockaddr *>(&a), &len);
    close(s);
    ch.send("lport " + std::to_string(ntohs(a.sin_port)));
  }
}

class LeaksTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto why = missing_prerequisite())
      TT_SKIP_OR_FAIL(*why);
    net_ = std::make_unique<TestNet>();
    server_.emplace(net_->spawn(Side::B, kServerComm, server_body));
    port_ = std::stoi(server_->expect("port "));
    client_.emplace(net_->spawn(Side::A, "tt-closer", client_body));
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    net_.reset();
  }

  // One connection the server keeps ("leak") or closes ("tidy"); returns
  // the client's port (the server socket's rport).
  int connection(const std::string &what) {
    client_->send("conn " + std::to_string(port_));
    const int lport = std::stoi(client_->expect("lport "));
    server_->send(what);
    const int peer = std::stoi(server_->expect("ok "));
    EXPECT_EQ(peer, lport);
    return lport;
  }

  std::vector<std::string> netns_args() const {
    return {"--netns", std::to_string(net_->inode(Side::B))};
  }

  std::unique_ptr<TestNet> net_;
  std::optional<NsProcess> server_, client_;
  int port_ = 0;
};

// The stuck objects of the latest report, by rport.
std::map<int, Json> last_report(const std::vector<Json> &events) {
  int last = 0;
  for (const Json &e : events)
    if (e.value("event", "") == "stuck")
      last = std::max(last, e.value("report", 0));
  std::map<int, Json> out;
  for (const Json &e : events)
    if (e.value("event", "") == "stuck" && e.value("report", 0) == last)
      out[e["rport"].get<int>()] = e;
  return out;
}

void expect_stuck(const Json &e, pid_t pid, int port, bool preexisting) {
  EXPECT_EQ(e["state"], "CLOSE_WAIT") << e.dump();
  EXPECT_EQ(e["pid"].get<int>(), pid) << e.dump();
  EXPECT_EQ(e["comm"], kServerComm) << e.dump();
  EXPECT_EQ(e["af"], 4);
  EXPECT_EQ(e["laddr"], TestNet::kAddr4B);
  EXPECT_EQ(e["lport"].get<int>(), port);
  EXPECT_EQ(e["raddr"], TestNet::kAddr4A);
  EXPECT_EQ(e["preexisting"].get<bool>(), preexisting) << e.dump();
  EXPECT_TRUE(e["cookie"].is_number_unsigned());
  EXPECT_TRUE(e["age_ns"].is_number_unsigned());
}

TEST_F(LeaksTest, LiveReportsExactlyTheLeakedSockets) {
  std::set<int> pre, live, tidy;
  for (int i = 0; i < 2; ++i)
    pre.insert(connection("leak"));
  tidy.insert(connection("tidy"));

  std::vector<std::string> args = {"leaks",      "--min-age", "0",
                                   "--interval", "300ms",     "--format",
                                   "json",       "--exit-code"};
  for (const auto &a : netns_args())
    args.push_back(a);
  TracerProcess tracer(args);
  TT_START_TRACER(tracer);

  for (int i = 0; i < 3; ++i)
    live.insert(connection("leak"));
  tidy.insert(connection("tidy"));

  const bool complete = tracer.wait_for(
      [&](const std::vector<Json> &ev) {
        return last_report(ev).size() == pre.size() + live.size();
      },
      5s);
  const int rc = tracer.stop();
  const auto events = tracer.events();
  ASSERT_TRUE(complete) << dump(events) << tracer.stderr_text();
  EXPECT_EQ(rc, 3) << tracer.stderr_text();

  const auto stuck = last_report(events);
  ASSERT_EQ(stuck.size(), 5u) << dump(events);
  for (int p : pre) {
    ASSERT_TRUE(stuck.count(p)) << p;
    expect_stuck(stuck.at(p), server_->pid(), port_, true);
  }
  for (int p : live) {
    ASSERT_TRUE(stuck.count(p)) << p;
    expect_stuck(stuck.at(p), server_->pid(), port_, false);
  }
  for (const Json &e : events)
    if (e.value("event", "") == "stuck")
      EXPECT_FALSE(tidy.count(e["rport"].get<int>())) << e.dump();
  // A live entry is timed exactly: younger than the test so far.
  for (int p : live)
    EXPECT_LT(stuck.at(p)["age_ns"].get<std::uint64_t>(), 10'000'000'000ULL);
}

TEST_F(LeaksTest, LeavingTheStateDropsAtOnce) {
  connection("leak");
  std::vector<std::string> args = {"leaks",      "--min-age", "0",
                                   "--interval", "200ms",     "--format",
                                   "json"};
  for (const auto &a : netns_args())
    args.push_back(a);
  TracerProcess tracer(args);
  TT_START_TRACER(tracer);
  connection("leak");
  ASSERT_TRUE(tracer.wait_for(
      [](const auto &ev) { return last_report(ev).size() == 2; }, 5s))
      << dump(tracer.events());
  server_->send("closeall");
  server_->expect("ok ");
  // Reports after the close are empty: JSON prints nothing for them, so
  // the last report with stuck sockets stops growing in number.
  std::this_thread::sleep_for(700ms);
  const auto events = tracer.events();
  int last = 0;
  for (const Json &e : events)
    last = std::max(last, e.value("report", 0));
  std::this_thread::sleep_for(700ms);
  int later = 0;
  for (const Json &e : tracer.events())
    later = std::max(later, e.value("report", 0));
  EXPECT_EQ(tracer.stop(), 0);
  EXPECT_EQ(last, later) << "sockets still reported after close()";
}

TEST_F(LeaksTest, OnceAndExitCode) {
  std::set<int> leaked = {connection("leak"), connection("leak")};
  const int tidy = connection("tidy");
  std::vector<std::string> args = {TCPTRAIL_BINARY, "leaks",    "--once",
                                   "--min-age",     "0",        "--exit-code",
                                   "--format",      "json"};
  for (const auto &a : netns_args())
    args.push_back(a);
  CommandResult r = run_command(args);
  if (r.exit_code == 1)
    TT_SKIP_OR_FAIL(r.output);
  ASSERT_EQ(r.exit_code, 3) << r.output;
  std::istringstream in(r.output);
  std::string line;
  std::set<int> seen;
  while (std::getline(in, line)) {
    const Json e = Json::parse(line);
    expect_stuck(e, server_->pid(), port_, true);
    seen.insert(e["rport"].get<int>());
    // The lower bound holds: no more than the time since the first leak.
    EXPECT_LT(e["age_ns"].get<std::uint64_t>(), 10'000'000'000ULL);
  }
  EXPECT_EQ(seen, leaked);
  EXPECT_FALSE(seen.count(tidy));

  // Clean: nothing stuck for a minute yet, then nothing at all.
  args[4] = "60s";
  r = run_command(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "");
  server_->send("closeall");
  server_->expect("ok ");
  args[4] = "0";
  r = run_command(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// ss -tanp inside the namespace: "STATE local peer pid" per socket.
using SockKey = std::tuple<std::string, std::string, std::string, int>;

std::string ss_state(std::string s) {
  if (s == "ESTABLISHED")
    return "ESTAB";
  if (s == "NEW_SYN_RECV")
    return "SYN-RECV";
  if (s == "FIN_WAIT1" || s == "FIN_WAIT2")
    return "FIN-WAIT-" + s.substr(8);
  for (char &c : s)
    if (c == '_')
      c = '-';
  return s;
}

std::set<SockKey> from_ss(const std::string &out) {
  std::set<SockKey> keys;
  std::istringstream in(out);
  std::string line;
  const std::regex pid_re("pid=([0-9]+)");
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string state, rq, sq, local, peer;
    if (!(f >> state >> rq >> sq >> local >> peer))
      continue;
    if (peer.size() > 2 && peer.substr(peer.size() - 2) == ":*")
      peer = peer.substr(0, peer.size() - 1) + "0";
    std::smatch m;
    const int pid = std::regex_search(line, m, pid_re) ? std::stoi(m[1]) : 0;
    keys.insert({state, local, peer, pid});
  }
  return keys;
}

// netns: only that namespace's sockets (0: all).
std::set<SockKey> from_snapshot(const std::string &out,
                                std::uint64_t netns = 0) {
  std::set<SockKey> keys;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const Json e = Json::parse(line);
    if (netns && e["netns"].get<std::uint64_t>() != netns)
      continue;
    auto ep = [&](const char *addr, const char *port) {
      const std::string a = e[addr];
      const std::string p = std::to_string(e[port].get<int>());
      return e["af"] == 6 ? "[" + a + "]:" + p : a + ":" + p;
    };
    keys.insert({ss_state(e["state"]), ep("laddr", "lport"),
                 ep("raddr", "rport"), e["pid"].get<int>()});
  }
  return keys;
}

TEST_F(LeaksTest, SnapshotAgreesWithSs) {
  connection("leak");
  connection("leak");
  connection("tidy");
  std::this_thread::sleep_for(200ms); // let the tidy one's LAST_ACK finish
  for (Side side : {Side::B, Side::A}) {
    const std::string inode = std::to_string(net_->inode(side));
    CommandResult snap = run_command(
        {TCPTRAIL_BINARY, "snapshot", "--format", "json", "--netns", inode});
    if (snap.exit_code == 1)
      TT_SKIP_OR_FAIL(snap.output);
    ASSERT_EQ(snap.exit_code, 0) << snap.output;
    const std::string ss = net_->exec_ok(side, {"ss", "-tanpH"});
    const auto ours = from_snapshot(snap.output);
    const auto theirs = from_ss(ss);
    EXPECT_EQ(ours, theirs) << "snapshot:\n"
                            << snap.output << "ss:\n"
                            << ss;
    if (side == Side::B) {
      int close_wait = 0;
      for (const auto &k : ours)
        if (std::get<0>(k) == "CLOSE-WAIT") {
          ++close_wait;
          EXPECT_EQ(std::get<3>(k), server_->pid());
        }
      EXPECT_EQ(close_wait, 2);
    }
  }
  // Every namespace at once (walked side by side, bpf/iter.h): the same
  // sockets in each of the two.
  CommandResult all =
      run_command({TCPTRAIL_BINARY, "snapshot", "--format", "json"});
  ASSERT_EQ(all.exit_code, 0) << all.output;
  for (Side side : {Side::B, Side::A}) {
    const std::string ss = net_->exec_ok(side, {"ss", "-tanpH"});
    EXPECT_EQ(from_snapshot(all.output, net_->inode(side)), from_ss(ss))
        << "ss:\n" << ss;
  }
}

// A namespace whose counts say it holds no TCP socket is not walked
// (netns_without_tcp_sockets(), bpf/iter.cpp): one whose only socket is an
// IPv6 listener, counted in sockstat6 alone, must be.
TEST_F(LeaksTest, SnapshotWalksANamespaceWhoseOnlySocketIsIpv6) {
  NsProcess v6 = net_->spawn(Side::A, "tt-v6only", [](ChildChannel &ch) {
    const int s = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, TestNet::kAddr6A, &a.sin6_addr);
    if (s < 0 || bind(s, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0 ||
        listen(s, 8) != 0)
      throw std::runtime_error("v6only: listen failed");
    socklen_t len = sizeof(a);
    getsockname(s, reinterpret_cast<sockaddr *>(&a), &len);
    ch.send("port " + std::to_string(ntohs(a.sin6_port)));
    ch.receive(std::chrono::seconds(50));
  });
  const std::string port = v6.expect("port ");
  const std::string ss = net_->exec_ok(Side::A, {"ss", "-tanpH"});
  ASSERT_NE(ss.find("]:" + port), std::string::npos) << ss;
  CommandResult snap = run_command(
      {TCPTRAIL_BINARY, "snapshot", "--format", "json", "--netns",
       std::to_string(net_->inode(Side::A))});
  if (snap.exit_code == 1)
    TT_SKIP_OR_FAIL(snap.output);
  ASSERT_EQ(snap.exit_code, 0) << snap.output;
  EXPECT_EQ(from_snapshot(snap.output), from_ss(ss)) << snap.output;
  v6.send("quit");
}

// The iterators apply the filters in the kernel (bpf/iter.bpf.c,
// iter_wanted()) and user space again: each filtered snapshot must be the
// same socket set, owners included, as ss's own filter shows.
TEST_F(LeaksTest, FilteredSnapshotAgreesWithSs) {
  connection("leak");
  const int tidy = connection("tidy");
  const int leaked = connection("leak");
  std::this_thread::sleep_for(200ms); // let the tidy one's LAST_ACK finish
  const std::string port = std::to_string(port_);
  // (ss's state filter is not used for the closer's side: it matches a
  // timewait socket by TIME_WAIT, where ss and tcptrail show its substate.)
  struct Case {
    Side side;
    std::vector<std::string> ours;
    std::vector<std::string> ss_filter;
    std::string ss_state; // ss leaves the state column out for one state
    std::size_t at_least; // sockets the filter must find
  };
  const std::vector<Case> cases = {
      {Side::B, {"--state", "CLOSE_WAIT"}, {"state", "close-wait"}, "CLOSE-WAIT", 2},
      {Side::B, {"--state", "LISTEN"}, {"state", "listening"}, "LISTEN", 1},
      {Side::B, {"--lport", port}, {"sport", "=", ":" + port}, "", 3},
      {Side::B,
       {"--rport", std::to_string(leaked)},
       {"dport", "=", ":" + std::to_string(leaked)},
       "",
       1},
      {Side::B,
       {"--state", "CLOSE_WAIT", "--raddr", std::string(TestNet::kAddr4A) + "/32"},
       {"state", "close-wait", "dst", TestNet::kAddr4A},
       "CLOSE-WAIT",
       2},
      {Side::A,
       {"--lport", std::to_string(tidy)},
       {"sport", "=", ":" + std::to_string(tidy)},
       "",
       1}, // its TIME_WAIT
  };
  for (const Case &c : cases) {
    std::vector<std::string> args = {TCPTRAIL_BINARY, "snapshot", "--format",
                                     "json", "--netns",
                                     std::to_string(net_->inode(c.side))};
    args.insert(args.end(), c.ours.begin(), c.ours.end());
    CommandResult snap = run_command(args);
    if (snap.exit_code == 1)
      TT_SKIP_OR_FAIL(snap.output);
    ASSERT_EQ(snap.exit_code, 0) << snap.output;
    std::vector<std::string> ss = {"ss", "-tanpH"};
    ss.insert(ss.end(), c.ss_filter.begin(), c.ss_filter.end());
    const auto ours = from_snapshot(snap.output);
    std::string listed = net_->exec_ok(c.side, ss);
    if (!c.ss_state.empty()) {
      std::istringstream in(listed);
      listed.clear();
      for (std::string line; std::getline(in, line);)
        listed += c.ss_state + " " + line + "\n";
    }
    const auto theirs = from_ss(listed);
    EXPECT_EQ(ours, theirs) << fmt::format("{}", fmt::join(c.ours, " "))
                            << "\nsnapshot:\n" << snap.output;
    EXPECT_GE(ours.size(), c.at_least) << fmt::format("{}", fmt::join(c.ours, " "));
  }
}

} // namespace
} // namespace tcptrail::test
