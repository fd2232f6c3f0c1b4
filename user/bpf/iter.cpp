#include "bpf/iter.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <set>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "error.h"

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

void in_each_netns(const std::vector<NetnsRef> &netns,
                   const std::function<void(const NetnsRef &)> &fn) {
  std::exception_ptr failure;
  // A thread of our own enters each namespace in turn, and dies with the
  // last one.
  std::thread worker([&] {
    try {
      for (const NetnsRef &ns : netns) {
        const int fd = open(ns.path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
          continue; // the process exited, or the name was deleted
        const int rc = setns(fd, CLONE_NEWNET);
        const int err = errno;
        close(fd);
        if (rc != 0) {
          if (err == EINVAL || err == ENOENT)
            continue;
          throw Error(fmt::format("entering network namespace {}: {}",
                                  ns.path, errno_text(err)));
        }
        fn(ns);
      }
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure)
    std::rethrow_exception(failure);
}

IterRecords IterReader::sockets(const std::vector<NetnsRef> &netns) const {
  IterRecords out;
  in_each_netns(netns, [&](const NetnsRef &) {
    decode_iter_stream(read_iter(tcp_link_), out);
  });
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
