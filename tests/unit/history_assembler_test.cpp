// HistoryAssembler: synthetic event streams -> exact connection records.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "history/assembler.h"
#include "history/payload.h"
#include "history_test_util.h"

namespace tcptrail::history_test {
namespace {

using S = StateSpec;
using T = TcpState;

constexpr std::uint8_t st(T s) { return static_cast<std::uint8_t>(s); }

constexpr std::uint64_t T0 = 1 * kSec;
constexpr std::uint32_t IL = 1000; // local ISN
constexpr std::uint32_t IR = 5000; // remote ISN
constexpr std::uint8_t A = TT_F_ACTIVE;
constexpr std::uint8_t P = TT_F_PASSIVE;
constexpr std::uint8_t TW = TT_F_INFERRED;

std::vector<Input> active_close(std::uint64_t cookie = kCookieA) {
  return {
      make_state(S{.cookie = cookie,
                   .ts = T0,
                   .from = T::Close,
                   .to = T::SynSent,
                   .flags = A,
                   .una = IL,
                   .nxt = IL + 1,
                   .isn_local = IL,
                   .lport = 0}),
      make_state(S{.cookie = cookie,
                   .ts = T0 + 210 * kUs,
                   .from = T::SynSent,
                   .to = T::Established,
                   .flags = A,
                   .una = IL + 1,
                   .nxt = IL + 1,
                   .rcv = IR + 1,
                   .acked = 1,
                   .isn_local = IL,
                   .isn_remote = IR}),
      make_state(S{.cookie = cookie,
                   .ts = T0 + 210 * kUs + 11'900 * kMs,
                   .from = T::Established,
                   .to = T::FinWait1,
                   .flags = A,
                   .una = IL + 101,
                   .nxt = IL + 102,
                   .rcv = IR + 301,
                   .acked = 101,
                   .received = 300,
                   .isn_local = IL,
                   .isn_remote = IR}),
      make_state(S{.cookie = cookie,
                   .ts = T0 + 260 * kUs + 11'900 * kMs,
                   .from = T::FinWait1,
                   .to = T::FinWait2,
                   .flags = A,
                   .una = IL + 102,
                   .nxt = IL + 102,
                   .rcv = IR + 301,
                   .acked = 102,
                   .received = 300,
                   .isn_local = IL,
                   .isn_remote = IR}),
      make_state(S{.cookie = cookie,
                   .ts = T0 + 360 * kUs + 11'900 * kMs,
                   .from = T::FinWait2,
                   .to = T::TimeWait,
                   .flags = A | TW,
                   .detail = TT_DETAIL_TW,
                   .una = IL + 102,
                   .nxt = IL + 102,
                   .rcv = IR + 302,
                   .acked = 102,
                   .received = 301,
                   .isn_local = IL,
                   .isn_remote = IR}),
  };
}

const std::string kActiveClose =
    "#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 role=active "
    "isn=1000/5000 bytes=100/300 retr=0 rst=0/0 end=closed first=local err=0 "
    "prior=- | SYN_SENT@1000000000+210000[1000,1001,0] "
    "ESTABLISHED@1000210000+11900000000[1001,1001,5001] "
    "FIN_WAIT1@12900210000+50000[1101,1102,5301] "
    "FIN_WAIT2@12900260000+100000[1102,1102,5301] "
    "TIME_WAIT@12900360000+-[1102,1102,5302]";

std::vector<Input> passive_close() {
  const auto s = [](std::uint64_t ts, T from, T to, std::uint32_t una,
                    std::uint32_t nxt, std::uint32_t rcv, std::uint64_t acked,
                    std::uint64_t received) {
    return make_state(S{.cookie = kCookieB,
                        .ts = ts,
                        .from = from,
                        .to = to,
                        .flags = P,
                        .una = una,
                        .nxt = nxt,
                        .rcv = rcv,
                        .acked = acked,
                        .received = received,
                        .isn_local = 7000,
                        .isn_remote = 9000,
                        .lport = 80,
                        .rport = 50000,
                        .pid = 77,
                        .comm = "nginx"});
  };
  return {
      s(T0, T::Listen, T::SynRecv, 7001, 7001, 9001, 0, 0),
      s(T0 + 100 * kUs, T::SynRecv, T::Established, 7001, 7001, 9001, 0, 0),
      s(T0 + 2 * kSec, T::Established, T::CloseWait, 7501, 7501, 9202, 500,
        201),
      s(T0 + 2 * kSec + kMs, T::CloseWait, T::LastAck, 7501, 7502, 9202, 500,
        201),
      s(T0 + 2 * kSec + 1300 * kUs, T::LastAck, T::Close, 7502, 7502, 9202, 501,
        201),
  };
}

const std::string kPassiveClose =
    "#1002 77/nginx 198.18.0.1:80>198.18.0.2:50000 4026531840 role=passive "
    "isn=7000/9000 bytes=500/200 retr=0 rst=0/0 end=closed first=remote "
    "err=0 prior=- | SYN_RECV@1000000000+100000[7001,7001,9001] "
    "ESTABLISHED@1000100000+1999900000[7001,7001,9001] "
    "CLOSE_WAIT@3000000000+1000000[7501,7501,9202] "
    "LAST_ACK@3001000000+300000[7501,7502,9202] "
    "CLOSE@3001300000+-[7502,7502,9202]";

// An active connection established at T0 + 1 ms (payload counters 0).
std::vector<Input> established(std::uint64_t cookie = kCookieA) {
  return {
      make_state(S{.cookie = cookie,
                   .ts = T0,
                   .from = T::Close,
                   .to = T::SynSent,
                   .flags = A,
                   .una = IL,
                   .nxt = IL + 1,
                   .isn_local = IL,
                   .lport = 0}),
      make_state(S{.cookie = cookie,
                   .ts = T0 + kMs,
                   .from = T::SynSent,
                   .to = T::Established,
                   .flags = A,
                   .una = IL + 1,
                   .nxt = IL + 1,
                   .rcv = IR + 1,
                   .acked = 1,
                   .isn_local = IL,
                   .isn_remote = IR}),
  };
}

std::vector<Input> concat(std::vector<Input> a, const std::vector<Input> &b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Case {
  const char *description;
  std::vector<Input> events;
  std::vector<std::string> expected; // describe() of each finished record
};

std::vector<Case> cases() {
  std::vector<Case> c;
  c.push_back({"active close through FIN_WAIT2 and inferred TIME_WAIT",
               active_close(),
               {kActiveClose}});
  c.push_back({"passive close through CLOSE_WAIT and LAST_ACK",
               passive_close(),
               {kPassiveClose}});
  c.push_back(
      {"simultaneous close through CLOSING",
       concat(established(),
              {
                  make_state(S{.ts = T0 + kSec,
                               .from = T::Established,
                               .to = T::FinWait1,
                               .flags = A,
                               .una = IL + 11,
                               .nxt = IL + 12,
                               .rcv = IR + 21,
                               .acked = 11,
                               .received = 20,
                               .isn_local = IL,
                               .isn_remote = IR}),
                  make_state(S{.ts = T0 + kSec + 10 * kUs,
                               .from = T::FinWait1,
                               .to = T::Closing,
                               .flags = A,
                               .una = IL + 11,
                               .nxt = IL + 12,
                               .rcv = IR + 22,
                               .acked = 11,
                               .received = 21,
                               .isn_local = IL,
                               .isn_remote = IR}),
                  make_state(S{.ts = T0 + kSec + 30 * kUs,
                               .from = T::Closing,
                               .to = T::TimeWait,
                               .flags = A | TW,
                               .detail = TT_DETAIL_TW,
                               .una = IL + 12,
                               .nxt = IL + 12,
                               .rcv = IR + 22,
                               .acked = 12,
                               .received = 21,
                               .isn_local = IL,
                               .isn_remote = IR}),
              }),
       {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
        "role=active isn=1000/5000 bytes=10/20 retr=0 rst=0/0 end=closed "
        "first=simultaneous err=0 prior=- | "
        "SYN_SENT@1000000000+1000000[1000,1001,0] "
        "ESTABLISHED@1001000000+999000000[1001,1001,5001] "
        "FIN_WAIT1@2000000000+10000[1011,1012,5021] "
        "CLOSING@2000010000+20000[1011,1012,5022] "
        "TIME_WAIT@2000030000+-[1012,1012,5022]"}});
  c.push_back(
      {"connect refused: RST in SYN_SENT, ECONNREFUSED",
       {
           make_state(S{.ts = T0,
                        .from = T::Close,
                        .to = T::SynSent,
                        .flags = A,
                        .una = IL,
                        .nxt = IL + 1,
                        .isn_local = IL,
                        .lport = 0}),
           make_seg(SegSpec{.ts = T0 + 80 * kUs,
                            .kind = TT_KIND_RESET,
                            .what = TT_RESET_RECEIVED,
                            .state = T::SynSent}),
           make_state(S{.ts = T0 + 100 * kUs,
                        .from = T::SynSent,
                        .to = T::Close,
                        .flags = A,
                        .detail = TT_DETAIL_RESET_RCVD,
                        .error = 111,
                        .una = IL,
                        .nxt = IL + 1,
                        .isn_local = IL}),
       },
       {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
        "role=active isn=1000/- bytes=0/0 retr=0 rst=0/1 end=refused first=- "
        "err=111 prior=- | SYN_SENT@1000000000+100000[1000,1001,0] "
        "CLOSE@1000100000+-[1000,1001,0]"}});
  c.push_back(
      {"connect timeout: SYN retransmits, ETIMEDOUT; retransmits = max(events, "
       "total_retrans)",
       {
           make_state(S{.ts = T0,
                        .from = T::Close,
                        .to = T::SynSent,
                        .flags = A,
                        .una = IL,
                        .nxt = IL + 1,
                        .isn_local = IL,
                        .lport = 0}),
           make_seg(SegSpec{
               .ts = T0 + kSec, .what = TT_RETRANS_SYN, .state = T::SynSent}),
           make_seg(SegSpec{.ts = T0 + 3 * kSec,
                            .what = TT_RETRANS_SYN,
                            .state = T::SynSent}),
           make_seg(SegSpec{.ts = T0 + 7 * kSec,
                            .what = TT_RETRANS_SYN,
                            .state = T::SynSent}),
           make_state(S{.ts = T0 + 15 * kSec,
                        .from = T::SynSent,
                        .to = T::Close,
                        .flags = A,
                        .detail = TT_DETAIL_ERROR,
                        .error = 110,
                        .una = IL,
                        .nxt = IL + 1,
                        .retrans = 2,
                        .isn_local = IL}),
       },
       {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
        "role=active isn=1000/- bytes=0/0 retr=3 rst=0/0 end=timeout first=- "
        "err=110 prior=- | SYN_SENT@1000000000+15000000000[1000,1001,0] "
        "CLOSE@16000000000+-[1000,1001,0]"}});
  c.push_back({"reset received in ESTABLISHED",
               concat(established(),
                      {
                          make_seg(SegSpec{.ts = T0 + 2 * kSec - kUs,
                                           .kind = TT_KIND_RESET,
                                           .what = TT_RESET_RECEIVED}),
                          make_state(S{.ts = T0 + 2 * kSec,
                                       .from = T::Established,
                                       .to = T::Close,
                                       .flags = A,
                                       .detail = TT_DETAIL_RESET_RCVD,
                                       .error = 104,
                                       .una = IL + 51,
                                       .nxt = IL + 51,
                                       .rcv = IR + 11,
                                       .acked = 51,
                                       .received = 10,
                                       .isn_local = IL,
                                       .isn_remote = IR}),
                      }),
               {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
                "role=active isn=1000/5000 bytes=50/10 retr=0 rst=0/1 "
                "end=reset_received first=- err=104 prior=- | "
                "SYN_SENT@1000000000+1000000[1000,1001,0] "
                "ESTABLISHED@1001000000+1999000000[1001,1001,5001] "
                "CLOSE@3000000000+-[1051,1051,5011]"}});
  c.push_back({"reset sent in ESTABLISHED (abort)",
               concat(established(),
                      {
                          make_seg(SegSpec{.ts = T0 + 2 * kSec - kUs,
                                           .kind = TT_KIND_RESET,
                                           .what = TT_RESET_SENT}),
                          make_state(S{.ts = T0 + 2 * kSec,
                                       .from = T::Established,
                                       .to = T::Close,
                                       .flags = A,
                                       .detail = TT_DETAIL_RESET_SENT,
                                       .una = IL + 51,
                                       .nxt = IL + 51,
                                       .rcv = IR + 11,
                                       .acked = 51,
                                       .received = 10,
                                       .isn_local = IL,
                                       .isn_remote = IR}),
                      }),
               {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
                "role=active isn=1000/5000 bytes=50/10 retr=0 rst=1/0 "
                "end=reset_sent first=- err=0 prior=- | "
                "SYN_SENT@1000000000+1000000[1000,1001,0] "
                "ESTABLISHED@1001000000+1999000000[1001,1001,5001] "
                "CLOSE@3000000000+-[1051,1051,5011]"}});
  c.push_back({"CLOSE from ESTABLISHED without a detail: the RST event decides",
               concat(established(),
                      {
                          make_seg(SegSpec{.ts = T0 + 2 * kSec - kUs,
                                           .kind = TT_KIND_RESET,
                                           .what = TT_RESET_RECEIVED}),
                          make_state(S{.ts = T0 + 2 * kSec,
                                       .from = T::Established,
                                       .to = T::Close,
                                       .flags = A,
                                       .una = IL + 1,
                                       .nxt = IL + 1,
                                       .rcv = IR + 1,
                                       .acked = 1,
                                       .isn_local = IL,
                                       .isn_remote = IR}),
                      }),
               {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
                "role=active isn=1000/5000 bytes=0/0 retr=0 rst=0/1 "
                "end=reset_received first=- err=0 prior=- | "
                "SYN_SENT@1000000000+1000000[1000,1001,0] "
                "ESTABLISHED@1001000000+1999000000[1001,1001,5001] "
                "CLOSE@3000000000+-[1001,1001,5001]"}});
  c.push_back(
      {"An orphaned FIN_WAIT2 ends in CLOSE, not TIME_WAIT: peer FIN not "
       "received, not subtracted; the end says the peer never closed",
       concat(established(),
              {
                  make_state(S{.ts = T0 + kSec,
                               .from = T::Established,
                               .to = T::FinWait1,
                               .flags = A,
                               .una = IL + 31,
                               .nxt = IL + 32,
                               .rcv = IR + 41,
                               .acked = 31,
                               .received = 40,
                               .isn_local = IL,
                               .isn_remote = IR}),
                  make_state(S{.ts = T0 + kSec + 20 * kUs,
                               .from = T::FinWait1,
                               .to = T::FinWait2,
                               .flags = A,
                               .una = IL + 32,
                               .nxt = IL + 32,
                               .rcv = IR + 41,
                               .acked = 32,
                               .received = 40,
                               .isn_local = IL,
                               .isn_remote = IR}),
                  make_state(S{.ts = T0 + kSec + 40 * kUs,
                               .from = T::FinWait2,
                               .to = T::Close,
                               .flags = A,
                               .detail = TT_DETAIL_ORPHAN_FIN_WAIT2,
                               .una = IL + 32,
                               .nxt = IL + 32,
                               .rcv = IR + 41,
                               .acked = 32,
                               .received = 40,
                               .isn_local = IL,
                               .isn_remote = IR}),
              }),
       {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
        "role=active isn=1000/5000 bytes=30/40 retr=0 rst=0/0 "
        "end=orphan_fin_wait2 first=local err=0 prior=- | "
        "SYN_SENT@1000000000+1000000[1000,1001,0] "
        "ESTABLISHED@1001000000+999000000[1001,1001,5001] "
        "FIN_WAIT1@2000000000+20000[1031,1032,5041] "
        "FIN_WAIT2@2000020000+20000[1032,1032,5041] "
        "CLOSE@2000040000+-[1032,1032,5041]"}});
  {
    const auto child = [](std::uint64_t cookie, std::uint64_t ts, T from, T to,
                          std::uint16_t lport, std::uint8_t detail = 0) {
      return make_state(S{.cookie = cookie,
                          .ts = ts,
                          .from = from,
                          .to = to,
                          .flags = P,
                          .detail = detail,
                          .lport = lport,
                          .rport = 50001,
                          .pid = 77,
                          .comm = "nginx"});
    };
    c.push_back(
        {"listener counts the passive children established on its port",
         {
             make_state(S{.cookie = 0x2000,
                          .ts = T0,
                          .from = T::Close,
                          .to = T::Listen,
                          .lport = 80,
                          .rport = 0,
                          .pid = 77,
                          .comm = "nginx"}),
             child(0x2001, T0 + kSec, T::Listen, T::SynRecv, 80),
             child(0x2001, T0 + kSec + 100 * kUs, T::SynRecv, T::Established,
                   80),
             child(0x2002, T0 + 2 * kSec, T::Listen, T::SynRecv, 80),
             child(0x2002, T0 + 2 * kSec + 100 * kUs, T::SynRecv,
                   T::Established, 80),
             child(0x2003, T0 + 3 * kSec, T::Listen, T::SynRecv, 80),
             child(0x2003, T0 + 3 * kSec + kMs, T::SynRecv, T::Close, 80,
                   TT_DETAIL_RESET_RCVD),
             child(0x2004, T0 + 4 * kSec, T::Listen, T::SynRecv, 81),
             child(0x2004, T0 + 4 * kSec + 100 * kUs, T::SynRecv,
                   T::Established, 81),
             make_state(S{.cookie = 0x2000,
                          .ts = T0 + 10 * kSec,
                          .from = T::Listen,
                          .to = T::Close,
                          .lport = 80,
                          .rport = 0,
                          .pid = 77,
                          .comm = "nginx"}),
         },
         {"#2003 77/nginx 198.18.0.1:80>198.18.0.2:50001 4026531840 "
          "role=passive isn=-/- bytes=0/0 retr=0 rst=0/0 end=reset_received "
          "first=- err=0 prior=- | SYN_RECV@4000000000+1000000[0,0,0] "
          "CLOSE@4001000000+-[0,0,0]",
          "#2000 77/nginx 198.18.0.1:80>198.18.0.2:0 4026531840 role=passive "
          "listener accepted=2 isn=-/- bytes=0/0 retr=0 rst=0/0 end=closed "
          "first=- err=0 prior=- | LISTEN@1000000000+10000000000[0,0,0] "
          "CLOSE@11000000000+-[0,0,0]"}});
  }
  c.push_back(
      {"already open at start: path starts at the first observed state",
       {
           make_state(S{.ts = T0,
                        .from = T::Established,
                        .to = T::FinWait1,
                        .una = 3000,
                        .nxt = 3001,
                        .rcv = 8000,
                        .acked = 5000,
                        .received = 7000}),
           make_state(S{.ts = T0 + 40 * kUs,
                        .from = T::FinWait1,
                        .to = T::FinWait2,
                        .una = 3001,
                        .nxt = 3001,
                        .rcv = 8000,
                        .acked = 5001,
                        .received = 7000}),
           make_state(S{.ts = T0 + kMs,
                        .from = T::FinWait2,
                        .to = T::TimeWait,
                        .flags = TW,
                        .detail = TT_DETAIL_TW,
                        .una = 3001,
                        .nxt = 3001,
                        .rcv = 8001,
                        .acked = 5001,
                        .received = 7001}),
       },
       {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 role=? "
        "isn=-/- bytes=5000/7000 retr=0 rst=0/0 end=closed first=local err=0 "
        "prior=ESTABLISHED | FIN_WAIT1@1000000000+40000[3000,3001,8000] "
        "FIN_WAIT2@1000040000+960000[3001,3001,8000] "
        "TIME_WAIT@1001000000+-[3001,3001,8001]"}});
  {
    constexpr std::uint32_t il = 0xffffff00U, ir = 0xfffffff0U;
    c.push_back({"32-bit wraparound: ISNs near 2^32, payload crosses it",
                 {
                     make_state(S{.ts = T0,
                                  .from = T::Close,
                                  .to = T::SynSent,
                                  .flags = A,
                                  .una = il,
                                  .nxt = il + 1,
                                  .isn_local = il,
                                  .lport = 0}),
                     make_state(S{.ts = T0 + kMs,
                                  .from = T::SynSent,
                                  .to = T::Established,
                                  .flags = A,
                                  .una = il + 1,
                                  .nxt = il + 1,
                                  .rcv = ir + 1,
                                  .acked = 1,
                                  .isn_local = il,
                                  .isn_remote = ir}),
                     make_state(S{.ts = T0 + kSec,
                                  .from = T::Established,
                                  .to = T::FinWait1,
                                  .flags = A,
                                  .una = il + 513,
                                  .nxt = il + 514,
                                  .rcv = ir + 257,
                                  .acked = 513,
                                  .received = 256,
                                  .isn_local = il,
                                  .isn_remote = ir}),
                     make_state(S{.ts = T0 + kSec + 50 * kUs,
                                  .from = T::FinWait1,
                                  .to = T::FinWait2,
                                  .flags = A,
                                  .una = il + 514,
                                  .nxt = il + 514,
                                  .rcv = ir + 257,
                                  .acked = 514,
                                  .received = 256,
                                  .isn_local = il,
                                  .isn_remote = ir}),
                     make_state(S{.ts = T0 + kSec + 90 * kUs,
                                  .from = T::FinWait2,
                                  .to = T::TimeWait,
                                  .flags = A | TW,
                                  .detail = TT_DETAIL_TW,
                                  .una = il + 514,
                                  .nxt = il + 514,
                                  .rcv = ir + 258,
                                  .acked = 514,
                                  .received = 257,
                                  .isn_local = il,
                                  .isn_remote = ir}),
                 },
                 {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
                  "role=active isn=4294967040/4294967280 bytes=512/256 retr=0 "
                  "rst=0/0 end=closed first=local err=0 prior=- | "
                  "SYN_SENT@1000000000+1000000[4294967040,4294967041,0] "
                  "ESTABLISHED@1001000000+999000000[4294967041,4294967041,"
                  "4294967281] FIN_WAIT1@2000000000+50000[257,258,241] "
                  "FIN_WAIT2@2000050000+40000[258,258,241] "
                  "TIME_WAIT@2000090000+-[258,258,242]"}});
  }
  {
    // A (active) and B (passive) interleaved; A's FIN_WAIT1 -> FIN_WAIT2
    // arrives before its ESTABLISHED -> FIN_WAIT1, B's CLOSE_WAIT before
    // its ESTABLISHED.
    const std::vector<Input> a = active_close(), b = passive_close();
    c.push_back({"out of order: interleaved sockets, one pair swapped each",
                 {b[0], a[0], a[1], b[2], b[1], a[3], a[2], b[3], a[4], b[4]},
                 {kActiveClose, kPassiveClose}});
  }
  c.push_back(
      {"reuse after close (tcp_disconnect): a later birth starts a new record",
       {
           make_state(S{.ts = T0,
                        .from = T::Close,
                        .to = T::SynSent,
                        .flags = A,
                        .una = IL,
                        .nxt = IL + 1,
                        .isn_local = IL,
                        .lport = 0}),
           make_state(S{.ts = T0 + kMs,
                        .from = T::SynSent,
                        .to = T::Close,
                        .flags = A,
                        .detail = TT_DETAIL_RESET_RCVD,
                        .error = 111,
                        .una = IL,
                        .nxt = IL + 1,
                        .isn_local = IL}),
           make_state(S{.ts = T0 + 5 * kMs,
                        .from = T::Close,
                        .to = T::SynSent,
                        .flags = A,
                        .una = 77,
                        .nxt = 78,
                        .isn_local = 77,
                        .lport = 0}),
           make_state(S{.ts = T0 + 6 * kMs,
                        .from = T::SynSent,
                        .to = T::Close,
                        .flags = A,
                        .detail = TT_DETAIL_RESET_RCVD,
                        .error = 111,
                        .una = 77,
                        .nxt = 78,
                        .isn_local = 77,
                        .lport = 40001}),
       },
       {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
        "role=active isn=1000/- bytes=0/0 retr=0 rst=0/0 end=refused first=- "
        "err=111 prior=- | SYN_SENT@1000000000+1000000[1000,1001,0] "
        "CLOSE@1001000000+-[1000,1001,0]",
        "#1001 1234/curl 198.18.0.1:40001>198.18.0.2:80 4026531840 "
        "role=active isn=77/- bytes=0/0 retr=0 rst=0/0 end=refused first=- "
        "err=111 prior=- | SYN_SENT@1005000000+1000000[77,78,0] "
        "CLOSE@1006000000+-[77,78,0]"}});
  {
    // Simultaneous open and close: 6 states, one more than kept.
    const auto s = [](std::uint64_t ts, T from, T to) {
      return make_state(S{.ts = ts, .from = from, .to = to, .flags = A});
    };
    c.push_back(
        {"a path longer than kMaxSteps keeps the first and latest steps",
         {s(T0, T::Close, T::SynSent), s(T0 + kMs, T::SynSent, T::SynRecv),
          s(T0 + 2 * kMs, T::SynRecv, T::Established),
          s(T0 + 3 * kMs, T::Established, T::FinWait1),
          s(T0 + 4 * kMs, T::FinWait1, T::Closing),
          make_state(S{.ts = T0 + 5 * kMs,
                       .from = T::Closing,
                       .to = T::TimeWait,
                       .flags = A | TW,
                       .detail = TT_DETAIL_TW})},
         {"#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
          "role=active isn=-/- bytes=0/0 retr=0 rst=0/0 end=closed "
          "first=simultaneous err=0 prior=- dropped=1 | "
          "SYN_SENT@1000000000+-[0,0,0] "
          "ESTABLISHED@1002000000+1000000[0,0,0] "
          "FIN_WAIT1@1003000000+1000000[0,0,0] "
          "CLOSING@1004000000+1000000[0,0,0] "
          "TIME_WAIT@1005000000+-[0,0,0]"}});
  }
  return c;
}

TEST(HistoryAssembler, TableOfScenarios) {
  for (const Case &tc : cases()) {
    SCOPED_TRACE(tc.description);
    HistoryAssembler hist;
    feed(hist, tc.events);
    std::vector<ConnectionRecord> out;
    // Not before the grace period has passed...
    hist.advance(last_ts(tc.events) + HistoryAssembler::kDefaultGraceNs - 1,
                 out);
    std::vector<std::string> got;
    for (const auto &r : out)
      got.push_back(describe(r));
    // ...(except a reused socket's earlier record, emitted at once)...
    const std::size_t early = got.size();
    hist.advance(last_ts(tc.events) + HistoryAssembler::kDefaultGraceNs, out);
    for (std::size_t i = early; i < out.size(); ++i)
      got.push_back(describe(out[i]));
    EXPECT_EQ(got, tc.expected);
    if (early > 0) {
      EXPECT_LT(early, tc.expected.size());
    }
    EXPECT_EQ(hist.evicted(), 0u);
  }
}

// A client socket in history's lazy mode has no storage: the kernel sends
// its transitions as it sees them, without role, ISNs or the owner outside
// system calls. complete_unstored() must derive the same record the kernel
// would have aggregated.
std::vector<Input> unstored(std::vector<Input> events) {
  for (Input &in : events) {
    auto &ev = std::get<tt_state_event>(in);
    ev.stored = 0;
    ev.flags &= static_cast<std::uint8_t>(
        ~(TT_F_ACTIVE | TT_F_PASSIVE | TT_F_ISN_LOCAL | TT_F_ISN_REMOTE));
    ev.isn_local = ev.isn_remote = 0;
    // The kernel names the owner only in a system call's context.
    const bool syscall =
        (ev.old_state == st(T::Close) && ev.new_state == st(T::SynSent)) ||
        ev.new_state == st(T::FinWait1);
    if (!syscall) {
      ev.flags &= static_cast<std::uint8_t>(~TT_F_OWNER);
      ev.sk.pid = 0;
      std::memset(ev.sk.comm, 0, sizeof(ev.sk.comm));
    }
  }
  return events;
}

std::vector<std::string> records_after_grace(HistoryAssembler &hist,
                                             const std::vector<Input> &evs) {
  std::vector<ConnectionRecord> out;
  hist.advance(last_ts(evs) + HistoryAssembler::kDefaultGraceNs, out);
  std::vector<std::string> got;
  for (const auto &r : out)
    got.push_back(describe(r));
  return got;
}

TEST(HistoryAssembler, UnstoredPathIsCompletedAsStorageWouldHave) {
  const std::vector<Input> events = unstored(active_close());
  ASSERT_EQ(std::get<tt_state_event>(events[1]).flags & TT_F_ISN_REMOTE, 0);
  HistoryAssembler hist;
  feed(hist, events);
  EXPECT_EQ(records_after_grace(hist, events),
            std::vector<std::string>{kActiveClose});
}

TEST(HistoryAssembler, UnstoredOwnerIsTheLatestSystemCaller) {
  std::vector<Input> events = unstored(active_close());
  // close() by another process (the fd was passed on): it owns it now, as
  // take_owner() in the state program would record.
  auto &fin = std::get<tt_state_event>(events[2]);
  fin.sk.pid = 99;
  std::strncpy(fin.sk.comm, "other", TT_COMM_LEN);
  HistoryAssembler hist;
  feed(hist, events);
  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid, 99u);
  EXPECT_EQ(out[0].comm, "other");
}

TEST(HistoryAssembler, UnstoredResetSeenFirstExplainsTheClose) {
  // FIN_WAIT2, then we abort (RST sent): the kernel's CLOSE reads as a
  // timewait inference without storage's RST flag.
  std::vector<Input> events = unstored(active_close());
  events.insert(events.begin() + 4,
                make_seg(SegSpec{.ts = T0 + 300 * kUs + 11'900 * kMs,
                                 .kind = TT_KIND_RESET,
                                 .what = TT_RESET_SENT,
                                 .state = T::FinWait2,
                                 .stored = false}));
  HistoryAssembler hist;
  feed(hist, events);
  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].end, ConnEnd::ResetSent);
  EXPECT_EQ(out[0].resets_sent, 1u);
  ASSERT_FALSE(out[0].path.empty());
  EXPECT_EQ(out[0].path.back().state, st(T::Close));
}

