// `tcptrail snapshot`: sockets from iter/tcp joined with their owners from
// iter/task_file, and the three output formats. Pure logic, no libbpf.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "filter.h"
#include "format/escape.h"
#include "tcptrail/events.h"

namespace tcptrail {

struct SocketOwner {
  std::uint32_t pid = 0;
  std::uint32_t fd = 0;
  char comm[TT_COMM_LEN] = {};
  std::uint64_t cgroup_id = 0; // the process's cgroup (v2), 0 when unknown
};

struct SocketRow {
  tt_iter_sock sock{};
  // Every process fd that refers to the socket, by pid then fd. Empty for
  // orphans, timewait and request sockets.
  std::vector<SocketOwner> owners;

  // The cgroup shown for the row: its first owner's, else the socket's
  // (tt_iter_sock.cgroup_id).
  std::uint64_t cgroup_id() const {
    return owners.empty() ? sock.cgroup_id : owners[0].cgroup_id;
  }
};

// Joins sockets with the fds referring to them: by cookie, or by (netns,
// socket inode) when the cookies differ. Sockets seen twice (one namespace
// reached through two paths) are kept once. Rows are sorted by namespace,
// family, local then remote endpoint, cookie.
std::vector<SocketRow> join_owners(const std::vector<tt_iter_sock> &sockets,
                                   const std::vector<tt_iter_file> &files);

// The filters of `trace`, applied to a row (any owner may match --pid and
// --comm; the state is the socket's current one).
bool row_matches(const FilterSpec &spec, const SocketRow &row);

// ---------------------------------------------------------------------------
// Ages

// States for which tt_iter_sock's activity stamps are proven (bpf/iter.bpf.c)
// never to be older than the entry into the state.
bool age_bound_proven(std::uint8_t state);

struct SocketAge {
  std::uint64_t ns = 0; // at hdr.ts_ns
  bool exact = false;   // from socket storage: the tracer saw the entry
  bool known = false;   // exact, or a proven lower bound (else ns == 0)
};

// How long the socket had been in its state when it was dumped: exact from
// state_ts, else the lower bound of bpf/iter.bpf.c for proven states (the
// smaller of the tcp_mstamp age minus 1 ms and, when HZ is known, the
// rcv_tstamp age minus one jiffy), else unknown (0).
SocketAge socket_age(const tt_iter_sock &s);

// "45s", "3m07s", "2h13m".
std::string format_age(std::uint64_t ns);

// ---------------------------------------------------------------------------
// Output

void format_snapshot_table(Buffer &out, const std::vector<SocketRow> &rows);
// names: cgroup id -> path and container for the cgroup fields (JSON, CSV);
// nullptr prints ids only.
void format_snapshot_json(Buffer &out, const std::vector<SocketRow> &rows,
                          CgroupNames *names = nullptr);
void format_snapshot_csv(Buffer &out, const std::vector<SocketRow> &rows,
                         CgroupNames *names = nullptr);

} // namespace tcptrail
