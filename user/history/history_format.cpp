#include "history/history_format.h"

#include <string_view>

#include <fmt/format.h>

#include "net.h"
#include "seq.h"
#include "tcp_state.h"

namespace tcptrail {

namespace {

constexpr std::string_view kGreen = "\x1b[32m";
constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kReset = "\x1b[0m";

void put(Buffer &out, std::string_view s) {
  out.append(s.data(), s.data() + s.size());
}

template <typename T> void put_uint(Buffer &out, T value) {
  const fmt::format_int digits(value);
  out.append(digits.data(), digits.data() + digits.size());
}

void put_state(Buffer &out, std::uint8_t state) {
  const std::string_view name = state_name(state);
  if (!name.empty())
    put(out, name);
  else
    fmt::format_to(std::back_inserter(out), "UNKNOWN({})", state);
}

void pad_to(Buffer &out, std::size_t start, std::size_t width) {
  for (std::size_t n = out.size() - start; n < width; ++n)
    out.push_back(' ');
}

// Right-aligns out[start..] in `width` columns.
void right_align(Buffer &out, std::size_t start, std::size_t width) {
  const std::size_t len = out.size() - start;
  if (len >= width)
    return;
  const std::size_t shift = width - len;
  out.resize(out.size() + shift);
  char *data = out.data();
  for (std::size_t i = len; i-- > 0;)
    data[start + shift + i] = data[start + i];
  for (std::size_t i = 0; i < shift; ++i)
    data[start + i] = ' ';
}

// "198.18.0.1:80", "[2001:db8::1]:80"; port 0 (unbound, a listener's peer)
// is "*".
void put_endpoint(Buffer &out, std::uint8_t af,
                  const std::uint8_t (&addr)[TT_ADDR_LEN], std::uint16_t port) {
  const std::string ip = format_ip(af, addr);
  if (af == 6)
    fmt::format_to(std::back_inserter(out), "[{}]:", ip);
  else
    fmt::format_to(std::back_inserter(out), "{}:", ip);
  if (port == 0)
    out.push_back('*');
  else
    put_uint(out, port);
}

void put_time(Buffer &out, const OutputOptions &opts,
              const ConnectionRecord &rec) {
  const std::uint64_t start = rec.path.empty() ? 0 : rec.path.front().enter_ns;
  append_rfc3339(out, realtime_ns(start, opts.wall_offset_ns));
}

std::string_view closed_first_short(ClosedFirst first) {
  return first == ClosedFirst::Simultaneous ? "simul"
                                            : closed_first_name(first);
}

std::string_view end_color(ConnEnd end) {
  switch (end) {
  case ConnEnd::Closed:
    return kGreen;
  case ConnEnd::ResetSent:
  case ConnEnd::ResetReceived:
  case ConnEnd::Refused:
  case ConnEnd::Timeout:
    return kRed;
  case ConnEnd::OrphanFinWait2:
    return kYellow;
  case ConnEnd::Open:
    break;
  }
  return {};
}

// Up to three significant digits, trailing zeros dropped.
void put_sig3(Buffer &out, double v) {
  const int decimals = v < 1 ? 3 : v < 10 ? 2 : v < 100 ? 1 : 0;
  const std::size_t start = out.size();
  fmt::format_to(std::back_inserter(out), "{:.{}f}", v, decimals);
  if (decimals == 0)
    return;
  std::size_t end = out.size();
  while (end > start && out[end - 1] == '0')
    --end;
  if (end > start && out[end - 1] == '.')
    --end;
  out.resize(end);
}

// ---- table ------------------------------------------------------------------

constexpr std::size_t kTimeWidth = 30;
constexpr std::size_t kOwnerWidth = 20;
constexpr std::size_t kEndpointWidth = 21;
constexpr std::size_t kRoleWidth = 7;
constexpr std::size_t kBytesWidth = 8;
constexpr std::size_t kRetransWidth = 4;
constexpr std::size_t kEndWidth = 16; // "orphan_fin_wait2", "reset_received"

class TableFormatter final : public HistoryFormatter {
public:
  TableFormatter(const OutputOptions &opts, bool show_seq)
      : opts_(opts), show_seq_(show_seq) {}

  void header(Buffer &out) override {
    if (opts_.wall_time)
      fmt::format_to(std::back_inserter(out), "{:<{}} ", "TIME", kTimeWidth);
    fmt::format_to(std::back_inserter(out),
                   "{:<{}} {:<{}} {:<{}} {:<{}} {:>{}} {:>{}} {:>{}} {:<{}} "
                   "PATH\n",
                   "PID/COMM", kOwnerWidth, "LOCAL", kEndpointWidth, "REMOTE",
                   kEndpointWidth, "ROLE", kRoleWidth, "SENT", kBytesWidth,
                   "RECV", kBytesWidth, "RETR", kRetransWidth, "END",
                   kEndWidth);
  }

