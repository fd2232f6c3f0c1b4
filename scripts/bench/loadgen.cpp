// tcptrail-loadgen: a loopback TCP connection storm for scripts/bench/.
//
// N client threads each loop: connect -> send K bytes -> receive the reply
// -> close, for a duration or a fixed number of connections per thread. The
// server lives in the same process (epoll, its own threads, several
// listening ports so that the 4-tuple space does not run out). `idle` opens
// M connections, holds them, then closes them (client first); M may exceed
// one process's fd limit, so idle connections are spread over forked
// children, each with its own server.
//
// Besides connections/s, it prints how many TCP state transitions the run
// caused, as seen by the sock:inet_sock_set_state tracepoint on both ends.
// The per-connection counts below were measured with bpftrace on Linux 6.18
// (see README.md, "Transition counts"), for every mode, IPv4 and IPv6:
//
//   bpftrace -e 'tracepoint:sock:inet_sock_set_state /args->protocol == 6/
//                { @[args->oldstate, args->newstate] = count(); }'
//
// client-first (client closes first; also `idle`), 10 per connection:
//   client  CLOSE->SYN_SENT, SYN_SENT->ESTABLISHED, ESTABLISHED->FIN_WAIT1,
//           FIN_WAIT1->FIN_WAIT2, FIN_WAIT2->CLOSE
//   server  LISTEN->SYN_RECV, SYN_RECV->ESTABLISHED, ESTABLISHED->CLOSE_WAIT,
//           CLOSE_WAIT->LAST_ACK, LAST_ACK->CLOSE
//   FIN_WAIT1->FIN_WAIT2 is not racy: the server closes only after reading
//   EOF, so its FIN always acknowledges ours and tcp_rcv_state_process()
//   handles the ACK (-> FIN_WAIT2) before the FIN (-> timewait sock, CLOSE);
//   a pure ACK on an orphaned socket also goes FIN_WAIT2 -> CLOSE (timewait
//   sock in FIN_WAIT2). TIME_WAIT itself is a timewait sock and fires no
//   event. Simultaneous close (FIN_WAIT1->CLOSING) cannot happen here.
// server-first (server closes after sending the reply), 10 per connection:
//   client  CLOSE->SYN_SENT, SYN_SENT->ESTABLISHED, ESTABLISHED->CLOSE_WAIT,
//           CLOSE_WAIT->LAST_ACK, LAST_ACK->CLOSE
//   server  LISTEN->SYN_RECV, SYN_RECV->ESTABLISHED, ESTABLISHED->FIN_WAIT1,
//           FIN_WAIT1->FIN_WAIT2, FIN_WAIT2->CLOSE
//   The server has read the whole request before it closes, and the client
//   closes only after reading EOF, so again no simultaneous close.
// rst (client aborts with SO_LINGER {1, 0} after the reply), 6 per connection:
//   client  CLOSE->SYN_SENT, SYN_SENT->ESTABLISHED, ESTABLISHED->CLOSE
//   server  LISTEN->SYN_RECV, SYN_RECV->ESTABLISHED, ESTABLISHED->CLOSE
//   (the server's close() of an already CLOSEd socket fires no event).
// Plus 2 per listening socket (CLOSE->LISTEN at listen(), LISTEN->CLOSE at
// close()), once per run.
//
// The total is exact only when the run had no errors and every socket had
// reached a final state when loadgen exited: at the end it closes the
// listeners and waits (sock_diag) until none of its sockets is in a state
// that will still change. `transitions_exact` in the JSON says whether both
// held.
//
// Only loopback addresses are accepted.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <map>
#include <stdexcept>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

namespace {

using Clock = std::chrono::steady_clock;

enum class Mode { ClientFirst, ServerFirst, Rst, Idle };

struct ModeInfo {
  Mode mode;
  std::string_view name;
  unsigned client_transitions; // per connection, client end
  unsigned server_transitions; // per connection, accepted end
};

// Measured with bpftrace; see the comment at the top of the file.
constexpr ModeInfo kModes[] = {
    {Mode::ClientFirst, "client-first", 5, 5},
    {Mode::ServerFirst, "server-first", 5, 5},
    {Mode::Rst, "rst", 3, 3},
    {Mode::Idle, "idle", 5, 5},
};
constexpr unsigned kListenerTransitions = 2; // CLOSE->LISTEN, LISTEN->CLOSE

const ModeInfo &mode_info(Mode mode) {
  for (const auto &info : kModes)
    if (info.mode == mode)
      return info;
  return kModes[0];
}

struct Options {
  Mode mode = Mode::ClientFirst;
  unsigned threads = 2;
  unsigned concurrency = 1; // connections in flight per client thread
  unsigned server_threads = 1;
  unsigned listeners = 8;
  double duration_s = 5.0;
  std::uint64_t connections = 0; // per client thread; 0 = run for duration
  std::size_t bytes = 64;
  std::optional<std::size_t> reply_bytes; // default: echo `bytes`
  std::uint64_t idle = 1000;
  unsigned processes = 0; // idle: 0 = as many as the fd limit needs
  std::string address;
  std::uint16_t port = 0;
  bool ipv6 = false;
  bool json = false;
  double settle_s = 5.0;

