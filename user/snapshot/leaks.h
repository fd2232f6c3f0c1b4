// `tcptrail leaks`: which sockets sit in a watched state (CLOSE_WAIT, ...)
// and for how long, from an enumeration at start (pre-existing sockets,
// with an age lower bound) and from live state events (exact ages). Pure
// logic, no libbpf: fed with synthetic records by the unit tests.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "format/escape.h"
#include "snapshot/snapshot.h"
#include "tcptrail/events.h"

namespace tcptrail {

struct StuckSocket {
  std::uint64_t cookie = 0;
  std::uint8_t state = 0;
  std::uint8_t af = 4;
  std::uint8_t laddr[TT_ADDR_LEN] = {};
  std::uint8_t raddr[TT_ADDR_LEN] = {};
  std::uint16_t lport = 0, rport = 0;
  std::uint32_t netns = 0;
  std::uint32_t pid = 0; // 0: owner unknown
  std::int64_t fd = -1;  // -1: no fd known
  char comm[TT_COMM_LEN] = {};
  std::uint64_t cgroup_id = 0; // owner's cgroup (v2), 0: unknown
  // Monotonic ns the state was entered: exact from a state event or socket
  // storage, else the latest time consistent with the age lower bound.
  std::uint64_t since_ns = 0;
  std::uint64_t seen_ns = 0; // when we learnt of it (enumeration/event)
  bool preexisting = false;  // in the state before tcptrail watched
  bool exact = false;        // since_ns is the entry time, not a bound
  // Accepted from a listener: the peer's port is ephemeral, so peers are
  // counted by address only.
  bool passive = false;
};

class LeakTracker {
public:
  explicit LeakTracker(std::uint32_t state_mask) : mask_(state_mask) {}

  bool watched(std::uint8_t state) const {
    return state < 32 && (mask_ >> state) & 1;
  }
  // The sockets found at start (tracer already attached). A socket whose
  // storage saw its state entered is timed exactly and not pre-existing.
  void enumerate(const std::vector<SocketRow> &rows);
  // A live transition: a socket entering a watched state is timed exactly;
  // one leaving it is dropped at once.
  void on_state(const tt_state_event &ev);
  // Current fd holders (iter/task_file), by cookie: the owner to report.
  void refresh_owners(const std::vector<tt_iter_file> &files);

  const std::map<std::uint64_t, StuckSocket> &tracked() const {
    return tracked_;
  }

private:
  std::uint32_t mask_;
  std::map<std::uint64_t, StuckSocket> tracked_;
};

struct PeerCount {
  std::string endpoint;
  std::size_t count = 0;
};

struct LeakGroup {
  std::uint32_t pid = 0;
  char comm[TT_COMM_LEN] = {};
  std::uint8_t state = 0;
  std::uint64_t oldest_ns = 0;
  std::vector<std::pair<StuckSocket, std::uint64_t>> sockets; // with age
  std::vector<PeerCount> peers; // most frequent first
};

struct LeakReport {
  std::uint64_t seq = 0;        // 1, 2, ... per report
  std::int64_t wall_ns = 0;     // CLOCK_REALTIME of the report
  std::uint32_t state_mask = 0; // watched states
  std::uint64_t min_age_ns = 0;
  std::size_t total = 0;
  std::vector<LeakGroup> groups; // worst first
};

// The sockets stuck for at least `min_age_ns` at `now_ns`, grouped by
// process and state: most sockets first, then the oldest, then pid. Within
// a group, oldest first.
// `keep`, when set, chooses the sockets to consider (user-side filters).
LeakReport build_report(
    const LeakTracker &tracker, std::uint64_t now_ns, std::uint64_t min_age_ns,
    const std::function<bool(const StuckSocket &)> &keep = {});

// "pid 4242 (java) holds 37 sockets in CLOSE_WAIT, oldest 2h13m, peers
// 198.18.0.5:5432 (35), 198.18.0.6:5432 (2)" then one line per socket.
void format_leaks_table(Buffer &out, const LeakReport &report);
// One {"event":"stuck",...} line per socket (issue 4's contract).
// names: cgroup id -> path and container for the cgroup fields; nullptr
// prints ids only.
void format_leaks_json(Buffer &out, const LeakReport &report,
                       CgroupNames *names = nullptr);
void format_leaks_csv_header(Buffer &out);
void format_leaks_csv(Buffer &out, const LeakReport &report,
                      CgroupNames *names = nullptr);

} // namespace tcptrail
