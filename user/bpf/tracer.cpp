#include "bpf/tracer.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <utility>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "bpf/btf_names.h"
#include "bpf/core_btf.h"
#include "bpf/build_info.h"
#include "bpf/iter.h"
#include "bpf/probe.h"
#include "bpf/programs.h"
#include "error.h"
#include "net.h"
#include "privileges.h"
#include "reorder.h"
#include "runtime.h"
#include "socket_memory.h"
#include "tcptrail_bpf.skel.h"

namespace tcptrail {

namespace {

bool g_verbose = false;

int libbpf_print(enum libbpf_print_level level, const char *format,
                 va_list args) {
  if (level == LIBBPF_DEBUG && !g_verbose)
    return 0;
  return std::vfprintf(stderr, format, args);
}

struct SkelDeleter {
  void operator()(tcptrail_bpf *skel) const { tcptrail_bpf__destroy(skel); }
};
struct RingDeleter {
  void operator()(ring_buffer *rb) const { ring_buffer__free(rb); }
};
struct LinkDeleter {
  void operator()(bpf_link *link) const { bpf_link__destroy(link); }
};
struct BtfDeleter {
  void operator()(btf *b) const { btf__free(b); }
};

std::string errno_text(int err) {
  return std::strerror(err < 0 ? -err : err);
}

void check_privileges() {
  const std::string missing = missing_bpf_capabilities();
  if (missing.empty())
    return;
  throw Error(fmt::format("missing privileges: need root, or CAP_BPF and "
                          "CAP_PERFMON (missing: {})",
                          missing),
              "run as root (sudo tcptrail ...) or grant the capabilities: "
              "setcap cap_bpf,cap_perfmon+ep tcptrail");
}

// Pass 2 of the seeding: iter/tcp over the listeners of each namespace that
// holds one of pass 1's (it stops where the established table starts).
// Returns how many namespaces it walked.
std::size_t seed_listeners_in(std::set<std::uint64_t> wanted, int sock_fd) {
  const std::size_t namespaces = wanted.size();
  auto walk = [sock_fd] { read_iter(sock_fd, IterEnd::Stopped); };
  struct stat self;
  if (stat("/proc/self/ns/net", &self) == 0 && wanted.erase(self.st_ino))
    walk();
  if (wanted.empty())
    return namespaces;
  // Other namespaces: found by a walk of /proc and /run/netns.
  std::vector<NetnsRef> others;
  for (NetnsRef &ns : list_netns())
    if (wanted.count(ns.inode))
      others.push_back(std::move(ns));
  in_each_netns(others, [&walk](const NetnsRef &) { walk(); });
  return namespaces;
}

// Finds the owner of every TCP socket that existed before start (see
// bpf/owners.bpf.c): the fd walk, over every process, puts each in
// seed_owners; listeners get storage with their owner at once, in the
// namespaces that hold them (from a thread that enters each: we are still
// privileged here), and the rest are claimed by the programs the first
// time they meet them. Best effort: a failure only means pre-existing
// sockets show pid 0, so it warns.
std::optional<std::vector<tt_iter_file>> seed_owners(tcptrail_bpf *skel) {
  auto warn = [](const std::string &why) {
    std::fprintf(stderr, "tcptrail: warning: cannot walk existing sockets "
                         "(%s): their owners will show as unknown\n",
                 why.c_str());
  };
  std::unique_ptr<bpf_link, LinkDeleter> files(
      bpf_program__attach_iter(skel->progs.seed_owner_files, nullptr));
  if (!files) {
    warn(errno_text(errno));
    return std::nullopt;
  }
  // Without it (a kernel without iter/tcp: probed, not loaded), listeners
  // open at start pass no owner to the children they accept.
  const bool want_listeners =
      bpf_program__autoload(skel->progs.seed_owner_socks);
  std::unique_ptr<bpf_link, LinkDeleter> socks(
      want_listeners
          ? bpf_program__attach_iter(skel->progs.seed_owner_socks, nullptr)
          : nullptr);
  auto warn_listeners = [](const std::string &why) {
    std::fprintf(stderr,
                 "tcptrail: warning: cannot walk existing listeners (%s): "
                 "connections they accept will show no owner until their "
                 "owner's first system call on them\n",
                 why.c_str());
  };
  if (!socks && want_listeners)
    warn_listeners(errno_text(errno));
  using Clock = std::chrono::steady_clock;
  auto us = [](Clock::time_point a, Clock::time_point b) {
    return static_cast<long long>(
        std::chrono::duration_cast<std::chrono::microseconds>(b - a).count());
  };
  // Claims may start while the walk still runs.
  __atomic_store_n(&skel->bss->seed_pending, 1, __ATOMIC_RELAXED);
  try {
    const auto t0 = Clock::now();
    const std::string pass1 = read_iter(bpf_link__fd(files.get()));
    const auto t1 = Clock::now();
    std::vector<tt_iter_file> walked(pass1.size() / sizeof(tt_iter_file));
    if (!walked.empty())
      std::memcpy(walked.data(), pass1.data(),
                  walked.size() * sizeof(tt_iter_file));
    std::set<std::uint64_t> listener_netns;
    std::size_t listeners = 0;
    for (const tt_iter_file &f : walked)
      if (f.flags & TT_FF_LISTENER) {
        ++listeners;
        listener_netns.insert(f.netns);
      }
    // The walk's records name every listener, other sockets only with
    // cfg_walk_states: the count is the walk's own.
    const std::uint64_t seeded =
        __atomic_load_n(&skel->bss->seed_walked, __ATOMIC_RELAXED);
    if (seeded == listeners)
      __atomic_store_n(&skel->bss->seed_pending, 0, __ATOMIC_RELAXED);
    std::size_t namespaces = 0;
    try {
      if (socks)
        namespaces = seed_listeners_in(std::move(listener_netns),
                                       bpf_link__fd(socks.get()));
    } catch (const Error &e) {
      warn_listeners(e.what());
    }
    if (g_verbose)
      std::fprintf(stderr,
                   "tcptrail: seeding: %llu sockets from the fd walk (%lld "
                   "us), %zu of them listeners, seeded by iter/tcp in %zu "
                   "namespaces (%lld us); the others are claimed at their "
                   "first event\n",
                   static_cast<unsigned long long>(seeded), us(t0, t1),
                   listeners, namespaces,
                   us(t1, Clock::now()));
    return walked;
  } catch (const Error &e) {
    warn(e.what());
  }
  return std::nullopt;
}

// A batch is one ring record of TT_STAGE_RECORDS state records (2.7 KB): a
// ring that holds fewer than four would drop most of them at once.
constexpr std::size_t kMinBatchedRing =
    4 * TT_STAGE_RECORDS * sizeof(tt_state_event);

bool want_batch(const TracerConfig &cfg) {
  return cfg.batch && cfg.ringbuf_bytes >= kMinBatchedRing;
}

bool is_power_of_two(std::size_t v) { return v && !(v & (v - 1)); }

template <typename T, std::size_t N>
void copy_array(volatile T (&dst)[N], const std::vector<T> &src) {
  for (std::size_t i = 0; i < src.size() && i < N; ++i)
    dst[i] = src[i];
}

} // namespace

struct Tracer::Impl {
  // Every map, and every loaded program but the state program where it
  // was verified side by side with the others (Tracer::create()): then its
  // instance of the object is gone once attached, and this keeps what is
  // needed of it (an instance costs ~300 KB of heap and a mapping of the
  // maps' data).
  std::unique_ptr<tcptrail_bpf, SkelDeleter> skel;
  struct Program {
    std::string name;
    int fd = -1; // for bpf_prog_info
    std::unique_ptr<bpf_link, LinkDeleter> link;
    Program() = default;
    Program(Program &&) = delete;
    ~Program() {
      if (fd >= 0)
        close(fd);
    }
  };
  std::optional<Program> state;
  std::unique_ptr<ring_buffer, RingDeleter> ring;
  // History mode: the socket storage iterator (dump_open_conns) and, with
  // lazy storage, the counters of the sockets without (dump_unstored_counters).
  std::unique_ptr<bpf_link, LinkDeleter> open_conns;
  std::unique_ptr<bpf_link, LinkDeleter> unstored_counters;
  EventSink *sink = nullptr;
  int handled = 0;

