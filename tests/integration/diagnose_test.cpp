// `tcptrail diagnose` against the real kernel: each verdict produced on
// purpose between two test namespaces (A: clients 198.18.0.1, B: servers
// 198.18.0.2), watched with `diagnose --netns <inode>` so that the host's
// other traffic cannot leak into the verdicts, and a clean run that must
// produce none. The tracer runs with a long --duration and is ended by
// SIGINT, which must still print the report.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace tcptrail::test {
namespace {

// ---------------------------------------------------------------------------
// Socket code run inside the namespaces (forked children).

int tcp_socket() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  return fd;
}

sockaddr_in addr_of(const std::string &ip, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// Connects (blocking); returns the fd, or -errno.
int connect_to(const std::string &ip, std::uint16_t port) {
  const int fd = tcp_socket();
  const sockaddr_in a = addr_of(ip, port);
  if (connect(fd, reinterpret_cast<const sockaddr *>(&a), sizeof(a)) != 0) {
    const int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

void send_all(int fd, std::size_t n) {
  std::string buf(n, 'x');
  std::size_t off = 0;
  while (off < n) {
    const ssize_t w = send(fd, buf.data() + off, n - off, MSG_NOSIGNAL);
    if (w <= 0)
      throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    off += static_cast<std::size_t>(w);
  }
}

void read_to_eof(int fd) {
  char buf[65536];
  while (true) {
    const ssize_t r = read(fd, buf, sizeof(buf));
    if (r <= 0)
      return;
  }
}

enum class ServeMode {
  Drain,    // accept, read to EOF, close
  Hold,     // accept, never close (until told to quit)
  NoAccept, // never accept
};

// A listener on 198.18.0.2 (in B). Sends "port N", serves until "quit".
NsProcess::Body server_body(ServeMode mode, int backlog) {
  return [mode, backlog](ChildChannel &ch) {
    const int lfd = tcp_socket();
    const int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a = addr_of(TestNet::kAddr4B, 0);
    if (bind(lfd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0 ||
        listen(lfd, backlog) != 0)
      throw std::runtime_error(std::string("bind/listen: ") + std::strerror(errno));
    socklen_t len = sizeof(a);
    getsockname(lfd, reinterpret_cast<sockaddr *>(&a), &len);
    ch.send("port " + std::to_string(ntohs(a.sin_port)));
    std::vector<int> held;
    while (true) {
      if (mode != ServeMode::NoAccept) {
        pollfd p{lfd, POLLIN, 0};
        if (poll(&p, 1, 20) == 1) {
          const int fd = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
          if (fd >= 0) {
            if (mode == ServeMode::Drain) {
              read_to_eof(fd);
              close(fd);
            } else {
              held.push_back(fd);
            }
          }
          continue;
        }
      }
      auto line = ch.receive(20ms);
      if (line && *line == "quit")
        break;
    }
    ch.send("done");
  };
}

struct ClientPlan {
  std::uint16_t port = 0;
  int connections = 1;
  std::size_t send_bytes = 0;
  bool abort = false;             // SO_LINGER {1,0}: RST instead of FIN
  bool shutdown_and_wait = false; // FIN first, wait for the server's FIN
  bool keep_open = false;         // keep every socket until "quit"
  bool nonblocking = false;       // fire connects, don't wait (SYN flood)
};

// Clients in A. Reports "result ok=N refused=N timedout=N other=N".
NsProcess::Body client_body(ClientPlan plan) {
  return [plan](ChildChannel &ch) {
    int ok = 0, refused = 0, timedout = 0, other = 0;
    std::vector<int> kept;
    for (int i = 0; i < plan.connections; ++i) {
      if (plan.nonblocking) {
        const int fd = tcp_socket();
        fcntl(fd, F_SETFL, O_NONBLOCK);
        const sockaddr_in a = addr_of(TestNet::kAddr4B, plan.port);
        connect(fd, reinterpret_cast<const sockaddr *>(&a), sizeof(a));
        kept.push_back(fd);
        ++ok;
        continue;
      }
      const int fd = connect_to(TestNet::kAddr4B, plan.port);
      if (fd == -ECONNREFUSED) {
        ++refused;
        continue;
      }
      if (fd == -ETIMEDOUT) {
        ++timedout;
        continue;
      }
      if (fd < 0) {
        ++other;
        continue;
      }
      ++ok;
      if (plan.send_bytes)
        send_all(fd, plan.send_bytes);
      if (plan.keep_open) {
        kept.push_back(fd);
        continue;
      }
      if (plan.abort) {
        const linger l{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        usleep(20000); // let the data be delivered first
      } else if (plan.shutdown_and_wait) {
        shutdown(fd, SHUT_WR);
        read_to_eof(fd);
      }
      close(fd);
    }
    ch.send("result ok=" + std::to_string(ok) + " refused=" +
            std::to_string(refused) + " timedout=" + std::to_string(timedout) +
            " other=" + std::to_string(other));
    if (plan.keep_open || plan.nonblocking) {
      while (true) {
        auto line = ch.receive(100ms);
        if (line && *line == "quit")
          break;
      }
    }
  };
}

// ---------------------------------------------------------------------------

class Diagnose : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto missing = missing_prerequisite())
      TT_SKIP_OR_FAIL(*missing);
    net_ = std::make_unique<TestNet>();
  }

  // Starts `tcptrail diagnose --netns <side> --format json`.
  std::unique_ptr<TracerProcess> start(Side side,
                                       std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"diagnose", "--format", "json",
                                     "--duration", "120s", "--netns",
                                     std::to_string(net_->inode(side))};
    args.insert(args.end(), extra.begin(), extra.end());
    auto t = std::make_unique<TracerProcess>(args);
    auto res = t->start();
    if (res.status != TracerProcess::StartStatus::Ready)
      throw std::runtime_error("diagnose did not start: " + res.message);
    return t;
  }

  // SIGINT, then the report: one JSON document on stdout.
  Json finish(TracerProcess &t, int expected_exit) {
    const int rc = t.stop();
    std::string text;
    for (const auto &l : t.stdout_lines())
      text += l + "\n";
    Json doc;
    try {
      doc = Json::parse(text);
    } catch (const std::exception &e) {
      ADD_FAILURE() << "report is not JSON: " << e.what() << "\n" << text
                    << "\nstderr: " << t.stderr_text();
      return Json::object();
    }
    EXPECT_EQ(doc.value("schema", ""), "tcptrail.diagnose/1");
    // Under emulation (scripts/vmtest.sh sets TCPTRAIL_VM) the kernel now
    // and then skips a state program run nested in another on the same CPU
    // (a softirq on top of a run the emulator made slow); tcptrail counts it
    // as lost and reports events_lost, exit 3. Seen once in a 20-connection
    // run on the 7.3.4 guest. There, a few such losses are set aside with
    // their problem, and every other check applies to the rest.
    const std::uint64_t lost = doc.value("lost", std::uint64_t{1});
    if (lost > 0 && lost <= 5 && std::getenv("TCPTRAIL_VM") &&
        doc.contains("problems")) {
      Json &problems = doc["problems"];
      problems.erase(std::remove_if(problems.begin(), problems.end(),
                                    [](const Json &p) {
                                      return p.value("kind", "") == "events_lost";
                                    }),
                     problems.end());
      if (expected_exit == 0 && problems.empty() && rc == 3)
        return doc;
      EXPECT_EQ(rc, expected_exit) << text << "\nstderr: " << t.stderr_text();
      return doc;
    }
    EXPECT_EQ(rc, expected_exit) << text << "\nstderr: " << t.stderr_text();
    EXPECT_EQ(lost, 0u);
    return doc;
  }

  static const Json *problem(const Json &doc, const std::string &kind) {
    for (const auto &p : doc.at("problems"))
      if (p.at("kind") == kind)
        return &p;
    return nullptr;
  }

  static std::string kinds(const Json &doc) {
    std::string s;
    for (const auto &p : doc.at("problems"))
      s += p.at("kind").get<std::string>() + " ";
    return s;
  }

  std::uint16_t start_server(std::unique_ptr<NsProcess> &srv, ServeMode mode,
                             int backlog = 128,
                             const std::string &comm = "tt-dserver") {
    srv = std::make_unique<NsProcess>(
        net_->spawn(Side::B, comm, server_body(mode, backlog)));
    return static_cast<std::uint16_t>(std::stoi(srv->expect("port ")));
  }

  static void quit(NsProcess &p) {
    p.send("quit");
    p.finish();
  }

  std::unique_ptr<TestNet> net_;
};

TEST_F(Diagnose, CleanRunHasNoVerdict) {
  std::unique_ptr<NsProcess> srv;
  const auto port = start_server(srv, ServeMode::Drain);
  auto ta = start(Side::A);
  auto tb = start(Side::B);
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = port, .connections = 20,
                                     .send_bytes = 5000,
                                     .shutdown_and_wait = true}));
  EXPECT_EQ(cl.expect("result "), "ok=20 refused=0 timedout=0 other=0");
  cl.finish();
  std::this_thread::sleep_for(300ms);
  const Json a = finish(*ta, 0);
  const Json b = finish(*tb, 0);
  EXPECT_TRUE(a.at("problems").empty()) << a.dump(1);
  EXPECT_TRUE(b.at("problems").empty()) << b.dump(1);
  EXPECT_EQ(a.at("totals").at("opened_active"), 20);
  EXPECT_EQ(a.at("totals").at("time_wait"), 20);
  EXPECT_EQ(b.at("totals").at("opened_passive"), 20);
  EXPECT_EQ(a.at("latency").at("connect").at("count"), 20);
  EXPECT_GT(a.at("latency").at("connect").at("p50_ns").get<std::uint64_t>(), 0u);
  EXPECT_EQ(a.at("counters").at("netns"), net_->inode(Side::A));
  EXPECT_EQ(a.at("counters").at("delta").value("Tcp.ActiveOpens", 0), 20);
  quit(*srv);
}

