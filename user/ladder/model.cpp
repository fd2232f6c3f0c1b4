#include "ladder/model.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <string_view>
#include <unordered_map>

#include "seq.h"
#include "socket_memory.h"
#include "tcp_state.h"

namespace tcptrail::ladder {

namespace {

constexpr auto kClose = static_cast<std::uint8_t>(TcpState::Close);
constexpr auto kListen = static_cast<std::uint8_t>(TcpState::Listen);
constexpr auto kSynSent = static_cast<std::uint8_t>(TcpState::SynSent);
constexpr auto kSynRecv = static_cast<std::uint8_t>(TcpState::SynRecv);
constexpr auto kNewSynRecv = static_cast<std::uint8_t>(TcpState::NewSynRecv);
constexpr auto kEstablished = static_cast<std::uint8_t>(TcpState::Established);
constexpr auto kFinWait1 = static_cast<std::uint8_t>(TcpState::FinWait1);
constexpr auto kFinWait2 = static_cast<std::uint8_t>(TcpState::FinWait2);
constexpr auto kTimeWait = static_cast<std::uint8_t>(TcpState::TimeWait);
constexpr auto kCloseWait = static_cast<std::uint8_t>(TcpState::CloseWait);
constexpr auto kLastAck = static_cast<std::uint8_t>(TcpState::LastAck);
constexpr auto kClosing = static_cast<std::uint8_t>(TcpState::Closing);

// How long after an abort's state change its "RST sent" event may come.
constexpr std::uint64_t kRstWindowNs = 1'000'000'000;

// The seq/ack distance beyond which a snapshot is not taken as progress.
constexpr std::int32_t kMaxStep = 1 << 30;

std::string tuple_key(const tt_sock &sk, bool mirrored) {
  std::string k(1 + 2 * TT_ADDR_LEN + 4, '\0');
  k[0] = static_cast<char>(sk.af);
  const auto *a = mirrored ? sk.raddr : sk.laddr;
  const auto *b = mirrored ? sk.laddr : sk.raddr;
  const std::uint16_t pa = mirrored ? sk.rport : sk.lport;
  const std::uint16_t pb = mirrored ? sk.lport : sk.rport;
  std::memcpy(&k[1], a, TT_ADDR_LEN);
  std::memcpy(&k[1 + TT_ADDR_LEN], b, TT_ADDR_LEN);
  std::memcpy(&k[1 + 2 * TT_ADDR_LEN], &pa, 2);
  std::memcpy(&k[3 + 2 * TT_ADDR_LEN], &pb, 2);
  return k;
}

// One socket (cookie) of the stream.
struct Sock {
  std::uint64_t cookie = 0;
  std::vector<const Event *> evs;
  tt_sock sk{};
  bool has_state = false;
  bool listener = false;
  bool active = false;
  bool passive = false;
  std::optional<std::uint32_t> isn_local, isn_remote;
  std::uint64_t first = 0, last = 0;
  int conn = -1;
  int column = 0;
};

void learn(Sock &s, const Event &ev) {
  if (s.evs.empty())
    s.first = ev.ts_ns;
  s.last = ev.ts_ns;
  s.evs.push_back(&ev);
  const std::uint16_t lport = ev.sk.lport ? ev.sk.lport : s.sk.lport;
  s.sk = ev.sk;
  s.sk.lport = lport;
  if (ev.sk.pid == 0 && s.evs.size() > 1) { // keep a known owner
    for (auto it = s.evs.rbegin(); it != s.evs.rend(); ++it)
      if ((*it)->sk.pid) {
        s.sk.pid = (*it)->sk.pid;
        std::memcpy(s.sk.comm, (*it)->sk.comm, TT_COMM_LEN);
        break;
      }
  }
  if (ev.flags & TT_F_ISN_LOCAL)
    s.isn_local = ev.isn_local;
  if (ev.flags & TT_F_ISN_REMOTE)
    s.isn_remote = ev.isn_remote;
  if (ev.flags & TT_F_ACTIVE)
    s.active = true;
  if (ev.flags & TT_F_PASSIVE)
    s.passive = true;
  if (ev.kind != EventKind::State)
    return;
  s.has_state = true;
  if (ev.new_state == kListen ||
      (ev.old_state == kListen && ev.new_state == kClose))
    s.listener = true;
  if (ev.old_state == kClose && ev.new_state == kSynSent)
    s.active = true;
  if (ev.old_state == kListen &&
      (ev.new_state == kSynRecv || ev.new_state == kNewSynRecv))
    s.passive = true;
  std::uint32_t il = 0, ir = 0;
  const std::uint8_t f = transition_isns(ev.old_state, ev.new_state, ev.snd_una,
                                         ev.snd_nxt, ev.rcv_nxt, il, ir);
  if ((f & TT_F_ISN_LOCAL) && !s.isn_local)
    s.isn_local = il;
  if ((f & TT_F_ISN_REMOTE) && !s.isn_remote)
    s.isn_remote = ir;
}

bool isns_agree(const Sock &a, const Sock &b, int &confirmed) {
  confirmed = 0;
  if (a.isn_local && b.isn_remote) {
    if (*a.isn_local != *b.isn_remote)
      return false;
    ++confirmed;
  }
  if (a.isn_remote && b.isn_local) {
    if (*a.isn_remote != *b.isn_local)
      return false;
    ++confirmed;
  }
  return true;
}

std::uint64_t distance(const Sock &a, const Sock &b) {
  if (a.last < b.first)
    return b.first - a.last;
  if (b.last < a.first)
    return a.first - b.last;
  return 0;
}

bool fin_received(std::uint8_t old_state, std::uint8_t new_state) {
  return (old_state == kEstablished && new_state == kCloseWait) ||
         (old_state == kFinWait1 && new_state == kClosing) ||
         (old_state == kFinWait2 && new_state == kTimeWait) ||
         (old_state == kFinWait1 && new_state == kTimeWait);
}

// Draws one connection from its ends' events, in time order.
class Drawer {
public:
  explicit Drawer(Connection &c) : c_(c) {}

