// tcptrail --version: where this binary came from and what it carries.
#pragma once

#include <string>
#include <string_view>

namespace tcptrail {

// The source tree's version: `git describe` when built from git, the
// project's version otherwise (cmake/TcptrailVersion.cmake).
std::string_view source_version();

// Every line `--version` prints (no trailing newline):
//   tcptrail 0.1.0-3-g8f3b906
//   libbpf v1.1 (linked statically)
//   bpf object: embedded (248672 bytes), BTF: yes (CO-RE)
//   kernel BTF: not embedded, read from /sys/kernel/btf/vmlinux
std::string version_text();

} // namespace tcptrail
