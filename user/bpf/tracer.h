// The libbpf boundary: the only code that calls libbpf. Opens, configures,
// loads and attaches the BPF object, and drains its ring buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <optional>
#include <vector>

#include "bpf/programs.h"
#include "decode.h"
#include "filter.h"

namespace tcptrail {

class EventSink {
public:
  virtual ~EventSink() = default;
  virtual void on_state(const tt_state_event &ev) = 0;
  virtual void on_segment(const tt_seg_event &ev) = 0;
  // A connection's aggregated path (TracerConfig::aggregate only).
  virtual void on_conn(const tt_conn_event &) {}
  // A record that failed validation (never expected; counted and reported).
  virtual void on_invalid(DecodeError) {}
};

struct TracerConfig {
  // Which programs of program_table() are candidates (bpf/programs.h).
  Mode mode = Mode::Trace;
  FilterSpec filter;
  std::size_t ringbuf_bytes = 8u << 20; // power of two, >= page size
  bool verbose = false;                 // libbpf debug log to stderr
  bool want_retransmits = true;
  bool want_resets = true;
  // Wake the consumer only once this many bytes wait (0: every record).
  std::uint64_t wakeup_bytes = 1u << 20;
  // History mode: the kernel keeps the path of each socket with storage and
  // sends one tt_conn_event per connection (on_conn) instead of its
  // transitions; RSTs after the end still arrive as segments, retransmits
  // not at all (tcp_sock.total_retrans counts them). open_connections()
  // dumps the ones still open. With lazy_storage, sockets without storage
  // arrive transition by transition, uncompleted and filtered only by what
  // holds for every step (see filter_check() in bpf/sock.bpf.h): the sink
  // assembles and filters their paths (HistoryAssembler).
  bool aggregate = false;
  // Socket storage only for listeners (and their children) and sockets seen
  // at start. Per-transition modes: SocketMemory remembers the rest in user
  // space, and the owner filters (pid, comm) are checked once it has named
  // the owner.
  bool lazy_storage = false;
  // Each CPU stages its state records and sends them TT_STAGE_RECORDS at a
  // time (one ring reservation per batch). poll() runs the flush program on
  // every CPU and hands records on in time order (see user/reorder.h), so
  // they reach the sink up to one poll late. Ignored with a ring too small
  // to hold four batches (under 16 KiB).
  bool batch = false;
  // The start-up fd walk records every fd of a socket in these states
  // (1 << TCP state), whatever the filters, and keeps the records for
  // walked_sockets(): diagnose's owners (LISTEN, CLOSE_WAIT) and leaks'
  // (its watched states and LISTEN), 72 bytes per fd. 0: none kept.
  std::uint32_t walk_record_states = 0;
  // Load and attach the tracepoint programs (off: `snapshot`, iterators only).
  bool tracepoints = true;
  // serve: the tracepoint programs count into the per-CPU serve_stats map
  // (serve_stats()); with serve_records they also send their records
  // through the ring (serve --events), else the ring stays empty.
  bool serve = false;
  bool serve_records = false;
  // Load the iterator programs (bpf/iter.bpf.c). They are never attached by
  // create(): user/bpf/iter.h creates iterator links on demand.
  bool iterators = false;
};

struct TracerStats {
  std::uint64_t lost = 0;        // failed ring-buffer reservations
  // Per-socket storage could not be created (or, lazy mode, SocketMemory
  // was full).
  std::uint64_t storage_fail = 0;
  std::uint64_t invalid = 0;      // records refused by decode()
  // Runs the kernel skipped because the program was already running on
  // that CPU (bpf_prog_info.recursion_misses): events never produced.
  std::uint64_t missed = 0;
  // Batched mode: records that reached user space after a newer one had
  // been handed on (never expected; see Reorder::late()).
  std::uint64_t late = 0;
};

// One loaded program's run statistics (bpf_prog_info), counted by the
// kernel only while kernel.bpf_stats_enabled is 1.
struct ProgramRunStats {
  std::string name;
  std::uint64_t run_time_ns = 0;
  std::uint64_t run_cnt = 0;
  std::uint64_t recursion_misses = 0;
};

// The programs a configuration loads on this kernel (program_table()
// filtered by mode, configuration and probed features), and what the
// kernel's refusals cost. Throws tcptrail::Error when a required program is
// refused.
struct ProgramPlan {
  std::vector<std::string_view> load;
  std::vector<std::string> warnings; // optional programs refused: what is lost
  std::vector<std::string> notes;    // alternatives taken instead
};
ProgramPlan plan_programs(const TracerConfig &cfg, KernelProbes &probes);

// The size of seed_owners for this start, from /proc/net/sockstat's text:
// the TCP sockets the kernel has allocated ("alloc", one count for every
// namespace) and a quarter more plus 1,024 for those made before the fd
// walk meets them, between 4,096 and 262,144. The map is preallocated, so
// its size is paid at creation: 262,144 entries, never used on an idle
// host, had taken 2.7 ms of every start on 6.18.44-fc-v1300 even without
// preallocation. Text without the count gives 65,536: a walk that finds
// more leaves the rest without an owner until their owner's first call.
std::uint32_t seed_owner_entries(std::string_view sockstat);

class Tracer {
public:
  // Opens, configures, loads and attaches; throws tcptrail::Error naming the
  // failed step (with a hint for missing privileges, BTF, tracepoints).
  static Tracer create(const TracerConfig &cfg);

