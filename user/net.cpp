#include "net.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

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

} // namespace tcptrail
