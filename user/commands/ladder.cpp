// tcptrail ladder: each connection drawn as a ladder diagram, traced live
// or read back from a saved `trace -f json` stream.
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

#include "bpf/probe.h"
#include "commands/commands.h"
#include "commands/session.h"
#include "error.h"
#include "ladder/input.h"
#include "ladder/model.h"
#include "ladder/render.h"
#include "output.h"
#include "runtime.h"

namespace tcptrail {

namespace {

// Collects the stream; the drawing needs each connection whole.
class LadderSink final : public EventSink {
public:
  LadderSink(std::uint64_t limit, std::vector<std::string> reasons)
      : limit_(limit), reasons_(std::move(reasons)) {}

  void on_state(const tt_state_event &ev) override {
    if (!done())
      events_.push_back(ladder::from_record(ev));
  }
  void on_segment(const tt_seg_event &ev) override {
    if (!done())
      events_.push_back(ladder::from_record(
          ev, ev.what == TT_RESET_SENT && ev.hdr.kind == TT_KIND_RESET
                  ? rst_reason_name(reasons_, ev.reason)
                  : std::string_view()));
  }
  bool done() const { return limit_ && events_.size() >= limit_; }
  std::vector<ladder::Event> take() { return std::move(events_); }

private:
  std::uint64_t limit_;
  std::vector<std::string> reasons_;
  std::vector<ladder::Event> events_;
};

bool ladder_color(const CommonOptions &opts, const LadderOptions &lo) {
  if (opts.no_color || lo.format != ladder::LadderFormat::Text)
    return false;
  const char *no_color = std::getenv("NO_COLOR");
  if (no_color && *no_color)
    return false;
  return isatty(STDOUT_FILENO) == 1;
}

} // namespace

int run_ladder(const CommonOptions &opts, const LadderOptions &lo) {
  ladder::RenderOptions ro;
  ro.raw_seq = opts.raw_seq;
  ro.ascii = lo.ascii;
  ro.color = ladder_color(opts, lo);

  std::vector<ladder::Event> events;
  std::uint64_t end_ns = 0;
  if (!lo.input.empty()) {
    // A closed pipe ends the output quietly (Output sees EPIPE).
    std::signal(SIGPIPE, SIG_IGN);
    ladder::Input in;
    if (lo.input == "-") {
      in =
          ladder::read_trace_json(std::cin, "<stdin>", opts.filter, opts.count);
    } else {
      std::ifstream f(lo.input);
      if (!f)
        throw Error(
            fmt::format("cannot open {}: {}", lo.input, std::strerror(errno)));
      in = ladder::read_trace_json(f, lo.input, opts.filter, opts.count);
    }
    events = std::move(in.events);
    ro.lost = in.lost;
  } else {
    LadderSink sink(opts.count, KernelProbes::instance().rst_reason_names());
    SessionHooks hooks;
    hooks.on_tick = [&](std::uint64_t) { return !sink.done(); };
    TracerConfig cfg = make_tracer_config(opts);
    cfg.mode = Mode::Trace;
    cfg.lazy_storage = true;
    cfg.batch = true;
    const TracerStats stats = run_session(opts, cfg, sink, hooks);
    if (opts.exit_after_attach)
      return 0;
    end_ns = monotonic_ns();
    ro.lost = stats.lost + stats.missed;
    events = sink.take();
  }

  const auto conns = ladder::build(std::move(events), end_ns);
  if (conns.empty())
    std::fputs("tcptrail: no connection to draw\n", stderr);
  Output out(STDOUT_FILENO);
  ladder::render(out.buf(), lo.format, conns, ro);
  out.flush();
  return 0;
}

} // namespace tcptrail