  // Every loaded program: name and fd.
  std::vector<std::pair<std::string_view, int>> programs() const {
    std::vector<std::pair<std::string_view, int>> out;
    bpf_program *prog;
    bpf_object__for_each_program(prog, skel->obj) {
      if (bpf_program__fd(prog) >= 0)
        out.emplace_back(bpf_program__name(prog), bpf_program__fd(prog));
    }
    if (state)
      out.emplace_back(state->name, state->fd);
    return out;
  }
  std::uint64_t invalid = 0;
  // Lazy storage mode only.
  std::optional<SocketMemory> memory;
  // The filters again, when they name an owner the kernel may not know.
  std::optional<FilterSpec> owner_filter;
  // The start-up fd walk's records (seed_owners()), if it ran.
  std::optional<Tracer::WalkedSockets> walked;

  // Batched mode only.
  std::optional<Reorder> reorder;
  int flush_fd = -1;
  unsigned flush_rounds = 0;

  // Lazy mode: completes the record of a socket without storage; false when
  // the owner filters, now that the owner is known, reject it.
  template <typename Event>
  bool complete(Event &ev, std::uint8_t old_state, std::uint8_t new_state) {
    if (!memory)
      return true;
    memory->amend(ev);
    return !owner_filter || matches(*owner_filter, ev.sk, old_state, new_state);
  }

  // A record in time order, to the sink.
  void deliver(tt_state_event &st) {
    if (complete(st, st.old_state, st.new_state))
      sink->on_state(st);
    ++handled;
  }
  void deliver(tt_seg_event &seg) {
    if (complete(seg, seg.state, seg.state))
      sink->on_segment(seg);
    ++handled;
  }

  void on_piece(const void *data, std::size_t size) {
    Record rec = decode(data, size);
    if (reorder) {
      if (auto *st = std::get_if<tt_state_event>(&rec)) {
        reorder->push(*st);
        return;
      }
      if (auto *seg = std::get_if<tt_seg_event>(&rec)) {
        reorder->push(*seg);
        return;
      }
      if (auto *mark = std::get_if<tt_flush_event>(&rec)) {
        reorder->mark(mark->hdr.cpu, mark->hdr.ts_ns);
        return;
      }
    }
    if (auto *st = std::get_if<tt_state_event>(&rec)) {
      deliver(*st);
    } else if (auto *seg = std::get_if<tt_seg_event>(&rec)) {
      deliver(*seg);
    } else if (auto *conn = std::get_if<tt_conn_event>(&rec)) {
      sink->on_conn(*conn);
      ++handled;
    } else if (std::holds_alternative<tt_flush_event>(rec)) {
      // Only the batched mode's flush program makes these.
    } else {
      ++invalid;
      sink->on_invalid(std::get<Invalid>(rec).error);
      ++handled;
    }
  }

  static int on_record(void *ctx, void *data, std::size_t size) {
    auto *self = static_cast<Impl *>(ctx);
    for_each_record(data, size, [self](const void *piece, std::size_t len) {
      self->on_piece(piece, len);
    });
    return 0;
  }

