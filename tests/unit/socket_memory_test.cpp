// SocketMemory: the records of sockets without storage (lazy mode), amended
// as bpf/state.bpf.c amends them with storage.
#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "socket_memory.h"
#include "tcp_state.h"

namespace tcptrail {
namespace {

constexpr std::uint64_t kCookie = 0x2001;
constexpr std::uint64_t kMs = 1'000'000;

std::uint8_t st(TcpState s) { return static_cast<std::uint8_t>(s); }

// A record as the state program sends it for a socket without storage: the
// on-CPU task, and the owner (TT_F_OWNER) only in process context.
tt_state_event record(std::uint64_t ts, TcpState from, TcpState to,
                      std::uint16_t lport, std::uint32_t cpu_pid,
                      const char *cpu_comm, std::uint64_t cookie = kCookie) {
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = ts;
  ev.hdr.cookie = cookie;
  ev.sk.af = 4;
  ev.sk.lport = lport;
  ev.sk.rport = 80;
  ev.sk.cpu_pid = cpu_pid;
  std::strncpy(ev.sk.cpu_comm, cpu_comm, TT_COMM_LEN - 1);
  ev.old_state = st(from);
  ev.new_state = st(to);
  const bool owner_context =
      (from == TcpState::Close && to == TcpState::SynSent) ||
      to == TcpState::Listen || to == TcpState::FinWait1 ||
      (from == TcpState::CloseWait && to == TcpState::LastAck);
  if (owner_context) {
    ev.sk.pid = cpu_pid;
    std::memcpy(ev.sk.comm, ev.sk.cpu_comm, TT_COMM_LEN);
    ev.flags |= TT_F_OWNER;
  }
  return ev;
}

tt_seg_event segment(std::uint16_t kind, std::uint8_t what, TcpState state,
                     std::uint16_t lport, std::uint64_t cookie = kCookie) {
  tt_seg_event ev{};
  ev.hdr.kind = kind;
  ev.hdr.size = sizeof(ev);
  ev.hdr.cookie = cookie;
  ev.sk.af = 4;
  ev.sk.lport = lport;
  ev.state = st(state);
  ev.what = what;
  return ev;
}

std::string comm(const char (&c)[TT_COMM_LEN]) {
  return std::string(c, strnlen(c, TT_COMM_LEN));
}

// Pid 42 (`comm`) connects at 1 ms; ESTABLISHED at 2 ms on `lport`.
void connect_client(SocketMemory &mem, std::uint16_t lport, const char *comm) {
  auto syn = record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 42, comm);
  mem.amend(syn);
  auto est = record(2 * kMs, TcpState::SynSent, TcpState::Established, lport, 0,
                    "swapper/0");
  mem.amend(est);
}

TEST(SocketMemory, ClientClosingFirstGetsWhatStorageWouldGive) {
  SocketMemory mem;
  auto syn = record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 42, "curl");
  mem.amend(syn);
  EXPECT_EQ(syn.flags, TT_F_OWNER | TT_F_ACTIVE);
  EXPECT_EQ(syn.sk.lport, 0); // the truth at CLOSE -> SYN_SENT

  auto est = record(3 * kMs, TcpState::SynSent, TcpState::Established, 40000, 0,
                    "swapper/0");
  est.snd_una = est.snd_nxt = 1001;
  est.rcv_nxt = 5001;
  mem.amend(est);
  EXPECT_EQ(est.old_state_ns, 2 * kMs);
  EXPECT_EQ(est.sk.pid, 42u);
  EXPECT_EQ(comm(est.sk.comm), "curl");
  EXPECT_EQ(comm(est.sk.cpu_comm), "swapper/0"); // the CPU's task stays
  EXPECT_EQ(est.isn_local, 1000u);
  EXPECT_EQ(est.isn_remote, 5000u);
  EXPECT_EQ(est.flags, TT_F_OLD_TS | TT_F_OWNER | TT_F_ACTIVE | TT_F_ISN_LOCAL |
                           TT_F_ISN_REMOTE);

  auto fin = record(10 * kMs, TcpState::Established, TcpState::FinWait1, 40000,
                    42, "curl");
  mem.amend(fin);
  EXPECT_EQ(fin.old_state_ns, 7 * kMs);
  auto fin2 = record(11 * kMs, TcpState::FinWait1, TcpState::FinWait2, 40000, 0,
                     "swapper/0");
  mem.amend(fin2);
  EXPECT_EQ(fin2.old_state_ns, 1 * kMs);
  EXPECT_EQ(mem.size(), 1u);

  // inet_put_port() zeroed the port; the kernel inferred TIME_WAIT.
  auto tw = record(12 * kMs, TcpState::FinWait2, TcpState::TimeWait, 0, 0,
                   "swapper/0");
  tw.flags |= TT_F_INFERRED;
  tw.detail = TT_DETAIL_TW;
  mem.amend(tw);
  EXPECT_EQ(tw.sk.lport, 40000);
  EXPECT_EQ(tw.old_state_ns, 1 * kMs);
  EXPECT_EQ(tw.new_state, st(TcpState::TimeWait));
  EXPECT_EQ(tw.detail, TT_DETAIL_TW);
  EXPECT_EQ(tw.sk.pid, 42u);
}

