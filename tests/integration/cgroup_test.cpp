// Container attribution on the real kernel: cgroups (v2) the test makes
// itself under the cgroup2 mount, processes it forks moved into them, real
// connections in its own network namespaces. No container runtime: a
// directory named like Docker's (docker-<64 hex>.scope) proves the mapping.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "cgroup.h"
#include "harness.h"

namespace tcptrail::test {
namespace {

constexpr auto kSettle = 300ms;

// A cgroup this test made: removed at destruction (deepest first), its
// processes moved back to the root first, also when the test failed.
class TestCgroups {
public:
  explicit TestCgroups(std::string mount) : mount_(std::move(mount)) {
    base_ = fmt::format("/tt-test-{}", getpid());
    make(base_);
  }
  ~TestCgroups() {
    for (auto it = made_.rbegin(); it != made_.rend(); ++it) {
      const std::string dir = mount_ + *it;
      std::ifstream procs(dir + "/cgroup.procs");
      std::string pid;
      while (procs >> pid) {
        std::ofstream root(mount_ + "/cgroup.procs");
        root << pid << std::flush;
      }
      rmdir(dir.c_str());
    }
  }
  TestCgroups(const TestCgroups &) = delete;
  TestCgroups &operator=(const TestCgroups &) = delete;

  // Makes base/rel (and parents); returns its path relative to the root.
  std::string make(const std::string &rel_or_base) {
    std::string rel = rel_or_base.rfind(base_, 0) == 0
                          ? rel_or_base
                          : base_ + "/" + rel_or_base;
    std::string partial;
    std::size_t pos = 1;
    while (pos <= rel.size()) {
      std::size_t next = rel.find('/', pos);
      if (next == std::string::npos)
        next = rel.size();
      partial = rel.substr(0, next);
      if (mkdir((mount_ + partial).c_str(), 0755) == 0)
        made_.push_back(partial);
      else if (errno != EEXIST)
        throw std::runtime_error(fmt::format("mkdir {}{}: {}", mount_, partial,
                                             std::strerror(errno)));
      pos = next + 1;
    }
    return rel;
  }
  void move(pid_t pid, const std::string &rel) const {
    std::ofstream procs(mount_ + rel + "/cgroup.procs");
    procs << pid << std::flush;
    if (!procs)
      throw std::runtime_error(
          fmt::format("moving {} into {}{}", pid, mount_, rel));
  }
  std::uint64_t id(const std::string &rel) const {
    struct stat st {};
    if (stat((mount_ + rel).c_str(), &st) != 0)
      throw std::runtime_error("stat " + mount_ + rel);
    return st.st_ino;
  }
  const std::string &base() const { return base_; }
  const std::string &mount() const { return mount_; }

private:
  std::string mount_;
  std::string base_;
  std::vector<std::string> made_;
};

// 64 lower-case hex digits, unique to this run.
std::string container_id() {
  std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{:016x}{:016x}{:016x}{:016x}", rng(), rng(), rng(),
                     static_cast<std::uint64_t>(getpid()));
}

class CgroupTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto missing = missing_prerequisite())
      TT_SKIP_OR_FAIL(*missing);
    auto tree = CgroupTree::open(1);
    if (!tree)
      TT_SKIP_OR_FAIL("no cgroup2 file system mounted");
    cg_ = std::make_unique<TestCgroups>(tree->mount());
    net_ = std::make_unique<TestNet>();
  }
  void TearDown() override {
    net_.reset();
    cg_.reset();
  }

  std::vector<std::string> args(std::vector<std::string> extra) const {
    std::vector<std::string> a = {"trace", "--format", "json", "--netns",
                                  std::to_string(net_->inode(Side::B))};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // A server in B's namespace, forked gated, moved into `rel`, listening.
  Server server_in(const std::string &rel, std::uint16_t port,
                   const std::string &comm) {
    Server s(*net_, Side::B,
             {.addr = TestNet::addr4(Side::B),
              .port = port,
              .exchange = {.send_bytes = 1000, .recv_bytes = 100},
              .comm = comm,
              .gated = true});
    if (!rel.empty())
      cg_->move(s.pid(), rel);
    return s;
  }
  ClientResult client(std::uint16_t port) {
    return run_client(*net_, Side::A,
                      {.addr = TestNet::addr4(Side::B),
                       .port = port,
                       .exchange = {.send_bytes = 100,
                                    .recv_bytes = 1000,
                                    .close_first = true}});
  }

  static bool is(const Json &ev, std::uint16_t lport, std::uint16_t rport) {
    return ev.value("lport", 0) == lport && ev.value("rport", 0) == rport;
  }
  std::vector<Json> stop(TracerProcess &t) {
    std::this_thread::sleep_for(kSettle);
    EXPECT_EQ(t.stop(), 0) << t.stderr_text();
    return t.events();
  }

  std::unique_ptr<TestCgroups> cg_;
  std::unique_ptr<TestNet> net_;
};