TEST(HistoryAssembler, UnstoredConnectTimeoutTakesPortAndIsnFromItsSyn) {
  // connect() picks the port after SYN_SENT is entered, and CLOSE reads 0
  // again: only the SYN retransmit shows it, and the SYN's seq is the ISN.
  const std::vector<Input> events = {
      make_state(S{.ts = T0,
                   .from = T::Close,
                   .to = T::SynSent,
                   .lport = 0,
                   .stored = false}),
      make_seg(SegSpec{.ts = T0 + 1 * kSec,
                       .kind = TT_KIND_RETRANSMIT,
                       .what = TT_RETRANS_SYN,
                       .state = T::SynSent,
                       .seq = IL,
                       .lport = 40123,
                       .stored = false}),
      make_state(S{.ts = T0 + 3 * kSec,
                   .from = T::SynSent,
                   .to = T::Close,
                   .detail = TT_DETAIL_ERROR,
                   .error = ETIMEDOUT,
                   .retrans = 1,
                   .lport = 0,
                   .pid = 0,
                   .stored = false}),
  };
  HistoryAssembler hist;
  feed(hist, events);
  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].lport, 40123);
  EXPECT_EQ(out[0].isn_local, IL);
  EXPECT_FALSE(out[0].isn_remote);
  EXPECT_EQ(out[0].role, ConnRole::Active);
  EXPECT_EQ(out[0].end, ConnEnd::Timeout);
  EXPECT_EQ(out[0].retransmits, 1u);
  EXPECT_EQ(out[0].pid, 1234u);
}

