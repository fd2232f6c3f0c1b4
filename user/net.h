// Address formatting shared by every output format.
#pragma once

#include <cstdint>
#include <string>

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

} // namespace tcptrail
