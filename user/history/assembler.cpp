#include "history/assembler.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "history/payload.h"
#include "socket_memory.h"
#include "tcp_state.h"
#include "tuple.h"

namespace tcptrail {

namespace {

constexpr std::uint32_t kChunkShift = 8; // 256 entries per pool chunk
constexpr std::uint32_t kChunk = 1U << kChunkShift;
constexpr std::size_t kMinSlots = 64;

constexpr std::uint8_t st(TcpState s) { return static_cast<std::uint8_t>(s); }

// Conn::flags
enum : std::uint16_t {
  kActive = 1U << 0,
  kPassive = 1U << 1,
  kIsnLocal = 1U << 2,
  kIsnRemote = 1U << 3,
  kOwner = 1U << 4,    // pid/comm came from an event with TT_F_OWNER
  kEnded = 1U << 5,    // on the ended list
  kListener = 1U << 6, // entered LISTEN
  kAcceptCounted = 1U << 7,
  kAcceptUnknown = 1U << 8, // listener: the kernel did not count its children
};

// splitmix64's finalizer: cookies are sequential, the index needs spread.
std::uint64_t mix(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

bool is_terminal(std::uint8_t state) {
  return state == st(TcpState::Close) || state == st(TcpState::TimeWait);
}

template <typename T> void saturating_inc(T &v) {
  if (v != static_cast<T>(~T{0}))
    ++v;
}

std::uint64_t listener_key(std::uint32_t netns, std::uint16_t lport) {
  return (static_cast<std::uint64_t>(netns) << 16) | lport;
}

} // namespace

// One tracked connection: fixed size, no owned allocations. Steps are
// stored as parallel arrays (22 bytes a step instead of a padded 24).
struct HistoryAssembler::Conn {
  std::uint64_t cookie;
  std::uint64_t enter_ns[kMaxSteps];
  std::uint64_t bytes_acked;    // max seen (the counters only grow)
  std::uint64_t bytes_received; // max seen
  std::uint8_t laddr[TT_ADDR_LEN];
  std::uint8_t raddr[TT_ADDR_LEN];
  char comm[TT_COMM_LEN];
  std::uint32_t prev, next; // LRU or ended list; next = free list link
  std::uint32_t netns;
  std::uint32_t pid;
  std::uint32_t isn_local, isn_remote;
  std::uint32_t total_retrans; // max seen
  std::uint32_t retrans_events;
  std::uint32_t accepted;          // listener: children established
  std::uint32_t seq[kMaxSteps][3]; // snd_una, snd_nxt, rcv_nxt
  std::uint16_t lport, rport;
  std::uint16_t resets_sent, resets_received;
  std::uint16_t error; // of the terminal event
  std::uint16_t flags;
  std::uint16_t cgroup; // owner's cgroup: index into cgroup_ids_, 0 unknown
  std::uint8_t state[kMaxSteps];
  std::uint8_t af;
  std::uint8_t n_steps;
  std::uint8_t detail;          // of the terminal event
  std::uint8_t first_old_state; // old_state of the earliest event
  std::uint8_t steps_dropped;