  void run(const std::vector<std::pair<int, const Event *>> &evs) {
    evs_ = &evs;
    for (pos_ = 0; pos_ < evs.size(); ++pos_) {
      const auto &[col, ev] = evs[pos_];
      if (ev->kind == EventKind::State)
        state(col, *ev);
      else if (ev->kind == EventKind::Reset)
        reset(col, *ev);
      else
        retransmit(col, *ev);
    }
  }

private:
  bool isn_known(int col) const { return c_.ends[col].isn_known; }
  std::uint32_t rel(int col, std::uint32_t raw) const {
    return raw - c_.ends[col].isn;
  }
  std::optional<std::uint32_t> rel_opt(int col, std::uint32_t raw) const {
    if (!isn_known(col))
      return std::nullopt;
    return rel(col, raw);
  }
  // What `col` acknowledges now, as far as the drawing goes.
  std::optional<std::uint32_t> ack_of(int col) const {
    if (!isn_known(1 - col))
      return std::nullopt;
    return received_[col];
  }
  // Where the next segment of `col` starts.
  std::uint32_t next_seq(int col) const {
    return fin_[col] ? *fin_[col] + 1 : data_end_[col];
  }

  Segment seg(int from, std::optional<std::uint32_t> seq,
              std::optional<std::uint32_t> ack, bool inferred,
              std::uint64_t ts) {
    Segment s;
    s.from = from;
    s.seq = seq;
    s.ack_no = ack;
    s.ack = ack.has_value();
    s.inferred = inferred;
    s.ts_ns = ts;
    return s;
  }
  void push(const Segment &s) {
    Row r;
    r.is_segment = true;
    r.seg = s;
    c_.rows.push_back(r);
    // The receiver has now seen everything up to this segment's end.
    if (s.seq && isn_known(s.from)) {
      const std::uint32_t end =
          *s.seq + s.len + (s.syn ? 1 : 0) + (s.fin ? 1 : 0);
      const int to = 1 - s.from;
      if (!s.rst && seq_diff(end, received_[to]) > 0)
        received_[to] = end;
    }
  }
  void mark(int side, std::string state, std::uint64_t ts, bool inferred,
            std::string note = {}) {
    Row r;
    r.mark.side = side;
    r.mark.state = std::move(state);
    r.mark.ts_ns = ts;
    r.mark.inferred = inferred;
    r.mark.note = std::move(note);
    c_.rows.push_back(r);
  }