// Every state event of the server's sockets (the listener and the accepted
// one: its handshake and the peer's FIN are handled in softirq context) has
// the server's cgroup, path and container id.
TEST_F(CgroupTest, EventsCarryTheOwnersCgroupAndContainer) {
  const std::string id = container_id();
  const std::string scope = cg_->make("system.slice/docker-" + id + ".scope");
  TracerProcess t(args({}));
  TT_START_TRACER(t);
  Server s = server_in(scope, 5001, "tt-cg-srv");
  s.listen();
  ClientResult c = client(5001);
  s.finish();
  ASSERT_TRUE(t.wait_for([&](const std::vector<Json> &evs) {
    return !cookies_where(evs,
                          [&](const Json &ev) {
                            return is(ev, 5001, c.local_port) &&
                                   ev["new"] == "CLOSE";
                          })
                .empty() &&
           !cookies_where(evs, [&](const Json &ev) {
              return is(ev, 5001, 0) && ev["new"] == "CLOSE";
            }).empty();
  })) << dump(t.events());
  auto events = stop(t);

  const auto accepted = cookies_where(
      events, [&](const Json &ev) { return is(ev, 5001, c.local_port); });
  const auto listener =
      cookies_where(events, [&](const Json &ev) { return is(ev, 5001, 0); });
  ASSERT_EQ(accepted.size(), 1u) << dump(events);
  ASSERT_EQ(listener.size(), 1u) << dump(events);
  const std::uint64_t cgid = cg_->id(scope);
  int off_cpu = 0;
  for (std::uint64_t cookie : {accepted[0], listener[0]}) {
    for (const Json &ev : events_of(events, cookie)) {
      EXPECT_EQ(ev["cgroup_id"], cgid) << ev.dump();
      EXPECT_EQ(ev["cgroup"], scope) << ev.dump();
      EXPECT_EQ(ev["container"], id) << ev.dump();
      EXPECT_TRUE(ev["pod"].is_null()) << ev.dump();
      EXPECT_EQ(ev["pid"], s.pid()) << ev.dump();
      if (ev["cpu_pid"] != s.pid())
        ++off_cpu;
    }
  }
  EXPECT_GT(off_cpu, 0) << "no transition ran off the server's CPU: "
                        << dump(events);
  EXPECT_EQ(transitions(events, accepted[0]).front(), "LISTEN->SYN_RECV");
}

