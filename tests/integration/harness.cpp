#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <thread>

#ifndef TCPTRAIL_BINARY
#error "TCPTRAIL_BINARY must be defined (path of the built tcptrail)"
#endif

namespace tcptrail::test {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const std::string &what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

std::string join(const std::vector<std::string> &parts,
                 const std::string &sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i)
      out += sep;
    out += parts[i];
  }
  return out;
}

// Exit code from a wait status: the code, or 128 + signal.
int exit_code_of(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

// waitpid() bounded by `timeout`; nullopt when still running.
std::optional<int> wait_pid(pid_t pid, Duration timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid)
      return exit_code_of(status);
    if (r < 0 && errno != EINTR)
      return -1;
    if (Clock::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

// SIGKILL `pid` (ours) and reap it.
int kill_and_wait(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return exit_code_of(status);
}

// The next '\n'-terminated line from fd (via buf), nullopt on timeout/EOF.
std::optional<std::string> read_line(int fd, std::string &buf,
                                     Duration timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto nl = buf.find('\n'); nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      return line;
    }
    pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&pfd, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return std::nullopt;
    char chunk[512];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return std::nullopt;
    buf.append(chunk, static_cast<std::size_t>(n));
  }
}

void write_all(int fd, const std::string &data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      throw_errno("write");
    off += static_cast<std::size_t>(n);
  }
}

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
      throw_errno("pipe2");
    r = fds[0];
    w = fds[1];
  }
};

void close_fd(int &fd) {
  if (fd >= 0)
    close(fd);
  fd = -1;
}

// In a freshly forked child: die with the forking thread.
void die_with_parent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127);
}

