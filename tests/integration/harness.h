// Integration-test harness: network namespaces, forked socket endpoints
// inside them, and the tcptrail binary as a child process.
//
// Everything here needs root and a real kernel. Every wait is bounded. The
// test process itself never changes network namespace: code that must run
// inside a namespace runs in a forked child that setns()es.
//
// Errors in the harness (a command failed, a child timed out) throw
// std::runtime_error with the reason; GoogleTest reports it as a failure of
// the test, and the RAII objects (namespaces, children, tracer) clean up.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace tcptrail::test {

using Json = nlohmann::json;
using Duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

inline constexpr Duration kReadyTimeout = 10s;   // tracer prints "ready"
inline constexpr Duration kStopTimeout = 10s;    // tracer exits on SIGINT
inline constexpr Duration kCommandTimeout = 10s; // ip, nft, sysctl
inline constexpr Duration kChildTimeout = 15s;   // a socket endpoint finishes
inline constexpr Duration kIoTimeout = 5s;       // one socket read/accept
inline constexpr Duration kEventTimeout = 5s;    // an expected event arrives

// ---------------------------------------------------------------------------
// Prerequisites

// CI=true or TCPTRAIL_REQUIRE_BPF=1: a missing prerequisite fails the test.
bool bpf_required();

// The first missing prerequisite for running the tracer ("not root", ...),
// or nullopt when everything is in place.
std::optional<std::string> missing_prerequisite();

// GTEST_SKIP() with `reason`, or a failure when bpf_required(). Returns
// from the calling function (a test body or SetUp()).
#define TT_SKIP_OR_FAIL(reason)                                                \
  do {                                                                         \
    if (::tcptrail::test::bpf_required()) {                                    \
      GTEST_FAIL() << "prerequisite missing (CI=true or "                      \
                      "TCPTRAIL_REQUIRE_BPF=1, so this is a failure): "        \
                   << (reason);                                                \
    } else {                                                                   \
      GTEST_SKIP() << (reason);                                                \
    }                                                                          \
  } while (0)

// ---------------------------------------------------------------------------
// Commands

struct CommandResult {
  int exit_code = -1;  // 128 + signal when killed (e.g. on timeout)
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv (no shell), bounded by `timeout`; SIGKILLs it on timeout.
CommandResult run_command(const std::vector<std::string> &argv,
                          Duration timeout = kCommandTimeout);

// run_command(), throwing std::runtime_error unless it exits 0.
std::string check_command(const std::vector<std::string> &argv,
                          Duration timeout = kCommandTimeout);

// ---------------------------------------------------------------------------
// Processes forked into a namespace

// The child's end of the line-based channel to the test.
class ChildChannel {
public:
  ChildChannel(int to_parent, int from_parent)
      : to_parent_(to_parent), from_parent_(from_parent) {}
  void send(const std::string &line);
  // The next line from the test, nullopt on timeout or EOF.
  std::optional<std::string> receive(Duration timeout = kIoTimeout);

private:
  int to_parent_;
  int from_parent_;
  std::string buf_;
};

// A forked child running a function inside a network namespace, with its
// comm set. The test talks to it in lines. Destroying it SIGKILLs and reaps
// the child if it is still running (only that pid).
class NsProcess {
public:
  using Body = std::function<void(ChildChannel &)>;

  // Forks; the child setns()es into /run/netns/<netns>, sets its comm, runs
  // `body` and exits 0 (1 and an "error: ..." line when body throws). It
  // dies with the test process (PR_SET_PDEATHSIG) and after 60 s (alarm).
  NsProcess(const std::string &netns, const std::string &comm, Body body);
  ~NsProcess();
  NsProcess(const NsProcess &) = delete;
  NsProcess &operator=(const NsProcess &) = delete;
  NsProcess(NsProcess &&other) noexcept;
  NsProcess &operator=(NsProcess &&) = delete;