// A client without socket storage (trace's lazy mode): its cgroup comes
// from the socket itself in softirq context, from the task at connect().
TEST_F(CgroupTest, ClientSocketsCarryTheirCgroup) {
  const std::string rel = cg_->make("clients/one");
  // The server closes first, 100 ms after the exchange, while the client
  // sleeps in recv() (its socket unlocked): the FIN moves the client to
  // CLOSE_WAIT in the server's context (veth delivers in the sender's
  // softirq), off the client's CPU.
  Server s(*net_, Side::B,
           {.addr = TestNet::addr4(Side::B),
            .port = 5001,
            .exchange = {.send_bytes = 1000,
                         .recv_bytes = 100,
                         .close_first = true,
                         .active_close_delay = 100ms},
            .comm = "tt-cg-srv",
            .gated = true});
  s.listen();
  TracerProcess t({"trace", "--format", "json", "--netns",
                   std::to_string(net_->inode(Side::A))});
  TT_START_TRACER(t);
  NsProcess cli = net_->spawn(Side::A, "tt-cg-cli", [](ChildChannel &ch) {
    if (ch.receive(kIoTimeout) != "go")
      throw std::runtime_error("no go");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(5001);
    inet_pton(AF_INET, TestNet::kAddr4B, &sa.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) != 0)
      throw std::runtime_error("connect failed");
    sockaddr_in local{};
    socklen_t len = sizeof(local);
    getsockname(fd, reinterpret_cast<sockaddr *>(&local), &len);
    char buf[100] = {};
    if (send(fd, buf, sizeof(buf), 0) != sizeof(buf))
      throw std::runtime_error("send failed");
    // Everything, up to the server's FIN.
    while (recv(fd, buf, sizeof(buf), 0) > 0) {
    }
    ch.send("port " + std::to_string(ntohs(local.sin_port)));
    close(fd);
  });
  cg_->move(cli.pid(), rel);
  cli.send("go");
  const auto port = static_cast<std::uint16_t>(std::stoi(cli.expect("port ")));
  cli.finish();
  s.finish();
  ASSERT_TRUE(t.wait_for([&](const std::vector<Json> &evs) {
    return !cookies_where(evs, [&](const Json &ev) {
              return is(ev, port, 5001) &&
                     (ev["new"] == "TIME_WAIT" || ev["new"] == "CLOSE");
            }).empty();
  })) << dump(t.events());
  auto events = stop(t);
  const auto cookies =
      cookies_where(events, [&](const Json &ev) { return is(ev, port, 5001); });
  ASSERT_EQ(cookies.size(), 1u) << dump(events);
  const auto evs = events_of(events, cookies[0]);
  ASSERT_GE(evs.size(), 4u) << dump(events);
  int off_cpu = 0;
  for (const Json &ev : evs) {
    EXPECT_EQ(ev["cgroup_id"], cg_->id(rel)) << ev.dump();
    EXPECT_EQ(ev["cgroup"], rel) << ev.dump();
    EXPECT_TRUE(ev["container"].is_null()) << ev.dump();
    EXPECT_EQ(ev["pid"], cli.pid()) << ev.dump();
    if (ev["cpu_pid"] != cli.pid())
      ++off_cpu;
  }
  // ESTABLISHED -> CLOSE_WAIT ran in the server's context.
  EXPECT_GT(off_cpu, 0) << dump(events);
}

// A listener that existed before the tracer (seeded from the task
// iterator): its children inherit the owner's cgroup.
TEST_F(CgroupTest, SeededListenerHasItsOwnersCgroup) {
  const std::string rel = cg_->make("seeded");
  Server s = server_in(rel, 5001, "tt-cg-srv");
  s.listen();
  TracerProcess t(args({}));
  TT_START_TRACER(t);
  ClientResult c = client(5001);
  s.finish();
  ASSERT_TRUE(t.wait_for([&](const std::vector<Json> &evs) {
    return !cookies_where(evs, [&](const Json &ev) {
              return is(ev, 5001, 0) && ev["new"] == "CLOSE";
            }).empty();
  })) << dump(t.events());
  auto events = stop(t);
  const auto accepted = cookies_where(
      events, [&](const Json &ev) { return is(ev, 5001, c.local_port); });
  ASSERT_EQ(accepted.size(), 1u) << dump(events);
  for (const Json &ev : events_of(events, accepted[0])) {
    EXPECT_EQ(ev["cgroup_id"], cg_->id(rel)) << ev.dump();
    EXPECT_EQ(ev["cgroup"], rel) << ev.dump();
  }
}

