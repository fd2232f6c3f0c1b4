// tcptrail doctor: what this kernel lets tcptrail do. The kernel, its BTF,
// every feature tcptrail uses (probed, as Tracer::create() probes them) and
// each subcommand's status: ok, degraded (what is lost) or unavailable (why,
// and what would fix it). What a user runs first on a new host, and what a
// bug report needs.
#include <bpf/libbpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "bpf/probe.h"
#include "bpf/programs.h"
#include "commands/commands.h"
#include "error.h"
#include "format/escape.h"
#include "privileges.h"

namespace tcptrail {

namespace {

// The first line of a small text file, or "" when unreadable.
std::string first_line(const char *path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

struct HostFacts {
  std::string release, machine;
  std::string lockdown;           // "[none] integrity confidentiality"
  std::string unprivileged_bpf;   // kernel.unprivileged_bpf_disabled
  bool btf = false;
  bool privileged = false;
};

HostFacts host_facts() {
  HostFacts h;
  utsname u{};
  if (uname(&u) == 0) {
    h.release = u.release;
    h.machine = u.machine;
  }
  h.lockdown = first_line("/sys/kernel/security/lockdown");
  h.unprivileged_bpf = first_line("/proc/sys/kernel/unprivileged_bpf_disabled");
  h.btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
  h.privileged = missing_bpf_capabilities().empty();
  return h;
}

// What would make an unavailable feature available.
std::string_view remedy(Feature f) {
  switch (f) {
  case Feature::Btf:
    return "a kernel built with CONFIG_DEBUG_INFO_BTF=y";
  case Feature::BpfWithoutCaps:
    return "Linux 6.5+, or sysctl kernel.unprivileged_bpf_disabled=0";
  default:
    return "a kernel (or security policy) that allows this BPF program type";
  }
}

void text_report(Buffer &out, const HostFacts &h, KernelProbes &probes) {
  auto line = [&out](std::string_view k, std::string_view v) {
    fmt::format_to(std::back_inserter(out), "{:<18}", k);
    append_terminal_safe(out, v);
    out.push_back('\n');
  };
  line("kernel", fmt::format("{} ({})", h.release, h.machine));
  line("btf", h.btf ? "/sys/kernel/btf/vmlinux" : "missing");
  line("lockdown", h.lockdown.empty() ? "unknown" : h.lockdown);
  line("unprivileged_bpf", h.unprivileged_bpf.empty() ? "unknown"
                                                      : h.unprivileged_bpf);
  line("libbpf", fmt::format("{}.{}", libbpf_major_version(),
                             libbpf_minor_version()));
  out.append(std::string_view("\nfeatures\n"));
  for (std::size_t i = 0; i < kFeatureCount; ++i) {
    const auto f = static_cast<Feature>(i);
    const ProbeAnswer &a = probes.probe(f);
    fmt::format_to(std::back_inserter(out), "  {:<4} {:<30} {}", a.ok ? "ok" : "no",
                   feature_name(f), feature_purpose(f));
    if (!a.ok) {
      out.append(std::string_view(": "));
      append_terminal_safe(out, a.detail);
    }
    out.push_back('\n');
  }
  out.append(std::string_view("\nsubcommands\n"));
  for (Mode m : kModes) {
    const ModeReport rep = assess(m, probes);
    fmt::format_to(std::back_inserter(out), "  {:<9} {}\n", mode_name(m),
                   status_name(rep.status));
    for (const ModeReport::Line &l : rep.lines) {
      const ProgramSpec &p = *l.spec;
      switch (p.need) {
      case Need::Required:
        fmt::format_to(std::back_inserter(out),
                       "            needs {} ({}): {}; fix: {}\n",
                       feature_name(p.feature), p.program, l.why,
                       remedy(p.feature));
        break;
      case Need::Optional:
        fmt::format_to(std::back_inserter(out),
                       "            without {}: {}\n", feature_name(p.feature),
                       p.effect);
        break;
      case Need::Alternative:
        fmt::format_to(std::back_inserter(out),
                       "            uses, without {}: {}\n",
                       feature_name(p.feature), p.effect);
        break;
      }
    }
  }
}

std::string_view need_name(Need n) {
  switch (n) {
  case Need::Required:
    return "required";
  case Need::Optional:
    return "optional";
  case Need::Alternative:
    return "alternative";
  }
  return "?";
}

void json_report(Buffer &out, const HostFacts &h, KernelProbes &probes) {
  auto str = [&out](std::string_view s) { append_json_string(out, s); };
  out.append(std::string_view("{\"kernel\":{\"release\":"));
  str(h.release);
  out.append(std::string_view(",\"machine\":"));
  str(h.machine);
  out.append(std::string_view(",\"lockdown\":"));
  if (h.lockdown.empty())
    out.append(std::string_view("null"));
  else
    str(h.lockdown);
  out.append(std::string_view(",\"unprivileged_bpf_disabled\":"));
  if (h.unprivileged_bpf.empty())
    out.append(std::string_view("null"));
  else
    str(h.unprivileged_bpf);
  fmt::format_to(std::back_inserter(out),
                 "}},\"btf\":{},\"libbpf\":\"{}.{}\",\"features\":[",
                 h.btf ? "true" : "false", libbpf_major_version(),
                 libbpf_minor_version());
  for (std::size_t i = 0; i < kFeatureCount; ++i) {
    const auto f = static_cast<Feature>(i);
    const ProbeAnswer &a = probes.probe(f);
    out.append(std::string_view(i ? ",{\"name\":" : "{\"name\":"));
    str(feature_name(f));
    fmt::format_to(std::back_inserter(out), ",\"ok\":{},\"detail\":",
                   a.ok ? "true" : "false");
    if (a.ok)
      out.append(std::string_view("null"));
    else
      str(a.detail);
    out.append(std::string_view(",\"purpose\":"));
    str(feature_purpose(f));
    out.push_back('}');
  }
  out.append(std::string_view("],\"subcommands\":["));
  bool first_mode = true;
  for (Mode m : kModes) {
    const ModeReport rep = assess(m, probes);
    out.append(std::string_view(first_mode ? "{\"name\":" : ",{\"name\":"));
    first_mode = false;
    str(mode_name(m));
    out.append(std::string_view(",\"status\":"));
    str(status_name(rep.status));
    out.append(std::string_view(",\"notes\":["));
    for (std::size_t i = 0; i < rep.lines.size(); ++i) {
      const ProgramSpec &p = *rep.lines[i].spec;
      out.append(std::string_view(i ? ",{\"program\":" : "{\"program\":"));
      str(p.program);
      out.append(std::string_view(",\"feature\":"));
      str(feature_name(p.feature));
      out.append(std::string_view(",\"need\":"));
      str(need_name(p.need));
      out.append(std::string_view(",\"why\":"));
      str(rep.lines[i].why);
      out.append(std::string_view(",\"effect\":"));
      if (p.need == Need::Required)
        str(fmt::format("unavailable; fix: {}", remedy(p.feature)));
      else
        str(p.effect);
      out.push_back('}');
    }
    out.append(std::string_view("]}"));
  }
  out.append(std::string_view("]}\n"));
}

} // namespace

int run_doctor(bool json) {
  const HostFacts h = host_facts();
  if (!h.privileged)
    throw Error("doctor needs root (or CAP_BPF and CAP_PERFMON) to probe "
                "what the kernel allows",
                "run it as root: sudo tcptrail doctor");
  KernelProbes &probes = KernelProbes::instance();
  Buffer out;
  if (json)
    json_report(out, h, probes);
  else
    text_report(out, h, probes);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  bool usable = true;
  for (Mode m : kModes)
    usable = usable && assess(m, probes).status != ModeStatus::Unavailable;
  return usable ? 0 : 3;
}

} // namespace tcptrail