  void ensure_data(int col, std::uint32_t upto, std::uint64_t ts) {
    if (!isn_known(col))
      return;
    if (fin_[col] && seq_diff(upto, *fin_[col]) > 0)
      upto = *fin_[col];
    const std::int32_t d = seq_diff(upto, data_end_[col]);
    if (d <= 0 || d > kMaxStep)
      return;
    Segment s = seg(col, data_end_[col], ack_of(col), true, ts);
    s.data = true;
    s.len = static_cast<std::uint32_t>(d);
    data_end_[col] = upto;
    push(s);
  }

  static bool snapshot_valid(const Event &ev) {
    if (ev.kind == EventKind::State)
      return ev.old_state != kClose && ev.old_state != kListen &&
             ev.old_state != kSynSent && ev.old_state != kNewSynRecv;
    // An RST sent as a socket closes still has its numbers; one sent for a
    // port without a socket has none.
    if (ev.old_state == kClose)
      return (ev.flags & TT_F_ISN_LOCAL) != 0;
    return ev.old_state != kListen && ev.old_state != kSynSent &&
           ev.old_state != kNewSynRecv && ev.old_state != kTimeWait;
  }

  // `col`'s "RST sent" event still to come within kRstWindowNs (the kernel
  // reports an abort's RST after the state change, and on veth or loopback
  // even after the peer took it). With `own_state_stops`, a state event of
  // `col` first means there is none.
  const Event *pending_rst_sent(int col, std::uint64_t ts,
                                bool own_state_stops) const {
    for (std::size_t i = pos_ + 1; i < evs_->size(); ++i) {
      const auto &[c, ev] = (*evs_)[i];
      if (ev->ts_ns > ts + kRstWindowNs)
        break;
      if (c != col)
        continue;
      if (ev->kind == EventKind::Reset && ev->what == TT_RESET_SENT)
        return ev;
      if (ev->kind == EventKind::State && own_state_stops)
        break;
    }
    return nullptr;
  }

  // Payload both ways up to this event's snapshot, the active side's first
  // (the order between two snapshots is not known).
  void pre_data(int col, const Event &ev, bool peer_fin_in_rcv,
                bool own_fin_in_nxt = false) {
    if (!snapshot_valid(ev))
      return;
    const int peer = 1 - col;
    std::array<std::optional<std::uint32_t>, 2> upto;
    if (isn_known(col))
      upto[col] = rel(col, ev.snd_nxt) - (own_fin_in_nxt ? 1 : 0);
    if (isn_known(peer))
      upto[peer] = rel(peer, ev.rcv_nxt) - (peer_fin_in_rcv ? 1 : 0);
    for (int side = 0; side < 2; ++side)
      if (upto[side])
        ensure_data(side, *upto[side], 0);
  }

  // The peer's LISTEN -> SYN_RECV still to come (its mark goes with the
  // SYN-ACK, which the kernel reports only at the handshake's end).
  const Event *pending_syn_recv(int col) const {
    for (std::size_t i = pos_ + 1; i < evs_->size(); ++i) {
      const auto &[c, ev] = (*evs_)[i];
      if (c == col && ev->kind == EventKind::State &&
          ev->old_state == kListen &&
          (ev->new_state == kSynRecv || ev->new_state == kNewSynRecv))
        return ev;
    }
    return nullptr;
  }

