#include "diagnose/netinfo.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <fstream>
#include <sstream>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace tcptrail::diagnose {

namespace {

std::vector<std::string_view> split_ws(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
      ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t')
      ++j;
    if (j > i)
      out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::optional<std::int64_t> to_i64(std::string_view s) {
  if (s.empty())
    return std::nullopt;
  bool neg = false;
  std::size_t i = 0;
  if (s[0] == '-') {
    neg = true;
    i = 1;
  }
  if (i == s.size())
    return std::nullopt;
  std::uint64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9')
      return std::nullopt;
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
  }
  return neg ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
}

std::optional<std::string> read_file(const std::string &path) {
  std::ifstream in(path);
  if (!in)
    return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::int64_t> read_sysctl(const std::string &path) {
  auto text = read_file(path);
  if (!text)
    return std::nullopt;
  auto f = split_ws(std::string_view(*text).substr(0, text->find('\n')));
  if (f.empty())
    return std::nullopt;
  return to_i64(f[0]);
}

// The snapshot's sockets from `sockets`.
void read_sockets(NetSnapshot &snap, const SocketSource &sockets) {
  std::string err;
  snap.sockets.clear();
  snap.sockets_ok = sockets(snap.sockets, err);
  if (!snap.sockets_ok && snap.error.empty())
    snap.error = err;
}

// Everything but the sockets without `sockets` (read later).
void read_here(NetSnapshot &snap, const SocketSource &sockets) {
  struct stat st{};
  if (stat("/proc/thread-self/ns/net", &st) == 0)
    snap.netns = st.st_ino;
  bool any = false;
  for (const char *f : {"/proc/thread-self/net/netstat", "/proc/thread-self/net/snmp"}) {
    if (auto text = read_file(f)) {
      any = true;
      for (auto &[k, v] : parse_mib(*text))
        snap.mib[k] = v;
    }
  }
  if (!any)
    snap.error = "cannot read /proc/thread-self/net/{netstat,snmp}";
  if (auto text = read_file("/proc/sys/net/ipv4/ip_local_port_range")) {
    auto f = split_ws(*text);
    if (f.size() >= 2) {
      auto lo = to_i64(f[0]);
      auto hi = to_i64(f[1].substr(0, f[1].find('\n')));
      if (lo && hi) {
        snap.port_lo = static_cast<std::uint32_t>(*lo);
        snap.port_hi = static_cast<std::uint32_t>(*hi);
      }
    }
  }
  snap.max_syn_backlog =
      read_sysctl("/proc/sys/net/ipv4/tcp_max_syn_backlog").value_or(-1);
  snap.somaxconn = read_sysctl("/proc/sys/net/core/somaxconn").value_or(-1);
  snap.syncookies = read_sysctl("/proc/sys/net/ipv4/tcp_syncookies").value_or(-1);

  if (sockets)
    read_sockets(snap, sockets);
  snap.ok = any;
}

} // namespace

// One sock_diag dump of `family` for the states in `states`.
bool diag_dump(int family, std::uint32_t states, std::vector<DiagSock> &out,
               std::string &err) {
  const int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) {
    err = fmt::format("sock_diag socket: {}", std::strerror(errno));
    return false;
  }
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = 1;
  msg.req.sdiag_family = static_cast<std::uint8_t>(family);
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = states;
  sockaddr_nl nl{};
  nl.nl_family = AF_NETLINK;
  if (sendto(fd, &msg, sizeof(msg), 0, reinterpret_cast<sockaddr *>(&nl),
             sizeof(nl)) < 0) {
    err = fmt::format("sock_diag send: {}", std::strerror(errno));
    close(fd);
    return false;
  }
  std::vector<char> buf(1 << 16);
  bool ok = true, done = false;
  while (!done) {
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      err = fmt::format("sock_diag recv: {}", std::strerror(errno));
      ok = false;
      break;
    }
    if (n == 0)
      break;
    int len = static_cast<int>(n);
    for (auto *h = reinterpret_cast<nlmsghdr *>(buf.data()); NLMSG_OK(h, len);
         h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto *e = static_cast<const nlmsgerr *>(NLMSG_DATA(h));
        err = fmt::format("sock_diag: {}", std::strerror(-e->error));
        ok = false;
        done = true;
        break;
      }
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
        continue;
      const auto *m = static_cast<const inet_diag_msg *>(NLMSG_DATA(h));
      DiagSock s;
      s.af = m->idiag_family == AF_INET6 ? 6 : 4;
      s.state = m->idiag_state;
      const std::size_t alen = s.af == 4 ? 4 : 16;
      std::memcpy(s.laddr, m->id.idiag_src, alen);
      std::memcpy(s.raddr, m->id.idiag_dst, alen);
      s.lport = ntohs(m->id.idiag_sport);
      s.rport = ntohs(m->id.idiag_dport);
      s.rqueue = m->idiag_rqueue;
      s.wqueue = m->idiag_wqueue;
      s.uid = m->idiag_uid;
      s.inode = m->idiag_inode;
      s.cookie = static_cast<std::uint64_t>(m->id.idiag_cookie[0]) |
                 (static_cast<std::uint64_t>(m->id.idiag_cookie[1]) << 32);
      out.push_back(s);
    }
  }
  close(fd);
  return ok;
}

