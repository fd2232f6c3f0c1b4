// Reliability and security of `tcptrail trace` against the real binary and
// kernel (issue 6): missing privileges and the capability drop, faults of
// the environment (closed pipe, full disk, signals at any moment, two
// instances, CLI misuse), exact loss accounting with a tiny ring buffer,
// hostile process names in every format, and no kernel addresses in output.
//
// Tracers are filtered to a test namespace (--netns) wherever the test
// counts or reads events, so that other activity on the host cannot
// disturb them; only the kernel-address scan watches the whole machine.
#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <tuple>

namespace tcptrail::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr Duration kPromptExit = 2s; // a stop signal is honoured within this

// ---------------------------------------------------------------------------
// A tracer (or setpriv + tracer) child under the test's full control: where
// its stdout goes, which signal it gets and when. Destroying it SIGKILLs and
// reaps its own pid if still running.

class Child {
public:
  enum class Out { Pipe, DevNull, DevFull };

  Child(std::vector<std::string> argv, Out out) : argv_(std::move(argv)) {
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
    if (out == Out::Pipe && pipe2(out_pipe, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    if (pipe2(err_pipe, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    std::vector<char *> args;
    for (auto &a : argv_)
      args.push_back(a.data());
    args.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0)
      throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(127);
      const int in = open("/dev/null", O_RDONLY);
      int o = -1;
      if (out == Out::Pipe)
        o = out_pipe[1];
      else
        o = open(out == Out::DevFull ? "/dev/full" : "/dev/null", O_WRONLY);
      if (in < 0 || o < 0)
        _exit(127);
      dup2(in, 0);
      dup2(o, 1);
      dup2(err_pipe[1], 2);
      execvp(args[0], args.data());
      dprintf(2, "exec %s: %s\n", args[0], std::strerror(errno));
      _exit(127);
    }
    pid_ = pid;
    if (out == Out::Pipe) {
      close(out_pipe[1]);
      out_fd_ = out_pipe[0];
    }
    close(err_pipe[1]);
    err_thread_ = std::thread([this, fd = err_pipe[0]] { read_stderr(fd); });
  }

  ~Child() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    stop_reader_ = true;
    if (err_thread_.joinable())
      err_thread_.join();
    close_stdout();
  }
  Child(const Child &) = delete;
  Child &operator=(const Child &) = delete;

  pid_t pid() const { return pid_; }
  std::string command_line() const {
    std::string s;
    for (const auto &a : argv_)
      s += (s.empty() ? "" : " ") + a;
    return s;
  }

  // The next stdout line (Out::Pipe), nullopt on timeout or EOF.
  std::optional<std::string> read_stdout_line(Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      if (auto nl = out_buf_.find('\n'); nl != std::string::npos) {
        std::string line = out_buf_.substr(0, nl);
        out_buf_.erase(0, nl + 1);
        return line;
      }
      const auto left =
          std::chrono::duration_cast<Duration>(deadline - Clock::now());
      if (out_fd_ < 0 || left.count() <= 0)
        return std::nullopt;
      pollfd pfd{.fd = out_fd_, .events = POLLIN, .revents = 0};
      const int r = poll(&pfd, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR)
        continue;
      if (r <= 0)
        return std::nullopt;
      char chunk[4096];
      const ssize_t n = read(out_fd_, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return std::nullopt;
      out_buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  // Closes the read end of stdout: the next write gets EPIPE.
  void close_stdout() {
    if (out_fd_ >= 0)
      close(out_fd_);
    out_fd_ = -1;
  }

  // Waits for a stderr line equal to `line`; false on timeout or EOF.
  bool wait_stderr_line(const std::string &line, Duration timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      return std::find(err_.begin(), err_.end(), line) != err_.end() ||
             err_eof_;
    }) && std::find(err_.begin(), err_.end(), line) != err_.end();
  }

  std::vector<std::string> stderr_lines() {
    std::lock_guard lock(mu_);
    return err_;
  }
  std::string stderr_text() {
    std::string s;
    for (const auto &l : stderr_lines())
      s += l + "\n";
    return s;
  }

  // The exit code (128 + signal when killed by one), or nullopt if it is
  // still running after `timeout`. Waits for stderr's EOF too.
  std::optional<int> wait_exit(Duration timeout) {
    if (!reaped_) {
      const auto deadline = Clock::now() + timeout;
      for (;;) {
        int status = 0;
        const pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
          reaped_ = true;
          exit_code_ = WIFEXITED(status)     ? WEXITSTATUS(status)
                       : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
                                             : -1;
          break;
        }
        if (r < 0 && errno != EINTR)
          throw std::runtime_error(std::string("waitpid: ") +
                                   std::strerror(errno));
        if (Clock::now() >= deadline)
          return std::nullopt;
        std::this_thread::sleep_for(5ms);
      }
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, 2s, [&] { return err_eof_; });
    }
    return exit_code_;
  }

private:
  void read_stderr(int fd) {
    std::string buf;
    for (;;) {
      pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
      const int r = poll(&pfd, 1, 100);
      if (r < 0 && errno == EINTR)
        continue;
      if (r == 0) {
        if (stop_reader_)
          break;
        continue;
      }
      char chunk[4096];
      const ssize_t n = read(fd, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      buf.append(chunk, static_cast<std::size_t>(n));
      std::lock_guard lock(mu_);
      std::size_t start = 0;
      for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos;
           start = nl + 1)
        err_.push_back(buf.substr(start, nl - start));
      buf.erase(0, start);
      cv_.notify_all();
    }
    close(fd);
    std::lock_guard lock(mu_);
    if (!buf.empty())
      err_.push_back(buf);
    err_eof_ = true;
    cv_.notify_all();
  }

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  bool reaped_ = false;
  int exit_code_ = -1;
  int out_fd_ = -1;
  std::string out_buf_;
  std::thread err_thread_;
  std::atomic<bool> stop_reader_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> err_;
  bool err_eof_ = false;
};

std::vector<std::string> tracer_argv(std::vector<std::string> args) {
  args.insert(args.begin(), TCPTRAIL_BINARY);
  return args;
}

std::string join_lines(const std::vector<std::string> &lines) {
  std::string s;
  for (const auto &l : lines)
    s += "  | " + l + "\n";
  return s;
}

// A tracer with stdout on /dev/full exits 1 within `timeout`, printing the
// ready line and then one error: writing output failed with ENOSPC.
void expect_full_disk_exit(Child &tracer, Duration timeout) {
  auto code = tracer.wait_exit(timeout);
  ASSERT_TRUE(code.has_value()) << "still running with stdout on /dev/full";
  EXPECT_EQ(*code, 1);
  const auto lines = tracer.stderr_lines();
  ASSERT_EQ(lines.size(), 2u) << join_lines(lines);
  EXPECT_EQ(lines[0], "tcptrail: ready");
  EXPECT_EQ(lines[1],
            "tcptrail: error: writing output: No space left on device");
}

bool starts_with(const std::string &s, const std::string &prefix) {
  return s.rfind(prefix, 0) == 0;
}

// "Name:\tvalue" fields of /proc/<pid>/status.
std::map<std::string, std::string> proc_status(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::map<std::string, std::string> fields;
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos)
      continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    fields[line.substr(0, colon)] = value;
  }
  return fields;
}

