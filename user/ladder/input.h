// Reading a saved `tcptrail trace -f json` stream back.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "filter.h"
#include "ladder/event.h"

namespace tcptrail::ladder {

struct Input {
  std::vector<Event> events;
  std::uint64_t lost = 0; // from "lost" records
};

// Every event of `in` that `filter` keeps (the decisions the kernel makes
// live), up to `count` (0: all). A malformed line throws tcptrail::Error
// "NAME:LINE: reason".
Input read_trace_json(std::istream &in, const std::string &name,
                      const FilterSpec &filter, std::uint64_t count = 0);

// Whether `filter` keeps `ev` (as trace's in-kernel filters would).
bool keep(const FilterSpec &filter, const Event &ev);

} // namespace tcptrail::ladder