std::vector<char *> c_argv(const std::vector<std::string> &argv) {
  std::vector<char *> out;
  for (const auto &a : argv)
    out.push_back(const_cast<char *>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

} // namespace

// ---------------------------------------------------------------------------
// Prerequisites

bool bpf_required() {
  const char *ci = std::getenv("CI");
  const char *req = std::getenv("TCPTRAIL_REQUIRE_BPF");
  return (ci && std::string_view(ci) == "true") ||
         (req && std::string_view(req) == "1");
}

std::optional<std::string> missing_prerequisite() {
  if (geteuid() != 0)
    return "integration tests need root (network namespaces, BPF); "
           "run them as root";
  if (access(TCPTRAIL_BINARY, X_OK) != 0)
    return std::string("tcptrail binary not found or not executable: ") +
           TCPTRAIL_BINARY + " (build it first)";
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    return "kernel BTF missing (/sys/kernel/btf/vmlinux): tcptrail needs "
           "CONFIG_DEBUG_INFO_BTF";
  if (run_command({"ip", "-V"}).exit_code != 0)
    return "iproute2 `ip` not found";
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Commands

CommandResult run_command(const std::vector<std::string> &argv,
                          Duration timeout) {
  CommandResult result;
  Pipe out;
  auto args = c_argv(argv);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    throw_errno("fork");
  if (pid == 0) {
    die_with_parent(parent);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out.w, 1);
    dup2(out.w, 2);
    execvp(args[0], args.data());
    _exit(127);
  }
  close_fd(out.w);
  auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  for (;;) {
    pollfd pfd{.fd = out.r, .events = POLLIN, .revents = 0};
    int r = poll(&pfd, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0) {
      timed_out = true;
      break;
    }
    char chunk[4096];
    ssize_t n = read(out.r, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    result.output.append(chunk, static_cast<std::size_t>(n));
  }
  close_fd(out.r);
  std::optional<int> code;
  if (!timed_out)
    code = wait_pid(pid, Duration(remaining_ms(deadline) + 100));
  if (!code) {
    result.exit_code = kill_and_wait(pid);
    result.output += "\n[timed out after " + std::to_string(timeout.count()) +
                     " ms: " + join(argv, " ") + "]";
  } else {
    result.exit_code = *code;
  }
  return result;
}

std::string check_command(const std::vector<std::string> &argv,
                          Duration timeout) {
  auto r = run_command(argv, timeout);
  if (r.exit_code != 0)
    throw std::runtime_error("`" + join(argv, " ") + "` exited " +
                             std::to_string(r.exit_code) + ": " + r.output);
  return r.output;
}

// ---------------------------------------------------------------------------
// NsProcess

void ChildChannel::send(const std::string &line) {
  write_all(to_parent_, line + "\n");
}

std::optional<std::string> ChildChannel::receive(Duration timeout) {
  return read_line(from_parent_, buf_, timeout);
}

NsProcess::NsProcess(const std::string &netns, const std::string &comm,
                     Body body) {
  Pipe up, down; // child -> test, test -> child
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    throw_errno("fork");
  if (pid == 0) {
    die_with_parent(parent);
    alarm(60); // never outlive a stuck test by much
    close(up.r);
    close(down.w);
    ChildChannel ch(up.w, down.r);
    try {
      std::string path = "/run/netns/" + netns;
      int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        throw_errno("open " + path);
      if (setns(fd, CLONE_NEWNET) != 0)
        throw_errno("setns " + path);
      close(fd);
      prctl(PR_SET_NAME, comm.c_str());
      body(ch);
    } catch (const std::exception &e) {
      try {
        ch.send(std::string("error: ") + e.what());
      } catch (...) {
      }
      _exit(1);
    }
    _exit(0);
  }
  pid_ = pid;
  close(up.w);
  close(down.r);
  from_child_ = up.r;
  to_child_ = down.w;
}

NsProcess::NsProcess(NsProcess &&other) noexcept
    : pid_(other.pid_), to_child_(other.to_child_),
      from_child_(other.from_child_), buf_(std::move(other.buf_)),
      reaped_(other.reaped_), exit_code_(other.exit_code_) {
  other.pid_ = -1;
  other.to_child_ = other.from_child_ = -1;
  other.reaped_ = true;
}

NsProcess::~NsProcess() {
  if (pid_ > 0 && !reaped_)
    kill_and_wait(pid_);
  close_fd(to_child_);
  close_fd(from_child_);
}

void NsProcess::send(const std::string &line) {
  write_all(to_child_, line + "\n");
}

std::optional<std::string> NsProcess::receive(Duration timeout) {
  return read_line(from_child_, buf_, timeout);
}

std::string NsProcess::expect(const std::string &prefix, Duration timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto line = receive(Duration(remaining_ms(deadline)));
    if (!line) {
      throw std::runtime_error("child " + std::to_string(pid_) +
                               ": no \"" + prefix + "\" line within " +
                               std::to_string(timeout.count()) +
                               " ms (timeout or exit, exit code " +
                               std::to_string(wait(1s)) + ")");
    }
    if (line->starts_with("error: "))
      throw std::runtime_error("child " + std::to_string(pid_) + ": " + *line);
    if (line->starts_with(prefix))
      return line->substr(prefix.size());
  }
}

int NsProcess::wait(Duration timeout) {
  if (reaped_)
    return exit_code_;
  auto code = wait_pid(pid_, timeout);
  exit_code_ = code ? *code : kill_and_wait(pid_);
  reaped_ = true;
  return exit_code_;
}

std::vector<std::string> NsProcess::finish(Duration timeout) {
  auto deadline = Clock::now() + timeout;
  std::vector<std::string> lines;
  bool timed_out = false;
  for (;;) {
    auto line = receive(Duration(remaining_ms(deadline)));
    if (!line) {
      timed_out = Clock::now() >= deadline;
      break;
    }
    lines.push_back(*line);
  }
  int code = wait(Duration(remaining_ms(deadline) + 100));
  if (code != 0 || timed_out) {
    throw std::runtime_error(
        "child " + std::to_string(pid_) +
        (timed_out ? " did not finish in time and was killed"
                   : " exited " + std::to_string(code)) +
        "; its lines: [" + join(lines, " | ") + "]");
  }
  return lines;
}

// ---------------------------------------------------------------------------
// TestNet

void cleanup_stale_namespaces() {
  DIR *dir = opendir("/run/netns");
  if (!dir)
    return;
  std::vector<std::string> stale;
  while (dirent *ent = readdir(dir)) {
    int pid = 0;
    int consumed = 0;
    if (std::sscanf(ent->d_name, "tt-%d-%*d-%*1[ab]%n", &pid, &consumed) < 1 ||
        consumed == 0 || ent->d_name[consumed] != '\0' || pid <= 0)
      continue;
    if (kill(pid, 0) != 0 && errno == ESRCH)
      stale.emplace_back(ent->d_name);
  }
  closedir(dir);
  for (const auto &name : stale)
    run_command({"ip", "netns", "del", name});
}

TestNet::TestNet() {
  static std::once_flag cleaned;
  std::call_once(cleaned, cleanup_stale_namespaces);
  static std::atomic<int> counter{0};
  std::string base = "tt-" + std::to_string(getpid()) + "-" +
                     std::to_string(counter.fetch_add(1));
  name_a_ = base + "-a";
  name_b_ = base + "-b";
  try {
    setup();
  } catch (...) {
    teardown();
    throw;
  }
}

TestNet::~TestNet() { teardown(); }

void TestNet::setup() {
  check_command({"ip", "netns", "add", name_a_});
  check_command({"ip", "netns", "add", name_b_});
  for (const auto *ns : {&name_a_, &name_b_}) {
    struct stat st {};
    std::string path = "/run/netns/" + *ns;
    if (stat(path.c_str(), &st) != 0)
      throw_errno("stat " + path);
    (ns == &name_a_ ? inode_a_ : inode_b_) = st.st_ino;
  }
  check_command({"ip", "-n", name_a_, "link", "add", kVeth, "type", "veth",
                 "peer", "name", kVeth, "netns", name_b_});
  for (Side side : {Side::A, Side::B}) {
    const auto &ns = name(side);
    check_command({"ip", "-n", ns, "link", "set", "lo", "up"});
    check_command({"ip", "-n", ns, "addr", "add", addr4(side) + "/24", "dev",
                   kVeth});
    check_command({"ip", "-n", ns, "addr", "add", addr6(side) + "/64", "dev",
                   kVeth, "nodad"});
    check_command({"ip", "-n", ns, "link", "set", kVeth, "up"});
  }
  // Carrier comes up asynchronously; wait until both ends are UP.
  auto deadline = Clock::now() + 5s;
  for (;;) {
    bool up = true;
    for (Side side : {Side::A, Side::B}) {
      auto out = check_command({"ip", "-n", name(side), "-o", "link", "show",
                                "dev", kVeth});
      up = up && out.find("state UP") != std::string::npos;
    }
    if (up)
      break;
    if (Clock::now() >= deadline)
      throw std::runtime_error("veth " + std::string(kVeth) +
                               " did not come up within 5 s");
    std::this_thread::sleep_for(10ms);
  }
  for (Side side : {Side::A, Side::B}) {
    const auto &ns = name(side);
    // No delayed ACKs (the routes' quickack metric): an ACK then goes out
    // while its receiver's own process or softirq runs, not later from a
    // timer on whatever task the CPU happens to run. Some hardened kernels
    // (the CI host's 6.18.44-fc) run no BPF tracing program while one
    // particular task is current, softirqs on top of it included, and so
    // hide the transitions such an ACK causes; with this, every transition
    // the tests make happens in a context the tests control.
    check_command({"ip", "-n", ns, "route", "replace", "198.18.0.0/24", "dev",
                   kVeth, "proto", "kernel", "scope", "link", "src",
                   addr4(side), "quickack", "1"});
    check_command({"ip", "-n", ns, "-6", "route", "replace", "2001:db8::/64",
                   "dev", kVeth, "proto", "kernel", "metric", "256",
                   "quickack", "1"});
    for (const char *local : {"127.0.0.0/8", "127.0.0.1"})
      check_command({"ip", "-n", ns, "route", "replace", "local", local,
                     "dev", "lo", "table", "local", "proto", "kernel",
                     "scope", "host", "src", "127.0.0.1", "quickack", "1"});
  }
}

void TestNet::teardown() noexcept {
  for (const auto *ns : {&name_a_, &name_b_}) {
    if (ns->empty())
      continue;
    try {
      if (access(("/run/netns/" + *ns).c_str(), F_OK) == 0)
        run_command({"ip", "netns", "del", *ns});
    } catch (...) {
    }
  }
}

CommandResult TestNet::exec(Side side, const std::vector<std::string> &argv,
                            Duration timeout) const {
  std::vector<std::string> full{"ip", "netns", "exec", name(side)};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_command(full, timeout);
}

std::string TestNet::exec_ok(Side side,
                             const std::vector<std::string> &argv) const {
  std::vector<std::string> full{"ip", "netns", "exec", name(side)};
  full.insert(full.end(), argv.begin(), argv.end());
  return check_command(full);
}

std::string TestNet::sh(Side side, const std::string &script) const {
  return exec_ok(side, {"sh", "-c", script});
}

void TestNet::sysctl(Side side, const std::string &key,
                     const std::string &value) const {
  exec_ok(side, {"sysctl", "-q", "-w", key + "=" + value});
}

void TestNet::add_address(Side side, const std::string &cidr) const {
  std::vector<std::string> argv{"ip", "-n", name(side), "addr", "add", cidr,
                                "dev", kVeth};
  if (cidr.find(':') != std::string::npos)
    argv.emplace_back("nodad");
  check_command(argv);
}

NsProcess TestNet::spawn(Side side, const std::string &comm,
                         NsProcess::Body body) const {
  return NsProcess(name(side), comm, std::move(body));
}

// ---------------------------------------------------------------------------
// Socket endpoints (these functions run in the forked children)

namespace {

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
};

SockAddr make_addr(const std::string &ip, std::uint16_t port) {
  SockAddr a;
  auto *in4 = reinterpret_cast<sockaddr_in *>(&a.ss);
  auto *in6 = reinterpret_cast<sockaddr_in6 *>(&a.ss);
  if (inet_pton(AF_INET, ip.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    a.len = sizeof(*in4);
    a.family = AF_INET;
  } else if (inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a.len = sizeof(*in6);
    a.family = AF_INET6;
  } else {
    throw std::runtime_error("not a numeric address: " + ip);
  }
  return a;
}

std::uint16_t port_of(const sockaddr_storage &ss) {
  if (ss.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in *>(&ss)->sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6 *>(&ss)->sin6_port);
}

std::uint16_t local_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) != 0)
    throw_errno("getsockname");
  return port_of(ss);
}

