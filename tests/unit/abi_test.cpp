// The BPF/user ABI: every size and key offset of include/tcptrail/events.h.
// A change here is an ABI change: update the BPF side and decode together.
#include <cstddef>
#include <type_traits>

#include <gtest/gtest.h>

#include "tcptrail/events.h"

namespace {

static_assert(sizeof(tt_header) == 24);
static_assert(offsetof(tt_header, kind) == 0);
static_assert(offsetof(tt_header, size) == 2);
static_assert(offsetof(tt_header, cpu) == 4);
static_assert(offsetof(tt_header, ts_ns) == 8);
static_assert(offsetof(tt_header, cookie) == 16);

static_assert(sizeof(tt_sock) == 96);
static_assert(offsetof(tt_sock, laddr) == 0);
static_assert(offsetof(tt_sock, raddr) == 16);
static_assert(offsetof(tt_sock, lport) == 32);
static_assert(offsetof(tt_sock, rport) == 34);
static_assert(offsetof(tt_sock, af) == 36);
static_assert(offsetof(tt_sock, netns) == 40);
static_assert(offsetof(tt_sock, pid) == 44);
static_assert(offsetof(tt_sock, cpu_pid) == 48);
static_assert(offsetof(tt_sock, comm) == 56);
static_assert(offsetof(tt_sock, cpu_comm) == 72);
static_assert(offsetof(tt_sock, cgroup_id) == 88);
static_assert(sizeof(tt_sock::comm) == TT_COMM_LEN);
static_assert(sizeof(tt_sock::laddr) == TT_ADDR_LEN);

static_assert(sizeof(tt_conn_step) == 24);
static_assert(offsetof(tt_conn_step, ts_ns) == 0);
static_assert(offsetof(tt_conn_step, snd_una) == 8);
static_assert(offsetof(tt_conn_step, old_state) == 20);
static_assert(offsetof(tt_conn_step, detail) == 23);

static_assert(sizeof(tt_conn_event) == 312);
static_assert(offsetof(tt_conn_event, sk) == 24);
static_assert(offsetof(tt_conn_event, bytes_acked) == 120);
static_assert(offsetof(tt_conn_event, isn_local) == 136);
static_assert(offsetof(tt_conn_event, accepted) == 148);
static_assert(offsetof(tt_conn_event, error) == 152);
static_assert(offsetof(tt_conn_event, n_steps) == 158);
static_assert(offsetof(tt_conn_event, conn_flags) == 161);
static_assert(offsetof(tt_conn_event, steps) == 168);
static_assert(TT_CONN_MAX_STEPS == 6);

static_assert(sizeof(tt_state_event) == 176);
static_assert(offsetof(tt_state_event, hdr) == 0);
static_assert(offsetof(tt_state_event, sk) == 24);
static_assert(offsetof(tt_state_event, old_state_ns) == 120);
static_assert(offsetof(tt_state_event, bytes_acked) == 128);
static_assert(offsetof(tt_state_event, bytes_received) == 136);
static_assert(offsetof(tt_state_event, snd_una) == 144);
static_assert(offsetof(tt_state_event, snd_nxt) == 148);
static_assert(offsetof(tt_state_event, rcv_nxt) == 152);
static_assert(offsetof(tt_state_event, isn_local) == 156);
static_assert(offsetof(tt_state_event, isn_remote) == 160);
static_assert(offsetof(tt_state_event, total_retrans) == 164);
static_assert(offsetof(tt_state_event, error) == 168);
static_assert(offsetof(tt_state_event, old_state) == 170);
static_assert(offsetof(tt_state_event, new_state) == 171);
static_assert(offsetof(tt_state_event, flags) == 172);
static_assert(offsetof(tt_state_event, detail) == 173);
static_assert(offsetof(tt_state_event, stored) == 174);

static_assert(sizeof(tt_seg_event) == 152);
static_assert(offsetof(tt_seg_event, hdr) == 0);
static_assert(offsetof(tt_seg_event, sk) == 24);
static_assert(offsetof(tt_seg_event, seq) == 120);
static_assert(offsetof(tt_seg_event, snd_una) == 124);
static_assert(offsetof(tt_seg_event, snd_nxt) == 128);
static_assert(offsetof(tt_seg_event, rcv_nxt) == 132);
static_assert(offsetof(tt_seg_event, isn_local) == 136);
static_assert(offsetof(tt_seg_event, isn_remote) == 140);
static_assert(offsetof(tt_seg_event, state) == 144);
static_assert(offsetof(tt_seg_event, flags) == 145);
static_assert(offsetof(tt_seg_event, what) == 146);
static_assert(offsetof(tt_seg_event, stored) == 147);
static_assert(offsetof(tt_seg_event, reason) == 148);

// Batched mode: the flush program's mark, and the batch it follows.
static_assert(sizeof(tt_flush_event) == 32);
static_assert(offsetof(tt_flush_event, hdr) == 0);
static_assert(offsetof(tt_flush_event, records) == 24);
static_assert(TT_STAGE_RECORDS * sizeof(tt_state_event) <= 0xffff);

// Filter table entries in rodata (cfg_laddrs, cfg_raddrs).
static_assert(sizeof(tt_cidr) == 20);
static_assert(offsetof(tt_cidr, af) == 0);
static_assert(offsetof(tt_cidr, prefix_len) == 1);
static_assert(offsetof(tt_cidr, addr) == 4);

// Records are copied with memcpy and must not depend on a constructor.
static_assert(std::is_trivially_copyable_v<tt_header>);
static_assert(std::is_trivially_copyable_v<tt_state_event>);
static_assert(std::is_trivially_copyable_v<tt_seg_event>);
static_assert(std::is_standard_layout_v<tt_state_event>);
static_assert(std::is_standard_layout_v<tt_seg_event>);
static_assert(std::is_trivially_copyable_v<tt_flush_event>);

// Every flag fits the __u8 flags fields, and the sizes fit hdr.size.
static_assert(TT_F_ORPHAN <= 0xff);
static_assert(sizeof(tt_state_event) <= 0xffff);

TEST(AbiTest, AlignmentIsEightBytes) {
  // The ring buffer hands out 8-byte aligned records; no field may need more.
  EXPECT_EQ(alignof(tt_header), 8u);
  EXPECT_EQ(alignof(tt_state_event), 8u);
  EXPECT_EQ(alignof(tt_seg_event), 8u);
  EXPECT_EQ(sizeof(tt_state_event) % 8, 0u);
  EXPECT_EQ(sizeof(tt_seg_event) % 8, 0u);
}

TEST(AbiTest, KindsAreDistinctAndBounded) {
  EXPECT_NE(TT_KIND_STATE, TT_KIND_RETRANSMIT);
  EXPECT_NE(TT_KIND_RETRANSMIT, TT_KIND_RESET);
  EXPECT_NE(TT_KIND_RESET, TT_KIND_CONN);
  EXPECT_NE(TT_KIND_CONN, TT_KIND_FLUSH);
  EXPECT_EQ(TT_KIND_MAX, TT_KIND_FLUSH);
}

TEST(AbiTest, FlagsAreDistinctBits) {
  const unsigned flags[] = {TT_F_OLD_TS,   TT_F_ISN_LOCAL, TT_F_ISN_REMOTE,
                            TT_F_INFERRED, TT_F_ACTIVE,    TT_F_PASSIVE,
                            TT_F_OWNER,    TT_F_ORPHAN};
  unsigned seen = 0;
  for (unsigned f : flags) {
    EXPECT_EQ(f & (f - 1), 0u) << f << " is not a single bit";
    EXPECT_EQ(seen & f, 0u) << f << " is used twice";
    seen |= f;
  }
}

} // namespace

// tcptrail serve: the per-CPU counters, summed by user space as __u64 words.
static_assert(sizeof(tt_serve_stats) == 4928);
static_assert(sizeof(tt_serve_stats) % 8 == 0);
static_assert(offsetof(tt_serve_stats, transitions) == 0);
static_assert(offsetof(tt_serve_stats, ends) == 2048);
static_assert(offsetof(tt_serve_stats, segs) == 2240);
static_assert(offsetof(tt_serve_stats, hist_sum_ns) == 2304);
static_assert(offsetof(tt_serve_stats, hist) == 2368);