  // Batched mode: runs the flush program on every CPU, so that each sends
  // what it staged and marks how far its records are complete. A CPU
  // whose stage is busy (the flush interrupted the state program) is
  // tried again; if it stays busy its mark waits for the next poll.
  void flush_cpus() {
    const std::size_t cpus = reorder->cpus();
    // Offline CPUs fail at once (ENXIO); they are tried again now and then
    // in case they came back.
    const bool retry_offline = (flush_rounds++ % 64) == 0;
    for (std::size_t cpu = 0; cpu < cpus; ++cpu) {
      if (!reorder->is_online(cpu) && !retry_offline)
        continue;
      for (int attempt = 0; attempt < 3; ++attempt) {
        DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts);
        opts.flags = BPF_F_TEST_RUN_ON_CPU;
        opts.cpu = static_cast<__u32>(cpu);
        const int err = bpf_prog_test_run_opts(flush_fd, &opts);
        if (err == -ENXIO || err == -ENODEV) {
          reorder->offline(static_cast<std::uint32_t>(cpu));
          break;
        }
        if (err)
          throw Error(fmt::format("running the flush program on CPU {}: {}",
                                  cpu, errno_text(err)));
        if (opts.retval)
          break;
      }
    }
  }

  // Hands on the records whose turn has come (`all`: every one left).
  void release(bool all) {
    auto to_sink = [this](auto &ev) { deliver(ev); };
    if (all)
      reorder->release_all(to_sink);
    else
      reorder->release(to_sink);
  }

  void consume() {
    const int err = ring_buffer__consume(ring.get());
    if (err < 0 && err != -EINTR)
      throw Error(fmt::format("consuming ring buffer: {}", errno_text(err)));
  }
};

namespace {

// Whether `prog` (a program of the mode's, per program_table()) is also
// wanted by this configuration of the mode.
bool wanted_by_config(const TracerConfig &cfg, std::string_view prog,
                      KernelProbes &probes) {
  if (prog == "dump_tcp")
    return cfg.iterators; // enumeration: snapshot, leaks, serve, diagnose
  // The fds: the start-up fd walk records them where it keeps records
  // (live leaks), which needs the same feature.
  if (prog == "dump_task_file")
    return cfg.iterators && !(cfg.tracepoints && cfg.walk_record_states);
  if (!cfg.tracepoints)
    return false;
  if (prog == "handle_tcp_retransmit_skb")
    return cfg.want_retransmits;
  // History counts no SYN-ACK retransmits (a request socket has no path).
  if (prog == "handle_tcp_retransmit_synack")
    return cfg.want_retransmits && !cfg.aggregate;
  if (prog == "handle_tcp_send_reset" || prog == "handle_tcp_receive_reset")
    return cfg.want_resets;
  if (prog == "flush_stage")
    return want_batch(cfg);
  if (prog == "dump_open_conns")
    return cfg.aggregate;
  // History: the paths user space assembles (the sockets without storage,
  // or all of them where the kernel keeps none).
  if (prog == "dump_unstored_counters")
    return cfg.aggregate &&
           (cfg.lazy_storage || !probes.has(Feature::IterSkStorageMap));
  return true;
}

} // namespace

ProgramPlan plan_programs(const TracerConfig &cfg, KernelProbes &probes) {
  ProgramPlan plan;
  for (const ProgramSpec &spec : program_table()) {
    if (!(spec.modes & mode_bit(cfg.mode)) ||
        !wanted_by_config(cfg, spec.program, probes))
      continue;
    const ProbeAnswer &a = probes.probe(spec.feature);
    if (a.ok) {
      plan.load.push_back(spec.program);
      continue;
    }
    const std::string line =
        fmt::format("{} unavailable ({}): {}", feature_name(spec.feature),
                    a.detail, spec.effect);
    switch (spec.need) {
    case Need::Required:
      throw Error(fmt::format("this kernel cannot run tcptrail {}: {} ({}): "
                              "{}",
                              mode_name(cfg.mode), spec.program,
                              feature_name(spec.feature), a.detail),
                  "run `tcptrail doctor` to see what this kernel supports");
    case Need::Optional:
      // Two programs may need one feature for one purpose: say it once.
      if (std::find(plan.warnings.begin(), plan.warnings.end(), line) ==
          plan.warnings.end())
        plan.warnings.push_back(line);
      break;
    case Need::Alternative:
      plan.notes.push_back(line);
      break;
    }
  }
  return plan;
}

