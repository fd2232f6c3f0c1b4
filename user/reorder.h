// Reorder: puts batched records back in time order.
//
// In batched mode (TracerConfig::batch) each CPU stages its state records and
// sends them TT_STAGE_RECORDS at a time, while segment records (and a state
// record made while the stage was busy) go to the ring at once. So the ring
// holds every CPU's records late and interleaved, and one socket's records,
// made on two CPUs, may arrive in the wrong order. Reorder keeps them and
// hands them on oldest first, each once no older record can still come: the
// flush program's marks (tt_flush_event) say, per CPU, up to which time its
// records are all in. Pure logic; the Tracer feeds it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "tcptrail/events.h"

namespace tcptrail {

class Reorder {
public:
  using Item = std::variant<tt_state_event, tt_seg_event>;

  // cpus: the number of possible CPUs (marks for others are ignored).
  explicit Reorder(std::size_t cpus);

  void push(const Item &item);
  // Every record made on `cpu` before ts_ns has been pushed. Marks a CPU
  // online.
  void mark(std::uint32_t cpu, std::uint64_t ts_ns);
  // `cpu` cannot run the flush program (offline): it makes no records and
  // holds nothing back until it marks again.
  void offline(std::uint32_t cpu);

  // Hands on, oldest first, every record older than all online CPUs' latest
  // marks. Returns how many.
  template <typename Fn> std::size_t release(Fn &&fn) {
    return release_upto(watermark(), fn);
  }
  // Hands on everything, oldest first (at the end, nothing more can come).
  template <typename Fn> std::size_t release_all(Fn &&fn) {
    return release_upto(UINT64_MAX, fn);
  }

  std::size_t pending() const { return heap_.size(); }
  std::size_t cpus() const { return marks_.size(); }
  bool is_online(std::size_t cpu) const {
    return cpu < online_.size() && online_[cpu];
  }
  // Records that came older than a record already handed on: a mark's
  // promise broken (never expected; counted so that tests can tell).
  std::uint64_t late() const { return late_; }
  // The time up to which records are complete: the oldest online CPU mark.
  std::uint64_t watermark() const;

private:
  struct Entry {
    std::uint64_t ts;
    std::uint64_t seq; // arrival order, for records with equal times
    Item item;
  };
  static bool later(const Entry &a, const Entry &b) {
    return a.ts != b.ts ? a.ts > b.ts : a.seq > b.seq;
  }
  void pop(Entry &out);
  void shrink_if_idle();

  template <typename Fn> std::size_t release_upto(std::uint64_t upto, Fn &fn) {
    std::size_t n = 0;
    Entry e;
    while (!heap_.empty() && heap_.front().ts < upto) {
      pop(e);
      released_ = e.ts;
      std::visit(fn, e.item);
      ++n;
    }
    shrink_if_idle();
    return n;
  }

  std::vector<Entry> heap_; // min-heap on (ts, seq)
  std::vector<std::uint64_t> marks_;
  std::vector<bool> online_;
  std::uint64_t seq_ = 0;
  std::uint64_t released_ = 0; // time of the latest record handed on
  std::uint64_t late_ = 0;
};

} // namespace tcptrail
