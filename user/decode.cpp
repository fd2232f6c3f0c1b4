#include "decode.h"

#include <cstring>

namespace tcptrail {

namespace {

template <typename T> Record copy_out(const void *data, std::size_t len) {
  if (len != sizeof(T))
    return Invalid{DecodeError::BadSize};
  T ev;
  std::memcpy(&ev, data, sizeof(T));
  if (ev.hdr.size != sizeof(T))
    return Invalid{DecodeError::BadSize};
  return ev;
}

} // namespace

Record decode(const void *data, std::size_t len) {
  if (data == nullptr || len < sizeof(tt_header))
    return Invalid{DecodeError::TooShort};
  tt_header hdr;
  std::memcpy(&hdr, data, sizeof(hdr));
  switch (hdr.kind) {
  case TT_KIND_STATE:
    return copy_out<tt_state_event>(data, len);
  case TT_KIND_RETRANSMIT:
  case TT_KIND_RESET:
    return copy_out<tt_seg_event>(data, len);
  case TT_KIND_CONN:
    return copy_out<tt_conn_event>(data, len);
  case TT_KIND_FLUSH:
    return copy_out<tt_flush_event>(data, len);
  default:
    return Invalid{DecodeError::BadKind};
  }
}

} // namespace tcptrail