  std::uint64_t end_ns() const { return enter_ns[n_steps - 1]; }
  bool has_state(std::uint8_t s) const {
    for (std::uint8_t i = 0; i < n_steps; ++i)
      if (state[i] == s)
        return true;
    return false;
  }
};

// Adds the event's step in ts order (stable for equal ts). A full path
// keeps its first step and the latest kMaxSteps - 1: the step that would be
// second is dropped and counted.
void HistoryAssembler::insert_step(Conn &c, const tt_state_event &ev) {
  const std::uint64_t ts = ev.hdr.ts_ns;
  std::size_t pos = c.n_steps;
  while (pos > 0 && c.enter_ns[pos - 1] > ts)
    --pos;
  if (pos == 0)
    c.first_old_state = ev.old_state;

  std::uint64_t enter[kMaxSteps + 1];
  std::uint32_t seq[kMaxSteps + 1][3];
  std::uint8_t state[kMaxSteps + 1];
  std::size_t n = 0;
  auto put = [&](std::uint64_t e, const std::uint32_t(&sq)[3], std::uint8_t s) {
    enter[n] = e;
    std::memcpy(seq[n], sq, sizeof(sq));
    state[n] = s;
    ++n;
  };
  const std::uint32_t ev_seq[3] = {ev.snd_una, ev.snd_nxt, ev.rcv_nxt};
  for (std::size_t i = 0; i <= c.n_steps; ++i) {
    if (i == pos)
      put(ts, ev_seq, ev.new_state);
    if (i < c.n_steps)
      put(c.enter_ns[i], c.seq[i], c.state[i]);
  }
  std::size_t skip = kMaxSteps + 1; // none
  if (n > kMaxSteps) {
    skip = 1;
    if (c.steps_dropped != 0xff)
      ++c.steps_dropped;
  }
  c.n_steps = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (i == skip)
      continue;
    c.enter_ns[c.n_steps] = enter[i];
    std::memcpy(c.seq[c.n_steps], seq[i], sizeof(seq[i]));
    c.state[c.n_steps] = state[i];
    ++c.n_steps;
  }
}

HistoryAssembler::HistoryAssembler(std::size_t max_conns,
                                   std::uint64_t grace_ns)
    : max_conns_(std::clamp<std::size_t>(max_conns, 1, kNone - 1)),
      grace_ns_(grace_ns) {}

HistoryAssembler::~HistoryAssembler() = default;
HistoryAssembler::HistoryAssembler(HistoryAssembler &&) noexcept = default;
HistoryAssembler &
HistoryAssembler::operator=(HistoryAssembler &&) noexcept = default;

std::size_t HistoryAssembler::conn_bytes() {
  static_assert(sizeof(Conn) <= 232, "keep a tracked connection compact");
  return sizeof(Conn);
}

std::size_t HistoryAssembler::memory_bytes() const {
  // unordered_map node: next pointer, key, value (+ padding); one bucket
  // pointer per bucket. Only listeners are in it.
  constexpr std::size_t kListenerNode = 8 + 8 + 8;
  const std::size_t listener_buckets =
      listeners_.bucket_count() > 1 ? listeners_.bucket_count() : 0;
  return chunks_.size() * kChunk * sizeof(Conn) +
         chunks_.capacity() * sizeof(chunks_[0]) +
         slots_.capacity() * sizeof(slots_[0]) +
         listeners_.size() * kListenerNode + listener_buckets * sizeof(void *);
}

HistoryAssembler::Conn &HistoryAssembler::at(std::uint32_t idx) const {
  return chunks_[idx >> kChunkShift][idx & (kChunk - 1)];
}

// ---- index: linear probing, backward-shift deletion -----------------------

std::uint32_t HistoryAssembler::find(std::uint64_t cookie) const {
  if (slots_.empty())
    return kNone;
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = mix(cookie) & mask;; i = (i + 1) & mask) {
    const std::uint32_t idx = slots_[i];
    if (idx == kNone)
      return kNone;
    if (at(idx).cookie == cookie)
      return idx;
  }
}

void HistoryAssembler::index_grow() {
  std::vector<std::uint32_t> old;
  old.swap(slots_);
  slots_.assign(old.empty() ? kMinSlots : old.size() * 2, kNone);
  slots_.shrink_to_fit();
  for (std::uint32_t idx : old)
    if (idx != kNone)
      index_insert(idx);
}

void HistoryAssembler::index_insert(std::uint32_t idx) {
  // Load factor <= 3/4.
  if ((count_ + 1) * 4 > slots_.size() * 3)
    index_grow();
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = mix(at(idx).cookie) & mask;
  while (slots_[i] != kNone)
    i = (i + 1) & mask;
  slots_[i] = idx;
}