namespace {

bool planned(const ProgramPlan &plan, std::string_view name) {
  return std::find(plan.load.begin(), plan.load.end(), name) !=
         plan.load.end();
}

// The programs of the start-up fd walk (seed_owners()).
bool is_seed_program(std::string_view name) {
  return name == "seed_owner_files" || name == "seed_owner_socks";
}

constexpr std::string_view kStateProgram = "handle_inet_sock_set_state";

// Which of the planned programs one instance of the object loads: all of
// them, or a part of a start that loads them side by side (see
// Tracer::create()): the fd walk's (Seeds), none (Maps: only makes the
// maps), the state program (State), the others (Rest).
enum class Part { All, Seeds, Maps, State, Rest };

bool in_part(std::string_view name, Part part) {
  switch (part) {
  case Part::All:
    return true;
  case Part::Seeds:
    return is_seed_program(name);
  case Part::Maps:
    return false;
  case Part::State:
    return name == kStateProgram;
  case Part::Rest:
    return !is_seed_program(name) && name != kStateProgram;
  }
  return false;
}

// Sets each program's autoload from the plan and the part.
void choose_programs(const ProgramPlan &plan, Part part, tcptrail_bpf *skel) {
  bpf_program *prog;
  bpf_object__for_each_program(prog, skel->obj) {
    const std::string_view name = bpf_program__name(prog);
    if (!find_program(name))
      throw Error(fmt::format("BPF program {} is not in the program table",
                              name));
    const bool load = planned(plan, name) && in_part(name, part);
    bpf_program__set_autoload(prog, load);
    // Iterators and the flush program are run on demand, never attached.
    if (bpf_program__type(prog) != BPF_PROG_TYPE_TRACING ||
        std::strncmp(bpf_program__section_name(prog), "iter/", 5) == 0)
      bpf_program__set_autoattach(prog, false);
  }
}

// The kernel's BTF cut down to what this object's CO-RE relocations need
// (core_btf.h), in a memfd whose /proc path goes to libbpf as
// btf_custom_path. Without one (TCPTRAIL_CORE_BTF=kernel, or it could not
// be made: `why` says), libbpf searches the whole kernel BTF as usual.
class CoreBtfFile {
public:
  static CoreBtfFile make(std::string &why) {
    CoreBtfFile f;
    const char *env = std::getenv("TCPTRAIL_CORE_BTF");
    if (env != nullptr && std::strcmp(env, "kernel") == 0) {
      why = "CO-RE: the whole kernel BTF (TCPTRAIL_CORE_BTF=kernel)";
      return f;
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> roots;
    std::string error;
    const std::string_view elf = embedded_bpf_object();
    if (!core_relo_roots({reinterpret_cast<const std::uint8_t *>(elf.data()),
                          elf.size()},
                         roots, error)) {
      why = "CO-RE: the whole kernel BTF (" + error + ")";
      return f;
    }
    std::optional<BtfFile> vmlinux = BtfFile::open("/sys/kernel/btf/vmlinux");
    std::vector<std::uint8_t> small;
    if (!vmlinux) {
      why =
          "CO-RE: the whole kernel BTF (cannot read it: " + errno_text(errno) +
          ")";
      return f;
    }
    if (!minimize_btf(vmlinux->bytes(), roots, small, error)) {
      why = "CO-RE: the whole kernel BTF (" + error + ")";
      return f;
    }
    const int fd = static_cast<int>(
        syscall(SYS_memfd_create, "tcptrail-core-btf", MFD_CLOEXEC));
    if (fd < 0) {
      why = "CO-RE: the whole kernel BTF (memfd_create: " + errno_text(errno) +
            ")";
      return f;
    }
    f.fd_ = fd;
    std::size_t done = 0;
    while (done < small.size()) {
      const ssize_t n = write(fd, small.data() + done, small.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        why = "CO-RE: the whole kernel BTF (writing the memfd: " +
              errno_text(errno) + ")";
        return CoreBtfFile{};
      }
      done += static_cast<std::size_t>(n);
    }
    f.path_ = fmt::format("/proc/self/fd/{}", fd);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::steady_clock::now() - t0)
                        .count();
    why = fmt::format("CO-RE: {} relocation roots resolved in {} KiB of the "
                      "kernel's {} KiB of BTF (made in {} us)",
                      roots.size(), small.size() / 1024,
                      vmlinux->bytes().size() / 1024, us);
    return f;
  }
  CoreBtfFile(CoreBtfFile &&o) noexcept
      : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
  CoreBtfFile &operator=(CoreBtfFile &&) = delete;
  CoreBtfFile(const CoreBtfFile &) = delete;
  ~CoreBtfFile() {
    if (fd_ >= 0)
      close(fd_);
  }
  // nullptr: no custom BTF.
  const char *path() const { return path_.empty() ? nullptr : path_.c_str(); }

private:
  CoreBtfFile() = default;
  int fd_ = -1;
  std::string path_;
};

// libbpf 1.1 refuses to load an object with a __kconfig extern (iter.bpf.c's
// CONFIG_HZ) when neither /boot/config-$(uname -r) nor /proc/config.gz
// exists, __weak or not: containers and minimal images often have neither.
// Then the object gets its own Kconfig, CONFIG_HZ=0, and socket ages are
// bounded by the socket's mstamp alone (snapshot.cpp), instead of failing.
const char *kconfig_fallback() {
  struct utsname u;
  if (uname(&u) == 0 &&
      access(fmt::format("/boot/config-{}", u.release).c_str(), R_OK) == 0)
    return nullptr;
  if (access("/proc/config.gz", R_OK) == 0)
    return nullptr;
  return "CONFIG_HZ=0\n";
}

} // namespace

std::uint32_t seed_owner_entries(std::string_view sockstat) {
  constexpr std::uint64_t kMin = 4096, kMax = 256 * 1024, kUnknown = 65536;
  const auto alloc = sockstat_count(sockstat, "TCP:", "alloc");
  if (!alloc)
    return kUnknown;
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(
      std::min<std::uint64_t>(*alloc, kMax) * 5 / 4 + 1024, kMin, kMax));
}

// What every instance of the object is opened and configured with.
struct LoadSetup {
  const TracerConfig &cfg;
  const ProgramPlan &plan;
  const char *core_btf_path; // nullptr: the whole kernel BTF
  const char *kconfig;       // nullptr: the kernel's own
  std::uint32_t seed_entries;
  bool rst_reason; // the kernel passes the RST reason (probed before)
};

using SkelPtr = std::unique_ptr<tcptrail_bpf, SkelDeleter>;