  void syn(int from, bool inferred, std::uint64_t ts) {
    if (syn_[from])
      return;
    Segment s = seg(from, 0u, std::nullopt, inferred, ts);
    s.syn = true;
    push(s);
    syn_[from] = true;
  }
  void synack(int from, bool inferred, std::uint64_t ts) {
    if (synack_)
      return;
    Segment s = seg(from, 0u, 1u, inferred, ts);
    s.syn = true;
    push(s);
    synack_ = true;
    syn_[from] = true;
  }
  void hs_ack(int from, bool inferred, std::uint64_t ts) {
    if (hs_ack_)
      return;
    push(seg(from, 1u, 1u, inferred, ts));
    hs_ack_ = true;
  }
  // `from` sends its FIN at `seq` (relative), acking `ack`.
  void fin(int from, std::optional<std::uint32_t> seq,
           std::optional<std::uint32_t> ack, bool inferred, std::uint64_t ts) {
    if (fin_[from] || !seq)
      return;
    fin_[from] = *seq;
    Segment s = seg(from, seq, ack, inferred, ts);
    s.fin = true;
    push(s);
  }
  // `from` acknowledges the other side's FIN.
  void fin_ack(int from, bool inferred, std::uint64_t ts) {
    const int to = 1 - from;
    if (fin_acked_[to] || !fin_[to])
      return;
    fin_acked_[to] = true;
    push(seg(from, next_seq(from), *fin_[to] + 1, inferred, ts));
  }
  void rst(int from, std::optional<std::uint32_t> seq,
           std::optional<std::uint32_t> ack, bool inferred, std::uint64_t ts) {
    Segment s = seg(from, seq, ack, inferred, ts);
    s.rst = true;
    push(s);
    rst_any_[from] = true;
  }

