#include "version.h"

#include <fmt/format.h>

#include "bpf/build_info.h"
#include "tcptrail_version.h" // generated: TCPTRAIL_SOURCE_VERSION

namespace tcptrail {

std::string_view source_version() { return TCPTRAIL_SOURCE_VERSION; }

std::string version_text() {
  const LibbpfInfo libbpf = libbpf_info();
  const std::string_view obj = embedded_bpf_object();
  // CO-RE needs both: the program's types (.BTF) and its field accesses to
  // relocate against the running kernel's types (.BTF.ext).
  const bool btf =
      elf_has_section(obj, ".BTF") && elf_has_section(obj, ".BTF.ext");
  return fmt::format(
      "tcptrail {}\n"
      "libbpf {} ({})\n"
      "bpf object: embedded ({} bytes), BTF: {}\n"
      "kernel BTF: not embedded, read from /sys/kernel/btf/vmlinux",
      source_version(), libbpf.version,
      libbpf.linked_statically ? "linked statically" : "shared library",
      obj.size(), btf ? "yes (CO-RE)" : "no");
}

} // namespace tcptrail