void HistoryAssembler::index_erase(std::uint64_t cookie) {
  const std::size_t mask = slots_.size() - 1;
  std::size_t i = mix(cookie) & mask;
  while (at(slots_[i]).cookie != cookie)
    i = (i + 1) & mask;
  // Move back every later entry of the cluster whose home is not in (i, j].
  for (std::size_t j = (i + 1) & mask; slots_[j] != kNone; j = (j + 1) & mask) {
    const std::size_t home = mix(at(slots_[j]).cookie) & mask;
    const bool between =
        i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (!between) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = kNone;
}

// ---- lists ------------------------------------------------------------------

void HistoryAssembler::list_unlink(std::uint32_t idx) {
  Conn &c = at(idx);
  const bool ended = c.flags & kEnded;
  std::uint32_t &head = ended ? ended_head_ : lru_head_;
  std::uint32_t &tail = ended ? ended_tail_ : lru_tail_;
  (c.prev == kNone ? head : at(c.prev).next) = c.next;
  (c.next == kNone ? tail : at(c.next).prev) = c.prev;
  c.prev = c.next = kNone;
}

void HistoryAssembler::list_push_back(std::uint32_t idx, bool ended_list) {
  Conn &c = at(idx);
  std::uint32_t &head = ended_list ? ended_head_ : lru_head_;
  std::uint32_t &tail = ended_list ? ended_tail_ : lru_tail_;
  c.prev = tail;
  c.next = kNone;
  (tail == kNone ? head : at(tail).next) = idx;
  tail = idx;
}

void HistoryAssembler::touch(std::uint32_t idx) {
  if (at(idx).flags & kEnded || lru_tail_ == idx)
    return;
  list_unlink(idx);
  list_push_back(idx, false);
}

// ---- pool -------------------------------------------------------------------

std::uint32_t HistoryAssembler::create(std::uint64_t cookie) {
  if (count_ >= max_conns_)
    evict_one();
  std::uint32_t idx = free_head_;
  if (idx != kNone) {
    free_head_ = at(idx).next;
  } else {
    if (pool_used_ == chunks_.size() * kChunk)
      chunks_.push_back(std::make_unique_for_overwrite<Conn[]>(kChunk));
    idx = pool_used_++;
  }
  Conn &c = at(idx);
  c = Conn{};
  c.cookie = cookie;
  index_insert(idx);
  ++count_;
  list_push_back(idx, false);
  return idx;
}

void HistoryAssembler::release(std::uint32_t idx) {
  Conn &c = at(idx);
  list_unlink(idx);
  index_erase(c.cookie);
  if (c.flags & kListener) {
    auto it = listeners_.find(listener_key(c.netns, c.lport));
    if (it != listeners_.end() && it->second == idx)
      listeners_.erase(it);
  }
  --count_;
  c.next = free_head_;
  free_head_ = idx;
}

void HistoryAssembler::evict_one() {
  if (lru_head_ != kNone) {
    release(lru_head_);
    ++evicted_;
    return;
  }
  // Only ended connections: emit the oldest early rather than lose it.
  const std::uint32_t idx = ended_head_;
  ready_.push_back(make_record(at(idx), false));
  release(idx);
}

// ---- events -----------------------------------------------------------------

// A socket without storage (history's lazy mode: the ones connect() made)
// sends its transitions as the kernel sees them at that moment. What its
// storage would have added comes from its earlier records here, by the
// rules bpf/state.bpf.c applies (SocketMemory applies them in trace mode).
void HistoryAssembler::complete_unstored(Conn &c, tt_state_event &ev) {
  const std::uint8_t old_state = ev.old_state;
  if (old_state == st(TcpState::Close) && ev.new_state == st(TcpState::SynSent))
    ev.flags |= TT_F_ACTIVE;
  else if (old_state == st(TcpState::Listen) &&
           ev.new_state == st(TcpState::SynRecv))
    ev.flags |= TT_F_PASSIVE;
  ev.flags |= transition_isns(old_state, ev.new_state, ev.snd_una, ev.snd_nxt,
                              ev.rcv_nxt, ev.isn_local, ev.isn_remote);
  // The kernel names the owner at every system call that moves the socket:
  // the latest is the owner, as storage would keep it.
  if ((ev.flags & TT_F_OWNER) && in_owner_context(old_state, ev.new_state))
    c.flags &= static_cast<std::uint16_t>(~kOwner);
  // An RST seen earlier explains a CLOSE before an error or a timewait
  // inference does (the kernel's order, with its RST flags in storage).
  const bool inferred_tw = (ev.flags & TT_F_INFERRED) &&
                           ev.new_state == st(TcpState::TimeWait);
  if ((ev.new_state == st(TcpState::Close) || inferred_tw) &&
      (c.resets_sent || c.resets_received)) {
    ev.detail =
        c.resets_received ? TT_DETAIL_RESET_RCVD : TT_DETAIL_RESET_SENT;
    if (inferred_tw) {
      ev.new_state = st(TcpState::Close);
      ev.flags &= static_cast<std::uint8_t>(~TT_F_INFERRED);
    }
  }
}

std::uint16_t HistoryAssembler::cgroup_ref(std::uint64_t id) {
  auto it = cgroup_refs_.find(id);
  if (it != cgroup_refs_.end())
    return it->second;
  if (cgroup_ids_.size() > 0xffff)
    return 0; // full: unknown (65,535 distinct cgroups)
  const auto ref = static_cast<std::uint16_t>(cgroup_ids_.size());
  cgroup_ids_.push_back(id);
  cgroup_refs_.emplace(id, ref);
  return ref;
}

void HistoryAssembler::on_state(const tt_state_event &in) {
  tt_state_event ev = in; // completed below when the kernel had no storage
  const std::uint64_t ts = ev.hdr.ts_ns;
  std::uint32_t idx = find(ev.hdr.cookie);
  if (idx != kNone) {
    const Conn &old = at(idx);
    if (old.flags & kEnded && ev.old_state == st(TcpState::Close) &&
        ev.new_state != st(TcpState::Close) && ts > old.end_ns()) {
      ready_.push_back(make_record(old, false));
      release(idx);
      idx = kNone;
    }
  }
  const bool is_new = idx == kNone;
  if (is_new)
    idx = create(ev.hdr.cookie);
  Conn &c = at(idx);
  if (!ev.stored)
    complete_unstored(c, ev);

  // Attributes: the four-tuple once bound (lport is 0 at CLOSE -> SYN_SENT).
  if (is_new || ev.sk.lport != 0 || c.lport == 0) {
    std::memcpy(c.laddr, ev.sk.laddr, TT_ADDR_LEN);
    std::memcpy(c.raddr, ev.sk.raddr, TT_ADDR_LEN);
    c.lport = ev.sk.lport;
    c.rport = ev.sk.rport;
    c.af = ev.sk.af;
    c.netns = ev.sk.netns;
  }
  // Owner: the first event that knows it; before that, any non-zero pid.
  if (!(c.flags & kOwner) &&
      (ev.flags & TT_F_OWNER || (c.pid == 0 && ev.sk.pid != 0))) {
    c.pid = ev.sk.pid;
    std::memcpy(c.comm, ev.sk.comm, TT_COMM_LEN);
    if (ev.flags & TT_F_OWNER)
      c.flags |= kOwner;
    if (ev.sk.cgroup_id)
      c.cgroup = cgroup_ref(ev.sk.cgroup_id);
  }
  // The cgroup goes with the owner; before one is known, the socket's.
  if (c.cgroup == 0 && ev.sk.cgroup_id)
    c.cgroup = cgroup_ref(ev.sk.cgroup_id);
  if (ev.flags & TT_F_ACTIVE)
    c.flags |= kActive;
  if (ev.flags & TT_F_PASSIVE)
    c.flags |= kPassive;
  if (ev.flags & TT_F_ISN_LOCAL) {
    c.isn_local = ev.isn_local;
    c.flags |= kIsnLocal;
  }
  if (ev.flags & TT_F_ISN_REMOTE) {
    c.isn_remote = ev.isn_remote;
    c.flags |= kIsnRemote;
  }
  c.bytes_acked = std::max<std::uint64_t>(c.bytes_acked, ev.bytes_acked);
  c.bytes_received =
      std::max<std::uint64_t>(c.bytes_received, ev.bytes_received);
  c.total_retrans = std::max(c.total_retrans, ev.total_retrans);

  insert_step(c, ev);

  if (ev.new_state == st(TcpState::Listen)) {
    c.flags |= kListener;
    listeners_[listener_key(c.netns, c.lport)] = idx;
  }
  count_accept(c);

  if (is_terminal(ev.new_state) && !(c.flags & kEnded)) {
    c.detail = ev.detail;
    c.error = ev.error;
    list_unlink(idx);
    c.flags |= kEnded;
    list_push_back(idx, true);
  } else {
    touch(idx);
  }
}

void HistoryAssembler::count_accept(Conn &child) {
  if (kernel_accepts_ ||
      (child.flags & (kPassive | kListener | kAcceptCounted)) != kPassive ||
      !child.has_state(st(TcpState::Established)))
    return;
  child.flags |= kAcceptCounted;
  auto it = listeners_.find(listener_key(child.netns, child.lport));
  if (it == listeners_.end())
    return;
  saturating_inc(at(it->second).accepted);
  touch(it->second);
}

void HistoryAssembler::on_connection(const tt_conn_event &ev) {
  kernel_accepts_ = true;
  const std::size_t n = std::min<std::size_t>(ev.n_steps, TT_CONN_MAX_STEPS);
  if (n == 0)
    return;
  for (std::size_t i = 0; i < n; ++i) {
    const tt_conn_step &step = ev.steps[i];
    const bool last = i + 1 == n;
    tt_state_event se{};
    se.hdr = ev.hdr;
    se.hdr.kind = TT_KIND_STATE;
    se.hdr.size = sizeof(se);
    se.hdr.ts_ns = step.ts_ns;
    se.stored = 1; // complete: the kernel kept the path in storage
    se.sk = ev.sk;
    se.snd_una = step.snd_una;
    se.snd_nxt = step.snd_nxt;
    se.rcv_nxt = step.rcv_nxt;
    se.isn_local = ev.isn_local;
    se.isn_remote = ev.isn_remote;
    se.old_state = step.old_state;
    se.new_state = step.new_state;
    se.detail = step.detail;
    se.flags = static_cast<std::uint8_t>((step.flags & ~TT_F_CONN_MASK) |
                                         (ev.flags & TT_F_CONN_MASK));
    if (last) { // the counters only grow: the last values are the ones
      se.bytes_acked = ev.bytes_acked;
      se.bytes_received = ev.bytes_received;
      se.total_retrans = ev.total_retrans;
      se.error = ev.error;
    }
    on_state(se);
  }
  const std::uint32_t idx = find(ev.hdr.cookie);
  if (idx == kNone) // evicted at once (max_conns)
    return;
  Conn &c = at(idx);
  c.resets_sent = static_cast<std::uint16_t>(c.resets_sent + ev.resets_sent);
  c.resets_received =
      static_cast<std::uint16_t>(c.resets_received + ev.resets_received);
  c.steps_dropped = static_cast<std::uint8_t>(
      std::min(0xff, c.steps_dropped + ev.steps_dropped));
  if (c.flags & kListener) {
    c.accepted = ev.accepted;
    if (!(ev.conn_flags & TT_CF_ACCEPTED))
      c.flags |= kAcceptUnknown;
  }
}

void HistoryAssembler::refresh(const tt_conn_event &ev) {
  const std::uint32_t idx = find(ev.hdr.cookie);
  if (idx == kNone)
    return;
  Conn &c = at(idx);
  if (c.flags & kEnded)
    return;
  c.bytes_acked = std::max<std::uint64_t>(c.bytes_acked, ev.bytes_acked);
  c.bytes_received =
      std::max<std::uint64_t>(c.bytes_received, ev.bytes_received);
  c.total_retrans = std::max(c.total_retrans, ev.total_retrans);
}

ConnectionRecord HistoryAssembler::open_record(const tt_conn_event &ev) {
  // A cookie tracked already (not expected: open connections are not sent
  // on the ring in history mode) is left alone.
  if (find(ev.hdr.cookie) != kNone) {
    HistoryAssembler scratch(1, grace_ns_);
    return scratch.open_record(ev);
  }
  on_connection(ev);
  const std::uint32_t idx = find(ev.hdr.cookie);
  if (idx == kNone)
    return ConnectionRecord{};
  ConnectionRecord rec = make_record(at(idx), true);
  release(idx);
  return rec;
}

void HistoryAssembler::on_segment(const tt_seg_event &ev) {
  const std::uint32_t idx = find(ev.hdr.cookie);
  if (idx == kNone) {
    ++unmatched_segments_;
    return;
  }
  Conn &c = at(idx);
  if (ev.hdr.kind == TT_KIND_RETRANSMIT) {
    saturating_inc(c.retrans_events);
  } else if (ev.hdr.kind == TT_KIND_RESET) {
    if (ev.what == TT_RESET_SENT)
      saturating_inc(c.resets_sent);
    else if (ev.what == TT_RESET_RECEIVED)
      saturating_inc(c.resets_received);
  }
  if (ev.flags & TT_F_ISN_LOCAL) {
    c.isn_local = ev.isn_local;
    c.flags |= kIsnLocal;
  }
  if (ev.flags & TT_F_ISN_REMOTE) {
    c.isn_remote = ev.isn_remote;
    c.flags |= kIsnRemote;
  }
  if (!ev.stored) {
    // As storage would: the port a connect() that fails reads as 0 at
    // CLOSE, and the ISN a SYN carries.
    if (c.lport == 0)
      c.lport = ev.sk.lport;
    if (ev.state == st(TcpState::SynSent) && !(c.flags & kIsnLocal)) {
      if (ev.hdr.kind == TT_KIND_RETRANSMIT) {
        c.isn_local = ev.seq;
        c.flags |= kIsnLocal;
      } else if (ev.hdr.kind == TT_KIND_RESET && ev.snd_nxt) {
        c.isn_local = ev.snd_nxt - 1;
        c.flags |= kIsnLocal;
      }
    }
  }
  touch(idx);
}

// ---- output -----------------------------------------------------------------

void HistoryAssembler::advance(std::uint64_t now_ns,
                               std::vector<ConnectionRecord> &finished) {
  for (auto &rec : ready_)
    finished.push_back(std::move(rec));
  ready_.clear();
  while (ended_head_ != kNone) {
    const Conn &c = at(ended_head_);
    if (c.end_ns() + grace_ns_ > now_ns)
      break;
    finished.push_back(make_record(c, false));
    release(ended_head_);
  }
}

void HistoryAssembler::snapshot_open(std::vector<ConnectionRecord> &out) const {
  const std::size_t first = out.size();
  for (std::uint32_t idx = lru_head_; idx != kNone; idx = at(idx).next)
    out.push_back(make_record(at(idx), true));
  order_open(out, first);
}

void HistoryAssembler::order_open(std::vector<ConnectionRecord> &out,
                                  std::size_t first) {
  std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
            [](const ConnectionRecord &a, const ConnectionRecord &b) {
              const std::uint64_t ta = a.path.front().enter_ns;
              const std::uint64_t tb = b.path.front().enter_ns;
              return ta != tb ? ta < tb : a.cookie < b.cookie;
            });
}

