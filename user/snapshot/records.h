// Validation of the iterator streams (bpf/iter.bpf.c) before any use: a
// sequence of fixed-size records, each starting with tt_header.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tcptrail/events.h"

namespace tcptrail {

struct IterRecords {
  std::vector<tt_iter_sock> sockets;
  std::vector<tt_iter_file> files;
  // Records refused (unknown kind, size that is not the kind's struct, or a
  // truncated tail). Parsing stops at the first one: the stream cannot be
  // resynchronised after it.
  std::uint64_t invalid = 0;
};

// Appends every record of `bytes` to `out`. Never reads past the end.
void decode_iter_stream(std::string_view bytes, IterRecords &out);

} // namespace tcptrail