std::optional<std::string> find_program(const std::string &name) {
  for (const char *dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin"}) {
    const std::string path = std::string(dir) + "/" + name;
    if (access(path.c_str(), X_OK) == 0)
      return path;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------
// Output checks

// Well-formed UTF-8 (no overlongs, surrogates, > U+10FFFF) without any
// C0/C1 control character or DEL; `why` says where it is not.
bool terminal_safe(const std::string &s, std::string &why) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](std::size_t k, unsigned char lo, unsigned char hi) {
    return k < s.size() && at(k) >= lo && at(k) <= hi;
  };
  std::size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = at(i);
    std::size_t len = 0;
    std::uint32_t cp = c;
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xc2 && c <= 0xdf && cont(i + 1, 0x80, 0xbf)) {
      len = 2;
      cp = (c & 0x1fU) << 6 | (at(i + 1) & 0x3fU);
    } else if (c >= 0xe0 && c <= 0xef &&
               cont(i + 1, c == 0xe0 ? 0xa0 : 0x80, c == 0xed ? 0x9f : 0xbf) &&
               cont(i + 2, 0x80, 0xbf)) {
      len = 3;
    } else if (c >= 0xf0 && c <= 0xf4 &&
               cont(i + 1, c == 0xf0 ? 0x90 : 0x80, c == 0xf4 ? 0x8f : 0xbf) &&
               cont(i + 2, 0x80, 0xbf) && cont(i + 3, 0x80, 0xbf)) {
      len = 4;
    }
    char hex[64];
    if (len == 0) {
      std::snprintf(hex, sizeof(hex), "invalid UTF-8 byte 0x%02x at %zu", c, i);
      why = hex;
      return false;
    }
    if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
      std::snprintf(hex, sizeof(hex), "control character U+%04X at %zu",
                    static_cast<unsigned>(cp), i);
      why = hex;
      return false;
    }
    i += len;
  }
  return true;
}

// RFC 4180 fields of one line; nullopt when the quoting is broken.
std::optional<std::vector<std::string>> csv_split(const std::string &line) {
  std::vector<std::string> fields;
  std::size_t i = 0;
  for (;;) {
    std::string field;
    if (i < line.size() && line[i] == '"') {
      ++i;
      for (;;) {
        if (i >= line.size())
          return std::nullopt;
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += line[i++];
      }
      if (i < line.size() && line[i] != ',')
        return std::nullopt;
    } else {
      while (i < line.size() && line[i] != ',') {
        if (line[i] == '"')
          return std::nullopt;
        field += line[i++];
      }
    }
    fields.push_back(std::move(field));
    if (i >= line.size())
      return fields;
    ++i;
  }
}

// ---------------------------------------------------------------------------
// Traffic

// One client (A) -> server (B) connection, the client closing first.
ClientResult connect_once(const TestNet &net,
                          const std::string &comm = "tt-client") {
  Server server(net, Side::B,
                {.addr = TestNet::addr4(Side::B), .port = 0, .connections = 1});
  ClientResult r = run_client(
      net, Side::A,
      {.addr = TestNet::addr4(Side::B), .port = server.port(), .comm = comm});
  server.finish();
  return r;
}

// True once the tracer (JSON) saw the socket of `pid` end (CLOSE or the
// inferred TIME_WAIT).
bool wait_socket_end(const TracerProcess &tracer, pid_t pid,
                     Duration timeout = kEventTimeout) {
  return tracer.wait_for(
      [pid](const std::vector<Json> &evs) {
        for (const auto &ev : evs)
          if (ev.value("event", "") == "state" && ev.value("pid", -1) == pid &&
              (ev.value("new", "") == "CLOSE" ||
               ev.value("new", "") == "TIME_WAIT"))
            return true;
        return false;
      },
      timeout);
}

class ReliabilityTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (auto missing = missing_prerequisite())
      TT_SKIP_OR_FAIL(*missing);
    net_ = std::make_unique<TestNet>();
  }

  std::string netns(Side side = Side::A) const {
    return std::to_string(net_->inode(side));
  }

  std::unique_ptr<TestNet> net_;
};

// ---------------------------------------------------------------------------
// Privileges

// A copy of the binary that any user may execute (the build tree may not
// be reachable for uid 65534). Removed with its directory.
class BinaryCopy {
public:
  BinaryCopy() {
    char tmpl[] = "/tmp/tt-priv-XXXXXX";
    if (!mkdtemp(tmpl))
      throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
    dir_ = tmpl;
    path_ = dir_ + "/tcptrail";
    std::filesystem::copy_file(TCPTRAIL_BINARY, path_);
    chmod(dir_.c_str(), 0755);
    chmod(path_.c_str(), 0755);
  }
  ~BinaryCopy() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string &path() const { return path_; }

private:
  std::string dir_, path_;
};

struct PrivCase {
  const char *name;
  std::vector<std::string> setpriv_args;
  const char *must_name; // what the error must say is missing
  const char *must_not;  // what it must not claim is missing ("" for none)
};

class MissingPrivilegesTest : public ::testing::TestWithParam<PrivCase> {};

// Exit 1, one `tcptrail: error: missing privileges: ...` line naming what
// is missing, an optional `hint: ...` line, and nothing else (stdout and
// stderr together: nothing was written before the check).
TEST_P(MissingPrivilegesTest, ClearErrorAndExit1) {
  if (geteuid() != 0)
    TT_SKIP_OR_FAIL("needs root to run setpriv with other credentials");
  auto setpriv = find_program("setpriv");
  if (!setpriv)
    TT_SKIP_OR_FAIL("setpriv (util-linux) not found");
  BinaryCopy bin;
  std::vector<std::string> argv{*setpriv};
  argv.insert(argv.end(), GetParam().setpriv_args.begin(),
              GetParam().setpriv_args.end());
  argv.push_back(bin.path());
  argv.emplace_back("trace");
  const CommandResult r = run_command(argv);
  std::vector<std::string> lines;
  std::istringstream in(r.output);
  for (std::string l; std::getline(in, l);)
    lines.push_back(l);

  EXPECT_EQ(r.exit_code, 1) << r.output;
  ASSERT_GE(lines.size(), 1u) << "no output";
  ASSERT_LE(lines.size(), 2u) << "more than the error and a hint:\n"
                              << r.output;
  EXPECT_TRUE(starts_with(lines[0], "tcptrail: error: missing privileges: "))
      << lines[0];
  EXPECT_NE(lines[0].find(GetParam().must_name), std::string::npos) << lines[0];
  if (*GetParam().must_not)
    EXPECT_EQ(lines[0].find(GetParam().must_not), std::string::npos)
        << lines[0];
  if (lines.size() == 2)
    EXPECT_TRUE(starts_with(lines[1], "hint: ")) << lines[1];
}

INSTANTIATE_TEST_SUITE_P(
    Reliability, MissingPrivilegesTest,
    ::testing::Values(PrivCase{"Nobody",
                               {"--inh-caps=-all", "--bounding-set=-all",
                                "--reuid=65534", "--regid=65534",
                                "--clear-groups"},
                               "CAP_BPF and CAP_PERFMON",
                               ""},
                      PrivCase{"RootWithoutCapabilities",
                               {"--inh-caps=-all", "--bounding-set=-all"},
                               "CAP_BPF and CAP_PERFMON",
                               ""},
                      PrivCase{"OnlyCapBpf",
                               {"--inh-caps=-all", "--bounding-set=-all,+bpf"},
                               "CAP_PERFMON",
                               "missing: CAP_BPF"}),
    [](const auto &info) { return std::string(info.param.name); });

