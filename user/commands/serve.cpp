// tcptrail serve: Prometheus metrics counted in the kernel, per-scrape
// gauges from a socket enumeration, and optional JSON Lines events.
#if TCPTRAIL_HAVE_SERVE

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <memory>
#include <mutex>

#include <fmt/format.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include "bpf/iter.h"
#include "cgroup.h"
#include "bpf/probe.h"
#include "commands/commands.h"
#include "commands/session.h"
#include "error.h"
#include "format/formatter.h"
#include "output.h"
#include "runtime.h"
#include "serve/listen.h"
#include "serve/metrics.h"
#include "snapshot/enumerate.h"

namespace tcptrail {

namespace {

// Scrapes closer together than this share one collection: a thousand
// concurrent scrapes cost one enumeration, not a thousand.
constexpr std::uint64_t kCollectReuseNs = 200'000'000;
constexpr std::size_t kFlushBytes = std::size_t{64} * 1024;

std::atomic<bool> g_reopen{false};

void on_sighup(int) { g_reopen.store(true, std::memory_order_relaxed); }

class ServeCollector final : public prometheus::Collectable {
public:
  ServeCollector(const Tracer &tracer, const SocketEnumerator &enumerator,
                 FilterSpec filter, SeriesLimits limits,
                 std::uint64_t gauge_interval_ns)
      : tracer_(tracer), enumerator_(enumerator), filter_(std::move(filter)),
        limits_(limits), gauge_interval_ns_(gauge_interval_ns) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::uint64_t start = monotonic_ns();
    if (have_cache_ && start - cached_at_ < kCollectReuseNs)
      return cache_;
    try {
      ServeSample s;
      s.kernel = tracer_.serve_stats();
      // This runs on an HTTP thread while the main thread polls.
      s.events_lost = tracer_.kernel_losses();
      if (have_rows_ && start - rows_at_ < gauge_interval_ns_) {
        // --gauge-interval: the last enumeration's gauge rows and counts.
        s.sockets = rows_.sockets;
        std::copy(std::begin(rows_.counted_only), std::end(rows_.counted_only),
                  s.counted_only);
        s.sockets_ok = true;
      } else
        try {
          std::vector<NetnsRef> netns = list_netns();
          if (filter_.netns) // --netns: enter that namespace only
            std::erase_if(netns, [this](const NetnsRef &ns) {
              return ns.inode != filter_.netns;
            });
          std::vector<SocketRow> rows = enumerator_.sockets(netns);
          std::erase_if(rows, [this](const SocketRow &r) {
            return !row_matches(filter_, r);
          });
          keep_gauge_rows(s, std::move(rows));
          s.sockets_ok = true;
          if (gauge_interval_ns_) {
            rows_.sockets = s.sockets;
            std::copy(std::begin(s.counted_only), std::end(s.counted_only),
                      rows_.counted_only);
            rows_at_ = start;
            have_rows_ = true;
          }
        } catch (const std::exception &e) {
          if (!enum_errors_++)
            std::fprintf(stderr, "tcptrail: warning: enumerating sockets: %s\n",
                         e.what());
        }
      // Owners in containers: their groups get a container label. The
      // collector's own tree, used under mu_ only (find() may walk).
      if (s.sockets_ok) {
        if (!cgroups_tried_) {
          cgroups_ = CgroupTree::open();
          cgroups_tried_ = true;
        }
        if (cgroups_)
          for (const SocketRow &r : s.sockets)
            if (r.sock.cgroup_id && !s.containers.count(r.sock.cgroup_id))
              if (const CgroupInfo *c = cgroups_->find(r.sock.cgroup_id);
                  c && !c->container.id.empty())
                s.containers[r.sock.cgroup_id] = c->container.id;
      }
      s.enumerate_errors = enum_errors_;
      s.listen = parse_netstat(read_small_file("/proc/net/netstat"));
      const std::string stats_on =
          read_small_file("/proc/sys/kernel/bpf_stats_enabled");
      s.bpf_stats = !stats_on.empty() && stats_on[0] == '1';
      if (s.bpf_stats)
        for (const ProgramRunStats &p : tracer_.program_run_stats())
          s.programs.push_back({p.name, p.run_time_ns, p.run_cnt});
      s.collect_seconds = static_cast<double>(monotonic_ns() - start) / 1e9;
      cache_ = build_families(s, limits_, folded_total_);
      cached_at_ = start;
      have_cache_ = true;
      // The enumeration's buffers (every socket of every namespace) are
      // freed by now: give the heap back, so that a burst (a storm's
      // TIME_WAIT sockets) does not stay resident between scrapes.
      malloc_trim(0);
    } catch (const std::exception &e) {
      // Never out of here: an exception would end the HTTP server thread.
      std::fprintf(stderr, "tcptrail: warning: scrape failed: %s\n", e.what());
    }
    return cache_;
  }

private:
  const Tracer &tracer_;
  const SocketEnumerator &enumerator_;
  FilterSpec filter_; // the kernel's filters, on each enumerated socket
  SeriesLimits limits_;
  mutable std::mutex mu_;
  mutable std::vector<prometheus::MetricFamily> cache_;
  mutable std::uint64_t cached_at_ = 0;
  mutable bool have_cache_ = false;
  mutable std::uint64_t folded_total_ = 0;
  mutable std::uint64_t enum_errors_ = 0;
  // --gauge-interval: sockets enumerated at most this often (0: every
  // collection); the counters are read at every one.
  std::uint64_t gauge_interval_ns_;
  mutable ServeSample rows_; // sockets and counted_only only
  mutable std::unique_ptr<CgroupTree> cgroups_; // nullptr without cgroup2
  mutable bool cgroups_tried_ = false;
  mutable std::uint64_t rows_at_ = 0;
  mutable bool have_rows_ = false;
};

// --events: the trace JSON Lines contract, to a file reopened on SIGHUP
// (logrotate's move-and-HUP) or to stdout.
class EventsSink final : public EventSink {
public:
  EventsSink(std::string path, const OutputOptions &opts)
      : path_(std::move(path)), formatter_(make_formatter(opts)) {
    open();
  }
  ~EventsSink() override {
    flush();
    if (fd_ > STDERR_FILENO)
      close(fd_);
  }
  EventsSink(const EventsSink &) = delete;
  EventsSink &operator=(const EventsSink &) = delete;

