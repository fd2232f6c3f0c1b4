#include "socket_memory.h"

#include <cstring>

#include "tcp_state.h"

namespace tcptrail {

namespace {

constexpr std::uint8_t kResetSent = 1u << 0;
constexpr std::uint8_t kResetReceived = 1u << 1;

constexpr std::uint8_t st(TcpState s) { return static_cast<std::uint8_t>(s); }

// As remember_lport(): inet_put_port() zeroes the port before CLOSE.
void remember_lport(std::uint16_t &lport, std::uint16_t &remembered) {
  if (lport)
    remembered = lport;
  else
    lport = remembered;
}

} // namespace

// As bpf/state.bpf.c's in_owner_context().
bool in_owner_context(std::uint8_t old_state, std::uint8_t new_state) {
  return (old_state == st(TcpState::Close) &&
          new_state == st(TcpState::SynSent)) ||
         new_state == st(TcpState::Listen) ||
         new_state == st(TcpState::FinWait1) ||
         (old_state == st(TcpState::CloseWait) &&
          new_state == st(TcpState::LastAck));
}

// As the state program takes them (see its comment).
std::uint8_t transition_isns(std::uint8_t old_state, std::uint8_t new_state,
                             std::uint32_t snd_una, std::uint32_t snd_nxt,
                             std::uint32_t rcv_nxt, std::uint32_t &isn_local,
                             std::uint32_t &isn_remote) {
  std::uint8_t flags = 0;
  if (old_state == st(TcpState::SynSent) && snd_nxt) {
    isn_local = snd_nxt - 1;
    flags |= TT_F_ISN_LOCAL;
  } else if (old_state == st(TcpState::SynRecv) &&
             new_state == st(TcpState::Established)) {
    isn_local = snd_una - 1;
    flags |= TT_F_ISN_LOCAL;
  }
  if ((old_state == st(TcpState::SynSent) ||
       old_state == st(TcpState::SynRecv)) &&
      new_state == st(TcpState::Established)) {
    isn_remote = rcv_nxt - 1;
    flags |= TT_F_ISN_REMOTE;
  }
  return flags;
}

void SocketMemory::Entry::fill(tt_sock &sk, std::uint32_t &isn_local_out,
                               std::uint32_t &isn_remote_out,
                               std::uint8_t &flags_out) const {
  if ((flags & TT_F_OWNER) && !(flags_out & TT_F_OWNER)) {
    sk.pid = pid;
    std::memcpy(sk.comm, comm, sizeof(sk.comm));
  }
  if (flags & TT_F_ISN_LOCAL)
    isn_local_out = isn_local;
  if (flags & TT_F_ISN_REMOTE)
    isn_remote_out = isn_remote;
  flags_out |= flags & TT_F_CONN_MASK;
}

SocketMemory::Entry *SocketMemory::entry_for(std::uint64_t cookie,
                                             bool create) {
  if (auto it = sockets_.find(cookie); it != sockets_.end())
    return &it->second;
  if (!create || !cookie)
    return nullptr;
  if (sockets_.size() >= max_sockets_) {
    ++forgotten_;
    return nullptr;
  }
  return &sockets_[cookie];
}

void SocketMemory::amend(tt_state_event &ev) {
  if (ev.stored)
    return; // the kernel did all of this itself
  const std::uint8_t old_state = ev.old_state;
  const bool inferred_tw =
      (ev.flags & TT_F_INFERRED) && ev.new_state == st(TcpState::TimeWait);
  const bool into_close = ev.new_state == st(TcpState::Close) || inferred_tw;
  // Nothing to remember about a socket first seen on its way out.
  Entry *e = entry_for(ev.hdr.cookie, !into_close);
  if (!e)
    return;

  if (old_state == st(TcpState::Listen) &&
      ev.new_state == st(TcpState::SynRecv)) {
    // A child of a listener without storage: a new socket.
    *e = Entry{};
    e->flags = TT_F_PASSIVE;
  } else {
    if (ev.new_state == st(TcpState::SynSent) ||
        ev.new_state == st(TcpState::Listen)) {
      // A new life: connect() or listen(), perhaps again. The state and
      // its time stay: the time spent in CLOSE is still the old state's.
      e->flags = ev.new_state == st(TcpState::SynSent) ? TT_F_ACTIVE : 0;
      e->resets = 0;
    }
    if (!(ev.flags & TT_F_OLD_TS) && e->state == old_state && e->state_ts &&
        ev.hdr.ts_ns >= e->state_ts) {
      ev.old_state_ns = ev.hdr.ts_ns - e->state_ts;
      ev.flags |= TT_F_OLD_TS;
    }
  }

  if (ev.new_state != st(TcpState::SynSent))
    remember_lport(ev.sk.lport, e->lport);
  // The kernel names the owner itself in process context.
  if ((ev.flags & TT_F_OWNER) && in_owner_context(old_state, ev.new_state)) {
    e->pid = ev.sk.pid;
    std::memcpy(e->comm, ev.sk.comm, sizeof(e->comm));
    e->flags |= TT_F_OWNER;
  }
  e->flags |= transition_isns(old_state, ev.new_state, ev.snd_una, ev.snd_nxt,
                              ev.rcv_nxt, e->isn_local, e->isn_remote);

  // An RST seen earlier explains a CLOSE before an error or a timewait
  // inference does (the kernel's order, with its RST flags in storage).
  if (into_close && e->resets) {
    ev.detail = (e->resets & kResetReceived) ? TT_DETAIL_RESET_RCVD
                                             : TT_DETAIL_RESET_SENT;
    if (inferred_tw) {
      ev.new_state = st(TcpState::Close);
      ev.flags &= static_cast<std::uint8_t>(~TT_F_INFERRED);
    }
  }

  e->fill(ev.sk, ev.isn_local, ev.isn_remote, ev.flags);
  e->state = ev.new_state;
  e->state_ts = ev.hdr.ts_ns;
  if (into_close)
    closed(ev.hdr.cookie);
}

void SocketMemory::closed(std::uint64_t cookie) {
  std::uint64_t &slot = closed_[closed_next_];
  if (slot && slot != cookie) {
    // Forget the oldest closed socket, unless it has come back to life.
    auto it = sockets_.find(slot);
    if (it != sockets_.end() && (it->second.state == st(TcpState::Close) ||
                                 it->second.state == st(TcpState::TimeWait)))
      sockets_.erase(it);
  }
  slot = cookie;
  closed_next_ = (closed_next_ + 1) % closed_.size();
}

void SocketMemory::amend(tt_seg_event &ev) {
  if (ev.stored)
    return;
  Entry *e = entry_for(ev.hdr.cookie, false); // as the kernel: never made here
  if (!e)
    return;
  remember_lport(ev.sk.lport, e->lport);
  if (ev.hdr.kind == TT_KIND_RESET) {
    e->resets |= ev.what == TT_RESET_SENT ? kResetSent : kResetReceived;
    if (ev.state == st(TcpState::SynSent) && ev.snd_nxt) {
      e->isn_local = ev.snd_nxt - 1;
      e->flags |= TT_F_ISN_LOCAL;
    }
  } else if (ev.state == st(TcpState::SynSent)) { // the SYN carries the ISN
    e->isn_local = ev.seq;
    e->flags |= TT_F_ISN_LOCAL;
  }
  // The kernel sends no flags for a socket without storage: all are ours.
  e->fill(ev.sk, ev.isn_local, ev.isn_remote, ev.flags);
}

} // namespace tcptrail
