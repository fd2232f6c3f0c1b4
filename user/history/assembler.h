// HistoryAssembler: turns the event stream into one ConnectionRecord per
// TCP connection (`tcptrail history`). Pure logic, no I/O, single-threaded.
//
// Use:
//   HistoryAssembler hist;                    // max_conns 2^20, grace 200 ms
//   for each decoded record:
//     hist.on_state(ev) / hist.on_segment(ev);
//   periodically (each poll):
//     hist.advance(now_ns, finished);          // print `finished`
//   every --interval (netstat-like refresh):
//     hist.snapshot_open(open);                // end "open", kept tracked
//   on exit, after draining the ring buffer:
//     hist.flush_all(rest);                    // finished, then still open
//
// Identity is the socket cookie; the four-tuple is an attribute taken from
// the events (lport is 0 at CLOSE -> SYN_SENT). A connection ends at CLOSE or
// at the inferred TIME_WAIT (the full socket is gone then), a listener at
// LISTEN -> CLOSE. An ended connection is held for `grace_ns` (in event ts
// time) before advance() emits it, so that an event delivered late by
// another CPU still lands in its record; steps are ordered by ts_ns, not by
// arrival.
//
// Bounded: at most max_conns connections (open + waiting for their grace
// period) are tracked. A new connection beyond that evicts the least
// recently updated open connection, whose record is lost and counted by
// evicted(); if every tracked connection has ended, the oldest ended one is
// emitted early by the next advance() instead (not lost). Every event costs
// O(1): an open-addressing hash index on the cookie, a pool of fixed-size
// entries, intrusive LRU / ended lists.
//
// Memory: one entry is sizeof(Conn) = conn_bytes() (232 bytes, steps
// inline, no allocation per connection) plus 4 bytes per index slot at a
// load factor of 3/8..3/4 (5.3..10.7 bytes per connection), allocated in
// chunks of 256 entries: <= 243 bytes per tracked connection at scale, for
// any path of up to kMaxSteps steps. memory_bytes() reports what is
// allocated; tests/unit/history_assembler_test.cpp checks the bound.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "history/record.h"
#include "tcptrail/events.h"

namespace tcptrail {

class HistoryAssembler {
public:
  static constexpr std::size_t kDefaultMaxConns = std::size_t{1} << 20;
  static constexpr std::uint64_t kDefaultGraceNs = 200'000'000; // 200 ms
  // Steps kept per connection: every path the kernel takes for one
  // connection fits (e.g. SYN_SENT ESTABLISHED FIN_WAIT1 FIN_WAIT2
  // TIME_WAIT). Beyond that, the second step is dropped and counted
  // (ConnectionRecord::steps_dropped).
  static constexpr std::size_t kMaxSteps = 5;

  explicit HistoryAssembler(std::size_t max_conns = kDefaultMaxConns,
                            std::uint64_t grace_ns = kDefaultGraceNs);
  ~HistoryAssembler();
  HistoryAssembler(HistoryAssembler &&) noexcept;
  HistoryAssembler &operator=(HistoryAssembler &&) noexcept;
  HistoryAssembler(const HistoryAssembler &) = delete;
  HistoryAssembler &operator=(const HistoryAssembler &) = delete;

  // A state transition (TT_KIND_STATE). Creates the connection on its first
  // event. A record the kernel made without socket storage (stored == 0)
  // is completed from the connection's earlier ones first: role, ISNs,
  // owner, the RST that ended it. A birth event (old state CLOSE) for a
  // cookie whose connection already ended, later than that end, starts a
  // new connection (a socket reused after tcp_disconnect); the ended one is
  // emitted by advance().
  void on_state(const tt_state_event &ev);
  // A retransmit or reset (TT_KIND_RETRANSMIT / TT_KIND_RESET). Counted on
  // its connection; dropped and counted by unmatched_segments() when the
  // cookie is not tracked (no state event seen for it).
  void on_segment(const tt_seg_event &ev);

