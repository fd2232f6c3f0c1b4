#include "diagnose/report_format.h"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include "format/escape.h"

namespace tcptrail::diagnose {

namespace {

using Json = nlohmann::ordered_json;

struct Palette {
  const char *red = "", *yellow = "", *green = "", *bold = "", *dim = "",
             *reset = "";
  explicit Palette(bool on) {
    if (!on)
      return;
    red = "\033[31m";
    yellow = "\033[33m";
    green = "\033[32m";
    bold = "\033[1m";
    dim = "\033[2m";
    reset = "\033[0m";
  }
};

std::string safe(std::string_view s) {
  Buffer b;
  append_terminal_safe(b, s);
  return fmt::to_string(b);
}

std::string owner(std::uint32_t pid, std::string_view comm) {
  if (!pid && comm.empty())
    return "unknown owner";
  if (comm.empty())
    return fmt::format("pid {}", pid);
  return fmt::format("{} (pid {})", safe(comm), pid);
}

// "cgroup_id", "cgroup", "container", "pod" of an owner (null: unknown),
// as in the other subcommands' JSON.
void cgroup_fields(Json &j, CgroupNames *names, std::uint64_t id) {
  const CgroupInfo *info = id && names ? names->find(id) : nullptr;
  auto str = [](const std::string &v) {
    return v.empty() ? Json(nullptr) : Json(v);
  };
  j["cgroup_id"] = id ? Json(id) : Json(nullptr);
  j["cgroup"] = info ? str(info->path) : Json(nullptr);
  j["container"] = info ? str(info->container.id) : Json(nullptr);
  j["pod"] = info ? str(info->container.pod_uid) : Json(nullptr);
}

} // namespace

int exit_code(const Report &r) { return r.problems.empty() ? 0 : 3; }

std::string render_text(const Report &r, const TextOptions &opts) {
  const Palette c(opts.color);
  Buffer out;
  auto line = [&]<typename... T>(fmt::format_string<T...> f, T &&...args) {
    fmt::format_to(std::back_inserter(out), f, std::forward<T>(args)...);
    out.push_back('\n');
  };
  std::size_t critical = 0;
  for (const auto &p : r.problems)
    critical += p.severity == Severity::Critical;

  line("{}tcptrail diagnose{}: {} traced, {}", c.bold, c.reset,
       format_duration(r.duration_ns),
       r.netns ? fmt::format("network namespace {}", *r.netns)
               : std::string("all network namespaces"));
  if (r.problems.empty())
    line("{}no problems found{}", c.green, c.reset);
  else
    line("{}{}{} found{}", c.bold, c.red,
         r.problems.size() == 1
             ? std::string("1 problem")
             : fmt::format("{} problems", r.problems.size()),
         critical ? fmt::format(" ({} critical){}", critical, c.reset)
                  : std::string(c.reset));

  if (!r.problems.empty()) {
    line("");
    line("{}== Problems =={}", c.bold, c.reset);
    for (const auto &p : r.problems) {
      const char *sev = p.severity == Severity::Critical ? c.red : c.yellow;
      line("{}{}PROBLEM{} {}[{}]{} {}: {}", c.bold, c.red, c.reset, sev,
           severity_name(p.severity), c.reset, p.kind, p.summary);
      line("    {}meaning:{} {}", c.dim, c.reset, p.meaning);
      const Evidence &e = p.evidence;
      if (!e.remote_endpoints.empty()) {
        std::string s;
        for (const auto &ep : e.remote_endpoints)
          s += fmt::format("{}{} ({})", s.empty() ? "" : ", ", ep.endpoint, ep.count);
        line("    remote endpoints: {}", s);
      }
      if (!e.processes.empty()) {
        std::string s;
        for (const auto &pr : e.processes)
          s += fmt::format("{}{} ({})", s.empty() ? "" : ", ",
                           owner(pr.pid, pr.comm), pr.count);
        line("    processes: {}", s);
      }
      for (const auto &l : e.listeners) {
        std::string q;
        if (l.accept_queue)
          q = fmt::format(", accept queue {}/{} (peak {})", *l.accept_queue,
                          l.accept_queue_limit.value_or(0),
                          l.accept_queue_peak.value_or(*l.accept_queue));
        if (l.syn_recv)
          q += fmt::format(", {} half-open", *l.syn_recv);
        line("    listener {} {}: {} SYN-ACK retransmits{}", l.listener,
             owner(l.pid, l.comm), l.synack_retransmits, q);
      }
      for (const auto &cn : e.connections) {
        std::string extra;
        if (cn.preexisting)
          extra = ", before the run";
        else if (cn.age_ns)
          extra = fmt::format(", for {}", format_duration(*cn.age_ns));
        if (p.kind == "retransmits")
          line("    connection {} {}: {} retransmits", cn.tuple,
               owner(cn.pid, cn.comm), cn.count);
        else
          line("    socket {} {}{}", cn.tuple, owner(cn.pid, cn.comm), extra);
      }
      if (!e.examples.empty() && e.connections.empty()) {
        std::string s;
        for (const auto &x : e.examples)
          s += (s.empty() ? "" : ", ") + x;
        line("    examples: {}", s);
      }
      if (!e.counters.empty()) {
        std::string s;
        for (const auto &[k, v] : e.counters)
          s += fmt::format("{}{}={}", s.empty() ? "" : " ", k, v);
        line("    counters: {}", s);
      }
    }
  }

  line("");
  line("{}== Checks =={}", c.bold, c.reset);
  for (const auto &ch : r.checks) {
    if (ch.problem)
      line("{}PROBLEM{} {}", c.red, c.reset, ch.line);
    else
      line("{}ok{}      {}", c.green, c.reset, ch.line);
  }

  const Totals &t = r.totals;
  line("");
  line("{}== Totals =={}", c.bold, c.reset);
  line("  events: {} (state {}, retransmit {}, reset {}); lost: {}{}{}",
       t.events, t.state_events, t.retransmit_events, t.reset_events,
       r.lost ? c.red : "", r.lost, r.lost ? c.reset : "");
  line("  opened: {} active (of {} connect attempts, {} failed), {} passive",
       t.opened_active, t.connect_attempts, t.failed_connects,
       t.opened_passive);
  line("  closed: {} ({} into TIME_WAIT)", t.closed, t.time_wait);
  if (!t.transitions.empty()) {
    line("  transitions:");
    for (const auto &[k, v] : t.transitions)
      line("    {:<26} {:>8}", k, v);
  }
  if (!r.mib_delta.empty()) {
    std::string s;
    for (const auto &[k, v] : r.mib_delta)
      if (v != 0 && (k.rfind("Tcp.", 0) == 0 || k.rfind("TcpExt.", 0) == 0))
        s += fmt::format("\n    {:<34} {:>+10}", k, v);
    line("  TCP counters during the run (namespace {}):{}",
         r.counters_netns.value_or(0), s.empty() ? " no change" : s);
  }

  line("");
  line("{}== Latency =={} (percentiles within {:.2f}%; histogram: log2 "
       "buckets from min to max)",
       c.bold, c.reset, LogLinearHistogram::kRelativeError * 100);
  if (r.latency.empty()) {
    line("  no timed transitions");
  } else {
    line("  {:<16} {:>8} {:>8} {:>8} {:>8} {:>8}  histogram", "", "count",
         "p50", "p90", "p99", "max");
    for (const auto &d : r.latency) {
      const auto &h = d.hist;
      const auto b = log2_buckets(h);
      line("  {:<16} {:>8} {:>8} {:>8} {:>8} {:>8}  {} |{}| {}",
           d.name == "connect" ? "connect" : "in " + d.name, h.count(),
           format_duration(h.percentile(0.5)), format_duration(h.percentile(0.9)),
           format_duration(h.percentile(0.99)), format_duration(h.max()),
           format_duration(b.front().low), sparkline(h, opts.unicode),
           format_duration(b.back().high));
    }
  }

  if (!r.time_wait.empty()) {
    line("");
    line("{}== TIME_WAIT by remote endpoint =={} ({} ephemeral ports)", c.bold,
         c.reset, r.port_range_size);
    line("  {:<44} {:>8} {:>8} {:>8} {:>10}", "endpoint", "entered", "rate/s",
         "now", "projected");
    for (const auto &e : r.time_wait)
      line("  {:<44} {:>8} {:>8.1f} {:>8} {:>10}", e.endpoint, e.count,
           e.rate_per_s, e.now, e.projected);
  }

  if (!r.notes.empty() || r.storage_fail) {
    line("");
    line("{}== Notes =={}", c.bold, c.reset);
    for (const auto &n : r.notes)
      line("  {}", n);
    if (r.storage_fail)
      line("  {} sockets had no per-socket storage (no timing or owner)",
           r.storage_fail);
  }
  return fmt::to_string(out);
}

std::string render_json(const Report &r, CgroupNames *names) {
  Json doc;
  doc["schema"] = kSchema;
  doc["duration_ns"] = r.duration_ns;
  doc["netns"] = r.netns ? Json(*r.netns) : Json(nullptr);
  doc["exit_code"] = exit_code(r);
  doc["lost"] = r.lost;
  doc["storage_fail"] = r.storage_fail;
  const Totals &t = r.totals;
  Json totals;
  totals["events"] = t.events;
  totals["state_events"] = t.state_events;
  totals["retransmit_events"] = t.retransmit_events;
  totals["reset_events"] = t.reset_events;
  totals["connect_attempts"] = t.connect_attempts;
  totals["opened_active"] = t.opened_active;
  totals["opened_passive"] = t.opened_passive;
  totals["failed_connects"] = t.failed_connects;
  totals["closed"] = t.closed;
  totals["time_wait"] = t.time_wait;
  totals["transitions"] = Json::object();
  for (const auto &[k, v] : t.transitions)
    totals["transitions"][k] = v;
  doc["totals"] = std::move(totals);

  Json problems = Json::array();
  for (const auto &p : r.problems) {
    Json jp;
    jp["kind"] = p.kind;
    jp["severity"] = std::string(severity_name(p.severity));
    jp["count"] = p.count;
    jp["summary"] = p.summary;
    jp["meaning"] = p.meaning;
    Json ev;
    ev["remote_endpoints"] = Json::array();
    for (const auto &e : p.evidence.remote_endpoints)
      ev["remote_endpoints"].push_back({{"endpoint", e.endpoint}, {"count", e.count}});
    ev["processes"] = Json::array();
    for (const auto &e : p.evidence.processes)
      ev["processes"].push_back({{"pid", e.pid}, {"comm", e.comm}, {"count", e.count}});
    ev["examples"] = p.evidence.examples;
    ev["counters"] = Json::object();
    for (const auto &[k, v] : p.evidence.counters)
      ev["counters"][k] = v;
    ev["connections"] = Json::array();
    for (const auto &cn : p.evidence.connections) {
      Json j;
      j["tuple"] = cn.tuple;
      j["cookie"] = cn.cookie;
      j["pid"] = cn.pid;
      j["comm"] = cn.comm;
      j["count"] = cn.count;
      j["age_ns"] = cn.age_ns ? Json(*cn.age_ns) : Json(nullptr);
      j["preexisting"] = cn.preexisting;
      cgroup_fields(j, names, cn.cgroup_id);
      ev["connections"].push_back(std::move(j));
    }
    ev["listeners"] = Json::array();
    auto opt = [](const std::optional<std::uint32_t> &v) {
      return v ? Json(*v) : Json(nullptr);
    };
    for (const auto &l : p.evidence.listeners) {
      Json j;
      j["listener"] = l.listener;
      j["pid"] = l.pid;
      j["comm"] = l.comm;
      j["synack_retransmits"] = l.synack_retransmits;
      j["accept_queue"] = opt(l.accept_queue);
      j["accept_queue_limit"] = opt(l.accept_queue_limit);
      j["accept_queue_peak"] = opt(l.accept_queue_peak);
      j["syn_recv"] = opt(l.syn_recv);
      cgroup_fields(j, names, l.cgroup_id);
      ev["listeners"].push_back(std::move(j));
    }
    jp["evidence"] = std::move(ev);
    problems.push_back(std::move(jp));
  }
  doc["problems"] = std::move(problems);

  Json checks = Json::array();
  for (const auto &ch : r.checks)
    checks.push_back({{"kind", ch.kind},
                      {"status", ch.problem ? "problem" : "ok"},
                      {"summary", ch.line}});
  doc["checks"] = std::move(checks);

  Json lat;
  lat["relative_error"] = LogLinearHistogram::kRelativeError;
  lat["connect"] = nullptr;
  lat["states"] = Json::object();
  for (const auto &d : r.latency) {
    const auto &h = d.hist;
    Json j;
    j["count"] = h.count();
    j["min_ns"] = h.min();
    j["p50_ns"] = h.percentile(0.5);
    j["p90_ns"] = h.percentile(0.9);
    j["p99_ns"] = h.percentile(0.99);
    j["max_ns"] = h.max();
    j["mean_ns"] = h.mean();
    j["log2_buckets"] = Json::array();
    for (const auto &b : log2_buckets(h))
      j["log2_buckets"].push_back(
          {{"low_ns", b.low}, {"high_ns", b.high}, {"count", b.count}});
    if (d.name == "connect")
      lat["connect"] = std::move(j);
    else
      lat["states"][d.name] = std::move(j);
  }
  doc["latency"] = std::move(lat);

  Json tw;
  tw["port_range_size"] = r.port_range_size;
  tw["endpoints"] = Json::array();
  for (const auto &e : r.time_wait)
    tw["endpoints"].push_back({{"endpoint", e.endpoint},
                               {"count", e.count},
                               {"rate_per_s", e.rate_per_s},
                               {"now", e.now},
                               {"projected", e.projected}});
  doc["time_wait"] = std::move(tw);

  Json counters;
  counters["netns"] =
      r.counters_netns ? Json(*r.counters_netns) : Json(nullptr);
  counters["delta"] = Json::object();
  for (const auto &[k, v] : r.mib_delta)
    if (v != 0)
      counters["delta"][k] = v;
  doc["counters"] = std::move(counters);

  doc["dropped"] = {{"connections", r.dropped.connections},
                    {"endpoints", r.dropped.endpoints},
                    {"processes", r.dropped.processes},
                    {"listeners", r.dropped.listeners}};
  doc["notes"] = r.notes;
  return doc.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

} // namespace tcptrail::diagnose
