#include "history/payload.h"

namespace tcptrail {

namespace {

std::uint64_t minus_slots(std::uint64_t counter, unsigned slots) {
  return counter > slots ? counter - slots : 0;
}

} // namespace

PayloadBytes payload_bytes(const SeqSlots &slots, std::uint64_t bytes_acked,
                           std::uint64_t bytes_received) {
  const unsigned acked_slots =
      (slots.active && slots.syn_acked ? 1U : 0U) + (slots.fin_acked ? 1U : 0U);
  const unsigned received_slots = slots.fin_received ? 1U : 0U;
  return {minus_slots(bytes_acked, acked_slots),
          minus_slots(bytes_received, received_slots)};
}

} // namespace tcptrail