TEST(SocketMemory, AnAbortsRstAfterItsCloseStillHasTheOwner) {
  SocketMemory mem;
  connect_client(mem, 40006, "app");
  // close() with SO_LINGER {1, 0}: CLOSE first, then the RST.
  auto close =
      record(3 * kMs, TcpState::Established, TcpState::Close, 0, 9, "other");
  mem.amend(close);
  EXPECT_EQ(close.sk.pid, 42u);
  auto rst = segment(TT_KIND_RESET, TT_RESET_SENT, TcpState::Close, 0);
  mem.amend(rst);
  EXPECT_EQ(rst.sk.pid, 42u);
  EXPECT_EQ(comm(rst.sk.comm), "app");
  EXPECT_EQ(rst.sk.lport, 40006);
}

TEST(SocketMemory, ForgetsClosedSocketsOldestFirst) {
  SocketMemory mem(SocketMemory::kDefaultMaxSockets, 2);
  for (std::uint64_t cookie = 1; cookie <= 3; ++cookie) {
    auto syn =
        record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 42, "a", cookie);
    mem.amend(syn);
  }
  EXPECT_EQ(mem.size(), 3u);
  for (std::uint64_t cookie = 1; cookie <= 3; ++cookie) {
    auto refused = record(2 * kMs, TcpState::SynSent, TcpState::Close, 0, 0,
                          "swapper/0", cookie);
    mem.amend(refused);
  }
  EXPECT_EQ(mem.size(), 2u) << "the first closed is forgotten";
  auto rst = segment(TT_KIND_RESET, TT_RESET_SENT, TcpState::Close, 0, 1);
  mem.amend(rst);
  EXPECT_EQ(rst.sk.pid, 0u);
  rst = segment(TT_KIND_RESET, TT_RESET_SENT, TcpState::Close, 0, 3);
  mem.amend(rst);
  EXPECT_EQ(rst.sk.pid, 42u);
}

TEST(SocketMemory, RecordsOfSocketsWithStorageAreLeftAsTheyAre) {
  SocketMemory mem;
  auto syn = record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 42, "curl");
  syn.stored = 1;
  mem.amend(syn);
  auto est = record(3 * kMs, TcpState::SynSent, TcpState::Established, 40000, 0,
                    "swapper/0");
  est.stored = 1;
  const tt_state_event before = est;
  mem.amend(est);
  EXPECT_EQ(std::memcmp(&before, &est, sizeof(est)), 0);
  EXPECT_EQ(mem.size(), 0u);
}

TEST(SocketMemory, ResetReceivedExplainsTheClose) {
  SocketMemory mem;
  connect_client(mem, 40000, "curl");
  auto rst =
      segment(TT_KIND_RESET, TT_RESET_RECEIVED, TcpState::Established, 40000);
  mem.amend(rst);
  EXPECT_EQ(rst.sk.pid, 42u); // the owner, on the RST too
  EXPECT_EQ(rst.flags & TT_F_ACTIVE, TT_F_ACTIVE);
  auto close = record(3 * kMs, TcpState::Established, TcpState::Close, 0, 0,
                      "swapper/0");
  close.error = ECONNRESET;
  close.detail = TT_DETAIL_ERROR;
  mem.amend(close);
  EXPECT_EQ(close.detail, TT_DETAIL_RESET_RCVD);
  EXPECT_EQ(close.sk.lport, 40000);
  EXPECT_EQ(close.error, ECONNRESET);
}

TEST(SocketMemory, ResetSentUndoesTheTimewaitInference) {
  SocketMemory mem;
  connect_client(mem, 40001, "app");
  auto fin = record(3 * kMs, TcpState::Established, TcpState::FinWait1, 40001,
                    42, "app");
  mem.amend(fin);
  auto fin2 = record(4 * kMs, TcpState::FinWait1, TcpState::FinWait2, 40001, 0,
                     "swapper/0");
  mem.amend(fin2);
  auto rst = segment(TT_KIND_RESET, TT_RESET_SENT, TcpState::FinWait2, 40001);
  mem.amend(rst);
  auto close = record(5 * kMs, TcpState::FinWait2, TcpState::Close, 0, 0,
                      "swapper/0");
  close.detail = TT_DETAIL_ORPHAN_FIN_WAIT2;
  mem.amend(close);
  EXPECT_EQ(close.new_state, st(TcpState::Close));
  EXPECT_EQ(close.detail, TT_DETAIL_RESET_SENT);
  EXPECT_EQ(close.flags & TT_F_INFERRED, 0);
}

