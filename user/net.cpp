#include "net.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace tcptrail {

std::string format_ip(std::uint8_t af,
                      const std::uint8_t (&addr)[TT_ADDR_LEN]) {
  char buf[INET6_ADDRSTRLEN];
  const int family = af == 6 ? AF_INET6 : AF_INET;
  if (!inet_ntop(family, addr, buf, sizeof(buf)))
    return "?";
  return buf;
}

std::string format_endpoint(std::uint8_t af,
                            const std::uint8_t (&addr)[TT_ADDR_LEN],
                            std::uint16_t port) {
  if (af == 6)
    return fmt::format("[{}]:{}", format_ip(af, addr), port);
  return fmt::format("{}:{}", format_ip(af, addr), port);
}

void append_ip(fmt::memory_buffer &out, std::uint8_t af,
               const std::uint8_t (&addr)[TT_ADDR_LEN]) {
  char buf[INET6_ADDRSTRLEN];
  const int family = af == 6 ? AF_INET6 : AF_INET;
  if (!inet_ntop(family, addr, buf, sizeof(buf))) {
    out.push_back('?');
    return;
  }
  out.append(buf, buf + strlen(buf));
}

void append_endpoint(fmt::memory_buffer &out, std::uint8_t af,
                     const std::uint8_t (&addr)[TT_ADDR_LEN],
                     std::uint16_t port) {
  if (af == 6)
    out.push_back('[');
  append_ip(out, af, addr);
  if (af == 6)
    out.push_back(']');
  out.push_back(':');
  const fmt::format_int digits(port);
  out.append(digits.data(), digits.data() + digits.size());
}

std::string errno_name(int err) {
  if (const char *name = strerrorname_np(err))
    return name;
  return fmt::format("E{}", err);
}

std::optional<std::uint64_t> sockstat_count(std::string_view text,
                                            std::string_view protocol,
                                            std::string_view field) {
  // "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 467"
  auto next_word = [](std::string_view &s) {
    const std::size_t start = s.find_first_not_of(' ');
    if (start == std::string_view::npos) {
      s = {};
      return std::string_view{};
    }
    s.remove_prefix(start);
    const std::size_t end = std::min(s.find(' '), s.size());
    const std::string_view word = s.substr(0, end);
    s.remove_prefix(end);
    return word;
  };
  while (!text.empty()) {
    const std::size_t eol = std::min(text.find('\n'), text.size());
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(std::min(eol + 1, text.size()));
    if (next_word(line) != protocol)
      continue;
    for (std::string_view name = next_word(line); !name.empty();
         name = next_word(line)) {
      const std::string_view value = next_word(line);
      if (name != field)
        continue;
      std::uint64_t n = 0;
      const auto [end, ec] =
          std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size() ||
          value.empty())
        return std::nullopt;
      return n;
    }
    return std::nullopt;
  }
  return std::nullopt;
}

bool no_tcp_sockets(std::string_view sockstat, std::string_view sockstat6) {
  const auto inuse = sockstat_count(sockstat, "TCP:", "inuse");
  const auto tw = sockstat_count(sockstat, "TCP:", "tw");
  if (!inuse || !tw || *inuse || *tw)
    return false;
  if (sockstat6.empty())
    return true; // no IPv6 in this kernel
  const auto inuse6 = sockstat_count(sockstat6, "TCP6:", "inuse");
  return inuse6 && !*inuse6;
}

} // namespace tcptrail
