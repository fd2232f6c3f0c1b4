// Rendering of a diagnose Report: the human text report and the JSON
// document described in docs/diagnose-schema.md.
#pragma once

#include <string>

#include "cgroup.h"
#include "diagnose/report.h"

namespace tcptrail::diagnose {

inline constexpr const char *kSchema = "tcptrail.diagnose/1";

struct TextOptions {
  bool color = false;   // ANSI colour (a terminal, no --no-color/NO_COLOR)
  bool unicode = true;  // block characters in histograms, else ASCII
};

std::string render_text(const Report &r, const TextOptions &opts);

// One JSON document (pretty-printed, ends with a newline). Strings a
// process controls are valid UTF-8 whatever their bytes (U+FFFD).
// names: cgroup id -> path and container for the evidence's cgroup fields;
// nullptr gives ids only.
std::string render_json(const Report &r, CgroupNames *names = nullptr);

// 0 when no problem was found, 3 otherwise.
int exit_code(const Report &r);

} // namespace tcptrail::diagnose
