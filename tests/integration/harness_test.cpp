// Tests of the integration harness itself: namespaces, endpoints, cleanup.
// Need root, not the tcptrail binary.
#include "harness.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

namespace tcptrail::test {
namespace {

bool netns_exists(const std::string &name) {
  return std::filesystem::exists("/run/netns/" + name);
}

std::uint64_t own_netns_inode() {
  struct stat st {};
  EXPECT_EQ(stat("/proc/self/ns/net", &st), 0);
  return st.st_ino;
}

class HarnessTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (geteuid() != 0)
      TT_SKIP_OR_FAIL("harness tests need root (network namespaces)");
  }
};

TEST_F(HarnessTest, NamespacesComeUpAndAreDeleted) {
  std::string a, b;
  auto own = own_netns_inode();
  {
    TestNet net;
    a = net.name(Side::A);
    b = net.name(Side::B);
    EXPECT_TRUE(a.starts_with("tt-" + std::to_string(getpid()) + "-"));
    EXPECT_TRUE(netns_exists(a));
    EXPECT_TRUE(netns_exists(b));
    EXPECT_NE(net.inode(Side::A), 0u);
    EXPECT_NE(net.inode(Side::A), net.inode(Side::B));
    EXPECT_NE(net.inode(Side::A), own);

    auto addrs = net.exec_ok(Side::A, {"ip", "-o", "addr", "show"});
    EXPECT_NE(addrs.find("inet 198.18.0.1/24"), std::string::npos) << addrs;
    EXPECT_NE(addrs.find("inet6 2001:db8::1/64"), std::string::npos) << addrs;
    EXPECT_NE(addrs.find("lo "), std::string::npos) << addrs;
    auto lo = net.exec_ok(Side::B, {"ip", "-o", "link", "show", "lo"});
    EXPECT_NE(lo.find(",UP"), std::string::npos) << lo;

    net.sysctl(Side::A, "net.ipv4.tcp_syn_retries", "2");
    EXPECT_EQ(net.sh(Side::A, "cat /proc/sys/net/ipv4/tcp_syn_retries"),
              "2\n");
    EXPECT_NE(net.sh(Side::B, "cat /proc/sys/net/ipv4/tcp_syn_retries"),
              "2\n")
        << "sysctl leaked out of namespace A";
  }
  EXPECT_FALSE(netns_exists(a));
  EXPECT_FALSE(netns_exists(b));
  EXPECT_EQ(own_netns_inode(), own) << "the test process changed namespace";
}

TEST_F(HarnessTest, ChildrenRunInsideTheNamespace) {
  TestNet net;
  auto own = own_netns_inode();
  NsProcess child = net.spawn(Side::B, "tt-probe", [](ChildChannel &ch) {
    struct stat st {};
    stat("/proc/self/ns/net", &st);
    char comm[32] = {};
    FILE *f = fopen("/proc/self/comm", "r");
    if (f) {
      if (!fgets(comm, sizeof(comm), f))
        comm[0] = 0;
      fclose(f);
    }
    ch.send("inode " + std::to_string(st.st_ino));
    ch.send(std::string("comm ") + comm); // has its own '\n'
    auto go = ch.receive();
    ch.send("got " + go.value_or("nothing"));
  });
  EXPECT_EQ(child.expect("inode "), std::to_string(net.inode(Side::B)));
  EXPECT_EQ(child.expect("comm "), "tt-probe");
  child.send("go");
  EXPECT_EQ(child.expect("got "), "go");
  child.finish();
  EXPECT_EQ(own_netns_inode(), own);
}