  std::size_t reply() const { return reply_bytes.value_or(bytes); }
};

// Limits that keep every loop bounded.
constexpr double kMaxDurationS = 3600.0;
constexpr std::uint64_t kMaxConnectionsPerThread = 100'000'000;
constexpr std::uint64_t kMaxIdle = 2'000'000;
constexpr std::size_t kMaxBytes = 1u << 20;
constexpr unsigned kMaxThreads = 256;
constexpr unsigned kMaxConcurrency = 1024;
constexpr unsigned kMaxListeners = 256;
constexpr unsigned kMaxProcesses = 512;
constexpr int kListenBacklog = 4096;
constexpr int kFdReserve = 64; // fds a process keeps besides connections

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

std::optional<Endpoint> make_endpoint(const std::string &text, bool ipv6,
                                      std::uint16_t port) {
  Endpoint ep;
  if (ipv6) {
    auto *sin6 = reinterpret_cast<sockaddr_in6 *>(&ep.addr);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    if (inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) != 1 ||
        !IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
      return std::nullopt;
    ep.len = sizeof(sockaddr_in6);
    ep.family = AF_INET6;
  } else {
    auto *sin = reinterpret_cast<sockaddr_in *>(&ep.addr);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    if (inet_pton(AF_INET, text.c_str(), &sin->sin_addr) != 1 ||
        (ntohl(sin->sin_addr.s_addr) >> 24) != 127)
      return std::nullopt;
    ep.len = sizeof(sockaddr_in);
  }
  return ep;
}

void set_port(Endpoint &ep, std::uint16_t port) {
  if (ep.family == AF_INET6)
    reinterpret_cast<sockaddr_in6 *>(&ep.addr)->sin6_port = htons(port);
  else
    reinterpret_cast<sockaddr_in *>(&ep.addr)->sin_port = htons(port);
}

std::uint16_t get_port(const sockaddr_storage &addr) {
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6 &>(addr).sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in &>(addr).sin_port);
}

std::string errno_text(int err) { return std::strerror(err); }

// Counters owned by one thread, summed at the end.
struct alignas(64) Counters {
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> connect_errors{0};
  std::atomic<std::uint64_t> io_errors{0};
};

// ---------------------------------------------------------------- server

