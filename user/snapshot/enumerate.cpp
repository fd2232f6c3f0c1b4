#include "snapshot/enumerate.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <set>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "bpf/probe.h"
#include "error.h"
#include "format/escape.h"
#include "runtime.h"
#include "snapshot/records.h"
#include "tcp_state.h"

namespace tcptrail {

namespace {

// The states sock_diag reports, from the enum checked against the kernel's.
constexpr auto kTimeWait = static_cast<std::uint8_t>(TcpState::TimeWait);
constexpr auto kSynRecv = static_cast<std::uint8_t>(TcpState::SynRecv);
constexpr auto kNewSynRecv = static_cast<std::uint8_t>(TcpState::NewSynRecv);

// Every socket fd of every process, as iter/task_file would give them: the
// fd walk of /proc, for the inodes wanted.
std::vector<tt_iter_file> proc_socket_fds(
    const std::map<std::uint64_t, std::uint32_t> &netns_of_inode) {
  std::vector<tt_iter_file> out;
  std::uint32_t comm_pid = 0;
  std::string comm;
  diagnose::for_each_socket_fd(
      [&](std::uint32_t pid, std::uint32_t fd, std::uint64_t ino) {
        const auto it = netns_of_inode.find(ino);
        if (it == netns_of_inode.end())
          return true;
        if (comm_pid != pid) {
          comm = diagnose::process_comm(pid);
          comm_pid = pid;
        }
        tt_iter_file rec{};
        rec.hdr.kind = TT_KIND_ITER_FILE;
        rec.hdr.size = sizeof(rec);
        rec.pid = pid;
        rec.fd = fd;
        rec.ino = ino;
        rec.netns = it->second;
        std::memcpy(rec.comm, comm.data(),
                    std::min(comm.size(), sizeof(rec.comm) - 1));
        out.push_back(rec);
        return true;
      });
  return out;
}

// socket inode -> its namespace, for the sockets a process can hold.
std::map<std::uint64_t, std::uint32_t>
inodes_of(const std::vector<tt_iter_sock> &socks) {
  std::map<std::uint64_t, std::uint32_t> out;
  for (const tt_iter_sock &s : socks)
    if (s.ino)
      out.emplace(s.ino, s.netns);
  return out;
}

} // namespace

std::string_view enum_strategy_name(EnumStrategy s) {
  return s == EnumStrategy::Iterators ? "BPF iterators (iter/tcp, iter/task_file)"
                                      : "sock_diag and /proc/*/fd";
}

tt_iter_sock iter_sock_from_diag(const diagnose::DiagSock &d,
                                 std::uint32_t netns) {
  tt_iter_sock s{};
  s.hdr.kind = TT_KIND_ITER_SOCK;
  s.hdr.size = sizeof(s);
  s.hdr.ts_ns = monotonic_ns();
  s.hdr.cookie = d.cookie;
  std::memcpy(s.laddr, d.laddr, TT_ADDR_LEN);
  std::memcpy(s.raddr, d.raddr, TT_ADDR_LEN);
  s.lport = d.lport;
  s.rport = d.rport;
  s.af = d.af;
  // sock_diag reports a request socket as SYN_RECV, a timewait socket
  // by its substate, as the iterator does.
  s.state = d.state;
  s.sk_kind = d.state == kTimeWait                              ? TT_SK_TIMEWAIT
              : d.state == kSynRecv || d.state == kNewSynRecv ? TT_SK_REQUEST
                                                              : TT_SK_FULL;
  if (s.sk_kind == TT_SK_REQUEST)
    s.state = kNewSynRecv;
  s.netns = netns;
  s.ino = d.inode;
  s.rx_queue = d.rqueue;
  s.tx_queue = d.wqueue;
  s.uid = d.uid;
  return s;
}

diagnose::DiagSock diag_from_iter_sock(const tt_iter_sock &s) {
  diagnose::DiagSock d;
  d.af = s.af;
  d.state = s.sk_kind == TT_SK_REQUEST ? kSynRecv : s.state;
  std::memcpy(d.laddr, s.laddr, TT_ADDR_LEN);
  std::memcpy(d.raddr, s.raddr, TT_ADDR_LEN);
  d.lport = s.lport;
  d.rport = s.rport;
  d.rqueue = s.rx_queue;
  d.wqueue = s.tx_queue;
  d.uid = s.uid;
  d.inode = s.ino;
  d.cookie = s.hdr.cookie;
  return d;
}

std::vector<SocketRow> enumerate_sockets(const Tracer &tracer) {
  const SocketEnumerator e =
      SocketEnumerator::create(tracer, KernelProbes::instance());
  std::uint64_t invalid = 0;
  std::vector<SocketRow> rows = e.sockets(list_netns(), &invalid);
  if (invalid)
    std::fprintf(stderr,
                 "tcptrail: warning: %llu malformed iterator records dropped\n",
                 static_cast<unsigned long long>(invalid));
  return rows;
}

std::map<std::uint64_t, diagnose::SocketOwner>
socket_owners_in(const std::vector<tt_iter_file> &files,
                 const std::set<std::uint64_t> &inodes) {
  std::map<std::uint64_t, diagnose::SocketOwner> out;
  // Its first holder, as the /proc walk would name it.
  for (const tt_iter_file &f : files)
    if (inodes.count(f.ino))
      out.try_emplace(f.ino,
                      diagnose::SocketOwner{f.pid, std::string(comm_view(f.comm)),
                                            f.cgroup_id});
  return out;
}

std::map<std::uint64_t, diagnose::SocketOwner>
socket_owners_of(const Tracer &tracer, std::set<std::uint64_t> inodes) {
  // /proc shows no process the walk did not see: a socket it missed has
  // its holder in another PID namespace (iter/task_file walks ours), or
  // entered the state after the walk (the report asks /proc again for what
  // it shows).
  if (const auto &walked = tracer.walked_sockets())
    return socket_owners_in(walked->files, inodes);
  if (inodes.empty())
    return {};
  return diagnose::socket_owners(inodes);
}

SocketEnumerator::SocketEnumerator(SocketEnumerator &&) noexcept = default;
SocketEnumerator &
SocketEnumerator::operator=(SocketEnumerator &&) noexcept = default;
SocketEnumerator::~SocketEnumerator() = default;

EnumStrategy SocketEnumerator::planned(KernelProbes &probes) {
  return probes.has(Feature::IterTcp) ? EnumStrategy::Iterators
                                      : EnumStrategy::SockDiag;
}

SocketEnumerator SocketEnumerator::create(const Tracer &tracer,
                                          KernelProbes &probes) {
  SocketEnumerator e;
  if (planned(probes) == EnumStrategy::Iterators &&
      tracer.program_fd("dump_tcp") >= 0) {
    e.strategy_ = EnumStrategy::Iterators;
    e.iter_ = std::make_unique<IterReader>(tracer);
    if (!e.iter_->has_files() && tracer.walked_sockets())
      e.walked_ = tracer.walked_sockets()->files;
  }
  return e;
}

std::vector<SocketRow>
SocketEnumerator::sockets(const std::vector<NetnsRef> &netns,
                          std::uint64_t *invalid) const {
  if (strategy_ == EnumStrategy::Iterators && !iter_->has_files()) {
    // The fds from the tracer's start-up walk, else from /proc.
    IterRecords socks = iter_->sockets(netns);
    if (invalid)
      *invalid = socks.invalid;
    if (walked_)
      return join_owners(socks.sockets, *walked_);
    return join_owners(socks.sockets, proc_socket_fds(inodes_of(socks.sockets)));
  }
  if (strategy_ == EnumStrategy::Iterators) {
    // Both walks at once, each on a thread of its own. The fd walk reads
    // a socket's cookie only if something made it (dump_task_file), so
    // fds are joined by inode where iter/tcp made the cookie meanwhile.
    IterRecords files;
    std::exception_ptr files_failed;
    std::thread files_walk([&] {
      try {
        files = iter_->files();
      } catch (...) {
        files_failed = std::current_exception();
      }
    });
    IterRecords socks;
    try {
      socks = iter_->sockets(netns);
    } catch (...) {
      files_walk.join();
      throw;
    }
    files_walk.join();
    if (files_failed)
      std::rethrow_exception(files_failed);
    if (invalid)
      *invalid = socks.invalid + files.invalid;
    return join_owners(socks.sockets, files.files);
  }
  std::vector<tt_iter_sock> socks;
  in_each_netns(netns, [&](const NetnsRef &ns) {
    std::vector<diagnose::DiagSock> found;
    std::string err;
    if (!diagnose::diag_dump(AF_INET, ~0U, found, err) ||
        !diagnose::diag_dump(AF_INET6, ~0U, found, err))
      throw Error(fmt::format("reading sockets with sock_diag in {}: {}",
                              ns.path, err));
    for (const diagnose::DiagSock &d : found)
      socks.push_back(iter_sock_from_diag(d, static_cast<std::uint32_t>(ns.inode)));
  });
  if (invalid)
    *invalid = 0;
  return join_owners(socks, proc_socket_fds(inodes_of(socks)));
}

bool SocketEnumerator::sockets_here(std::uint32_t states,
                                    const FilterSpec &filter,
                                    std::vector<diagnose::DiagSock> &out,
                                    std::string &err) const {
  auto keep = [&](const diagnose::DiagSock &d, std::uint32_t netns) {
    if (!(states & (1U << d.state)))
      return false;
    tt_sock sk{};
    std::memcpy(sk.laddr, d.laddr, TT_ADDR_LEN);
    std::memcpy(sk.raddr, d.raddr, TT_ADDR_LEN);
    sk.lport = d.lport;
    sk.rport = d.rport;
    sk.af = d.af;
    sk.netns = netns;
    return iter_keeps(filter, sk, d.state);
  };
  if (strategy_ == EnumStrategy::Iterators) {
    try {
      const IterRecords recs = iter_->sockets_here();
      for (const tt_iter_sock &s : recs.sockets) {
        const diagnose::DiagSock d = diag_from_iter_sock(s);
        if (keep(d, s.netns))
          out.push_back(d);
      }
      return true;
    } catch (const Error &e) {
      err = e.what();
      return false;
    }
  }
  std::vector<diagnose::DiagSock> found;
  if (!diagnose::diag_dump(AF_INET, states, found, err) ||
      !diagnose::diag_dump(AF_INET6, states, found, err))
    return false;
  // sock_diag's namespace is the caller's: the one the filter names, if any.
  for (const diagnose::DiagSock &d : found)
    if (keep(d, filter.netns))
      out.push_back(d);
  return true;
}

} // namespace tcptrail
