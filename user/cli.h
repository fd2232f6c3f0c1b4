// Command line: options shared by every tracing subcommand, and dispatch.
#pragma once

#include <cstddef>
#include <cstdint>

#include "filter.h"
#include "format/formatter.h"

namespace tcptrail {

struct CommonOptions {
  FilterSpec filter;
  Format format = Format::Table;
  bool raw_seq = false;
  bool wall_time = false;
  bool no_color = false;
  bool verbose = false;
  std::uint64_t duration_ns = 0; // 0 = until a signal
  std::uint64_t count = 0;       // 0 = unlimited
  // 4 MiB: mapped twice (wrap-around), so 8 MiB of RSS; see README.
  std::size_t ringbuf_bytes = 4u << 20;
  bool exit_after_attach = false; // hidden: start-up benchmark
};

// Parses argv and runs the subcommand. Returns the process exit code; throws
// tcptrail::Error for runtime failures.
int run_cli(int argc, char **argv);

} // namespace tcptrail
