// Output formats for the live `trace` stream. One formatter per format;
// each appends to a Buffer that the caller writes out in large chunks.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <string_view>

#include "cgroup.h"
#include "format/escape.h"
#include "tcptrail/events.h"

namespace tcptrail {

enum class Format { Table, Json, Csv };

struct OutputOptions {
  Format format = Format::Table;
  bool raw_seq = false;   // --raw-seq: raw seq numbers in table/csv
  bool wall_time = false; // -T: wall-clock time column in table
  bool color = false;     // ANSI colour in table output
  // CLOCK_REALTIME - CLOCK_MONOTONIC in ns, computed once at startup:
  // wall = ts_ns + wall_offset_ns.
  std::int64_t wall_offset_ns = 0;
  // ts_ns of tracer start, for the table's relative time column.
  std::uint64_t start_ns = 0;
  // The running kernel's RST reason names by value (enum sk_rst_reason in
  // its BTF, lower case without the SK_RST_REASON_ prefix); empty where the
  // kernel has no such enum: reasons are then numbers only.
  std::vector<std::string> rst_reasons;
  // Cgroup id -> path and container (JSON, CSV); null: ids only.
  std::shared_ptr<CgroupNames> cgroups;
};

// The owner's cgroup as JSON members, each preceded by a comma:
// ,"cgroup_id":N,"cgroup":"/path","container":"id","pod":"uid"; null for
// what is unknown (cgroup_id 0 is unknown).
void append_cgroup_json(Buffer &out, CgroupNames *names, std::uint64_t id);
// The same as three CSV fields "cgroup_id,cgroup,container" (no commas
// around; empty when unknown).
void append_cgroup_csv(Buffer &out, CgroupNames *names, std::uint64_t id);

// The name of RST reason `reason` in `names`, or empty.
std::string_view rst_reason_name(const std::vector<std::string> &names,
                                 std::uint32_t reason);

class Formatter {
public:
  virtual ~Formatter() = default;
  virtual void header(Buffer &out) = 0; // table/csv header line, json none
  virtual void state(Buffer &out, const tt_state_event &ev) = 0;
  virtual void segment(Buffer &out, const tt_seg_event &ev) = 0;
  virtual void lost(Buffer &out, std::uint64_t count) = 0;
};

std::unique_ptr<Formatter> make_formatter(const OutputOptions &opts);

// CLOCK_REALTIME ns of a bpf_ktime_get_ns() timestamp: ts_ns + offset,
// wrapping (in unsigned arithmetic) instead of overflowing for a timestamp
// no kernel produces, so that no record value is undefined behaviour.
inline std::int64_t realtime_ns(std::uint64_t ts_ns,
                                std::int64_t wall_offset_ns) {
  return static_cast<std::int64_t>(ts_ns +
                                   static_cast<std::uint64_t>(wall_offset_ns));
}

// "2026-11-21T12:00:00.123456789Z" for a CLOCK_REALTIME time in ns.
void append_rfc3339(Buffer &out, std::int64_t realtime_ns);

} // namespace tcptrail
