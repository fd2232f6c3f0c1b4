#include "bpf/iter.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "error.h"
#include "net.h"
#include "runtime.h"

namespace tcptrail {

namespace {

std::string errno_text(int err) {
  return std::strerror(err < 0 ? -err : err);
}

int make_link(const Tracer &tracer, const char *prog) {
  const int fd = tracer.program_fd(prog);
  if (fd < 0)
    throw Error(fmt::format("BPF iterator program {} is not loaded", prog));
  const int link = bpf_link_create(fd, 0, BPF_TRACE_ITER, nullptr);
  if (link < 0)
    throw Error(fmt::format("creating BPF iterator link for {}: {}", prog,
                            errno_text(link)),
                "BPF iterators need Linux >= 5.9 (iter/tcp, iter/task_file)");
  return link;
}

} // namespace

std::string read_iter(int link, IterEnd end) {
  const int fd = bpf_iter_create(link);
  if (fd < 0)
    throw Error(fmt::format("creating BPF iterator: {}", errno_text(fd)));
  std::string bytes;
  char buf[16384];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && errno == EAGAIN && end == IterEnd::Stopped)
      break;
    if (n < 0) {
      const int err = errno;
      close(fd);
      throw Error(fmt::format("reading BPF iterator: {}", errno_text(err)));
    }
    if (n == 0)
      break;
    bytes.append(buf, static_cast<std::size_t>(n));
  }
  close(fd);
  return bytes;
}

namespace {

std::uint64_t inode_of(const std::string &path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return 0;
  return st.st_ino;
}

} // namespace

std::vector<NetnsRef> list_netns() {
  std::vector<NetnsRef> out;
  std::set<std::uint64_t> seen;
  auto add = [&](const std::string &path) {
    const std::uint64_t ino = inode_of(path);
    if (ino && seen.insert(ino).second)
      out.push_back({path, ino});
  };
  add("/proc/1/ns/net");
  add("/proc/self/ns/net");
  if (DIR *d = opendir("/proc")) {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] < '1' || e->d_name[0] > '9')
        continue;
      add(fmt::format("/proc/{}/ns/net", e->d_name));
    }
    closedir(d);
  }
  if (DIR *d = opendir("/run/netns")) {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] == '.')
        continue;
      add(fmt::format("/run/netns/{}", e->d_name));
    }
    closedir(d);
  }
  return out;
}

IterReader::IterReader(const Tracer &tracer) {
  tcp_link_ = make_link(tracer, "dump_tcp");
  // Optional (program_table()): without it, sockets show no owner.
  if (tracer.program_fd("dump_task_file") < 0)
    return;
  try {
    file_link_ = make_link(tracer, "dump_task_file");
  } catch (...) {
    close(tcp_link_);
    throw;
  }
}

IterReader::~IterReader() {
  if (tcp_link_ >= 0)
    close(tcp_link_);
  if (file_link_ >= 0)
    close(file_link_);
}

namespace {

// Enters `ns` from the calling thread: false when it cannot be entered any
// more (its last process exited, or its name was deleted).
bool enter_netns(const NetnsRef &ns) {
  const int fd = open(ns.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  const int rc = setns(fd, CLONE_NEWNET);
  const int err = errno;
  close(fd);
  if (rc == 0)
    return true;
  if (err == EINVAL || err == ENOENT)
    return false;
  throw Error(fmt::format("entering network namespace {}: {}", ns.path,
                          errno_text(err)));
}

} // namespace

void in_each_netns(const std::vector<NetnsRef> &netns,
                   const std::function<void(const NetnsRef &)> &fn) {
  in_each_netns(netns, 1,
                [&fn](const NetnsRef &ns, std::size_t) { fn(ns); });
}

void in_each_netns(const std::vector<NetnsRef> &netns, unsigned threads,
                   const std::function<void(const NetnsRef &, std::size_t)> &fn) {
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::exception_ptr failure;
  // Threads of our own enter the namespaces, and die with their last one:
  // the calling thread's namespace never changes.
  auto work = [&] {
    try {
      for (std::size_t i; !failed && (i = next++) < netns.size();)
        if (enter_netns(netns[i]))
          fn(netns[i], i);
    } catch (...) {
      std::lock_guard lock(mu);
      if (!failure)
        failure = std::current_exception();
      failed = true;
    }
  };
  const std::size_t n =
      std::clamp<std::size_t>(threads, 1, std::max<std::size_t>(netns.size(), 1));
  std::vector<std::thread> workers;
  workers.reserve(n);
  for (std::size_t t = 0; t < n; ++t) {
    try {
      workers.emplace_back(work);
    } catch (const std::system_error &) {
      if (workers.empty())
        throw;
      break; // fewer threads, the same work
    }
  }
  for (std::thread &w : workers)
    w.join();
  if (failure)
    std::rethrow_exception(failure);
}

namespace {

// Whether the calling thread's namespace holds no TCP socket at all, by its
// own counts (/proc/thread-self/net/sockstat, sockstat6): no_tcp_sockets().
bool netns_without_tcp_sockets() {
  return no_tcp_sockets(read_small_file("/proc/thread-self/net/sockstat"),
                        read_small_file("/proc/thread-self/net/sockstat6"));
}

} // namespace

IterRecords IterReader::sockets(const std::vector<NetnsRef> &netns) const {
  // Each namespace's walk is a walk of the whole table (~1.75 ms with 262,144
  // buckets, 6.18.44-fc-v1300): one thread per CPU, and none for a namespace
  // whose counts say it has no TCP socket (containers that hold none).
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  std::vector<IterRecords> each(netns.size());
  in_each_netns(netns, cpus > 0 ? static_cast<unsigned>(cpus) : 1,
                [&](const NetnsRef &, std::size_t i) {
                  if (netns_without_tcp_sockets())
                    return;
                  decode_iter_stream(read_iter(tcp_link_), each[i]);
                });
  IterRecords out;
  for (IterRecords &r : each) {
    out.sockets.insert(out.sockets.end(), r.sockets.begin(), r.sockets.end());
    out.files.insert(out.files.end(), r.files.begin(), r.files.end());
    out.invalid += r.invalid;
  }
  return out;
}

IterRecords IterReader::sockets_here() const {
  IterRecords out;
  decode_iter_stream(read_iter(tcp_link_), out);
  return out;
}

IterRecords IterReader::files() const {
  IterRecords out;
  if (file_link_ < 0)
    return out;
  decode_iter_stream(read_iter(file_link_), out);
  return out;
}

} // namespace tcptrail
