// Event filters. Parsed here, enforced in the kernel (rodata, before
// bpf_ringbuf_reserve), mirrored by matches() for tests and user-side use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
};

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

} // namespace tcptrail
