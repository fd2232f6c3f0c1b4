// tcptrail diagnose: trace for a while, then print verdicts with evidence.
#include <unistd.h>

#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include <fmt/format.h>

#include "bpf/probe.h"
#include "commands/commands.h"
#include "commands/session.h"
#include "diagnose/aggregator.h"
#include "diagnose/report_format.h"
#include "snapshot/enumerate.h"
#include "output.h"
#include "privileges.h"
#include "runtime.h"

namespace tcptrail {

namespace {

constexpr std::uint64_t kDefaultDurationNs = 10'000'000'000ULL;
constexpr std::uint64_t kProgressEveryNs = 250'000'000ULL;

class DiagnoseSink final : public EventSink {
public:
  explicit DiagnoseSink(diagnose::DiagnoseAggregator &agg) : agg_(agg) {}
  void on_state(const tt_state_event &ev) override { agg_.on_state(ev); }
  void on_segment(const tt_seg_event &ev) override { agg_.on_segment(ev); }

private:
  diagnose::DiagnoseAggregator &agg_;
};

// Block characters only where the locale's charset is UTF-8.
bool utf8_locale() {
  for (const char *var : {"LC_ALL", "LC_CTYPE", "LANG"}) {
    const char *v = std::getenv(var);
    if (v && *v) {
      std::string s(v);
      for (auto &ch : s)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return s.find("utf-8") != std::string::npos ||
             s.find("utf8") != std::string::npos;
    }
  }
  return false;
}

} // namespace

int run_diagnose(const CommonOptions &in) {
  if (in.format == Format::Csv) {
    std::fputs("tcptrail: error: diagnose supports --format table or json\n",
               stderr);
    return 2;
  }
  CommonOptions opts = in;
  if (!opts.duration_ns)
    opts.duration_ns = kDefaultDurationNs;

  std::optional<std::uint64_t> netns;
  if (opts.filter.netns)
    netns = opts.filter.netns;

  diagnose::DiagnoseAggregator agg;
  agg.set_netns_filter(netns);
  agg.set_owner_lookup(diagnose::socket_owners);
  // The namespace is read now (with our privileges) and at the end, from a
  // helper thread that drops its own capabilities once it has entered the
  // namespace: run_session() drops the main thread's after attaching. Its
  // sockets come from the socket enumerator, as snapshot's do: sock_diag,
  // read while the programs load, or the iterators (below). Neither needs
  // a capability at the end. The address, port and family filters narrow
  // them as they narrow the events; the owner filters do not (the sockets
  // have no fds here), and every listener stays.
  KernelProbes &probes = KernelProbes::instance();
  std::optional<SocketEnumerator> enumerator;
  auto sockets_of = [&opts](const SocketEnumerator &e) {
    return [&e, &opts](std::vector<diagnose::DiagSock> &out, std::string &err) {
      return e.sockets_here(diagnose::kSnapshotStates, opts.filter, out, err);
    };
  };
  if (SocketEnumerator::planned(probes) == EnumStrategy::SockDiag)
    enumerator.emplace(SocketEnumerator::sock_diag());
  diagnose::SnapshotPair snaps(
      netns, [] { drop_all_capabilities(); },
      enumerator ? diagnose::SocketSource(sockets_of(*enumerator)) : nullptr);

  const bool progress = isatty(STDERR_FILENO) == 1;
  const std::uint64_t start = monotonic_ns();
  std::uint64_t next_progress = 0;
  bool progress_shown = false;
  auto clear_progress = [&] {
    if (progress_shown) {
      std::fputs("\r\033[K", stderr);
      std::fflush(stderr);
      progress_shown = false;
    }
  };

  DiagnoseSink sink(agg);
  SessionHooks hooks;
  // The owners of the start snapshot's listeners and CLOSE_WAIT sockets
  // come from the tracer's start-up fd walk. Where it ran, the iterators
  // read the start snapshot's sockets beside the first events (a walk of
  // the whole socket table, ~5 ms with 30,000 sockets in other namespaces),
  // not before tracing is ready, and the owners are looked up in a copy of
  // the walk's records once they are in; where it did not, the sockets are
  // read now and /proc while still privileged. --exit-after-attach makes no
  // report, so it reads none.
  // The states whose sockets' owners the report names (the start-up fd walk
  // records their fds).
  constexpr std::uint32_t kOwnedStates =
      state_bit(TcpState::Listen) | state_bit(TcpState::CloseWait);
  auto finish_start = [&](const auto &owners_of) {
    diagnose::NetSnapshot &snap = snaps.start();
    std::set<std::uint64_t> inodes;
    for (const auto &s : snap.sockets)
      if (s.inode && s.state <= kMaxTcpState &&
          (kOwnedStates & state_bit(static_cast<TcpState>(s.state))))
        inodes.insert(s.inode);
    snap.owners = owners_of(std::move(inodes));
    agg.set_start(snap);
  };
  std::optional<std::vector<tt_iter_file>> walked; // while the start is read
  hooks.after_attach = [&](Tracer &tracer) {
    if (!enumerator) {
      enumerator.emplace(SocketEnumerator::create(tracer, probes));
      if (opts.exit_after_attach)
        return;
      if (const auto &w = tracer.walked_sockets()) {
        walked = w->files;
        snaps.read_start_sockets(sockets_of(*enumerator), false);
        return;
      }
      snaps.read_start_sockets(sockets_of(*enumerator), true);
    }
    finish_start([&](std::set<std::uint64_t> inodes) {
      return socket_owners_of(tracer, std::move(inodes));
    });
  };
  hooks.on_lost = [&](std::uint64_t n) { agg.on_lost(n); };
  hooks.on_tick = [&](std::uint64_t now) {
    if (progress && now >= next_progress) {
      next_progress = now + kProgressEveryNs;
      const std::size_t problems = agg.problems_so_far();
      std::fprintf(stderr,
                   "\r\033[Ktcptrail diagnose: %s / %s, %llu events, %zu "
                   "problem%s so far",
                   diagnose::format_duration(now - start).c_str(),
                   diagnose::format_duration(opts.duration_ns).c_str(),
                   static_cast<unsigned long long>(agg.events()), problems,
                   problems == 1 ? "" : "s");
      std::fflush(stderr);
      progress_shown = true;
    }
    return !(opts.count && agg.events() >= opts.count);
  };

  TracerStats stats;
  try {
    TracerConfig cfg = make_tracer_config(opts);
    cfg.mode = Mode::Diagnose;
    cfg.lazy_storage = true; // per-transition, as trace: see TracerConfig
    cfg.batch = true;
    cfg.walk_record_states = kOwnedStates; // the start snapshot's owners
    cfg.iterators = true; // its sockets (dump_tcp)
    stats = run_session(opts, cfg, sink, hooks);
  } catch (...) {
    clear_progress();
    throw;
  }
  const std::uint64_t end = monotonic_ns();
  clear_progress();
  if (opts.exit_after_attach)
    return 0;
  if (walked)
    finish_start([&](const std::set<std::uint64_t> &inodes) {
      return socket_owners_in(*walked, inodes);
    });

  agg.set_storage_fail(stats.storage_fail);
  agg.set_end(snaps.end());
  const diagnose::Report report = agg.report(start, end);

  Output out(STDOUT_FILENO);
  if (opts.format == Format::Json) {
    out.buf().append(diagnose::render_json(report, cgroup_tree().get()));
  } else {
    diagnose::TextOptions topts;
    topts.color = want_color(opts, STDOUT_FILENO);
    topts.unicode = utf8_locale();
    out.buf().append(diagnose::render_text(report, topts));
  }
  out.flush();
  if (stats.invalid)
    std::fprintf(stderr, "tcptrail: warning: %llu malformed records dropped\n",
                 static_cast<unsigned long long>(stats.invalid));
  return diagnose::exit_code(report);
}

} // namespace tcptrail
