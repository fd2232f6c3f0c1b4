// The result of a `diagnose` run: passive structs, rendered as text or as
// one JSON document (docs/diagnose-schema.md) by report_format.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "diagnose/histogram.h"

namespace tcptrail::diagnose {

enum class Severity { Warning, Critical };
std::string_view severity_name(Severity s); // "warning", "critical"

struct EndpointCount {
  std::string endpoint; // "198.18.0.2:80", "[2001:db8::2]:80"
  std::uint64_t count = 0;
};

struct ProcessCount {
  std::uint32_t pid = 0; // 0: unknown owner
  std::string comm;
  std::uint64_t count = 0;
};

// One socket named as evidence.
struct ConnEvidence {
  std::string tuple; // "198.18.0.1:40000 -> 198.18.0.2:80"
  std::uint64_t cookie = 0;
  std::uint32_t pid = 0;
  std::string comm;
  std::uint64_t count = 0;              // retransmits, ...
  std::optional<std::uint64_t> age_ns;  // CLOSE_WAIT: time in the state so far
  bool preexisting = false;             // in that state before the run began
  std::uint64_t cgroup_id = 0;          // owner's cgroup (v2), 0: unknown
};

struct ListenerEvidence {
  std::string listener; // "198.18.0.2:80"
  std::uint32_t pid = 0;
  std::string comm;
  std::uint64_t synack_retransmits = 0;
  std::optional<std::uint32_t> accept_queue;       // at the end
  std::optional<std::uint32_t> accept_queue_limit; // listen() backlog
  std::optional<std::uint32_t> accept_queue_peak;  // max of start/end
  std::optional<std::uint32_t> syn_recv;           // half-open at the end
  std::uint64_t cgroup_id = 0; // owner's cgroup (v2), 0: unknown
};

struct Evidence {
  std::vector<EndpointCount> remote_endpoints; // worst first
  std::vector<ProcessCount> processes;         // worst first
  std::vector<std::string> examples;           // four-tuples
  std::map<std::string, std::int64_t> counters;
  std::vector<ConnEvidence> connections;
  std::vector<ListenerEvidence> listeners;
};

struct Problem {
  std::string kind; // refused, connect_timeout, syn_retransmits, ...
  Severity severity = Severity::Warning;
  std::uint64_t count = 0;
  std::string summary; // one line: what was seen
  std::string meaning; // what it usually means
  Evidence evidence;
};

struct Distribution {
  std::string name; // "connect", "ESTABLISHED", ...
  LogLinearHistogram hist;
};

struct Totals {
  std::uint64_t events = 0;
  std::uint64_t state_events = 0;
  std::uint64_t retransmit_events = 0;
  std::uint64_t reset_events = 0;
  std::uint64_t connect_attempts = 0; // CLOSE -> SYN_SENT
  std::uint64_t opened_active = 0;    // SYN_SENT -> ESTABLISHED
  std::uint64_t opened_passive = 0;   // SYN_RECV -> ESTABLISHED
  std::uint64_t closed = 0;           // a connection ended (CLOSE/TIME_WAIT)
  std::uint64_t failed_connects = 0;  // SYN_SENT -> CLOSE
  std::uint64_t time_wait = 0;        // -> TIME_WAIT
  std::map<std::string, std::uint64_t> transitions; // "OLD->NEW" -> count
};

// Bounded tracking: what did not fit.
struct Dropped {
  std::uint64_t connections = 0;
  std::uint64_t endpoints = 0;
  std::uint64_t processes = 0;
  std::uint64_t listeners = 0;
};

// One check that was run: a problem, or a line saying why it is fine.
struct Check {
  std::string kind;
  bool problem = false;
  std::string line; // "refused connections: none of 12 connects"
};

// TIME_WAIT per remote endpoint: entries during the run and now.
struct TimeWaitEndpoint {
  std::string endpoint;
  std::uint64_t count = 0;       // -> TIME_WAIT during the run
  double rate_per_s = 0;         // count / duration
  std::uint64_t now = 0;         // TIME_WAIT sockets at the end (sock_diag)
  std::uint64_t projected = 0;   // max(now, rate * TIME_WAIT length)
};

struct Report {
  std::uint64_t duration_ns = 0;
  std::optional<std::uint64_t> netns; // --netns, else all namespaces traced
  std::uint64_t lost = 0;             // ring buffer losses (must be 0)
  std::uint64_t storage_fail = 0;
  Totals totals;
  std::vector<Problem> problems; // critical first, then by count
  std::vector<Check> checks;     // every rule, in a fixed order
  std::vector<TimeWaitEndpoint> time_wait; // worst first (top N)
  std::uint32_t port_range_size = 0;       // ip_local_port_range
  std::vector<Distribution> latency; // "connect" first, then per state
  Dropped dropped;
  // Where the namespace counters came from, and anything that could not
  // be read ("cannot read ..."): shown, never fatal.
  std::optional<std::uint64_t> counters_netns;
  std::map<std::string, std::int64_t> mib_delta; // the TCP MIB during the run
  std::vector<std::string> notes;
};

} // namespace tcptrail::diagnose
