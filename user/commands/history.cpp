// tcptrail history: the life story of every connection, one record each.
#include <unistd.h>

#include <cstdio>
#include <vector>

#include "commands/commands.h"
#include "commands/session.h"
#include "history/assembler.h"
#include "history/history_format.h"
#include "output.h"

namespace tcptrail {

namespace {

class HistorySink final : public EventSink {
public:
  explicit HistorySink(HistoryAssembler &assembler) : assembler_(assembler) {}
  void on_state(const tt_state_event &ev) override { assembler_.on_state(ev); }
  void on_segment(const tt_seg_event &ev) override {
    assembler_.on_segment(ev);
  }
  void on_conn(const tt_conn_event &ev) override {
    assembler_.on_connection(ev);
  }

private:
  HistoryAssembler &assembler_;
};

// The connections still open, which the kernel keeps (history mode): one
// record each, ordered by first step like HistoryAssembler::snapshot_open().
void append_open(const Tracer &tracer, HistoryAssembler &scratch,
                 std::vector<ConnectionRecord> &out) {
  const std::size_t first = out.size();
  tracer.open_connections([&](const tt_conn_event &ev) {
    ConnectionRecord rec = scratch.open_record(ev);
    if (!rec.path.empty())
      out.push_back(std::move(rec));
  });
  HistoryAssembler::order_open(out, first);
}

} // namespace

int run_history(const CommonOptions &opts, const HistoryOptions &history) {
  const OutputOptions out_opts = make_output_options(opts);

  auto formatter = make_history_formatter(out_opts, history.show_seq);
  Output out(STDOUT_FILENO);
  HistoryAssembler assembler(history.max_conns);
  HistoryAssembler scratch(1);
  const Tracer *tracer = nullptr;
  HistorySink sink(assembler);
  std::vector<ConnectionRecord> records;
  std::uint64_t printed = 0;
  std::uint64_t evicted_reported = 0;
  std::uint64_t next_interval =
      history.interval_ns ? out_opts.start_ns + history.interval_ns : 0;

  const FilterSpec &filter = opts.filter;
  auto emit = [&] {
    for (const ConnectionRecord &rec : records) {
      if (opts.count && printed >= opts.count)
        break;
      if (!record_matches(filter, rec))
        continue;
      formatter->record(out.buf(), rec);
      ++printed;
    }
    records.clear();
    out.flush();
  };
  auto report_evictions = [&] {
    const std::uint64_t evicted = assembler.evicted();
    if (evicted > evicted_reported)
      std::fprintf(stderr,
                   "tcptrail: warning: %llu connections evicted untracked "
                   "(more than --max-conns %zu open at once)\n",
                   static_cast<unsigned long long>(evicted - evicted_reported),
                   history.max_conns);
    evicted_reported = evicted;
  };

  SessionHooks hooks;
  hooks.on_lost = [&](std::uint64_t n) {
    std::fprintf(stderr,
                 "tcptrail: warning: %llu events lost (ring buffer full, or "
                 "skipped as nested runs on a busy CPU): "
                 "some histories are incomplete\n",
                 static_cast<unsigned long long>(n));
  };
  hooks.after_attach = [&](Tracer &t) { tracer = &t; };
  // The counters now of the open connections assembled here.
  auto refresh = [&](const Tracer &t) {
    t.unstored_counters(
        [&](const tt_conn_event &ev) { assembler.refresh(ev); });
  };
  hooks.on_tick = [&](std::uint64_t now) {
    assembler.advance(now, records);
    if (next_interval && now >= next_interval) {
      refresh(*tracer);
      assembler.snapshot_open(records);
      append_open(*tracer, scratch, records);
      next_interval = now + history.interval_ns;
      report_evictions();
    }
    emit();
    return !out.closed() && !(opts.count && printed >= opts.count);
  };

  hooks.at_end = [&](Tracer &t) {
    refresh(t);
    assembler.flush_all(records);
    append_open(t, scratch, records);
    emit();
  };

  TracerConfig cfg = make_tracer_config(opts);
  cfg.mode = Mode::History;
  cfg.aggregate = true;
  // Sockets connect() made go without storage, their transitions batched:
  // see aggregate() in bpf/state.bpf.c.
  cfg.lazy_storage = true;
  cfg.batch = true;
  formatter->header(out.buf());
  run_session(opts, cfg, sink, hooks);
  tracer = nullptr;
  assembler.flush_all(records); // --exit-after-attach: nothing, normally
  emit();
  report_evictions();
  return 0;
}

} // namespace tcptrail