// Opens one instance of the object with the plan's programs for `part`,
// and configures it: filters and knobs in rodata, map sizes. Every
// instance is configured alike: the first one loaded creates the maps,
// rodata among them, and the others reuse them (reuse_maps()).
SkelPtr open_configured(const LoadSetup &setup, Part part) {
  const TracerConfig &cfg = setup.cfg;
  LIBBPF_OPTS(bpf_object_open_opts, open_opts, .kconfig = setup.kconfig,
              .btf_custom_path = setup.core_btf_path);
  SkelPtr owned(tcptrail_bpf__open_opts(&open_opts));
  if (!owned)
    throw Error(fmt::format("opening BPF object: {}", errno_text(errno)));
  tcptrail_bpf *skel = owned.get();
  choose_programs(setup.plan, part, skel);
  const bool kernel_paths = planned(setup.plan, "dump_open_conns");

  // Configure: filters and knobs go to rodata before load.
  const FilterSpec &f = cfg.filter;
  auto *ro = skel->rodata;
  ro->cfg_af = f.af;
  ro->cfg_netns = f.netns;
  ro->cfg_state_mask = f.state_mask;
  ro->cfg_n_pids = static_cast<__u32>(f.pids.size());
  copy_array(ro->cfg_pids, f.pids);
  if (!f.comm.empty()) {
    ro->cfg_comm_set = 1;
    for (std::size_t i = 0; i < f.comm.size() && i < TT_COMM_LEN - 1; ++i)
      ro->cfg_comm[i] = f.comm[i];
  }
  ro->cfg_cgroup_id = f.cgroup_id;
  ro->cfg_cgroup_level = f.cgroup_level;
  // The verdict cache is read only with --cgroup (an LRU map is allocated
  // in full at creation): a token size without.
  if (!f.cgroup_id)
    if (int err = bpf_map__set_max_entries(skel->maps.cgroup_verdicts, 128))
      throw Error(fmt::format("sizing the cgroup map: {}", errno_text(err)));
  ro->cfg_n_lports = static_cast<__u32>(f.lports.size());
  copy_array(ro->cfg_lports, f.lports);
  ro->cfg_n_rports = static_cast<__u32>(f.rports.size());
  copy_array(ro->cfg_rports, f.rports);
  auto put_cidrs = [](volatile tt_cidr(&dst)[TT_MAX_FILTER_CIDRS],
                      const std::vector<Cidr> &src) {
    for (std::size_t i = 0; i < src.size() && i < TT_MAX_FILTER_CIDRS; ++i) {
      dst[i].af = src[i].af;
      dst[i].prefix_len = src[i].prefix_len;
      for (int b = 0; b < TT_ADDR_LEN; ++b)
        dst[i].addr[b] = src[i].addr[b];
    }
  };
  ro->cfg_n_laddrs = static_cast<__u32>(f.laddrs.size());
  put_cidrs(ro->cfg_laddrs, f.laddrs);
  ro->cfg_n_raddrs = static_cast<__u32>(f.raddrs.size());
  put_cidrs(ro->cfg_raddrs, f.raddrs);
  ro->cfg_aggregate = cfg.aggregate ? 1 : 0;
  ro->cfg_kernel_paths = kernel_paths ? 1 : 0;
  ro->cfg_walk_states = cfg.walk_record_states;
  ro->cfg_lazy_storage = cfg.lazy_storage ? 1 : 0;
  ro->cfg_batch = planned(setup.plan, "flush_stage") ? 1 : 0;
  ro->cfg_serve = cfg.serve ? 1 : 0;
  ro->cfg_serve_no_records = cfg.serve && !cfg.serve_records ? 1 : 0;
  ro->cfg_no_retransmits = cfg.want_retransmits ? 0 : 1;
  ro->cfg_no_resets = cfg.want_resets ? 0 : 1;
  ro->cfg_rst_reason =
      planned(setup.plan, "handle_tcp_send_reset") && setup.rst_reason ? 1
                                                                        : 0;
  // Each CPU signals after its share: at most wakeup_bytes wait unannounced.
  if (cfg.wakeup_bytes) {
    const int cpus = libbpf_num_possible_cpus();
    ro->cfg_wakeup_cpu_bytes = std::max<std::uint64_t>(
        1, cfg.wakeup_bytes / static_cast<std::uint64_t>(cpus > 0 ? cpus : 1));
  }
  if (int err = bpf_map__set_max_entries(skel->maps.seed_owners,
                                         setup.seed_entries))
    throw Error(fmt::format("sizing the seed map: {}", errno_text(err)));
  if (int err = bpf_map__set_max_entries(skel->maps.events,
                                         static_cast<__u32>(cfg.ringbuf_bytes)))
    throw Error(fmt::format("sizing the ring buffer: {}", errno_text(err)));

  return owned;
}

// dst's maps become src's (src is loaded, dst not yet).
void reuse_maps(tcptrail_bpf *dst, const tcptrail_bpf *src) {
  bpf_map *map;
  bpf_object__for_each_map(map, dst->obj) {
    const bpf_map *from =
        bpf_object__find_map_by_name(src->obj, bpf_map__name(map));
    if (!from)
      throw Error(fmt::format("sharing map {}: not in the first instance",
                              bpf_map__name(map)));
    if (int err = bpf_map__reuse_fd(map, bpf_map__fd(from)))
      throw Error(fmt::format("sharing map {}: {}", bpf_map__name(map),
                              errno_text(err)));
  }
}

// map_data false: the instance's programs only, without the skeleton's
// mappings of the maps' data (another instance maps them).
void load(tcptrail_bpf *skel, bool map_data = true) {
  if (int err = map_data ? tcptrail_bpf__load(skel)
                         : bpf_object__load(skel->obj))
    throw Error(fmt::format("loading BPF programs: {}", errno_text(err)),
                err == -EACCES || err == -EINVAL
                    ? "the kernel's verifier rejected a program (its log is "
                      "above); run `tcptrail doctor` and report both with "
                      "`uname -r`"
                    : "run `tcptrail doctor` to see what this kernel "
                      "supports, and --verbose for libbpf's log");
}

