// Process-wide runtime: stop signals and clocks.
#pragma once

#include <cstdint>

namespace tcptrail {

// SIGINT/SIGTERM/SIGHUP set the stop flag (handlers without SA_RESTART, so
// a blocking poll returns early); SIGPIPE is ignored so writes see EPIPE.
void install_signal_handlers();
bool stop_requested();
void request_stop();

std::uint64_t monotonic_ns();
// CLOCK_REALTIME - CLOCK_MONOTONIC: bpf_ktime_get_ns() + offset = wall time.
std::int64_t wall_offset_ns();

} // namespace tcptrail
