// Kernel differences without a kernel: the BTF name scan on hand-made BTF,
// and the probe -> strategy choice (which programs load, what is lost) on
// fake probe answers, for every mode.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bpf/btf_names.h"
#include "bpf/probe.h"
#include "bpf/programs.h"
#include "bpf/tracer.h"
#include "net.h"
#include "error.h"

namespace tcptrail {
namespace {

// Builds raw BTF: types appended with their trailers, names interned.
class BtfBuilder {
public:
  BtfBuilder() { strings_.push_back('\0'); }
  std::uint32_t name(const std::string &s) {
    const auto off = static_cast<std::uint32_t>(strings_.size());
    strings_.insert(strings_.end(), s.begin(), s.end());
    strings_.push_back('\0');
    return off;
  }
  // kind, vlen and the u32 words after the 12-byte header.
  void type(std::uint32_t kind, const std::string &n, std::uint32_t vlen,
            std::uint32_t size_or_type, std::vector<std::uint32_t> trailer) {
    put(n.empty() ? 0 : name(n));
    put((kind << 24) | vlen);
    put(size_or_type);
    for (std::uint32_t w : trailer)
      put(w);
  }
  std::vector<std::uint8_t> bytes(std::uint16_t magic = 0xeB9F) const {
    std::vector<std::uint8_t> out(24);
    const auto u16 = [&out](std::size_t at, std::uint16_t v) {
      std::memcpy(out.data() + at, &v, 2);
    };
    const auto u32 = [&out](std::size_t at, std::uint32_t v) {
      std::memcpy(out.data() + at, &v, 4);
    };
    u16(0, magic);
    out[2] = 1;
    u32(4, 24);
    u32(8, 0);
    u32(12, static_cast<std::uint32_t>(types_.size()));
    u32(16, static_cast<std::uint32_t>(types_.size()));
    u32(20, static_cast<std::uint32_t>(strings_.size()));
    out.insert(out.end(), types_.begin(), types_.end());
    out.insert(out.end(), strings_.begin(), strings_.end());
    return out;
  }

private:
  void put(std::uint32_t w) {
    const auto *p = reinterpret_cast<const std::uint8_t *>(&w);
    types_.insert(types_.end(), p, p + 4);
  }
  std::vector<std::uint8_t> types_;
  std::vector<char> strings_;
};

// A little of every shape the kernel's BTF has before, between and after
// what the probes look for.
BtfBuilder sample() {
  BtfBuilder b;
  b.type(1, "int", 0, 4, {0x01000020});                          // 1 INT
  b.type(4, "sock", 2, 16, {b.name("a"), 1, 0, b.name("b"), 1, 32}); // 2
  b.type(8, "btf_trace_inet_sock_set_state", 0, 2, {});           // 3
  b.type(13, "", 1, 1, {0, 1});                                   // 4 PROTO
  b.type(12, "bpf_iter_tcp", 0, 4, {});                          // 5 FUNC
  b.type(6, "sk_rst_reason", 2, 4,
         {b.name("SK_RST_REASON_NOT_SPECIFIED"), 0,
          b.name("SK_RST_REASON_NO_SOCKET"), 1});                 // 6 ENUM
  b.type(3, "", 0, 0, {1, 1, 8});                                 // 7 ARRAY
  b.type(19, "big", 1, 8, {b.name("BIG"), 1, 2});                 // 8 ENUM64
  b.type(15, ".data", 1, 0, {1, 0, 4});                           // 9 DATASEC
  b.type(12, "bpf_iter_task_file", 0, 4, {});                    // 10 FUNC
  return b;
}

TEST(BtfFind, FindsEachKindByNameAndEnumerators) {
  const auto btf = sample().bytes();
  std::vector<BtfQuery> q = {
      {BtfKind::Typedef, "btf_trace_inet_sock_set_state", -1, {}},
      {BtfKind::Func, "bpf_iter_tcp", -1, {}},
      {BtfKind::Func, "bpf_iter_task_file", -1, {}},
      {BtfKind::Func, "bpf_iter_bpf_sk_storage_map", -1, {}},
      {BtfKind::Enum, "sk_rst_reason", -1, {}},
      {BtfKind::Enum64, "big", -1, {}},
      {BtfKind::Typedef, "bpf_iter_tcp", -1, {}}, // right name, wrong kind
  };
  std::string err;
  ASSERT_TRUE(btf_find(btf, q, err)) << err;
  EXPECT_EQ(q[0].id, 3);
  EXPECT_EQ(q[1].id, 5);
  EXPECT_EQ(q[2].id, 10);
  EXPECT_EQ(q[3].id, -1);
  EXPECT_EQ(q[4].id, 6);
  ASSERT_EQ(q[4].enumerators.size(), 2u);
  EXPECT_EQ(q[4].enumerators[1].first, 1);
  EXPECT_EQ(q[4].enumerators[1].second, "SK_RST_REASON_NO_SOCKET");
  EXPECT_EQ(q[5].id, 8);
  ASSERT_EQ(q[5].enumerators.size(), 1u);
  EXPECT_EQ(q[5].enumerators[0].first, (std::int64_t{2} << 32) | 1);
  EXPECT_EQ(q[6].id, -1);
}

TEST(BtfFind, RefusesMalformedBtf) {
  std::vector<BtfQuery> q = {{BtfKind::Func, "bpf_iter_tcp", -1, {}}};
  std::string err;
  EXPECT_FALSE(btf_find(sample().bytes(0x1234), q, err));
  EXPECT_NE(err.find("magic"), std::string::npos);

  auto cut = sample().bytes();
  cut.resize(30); // header claims more than there is
  EXPECT_FALSE(btf_find(cut, q, err));

  BtfBuilder unknown;
  unknown.type(31, "x", 0, 0, {});
  EXPECT_FALSE(btf_find(unknown.bytes(), q, err));
  EXPECT_NE(err.find("unknown BTF kind"), std::string::npos);

  BtfBuilder truncated; // a STRUCT whose members run past the section
  truncated.type(4, "s", 5, 8, {1, 1, 0});
  EXPECT_FALSE(btf_find(truncated.bytes(), q, err));
}

TEST(ParseForced, NamesFeaturesAndReportsUnknownOnes) {
  std::string unknown;
  const auto forced =
      parse_forced("iter:bpf_sk_storage_map,,bogus,bpf_without_caps", &unknown);
  EXPECT_TRUE(forced[static_cast<std::size_t>(Feature::IterSkStorageMap)]);
  EXPECT_TRUE(forced[static_cast<std::size_t>(Feature::BpfWithoutCaps)]);
  EXPECT_FALSE(forced[static_cast<std::size_t>(Feature::IterTcp)]);
  EXPECT_EQ(unknown, "bogus");
}

TEST(KernelProbes, ForcedOffWinsOverTheKernel) {
  KernelProbes probes("iter:tcp");
  const ProbeAnswer &a = probes.probe(Feature::IterTcp);
  EXPECT_FALSE(a.ok);
  EXPECT_NE(a.detail.find("TCPTRAIL_FORCE_FALLBACK"), std::string::npos);
}

// A kernel where every feature works, then `off` refused.
KernelProbes fake_kernel(std::initializer_list<Feature> off = {}) {
  KernelProbes probes;
  for (std::size_t i = 0; i < kFeatureCount; ++i)
    probes.set(static_cast<Feature>(i), {true, {}});
  for (Feature f : off)
    probes.set(f, {false, "refused by the kernel: Operation not permitted"});
  return probes;
}

// How each subcommand configures its tracer (user/commands/*.cpp).
TracerConfig config_of(Mode m) {
  TracerConfig cfg;
  cfg.mode = m;
  cfg.ringbuf_bytes = 4u << 20;
  switch (m) {
  case Mode::Trace:
    cfg.lazy_storage = true;
    cfg.batch = true;
    break;
  case Mode::Diagnose:
    cfg.lazy_storage = true;
    cfg.batch = true;
    cfg.iterators = true;
    break;
  case Mode::History:
    cfg.aggregate = true;
    cfg.lazy_storage = true;
    cfg.batch = true;
    break;
  case Mode::Snapshot:
    cfg.tracepoints = false;
    cfg.iterators = true;
    break;
  case Mode::Leaks:
    cfg.iterators = true;
    cfg.want_retransmits = false;
    cfg.want_resets = false;
    cfg.walk_record_states = (1U << 8) | (1U << 10); // CLOSE_WAIT, LISTEN
    break;
  case Mode::Serve:
    cfg.serve = true;
    cfg.iterators = true;
    break;
  }
  return cfg;
}

bool loads(const ProgramPlan &plan, std::string_view prog) {
  return std::find(plan.load.begin(), plan.load.end(), prog) != plan.load.end();
}

TEST(PlanPrograms, EachModeLoadsOnlyItsOwnPrograms) {
  KernelProbes probes = fake_kernel();
  const ProgramPlan trace = plan_programs(config_of(Mode::Trace), probes);
  EXPECT_TRUE(loads(trace, "handle_inet_sock_set_state"));
  EXPECT_TRUE(loads(trace, "handle_tcp_retransmit_synack"));
  EXPECT_TRUE(loads(trace, "flush_stage"));
  EXPECT_TRUE(loads(trace, "seed_owner_files"));
  EXPECT_FALSE(loads(trace, "dump_tcp"));
  EXPECT_FALSE(loads(trace, "dump_open_conns"));
  EXPECT_TRUE(trace.warnings.empty());

  const ProgramPlan history = plan_programs(config_of(Mode::History), probes);
  EXPECT_TRUE(loads(history, "dump_open_conns"));
  EXPECT_TRUE(loads(history, "dump_unstored_counters"));
  EXPECT_FALSE(loads(history, "handle_tcp_retransmit_synack"));
  EXPECT_TRUE(history.notes.empty());

  const ProgramPlan snapshot = plan_programs(config_of(Mode::Snapshot), probes);
  EXPECT_EQ(snapshot.load,
            (std::vector<std::string_view>{"dump_tcp", "dump_task_file"}));

  // diagnose reads its snapshots' sockets with iter/tcp, owners aside.
  const ProgramPlan diagnose = plan_programs(config_of(Mode::Diagnose), probes);
  EXPECT_TRUE(loads(diagnose, "dump_tcp"));
  EXPECT_FALSE(loads(diagnose, "dump_task_file"));
  EXPECT_TRUE(loads(diagnose, "handle_tcp_retransmit_synack"));

  const ProgramPlan leaks = plan_programs(config_of(Mode::Leaks), probes);
  EXPECT_TRUE(loads(leaks, "dump_tcp"));
  // Live, the fds come from the start-up fd walk; --once makes none.
  EXPECT_TRUE(loads(leaks, "seed_owner_files"));
  EXPECT_FALSE(loads(leaks, "dump_task_file"));
  TracerConfig once = config_of(Mode::Leaks);
  once.tracepoints = false;
  once.walk_record_states = 0;
  const ProgramPlan leaks_once = plan_programs(once, probes);
  EXPECT_EQ(leaks_once.load,
            (std::vector<std::string_view>{"dump_tcp", "dump_task_file"}));
  EXPECT_TRUE(loads(leaks, "handle_inet_sock_set_state"));
  EXPECT_FALSE(loads(leaks, "handle_tcp_retransmit_skb"));
  EXPECT_FALSE(loads(leaks, "flush_stage"));
}

TEST(PlanPrograms, HistoryWithoutMapIteratorsAssemblesInUserSpace) {
  KernelProbes probes = fake_kernel({Feature::IterSkStorageMap});
  TracerConfig cfg = config_of(Mode::History);
  cfg.lazy_storage = false; // the counters dump is needed all the same
  const ProgramPlan plan = plan_programs(cfg, probes);
  EXPECT_FALSE(loads(plan, "dump_open_conns"));
  EXPECT_TRUE(loads(plan, "dump_unstored_counters"));
  EXPECT_TRUE(plan.warnings.empty()); // nothing lost: an alternative
  ASSERT_EQ(plan.notes.size(), 1u);
  EXPECT_NE(plan.notes[0].find("assembled in user space"), std::string::npos);
  EXPECT_EQ(assess(Mode::History, probes).status, ModeStatus::Ok);
}

TEST(PlanPrograms, OptionalProgramsDegradeAndSayWhatIsLost) {
  KernelProbes probes =
      fake_kernel({Feature::TpRetransmitSkb, Feature::IterTaskFile});
  const ProgramPlan plan = plan_programs(config_of(Mode::Trace), probes);
  EXPECT_FALSE(loads(plan, "handle_tcp_retransmit_skb"));
  EXPECT_FALSE(loads(plan, "seed_owner_files"));
  EXPECT_TRUE(loads(plan, "handle_inet_sock_set_state"));
  ASSERT_EQ(plan.warnings.size(), 2u);
  EXPECT_NE(plan.warnings[0].find("tp_btf:tcp_retransmit_skb unavailable"),
            std::string::npos);
  EXPECT_NE(plan.warnings[1].find("show no owner"), std::string::npos);
  EXPECT_EQ(assess(Mode::Trace, probes).status, ModeStatus::Degraded);
}

TEST(PlanPrograms, BatchingNeedsBpfWithoutCapabilities) {
  KernelProbes probes = fake_kernel({Feature::BpfWithoutCaps});
  const ProgramPlan plan = plan_programs(config_of(Mode::Trace), probes);
  EXPECT_FALSE(loads(plan, "flush_stage"));
  EXPECT_EQ(plan.notes.size(), 1u);
  EXPECT_TRUE(plan.warnings.empty());
}

TEST(PlanPrograms, ARefusedRequiredProgramIsAnErrorPointingToDoctor) {
  KernelProbes probes = fake_kernel({Feature::TpInetSockSetState});
  try {
    plan_programs(config_of(Mode::Trace), probes);
    FAIL() << "expected an error";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("tp_btf:inet_sock_set_state"),
              std::string::npos);
    EXPECT_NE(e.hint().find("tcptrail doctor"), std::string::npos);
  }
  for (Mode m : {Mode::Trace, Mode::History, Mode::Leaks, Mode::Diagnose,
                 Mode::Serve})
    EXPECT_EQ(assess(m, probes).status, ModeStatus::Unavailable);
  EXPECT_EQ(assess(Mode::Snapshot, probes).status, ModeStatus::Ok);
}

TEST(PlanPrograms, WithoutIteratorsSnapshotEnumeratesWithSockDiag) {
  KernelProbes probes = fake_kernel({Feature::IterTcp, Feature::IterTaskFile});
  const ProgramPlan plan = plan_programs(config_of(Mode::Snapshot), probes);
  EXPECT_TRUE(plan.load.empty());
  EXPECT_TRUE(plan.warnings.empty());
  EXPECT_EQ(plan.notes.size(), 2u); // sock_diag, /proc/*/fd
  EXPECT_EQ(assess(Mode::Snapshot, probes).status, ModeStatus::Ok);
  // Tracing only loses the owners of sockets open at start.
  EXPECT_EQ(assess(Mode::Trace, probes).status, ModeStatus::Degraded);
  // diagnose reads sock_diag instead of iter/tcp: a note, not a warning.
  const ProgramPlan diagnose = plan_programs(config_of(Mode::Diagnose), probes);
  EXPECT_FALSE(loads(diagnose, "dump_tcp"));
  EXPECT_EQ(diagnose.notes.size(), 1u);
  EXPECT_EQ(diagnose.warnings.size(), 2u); // the seeding walk's
}

TEST(PlanPrograms, ServeCountsWithTheTracingProgramsAndEnumerates) {
  KernelProbes probes = fake_kernel();
  const ProgramPlan plan = plan_programs(config_of(Mode::Serve), probes);
  for (const char *p :
       {"handle_inet_sock_set_state", "handle_tcp_retransmit_skb",
        "handle_tcp_retransmit_synack", "handle_tcp_send_reset",
        "handle_tcp_receive_reset", "dump_tcp", "dump_task_file"})
    EXPECT_TRUE(loads(plan, p)) << p;
  // No batches (nothing per transition goes to the ring) and no paths.
  EXPECT_FALSE(loads(plan, "flush_stage"));
  EXPECT_FALSE(loads(plan, "dump_open_conns"));
  // Hardened: no iterators. Serve still runs, on sock_diag.
  KernelProbes hardened =
      fake_kernel({Feature::IterTcp, Feature::IterTaskFile});
  const ProgramPlan h = plan_programs(config_of(Mode::Serve), hardened);
  EXPECT_TRUE(loads(h, "handle_inet_sock_set_state"));
  EXPECT_FALSE(loads(h, "dump_tcp"));
  EXPECT_EQ(assess(Mode::Serve, hardened).status, ModeStatus::Degraded);
  EXPECT_EQ(mode_name(Mode::Serve), "serve");
}

TEST(ProgramTable, EveryProgramHasAModeAndEveryLossIsNamed) {
  for (const ProgramSpec &p : program_table()) {
    EXPECT_NE(p.modes, 0) << p.program;
    if (p.need != Need::Required)
      EXPECT_FALSE(p.effect.empty()) << p.program;
    EXPECT_EQ(find_program(p.program), &p);
  }
}

} // namespace
} // namespace tcptrail