TEST(HistoryAssembler, RefreshGivesOpenConnectionsTheirCountersNow) {
  const std::vector<Input> a = unstored(active_close());
  HistoryAssembler hist;
  feed(hist, {a[0], a[1]});
  tt_conn_event now{};
  now.hdr.kind = TT_KIND_CONN;
  now.hdr.cookie = kCookieA;
  now.conn_flags = TT_CF_COUNTERS;
  now.bytes_acked = 1 + 100; // the SYN's slot, then 100 payload bytes
  now.bytes_received = 300;
  now.total_retrans = 2;
  hist.refresh(now);
  now.hdr.cookie = kCookieB; // not tracked: ignored
  hist.refresh(now);
  std::vector<ConnectionRecord> snap;
  hist.snapshot_open(snap);
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].bytes_acked, 100u);
  EXPECT_EQ(snap[0].bytes_received, 300u);
  EXPECT_EQ(snap[0].retransmits, 2u);
  EXPECT_EQ(hist.tracked(), 1u);

  // Counters never go back; an ended connection keeps its final ones.
  now.hdr.cookie = kCookieA;
  now.bytes_acked = 5;
  hist.refresh(now);
  feed(hist, {a[2], a[3], a[4]});
  now.bytes_acked = 1'000'000;
  hist.refresh(now);
  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bytes_acked, 100u);
}