TEST_F(Diagnose, Refused) {
  auto t = start(Side::A);
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = 9, .connections = 3}));
  EXPECT_EQ(cl.expect("result "), "ok=0 refused=3 timedout=0 other=0");
  cl.finish();
  const Json doc = finish(*t, 3);
  const Json *p = problem(doc, "refused");
  ASSERT_NE(p, nullptr) << doc.dump(1);
  EXPECT_EQ(p->at("count"), 3);
  const Json &ev = p->at("evidence");
  EXPECT_EQ(ev.at("remote_endpoints")[0].at("endpoint"), "198.18.0.2:9");
  EXPECT_EQ(ev.at("remote_endpoints")[0].at("count"), 3);
  EXPECT_EQ(ev.at("processes")[0].at("comm"), "tt-dclient");
  EXPECT_EQ(ev.at("processes")[0].at("pid"), cl.pid());
  EXPECT_EQ(ev.at("examples").size(), 3u);
  EXPECT_EQ(doc.at("counters").at("delta").value("Tcp.AttemptFails", 0), 3);
}

TEST_F(Diagnose, ConnectTimeout) {
  net_->sysctl(Side::A, "net.ipv4.tcp_syn_retries", "1");
  // The peer drops the SYNs (a black hole on the way). A local output rule
  // would not do: on 6.1 (measured) tcp_retransmit_skb fires only for
  // retransmissions that left the host.
  net_->sh(Side::B,
           "nft add table inet ttdiag && "
           "nft add chain inet ttdiag in '{ type filter hook input priority 0; }' && "
           "nft add rule inet ttdiag in tcp dport 9999 tcp flags syn drop");
  auto t = start(Side::A);
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = 9999, .connections = 2}));
  EXPECT_EQ(cl.expect("result ", 15s), "ok=0 refused=0 timedout=2 other=0");
  cl.finish();
  const Json doc = finish(*t, 3);
  const Json *p = problem(doc, "connect_timeout");
  ASSERT_NE(p, nullptr) << doc.dump(1);
  EXPECT_EQ(p->at("count"), 2) << doc.dump(1);
  EXPECT_EQ(p->at("evidence").at("remote_endpoints")[0].at("endpoint"),
            "198.18.0.2:9999");
  // tcp_syn_retries=1, with 6.x's tcp_syn_linear_timeouts: SYN
  // retransmits at 1 s and 2 s, ETIMEDOUT at 3 s.
  EXPECT_GE(p->at("evidence").at("counters").at("syn_retransmits").get<int>(), 2);
  EXPECT_EQ(problem(doc, "refused"), nullptr);
}

