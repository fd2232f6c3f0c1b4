// A connection as a ladder diagram: two ends (columns), the segments the
// kernel's events imply between them, and each end's state changes, in the
// order a textbook draws them.
//
// The kernel reports state transitions and seq/ack snapshots, not segments.
// Every segment here is implied by an event: a transition that sends it
// (CLOSE -> SYN_SENT sends the SYN), one that its arrival causes
// (FIN_WAIT1 -> FIN_WAIT2 is the ACK of our FIN), an RST or retransmit
// event. Segments no event of a traced end shows (payload between two
// snapshots, the ACK an untraced peer must have sent, ...) are `inferred`.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ladder/event.h"

namespace tcptrail::ladder {

struct End {
  bool traced = false; // false: the peer, inferred from the other end
  std::uint64_t cookie = 0;
  tt_sock sk{}; // local address/port of this end, owner, netns
  bool isn_known = false;
  std::uint32_t isn = 0; // this end's initial sequence number (raw)
  bool active = false;   // sent the SYN
  std::string initial;   // state before the first mark: CLOSED, LISTEN, ...
};

struct Segment {
  int from = 0; // column 0 or 1
  bool syn = false, ack = false, fin = false, rst = false;
  bool data = false; // payload between two snapshots (may be several)
  // Relative to the sender's / receiver's ISN (Wireshark's relative seq).
  std::optional<std::uint32_t> seq;
  std::optional<std::uint32_t> ack_no;
  std::uint32_t len = 0;
  bool inferred = false;
  bool retransmit = false;
  std::uint64_t ts_ns = 0; // the event that implies it; 0: none
};

struct Mark {
  int side = 0;
  std::string state; // "SYN_SENT", "CLOSED", ...
  std::uint64_t ts_ns = 0;
  std::optional<std::uint64_t> dur_ns; // time in this state
  bool open_at_end = false; // still in it when the trace ended (dur: so far)
  bool inferred = false;    // not reported by the kernel (see note)
  std::string note;         // "reset_received ECONNRESET", ...
};

struct Row {
  bool is_segment = false;
  Segment seg;
  Mark mark;
};

struct Connection {
  std::array<End, 2> ends; // 0: the active side (client), 1: passive
  std::vector<Row> rows;
  std::uint64_t start_ns = 0; // first event
  std::uint64_t end_ns = 0;   // end of the trace
  bool both_traced() const { return ends[0].traced && ends[1].traced; }
};

// Groups events by socket, pairs the two ends of a connection when both
// are in the stream (mirrored four-tuple and ISNs, across namespaces) and
// draws each connection. Listeners are left out. `end_ns`: when the trace
// ended (0: the last event's time). Connections in order of first event.
std::vector<Connection> build(std::vector<Event> events,
                              std::uint64_t end_ns = 0);

// The ends' relative seq/ack of a segment as raw numbers (ISN added).
std::optional<std::uint32_t> raw_seq(const Connection &c, const Segment &s);
std::optional<std::uint32_t> raw_ack(const Connection &c, const Segment &s);

} // namespace tcptrail::ladder
