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
#include <vector>

#include "tcptrail/events.h"

namespace tcptrail {

// The rules bpf/state.bpf.c applies with storage, for the records of a
// socket without it: SocketMemory (trace, diagnose) and HistoryAssembler
// (history) apply them in user space.
//
// A transition only a system call makes, with the owner on the CPU.
bool in_owner_context(std::uint8_t old_state, std::uint8_t new_state);
// The ISNs a transition shows, from its seq/ack snapshot: isn_local and
// isn_remote are set for the TT_F_ISN_* flags returned (0: none).
std::uint8_t transition_isns(std::uint8_t old_state, std::uint8_t new_state,
                             std::uint32_t snd_una, std::uint32_t snd_nxt,
                             std::uint32_t rcv_nxt, std::uint32_t &isn_local,
                             std::uint32_t &isn_remote);

class SocketMemory {
public:
  // Beyond max_sockets remembered sockets, new ones are not remembered (each
  // costs ~80 bytes). Only lost CLOSE records leave entries behind: a socket
  // is forgotten once `closed_kept` more have reached CLOSE after it. Until
  // then its record still serves what follows its CLOSE: the RST an abort
  // sends after it, a connect() again on the same socket.
  static constexpr std::size_t kDefaultMaxSockets = std::size_t{1} << 20;
  static constexpr std::size_t kDefaultClosedKept = 4096;

  explicit SocketMemory(std::size_t max_sockets = kDefaultMaxSockets,
                        std::size_t closed_kept = kDefaultClosedKept)
      : closed_(closed_kept ? closed_kept : 1), max_sockets_(max_sockets) {}

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
    std::uint8_t flags = 0;  // TT_F_CONN_MASK bits
    std::uint8_t resets = 0; // kResetSent | kResetReceived
    char comm[TT_COMM_LEN] = {};

    // Gives a record the owner (unless it names one), the ISNs and the
    // connection flags remembered.
    void fill(tt_sock &sk, std::uint32_t &isn_local, std::uint32_t &isn_remote,
              std::uint8_t &flags) const;
  };

  Entry *entry_for(std::uint64_t cookie, bool create);
  void closed(std::uint64_t cookie);

  std::unordered_map<std::uint64_t, Entry> sockets_;
  // Cookies of the latest sockets to reach CLOSE, oldest at closed_next_.
  std::vector<std::uint64_t> closed_;
  std::size_t closed_next_ = 0;
  std::size_t max_sockets_;
  std::uint64_t forgotten_ = 0;
};

} // namespace tcptrail