  // A connection's path aggregated in the kernel (history mode, TT_KIND_CONN):
  // its steps go through on_state() in order, then the counters the record
  // carries (resets, dropped steps, a listener's accepted children) are set.
  // Once one has been seen, listeners' accepted counts come from the kernel
  // only: children are no longer counted here.
  void on_connection(const tt_conn_event &ev);
  // The counters now of a connection whose path is assembled here
  // (TT_CF_COUNTERS: a socket without storage), for its open record. An
  // untracked or ended cookie is ignored.
  void refresh(const tt_conn_event &ev);
  // The record of a connection still open (no TT_CF_ENDED), as
  // snapshot_open() would make it, without tracking it: for the kernel's dump
  // of open connections. Uses this assembler as scratch space.
  ConnectionRecord open_record(const tt_conn_event &ev);

  // Appends the connections that ended at least grace_ns before now_ns
  // (same clock as hdr.ts_ns), in the order they ended, and forgets them.
  void advance(std::uint64_t now_ns, std::vector<ConnectionRecord> &finished);
  // Appends a record (end Open) for every connection still open, ordered by
  // first step, without forgetting them.
  void snapshot_open(std::vector<ConnectionRecord> &out) const;
  // Sorts out[first..] as snapshot_open() orders open connections: by first
  // step, then cookie.
  static void order_open(std::vector<ConnectionRecord> &out, std::size_t first);
  // Appends everything, ended connections first (grace not waited for),
  // then the open ones (end Open), and forgets them all.
  void flush_all(std::vector<ConnectionRecord> &out);

  // Connections dropped, record lost, because max_conns were tracked.
  std::uint64_t evicted() const { return evicted_; }
  // Segment events whose cookie had no tracked connection.
  std::uint64_t unmatched_segments() const { return unmatched_segments_; }
  // Connections tracked now (open + ended, waiting for their grace period).
  std::size_t tracked() const { return count_; }
  // Bytes this object has allocated for tracking (pool, index, listener
  // map), excluding records waiting in the early-emit queue.
  std::size_t memory_bytes() const;
  // sizeof one pooled entry.
  static std::size_t conn_bytes();

private:
  struct Conn;
  static constexpr std::uint32_t kNone = 0xffffffffU;

  Conn &at(std::uint32_t idx) const;
  std::uint32_t find(std::uint64_t cookie) const;
  std::uint32_t create(std::uint64_t cookie);
  void release(std::uint32_t idx);
  void evict_one();

  void index_insert(std::uint32_t idx);
  void index_erase(std::uint64_t cookie);
  void index_grow();

  void list_unlink(std::uint32_t idx);
  void list_push_back(std::uint32_t idx, bool ended_list);
  void touch(std::uint32_t idx);

  static void complete_unstored(Conn &c, tt_state_event &ev);
  static void insert_step(Conn &c, const tt_state_event &ev);
  void count_accept(Conn &child);
  ConnectionRecord make_record(const Conn &c, bool open) const;
  // A cgroup id's index in cgroup_ids_ (Conn keeps 2 bytes, not 8).
  std::uint16_t cgroup_ref(std::uint64_t id);

  std::size_t max_conns_;
  std::uint64_t grace_ns_;

  std::vector<std::unique_ptr<Conn[]>> chunks_;
  std::uint32_t pool_used_ = 0; // entries ever handed out
  std::uint32_t free_head_ = kNone;
  std::size_t count_ = 0;

  std::vector<std::uint32_t> slots_; // open addressing, entry index or kNone

  // Open connections, least recently updated first.
  std::uint32_t lru_head_ = kNone, lru_tail_ = kNone;
  // Ended connections waiting for their grace period, in order of ending.
  std::uint32_t ended_head_ = kNone, ended_tail_ = kNone;

  // (netns << 16 | lport) -> tracked listener entry. With several listeners
  // on one port (SO_REUSEPORT), the most recent one gets the accepts.
  std::unordered_map<std::uint64_t, std::uint32_t> listeners_;

  std::vector<ConnectionRecord> ready_; // emitted early, by next advance()
  std::uint64_t evicted_ = 0;
  std::uint64_t unmatched_segments_ = 0;
  bool kernel_accepts_ = false; // on_connection() seen: see there
  // Owners' cgroup ids, interned: [0] is "unknown".
  std::vector<std::uint64_t> cgroup_ids_{0};
  std::unordered_map<std::uint64_t, std::uint16_t> cgroup_refs_;
};

} // namespace tcptrail