// Reads /proc/<pid>/status of a ready tracer: no capability left in any set
// that could be used or regained, and no_new_privs.
void expect_dropped(pid_t pid, bool bounding_empty) {
  auto st = proc_status(pid);
  ASSERT_FALSE(st.empty()) << "cannot read /proc/" << pid << "/status";
  for (const char *set : {"CapInh", "CapPrm", "CapEff", "CapAmb"})
    EXPECT_EQ(st[set], "0000000000000000") << set << " of pid " << pid;
  if (bounding_empty)
    EXPECT_EQ(st["CapBnd"], "0000000000000000") << "CapBnd of pid " << pid;
  EXPECT_EQ(st["NoNewPrivs"], "1") << "NoNewPrivs of pid " << pid;
}

// As root: after `tcptrail: ready` the process holds no capability at all
// (bounding set included), has no_new_privs, and still traces.
TEST_F(ReliabilityTest, DropsEveryCapabilityOnceAttached) {
  TracerProcess tracer({"trace", "--format", "json", "--netns", netns()});
  TT_START_TRACER(tracer);
  expect_dropped(tracer.pid(), /*bounding_empty=*/true);
  const ClientResult client = connect_once(*net_);
  EXPECT_TRUE(wait_socket_end(tracer, client.pid))
      << "no events after the capability drop:\n"
      << dump(tracer.events()) << tracer.stderr_text();
  EXPECT_EQ(tracer.stop(), 0) << tracer.stderr_text();
  EXPECT_EQ(tracer.stderr_lines(), std::vector<std::string>{"tcptrail: ready"});
}

// CAP_BPF + CAP_PERFMON (no CAP_SYS_ADMIN) is enough, and they are dropped
// too. The bounding set keeps them (dropping from it needs CAP_SETPCAP, which
// the process never had); with no_new_privs and empty permitted/inheritable/
// ambient sets nothing can bring them back.
TEST_F(ReliabilityTest, CapBpfAndPerfmonSufficeAndAreDropped) {
  auto setpriv = find_program("setpriv");
  if (!setpriv)
    TT_SKIP_OR_FAIL("setpriv (util-linux) not found");
  Child tracer({*setpriv, "--inh-caps=-all",
                "--bounding-set=-all,+bpf,+perfmon", TCPTRAIL_BINARY, "trace",
                "--format", "json", "--netns", netns()},
               Child::Out::Pipe);
  ASSERT_TRUE(tracer.wait_stderr_line("tcptrail: ready", kReadyTimeout))
      << tracer.command_line() << "\n"
      << tracer.stderr_text();
  auto st = proc_status(tracer.pid());
  expect_dropped(tracer.pid(), /*bounding_empty=*/false);
  EXPECT_EQ(st["CapBnd"], "000000c000000000") << "only CAP_BPF, CAP_PERFMON";

  const ClientResult client = connect_once(*net_);
  bool seen = false;
  while (auto line = tracer.read_stdout_line(kEventTimeout)) {
    const Json ev = Json::parse(*line, nullptr, false);
    if (!ev.is_discarded() && ev.value("pid", -1) == client.pid &&
        ev.value("new", "") == "ESTABLISHED") {
      seen = true;
      break;
    }
  }
  EXPECT_TRUE(seen) << "no event for the client with CAP_BPF+CAP_PERFMON";
  kill(tracer.pid(), SIGINT);
  EXPECT_EQ(tracer.wait_exit(kPromptExit), std::optional<int>(0));
}

// ---------------------------------------------------------------------------
// Environment faults

// `tcptrail trace | head -1`: the reader takes one line (the table header)
// and goes away; the next write gets EPIPE and tcptrail ends quietly.
TEST_F(ReliabilityTest, ClosedPipeEndsQuietly) {
  Child tracer(tracer_argv({"trace", "--netns", netns()}), Child::Out::Pipe);
  ASSERT_TRUE(tracer.wait_stderr_line("tcptrail: ready", kReadyTimeout))
      << tracer.stderr_text();
  auto header = tracer.read_stdout_line(kEventTimeout);
  ASSERT_TRUE(header.has_value()) << "no header line";
  EXPECT_TRUE(starts_with(*header, "TIME")) << *header;
  tracer.close_stdout();

  // Events to write; a few connections in case one is not enough.
  std::optional<int> code;
  for (int i = 0; i < 5 && !code; ++i) {
    connect_once(*net_);
    code = tracer.wait_exit(1s);
  }
  ASSERT_TRUE(code.has_value()) << "still running after its reader left";
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(tracer.stderr_lines(), std::vector<std::string>{"tcptrail: ready"})
      << "stderr:\n"
      << tracer.stderr_text();
}

// stdout on a full disk: exit 1 with one `writing output` error, once there
// is something to write. JSON has no header, so that is the first event.
TEST_F(ReliabilityTest, FullDiskFailsOnFirstEvent) {
  Child tracer(tracer_argv({"trace", "--format", "json", "--netns", netns()}),
               Child::Out::DevFull);
  ASSERT_TRUE(tracer.wait_stderr_line("tcptrail: ready", kReadyTimeout))
      << tracer.stderr_text();
  EXPECT_FALSE(tracer.wait_exit(500ms).has_value())
      << "exited with nothing to write:\n"
      << tracer.stderr_text();
  connect_once(*net_);
  expect_full_disk_exit(tracer, kPromptExit + 1s);
}

// The table writes its header first: that write fails at once.
TEST_F(ReliabilityTest, FullDiskFailsOnTableHeader) {
  Child tracer(tracer_argv({"trace", "--netns", netns()}), Child::Out::DevFull);
  ASSERT_TRUE(tracer.wait_stderr_line("tcptrail: ready", kReadyTimeout))
      << tracer.stderr_text();
  expect_full_disk_exit(tracer, kPromptExit);
}

// The same during a connection storm: output piles up faster than the
// per-poll flush, so the failing write happens inside the ring-buffer
// callback (Output::flush_if_over) as well as between polls.
TEST_F(ReliabilityTest, FullDiskFailsUnderLoad) {
  Child tracer(tracer_argv({"trace", "--format", "json", "--netns", netns()}),
               Child::Out::DevFull);
  ASSERT_TRUE(tracer.wait_stderr_line("tcptrail: ready", kReadyTimeout))
      << tracer.stderr_text();
  Child load({"ip", "netns", "exec", net_->name(Side::A), TCPTRAIL_LOADGEN,
              "-m", "client-first", "-t", "4", "-c", "16", "-d", "2"},
             Child::Out::DevNull);
  expect_full_disk_exit(tracer, kPromptExit + 1s);
  EXPECT_EQ(load.wait_exit(10s), std::optional<int>(0)) << load.stderr_text();
}

class StopSignalTest : public ReliabilityTest,
                       public ::testing::WithParamInterface<int> {};

// SIGINT, SIGTERM and SIGHUP each stop a running tracer cleanly: exit 0
// within kPromptExit, nothing on stderr but the ready line.
TEST_P(StopSignalTest, ExitsZeroPromptly) {
  const int sig = GetParam();
  Child tracer(tracer_argv({"trace", "--format", "json", "--netns", netns()}),
               Child::Out::DevNull);
  ASSERT_TRUE(tracer.wait_stderr_line("tcptrail: ready", kReadyTimeout))
      << tracer.stderr_text();
  const auto t0 = Clock::now();
  kill(tracer.pid(), sig);
  auto code = tracer.wait_exit(kPromptExit);
  ASSERT_TRUE(code.has_value()) << strsignal(sig) << ": still running after "
                                << kPromptExit.count() << " ms";
  EXPECT_EQ(*code, 0) << strsignal(sig);
  EXPECT_LT(Clock::now() - t0, kPromptExit);
  EXPECT_EQ(tracer.stderr_lines(), std::vector<std::string>{"tcptrail: ready"});
}