  void on_state(const tt_state_event &ev) override {
    formatter_->state(out_->buf(), ev);
    out_->flush_if_over(kFlushBytes);
  }
  void on_segment(const tt_seg_event &ev) override {
    formatter_->segment(out_->buf(), ev);
    out_->flush_if_over(kFlushBytes);
  }
  void lost(std::uint64_t n) { formatter_->lost(out_->buf(), n); }
  void flush() { out_->flush(); }
  void reopen() {
    if (path_ == "-")
      return;
    flush();
    const int old = fd_;
    open();
    close(old);
  }

private:
  void open() {
    if (path_ == "-") {
      fd_ = STDOUT_FILENO;
    } else {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                   0640);
      if (fd_ < 0)
        throw Error(fmt::format("opening the events file {}: {}", path_,
                                std::strerror(errno)));
    }
    out_ = std::make_unique<Output>(fd_);
  }

  std::string path_;
  std::unique_ptr<Formatter> formatter_;
  std::unique_ptr<Output> out_;
  int fd_ = -1;
};

// Without --events: the ring carries nothing the user must see.
class NullSink final : public EventSink {
public:
  void on_state(const tt_state_event &) override {}
  void on_segment(const tt_seg_event &) override {}
};

} // namespace

int run_serve(const CommonOptions &opts, const ServeOptions &serve) {
  const std::string listen_text =
      serve.listen.empty() ? fmt::format("127.0.0.1:{}", kDefaultServePort)
                           : serve.listen;
  const auto addr = parse_listen(listen_text);
  if (!addr)
    throw Error(fmt::format("--listen '{}': need ADDR:PORT with a numeric "
                            "address, e.g. 127.0.0.1:{} or [::1]:{}",
                            listen_text, kDefaultServePort, kDefaultServePort),
                {}, 2);
  // Before loading anything: a clash is the commonest start-up failure.
  if (const std::string why = try_bind(*addr); !why.empty())
    throw Error(fmt::format("cannot listen on {}: {}", listen_text, why),
                "another process holds the port (ss -ltnp); choose another "
                "with --listen ADDR:PORT");

  // main() keeps every thread on one malloc arena: the HTTP server's
  // threads would otherwise each keep an arena of freed scrape buffers (RSS
  // grew in steps over a 10-minute soak).
  install_signal_handlers();
  {
    struct sigaction sa {};
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, nullptr);
  }

  OutputOptions out_opts;
  out_opts.format = Format::Json;
  out_opts.wall_offset_ns = wall_offset_ns();
  out_opts.start_ns = monotonic_ns();
  out_opts.rst_reasons = KernelProbes::instance().rst_reason_names();
  std::unique_ptr<EventsSink> events;
  if (!serve.events.empty())
    events = std::make_unique<EventsSink>(serve.events, out_opts);
  NullSink null_sink;
  EventSink &sink = events ? static_cast<EventSink &>(*events) : null_sink;

  TracerConfig cfg = make_tracer_config(opts);
  cfg.mode = Mode::Serve;
  cfg.serve = true;
  cfg.serve_records = events != nullptr;
  cfg.iterators = true;
  if (!events) {
    // Nothing but rare records (a deferred birth on old kernels) goes
    // through the ring: a small one keeps idle memory low.
    cfg.ringbuf_bytes = std::size_t{64} * 1024;
    cfg.wakeup_bytes = 0;
  }
  Tracer tracer = Tracer::create(cfg);
  SocketEnumerator enumerator =
      SocketEnumerator::create(tracer, KernelProbes::instance());
  auto collector = std::make_shared<ServeCollector>(
      tracer, enumerator, opts.filter, SeriesLimits{serve.max_series},
      serve.gauge_interval_ns);

  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", addr->civetweb(), "num_threads", "8",
        // A slow or abandoned client holds a worker this long at most.
        "request_timeout_ms", "5000"});
  } catch (const std::exception &e) {
    const std::string why = try_bind(*addr);
    throw Error(fmt::format("cannot listen on {}: {}", listen_text,
                            why.empty() ? e.what() : why),
                "choose another address or port with --listen ADDR:PORT");
  }
  exposer->RegisterCollectable(collector);
  // Capabilities are kept: every scrape enumerates the sockets of every
  // network namespace (setns, /proc/*/fd of other users' processes).
  std::fprintf(stderr,
               "tcptrail: ready\ntcptrail: serving metrics on "
               "http://%s/metrics\n",
               listen_text.c_str());
  std::fflush(stderr);
  if (opts.exit_after_attach)
    return 0;

  const std::uint64_t start = monotonic_ns();
  const std::uint64_t deadline =
      opts.duration_ns ? start + opts.duration_ns : 0;
  std::uint64_t lost_seen = 0;
  std::uint64_t next_loss_check = start + kLossCheckNs;
  while (!stop_requested()) {
    if (deadline && monotonic_ns() >= deadline)
      break;
    tracer.poll(sink, kPollIntervalMs);
    if (events) {
      events->flush();
      if (g_reopen.exchange(false, std::memory_order_relaxed))
        events->reopen();
      const std::uint64_t now = monotonic_ns();
      if (now >= next_loss_check) {
        const TracerStats st = tracer.stats();
        if (st.lost + st.missed > lost_seen)
          events->lost(st.lost + st.missed - lost_seen);
        lost_seen = st.lost + st.missed;
        next_loss_check = now + kLossCheckNs;
      }
    } else {
      g_reopen.store(false, std::memory_order_relaxed);
    }
  }
  // The HTTP server stops first (it reads the tracer), then the tracer.
  exposer.reset();
  tracer.finish(sink);
  if (events)
    events->flush();
  return 0;
}

} // namespace tcptrail

#else // !TCPTRAIL_HAVE_SERVE

#include "commands/commands.h"
#include "error.h"

namespace tcptrail {

int run_serve(const CommonOptions &, const ServeOptions &) {
  throw Error("this tcptrail was built without serve",
              "serve needs prometheus-cpp, which Debian ships as shared "
              "libraries only, so the portable binary leaves it out: use the "
              ".deb or a build from source (-DTCPTRAIL_SERVE=ON)");
}

} // namespace tcptrail

#endif // TCPTRAIL_HAVE_SERVE