  void state(int col, const Event &ev) {
    const int peer = 1 - col;
    const std::uint8_t o = ev.old_state, n = ev.new_state;
    const std::uint64_t ts = ev.ts_ns;
    const bool peer_traced = c_.ends[peer].traced;
    const bool peer_fin = fin_received(o, n);
    // States whose snapshot already counts a FIN: ours, the peer's.
    const bool own_fin_in_nxt = o == kFinWait1 || o == kFinWait2 ||
                                o == kClosing || o == kLastAck ||
                                o == kTimeWait;
    const bool peer_fin_in_rcv = peer_fin || o == kCloseWait || o == kLastAck ||
                                 o == kClosing || o == kTimeWait;
    // The snapshot's seq/ack, relative.
    const std::optional<std::uint32_t> own =
        snapshot_valid(ev) ? rel_opt(col, ev.snd_nxt) : std::nullopt;
    const std::optional<std::uint32_t> rcv =
        snapshot_valid(ev) ? rel_opt(peer, ev.rcv_nxt) : std::nullopt;
    // A trace that starts late (or lost records) may not have shown the
    // FINs these states imply: drawn inferred, from the snapshot.
    if (own_fin_in_nxt && own && !fin_[col] && !rst_any_[col]) {
      pre_data(col, ev, peer_fin_in_rcv, true);
      fin(col, *own - 1, std::nullopt, true, 0);
    }
    if (peer_fin_in_rcv && !peer_fin && rcv && !fin_[peer]) {
      pre_data(col, ev, true, own_fin_in_nxt);
      fin(peer, *rcv - 1, std::nullopt, true, 0);
    }
    pre_data(col, ev, peer_fin_in_rcv, own_fin_in_nxt);

    if (o == kClose && n == kSynSent) {
      mark(col, "SYN_SENT", ts, false);
      syn(col, false, ts);
    } else if (o == kSynSent && n == kEstablished) {
      syn(col, true, 0);
      if (!synack_) {
        if (const Event *sr = pending_syn_recv(peer)) {
          mark(peer, "SYN_RECV", sr->ts_ns, false,
               "reported when the handshake's ACK arrived (the kernel "
               "makes the child socket then)");
          syn_recv_marked_[peer] = true;
        }
        synack(peer, false, ts);
      }
      mark(col, "ESTABLISHED", ts, false);
      hs_ack(col, false, ts);
    } else if (o == kListen && (n == kSynRecv || n == kNewSynRecv)) {
      syn(peer, false, ts);
      if (!syn_recv_marked_[col])
        mark(col, "SYN_RECV", ts, false);
      syn_recv_marked_[col] = true;
      synack(col, false, ts);
    } else if (o == kSynRecv && n == kEstablished) {
      hs_ack(peer, false, ts);
      mark(col, "ESTABLISHED", ts, false);
    } else if (n == kFinWait1 || (o == kCloseWait && n == kLastAck)) {
      mark(col, state_label(n), ts, false);
      fin(col, own, rcv, false, ts);
    } else if (peer_fin) {
      // The peer's FIN arrived (and, into TIME_WAIT from FIN_WAIT1, the
      // ACK of ours with it).
      if ((o == kFinWait1 && n == kTimeWait) && !fin_acked_[col])
        fin_ack(peer, false, ts);
      fin(peer, rcv ? std::optional<std::uint32_t>(*rcv - 1) : std::nullopt,
          own, false, ts);
      mark(col, state_label(n), ts, (ev.flags & TT_F_INFERRED) != 0,
           n == kTimeWait ? "inferred: handed to a timewait socket" : "");
      // Our ACK of it: an untraced peer reports no arrival.
      if (!peer_traced)
        fin_ack(col, true, 0);
    } else if (o == kFinWait1 && n == kFinWait2) {
      fin_ack(peer, false, ts);
      mark(col, "FIN_WAIT2", ts, false);
    } else if (o == kClosing && n == kTimeWait) {
      fin_ack(peer, false, ts);
      mark(col, "TIME_WAIT", ts, (ev.flags & TT_F_INFERRED) != 0,
           "inferred: handed to a timewait socket");
    } else if (o == kLastAck && n == kClose) {
      if (orphan_[peer])
        mark(peer, "TIME_WAIT", ts, true,
             "inferred: its timewait socket took the FIN");
      fin_ack(peer, false, ts);
      mark(col, "CLOSED", ts, false);
    } else if (n == kClose) {
      std::string note;
      if (ev.detail == TT_DETAIL_RESET_SENT) {
        if (!rst_any_[col]) {
          // Drawn ahead of its "RST sent" event, which follows.
          rst(col, own, rcv, false, ts);
          ++rst_unmatched_[col];
          ++rst_ahead_[col];
        }
        note = "reset_sent";
      } else if (ev.detail == TT_DETAIL_RESET_RCVD) {
        if (!rst_any_[peer])
          rst(peer, o == kSynSent ? std::nullopt : rcv,
              isn_known(col)
                  ? std::optional<std::uint32_t>(rel(col, ev.snd_nxt))
                  : std::nullopt,
              false, ts);
        note = "reset_received";
      } else if (ev.detail == TT_DETAIL_ORPHAN_FIN_WAIT2) {
        orphan_[col] = true;
        note = "orphan: a timewait socket waits in FIN_WAIT2 for the "
               "peer's FIN";
      } else if (ev.detail == TT_DETAIL_ERROR) {
        note = "error";
      } else if (o != kSynSent && pending_rst_sent(col, ts, true)) {
        // An abort (SO_LINGER 0, unread data at close()): the RST follows.
        rst(col, own, rcv, false, ts);
        ++rst_unmatched_[col];
        ++rst_ahead_[col];
        note = "reset_sent";
      }
      if (!ev.error.empty())
        note += (note.empty() ? "" : " ") + ev.error;
      mark(col, "CLOSED", ts, false, note);
    } else {
      mark(col, state_label(n), ts, (ev.flags & TT_F_INFERRED) != 0);
    }
  }