TEST(SocketMemory, SynRetransmitGivesTheIsnAndThePortOfATimeout) {
  SocketMemory mem;
  auto syn = record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 42, "curl");
  mem.amend(syn);
  auto retrans =
      segment(TT_KIND_RETRANSMIT, TT_RETRANS_SYN, TcpState::SynSent, 40002);
  retrans.seq = 777;
  mem.amend(retrans);
  EXPECT_EQ(retrans.isn_local, 777u);
  EXPECT_EQ(retrans.flags, TT_F_OWNER | TT_F_ACTIVE | TT_F_ISN_LOCAL);
  auto timeout =
      record(1001 * kMs, TcpState::SynSent, TcpState::Close, 0, 0, "swapper/0");
  timeout.error = ETIMEDOUT;
  timeout.detail = TT_DETAIL_ERROR;
  mem.amend(timeout);
  EXPECT_EQ(timeout.sk.lport, 40002);
  EXPECT_EQ(timeout.old_state_ns, 1000 * kMs);
  EXPECT_EQ(timeout.isn_local, 777u);
  EXPECT_EQ(timeout.detail, TT_DETAIL_ERROR);
}

TEST(SocketMemory, FirstSeenMidLifeIsTimedFromThen) {
  SocketMemory mem;
  auto cw = record(5 * kMs, TcpState::Established, TcpState::CloseWait, 8080, 0,
                   "swapper/0");
  mem.amend(cw);
  EXPECT_EQ(cw.flags & TT_F_OLD_TS, 0) << "the time in ESTABLISHED is unknown";
  EXPECT_EQ(cw.sk.pid, 0u);
  auto la = record(9 * kMs, TcpState::CloseWait, TcpState::LastAck, 8080, 7,
                   "server");
  mem.amend(la);
  EXPECT_EQ(la.old_state_ns, 4 * kMs);
  EXPECT_EQ(la.sk.pid, 7u);
  auto close =
      record(10 * kMs, TcpState::LastAck, TcpState::Close, 0, 0, "swapper/0");
  mem.amend(close);
  EXPECT_EQ(close.sk.pid, 7u);
  EXPECT_EQ(close.sk.lport, 8080);
}

TEST(SocketMemory, ChildOfAListenerWithoutStorageIsPassive) {
  SocketMemory mem;
  auto child = record(1 * kMs, TcpState::Listen, TcpState::SynRecv, 8080, 0,
                      "swapper/0");
  mem.amend(child);
  EXPECT_EQ(child.flags, TT_F_PASSIVE);
  auto est = record(2 * kMs, TcpState::SynRecv, TcpState::Established, 8080, 0,
                    "swapper/0");
  est.snd_una = est.snd_nxt = 301;
  est.rcv_nxt = 9001;
  mem.amend(est);
  EXPECT_EQ(est.old_state_ns, 1 * kMs);
  EXPECT_EQ(est.isn_local, 300u);
  EXPECT_EQ(est.isn_remote, 9000u);
  EXPECT_EQ(est.flags,
            TT_F_OLD_TS | TT_F_PASSIVE | TT_F_ISN_LOCAL | TT_F_ISN_REMOTE);
}

TEST(SocketMemory, AReconnectForgetsTheFirstLifesOwnerAndResets) {
  SocketMemory mem;
  auto syn = record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 42, "a");
  mem.amend(syn);
  auto rst =
      segment(TT_KIND_RESET, TT_RESET_RECEIVED, TcpState::SynSent, 40003);
  mem.amend(rst);
  // Refused: the socket goes to CLOSE.
  auto refused =
      record(2 * kMs, TcpState::SynSent, TcpState::Close, 0, 0, "swapper/0");
  refused.error = ECONNREFUSED;
  refused.detail = TT_DETAIL_ERROR;
  mem.amend(refused);
  EXPECT_EQ(refused.detail, TT_DETAIL_RESET_RCVD);
  // connect() again on the same socket by another process.
  auto again = record(5 * kMs, TcpState::Close, TcpState::SynSent, 0, 43, "b");
  mem.amend(again);
  EXPECT_EQ(again.old_state_ns, 3 * kMs) << "the time spent in CLOSE";
  EXPECT_EQ(again.flags, TT_F_OLD_TS | TT_F_OWNER | TT_F_ACTIVE);
  auto est = record(6 * kMs, TcpState::SynSent, TcpState::Established, 40004, 0,
                    "swapper/0");
  mem.amend(est);
  EXPECT_EQ(est.sk.pid, 43u);
  auto close = record(7 * kMs, TcpState::Established, TcpState::Close, 0, 0,
                      "swapper/0");
  mem.amend(close);
  EXPECT_EQ(close.detail, TT_DETAIL_NONE) << "the first life's RST is gone";
}

TEST(SocketMemory, StopsRememberingAtItsLimit) {
  SocketMemory mem(1);
  auto a = record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 42, "a", 1);
  auto b = record(1 * kMs, TcpState::Close, TcpState::SynSent, 0, 43, "b", 2);
  mem.amend(a);
  mem.amend(b);
  EXPECT_EQ(mem.size(), 1u);
  EXPECT_EQ(mem.forgotten(), 1u);
  auto b_est = record(2 * kMs, TcpState::SynSent, TcpState::Established, 40005,
                      0, "swapper/0", 2);
  mem.amend(b_est);
  EXPECT_EQ(b_est.flags & TT_F_OLD_TS, 0);
  EXPECT_EQ(b_est.sk.pid, 0u);
}

} // namespace
} // namespace tcptrail
