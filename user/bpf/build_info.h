// What the binary carries from the BPF side, for --version: the libbpf it
// runs with and the BPF object embedded at build time.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tcptrail {

struct LibbpfInfo {
  std::string version;            // libbpf_version_string(): "v1.1"
  bool linked_statically = false; // part of this executable, not a .so
};
LibbpfInfo libbpf_info();

// The BPF object compiled into the binary (the skeleton's ELF bytes).
std::string_view embedded_bpf_object();

// The bytes of the section called `name` (".BTF") of a 64-bit
// little-endian ELF image; nullopt when it has no such section, or is not
// such an image (then *malformed is set, when given).
std::optional<std::string_view> elf_section(std::string_view elf,
                                            std::string_view name,
                                            bool *malformed = nullptr);

// Whether an ELF image has a section of this name (".BTF"). False for
// anything that is not a well-formed 64-bit little-endian ELF image.
bool elf_has_section(std::string_view elf, std::string_view name);

} // namespace tcptrail