  void record(Buffer &out, const ConnectionRecord &rec) override {
    std::size_t start = out.size();
    if (opts_.wall_time) {
      put_time(out, opts_, rec);
      pad_to(out, start, kTimeWidth);
      out.push_back(' ');
    }

    start = out.size();
    if (rec.pid == 0 && rec.comm.empty()) {
      out.push_back('-');
    } else {
      put_uint(out, rec.pid);
      out.push_back('/');
      append_terminal_safe(out, rec.comm);
    }
    pad_to(out, start, kOwnerWidth);
    out.push_back(' ');

    start = out.size();
    put_endpoint(out, rec.af, rec.laddr, rec.lport);
    pad_to(out, start, kEndpointWidth);
    out.push_back(' ');
    start = out.size();
    put_endpoint(out, rec.af, rec.raddr, rec.rport);
    pad_to(out, start, kEndpointWidth);
    out.push_back(' ');

    start = out.size();
    put(out, rec.listener                    ? std::string_view("listen")
             : rec.role == ConnRole::Unknown ? std::string_view("-")
                                             : conn_role_name(rec.role));
    pad_to(out, start, kRoleWidth);
    out.push_back(' ');

    start = out.size();
    if (rec.listener)
      out.push_back('-');
    else
      append_human_bytes(out, rec.bytes_acked);
    right_align(out, start, kBytesWidth);
    out.push_back(' ');
    start = out.size();
    if (rec.listener)
      out.push_back('-');
    else
      append_human_bytes(out, rec.bytes_received);
    right_align(out, start, kBytesWidth);
    out.push_back(' ');
    start = out.size();
    put_uint(out, rec.retransmits);
    right_align(out, start, kRetransWidth);
    out.push_back(' ');

    // END, coloured without colouring the padding.
    const std::string_view color =
        opts_.color ? end_color(rec.end) : std::string_view{};
    put(out, color);
    start = out.size();
    put(out, conn_end_name(rec.end));
    // An orphaned FIN_WAIT2 was always closed here first: no "/local".
    if (rec.closed_first != ClosedFirst::Unknown &&
        rec.end != ConnEnd::OrphanFinWait2) {
      out.push_back('/');
      put(out, closed_first_short(rec.closed_first));
    }
    const std::size_t end_len = out.size() - start;
    if (!color.empty())
      put(out, kReset);
    for (std::size_t n = end_len; n < kEndWidth; ++n)
      out.push_back(' ');
    out.push_back(' ');

    path(out, rec);
    if (rec.accepted)
      fmt::format_to(std::back_inserter(out), "  (accepted {})", *rec.accepted);
    out.push_back('\n');
  }

private:
  void path(Buffer &out, const ConnectionRecord &rec) const {
    if (rec.prior_state) {
      out.push_back('(');
      put_state(out, *rec.prior_state);
      put(out, ") > ");
    }
    for (std::size_t i = 0; i < rec.path.size(); ++i) {
      const PathStep &s = rec.path[i];
      if (i > 0)
        put(out, " > ");
      put_state(out, s.state);
      if (s.dur_ns) {
        out.push_back(' ');
        append_human_duration(out, *s.dur_ns);
      }
      if (show_seq_)
        seqs(out, rec, s);
      if (i == 0 && rec.steps_dropped)
        fmt::format_to(std::back_inserter(out), " > ({} dropped)",
                       rec.steps_dropped);
    }
  }

  // " [una 1 nxt 1 rcv 1]": relative to the ISNs ("?" while an ISN or, in
  // SYN_SENT, rcv_nxt is not known), raw with --raw-seq.
  void seqs(Buffer &out, const ConnectionRecord &rec, const PathStep &s) const {
    auto one = [&](std::string_view label, std::uint32_t raw,
                   const std::optional<std::uint32_t> &isn, bool valid) {
      put(out, label);
      if (opts_.raw_seq)
        put_uint(out, raw);
      else if (isn && valid)
        put_uint(out, relative_seq(raw, *isn));
      else
        out.push_back('?');
    };
    // Entered before the handshake chose the ISNs (CLOSE -> SYN_SENT before
    // the SYN, LISTEN -> SYN_RECV in a fresh child): the kernel's fields
    // are still 0, nothing to show relative to.
    const bool before_isn = s.snd_una == 0 && s.snd_nxt == 0 && s.rcv_nxt == 0;
    one(" [una ", s.snd_una, rec.isn_local, !before_isn);
    one(" nxt ", s.snd_nxt, rec.isn_local, !before_isn);
    one(" rcv ", s.rcv_nxt, rec.isn_remote,
        !before_isn &&
            s.state != static_cast<std::uint8_t>(TcpState::SynSent));
    out.push_back(']');
  }

