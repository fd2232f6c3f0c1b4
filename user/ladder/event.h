// What a ladder is drawn from: the trace stream's state, RST and retransmit
// events, either live (converted from the ring's records) or read back from
// a JSON Lines file of `tcptrail trace -f json`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tcptrail/events.h"

namespace tcptrail::ladder {

enum class EventKind : std::uint8_t { State, Reset, Retransmit };

struct Event {
  EventKind kind = EventKind::State;
  std::uint64_t ts_ns = 0;
  std::uint64_t cookie = 0;
  tt_sock sk{}; // tuple, netns, owner (cpu_* unused)
  // State: the transition. Reset/Retransmit: the socket's state in both.
  std::uint8_t old_state = 0;
  std::uint8_t new_state = 0;
  std::uint8_t flags = 0;  // TT_F_ISN_*, TT_F_INFERRED, TT_F_ACTIVE, ...
  std::uint8_t detail = 0; // TT_DETAIL_*
  std::uint8_t what = 0;   // TT_RESET_* or TT_RETRANS_*
  std::uint32_t snd_una = 0;
  std::uint32_t snd_nxt = 0;
  std::uint32_t rcv_nxt = 0;
  std::uint32_t isn_local = 0;  // if TT_F_ISN_LOCAL
  std::uint32_t isn_remote = 0; // if TT_F_ISN_REMOTE
  std::uint32_t seq = 0;        // Retransmit: the segment's sequence number
  std::optional<std::uint64_t> old_state_ns;
  std::string error;  // "ECONNREFUSED", empty when none
  std::string reason; // RST reason name (sent), empty when unknown
};

Event from_record(const tt_state_event &ev);
Event from_record(const tt_seg_event &ev, std::string_view reason_name);

// One line of `tcptrail trace -f json`. Returns the event; nullopt with an
// empty `error` for lines that hold no event to draw (blank, "lost"), and
// nullopt with `error` set (one line, no position) for a malformed one.
// `lost` is increased by a "lost" record's count.
std::optional<Event> parse_trace_json(std::string_view line, std::string &error,
                                      std::uint64_t &lost);

} // namespace tcptrail::ladder
