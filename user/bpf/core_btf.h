// The kernel's BTF cut down to what tcptrail's CO-RE relocations look at,
// for libbpf's `btf_custom_path`.
//
// libbpf 1.1 resolves each CO-RE relocation by scanning every type of the
// kernel's BTF for candidates with the root type's name, once per distinct
// root type: 19 roots x 125,851 types was 110 M of the 149 M instructions
// `tcptrail trace --exit-after-attach` executed in user space (callgrind,
// Linux 6.18). Given a BTF that holds only the types with those names, and
// everything they embed, the same relocations resolve to the same offsets
// in a fraction of that. Pointers are cut (a pointer member's target
// becomes void): a field relocation never looks through a pointer, each
// dereference in BPF_CORE_READ() is its own relocation with its own root.
//
// Pure logic over byte buffers, so unit tests feed it hand-made BTF; the
// integration suite checks that every program is patched identically with
// and without it (CoreBtfTest).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tcptrail {

// The root type names (without ___flavour suffixes) of the CO-RE
// relocations in a BPF ELF object (its .BTF.ext core_relo records, names
// from its .BTF). Returns false, with `error` set, on malformed input; an
// object without relocations gives an empty list.
bool core_relo_roots(std::span<const std::uint8_t> elf,
                     std::vector<std::string> &roots, std::string &error);

// Raw BTF holding every type of `vmlinux` (raw BTF) whose name, without a
// ___flavour suffix, is one of `roots`, and every type those reach other
// than through a pointer. Returns false, with `error` set, when `vmlinux`
// is not well-formed BTF.
bool minimize_btf(std::span<const std::uint8_t> vmlinux,
                  const std::vector<std::string> &roots,
                  std::vector<std::uint8_t> &out, std::string &error);

// libbpf's bpf_core_essential_name_len(): "sock___old" -> 4.
std::size_t core_essential_len(std::string_view name);

} // namespace tcptrail
