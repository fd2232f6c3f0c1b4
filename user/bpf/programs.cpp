#include "bpf/programs.h"

namespace tcptrail {

namespace {

constexpr std::uint8_t kTrace = mode_bit(Mode::Trace);
constexpr std::uint8_t kHistory = mode_bit(Mode::History);
constexpr std::uint8_t kSnapshot = mode_bit(Mode::Snapshot);
constexpr std::uint8_t kLeaks = mode_bit(Mode::Leaks);
constexpr std::uint8_t kDiagnose = mode_bit(Mode::Diagnose);
constexpr std::uint8_t kServe = mode_bit(Mode::Serve);
constexpr std::uint8_t kTracing =
    kTrace | kHistory | kLeaks | kDiagnose | kServe;

constexpr ProgramSpec kPrograms[] = {
    {"handle_inet_sock_set_state", kTracing, Need::Required,
     Feature::TpInetSockSetState, {}},
    {"handle_tcp_retransmit_skb", kTrace | kHistory | kDiagnose | kServe,
     Need::Optional,
     Feature::TpRetransmitSkb,
     "no retransmit events or counts; a connect() that times out shows no "
     "local port"},
    {"handle_tcp_retransmit_synack", kTrace | kDiagnose | kServe,
     Need::Optional,
     Feature::TpRetransmitSynack,
     "no SYN-ACK retransmits (half-open connections, SYN backlog trouble)"},
    {"handle_tcp_send_reset", kTrace | kHistory | kDiagnose | kServe,
     Need::Optional,
     Feature::TpSendReset, "no RSTs sent (refused connections show no RST)"},
    {"handle_tcp_receive_reset", kTrace | kHistory | kDiagnose | kServe,
     Need::Optional,
     Feature::TpReceiveReset,
     "no RSTs received (resets are told from the socket error only)"},
    {"flush_stage", kTrace | kHistory | kDiagnose, Need::Alternative,
     Feature::BpfWithoutCaps,
     "one ring record per transition instead of batches (costs more per "
     "transition)"},
    {"seed_owner_files", kTracing, Need::Optional, Feature::IterTaskFile,
     "sockets that existed before start show no owner"},
    {"seed_owner_socks", kTracing, Need::Optional, Feature::IterTcp,
     "listeners that existed before start pass no owner to the connections "
     "they accept"},
    {"dump_open_conns", kHistory, Need::Alternative, Feature::IterSkStorageMap,
     "every path assembled in user space from per-transition records (the "
     "same output; more ring traffic)"},
    {"dump_unstored_counters", kHistory, Need::Optional, Feature::IterTaskFile,
     "open connections show the byte counts of their last transition"},
    {"dump_tcp", kSnapshot | kLeaks | kServe | kDiagnose, Need::Alternative,
     Feature::IterTcp,
     "sockets from sock_diag (snapshot/enumerate.h): no seq/ack numbers, "
     "ages or owners known to the tracer (diagnose loses nothing)"},
    {"dump_task_file", kSnapshot | kLeaks | kServe, Need::Alternative,
     Feature::IterTaskFile, "owners from a walk of /proc/*/fd"},
};

} // namespace

std::string_view mode_name(Mode m) {
  switch (m) {
  case Mode::Trace:
    return "trace";
  case Mode::History:
    return "history";
  case Mode::Snapshot:
    return "snapshot";
  case Mode::Leaks:
    return "leaks";
  case Mode::Diagnose:
    return "diagnose";
  case Mode::Serve:
    return "serve";
  }
  return "?";
}

std::string_view status_name(ModeStatus s) {
  switch (s) {
  case ModeStatus::Ok:
    return "ok";
  case ModeStatus::Degraded:
    return "degraded";
  case ModeStatus::Unavailable:
    return "unavailable";
  }
  return "?";
}

std::span<const ProgramSpec> program_table() { return kPrograms; }

const ProgramSpec *find_program(std::string_view program) {
  for (const ProgramSpec &p : kPrograms)
    if (p.program == program)
      return &p;
  return nullptr;
}

ModeReport assess(Mode mode, KernelProbes &probes) {
  ModeReport rep;
  rep.mode = mode;
  for (const ProgramSpec &p : kPrograms) {
    if (!(p.modes & mode_bit(mode)))
      continue;
    const ProbeAnswer &a = probes.probe(p.feature);
    if (a.ok)
      continue;
    // Two programs may need one feature: report it once.
    bool dup = false;
    for (const ModeReport::Line &l : rep.lines)
      dup = dup || (l.spec->feature == p.feature && l.spec->effect == p.effect);
    if (dup)
      continue;
    rep.lines.push_back({&p, a.detail});
    if (p.need == Need::Required)
      rep.status = ModeStatus::Unavailable;
    else if (p.need == Need::Optional && rep.status == ModeStatus::Ok)
      rep.status = ModeStatus::Degraded;
  }
  return rep;
}

} // namespace tcptrail