// The same in the middle of a connection storm (ring buffer busy).
TEST_P(StopSignalTest, ExitsZeroPromptlyUnderLoad) {
  const int sig = GetParam();
  Child tracer(tracer_argv({"trace", "--format", "json", "--netns", netns()}),
               Child::Out::DevNull);
  ASSERT_TRUE(tracer.wait_stderr_line("tcptrail: ready", kReadyTimeout))
      << tracer.stderr_text();
  Child load({"ip", "netns", "exec", net_->name(Side::A), TCPTRAIL_LOADGEN,
              "-m", "client-first", "-t", "4", "-c", "8", "-d", "3"},
             Child::Out::DevNull);
  std::this_thread::sleep_for(1s);
  const auto t0 = Clock::now();
  kill(tracer.pid(), sig);
  auto code = tracer.wait_exit(kPromptExit);
  ASSERT_TRUE(code.has_value())
      << strsignal(sig) << " under load: still running after "
      << kPromptExit.count() << " ms";
  EXPECT_EQ(*code, 0);
  EXPECT_LT(Clock::now() - t0, kPromptExit);
  for (const auto &line : tracer.stderr_lines())
    EXPECT_TRUE(line == "tcptrail: ready" ||
                starts_with(line, "tcptrail: warning: "))
        << line;
  EXPECT_EQ(load.wait_exit(10s), std::optional<int>(0)) << load.stderr_text();
}

INSTANTIATE_TEST_SUITE_P(Reliability, StopSignalTest,
                         ::testing::Values(SIGINT, SIGTERM, SIGHUP),
                         [](const auto &info) {
                           return std::string(sigabbrev_np(info.param));
                         });

// SIGINT at any moment of start-up, from right after fork/exec to
// attaching: never a hang, never an error. Before the handler is installed
// (the first microseconds) the default action ends the process (128 + 2);
// after, tcptrail stops at the next check, exit 0.
TEST_F(ReliabilityTest, SigintDuringStartupExitsCleanly) {
  for (int delay_ms : {0, 1, 2, 5, 10, 20, 50, 100, 200, 400, 800}) {
    SCOPED_TRACE("SIGINT " + std::to_string(delay_ms) + " ms after fork");
    Child tracer(tracer_argv({"trace", "--format", "json", "--netns", netns()}),
                 Child::Out::DevNull);
    std::this_thread::sleep_for(Duration(delay_ms));
    kill(tracer.pid(), SIGINT);
    auto code = tracer.wait_exit(kReadyTimeout);
    ASSERT_TRUE(code.has_value()) << "hung after SIGINT during start-up:\n"
                                  << tracer.stderr_text();
    EXPECT_TRUE(*code == 0 || *code == 128 + SIGINT) << "exit " << *code << "\n"
                                                     << tracer.stderr_text();
    for (const auto &line : tracer.stderr_lines())
      EXPECT_EQ(line, "tcptrail: ready");
  }
}

// Two tracers at once: both work and both see the same connection (same
// cookie, same transitions; ts_ns differs: each instance's program reads the
// clock itself).
TEST_F(ReliabilityTest, TwoInstancesBothSeeTheConnection) {
  TracerProcess one({"trace", "--format", "json", "--netns", netns()});
  TracerProcess two({"trace", "--format", "json", "--netns", netns()});
  TT_START_TRACER(one);
  TT_START_TRACER(two);
  const ClientResult client = connect_once(*net_);
  ASSERT_TRUE(wait_socket_end(one, client.pid)) << dump(one.events());
  ASSERT_TRUE(wait_socket_end(two, client.pid)) << dump(two.events());
  EXPECT_EQ(one.stop(), 0) << one.stderr_text();
  EXPECT_EQ(two.stop(), 0) << two.stderr_text();
  auto client_path = [&](const TracerProcess &t) {
    std::vector<std::pair<std::uint64_t, std::string>> path;
    for (const auto &ev : t.events())
      if (ev.value("pid", -1) == client.pid)
        path.emplace_back(ev.value("cookie", std::uint64_t{0}),
                          ev.value("old", "") + "->" + ev.value("new", ""));
    return path;
  };
  const auto p1 = client_path(one), p2 = client_path(two);
  EXPECT_EQ(p1.size(), 5u) << dump(one.events());
  EXPECT_EQ(p1, p2) << "instance 1:\n"
                    << dump(one.events()) << "instance 2:\n"
                    << dump(two.events());
}

// The BPF programs of one tracer are loaded side by side, in several
// instances of the BPF object (Tracer::create()), and must all use one set
// of maps: one ring (a program writing to another would be lost), one
// .bss (counters, seeding state), one .rodata, configured from the plan of
// the whole mode rather than from the instance that made it: trace
// batches its records (cfg_batch) and keeps no fd-walk records
// (cfg_walk_states). Read from the kernel, by program and map id.
TEST_F(ReliabilityTest, ProgramsLoadedSideBySideShareOneSetOfMaps) {
  TracerProcess tracer({"trace", "--format", "json", "--netns", netns()});
  TT_START_TRACER(tracer);
  namespace fs = std::filesystem;
  const std::string proc = "/proc/" + std::to_string(tracer.pid());
  std::set<std::string> prog_ids;
  for (const auto &fd : fs::directory_iterator(proc + "/fd")) {
    std::error_code ec;
    if (fs::read_symlink(fd.path(), ec).string() != "anon_inode:bpf-prog")
      continue;
    std::ifstream info(proc + "/fdinfo/" + fd.path().filename().string());
    for (std::string line; std::getline(info, line);)
      if (line.rfind("prog_id:", 0) == 0)
        prog_ids.insert(std::to_string(std::stoul(line.substr(8))));
  }
  std::map<std::string, std::string> map_names; // id -> name
  auto map_name = [&](const std::string &id) {
    auto it = map_names.find(id);
    if (it == map_names.end())
      it = map_names
               .emplace(id, Json::parse(check_command(
                                {"bpftool", "map", "show", "id", id, "-j"}))
                                .value("name", ""))
               .first;
    return it->second;
  };
  // program name -> (map name -> map id)
  std::map<std::string, std::map<std::string, std::string>> uses;
  for (const std::string &id : prog_ids) {
    const Json prog =
        Json::parse(check_command({"bpftool", "prog", "show", "id", id, "-j"}));
    auto &maps = uses[prog.value("name", "")];
    for (const auto &m : prog.value("map_ids", Json::array()))
      maps[map_name(std::to_string(m.get<long>()))] =
          std::to_string(m.get<long>());
  }
  for (const char *name : {"handle_inet_sock_set_state", "handle_tcp_send_reset",
                           "handle_tcp_retransmit_skb", "flush_stage"})
    ASSERT_TRUE(uses.count(name)) << name << " not held by the tracer";
  const auto &state = uses["handle_inet_sock_set_state"];
  for (const char *shared : {"events", "tcptrail.rodata", "tcptrail.bss"})
    ASSERT_TRUE(state.count(shared)) << "the state program uses no " << shared;
  for (const auto &[prog, maps] : uses)
    for (const auto &[name, id] : maps)
      if (state.count(name))
        EXPECT_EQ(id, state.at(name))
            << prog << " uses another " << name << " than the state program";

  // bpftool formats the data with the object's BTF: a list of one-key
  // objects per section variable.
  const Json rodata = Json::parse(check_command(
      {"bpftool", "map", "dump", "id", state.at("tcptrail.rodata"), "-j"}));
  std::map<std::string, Json> cfg;
  for (const auto &entry : rodata)
    for (const auto &var : entry.at("formatted").at("value").at(".rodata"))
      for (const auto &[key, value] : var.items())
        cfg[key] = value;
  ASSERT_TRUE(cfg.count("cfg_batch")) << rodata.dump();
  EXPECT_EQ(cfg["cfg_batch"], 1) << "trace batches with its default ring";
  EXPECT_EQ(cfg["cfg_walk_states"], 0) << "only diagnose and leaks keep them";
  EXPECT_EQ(tracer.stop(), 0) << tracer.stderr_text();
}

