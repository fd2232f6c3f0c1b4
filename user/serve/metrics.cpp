#include "serve/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "format/escape.h"
#include "history/record.h"
#include "tcp_state.h"

namespace tcptrail {

// The kernel classifies ends with history's vocabulary (bpf/serve.bpf.h).
static_assert(TT_END_CLOSED == static_cast<int>(ConnEnd::Closed));
static_assert(TT_END_RESET_SENT == static_cast<int>(ConnEnd::ResetSent));
static_assert(TT_END_RESET_RECEIVED ==
              static_cast<int>(ConnEnd::ResetReceived));
static_assert(TT_END_REFUSED == static_cast<int>(ConnEnd::Refused));
static_assert(TT_END_TIMEOUT == static_cast<int>(ConnEnd::Timeout));
static_assert(TT_END_ORPHAN_FIN_WAIT2 ==
              static_cast<int>(ConnEnd::OrphanFinWait2));
static_assert(TT_SERVE_STATES > kMaxTcpState);

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr double kNsPerSecond = 1e9;

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric with_labels(std::vector<ClientMetric::Label> labels) {
  ClientMetric m;
  m.label = std::move(labels);
  return m;
}

void add_counter(MetricFamily &f, std::vector<ClientMetric::Label> labels,
                 double v) {
  ClientMetric m = with_labels(std::move(labels));
  m.counter.value = v;
  f.metric.push_back(std::move(m));
}

void add_gauge(MetricFamily &f, std::vector<ClientMetric::Label> labels,
               double v) {
  ClientMetric m = with_labels(std::move(labels));
  m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

void add_histogram(MetricFamily &f, std::vector<ClientMetric::Label> labels,
                   const tt_serve_stats &k, int h) {
  ClientMetric m = with_labels(std::move(labels));
  std::uint64_t cumulative = 0, total = 0;
  for (int b = 0; b < TT_SERVE_BUCKETS; ++b)
    total += k.hist[h][b];
  for (int b = 0; b <= kLastBucket; ++b) {
    cumulative += k.hist[h][b];
    if (b >= kFirstBucket)
      m.histogram.bucket.push_back({cumulative, bucket_upper_seconds(b)});
  }
  m.histogram.bucket.push_back(
      {total, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = total;
  m.histogram.sample_sum = static_cast<double>(k.hist_sum_ns[h]) / kNsPerSecond;
  f.metric.push_back(std::move(m));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char &c : out)
    if (c >= 'A' && c <= 'Z')
      c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// A state as a label value: "close_wait", "syn_sent"; unknown values as the
// number.
std::string state_label(unsigned state) {
  if (state >= 1 && state <= kMaxTcpState)
    return lower(state_name(static_cast<std::uint8_t>(state)));
  return std::to_string(state);
}

// The owner's container id, or "" outside containers.
std::string container_label(const ServeSample &s, const SocketRow &row) {
  const auto it = s.containers.find(row.sock.cgroup_id);
  return it == s.containers.end() ? std::string() : it->second;
}

// comm, container (only for owners in one), lport.
std::vector<ClientMetric::Label> group_labels(const GroupKey &key) {
  std::vector<ClientMetric::Label> l{{"comm", key.comm}};
  if (!key.container.empty())
    l.push_back({"container", key.container});
  l.push_back({"lport", key.lport});
  return l;
}

std::string comm_label(const SocketRow &row) {
  if (row.owners.empty())
    return "unknown";
  const std::string_view c = comm_view(row.owners.front().comm);
  if (c.empty())
    return "unknown";
  Buffer b;
  append_terminal_safe(b, c);
  return fmt::to_string(b);
}

void kernel_families(std::vector<MetricFamily> &out, const tt_serve_stats &k) {
  MetricFamily tr =
      family("tcptrail_transitions_total",
             "TCP state transitions (inet_sock_set_state) by old and new "
             "state; to=\"time_wait\" is a FIN exchange finished (the kernel "
             "reports CLOSE). Only pairs seen since start are listed.",
             MetricType::Counter);
  for (unsigned from = 0; from < TT_SERVE_STATES; ++from)
    for (unsigned to = 0; to < TT_SERVE_STATES; ++to)
      if (k.transitions[from][to])
        add_counter(tr, {{"from", state_label(from)}, {"to", state_label(to)}},
                    static_cast<double>(k.transitions[from][to]));
  out.push_back(std::move(tr));

  const auto at = [&](TcpState a, TcpState b) {
    return static_cast<double>(
        k.transitions[static_cast<unsigned>(a)][static_cast<unsigned>(b)]);
  };
  MetricFamily opened = family(
      "tcptrail_connections_opened_total",
      "connections opened: role=active at connect() (CLOSE -> SYN_SENT), "
      "role=passive when a listener's child is made (LISTEN -> SYN_RECV)",
      MetricType::Counter);
  add_counter(opened, {{"role", "active"}},
              at(TcpState::Close, TcpState::SynSent));
  add_counter(opened, {{"role", "passive"}},
              at(TcpState::Listen, TcpState::SynRecv));
  out.push_back(std::move(opened));

  MetricFamily closed = family(
      "tcptrail_connections_closed_total",
      "connections ended, by who opened them (role: active, passive, "
      "unknown = open before tcptrail started) and how they ended (end: as "
      "tcptrail history names it)",
      MetricType::Counter);
  constexpr int kEnds[] = {TT_END_CLOSED,         TT_END_RESET_SENT,
                           TT_END_RESET_RECEIVED, TT_END_REFUSED,
                           TT_END_TIMEOUT,        TT_END_ORPHAN_FIN_WAIT2};
  constexpr const char *kRoles[] = {"unknown", "active", "passive"};
  for (int r = 0; r < TT_SERVE_ROLES; ++r)
    for (int e : kEnds)
      add_counter(
          closed,
          {{"role", kRoles[r]},
           {"end", std::string(conn_end_name(static_cast<ConnEnd>(e)))}},
          static_cast<double>(k.ends[r][e]));
  out.push_back(std::move(closed));

  MetricFamily retrans =
      family("tcptrail_retransmits_total",
             "segments retransmitted: kind=data, syn (connect() retrying), "
             "synack (a listener's half-open connection)",
             MetricType::Counter);
  add_counter(retrans, {{"kind", "data"}},
              static_cast<double>(k.segs[TT_SEG_RETRANS_DATA]));
  add_counter(retrans, {{"kind", "syn"}},
              static_cast<double>(k.segs[TT_SEG_RETRANS_SYN]));
  add_counter(retrans, {{"kind", "synack"}},
              static_cast<double>(k.segs[TT_SEG_RETRANS_SYNACK]));
  out.push_back(std::move(retrans));

  MetricFamily rst_sent = family(
      "tcptrail_resets_sent_total",
      "RSTs sent (tcp_send_reset): aborts, and answers to segments for no "
      "socket (a connect() to a closed port)",
      MetricType::Counter);
  add_counter(rst_sent, {}, static_cast<double>(k.segs[TT_SEG_RST_SENT]));
  out.push_back(std::move(rst_sent));
  MetricFamily rst_rcvd = family(
      "tcptrail_resets_received_total",
      "RSTs received and accepted (tcp_receive_reset)", MetricType::Counter);
  add_counter(rst_rcvd, {}, static_cast<double>(k.segs[TT_SEG_RST_RECEIVED]));
  out.push_back(std::move(rst_rcvd));

  MetricFamily hs =
      family("tcptrail_handshake_duration_seconds",
             "three-way handshake time: role=active SYN_SENT -> ESTABLISHED, "
             "role=passive SYN_RECV -> ESTABLISHED (the child socket's part)",
             MetricType::Histogram);
  add_histogram(hs, {{"role", "active"}}, k, TT_HIST_HANDSHAKE_ACTIVE);
  add_histogram(hs, {{"role", "passive"}}, k, TT_HIST_HANDSHAKE_PASSIVE);
  out.push_back(std::move(hs));
  MetricFamily life =
      family("tcptrail_connection_lifetime_seconds",
             "connection lifetime, SYN_SENT or SYN_RECV entered to CLOSE / "
             "TIME_WAIT (connections opened since tcptrail started)",
             MetricType::Histogram);
  add_histogram(life, {}, k, TT_HIST_LIFETIME);
  out.push_back(std::move(life));
  MetricFamily cw = family(
      "tcptrail_close_wait_duration_seconds",
      "time spent in CLOSE_WAIT (peer closed, we had not yet) before close",
      MetricType::Histogram);
  add_histogram(cw, {}, k, TT_HIST_CLOSE_WAIT);
  out.push_back(std::move(cw));
  MetricFamily fw2 = family(
      "tcptrail_fin_wait2_duration_seconds",
      "time spent in FIN_WAIT2 (we closed, waiting for the peer's FIN) by "
      "the full socket",
      MetricType::Histogram);
  add_histogram(fw2, {}, k, TT_HIST_FIN_WAIT2);
  out.push_back(std::move(fw2));
}

void socket_families(std::vector<MetricFamily> &out, const ServeSample &s,
                     const SeriesLimits &limits, std::uint64_t &folded_total) {
  if (!s.sockets_ok)
    return;
  std::uint64_t by_state[TT_SERVE_STATES] = {};
  // Listening ports per namespace: only those label CLOSE_WAIT sockets.
  std::set<std::pair<std::uint32_t, std::uint16_t>> listening;
  for (const SocketRow &r : s.sockets)
    if (r.sock.state == static_cast<std::uint8_t>(TcpState::Listen))
      listening.insert({r.sock.netns, r.sock.lport});

  std::map<GroupKey, GroupValue> close_wait, listeners;
  std::map<std::pair<std::uint32_t, std::uint16_t>, std::uint64_t> syn_queue;
  for (unsigned i = 0; i < TT_SERVE_STATES; ++i)
    by_state[i] = s.counted_only[i];
  for (const SocketRow &r : s.sockets) {
    const tt_iter_sock &k = r.sock;
    by_state[k.state & (TT_SERVE_STATES - 1)]++;
    if (k.state == static_cast<std::uint8_t>(TcpState::CloseWait)) {
      GroupKey key{comm_label(r),
                   listening.count({k.netns, k.lport})
                       ? std::to_string(k.lport)
                       : std::string("ephemeral"),
                   container_label(s, r)};
      GroupValue &v = close_wait[key];
      v.sockets++;
      const SocketAge age = socket_age(k);
      if (age.known) {
        v.oldest_ns = std::max(v.oldest_ns, age.ns);
        v.age_known = true;
      }
    } else if (k.state == static_cast<std::uint8_t>(TcpState::Listen)) {
      GroupValue &v = listeners[{comm_label(r), std::to_string(k.lport),
                                 container_label(s, r)}];
      v.sockets++;
      v.accept_len += k.rx_queue;
      v.accept_max += k.tx_queue;
    } else if (k.state == static_cast<std::uint8_t>(TcpState::NewSynRecv) ||
               k.sk_kind == TT_SK_REQUEST) {
      syn_queue[{k.netns, k.lport}]++;
    }
  }
  // Request sockets join the listener group of their port.
  for (const auto &[where, n] : syn_queue) {
    for (auto &[key, v] : listeners)
      if (key.lport == std::to_string(where.second)) {
        v.syn_len += n;
        break;
      }
  }

  MetricFamily st = family("tcptrail_sockets",
                           "TCP sockets by state now (every network "
                           "namespace; time_wait: timewait sockets)",
                           MetricType::Gauge);
  for (unsigned i = 1; i <= kMaxTcpState; ++i)
    add_gauge(st, {{"state", state_label(i)}},
              static_cast<double>(by_state[i]));
  out.push_back(std::move(st));

  folded_total += fold_groups(close_wait, limits.max_series);
  folded_total += fold_groups(listeners, limits.max_series);

  MetricFamily cwn = family(
      "tcptrail_close_wait_sockets",
      "sockets in CLOSE_WAIT now (the peer closed, the owner has not: a "
      "leak when it lasts) by owner comm and local port (a listening port, "
      "else \"ephemeral\")",
      MetricType::Gauge);
  MetricFamily cwa = family(
      "tcptrail_close_wait_oldest_age_seconds",
      "age in CLOSE_WAIT of the oldest such socket of the group (exact, or "
      "a proven lower bound); groups without a known age are left out",
      MetricType::Gauge);
  for (const auto &[key, v] : close_wait) {
    add_gauge(cwn, group_labels(key), static_cast<double>(v.sockets));
    if (v.age_known)
      add_gauge(cwa, group_labels(key),
                static_cast<double>(v.oldest_ns) / kNsPerSecond);
  }
  out.push_back(std::move(cwn));
  out.push_back(std::move(cwa));

  MetricFamily ql = family("tcptrail_listen_accept_queue_length",
                           "connections waiting in listeners' accept queues",
                           MetricType::Gauge);
  MetricFamily qm = family("tcptrail_listen_accept_queue_limit",
                           "listeners' accept queue limit (listen() backlog)",
                           MetricType::Gauge);
  MetricFamily sq = family(
      "tcptrail_listen_syn_queue_length",
      "half-open connections (request sockets, NEW_SYN_RECV) of listeners",
      MetricType::Gauge);
  // The kernel refuses a new request socket once the listener has
  // sk_max_ack_backlog of them (inet_csk_reqsk_queue_is_full()): the SYN
  // queue's limit is the backlog too. Without syncookies, unproven SYNs are
  // dropped earlier, when fewer than tcp_max_syn_backlog / 4 slots remain
  // (tcp_conn_request()).
  MetricFamily sm = family(
      "tcptrail_listen_syn_queue_limit",
      "listeners' SYN queue limit: the listen() backlog (without syncookies "
      "the kernel drops unproven SYNs before it, see tcp_max_syn_backlog)",
      MetricType::Gauge);
  for (const auto &[key, v] : listeners) {
    const std::vector<ClientMetric::Label> l = group_labels(key);
    add_gauge(ql, l, static_cast<double>(v.accept_len));
    add_gauge(qm, l, static_cast<double>(v.accept_max));
    add_gauge(sq, l, static_cast<double>(v.syn_len));
    add_gauge(sm, l, static_cast<double>(v.accept_max));
  }
  out.push_back(std::move(ql));
  out.push_back(std::move(qm));
  out.push_back(std::move(sq));
  out.push_back(std::move(sm));
}

void health_families(std::vector<MetricFamily> &out, const ServeSample &s,
                     std::uint64_t folded_total) {
  if (s.listen) {
    MetricFamily ov = family("tcptrail_listen_overflows_total",
                             "times a listener's accept queue was full "
                             "(TcpExt ListenOverflows, tcptrail's namespace)",
                             MetricType::Counter);
    add_counter(ov, {}, static_cast<double>(s.listen->overflows));
    out.push_back(std::move(ov));
    MetricFamily dr = family("tcptrail_listen_drops_total",
                             "SYNs and handshake ACKs dropped by listeners "
                             "(TcpExt ListenDrops, tcptrail's namespace)",
                             MetricType::Counter);
    add_counter(dr, {}, static_cast<double>(s.listen->drops));
    out.push_back(std::move(dr));
  }
  MetricFamily lost =
      family("tcptrail_events_lost_total",
             "events the BPF programs could not deliver or count (ring buffer "
             "full, or nested runs the kernel skipped)",
             MetricType::Counter);
  add_counter(lost, {}, static_cast<double>(s.events_lost));
  out.push_back(std::move(lost));
  MetricFamily folded = family(
      "tcptrail_series_folded_samples_total",
      "sockets counted into an \"other\" series because a family reached "
      "--max-series",
      MetricType::Counter);
  add_counter(folded, {}, static_cast<double>(folded_total));
  out.push_back(std::move(folded));
  MetricFamily enum_err = family(
      "tcptrail_enumerate_errors_total",
      "scrapes whose socket enumeration failed (per-scrape gauges missing)",
      MetricType::Counter);
  add_counter(enum_err, {}, static_cast<double>(s.enumerate_errors));
  out.push_back(std::move(enum_err));
  if (s.bpf_stats) {
    MetricFamily rt = family("tcptrail_bpf_program_run_seconds_total",
                             "time the kernel spent in each tcptrail BPF "
                             "program (kernel.bpf_stats_enabled=1 only)",
                             MetricType::Counter);
    MetricFamily rc = family("tcptrail_bpf_program_runs_total",
                             "runs of each tcptrail BPF program "
                             "(kernel.bpf_stats_enabled=1 only)",
                             MetricType::Counter);
    for (const ProgramRun &p : s.programs) {
      add_counter(rt, {{"program", p.name}},
                  static_cast<double>(p.run_time_ns) / kNsPerSecond);
      add_counter(rc, {{"program", p.name}}, static_cast<double>(p.run_cnt));
    }
    out.push_back(std::move(rt));
    out.push_back(std::move(rc));
  }
  MetricFamily dur = family("tcptrail_scrape_collect_duration_seconds",
                            "time this scrape took to read the BPF maps and "
                            "enumerate sockets",
                            MetricType::Gauge);
  add_gauge(dur, {}, s.collect_seconds);
  out.push_back(std::move(dur));
}

} // namespace

double bucket_upper_seconds(int b) {
  // 2^(b+1) ns in seconds, rounded to 12 significant digits so that the
  // le label reads 8.192e-06, not 8.192000000000001e-06.
  return std::stod(
      fmt::format("{:.12g}", std::ldexp(1.0, b + 1) / kNsPerSecond));
}

std::optional<ListenCounters> parse_netstat(const std::string &text) {
  std::istringstream in(text);
  std::string names, values;
  while (std::getline(in, names)) {
    if (names.rfind("TcpExt:", 0) != 0)
      continue;
    if (!std::getline(in, values) || values.rfind("TcpExt:", 0) != 0)
      return std::nullopt;
    std::istringstream n(names), v(values);
    std::string name, value;
    std::optional<std::uint64_t> overflows, drops;
    n >> name; // "TcpExt:"
    v >> value;
    while (n >> name) {
      if (!(v >> value))
        return std::nullopt;
      std::uint64_t x = 0;
      for (char c : value) {
        if (c < '0' || c > '9')
          return std::nullopt;
        x = x * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (name == "ListenOverflows")
        overflows = x;
      else if (name == "ListenDrops")
        drops = x;
    }
    if (!overflows || !drops)
      return std::nullopt;
    return ListenCounters{*overflows, *drops};
  }
  return std::nullopt;
}

std::uint64_t fold_groups(std::map<GroupKey, GroupValue> &groups,
                          std::size_t max) {
  if (max == 0)
    max = 1;
  if (groups.size() <= max)
    return 0;
  std::vector<std::pair<GroupKey, GroupValue>> all(groups.begin(),
                                                   groups.end());
  std::stable_sort(all.begin(), all.end(), [](const auto &a, const auto &b) {
    return a.second.sockets > b.second.sockets;
  });
  GroupValue other;
  std::uint64_t folded = 0;
  for (std::size_t i = max - 1; i < all.size(); ++i) {
    const GroupValue &v = all[i].second;
    folded += v.sockets;
    other.sockets += v.sockets;
    other.accept_len += v.accept_len;
    other.accept_max += v.accept_max;
    other.syn_len += v.syn_len;
    if (v.age_known) {
      other.oldest_ns = std::max(other.oldest_ns, v.oldest_ns);
      other.age_known = true;
    }
  }
  groups.clear();
  for (std::size_t i = 0; i + 1 < max; ++i)
    groups.insert(all[i]);
  groups[{"other", "other", ""}] = other;
  return folded;
}

void keep_gauge_rows(ServeSample &sample, std::vector<SocketRow> &&rows) {
  for (SocketRow &r : rows) {
    const auto state = static_cast<TcpState>(r.sock.state);
    if (state == TcpState::Listen || state == TcpState::CloseWait ||
        state == TcpState::NewSynRecv || r.sock.sk_kind == TT_SK_REQUEST)
      sample.sockets.push_back(std::move(r));
    else
      sample.counted_only[r.sock.state & (TT_SERVE_STATES - 1)]++;
  }
}

std::vector<MetricFamily> build_families(const ServeSample &sample,
                                         const SeriesLimits &limits,
                                         std::uint64_t &folded_total) {
  std::vector<MetricFamily> out;
  kernel_families(out, sample.kernel);
  socket_families(out, sample, limits, folded_total);
  health_families(out, sample, folded_total);
  return out;
}

} // namespace tcptrail
