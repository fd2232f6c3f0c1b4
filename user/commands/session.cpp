#include "commands/session.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "bpf/probe.h"
#include "privileges.h"
#include "runtime.h"

namespace tcptrail {

TracerConfig make_tracer_config(const CommonOptions &opts) {
  TracerConfig cfg;
  cfg.filter = opts.filter;
  cfg.ringbuf_bytes = opts.ringbuf_bytes;
  cfg.verbose = opts.verbose;
  // Wake the consumer once a quarter of the ring waits: early enough that a
  // burst cannot fill the rest before it drains, late enough that it drains
  // in large batches. Every drain pulls the ring's cache lines (and
  // consumer_pos) away from the producing CPUs: on the 2-core VM the state
  // program took 508-526 ns/run waking at 1/8, 432-440 at 1/4, ~600 at 1/64
  // (scripts/bench/kernel-cost.sh, interleaved).
  cfg.wakeup_bytes = opts.ringbuf_bytes / 4;
  return cfg;
}

bool want_color(const CommonOptions &opts, int fd) {
  if (opts.no_color || opts.format != Format::Table)
    return false;
  const char *no_color = std::getenv("NO_COLOR");
  if (no_color && *no_color)
    return false;
  return isatty(fd) == 1;
}

OutputOptions make_output_options(const CommonOptions &opts) {
  OutputOptions out;
  out.format = opts.format;
  out.raw_seq = opts.raw_seq;
  out.wall_time = opts.wall_time;
  out.color = want_color(opts, STDOUT_FILENO);
  out.wall_offset_ns = wall_offset_ns();
  out.start_ns = monotonic_ns();
  out.rst_reasons = KernelProbes::instance().rst_reason_names();
  if (opts.format != Format::Table)
    out.cgroups = cgroup_tree(); // the table shows no cgroups
  return out;
}

TracerStats run_session(const CommonOptions &opts, const TracerConfig &cfg,
                        EventSink &sink, const SessionHooks &hooks) {
  install_signal_handlers();
  Tracer tracer = Tracer::create(cfg);
  if (hooks.after_attach)
    hooks.after_attach(tracer);
  // Everything privileged is done: programs attached, ring mapped.
  drop_all_capabilities();
  std::fputs("tcptrail: ready\n", stderr);
  std::fflush(stderr);
  if (opts.exit_after_attach)
    return tracer.stats();

  const std::uint64_t start = monotonic_ns();
  const std::uint64_t deadline = opts.duration_ns ? start + opts.duration_ns : 0;
  std::uint64_t lost_seen = 0;
  std::uint64_t next_loss_check = start + kLossCheckNs;

  auto check_loss = [&] {
    const TracerStats st = tracer.stats();
    const std::uint64_t lost = st.lost + st.missed;
    if (lost > lost_seen && hooks.on_lost)
      hooks.on_lost(lost - lost_seen);
    lost_seen = lost;
  };

  while (!stop_requested()) {
    int timeout = kPollIntervalMs;
    if (deadline) {
      const std::uint64_t now = monotonic_ns();
      if (now >= deadline)
        break;
      const std::uint64_t left_ms = (deadline - now) / 1'000'000 + 1;
      if (left_ms < static_cast<std::uint64_t>(timeout))
        timeout = static_cast<int>(left_ms);
    }
    tracer.poll(sink, timeout);
    const std::uint64_t now = monotonic_ns();
    if (now >= next_loss_check) {
      check_loss();
      next_loss_check = now + kLossCheckNs;
    }
    if (hooks.on_tick && !hooks.on_tick(now))
      break;
  }
  // Detach, then hand on everything the programs produced (the ring, and
  // the CPUs' stages in batched mode), then report losses.
  tracer.finish(sink);
  if (hooks.on_tick)
    hooks.on_tick(monotonic_ns());
  check_loss();
  if (hooks.at_end)
    hooks.at_end(tracer);
  return tracer.stats();
}

} // namespace tcptrail
