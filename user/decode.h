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
using Record =
    std::variant<tt_state_event, tt_seg_event, tt_conn_event, Invalid>;

// Checks the header (kind, size == len == sizeof the kind's struct) and
// copies the record out. Never reads past `len`.
Record decode(const void *data, std::size_t len);

} // namespace tcptrail