// --cgroup: the cgroup and its descendants, filtered in the kernel (trace
// checks no cgroup in user space): the connection accepted by the server in
// a child cgroup shows; the one accepted outside and the client's own
// socket (root cgroup) do not.
TEST_F(CgroupTest, CgroupFilterKeepsDescendantsOnly) {
  const std::string in = cg_->make("in");
  const std::string leaf = cg_->make("in/leaf");
  const std::string out = cg_->make("out");
  Server s_out = server_in(out, 5002, "tt-cg-out");
  Server s_in = server_in(leaf, 5001, "tt-cg-in");
  // With an address filter too: both compiled in, the state program's
  // birth subprogram once failed verification (R0 held a stack pointer).
  TracerProcess t(args({"--cgroup", in, "--raddr", "198.18.0.0/15"}));
  TT_START_TRACER(t);
  s_out.listen();
  s_in.listen();
  ClientResult c_out = client(5002);
  s_out.finish();
  ClientResult c_in = client(5001);
  s_in.finish();
  ASSERT_TRUE(t.wait_for([&](const std::vector<Json> &evs) {
    return !cookies_where(evs, [&](const Json &ev) {
              return is(ev, 5001, c_in.local_port) && ev["new"] == "CLOSE";
            }).empty();
  })) << dump(t.events());
  auto events = stop(t);
  std::set<std::uint64_t> cookies;
  for (const Json &ev : events) {
    ASSERT_EQ(ev["event"], "state") << ev.dump();
    EXPECT_TRUE(is(ev, 5001, c_in.local_port)) << ev.dump();
    EXPECT_EQ(ev["cgroup_id"], cg_->id(leaf)) << ev.dump();
    EXPECT_EQ(ev["cgroup"], leaf) << ev.dump();
    cookies.insert(ev["cookie"].get<std::uint64_t>());
  }
  // The accepted socket only: the listener's remote end (0.0.0.0) is
  // outside --raddr.
  EXPECT_EQ(cookies.size(), 1u) << dump(events);
  (void)c_out;
}

// --container: a unique prefix names the container's cgroup; snapshot
// shows the same attribution for sockets that exist now.
TEST_F(CgroupTest, ContainerFilterAndSnapshot) {
  const std::string id = container_id();
  const std::string scope = cg_->make("system.slice/docker-" + id + ".scope");
  const std::string other = cg_->make("other");
  Server s_other = server_in(other, 5002, "tt-cg-out");
  Server s_in = server_in(scope, 5001, "tt-cg-in");
  s_other.listen();
  s_in.listen();

  // snapshot --container: both listeners exist now; only one is its.
  auto snap = run_command({TCPTRAIL_BINARY, "snapshot", "--format", "json",
                           "--container", id.substr(0, 16)});
  ASSERT_EQ(snap.exit_code, 0) << snap.output;
  int listeners = 0;
  std::istringstream lines(snap.output);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{')
      continue;
    Json ev = Json::parse(line);
    EXPECT_EQ(ev["container"], id) << line;
    EXPECT_EQ(ev["cgroup"], scope) << line;
    EXPECT_EQ(ev["cgroup_id"], cg_->id(scope)) << line;
    if (ev["state"] == "LISTEN" && ev["lport"] == 5001)
      ++listeners;
  }
  EXPECT_EQ(listeners, 1) << snap.output;

  TracerProcess t(args({"--container", id.substr(0, 12)}));
  TT_START_TRACER(t);
  client(5002);
  s_other.finish();
  ClientResult c = client(5001);
  s_in.finish();
  ASSERT_TRUE(t.wait_for([&](const std::vector<Json> &evs) {
    return !cookies_where(evs, [&](const Json &ev) {
              return is(ev, 5001, 0) && ev["new"] == "CLOSE";
            }).empty();
  })) << dump(t.events());
  auto events = stop(t);
  ASSERT_FALSE(events.empty());
  for (const Json &ev : events) {
    EXPECT_EQ(ev["lport"], 5001) << ev.dump();
    EXPECT_EQ(ev["container"], id) << ev.dump();
  }
  EXPECT_FALSE(
      cookies_where(events,
                    [&](const Json &ev) { return is(ev, 5001, c.local_port); })
          .empty())
      << dump(events);
}

