// The tracing loop every subcommand shares: create the tracer, announce
// readiness, poll until a signal, --duration or the sink says stop, report
// losses as they happen, then drain the ring.
#pragma once

#include <cstdint>
#include <functional>

#include "bpf/tracer.h"
#include "cli.h"

namespace tcptrail {

// How often the consumer drains the ring when no wake-up came, and how often
// losses are checked: both bound how late an event or a loss report is.
inline constexpr int kPollIntervalMs = 50;
inline constexpr std::uint64_t kLossCheckNs = 250'000'000;

struct SessionHooks {
  // Called with the number of newly lost records (ring buffer full, or
  // nested runs the kernel skipped).
  std::function<void(std::uint64_t)> on_lost;
  // Called once attached, before capabilities are dropped: the last chance
  // for privileged setup (e.g. enumerating sockets in other namespaces).
  std::function<void(Tracer &)> after_attach;
  // Called after every poll with the monotonic time; return false to stop.
  std::function<bool(std::uint64_t now_ns)> on_tick;
  // Called once at the end, after the final drain, while the tracer (and
  // its programs) still exist.
  std::function<void(Tracer &)> at_end;
};

TracerConfig make_tracer_config(const CommonOptions &opts);

// Returns the final stats. Prints "tcptrail: ready" on stderr once attached.
TracerStats run_session(const CommonOptions &opts, const TracerConfig &cfg,
                        EventSink &sink, const SessionHooks &hooks);

// Table colour: on a terminal, unless --no-color or NO_COLOR is set.
bool want_color(const CommonOptions &opts, int fd);

// Output options for stdout from the command line, with the clocks read
// now (wall offset, start of the relative time column).
OutputOptions make_output_options(const CommonOptions &opts);

} // namespace tcptrail
