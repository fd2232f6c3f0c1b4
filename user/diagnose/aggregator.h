// DiagnoseAggregator: turns a run's events (and the namespace counters read
// before and after it) into a Report of verdicts. Pure logic: no I/O, fed
// with tt_state_event / tt_seg_event, so every rule is unit-testable with
// synthetic events. Memory is bounded by DiagnoseConfig; what did not fit is
// counted in Report::dropped.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "diagnose/netinfo.h"
#include "diagnose/report.h"
#include "tcptrail/events.h"

namespace tcptrail::diagnose {

struct DiagnoseConfig {
  // Bounds on tracked state.
  std::size_t max_connections = 65536; // per per-socket table
  std::size_t max_endpoints = 4096;    // per problem kind
  std::size_t max_processes = 1024;    // per problem kind
  std::size_t max_listeners = 1024;
  std::size_t top = 5;      // endpoints/processes/sockets named as evidence
  std::size_t examples = 3; // four-tuples per problem

  // Rules (see docs/diagnose-schema.md, "Verdict rules").
  std::uint64_t min_refused = 1;
  std::uint64_t min_timeouts = 1;
  std::uint64_t min_slow_connects = 1; // connects needing SYN retransmits
  std::uint64_t min_resets = 1;        // per direction
  std::uint64_t min_closed_port_rsts = 1;
  std::uint64_t min_retransmits = 5;   // data retransmits ...
  double min_retransmit_rate = 0.01;   // ... and Tcp RetransSegs/OutSegs
  std::uint64_t min_synack_retransmits = 3;
  double time_wait_port_fraction = 0.2; // of ip_local_port_range
  double time_wait_critical_fraction = 0.8;
  std::uint64_t time_wait_len_ns = 60'000'000'000ULL; // TCP_TIMEWAIT_LEN
  std::uint64_t close_wait_min_age_ns = 1'000'000'000ULL;
  std::uint32_t default_port_range = 28232; // 32768-60999
};

using OwnerLookup = std::function<std::map<std::uint64_t, SocketOwner>(
    const std::set<std::uint64_t> &)>;

class DiagnoseAggregator {
public:
  explicit DiagnoseAggregator(DiagnoseConfig cfg = {});

  void on_state(const tt_state_event &ev);
  void on_segment(const tt_seg_event &ev);
  void on_lost(std::uint64_t n) { lost_ += n; }
  void set_storage_fail(std::uint64_t n) { storage_fail_ = n; }
  void set_netns_filter(std::optional<std::uint64_t> netns) { netns_ = netns; }

  // The namespace read before and after the run (either may be missing).
  void set_start(NetSnapshot snap) { start_ = std::move(snap); }
  void set_end(NetSnapshot snap) { end_ = std::move(snap); }
  // Resolves socket inodes to processes (pre-existing CLOSE_WAIT, listeners).
  void set_owner_lookup(OwnerLookup f) { owners_ = std::move(f); }

  std::uint64_t events() const { return events_; }
  // Problems visible from the events alone, for the progress line.
  std::size_t problems_so_far() const;

  Report report(std::uint64_t start_ns, std::uint64_t end_ns) const;

  // Bounded counter of keys with a label; what does not fit is dropped.
  struct Item {
    std::uint64_t count = 0;
    std::string label;
    std::uint32_t pid = 0;
  };
  struct Tally {
    std::unordered_map<std::string, Item> items;
    std::uint64_t dropped = 0;
  };
  // Everything counted for one problem kind.
  struct KindStats {
    std::uint64_t count = 0;
    Tally endpoints;
    Tally processes;
    std::vector<std::string> examples;
  };
  struct ConnInfo {
    std::string tuple;
    std::uint32_t pid = 0;
    std::string comm;
    std::uint64_t count = 0;
    std::uint64_t since_ns = 0;
    std::uint64_t cgroup_id = 0;
  };

private:
  void count_kind(KindStats &k, std::uint8_t af, const std::uint8_t (&raddr)[16],
                  std::uint16_t rport, const tt_sock &sk, std::uint64_t n = 1);

  DiagnoseConfig cfg_;
  std::optional<std::uint64_t> netns_;
  std::uint64_t events_ = 0;
  std::uint64_t lost_ = 0;
  std::uint64_t storage_fail_ = 0;
  Totals totals_;
  std::array<std::array<std::uint64_t, 16>, 16> pairs_{};

  KindStats refused_, timeouts_, connect_errors_, slow_connects_, reset_rcvd_,
      reset_sent_, closed_port_, retrans_, time_wait_;
  std::map<int, std::uint64_t> connect_errnos_;
  std::uint64_t syn_retransmits_ = 0;

  std::unordered_map<std::uint64_t, std::uint64_t> syn_retrans_by_cookie_;
  std::unordered_map<std::uint64_t, ConnInfo> retrans_by_conn_;
  std::unordered_map<std::uint64_t, ConnInfo> close_wait_;
  std::uint64_t close_wait_entered_ = 0;
  // Sockets that just went to CLOSE without a FIN exchange: an RST sent
  // right after (state CLOSE) is an abort of that connection.
  std::unordered_map<std::uint64_t, std::uint8_t> aborted_;
  std::deque<std::uint64_t> aborted_order_;

  struct ListenerStats {
    std::string listener;
    std::uint8_t af = 0;
    std::uint16_t lport = 0;
    std::uint32_t netns = 0;
    std::uint32_t pid = 0;
    std::string comm;
    std::uint64_t synack = 0;
    std::uint64_t cgroup_id = 0;
  };
  std::unordered_map<std::string, ListenerStats> listeners_;
  // Owner of each listening port seen entering LISTEN, by "netns/port".
  std::unordered_map<std::string, SocketOwner> listen_owners_;
  std::uint64_t synack_retransmits_ = 0;
  Dropped dropped_;

  std::array<LogLinearHistogram, 16> state_hist_;
  LogLinearHistogram connect_hist_;

  std::optional<NetSnapshot> start_, end_;
  OwnerLookup owners_;
};

} // namespace tcptrail::diagnose
