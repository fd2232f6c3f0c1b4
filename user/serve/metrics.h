// `tcptrail serve`: what one scrape exposes, built from the kernel's summed
// counters (tt_serve_stats), the sockets enumerated now and tcptrail's own
// health. Pure logic, no libbpf and no HTTP: the command (commands/serve.cpp)
// gathers a ServeSample, build_families() turns it into Prometheus metric
// families that prometheus-cpp serializes.
//
// Labels are bounded: from/to (TCP states), role, end, kind, state, comm,
// lport (listening ports only; a CLOSE_WAIT socket on any other local port is
// lport="ephemeral"), container (owners in containers only), program.
// Never pids, addresses or four-tuples. Each
// labelled per-scrape family keeps at most SeriesLimits::max_series series:
// the groups with the most sockets win, the rest are added up into one series
// whose labels are all "other", and every socket so folded is counted in
// tcptrail_series_folded_samples_total.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "snapshot/snapshot.h"
#include "tcptrail/events.h"

namespace tcptrail {

// TcpExt counters of /proc/net/netstat that serve exposes.
struct ListenCounters {
  std::uint64_t overflows = 0; // ListenOverflows
  std::uint64_t drops = 0;     // ListenDrops
};
// Parses /proc/net/netstat's text; nullopt when the TcpExt lines or the
// fields are missing or malformed.
std::optional<ListenCounters> parse_netstat(const std::string &text);

struct ProgramRun {
  std::string name;
  std::uint64_t run_time_ns = 0;
  std::uint64_t run_cnt = 0;
};

struct ServeSample {
  tt_serve_stats kernel{};        // every CPU's counters added up
  bool sockets_ok = false;        // the enumeration below succeeded
  std::vector<SocketRow> sockets; // TCP sockets now, with owners
  // Sockets left out of `sockets` by keep_gauge_rows(), by state: they
  // count in tcptrail_sockets only.
  std::uint64_t counted_only[TT_SERVE_STATES] = {};
  // Owners' cgroup ids -> container ids, for the sockets above whose owner
  // runs in a container (user/cgroup.h): their groups get a `container`
  // label.
  std::map<std::uint64_t, std::string> containers;
  std::optional<ListenCounters> listen;
  std::uint64_t events_lost =
      0;                  // ring reservations failed + nested runs skipped
  bool bpf_stats = false; // kernel.bpf_stats_enabled is on
  std::vector<ProgramRun> programs;
  std::uint64_t enumerate_errors = 0; // enumerations that failed so far
  double collect_seconds = 0;         // time taken to gather this sample
};

struct SeriesLimits {
  std::size_t max_series = 1000; // per labelled per-scrape family, >= 1
};

// Label values of one per-scrape group.
struct GroupKey {
  std::string comm;  // owner's comm, escaped; "unknown" without an owner
  std::string lport; // a listening port, or "ephemeral"
  // The owner's container id; empty (and no `container` label) for an
  // owner outside containers.
  std::string container;
  bool operator<(const GroupKey &o) const {
    if (comm != o.comm)
      return comm < o.comm;
    return container != o.container ? container < o.container : lport < o.lport;
  }
};

// What one per-scrape group adds up: sockets (the group's weight when
// folding), the oldest age, and for listeners their queues.
struct GroupValue {
  std::uint64_t sockets = 0;
  std::uint64_t oldest_ns = 0; // CLOSE_WAIT: the oldest known age
  bool age_known = false;
  std::uint64_t accept_len = 0; // listeners: accept queue now
  std::uint64_t accept_max = 0; // listeners: its limit (backlog)
  std::uint64_t syn_len = 0;    // listeners: request sockets (SYN queue)
};

// Keeps the `max` groups with the most sockets (ties: by key) and adds the
// others up into one group {other, other}, so that at most `max` remain;
// returns the number of sockets folded.
std::uint64_t fold_groups(std::map<GroupKey, GroupValue> &groups,
                          std::size_t max);

// Moves the rows the labelled gauges need (LISTEN, CLOSE_WAIT, request
// sockets) into sample.sockets and only counts the others (TIME_WAIT
// after a storm: tens of thousands) in sample.counted_only.
void keep_gauge_rows(ServeSample &sample, std::vector<SocketRow> &&rows);

// Builds every family of one scrape. `folded_total` is the running count of
// folded samples (cumulative across scrapes: a counter); this call adds to it.
std::vector<prometheus::MetricFamily>
build_families(const ServeSample &sample, const SeriesLimits &limits,
               std::uint64_t &folded_total);

// The upper bounds (seconds) of the exposed histogram buckets: 2^(b+1) ns for
// b in [kFirstBucket, kLastBucket]; faster observations fall in the first,
// slower ones only in +Inf.
inline constexpr int kFirstBucket = 9; // le 1.024 us
inline constexpr int kLastBucket = 40; // le ~2199 s
double bucket_upper_seconds(int b);

} // namespace tcptrail
