#include "filter.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "error.h"
#include "format/escape.h"
#include "tcp_state.h"

namespace tcptrail {

namespace {

// "32", "0": decimal digits only, no sign, no spaces, at most `max`.
std::optional<std::uint8_t> parse_prefix(std::string_view text, unsigned max) {
  if (text.empty() || text.size() > 3)
    return std::nullopt;
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > max)
    return std::nullopt;
  return static_cast<std::uint8_t>(value);
}

// Whether the first `prefix_len` bits of a and b are equal.
bool prefix_equal(const std::uint8_t *a, const std::uint8_t *b,
                  unsigned prefix_len) {
  const unsigned bytes = prefix_len / 8;
  if (std::memcmp(a, b, bytes) != 0)
    return false;
  const unsigned bits = prefix_len % 8;
  if (bits == 0)
    return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits));
  return ((a[bytes] ^ b[bytes]) & mask) == 0;
}

constexpr std::uint32_t state_bit(std::uint8_t state) {
  return state < 32 ? 1U << state : 0;
}

template <typename T> bool any_of_equal(const std::vector<T> &values, T value) {
  return std::find(values.begin(), values.end(), value) != values.end();
}

bool any_cidr(const std::vector<Cidr> &cidrs, std::uint8_t af,
              const std::uint8_t (&addr)[TT_ADDR_LEN]) {
  return std::any_of(cidrs.begin(), cidrs.end(),
                     [&](const Cidr &c) { return cidr_contains(c, af, addr); });
}

std::optional<std::string> check_cidrs(const std::vector<Cidr> &cidrs,
                                       std::string_view what, std::uint8_t af) {
  if (cidrs.size() > kMaxFilterCidrs)
    return fmt::format("too many {} filters: {} (at most {})", what,
                       cidrs.size(), kMaxFilterCidrs);
  for (const Cidr &c : cidrs) {
    if (c.af != 4 && c.af != 6)
      return fmt::format("{} filter has address family {} (want 4 or 6)", what,
                         c.af);
    if (c.prefix_len > (c.af == 4 ? 32 : 128))
      return fmt::format("{} filter has prefix length {} for IPv{}", what,
                         c.prefix_len, c.af);
    if (af != 0 && c.af != af)
      return fmt::format("{} filter is IPv{} but only IPv{} is traced", what,
                         c.af, af);
  }
  return std::nullopt;
}

// A user's argument, printable in an error line.
std::string sanitize(std::string_view s) {
  Buffer b;
  append_terminal_safe(b, s);
  return fmt::to_string(b);
}

} // namespace

std::optional<Cidr> parse_cidr(std::string_view text) {
  const std::size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  // INET6_ADDRSTRLEN includes the NUL; inet_pton needs a C string.
  char buf[INET6_ADDRSTRLEN];
  if (addr_text.empty() || addr_text.size() >= sizeof(buf))
    return std::nullopt;
  std::memcpy(buf, addr_text.data(), addr_text.size());
  buf[addr_text.size()] = '\0';

  Cidr cidr;
  const bool v6 = addr_text.find(':') != std::string_view::npos;
  cidr.af = v6 ? 6 : 4;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, buf, cidr.addr) != 1)
    return std::nullopt;

  const unsigned max = v6 ? 128 : 32;
  if (slash == std::string_view::npos) {
    cidr.prefix_len = static_cast<std::uint8_t>(max);
  } else {
    const auto prefix = parse_prefix(text.substr(slash + 1), max);
    if (!prefix)
      return std::nullopt;
    cidr.prefix_len = *prefix;
  }

  // Clear the host bits.
  const unsigned addr_bytes = v6 ? 16 : 4;
  for (unsigned i = 0; i < addr_bytes; ++i) {
    const unsigned first_bit = i * 8;
    if (first_bit >= cidr.prefix_len)
      cidr.addr[i] = 0;
    else if (cidr.prefix_len - first_bit < 8)
      cidr.addr[i] &= static_cast<std::uint8_t>(
          0xff << (8 - (cidr.prefix_len - first_bit)));
  }
  return cidr;
}

bool cidr_contains(const Cidr &cidr, std::uint8_t af,
                   const std::uint8_t (&addr)[TT_ADDR_LEN]) {
  if (cidr.af != af)
    return false;
  const unsigned max = af == 6 ? 128 : 32;
  if (cidr.prefix_len > max)
    return false;
  return prefix_equal(cidr.addr, addr, cidr.prefix_len);
}