void set_io_timeouts(int fd) {
  timeval tv{.tv_sec = kIoTimeout.count() / 1000,
             .tv_usec = (kIoTimeout.count() % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

void send_bytes(int fd, std::size_t count) {
  std::string chunk(4096, 'x');
  while (count > 0) {
    std::size_t n = std::min(count, chunk.size());
    ssize_t w = send(fd, chunk.data(), n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      throw_errno("send");
    count -= static_cast<std::size_t>(w);
  }
}

void recv_bytes(int fd, std::size_t count) {
  char buf[4096];
  while (count > 0) {
    ssize_t r = recv(fd, buf, std::min(count, sizeof(buf)), 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      throw_errno("recv (" + std::to_string(count) + " bytes still expected)");
    if (r == 0)
      throw std::runtime_error("EOF with " + std::to_string(count) +
                               " bytes still expected");
    count -= static_cast<std::size_t>(r);
  }
}

// Reads until the peer's FIN (or its RST, which also ends the exchange).
void wait_eof(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r == 0)
      return;
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && errno == ECONNRESET)
      return;
    if (r < 0)
      throw_errno("waiting for EOF");
  }
}

void finish_exchange(int fd, const Exchange &ex) {
  if (ex.close_first) {
    std::this_thread::sleep_for(ex.active_close_delay);
    switch (ex.close_mode) {
    case CloseMode::Close:
      break;
    case CloseMode::Shutdown:
      if (shutdown(fd, SHUT_WR) != 0)
        throw_errno("shutdown");
      wait_eof(fd);
      break;
    case CloseMode::Abort: {
      linger lg{.l_onoff = 1, .l_linger = 0};
      if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        throw_errno("SO_LINGER");
      break;
    }
    }
  } else {
    wait_eof(fd);
    std::this_thread::sleep_for(ex.passive_close_delay);
  }
  close(fd);
}

void server_body(const ServerSpec &spec, ChildChannel &ch) {
  if (spec.gated && ch.receive(kChildTimeout) != "listen")
    throw std::runtime_error("no \"listen\" from the test");
  SockAddr a = make_addr(spec.addr, spec.port);
  int lfd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0)
    throw_errno("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (a.family == AF_INET6)
    setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(lfd, reinterpret_cast<sockaddr *>(&a.ss), a.len) != 0)
    throw_errno("bind " + spec.addr + ":" + std::to_string(spec.port));
  if (listen(lfd, 16) != 0)
    throw_errno("listen");
  ch.send("port " + std::to_string(local_port(lfd)));
  for (int i = 0; i < spec.connections; ++i) {
    pollfd pfd{.fd = lfd, .events = POLLIN, .revents = 0};
    int r;
    do {
      r = poll(&pfd, 1, static_cast<int>(kChildTimeout.count()));
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
      throw std::runtime_error("no connection to accept (" +
                               std::to_string(i) + " of " +
                               std::to_string(spec.connections) + " accepted)");
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    int fd = accept4(lfd, reinterpret_cast<sockaddr *>(&peer), &len,
                     SOCK_CLOEXEC);
    if (fd < 0)
      throw_errno("accept");
    ch.send("accepted " + std::to_string(port_of(peer)));
    set_io_timeouts(fd);
    recv_bytes(fd, spec.exchange.recv_bytes);
    send_bytes(fd, spec.exchange.send_bytes);
    finish_exchange(fd, spec.exchange);
  }
  close(lfd);
  ch.send("done");
}

void client_body(const ClientSpec &spec, ChildChannel &ch) {
  SockAddr a = make_addr(spec.addr, spec.port);
  int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw_errno("socket");
  set_io_timeouts(fd); // SO_SNDTIMEO also bounds connect()
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr *>(&a.ss), a.len);
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    ch.send("connect_errno " + std::to_string(errno));
    close(fd);
    return;
  }
  ch.send("port " + std::to_string(local_port(fd)));
  send_bytes(fd, spec.exchange.send_bytes);
  recv_bytes(fd, spec.exchange.recv_bytes);
  finish_exchange(fd, spec.exchange);
  ch.send("done");
}

} // namespace