  void reset(int col, const Event &ev) {
    const int peer = 1 - col;
    const bool valid = snapshot_valid(ev);
    if (valid)
      pre_data(col, ev, false);
    if (ev.what == TT_RESET_SENT) {
      if (rst_ahead_[col] > 0) {
        --rst_ahead_[col];
        return;
      }
      std::optional<std::uint32_t> seq, ack;
      if (valid) {
        seq = rel_opt(col, ev.snd_nxt);
        ack = rel_opt(peer, ev.rcv_nxt);
      } else if (syn_[peer] && !synack_) {
        ack = ack_of(col); // the answer to a SYN: ack = its seq + 1
      }
      rst(col, seq, ack, false, ev.ts_ns);
      ++rst_unmatched_[col];
    } else {
      if (rst_unmatched_[peer] > 0) {
        --rst_unmatched_[peer];
        return;
      }
      std::optional<std::uint32_t> seq, ack;
      if (valid)
        seq = rel_opt(peer, ev.rcv_nxt);
      if (isn_known(col) && ev.old_state != kClose)
        ack = rel(col, ev.snd_nxt);
      // Its sender's event may still come: then it is that one.
      if (const Event *sent = pending_rst_sent(peer, ev.ts_ns, false)) {
        if (snapshot_valid(*sent)) {
          seq = rel_opt(peer, sent->snd_nxt);
          ack = rel_opt(col, sent->rcv_nxt);
        }
        ++rst_ahead_[peer];
      }
      rst(peer, seq, ack, false, ev.ts_ns);
    }
  }

  void retransmit(int col, const Event &ev) {
    Segment s;
    if (ev.what == TT_RETRANS_SYN) {
      s = seg(col, 0u, std::nullopt, false, ev.ts_ns);
      s.syn = true;
    } else if (ev.what == TT_RETRANS_SYNACK) {
      s = seg(col, 0u, 1u, false, ev.ts_ns);
      s.syn = true;
    } else {
      const auto seq = rel_opt(col, ev.seq);
      s = seg(col, seq, rel_opt(1 - col, ev.rcv_nxt), false, ev.ts_ns);
      if (seq && fin_[col] && *seq == *fin_[col])
        s.fin = true;
      else
        s.data = true;
    }
    s.retransmit = true;
    push(s);
  }

