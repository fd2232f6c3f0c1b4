// The one table of which BPF programs each mode loads: required ones (the
// mode cannot run without them), optional ones (what is lost without them)
// and those with an alternative (what is used instead). Tracer::create()
// loads a mode's programs from it; `tcptrail doctor` reports from it.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bpf/probe.h"

namespace tcptrail {

enum class Mode : std::uint8_t {
  Trace,
  History,
  Snapshot,
  Leaks,
  Diagnose,
  Serve
};
inline constexpr Mode kModes[] = {Mode::Trace,  Mode::History,
                                  Mode::Snapshot, Mode::Leaks,
                                  Mode::Diagnose, Mode::Serve};
std::string_view mode_name(Mode m);

constexpr std::uint8_t mode_bit(Mode m) {
  return static_cast<std::uint8_t>(1u << static_cast<unsigned>(m));
}

enum class Need : std::uint8_t {
  Required,    // the mode cannot run without it
  Optional,    // the mode runs and loses `effect`
  Alternative, // the mode runs the same way by other means: `effect`
};

struct ProgramSpec {
  std::string_view program; // the BPF function's name
  std::uint8_t modes;       // mode_bit()s of the modes that load it
  Need need;
  Feature feature; // what the kernel must allow for it to load or run
  // Optional: what the mode loses without it. Alternative: what it does
  // instead.
  std::string_view effect;
};

std::span<const ProgramSpec> program_table();
// The entry of a program, or nullptr.
const ProgramSpec *find_program(std::string_view program);

enum class ModeStatus : std::uint8_t { Ok, Degraded, Unavailable };
std::string_view status_name(ModeStatus s);

struct ModeReport {
  Mode mode;
  ModeStatus status = ModeStatus::Ok;
  // One line per program the kernel does not allow: Required (why it is
  // unavailable), Optional (what is lost), Alternative (what is used).
  struct Line {
    const ProgramSpec *spec;
    std::string why; // the probe's answer
  };
  std::vector<Line> lines;
};

// What `mode` can do with these probe answers.
ModeReport assess(Mode mode, KernelProbes &probes);

} // namespace tcptrail