// Reads everything in the calling thread's namespace.

MibCounters parse_mib(std::string_view text) {
  MibCounters out;
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos)
      nl = text.size();
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
    const auto names = split_ws(lines[i]);
    const auto values = split_ws(lines[i + 1]);
    if (names.empty() || values.empty() || names[0] != values[0] ||
        names[0].back() != ':' || names.size() != values.size())
      continue;
    // A header line has a non-numeric second field.
    if (names.size() > 1 && to_i64(names[1]))
      continue;
    const std::string_view prefix = names[0].substr(0, names[0].size() - 1);
    for (std::size_t k = 1; k < names.size(); ++k)
      if (auto v = to_i64(values[k]))
        out[fmt::format("{}.{}", prefix, names[k])] = *v;
    ++i;
  }
  return out;
}

MibCounters mib_delta(const MibCounters &before, const MibCounters &after) {
  MibCounters out;
  for (const auto &[k, v] : after) {
    auto it = before.find(k);
    if (it != before.end())
      out[k] = v - it->second;
  }
  return out;
}

std::optional<std::string> find_netns_path(std::uint64_t inode) {
  auto match = [inode](const std::string &p) {
    struct stat st{};
    return stat(p.c_str(), &st) == 0 && st.st_ino == inode;
  };
  for (const char *dir : {"/run/netns", "/var/run/netns"}) {
    if (DIR *d = opendir(dir)) {
      while (dirent *e = readdir(d)) {
        if (e->d_name[0] == '.')
          continue;
        std::string p = fmt::format("{}/{}", dir, e->d_name);
        if (match(p)) {
          closedir(d);
          return p;
        }
      }
      closedir(d);
    }
  }
  if (DIR *d = opendir("/proc")) {
    while (dirent *e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9')
        continue;
      std::string p = fmt::format("/proc/{}/ns/net", e->d_name);
      if (match(p)) {
        closedir(d);
        return p;
      }
    }
    closedir(d);
  }
  return std::nullopt;
}

struct SnapshotPair::Worker {
  std::mutex mu;
  std::condition_variable cv;
  bool started = false, entered = false, stop = false;
  std::function<void()> job; // run in the namespace, then reset
  std::thread thread;
};

SnapshotPair::SnapshotPair(std::optional<std::uint64_t> netns, Hook after_start,
                           SocketSource sockets)
    : netns_(netns), sockets_(std::move(sockets)) {
  if (!netns) {
    start_reader_ = std::thread([this] { read_here(start_, sockets_); });
    return;
  }
  const auto path = find_netns_path(*netns);
  if (!path) {
    start_.error = fmt::format("no namespace with inode {} found", *netns);
    return;
  }
  worker_ = std::make_unique<Worker>();
  Worker *w = worker_.get();
  w->thread = std::thread([this, w, p = *path, hook = std::move(after_start)] {
    bool entered = false;
    const int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      start_.error = fmt::format("open {}: {}", p, std::strerror(errno));
    } else if (setns(fd, CLONE_NEWNET) != 0) {
      start_.error = fmt::format("setns {}: {}", p, std::strerror(errno));
    } else {
      entered = true;
      read_here(start_, sockets_);
    }
    if (fd >= 0)
      close(fd);
    try {
      if (hook)
        hook();
    } catch (const std::exception &e) {
      entered = false;
      start_.error = fmt::format("namespace reader: {}", e.what());
    }
    std::unique_lock lock(w->mu);
    w->started = true;
    w->entered = entered;
    w->cv.notify_all();
    for (;;) {
      w->cv.wait(lock, [w] { return w->stop || w->job; });
      if (!w->job)
        return;
      w->job();
      w->job = nullptr;
      w->cv.notify_all();
    }
  });
}