  OutputOptions opts_;
  bool show_seq_;
};

// ---- JSON -------------------------------------------------------------------

template <typename T>
void put_optional(Buffer &out, const std::optional<T> &v) {
  if (v)
    put_uint(out, *v);
  else
    put(out, "null");
}

void put_optional_string(Buffer &out, std::string_view s) {
  if (s.empty())
    put(out, "null");
  else
    append_json_string(out, s);
}

class JsonFormatter final : public HistoryFormatter {
public:
  explicit JsonFormatter(const OutputOptions &opts) : opts_(opts) {}

  void header(Buffer & /*out*/) override {}

  void record(Buffer &out, const ConnectionRecord &rec) override {
    put(out, "{\"event\":\"connection\",\"cookie\":");
    put_uint(out, rec.cookie);
    put(out, ",\"pid\":");
    put_uint(out, rec.pid);
    put(out, ",\"comm\":");
    append_json_string(out, rec.comm);
    put(out, ",\"af\":");
    put_uint(out, rec.af);
    put(out, ",\"laddr\":\"");
    put(out, format_ip(rec.af, rec.laddr));
    put(out, "\",\"lport\":");
    put_uint(out, rec.lport);
    put(out, ",\"raddr\":\"");
    put(out, format_ip(rec.af, rec.raddr));
    put(out, "\",\"rport\":");
    put_uint(out, rec.rport);
    put(out, ",\"role\":");
    put_optional_string(out, conn_role_name(rec.role));
    put(out, ",\"isn_local\":");
    put_optional(out, rec.isn_local);
    put(out, ",\"isn_remote\":");
    put_optional(out, rec.isn_remote);
    put(out, ",\"bytes_acked\":");
    put_uint(out, rec.bytes_acked);
    put(out, ",\"bytes_received\":");
    put_uint(out, rec.bytes_received);
    put(out, ",\"retransmits\":");
    put_uint(out, rec.retransmits);
    put(out, ",\"end\":\"");
    put(out, conn_end_name(rec.end));
    put(out, "\",\"closed_first\":");
    put_optional_string(out, closed_first_name(rec.closed_first));
    put(out, ",\"path\":[");
    for (std::size_t i = 0; i < rec.path.size(); ++i) {
      const PathStep &s = rec.path[i];
      put(out, i == 0 ? "{\"state\":\"" : ",{\"state\":\"");
      put_state(out, s.state);
      put(out, "\",\"enter_ns\":");
      put_uint(out, s.enter_ns);
      put(out, ",\"dur_ns\":");
      put_optional(out, s.dur_ns);
      put(out, ",\"snd_una\":");
      put_uint(out, s.snd_una);
      put(out, ",\"snd_nxt\":");
      put_uint(out, s.snd_nxt);
      put(out, ",\"rcv_nxt\":");
      put_uint(out, s.rcv_nxt);
      out.push_back('}');
    }
    put(out, "],\"time\":\"");
    put_time(out, opts_, rec);
    put(out, "\",\"netns\":");
    put_uint(out, rec.netns);
    put(out, rec.listener ? ",\"listener\":true" : ",\"listener\":false");
    put(out, ",\"accepted\":");
    put_optional(out, rec.accepted);
    put(out, ",\"resets_sent\":");
    put_uint(out, rec.resets_sent);
    put(out, ",\"resets_received\":");
    put_uint(out, rec.resets_received);
    put(out, ",\"error\":");
    if (rec.error != 0)
      append_json_string(out, errno_name(rec.error));
    else
      put(out, "null");
    put(out, ",\"prior_state\":");
    if (rec.prior_state) {
      out.push_back('"');
      put_state(out, *rec.prior_state);
      out.push_back('"');
    } else {
      put(out, "null");
    }
    put(out, ",\"steps_dropped\":");
    put_uint(out, rec.steps_dropped);
    append_cgroup_json(out, opts_.cgroups.get(), rec.cgroup_id);
    put(out, "}\n");
  }

private:
  OutputOptions opts_;
};

// ---- CSV --------------------------------------------------------------------

constexpr std::string_view kCsvHeader =
    "event,time,cookie,pid,comm,af,laddr,lport,raddr,rport,netns,role,"
    "listener,accepted,isn_local,isn_remote,bytes_acked,bytes_received,"
    "retransmits,resets_sent,resets_received,end,closed_first,error,"
    "prior_state,steps_dropped,path,cgroup_id,cgroup,container\n";

class CsvFormatter final : public HistoryFormatter {
public:
  explicit CsvFormatter(const OutputOptions &opts) : opts_(opts) {}

