#include "privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "error.h"

namespace tcptrail {

namespace {

int last_cap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int n = 40; // CAP_CHECKPOINT_RESTORE on 5.9+; a safe default
  in >> n;
  return n;
}

} // namespace

std::uint64_t effective_capabilities() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("CapEff:", 0) == 0)
      return std::stoull(line.substr(7), nullptr, 16);
  return 0;
}

void drop_all_capabilities() {
  // The bounding set first: dropping from it needs CAP_SETPCAP, which the
  // capset() below removes. Without CAP_SETPCAP (already unprivileged) the
  // bounding set cannot grant anything back anyway.
  const int last = last_cap();
  for (int cap = 0; cap <= last; ++cap)
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0)
      prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);

  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &header, data) != 0)
    throw Error(fmt::format("dropping capabilities: {}", std::strerror(errno)));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    throw Error(fmt::format("setting no_new_privs: {}", std::strerror(errno)));
}

bool drop_thread_effective_capabilities() {
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0; // the calling thread
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0)
    return false;
  for (auto &d : data)
    d.effective = 0;
  return syscall(SYS_capset, &header, data) == 0;
}

std::string missing_bpf_capabilities() {
  constexpr int kCapSysAdmin = 21, kCapPerfmon = 38, kCapBpf = 39;
  const std::uint64_t caps = effective_capabilities();
  auto has = [caps](int cap) { return (caps >> cap) & 1; };
  if (has(kCapSysAdmin) || (has(kCapBpf) && has(kCapPerfmon)))
    return {};
  std::string missing;
  if (!has(kCapBpf))
    missing += "CAP_BPF";
  if (!has(kCapPerfmon))
    missing += missing.empty() ? "CAP_PERFMON" : " and CAP_PERFMON";
  return missing;
}

} // namespace tcptrail