NetSnapshot &SnapshotPair::start() {
  if (start_reader_.joinable())
    start_reader_.join();
  if (worker_) {
    std::unique_lock lock(worker_->mu);
    worker_->cv.wait(lock, [this] { return worker_->started && !worker_->job; });
  }
  return start_;
}

bool SnapshotPair::in_namespace(std::function<void()> fn, bool wait) {
  if (!netns_) {
    if (wait)
      fn();
    else
      start_reader_ = std::thread(std::move(fn));
    return true;
  }
  if (!worker_)
    return false;
  std::unique_lock lock(worker_->mu);
  if (!worker_->entered)
    return false;
  worker_->job = std::move(fn);
  worker_->cv.notify_all();
  if (wait)
    worker_->cv.wait(lock, [this] { return !worker_->job; });
  return true;
}

void SnapshotPair::read_start_sockets(SocketSource sockets, bool wait) {
  start();
  sockets_ = std::move(sockets);
  in_namespace([this] { read_sockets(start_, sockets_); }, wait);
}

NetSnapshot SnapshotPair::end() {
  start(); // the start snapshot's reader is done with start_
  NetSnapshot s;
  if (!in_namespace([&] { read_here(s, sockets_); }, true))
    s.error = start_.error;
  if (worker_) {
    {
      std::lock_guard lock(worker_->mu);
      worker_->stop = true;
      worker_->cv.notify_all();
    }
    worker_->thread.join();
    worker_.reset();
  }
  return s;
}

SnapshotPair::~SnapshotPair() {
  if (start_reader_.joinable())
    start_reader_.join();
  if (!worker_)
    return;
  {
    std::lock_guard lock(worker_->mu);
    worker_->stop = true;
    worker_->cv.notify_all();
  }
  worker_->thread.join();
}

void for_each_socket_fd(
    const std::function<bool(std::uint32_t pid, std::uint32_t fd,
                             std::uint64_t inode)> &fn) {
  DIR *proc = opendir("/proc");
  if (!proc)
    return;
  bool more = true;
  while (more) {
    const dirent *e = readdir(proc);
    if (!e)
      break;
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    const std::string fddir = fmt::format("/proc/{}/fd", e->d_name);
    DIR *fds = opendir(fddir.c_str());
    if (!fds)
      continue; // exited, or not ours to read
    const auto pid =
        static_cast<std::uint32_t>(std::strtoul(e->d_name, nullptr, 10));
    while (more) {
      const dirent *f = readdir(fds);
      if (!f)
        break;
      if (f->d_name[0] == '.')
        continue;
      char link[64];
      const std::string p = fmt::format("{}/{}", fddir, f->d_name);
      const ssize_t n = readlink(p.c_str(), link, sizeof(link) - 1);
      if (n <= 0 || std::strncmp(link, "socket:[", 8) != 0)
        continue;
      link[n] = '\0';
      more = fn(pid,
                static_cast<std::uint32_t>(std::strtoul(f->d_name, nullptr, 10)),
                std::strtoull(link + 8, nullptr, 10));
    }
    closedir(fds);
  }
  closedir(proc);
}

std::string process_comm(std::uint32_t pid) {
  std::string comm = read_file(fmt::format("/proc/{}/comm", pid)).value_or("");
  if (!comm.empty() && comm.back() == '\n')
    comm.pop_back();
  return comm;
}

std::map<std::uint64_t, SocketOwner>
socket_owners(const std::set<std::uint64_t> &inodes) {
  std::map<std::uint64_t, SocketOwner> out;
  if (inodes.empty())
    return out;
  for_each_socket_fd([&](std::uint32_t pid, std::uint32_t, std::uint64_t ino) {
    if (inodes.count(ino) && !out.count(ino))
      out[ino] = SocketOwner{pid, process_comm(pid)};
    return out.size() < inodes.size();
  });
  return out;
}

} // namespace tcptrail::diagnose
