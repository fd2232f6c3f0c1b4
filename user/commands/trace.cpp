// tcptrail trace: one line per TCP state transition, RST and retransmission.
#include <unistd.h>

#include <cstdio>

#include "commands/commands.h"
#include "commands/session.h"
#include "format/formatter.h"
#include "output.h"

namespace tcptrail {

namespace {

// Output is written in large chunks: at the end of every poll batch (so a
// line is never held longer than the poll interval) or when this much waits.
constexpr std::size_t kFlushBytes = std::size_t{256} * 1024;

class TraceSink final : public EventSink {
public:
  TraceSink(Formatter &formatter, Output &out, std::uint64_t limit)
      : formatter_(formatter), out_(out), limit_(limit) {}

  void on_state(const tt_state_event &ev) override {
    if (!take())
      return;
    formatter_.state(out_.buf(), ev);
    out_.flush_if_over(kFlushBytes);
  }
  void on_segment(const tt_seg_event &ev) override {
    if (!take())
      return;
    formatter_.segment(out_.buf(), ev);
    out_.flush_if_over(kFlushBytes);
  }

  bool done() const {
    return out_.closed() || (limit_ && printed_ >= limit_);
  }

private:
  bool take() {
    if (done())
      return false;
    ++printed_;
    return true;
  }

  Formatter &formatter_;
  Output &out_;
  std::uint64_t limit_;
  std::uint64_t printed_ = 0;
};

} // namespace

int run_trace(const CommonOptions &opts) {
  const OutputOptions out_opts = make_output_options(opts);

  auto formatter = make_formatter(out_opts);
  Output out(STDOUT_FILENO);
  TraceSink sink(*formatter, out, opts.count);

  SessionHooks hooks;
  hooks.on_lost = [&](std::uint64_t n) {
    if (opts.format == Format::Table) {
      out.flush();
      std::fprintf(stderr,
                   "tcptrail: warning: %llu events lost (ring buffer full, "
                   "or skipped as nested runs on a busy CPU; try a larger "
                   "--ringbuf-size or narrower filters)\n",
                   static_cast<unsigned long long>(n));
    } else {
      formatter->lost(out.buf(), n);
    }
  };
  hooks.on_tick = [&](std::uint64_t) {
    out.flush();
    return !sink.done();
  };

  formatter->header(out.buf());
  TracerConfig cfg = make_tracer_config(opts);
  cfg.mode = Mode::Trace;
  cfg.lazy_storage = true;
  cfg.batch = true;
  const TracerStats stats = run_session(opts, cfg, sink, hooks);
  out.flush();
  if (stats.invalid)
    std::fprintf(stderr, "tcptrail: warning: %llu malformed records dropped\n",
                 static_cast<unsigned long long>(stats.invalid));
  if (stats.late)
    std::fprintf(stderr,
                 "tcptrail: warning: %llu records arrived out of time order "
                 "(printed late)\n",
                 static_cast<unsigned long long>(stats.late));
  if (stats.storage_fail)
    std::fprintf(stderr,
                 "tcptrail: warning: %llu sockets could not get per-socket "
                 "storage (no timing/owner for them)\n",
                 static_cast<unsigned long long>(stats.storage_fail));
  return 0;
}

} // namespace tcptrail
