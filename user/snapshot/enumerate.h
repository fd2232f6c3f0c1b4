// One way to enumerate the TCP sockets that exist now, with the processes
// that hold them, whatever the kernel allows: `snapshot`, `leaks`, `serve`
// and `diagnose` ask it, and a kernel difference is handled here, once. The
// strategy is picked by the probes (bpf/probe.h):
//   - Iterators: iter/tcp in each namespace (sequence numbers, activity
//     stamps, the tracer's owner and state time from socket storage) joined
//     with iter/task_file (every process's fds), bpf/iter.bpf.c;
//   - SockDiag, where the kernel refuses iter/tcp: a sock_diag dump in each
//     namespace (diag_dump(), diagnose/netinfo.h) joined with /proc/*/fd. No
//     sequence numbers, ages or storage-known owners.
// With a tracer whose start-up fd walk recorded the fds of the sockets
// wanted (live leaks: TracerConfig::walk_record_states), those take
// iter/task_file's place. diagnose's snapshots (sockets_here()) take only
// the sockets, no fds: their owners come from that walk too
// (socket_owners_of()).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
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
  // (IterReader's links keep them: the enumerator may outlive it); the
  // probes decide.
  static SocketEnumerator create(const Tracer &tracer, KernelProbes &probes);
  // The strategy create() picks where the tracer loaded what the probes
  // allowed: known before the load, for a caller that can read sock_diag
  // meanwhile (diagnose's start snapshot).
  static EnumStrategy planned(KernelProbes &probes);
  // The SockDiag strategy, which needs no program.
  static SocketEnumerator sock_diag() { return SocketEnumerator(); }
  SocketEnumerator(SocketEnumerator &&) noexcept;
  SocketEnumerator &operator=(SocketEnumerator &&) noexcept;
  ~SocketEnumerator();

  EnumStrategy strategy() const { return strategy_; }

  // Every TCP socket of the namespaces in `netns`, joined with every fd
  // that refers to it (with the Iterators strategy and a tracer whose fd
  // walk recorded the fds at start, with those, which name only the sockets
  // in TracerConfig::walk_record_states). Malformed iterator records are counted in
  // `*invalid`. Throws tcptrail::Error naming the failed step.
  std::vector<SocketRow> sockets(const std::vector<NetnsRef> &netns,
                                 std::uint64_t *invalid = nullptr) const;

  // The TCP sockets of the calling thread's namespace in the states of
  // `states` (1 << TCP state; a request socket is SYN_RECV) that `filter`
  // keeps (iter_keeps(): every listener, the owner filters not applied),
  // as sock_diag gives them, appended to `out`: diagnose's snapshots, at
  // start and at the end, when no capability is left (neither strategy
  // needs one here). False, with `err`, on failure.
  bool sockets_here(std::uint32_t states, const FilterSpec &filter,
                    std::vector<diagnose::DiagSock> &out,
                    std::string &err) const;

private:
  SocketEnumerator() = default;
  EnumStrategy strategy_ = EnumStrategy::SockDiag;
  std::unique_ptr<IterReader> iter_;
  // Without dump_task_file, the fds the tracer's start-up fd walk recorded
  // (live leaks: Tracer::walked_sockets()), if it did.
  std::optional<std::vector<tt_iter_file>> walked_;
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
// The same from an fd walk's records (a copy of Tracer::walked_sockets()).
std::map<std::uint64_t, diagnose::SocketOwner>
socket_owners_in(const std::vector<tt_iter_file> &files,
                 const std::set<std::uint64_t> &inodes);

// The SockDiag strategy's record conversion, for tests: a sock_diag socket
// as the iterators' record, in namespace `netns`.
tt_iter_sock iter_sock_from_diag(const diagnose::DiagSock &d,
                                 std::uint32_t netns);
// The other way, for sockets_here(): an iterator record as sock_diag
// reports the socket (a request socket in SYN_RECV).
diagnose::DiagSock diag_from_iter_sock(const tt_iter_sock &s);

} // namespace tcptrail