TEST_F(Diagnose, ResetsBothDirections) {
  std::unique_ptr<NsProcess> srv;
  const auto port = start_server(srv, ServeMode::Drain);
  auto ta = start(Side::A);
  auto tb = start(Side::B);
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = port, .connections = 2,
                                     .send_bytes = 100, .abort = true}));
  EXPECT_EQ(cl.expect("result "), "ok=2 refused=0 timedout=0 other=0");
  cl.finish();
  std::this_thread::sleep_for(300ms);
  const Json a = finish(*ta, 3);
  const Json b = finish(*tb, 3);
  const Json *sent = problem(a, "reset_sent");
  ASSERT_NE(sent, nullptr) << a.dump(1);
  EXPECT_EQ(sent->at("count"), 2);
  EXPECT_EQ(sent->at("evidence").at("processes")[0].at("comm"), "tt-dclient");
  EXPECT_EQ(sent->at("evidence").at("remote_endpoints")[0].at("endpoint"),
            "198.18.0.2:" + std::to_string(port));
  const Json *rcvd = problem(b, "reset_received");
  ASSERT_NE(rcvd, nullptr) << b.dump(1);
  EXPECT_EQ(rcvd->at("count"), 2);
  EXPECT_EQ(rcvd->at("evidence").at("processes")[0].at("comm"), "tt-dserver");
  quit(*srv);
}