TEST(HistoryAssembler, RecordFilterSeesEveryStateOfThePathAndItsOwner) {
  HistoryAssembler hist;
  feed(hist, active_close());
  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 1u);
  const ConnectionRecord &rec = out[0];
  auto with_states = [](std::initializer_list<T> states) {
    FilterSpec f;
    for (T s : states)
      f.state_mask |= 1U << st(s);
    return f;
  };
  EXPECT_TRUE(record_matches(FilterSpec{}, rec));
  EXPECT_TRUE(record_matches(with_states({T::FinWait2}), rec));
  EXPECT_TRUE(record_matches(with_states({T::Close}), rec)); // left at birth
  EXPECT_TRUE(record_matches(with_states({T::TimeWait, T::Listen}), rec));
  EXPECT_FALSE(record_matches(with_states({T::CloseWait}), rec));
  EXPECT_FALSE(record_matches(with_states({T::SynRecv, T::LastAck}), rec));

  FilterSpec owner;
  owner.comm = "curl";
  owner.pids = {1234};
  EXPECT_TRUE(record_matches(owner, rec));
  owner.comm = "curl2";
  EXPECT_FALSE(record_matches(owner, rec));
  FilterSpec ports;
  ports.lports = {40000};
  ports.rports = {80};
  EXPECT_TRUE(record_matches(ports, rec));
  ports.lports = {40001};
  EXPECT_FALSE(record_matches(ports, rec));
}

