#include "snapshot/snapshot.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "format/formatter.h"
#include "net.h"
#include "tcp_state.h"
#include "tuple.h"

namespace tcptrail {

namespace {

// Rows sort by namespace, family, local then remote endpoint (address bytes
// in network order, then port), cookie.
bool row_less(const tt_iter_sock &a, const tt_iter_sock &b) {
  if (a.netns != b.netns)
    return a.netns < b.netns;
  if (a.af != b.af)
    return a.af < b.af;
  if (const int c = std::memcmp(a.laddr, b.laddr, TT_ADDR_LEN))
    return c < 0;
  if (a.lport != b.lport)
    return a.lport < b.lport;
  if (const int c = std::memcmp(a.raddr, b.raddr, TT_ADDR_LEN))
    return c < 0;
  if (a.rport != b.rport)
    return a.rport < b.rport;
  return a.hdr.cookie < b.hdr.cookie;
}

// A file record's place in a lookup table sorted by key.
struct FileKey {
  std::uint64_t hi;
  std::uint64_t lo;
  const tt_iter_file *file;
  bool operator<(const FileKey &o) const {
    return std::tie(hi, lo) < std::tie(o.hi, o.lo);
  }
};

// The records of `index` whose key is (hi, lo).
template <typename Fn>
void for_each_match(const std::vector<FileKey> &index, std::uint64_t hi,
                    std::uint64_t lo, Fn &&fn) {
  const FileKey probe{hi, lo, nullptr};
  for (auto it = std::lower_bound(index.begin(), index.end(), probe);
       it != index.end() && it->hi == hi && it->lo == lo; ++it)
    fn(*it->file);
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
  // Sorted vectors rather than trees: a host's sockets and fds are tens of
  // thousands, and this runs before leaks' first answer.
  std::vector<FileKey> by_cookie;
  std::vector<FileKey> by_inode; // (netns, inode)
  by_cookie.reserve(files.size());
  by_inode.reserve(files.size());
  for (const tt_iter_file &f : files) {
    if (f.hdr.cookie) // 0: never asked for; the inode joins it
      by_cookie.push_back({0, f.hdr.cookie, &f});
    if (f.ino)
      by_inode.push_back({f.netns, f.ino, &f});
  }
  std::sort(by_cookie.begin(), by_cookie.end());
  std::sort(by_inode.begin(), by_inode.end());

  // One row per cookie (its first record), in output order.
  std::unordered_set<std::uint64_t> seen;
  seen.reserve(sockets.size());
  std::vector<const tt_iter_sock *> order;
  order.reserve(sockets.size());
  for (const tt_iter_sock &s : sockets)
    if (seen.insert(s.hdr.cookie).second)
      order.push_back(&s);
  std::sort(order.begin(), order.end(),
            [](const tt_iter_sock *a, const tt_iter_sock *b) {
              return row_less(*a, *b);
            });

  std::vector<SocketRow> rows;
  rows.reserve(sockets.size());
  const auto by_fd = [](const SocketOwner &a, const SocketOwner &b) {
    return std::tie(a.pid, a.fd) < std::tie(b.pid, b.fd);
  };
  const auto same_fd = [](const SocketOwner &a, const SocketOwner &b) {
    return a.pid == b.pid && a.fd == b.fd;
  };
  for (const tt_iter_sock *s : order) {
    SocketRow &row = rows.emplace_back();
    row.sock = *s;
    const auto take = [&](const tt_iter_file &f) {
      SocketOwner &o = row.owners.emplace_back();
      o.pid = f.pid;
      o.fd = f.fd;
      std::memcpy(o.comm, f.comm, sizeof(o.comm));
      o.cgroup_id = f.cgroup_id;
    };
    for_each_match(by_cookie, 0, s->hdr.cookie, take);
    if (s->ino)
      for_each_match(by_inode, s->netns, s->ino, take);
    if (row.owners.size() > 1) {
      // A fd found by cookie and by inode is one owner; the first record of
      // it wins, as both name the same process.
      std::stable_sort(row.owners.begin(), row.owners.end(), by_fd);
      row.owners.erase(
          std::unique(row.owners.begin(), row.owners.end(), same_fd),
          row.owners.end());
    }
  }
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
