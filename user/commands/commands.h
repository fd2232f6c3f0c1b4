// Subcommands. Each returns the process exit code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "cli.h"
#include "ladder/render.h"

namespace tcptrail {

int run_trace(const CommonOptions &opts);

struct HistoryOptions {
  std::uint64_t interval_ns = 0; // also print open connections this often
  std::size_t max_conns = std::size_t{1} << 20;
  bool show_seq = false; // -v/--seq: snd_una/snd_nxt/rcv_nxt per step
};
// tcptrail history: one record per connection when it ends, plus the open
// ones on exit and every --interval.
int run_history(const CommonOptions &opts, const HistoryOptions &history);

// tcptrail snapshot: every TCP socket of every network namespace, now.
int run_snapshot(const CommonOptions &opts);

struct LeaksOptions {
  std::uint64_t min_age_ns = 30'000'000'000ULL;
  std::uint64_t interval_ns = 10'000'000'000ULL;
  bool once = false;
  bool exit_code = false; // exit 3 when a report found stuck sockets
};
// tcptrail leaks: sockets stuck in watched states (opts.filter.state_mask,
// CLOSE_WAIT when empty), by process.
int run_leaks(const CommonOptions &opts, const LeaksOptions &leaks);
// tcptrail diagnose: trace for --duration (default 10s), then a report of
// verdicts. Returns 0 without problems, 3 with problems, 2 on misuse.
int run_diagnose(const CommonOptions &opts);
struct ServeOptions {
  std::string listen;      // ADDR:PORT; empty: 127.0.0.1:kDefaultServePort
  std::string events;      // JSON Lines events to this file, "-" stdout
  std::size_t max_series = 1000; // per labelled per-scrape family
  std::uint64_t gauge_interval_ns = 0; // enumerate at most this often
};
// tcptrail serve: Prometheus metrics on /metrics (counted in the kernel),
// JSON Lines events with --events; until SIGINT/SIGTERM. SIGHUP reopens the
// events file.
int run_serve(const CommonOptions &opts, const ServeOptions &serve);
// tcptrail doctor: the kernel, each feature tcptrail uses (probed) and each
// subcommand's status. Returns 0 when every subcommand can run, 3 when one
// cannot.
int run_doctor(bool json);

struct LadderOptions {
  std::string input; // --input FILE ("-": stdin): draw a saved trace
  ladder::LadderFormat format = ladder::LadderFormat::Text;
  bool ascii = false;
};
// tcptrail ladder: each connection as a ladder diagram (text, SVG,
// Mermaid, JSON), traced live or read from `trace -f json` output.
int run_ladder(const CommonOptions &opts, const LadderOptions &ladder);

} // namespace tcptrail
