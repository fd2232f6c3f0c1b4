// Process-wide runtime: stop signals, clocks, small kernel files.
#pragma once

#include <cstdint>
#include <string>

namespace tcptrail {

// SIGINT/SIGTERM/SIGHUP set the stop flag (handlers without SA_RESTART, so
// a blocking poll returns early); SIGPIPE is ignored so writes see EPIPE.
void install_signal_handlers();
bool stop_requested();
void request_stop();

std::uint64_t monotonic_ns();
// CLOCK_REALTIME - CLOCK_MONOTONIC: bpf_ktime_get_ns() + offset = wall time.
std::int64_t wall_offset_ns();

// The whole of a small file (/proc, /sys); empty when it cannot be read.
std::string read_small_file(const char *path);

} // namespace tcptrail
