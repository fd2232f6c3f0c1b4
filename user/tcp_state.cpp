#include "tcp_state.h"

#include <netinet/tcp.h>

#include <array>
#include <cctype>

#include <fmt/format.h>

namespace tcptrail {

// The numbering is the kernel's ABI; glibc mirrors it.
static_assert(static_cast<int>(TcpState::Established) == TCP_ESTABLISHED);
static_assert(static_cast<int>(TcpState::SynSent) == TCP_SYN_SENT);
static_assert(static_cast<int>(TcpState::SynRecv) == TCP_SYN_RECV);
static_assert(static_cast<int>(TcpState::FinWait1) == TCP_FIN_WAIT1);
static_assert(static_cast<int>(TcpState::FinWait2) == TCP_FIN_WAIT2);
static_assert(static_cast<int>(TcpState::TimeWait) == TCP_TIME_WAIT);
static_assert(static_cast<int>(TcpState::Close) == TCP_CLOSE);
static_assert(static_cast<int>(TcpState::CloseWait) == TCP_CLOSE_WAIT);
static_assert(static_cast<int>(TcpState::LastAck) == TCP_LAST_ACK);
static_assert(static_cast<int>(TcpState::Listen) == TCP_LISTEN);
static_assert(static_cast<int>(TcpState::Closing) == TCP_CLOSING);

namespace {

constexpr std::array<std::string_view, kMaxTcpState + 1> kNames = {
    "",          "ESTABLISHED", "SYN_SENT", "SYN_RECV",   "FIN_WAIT1",
    "FIN_WAIT2", "TIME_WAIT",   "CLOSE",    "CLOSE_WAIT", "LAST_ACK",
    "LISTEN",    "CLOSING",     "NEW_SYN_RECV",
};

} // namespace

std::string_view state_name(std::uint8_t state) {
  return state < kNames.size() ? kNames[state] : std::string_view{};
}

std::string state_label(std::uint8_t state) {
  auto name = state_name(state);
  if (!name.empty())
    return std::string(name);
  return fmt::format("UNKNOWN({})", state);
}

std::optional<TcpState> parse_state(std::string_view name) {
  std::string norm;
  norm.reserve(name.size());
  for (char c : name)
    norm.push_back(c == '-' ? '_'
                            : static_cast<char>(std::toupper(
                                  static_cast<unsigned char>(c))));
  for (std::size_t i = 1; i < kNames.size(); ++i)
    if (kNames[i] == norm)
      return static_cast<TcpState>(static_cast<std::uint8_t>(i));
  return std::nullopt;
}

} // namespace tcptrail