class Server {
public:
  Server(const Options &opts, const Endpoint &base) : opts_(opts) {
    reply_.assign(std::max<std::size_t>(opts.reply(), 1), 'r');
    for (unsigned i = 0; i < opts.listeners; ++i) {
      Endpoint ep = base;
      set_port(ep, opts.port == 0 ? 0 : opts.port + i);
      int fd = ::socket(ep.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);
      if (fd < 0)
        throw std::runtime_error("socket: " + errno_text(errno));
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, reinterpret_cast<sockaddr *>(&ep.addr), ep.len) < 0 ||
          ::listen(fd, kListenBacklog) < 0) {
        int err = errno;
        ::close(fd);
        throw std::runtime_error("bind/listen: " + errno_text(err));
      }
      sockaddr_storage bound{};
      socklen_t len = sizeof bound;
      ::getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &len);
      set_port(ep, get_port(bound));
      listeners_.push_back(fd);
      endpoints_.push_back(ep);
      ports_.push_back(get_port(bound));
    }
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    conns_.resize(rl.rlim_cur + 1);
  }

  Server(const Server &) = delete;
  Server &operator=(const Server &) = delete;

  ~Server() {
    stop();
    close_listeners();
  }

  const std::vector<Endpoint> &endpoints() const { return endpoints_; }
  const std::vector<std::uint16_t> &ports() const { return ports_; }
  unsigned listener_count() const { return opts_.listeners; }

  void start() {
    for (unsigned t = 0; t < opts_.server_threads; ++t) {
      int ep = ::epoll_create1(EPOLL_CLOEXEC);
      if (ep < 0)
        throw std::runtime_error("epoll_create1: " + errno_text(errno));
      for (std::size_t l = t; l < listeners_.size(); l += opts_.server_threads) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = tag_listener | static_cast<std::uint64_t>(listeners_[l]);
        ::epoll_ctl(ep, EPOLL_CTL_ADD, listeners_[l], &ev);
      }
      epolls_.push_back(ep);
    }
    for (unsigned t = 0; t < opts_.server_threads; ++t)
      threads_.emplace_back([this, t] { run(epolls_[t]); });
  }

  // Waits (bounded) until every accepted connection has been closed and at
  // least `expected` were accepted.
  bool wait_drained(std::uint64_t expected, double timeout_s) const {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (Clock::now() < deadline) {
      auto acc = accepted_.load();
      if (acc >= expected && closed_.load() == acc)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  void stop() {
    stop_.store(true);
    for (auto &t : threads_)
      t.join();
    threads_.clear();
    for (int ep : epolls_)
      ::close(ep);
    epolls_.clear();
  }

  void close_listeners() {
    for (int fd : listeners_)
      ::close(fd);
    listeners_.clear();
  }

  std::uint64_t errors() const { return errors_.load(); }

private:
  static constexpr std::uint64_t tag_listener = 1ull << 32;

  struct Conn {
    std::uint32_t received = 0;
    bool replied = false;
  };

  void run(int ep) {
    std::vector<epoll_event> events(256);
    while (!stop_.load(std::memory_order_relaxed)) {
      int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()),
                           20);
      for (int i = 0; i < n; ++i) {
        auto data = events[i].data.u64;
        int fd = static_cast<int>(data & 0xffffffffu);
        if (data & tag_listener)
          accept_all(ep, fd);
        else
          serve(fd);
      }
    }
  }

  void accept_all(int ep, int lfd) {
    for (;;) {
      int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
            errno != ECONNABORTED)
          errors_.fetch_add(1, std::memory_order_relaxed);
        return;
      }
      accepted_.fetch_add(1, std::memory_order_relaxed);
      conns_[fd] = Conn{};
      if (!serve(fd))
        continue; // closed already
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = static_cast<std::uint64_t>(fd);
      ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
  }

  void finish(int fd) {
    ::close(fd); // also removes it from the epoll set
    closed_.fetch_add(1, std::memory_order_relaxed);
  }

  // Reads what is there, replies once the request is complete; closes on EOF,
  // error, or (server-first) right after replying. False once closed.
  bool serve(int fd) {
    Conn &c = conns_[fd];
    char buf[16384];
    for (;;) {
      if (!c.replied && c.received >= opts_.bytes) {
        if (!send_reply(fd)) {
          errors_.fetch_add(1, std::memory_order_relaxed);
          finish(fd);
          return false;
        }
        c.replied = true;
        if (opts_.mode == Mode::ServerFirst) {
          finish(fd);
          return false;
        }
      }
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        c.received += static_cast<std::uint32_t>(n);
        continue;
      }
      if (n == 0) {
        finish(fd);
        return false;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return true;
      if (errno == EINTR)
        continue;
      // ECONNRESET is the expected end of an `rst` connection.
      if (!(errno == ECONNRESET && opts_.mode == Mode::Rst))
        errors_.fetch_add(1, std::memory_order_relaxed);
      finish(fd);
      return false;
    }
  }

  bool send_reply(int fd) {
    std::size_t want = opts_.reply(), done = 0;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (done < want) {
      ssize_t n = ::send(fd, reply_.data() + done, want - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR) &&
          Clock::now() < deadline) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      return false;
    }
    return true;
  }

  const Options &opts_;
  std::string reply_;
  std::vector<int> listeners_;
  std::vector<Endpoint> endpoints_;
  std::vector<std::uint16_t> ports_;
  std::vector<int> epolls_;
  std::vector<std::thread> threads_;
  std::vector<Conn> conns_; // indexed by fd; an fd is served by one thread
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> closed_{0};
  std::atomic<std::uint64_t> errors_{0};
};

// ---------------------------------------------------------------- client

