// The libbpf side of the BPF iterators (bpf/iter.bpf.c): creates iterator
// links on a Tracer's loaded programs and reads their records.
//
// iter/tcp dumps the sockets of the network namespace of the thread that
// creates the iterator fd, so other namespaces are read from a dedicated
// thread that setns()es into each one; the calling thread's namespace never
// changes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "bpf/tracer.h"
#include "snapshot/records.h"

namespace tcptrail {

struct NetnsRef {
  std::string path;       // "/proc/1/ns/net", "/run/netns/blue", ...
  std::uint64_t inode = 0; // the namespace's inode (st_ino)
};

// The root namespace (/proc/1/ns/net), every running process's namespace
// (/proc/*/ns/net) and the named ones (/run/netns/*), deduplicated by inode,
// root first.
std::vector<NetnsRef> list_netns();

// How an iterator's walk ends: at its end, or also where its program
// returns 1 (the kernel then ends the read() with what the program wrote
// so far, or with EAGAIN when it wrote nothing since the last read()).
enum class IterEnd { Eof, Stopped };

// Creates an iterator from a BPF iterator link (in the calling thread's
// namespaces) and reads it to the end. Throws tcptrail::Error.
std::string read_iter(int link_fd, IterEnd end = IterEnd::Eof);

// Runs fn(ns) for each namespace, from a dedicated thread that setns()es
// into each in turn, so the calling thread's namespace never changes (an
// iter/tcp iterator walks its creator's namespace). A namespace that cannot
// be entered any more (its last process exited) is skipped. Needs
// CAP_SYS_ADMIN for namespaces other than our own.
void in_each_netns(const std::vector<NetnsRef> &netns,
                   const std::function<void(const NetnsRef &)> &fn);

// The same from up to `threads` threads at once, each taking the next
// namespace not yet taken: fn(ns, i) for netns[i], concurrently for
// different i. (iter/tcp walks the whole established table for each
// namespace, whichever namespace its sockets belong to.) The first
// failure is rethrown once every thread has ended.
void in_each_netns(const std::vector<NetnsRef> &netns, unsigned threads,
                   const std::function<void(const NetnsRef &, std::size_t)> &fn);

class IterReader {
public:
  // `tracer` must have been created with TracerConfig::iterators; the
  // reader's links keep its programs, so it may outlive the tracer (diagnose
  // reads its end snapshot after the session). Throws tcptrail::Error naming
  // the failed step.
  explicit IterReader(const Tracer &tracer);
  ~IterReader();
  IterReader(const IterReader &) = delete;
  IterReader &operator=(const IterReader &) = delete;

  // Every TCP socket of every namespace in `netns`. A namespace that cannot
  // be entered any more (its last process exited) is skipped.
  IterRecords sockets(const std::vector<NetnsRef> &netns) const;
  // Every TCP socket of the calling thread's namespace. Needs no
  // privilege: the link was made with them.
  IterRecords sockets_here() const;
  // Every TCP socket fd of every process (none without iter/task_file).
  IterRecords files() const;
  bool has_files() const { return file_link_ >= 0; }

private:
  int tcp_link_ = -1;
  int file_link_ = -1;
};

} // namespace tcptrail