Server::Server(const TestNet &net, Side side, ServerSpec spec)
    : spec_(std::move(spec)),
      proc_(net.spawn(side, spec_.comm,
                      [s = spec_](ChildChannel &ch) { server_body(s, ch); })) {
  if (!spec_.gated)
    port_ = static_cast<std::uint16_t>(std::stoi(proc_.expect("port ")));
}

void Server::listen() {
  if (!spec_.gated || port_ != 0)
    throw std::logic_error("Server::listen(): not a waiting gated server");
  proc_.send("listen");
  port_ = static_cast<std::uint16_t>(std::stoi(proc_.expect("port ")));
}

std::vector<std::uint16_t> Server::finish(Duration timeout) {
  std::vector<std::uint16_t> peers;
  for (const auto &line : proc_.finish(timeout)) {
    if (line.starts_with("accepted "))
      peers.push_back(static_cast<std::uint16_t>(std::stoi(line.substr(9))));
  }
  return peers;
}

ClientResult run_client(const TestNet &net, Side side, ClientSpec spec) {
  NsProcess proc = net.spawn(
      side, spec.comm, [spec](ChildChannel &ch) { client_body(spec, ch); });
  ClientResult result;
  result.pid = proc.pid();
  auto line = proc.receive(kChildTimeout);
  if (!line || line->starts_with("error: ")) {
    throw std::runtime_error("client to " + spec.addr + ":" +
                             std::to_string(spec.port) + " failed: " +
                             line.value_or("no output"));
  }
  if (line->starts_with("connect_errno ")) {
    result.connect_errno = std::stoi(line->substr(14));
  } else if (line->starts_with("port ")) {
    result.local_port = static_cast<std::uint16_t>(std::stoi(line->substr(5)));
  }
  proc.finish();
  if (spec.expect_refused && result.connect_errno != ECONNREFUSED) {
    throw std::runtime_error("client to " + spec.addr + ":" +
                             std::to_string(spec.port) +
                             ": expected ECONNREFUSED, got " +
                             (result.connect_errno
                                  ? std::strerror(result.connect_errno)
                                  : std::string("a connection")));
  }
  if (!spec.expect_refused && result.connect_errno != 0) {
    throw std::runtime_error("client connect to " + spec.addr + ":" +
                             std::to_string(spec.port) + " failed: " +
                             std::strerror(result.connect_errno));
  }
  return result;
}