TEST(SeedOwnerEntries, TheAllocatedTcpSocketsAndAMarginWithinBounds) {
  const std::string busy = "sockets: used 30512\n"
                           "TCP: inuse 10016 orphan 0 tw 19544 alloc 10021 "
                           "mem 1201\n"
                           "UDP: inuse 0 mem 0\n";
  EXPECT_EQ(tcptrail::seed_owner_entries(busy), 10021u * 5 / 4 + 1024);
  EXPECT_EQ(tcptrail::seed_owner_entries(
                "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 467\n"),
            4096u); // the floor
  EXPECT_EQ(tcptrail::seed_owner_entries(
                "TCP: inuse 1 orphan 0 tw 0 alloc 900000 mem 467"),
            262144u); // the ceiling; no newline at the end
  EXPECT_EQ(tcptrail::seed_owner_entries(
                "TCP: alloc 18446744073709551615\n"),
            262144u); // no overflow
  // Unreadable or unknown text: a bounded guess.
  EXPECT_EQ(tcptrail::seed_owner_entries(""), 65536u);
  EXPECT_EQ(tcptrail::seed_owner_entries("TCP: inuse 1 alloc x\n"), 65536u);
  EXPECT_EQ(tcptrail::seed_owner_entries("UDP: inuse 0 alloc 5\n"), 65536u);
}

