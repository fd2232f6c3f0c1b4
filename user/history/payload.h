// Payload bytes from the kernel's RFC 4898 counters. The one place that
// knows which SYN/FIN sequence slots tcp_sock.bytes_acked/bytes_received
// include: correct the rule here (and its test) if the kernel says otherwise.
#pragma once

#include <cstdint>

namespace tcptrail {

// What the connection's observed path says about its SYN/FIN slots.
struct SeqSlots {
  bool active = false;       // we sent the SYN (role active)
  bool syn_acked = false;    // our SYN was acked (reached ESTABLISHED)
  bool fin_acked = false;    // our FIN was acked (FIN_WAIT2, TIME_WAIT, or
                             // LAST_ACK -> CLOSE without reset)
  bool fin_received = false; // the peer's FIN was received in order
                             // (CLOSE_WAIT, CLOSING, or TIME_WAIT after FIN)
};

struct PayloadBytes {
  std::uint64_t acked = 0;
  std::uint64_t received = 0;
};

// Rule (Linux net/ipv4/tcp_input.c, tcp_output.c, tcp_minisocks.c):
//  - bytes_acked grows in tcp_snd_una_update() by every advance of snd_una.
//    An active opener starts with snd_una = ISN, so the ACK of its SYN
//    counts 1; a passive child is created with snd_una = ISN + 1
//    (tcp_create_openreq_child), so its SYN-ACK does not count. The ACK of
//    our FIN counts 1.
//  - bytes_received grows in tcp_rcv_nxt_update(). rcv_nxt is set to
//    IRS + 1 directly on both sides (tcp_rcv_synsent_state_process,
//    tcp_create_openreq_child), so the peer's SYN never counts; an in-order
//    FIN advances rcv_nxt through tcp_rcv_nxt_update() and counts 1.
// So: acked -= (active && syn_acked) + fin_acked; received -= fin_received.
// Saturates at 0 (a counter read before the slot was counted).
PayloadBytes payload_bytes(const SeqSlots &slots, std::uint64_t bytes_acked,
                           std::uint64_t bytes_received);

} // namespace tcptrail
