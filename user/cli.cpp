#include "cli.h"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli_spec.h"
#include "commands/commands.h"
#include "tcp_state.h"
#include "units.h"
#include "version.h"

namespace tcptrail {

namespace {

// A whole number >= 1 (CLI11's PositiveNumber prints its range as doubles).
const CLI::Validator kAtLeastOne(
    [](std::string &value) -> std::string {
      std::uint64_t n = 0;
      const char *end = value.data() + value.size();
      auto [ptr, ec] = std::from_chars(value.data(), end, n);
      if (ec != std::errc() || ptr != end || n == 0)
        return "must be a whole number >= 1, got '" + value + "'";
      return {};
    },
    "N>=1");

// Adds the filters and output options every tracing subcommand shares. The
// raw strings are converted as they are parsed, so a bad value is a CLI
// error (exit 2) naming the option.
void add_common(CLI::App *app, CommonOptions &o) {
  auto *v4 = app->add_flag_callback(
      "-4,--ipv4", [&o] { o.filter.af = 4; }, "IPv4 sockets only");
  auto *v6 = app->add_flag_callback(
      "-6,--ipv6", [&o] { o.filter.af = 6; }, "IPv6 sockets only");
  v4->excludes(v6);
  app->add_option("-p,--pid", o.filter.pids,
                  "owner process id (repeatable, up to 8)")
      ->check(kAtLeastOne);
  app->add_option("-c,--comm", o.filter.comm,
                  "owner command name, exact (up to 15 bytes)");
  app->add_option("--lport", o.filter.lports, "local port (repeatable)")
      ->check(CLI::Range(1, 65535));
  app->add_option("--rport", o.filter.rports, "remote port (repeatable)")
      ->check(CLI::Range(1, 65535));
  auto add_cidr = [&](const char *name, std::vector<Cidr> &dst,
                      const char *desc) {
    app->add_option_function<std::vector<std::string>>(
           name,
           [&dst, name](const std::vector<std::string> &vals) {
             for (const std::string &v : vals) {
               auto c = parse_cidr(v);
               if (!c)
                 throw CLI::ValidationError(
                     name, fmt::format("'{}' is not an address or CIDR", v));
               dst.push_back(*c);
             }
           },
           desc)
        ->type_name("CIDR");
  };
  add_cidr("--laddr", o.filter.laddrs, "local address or CIDR (repeatable)");
  add_cidr("--raddr", o.filter.raddrs, "remote address or CIDR (repeatable)");
  app->add_option_function<std::vector<std::string>>(
         "--state",
         [&o](const std::vector<std::string> &vals) {
           for (const std::string &v : vals) {
             auto s = parse_state(v);
             if (!s)
               throw CLI::ValidationError(
                   "--state", fmt::format("unknown TCP state '{}'", v));
             o.filter.state_mask |= 1U << static_cast<unsigned>(*s);
           }
         },
         "transitions from or to this state (repeatable), e.g. CLOSE_WAIT")
      ->type_name("STATE");
  app->add_option("--netns", o.filter.netns,
                  "network namespace inode (ls -L -i /proc/PID/ns/net)")
      ->check(kAtLeastOne);
  // Container attribution (issue 18): the owner's cgroup v2, resolved in
  // run_cli() after parsing (resolve_cgroup_filter()).
  auto *cg = app->add_option("--cgroup", o.filter.cgroup_arg,
                             "owner's cgroup (v2) and its descendants: a path "
                             "as in /proc/PID/cgroup, or under the cgroup2 "
                             "mount")
                 ->type_name("PATH");
  auto *ct = app->add_option("--container", o.filter.container_arg,
                             "owner's container: its id or a unique prefix "
                             "(Docker, containerd, CRI-O, Podman)")
                 ->type_name("ID");
  cg->excludes(ct);

  app->add_option_function<std::string>(
         "-f,--format",
         [&o](const std::string &v) {
           if (v == "table")
             o.format = Format::Table;
           else if (v == "json")
             o.format = Format::Json;
           else if (v == "csv")
             o.format = Format::Csv;
           else
             throw CLI::ValidationError("--format",
                                        "must be table, json or csv");
         },
         "output format: table (default), json (JSON Lines), csv")
      ->type_name("FMT");
  app->add_flag("-T,--time", o.wall_time, "wall-clock time column (table)");
  app->add_flag("--raw-seq", o.raw_seq,
                "raw sequence numbers (like tcpdump -S), not relative");
  app->add_flag("--no-color", o.no_color, "no colour (also: NO_COLOR=1)");
  app->add_option_function<std::string>(
         "-d,--duration",
         [&o](const std::string &v) {
           auto ns = parse_duration_ns(v);
           if (!ns || *ns == 0)
             throw CLI::ValidationError(
                 "--duration", fmt::format("'{}' is not a duration", v));
           o.duration_ns = *ns;
         },
         "stop after this long: 10s, 500ms, 2m")
      ->type_name("TIME");
  app->add_option("-n,--count", o.count, "stop after this many events")
      ->check(kAtLeastOne);
  app->add_option_function<std::string>(
         "--ringbuf-size",
         [&o](const std::string &v) {
           auto n = parse_size(v);
           if (!n || *n < 4096 || (*n & (*n - 1)) || *n > (1ULL << 30))
             throw CLI::ValidationError(
                 "--ringbuf-size",
                 fmt::format("'{}': need a power of two from 4K to 1G", v));
           o.ringbuf_bytes = static_cast<std::size_t>(*n);
         },
         "ring buffer size, a power of two (default 4M)")
      ->type_name("SIZE");
  app->add_flag("--verbose", o.verbose, "libbpf's debug log to stderr");
  app->add_flag("--exit-after-attach", o.exit_after_attach,
                "load and attach everything, print the ready line, exit 0 "
                "(checks that tracing works here; start-up benchmark)");
}

} // namespace

int run_cli(int argc, char **argv) {
  CLI::App app{"tcptrail: what the kernel's TCP stack does, socket by socket",
               "tcptrail"};
  app.set_version_flag("-V,--version", version_text);
  app.require_subcommand(1);
  app.allow_extras(false);
  app.fallthrough(false);

  CommonOptions trace_opts;
  CLI::App *trace = app.add_subcommand(
      "trace", "stream every TCP state transition, RST and retransmission");
  add_common(trace, trace_opts);

  CommonOptions history_opts;
  HistoryOptions history;
  CLI::App *history_cmd = app.add_subcommand(
      "history", "one record per connection: path of states with times, "
                 "ISNs, bytes, retransmits, how it ended");
  add_common(history_cmd, history_opts);
  history_cmd->add_option_function<std::string>(
         "-i,--interval",
         [&history](const std::string &v) {
           auto ns = parse_duration_ns(v);
           if (!ns || *ns == 0)
             throw CLI::ValidationError(
                 "--interval", fmt::format("'{}' is not a duration", v));
           history.interval_ns = *ns;
         },
         "also print every open connection this often (like a netstat "
         "refresh)")
      ->type_name("TIME");
  history_cmd
      ->add_option("--max-conns", history.max_conns,
                   "connections tracked at once; beyond, the least recently "
                   "active is evicted and counted (default 1048576)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{16} << 20));
  history_cmd->add_flag("-v,--seq", history.show_seq,
                        "show snd_una/snd_nxt/rcv_nxt at every step "
                        "(relative; raw with --raw-seq)");

  CommonOptions snapshot_opts;
  CLI::App *snapshot = app.add_subcommand(
      "snapshot", "every TCP socket in every network namespace now, with "
                  "owner, queues and seq/ack state (like ss -tanp)");
  add_common(snapshot, snapshot_opts);
  snapshot->get_option("--state")->description(
      "sockets in this state (repeatable), e.g. LISTEN");

  CommonOptions leaks_opts;
  LeaksOptions leaks_cfg;
  CLI::App *leaks = app.add_subcommand(
      "leaks", "sockets stuck in CLOSE_WAIT (or other states) by process, "
               "pre-existing ones included");
  add_common(leaks, leaks_opts);
  leaks->get_option("--state")->description(
      "state to watch (repeatable): CLOSE_WAIT (default), FIN_WAIT2, "
      "LAST_ACK, SYN_RECV, ...");
  auto add_duration = [](CLI::App *sub, const char *name, std::uint64_t &dst,
                         bool allow_zero, const char *desc) {
    sub->add_option_function<std::string>(
           name,
           [&dst, name, allow_zero](const std::string &v) {
             auto ns = parse_duration_ns(v);
             if (!ns || (!allow_zero && *ns == 0))
               throw CLI::ValidationError(
                   name, fmt::format("'{}' is not a duration", v));
             dst = *ns;
           },
           desc)
        ->type_name("TIME");
  };
  add_duration(leaks, "--min-age", leaks_cfg.min_age_ns, true,
               "report sockets in the state at least this long (default 30s)");
  add_duration(leaks, "--interval", leaks_cfg.interval_ns, false,
               "time between reports (default 10s)");
  leaks->add_flag("--once", leaks_cfg.once,
                  "enumerate, report once and exit (no live tracing)");
  leaks->add_flag("--exit-code", leaks_cfg.exit_code,
                  "exit 3 when stuck sockets were reported, 0 when clean");

  CommonOptions diagnose_opts;
  CLI::App *diagnose = app.add_subcommand(
      "diagnose", "trace for a while (--duration, default 10s), then report "
                  "problems with evidence; exit 3 when problems were found");
  add_common(diagnose, diagnose_opts);

  CommonOptions ladder_opts;
  LadderOptions ladder_cfg;
  CLI::App *ladder_cmd = app.add_subcommand(
      "ladder", "draw each connection as a ladder diagram (both ends, "
                "segments, states), traced live or from a saved trace");
  add_common(ladder_cmd, ladder_opts);
  ladder_cmd->remove_option(ladder_cmd->get_option("--format"));
  ladder_cmd->remove_option(ladder_cmd->get_option("--time"));
  ladder_cmd
      ->add_option_function<std::string>(
          "-f,--format",
          [&ladder_cfg](const std::string &v) {
            if (v == "text")
              ladder_cfg.format = ladder::LadderFormat::Text;
            else if (v == "svg")
              ladder_cfg.format = ladder::LadderFormat::Svg;
            else if (v == "mermaid")
              ladder_cfg.format = ladder::LadderFormat::Mermaid;
            else if (v == "json")
              ladder_cfg.format = ladder::LadderFormat::Json;
            else
              throw CLI::ValidationError(
                  "--format", "must be text, svg, mermaid or json");
          },
          "output format: text (default), svg, mermaid (sequenceDiagram), "
          "json (one object per connection)")
      ->check(CLI::IsMember({"text", "svg", "mermaid", "json"}))
      ->type_name("FMT");
  auto *ladder_input =
      ladder_cmd
          ->add_option("--input", ladder_cfg.input,
                       "draw a saved `tcptrail trace -f json` stream (JSON "
                       "Lines; - for stdin) instead of tracing")
          ->type_name("FILE");
  ladder_input->excludes(ladder_cmd->get_option("--duration"));
  ladder_input->excludes(ladder_cmd->get_option("--ringbuf-size"));
  ladder_cmd->add_flag("--ascii", ladder_cfg.ascii,
                       "text: ASCII lines instead of Unicode box drawing");

  CommonOptions serve_opts;
  ServeOptions serve_cfg;
  CLI::App *serve = app.add_subcommand(
      "serve", "Prometheus metrics on /metrics (counted in the kernel), "
               "per-scrape socket gauges, optional JSON Lines events");
  add_common(serve, serve_opts);
  // Output shaping does not apply to metrics (events are JSON Lines).
  for (const char *name : {"--format", "--time", "--raw-seq", "--no-color",
                           "--count"})
    serve->remove_option(serve->get_option(name));
  serve
      ->add_option("--listen", serve_cfg.listen,
                   "address and port of the metrics endpoint (default "
                   "127.0.0.1:10184; [::1]:PORT for IPv6)")
      ->type_name("ADDR:PORT");
  serve
      ->add_option("--events", serve_cfg.events,
                   "also write every event as JSON Lines (the trace -f json "
                   "contract) to FILE, or - for stdout; SIGHUP reopens FILE")
      ->type_name("FILE");
  serve
      ->add_option("--max-series", serve_cfg.max_series,
                   "series per labelled per-scrape metric; the rest are "
                   "added up into comm=\"other\" (default 1000)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  add_duration(serve, "--gauge-interval", serve_cfg.gauge_interval_ns, true,
               "enumerate sockets for the per-scrape gauges at most this "
               "often (default 0: every scrape; counters are always fresh)");

  std::string doctor_format = "text";
  CLI::App *doctor = app.add_subcommand(
      "doctor", "what this kernel lets tcptrail do: kernel, BTF, each "
                "feature (probed) and each subcommand's status; exit 3 when "
                "a subcommand cannot run");
  doctor->add_option("-f,--format", doctor_format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->type_name("FORMAT");

  // Hidden: the command line as data, read from the definitions above
  // (shell completion, the man-page test; user/cli_spec.h).
  std::string cli_what;
  CLI::App *cli_spec = app.add_subcommand("_cli", "");
  cli_spec->group("");
  cli_spec->add_option("what", cli_what, "bash, zsh or json")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh", "json"}));
  // --version on every subcommand too.
  for (CLI::App *sub : app.get_subcommands({}))
    sub->set_version_flag("-V,--version", version_text);

  // CLI11 reports a mistyped subcommand as a missing one: name it.
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const CLI::App *sub : app.get_subcommands({})) {
      known = known || sub->check_name(argv[1]);
      if (!sub->get_group().empty())
        names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr,
                   "tcptrail: unknown subcommand '%s' (one of: %s)\n",
                   argv[1], names.c_str());
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (cli_spec->parsed()) {
    const CliSpec spec = describe_cli(app);
    const std::string text = cli_what == "bash"  ? bash_completion(spec)
                             : cli_what == "zsh" ? zsh_completion(spec)
                                                 : cli_spec_json(spec) + "\n";
    std::fputs(text.c_str(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 1;
  }
  // --cgroup / --container name a cgroup only the file system knows.
  auto resolved = [](CommonOptions &o) -> CommonOptions & {
    if (!o.filter.cgroup_arg.empty() || !o.filter.container_arg.empty())
      resolve_cgroup_filter(o.filter, cgroup_tree());
    return o;
  };
  if (trace->parsed())
    return run_trace(resolved(trace_opts));
  if (history_cmd->parsed())
    return run_history(resolved(history_opts), history);
  if (snapshot->parsed())
    return run_snapshot(resolved(snapshot_opts));
  if (leaks->parsed())
    return run_leaks(resolved(leaks_opts), leaks_cfg);
  if (diagnose->parsed())
    return run_diagnose(resolved(diagnose_opts));
  if (ladder_cmd->parsed())
    return run_ladder(resolved(ladder_opts), ladder_cfg);
  if (serve->parsed())
    return run_serve(resolved(serve_opts), serve_cfg);
  if (doctor->parsed())
    return run_doctor(doctor_format == "json");
  return 2;
}

} // namespace tcptrail
