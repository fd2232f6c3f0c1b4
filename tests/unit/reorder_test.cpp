// Reorder: batched records back in time order, released only behind every
// online CPU's flush mark.
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "reorder.h"

namespace tcptrail {
namespace {

tt_state_event state_at(std::uint64_t ts, std::uint32_t cpu = 0) {
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.cpu = cpu;
  ev.hdr.ts_ns = ts;
  return ev;
}

tt_seg_event reset_at(std::uint64_t ts, std::uint32_t cpu = 0) {
  tt_seg_event ev{};
  ev.hdr.kind = TT_KIND_RESET;
  ev.hdr.size = sizeof(ev);
  ev.hdr.cpu = cpu;
  ev.hdr.ts_ns = ts;
  return ev;
}

// What release() hands on: times, and 'S' (state) or 'R' (reset) each.
struct Collected {
  std::vector<std::uint64_t> ts;
  std::vector<char> kind;
  void operator()(const tt_state_event &ev) {
    ts.push_back(ev.hdr.ts_ns);
    kind.push_back('S');
  }
  void operator()(const tt_seg_event &ev) {
    ts.push_back(ev.hdr.ts_ns);
    kind.push_back('R');
  }
};

using Ts = std::vector<std::uint64_t>;

TEST(ReorderTest, NothingLeavesBeforeEveryCpuHasMarked) {
  Reorder r(2);
  r.push(state_at(10, 0));
  r.push(state_at(5, 1));
  Collected out;
  EXPECT_EQ(r.release(out), 0u);
  r.mark(0, 100);
  EXPECT_EQ(r.release(out), 0u) << "CPU 1 has not marked yet";
  r.mark(1, 7);
  EXPECT_EQ(r.release(out), 1u);
  EXPECT_EQ(out.ts, Ts{5});
  EXPECT_EQ(r.pending(), 1u);
  r.mark(1, 50);
  r.release(out);
  EXPECT_EQ(out.ts, (Ts{5, 10}));
  EXPECT_EQ(r.pending(), 0u);
}

TEST(ReorderTest, InterleavesCpusByTime) {
  // One connection across two CPUs: each CPU's batch arrives whole, later
  // than the other's newer records.
  Reorder r(2);
  for (std::uint64_t ts : {2, 4, 6, 8})
    r.push(state_at(ts, 1));
  r.push(reset_at(5, 0)); // went straight to the ring
  for (std::uint64_t ts : {1, 3, 7})
    r.push(state_at(ts, 0));
  r.mark(0, 9);
  r.mark(1, 9);
  Collected out;
  EXPECT_EQ(r.release(out), 8u);
  EXPECT_EQ(out.ts, (Ts{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(out.kind[4], 'R');
  EXPECT_EQ(r.late(), 0u);
}

TEST(ReorderTest, ARecordAtTheMarkWaitsForTheNextOne) {
  Reorder r(1);
  r.push(state_at(100));
  r.mark(0, 100);
  Collected out;
  EXPECT_EQ(r.release(out), 0u) << "only records older than the mark leave";
  r.mark(0, 101);
  EXPECT_EQ(r.release(out), 1u);
}

TEST(ReorderTest, EqualTimesKeepArrivalOrder) {
  Reorder r(1);
  r.push(state_at(7));
  r.push(reset_at(7));
  r.push(state_at(7));
  r.mark(0, 8);
  Collected out;
  r.release(out);
  EXPECT_EQ(out.kind, (std::vector<char>{'S', 'R', 'S'}));
}

TEST(ReorderTest, MarksNeverGoBack) {
  Reorder r(1);
  r.mark(0, 50);
  r.mark(0, 20); // an older mark read later changes nothing
  EXPECT_EQ(r.watermark(), 50u);
}

TEST(ReorderTest, OfflineCpusHoldNothingBack) {
  Reorder r(3);
  r.push(state_at(10, 0));
  r.mark(0, 20);
  r.mark(1, 30);
  Collected out;
  EXPECT_EQ(r.release(out), 0u);
  r.offline(2);
  EXPECT_FALSE(r.is_online(2));
  EXPECT_EQ(r.release(out), 1u);
  // Back online: its mark counts again.
  r.mark(2, 15);
  EXPECT_TRUE(r.is_online(2));
  EXPECT_EQ(r.watermark(), 15u);
}

TEST(ReorderTest, MarksOfUnknownCpusAreIgnored) {
  Reorder r(1);
  r.mark(7, 1000);
  r.offline(7);
  EXPECT_EQ(r.watermark(), 0u);
  EXPECT_EQ(r.cpus(), 1u);
}

TEST(ReorderTest, LateRecordsAreCountedAndStillDelivered) {
  Reorder r(1);
  r.push(state_at(10));
  r.mark(0, 20);
  Collected out;
  r.release(out);
  r.push(state_at(5)); // older than what already left: a broken promise
  EXPECT_EQ(r.late(), 1u);
  EXPECT_EQ(r.release(out), 1u);
  EXPECT_EQ(out.ts, (Ts{10, 5}));
}

TEST(ReorderTest, ReleaseAllEmptiesInOrder) {
  Reorder r(2);
  for (std::uint64_t ts : {9, 3, 6})
    r.push(state_at(ts, 1));
  Collected out;
  EXPECT_EQ(r.release_all(out), 3u);
  EXPECT_EQ(out.ts, (Ts{3, 6, 9}));
  EXPECT_EQ(r.pending(), 0u);
}

TEST(ReorderTest, ManyRecordsComeOutSorted) {
  // Two CPUs, each in order, pushed in batches of 16 alternately, with a
  // mark after each pair of batches: the output is one sorted stream.
  Reorder r(2);
  Collected out;
  std::uint64_t next[2] = {1, 2};
  for (int round = 0; round < 100; ++round) {
    for (std::uint32_t cpu = 0; cpu < 2; ++cpu)
      for (int i = 0; i < 16; ++i, next[cpu] += 2)
        r.push(state_at(next[cpu], cpu));
    r.mark(0, next[0]);
    r.mark(1, next[1]);
    r.release(out);
  }
  r.release_all(out);
  ASSERT_EQ(out.ts.size(), 3200u);
  for (std::size_t i = 0; i < out.ts.size(); ++i)
    EXPECT_EQ(out.ts[i], i + 1);
}

} // namespace
} // namespace tcptrail