  Tracer(Tracer &&) noexcept;
  Tracer &operator=(Tracer &&) noexcept;
  Tracer(const Tracer &) = delete;
  Tracer &operator=(const Tracer &) = delete;
  ~Tracer();

  // Waits up to timeout_ms for data, then consumes everything available.
  // Returns the number of records handed to sink.
  int poll(EventSink &sink, int timeout_ms);
  // Detaches the programs, then hands on everything they produced: what
  // waits in the ring and, in batched mode, in the CPUs' stages. The
  // tracer makes no more records; stats() and the iterators still work.
  int finish(EventSink &sink);

  // Not thread-safe: it reads counters the polling thread updates.
  TracerStats stats() const;
  // Records the kernel lost (ring full) plus runs it skipped (recursion):
  // stats().lost + stats().missed, from kernel memory and syscalls only, so
  // safe from any thread while another polls (serve's HTTP threads).
  std::uint64_t kernel_losses() const;
  // serve: every CPU's serve_stats added up. Works after capabilities are
  // dropped (a lookup on the map's fd). Throws tcptrail::Error on failure.
  tt_serve_stats serve_stats() const;
  // Every loaded program's run statistics.
  std::vector<ProgramRunStats> program_run_stats() const;

  // History mode: the connections still open (records without TT_CF_ENDED),
  // passed one by one to `fn`, from the socket storage iterator. Works after
  // capabilities are dropped: the iterator link is made at create().
  template <typename Fn> void open_connections(Fn &&fn) const {
    for_each_open_connection(
        [](void *ctx, const tt_conn_event &ev) { (*static_cast<Fn *>(ctx))(ev); },
        &fn);
  }
  void for_each_open_connection(void (*fn)(void *, const tt_conn_event &),
                                void *ctx) const;
  // History mode with lazy storage: the counters now (TT_CF_COUNTERS
  // records, no steps) of each socket without storage that a process holds
  // a descriptor of. Works after capabilities are dropped, as above.
  template <typename Fn> void unstored_counters(Fn &&fn) const {
    for_each_unstored_counters(
        [](void *ctx, const tt_conn_event &ev) { (*static_cast<Fn *>(ctx))(ev); },
        &fn);
  }
  void for_each_unstored_counters(void (*fn)(void *, const tt_conn_event &),
                                  void *ctx) const;

  // The sockets in TracerConfig::walk_record_states the start-up fd walk
  // found (bpf/owners.bpf.c), whatever the filters: one record per fd that
  // refers to one, in walk order; nullopt when the walk did not run (a
  // kernel without iter/task_file) or walk_record_states was 0. A socket
  // in those states that is missing has no process at all, or is newer
  // than the walk. See socket_owners_of() and SocketEnumerator
  // (snapshot/enumerate.h).
  struct WalkedSockets {
    std::vector<tt_iter_file> files;
  };
  const std::optional<WalkedSockets> &walked_sockets() const;

  // The fd of a loaded program, by its function name ("dump_tcp"), or -1
  // when it is not loaded. For user/bpf/iter.h.
  int program_fd(const char *name) const;

  struct Impl; // opaque: the skeleton and ring buffer live in tracer.cpp

private:
  explicit Tracer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace tcptrail
