// Helpers shared by the formatters (internal to user/format/).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include <fmt/format.h>

#include "format/formatter.h"

namespace tcptrail::format_detail {

inline void append_str(Buffer &out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

template <typename T> void append_uint(Buffer &out, T value) {
  const fmt::format_int digits(value);
  out.append(digits.data(), digits.data() + digits.size());
}

// "ESTABLISHED", or "UNKNOWN(n)" (as state_label(), without allocating).
void append_state(Buffer &out, std::uint8_t state);
// Visible width of append_state()'s output.
std::size_t state_width(std::uint8_t state);

// "time_wait", "reset_sent", ...; empty for TT_DETAIL_NONE and unknown.
std::string_view detail_name(std::uint8_t detail);
// "data", "syn", "synack"; empty when unknown.
std::string_view retrans_name(std::uint8_t what);
// "sent", "received"; empty when unknown.
std::string_view reset_dir_name(std::uint8_t what);
// "active", "passive"; empty when neither flag is set.
std::string_view role_name(std::uint8_t flags);

std::unique_ptr<Formatter> make_table_formatter(const OutputOptions &opts);
std::unique_ptr<Formatter> make_json_formatter(const OutputOptions &opts);
std::unique_ptr<Formatter> make_csv_formatter(const OutputOptions &opts);

} // namespace tcptrail::format_detail