TEST_F(Diagnose, SynFloodAgainstTinyBacklog) {
  net_->sysctl(Side::B, "net.ipv4.tcp_syncookies", "1");
  std::unique_ptr<NsProcess> srv;
  const auto port = start_server(srv, ServeMode::NoAccept, 1, "tt-slowsrv");
  auto t = start(Side::B);
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = port, .connections = 40,
                                     .nonblocking = true}));
  cl.expect("result ");
  std::this_thread::sleep_for(3s); // SYN-ACK retransmits: 1s, 3s
  const Json doc = finish(*t, 3);
  cl.send("quit");
  cl.finish();
  const Json *p = problem(doc, "listener");
  ASSERT_NE(p, nullptr) << doc.dump(1);
  const Json &c = p->at("evidence").at("counters");
  EXPECT_GT(c.at("TcpExt.ListenOverflows").get<std::int64_t>() +
                c.at("TcpExt.SyncookiesSent").get<std::int64_t>() +
                c.at("TcpExt.TCPReqQFullDoCookies").get<std::int64_t>(),
            0)
      << p->dump(1);
  const std::string want = "198.18.0.2:" + std::to_string(port);
  const Json *l = nullptr;
  for (const auto &x : p->at("evidence").at("listeners"))
    if (x.at("listener") == want)
      l = &x;
  ASSERT_NE(l, nullptr) << p->dump(1);
  EXPECT_EQ(l->at("accept_queue_limit"), 1);
  EXPECT_GE(l->at("accept_queue_peak").get<int>(), 1);
  EXPECT_EQ(l->at("pid"), srv->pid());
  EXPECT_EQ(l->at("comm"), "tt-slowsrv");
  quit(*srv);
}