void HistoryAssembler::flush_all(std::vector<ConnectionRecord> &out) {
  for (auto &rec : ready_)
    out.push_back(std::move(rec));
  ready_.clear();
  while (ended_head_ != kNone) {
    out.push_back(make_record(at(ended_head_), false));
    release(ended_head_);
  }
  snapshot_open(out);
  chunks_.clear();
  chunks_.shrink_to_fit();
  slots_.clear();
  slots_.shrink_to_fit();
  listeners_ = {};
  pool_used_ = 0;
  free_head_ = kNone;
  count_ = 0;
  lru_head_ = lru_tail_ = kNone;
}

namespace {

bool is_after_established(std::uint8_t s) {
  switch (static_cast<TcpState>(s)) {
  case TcpState::Established:
  case TcpState::FinWait1:
  case TcpState::FinWait2:
  case TcpState::Closing:
  case TcpState::TimeWait:
  case TcpState::CloseWait:
  case TcpState::LastAck:
    return true;
  default:
    return false;
  }
}

} // namespace

ConnectionRecord HistoryAssembler::make_record(const Conn &c, bool open) const {
  ConnectionRecord r;
  r.cookie = c.cookie;
  r.pid = c.pid;
  r.comm.assign(c.comm, strnlen(c.comm, TT_COMM_LEN));
  r.cgroup_id = c.cgroup < cgroup_ids_.size() ? cgroup_ids_[c.cgroup] : 0;
  copy_tuple(r, c);

  const std::uint8_t first_state = c.n_steps ? c.state[0] : 0;
  const bool born = c.first_old_state == st(TcpState::Close) ||
                    (c.first_old_state == st(TcpState::Listen) &&
                     first_state == st(TcpState::SynRecv));
  if (!born)
    r.prior_state = c.first_old_state;

  r.listener = c.flags & kListener;
  r.role = c.flags & kActive                  ? ConnRole::Active
           : c.flags & (kPassive | kListener) ? ConnRole::Passive
                                              : ConnRole::Unknown;
  if (r.listener && born && !(c.flags & kAcceptUnknown))
    r.accepted = c.accepted;
  if (c.flags & kIsnLocal)
    r.isn_local = c.isn_local;
  if (c.flags & kIsnRemote)
    r.isn_remote = c.isn_remote;

  r.path.reserve(c.n_steps);
  for (std::uint8_t i = 0; i < c.n_steps; ++i) {
    PathStep s;
    s.state = c.state[i];
    s.enter_ns = c.enter_ns[i];
    if (i + 1 < c.n_steps && !(i == 0 && c.steps_dropped))
      s.dur_ns = c.enter_ns[i + 1] - c.enter_ns[i];
    s.snd_una = c.seq[i][0];
    s.snd_nxt = c.seq[i][1];
    s.rcv_nxt = c.seq[i][2];
    r.path.push_back(s);
  }
  r.steps_dropped = c.steps_dropped;
  r.states = 1U << (c.first_old_state & 31);
  for (std::uint8_t i = 0; i < c.n_steps; ++i)
    r.states |= 1U << (c.state[i] & 31);

  // States in the order they were held, the prior (unobserved) one first.
  std::uint8_t seen[kMaxSteps + 1];
  std::size_t n_seen = 0;
  if (r.prior_state)
    seen[n_seen++] = *r.prior_state;
  for (std::uint8_t i = 0; i < c.n_steps; ++i)
    seen[n_seen++] = c.state[i];
  auto saw = [&](TcpState s) {
    return std::find(seen, seen + n_seen, st(s)) != seen + n_seen;
  };

  const std::uint8_t last = c.n_steps ? c.state[c.n_steps - 1] : 0;
  const std::uint8_t before_last =
      n_seen >= 2 ? seen[n_seen - 2] : c.first_old_state;
  const bool ended = (c.flags & kEnded) && !open;
  const bool reset = c.detail == TT_DETAIL_RESET_RCVD ||
                     c.detail == TT_DETAIL_RESET_SENT || c.error == ECONNRESET;

  SeqSlots slots;
  slots.active = r.role == ConnRole::Active;
  slots.syn_acked = std::any_of(seen, seen + n_seen, is_after_established);
  slots.fin_acked =
      saw(TcpState::FinWait2) || saw(TcpState::TimeWait) ||
      (last == st(TcpState::Close) && before_last == st(TcpState::LastAck) &&
       !reset && c.error == 0);
  slots.fin_received =
      saw(TcpState::CloseWait) || saw(TcpState::LastAck) ||
      saw(TcpState::Closing) ||
      (last == st(TcpState::TimeWait) && c.detail == TT_DETAIL_TW);
  const PayloadBytes payload =
      payload_bytes(slots, c.bytes_acked, c.bytes_received);
  r.bytes_acked = payload.acked;
  r.bytes_received = payload.received;
  r.retransmits = std::max(c.retrans_events, c.total_retrans);
  r.resets_sent = c.resets_sent;
  r.resets_received = c.resets_received;

  if (saw(TcpState::Closing)) {
    r.closed_first = ClosedFirst::Simultaneous;
  } else {
    for (std::size_t i = 0; i < n_seen; ++i) {
      const auto s = static_cast<TcpState>(seen[i]);
      if (s == TcpState::FinWait1 || s == TcpState::FinWait2) {
        r.closed_first = ClosedFirst::Local;
        break;
      }
      if (s == TcpState::CloseWait || s == TcpState::LastAck) {
        r.closed_first = ClosedFirst::Remote;
        break;
      }
    }
  }

  if (!ended) {
    r.end = ConnEnd::Open;
    return r;
  }
  r.error = c.error;
  // Closed without finishing a FIN exchange: when the event carries no
  // reset detail, the RST segment events tell.
  const bool abrupt = last == st(TcpState::Close) && !r.listener &&
                      before_last != st(TcpState::LastAck);
  const bool rst_received =
      c.detail == TT_DETAIL_RESET_RCVD || c.error == ECONNRESET;
  const bool rst_sent = c.detail == TT_DETAIL_RESET_SENT;
  if (c.error == ETIMEDOUT)
    r.end = ConnEnd::Timeout;
  else if (before_last == st(TcpState::SynSent) &&
           (c.error == ECONNREFUSED || rst_received))
    r.end = ConnEnd::Refused;
  else if (c.detail == TT_DETAIL_ORPHAN_FIN_WAIT2 && !rst_received &&
           !c.resets_received && !c.resets_sent)
    r.end = ConnEnd::OrphanFinWait2;
  else if (rst_received || (!rst_sent && abrupt && c.resets_received))
    r.end = ConnEnd::ResetReceived;
  else if (rst_sent || (abrupt && c.resets_sent))
    r.end = ConnEnd::ResetSent;
  else
    r.end = ConnEnd::Closed;
  return r;
}