int listen4(const char *addr, const char *who) {
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, addr, &a.sin_addr);
  if (ls < 0 || bind(ls, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0 ||
      listen(ls, 16) != 0)
    throw std::runtime_error(std::string(who) + ": bind/listen failed");
  return ls;
}

// ---------------------------------------------------------------------------
// Connections held open across a tracer's start

namespace {

// Reads until EOF (the peer's FIN) or an error.
void drain(int fd) {
  char buf[512];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
}

std::uint16_t bound_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
  return ntohs(a.sin_port);
}

// Held connections by port -> (fd, shut down already).
using HeldTable = std::map<unsigned, std::pair<int, bool>>;

// "shut P" (shutdown(SHUT_WR); replies "shut P") or "close P" (read to
// EOF; unless this end shut down first, wait 50 ms for the ACK of the
// peer's FIN to leave; close; replies "done P") on the connection of port
// P in `conns`.
void held_command(ChildChannel &ch, HeldTable &conns, const std::string &cmd,
                  unsigned port, const char *who) {
  const auto it = conns.find(port);
  if (it == conns.end())
    throw std::runtime_error(std::string(who) + ": no connection " +
                             std::to_string(port));
  auto &[fd, shut] = it->second;
  if (cmd == "shut") {
    shutdown(fd, SHUT_WR);
    shut = true;
    ch.send("shut " + std::to_string(port));
    return;
  }
  drain(fd);
  if (!shut)
    std::this_thread::sleep_for(50ms);
  close(fd);
  conns.erase(it);
  ch.send("done " + std::to_string(port));
}

// The next "<command> <number>" line; nullopt on timeout, EOF or "quit".
std::optional<std::pair<std::string, unsigned>> held_next(ChildChannel &ch) {
  const auto line = ch.receive(std::chrono::seconds(50));
  if (!line)
    return std::nullopt;
  std::istringstream in(*line);
  std::pair<std::string, unsigned> out{"", 0};
  in >> out.first >> out.second;
  if (out.first == "quit")
    return std::nullopt;
  return out;
}

// Commands, one per line: "accept N" (keep N connections; replies "ok"),
// "shut P" / "close P" (the connection from peer port P, see
// held_command()), "quit" (close the listener, exit). Says "port N" once
// listening.
void held_server(ChildChannel &ch) {
  const int ls = listen4(TestNet::kAddr4B, "held server");
  ch.send("port " + std::to_string(bound_port(ls)));
  HeldTable conns; // by peer port
  while (const auto cmd = held_next(ch)) {
    if (cmd->first != "accept") {
      held_command(ch, conns, cmd->first, cmd->second, "held server");
      continue;
    }
    for (unsigned i = 0; i < cmd->second; ++i) {
      sockaddr_in peer{};
      socklen_t plen = sizeof(peer);
      const int c = accept(ls, reinterpret_cast<sockaddr *>(&peer), &plen);
      if (c < 0)
        throw std::runtime_error("held server: accept failed");
      conns[ntohs(peer.sin_port)] = {c, false};
    }
    ch.send("ok");
  }
  close(ls);
}

// "conn PORT" (connect to B and keep it; replies "lport N"), "shut L" /
// "close L" (the connection from local port L), "quit".
void held_client(ChildChannel &ch) {
  HeldTable conns; // by local port
  while (const auto cmd = held_next(ch)) {
    if (cmd->first != "conn") {
      held_command(ch, conns, cmd->first, cmd->second, "held client");
      continue;
    }
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(cmd->second));
    inet_pton(AF_INET, TestNet::kAddr4B, &a.sin_addr);
    if (connect(s, reinterpret_cast<sockaddr *>(&a), sizeof(a)) != 0)
      throw std::runtime_error("held client: connect failed");
    conns[bound_port(s)] = {s, false};
    ch.send("lport " + std::to_string(bound_port(s)));
  }
}

} // namespace

