// Sequence-number arithmetic: 32-bit, modulo 2^32 (RFC 793 / RFC 1982).
#pragma once

#include <cstdint>

namespace tcptrail {

// Offset of `raw` from the initial sequence number, like Wireshark's
// relative numbers: the SYN occupies isn, so the first data byte is 1.
constexpr std::uint32_t relative_seq(std::uint32_t raw, std::uint32_t isn) {
  return raw - isn; // unsigned wrap-around is the modular difference
}

// a - b as a signed distance (valid while |a - b| < 2^31).
constexpr std::int32_t seq_diff(std::uint32_t a, std::uint32_t b) {
  return static_cast<std::int32_t>(a - b);
}

constexpr bool seq_before(std::uint32_t a, std::uint32_t b) {
  return seq_diff(a, b) < 0;
}

} // namespace tcptrail