// ---------------------------------------------------------------------------
// CLI misuse: exit 2 with a message naming the problem, nothing on stdout.

struct MisuseCase {
  const char *name;
  std::vector<std::string> args;
  const char *message; // must appear in the output
};

class CliMisuseTest : public ::testing::TestWithParam<MisuseCase> {};

TEST_P(CliMisuseTest, ExitsTwoWithMessage) {
  if (access(TCPTRAIL_BINARY, X_OK) != 0)
    TT_SKIP_OR_FAIL(std::string("binary not built: ") + TCPTRAIL_BINARY);
  const CommandResult r = run_command(tracer_argv(GetParam().args));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(GetParam().message), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("tcptrail: ready"), std::string::npos) << r.output;
  EXPECT_LT(std::count(r.output.begin(), r.output.end(), '\n'), 5)
      << "a message, not the whole help:\n"
      << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    Reliability, CliMisuseTest,
    ::testing::Values(
        MisuseCase{"FormatYaml", {"trace", "--format", "yaml"}, "--format"},
        MisuseCase{"LportZero", {"trace", "--lport", "0"}, "--lport"},
        MisuseCase{"CountZero", {"trace", "--count", "0"}, ">= 1"},
        MisuseCase{"PidNotANumber", {"trace", "--pid", "abc"}, "--pid"},
        MisuseCase{"DurationJunk", {"trace", "--duration", "soon"},
                   "--duration"},
        MisuseCase{
            "RaddrPrefix33", {"trace", "--raddr", "1.2.3.4/33"}, "--raddr"},
        MisuseCase{"UnknownSubcommand", {"frobnicate"}, "subcommand"},
        MisuseCase{"NoSubcommand", {}, "subcommand"},
        MisuseCase{"RingbufNotPowerOfTwo",
                   {"trace", "--ringbuf-size", "1000"},
                   "--ringbuf-size"},
        MisuseCase{"RingbufTooSmall",
                   {"trace", "--ringbuf-size", "2048"},
                   "--ringbuf-size"}),
    [](const auto &info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------
// Loss accounting

// "OLD->NEW count" for each transition kind of the state events, for a
// report when the kernel's count differs from loadgen's model.
std::string transition_counts(const std::vector<Json> &events) {
  std::map<std::string, int> n;
  for (const auto &ev : events)
    if (ev.value("event", "") == "state")
      ++n[ev.value("old", "?") + "->" + ev.value("new", "?")];
  std::string out;
  for (const auto &[k, v] : n)
    out += (out.empty() ? "" : ", ") + k + " " + std::to_string(v);
  return out;
}

std::uint64_t lost_sum(const std::vector<Json> &events) {
  std::uint64_t sum = 0;
  for (const auto &ev : events)
    if (ev.value("event", "") == "lost")
      sum += ev.value("count", std::uint64_t{0});
  return sum;
}

// (event, cookie, old/state, new/dir) of every non-lost event (not ts_ns:
// each tracer's programs read the clock themselves).
using EventKey =
    std::tuple<std::string, std::uint64_t, std::string, std::string>;
std::multiset<EventKey> event_keys(const std::vector<Json> &events) {
  std::multiset<EventKey> keys;
  for (const auto &ev : events)
    if (ev.value("event", "") != "lost")
      keys.emplace(ev.value("event", ""), ev.value("cookie", std::uint64_t{0}),
                   ev.value("old", ev.value("state", "")),
                   ev.value("new", ev.value("dir", "")));
  return keys;
}

// Lost-event warnings of the table (stderr), summed.
std::uint64_t table_lost_sum(const std::vector<std::string> &stderr_lines) {
  std::uint64_t sum = 0;
  for (const auto &line : stderr_lines) {
    unsigned long long n = 0;
    if (std::sscanf(line.c_str(), "tcptrail: warning: %llu events lost", &n) ==
        1)
      sum += n;
  }
  return sum;
}

// Runs the load generator in namespace A with `args` (plus --json) and
// returns its closing JSON line; fails the test unless its count of
// transitions is exact.
Json run_loadgen(const TestNet &net, std::vector<std::string> args) {
  args.insert(args.begin(), TCPTRAIL_LOADGEN);
  args.emplace_back("--json");
  const CommandResult load = net.exec(Side::A, args, 60s);
  EXPECT_EQ(load.exit_code, 0) << load.output;
  Json stats;
  std::istringstream in(load.output);
  for (std::string l; std::getline(in, l);)
    if (starts_with(l, "{"))
      stats = Json::parse(l, nullptr, false);
  EXPECT_TRUE(stats.is_object() && stats.value("transitions_exact", false))
      << load.output;
  return stats;
}

// A burst of connections inside namespace A, watched by a tracer with the
// default ring (it must lose nothing: the reference) and two with a 4 KiB
// ring (about 23 records), JSON and table, plus one with a 16 KiB ring, the
// smallest that batches (JSON). For each small one, events delivered +
// losses reported == the reference's events, exactly, and for the 4 KiB
// ones the loss is not zero. The reference equals loadgen's own transition
// count.
TEST_F(ReliabilityTest, LossAccountingIsExact) {
  const std::vector<std::string> base{"trace", "--netns", netns()};
  auto with = [&](std::vector<std::string> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  TracerProcess big(with({"--format", "json"}));
  TracerProcess small_json(
      with({"--format", "json", "--ringbuf-size", "4096"}));
  TracerProcess small_table(with({"--ringbuf-size", "4096"}));
  // The smallest ring that batches (4 KiB ones do not: a batch is 2.7 KB).
  TracerProcess batched_json(
      with({"--format", "json", "--ringbuf-size", "16384"}));
  TT_START_TRACER(big);
  TT_START_TRACER(small_json);
  TT_START_TRACER(small_table);
  TT_START_TRACER(batched_json);

  // 4 threads x 250 connections, 8 in flight per thread, on lo in A.
  const Json stats = run_loadgen(
      *net_, {"-m", "client-first", "-t", "4", "-c", "8", "-n", "250"});
  const auto expected = stats.value("transitions", std::uint64_t{0});
  ASSERT_GT(expected, 10000u) << stats.dump();

  // Everything produced has been consumed or counted: wait for the reference
  // to reach the expected count and the small ones to add up and settle.
  auto json_total = [&](const TracerProcess &tracer) {
    const auto evs = tracer.events();
    return evs.size() -
           static_cast<std::size_t>(std::count_if(
               evs.begin(), evs.end(),
               [](const Json &e) { return e.value("event", "") == "lost"; })) +
           lost_sum(evs);
  };
  auto small_table_total = [&] {
    const auto lines = small_table.stdout_lines();
    return (lines.empty() ? 0 : lines.size() - 1) +
           table_lost_sum(small_table.stderr_lines());
  };
  const auto deadline = Clock::now() + 15s;
  while (Clock::now() < deadline &&
         (json_total(big) < expected ||
          json_total(small_json) < expected ||
          json_total(batched_json) < expected ||
          small_table_total() < expected))
    std::this_thread::sleep_for(100ms);
  std::this_thread::sleep_for(500ms); // > 250 ms loss-report period

  EXPECT_EQ(big.stop(), 0) << big.stderr_text();
  EXPECT_EQ(small_json.stop(), 0) << small_json.stderr_text();
  EXPECT_EQ(small_table.stop(), 0) << small_table.stderr_text();
  EXPECT_EQ(batched_json.stop(), 0) << batched_json.stderr_text();

  // The truth is loadgen's count. The reference (4 MiB ring) normally loses
  // nothing, but a slow machine (QEMU without KVM: 6.1 and 6.18.15 under
  // TCG) can lose a few runs to recursion (a softirq's transition while the
  // program runs on that CPU, bpf_prog_info.recursion_misses): those are
  // counted as lost too, so it is held to the same exact sum as the others.
  // What the kernel produced, P, is what every tracer must account for:
  // delivered + lost == P, the same for all four. loadgen's count is the
  // model's (10 transitions per connection): a slow machine (QEMU without
  // KVM: 6.1 measured) adds a few the model does not have, e.g. a
  // retransmitted FIN racing the peer's, so P may exceed it, never fall
  // short.
  const auto big_events = big.events();
  const auto reference = event_keys(big_events);
  const auto big_lost = lost_sum(big_events);
  const std::uint64_t produced = reference.size() + big_lost;
  EXPECT_GE(produced, expected)
      << "reference: delivered " << reference.size() << " + lost " << big_lost
      << " vs loadgen's count (" << stats.dump() << ")";
  if (produced != expected)
    std::printf("the kernel made %" PRIu64 " transitions, the model %" PRIu64
                ": %s\n",
                produced, expected, transition_counts(big_events).c_str());
  const bool reference_complete = big_lost == 0;

  const auto json_events = small_json.events();
  const auto json_keys = event_keys(json_events);
  const auto json_lost = lost_sum(json_events);
  EXPECT_GT(json_lost, 0u) << "a 4 KiB ring should have overflowed";
  EXPECT_EQ(json_keys.size() + json_lost, produced)
      << "json: delivered " << json_keys.size() << " + lost " << json_lost
      << " != produced " << produced;
  if (reference_complete)
    EXPECT_TRUE(std::includes(reference.begin(), reference.end(),
                              json_keys.begin(), json_keys.end()))
        << "the small ring delivered events the reference did not see";
  for (const auto &ev : json_events) {
    auto problems = contract_violations(ev);
    EXPECT_TRUE(problems.empty()) << ev.dump();
    if (!problems.empty())
      break;
  }

  // Batched: a full ring loses a whole batch, and counts all of it.
  const auto batched_events = batched_json.events();
  const auto batched_keys = event_keys(batched_events);
  const auto batched_lost = lost_sum(batched_events);
  EXPECT_EQ(batched_keys.size() + batched_lost, produced)
      << "batched json: delivered " << batched_keys.size() << " + lost "
      << batched_lost << " != produced " << produced;
  if (reference_complete)
    EXPECT_TRUE(std::includes(reference.begin(), reference.end(),
                              batched_keys.begin(), batched_keys.end()));

  const auto table_lines = small_table.stdout_lines();
  ASSERT_FALSE(table_lines.empty());
  const std::uint64_t table_delivered = table_lines.size() - 1; // header
  const std::uint64_t table_lost = table_lost_sum(small_table.stderr_lines());
  EXPECT_GT(table_lost, 0u);
  EXPECT_EQ(table_delivered + table_lost, produced)
      << "table: delivered " << table_delivered << " + lost " << table_lost
      << " != produced " << produced;
  RecordProperty("produced", static_cast<int>(produced));
  RecordProperty("json_lost", static_cast<int>(json_lost));
  RecordProperty("table_lost", static_cast<int>(table_lost));
  std::printf("produced %" PRIu64 "; 4 KiB json: delivered %zu lost %" PRIu64
              "; 4 KiB table: delivered %" PRIu64 " lost %" PRIu64
              "; 16 KiB batched json: delivered %zu lost %" PRIu64 "\n",
              produced, json_keys.size(), json_lost, table_delivered,
              table_lost, batched_keys.size(), batched_lost);
}

// Batched mode: each CPU's records reach user space in batches, late and
// interleaved with the other CPU's. Under a storm on both CPUs, what the
// tracer prints must still be one stream in time order, every socket's
// transitions a chain (each starts where the previous ended), and all of it
// out while the tracer runs, not only when it stops.
TEST_F(ReliabilityTest, BatchedRecordsLeaveInTimeOrder) {
  TracerProcess tracer({"trace", "--format", "json", "--netns", netns()});
  TT_START_TRACER(tracer);
  const Json stats =
      run_loadgen(*net_, {"-m", "server-first", "-t", "2", "-c", "4",
                          "--server-threads", "2", "-n", "300"});
  const auto expected = stats.value("transitions", std::uint64_t{0});
  ASSERT_GT(expected, 5000u) << stats.dump();
  // Counted by lines: wait_for() would parse every line at each new one.
  // loadgen's count is the model's; a slow machine (QEMU without KVM) can
  // add a few transitions, and can lose a few runs to recursion (reported
  // as lost): wait for the model's count, then for stragglers.
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline && tracer.stdout_lines().size() < expected)
    std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(300ms); // > the 50 ms poll, 3 flush rounds
  const std::size_t while_running = tracer.stdout_lines().size();
  EXPECT_EQ(tracer.stop(), 0) << tracer.stderr_text();

  const auto events = tracer.events();
  EXPECT_EQ(events.size(), while_running)
      << "events held back until the tracer stopped";
  // Lost runs: none on real hardware; under TCG some, from run to run
  // (7.3.4: 2, 13, 88 and 135 of 6,016 seen). This test is about order
  // (each loss may break one chain, checked below); exact loss accounting
  // is LossAccountingIsExact's. Bound them at 2% of the load, 10% under
  // emulation (scripts/vmtest.sh sets TCPTRAIL_VM).
  const std::uint64_t lost = lost_sum(events);
  const std::size_t lost_lines = static_cast<std::size_t>(std::count_if(
      events.begin(), events.end(),
      [](const Json &e) { return e.value("event", "") == "lost"; }));
  EXPECT_GE(events.size() - lost_lines + lost, expected)
      << "events out while the tracer runs, and losses reported";
  EXPECT_LE(lost, expected / (std::getenv("TCPTRAIL_VM") ? 10 : 50))
      << "more than a slow machine explains";
  if (events.size() != expected)
    std::printf("the kernel made %zu transitions, the model %" PRIu64 ": %s\n",
                events.size(), expected, transition_counts(events).c_str());
  std::uint64_t prev_ts = 0;
  std::size_t backwards = 0;
  std::map<std::uint64_t, std::string> last_state; // cookie -> new state
  std::size_t broken_chains = 0;
  std::string first_broken;
  for (const auto &ev : events) {
    if (ev.value("event", "") != "state")
      continue;
    const auto ts = ev["ts_ns"].get<std::uint64_t>();
    backwards += ts < prev_ts;
    prev_ts = std::max(prev_ts, ts);
    const auto cookie = ev["cookie"].get<std::uint64_t>();
    const auto old_state = ev["old"].get<std::string>();
    auto it = last_state.find(cookie);
    if (it != last_state.end() && it->second != old_state) {
      if (!broken_chains++)
        first_broken = it->second + " then " + ev.dump();
    }
    last_state[cookie] = ev["new"].get<std::string>();
  }
  EXPECT_EQ(backwards, 0u) << "events out of time order";
  // Each lost transition breaks at most one socket's chain.
  EXPECT_LE(broken_chains, lost) << first_broken;
  EXPECT_GT(last_state.size(), 1000u);
  EXPECT_EQ(tracer.stderr_text().find("out of time order"), std::string::npos)
      << tracer.stderr_text();
}

// ---------------------------------------------------------------------------
// Hostile process names

// Names a process can give itself (PR_SET_NAME keeps 15 bytes). None holds
// a valid multi-byte UTF-8 sequence: every byte >= 0x80 is invalid alone.
const std::vector<std::string> &hostile_names() {
  static const std::vector<std::string> names{
      "q\"uo\\te,x",                   // JSON and CSV quoting, backslash
      "nl\nfake line",                 // a newline: a forged output line
      "\x1b[2Jclear",                  // ESC [ 2 J: clear the screen
      "\x1b]0;x\x07title",             // OSC: set the terminal title, BEL
      std::string("\x9b") + "31mcsi8", // 8-bit CSI
      std::string("\xff\xfe") + "bad", // invalid UTF-8
      "tab\tcr\r\x7f",                 // TAB, CR, DEL
      "=HYPERLINK(1)",                 // CSV injection (OWASP): formulas
      "@SUM(1)",
      "\t-tab first",
  };
  return names;
}

// What JSON must carry once parsed: the bytes, with every invalid UTF-8
// byte replaced by U+FFFD.
std::string json_expected(const std::string &name) {
  std::string out;
  for (unsigned char c : name.substr(0, 15))
    out += c < 0x80 ? std::string(1, static_cast<char>(c)) : "\xef\xbf\xbd";
  return out;
}

// What the table and CSV must show: printable ASCII as is, backslash
// doubled, every other byte as \xNN.
std::string table_expected(const std::string &name) {
  std::string out;
  for (unsigned char c : name.substr(0, 15)) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

// What a CSV field must hold once the RFC 4180 quoting is undone: the
// table's escaping, behind a single quote when the name starts a formula.
std::string csv_expected(const std::string &name) {
  const bool formula =
      !name.empty() && std::string("=+-@\t\r").find(name[0]) != std::string::npos;
  return (formula ? "'" : "") + table_expected(name);
}

// A process in namespace A per hostile name connects to a server in B. In
// JSON every line parses and comm round-trips; in the table and CSV no raw
// control byte (nor invalid UTF-8) appears and comm shows escaped.
TEST_F(ReliabilityTest, HostileProcessNamesAreEscapedEverywhere) {
  TracerProcess json({"trace", "--format", "json", "--netns", netns()});
  TracerProcess table({"trace", "--netns", netns()});
  TracerProcess csv({"trace", "--format", "csv", "--netns", netns()});
  TT_START_TRACER(json);
  TT_START_TRACER(table);
  TT_START_TRACER(csv);

  const auto &names = hostile_names();
  Server server(*net_, Side::B,
                {.addr = TestNet::addr4(Side::B),
                 .port = 0,
                 .connections = static_cast<int>(names.size())});
  std::vector<pid_t> pids;
  pids.reserve(names.size());
  for (const auto &name : names)
    pids.push_back(run_client(*net_, Side::A,
                              {.addr = TestNet::addr4(Side::B),
                               .port = server.port(),
                               .comm = name})
                       .pid);
  server.finish();
  for (pid_t pid : pids)
    ASSERT_TRUE(wait_socket_end(json, pid)) << dump(json.events());
  std::this_thread::sleep_for(300ms); // the table and CSV tracers too
  EXPECT_EQ(json.stop(), 0) << json.stderr_text();
  EXPECT_EQ(table.stop(), 0) << table.stderr_text();
  EXPECT_EQ(csv.stop(), 0) << csv.stderr_text();

  // JSON: every line parses and conforms; comm round-trips.
  const auto events = json.events();
  for (const auto &ev : events)
    EXPECT_TRUE(contract_violations(ev).empty()) << ev.dump();
  for (const auto &line : json.stdout_lines()) {
    std::string why;
    EXPECT_TRUE(terminal_safe(line, why)) << why << ": " << line;
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    SCOPED_TRACE("name " + table_expected(names[i]));
    int seen = 0;
    for (const auto &ev : events)
      if (ev.value("pid", -1) == pids[i]) {
        ++seen;
        EXPECT_EQ(ev.value("comm", ""), json_expected(names[i])) << ev.dump();
      }
    EXPECT_EQ(seen, 5) << "the client's five transitions";
  }

  // Table: no raw control byte; comm escaped, next to the pid.
  const auto table_lines = table.stdout_lines();
  for (const auto &line : table_lines) {
    std::string why;
    EXPECT_TRUE(terminal_safe(line, why)) << why << ": " << line;
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string pid = " " + std::to_string(pids[i]) + " ";
    const std::string comm = " " + table_expected(names[i]) + " ";
    const auto n = std::count_if(table_lines.begin(), table_lines.end(),
                                 [&](const std::string &l) {
                                   const auto at = l.find(pid);
                                   return at != std::string::npos &&
                                          l.find(comm, at) != std::string::npos;
                                 });
    EXPECT_EQ(n, 5) << "table lines with pid `" << pid << "` and comm `" << comm
                    << "`:\n"
                    << join_lines(table_lines);
  }

  // CSV: no raw control byte, every row has the header's fields, comm
  // escaped like the table once the RFC 4180 quoting is undone.
  const auto csv_lines = csv.stdout_lines();
  ASSERT_FALSE(csv_lines.empty());
  const auto header = csv_split(csv_lines[0]);
  ASSERT_TRUE(header.has_value());
  const auto pid_col = std::find(header->begin(), header->end(), "pid");
  const auto comm_col = std::find(header->begin(), header->end(), "comm");
  ASSERT_NE(pid_col, header->end());
  ASSERT_NE(comm_col, header->end());
  std::map<pid_t, int> csv_seen;
  for (const auto &line : csv_lines) {
    std::string why;
    EXPECT_TRUE(terminal_safe(line, why)) << why << ": " << line;
    const auto fields = csv_split(line);
    ASSERT_TRUE(fields.has_value()) << "broken quoting: " << line;
    ASSERT_EQ(fields->size(), header->size()) << line;
    for (std::size_t i = 0; i < names.size(); ++i)
      if ((*fields)[pid_col - header->begin()] == std::to_string(pids[i])) {
        ++csv_seen[pids[i]];
        EXPECT_EQ((*fields)[comm_col - header->begin()],
                  csv_expected(names[i]))
            << line;
      }
  }
  for (pid_t pid : pids)
    EXPECT_EQ(csv_seen[pid], 5) << "csv rows of pid " << pid;
}

// ---------------------------------------------------------------------------
// No kernel addresses

const std::uint64_t kKernelBase = 0xffff800000000000ULL;

void scan_for_addresses(const Json &j, const std::string &path,
                        std::vector<std::string> &found) {
  static const std::regex hex("(0x)?ffff[89a-f][0-9a-f]{11}",
                              std::regex::icase);
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      scan_for_addresses(it.value(), path + "." + it.key(), found);
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i)
      scan_for_addresses(j[i], path + "[" + std::to_string(i) + "]", found);
  } else if (j.is_number_unsigned()) {
    if (j.get<std::uint64_t>() >= kKernelBase)
      found.push_back(path + " = " + j.dump());
  } else if (j.is_number_integer()) {
    if (static_cast<std::uint64_t>(j.get<std::int64_t>()) >= kKernelBase)
      found.push_back(path + " = " + j.dump());
  } else if (j.is_string()) {
    if (std::regex_search(j.get<std::string>(), hex))
      found.push_back(path + " = " + j.dump());
  }
}

