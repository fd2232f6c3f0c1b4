// TCP states as the kernel numbers them (include/net/tcp_states.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tcptrail {

enum class TcpState : std::uint8_t {
  Established = 1,
  SynSent = 2,
  SynRecv = 3,
  FinWait1 = 4,
  FinWait2 = 5,
  TimeWait = 6,
  Close = 7,
  CloseWait = 8,
  LastAck = 9,
  Listen = 10,
  Closing = 11,
  NewSynRecv = 12,
};

inline constexpr std::uint8_t kMaxTcpState = 12;

// The state's bit in a state mask (1 << state), as the filters and the BPF
// side number them.
constexpr std::uint32_t state_bit(TcpState s) {
  return 1U << static_cast<unsigned>(s);
}

// "ESTABLISHED", ...; empty for values the kernel does not define.
std::string_view state_name(std::uint8_t state);

// state_name(), or "UNKNOWN(n)" for an unknown value.
std::string state_label(std::uint8_t state);

// Accepts the names above, case-insensitive, '-' or '_' ("close-wait").
std::optional<TcpState> parse_state(std::string_view name);

} // namespace tcptrail
