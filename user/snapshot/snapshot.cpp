#include "snapshot/snapshot.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "format/formatter.h"
#include "net.h"
#include "tcp_state.h"
#include "tuple.h"

namespace tcptrail {

namespace {

using Key = std::pair<std::uint32_t, std::uint64_t>; // netns, inode

auto sort_key(const SocketRow &r) {
  const tt_iter_sock &s = r.sock;
  return std::make_tuple(
      s.netns, s.af,
      std::vector<std::uint8_t>(s.laddr, s.laddr + TT_ADDR_LEN), s.lport,
      std::vector<std::uint8_t>(s.raddr, s.raddr + TT_ADDR_LEN), s.rport,
      s.hdr.cookie);
}

std::string_view kind_name(std::uint8_t k) {
  switch (k) {
  case TT_SK_FULL:
    return "full";
  case TT_SK_TIMEWAIT:
    return "timewait";
  case TT_SK_REQUEST:
    return "request";
  default:
    return "unknown";
  }
}

void append(Buffer &out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

} // namespace

std::vector<SocketRow> join_owners(const std::vector<tt_iter_sock> &sockets,
                                   const std::vector<tt_iter_file> &files) {
  std::multimap<std::uint64_t, const tt_iter_file *> by_cookie;
  std::multimap<Key, const tt_iter_file *> by_inode;
  for (const tt_iter_file &f : files) {
    by_cookie.emplace(f.hdr.cookie, &f);
    if (f.ino)
      by_inode.emplace(Key{f.netns, f.ino}, &f);
  }
  std::vector<SocketRow> rows;
  std::set<std::uint64_t> seen;
  for (const tt_iter_sock &s : sockets) {
    if (!seen.insert(s.hdr.cookie).second)
      continue;
    SocketRow row;
    row.sock = s;
    std::set<std::pair<std::uint32_t, std::uint32_t>> fds;
    auto take = [&](const tt_iter_file *f) {
      if (!fds.insert({f->pid, f->fd}).second)
        return;
      SocketOwner o;
      o.pid = f->pid;
      o.fd = f->fd;
      std::memcpy(o.comm, f->comm, sizeof(o.comm));
      o.cgroup_id = f->cgroup_id;
      row.owners.push_back(o);
    };
    auto [c0, c1] = by_cookie.equal_range(s.hdr.cookie);
    for (auto it = c0; it != c1; ++it)
      take(it->second);
    if (s.ino) {
      auto [i0, i1] = by_inode.equal_range(Key{s.netns, s.ino});
      for (auto it = i0; it != i1; ++it)
        take(it->second);
    }
    std::sort(row.owners.begin(), row.owners.end(),
              [](const SocketOwner &a, const SocketOwner &b) {
                return std::tie(a.pid, a.fd) < std::tie(b.pid, b.fd);
              });
    rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(),
            [](const SocketRow &a, const SocketRow &b) {
              return sort_key(a) < sort_key(b);
            });
  return rows;
}

bool row_matches(const FilterSpec &spec, const SocketRow &row) {
  tt_sock sk{};
  const tt_iter_sock &s = row.sock;
  copy_tuple(sk, s);
  if (row.owners.empty()) {
    if (s.flags & TT_IF_OWNER) {
      sk.pid = s.pid;
      std::memcpy(sk.comm, s.comm, TT_COMM_LEN);
    }
    sk.cgroup_id = s.cgroup_id;
    return matches(spec, sk, s.state, s.state);
  }
  for (const SocketOwner &o : row.owners) {
    sk.pid = o.pid;
    std::memcpy(sk.comm, o.comm, TT_COMM_LEN);
    sk.cgroup_id = o.cgroup_id;
    if (matches(spec, sk, s.state, s.state))
      return true;
  }
  return false;
}

bool age_bound_proven(std::uint8_t state) {
  switch (static_cast<TcpState>(state)) {
  case TcpState::CloseWait:
  case TcpState::FinWait1:
  case TcpState::FinWait2:
  case TcpState::Closing:
  case TcpState::LastAck:
    return true;
  default:
    return false;
  }
}

SocketAge socket_age(const tt_iter_sock &s) {
  SocketAge age;
  const std::uint64_t now = s.hdr.ts_ns;
  if (s.flags & TT_IF_STATE_TS) {
    age.ns = now > s.state_ts ? now - s.state_ts : 0;
    age.exact = age.known = true;
    return age;
  }
  if (!(s.flags & TT_IF_ACTIVITY) || !age_bound_proven(s.state) ||
      s.mstamp_ns == 0)
    return age;
  constexpr std::uint64_t kMstampSlackNs = 1'000'000; // see iter.bpf.c: d
  std::uint64_t bound =
      now > s.mstamp_ns + kMstampSlackNs ? now - s.mstamp_ns - kMstampSlackNs
                                         : 0;
  if (s.hz) {
    // u32 jiffies: the difference modulo 2^32 is never more than the truth.
    const std::uint32_t dj = static_cast<std::uint32_t>(s.jiffies) - s.rcv_tstamp;
    const std::uint64_t jbound =
        dj > 1 ? (std::uint64_t{dj} - 1) * (1'000'000'000ULL / s.hz) : 0;
    bound = std::min(bound, jbound);
  }
  age.ns = bound;
  age.known = true;
  return age;
}

std::string format_age(std::uint64_t ns) {
  const std::uint64_t s = ns / 1'000'000'000ULL;
  if (s < 60)
    return fmt::format("{}s", s);
  if (s < 3600)
    return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

// ---------------------------------------------------------------------------

void format_snapshot_table(Buffer &out, const std::vector<SocketRow> &rows) {
  std::vector<std::string> local, peer, owners;
  std::size_t wl = 5, wp = 4, ws = 5;
  for (const SocketRow &r : rows) {
    local.push_back(format_endpoint(r.sock.af, r.sock.laddr, r.sock.lport));
    peer.push_back(format_endpoint(r.sock.af, r.sock.raddr, r.sock.rport));
    wl = std::max(wl, local.back().size());
    wp = std::max(wp, peer.back().size());
    ws = std::max(ws, state_label(r.sock.state).size());
  }
  fmt::format_to(std::back_inserter(out),
                 "{:<{}} {:>6} {:>6} {:<{}} {:<{}} {:>10} {:>10} {:>10} "
                 "{:>10} PROCESS\n",
                 "STATE", ws, "RECV-Q", "SEND-Q", "LOCAL", wl, "PEER", wp,
                 "NETNS", "SND_UNA", "SND_NXT", "RCV_NXT");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const tt_iter_sock &s = rows[i].sock;
    fmt::format_to(std::back_inserter(out),
                   "{:<{}} {:>6} {:>6} {:<{}} {:<{}} {:>10} {:>10} {:>10} "
                   "{:>10} ",
                   state_label(s.state), ws, s.rx_queue, s.tx_queue, local[i],
                   wl, peer[i], wp, s.netns, s.snd_una, s.snd_nxt, s.rcv_nxt);
    bool first = true;
    for (const SocketOwner &o : rows[i].owners) {
      fmt::format_to(std::back_inserter(out), "{}{}/", first ? "" : ",",
                     o.pid);
      append_terminal_safe(out, comm_view(o.comm));
      fmt::format_to(std::back_inserter(out), "/{}", o.fd);
      first = false;
    }
    if (first)
      append(out, "-");
    append(out, "\n");
  }
}

void format_snapshot_json(Buffer &out, const std::vector<SocketRow> &rows,
                          CgroupNames *names) {
  for (const SocketRow &r : rows) {
    const tt_iter_sock &s = r.sock;
    append(out, "{\"event\":\"socket\",\"state\":");
    append_json_string(out, state_label(s.state));
    fmt::format_to(std::back_inserter(out),
                   ",\"cookie\":{},\"kind\":\"{}\",\"af\":{},\"laddr\":\"{}\","
                   "\"lport\":{},\"raddr\":\"{}\",\"rport\":{},\"netns\":{},"
                   "\"inode\":{},\"uid\":{},\"rx_queue\":{},\"tx_queue\":{},"
                   "\"snd_una\":{},\"snd_nxt\":{},\"rcv_nxt\":{}",
                   s.hdr.cookie, kind_name(s.sk_kind), s.af,
                   format_ip(s.af, s.laddr), s.lport,
                   format_ip(s.af, s.raddr), s.rport, s.netns, s.ino, s.uid,
                   s.rx_queue, s.tx_queue, s.snd_una, s.snd_nxt, s.rcv_nxt);
    if (!r.owners.empty()) {
      fmt::format_to(std::back_inserter(out), ",\"pid\":{},\"comm\":",
                     r.owners[0].pid);
      append_json_string(out, comm_view(r.owners[0].comm));
      fmt::format_to(std::back_inserter(out), ",\"fd\":{}", r.owners[0].fd);
    } else if (s.flags & TT_IF_OWNER) {
      fmt::format_to(std::back_inserter(out), ",\"pid\":{},\"comm\":", s.pid);
      append_json_string(out, comm_view(s.comm));
      append(out, ",\"fd\":null");
    } else {
      append(out, ",\"pid\":0,\"comm\":\"\",\"fd\":null");
    }
    append(out, ",\"owners\":[");
    for (std::size_t i = 0; i < r.owners.size(); ++i) {
      fmt::format_to(std::back_inserter(out), "{}{{\"pid\":{},\"comm\":",
                     i ? "," : "", r.owners[i].pid);
      append_json_string(out, comm_view(r.owners[i].comm));
      fmt::format_to(std::back_inserter(out), ",\"fd\":{}}}", r.owners[i].fd);
    }
    append(out, "]");
    append_cgroup_json(out, names, r.cgroup_id());
    append(out, "}\n");
  }
}

void format_snapshot_csv(Buffer &out, const std::vector<SocketRow> &rows,
                         CgroupNames *names) {
  append(out, "state,cookie,af,laddr,lport,raddr,rport,netns,inode,rx_queue,"
              "tx_queue,snd_una,snd_nxt,rcv_nxt,pid,comm,fd,cgroup_id,cgroup,"
              "container\n");
  for (const SocketRow &r : rows) {
    const tt_iter_sock &s = r.sock;
    fmt::format_to(std::back_inserter(out),
                   "{},{},{},{},{},{},{},{},{},{},{},{},{},{},",
                   state_label(s.state), s.hdr.cookie, s.af,
                   format_ip(s.af, s.laddr), s.lport, format_ip(s.af, s.raddr),
                   s.rport, s.netns, s.ino, s.rx_queue, s.tx_queue, s.snd_una,
                   s.snd_nxt, s.rcv_nxt);
    if (!r.owners.empty()) {
      fmt::format_to(std::back_inserter(out), "{},", r.owners[0].pid);
      append_csv_field(out, comm_view(r.owners[0].comm));
      fmt::format_to(std::back_inserter(out), ",{},", r.owners[0].fd);
    } else {
      append(out, "0,,,");
    }
    append_cgroup_csv(out, names, r.cgroup_id());
    out.push_back('\n');
  }
}

} // namespace tcptrail