TEST_F(Diagnose, Retransmits) {
  std::unique_ptr<NsProcess> srv;
  const auto port = start_server(srv, ServeMode::Drain);
  // Drop a quarter of the client's data segments (not the bare ACKs). One
  // segment per packet (no GSO super-packets), so that a drop is one
  // segment and there are many to drop.
  net_->exec_ok(Side::A, {"ip", "link", "set", "dev", TestNet::kVeth,
                          "gso_max_segs", "1"});
  // In B's input: a drop in A's output hook would be a local send error,
  // which TCP retries without a retransmission.
  net_->sh(Side::B,
           "nft add table inet ttdiag && "
           "nft add chain inet ttdiag in '{ type filter hook input priority 0; }' && "
           "nft add rule inet ttdiag in tcp dport " + std::to_string(port) +
               " ip length '>' 200 numgen random mod 4 == 0 drop");
  auto t = start(Side::A);
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = port, .connections = 2,
                                     .send_bytes = 200000,
                                     .shutdown_and_wait = true}));
  EXPECT_EQ(cl.expect("result ", 30s), "ok=2 refused=0 timedout=0 other=0");
  cl.finish(30s);
  const Json doc = finish(*t, 3);
  const Json *p = problem(doc, "retransmits");
  ASSERT_NE(p, nullptr) << doc.dump(1);
  EXPECT_GE(p->at("count").get<int>(), 5);
  const Json &conns = p->at("evidence").at("connections");
  ASSERT_FALSE(conns.empty());
  EXPECT_NE(conns[0].at("tuple").get<std::string>().find(
                "-> 198.18.0.2:" + std::to_string(port)),
            std::string::npos);
  EXPECT_EQ(conns[0].at("comm"), "tt-dclient");
  EXPECT_GT(p->at("evidence").at("counters").at("rate_ppm").get<int>(), 10000);
}

TEST_F(Diagnose, TimeWaitPileUp) {
  net_->sysctl(Side::A, "net.ipv4.ip_local_port_range", "40000 40199");
  std::unique_ptr<NsProcess> srv;
  const auto port = start_server(srv, ServeMode::Drain);
  auto t = start(Side::A);
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = port, .connections = 60,
                                     .send_bytes = 10,
                                     .shutdown_and_wait = true}));
  EXPECT_EQ(cl.expect("result ", 15s), "ok=60 refused=0 timedout=0 other=0");
  cl.finish();
  const Json doc = finish(*t, 3);
  const Json *p = problem(doc, "time_wait");
  ASSERT_NE(p, nullptr) << doc.dump(1);
  EXPECT_EQ(p->at("count"), 60);
  const Json &c = p->at("evidence").at("counters");
  EXPECT_EQ(c.at("port_range_size"), 200);
  EXPECT_EQ(c.at("time_wait_now"), 60);
  EXPECT_EQ(p->at("evidence").at("remote_endpoints")[0].at("endpoint"),
            "198.18.0.2:" + std::to_string(port));
  EXPECT_EQ(doc.at("time_wait").at("endpoints")[0].at("now"), 60);
  quit(*srv);
}

TEST_F(Diagnose, CloseWaitLeakIncludingPreexisting) {
  std::unique_ptr<NsProcess> srv;
  const auto port = start_server(srv, ServeMode::Hold, 128, "tt-leaky");
  // One leak from before the run...
  auto early = net_->spawn(Side::A, "tt-dclient",
                           client_body({.port = port, .connections = 1}));
  early.expect("result ");
  early.finish();
  std::this_thread::sleep_for(200ms);
  auto t = start(Side::B);
  // ... and two during it.
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = port, .connections = 2}));
  cl.expect("result ");
  cl.finish();
  std::this_thread::sleep_for(1500ms); // older than the 1 s threshold
  const Json doc = finish(*t, 3);
  const Json *p = problem(doc, "close_wait");
  ASSERT_NE(p, nullptr) << doc.dump(1);
  EXPECT_EQ(p->at("count"), 3) << p->dump(1);
  EXPECT_EQ(p->at("evidence").at("counters").at("preexisting"), 1);
  const Json &conns = p->at("evidence").at("connections");
  ASSERT_EQ(conns.size(), 3u);
  EXPECT_TRUE(conns[0].at("preexisting").get<bool>());
  for (const auto &c : conns) {
    EXPECT_EQ(c.at("pid"), srv->pid()) << c.dump();
    EXPECT_EQ(c.at("comm"), "tt-leaky") << c.dump();
  }
  EXPECT_EQ(p->at("evidence").at("processes")[0].at("count"), 3);
  quit(*srv);
}