// seed_owners' size: see seed_owner_entries(). Its buckets are allocated
// at creation, used or not: one entry where nothing walks.
std::uint32_t seed_entries(const ProgramPlan &plan) {
  if (!planned(plan, "seed_owner_files"))
    return 1;
  return seed_owner_entries(read_small_file("/proc/net/sockstat"));
}

Tracer Tracer::create(const TracerConfig &cfg) {
  g_verbose = cfg.verbose;
  libbpf_set_print(libbpf_print);

  if (auto why = validate(cfg.filter))
    throw Error(*why, {}, 2);
  if (!is_power_of_two(cfg.ringbuf_bytes) ||
      cfg.ringbuf_bytes < static_cast<std::size_t>(getpagesize()))
    throw Error(fmt::format("--ringbuf-size {} must be a power of two of at "
                            "least {} bytes",
                            cfg.ringbuf_bytes, getpagesize()),
                {}, 2);
  check_privileges();
  if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
    throw Error("kernel BTF not found at /sys/kernel/btf/vmlinux",
                "tcptrail needs a kernel built with CONFIG_DEBUG_INFO_BTF=y");
  const ProgramPlan plan = plan_programs(cfg, KernelProbes::instance());
  for (const std::string &w : plan.warnings)
    std::fprintf(stderr, "tcptrail: warning: %s\n", w.c_str());
  if (cfg.verbose)
    for (const std::string &n : plan.notes)
      std::fprintf(stderr, "tcptrail: %s\n", n.c_str());
  const char *kconfig = kconfig_fallback();
  if (kconfig != nullptr && cfg.verbose)
    std::fprintf(stderr, "tcptrail: no kernel config found: CONFIG_HZ "
                         "unknown, socket ages from mstamp only\n");

  // Loaded side by side, in instances of the object that share one set of
  // maps. A first instance, with no programs, makes the maps on a thread
  // while this one cuts the kernel BTF down for CO-RE (CoreBtfFile): opened
  // without that BTF, its load parses the kernel's, which SharedKernelBtf
  // keeps for the loads that need it for their attach targets. Then the
  // fd walk's programs load and walk (seed_owners()) on one thread, the
  // state program verifies on another, and the other programs here. These
  // are kernel time, of similar length with 10,000 sockets open, so the
  // CPUs a host has share them instead of one doing them in turn. Every
  // thread ends before create() returns, while we are still privileged.
  const bool seeding = planned(plan, "seed_owner_files");
  const bool side_by_side = planned(plan, kStateProgram);
  const std::uint32_t seeds = seed_entries(plan);
  // Probed here, once: instances are configured on more than one thread.
  const bool rst_reason = KernelProbes::instance().has(Feature::RstReasonEnum);
  SkelPtr first, seeder, state;
  std::optional<std::vector<tt_iter_file>> files;
  std::exception_ptr first_error, walk_error, state_error;
  std::optional<SharedKernelBtf> shared_btf; // one parse for every load
  const LoadSetup maps_setup{cfg, plan, nullptr, kconfig, seeds, rst_reason};
  // Declared after what they use: joined first when unwinding.
  std::jthread maker, walker, verifier;
  if (side_by_side) {
    shared_btf.emplace();
    maker = std::jthread([&] {
      try {
        first = open_configured(maps_setup, Part::Maps);
        load(first.get());
      } catch (...) {
        first_error = std::current_exception();
      }
    });
  }
  std::string core_note;
  const CoreBtfFile core_btf = CoreBtfFile::make(core_note);
  if (cfg.verbose)
    std::fprintf(stderr, "tcptrail: %s\n", core_note.c_str());
  const LoadSetup setup{cfg, plan, core_btf.path(), kconfig, seeds,
                        rst_reason};

  auto impl = std::make_unique<Impl>();
  impl->skel = open_configured(setup, side_by_side ? Part::Rest : Part::All);
  tcptrail_bpf *skel = impl->skel.get();
  if (side_by_side) {
    state = open_configured(setup, Part::State);
    if (seeding)
      seeder = open_configured(setup, Part::Seeds);
    maker.join();
    if (first_error)
      std::rethrow_exception(first_error);
    reuse_maps(skel, first.get());
    reuse_maps(state.get(), first.get());
    if (seeder)
      reuse_maps(seeder.get(), first.get());
    first.reset(); // the maps live on in the others
    // The walker owns the seeder from here: its memory goes as soon as the
    // walk is done, while the rest may still verify.
    if (seeder)
      walker = std::jthread([&] {
        try {
          load(seeder.get());
          files = seed_owners(seeder.get());
        } catch (...) {
          walk_error = std::current_exception();
        }
        seeder.reset();
      });
    verifier = std::jthread([&] {
      try {
        load(state.get(), false);
      } catch (...) {
        state_error = std::current_exception();
      }
    });
  }
  load(skel);
  if (verifier.joinable())
    verifier.join();
  if (state_error)
    std::rethrow_exception(state_error);
  if (int err = tcptrail_bpf__attach(skel))
    throw Error(fmt::format("attaching BPF programs: {}", errno_text(err)),
                "run with --verbose for libbpf's log");
  if (state) {
    // Attached, the program needs its link and, for its run statistics,
    // an fd; not its instance of the object.
    bpf_program *prog = state->progs.handle_inet_sock_set_state;
    impl->state.emplace();
    impl->state->name = bpf_program__name(prog);
    impl->state->link.reset(bpf_program__attach(prog));
    if (!impl->state->link)
      throw Error(fmt::format("attaching BPF program {}: {}",
                              impl->state->name, errno_text(errno)),
                  "run with --verbose for libbpf's log");
    impl->state->fd = fcntl(bpf_program__fd(prog), F_DUPFD_CLOEXEC, 0);
    if (impl->state->fd < 0)
      throw Error(fmt::format("keeping BPF program {}: {}",
                              impl->state->name, errno_text(errno)));
    state.reset();
  }
  if (walker.joinable())
    walker.join();
  if (walk_error)
    std::rethrow_exception(walk_error);
  // One instance (a plan without the state program: never a tracing
  // mode's today), so the walk runs now.
  if (seeding && !side_by_side)
    files = seed_owners(skel);
  shared_btf.reset(); // after the last load, the seeder's
  // The loads' memory (the kernel BTF's parse, the instances that are
  // gone) is free but still in the heap: hand it back before the run.
  malloc_trim(0);
  if (files && cfg.walk_record_states) {
    impl->walked.emplace();
    impl->walked->files = std::move(*files);
  }
  if (bpf_program__autoload(skel->progs.dump_open_conns)) {
    // Made now, while privileged; iterators are created from it later.
    union bpf_iter_link_info linfo = {};
    linfo.map.map_fd = static_cast<__u32>(bpf_map__fd(skel->maps.sock_infos));
    DECLARE_LIBBPF_OPTS(bpf_iter_attach_opts, opts);
    opts.link_info = &linfo;
    opts.link_info_len = sizeof(linfo);
    impl->open_conns.reset(
        bpf_program__attach_iter(skel->progs.dump_open_conns, &opts));
    if (!impl->open_conns)
      throw Error(fmt::format("attaching the socket storage iterator: {}",
                              errno_text(errno)),
                  "history needs Linux >= 5.9 (iter/bpf_sk_storage_map)");
  }
  if (bpf_program__autoload(skel->progs.dump_unstored_counters)) {
    impl->unstored_counters.reset(bpf_program__attach_iter(
        skel->progs.dump_unstored_counters, nullptr));
    if (!impl->unstored_counters)
      throw Error(fmt::format("attaching the socket file iterator: {}",
                              errno_text(errno)),
                  "history needs Linux >= 5.9 (iter/task_file)");
  }

  // History mode's HistoryAssembler completes sockets without storage itself.
  if (skel->rodata->cfg_lazy_storage && !cfg.aggregate) {
    impl->memory.emplace();
    if (!cfg.filter.pids.empty() || !cfg.filter.comm.empty())
      impl->owner_filter = cfg.filter;
  }
  if (skel->rodata->cfg_batch) {
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0)
      throw Error(fmt::format("counting the possible CPUs: {}",
                              errno_text(cpus)));
    impl->reorder.emplace(static_cast<std::size_t>(cpus));
    impl->flush_fd = bpf_program__fd(skel->progs.flush_stage);
  }
  impl->ring.reset(ring_buffer__new(bpf_map__fd(skel->maps.events),
                                    &Impl::on_record, impl.get(), nullptr));
  if (!impl->ring)
    throw Error(fmt::format("creating ring buffer consumer: {}",
                            errno_text(errno)));
  // Edge-triggered: the ring's poll reports readable whenever a single record
  // waits, so level-triggered epoll returned at once after nearly every drain
  // under load (~3,000 epoll_wait/s) and the consumer chased the producers
  // record by record. With EPOLLET it sleeps until the programs' batched
  // wake-up or the caller's timeout (~30 epoll_wait/s), and poll() drains
  // everything either way. libbpf registers the ring as index 0 (data.fd).
  {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = 0;
    if (epoll_ctl(ring_buffer__epoll_fd(impl->ring.get()), EPOLL_CTL_MOD,
                  bpf_map__fd(skel->maps.events), &ev))
      throw Error(fmt::format("making the ring buffer's epoll edge-triggered: {}",
                              errno_text(errno)));
  }
  return Tracer(std::move(impl));
}