bool send_all(int fd, const char *data, std::size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    data += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

bool recv_exact(int fd, char *buf, std::size_t cap, std::size_t len) {
  while (len > 0) {
    ssize_t n = ::recv(fd, buf, std::min(cap, len), 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

// Blocks until the peer's FIN (recv() == 0). Bounded by SO_RCVTIMEO.
bool wait_eof(int fd, char *buf, std::size_t cap) {
  for (;;) {
    ssize_t n = ::recv(fd, buf, cap, 0);
    if (n == 0)
      return true;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return false;
  }
}

// Connects a blocking socket with send/receive timeouts. -1 on failure.
int open_connection(const Endpoint &dst) {
  int fd = ::socket(dst.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<const sockaddr *>(&dst.addr), dst.len) <
      0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void abort_close(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

struct Storm {
  const Options &opts;
  const std::vector<Endpoint> &dsts;
  Clock::time_point deadline;
};

void client_loop(const Storm &storm, unsigned index, Counters &counters) {
  const Options &opts = storm.opts;
  std::string request(std::max<std::size_t>(opts.bytes, 1), 'q');
  std::vector<char> buf(std::max<std::size_t>(opts.reply(), 16384));
  const std::uint64_t limit =
      opts.connections ? opts.connections : kMaxConnectionsPerThread;
  std::size_t next = index;
  for (std::uint64_t i = 0; i < limit; ++i) {
    if (opts.connections == 0 && (i & 7) == 0 && Clock::now() >= storm.deadline)
      break;
    const Endpoint &dst = storm.dsts[next++ % storm.dsts.size()];
    int fd = open_connection(dst);
    if (fd < 0) {
      counters.connect_errors.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    bool ok = send_all(fd, request.data(), opts.bytes) &&
              recv_exact(fd, buf.data(), buf.size(), opts.reply());
    if (ok && opts.mode == Mode::ServerFirst)
      ok = wait_eof(fd, buf.data(), buf.size());
    if (!ok) {
      counters.io_errors.fetch_add(1, std::memory_order_relaxed);
      abort_close(fd);
      continue;
    }
    if (opts.mode == Mode::Rst)
      abort_close(fd);
    else
      ::close(fd);
    counters.completed.fetch_add(1, std::memory_order_relaxed);
  }
}

// The same loop with `concurrency` connections in flight per thread
// (non-blocking sockets, one epoll per thread). Fewer sleeps and wake-ups per
// connection than the blocking loop, so a higher rate on few cores.
class AsyncClient {
public:
  AsyncClient(const Storm &storm, unsigned index, Counters &counters)
      : storm_(storm), opts_(storm.opts), counters_(counters), next_(index),
        request_(std::max<std::size_t>(opts_.bytes, 1), 'q'),
        buf_(std::max<std::size_t>(opts_.reply(), 16384)),
        slots_(opts_.concurrency) {
    limit_ = opts_.connections ? opts_.connections : kMaxConnectionsPerThread;
  }

  void run() {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
      counters_.connect_errors.fetch_add(1);
      return;
    }
    for (std::size_t s = 0; s < slots_.size(); ++s)
      start(s);
    std::vector<epoll_event> events(slots_.size() + 1);
    auto last_sweep = Clock::now();
    while (active_ > 0) {
      int n = ::epoll_wait(ep_, events.data(), static_cast<int>(events.size()),
                           100);
      for (int i = 0; i < n; ++i)
        step(events[i].data.u32, events[i].events);
      auto now = Clock::now();
      if (now - last_sweep > std::chrono::seconds(1)) {
        last_sweep = now;
        for (std::size_t s = 0; s < slots_.size(); ++s)
          if (slots_[s].fd >= 0 && now - slots_[s].started > kIoTimeout)
            fail(s, counters_.io_errors);
      }
    }
    ::close(ep_);
  }

private:
  static constexpr auto kIoTimeout = std::chrono::seconds(10);
  enum class Phase : std::uint8_t { Connecting, Reading, WaitEof };
  struct Slot {
    int fd = -1;
    Phase phase = Phase::Connecting;
    std::size_t received = 0;
    Clock::time_point started;
  };

  bool more() {
    if (started_ >= limit_)
      return false;
    if (opts_.connections == 0 && Clock::now() >= storm_.deadline)
      return false;
    return true;
  }

  // Opens a new connection in slot s, or leaves it empty when done.
  void start(std::size_t s) {
    Slot &slot = slots_[s];
    while (more()) {
      ++started_;
      const Endpoint &dst = storm_.dsts[next_++ % storm_.dsts.size()];
      int fd = ::socket(dst.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        0);
      if (fd < 0) {
        counters_.connect_errors.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      if (::connect(fd, reinterpret_cast<const sockaddr *>(&dst.addr),
                    dst.len) < 0 &&
          errno != EINPROGRESS) {
        ::close(fd);
        counters_.connect_errors.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      slot = Slot{fd, Phase::Connecting, 0, Clock::now()};
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
      ev.data.u32 = static_cast<std::uint32_t>(s);
      ::epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      ++active_;
      // On loopback the handshake has usually completed already.
      step(static_cast<std::uint32_t>(s), EPOLLOUT);
      return;
    }
  }

  void fail(std::size_t s, std::atomic<std::uint64_t> &counter) {
    counter.fetch_add(1, std::memory_order_relaxed);
    abort_close(slots_[s].fd);
    done(s);
  }

  void done(std::size_t s) {
    slots_[s].fd = -1;
    --active_;
    start(s);
  }

  void complete(std::size_t s) {
    if (opts_.mode == Mode::Rst)
      abort_close(slots_[s].fd);
    else
      ::close(slots_[s].fd);
    counters_.completed.fetch_add(1, std::memory_order_relaxed);
    done(s);
  }

  void step(std::uint32_t s, std::uint32_t events) {
    Slot &slot = slots_[s];
    if (slot.fd < 0)
      return;
    if (slot.phase == Phase::Connecting) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return;
      ssize_t n = ::send(slot.fd, request_.data(), opts_.bytes, MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN)
        return; // not connected yet: EPOLLOUT will come
      if (n < 0) {
        // connect() failed (e.g. refused), or the send did
        fail(s, counters_.connect_errors);
        return;
      }
      if (static_cast<std::size_t>(n) != opts_.bytes) {
        fail(s, counters_.io_errors); // requests are small; no partial sends
        return;
      }
      slot.phase = Phase::Reading;
      if (opts_.reply() == 0) {
        advance_after_reply(s);
        return;
      }
      events = EPOLLIN; // the reply may be there already (rare)
    }
    for (;;) {
      ssize_t n = ::recv(slot.fd, buf_.data(), buf_.size(), 0);
      if (n > 0) {
        if (slot.phase == Phase::Reading) {
          slot.received += static_cast<std::size_t>(n);
          if (slot.received > opts_.reply()) {
            fail(s, counters_.io_errors);
            return;
          }
          if (slot.received == opts_.reply()) {
            if (!advance_after_reply(s))
              return;
          }
        } else {
          fail(s, counters_.io_errors); // data after the reply
          return;
        }
        continue;
      }
      if (n == 0) {
        if (slot.phase == Phase::WaitEof)
          complete(s);
        else
          fail(s, counters_.io_errors);
        return;
      }
      if (errno == EAGAIN)
        return;
      if (errno == EINTR)
        continue;
      fail(s, counters_.io_errors);
      return;
    }
  }

  // The reply is complete. False once the slot's connection is gone.
  bool advance_after_reply(std::size_t s) {
    if (opts_.mode == Mode::ServerFirst) {
      slots_[s].phase = Phase::WaitEof;
      return true;
    }
    complete(s);
    return false;
  }

  const Storm &storm_;
  const Options &opts_;
  Counters &counters_;
  std::size_t next_;
  std::string request_;
  std::vector<char> buf_;
  std::vector<Slot> slots_;
  std::uint64_t limit_ = 0;
  std::uint64_t started_ = 0;
  std::size_t active_ = 0;
  int ep_ = -1;
};

// ------------------------------------------------------------- sock_diag

// Sockets on one of `ports` (either end) in a state that will still change:
// anything but LISTEN, CLOSE and TIME_WAIT. nullopt if sock_diag fails.
std::optional<std::size_t> count_unsettled(int family,
                                           const std::vector<std::uint16_t> &ports) {
  int nl = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0)
    return std::nullopt;
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.req.sdiag_family = static_cast<std::uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = (1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) |
                         (1u << TCP_SYN_RECV) | (1u << TCP_FIN_WAIT1) |
                         (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSE_WAIT) |
                         (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING) |
                         (1u << 12 /* TCP_NEW_SYN_RECV */);
  if (::send(nl, &msg, sizeof msg, 0) < 0) {
    ::close(nl);
    return std::nullopt;
  }
  std::vector<char> buf(1 << 16);
  std::size_t count = 0;
  for (int rounds = 0; rounds < 100000; ++rounds) {
    ssize_t n = ::recv(nl, buf.data(), buf.size(), 0);
    if (n <= 0)
      break;
    for (auto *h = reinterpret_cast<nlmsghdr *>(buf.data());
         NLMSG_OK(h, static_cast<unsigned>(n)); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        ::close(nl);
        return count;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        ::close(nl);
        return std::nullopt;
      }
      auto *m = static_cast<inet_diag_msg *>(NLMSG_DATA(h));
      auto sport = ntohs(m->id.idiag_sport), dport = ntohs(m->id.idiag_dport);
      for (auto p : ports)
        if (p == sport || p == dport) {
          ++count;
          break;
        }
    }
  }
  ::close(nl);
  return std::nullopt;
}

bool wait_quiescent(int family, const std::vector<std::uint16_t> &ports,
                    double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  do {
    auto n = count_unsettled(family, ports);
    if (!n)
      return false;
    if (*n == 0)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  } while (Clock::now() < deadline);
  return false;
}

// ----------------------------------------------------------------- runs

struct Result {
  std::uint64_t completed = 0;
  std::uint64_t connect_errors = 0;
  std::uint64_t io_errors = 0;
  std::uint64_t server_errors = 0;
  std::uint64_t listeners = 0;
  std::uint64_t processes = 1;
  std::uint64_t quiesced = 1; // all processes quiesced (0/1)
  double elapsed_s = 0;       // storm: clients' wall time; idle: open time
  double hold_s = 0;          // idle: time all connections were held

  std::uint64_t errors() const {
    return connect_errors + io_errors + server_errors;
  }
};

// Closes down a server after the clients are done and records the outcome.
void settle(const Options &opts, Server &server, std::uint64_t expected,
            int family, Result &res) {
  bool drained = server.wait_drained(expected, opts.settle_s);
  server.stop();
  server.close_listeners();
  bool quiet = wait_quiescent(family, server.ports(), opts.settle_s);
  res.server_errors = server.errors();
  res.listeners = server.listener_count();
  res.quiesced = drained && quiet;
}

Result run_storm(const Options &opts, const Endpoint &base) {
  Server server(opts, base);
  server.start();
  std::vector<Counters> counters(opts.threads);
  Storm storm{opts, server.endpoints(),
              Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(opts.duration_s))};
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < opts.threads; ++t)
    threads.emplace_back([&storm, &counters, t] {
      if (storm.opts.concurrency > 1)
        AsyncClient(storm, t, counters[t]).run();
      else
        client_loop(storm, t, counters[t]);
    });
  for (auto &t : threads)
    t.join();
  Result res;
  res.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto &c : counters) {
    res.completed += c.completed;
    res.connect_errors += c.connect_errors;
    res.io_errors += c.io_errors;
  }
  settle(opts, server, res.completed + res.io_errors, base.family, res);
  return res;
}

// One idle process: opens `count` connections, reports, holds them until
// `go` is readable (EOF), closes them client first and settles.
Result idle_child(const Options &opts, const Endpoint &base, std::uint64_t count,
                  int ready_fd, int go_fd) {
  Server server(opts, base);
  server.start();
  const auto &dsts = server.endpoints();
  std::vector<std::vector<int>> fds(opts.threads);
  std::vector<Counters> counters(opts.threads);
  std::string request(std::max<std::size_t>(opts.bytes, 1), 'q');
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < opts.threads; ++t) {
    std::uint64_t share = count / opts.threads + (t < count % opts.threads);
    threads.emplace_back([&, t, share] {
      std::vector<char> buf(std::max<std::size_t>(opts.reply(), 16384));
      for (std::uint64_t i = 0; i < share; ++i) {
        int fd = open_connection(dsts[(t + i) % dsts.size()]);
        if (fd < 0) {
          counters[t].connect_errors.fetch_add(1);
          continue;
        }
        if (!send_all(fd, request.data(), opts.bytes) ||
            !recv_exact(fd, buf.data(), buf.size(), opts.reply())) {
          counters[t].io_errors.fetch_add(1);
          abort_close(fd);
          continue;
        }
        fds[t].push_back(fd);
      }
    });
  }
  for (auto &t : threads)
    t.join();
  Result res;
  res.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  char one = 1;
  (void)!::write(ready_fd, &one, 1);
  // Hold until the parent closes its end (bounded: parent's hold + margin).
  pollfd p{go_fd, POLLIN, 0};
  ::poll(&p, 1,
         static_cast<int>((opts.duration_s + opts.settle_s) * 1000) + 600000);
  auto hold_start = Clock::now();
  for (auto &v : fds)
    for (int fd : v) {
      ::close(fd);
      ++res.completed;
    }
  res.hold_s = std::chrono::duration<double>(hold_start - start).count();
  for (auto &c : counters) {
    res.connect_errors += c.connect_errors;
    res.io_errors += c.io_errors;
  }
  settle(opts, server, res.completed + res.io_errors, base.family, res);
  return res;
}

Result run_idle(const Options &opts, const Endpoint &base) {
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  // Each connection costs two fds (client and server end, same process).
  std::uint64_t per_process =
      rl.rlim_cur > static_cast<rlim_t>(2 * kFdReserve)
          ? (rl.rlim_cur - kFdReserve) / 2
          : 1;
  unsigned procs = opts.processes
                       ? opts.processes
                       : static_cast<unsigned>(
                             std::max<std::uint64_t>(
                                 1, (opts.idle + per_process - 1) / per_process));
  if (procs > kMaxProcesses)
    throw std::runtime_error(fmt::format(
        "--idle {} needs {} processes (limit {})", opts.idle, procs,
        kMaxProcesses));
  if ((opts.idle + procs - 1) / procs > per_process)
    throw std::runtime_error(fmt::format(
        "--idle {} over {} processes exceeds {} connections per process "
        "(RLIMIT_NOFILE {})",
        opts.idle, procs, per_process, rl.rlim_cur));

  int go[2];
  if (::pipe2(go, O_CLOEXEC) < 0)
    throw std::runtime_error("pipe: " + errno_text(errno));
  struct Child {
    pid_t pid;
    int ready;  // child writes 1 byte when open, then a Result
  };
  std::vector<Child> children;
  auto start = Clock::now();
  for (unsigned i = 0; i < procs; ++i) {
    std::uint64_t share = opts.idle / procs + (i < opts.idle % procs);
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0)
      throw std::runtime_error("pipe: " + errno_text(errno));
    std::fflush(nullptr);
    pid_t pid = ::fork();
    if (pid < 0)
      throw std::runtime_error("fork: " + errno_text(errno));
    if (pid == 0) {
      ::close(ready[0]);
      ::close(go[1]);
      for (auto &c : children)
        ::close(c.ready);
      Result r;
      try {
        r = idle_child(opts, base, share, ready[1], go[0]);
      } catch (const std::exception &e) {
        fmt::print(stderr, "loadgen: child {}: {}\n", i, e.what());
        r.connect_errors = share;
        r.quiesced = 0;
        char one = 1;
        (void)!::write(ready[1], &one, 1);
      }
      (void)!::write(ready[1], &r, sizeof r);
      ::_exit(0);
    }
    ::close(ready[1]);
    children.push_back({pid, ready[0]});
  }
  for (auto &c : children) {
    char one;
    (void)!::read(c.ready, &one, 1);
  }
  Result total;
  total.processes = procs;
  total.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  fmt::print(stderr, "loadgen: holding {} connections in {} processes\n",
             opts.idle, procs);
  std::fflush(stderr);
  auto hold_start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(opts.duration_s));
  ::close(go[1]); // EOF: children close their connections
  ::close(go[0]);
  total.hold_s = std::chrono::duration<double>(Clock::now() - hold_start).count();
  for (auto &c : children) {
    Result r;
    if (::read(c.ready, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
      r = Result{};
      r.quiesced = 0;
      r.connect_errors = 1;
    }
    ::close(c.ready);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    total.completed += r.completed;
    total.connect_errors += r.connect_errors;
    total.io_errors += r.io_errors;
    total.server_errors += r.server_errors;
    total.listeners += r.listeners;
    total.quiesced = total.quiesced && r.quiesced;
  }
  return total;
}