// A machine-wide JSON run with state transitions, a reset sent (abort), a
// refused connection and a SYN retransmission (to an address nobody
// answers): no value in any record is a kernel address.
TEST_F(ReliabilityTest, NoKernelAddressesInOutput) {
  TracerProcess tracer({"trace", "--format", "json"});
  TT_START_TRACER(tracer);

  const ClientResult normal = connect_once(*net_);
  ClientResult aborted;
  {
    Server server(*net_, Side::B, {.addr = TestNet::addr4(Side::B), .port = 0});
    aborted = run_client(
        *net_, Side::A,
        {.addr = TestNet::addr4(Side::B),
         .port = server.port(),
         .exchange = {.close_first = true, .close_mode = CloseMode::Abort}});
    server.finish();
  }
  run_client(
      *net_, Side::A,
      {.addr = TestNet::addr4(Side::B), .port = 9, .expect_refused = true});
  // A SYN the peer drops (a black hole on the way): it is retransmitted
  // after the initial RTO (1 s). Dropped there, not here: on 6.1 (measured;
  // 6.18 reports them with their error) tcp_retransmit_skb fires only for a
  // retransmission that left the host, and one whose first copy still waits
  // for a neighbour (-EBUSY) or that a local output rule drops never does.
  net_->sh(Side::B, "nft add table inet ttrel && "
                    "nft add chain inet ttrel in "
                    "'{ type filter hook input priority 0; }' && "
                    "nft add rule inet ttrel in tcp dport 5001 drop");
  NsProcess syn = net_->spawn(Side::A, "tt-synretx", [](ChildChannel &ch) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(5001);
    inet_pton(AF_INET, TestNet::addr4(Side::B).c_str(), &sa.sin_addr);
    // Non-blocking: EINPROGRESS is the expected result. Held open until
    // the test has seen the retransmission: a fixed 1.5 s was too short on
    // a loaded CI machine (the timer fired after the close).
    (void)connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
    ch.send("connecting");
    (void)ch.receive(20s);
    close(fd);
    ch.send("done");
  });
  syn.expect("connecting");
  EXPECT_TRUE(wait_socket_end(tracer, normal.pid));
  EXPECT_TRUE(wait_socket_end(tracer, aborted.pid));
  EXPECT_TRUE(tracer.wait_for(
      [&](const std::vector<Json> &evs) {
        return std::any_of(evs.begin(), evs.end(), [&](const Json &ev) {
          return ev.value("event", "") == "retransmit" &&
                 ev.value("pid", -1) == syn.pid();
        });
      },
      15s))
      << "no SYN retransmission seen";
  syn.send("close");
  syn.finish();
  EXPECT_EQ(tracer.stop(), 0) << tracer.stderr_text();

  const auto events = tracer.events();
  std::map<std::string, int> kinds;
  std::vector<std::string> found;
  for (const auto &ev : events) {
    ++kinds[ev.value("event", "?")];
    scan_for_addresses(ev, ev.value("event", "?"), found);
  }
  EXPECT_TRUE(found.empty()) << "kernel addresses in output:\n"
                             << join_lines(found);
  EXPECT_GT(kinds["state"], 0);
  EXPECT_GT(kinds["reset"], 0);
  EXPECT_GT(kinds["retransmit"], 0);
  EXPECT_EQ(kinds["<unparsable>"], 0);
}

} // namespace
} // namespace tcptrail::test

