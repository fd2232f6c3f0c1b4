#include "bpf/probe.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bpf/btf_names.h"
#include "privileges.h"

namespace tcptrail {

namespace {

constexpr const char *kVmlinuxBtf = "/sys/kernel/btf/vmlinux";

struct FeatureSpec {
  Feature feature;
  std::string_view name;
  std::string_view purpose;
  // The BTF type that the probe needs (empty: none).
  BtfKind kind;
  const char *btf_name;
};

constexpr FeatureSpec kFeatures[] = {
    {Feature::Btf, "btf", "CO-RE relocations and typed tracepoint arguments",
     BtfKind::Typedef, nullptr},
    {Feature::TpInetSockSetState, "tp_btf:inet_sock_set_state",
     "every TCP state transition", BtfKind::Typedef,
     "btf_trace_inet_sock_set_state"},
    {Feature::TpRetransmitSkb, "tp_btf:tcp_retransmit_skb",
     "retransmitted segments (and the port of a SYN that times out)",
     BtfKind::Typedef, "btf_trace_tcp_retransmit_skb"},
    {Feature::TpRetransmitSynack, "tp_btf:tcp_retransmit_synack",
     "retransmitted SYN-ACKs of half-open connections", BtfKind::Typedef,
     "btf_trace_tcp_retransmit_synack"},
    {Feature::TpSendReset, "tp_btf:tcp_send_reset", "RSTs sent",
     BtfKind::Typedef, "btf_trace_tcp_send_reset"},
    {Feature::TpReceiveReset, "tp_btf:tcp_receive_reset", "RSTs received",
     BtfKind::Typedef, "btf_trace_tcp_receive_reset"},
    {Feature::IterTcp, "iter:tcp",
     "enumerating the sockets of a network namespace (snapshot, leaks, "
     "serve, diagnose, owner seeding)",
     BtfKind::Func, "bpf_iter_tcp"},
    {Feature::IterTaskFile, "iter:task_file",
     "the processes holding each socket (owners at start, snapshot, serve)",
     BtfKind::Func, "bpf_iter_task_file"},
    {Feature::IterSkStorageMap, "iter:bpf_sk_storage_map",
     "history: paths kept in the kernel, read back for open connections",
     BtfKind::Func, "bpf_iter_bpf_sk_storage_map"},
    {Feature::BpfWithoutCaps, "bpf_without_caps",
     "running the flush program after capabilities are dropped (batching)",
     BtfKind::Typedef, nullptr},
    {Feature::RstReasonEnum, "enum:sk_rst_reason",
     "names of RST reasons", BtfKind::Enum, "sk_rst_reason"},
};
static_assert(std::size(kFeatures) == kFeatureCount);

const FeatureSpec &spec(Feature f) {
  return kFeatures[static_cast<std::size_t>(f)];
}

std::string errno_text(int err) {
  return std::strerror(err < 0 ? -err : err);
}

// Loads "r0 = 0; exit" as a tracing program attached to `btf_id`. The
// verifier has nothing to check, so only what the kernel allows decides.
ProbeAnswer load_tracing(bpf_attach_type type, std::int32_t btf_id) {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts);
  opts.expected_attach_type = type;
  opts.attach_btf_id = static_cast<__u32>(btf_id);
  const int fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, "tt_probe", "GPL",
                               insns, 2, &opts);
  if (fd < 0)
    return {false, fmt::format("refused by the kernel: {}", errno_text(fd))};
  close(fd);
  return {true, {}};
}

// Whether the bpf() commands tcptrail issues on fds it holds still work
// once it has dropped its capabilities. Before Linux 6.5, with
// kernel.unprivileged_bpf_disabled set (Debian's default), the kernel
// refused every bpf() command to a task without CAP_BPF or CAP_SYS_ADMIN.
// Probed in a thread that empties its own effective set: getting the info
// of fd -1 fails with EBADF where an fd is enough, EPERM where it is not.
ProbeAnswer bpf_without_capabilities() {
  ProbeAnswer out{true, {}};
  std::thread probe([&out] {
    if (!drop_thread_effective_capabilities())
      return; // cannot tell: assume the newer kernels
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(-1, &info, &len) == -EPERM)
      out = {false, "bpf() needs CAP_BPF here (Linux < 6.5 with "
                    "kernel.unprivileged_bpf_disabled set)"};
  });
  probe.join();
  return out;
}

} // namespace

