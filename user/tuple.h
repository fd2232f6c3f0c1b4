// The four-tuple and namespace that tcptrail's socket descriptions share
// (tt_sock, tt_iter_sock, ConnectionRecord, StuckSocket, ...): they name the
// fields alike, so one copy serves every pair.
#pragma once

#include <cstring>

#include "tcptrail/events.h"

namespace tcptrail {

// Copies af, laddr, raddr, lport, rport and netns.
template <typename To, typename From> void copy_tuple(To &to, const From &from) {
  static_assert(sizeof(to.laddr) == TT_ADDR_LEN &&
                sizeof(from.laddr) == TT_ADDR_LEN);
  to.af = from.af;
  std::memcpy(to.laddr, from.laddr, TT_ADDR_LEN);
  std::memcpy(to.raddr, from.raddr, TT_ADDR_LEN);
  to.lport = from.lport;
  to.rport = from.rport;
  to.netns = from.netns;
}

} // namespace tcptrail
