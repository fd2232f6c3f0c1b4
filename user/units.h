// Parsing of human-friendly CLI values.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace tcptrail {

// "10" (seconds), "10s", "500ms", "250us", "2m", "1h", "1.5s" -> ns.
std::optional<std::uint64_t> parse_duration_ns(std::string_view text);

// "4096", "64K", "8M", "8MiB", "1G" -> bytes (binary multiples).
std::optional<std::uint64_t> parse_size(std::string_view text);

} // namespace tcptrail