std::string_view feature_name(Feature f) { return spec(f).name; }
std::string_view feature_purpose(Feature f) { return spec(f).purpose; }

std::array<bool, kFeatureCount> parse_forced(std::string_view list,
                                             std::string *unknown) {
  std::array<bool, kFeatureCount> out{};
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view()
                                           : list.substr(comma + 1);
    if (item.empty())
      continue;
    bool found = false;
    for (const FeatureSpec &s : kFeatures) {
      if (s.name == item) {
        out[static_cast<std::size_t>(s.feature)] = true;
        found = true;
      }
    }
    if (!found && unknown) {
      if (!unknown->empty())
        *unknown += ',';
      *unknown += item;
    }
  }
  return out;
}

KernelProbes::KernelProbes(std::string_view forced_off)
    : forced_(parse_forced(forced_off)) {
  btf_ids_.fill(-1);
}

KernelProbes &KernelProbes::instance() {
  static KernelProbes probes([] {
    const char *env = std::getenv("TCPTRAIL_FORCE_FALLBACK");
    return std::string_view(env ? env : "");
  }());
  return probes;
}

void KernelProbes::scan_btf() {
  if (scanned_)
    return;
  scanned_ = true;
  std::optional<BtfFile> file = BtfFile::open(kVmlinuxBtf);
  if (!file) {
    btf_error_ = fmt::format("cannot read {}: {}", kVmlinuxBtf,
                             errno_text(errno));
    return;
  }
  std::vector<BtfQuery> queries;
  std::vector<Feature> of;
  for (const FeatureSpec &s : kFeatures) {
    if (s.btf_name) {
      queries.push_back({s.kind, s.btf_name, -1, {}});
      of.push_back(s.feature);
    }
  }
  std::string error;
  if (!btf_find(file->bytes(), queries, error)) {
    btf_error_ = fmt::format("{}: {}", kVmlinuxBtf, error);
    return;
  }
  for (std::size_t i = 0; i < queries.size(); ++i) {
    btf_ids_[static_cast<std::size_t>(of[i])] = queries[i].id;
    if (of[i] == Feature::RstReasonEnum)
      rst_reasons_ = std::move(queries[i].enumerators);
  }
}

std::vector<std::string> KernelProbes::rst_reason_names() {
  scan_btf();
  std::vector<std::string> names;
  if (forced_[static_cast<std::size_t>(Feature::RstReasonEnum)])
    return names;
  constexpr std::string_view kPrefix = "SK_RST_REASON_";
  for (const auto &[value, name] : rst_reasons_) {
    // Reasons are small: a value past this is no reason (e.g. a _MAX).
    if (value < 0 || value >= 1024)
      continue;
    std::string_view n = name;
    if (n.starts_with(kPrefix))
      n.remove_prefix(kPrefix.size());
    std::string lower(n);
    for (char &c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (names.size() <= static_cast<std::size_t>(value))
      names.resize(static_cast<std::size_t>(value) + 1);
    names[static_cast<std::size_t>(value)] = std::move(lower);
  }
  return names;
}

std::int32_t KernelProbes::btf_id(Feature f) {
  scan_btf();
  return btf_ids_[static_cast<std::size_t>(f)];
}

ProbeAnswer KernelProbes::run(Feature f) {
  if (f == Feature::BpfWithoutCaps)
    return bpf_without_capabilities();
  scan_btf();
  if (!btf_error_.empty())
    return {false, btf_error_};
  if (f == Feature::Btf)
    return {true, {}};
  const std::int32_t id = btf_id(f);
  if (id < 0)
    return {false, fmt::format("{} not in the kernel's BTF", spec(f).btf_name)};
  switch (f) {
  case Feature::TpInetSockSetState:
    return load_tracing(BPF_TRACE_RAW_TP, id);
  case Feature::IterTcp:
  case Feature::IterTaskFile:
  case Feature::IterSkStorageMap:
    return load_tracing(BPF_TRACE_ITER, id);
  default:
    return {true, {}}; // present in BTF is all it takes
  }
}

const ProbeAnswer &KernelProbes::probe(Feature f) {
  auto &slot = answers_[static_cast<std::size_t>(f)];
  if (!slot) {
    if (forced_[static_cast<std::size_t>(f)])
      slot = ProbeAnswer{false, "forced off (TCPTRAIL_FORCE_FALLBACK)"};
    else
      slot = run(f);
  }
  return *slot;
}

} // namespace tcptrail
