#include "serve/listen.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace tcptrail {

std::string ListenAddr::civetweb() const {
  return (af == 6 ? "[" + addr + "]" : addr) + ":" + std::to_string(port);
}

std::optional<ListenAddr> parse_listen(const std::string &s) {
  ListenAddr a;
  std::string host, port;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() ||
        s[close + 1] != ':')
      return std::nullopt;
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    a.af = 6;
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || s.find(':') != colon)
      return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    a.af = 4;
  }
  unsigned char buf[16];
  if (inet_pton(a.af == 6 ? AF_INET6 : AF_INET, host.c_str(), buf) != 1)
    return std::nullopt;
  unsigned p = 0;
  const char *end = port.data() + port.size();
  auto [ptr, ec] = std::from_chars(port.data(), end, p);
  if (port.empty() || ec != std::errc() || ptr != end || p == 0 || p > 65535)
    return std::nullopt;
  a.addr = host;
  a.port = static_cast<std::uint16_t>(p);
  return a;
}

std::string try_bind(const ListenAddr &a) {
  const int fd =
      socket(a.af == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return std::strerror(errno);
  // As civetweb binds: SO_REUSEADDR, so a TIME_WAIT leftover is no clash.
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc;
  if (a.af == 6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(a.port);
    inet_pton(AF_INET6, a.addr.c_str(), &sa.sin6_addr);
    rc = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(a.port);
    inet_pton(AF_INET, a.addr.c_str(), &sa.sin_addr);
    rc = bind(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa));
  }
  // A bound socket that never listened does not clash with a listener on
  // the same port under SO_REUSEADDR: listen() tells.
  if (rc == 0)
    rc = listen(fd, 1);
  const int err = errno;
  close(fd);
  return rc == 0 ? std::string() : std::string(std::strerror(err));
}

} // namespace tcptrail