bool record_matches(const FilterSpec &spec, const ConnectionRecord &rec) {
  tt_sock sk{};
  copy_tuple(sk, rec);
  sk.pid = rec.pid;
  sk.cgroup_id = rec.cgroup_id;
  std::memcpy(sk.comm, rec.comm.data(),
              std::min(rec.comm.size(), sizeof(sk.comm)));
  return matches_states(spec, sk, rec.states);
}

std::string_view conn_role_name(ConnRole role) {
  switch (role) {
  case ConnRole::Active:
    return "active";
  case ConnRole::Passive:
    return "passive";
  case ConnRole::Unknown:
    break;
  }
  return {};
}

std::string_view conn_end_name(ConnEnd end) {
  switch (end) {
  case ConnEnd::Closed:
    return "closed";
  case ConnEnd::ResetSent:
    return "reset_sent";
  case ConnEnd::ResetReceived:
    return "reset_received";
  case ConnEnd::Refused:
    return "refused";
  case ConnEnd::Timeout:
    return "timeout";
  case ConnEnd::OrphanFinWait2:
    return "orphan_fin_wait2";
  case ConnEnd::Open:
    break;
  }
  return "open";
}

std::string_view closed_first_name(ClosedFirst first) {
  switch (first) {
  case ClosedFirst::Local:
    return "local";
  case ClosedFirst::Remote:
    return "remote";
  case ClosedFirst::Simultaneous:
    return "simultaneous";
  case ClosedFirst::Unknown:
    break;
  }
  return {};
}

} // namespace tcptrail