TEST(HistoryAssembler, WaitsForGraceSoALateEventLandsInItsRecord) {
  const std::vector<Input> a = active_close();
  HistoryAssembler hist;
  // TIME_WAIT arrives before FIN_WAIT1 -> FIN_WAIT2 (another CPU).
  feed(hist, {a[0], a[1], a[2], a[4]});
  const std::uint64_t end = last_ts(a);
  std::vector<ConnectionRecord> out;
  hist.advance(end + 150 * kMs, out);
  EXPECT_TRUE(out.empty());
  feed(hist, {a[3]});
  hist.advance(end + 200 * kMs, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(describe(out[0]), kActiveClose);
  EXPECT_EQ(hist.tracked(), 0u);
  out.clear();
  hist.advance(end + 10 * kSec, out);
  EXPECT_TRUE(out.empty());
}

TEST(HistoryAssembler, EvictsLeastRecentlyUpdatedAtCapAndCountsIt) {
  HistoryAssembler hist(2);
  feed(hist, established(kCookieA)); // A, then B, then A again
  feed(hist, established(kCookieB));
  hist.on_segment(make_seg(SegSpec{.cookie = kCookieA, .ts = T0 + 2 * kMs}));
  feed(hist, established(kCookieC)); // full: evicts B
  EXPECT_EQ(hist.evicted(), 1u);
  EXPECT_EQ(hist.tracked(), 2u);
  hist.on_segment(make_seg(SegSpec{.cookie = kCookieB, .ts = T0 + 3 * kMs}));
  EXPECT_EQ(hist.unmatched_segments(), 1u);

  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 2u);
  std::vector<std::uint64_t> cookies{out[0].cookie, out[1].cookie};
  std::sort(cookies.begin(), cookies.end());
  EXPECT_EQ(cookies, (std::vector<std::uint64_t>{kCookieA, kCookieC}));
  EXPECT_EQ(out[0].end, ConnEnd::Open);
  EXPECT_EQ(hist.tracked(), 0u);
}