HeldConnections::HeldConnections(const TestNet &net)
    : server_(net.spawn(Side::B, kServerComm, held_server)),
      client_(net.spawn(Side::A, kClientComm, held_client)) {
  port_ = static_cast<std::uint16_t>(std::stoi(server_.expect("port ")));
  for (int i = 0; i < 2; ++i) {
    client_.send("conn " + std::to_string(port_));
    client_ports_.push_back(
        static_cast<std::uint16_t>(std::stoi(client_.expect("lport "))));
  }
  server_.send("accept 2");
  server_.expect("ok");
}

void HeldConnections::begin_close(int i) {
  const std::string c = std::to_string(client_ports_.at(i));
  NsProcess &closer = i == 0 ? client_ : server_;
  closer.send("shut " + c);
  closer.expect("shut " + c);
}

void HeldConnections::finish_close(int i) {
  const std::string c = std::to_string(client_ports_.at(i));
  NsProcess &closer = i == 0 ? client_ : server_;
  NsProcess &peer = i == 0 ? server_ : client_;
  peer.send("close " + c);
  peer.expect("done " + c);
  closer.send("close " + c);
  closer.expect("done " + c);
}

void HeldConnections::quit() {
  server_.send("quit");
  client_.send("quit");
  server_.finish();
  client_.finish();
}

void HeldConnections::close_all() {
  for (int i = 0; i < 2; ++i) {
    begin_close(i);
    finish_close(i);
  }
  quit();
}

// ---------------------------------------------------------------------------
// TracerProcess

TracerProcess::TracerProcess(std::vector<std::string> args) {
  argv_.emplace_back(TCPTRAIL_BINARY);
  argv_.insert(argv_.end(), args.begin(), args.end());
}

TracerProcess::~TracerProcess() { kill_and_reap(); }

std::string TracerProcess::command_line() const { return join(argv_, " "); }

void TracerProcess::reader(int fd, std::vector<std::string> *lines,
                           bool *eof) {
  std::string buf;
  for (;;) {
    pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&pfd, 1, 100);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0) {
      if (stop_readers_.load())
        break;
      continue;
    }
    char chunk[8192];
    ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    buf.append(chunk, static_cast<std::size_t>(n));
    std::lock_guard lock(mu_);
    std::size_t start = 0;
    for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos;
         start = nl + 1)
      lines->push_back(buf.substr(start, nl - start));
    buf.erase(0, start);
    cv_.notify_all();
  }
  close(fd);
  std::lock_guard lock(mu_);
  if (!buf.empty())
    lines->push_back(buf);
  *eof = true;
  cv_.notify_all();
}

TracerProcess::StartResult TracerProcess::start(Duration timeout) {
  if (pid_ > 0)
    throw std::logic_error("tracer already started");
  if (auto missing = missing_prerequisite())
    return {StartStatus::Unavailable, *missing};
  Pipe out, err;
  auto args = c_argv(argv_);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    throw_errno("fork");
  if (pid == 0) {
    die_with_parent(parent); // survives execve: never outlive the test
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(out.w, 1);
    dup2(err.w, 2);
    execv(args[0], args.data());
    dprintf(2, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  pid_ = pid;
  close(out.w);
  close(err.w);
  out_thread_ = std::thread(&TracerProcess::reader, this, out.r, &out_,
                            &out_eof_);
  err_thread_ = std::thread(&TracerProcess::reader, this, err.r, &err_,
                            &err_eof_);

  bool ready = false;
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] {
      for (const auto &l : err_)
        if (l == "tcptrail: ready")
          ready = true;
      return ready || err_eof_;
    });
  }
  if (ready)
    return {StartStatus::Ready, ""};
  std::string what;
  bool exited = false;
  {
    std::lock_guard lock(mu_);
    exited = err_eof_;
  }
  if (exited) {
    auto code = wait_pid(pid_, 2s);
    if (code) {
      reaped_ = true;
      exit_code_ = *code;
    }
  }
  if (!reaped_) {
    kill_and_reap();
    what = "`" + command_line() + "` did not print \"tcptrail: ready\" within " +
           std::to_string(timeout.count()) + " ms";
  } else {
    stop_readers_ = true;
    if (out_thread_.joinable())
      out_thread_.join();
    if (err_thread_.joinable())
      err_thread_.join();
    what = "`" + command_line() + "` exited " + std::to_string(exit_code_) +
           " before it was ready";
  }
  what += "; stderr:\n" + stderr_text();
  if (reaped_ && exit_code_ == 1 && !what.empty() &&
      stderr_text().find("tcptrail: error:") != std::string::npos)
    return {StartStatus::Unavailable, what};
  return {StartStatus::Failed, what};
}

