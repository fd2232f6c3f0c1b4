// Synthetic events for the history tests (history_*_test.cpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "history/assembler.h"
#include "history/record.h"
#include "net.h"
#include "tcp_state.h"
#include "tcptrail/events.h"

namespace tcptrail::history_test {

inline constexpr std::uint64_t kCookieA = 0x1001;
inline constexpr std::uint64_t kCookieB = 0x1002;
inline constexpr std::uint64_t kCookieC = 0x1003;
inline constexpr std::uint64_t kMs = 1'000'000;
inline constexpr std::uint64_t kUs = 1'000;
inline constexpr std::uint64_t kSec = 1'000'000'000;

// A state event; ISN flags are set when an ISN is non-zero, TT_F_OWNER when
// pid is. Designated initializers must follow this order.
struct StateSpec {
  std::uint64_t cookie = kCookieA;
  std::uint64_t ts = 0;
  TcpState from = TcpState::Close;
  TcpState to = TcpState::Close;
  std::uint8_t flags = 0;
  std::uint8_t detail = TT_DETAIL_NONE;
  std::uint16_t error = 0;
  std::uint32_t una = 0, nxt = 0, rcv = 0;
  std::uint64_t acked = 0, received = 0;
  std::uint32_t retrans = 0;
  std::uint32_t isn_local = 0, isn_remote = 0;
  std::uint16_t lport = 40000, rport = 80;
  std::uint32_t pid = 1234;
  const char *comm = "curl";
  std::uint8_t af = 4;
  std::uint32_t netns = 4026531840U;
  // From socket storage: complete as it is. Without (lazy mode), the
  // assembler derives what storage would have added.
  bool stored = true;
};

struct SegSpec {
  std::uint64_t cookie = kCookieA;
  std::uint64_t ts = 0;
  std::uint16_t kind = TT_KIND_RETRANSMIT;
  std::uint8_t what = TT_RETRANS_DATA;
  TcpState state = TcpState::Established;
  std::uint32_t seq = 0;
  std::uint32_t nxt = 0; // snd_nxt
  std::uint16_t lport = 40000;
  bool stored = true; // as StateSpec::stored
};

inline void fill_sock(tt_sock &sk, std::uint8_t af, std::uint16_t lport,
                      std::uint16_t rport, std::uint32_t pid, const char *comm,
                      std::uint32_t netns) {
  sk.af = af;
  if (af == 4) {
    const std::uint8_t l[4] = {198, 18, 0, 1}, r[4] = {198, 18, 0, 2};
    std::memcpy(sk.laddr, l, 4);
    std::memcpy(sk.raddr, r, 4);
  } else {
    const std::uint8_t base[16] = {0x20, 0x01, 0x0d, 0xb8};
    std::memcpy(sk.laddr, base, 16);
    std::memcpy(sk.raddr, base, 16);
    sk.laddr[15] = 1;
    sk.raddr[15] = 2;
  }
  sk.lport = lport;
  sk.rport = rport;
  sk.netns = netns;
  sk.pid = pid;
  sk.cpu_pid = pid;
  std::strncpy(sk.comm, comm, TT_COMM_LEN);
}

inline tt_state_event make_state(const StateSpec &s) {
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = s.ts;
  ev.hdr.cookie = s.cookie;
  fill_sock(ev.sk, s.af, s.lport, s.rport, s.pid, s.comm, s.netns);
  ev.bytes_acked = s.acked;
  ev.bytes_received = s.received;
  ev.snd_una = s.una;
  ev.snd_nxt = s.nxt;
  ev.rcv_nxt = s.rcv;
  ev.isn_local = s.isn_local;
  ev.isn_remote = s.isn_remote;
  ev.total_retrans = s.retrans;
  ev.error = s.error;
  ev.old_state = static_cast<std::uint8_t>(s.from);
  ev.new_state = static_cast<std::uint8_t>(s.to);
  ev.flags = s.flags;
  if (s.isn_local)
    ev.flags |= TT_F_ISN_LOCAL;
  if (s.isn_remote)
    ev.flags |= TT_F_ISN_REMOTE;
  if (s.pid)
    ev.flags |= TT_F_OWNER;
  ev.detail = s.detail;
  ev.stored = s.stored ? 1 : 0;
  return ev;
}

inline tt_seg_event make_seg(const SegSpec &s) {
  tt_seg_event ev{};
  ev.hdr.kind = s.kind;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = s.ts;
  ev.hdr.cookie = s.cookie;
  fill_sock(ev.sk, 4, s.lport, 80, 1234, "curl", 4026531840U);
  ev.state = static_cast<std::uint8_t>(s.state);
  ev.what = s.what;
  ev.seq = s.seq;
  ev.snd_nxt = s.nxt;
  ev.stored = s.stored ? 1 : 0;
  return ev;
}

using Input = std::variant<tt_state_event, tt_seg_event>;

inline void feed(HistoryAssembler &h, const std::vector<Input> &events) {
  for (const Input &in : events) {
    if (const auto *st = std::get_if<tt_state_event>(&in))
      h.on_state(*st);
    else
      h.on_segment(std::get<tt_seg_event>(in));
  }
}

inline std::uint64_t last_ts(const std::vector<Input> &events) {
  std::uint64_t ts = 0;
  for (const Input &in : events)
    ts = std::max<std::uint64_t>(
        ts, std::visit([](const auto &ev) { return ev.hdr.ts_ns; }, in));
  return ts;
}

template <typename T> std::string opt(const std::optional<T> &v) {
  return v ? fmt::format("{}", *v) : "-";
}

// Every field of a record, compactly, for exact comparison.
inline std::string describe(const ConnectionRecord &r) {
  std::string s = fmt::format(
      "#{:x} {}/{} {}>{} {} role={}{} isn={}/{} bytes={}/{} retr={} "
      "rst={}/{} end={} first={} err={} prior={}",
      r.cookie, r.pid, r.comm, format_endpoint(r.af, r.laddr, r.lport),
      format_endpoint(r.af, r.raddr, r.rport), r.netns,
      r.role == ConnRole::Unknown ? "?" : conn_role_name(r.role),
      r.listener ? fmt::format(" listener accepted={}", opt(r.accepted)) : "",
      opt(r.isn_local), opt(r.isn_remote), r.bytes_acked, r.bytes_received,
      r.retransmits, r.resets_sent, r.resets_received, conn_end_name(r.end),
      r.closed_first == ClosedFirst::Unknown
          ? "-"
          : closed_first_name(r.closed_first),
      r.error, r.prior_state ? state_label(*r.prior_state) : "-");
  if (r.steps_dropped)
    s += fmt::format(" dropped={}", r.steps_dropped);
  s += " |";
  for (const PathStep &p : r.path)
    s += fmt::format(" {}@{}+{}[{},{},{}]", state_label(p.state), p.enter_ns,
                     opt(p.dur_ns), p.snd_una, p.snd_nxt, p.rcv_nxt);
  return s;
}

} // namespace tcptrail::history_test
