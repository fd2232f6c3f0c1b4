// What this kernel lets tcptrail do, probed (never guessed from the
// version): each feature is checked once per process, on first use, with
// the cheapest test that decides it (a type in the kernel's BTF, or loading
// a two-instruction program). Tracer::create() picks each mode's strategy
// from these answers before it loads anything; `tcptrail doctor` prints them.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tcptrail {

enum class Feature : std::uint8_t {
  Btf,                // /sys/kernel/btf/vmlinux readable
  TpInetSockSetState, // tp_btf/inet_sock_set_state loads
  TpRetransmitSkb,    // the tracepoints below exist in the kernel's BTF
  TpRetransmitSynack,
  TpSendReset,
  TpReceiveReset,
  IterTcp,            // iter/tcp loads
  IterTaskFile,       // iter/task_file loads
  IterSkStorageMap,   // iter/bpf_sk_storage_map loads (refused by some
                      // hardened builds: a map-element iterator)
  BpfWithoutCaps,     // bpf() on fds already held works with no capability
  RstReasonEnum,      // enum sk_rst_reason in BTF (tcp_send_reset's reason)
  Count,
};

inline constexpr std::size_t kFeatureCount =
    static_cast<std::size_t>(Feature::Count);

// A feature's stable name (doctor's JSON, TCPTRAIL_FORCE_FALLBACK).
std::string_view feature_name(Feature f);
// One line: what tcptrail uses the feature for.
std::string_view feature_purpose(Feature f);

struct ProbeAnswer {
  bool ok = false;
  std::string detail; // why not (errno text, "not in BTF", "forced off")
};

class KernelProbes {
public:
  // `forced_off`: a comma-separated list of feature names to report absent
  // whatever the kernel says (tests force each fallback this way).
  explicit KernelProbes(std::string_view forced_off = {});

  // Probes on first call, then answers from the cache.
  const ProbeAnswer &probe(Feature f);
  bool has(Feature f) { return probe(f).ok; }
  // The kernel's BTF id of a type the probes looked for, or -1.
  std::int32_t btf_id(Feature f);
  // enum sk_rst_reason's names by value, lower case without the
  // SK_RST_REASON_ prefix ("no_socket"); empty without the enum.
  std::vector<std::string> rst_reason_names();

  // Answers `f` with `a` from now on, without probing (unit tests: fake
  // kernels).
  void set(Feature f, ProbeAnswer a) {
    answers_[static_cast<std::size_t>(f)] = std::move(a);
  }

  // The process-wide instance, forced off by TCPTRAIL_FORCE_FALLBACK.
  static KernelProbes &instance();

private:
  void scan_btf();
  ProbeAnswer run(Feature f);

  std::array<std::optional<ProbeAnswer>, kFeatureCount> answers_;
  std::array<std::int32_t, kFeatureCount> btf_ids_{};
  std::array<bool, kFeatureCount> forced_{};
  bool scanned_ = false;
  std::vector<std::pair<std::int64_t, std::string>> rst_reasons_;
  std::string btf_error_;
};

// Parses a TCPTRAIL_FORCE_FALLBACK list; unknown names are ignored (and
// reported through `unknown`, comma-separated).
std::array<bool, kFeatureCount> parse_forced(std::string_view list,
                                             std::string *unknown = nullptr);

} // namespace tcptrail