int TracerProcess::stop(Duration timeout) {
  if (pid_ <= 0)
    throw std::logic_error("tracer not started");
  if (!reaped_) {
    kill(pid_, SIGINT);
    auto code = wait_pid(pid_, timeout);
    if (!code) {
      kill_and_reap();
      throw std::runtime_error("`" + command_line() +
                               "` did not exit within " +
                               std::to_string(timeout.count()) +
                               " ms of SIGINT (killed); stderr:\n" +
                               stderr_text());
    }
    reaped_ = true;
    exit_code_ = *code;
  }
  {
    // The pipes reach EOF when the process is gone; give the readers a
    // moment to drain them.
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, 2s, [&] { return out_eof_ && err_eof_; });
  }
  stop_readers_ = true;
  if (out_thread_.joinable())
    out_thread_.join();
  if (err_thread_.joinable())
    err_thread_.join();
  return exit_code_;
}

void TracerProcess::kill_and_reap() noexcept {
  if (pid_ > 0 && !reaped_) {
    exit_code_ = kill_and_wait(pid_);
    reaped_ = true;
  }
  stop_readers_ = true;
  if (out_thread_.joinable())
    out_thread_.join();
  if (err_thread_.joinable())
    err_thread_.join();
}

std::vector<std::string> TracerProcess::stdout_lines() const {
  std::lock_guard lock(mu_);
  return out_;
}

std::vector<std::string> TracerProcess::stderr_lines() const {
  std::lock_guard lock(mu_);
  return err_;
}

std::string TracerProcess::stderr_text() const {
  return join(stderr_lines(), "\n");
}

namespace {
std::vector<Json> parse_lines(const std::vector<std::string> &lines) {
  std::vector<Json> events;
  events.reserve(lines.size());
  for (const auto &line : lines) {
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      j = Json{{"event", "<unparsable>"}, {"line", line}};
    events.push_back(std::move(j));
  }
  return events;
}
} // namespace

std::vector<Json> TracerProcess::events() const {
  return parse_lines(stdout_lines());
}

bool TracerProcess::wait_for(
    const std::function<bool(const std::vector<Json> &)> &pred,
    Duration timeout) const {
  std::unique_lock lock(mu_);
  bool ok = false;
  cv_.wait_for(lock, timeout, [&] {
    ok = pred(parse_lines(out_));
    return ok || out_eof_;
  });
  return ok;
}

// ---------------------------------------------------------------------------
// Events

namespace {

const std::set<std::string> &state_names() {
  static const std::set<std::string> names{
      "CLOSE",      "LISTEN",    "SYN_SENT", "SYN_RECV",
      "ESTABLISHED", "FIN_WAIT1", "FIN_WAIT2", "CLOSE_WAIT",
      "CLOSING",    "LAST_ACK",  "TIME_WAIT", "NEW_SYN_RECV"};
  return names;
}

class Checker {
public:
  explicit Checker(const Json &ev) : ev_(ev) {}
  std::vector<std::string> problems;

  bool has(const char *key) {
    if (ev_.contains(key))
      return true;
    problems.push_back(std::string("missing \"") + key + "\"");
    return false;
  }
  void bad(const char *key, const std::string &why) {
    problems.push_back(std::string("\"") + key + "\" " + why + ": " +
                       ev_[key].dump());
  }
  void string(const char *key) {
    if (has(key) && !ev_[key].is_string())
      bad(key, "is not a string");
  }
  void unsigned_int(const char *key, std::uint64_t max, bool nullable = false) {
    if (!has(key))
      return;
    const Json &v = ev_[key];
    if (nullable && v.is_null())
      return;
    if (!v.is_number_unsigned())
      bad(key, nullable ? "is not an unsigned integer or null"
                        : "is not an unsigned integer");
    else if (v.get<std::uint64_t>() > max)
      bad(key, "is out of range");
  }
  void state(const char *key) {
    if (!has(key))
      return;
    if (!ev_[key].is_string() ||
        !state_names().contains(ev_[key].get<std::string>()))
      bad(key, "is not a TCP state name");
  }
  void identity() {
    string("time");
    if (ev_.contains("time") && ev_["time"].is_string()) {
      static const std::regex rfc3339(
          R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(Z|\+00:00)$)");
      if (!std::regex_match(ev_["time"].get<std::string>(), rfc3339))
        bad("time", "is not RFC 3339 UTC with nanoseconds");
    }
    unsigned_int("ts_ns", UINT64_MAX);
    unsigned_int("cookie", UINT64_MAX);
    if (ev_.contains("cookie") && ev_["cookie"] == 0)
      bad("cookie", "is 0");
    if (has("pid") && !ev_["pid"].is_number_integer())
      bad("pid", "is not an integer");
    string("comm");
    int af = 0;
    if (has("af")) {
      if (ev_["af"] == 4 || ev_["af"] == 6)
        af = ev_["af"].get<int>();
      else
        bad("af", "is not 4 or 6");
    }
    address("laddr", af);
    address("raddr", af);
    unsigned_int("lport", 65535);
    unsigned_int("rport", 65535);
    // The on-CPU task, next to the owner (issue 2).
    if (has("cpu_pid") && !ev_["cpu_pid"].is_number_integer())
      bad("cpu_pid", "is not an integer");
    string("cpu_comm");
  }
  void address(const char *key, int af) {
    string(key);
    if (!ev_.contains(key) || !ev_[key].is_string() || af == 0)
      return;
    auto text = ev_[key].get<std::string>();
    unsigned char buf[16];
    int family = af == 4 ? AF_INET : AF_INET6;
    char back[INET6_ADDRSTRLEN] = {};
    if (inet_pton(family, text.c_str(), buf) != 1)
      bad(key, "is not an IPv" + std::to_string(af) + " address");
    else if (!inet_ntop(family, buf, back, sizeof(back)) || text != back)
      bad(key, "is not in canonical form (" + std::string(back) + ")");
  }

private:
  const Json &ev_;
};

} // namespace

