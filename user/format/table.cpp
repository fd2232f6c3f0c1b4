// The human-readable table: aligned columns, terminal-safe names, seq
// numbers relative to the ISNs unless raw_seq.
#include <array>
#include <climits>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <memory>
#include <string_view>

#include "format/common.h"
#include "net.h"
#include "seq.h"
#include "tcp_state.h"

namespace tcptrail::format_detail {

namespace {

constexpr std::size_t kRelTimeWidth = 12;  // "12345.123456"
constexpr std::size_t kWallTimeWidth = 15; // "HH:MM:SS.ffffff"
constexpr std::size_t kPidWidth = 7;
constexpr std::size_t kCommWidth = 16;
constexpr std::size_t kEndpointWidth = 21;   // "255.255.255.255:65535"
constexpr std::size_t kTransitionWidth = 26; // "NEW_SYN_RECV -> CLOSE_WAIT"
constexpr std::size_t kMsWidth = 10;
constexpr std::size_t kSeqWidth = 10;

constexpr std::string_view kGreen = "\x1b[32m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kMagenta = "\x1b[35m";
constexpr std::string_view kCyan = "\x1b[36m";
constexpr std::string_view kReset = "\x1b[0m";

void append_spaces(Buffer &out, std::size_t n) {
  constexpr std::string_view kSpaces = "                                ";
  while (n > 0) {
    const std::size_t k = n < kSpaces.size() ? n : kSpaces.size();
    out.append(kSpaces.data(), kSpaces.data() + k);
    n -= k;
  }
}

// Ends a column whose text (no escape sequences) starts at out[start]: pads
// it to `width` code points and adds the separator.
void end_column(Buffer &out, std::size_t start, std::size_t width) {
  std::size_t cols = 0;
  for (std::size_t i = start; i < out.size(); ++i)
    if ((static_cast<unsigned char>(out[i]) & 0xc0) != 0x80)
      ++cols;
  if (cols < width)
    append_spaces(out, width - cols);
  out.push_back(' ');
}

bool is_closing(std::uint8_t state) {
  switch (static_cast<TcpState>(state)) {
  case TcpState::FinWait1:
  case TcpState::FinWait2:
  case TcpState::TimeWait:
  case TcpState::CloseWait:
  case TcpState::LastAck:
  case TcpState::Closing:
    return true;
  default:
    return false;
  }
}

// The colour of a state event's new state; empty for none.
std::string_view state_color(const tt_state_event &ev) {
  switch (static_cast<TcpState>(ev.new_state)) {
  case TcpState::Established:
    return kGreen;
  case TcpState::SynSent:
  case TcpState::SynRecv:
  case TcpState::NewSynRecv:
    return kCyan;
  case TcpState::Close:
    if (ev.error != 0 || ev.detail == TT_DETAIL_RESET_SENT ||
        ev.detail == TT_DETAIL_RESET_RCVD || ev.detail == TT_DETAIL_ERROR)
      return kRed;
    return {};
  default:
    return is_closing(ev.new_state) ? kYellow : std::string_view{};
  }
}

class TableFormatter final : public Formatter {
public:
  explicit TableFormatter(const OutputOptions &opts) : opts_(opts) {}

  void header(Buffer &out) override {
    fmt::format_to(std::back_inserter(out),
                   "{:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} {:<{}} "
                   "{:<{}} {}\n",
                   opts_.wall_time ? "TIME" : "TIME(s)", time_width(), "PID",
                   kPidWidth, "COMM", kCommWidth, "LOCAL", kEndpointWidth,
                   "REMOTE", kEndpointWidth, "TRANSITION", kTransitionWidth,
                   "MS", kMsWidth, "SND_UNA", kSeqWidth, "SND_NXT", kSeqWidth,
                   "RCV_NXT");
  }

  void state(Buffer &out, const tt_state_event &ev) override {
    identity(out, ev.hdr, ev.sk);

    // OLD -> NEW, colouring NEW.
    append_state(out, ev.old_state);
    append_str(out, " -> ");
    const std::string_view color =
        opts_.color ? state_color(ev) : std::string_view{};
    append_str(out, color);
    append_state(out, ev.new_state);
    if (!color.empty())
      append_str(out, kReset);
    pad_visible(out, state_width(ev.old_state) + 4 + state_width(ev.new_state),
                kTransitionWidth);

    std::size_t start = out.size();
    if (ev.flags & TT_F_OLD_TS) {
      const std::uint64_t us = ev.old_state_ns / 1000;
      fmt::format_to(std::back_inserter(out), "{}.{:03}", us / 1000, us % 1000);
    } else {
      out.push_back('-');
    }
    end_column(out, start, kMsWidth);

    const bool has_suffix = ev.error != 0 || (ev.flags & TT_F_INFERRED) ||
                            !detail_name(ev.detail).empty();
    seqs(out, ev.snd_una, ev.snd_nxt, ev.rcv_nxt, ev.flags, ev.isn_local,
         ev.isn_remote, has_suffix);
    if (ev.error != 0) {
      out.push_back(' ');
      append_str(out, errno_name(ev.error));
    }
    if (ev.flags & TT_F_INFERRED)
      append_str(out, " (inferred)");
    // TT_DETAIL_ERROR says no more than the error name before it.
    if (!detail_name(ev.detail).empty() &&
        !(ev.detail == TT_DETAIL_ERROR && ev.error != 0)) {
      out.push_back(' ');
      append_str(out, detail_name(ev.detail));
    }
    out.push_back('\n');
  }

  void segment(Buffer &out, const tt_seg_event &ev) override {
    const bool retrans = ev.hdr.kind == TT_KIND_RETRANSMIT;
    if (!retrans && ev.hdr.kind != TT_KIND_RESET)
      return; // decode() lets no other kind through
    identity(out, ev.hdr, ev.sk);

    // "RETRANS data seq=1 (ESTABLISHED)" / "RST sent (ESTABLISHED)"
    const std::size_t start = out.size();
    std::size_t escape_bytes = 0;
    if (opts_.color) {
      append_str(out, retrans ? kMagenta : kRed);
      escape_bytes += (retrans ? kMagenta : kRed).size();
    }
    append_str(out, retrans ? "RETRANS" : "RST");
    if (opts_.color) {
      append_str(out, kReset);
      escape_bytes += kReset.size();
    }
    out.push_back(' ');
    if (retrans) {
      const std::string_view what = retrans_name(ev.what);
      append_str(out, what.empty() ? "?" : what);
      append_str(out, " seq=");
      seq_value(out, ev.seq, ev.flags & TT_F_ISN_LOCAL, ev.isn_local);
    } else {
      const std::string_view dir = reset_dir_name(ev.what);
      append_str(out, dir.empty() ? "?" : dir);
    }
    append_str(out, " (");
    append_state(out, ev.state);
    out.push_back(')');
    pad_visible(out, out.size() - start - escape_bytes, kTransitionWidth);

    const std::size_t ms_start = out.size();
    out.push_back('-');
    end_column(out, ms_start, kMsWidth);

    const std::string_view reason =
        !retrans && ev.what == TT_RESET_SENT
            ? rst_reason_name(opts_.rst_reasons, ev.reason)
            : std::string_view();
    seqs(out, ev.snd_una, ev.snd_nxt, ev.rcv_nxt, ev.flags, ev.isn_local,
         ev.isn_remote, !reason.empty());
    if (!reason.empty()) {
      out.push_back(' ');
      append_str(out, reason);
    }
    out.push_back('\n');
  }

  // Not part of the table: the caller warns on stderr.
  void lost(Buffer & /*out*/, std::uint64_t /*count*/) override {}

private:
  [[nodiscard]] std::size_t time_width() const {
    return opts_.wall_time ? kWallTimeWidth : kRelTimeWidth;
  }

  static void pad_visible(Buffer &out, std::size_t visible, std::size_t width) {
    if (visible < width)
      append_spaces(out, width - visible);
    out.push_back(' ');
  }

  // TIME PID COMM LOCAL REMOTE, each followed by its separator.
  void identity(Buffer &out, const tt_header &hdr, const tt_sock &sk) {
    std::size_t start = out.size();
    if (opts_.wall_time)
      wall_clock(out, realtime_ns(hdr.ts_ns, opts_.wall_offset_ns));
    else
      relative_time(out, hdr.ts_ns);
    end_column(out, start, time_width());

    start = out.size();
    append_uint(out, sk.pid);
    end_column(out, start, kPidWidth);

    start = out.size();
    const std::string_view comm = comm_view(sk.comm);
    if (comm.empty())
      out.push_back('-');
    else
      append_terminal_safe(out, comm);
    end_column(out, start, kCommWidth);

    start = out.size();
    append_endpoint(out, sk.af, sk.laddr, sk.lport);
    end_column(out, start, kEndpointWidth);

    start = out.size();
    append_endpoint(out, sk.af, sk.raddr, sk.rport);
    end_column(out, start, kEndpointWidth);
  }

  // Seconds since opts_.start_ns, 6 decimals (truncated).
  void relative_time(Buffer &out, std::uint64_t ts_ns) const {
    const auto delta = static_cast<std::int64_t>(ts_ns - opts_.start_ns);
    auto abs_ns = static_cast<std::uint64_t>(delta);
    if (delta < 0) {
      out.push_back('-');
      abs_ns = 0 - abs_ns;
    }
    const std::uint64_t us = abs_ns / 1000;
    fmt::format_to(std::back_inserter(out), "{}.{:06}", us / 1'000'000,
                   us % 1'000'000);
  }

  // Local HH:MM:SS.ffffff; localtime_r is called once per second.
  void wall_clock(Buffer &out, std::int64_t realtime_ns) {
    std::int64_t secs = realtime_ns / 1'000'000'000;
    std::int64_t frac = realtime_ns % 1'000'000'000;
    if (frac < 0) {
      frac += 1'000'000'000;
      --secs;
    }
    if (secs != cached_sec_) {
      const auto t = static_cast<time_t>(secs);
      struct tm tm = {};
      if (localtime_r(&t, &tm) == nullptr)
        tm = {};
      cached_sec_ = secs;
      cached_hms_ = {tm.tm_hour, tm.tm_min, tm.tm_sec};
    }
    fmt::format_to(std::back_inserter(out), "{:02}:{:02}:{:02}.{:06}",
                   cached_hms_[0], cached_hms_[1], cached_hms_[2], frac / 1000);
  }

  // One seq value: relative to `isn` unless raw_seq; '-' when relative is
  // wanted but the ISN is unknown.
  void seq_value(Buffer &out, std::uint32_t raw, bool isn_known,
                 std::uint32_t isn) const {
    if (opts_.raw_seq)
      append_uint(out, raw);
    else if (isn_known)
      append_uint(out, relative_seq(raw, isn));
    else
      out.push_back('-');
  }

  // SND_UNA SND_NXT RCV_NXT; the last one padded only when more follows.
  void seqs(Buffer &out, std::uint32_t snd_una, std::uint32_t snd_nxt,
            std::uint32_t rcv_nxt, std::uint8_t flags, std::uint32_t isn_local,
            std::uint32_t isn_remote, bool more) const {
    const bool local = flags & TT_F_ISN_LOCAL;
    std::size_t start = out.size();
    seq_value(out, snd_una, local, isn_local);
    end_column(out, start, kSeqWidth);
    start = out.size();
    seq_value(out, snd_nxt, local, isn_local);
    end_column(out, start, kSeqWidth);
    start = out.size();
    seq_value(out, rcv_nxt, flags & TT_F_ISN_REMOTE, isn_remote);
    if (more)
      append_spaces(out, kSeqWidth - (out.size() - start));
  }

  OutputOptions opts_;
  std::int64_t cached_sec_ = INT64_MIN;
  std::array<int, 3> cached_hms_ = {0, 0, 0};
};

} // namespace

std::unique_ptr<Formatter> make_table_formatter(const OutputOptions &opts) {
  return std::make_unique<TableFormatter>(opts);
}

} // namespace tcptrail::format_detail
