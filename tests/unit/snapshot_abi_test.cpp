// The iterator records of include/tcptrail/events.h (bpf/iter.bpf.c): sizes
// and key offsets. A change here is an ABI change.
#include <cstddef>

#include <gtest/gtest.h>

#include "tcptrail/events.h"

namespace {

static_assert(sizeof(tt_iter_sock) == 160);
static_assert(offsetof(tt_iter_sock, hdr) == 0);
static_assert(offsetof(tt_iter_sock, laddr) == 24);
static_assert(offsetof(tt_iter_sock, raddr) == 40);
static_assert(offsetof(tt_iter_sock, lport) == 56);
static_assert(offsetof(tt_iter_sock, rport) == 58);
static_assert(offsetof(tt_iter_sock, af) == 60);
static_assert(offsetof(tt_iter_sock, state) == 61);
static_assert(offsetof(tt_iter_sock, sk_kind) == 62);
static_assert(offsetof(tt_iter_sock, flags) == 63);
static_assert(offsetof(tt_iter_sock, netns) == 64);
static_assert(offsetof(tt_iter_sock, pid) == 68);
static_assert(offsetof(tt_iter_sock, ino) == 72);
static_assert(offsetof(tt_iter_sock, rx_queue) == 80);
static_assert(offsetof(tt_iter_sock, tx_queue) == 84);
static_assert(offsetof(tt_iter_sock, snd_una) == 88);
static_assert(offsetof(tt_iter_sock, snd_nxt) == 92);
static_assert(offsetof(tt_iter_sock, rcv_nxt) == 96);
static_assert(offsetof(tt_iter_sock, rcv_tstamp) == 100);
static_assert(offsetof(tt_iter_sock, uid) == 104);
static_assert(offsetof(tt_iter_sock, hz) == 108);
static_assert(offsetof(tt_iter_sock, state_ts) == 112);
static_assert(offsetof(tt_iter_sock, jiffies) == 120);
static_assert(offsetof(tt_iter_sock, mstamp_ns) == 128);
static_assert(offsetof(tt_iter_sock, comm) == 136);
static_assert(offsetof(tt_iter_sock, cgroup_id) == 152);

static_assert(sizeof(tt_iter_file) == 72);
static_assert(offsetof(tt_iter_file, hdr) == 0);
static_assert(offsetof(tt_iter_file, pid) == 24);
static_assert(offsetof(tt_iter_file, fd) == 28);
static_assert(offsetof(tt_iter_file, ino) == 32);
static_assert(offsetof(tt_iter_file, netns) == 40);
static_assert(offsetof(tt_iter_file, comm) == 48);
static_assert(offsetof(tt_iter_file, cgroup_id) == 64);

TEST(SnapshotAbi, KindsDoNotCollideWithRingRecords) {
  EXPECT_GT(TT_KIND_ITER_SOCK, TT_KIND_MAX);
  EXPECT_GT(TT_KIND_ITER_FILE, TT_KIND_MAX);
  EXPECT_NE(TT_KIND_ITER_SOCK, TT_KIND_ITER_FILE);
}

} // namespace
