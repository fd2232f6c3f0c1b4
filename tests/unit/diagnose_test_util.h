// Synthetic events for the diagnose unit tests.
#pragma once

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "tcptrail/events.h"

namespace tcptrail::diagnose::testutil {

struct Sock {
  const char *laddr = "198.18.0.1";
  std::uint16_t lport = 40000;
  const char *raddr = "198.18.0.2";
  std::uint16_t rport = 80;
  std::uint32_t pid = 100;
  const char *comm = "client";
  std::uint32_t netns = 4026532000U;
};

inline void fill_sock(tt_sock &s, const Sock &in) {
  s.af = std::strchr(in.laddr, ':') ? 6 : 4;
  const int fam = s.af == 6 ? AF_INET6 : AF_INET;
  inet_pton(fam, in.laddr, s.laddr);
  inet_pton(fam, in.raddr, s.raddr);
  s.lport = in.lport;
  s.rport = in.rport;
  s.pid = in.pid;
  s.netns = in.netns;
  std::strncpy(s.comm, in.comm, TT_COMM_LEN - 1);
}

struct State {
  std::uint64_t cookie = 1;
  std::uint8_t old_state = 0;
  std::uint8_t new_state = 0;
  std::uint64_t ts_ns = 1'000'000'000;
  std::uint64_t old_ns = 0; // 0: no TT_F_OLD_TS
  std::uint16_t error = 0;
  std::uint8_t detail = TT_DETAIL_NONE;
  std::uint8_t flags = 0;
  Sock sock;
};

inline tt_state_event state_ev(const State &in) {
  tt_state_event ev{};
  ev.hdr.kind = TT_KIND_STATE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = in.ts_ns;
  ev.hdr.cookie = in.cookie;
  fill_sock(ev.sk, in.sock);
  ev.old_state = in.old_state;
  ev.new_state = in.new_state;
  ev.old_state_ns = in.old_ns;
  ev.flags = in.flags | (in.old_ns ? TT_F_OLD_TS : 0);
  ev.error = in.error;
  ev.detail = in.detail;
  return ev;
}

struct Seg {
  std::uint16_t kind = TT_KIND_RETRANSMIT;
  std::uint8_t what = TT_RETRANS_DATA;
  std::uint64_t cookie = 1;
  std::uint8_t state = 1;
  std::uint64_t ts_ns = 1'000'000'000;
  Sock sock;
};

inline tt_seg_event seg_ev(const Seg &in) {
  tt_seg_event ev{};
  ev.hdr.kind = in.kind;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_ns = in.ts_ns;
  ev.hdr.cookie = in.cookie;
  fill_sock(ev.sk, in.sock);
  ev.state = in.state;
  ev.what = in.what;
  return ev;
}

} // namespace tcptrail::diagnose::testutil