Tracer::Tracer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tracer::Tracer(Tracer &&) noexcept = default;
Tracer &Tracer::operator=(Tracer &&) noexcept = default;
Tracer::~Tracer() = default;

int Tracer::poll(EventSink &sink, int timeout_ms) {
  impl_->sink = &sink;
  impl_->handled = 0;
  // Records are submitted mostly without a wake-up: epoll may time out with
  // data waiting, so always consume after it.
  int err = ring_buffer__poll(impl_->ring.get(), timeout_ms);
  if (err < 0 && err != -EINTR)
    throw Error(fmt::format("polling ring buffer: {}", errno_text(err)));
  if (impl_->reorder)
    impl_->flush_cpus(); // the marks land behind what was consumed
  impl_->consume();
  if (impl_->reorder)
    impl_->release(false);
  return impl_->handled;
}

int Tracer::finish(EventSink &sink) {
  // Closing a link unregisters its probe but does not wait for the runs
  // already in flight on other CPUs. They run with preemption disabled, so
  // one RCU grace period ends them all: membarrier(GLOBAL) waits for one
  // (synchronize_rcu()). Where it is refused (nohz_full CPUs), a pause far
  // longer than any run. After that every stage can be flushed and the ring
  // holds all there will be.
  tcptrail_bpf__detach(impl_->skel.get());
  if (impl_->state)
    impl_->state->link.reset();
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) != 0)
    usleep(10'000);
  impl_->sink = &sink;
  impl_->handled = 0;
  impl_->consume(); // room for the stages
  if (impl_->reorder) {
    impl_->flush_cpus();
    impl_->consume();
    impl_->release(true);
  }
  return impl_->handled;
}