std::optional<std::string> validate(const FilterSpec &spec) {
  if (spec.af != 0 && spec.af != 4 && spec.af != 6)
    return fmt::format("address family {} (want 4 or 6)", spec.af);
  if (spec.pids.size() > kMaxFilterPids)
    return fmt::format("too many pid filters: {} (at most {})",
                       spec.pids.size(), kMaxFilterPids);
  if (spec.comm.size() > TT_COMM_LEN - 1)
    return fmt::format("comm filter is {} bytes; the kernel keeps at most {}",
                       spec.comm.size(), TT_COMM_LEN - 1);
  if (spec.comm.find('\0') != std::string::npos)
    return std::string("comm filter contains a NUL byte");
  if (spec.lports.size() > kMaxFilterPorts)
    return fmt::format("too many local port filters: {} (at most {})",
                       spec.lports.size(), kMaxFilterPorts);
  if (spec.rports.size() > kMaxFilterPorts)
    return fmt::format("too many remote port filters: {} (at most {})",
                       spec.rports.size(), kMaxFilterPorts);
  if (auto err = check_cidrs(spec.laddrs, "local address", spec.af))
    return err;
  if (auto err = check_cidrs(spec.raddrs, "remote address", spec.af))
    return err;
  constexpr std::uint32_t kValidStates =
      ((1U << (kMaxTcpState + 1)) - 1) & ~1U; // states 1..kMaxTcpState
  if (spec.state_mask & ~kValidStates)
    return fmt::format("state filter has unknown states (mask {:#x})",
                       spec.state_mask & ~kValidStates);
  return std::nullopt;
}

bool matches(const FilterSpec &spec, const tt_sock &sk, std::uint8_t old_state,
             std::uint8_t new_state) {
  return matches_states(spec, sk, state_bit(old_state) | state_bit(new_state));
}

namespace {

// Everything but the owner (pid, comm, cgroup).
bool endpoints_match(const FilterSpec &spec, const tt_sock &sk,
                     std::uint32_t states) {
  if (spec.af != 0 && sk.af != spec.af)
    return false;
  if (!spec.lports.empty() && !any_of_equal(spec.lports, sk.lport))
    return false;
  if (!spec.rports.empty() && !any_of_equal(spec.rports, sk.rport))
    return false;
  if (!spec.laddrs.empty() && !any_cidr(spec.laddrs, sk.af, sk.laddr))
    return false;
  if (!spec.raddrs.empty() && !any_cidr(spec.raddrs, sk.af, sk.raddr))
    return false;
  if (spec.state_mask != 0 && (spec.state_mask & states) == 0)
    return false;
  if (spec.netns != 0 && sk.netns != spec.netns)
    return false;
  return true;
}

} // namespace

bool matches_states(const FilterSpec &spec, const tt_sock &sk,
                    std::uint32_t states) {
  if (!spec.pids.empty() && !any_of_equal(spec.pids, sk.pid))
    return false;
  if (!spec.comm.empty() && comm_view(sk.comm) != spec.comm)
    return false;
  if (spec.cgroup_id != 0 && !cgroup_matches(spec, sk.cgroup_id))
    return false;
  return endpoints_match(spec, sk, states);
}

bool iter_keeps(const FilterSpec &spec, const tt_sock &sk, std::uint8_t state) {
  if (state == static_cast<std::uint8_t>(TcpState::Listen))
    return true;
  return endpoints_match(spec, sk, state_bit(state));
}

bool cgroup_matches(const FilterSpec &spec, std::uint64_t id) {
  if (spec.cgroup_id == 0 || id == spec.cgroup_id)
    return true;
  if (id == 0 || !spec.cgroup_names)
    return false;
  const CgroupInfo *info = spec.cgroup_names->find(id);
  return info && cgroup_path_under(info->path, spec.cgroup_path);
}

void resolve_cgroup_filter(FilterSpec &spec,
                           const std::shared_ptr<CgroupTree> &tree) {
  if (spec.cgroup_arg.empty() && spec.container_arg.empty())
    return;
  if (!tree)
    throw Error("--cgroup and --container need the cgroup v2 hierarchy, and "
                "none is mounted",
                "mount -t cgroup2 none /sys/fs/cgroup (or a subdirectory)", 2);
  CgroupTree::Resolved r;
  if (!spec.cgroup_arg.empty()) {
    auto found = tree->resolve(spec.cgroup_arg);
    if (!found)
      throw Error(fmt::format("--cgroup '{}': no such cgroup (v2) under {}",
                              sanitize(spec.cgroup_arg), tree->mount()),
                  "give a path as /proc/PID/cgroup shows it after '0::', "
                  "e.g. /system.slice/ssh.service",
                  2);
    r = *found;
  } else {
    const std::string &prefix = spec.container_arg;
    const bool hex = std::all_of(prefix.begin(), prefix.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    });
    if (prefix.empty() || prefix.size() > 64 || !hex)
      throw Error(fmt::format("--container '{}': not a container id (1 to 64 "
                              "lower-case hex digits)",
                              sanitize(prefix)),
                  {}, 2);
    auto found = tree->containers_matching(prefix);
    if (found.empty())
      throw Error(fmt::format("--container '{}': no running container's "
                              "cgroup matches",
                              sanitize(prefix)),
                  "docker ps / crictl ps / podman ps list the ids; the "
                  "container must be running now",
                  2);
    if (found.size() > 1)
      throw Error(fmt::format("--container '{}': ambiguous, {} containers "
                              "match (e.g. {} and {})",
                              sanitize(prefix), found.size(),
                              sanitize(found[0].path), sanitize(found[1].path)),
                  "give more digits of the id", 2);
    r = found[0];
  }
  spec.cgroup_id = r.id;
  spec.cgroup_level = r.level;
  spec.cgroup_path = r.path;
  spec.cgroup_names = tree;
}

} // namespace tcptrail
