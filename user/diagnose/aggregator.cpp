#include "diagnose/aggregator.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "format/escape.h"
#include "net.h"
#include "tcp_state.h"

namespace tcptrail::diagnose {

namespace {

constexpr std::uint8_t kEstablished = 1, kSynSent = 2, kSynRecv = 3,
                       kFinWait1 = 4, kFinWait2 = 5, kTimeWait = 6,
                       kClose = 7, kCloseWait = 8, kLastAck = 9, kListen = 10,
                       kClosing = 11;
constexpr std::size_t kAbortedCap = 4096;

// States of a connection that was established (data could flow).
bool synchronized(std::uint8_t s) {
  return s == kEstablished || s == kFinWait1 || s == kFinWait2 ||
         s == kCloseWait || s == kClosing || s == kLastAck;
}

std::string comm_of(const tt_sock &sk) {
  return std::string(comm_view(sk.comm));
}

std::string tuple_of(const tt_sock &sk) {
  return fmt::format("{} -> {}", format_endpoint(sk.af, sk.laddr, sk.lport),
                     format_endpoint(sk.af, sk.raddr, sk.rport));
}

std::string endpoint_key(std::uint8_t af, const std::uint8_t (&addr)[16],
                         std::uint16_t port) {
  std::string k(3 + (af == 6 ? 16 : 4), '\0');
  k[0] = static_cast<char>(af);
  k[1] = static_cast<char>(port >> 8);
  k[2] = static_cast<char>(port & 0xff);
  std::memcpy(k.data() + 3, addr, k.size() - 3);
  return k;
}

std::string process_key(std::uint32_t pid, std::string_view comm) {
  std::string k(4, '\0');
  std::memcpy(k.data(), &pid, 4);
  k.append(comm);
  return k;
}

template <class MakeLabel>
void tally(DiagnoseAggregator::Tally &t, std::size_t cap, std::string key,
           std::uint64_t n, std::uint64_t &dropped_total, MakeLabel &&make) {
  auto it = t.items.find(key);
  if (it == t.items.end()) {
    if (t.items.size() >= cap) {
      t.dropped += n;
      ++dropped_total;
      return;
    }
    it = t.items.emplace(std::move(key), make()).first;
  }
  it->second.count += n;
}

std::vector<const DiagnoseAggregator::Item *>
top_items(const DiagnoseAggregator::Tally &t, std::size_t n) {
  std::vector<const DiagnoseAggregator::Item *> v;
  v.reserve(t.items.size());
  for (const auto &[k, item] : t.items)
    v.push_back(&item);
  std::sort(v.begin(), v.end(), [](const auto *a, const auto *b) {
    if (a->count != b->count)
      return a->count > b->count;
    if (a->label != b->label)
      return a->label < b->label;
    return a->pid < b->pid;
  });
  if (v.size() > n)
    v.resize(n);
  return v;
}

std::int64_t mib(const std::map<std::string, std::int64_t> &m,
                 const char *key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

void fill_common(Evidence &e, const DiagnoseAggregator::KindStats &k,
                 std::size_t top) {
  for (const auto *it : top_items(k.endpoints, top))
    e.remote_endpoints.push_back({it->label, it->count});
  for (const auto *it : top_items(k.processes, top))
    e.processes.push_back({it->pid, it->label, it->count});
  e.examples = k.examples;
}

std::string plural(std::uint64_t n, const char *one, const char *many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

} // namespace

std::string_view severity_name(Severity s) {
  return s == Severity::Critical ? "critical" : "warning";
}

DiagnoseAggregator::DiagnoseAggregator(DiagnoseConfig cfg) : cfg_(cfg) {}

void DiagnoseAggregator::count_kind(KindStats &k, std::uint8_t af,
                                    const std::uint8_t (&raddr)[16],
                                    std::uint16_t rport, const tt_sock &sk,
                                    std::uint64_t n) {
  k.count += n;
  tally(k.endpoints, cfg_.max_endpoints, endpoint_key(af, raddr, rport), n,
        dropped_.endpoints,
        [&] { return Item{0, format_endpoint(af, raddr, rport), 0}; });
  const std::string_view comm = comm_view(sk.comm);
  tally(k.processes, cfg_.max_processes, process_key(sk.pid, comm), n,
        dropped_.processes,
        [&] { return Item{0, std::string(comm), sk.pid}; });
  if (k.examples.size() < cfg_.examples) {
    std::string t = tuple_of(sk);
    if (std::find(k.examples.begin(), k.examples.end(), t) == k.examples.end())
      k.examples.push_back(std::move(t));
  }
}

void DiagnoseAggregator::on_state(const tt_state_event &ev) {
  ++events_;
  ++totals_.state_events;
  const std::uint8_t old = ev.old_state, now = ev.new_state;
  const std::uint64_t cookie = ev.hdr.cookie;
  ++pairs_[std::min<std::uint8_t>(old, 15)][std::min<std::uint8_t>(now, 15)];
  if (ev.flags & TT_F_OLD_TS)
    state_hist_[std::min<std::uint8_t>(old, 15)].record(ev.old_state_ns);

  if (old == kClose && now == kSynSent)
    ++totals_.connect_attempts;

  if (old == kSynSent) {
    std::uint64_t syn_retrans = 0;
    if (auto it = syn_retrans_by_cookie_.find(cookie);
        it != syn_retrans_by_cookie_.end()) {
      syn_retrans = it->second;
      syn_retrans_by_cookie_.erase(it);
    }
    if (now == kEstablished) {
      ++totals_.opened_active;
      if (ev.flags & TT_F_OLD_TS)
        connect_hist_.record(ev.old_state_ns);
      if (syn_retrans)
        count_kind(slow_connects_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
    } else if (now == kClose) {
      ++totals_.failed_connects;
      if (ev.error == ECONNREFUSED || ev.detail == TT_DETAIL_RESET_RCVD)
        count_kind(refused_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
      else if (ev.error == ETIMEDOUT)
        count_kind(timeouts_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
      else if (ev.error != 0) {
        count_kind(connect_errors_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
        ++connect_errnos_[ev.error];
      }
    }
  }
  if (old == kSynRecv && now == kEstablished)
    ++totals_.opened_passive;
  if (now == kListen && ev.sk.pid &&
      listen_owners_.size() < cfg_.max_listeners)
    listen_owners_[fmt::format("{}/{}", ev.sk.netns, ev.sk.lport)] =
        SocketOwner{ev.sk.pid, comm_of(ev.sk), ev.sk.cgroup_id};

  if (now == kTimeWait) {
    ++totals_.time_wait;
    ++totals_.closed;
    count_kind(time_wait_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
  } else if (now == kClose && old != kListen && old != kSynSent &&
             old != kClose) {
    ++totals_.closed;
  }

  // LAST_ACK -> CLOSE is the normal end; FIN_WAIT2/CLOSING become TIME_WAIT.
  if (now == kClose &&
      (old == kEstablished || old == kCloseWait || old == kFinWait1) &&
      (ev.detail == TT_DETAIL_NONE || ev.detail == TT_DETAIL_ERROR)) {
    // Closed without a FIN exchange or a received RST: an abort, whose RST
    // (if any) follows with state CLOSE.
    if (aborted_.emplace(cookie, old).second) {
      aborted_order_.push_back(cookie);
      if (aborted_order_.size() > kAbortedCap) {
        aborted_.erase(aborted_order_.front());
        aborted_order_.pop_front();
      }
    }
  }

  if (now == kCloseWait) {
    ++close_wait_entered_;
    if (close_wait_.size() < cfg_.max_connections || close_wait_.count(cookie)) {
      ConnInfo &c = close_wait_[cookie];
      c.tuple = tuple_of(ev.sk);
      c.pid = ev.sk.pid;
      c.comm = comm_of(ev.sk);
      c.since_ns = ev.hdr.ts_ns;
      c.cgroup_id = ev.sk.cgroup_id;
    } else {
      ++dropped_.connections;
    }
  } else if (old == kCloseWait) {
    close_wait_.erase(cookie);
  }
}

void DiagnoseAggregator::on_segment(const tt_seg_event &ev) {
  ++events_;
  const std::uint64_t cookie = ev.hdr.cookie;
  if (ev.hdr.kind == TT_KIND_RETRANSMIT) {
    ++totals_.retransmit_events;
    if (ev.what == TT_RETRANS_DATA) {
      count_kind(retrans_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
      auto it = retrans_by_conn_.find(cookie);
      if (it == retrans_by_conn_.end()) {
        if (retrans_by_conn_.size() >= cfg_.max_connections) {
          ++dropped_.connections;
          return;
        }
        it = retrans_by_conn_.emplace(cookie, ConnInfo{}).first;
        it->second.tuple = tuple_of(ev.sk);
      }
      it->second.pid = ev.sk.pid;
      it->second.comm = comm_of(ev.sk);
      it->second.cgroup_id = ev.sk.cgroup_id;
      ++it->second.count;
    } else if (ev.what == TT_RETRANS_SYN) {
      ++syn_retransmits_;
      auto it = syn_retrans_by_cookie_.find(cookie);
      if (it != syn_retrans_by_cookie_.end())
        ++it->second;
      else if (syn_retrans_by_cookie_.size() < cfg_.max_connections)
        syn_retrans_by_cookie_.emplace(cookie, 1);
      else
        ++dropped_.connections;
    } else if (ev.what == TT_RETRANS_SYNACK) {
      ++synack_retransmits_;
      std::string key = fmt::format("{}/{}", ev.sk.netns,
                                    format_endpoint(ev.sk.af, ev.sk.laddr, ev.sk.lport));
      auto it = listeners_.find(key);
      if (it == listeners_.end()) {
        if (listeners_.size() >= cfg_.max_listeners) {
          ++dropped_.listeners;
          return;
        }
        ListenerStats l;
        l.listener = format_endpoint(ev.sk.af, ev.sk.laddr, ev.sk.lport);
        l.af = ev.sk.af;
        l.lport = ev.sk.lport;
        l.netns = ev.sk.netns;
        it = listeners_.emplace(std::move(key), std::move(l)).first;
      }
      if (ev.sk.pid) {
        it->second.pid = ev.sk.pid;
        it->second.comm = comm_of(ev.sk);
      }
      if (ev.sk.cgroup_id)
        it->second.cgroup_id = ev.sk.cgroup_id;
      ++it->second.synack;
    }
    return;
  }
  if (ev.hdr.kind != TT_KIND_RESET)
    return;
  ++totals_.reset_events;
  if (ev.what == TT_RESET_SENT) {
    if (cookie == 0 && ev.state == kClose) {
      // The segment answered had no socket: a closed port. sk.raddr is the
      // sender of that segment.
      count_kind(closed_port_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
    } else if (synchronized(ev.state)) {
      count_kind(reset_sent_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
    } else if (ev.state == kClose) {
      if (auto it = aborted_.find(cookie); it != aborted_.end()) {
        aborted_.erase(it);
        aborted_order_.erase(
            std::find(aborted_order_.begin(), aborted_order_.end(), cookie));
        count_kind(reset_sent_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
      }
    }
  } else if (ev.what == TT_RESET_RECEIVED && synchronized(ev.state)) {
    count_kind(reset_rcvd_, ev.sk.af, ev.sk.raddr, ev.sk.rport, ev.sk);
  }
}

std::size_t DiagnoseAggregator::problems_so_far() const {
  std::size_t n = lost_ > 0;
  n += refused_.count >= cfg_.min_refused;
  n += timeouts_.count >= cfg_.min_timeouts;
  n += connect_errors_.count >= 1;
  n += slow_connects_.count >= cfg_.min_slow_connects;
  n += reset_rcvd_.count >= cfg_.min_resets;
  n += reset_sent_.count >= cfg_.min_resets;
  n += closed_port_.count >= cfg_.min_closed_port_rsts;
  n += retrans_.count >= cfg_.min_retransmits;
  n += synack_retransmits_ >= cfg_.min_synack_retransmits;
  return n;
}

Report DiagnoseAggregator::report(std::uint64_t start_ns,
                                  std::uint64_t end_ns) const {
  Report r;
  r.duration_ns = end_ns > start_ns ? end_ns - start_ns : 0;
  r.netns = netns_;
  r.lost = lost_;
  r.storage_fail = storage_fail_;
  r.totals = totals_;
  r.totals.events = events_;
  for (std::size_t o = 0; o < 16; ++o)
    for (std::size_t n = 0; n < 16; ++n)
      if (pairs_[o][n])
        r.totals.transitions[fmt::format(
            "{}->{}", state_label(static_cast<std::uint8_t>(o)),
            state_label(static_cast<std::uint8_t>(n)))] = pairs_[o][n];

  const bool have_mib = start_ && end_ && start_->ok && end_->ok &&
                        start_->netns == end_->netns;
  if (have_mib) {
    r.mib_delta = mib_delta(start_->mib, end_->mib);
    r.counters_netns = end_->netns;
  }
  for (const auto *snap : {&start_, &end_})
    if (*snap && !(*snap)->error.empty() &&
        std::find(r.notes.begin(), r.notes.end(), (*snap)->error) == r.notes.end())
      r.notes.emplace_back((*snap)->error);
  if (!start_ || !end_)
    r.notes.emplace_back("namespace counters not read: listener overflow, "
                      "SYN cookie and pre-existing CLOSE_WAIT checks are "
                      "incomplete");
  const auto &md = r.mib_delta;
  const double secs =
      std::max(1.0, static_cast<double>(r.duration_ns) / 1e9);

  auto add = [&](bool problem, std::string kind, std::string line) {
    r.checks.push_back({std::move(kind), problem, std::move(line)});
  };
  auto connect_severity = [&](std::uint64_t n) {
    return n >= 10 && n * 2 >= totals_.connect_attempts ? Severity::Critical
                                                        : Severity::Warning;
  };

  // events_lost
  if (lost_) {
    Problem p;
    p.kind = "events_lost";
    p.severity = Severity::Critical;
    p.count = lost_;
    p.summary = fmt::format("{} lost: every count below is a lower bound",
                            plural(lost_, "event", "events"));
    p.meaning = "The ring buffer was full: the host produced events faster "
                "than tcptrail read them. Rerun with a larger --ringbuf-size "
                "or narrower filters (--netns, --lport, --raddr).";
    r.problems.push_back(std::move(p));
    add(true, "events_lost", r.problems.back().summary);
  } else {
    add(false, "events_lost", "events lost: 0");
  }

  // refused
  if (refused_.count >= cfg_.min_refused) {
    Problem p;
    p.kind = "refused";
    p.severity = connect_severity(refused_.count);
    p.count = refused_.count;
    p.summary = fmt::format("{} refused (RST answered our SYN), of {} connect "
                            "attempts",
                            plural(refused_.count, "connect", "connects"),
                            totals_.connect_attempts);
    p.meaning = "Nothing listens on that address and port (service down, "
                "wrong port, listener not started yet), or a firewall "
                "rejects with a TCP reset.";
    fill_common(p.evidence, refused_, cfg_.top);
    r.problems.push_back(std::move(p));
    add(true, "refused", r.problems.back().summary);
  } else {
    add(false, "refused", fmt::format("refused connects: none of {}",
                                      totals_.connect_attempts));
  }

  // connect_timeout
  if (timeouts_.count >= cfg_.min_timeouts) {
    Problem p;
    p.kind = "connect_timeout";
    p.severity = connect_severity(timeouts_.count);
    p.count = timeouts_.count;
    p.summary = fmt::format("{} timed out (SYNs never answered, ETIMEDOUT)",
                            plural(timeouts_.count, "connect", "connects"));
    p.meaning = "The SYNs were dropped on the way or never answered: a "
                "firewall silently drops them, the address is unroutable or "
                "not there, or the peer is down or overloaded.";
    fill_common(p.evidence, timeouts_, cfg_.top);
    p.evidence.counters["syn_retransmits"] =
        static_cast<std::int64_t>(syn_retransmits_);
    r.problems.push_back(std::move(p));
    add(true, "connect_timeout", r.problems.back().summary);
  } else {
    add(false, "connect_timeout", "connect timeouts: none");
  }

  // connect_error (unreachable, ...)
  if (connect_errors_.count >= 1) {
    Problem p;
    p.kind = "connect_error";
    p.severity = connect_severity(connect_errors_.count);
    p.count = connect_errors_.count;
    p.summary = fmt::format("{} failed with another error",
                            plural(connect_errors_.count, "connect", "connects"));
    p.meaning = "Usually ICMP errors: host or network unreachable (no route, "
                "neighbour not answering ARP/ND), or a firewall rejecting "
                "with ICMP.";
    fill_common(p.evidence, connect_errors_, cfg_.top);
    for (const auto &[err, n] : connect_errnos_)
      p.evidence.counters[errno_name(err)] = static_cast<std::int64_t>(n);
    r.problems.push_back(std::move(p));
    add(true, "connect_error", r.problems.back().summary);
  } else {
    add(false, "connect_error", "other connect errors: none");
  }

  // syn_retransmits: connects that needed SYN retransmits but succeeded
  if (slow_connects_.count >= cfg_.min_slow_connects) {
    Problem p;
    p.kind = "syn_retransmits";
    p.severity = Severity::Warning;
    p.count = slow_connects_.count;
    p.summary = fmt::format("{} established only after SYN retransmits "
                            "(each adds ~1s or more)",
                            plural(slow_connects_.count, "connect", "connects"));
    p.meaning = "SYNs or SYN-ACKs are being lost: packet loss on the path, "
                "or the server's SYN queue overflowing (see its listener "
                "health).";
    fill_common(p.evidence, slow_connects_, cfg_.top);
    p.evidence.counters["syn_retransmits"] =
        static_cast<std::int64_t>(syn_retransmits_);
    r.problems.push_back(std::move(p));
    add(true, "syn_retransmits", r.problems.back().summary);
  } else {
    add(false, "syn_retransmits",
        fmt::format("SYN retransmits: {}", syn_retransmits_));
  }

  auto reset_problem = [&](const KindStats &k, const char *kind,
                           const char *what, const char *meaning) {
    if (k.count >= cfg_.min_resets) {
      Problem p;
      p.kind = kind;
      p.severity = k.count >= 10 && k.count * 10 >= totals_.closed
                       ? Severity::Critical
                       : Severity::Warning;
      p.count = k.count;
      p.summary = fmt::format("{} {} on established connections",
                              plural(k.count, "reset", "resets"), what);
      p.meaning = meaning;
      fill_common(p.evidence, k, cfg_.top);
      r.problems.push_back(std::move(p));
      add(true, kind, r.problems.back().summary);
    } else {
      add(false, kind, fmt::format("resets {} on established connections: "
                                   "none", what));
    }
  };
  reset_problem(reset_rcvd_, "reset_received", "received",
                "The peer aborted the connection: it crashed or restarted, "
                "closed with unread data or SO_LINGER 0, timed the "
                "connection out, or a middlebox (load balancer, NAT, "
                "firewall) dropped its state and reset it.");
  reset_problem(reset_sent_, "reset_sent", "sent",
                "This host aborted connections: an application closed with "
                "unread data or with SO_LINGER 0, or segments arrived for a "
                "connection it had already dropped.");

  if (closed_port_.count >= cfg_.min_closed_port_rsts) {
    Problem p;
    p.kind = "closed_port";
    p.severity = Severity::Warning;
    p.count = closed_port_.count;
    p.summary = fmt::format("{} sent for segments to ports with no socket",
                            plural(closed_port_.count, "reset", "resets"));
    p.meaning = "Peers (listed) send to a local port where nothing listens: "
                "clients of a stopped service, or late segments of "
                "connections this host already forgot. Local endpoints are "
                "in the examples.";
    fill_common(p.evidence, closed_port_, cfg_.top);
    r.problems.push_back(std::move(p));
    add(true, "closed_port", r.problems.back().summary);
  } else {
    add(false, "closed_port", "resets for closed ports: none");
  }

  // retransmits
  {
    const std::int64_t out_segs = mib(md, "Tcp.OutSegs");
    const std::int64_t retrans_segs = mib(md, "Tcp.RetransSegs");
    const bool have_rate = have_mib && out_segs > 0;
    const double rate =
        have_rate ? static_cast<double>(retrans_segs) / static_cast<double>(out_segs) : 0;
    if (retrans_.count >= cfg_.min_retransmits &&
        (!have_rate || rate >= cfg_.min_retransmit_rate)) {
      Problem p;
      p.kind = "retransmits";
      p.severity = have_rate && rate >= 0.05 ? Severity::Critical
                                             : Severity::Warning;
      p.count = retrans_.count;
      p.summary =
          have_rate
              ? fmt::format("{} data retransmits; {:.1f}% of the namespace's "
                            "segments were retransmissions",
                            retrans_.count, rate * 100)
              : fmt::format("{} data retransmits", retrans_.count);
      p.meaning = "Segments are lost or acknowledged too late: congestion, "
                  "a lossy or saturated link, a policer or firewall "
                  "dropping packets, or a peer too slow to read.";
      fill_common(p.evidence, retrans_, cfg_.top);
      std::vector<std::pair<std::uint64_t, const ConnInfo *>> conns;
      for (const auto &[cookie, c] : retrans_by_conn_)
        conns.emplace_back(cookie, &c);
      std::sort(conns.begin(), conns.end(), [](const auto &a, const auto &b) {
        return a.second->count != b.second->count
                   ? a.second->count > b.second->count
                   : a.first < b.first;
      });
      for (std::size_t i = 0; i < conns.size() && i < cfg_.top; ++i)
        p.evidence.connections.push_back({conns[i].second->tuple,
                                          conns[i].first,
                                          conns[i].second->pid,
                                          conns[i].second->comm,
                                          conns[i].second->count,
                                          {},
                                          false,
                                          conns[i].second->cgroup_id});
      p.evidence.counters["connections"] =
          static_cast<std::int64_t>(retrans_by_conn_.size());
      if (have_mib) {
        p.evidence.counters["Tcp.RetransSegs"] = retrans_segs;
        p.evidence.counters["Tcp.OutSegs"] = out_segs;
        p.evidence.counters["rate_ppm"] =
            static_cast<std::int64_t>(std::llround(rate * 1e6));
      }
      r.problems.push_back(std::move(p));
      add(true, "retransmits", r.problems.back().summary);
    } else {
      add(false, "retransmits",
          have_rate ? fmt::format("data retransmits: {} ({:.2f}% of segments)",
                                  retrans_.count, rate * 100)
                    : fmt::format("data retransmits: {}", retrans_.count));
    }
  }

  // listener health
  {
    static constexpr const char *kListenMib[] = {
        "TcpExt.ListenOverflows", "TcpExt.ListenDrops",
        "TcpExt.SyncookiesSent", "TcpExt.TCPReqQFullDrop",
        "TcpExt.TCPReqQFullDoCookies"};
    std::int64_t mib_sum = 0;
    for (const char *k : kListenMib)
      mib_sum += std::max<std::int64_t>(0, mib(md, k));

    // Listeners seen in the namespace at the end (and the start).
    std::vector<ListenerEvidence> ls;
    std::set<std::uint64_t> want_inodes;
    std::map<std::uint16_t, std::uint32_t> syn_recv_by_port;
    std::map<std::string, std::uint32_t> start_rq;
    auto lkey = [](const DiagSock &s) {
      return fmt::format("{}/{}", s.af, format_endpoint(s.af, s.laddr, s.lport));
    };
    if (start_ && start_->sockets_ok)
      for (const auto &s : start_->sockets)
        if (s.state == kListen)
          start_rq[lkey(s)] = s.rqueue;
    std::vector<std::pair<const DiagSock *, bool>> end_listeners;
    if (end_ && end_->sockets_ok) {
      for (const auto &s : end_->sockets)
        if (s.state == kSynRecv)
          ++syn_recv_by_port[s.lport];
      for (const auto &s : end_->sockets)
        if (s.state == kListen)
          end_listeners.emplace_back(&s, false);
    }
    std::set<std::string> matched_events;
    bool at_limit = false;
    for (auto &[s, unused] : end_listeners) {
      ListenerEvidence l;
      l.listener = format_endpoint(s->af, s->laddr, s->lport);
      l.accept_queue = s->rqueue;
      l.accept_queue_limit = s->wqueue;
      std::uint32_t peak = s->rqueue;
      if (auto it = start_rq.find(lkey(*s)); it != start_rq.end())
        peak = std::max(peak, it->second);
      l.accept_queue_peak = peak;
      if (auto it = syn_recv_by_port.find(s->lport); it != syn_recv_by_port.end())
        l.syn_recv = it->second;
      else
        l.syn_recv = 0;
      for (const auto &[key, st] : listeners_) {
        if (st.lport != s->lport || (end_->netns && st.netns != end_->netns))
          continue;
        l.synack_retransmits += st.synack;
        if (st.pid && !l.pid) {
          l.pid = st.pid;
          l.comm = st.comm;
        }
        if (st.cgroup_id && !l.cgroup_id)
          l.cgroup_id = st.cgroup_id;
        matched_events.insert(key);
      }
      if (!l.pid) {
        auto it = listen_owners_.find(fmt::format("{}/{}", end_->netns, s->lport));
        if (it != listen_owners_.end()) {
          l.pid = it->second.pid;
          l.comm = it->second.comm;
          if (!l.cgroup_id)
            l.cgroup_id = it->second.cgroup_id;
        }
      }
      if (!l.pid && start_) {
        auto it = start_->owners.find(s->inode);
        if (it != start_->owners.end()) {
          l.pid = it->second.pid;
          l.comm = it->second.comm;
        }
      }
      const bool full = peak > 0 && peak >= s->wqueue;
      at_limit = at_limit || full;
      if (!full && l.synack_retransmits == 0 && !(mib_sum > 0 && *l.syn_recv > 0))
        continue;
      if (!l.pid && s->inode)
        want_inodes.insert(s->inode);
      ls.push_back(std::move(l));
      unused = true;
    }
    // SYN-ACK retransmits of listeners not in the snapshot (other namespaces).
    for (const auto &[key, st] : listeners_) {
      if (matched_events.count(key))
        continue;
      ListenerEvidence l;
      l.listener = st.listener;
      l.pid = st.pid;
      l.comm = st.comm;
      l.cgroup_id = st.cgroup_id;
      l.synack_retransmits = st.synack;
      ls.push_back(std::move(l));
    }
    if (owners_ && !want_inodes.empty()) {
      const auto owners = owners_(want_inodes);
      for (auto &l : ls) {
        if (l.pid)
          continue;
        for (const auto &[s, used] : end_listeners) {
          if (!used || format_endpoint(s->af, s->laddr, s->lport) != l.listener)
            continue;
          if (auto it = owners.find(s->inode); it != owners.end()) {
            l.pid = it->second.pid;
            l.comm = it->second.comm;
          }
        }
      }
    }
    std::sort(ls.begin(), ls.end(), [](const auto &a, const auto &b) {
      const auto fa = a.accept_queue_peak.value_or(0) >= a.accept_queue_limit.value_or(~0U);
      const auto fb = b.accept_queue_peak.value_or(0) >= b.accept_queue_limit.value_or(~0U);
      if (fa != fb)
        return fa;
      if (a.synack_retransmits != b.synack_retransmits)
        return a.synack_retransmits > b.synack_retransmits;
      return a.listener < b.listener;
    });
    const bool problem = mib_sum > 0 || at_limit ||
                         synack_retransmits_ >= cfg_.min_synack_retransmits;
    if (problem) {
      Problem p;
      p.kind = "listener";
      const std::int64_t drops = mib(md, "TcpExt.ListenDrops") +
                                 mib(md, "TcpExt.TCPReqQFullDrop");
      p.severity = drops > 0 ? Severity::Critical : Severity::Warning;
      std::uint64_t count = synack_retransmits_;
      for (const char *k : {"TcpExt.ListenDrops", "TcpExt.SyncookiesSent",
                            "TcpExt.TCPReqQFullDrop"})
        count += static_cast<std::uint64_t>(std::max<std::int64_t>(0, mib(md, k)));
      p.count = std::max<std::uint64_t>(count, 1);
      std::vector<std::string> parts;
      if (mib(md, "TcpExt.ListenOverflows") > 0)
        parts.push_back(fmt::format("{} accept-queue overflows",
                                    mib(md, "TcpExt.ListenOverflows")));
      if (mib(md, "TcpExt.ListenDrops") > 0)
        parts.push_back(fmt::format("{} SYN/ACK drops",
                                    mib(md, "TcpExt.ListenDrops")));
      if (mib(md, "TcpExt.SyncookiesSent") > 0)
        parts.push_back(fmt::format("{} SYN cookies sent",
                                    mib(md, "TcpExt.SyncookiesSent")));
      if (mib(md, "TcpExt.TCPReqQFullDrop") > 0)
        parts.push_back(fmt::format("{} SYNs dropped (SYN queue full)",
                                    mib(md, "TcpExt.TCPReqQFullDrop")));
      if (synack_retransmits_)
        parts.push_back(fmt::format("{} SYN-ACK retransmits", synack_retransmits_));
      if (at_limit)
        parts.emplace_back("an accept queue at its limit");
      std::string joined;
      for (const auto &s : parts)
        joined += (joined.empty() ? "" : ", ") + s;
      p.summary = "listeners under pressure: " + joined;
      p.meaning = "Connections arrive faster than the application accepts "
                  "them (accept queue full: overflows, drops), or a SYN "
                  "flood fills the SYN queue (SYN cookies, SYN-ACK "
                  "retransmits to clients that never complete the "
                  "handshake). Look at the owner's accept loop and its "
                  "listen() backlog (capped by net.core.somaxconn).";
      for (const char *k : kListenMib)
        if (have_mib)
          p.evidence.counters[k] = mib(md, k);
      p.evidence.counters["synack_retransmits"] =
          static_cast<std::int64_t>(synack_retransmits_);
      if (end_ && end_->somaxconn >= 0)
        p.evidence.counters["net.core.somaxconn"] = end_->somaxconn;
      if (end_ && end_->max_syn_backlog >= 0)
        p.evidence.counters["net.ipv4.tcp_max_syn_backlog"] = end_->max_syn_backlog;
      if (end_ && end_->syncookies >= 0)
        p.evidence.counters["net.ipv4.tcp_syncookies"] = end_->syncookies;
      std::map<std::pair<std::uint32_t, std::string>, std::uint64_t> procs;
      for (const auto &l : ls)
        procs[{l.pid, l.comm}] += l.synack_retransmits;
      for (const auto &[k, n] : procs)
        p.evidence.processes.push_back({k.first, k.second, n});
      std::stable_sort(p.evidence.processes.begin(), p.evidence.processes.end(),
                       [](const auto &a, const auto &b) { return a.count > b.count; });
      if (p.evidence.processes.size() > cfg_.top)
        p.evidence.processes.resize(cfg_.top);
      if (ls.size() > cfg_.top)
        ls.resize(cfg_.top);
      p.evidence.listeners = std::move(ls);
      r.problems.push_back(std::move(p));
      add(true, "listener", r.problems.back().summary);
    } else {
      add(false, "listener",
          have_mib ? "listeners: no overflows, drops, SYN cookies or SYN-ACK "
                     "retransmits"
                   : fmt::format("listeners: {} SYN-ACK retransmits (namespace "
                                 "counters unavailable)",
                                 synack_retransmits_));
    }
  }

  // TIME_WAIT per remote endpoint
  {
    std::uint32_t range = 0;
    for (const auto *snap : {&end_, &start_})
      if (!range && *snap && (*snap)->port_hi >= (*snap)->port_lo &&
          (*snap)->port_hi)
        range = (*snap)->port_hi - (*snap)->port_lo + 1;
    if (!range) {
      range = cfg_.default_port_range;
      r.notes.push_back(fmt::format("ip_local_port_range not read: assuming "
                                    "{} ports",
                                    range));
    }
    r.port_range_size = range;
    std::map<std::string, std::uint64_t> now_by_ep;
    if (end_ && end_->sockets_ok)
      for (const auto &s : end_->sockets)
        if (s.state == kTimeWait)
          ++now_by_ep[format_endpoint(s.af, s.raddr, s.rport)];
    std::map<std::string, TimeWaitEndpoint> eps;
    for (const auto &[k, item] : time_wait_.endpoints.items) {
      auto &e = eps[item.label];
      e.endpoint = item.label;
      e.count = item.count;
    }
    for (const auto &[ep, n] : now_by_ep) {
      auto &e = eps[ep];
      e.endpoint = ep;
      e.now = n;
    }
    std::uint64_t total_now = 0;
    for (auto &[ep, e] : eps) {
      e.rate_per_s = static_cast<double>(e.count) / secs;
      const double steady = e.rate_per_s *
                            (static_cast<double>(cfg_.time_wait_len_ns) / 1e9);
      e.projected = std::max<std::uint64_t>(
          e.now, static_cast<std::uint64_t>(std::llround(steady)));
      total_now += e.now;
    }
    std::vector<TimeWaitEndpoint> sorted;
    sorted.reserve(eps.size());
    for (auto &[ep, e] : eps)
      sorted.push_back(e);
    std::sort(sorted.begin(), sorted.end(), [](const auto &a, const auto &b) {
      if (a.projected != b.projected)
        return a.projected > b.projected;
      if (a.count != b.count)
        return a.count > b.count;
      return a.endpoint < b.endpoint;
    });
    const std::uint64_t worst = sorted.empty() ? 0 : sorted.front().projected;
    const double frac = static_cast<double>(worst) / range;
    if (sorted.size() > cfg_.top)
      sorted.resize(cfg_.top);
    r.time_wait = sorted;
    if (frac >= cfg_.time_wait_port_fraction) {
      Problem p;
      p.kind = "time_wait";
      p.severity = frac >= cfg_.time_wait_critical_fraction ? Severity::Critical
                                                            : Severity::Warning;
      p.count = totals_.time_wait;
      p.summary = fmt::format(
          "TIME_WAIT pile-up: up to {} sockets towards {} ({:.0f}% of the {} "
          "ephemeral ports); {} entered TIME_WAIT ({:.1f}/s)",
          worst, r.time_wait.front().endpoint, frac * 100, range,
          totals_.time_wait, static_cast<double>(totals_.time_wait) / secs);
      p.meaning = "Many short connections to the same remote endpoint, "
                  "closed by this side: each holds its local port for 60s "
                  "in TIME_WAIT. connect() will fail with EADDRNOTAVAIL "
                  "when the port range runs out. Reuse connections "
                  "(keep-alive, pooling), widen ip_local_port_range, or "
                  "consider net.ipv4.tcp_tw_reuse.";
      fill_common(p.evidence, time_wait_, cfg_.top);
      p.evidence.remote_endpoints.clear();
      for (const auto &e : r.time_wait)
        p.evidence.remote_endpoints.push_back({e.endpoint, e.projected});
      p.evidence.counters["time_wait_entered"] =
          static_cast<std::int64_t>(totals_.time_wait);
      p.evidence.counters["time_wait_now"] = static_cast<std::int64_t>(total_now);
      p.evidence.counters["worst_endpoint_projected"] =
          static_cast<std::int64_t>(worst);
      p.evidence.counters["port_range_size"] = range;
      r.problems.push_back(std::move(p));
      add(true, "time_wait", r.problems.back().summary);
    } else {
      add(false, "time_wait",
          fmt::format("TIME_WAIT: {} entered ({:.1f}/s), worst endpoint "
                      "{:.1f}% of {} ephemeral ports",
                      totals_.time_wait,
                      static_cast<double>(totals_.time_wait) / secs, frac * 100,
                      range));
    }
  }

  // CLOSE_WAIT leaks
  {
    std::vector<ConnEvidence> leaks;
    for (const auto &[cookie, c] : close_wait_) {
      const std::uint64_t age = end_ns > c.since_ns ? end_ns - c.since_ns : 0;
      if (age < cfg_.close_wait_min_age_ns)
        continue;
      leaks.push_back(
          {c.tuple, cookie, c.pid, c.comm, 1, age, false, c.cgroup_id});
    }
    if (start_ && end_ && start_->sockets_ok && end_->sockets_ok &&
        start_->netns == end_->netns) {
      std::set<std::uint64_t> still;
      for (const auto &s : end_->sockets)
        if (s.state == kCloseWait)
          still.insert(s.cookie);
      std::set<std::uint64_t> inodes;
      std::vector<const DiagSock *> pre;
      for (const auto &s : start_->sockets) {
        if (s.state != kCloseWait || !still.count(s.cookie) ||
            close_wait_.count(s.cookie))
          continue;
        pre.push_back(&s);
        if (s.inode)
          inodes.insert(s.inode);
      }
      std::map<std::uint64_t, SocketOwner> owners = start_->owners;
      for (auto it = inodes.begin(); it != inodes.end();)
        it = owners.count(*it) ? inodes.erase(it) : std::next(it);
      if (owners_ && !inodes.empty())
        owners.merge(owners_(inodes));
      for (const auto *s : pre) {
        ConnEvidence c;
        c.tuple = fmt::format("{} -> {}", format_endpoint(s->af, s->laddr, s->lport),
                              format_endpoint(s->af, s->raddr, s->rport));
        c.cookie = s->cookie;
        c.count = 1;
        c.preexisting = true;
        if (auto it = owners.find(s->inode); it != owners.end()) {
          c.pid = it->second.pid;
          c.comm = it->second.comm;
        }
        leaks.push_back(std::move(c));
      }
    }
    if (!leaks.empty()) {
      Problem p;
      p.kind = "close_wait";
      p.severity = leaks.size() >= 100 ? Severity::Critical : Severity::Warning;
      p.count = leaks.size();
      std::size_t pre = 0;
      for (const auto &l : leaks)
        pre += l.preexisting;
      p.summary = fmt::format(
          "{} in CLOSE_WAIT, not closed by their owner ({} from before the "
          "run)",
          plural(leaks.size(), "socket", "sockets"), pre);
      p.meaning = "The peer closed its side but the application never "
                  "called close(): a descriptor leak, or a thread stuck "
                  "before its close. The sockets and their ports stay "
                  "until the process closes them or exits.";
      std::map<std::pair<std::uint32_t, std::string>, std::uint64_t> procs;
      std::map<std::string, std::uint64_t> eps;
      for (const auto &l : leaks) {
        procs[{l.pid, l.comm}] += 1;
        const auto arrow = l.tuple.find(" -> ");
        eps[arrow == std::string::npos ? l.tuple : l.tuple.substr(arrow + 4)] += 1;
      }
      for (const auto &[k, n] : procs)
        p.evidence.processes.push_back({k.first, k.second, n});
      std::stable_sort(p.evidence.processes.begin(), p.evidence.processes.end(),
                       [](const auto &a, const auto &b) { return a.count > b.count; });
      for (const auto &[ep, n] : eps)
        p.evidence.remote_endpoints.push_back({ep, n});
      std::stable_sort(p.evidence.remote_endpoints.begin(),
                       p.evidence.remote_endpoints.end(),
                       [](const auto &a, const auto &b) { return a.count > b.count; });
      if (p.evidence.processes.size() > cfg_.top)
        p.evidence.processes.resize(cfg_.top);
      if (p.evidence.remote_endpoints.size() > cfg_.top)
        p.evidence.remote_endpoints.resize(cfg_.top);
      std::sort(leaks.begin(), leaks.end(), [](const auto &a, const auto &b) {
        if (a.preexisting != b.preexisting)
          return a.preexisting;
        if (a.age_ns != b.age_ns)
          return a.age_ns.value_or(0) > b.age_ns.value_or(0);
        return a.cookie < b.cookie;
      });
      for (std::size_t i = 0; i < leaks.size() && i < cfg_.examples; ++i)
        p.evidence.examples.push_back(leaks[i].tuple);
      if (leaks.size() > cfg_.top)
        leaks.resize(cfg_.top);
      p.evidence.connections = std::move(leaks);
      p.evidence.counters["close_wait_entered"] =
          static_cast<std::int64_t>(close_wait_entered_);
      p.evidence.counters["preexisting"] = static_cast<std::int64_t>(pre);
      r.problems.push_back(std::move(p));
      add(true, "close_wait", r.problems.back().summary);
    } else {
      add(false, "close_wait",
          fmt::format("CLOSE_WAIT: {} entered, none left open",
                      close_wait_entered_));
    }
  }

  std::stable_sort(r.problems.begin(), r.problems.end(),
                   [](const Problem &a, const Problem &b) {
                     if (a.severity != b.severity)
                       return a.severity == Severity::Critical;
                     return a.count > b.count;
                   });

  // Latency
  if (connect_hist_.count())
    r.latency.push_back({"connect", connect_hist_});
  for (std::uint8_t s = 1; s <= kMaxTcpState; ++s)
    if (state_hist_[s].count())
      r.latency.push_back({std::string(state_label(s)), state_hist_[s]});
  if (state_hist_[0].count() || state_hist_[13].count() ||
      state_hist_[14].count() || state_hist_[15].count())
    for (std::uint8_t s : {0, 13, 14, 15})
      if (state_hist_[s].count())
        r.latency.push_back({std::string(state_label(s)), state_hist_[s]});

  r.dropped = dropped_;
  if (r.dropped.connections || r.dropped.endpoints || r.dropped.processes ||
      r.dropped.listeners)
    r.notes.emplace_back("some sockets, endpoints or processes did not fit the "
                      "bounded tables: counts are complete, named evidence "
                      "is not");
  if (!netns_)
    r.notes.emplace_back("all network namespaces were traced; namespace "
                      "counters and socket tables are from tcptrail's own "
                      "namespace (use --netns to focus on one)");
  return r;
}

} // namespace tcptrail::diagnose