const std::optional<Tracer::WalkedSockets> &Tracer::walked_sockets() const {
  return impl_->walked;
}

int Tracer::program_fd(const char *name) const {
  for (const auto &[prog, fd] : impl_->programs())
    if (prog == name)
      return fd;
  return -1;
}

namespace {

// Runs an iterator whose records are tt_conn_events, passing each to fn.
void read_conn_iterator(bpf_link *link, const char *what,
                        std::uint64_t &invalid,
                        void (*fn)(void *, const tt_conn_event &), void *ctx) {
  const int fd = bpf_iter_create(bpf_link__fd(link));
  if (fd < 0)
    throw Error(fmt::format("creating the {} iterator: {}", what,
                            errno_text(fd)));
  // Records may straddle read() boundaries: keep the tail for the next one.
  alignas(tt_conn_event) char buf[sizeof(tt_conn_event) * 64];
  std::size_t have = 0;
  for (;;) {
    const ssize_t n = read(fd, buf + have, sizeof(buf) - have);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      throw Error(fmt::format("reading the {} iterator: {}", what,
                              errno_text(err)));
    }
    if (n == 0)
      break;
    have += static_cast<std::size_t>(n);
    std::size_t off = 0;
    for (; have - off >= sizeof(tt_conn_event); off += sizeof(tt_conn_event)) {
      Record rec = decode(buf + off, sizeof(tt_conn_event));
      if (auto *conn = std::get_if<tt_conn_event>(&rec))
        fn(ctx, *conn);
      else
        ++invalid;
    }
    std::memmove(buf, buf + off, have - off);
    have -= off;
  }
  close(fd);
}

} // namespace

void Tracer::for_each_open_connection(void (*fn)(void *, const tt_conn_event &),
                                      void *ctx) const {
  if (impl_->open_conns)
    read_conn_iterator(impl_->open_conns.get(), "socket storage",
                       impl_->invalid, fn, ctx);
}

void Tracer::for_each_unstored_counters(
    void (*fn)(void *, const tt_conn_event &), void *ctx) const {
  if (impl_->unstored_counters)
    read_conn_iterator(impl_->unstored_counters.get(), "socket file",
                       impl_->invalid, fn, ctx);
}

namespace {

// Runs the kernel skipped, every program added up (bpf_prog_info).
std::uint64_t
recursion_misses(const std::vector<std::pair<std::string_view, int>> &progs) {
  std::uint64_t missed = 0;
  for (const auto &[name, fd] : progs) {
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
      missed += info.recursion_misses;
  }
  return missed;
}

} // namespace

TracerStats Tracer::stats() const {
  TracerStats out;
  out.invalid = impl_->invalid;
  // .bss is mmapped: plain loads, no syscall, no capability needed.
  const auto *bss = impl_->skel->bss;
  out.lost = __atomic_load_n(&bss->stat_lost, __ATOMIC_RELAXED);
  out.storage_fail = __atomic_load_n(&bss->stat_storage_fail, __ATOMIC_RELAXED);
  // Lazy mode: sockets SocketMemory had no room for miss the same things.
  if (impl_->memory)
    out.storage_fail += impl_->memory->forgotten();
  if (impl_->reorder)
    out.late = impl_->reorder->late();
  out.missed = recursion_misses(impl_->programs());
  return out;
}

std::uint64_t Tracer::kernel_losses() const {
  return __atomic_load_n(&impl_->skel->bss->stat_lost, __ATOMIC_RELAXED) +
         recursion_misses(impl_->programs());
}

tt_serve_stats Tracer::serve_stats() const {
  tt_serve_stats sum{};
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0)
    throw Error(fmt::format("counting the possible CPUs: {}", errno_text(cpus)));
  // A per-CPU value is rounded up to 8 bytes per CPU (already a multiple).
  std::vector<tt_serve_stats> per_cpu(static_cast<std::size_t>(cpus));
  const __u32 zero = 0;
  if (bpf_map_lookup_elem(bpf_map__fd(impl_->skel->maps.serve_stats), &zero,
                          per_cpu.data()) != 0)
    throw Error(fmt::format("reading the serve_stats map: {}",
                            errno_text(errno)));
  // The struct is all __u64: add it up as an array.
  constexpr std::size_t kWords = sizeof(tt_serve_stats) / sizeof(__u64);
  static_assert(sizeof(tt_serve_stats) % sizeof(__u64) == 0);
  __u64 total[kWords] = {};
  for (const tt_serve_stats &one : per_cpu) {
    __u64 words[kWords];
    std::memcpy(words, &one, sizeof(words));
    for (std::size_t i = 0; i < kWords; ++i)
      total[i] += words[i];
  }
  std::memcpy(&sum, total, sizeof(sum));
  return sum;
}

std::vector<ProgramRunStats> Tracer::program_run_stats() const {
  std::vector<ProgramRunStats> out;
  for (const auto &[name, fd] : impl_->programs()) {
    bpf_prog_info info{};
    __u32 len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
      continue;
    out.push_back({std::string(name), info.run_time_ns, info.run_cnt,
                   info.recursion_misses});
  }
  return out;
}

} // namespace tcptrail

namespace tcptrail {

// Here, where the skeleton is included once (its ELF bytes are a static
// array: a second includer would carry a second copy).
std::string_view embedded_bpf_object() {
  std::size_t size = 0;
  const void *bytes = tcptrail_bpf__elf_bytes(&size);
  return {static_cast<const char *>(bytes), size};
}

} // namespace tcptrail
