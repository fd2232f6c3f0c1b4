#include "snapshot/leaks.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "format/formatter.h"
#include "net.h"
#include "tcp_state.h"
#include "tuple.h"

namespace tcptrail {

namespace {

constexpr std::size_t kMaxPeersShown = 3;

void append(Buffer &out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

std::string watched_names(std::uint32_t mask) {
  std::string out;
  for (std::uint8_t s = 0; s < 32; ++s)
    if ((mask >> s) & 1)
      out += (out.empty() ? "" : ",") + state_label(s);
  return out;
}

std::string age_text(const StuckSocket &s, std::uint64_t age) {
  return (s.exact ? "" : ">=") + format_age(age);
}

} // namespace

void LeakTracker::enumerate(const std::vector<SocketRow> &rows) {
  std::set<std::pair<std::uint32_t, std::uint16_t>> listening;
  for (const SocketRow &row : rows)
    if (row.sock.state == static_cast<std::uint8_t>(TcpState::Listen))
      listening.insert({row.sock.netns, row.sock.lport});
  for (const SocketRow &row : rows) {
    const tt_iter_sock &r = row.sock;
    if (!watched(r.state) || tracked_.count(r.hdr.cookie))
      continue;
    StuckSocket s;
    s.cookie = r.hdr.cookie;
    s.state = r.state;
    copy_tuple(s, r);
    s.passive = listening.count({r.netns, r.lport}) > 0;
    if (!row.owners.empty()) {
      s.pid = row.owners[0].pid;
      s.fd = row.owners[0].fd;
      std::memcpy(s.comm, row.owners[0].comm, TT_COMM_LEN);
    } else if (r.flags & TT_IF_OWNER) {
      s.pid = r.pid;
      std::memcpy(s.comm, r.comm, TT_COMM_LEN);
    }
    s.cgroup_id = row.cgroup_id();
    const SocketAge age = socket_age(r);
    s.since_ns = r.hdr.ts_ns - std::min<std::uint64_t>(age.ns, r.hdr.ts_ns);
    s.seen_ns = r.hdr.ts_ns;
    s.exact = age.exact;
    s.preexisting = !age.exact;
    tracked_.emplace(s.cookie, s);
  }
}

void LeakTracker::on_state(const tt_state_event &ev) {
  const std::uint64_t cookie = ev.hdr.cookie;
  const std::uint64_t ts = ev.hdr.ts_ns;
  auto it = tracked_.find(cookie);
  if (it != tracked_.end()) {
    StuckSocket &s = it->second;
    if (ev.new_state == s.state) {
      // The entry itself, perhaps queued from before the enumeration.
      s.since_ns = ts;
      s.exact = true;
      s.preexisting = false;
      if (!s.pid && (ev.flags & TT_F_OWNER)) {
        s.pid = ev.sk.pid;
        std::memcpy(s.comm, ev.sk.comm, TT_COMM_LEN);
        s.cgroup_id = ev.sk.cgroup_id;
      }
      if (!s.cgroup_id)
        s.cgroup_id = ev.sk.cgroup_id;
      return;
    }
    if (ts < s.seen_ns)
      return; // older than what the enumeration saw: stale
    tracked_.erase(it);
  }
  if (!watched(ev.new_state))
    return;
  StuckSocket s;
  s.cookie = cookie;
  s.state = ev.new_state;
  s.af = ev.sk.af;
  std::memcpy(s.laddr, ev.sk.laddr, TT_ADDR_LEN);
  std::memcpy(s.raddr, ev.sk.raddr, TT_ADDR_LEN);
  s.lport = ev.sk.lport;
  s.rport = ev.sk.rport;
  s.netns = ev.sk.netns;
  s.passive = (ev.flags & TT_F_PASSIVE) != 0;
  if (ev.flags & TT_F_OWNER) {
    s.pid = ev.sk.pid;
    std::memcpy(s.comm, ev.sk.comm, TT_COMM_LEN);
  }
  s.cgroup_id = ev.sk.cgroup_id;
  s.since_ns = ts;
  s.seen_ns = ts;
  s.exact = true;
  tracked_.emplace(cookie, s);
}

void LeakTracker::refresh_owners(const std::vector<tt_iter_file> &files) {
  std::map<std::uint64_t, const tt_iter_file *> best;
  for (const tt_iter_file &f : files) {
    auto [it, fresh] = best.emplace(f.hdr.cookie, &f);
    if (!fresh && std::tie(f.pid, f.fd) <
                      std::tie(it->second->pid, it->second->fd))
      it->second = &f;
  }
  for (auto &[cookie, s] : tracked_) {
    auto it = best.find(cookie);
    if (it == best.end())
      continue;
    s.pid = it->second->pid;
    s.fd = it->second->fd;
    std::memcpy(s.comm, it->second->comm, TT_COMM_LEN);
    if (it->second->cgroup_id)
      s.cgroup_id = it->second->cgroup_id;
  }
}

LeakReport build_report(
    const LeakTracker &tracker, std::uint64_t now_ns, std::uint64_t min_age_ns,
    const std::function<bool(const StuckSocket &)> &keep) {
  LeakReport rep;
  rep.min_age_ns = min_age_ns;
  using GroupKey = std::tuple<std::uint32_t, std::string, std::uint8_t>;
  std::map<GroupKey, LeakGroup> groups;
  for (const auto &[cookie, s] : tracker.tracked()) {
    const std::uint64_t age = now_ns > s.since_ns ? now_ns - s.since_ns : 0;
    if (age < min_age_ns || (keep && !keep(s)))
      continue;
    LeakGroup &g = groups[GroupKey{s.pid, std::string(comm_view(s.comm)),
                                   s.state}];
    g.pid = s.pid;
    std::memcpy(g.comm, s.comm, TT_COMM_LEN);
    g.state = s.state;
    g.oldest_ns = std::max(g.oldest_ns, age);
    g.sockets.emplace_back(s, age);
    ++rep.total;
  }
  for (auto &[key, g] : groups) {
    std::sort(g.sockets.begin(), g.sockets.end(),
              [](const auto &a, const auto &b) {
                return a.second != b.second ? a.second > b.second
                                            : a.first.cookie < b.first.cookie;
              });
    std::map<std::string, std::size_t> peers;
    for (const auto &[s, age] : g.sockets)
      ++peers[s.passive ? format_ip(s.af, s.raddr)
                        : format_endpoint(s.af, s.raddr, s.rport)];
    for (const auto &[ep, n] : peers)
      g.peers.push_back({ep, n});
    std::stable_sort(g.peers.begin(), g.peers.end(),
                     [](const PeerCount &a, const PeerCount &b) {
                       return a.count > b.count;
                     });
    rep.groups.push_back(std::move(g));
  }
  std::stable_sort(rep.groups.begin(), rep.groups.end(),
                   [](const LeakGroup &a, const LeakGroup &b) {
                     if (a.sockets.size() != b.sockets.size())
                       return a.sockets.size() > b.sockets.size();
                     if (a.oldest_ns != b.oldest_ns)
                       return a.oldest_ns > b.oldest_ns;
                     return a.pid < b.pid;
                   });
  return rep;
}

void format_leaks_table(Buffer &out, const LeakReport &rep) {
  append(out, "tcptrail leaks: ");
  append_rfc3339(out, rep.wall_ns);
  fmt::format_to(std::back_inserter(out), " {} {} stuck in {} for >= {}\n",
                 rep.total == 0 ? std::string("no") : std::to_string(rep.total),
                 rep.total == 1 ? "socket" : "sockets",
                 watched_names(rep.state_mask), format_age(rep.min_age_ns));
  for (const LeakGroup &g : rep.groups) {
    if (g.pid) {
      fmt::format_to(std::back_inserter(out), "pid {} (", g.pid);
      append_terminal_safe(out, comm_view(g.comm));
      append(out, ")");
    } else {
      append(out, "unknown process");
    }
    const bool exact = std::all_of(g.sockets.begin(), g.sockets.end(),
                                   [&](const auto &p) {
                                     return p.second != g.oldest_ns ||
                                            p.first.exact;
                                   });
    fmt::format_to(std::back_inserter(out),
                   " holds {} {} in {}, oldest {}{}, peers ", g.sockets.size(),
                   g.sockets.size() == 1 ? "socket" : "sockets",
                   state_label(g.state), exact ? "" : ">=",
                   format_age(g.oldest_ns));
    for (std::size_t i = 0; i < g.peers.size() && i < kMaxPeersShown; ++i)
      fmt::format_to(std::back_inserter(out), "{}{} ({})", i ? ", " : "",
                     g.peers[i].endpoint, g.peers[i].count);
    if (g.peers.size() > kMaxPeersShown)
      fmt::format_to(std::back_inserter(out), ", ... ({} more)",
                     g.peers.size() - kMaxPeersShown);
    append(out, "\n");
    for (const auto &[s, age] : g.sockets) {
      fmt::format_to(std::back_inserter(out),
                     "  {:<9} fd {:<5} {} -> {}  cookie {} netns {}{}\n",
                     age_text(s, age),
                     s.fd >= 0 ? std::to_string(s.fd) : std::string("-"),
                     format_endpoint(s.af, s.laddr, s.lport),
                     format_endpoint(s.af, s.raddr, s.rport), s.cookie,
                     s.netns, s.preexisting ? " (pre-existing)" : "");
    }
  }
}

void format_leaks_json(Buffer &out, const LeakReport &rep, CgroupNames *names) {
  for (const LeakGroup &g : rep.groups) {
    for (const auto &[s, age] : g.sockets) {
      append(out, "{\"event\":\"stuck\",\"state\":");
      append_json_string(out, state_label(s.state));
      fmt::format_to(std::back_inserter(out), ",\"cookie\":{},\"pid\":{},"
                                              "\"comm\":",
                     s.cookie, s.pid);
      append_json_string(out, comm_view(s.comm));
      fmt::format_to(std::back_inserter(out),
                     ",\"af\":{},\"laddr\":\"{}\",\"lport\":{},\"raddr\":\"{}\","
                     "\"rport\":{},\"age_ns\":{},\"preexisting\":{},"
                     "\"age_exact\":{},\"fd\":{},\"netns\":{},\"report\":{},"
                     "\"time\":\"",
                     s.af, format_ip(s.af, s.laddr), s.lport,
                     format_ip(s.af, s.raddr), s.rport, age,
                     s.preexisting ? "true" : "false",
                     s.exact ? "true" : "false",
                     s.fd >= 0 ? std::to_string(s.fd) : std::string("null"),
                     s.netns, rep.seq);
      append_rfc3339(out, rep.wall_ns);
      out.push_back('"');
      append_cgroup_json(out, names, s.cgroup_id);
      append(out, "}\n");
    }
  }
}

void format_leaks_csv_header(Buffer &out) {
  append(out,
         "report,state,cookie,pid,comm,fd,af,laddr,lport,raddr,rport,"
         "age_ns,preexisting,age_exact,netns,cgroup_id,cgroup,container\n");
}

void format_leaks_csv(Buffer &out, const LeakReport &rep, CgroupNames *names) {
  for (const LeakGroup &g : rep.groups) {
    for (const auto &[s, age] : g.sockets) {
      fmt::format_to(std::back_inserter(out), "{},{},{},{},", rep.seq,
                     state_label(s.state), s.cookie, s.pid);
      append_csv_field(out, comm_view(s.comm));
      fmt::format_to(std::back_inserter(out), ",{},{},{},{},{},{},{},{},{},{},",
                     s.fd >= 0 ? std::to_string(s.fd) : std::string(), s.af,
                     format_ip(s.af, s.laddr), s.lport,
                     format_ip(s.af, s.raddr), s.rport, age,
                     s.preexisting ? 1 : 0, s.exact ? 1 : 0, s.netns);
      append_cgroup_csv(out, names, s.cgroup_id);
      out.push_back('\n');
    }
  }
}

} // namespace tcptrail