  pid_t pid() const { return pid_; }
  void send(const std::string &line);
  // The next line from the child, nullopt on timeout or EOF.
  std::optional<std::string> receive(Duration timeout = kIoTimeout);
  // receive() a line starting with `prefix` ("port "), returning the rest.
  // Throws with the child's "error: " line, or on timeout/EOF.
  std::string expect(const std::string &prefix, Duration timeout = kIoTimeout);
  // Waits for exit (SIGKILL after `timeout`); returns the exit code, or
  // 128 + signal.
  int wait(Duration timeout = kChildTimeout);
  // Reads the child's remaining lines until EOF and wait()s (both within
  // `timeout`); throws unless it exited 0. Returns those lines.
  std::vector<std::string> finish(Duration timeout = kChildTimeout);

private:
  pid_t pid_ = -1;
  int to_child_ = -1;
  int from_child_ = -1;
  std::string buf_;
  bool reaped_ = false;
  int exit_code_ = -1;
};

// ---------------------------------------------------------------------------
// Network namespaces

enum class Side { A, B };

// Removes `tt-<pid>-...` namespaces whose creating pid is dead. Called once
// per process by the first TestNet.
void cleanup_stale_namespaces();

// Two fresh network namespaces, A and B, joined by a veth pair `tt0`:
//   A: 198.18.0.1/24, 2001:db8::1/64      B: 198.18.0.2/24, 2001:db8::2/64
// lo is up in both. Named tt-<pid>-<n>-a / -b. The destructor deletes both,
// also when the test failed or threw.
class TestNet {
public:
  TestNet(); // throws std::runtime_error (and deletes what it created)
  ~TestNet();
  TestNet(const TestNet &) = delete;
  TestNet &operator=(const TestNet &) = delete;

  static constexpr const char *kAddr4A = "198.18.0.1";
  static constexpr const char *kAddr4B = "198.18.0.2";
  static constexpr const char *kAddr6A = "2001:db8::1";
  static constexpr const char *kAddr6B = "2001:db8::2";
  static constexpr const char *kVeth = "tt0";

  const std::string &name(Side side) const {
    return side == Side::A ? name_a_ : name_b_;
  }
  // st_ino of /run/netns/<name>: the value for `tcptrail trace --netns`.
  std::uint64_t inode(Side side) const {
    return side == Side::A ? inode_a_ : inode_b_;
  }
  static std::string addr4(Side side) {
    return side == Side::A ? kAddr4A : kAddr4B;
  }
  static std::string addr6(Side side) {
    return side == Side::A ? kAddr6A : kAddr6B;
  }

  // `ip netns exec <name> argv...`
  CommandResult exec(Side side, const std::vector<std::string> &argv,
                     Duration timeout = kCommandTimeout) const;
  // exec(), throwing unless it exits 0.
  std::string exec_ok(Side side, const std::vector<std::string> &argv) const;
  // `ip netns exec <name> sh -c script`, throwing unless it exits 0.
  std::string sh(Side side, const std::string &script) const;
  // sysctl -w key=value inside the namespace.
  void sysctl(Side side, const std::string &key,
              const std::string &value) const;
  // Adds another address ("198.18.0.3/24", "2001:db8::3/64") to tt0.
  void add_address(Side side, const std::string &cidr) const;

  // Forks a child running `body` inside the namespace (see NsProcess).
  NsProcess spawn(Side side, const std::string &comm,
                  NsProcess::Body body) const;

private:
  void setup();
  void teardown() noexcept;

