#include "runtime.h"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <initializer_list>

namespace tcptrail {

namespace {

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) { g_stop = 1; }

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

} // namespace

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; // no SA_RESTART: interrupt epoll_wait
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    sigaction(sig, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() { return g_stop != 0; }
void request_stop() { g_stop = 1; }

std::uint64_t monotonic_ns() {
  return static_cast<std::uint64_t>(clock_ns(CLOCK_MONOTONIC));
}

std::int64_t wall_offset_ns() {
  // Bracket the realtime read to keep the offset's error small.
  const std::int64_t m1 = clock_ns(CLOCK_MONOTONIC);
  const std::int64_t r = clock_ns(CLOCK_REALTIME);
  const std::int64_t m2 = clock_ns(CLOCK_MONOTONIC);
  return r - (m1 + (m2 - m1) / 2);
}

std::string read_small_file(const char *path) {
  std::string text;
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return text;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  close(fd);
  return text;
}

} // namespace tcptrail