// The start and end snapshots' sockets come from the socket enumerator:
// iter/tcp where the kernel has it, sock_diag where it is forced off (or
// missing), with the same report; the filters narrow them as they narrow
// the events, every listener aside.
TEST_F(Diagnose, PreexistingLeaksAlikeFromIteratorsAndSockDiagAndFiltered) {
  std::unique_ptr<NsProcess> srv;
  const auto port = start_server(srv, ServeMode::Hold, 128, "tt-leaky");
  auto early = net_->spawn(Side::A, "tt-dclient",
                           client_body({.port = port, .connections = 2}));
  early.expect("result ");
  early.finish();
  std::this_thread::sleep_for(200ms); // both in CLOSE_WAIT on side B
  auto iters = start(Side::B, {"--verbose"});
  auto narrowed = start(Side::B, {"--lport", "1"});
  setenv("TCPTRAIL_FORCE_FALLBACK", "iter:tcp", 1);
  std::unique_ptr<TracerProcess> diag, diag_narrowed;
  try {
    diag = start(Side::B, {"--verbose"});
    diag_narrowed = start(Side::B, {"--lport", "1"});
  } catch (...) {
    unsetenv("TCPTRAIL_FORCE_FALLBACK");
    throw;
  }
  unsetenv("TCPTRAIL_FORCE_FALLBACK");
  std::this_thread::sleep_for(1500ms);
  auto leaks_of = [&](TracerProcess &t, const char *what) {
    const Json doc = finish(t, 3);
    const Json *p = problem(doc, "close_wait");
    if (p == nullptr) {
      ADD_FAILURE() << what << ": no close_wait\n" << doc.dump(1);
      return std::vector<std::string>{};
    }
    EXPECT_EQ(p->at("evidence").at("counters").at("preexisting"), 2) << what;
    std::vector<std::string> tuples;
    for (const auto &c : p->at("evidence").at("connections")) {
      EXPECT_TRUE(c.at("preexisting").get<bool>()) << what << c.dump();
      EXPECT_EQ(c.at("pid"), srv->pid()) << what << c.dump();
      EXPECT_EQ(c.at("comm"), "tt-leaky") << what << c.dump();
      tuples.push_back(c.at("tuple").get<std::string>());
    }
    std::sort(tuples.begin(), tuples.end());
    return tuples;
  };
  const auto from_iters = leaks_of(*iters, "iterators");
  const auto from_diag = leaks_of(*diag, "sock_diag");
  EXPECT_EQ(from_iters.size(), 2u);
  EXPECT_EQ(from_iters, from_diag);
  // Which strategy ran (--verbose names the alternative taken).
  EXPECT_EQ(iters->stderr_text().find("sockets from sock_diag"),
            std::string::npos)
      << iters->stderr_text();
  EXPECT_NE(diag->stderr_text().find("sockets from sock_diag"),
            std::string::npos)
      << diag->stderr_text();
  // --lport 1 leaves them out, whichever way they were read.
  for (TracerProcess *t : {narrowed.get(), diag_narrowed.get()}) {
    const Json doc = finish(*t, 0);
    EXPECT_EQ(problem(doc, "close_wait"), nullptr) << doc.dump(1);
  }
  quit(*srv);
}

TEST_F(Diagnose, TextReportOnSigint) {
  auto t = std::make_unique<TracerProcess>(std::vector<std::string>{
      "diagnose", "--netns", std::to_string(net_->inode(Side::A))});
  auto res = t->start();
  ASSERT_EQ(res.status, TracerProcess::StartStatus::Ready) << res.message;
  auto cl = net_->spawn(Side::A, "tt-dclient",
                        client_body({.port = 9, .connections = 1}));
  cl.expect("result ");
  cl.finish();
  EXPECT_EQ(t->stop(), 3);
  std::string text;
  for (const auto &l : t->stdout_lines())
    text += l + "\n";
  EXPECT_NE(text.find("PROBLEM [warning] refused: 1 connect refused"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ok      connect timeouts: none"), std::string::npos);
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << "colour on a pipe";
  // stderr is not a terminal: no progress line.
  EXPECT_EQ(t->stderr_text().find('\r'), std::string::npos);
}

} // namespace
} // namespace tcptrail::test
