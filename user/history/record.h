// One TCP connection's history, as `tcptrail history` reports it: who owned
// it, its endpoints, how it opened and ended, and its state path. Built by
// HistoryAssembler (history/assembler.h), printed by a HistoryFormatter
// (history/history_format.h). A passive struct: plain data, no invariants.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filter.h"
#include "tcptrail/events.h"

namespace tcptrail {

// Who opened the connection. A listener is Passive (RFC 793: LISTEN is the
// "passive OPEN") with ConnectionRecord::listener set. Unknown when no event
// of the socket carried TT_F_ACTIVE/TT_F_PASSIVE (a connection already open
// when tracing started): JSON null, never guessed.
enum class ConnRole : std::uint8_t { Unknown, Active, Passive };

// How the connection ended. Open: still tracked (snapshot, or exit).
enum class ConnEnd : std::uint8_t {
  Closed,        // FIN exchange (CLOSE or TIME_WAIT), or a listener closed
  ResetSent,     // we sent RST
  ResetReceived, // the peer's RST (ECONNRESET)
  Refused,       // SYN_SENT -> CLOSE with ECONNREFUSED
  Timeout,       // CLOSE with ETIMEDOUT (SYN or data retransmits ran out)
  Open,
  // Closed by its owner in FIN_WAIT2 before the peer's FIN came: the kernel
  // keeps a FIN_WAIT2 timewait socket for tcp_fin_timeout; the peer had
  // not closed (still in CLOSE_WAIT when it is this host's: a leak there?).
  OrphanFinWait2,
};

// Which side sent the first FIN: Local (we went FIN_WAIT1 first), Remote
// (CLOSE_WAIT first), Simultaneous (CLOSING seen). Unknown: no FIN exchange
// observed (reset, refused, still established, listener).
enum class ClosedFirst : std::uint8_t { Unknown, Local, Remote, Simultaneous };

// One state of the path. dur_ns is known when the next state was entered
// (next.enter_ns - enter_ns); the last step's dur_ns is null: the terminal
// CLOSE/TIME_WAIT has no duration tcptrail observes (TIME_WAIT lasts ~60 s
// in a timewait mini-socket that is not traced), and an open connection is
// still in its last state. Sequence numbers are raw, as carried by the
// event that entered the state.
struct PathStep {
  std::uint8_t state = 0; // TcpState value (unknown values kept as is)
  std::uint64_t enter_ns = 0;
  std::optional<std::uint64_t> dur_ns;
  std::uint32_t snd_una = 0;
  std::uint32_t snd_nxt = 0;
  std::uint32_t rcv_nxt = 0;
};

struct ConnectionRecord {
  std::uint64_t cookie = 0;
  std::uint32_t pid = 0; // owner tgid, 0 when unknown
  std::string comm;      // owner comm, raw bytes (escape when printing)
  std::uint64_t cgroup_id = 0; // owner's cgroup (v2) id, 0 when unknown
  std::uint8_t af = 4;   // 4 or 6
  std::uint8_t laddr[TT_ADDR_LEN] = {};
  std::uint8_t raddr[TT_ADDR_LEN] = {};
  std::uint16_t lport = 0;
  std::uint16_t rport = 0;
  std::uint32_t netns = 0;

  ConnRole role = ConnRole::Unknown;
  bool listener = false;
  // Listener only: passive children that reached ESTABLISHED on the same
  // (netns, lport) while this listener was tracked. Null for a listener
  // already listening when tracing started (its earlier accepts are unknown)
  // and for non-listeners.
  std::optional<std::uint32_t> accepted;

  std::optional<std::uint32_t> isn_local;
  std::optional<std::uint32_t> isn_remote;
  std::uint64_t bytes_acked = 0;    // payload bytes the peer acked
  std::uint64_t bytes_received = 0; // payload bytes received in order
  // max(retransmit events seen, the kernel's total_retrans).
  std::uint64_t retransmits = 0;
  std::uint32_t resets_sent = 0;
  std::uint32_t resets_received = 0;

  ConnEnd end = ConnEnd::Open;
  ClosedFirst closed_first = ClosedFirst::Unknown;
  std::uint16_t error = 0; // sk_err at CLOSE (positive errno), 0 if none

  // The state the socket was already in when its first event was seen, if
  // that was not the socket's birth (CLOSE, or the listener's LISTEN for a
  // passive child): a connection already open when tracing started. Its
  // entry time and sequence numbers are unknown, so it is not a path step.
  std::optional<std::uint8_t> prior_state;
  // Steps dropped from a path longer than the assembler keeps (never for
  // the kernel's normal paths); the step before a gap has dur_ns null.
  std::uint32_t steps_dropped = 0;

  std::vector<PathStep> path; // ordered by enter_ns
  // 1 << state of every state on the path and of the state the first step
  // left: what --state matches (as the kernel's conn_states()).
  std::uint32_t states = 0;
};

// The user's filters on a whole record: the states are every state on its
// path (ConnectionRecord::states), the owner is the record's. The kernel
// applied them already to the paths it aggregated; the others (sockets
// without storage) it checked only for what holds at every step
// (filter_check() in bpf/sock.bpf.h).
bool record_matches(const FilterSpec &spec, const ConnectionRecord &rec);

// "active", "passive"; empty for Unknown.
std::string_view conn_role_name(ConnRole role);
// "closed", "reset_sent", "reset_received", "refused", "timeout", "open",
// "orphan_fin_wait2".
std::string_view conn_end_name(ConnEnd end);
// "local", "remote", "simultaneous"; empty for Unknown.
std::string_view closed_first_name(ClosedFirst first);

} // namespace tcptrail