// history: each connection record carries its owner's cgroup; --cgroup
// keeps only the records of sockets owned inside it.
TEST_F(CgroupTest, HistoryRecordsCarryAndFilterByCgroup) {
  const std::string id = container_id();
  const std::string scope = cg_->make("system.slice/docker-" + id + ".scope");
  const std::string other = cg_->make("other");
  Server s_other = server_in(other, 5002, "tt-cg-out");
  Server s_in = server_in(scope, 5001, "tt-cg-in");
  TracerProcess t({"history", "-f", "json", "--netns",
                   std::to_string(net_->inode(Side::B)), "--cgroup",
                   cg_->base() + "/system.slice"});
  TT_START_TRACER(t);
  s_other.listen();
  s_in.listen();
  client(5002);
  s_other.finish();
  ClientResult c = client(5001);
  s_in.finish();
  auto done = [&](const std::vector<Json> &evs) {
    int n = 0;
    for (const Json &ev : evs)
      n += ev.value("event", "") == "connection" && ev["lport"] == 5001;
    return n >= 2; // the accepted connection and the listener
  };
  ASSERT_TRUE(t.wait_for(done, 5s)) << dump(t.events());
  auto events = stop(t);
  int accepted = 0;
  for (const Json &ev : events) {
    if (ev.value("event", "") != "connection")
      continue;
    EXPECT_EQ(ev["lport"], 5001) << ev.dump();
    EXPECT_EQ(ev["cgroup_id"], cg_->id(scope)) << ev.dump();
    EXPECT_EQ(ev["cgroup"], scope) << ev.dump();
    EXPECT_EQ(ev["container"], id) << ev.dump();
    accepted += ev["rport"] == c.local_port;
  }
  EXPECT_EQ(accepted, 1) << dump(events);
}

// leaks --once: a CLOSE_WAIT socket held by a process in a container's
// cgroup is reported with that cgroup; --container keeps only its sockets.
TEST_F(CgroupTest, LeaksReportTheOwnersContainer) {
  const std::string id = container_id();
  const std::string scope = cg_->make("system.slice/docker-" + id + ".scope");
  // The server sits in CLOSE_WAIT for 3 s after the client's FIN.
  Server s(*net_, Side::B,
           {.addr = TestNet::addr4(Side::B),
            .port = 5001,
            .exchange = {.send_bytes = 1000,
                         .recv_bytes = 100,
                         .passive_close_delay = 3000ms},
            .comm = "tt-cg-leak",
            .gated = true});
  cg_->move(s.pid(), scope);
  s.listen();
  // The client closes at once (no wait for the server's FIN).
  ClientResult c = run_client(*net_, Side::A,
                              {.addr = TestNet::addr4(Side::B),
                               .port = 5001,
                               .exchange = {.send_bytes = 100,
                                            .recv_bytes = 1000,
                                            .close_first = true,
                                            .close_mode = CloseMode::Close}});
  std::this_thread::sleep_for(200ms); // the client's FIN is in
  std::vector<std::string> argv = {
      TCPTRAIL_BINARY, "leaks",   "--once",
      "--min-age",     "0",       "--format",
      "json",          "--netns", std::to_string(net_->inode(Side::B))};
  auto all = run_command(argv);
  argv.push_back("--container");
  argv.push_back(id.substr(0, 12));
  auto mine = run_command(argv);
  s.finish();
  if (all.exit_code == 1)
    TT_SKIP_OR_FAIL(all.output);
  ASSERT_EQ(all.exit_code, 0) << all.output;
  ASSERT_EQ(mine.exit_code, 0) << mine.output;
  int stuck = 0;
  std::istringstream in(mine.output);
  for (std::string line; std::getline(in, line);) {
    const Json e = Json::parse(line);
    EXPECT_EQ(e["state"], "CLOSE_WAIT") << line;
    EXPECT_EQ(e["pid"], s.pid()) << line;
    EXPECT_EQ(e["cgroup_id"], cg_->id(scope)) << line;
    EXPECT_EQ(e["cgroup"], scope) << line;
    EXPECT_EQ(e["container"], id) << line;
    stuck += e["rport"] == c.local_port;
  }
  EXPECT_EQ(stuck, 1) << mine.output;
  EXPECT_NE(all.output.find("\"container\":\"" + id + "\""), std::string::npos)
      << all.output;
}

