// Event filters. Parsed here, enforced in the kernel (rodata, before
// bpf_ringbuf_reserve), mirrored by matches() for tests and user-side use.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cgroup.h"
#include "tcptrail/events.h"

namespace tcptrail {

// Limits of the in-kernel filter tables.
inline constexpr std::size_t kMaxFilterPids = TT_MAX_FILTER_PIDS;
inline constexpr std::size_t kMaxFilterPorts = TT_MAX_FILTER_PORTS;
inline constexpr std::size_t kMaxFilterCidrs = TT_MAX_FILTER_CIDRS;

struct Cidr {
  std::uint8_t af = 4; // 4 or 6
  std::uint8_t prefix_len = 0;
  std::uint8_t addr[TT_ADDR_LEN] = {}; // host bits cleared
};

// "198.18.0.0/15", "2001:db8::/32", "198.18.0.1" (= /32), "::1" (= /128).
std::optional<Cidr> parse_cidr(std::string_view text);
bool cidr_contains(const Cidr &cidr, std::uint8_t af,
                   const std::uint8_t (&addr)[TT_ADDR_LEN]);

struct FilterSpec {
  std::uint8_t af = 0; // 0 = both, 4 or 6
  std::vector<std::uint32_t> pids; // owner tgid
  std::string comm;                // owner comm, exact (<= 15 bytes)
  std::vector<std::uint16_t> lports, rports;
  std::vector<Cidr> laddrs, raddrs;
  std::uint32_t state_mask = 0; // bit (1 << state); either side matches
  std::uint32_t netns = 0;      // inode, 0 = any
  // --cgroup PATH / --container ID as given; resolve_cgroup_filter() turns
  // either into the fields below.
  std::string cgroup_arg, container_arg;
  // The owner's cgroup is this one (v2 id, 0 = any) or below it.
  std::uint64_t cgroup_id = 0;
  std::uint32_t cgroup_level = 0; // depth below the root (root: 0)
  std::string cgroup_path;        // relative to the cgroup2 root
  // User-side checks: names descendants by path. Without it, only
  // cgroup_id itself matches.
  std::shared_ptr<CgroupNames> cgroup_names;
};

// Resolves spec.cgroup_arg / spec.container_arg against `tree` into
// cgroup_id, cgroup_level, cgroup_path and cgroup_names. Throws
// tcptrail::Error (with a hint) when the path is no cgroup, no container or
// more than one matches the prefix, or no cgroup2 tree is mounted (tree
// nullptr). Nothing to do when neither is set.
void resolve_cgroup_filter(FilterSpec &spec,
                           const std::shared_ptr<CgroupTree> &tree);

// Whether a socket whose owner is in cgroup `id` passes the cgroup filter.
bool cgroup_matches(const FilterSpec &spec, std::uint64_t id);

// Checks limits; returns a one-line reason when the spec cannot be applied.
std::optional<std::string> validate(const FilterSpec &spec);

// The same decisions the BPF side makes. `old_state`/`new_state` are the
// transition's states (for segment events: both the socket's state).
bool matches(const FilterSpec &spec, const tt_sock &sk, std::uint8_t old_state,
             std::uint8_t new_state);
// The same for a record about several states: `states` holds 1 << state of
// each (a connection's whole path).
bool matches_states(const FilterSpec &spec, const tt_sock &sk,
                    std::uint32_t states);
// What the socket iterators keep of a socket in `state` (iter_wanted(),
// bpf/iter.bpf.c): every listener; else family, namespace, state, ports
// and addresses. Not the owner filters, which need the fds.
bool iter_keeps(const FilterSpec &spec, const tt_sock &sk, std::uint8_t state);

} // namespace tcptrail
