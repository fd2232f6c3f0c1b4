// `tcptrail serve` end to end with the real Prometheus server: the test
// starts tcptrail serve (filtered to its own namespace) and Debian's
// `prometheus` on loopback with a 1 s scrape interval, makes N refused
// connects, N aborted connections and a CLOSE_WAIT leak, then asks
// Prometheus's HTTP API for the counters' increases and the leak gauge.
// `promtool check metrics` checks the exposition. Then bad input: a port in
// use, a malformed address, malformed and abandoned HTTP requests and 1,000
// concurrent scrapes, after which tracing must go on. And --events with a
// SIGHUP reopen (logrotate).
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace tcptrail::test {
namespace {

constexpr int kN = 5;
const std::string kLeakComm = "tt-leaky";

bool have(const char *tool) {
  return run_command({"sh", "-c", std::string("command -v ") + tool})
             .exit_code == 0;
}

// A free loopback TCP port now (bound to 0 and released).
std::uint16_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0)
    throw std::runtime_error("free_port: bind failed");
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

int connect_loopback(std::uint16_t port, int timeout_s) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` as is and reads the answer to EOF (bounded).
std::string raw_request(std::uint16_t port, const std::string &request,
                        int timeout_s = 10) {
  const int fd = connect_loopback(port, timeout_s);
  if (fd < 0)
    return {};
  std::size_t off = 0;
  while (off < request.size()) {
    const ssize_t n = write(fd, request.data() + off, request.size() - off);
    if (n <= 0)
      break;
    off += static_cast<std::size_t>(n);
  }
  std::string out;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return out;
}

struct HttpResponse {
  int status = 0;
  std::string body;
};

HttpResponse http_get(std::uint16_t port, const std::string &path,
                      int timeout_s = 10) {
  const std::string raw = raw_request(
      port,
      "GET " + path +
          " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
      timeout_s);
  HttpResponse r;
  if (raw.rfind("HTTP/1.", 0) != 0 || raw.size() < 12)
    return r;
  r.status = std::atoi(raw.c_str() + 9);
  const auto body = raw.find("\r\n\r\n");
  if (body != std::string::npos)
    r.body = raw.substr(body + 4);
  return r;
}

std::string url_encode(const std::string &s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~')
      out += static_cast<char>(c);
    else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// One sample of a metric in an exposition: the value of the line that starts
// with `series` followed by a space; nullopt when absent.
std::optional<double> sample(const std::string &text,
                             const std::string &series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(series + " ", 0) == 0)
      return std::stod(line.substr(series.size() + 1));
  return std::nullopt;
}

// A Prometheus server of our own: temp config and storage, loopback, a 1 s
// scrape of `target`. Stopped (SIGTERM, then SIGKILL) by pid.
class PrometheusServer {
public:
  explicit PrometheusServer(std::uint16_t target) {
    char tmpl[] = "/tmp/tt-prom-XXXXXX";
    if (!mkdtemp(tmpl))
      throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    port_ = free_port();
    std::ofstream(dir_ + "/prometheus.yml")
        << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
           "scrape_configs:\n  - job_name: tcptrail\n    static_configs:\n"
           "      - targets: ['127.0.0.1:"
        << target << "']\n";
    pid_ = fork();
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int devnull = open((dir_ + "/prometheus.log").c_str(),
                               O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(devnull, STDOUT_FILENO);
      dup2(devnull, STDERR_FILENO);
      const std::string cfg = "--config.file=" + dir_ + "/prometheus.yml";
      const std::string data = "--storage.tsdb.path=" + dir_ + "/data";
      const std::string web =
          "--web.listen-address=127.0.0.1:" + std::to_string(port_);
      execlp("prometheus", "prometheus", cfg.c_str(), data.c_str(), web.c_str(),
             "--web.enable-lifecycle", static_cast<char *>(nullptr));
      _exit(127);
    }
  }
  ~PrometheusServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      for (int i = 0; i < 100; ++i) {
        if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        usleep(100'000);
      }
      if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  PrometheusServer(const PrometheusServer &) = delete;
  PrometheusServer &operator=(const PrometheusServer &) = delete;

  std::string log() const {
    std::ifstream in(dir_ + "/prometheus.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  bool wait_ready(Duration timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      if (http_get(port_, "/-/ready", 2).status == 200)
        return true;
      std::this_thread::sleep_for(200ms);
    }
    return false;
  }
  // An instant query's single value (at unix time `at`, 0: now); nullopt
  // when the result is empty.
  std::optional<double> query(const std::string &promql, double at = 0) const {
    std::string path = "/api/v1/query?query=" + url_encode(promql);
    if (at > 0)
      path += "&time=" + std::to_string(at);
    const HttpResponse r = http_get(port_, path);
    if (r.status != 200)
      throw std::runtime_error("query " + promql + ": HTTP " +
                               std::to_string(r.status) + " " + r.body);
    const Json j = Json::parse(r.body);
    if (j.at("status") != "success")
      throw std::runtime_error("query " + promql + ": " + r.body);
    const Json &res = j.at("data").at("result");
    if (res.empty())
      return std::nullopt;
    if (res.size() != 1)
      throw std::runtime_error("query " + promql + ": " +
                               std::to_string(res.size()) + " series");
    return std::stod(res[0].at("value")[1].get<std::string>());
  }
  // Waits until `promql` has a value for which pred holds.
  bool wait_value(const std::string &promql,
                  const std::function<bool(double)> &pred,
                  Duration timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      const auto v = query(promql);
      if (v && pred(*v))
        return true;
      std::this_thread::sleep_for(250ms);
    }
    return false;
  }

private:
  std::string dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

double unix_now() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6;
}

// The leaky server (namespace A): accepts one connection and never closes.
void leaky_server(ChildChannel &ch) {
  const int ls = listen4(TestNet::kAddr4A, "leaky");
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(ls, reinterpret_cast<sockaddr *>(&a), &len);
  ch.send("port " + std::to_string(ntohs(a.sin_port)));
  const int c = accept(ls, nullptr, nullptr);
  if (c < 0)
    throw std::runtime_error("leaky: accept failed");
  ch.send("accepted 1");
  ch.receive(std::chrono::seconds(55)); // holds `c` until told to quit
  close(c);
}

class ServeTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto why = missing_prerequisite())
      TT_SKIP_OR_FAIL(*why);
  }
};

// Counters from the kernel and the leak gauge, through a real Prometheus.
TEST_F(ServeTest, PrometheusScrapesRefusedResetsAndTheCloseWaitLeak) {
  if (!have("prometheus") || !have("promtool"))
    TT_SKIP_OR_FAIL("prometheus/promtool not installed (Debian: prometheus)");
  TestNet net;
  const std::uint16_t port = free_port();
  TracerProcess serve({"serve", "--listen", "127.0.0.1:" + std::to_string(port),
                       "--netns", std::to_string(net.inode(Side::A))});
  TT_START_TRACER(serve);
  PrometheusServer prom(port);
  ASSERT_TRUE(prom.wait_ready(30s)) << prom.log();
  // Two scrapes of the zeros, so that increases count from them.
  const std::string refused =
      "tcptrail_connections_closed_total{role=\"active\",end=\"refused\"}";
  const std::string reset_sent =
      "tcptrail_connections_closed_total{role=\"active\",end=\"reset_sent\"}";
  ASSERT_TRUE(prom.wait_value(
      "count_over_time(" + refused + "[1m])", [](double v) { return v >= 2; },
      30s))
      << prom.log() << serve.stderr_text();
  const double before = unix_now();
  const double refused0 = prom.query(refused, before).value();
  const double rst0 = prom.query("tcptrail_resets_sent_total", before).value();
  const double rst_rcvd0 =
      prom.query("tcptrail_resets_received_total", before).value();
  const double reset_sent0 = prom.query(reset_sent, before).value();

  // N refused connects from A to a closed port of B.
  for (int i = 0; i < kN; ++i)
    run_client(net, Side::A,
               {.addr = TestNet::kAddr4B, .port = 9, .expect_refused = true});
  // N connections from A that A aborts (RST).
  Server sink(net, Side::B,
              {.addr = TestNet::kAddr4B,
               .connections = kN,
               .exchange = {.recv_bytes = 0,
                            .close_first = false,
                            .passive_close_delay = 0ms}});
  for (int i = 0; i < kN; ++i)
    run_client(
        net, Side::A,
        {.addr = TestNet::kAddr4B,
         .port = sink.port(),
         .exchange = {.close_first = true, .close_mode = CloseMode::Abort}});
  sink.finish();
  // A CLOSE_WAIT leak in A: B connects and closes; tt-leaky never does.
  NsProcess leaky = net.spawn(Side::A, kLeakComm, leaky_server);
  const std::string leak_port = leaky.expect("port ");
  run_client(
      net, Side::B,
      {.addr = TestNet::kAddr4A,
       .port = static_cast<std::uint16_t>(std::stoi(leak_port)),
       .exchange = {.close_first = true, .close_mode = CloseMode::Close}});
  leaky.expect("accepted ");

  const std::string leak = "tcptrail_close_wait_sockets{comm=\"" + kLeakComm +
                           "\",lport=\"" + leak_port + "\"}";
  EXPECT_TRUE(prom.wait_value(
      leak, [](double v) { return v == 1; }, 20s))
      << prom.log();
  // Every counter is in by the time the leak shows (scraped together).
  std::this_thread::sleep_for(2500ms);
  const double after = unix_now();
  EXPECT_EQ(prom.query(refused, after).value() - refused0, kN);
  EXPECT_EQ(prom.query(reset_sent, after).value() - reset_sent0, kN);
  // Refused: B's kernel answers each SYN with a RST (no socket: counted in
  // B, not in A's filter); A receives N. Aborts: A sends N.
  EXPECT_EQ(prom.query("tcptrail_resets_sent_total", after).value() - rst0, kN);
  EXPECT_EQ(prom.query("tcptrail_resets_received_total", after).value() -
                rst_rcvd0,
            kN);
  // The same through PromQL's own increase() (extrapolated: at least N).
  EXPECT_GE(prom.query("increase(" + refused + "[1m])").value(), kN);
  const auto age = prom.query("tcptrail_close_wait_oldest_age_seconds{comm=\"" +
                              kLeakComm + "\",lport=\"" + leak_port + "\"}");
  ASSERT_TRUE(age);
  EXPECT_GE(*age, 0.0);
  EXPECT_LT(*age, 60.0);
  // Handshakes of the N aborted connections and the leak's were timed.
  EXPECT_GE(prom.query("tcptrail_handshake_duration_seconds_count{role="
                       "\"active\"}")
                .value(),
            kN);

  // promtool's lint of the exposition as served.
  const HttpResponse m = http_get(port, "/metrics");
  ASSERT_EQ(m.status, 200);
  char path[] = "/tmp/tt-metrics-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, m.body.data(), m.body.size()),
            static_cast<ssize_t>(m.body.size()));
  close(fd);
  const CommandResult lint = run_command(
      {"sh", "-c", std::string("promtool check metrics < ") + path});
  unlink(path);
  EXPECT_EQ(lint.exit_code, 0) << lint.output;
  // Bounded labels: no pid, no address of the test's endpoints.
  EXPECT_EQ(m.body.find("198.18."), std::string::npos);
  EXPECT_EQ(m.body.find("pid="), std::string::npos);

  leaky.send("quit");
  leaky.finish();
  EXPECT_EQ(serve.stop(), 0) << serve.stderr_text();
}

TEST_F(ServeTest, APortInUseIsOneLineAndExit1) {
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr *>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(ls, 1), 0);
  socklen_t len = sizeof(a);
  getsockname(ls, reinterpret_cast<sockaddr *>(&a), &len);
  const std::string where = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  const CommandResult r =
      run_command({TCPTRAIL_BINARY, "serve", "--listen", where});
  close(ls);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output, "tcptrail: error: cannot listen on " + where +
                          ": Address already in use\nhint: another process "
                          "holds the port (ss -ltnp); choose another with "
                          "--listen ADDR:PORT\n");
  for (const char *bad :
       {"localhost:80", "127.0.0.1", "127.0.0.1:0", "[::1]:99999"}) {
    const CommandResult b =
        run_command({TCPTRAIL_BINARY, "serve", "--listen", bad});
    EXPECT_EQ(b.exit_code, 2) << bad << ": " << b.output;
    EXPECT_EQ(std::count(b.output.begin(), b.output.end(), '\n'), 1)
        << b.output;
    EXPECT_EQ(b.output.rfind("tcptrail: error: --listen", 0), 0) << b.output;
  }
}

// Malformed and abandoned requests, then 1,000 concurrent scrapes: every
// scrape answers, the server survives, and tracing goes on.
TEST_F(ServeTest, BadRequestsAndAThousandConcurrentScrapes) {
  TestNet net;
  const std::uint16_t port = free_port();
  TracerProcess serve({"serve", "--listen", "127.0.0.1:" + std::to_string(port),
                       "--netns", std::to_string(net.inode(Side::A))});
  TT_START_TRACER(serve);
  ASSERT_EQ(http_get(port, "/metrics").status, 200);

  // An abandoned client: connected, never sends a byte.
  const int idle = connect_loopback(port, 10);
  ASSERT_GE(idle, 0);
  // Malformed requests: an answer (an error status) or a close, never a hang.
  for (const std::string &req :
       {std::string("GARBAGE\r\n\r\n"), std::string("GET\r\n\r\n"),
        std::string("GET /metrics HTTP/9.9\r\n\r\n"),
        std::string("GET /") + std::string(100000, 'a') + " HTTP/1.0\r\n\r\n",
        std::string("\x01\x02\x03\xff\r\n\r\n", 8)}) {
    const std::string answer = raw_request(port, req, 10);
    EXPECT_EQ(answer.find("tcptrail_transitions_total"), std::string::npos);
  }
  EXPECT_EQ(http_get(port, "/nothing-here").status, 404);

  constexpr int kScrapes = 1000;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(kScrapes);
  for (int i = 0; i < kScrapes; ++i)
    threads.emplace_back([&] {
      const HttpResponse r = http_get(port, "/metrics", 60);
      if (r.status == 200 &&
          r.body.find("tcptrail_connections_closed_total") != std::string::npos)
        ++ok;
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(ok.load(), kScrapes);
  close(idle);

  // Still tracing: one more refused connect is counted.
  const std::string refused =
      "tcptrail_connections_closed_total{role=\"active\",end=\"refused\"}";
  const double before =
      sample(http_get(port, "/metrics").body, refused).value();
  run_client(net, Side::A,
             {.addr = TestNet::kAddr4B, .port = 9, .expect_refused = true});
  std::this_thread::sleep_for(300ms); // past the shared-collection window
  EXPECT_EQ(sample(http_get(port, "/metrics").body, refused).value(),
            before + 1);
  EXPECT_EQ(serve.stop(), 0) << serve.stderr_text();
}

std::vector<Json> read_events(const std::string &path) {
  std::vector<Json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    out.push_back(Json::parse(line, nullptr, false));
  return out;
}

bool has_refused(const std::vector<Json> &events) {
  for (const Json &e : events)
    if (e.is_object() && e.value("event", "") == "state" &&
        e.value("old", "") == "SYN_SENT" && e.value("new", "") == "CLOSE")
      return true;
  return false;
}

// --events FILE: the trace contract; SIGHUP reopens FILE after a rotation.
TEST_F(ServeTest, EventsFileFollowsTheTraceContractAndReopensOnSighup) {
  TestNet net;
  char dir[] = "/tmp/tt-serve-events-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string file = std::string(dir) + "/events.jsonl";
  const std::uint16_t port = free_port();
  TracerProcess serve({"serve", "--listen", "127.0.0.1:" + std::to_string(port),
                       "--netns", std::to_string(net.inode(Side::A)),
                       "--events", file});
  TT_START_TRACER(serve);
  run_client(net, Side::A,
             {.addr = TestNet::kAddr4B, .port = 9, .expect_refused = true});
  auto wait_file = [](const std::string &p) {
    for (int i = 0; i < 100; ++i) {
      if (has_refused(read_events(p)))
        return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  };
  ASSERT_TRUE(wait_file(file));
  // logrotate: move, then HUP; the next events go to a new FILE.
  const std::string rotated = file + ".1";
  ASSERT_EQ(std::rename(file.c_str(), rotated.c_str()), 0);
  ASSERT_EQ(kill(serve.pid(), SIGHUP), 0);
  std::this_thread::sleep_for(300ms);
  run_client(net, Side::A,
             {.addr = TestNet::kAddr4B, .port = 9, .expect_refused = true});
  EXPECT_TRUE(wait_file(file));
  // Still serving after the HUP (it did not stop).
  EXPECT_EQ(http_get(port, "/metrics").status, 200);
  EXPECT_EQ(serve.stop(), 0) << serve.stderr_text();
  for (const std::string &p : {rotated, file}) {
    const std::vector<Json> events = read_events(p);
    EXPECT_FALSE(events.empty()) << p;
    for (const Json &e : events) {
      const std::vector<std::string> v = contract_violations(e);
      EXPECT_TRUE(v.empty()) << p << ": " << e.dump() << ": " << v.front();
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

} // namespace
} // namespace tcptrail::test