  Connection &c_;
  const std::vector<std::pair<int, const Event *>> *evs_ = nullptr;
  std::size_t pos_ = 0;
  std::array<std::uint32_t, 2> data_end_{1, 1}; // next payload byte drawn
  std::array<std::uint32_t, 2> received_{1, 1}; // what each side acks
  std::array<std::optional<std::uint32_t>, 2> fin_;
  std::array<bool, 2> fin_acked_{};
  std::array<bool, 2> syn_{};
  std::array<bool, 2> syn_recv_marked_{};
  std::array<bool, 2> orphan_{};
  std::array<bool, 2> rst_any_{};
  std::array<int, 2> rst_unmatched_{}; // drawn, arrival not yet seen
  std::array<int, 2> rst_ahead_{};     // drawn, "RST sent" not yet seen
  bool synack_ = false;
  bool hs_ack_ = false;
};

// Durations, and what is still open at the end.
void finish(Connection &c) {
  std::array<Mark *, 2> last{};
  for (Row &r : c.rows) {
    if (r.is_segment || r.mark.ts_ns == 0)
      continue;
    Mark *&prev = last[r.mark.side];
    if (prev && r.mark.ts_ns >= prev->ts_ns)
      prev->dur_ns = r.mark.ts_ns - prev->ts_ns;
    prev = &r.mark;
  }
  for (Mark *m : last) {
    if (!m || m->state == "CLOSED")
      continue;
    m->open_at_end = true;
    if (c.end_ns >= m->ts_ns)
      m->dur_ns = c.end_ns - m->ts_ns;
    if (m->state == "CLOSE_WAIT" && m->note.empty())
      m->note = "the peer's FIN is not answered: the owner has not closed "
                "its socket";
  }
}

End make_end(const Sock &s, bool traced) {
  End e;
  e.traced = traced;
  e.cookie = s.cookie;
  e.sk = s.sk;
  e.active = s.active;
  if (s.isn_local) {
    e.isn_known = true;
    e.isn = *s.isn_local;
  }
  return e;
}

// The end at the other side of `s`, not traced: its tuple mirrored.
End peer_of(const Sock &s) {
  End e;
  e.sk.af = s.sk.af;
  std::memcpy(e.sk.laddr, s.sk.raddr, TT_ADDR_LEN);
  std::memcpy(e.sk.raddr, s.sk.laddr, TT_ADDR_LEN);
  e.sk.lport = s.sk.rport;
  e.sk.rport = s.sk.lport;
  e.active = !s.active;
  if (s.isn_remote) {
    e.isn_known = true;
    e.isn = *s.isn_remote;
  }
  return e;
}

} // namespace

std::optional<std::uint32_t> raw_seq(const Connection &c, const Segment &s) {
  if (!s.seq)
    return std::nullopt;
  return *s.seq + c.ends[s.from].isn;
}

std::optional<std::uint32_t> raw_ack(const Connection &c, const Segment &s) {
  if (!s.ack_no)
    return std::nullopt;
  return *s.ack_no + c.ends[1 - s.from].isn;
}

std::vector<Connection> build(std::vector<Event> events, std::uint64_t end_ns) {
  std::stable_sort(
      events.begin(), events.end(),
      [](const Event &a, const Event &b) { return a.ts_ns < b.ts_ns; });
  if (end_ns == 0 && !events.empty())
    end_ns = events.back().ts_ns;

  // Sockets by cookie, in order of first event.
  std::vector<Sock> socks;
  std::unordered_map<std::uint64_t, std::size_t> by_cookie;
  for (const Event &ev : events) {
    // Cookie 0: no socket (an RST for a port nobody listens on); each such
    // record stands alone and joins a connection by its tuple.
    if (ev.cookie == 0) {
      socks.emplace_back();
      learn(socks.back(), ev);
      continue;
    }
    auto [it, fresh] = by_cookie.try_emplace(ev.cookie, socks.size());
    if (fresh) {
      socks.emplace_back();
      socks.back().cookie = ev.cookie;
    }
    learn(socks[it->second], ev);
  }

  // Pair the ends: mirrored tuple, ISNs that agree, nearest in time.
  std::unordered_map<std::string, std::vector<std::size_t>> by_tuple;
  for (std::size_t i = 0; i < socks.size(); ++i)
    if (socks[i].has_state && !socks[i].listener)
      by_tuple[tuple_key(socks[i].sk, false)].push_back(i);

  struct Group {
    std::array<int, 2> sock{-1, -1}; // column -> index of socks
    std::vector<std::size_t> aux;    // segment-only sockets
    std::vector<int> aux_column;
  };
  std::vector<Group> groups;
  for (std::size_t i = 0; i < socks.size(); ++i) {
    Sock &s = socks[i];
    if (!s.has_state || s.listener || s.conn >= 0)
      continue;
    int best = -1;
    int best_confirmed = -1;
    std::uint64_t best_dist = 0;
    auto it = by_tuple.find(tuple_key(s.sk, true));
    if (it != by_tuple.end()) {
      for (std::size_t j : it->second) {
        const Sock &t = socks[j];
        int confirmed = 0;
        if (j == i || t.conn >= 0 || !isns_agree(s, t, confirmed))
          continue;
        const std::uint64_t d = distance(s, t);
        if (confirmed > best_confirmed ||
            (confirmed == best_confirmed && d < best_dist)) {
          best = static_cast<int>(j);
          best_confirmed = confirmed;
          best_dist = d;
        }
      }
    }
    Group g;
    s.conn = static_cast<int>(groups.size());
    if (best >= 0) {
      Sock &t = socks[best];
      t.conn = s.conn;
      // The active end (client) first; when neither says, the earlier.
      const bool s_first = s.active || (!t.active && !s.passive);
      g.sock[s_first ? 0 : 1] = static_cast<int>(i);
      g.sock[s_first ? 1 : 0] = best;
    } else {
      g.sock[s.passive && !s.active ? 1 : 0] = static_cast<int>(i);
    }
    groups.push_back(g);
  }

  // Segment-only sockets (an RST from a port without a socket, a
  // retransmitted SYN-ACK of a request socket) join the connection whose
  // tuple they share or mirror, nearest in time.
  // The traced ends by their own tuple: (group, column).
  std::unordered_map<std::string, std::vector<std::pair<int, int>>> ends_by;
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (int col = 0; col < 2; ++col)
      if (groups[g].sock[col] >= 0)
        ends_by[tuple_key(socks[groups[g].sock[col]].sk, false)].emplace_back(
            static_cast<int>(g), col);
  for (std::size_t i = 0; i < socks.size(); ++i) {
    Sock &s = socks[i];
    if (s.has_state || s.listener)
      continue;
    int best = -1, best_col = 0;
    std::uint64_t best_dist = ~std::uint64_t{0};
    // Same tuple: that end's column; mirrored: the other one.
    for (const bool mirrored : {false, true}) {
      auto it = ends_by.find(tuple_key(s.sk, mirrored));
      if (it == ends_by.end())
        continue;
      for (const auto &[g, col] : it->second) {
        const std::uint64_t d = distance(s, socks[groups[g].sock[col]]);
        if (d < best_dist) {
          best = g;
          best_col = mirrored ? 1 - col : col;
          best_dist = d;
        }
      }
    }
    if (best < 0) {
      Group g;
      g.sock[1] = static_cast<int>(i);
      groups.push_back(g);
    } else {
      groups[best].aux.push_back(i);
      groups[best].aux_column.push_back(best_col);
    }
  }

  std::vector<Connection> out;
  out.reserve(groups.size());
  for (const Group &g : groups) {
    Connection c;
    c.end_ns = end_ns;
    std::vector<std::pair<int, const Event *>> evs;
    for (int col = 0; col < 2; ++col) {
      if (g.sock[col] < 0)
        continue;
      const Sock &s = socks[g.sock[col]];
      c.ends[col] = make_end(s, true);
      for (const Event *ev : s.evs)
        evs.emplace_back(col, ev);
    }
    // Across from a known server, the other traced end is its client.
    if (g.sock[0] >= 0 && g.sock[1] >= 0 && socks[g.sock[1]].passive &&
        !socks[g.sock[0]].passive)
      c.ends[0].active = true;
    for (int col = 0; col < 2; ++col) {
      if (g.sock[col] >= 0)
        continue;
      const int other = g.sock[1 - col];
      if (other >= 0) {
        c.ends[col] = peer_of(socks[other]);
        c.ends[col].active = col == 0;
      }
    }
    for (std::size_t k = 0; k < g.aux.size(); ++k) {
      const Sock &s = socks[g.aux[k]];
      for (const Event *ev : s.evs)
        evs.emplace_back(g.aux_column[k], ev);
    }
    // A traced end's peer knows the ISN an untraced (or unknowing) end
    // used.
    for (int col = 0; col < 2; ++col) {
      const int other = g.sock[1 - col];
      if (!c.ends[col].isn_known && other >= 0 && socks[other].isn_remote) {
        c.ends[col].isn_known = true;
        c.ends[col].isn = *socks[other].isn_remote;
      }
    }
    std::stable_sort(evs.begin(), evs.end(), [](const auto &a, const auto &b) {
      return a.second->ts_ns < b.second->ts_ns;
    });
    if (evs.empty())
      continue;
    c.start_ns = evs.front().second->ts_ns;
    for (int col = 0; col < 2; ++col) {
      const int idx = g.sock[col];
      if (idx < 0)
        continue;
      const Event &first = *socks[idx].evs.front();
      if (first.kind == EventKind::State && first.old_state == kClose)
        c.ends[col].initial = "CLOSED";
      else if (first.kind == EventKind::State)
        c.ends[col].initial = state_label(first.old_state);
    }
    if (!c.ends[1].traced && c.ends[0].traced && c.ends[0].active)
      c.ends[1].initial = "";
    Drawer(c).run(evs);
    finish(c);
    out.push_back(std::move(c));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Connection &a, const Connection &b) {
                     return a.start_ns < b.start_ns;
                   });
  return out;
}

} // namespace tcptrail::ladder