namespace tcptrail::test {
namespace {

// Environment faults faked in a private mount namespace (unshare -m), so the
// host is untouched: a kernel without BTF, and a host without tracefs.

// No /sys/kernel/btf/vmlinux: one clear error naming BTF, and exit 1.
TEST(EnvironmentFaultTest, NoKernelBtfIsAClearError) {
  if (auto why = missing_prerequisite())
    TT_SKIP_OR_FAIL(*why);
  const CommandResult r = run_command(
      {"unshare", "-m", "--propagation", "private", "sh", "-c",
       "mount -t tmpfs none /sys/kernel/btf && exec \"$0\" trace",
       TCPTRAIL_BINARY});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("tcptrail: error: kernel BTF not found"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("hint: "), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("tcptrail: ready"), std::string::npos) << r.output;
}

// No kernel config (/boot empty, no /proc/config.gz), as in many containers:
// libbpf 1.1 refuses objects with Kconfig externs then; every subcommand
// still loads (CONFIG_HZ unknown only loosens snapshot's age bounds).
TEST(EnvironmentFaultTest, NoKernelConfigStillLoads) {
  if (auto why = missing_prerequisite())
    TT_SKIP_OR_FAIL(*why);
  for (const char *mode : {"snapshot", "leaks", "trace"}) {
    const CommandResult r = run_command(
        {"unshare", "-m", "--propagation", "private", "sh", "-c",
         // A procfs of processes only (Linux 5.8+) has no config.gz.
         "mount -t tmpfs none /boot && "
         "mount -t proc -o subset=pid proc /proc || exit 98; "
         "test ! -e /proc/config.gz || exit 99; "
         "exec \"$0\" \"$1\" --exit-after-attach",
         TCPTRAIL_BINARY, mode});
    ASSERT_NE(r.exit_code, 98) << r.output;
    ASSERT_NE(r.exit_code, 99) << "config still readable: " << r.output;
    EXPECT_EQ(r.exit_code, 0) << mode << ": " << r.output;
    EXPECT_EQ(r.output.find("Kconfig"), std::string::npos) << r.output;
  }
}

// tracefs and debugfs unmounted: tp_btf programs do not need them, so
// tracing attaches and works (--exit-after-attach proves load + attach).
TEST(EnvironmentFaultTest, NoTracefsStillTraces) {
  if (auto why = missing_prerequisite())
    TT_SKIP_OR_FAIL(*why);
  const CommandResult r = run_command(
      {"unshare", "-m", "--propagation", "private", "sh", "-c",
       "for m in /sys/kernel/tracing /sys/kernel/debug/tracing "
       "/sys/kernel/debug; do umount -l $m 2>/dev/null; done; "
       "test ! -e /sys/kernel/tracing/events || exit 99; "
       "exec \"$0\" trace --exit-after-attach",
       TCPTRAIL_BINARY});
  ASSERT_NE(r.exit_code, 99) << "tracefs still mounted: " << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("tcptrail: ready"), std::string::npos) << r.output;
}

} // namespace
} // namespace tcptrail::test