  std::string name_a_, name_b_;
  std::uint64_t inode_a_ = 0, inode_b_ = 0;
};

// ---------------------------------------------------------------------------
// Socket endpoints (each a forked process inside a namespace)

enum class CloseMode {
  Close,    // close() right away (the socket is orphaned at once)
  Shutdown, // shutdown(SHUT_WR), read until the peer's EOF, close()
  Abort,    // SO_LINGER {1, 0} and close(): RST
};

// What one end does with a connection, in this order: send `send_bytes`,
// read `recv_bytes` (the client sends first, the server reads first), then
// either close actively (`close_first`, with `close_mode`, after sleeping
// `active_close_delay`), or wait for the
// peer's EOF, sleep `passive_close_delay` (so that the ACK of the peer's
// FIN leaves before our FIN) and close().
struct Exchange {
  std::size_t send_bytes = 0;
  std::size_t recv_bytes = 0;
  bool close_first = false;
  CloseMode close_mode = CloseMode::Shutdown;
  Duration passive_close_delay = 50ms;
  Duration active_close_delay = 0ms; // sleep before closing actively
};

struct ServerSpec {
  std::string addr;       // local address to bind (numeric v4 or v6)
  std::uint16_t port = 0; // 0: ephemeral
  int connections = 1;    // accept this many, one after the other
  Exchange exchange;      // per connection (send_bytes = reply)
  std::string comm = "tt-server";
  // The process waits for listen() before it creates its socket, so that
  // its pid is known (e.g. for `--pid`) before the listener exists.
  bool gated = false;
};

// A server process. Constructed once it listens (or, if gated, once it is
// forked: then listen() starts it).
class Server {
public:
  Server(const TestNet &net, Side side, ServerSpec spec);
  void listen(); // gated servers only; returns once listening
  pid_t pid() const { return proc_.pid(); }
  std::uint16_t port() const { return port_; }
  const std::string &addr() const { return spec_.addr; }
  // Waits until the server has served all connections and exited; throws
  // if it failed. Returns the peer (client) port of each connection.
  std::vector<std::uint16_t> finish(Duration timeout = kChildTimeout);

private:
  ServerSpec spec_;
  NsProcess proc_;
  std::uint16_t port_ = 0;
};

struct ClientSpec {
  std::string addr; // server address (numeric v4 or v6)
  std::uint16_t port = 0;
  Exchange exchange{.send_bytes = 0, .recv_bytes = 0, .close_first = true};
  bool expect_refused = false; // connect() must fail with ECONNREFUSED
  std::string comm = "tt-client";
};

struct ClientResult {
  pid_t pid = -1;
  std::uint16_t local_port = 0; // 0 when connect() failed
  int connect_errno = 0;
};

// Runs one client connection to completion (bounded); throws on failure
// (including a refused connect unless expect_refused, and vice versa).
ClientResult run_client(const TestNet &net, Side side, ClientSpec spec);

// In a child: a TCP listener on `addr` (numeric IPv4), ephemeral port,
// SO_REUSEADDR, backlog 16. Throws "<who>: bind/listen failed".
int listen4(const char *addr, const char *who);

// Two connections from A (198.18.0.1) to B (198.18.0.2), made before a
// test starts its tracers and held open, ESTABLISHED at both ends, by a
// server process in B and a client process in A: sockets that existed
// before tcptrail, whose first transition the tracer sees is the close.
class HeldConnections {
public:
  static constexpr const char *kServerComm = "tt-held-srv";
  static constexpr const char *kClientComm = "tt-held-cli";

  explicit HeldConnections(const TestNet &net);
  pid_t server_pid() const { return server_.pid(); }
  pid_t client_pid() const { return client_.pid(); }
  std::uint16_t port() const { return port_; }
  // The client's local port of connection 0 or 1.
  std::uint16_t client_port(int i) const { return client_ports_.at(i); }
  // Connection 0 is closed by the client first, connection 1 by the server
  // first, so that the other end's first transition runs in softirq
  // (ESTABLISHED -> CLOSE_WAIT, on the peer's FIN). begin_close(i): the
  // closer shuts down its end (the peer is then in CLOSE_WAIT);
  // finish_close(i): the peer closes too, and both wait for the end.
  void begin_close(int i);
  void finish_close(int i);
  // Closes the listener; both processes exit.
  void quit();
  // begin_close() and finish_close() of both, then quit().
  void close_all();

private:
  NsProcess server_;
  NsProcess client_;
  std::uint16_t port_ = 0;
  std::vector<std::uint16_t> client_ports_;
};

// ---------------------------------------------------------------------------
// The tracer

class TracerProcess {
public:
  enum class StartStatus {
    Ready,        // printed "tcptrail: ready"
    Unavailable,  // exited 1 before ready (no BPF/BTF/privileges): a
                  // prerequisite, skipped unless bpf_required()
    Failed,       // anything else (timeout, crash, other exit code)
  };
  struct StartResult {
    StartStatus status = StartStatus::Failed;
    std::string message; // reason with captured stderr
  };

