#include "units.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <string>

namespace tcptrail {

namespace {

// Splits "1.5ms" into 1.5 and "ms"; nullopt when there is no number.
std::optional<std::pair<double, std::string>> split(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() &&
         (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0)
    return std::nullopt;
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || ptr != text.data() + i || !std::isfinite(value))
    return std::nullopt;
  std::string unit;
  for (char c : text.substr(i))
    unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return std::make_pair(value, unit);
}

std::optional<std::uint64_t> scaled(double value, double scale) {
  const double v = value * scale;
  if (v < 0 || v >= 1.8e19)
    return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(v));
}

} // namespace

std::optional<std::uint64_t> parse_duration_ns(std::string_view text) {
  auto parts = split(text);
  if (!parts)
    return std::nullopt;
  const auto &[value, unit] = *parts;
  if (unit.empty() || unit == "s")
    return scaled(value, 1e9);
  if (unit == "ms")
    return scaled(value, 1e6);
  if (unit == "us")
    return scaled(value, 1e3);
  if (unit == "ns")
    return scaled(value, 1);
  if (unit == "m" || unit == "min")
    return scaled(value, 60e9);
  if (unit == "h")
    return scaled(value, 3600e9);
  return std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  auto parts = split(text);
  if (!parts)
    return std::nullopt;
  const auto &[value, unit] = *parts;
  if (unit.empty() || unit == "b")
    return scaled(value, 1);
  if (unit == "k" || unit == "kb" || unit == "kib")
    return scaled(value, 1024.0);
  if (unit == "m" || unit == "mb" || unit == "mib")
    return scaled(value, 1024.0 * 1024);
  if (unit == "g" || unit == "gb" || unit == "gib")
    return scaled(value, 1024.0 * 1024 * 1024);
  return std::nullopt;
}

} // namespace tcptrail