std::uint64_t netns_inode() {
  struct stat st{};
  if (::stat("/proc/self/ns/net", &st) < 0)
    return 0;
  return st.st_ino;
}

void report(const Options &opts, const Result &res) {
  const ModeInfo &info = mode_info(opts.mode);
  unsigned per_conn = info.client_transitions + info.server_transitions;
  std::uint64_t transitions =
      res.completed * per_conn + res.listeners * kListenerTransitions;
  bool exact = res.errors() == 0 && res.quiesced;
  double rate = res.elapsed_s > 0 ? res.completed / res.elapsed_s : 0;
  if (opts.mode == Mode::Idle)
    rate = res.elapsed_s > 0 ? res.completed / res.elapsed_s : 0;
  if (opts.json) {
    fmt::print(
        "{{\"mode\":\"{}\",\"family\":\"{}\",\"threads\":{},"
        "\"server_threads\":{},\"processes\":{},\"listeners\":{},"
        "\"bytes\":{},\"reply_bytes\":{},\"elapsed_s\":{:.6f},"
        "\"hold_s\":{:.6f},\"connections\":{},\"connections_per_s\":{:.1f},"
        "\"errors\":{},\"connect_errors\":{},\"io_errors\":{},"
        "\"server_errors\":{},\"transitions_per_connection\":{},"
        "\"transitions\":{},\"transitions_exact\":{},\"quiesced\":{},"
        "\"netns\":{}}}\n",
        info.name, opts.ipv6 ? "ipv6" : "ipv4", opts.threads,
        opts.server_threads, res.processes, res.listeners, opts.bytes,
        opts.reply(), res.elapsed_s, res.hold_s, res.completed, rate,
        res.errors(), res.connect_errors, res.io_errors, res.server_errors,
        per_conn, transitions, exact ? "true" : "false",
        res.quiesced ? "true" : "false", netns_inode());
  } else {
    fmt::print("loadgen: mode={} {} threads={} connections={} in {:.2f}s "
               "({:.0f}/s{}) errors={} transitions={} ({}/conn + {} "
               "listeners x2){}\n",
               info.name, opts.ipv6 ? "ipv6" : "ipv4", opts.threads,
               res.completed, res.elapsed_s, rate,
               opts.mode == Mode::Idle ? " opening" : "", res.errors(),
               transitions, per_conn, res.listeners,
               exact ? "" : " NOT EXACT");
  }
  std::fflush(stdout);
}

} // namespace

