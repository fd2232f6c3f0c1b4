// tcptrail snapshot: every TCP socket in every network namespace, with its
// owner, queues and seq/ack state, read once through BPF iterators.
#include <unistd.h>

#include <cstdio>

#include "bpf/iter.h"
#include "snapshot/enumerate.h"
#include "bpf/tracer.h"
#include "commands/commands.h"
#include "output.h"
#include "snapshot/snapshot.h"

namespace tcptrail {

int run_snapshot(const CommonOptions &opts) {
  TracerConfig cfg;
  cfg.mode = Mode::Snapshot;
  cfg.filter = opts.filter;
  cfg.verbose = opts.verbose;
  cfg.ringbuf_bytes = static_cast<std::size_t>(getpagesize()); // unused
  cfg.tracepoints = false;
  cfg.iterators = true;
  Tracer tracer = Tracer::create(cfg);
  std::vector<SocketRow> rows = enumerate_sockets(tracer);
  std::erase_if(rows, [&](const SocketRow &r) {
    return !row_matches(opts.filter, r);
  });

  Output out(STDOUT_FILENO);
  switch (opts.format) {
  case Format::Table:
    format_snapshot_table(out.buf(), rows);
    break;
  case Format::Json:
    format_snapshot_json(out.buf(), rows, cgroup_tree().get());
    break;
  case Format::Csv:
    format_snapshot_csv(out.buf(), rows, cgroup_tree().get());
    break;
  }
  out.flush();
  return 0;
}

} // namespace tcptrail