  // TCPTRAIL_BINARY with `args` (e.g. {"trace", "--format", "json"}).
  explicit TracerProcess(std::vector<std::string> args);
  ~TracerProcess(); // SIGKILLs its own pid if still running
  TracerProcess(const TracerProcess &) = delete;
  TracerProcess &operator=(const TracerProcess &) = delete;

  StartResult start(Duration timeout = kReadyTimeout);
  // SIGINT, wait up to `timeout`, then SIGKILL and throw. Returns the exit
  // code (128 + signal if killed by a signal).
  int stop(Duration timeout = kStopTimeout);

  pid_t pid() const { return pid_; }
  std::string command_line() const;
  std::vector<std::string> stdout_lines() const;
  std::vector<std::string> stderr_lines() const;
  std::string stderr_text() const;

  // stdout lines parsed as JSON; lines that are not JSON become a
  // {"event":"<unparsable>","line":...} object (which fails the contract).
  std::vector<Json> events() const;
  // Waits until `pred(events())` holds; false on timeout or tracer exit.
  bool wait_for(const std::function<bool(const std::vector<Json> &)> &pred,
                Duration timeout = kEventTimeout) const;

private:
  void reader(int fd, std::vector<std::string> *lines, bool *eof);
  void kill_and_reap() noexcept;

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<std::string> out_, err_;
  bool out_eof_ = false, err_eof_ = false;
  std::atomic<bool> stop_readers_{false};
  std::thread out_thread_, err_thread_;
};

// Starts `tracer`, skipping/failing the calling test on failure.
#define TT_START_TRACER(tracer)                                                \
  do {                                                                         \
    auto tt_start_result_ = (tracer).start();                                  \
    if (tt_start_result_.status ==                                             \
        ::tcptrail::test::TracerProcess::StartStatus::Unavailable) {           \
      TT_SKIP_OR_FAIL(tt_start_result_.message);                               \
    } else if (tt_start_result_.status !=                                      \
               ::tcptrail::test::TracerProcess::StartStatus::Ready) {          \
      GTEST_FAIL() << tt_start_result_.message;                                \
    }                                                                          \
  } while (0)

// ---------------------------------------------------------------------------
// Events

// Every way `event` departs from the JSON contract of issue 2 (field names,
// types, nullability, value sets). Empty when it conforms.
std::vector<std::string> contract_violations(const Json &event);

// Cookies of the state events for which `pred` holds for at least one event.
std::vector<std::uint64_t>
cookies_where(const std::vector<Json> &events,
              const std::function<bool(const Json &)> &pred);

// The events of kind `kind` ("state", "reset", ...) of one socket, in order.
std::vector<Json> events_of(const std::vector<Json> &events,
                            std::uint64_t cookie,
                            const std::string &kind = "state");

// "OLD->NEW" for each state event of `cookie`, in order.
std::vector<std::string> transitions(const std::vector<Json> &events,
                                     std::uint64_t cookie);

// The state event OLD->NEW of `cookie`; throws if there is not exactly one.
Json transition(const std::vector<Json> &events, std::uint64_t cookie,
                const std::string &old_state, const std::string &new_state);

// Readable dump of events for failure messages (one line each).
std::string dump(const std::vector<Json> &events);

} // namespace tcptrail::test
