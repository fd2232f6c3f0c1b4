// What the kernel keeps in socket storage, kept in user space for the sockets
// that have none in lazy mode (TracerConfig::lazy_storage).
//
// In lazy mode the state program makes storage only for listeners (their
// children inherit a copy) and for sockets that existed at start; a socket
// made by connect() goes without, which saves the traced host the ~1 us it
// costs to make. Its records arrive with stored == 0 and without what only
// storage could give: the time spent in the old state, the owner outside
// process context, the ISNs, the local port at CLOSE, the RST that ended it.
// amend() fills those in from this socket's earlier records, by the rules
// bpf/state.bpf.c applies with storage, so both modes print the same.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "tcptrail/events.h"

namespace tcptrail {

class SocketMemory {
public:
  // Beyond max_sockets remembered sockets, new ones are not remembered (each
  // costs ~80 bytes; an entry is dropped when its socket reaches CLOSE, so
  // only lost CLOSE records leave entries behind).
  static constexpr std::size_t kDefaultMaxSockets = std::size_t{1} << 20;

  explicit SocketMemory(std::size_t max_sockets = kDefaultMaxSockets)
      : max_sockets_(max_sockets) {}

  void amend(tt_state_event &ev);
  void amend(tt_seg_event &ev);

  std::size_t size() const { return sockets_.size(); }
  // Sockets not remembered because max_sockets were.
  std::uint64_t forgotten() const { return forgotten_; }

private:
  struct Entry {
    std::uint64_t state_ts = 0; // when `state` was entered; 0 = unknown
    std::uint32_t pid = 0;      // owner, if TT_F_OWNER in flags
    std::uint32_t isn_local = 0;
    std::uint32_t isn_remote = 0;
    std::uint16_t lport = 0; // last non-zero local port
    std::uint8_t state = 0;
    std::uint8_t flags = 0; // TT_F_CONN_MASK bits
    std::uint8_t resets = 0; // kResetSent | kResetReceived
    char comm[TT_COMM_LEN] = {};
  };

  Entry *entry_for(std::uint64_t cookie, bool create);

  std::unordered_map<std::uint64_t, Entry> sockets_;
  std::size_t max_sockets_;
  std::uint64_t forgotten_ = 0;
};

} // namespace tcptrail
