// Address formatting shared by every output format, and the kernel's socket
// counts (/proc/net/sockstat).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "tcptrail/events.h"

namespace tcptrail {

// "198.18.0.1" or "2001:db8::1" (inet_ntop; IPv4-mapped IPv6 stays IPv6).
std::string format_ip(std::uint8_t af, const std::uint8_t (&addr)[TT_ADDR_LEN]);

// "198.18.0.1:80" or "[2001:db8::1]:80".
std::string format_endpoint(std::uint8_t af,
                            const std::uint8_t (&addr)[TT_ADDR_LEN],
                            std::uint16_t port);

// Allocation-free variants of the two above, for per-event formatters:
// append to `out` instead of returning a string.
void append_ip(fmt::memory_buffer &out, std::uint8_t af,
               const std::uint8_t (&addr)[TT_ADDR_LEN]);
void append_endpoint(fmt::memory_buffer &out, std::uint8_t af,
                     const std::uint8_t (&addr)[TT_ADDR_LEN],
                     std::uint16_t port);

// "ECONNREFUSED" for 111; "E<n>" when the C library has no name.
std::string errno_name(int err);

// A count from /proc/net/sockstat or sockstat6 text: the number after
// `field` on the line of `protocol` ("TCP:", "TCP6:"), nullopt when the
// line or the field is missing or not a number.
std::optional<std::uint64_t> sockstat_count(std::string_view text,
                                            std::string_view protocol,
                                            std::string_view field);

// Whether a namespace's sockstat and sockstat6 (empty text: no IPv6) say
// it holds no TCP socket at all: none hashed over IPv4 or IPv6 ("inuse",
// listeners, orphans and established sockets; a request socket needs a
// listener) and none in TIME_WAIT ("tw"). False when a count is unreadable.
bool no_tcp_sockets(std::string_view sockstat, std::string_view sockstat6);

} // namespace tcptrail