TEST(HistoryAssembler, EndedConnectionsAreEmittedNotEvictedWhenFull) {
  HistoryAssembler hist(1);
  feed(hist, active_close(kCookieA)); // ended, within its grace period
  feed(hist, established(kCookieB));  // needs A's slot
  EXPECT_EQ(hist.evicted(), 0u);
  std::vector<ConnectionRecord> out;
  hist.advance(0, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(describe(out[0]), kActiveClose);
}

TEST(HistoryAssembler, SnapshotReportsOpenConnectionsWithoutForgetting) {
  const std::vector<Input> a = active_close();
  HistoryAssembler hist;
  feed(hist, {a[0], a[1]});
  feed(hist, established(kCookieB));
  std::vector<ConnectionRecord> snap;
  hist.snapshot_open(snap);
  ASSERT_EQ(snap.size(), 2u);
  // Ordered by first step, then cookie (both start at T0).
  EXPECT_EQ(snap[0].cookie, kCookieA);
  EXPECT_EQ(snap[1].cookie, kCookieB);
  EXPECT_EQ(describe(snap[0]),
            "#1001 1234/curl 198.18.0.1:40000>198.18.0.2:80 4026531840 "
            "role=active isn=1000/5000 bytes=0/0 retr=0 rst=0/0 end=open "
            "first=- err=0 prior=- | "
            "SYN_SENT@1000000000+210000[1000,1001,0] "
            "ESTABLISHED@1000210000+-[1001,1001,5001]");
  EXPECT_EQ(hist.tracked(), 2u);

  // The next refresh sees the progress; the end is emitted once.
  feed(hist, {a[2], a[3]});
  snap.clear();
  hist.snapshot_open(snap);
  ASSERT_EQ(snap.size(), 2u);
  EXPECT_EQ(snap[0].path.size(), 4u);
  EXPECT_EQ(snap[0].closed_first, ClosedFirst::Local);
  EXPECT_EQ(snap[0].end, ConnEnd::Open);

  feed(hist, {a[4]});
  snap.clear();
  hist.snapshot_open(snap);
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].cookie, kCookieB);
  std::vector<ConnectionRecord> out;
  hist.advance(last_ts(a) + kSec, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(describe(out[0]), kActiveClose);
}

