// Validation of raw ring-buffer records before any use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <variant>

#include "tcptrail/events.h"

namespace tcptrail {

enum class DecodeError : std::uint8_t { TooShort, BadKind, BadSize };

struct Invalid {
  DecodeError error;
};

// A record copied out of the ring, properly aligned, or why it was refused.
using Record = std::variant<tt_state_event, tt_seg_event, tt_conn_event,
                            tt_flush_event, Invalid>;

// Checks the header (kind, size == len == sizeof the kind's struct) and
// copies the record out. Never reads past `len`.
Record decode(const void *data, std::size_t len);

// One ring record may hold several records back to back (batched mode:
// TT_STAGE_RECORDS staged state records). Calls fn(piece, piece_len) for
// each: hdr.size bytes while that is a plausible length (at least a header,
// at most what is left), otherwise the whole rest, once, which decode()
// then refuses. Never reads past `len`.
template <typename Fn>
void for_each_record(const void *data, std::size_t len, Fn &&fn) {
  const auto *p = static_cast<const unsigned char *>(data);
  while (len > 0) {
    std::size_t piece = len;
    if (len >= sizeof(tt_header)) {
      tt_header hdr;
      __builtin_memcpy(&hdr, p, sizeof(hdr));
      if (hdr.size >= sizeof(tt_header) && hdr.size <= len)
        piece = hdr.size;
    }
    fn(static_cast<const void *>(p), piece);
    p += piece;
    len -= piece;
  }
}

} // namespace tcptrail
