// What `diagnose` reads besides the trace: a network namespace's TCP MIB
// counters (/proc/net/netstat, /proc/net/snmp), its listeners' queues and
// its CLOSE_WAIT / TIME_WAIT / half-open sockets (sock_diag netlink), its
// ephemeral port range. A namespace other than the caller's is read from a
// helper thread that setns()es into it; the calling thread never changes
// namespace.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tcp_state.h"
#include "tcptrail/events.h"

namespace tcptrail::diagnose {

// "TcpExt.ListenOverflows" -> value, "Tcp.RetransSegs" -> value, ...
using MibCounters = std::map<std::string, std::int64_t>;

// Parses the /proc/net/netstat and /proc/net/snmp format: pairs of lines
// "Prefix: Name1 Name2 ..." / "Prefix: v1 v2 ...". Malformed pairs are
// skipped; values are read as signed 64-bit (Tcp.MaxConn is -1).
MibCounters parse_mib(std::string_view text);

// after - before for every counter present in both.
MibCounters mib_delta(const MibCounters &before, const MibCounters &after);

// One socket from a sock_diag dump.
struct DiagSock {
  std::uint8_t af = 0;    // 4 or 6
  std::uint8_t state = 0; // TCP state (timewait: its substate; request: SYN_RECV)
  std::uint8_t laddr[TT_ADDR_LEN] = {};
  std::uint8_t raddr[TT_ADDR_LEN] = {};
  std::uint16_t lport = 0;
  std::uint16_t rport = 0;
  std::uint32_t rqueue = 0; // LISTEN: accept queue length
  std::uint32_t wqueue = 0; // LISTEN: accept queue limit (backlog)
  std::uint32_t uid = 0;
  std::uint64_t inode = 0;
  std::uint64_t cookie = 0; // the socket cookie, as in the trace
};

struct SocketOwner {
  std::uint32_t pid = 0;
  std::string comm;
  std::uint64_t cgroup_id = 0; // cgroup (v2), 0: unknown
};

struct NetSnapshot {
  bool ok = false;
  std::string error;           // why it is not ok (or a partial failure)
  std::uint64_t netns = 0;     // inode of the namespace read
  MibCounters mib;             // netstat + snmp
  bool sockets_ok = false;
  std::vector<DiagSock> sockets; // LISTEN, SYN_RECV, CLOSE_WAIT, TIME_WAIT
  std::uint32_t port_lo = 0, port_hi = 0; // net.ipv4.ip_local_port_range
  std::int64_t max_syn_backlog = -1;      // net.ipv4.tcp_max_syn_backlog
  std::int64_t somaxconn = -1;            // net.core.somaxconn
  std::int64_t syncookies = -1;           // net.ipv4.tcp_syncookies
  // Owners of some sockets' inodes, filled by the caller (socket_owners()
  // needs privileges to see every process).
  std::map<std::uint64_t, SocketOwner> owners;
};

// One sock_diag dump (NETLINK_SOCK_DIAG, inet_diag_req_v2) of the TCP
// sockets of `family` (AF_INET, AF_INET6) in the states of the `states`
// bitmask (1 << TCP state), in the calling thread's namespace, appended to
// `out`. The one place tcptrail reads sock_diag: the socket enumerator's
// SockDiag strategy (snapshot/enumerate.h) calls it. False, with `err`, on
// failure.
bool diag_dump(int family, std::uint32_t states, std::vector<DiagSock> &out,
               std::string &err);

// TCP states of the sockets a snapshot holds: LISTEN (queues), SYN_RECV
// (half-open), CLOSE_WAIT (leaks) and TIME_WAIT.
inline constexpr std::uint32_t kSnapshotStates =
    state_bit(TcpState::Listen) | state_bit(TcpState::SynRecv) |
    state_bit(TcpState::CloseWait) | state_bit(TcpState::TimeWait);

// Appends the sockets of the calling thread's namespace that a snapshot
// holds to `out`: false, with `err`, on failure. diagnose's comes from the
// socket enumerator (snapshot/enumerate.h), which reads sock_diag or the
// iterators.
using SocketSource =
    std::function<bool(std::vector<DiagSock> &out, std::string &err)>;

// Reads one namespace (`netns`, or the caller's own when nullopt) at the
// start and at the end of a run. For another namespace, one helper thread
// setns()es into it, takes the first snapshot, then calls `after_start`
// (e.g. dropping that thread's capabilities: what it reads later needs
// none once inside the namespace) and stays there, reading what it is
// asked. The calling thread's namespace never changes. Not thread-safe:
// one thread calls every method.
class SnapshotPair {
public:
  using Hook = std::function<void()>;
  // Without `sockets`, the start snapshot's sockets wait for
  // read_start_sockets(): for a source that needs the loaded programs.
  SnapshotPair(std::optional<std::uint64_t> netns, Hook after_start,
               SocketSource sockets);
  ~SnapshotPair();
  SnapshotPair(const SnapshotPair &) = delete;
  SnapshotPair &operator=(const SnapshotPair &) = delete;

  // The first snapshot, read on a thread of its own from construction on
  // (diagnose loads its programs meanwhile): waits for it.
  NetSnapshot &start();
  // Reads the start snapshot's sockets from `sockets`, which the end
  // snapshot reads too: now, or, without `wait`, on the namespace's thread
  // while the caller goes on (start() waits for them).
  void read_start_sockets(SocketSource sockets, bool wait);
  NetSnapshot end(); // once

private:
  // Runs fn in the namespace read, and with `wait` waits for it; false
  // when the namespace could not be entered.
  bool in_namespace(std::function<void()> fn, bool wait);

  std::optional<std::uint64_t> netns_;
  SocketSource sockets_;
  NetSnapshot start_;
  std::thread start_reader_; // our own namespace
  struct Worker;             // another one
  std::unique_ptr<Worker> worker_;
};

// A path whose st_ino is `inode`: /run/netns/*, then /proc/*/ns/net.
std::optional<std::string> find_netns_path(std::uint64_t inode);

// Calls fn(pid, fd, socket inode) for every socket fd of every process this
// process can see in /proc, until fn returns false. The one fd walk of
// tcptrail: socket_owners() here and the enumeration fallback
// (snapshot/enumerate.h) both use it.
void for_each_socket_fd(
    const std::function<bool(std::uint32_t pid, std::uint32_t fd,
                             std::uint64_t inode)> &fn);
// /proc/PID/comm without its newline; empty when the process is gone.
std::string process_comm(std::uint32_t pid);

// The process holding each socket inode (first found by scanning
// /proc/*/fd), for inodes that have one. Bounded by the process count.
std::map<std::uint64_t, SocketOwner>
socket_owners(const std::set<std::uint64_t> &inodes);

} // namespace tcptrail::diagnose