int main(int argc, char **argv) {
  Options opts;
  CLI::App app{"tcptrail-loadgen: loopback TCP connection storm"};
  std::map<std::string, Mode> mode_map;
  for (const auto &m : kModes)
    mode_map.emplace(std::string(m.name), m.mode);
  app.add_option("-m,--mode", opts.mode,
                 "client-first | server-first | rst | idle")
      ->transform(CLI::CheckedTransformer(mode_map, CLI::ignore_case));
  app.add_option("-t,--threads", opts.threads, "client threads")
      ->check(CLI::Range(1u, kMaxThreads));
  app.add_option("-c,--concurrency", opts.concurrency,
                 "connections in flight per client thread (1 = blocking loop)")
      ->check(CLI::Range(1u, kMaxConcurrency));
  app.add_option("--server-threads", opts.server_threads, "server threads")
      ->check(CLI::Range(1u, kMaxThreads));
  app.add_option("--listeners", opts.listeners,
                 "listening ports (per process); connections rotate over them")
      ->check(CLI::Range(1u, kMaxListeners));
  app.add_option("-d,--duration", opts.duration_s,
                 "seconds to run (idle: seconds to hold)")
      ->check(CLI::Range(0.0, kMaxDurationS));
  app.add_option("-n,--connections", opts.connections,
                 "connections per client thread instead of a duration")
      ->check(CLI::Range(std::uint64_t{0}, kMaxConnectionsPerThread));
  app.add_option("-b,--bytes", opts.bytes, "request size")
      ->check(CLI::Range(std::size_t{0}, kMaxBytes));
  app.add_option("--reply-bytes", opts.reply_bytes,
                 "reply size (default: echo --bytes)")
      ->check(CLI::Range(std::size_t{0}, kMaxBytes));
  app.add_option("--idle", opts.idle, "idle mode: connections to hold")
      ->check(CLI::Range(std::uint64_t{1}, kMaxIdle));
  app.add_option("--processes", opts.processes,
                 "idle mode: processes (0 = as the fd limit requires)")
      ->check(CLI::Range(0u, kMaxProcesses));
  app.add_option("-a,--address", opts.address,
                 "loopback address (default 127.0.0.1, ::1 with -6)");
  app.add_option("-p,--port", opts.port,
                 "first listening port (0 = ephemeral)");
  app.add_flag("-6,--ipv6", opts.ipv6, "use IPv6 (::1)");
  app.add_flag("--json", opts.json, "print one JSON object");
  app.add_option("--settle", opts.settle_s,
                 "max seconds to wait for sockets to settle at the end")
      ->check(CLI::Range(0.0, 60.0));
  CLI11_PARSE(app, argc, argv);

  if (opts.address.empty())
    opts.address = opts.ipv6 ? "::1" : "127.0.0.1";
  auto base = make_endpoint(opts.address, opts.ipv6, opts.port);
  if (!base) {
    fmt::print(stderr, "loadgen: error: {} is not a loopback {} address\n",
               opts.address, opts.ipv6 ? "IPv6" : "IPv4");
    return 2;
  }
  if (opts.port != 0 &&
      static_cast<unsigned>(opts.port) + opts.listeners - 1 > 65535) {
    fmt::print(stderr, "loadgen: error: --port + --listeners exceeds 65535\n");
    return 2;
  }
  // Use the whole hard limit (raising the hard limit needs CAP_SYS_RESOURCE).
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  ::signal(SIGPIPE, SIG_IGN);

  try {
    Result res = opts.mode == Mode::Idle ? run_idle(opts, *base)
                                         : run_storm(opts, *base);
    report(opts, res);
    return res.errors() == 0 ? 0 : 1;
  } catch (const std::exception &e) {
    fmt::print(stderr, "loadgen: error: {}\n", e.what());
    return 2;
  }
}
