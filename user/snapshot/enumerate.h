// One way to enumerate the TCP sockets that exist now, with the processes
// that hold them, whatever the kernel allows: `snapshot` and `leaks` ask it,
// and a kernel difference is handled here, once. The strategy is picked by
// the probes (bpf/probe.h):
//   - Iterators: iter/tcp in each namespace (sequence numbers, activity
//     stamps, the tracer's owner and state time from socket storage) joined
//     with iter/task_file (every process's fds), bpf/iter.bpf.c;
//   - SockDiag, where the kernel refuses iter/tcp: a sock_diag dump in each
//     namespace (the one diagnose reads too, diagnose/netinfo.h) joined with
//     /proc/*/fd. No sequence numbers, ages or storage-known owners.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string_view>
#include <vector>

#include "bpf/iter.h"
#include "diagnose/netinfo.h"
#include "snapshot/snapshot.h"

namespace tcptrail {

class KernelProbes;

enum class EnumStrategy : std::uint8_t { Iterators, SockDiag };
std::string_view enum_strategy_name(EnumStrategy s);

class SocketEnumerator {
public:
  // `tracer` holds the iterator programs when the strategy is Iterators
  // (it must outlive the enumerator); the probes decide.
  static SocketEnumerator create(const Tracer &tracer, KernelProbes &probes);
  SocketEnumerator(SocketEnumerator &&) noexcept;
  SocketEnumerator &operator=(SocketEnumerator &&) noexcept;
  ~SocketEnumerator();

  EnumStrategy strategy() const { return strategy_; }

  // Every TCP socket of the namespaces in `netns`, joined with every fd
  // that refers to it. Malformed iterator records are counted in
  // `*invalid`. Throws tcptrail::Error naming the failed step.
  std::vector<SocketRow> sockets(const std::vector<NetnsRef> &netns,
                                 std::uint64_t *invalid = nullptr) const;

private:
  SocketEnumerator() = default;
  EnumStrategy strategy_ = EnumStrategy::SockDiag;
  std::unique_ptr<IterReader> iter_;
};

// Every socket of every namespace (list_netns()) now, by the strategy the
// probes pick, warning on stderr
// about malformed iterator records. For snapshot and leaks.
std::vector<SocketRow> enumerate_sockets(const Tracer &tracer);

// The process holding each listener or CLOSE_WAIT socket of `inodes` (its
// first holder), for those that have one: from the fd walk the tracer made
// at start (Tracer::walked_sockets(), which its owner seeding needed
// anyway), else, where the walk could not run, from a walk of /proc/*/fd.
// diagnose's owner lookup at start.
std::map<std::uint64_t, diagnose::SocketOwner>
socket_owners_of(const Tracer &tracer, std::set<std::uint64_t> inodes);

// The SockDiag strategy's record conversion, for tests: a sock_diag socket
// as the iterators' record, in namespace `netns`.
tt_iter_sock iter_sock_from_diag(const diagnose::DiagSock &d,
                                 std::uint32_t netns);

} // namespace tcptrail
