// `tcptrail serve --listen ADDR:PORT`: parsing and checking the address.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tcptrail {

// Default: loopback only, on a port outside the Prometheus wiki's exporter
// range 9100-9999 (fully allocated) and not used by a well-known exporter.
inline constexpr std::uint16_t kDefaultServePort = 10184;

struct ListenAddr {
  int af = 4;       // 4 or 6
  std::string addr; // "127.0.0.1", "::1" (no brackets)
  std::uint16_t port = 0;
  // As civetweb's listening_ports wants it: "127.0.0.1:10184", "[::1]:10184".
  std::string civetweb() const;
};

// "127.0.0.1:10184", "0.0.0.0:10184", "[::1]:10184", "[::]:10184".
// nullopt for anything else (a host name, a missing or zero port).
std::optional<ListenAddr> parse_listen(const std::string &s);

// Binds a TCP socket to `a` and releases it: "" when the address is free,
// else strerror of bind() ("Address already in use").
std::string try_bind(const ListenAddr &a);

} // namespace tcptrail
