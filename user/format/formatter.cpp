#include "format/formatter.h"

#include <iterator>

#include "format/common.h"
#include "tcp_state.h"

namespace tcptrail {

std::string_view rst_reason_name(const std::vector<std::string> &names,
                                 std::uint32_t reason) {
  return reason < names.size() ? std::string_view(names[reason])
                               : std::string_view();
}

void append_cgroup_json(Buffer &out, CgroupNames *names, std::uint64_t id) {
  using format_detail::append_str;
  using format_detail::append_uint;
  const CgroupInfo *info = id && names ? names->find(id) : nullptr;
  append_str(out, R"(,"cgroup_id":)");
  if (id)
    append_uint(out, id);
  else
    append_str(out, "null");
  auto member = [&](std::string_view name, std::string_view value) {
    append_str(out, ",\"");
    append_str(out, name);
    append_str(out, "\":");
    if (value.empty())
      append_str(out, "null");
    else
      append_json_string(out, value);
  };
  member("cgroup", info ? std::string_view(info->path) : std::string_view());
  member("container",
         info ? std::string_view(info->container.id) : std::string_view());
  member("pod",
         info ? std::string_view(info->container.pod_uid) : std::string_view());
}

void append_cgroup_csv(Buffer &out, CgroupNames *names, std::uint64_t id) {
  const CgroupInfo *info = id && names ? names->find(id) : nullptr;
  if (id)
    format_detail::append_uint(out, id);
  out.push_back(',');
  if (info)
    append_csv_field(out, info->path);
  out.push_back(',');
  if (info)
    append_csv_field(out, info->container.id);
}

namespace format_detail {

void append_state(Buffer &out, std::uint8_t state) {
  const std::string_view name = state_name(state);
  if (!name.empty()) {
    append_str(out, name);
    return;
  }
  append_str(out, "UNKNOWN(");
  append_uint(out, state);
  out.push_back(')');
}

std::size_t state_width(std::uint8_t state) {
  const std::string_view name = state_name(state);
  if (!name.empty())
    return name.size();
  return fmt::formatted_size("UNKNOWN({})", state);
}

std::string_view detail_name(std::uint8_t detail) {
  switch (detail) {
  case TT_DETAIL_TW:
    return "time_wait";
  case TT_DETAIL_TW_FIN_WAIT2:
    return "fin_wait2_timewait";
  case TT_DETAIL_RESET_SENT:
    return "reset_sent";
  case TT_DETAIL_RESET_RCVD:
    return "reset_received";
  case TT_DETAIL_ERROR:
    return "error";
  case TT_DETAIL_ORPHAN_FIN_WAIT2:
    return "orphan_fin_wait2";
  default:
    return {};
  }
}

std::string_view retrans_name(std::uint8_t what) {
  switch (what) {
  case TT_RETRANS_DATA:
    return "data";
  case TT_RETRANS_SYN:
    return "syn";
  case TT_RETRANS_SYNACK:
    return "synack";
  default:
    return {};
  }
}

std::string_view reset_dir_name(std::uint8_t what) {
  switch (what) {
  case TT_RESET_SENT:
    return "sent";
  case TT_RESET_RECEIVED:
    return "received";
  default:
    return {};
  }
}

std::string_view role_name(std::uint8_t flags) {
  if (flags & TT_F_ACTIVE)
    return "active";
  if (flags & TT_F_PASSIVE)
    return "passive";
  return {};
}

} // namespace format_detail

namespace {

struct CivilDate {
  std::int64_t year;
  unsigned month; // 1..12
  unsigned day;   // 1..31
};

// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
// civil_from_days), so that formatting needs neither gmtime nor a lock.
CivilDate civil_from_days(std::int64_t days) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned day = doy - (153 * mp + 2) / 5 + 1;
  const unsigned month = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t year =
      static_cast<std::int64_t>(yoe) + era * 400 + (month <= 2 ? 1 : 0);
  return {year, month, day};
}

// Writes the `width` low decimal digits of `value`, zero-padded.
void put_digits(char *dst, int width, std::uint64_t value) {
  for (int i = width - 1; i >= 0; --i) {
    dst[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

} // namespace

void append_rfc3339(Buffer &out, std::int64_t realtime_ns) {
  constexpr std::int64_t kNsPerSec = 1'000'000'000;
  constexpr std::int64_t kSecPerDay = 86'400;
  std::int64_t secs = realtime_ns / kNsPerSec;
  std::int64_t frac = realtime_ns % kNsPerSec;
  if (frac < 0) {
    frac += kNsPerSec;
    --secs;
  }
  std::int64_t days = secs / kSecPerDay;
  std::int64_t sod = secs % kSecPerDay;
  if (sod < 0) {
    sod += kSecPerDay;
    --days;
  }
  const CivilDate date = civil_from_days(days);
  if (date.year < 0 || date.year > 9999) {
    fmt::format_to(std::back_inserter(out),
                   "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", date.year,
                   date.month, date.day, sod / 3600, sod / 60 % 60, sod % 60,
                   frac);
    return;
  }
  // Per event: digits by hand, several times faster than a format string.
  char buf[] = "0000-00-00T00:00:00.000000000Z";
  put_digits(buf, 4, static_cast<std::uint64_t>(date.year));
  put_digits(buf + 5, 2, date.month);
  put_digits(buf + 8, 2, date.day);
  put_digits(buf + 11, 2, static_cast<std::uint64_t>(sod / 3600));
  put_digits(buf + 14, 2, static_cast<std::uint64_t>(sod / 60 % 60));
  put_digits(buf + 17, 2, static_cast<std::uint64_t>(sod % 60));
  put_digits(buf + 20, 9, static_cast<std::uint64_t>(frac));
  out.append(buf, buf + sizeof(buf) - 1); // without the NUL
}

std::unique_ptr<Formatter> make_formatter(const OutputOptions &opts) {
  switch (opts.format) {
  case Format::Json:
    return format_detail::make_json_formatter(opts);
  case Format::Csv:
    return format_detail::make_csv_formatter(opts);
  case Format::Table:
    break;
  }
  return format_detail::make_table_formatter(opts);
}

} // namespace tcptrail