TEST(Sockstat, CountsByProtocolAndField) {
  const std::string text = "sockets: used 30512\n"
                           "TCP: inuse 10016 orphan 0 tw 19544 alloc 10021 "
                           "mem 1201\n"
                           "UDP: inuse 3 mem 0\n";
  EXPECT_EQ(tcptrail::sockstat_count(text, "TCP:", "inuse"), 10016u);
  EXPECT_EQ(tcptrail::sockstat_count(text, "TCP:", "tw"), 19544u);
  EXPECT_EQ(tcptrail::sockstat_count(text, "UDP:", "inuse"), 3u);
  EXPECT_EQ(tcptrail::sockstat_count(text, "TCP:", "nope"), std::nullopt);
  EXPECT_EQ(tcptrail::sockstat_count(text, "TCP6:", "inuse"), std::nullopt);
  EXPECT_EQ(tcptrail::sockstat_count("TCP: inuse x\n", "TCP:", "inuse"),
            std::nullopt);
  EXPECT_EQ(tcptrail::sockstat_count("TCP: inuse\n", "TCP:", "inuse"),
            std::nullopt);
  EXPECT_EQ(tcptrail::sockstat_count("TCP: inuse 99999999999999999999",
                                     "TCP:", "inuse"),
            std::nullopt); // does not fit
}

