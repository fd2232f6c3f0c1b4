// tcptrail leaks: sockets stuck in a watched state (CLOSE_WAIT by default),
// by owning process. Existing sockets are enumerated at start with BPF
// iterators (pre-existing, aged by a proven lower bound); live transitions
// then time new ones exactly and drop those that leave the state.
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>

#include "bpf/iter.h"
#include "snapshot/enumerate.h"
#include "bpf/tracer.h"
#include "commands/commands.h"
#include "commands/session.h"
#include "output.h"
#include "runtime.h"
#include "snapshot/leaks.h"
#include "tcp_state.h"
#include "tuple.h"

namespace tcptrail {

namespace {

constexpr int kExitFound = 3;
// Tracked sockets a drop must start from before memory is given back.
constexpr std::size_t kTrimAfterSockets = 10'000;

class LeaksSink final : public EventSink {
public:
  explicit LeaksSink(LeakTracker &tracker) : tracker_(tracker) {}
  void on_state(const tt_state_event &ev) override { tracker_.on_state(ev); }
  void on_segment(const tt_seg_event &) override {}

private:
  LeakTracker &tracker_;
};

// Reads every socket and fd now. (In live mode the tracer has already seeded
// socket storage with owners, bpf/owners.bpf.c, so live events of sockets a
// pre-existing listener accepts later name their owner.)
std::vector<SocketRow> enumerate(const Tracer &tracer) {
  return enumerate_sockets(tracer);
}

class Reporter {
public:
  Reporter(const CommonOptions &opts, const LeaksOptions &leaks,
           std::uint32_t mask, Output &out)
      : opts_(opts), leaks_(leaks), mask_(mask), out_(out),
        wall_offset_(wall_offset_ns()) {
    // pid/comm filters apply to the owner as reported (user space); the
    // rest were applied in the kernel and to the enumeration.
    user_filter_ = opts.filter;
    user_filter_.state_mask = 0;
    if (opts.format == Format::Csv)
      format_leaks_csv_header(out_.buf());
  }

  void report(const LeakTracker &tracker) {
    const std::uint64_t now = monotonic_ns();
    LeakReport rep = build_report(
        tracker, now, leaks_.min_age_ns, [this](const StuckSocket &s) {
          tt_sock sk{};
          copy_tuple(sk, s);
          sk.pid = s.pid;
          std::memcpy(sk.comm, s.comm, TT_COMM_LEN);
          sk.cgroup_id = s.cgroup_id;
          return matches(user_filter_, sk, s.state, s.state);
        });
    rep.seq = ++reports_;
    rep.wall_ns = static_cast<std::int64_t>(now) + wall_offset_;
    rep.state_mask = mask_;
    if (rep.total)
      found_ = true;
    switch (opts_.format) {
    case Format::Table:
      format_leaks_table(out_.buf(), rep);
      break;
    case Format::Json:
      format_leaks_json(out_.buf(), rep, cgroup_tree().get());
      break;
    case Format::Csv:
      format_leaks_csv(out_.buf(), rep, cgroup_tree().get());
      break;
    }
    out_.flush();
  }
  bool found() const { return found_; }

private:
  const CommonOptions &opts_;
  const LeaksOptions &leaks_;
  std::uint32_t mask_;
  Output &out_;
  std::int64_t wall_offset_;
  FilterSpec user_filter_;
  std::uint64_t reports_ = 0;
  bool found_ = false;
};

} // namespace

int run_leaks(const CommonOptions &opts, const LeaksOptions &leaks) {
  const std::uint32_t mask =
      opts.filter.state_mask
          ? opts.filter.state_mask
          : 1U << static_cast<unsigned>(TcpState::CloseWait);
  LeakTracker tracker(mask);
  Output out(STDOUT_FILENO);
  Reporter reporter(opts, leaks, mask, out);
  auto keep_row = [&](const SocketRow &r) {
    FilterSpec f = opts.filter;
    f.state_mask = 0;
    return row_matches(f, r);
  };

  if (leaks.once) {
    TracerConfig cfg;
    cfg.mode = Mode::Leaks;
    cfg.filter = opts.filter;
    cfg.filter.state_mask = mask; // the walks report only these (and listeners)
    cfg.verbose = opts.verbose;
    cfg.ringbuf_bytes = static_cast<std::size_t>(getpagesize()); // unused
    cfg.tracepoints = false;
    cfg.iterators = true;
    Tracer tracer = Tracer::create(cfg);
    std::vector<SocketRow> rows = enumerate(tracer);
    std::erase_if(rows, [&](const SocketRow &r) { return !keep_row(r); });
    tracker.enumerate(rows);
    reporter.report(tracker);
    return leaks.exit_code && reporter.found() ? kExitFound : 0;
  }

  // Live: transitions from or to a watched state are all the kernel sends.
  TracerConfig cfg = make_tracer_config(opts);
  cfg.mode = Mode::Leaks;
  cfg.iterators = true;
  cfg.want_retransmits = false;
  cfg.want_resets = false;
  cfg.filter.state_mask = mask;
  cfg.filter.pids.clear(); // owners may be learnt later: filtered here
  cfg.filter.comm.clear();
  // The fds of the watched sockets and listeners come from the start-up fd
  // walk, which every tracing start makes: no second walk after attach. A
  // socket that enters a watched state in between gets its owner from the
  // walk's seeds (dump_tcp claims them).
  cfg.walk_record_states = mask | state_bit(TcpState::Listen);

  LeaksSink sink(tracker);
  std::uint64_t next_report = 0;
  SessionHooks hooks;
  hooks.after_attach = [&](Tracer &tracer) {
    // Attached first, enumerated second: a socket that changes state in
    // between is in both, and its event (exact) wins.
    {
      std::vector<SocketRow> rows = enumerate(tracer);
      std::erase_if(rows, [&](const SocketRow &r) { return !keep_row(r); });
      tracker.enumerate(rows);
    }
    // Every socket of the host passed through here, and only the watched
    // ones stay: give the rest back (19 -> 13 MB RSS after 131,000 sockets).
    malloc_trim(0);
  };
  hooks.on_lost = [&](std::uint64_t n) {
    std::fprintf(stderr,
                 "tcptrail: warning: %llu events lost (ring buffer full, or "
                 "skipped as nested runs on a busy CPU); "
                 "sockets may be missing or reported late\n",
                 static_cast<unsigned long long>(n));
  };
  std::size_t tracked_peak = 0;
  hooks.on_tick = [&](std::uint64_t now) {
    const std::size_t n = tracker.tracked().size();
    tracked_peak = std::max(tracked_peak, n);
    if (now >= next_report) {
      reporter.report(tracker);
      next_report = now + leaks.interval_ns;
      // A close burst passes many sockets through CLOSE_WAIT for a moment;
      // once most have left, give their memory back.
      if (tracked_peak >= kTrimAfterSockets && n < tracked_peak / 2) {
        malloc_trim(0);
        tracked_peak = n;
      }
    }
    return !out.closed();
  };
  run_session(opts, cfg, sink, hooks);
  // A last report on exit (signal, --duration): what was found since the
  // previous interval is not lost, and --exit-code reflects it.
  if (!out.closed())
    reporter.report(tracker);
  return leaks.exit_code && reporter.found() ? kExitFound : 0;
}

} // namespace tcptrail