TEST_F(HarnessTest, ChildErrorsAndTimeoutsAreReported) {
  TestNet net;
  NsProcess failing = net.spawn(Side::A, "tt-fail", [](ChildChannel &) {
    throw std::runtime_error("deliberate");
  });
  EXPECT_THROW(
      {
        try {
          failing.expect("never ");
        } catch (const std::runtime_error &e) {
          EXPECT_NE(std::string(e.what()).find("deliberate"),
                    std::string::npos)
              << e.what();
          throw;
        }
      },
      std::runtime_error);

  NsProcess stuck = net.spawn(Side::A, "tt-stuck", [](ChildChannel &) {
    std::this_thread::sleep_for(30s);
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(stuck.finish(300ms), std::runtime_error);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(kill(stuck.pid(), 0), -1) << "stuck child was not killed";
}

TEST_F(HarnessTest, TcpWorksBetweenTheNamespacesOverIpv4AndIpv6) {
  TestNet net;
  for (const auto &addr : {TestNet::addr4(Side::B), TestNet::addr6(Side::B)}) {
    SCOPED_TRACE(addr);
    Server server(net, Side::B,
                  {.addr = addr,
                   .port = 5001,
                   .exchange = {.send_bytes = 100, .recv_bytes = 1000}});
    EXPECT_EQ(server.port(), 5001);
    auto client = run_client(
        net, Side::A,
        {.addr = addr,
         .port = 5001,
         .exchange = {.send_bytes = 1000, .recv_bytes = 100,
                      .close_first = true}});
    EXPECT_NE(client.local_port, 0);
    EXPECT_NE(client.pid, getpid());
    EXPECT_NE(client.pid, server.pid());
    auto peers = server.finish();
    ASSERT_EQ(peers.size(), 1u);
    EXPECT_EQ(peers[0], client.local_port);
  }
  // Server closes first, and an abort.
  Server server(net, Side::B,
                {.addr = TestNet::addr4(Side::B),
                 .port = 5002,
                 .connections = 1,
                 .exchange = {.send_bytes = 10, .recv_bytes = 10,
                              .close_first = true}});
  run_client(net, Side::A,
             {.addr = TestNet::addr4(Side::B),
              .port = 5002,
              .exchange = {.send_bytes = 10, .recv_bytes = 10,
                           .close_first = false}});
  server.finish();
  Server aborted(net, Side::B,
                 {.addr = TestNet::addr4(Side::B), .port = 5003, .exchange = {}});
  run_client(net, Side::A,
             {.addr = TestNet::addr4(Side::B),
              .port = 5003,
              .exchange = {.close_first = true,
                           .close_mode = CloseMode::Abort}});
  aborted.finish();
}

TEST_F(HarnessTest, RefusedConnectIsReported) {
  TestNet net;
  auto client = run_client(
      net, Side::A,
      {.addr = TestNet::addr4(Side::B), .port = 5009, .expect_refused = true});
  EXPECT_EQ(client.connect_errno, ECONNREFUSED);
  EXPECT_THROW(run_client(net, Side::A,
                          {.addr = TestNet::addr4(Side::B), .port = 5009}),
               std::runtime_error);
}

TEST_F(HarnessTest, NamespacesAreDeletedWhenTheTestThrows) {
  std::string a, b;
  EXPECT_THROW(
      {
        TestNet net;
        a = net.name(Side::A);
        b = net.name(Side::B);
        throw std::runtime_error("test body failed");
      },
      std::runtime_error);
  EXPECT_FALSE(netns_exists(a));
  EXPECT_FALSE(netns_exists(b));
}

TEST_F(HarnessTest, StaleNamespacesOfDeadRunsAreRemoved) {
  // A pid that is certainly dead: a reaped child of ours.
  pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0)
    _exit(0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
  std::string stale = "tt-" + std::to_string(dead) + "-0-a";
  std::string live = "tt-" + std::to_string(getpid()) + "-999-b";
  std::string foreign = "tt-other-name";
  for (const auto &n : {stale, live, foreign})
    check_command({"ip", "netns", "add", n});
  cleanup_stale_namespaces();
  EXPECT_FALSE(netns_exists(stale));
  EXPECT_TRUE(netns_exists(live));
  EXPECT_TRUE(netns_exists(foreign));
  for (const auto &n : {stale, live, foreign})
    run_command({"ip", "netns", "del", n});
}

} // namespace
} // namespace tcptrail::test
