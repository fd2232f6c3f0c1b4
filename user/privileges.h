// Least privilege: once the BPF programs are attached (and any namespaces
// opened), tcptrail needs no capability at all: the ring buffer and the
// counters are mmapped, output goes to fds already open.
#pragma once

#include <cstdint>
#include <string>

namespace tcptrail {

// Clears the bounding, ambient, inheritable, permitted and effective
// capability sets and sets no_new_privs. Throws tcptrail::Error on failure.
void drop_all_capabilities();

// Empties the calling thread's effective set only (capabilities are per
// thread): for probes run in a short-lived thread. False if it failed.
bool drop_thread_effective_capabilities();

// The CapEff mask of this process (from /proc/self/status).
std::uint64_t effective_capabilities();

// Capabilities loading tcptrail's programs takes: CAP_SYS_ADMIN, or
// CAP_BPF and CAP_PERFMON. Empty when the process has them; else the
// missing ones ("CAP_BPF", "CAP_PERFMON" or "CAP_BPF and CAP_PERFMON").
std::string missing_bpf_capabilities();

} // namespace tcptrail