std::vector<std::string> contract_violations(const Json &event) {
  Checker c(event);
  if (!event.is_object())
    return {"not a JSON object"};
  if (!event.contains("event") || !event["event"].is_string())
    return {"no string \"event\" field"};
  auto kind = event["event"].get<std::string>();
  if (kind == "state") {
    c.identity();
    c.state("old");
    c.state("new");
    c.unsigned_int("old_state_ns", UINT64_MAX, /*nullable=*/true);
    c.unsigned_int("snd_una", UINT32_MAX);
    c.unsigned_int("snd_nxt", UINT32_MAX);
    c.unsigned_int("rcv_nxt", UINT32_MAX);
    c.unsigned_int("isn_local", UINT32_MAX, /*nullable=*/true);
    c.unsigned_int("isn_remote", UINT32_MAX, /*nullable=*/true);
    // "error":"<NAME>" on transitions into CLOSE with a socket error;
    // absent or null otherwise.
    if (event.contains("error") && !event["error"].is_null()) {
      if (!event["error"].is_string() ||
          event["error"].get<std::string>().empty())
        c.bad("error", "is not a non-empty string or null");
      else if (event.value("new", "") != "CLOSE")
        c.bad("error", "is set on a transition not into CLOSE");
    }
    if (event.contains("inferred") && !event["inferred"].is_boolean())
      c.bad("inferred", "is not a boolean");
  } else if (kind == "retransmit") {
    c.identity();
    c.state("state");
    c.unsigned_int("seq", UINT32_MAX);
  } else if (kind == "reset") {
    c.identity();
    c.state("state");
    if (c.has("dir") && event["dir"] != "sent" && event["dir"] != "received")
      c.bad("dir", "is not \"sent\" or \"received\"");
  } else if (kind == "lost") {
    c.unsigned_int("count", UINT64_MAX);
  } else if (kind == "<unparsable>") {
    return {"stdout line is not a JSON object: " +
            event.value("line", std::string())};
  } else {
    return {"unknown event kind \"" + kind + "\""};
  }
  return c.problems;
}

std::vector<std::uint64_t>
cookies_where(const std::vector<Json> &events,
              const std::function<bool(const Json &)> &pred) {
  std::vector<std::uint64_t> out;
  for (const auto &ev : events) {
    if (ev.value("event", "") != "state" || !ev.contains("cookie") ||
        !ev["cookie"].is_number_unsigned() || !pred(ev))
      continue;
    auto cookie = ev["cookie"].get<std::uint64_t>();
    if (std::find(out.begin(), out.end(), cookie) == out.end())
      out.push_back(cookie);
  }
  return out;
}

std::vector<Json> events_of(const std::vector<Json> &events,
                            std::uint64_t cookie, const std::string &kind) {
  std::vector<Json> out;
  for (const auto &ev : events) {
    if (ev.value("event", "") == kind && ev.contains("cookie") &&
        ev["cookie"] == cookie)
      out.push_back(ev);
  }
  return out;
}

std::vector<std::string> transitions(const std::vector<Json> &events,
                                     std::uint64_t cookie) {
  std::vector<std::string> out;
  for (const auto &ev : events_of(events, cookie))
    out.push_back(ev.value("old", "?") + "->" + ev.value("new", "?"));
  return out;
}

Json transition(const std::vector<Json> &events, std::uint64_t cookie,
                const std::string &old_state, const std::string &new_state) {
  std::vector<Json> found;
  for (const auto &ev : events_of(events, cookie))
    if (ev.value("old", "") == old_state && ev.value("new", "") == new_state)
      found.push_back(ev);
  if (found.size() != 1)
    throw std::runtime_error(
        "expected exactly one " + old_state + "->" + new_state +
        " for cookie " + std::to_string(cookie) + ", found " +
        std::to_string(found.size()) + ":\n" + dump(events_of(events, cookie)));
  return found.front();
}

std::string dump(const std::vector<Json> &events) {
  std::string out;
  for (const auto &ev : events)
    out += "  " + ev.dump() + "\n";
  return out;
}

} // namespace tcptrail::test