TEST(HistoryAssembler, FlushAllEmitsEndedThenOpen) {
  HistoryAssembler hist;
  feed(hist, established(kCookieB));
  feed(hist, active_close(kCookieA));
  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(describe(out[0]), kActiveClose);
  EXPECT_EQ(out[1].cookie, kCookieB);
  EXPECT_EQ(out[1].end, ConnEnd::Open);
  EXPECT_EQ(hist.tracked(), 0u);
  EXPECT_EQ(hist.memory_bytes(), 0u);
  // Still usable.
  feed(hist, active_close(kCookieA));
  out.clear();
  hist.advance(last_ts(active_close()) + kSec, out);
  ASSERT_EQ(out.size(), 1u);
}

// The per-connection memory target: <= 256 bytes for a typical connection.
TEST(HistoryAssembler, MemoryPerTrackedConnection) {
  EXPECT_LE(HistoryAssembler::conn_bytes(), 232u);
  constexpr std::size_t kConns = 20000;
  HistoryAssembler hist;
  for (std::uint64_t i = 0; i < kConns; ++i) {
    const std::vector<Input> a = active_close(0x100000 + i);
    feed(hist, {a[0], a[1], a[2], a[3]}); // 4 steps, still open
  }
  ASSERT_EQ(hist.tracked(), kConns);
  const double per_conn =
      static_cast<double>(hist.memory_bytes()) / static_cast<double>(kConns);
  RecordProperty("bytes_per_connection", std::to_string(per_conn));
  EXPECT_LE(per_conn, 256.0);
  // Lookups still find every connection after the index grew.
  std::vector<ConnectionRecord> out;
  hist.snapshot_open(out);
  EXPECT_EQ(out.size(), kConns);
}

TEST(HistoryAssembler, IndexSurvivesChurn) {
  // Many inserts and erases through eviction and ending, across index
  // growth: every surviving connection must still be found.
  HistoryAssembler hist(1000);
  for (std::uint64_t i = 0; i < 5000; ++i) {
    const std::uint64_t cookie = 0x500000 + i * 7919;
    feed(hist, established(cookie));
    if (i % 3 == 0) {
      const std::vector<Input> a = active_close(cookie);
      feed(hist, {a[2], a[3], a[4]});
    }
  }
  EXPECT_EQ(hist.tracked(), 1000u);
  std::vector<ConnectionRecord> out;
  hist.flush_all(out); // includes ended ones emitted early for room
  // Every connection is either emitted once or evicted.
  EXPECT_GT(hist.evicted(), 0u);
  EXPECT_EQ(out.size() + hist.evicted(), 5000u);
  std::vector<std::uint64_t> cookies;
  for (const auto &r : out) {
    EXPECT_EQ(r.path.size(), r.end == ConnEnd::Open ? 2u : 5u);
    cookies.push_back(r.cookie);
  }
  std::sort(cookies.begin(), cookies.end());
  EXPECT_EQ(std::adjacent_find(cookies.begin(), cookies.end()), cookies.end());
}

TEST(HistoryPayload, SubtractsKnownSynFinSlots) {
  struct {
    const char *description;
    SeqSlots slots;
    std::uint64_t acked, received;
    std::uint64_t want_acked, want_received;
  } cases[] = {
      {"nothing known", {}, 10, 20, 10, 20},
      {"active, established: SYN acked",
       {true, true, false, false},
       11,
       20,
       10,
       20},
      {"passive: SYN-ACK not counted",
       {false, true, false, false},
       10,
       20,
       10,
       20},
      {"FINs both ways", {true, true, true, true}, 12, 21, 10, 20},
      {"saturates at 0", {true, true, true, true}, 1, 0, 0, 0},
  };
  for (const auto &tc : cases) {
    SCOPED_TRACE(tc.description);
    const PayloadBytes p = payload_bytes(tc.slots, tc.acked, tc.received);
    EXPECT_EQ(p.acked, tc.want_acked);
    EXPECT_EQ(p.received, tc.want_received);
  }
}

} // namespace
} // namespace tcptrail::history_test