// Bad --cgroup / --container arguments: one clear line, exit 2, no BPF.
TEST_F(CgroupTest, BadArgumentsAreClearErrors) {
  const std::string id = container_id();
  std::string twin = id;
  twin[40] = twin[40] == '0' ? '1' : '0'; // same first 40 digits
  cg_->make("a/docker-" + id + ".scope");
  cg_->make("b/docker-" + twin + ".scope");
  struct Case {
    std::vector<std::string> args;
    std::string want;
  };
  const Case cases[] = {
      {{"--cgroup", cg_->base() + "/nonexistent"}, "no such cgroup"},
      {{"--cgroup", cg_->base() + "/../etc"}, "no such cgroup"},
      {{"--container", "zzzz"}, "not a container id"},
      {{"--container", std::string(65, 'a')}, "not a container id"},
      {{"--container", "ffffffffffffffffffffffffffffffffffffffff00"},
       "no running container"},
      {{"--container", id.substr(0, 40)}, "ambiguous, 2 containers"},
      {{"--cgroup", "/", "--container", "ab"}, "excludes"},
  };
  for (const Case &c : cases) {
    for (const char *mode : {"trace", "snapshot"}) {
      std::vector<std::string> argv = {TCPTRAIL_BINARY, mode};
      argv.insert(argv.end(), c.args.begin(), c.args.end());
      auto r = run_command(argv);
      EXPECT_EQ(r.exit_code, 2) << mode << " " << c.args[1] << ": " << r.output;
      EXPECT_NE(r.output.find(c.want), std::string::npos)
          << mode << " " << c.args[1] << ": " << r.output;
      EXPECT_EQ(r.output.find("tcptrail: ready"), std::string::npos);
    }
  }
  // The full id of one of them is not ambiguous.
  auto ok = run_command(
      {TCPTRAIL_BINARY, "snapshot", "--container", id, "--format", "json"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

} // namespace
} // namespace tcptrail::test

namespace tcptrail::test {
namespace {

// serve labels a listener's groups with the container its owner runs in.
TEST_F(CgroupTest, ServeLabelsTheOwnersContainer) {
  const std::string id = container_id();
  const std::string scope = cg_->make("system.slice/docker-" + id + ".scope");
  // A loopback port free now, for the metrics endpoint.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len), 0);
  const std::string where = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  close(fd);
  TracerProcess t({"serve", "--listen", where, "--netns",
                   std::to_string(net_->inode(Side::B))});
  TT_START_TRACER(t);
  Server s = server_in(scope, 5002, "tt-cg-srv");
  s.listen();
  const std::string want = "tcptrail_listen_accept_queue_limit{comm=\"tt-cg-"
                           "srv\",container=\"" +
                           id + "\",lport=\"5002\"}";
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    text = run_command({"curl", "-sS", "--max-time", "5",
                        "http://" + where + "/metrics"})
               .output;
    if (text.find(want) != std::string::npos)
      break;
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_NE(text.find(want), std::string::npos) << text;
  ClientResult c = client(5002);
  s.finish();
  EXPECT_EQ(t.stop(), 0) << t.stderr_text();
}

} // namespace
} // namespace tcptrail::test