TEST(Sockstat, ANamespaceWithoutTcpSockets) {
  const std::string empty = "sockets: used 0\n"
                            "TCP: inuse 0 orphan 0 tw 0 alloc 3 mem 0\n";
  const std::string empty6 = "TCP6: inuse 0\nUDP6: inuse 2\n";
  EXPECT_TRUE(tcptrail::no_tcp_sockets(empty, empty6));
  EXPECT_TRUE(tcptrail::no_tcp_sockets(empty, "")); // no IPv6
  // Any socket of its own, IPv4, IPv6 or TIME_WAIT: walked.
  EXPECT_FALSE(tcptrail::no_tcp_sockets(
      "TCP: inuse 1 orphan 0 tw 0 alloc 3 mem 0\n", empty6));
  EXPECT_FALSE(tcptrail::no_tcp_sockets(
      "TCP: inuse 0 orphan 0 tw 7 alloc 3 mem 0\n", empty6));
  EXPECT_FALSE(tcptrail::no_tcp_sockets(empty, "TCP6: inuse 1\n"));
  // Counts that cannot be read: walked.
  EXPECT_FALSE(tcptrail::no_tcp_sockets("", ""));
  EXPECT_FALSE(tcptrail::no_tcp_sockets("TCP: inuse 0\n", ""));
  EXPECT_FALSE(tcptrail::no_tcp_sockets(empty, "UDP6: inuse 2\n"));
}