namespace tcptrail::history_test {
namespace {

// What the kernel's history mode sends for one socket's events (one life):
// bpf/conn.bpf.h keeps the steps in order (the first and the latest
// TT_CONN_MAX_STEPS - 1), the connection flags, the remembered local port,
// and the counters and error of the last transition.
tt_conn_event aggregate(std::vector<tt_state_event> evs, bool ended) {
  std::stable_sort(evs.begin(), evs.end(),
                   [](const tt_state_event &a, const tt_state_event &b) {
                     return a.hdr.ts_ns < b.hdr.ts_ns;
                   });
  const tt_state_event &last = evs.back();
  tt_conn_event c{};
  c.hdr = last.hdr;
  c.hdr.kind = TT_KIND_CONN;
  c.hdr.size = sizeof(c);
  c.sk = last.sk;
  for (const tt_state_event &ev : evs) {
    if (ev.sk.lport)
      c.sk.lport = ev.sk.lport;
    c.flags |= ev.flags & TT_F_CONN_MASK;
    if (ev.flags & TT_F_ISN_LOCAL)
      c.isn_local = ev.isn_local;
    if (ev.flags & TT_F_ISN_REMOTE)
      c.isn_remote = ev.isn_remote;
    if (c.n_steps == TT_CONN_MAX_STEPS) {
      std::copy(c.steps + 2, c.steps + TT_CONN_MAX_STEPS, c.steps + 1);
      --c.n_steps;
      ++c.steps_dropped;
    }
    tt_conn_step &s = c.steps[c.n_steps++];
    s.ts_ns = ev.hdr.ts_ns;
    s.snd_una = ev.snd_una;
    s.snd_nxt = ev.snd_nxt;
    s.rcv_nxt = ev.rcv_nxt;
    s.old_state = ev.old_state;
    s.new_state = ev.new_state;
    s.flags = ev.flags & ~TT_F_CONN_MASK;
    s.detail = ev.detail;
  }
  c.bytes_acked = last.bytes_acked;
  c.bytes_received = last.bytes_received;
  c.total_retrans = last.total_retrans;
  c.error = last.error;
  if (evs.front().new_state == static_cast<std::uint8_t>(TcpState::Listen))
    c.conn_flags |= TT_CF_ACCEPTED; // born listener: the kernel counted (0)
  if (ended)
    c.conn_flags |= TT_CF_ENDED;
  return c;
}

// The scenarios the kernel would send as one record: one socket, one life,
// one owner, state events only.
bool one_record(const std::vector<Input> &events) {
  std::size_t terminal = 0;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto *st = std::get_if<tt_state_event>(&events[i]);
    if (!st)
      return false;
    const auto &first = std::get<tt_state_event>(events[0]);
    if (st->hdr.cookie != first.hdr.cookie || st->sk.pid != first.sk.pid)
      return false;
    if (st->new_state == static_cast<std::uint8_t>(TcpState::Close) ||
        st->new_state == static_cast<std::uint8_t>(TcpState::TimeWait))
      ++terminal;
  }
  return terminal <= 1;
}

TEST(HistoryAssembler, KernelAggregatedRecordMatchesTheEventStream) {
  std::size_t checked = 0;
  for (const Case &tc : cases()) {
    if (!one_record(tc.events) || tc.expected.size() != 1)
      continue;
    SCOPED_TRACE(tc.description);
    std::vector<tt_state_event> evs;
    for (const Input &in : tc.events)
      evs.push_back(std::get<tt_state_event>(in));
    HistoryAssembler hist;
    hist.on_connection(aggregate(evs, true));
    std::vector<ConnectionRecord> out;
    hist.advance(last_ts(tc.events) + HistoryAssembler::kDefaultGraceNs, out);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(describe(out[0]), tc.expected[0]);
    ++checked;
  }
  EXPECT_GE(checked, 7u); // the single-socket scenarios of cases()
}

TEST(HistoryAssembler, OpenRecordFromTheKernelIsNotTracked) {
  std::vector<tt_state_event> evs;
  for (const Input &in : established(kCookieA))
    evs.push_back(std::get<tt_state_event>(in));
  HistoryAssembler scratch(1);
  const ConnectionRecord rec = scratch.open_record(aggregate(evs, false));
  EXPECT_EQ(rec.end, ConnEnd::Open);
  ASSERT_EQ(rec.path.size(), evs.size());
  EXPECT_EQ(rec.path.back().state,
            static_cast<std::uint8_t>(TcpState::Established));
  EXPECT_EQ(scratch.tracked(), 0u);
  // The same connection from the event stream, snapshotted.
  HistoryAssembler hist;
  feed(hist, established(kCookieA));
  std::vector<ConnectionRecord> open;
  hist.snapshot_open(open);
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(describe(rec), describe(open[0]));
}

TEST(HistoryAssembler, KernelCountsResetsAndAcceptsAndDroppedSteps) {
  std::vector<tt_state_event> evs;
  for (const Input &in : established(kCookieA))
    evs.push_back(std::get<tt_state_event>(in));
  tt_conn_event c = aggregate(evs, false);
  c.resets_sent = 1;
  c.resets_received = 2;
  c.steps_dropped = 3;
  HistoryAssembler scratch;
  const ConnectionRecord rec = scratch.open_record(c);
  EXPECT_EQ(rec.resets_sent, 1u);
  EXPECT_EQ(rec.resets_received, 2u);
  EXPECT_EQ(rec.steps_dropped, 3u);

  // A listener: the kernel's count, or unknown without TT_CF_ACCEPTED.
  tt_state_event listen = make_state(S{.cookie = kCookieB,
                                       .ts = T0,
                                       .from = T::Close,
                                       .to = T::Listen,
                                       .lport = 80,
                                       .rport = 0});
  tt_conn_event l = aggregate({listen}, false);
  l.accepted = 7;
  EXPECT_EQ(scratch.open_record(l).accepted, std::optional<std::uint32_t>(7));
  l.conn_flags &= static_cast<std::uint8_t>(~TT_CF_ACCEPTED);
  EXPECT_FALSE(scratch.open_record(l).accepted.has_value());
}

// The owner's cgroup goes with the owner: a later system caller (fd passed
// on) brings its own; an event that knows none (0) erases nothing.
TEST(HistoryAssembler, CgroupGoesWithTheOwner) {
  std::vector<Input> events = unstored(active_close());
  for (Input &in : events)
    if (auto *st = std::get_if<tt_state_event>(&in))
      st->sk.cgroup_id = 10;
  auto &fin = std::get<tt_state_event>(events[2]);
  fin.sk.pid = 99;
  fin.sk.cgroup_id = 20;
  HistoryAssembler hist;
  feed(hist, events);
  std::vector<ConnectionRecord> out;
  hist.flush_all(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].pid, 99u);
  EXPECT_EQ(out[0].cgroup_id, 20u);

  std::vector<Input> stored = active_close();
  std::get<tt_state_event>(stored[0]).sk.cgroup_id = 10;
  HistoryAssembler hist2;
  feed(hist2, stored);
  out.clear();
  hist2.flush_all(out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].cgroup_id, 10u);

  // --cgroup on whole records (user side): descendants by path.
  FilterSpec spec;
  spec.cgroup_id = 5;
  spec.cgroup_path = "/tt";
  auto names = std::make_shared<StaticCgroupNames>();
  names->add(5, "/tt");
  names->add(10, "/tt/a");
  names->add(20, "/other");
  spec.cgroup_names = names;
  EXPECT_TRUE(record_matches(spec, out[0]));
  out[0].cgroup_id = 20;
  EXPECT_FALSE(record_matches(spec, out[0]));
}

} // namespace
} // namespace tcptrail::history_test