  void header(Buffer &out) override { put(out, kCsvHeader); }

  // The path is one field: steps separated by ';', each
  // STATE:enter_ns:dur_ns:snd_una:snd_nxt:rcv_nxt (dur_ns empty when null).
  void record(Buffer &out, const ConnectionRecord &rec) override {
    put(out, "connection,");
    put_time(out, opts_, rec);
    out.push_back(',');
    put_uint(out, rec.cookie);
    out.push_back(',');
    put_uint(out, rec.pid);
    out.push_back(',');
    append_csv_field(out, rec.comm);
    out.push_back(',');
    put_uint(out, rec.af);
    out.push_back(',');
    put(out, format_ip(rec.af, rec.laddr));
    out.push_back(',');
    put_uint(out, rec.lport);
    out.push_back(',');
    put(out, format_ip(rec.af, rec.raddr));
    out.push_back(',');
    put_uint(out, rec.rport);
    out.push_back(',');
    put_uint(out, rec.netns);
    out.push_back(',');
    put(out, conn_role_name(rec.role));
    put(out, rec.listener ? ",true," : ",false,");
    optional(out, rec.accepted);
    out.push_back(',');
    optional(out, rec.isn_local);
    out.push_back(',');
    optional(out, rec.isn_remote);
    out.push_back(',');
    put_uint(out, rec.bytes_acked);
    out.push_back(',');
    put_uint(out, rec.bytes_received);
    out.push_back(',');
    put_uint(out, rec.retransmits);
    out.push_back(',');
    put_uint(out, rec.resets_sent);
    out.push_back(',');
    put_uint(out, rec.resets_received);
    out.push_back(',');
    put(out, conn_end_name(rec.end));
    out.push_back(',');
    put(out, closed_first_name(rec.closed_first));
    out.push_back(',');
    if (rec.error != 0)
      put(out, errno_name(rec.error));
    out.push_back(',');
    if (rec.prior_state)
      put_state(out, *rec.prior_state);
    out.push_back(',');
    put_uint(out, rec.steps_dropped);
    out.push_back(',');
    for (std::size_t i = 0; i < rec.path.size(); ++i) {
      const PathStep &s = rec.path[i];
      if (i > 0)
        out.push_back(';');
      put_state(out, s.state);
      out.push_back(':');
      put_uint(out, s.enter_ns);
      out.push_back(':');
      optional(out, s.dur_ns);
      out.push_back(':');
      put_uint(out, s.snd_una);
      out.push_back(':');
      put_uint(out, s.snd_nxt);
      out.push_back(':');
      put_uint(out, s.rcv_nxt);
    }
    out.push_back(',');
    append_cgroup_csv(out, opts_.cgroups.get(), rec.cgroup_id);
    out.push_back('\n');
  }

private:
  template <typename T>
  static void optional(Buffer &out, const std::optional<T> &v) {
    if (v)
      put_uint(out, *v);
  }

  OutputOptions opts_;
};

} // namespace

void append_human_bytes(Buffer &out, std::uint64_t bytes) {
  if (bytes < 1024) {
    put_uint(out, bytes);
    out.push_back('B');
    return;
  }
  static constexpr std::string_view kUnits[] = {"KiB", "MiB", "GiB",
                                                "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  fmt::format_to(std::back_inserter(out), "{:.1f}{}", v, kUnits[unit]);
}

void append_human_duration(Buffer &out, std::uint64_t ns) {
  if (ns < 1000) {
    put_uint(out, ns);
    put(out, "ns");
  } else if (ns < 100'000) {
    put_sig3(out, static_cast<double>(ns) / 1e3);
    put(out, "us");
  } else if (ns < 1'000'000'000) {
    put_sig3(out, static_cast<double>(ns) / 1e6);
    put(out, "ms");
  } else if (ns < 1'000'000'000'000ULL) {
    put_sig3(out, static_cast<double>(ns) / 1e9);
    out.push_back('s');
  } else {
    put_uint(out, ns / 1'000'000'000);
    out.push_back('s');
  }
}

std::unique_ptr<HistoryFormatter>
make_history_formatter(const OutputOptions &opts, bool show_seq) {
  switch (opts.format) {
  case Format::Json:
    return std::make_unique<JsonFormatter>(opts);
  case Format::Csv:
    return std::make_unique<CsvFormatter>(opts);
  case Format::Table:
    break;
  }
  return std::make_unique<TableFormatter>(opts, show_seq);
}

} // namespace tcptrail
