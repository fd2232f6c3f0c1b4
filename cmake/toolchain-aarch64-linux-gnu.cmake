# Cross build for arm64 with Debian's crossbuild-essential-arm64 and the
# :arm64 libraries installed through multiarch (dpkg --add-architecture
# arm64; libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64
# libzstd-dev:arm64 libfmt-dev:arm64):
#   cmake -S . -B build-arm64 -DTCPTRAIL_PORTABLE=ON -DTCPTRAIL_BUILD_TESTS=OFF \
#         -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake
# The BPF objects are the same clang -target bpf build, against
# bpf/vmlinux/arm64/vmlinux.h.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Libraries and pkg-config files of the target only; headers are shared by
# multiarch (/usr/include, /usr/include/aarch64-linux-gnu).
set(CMAKE_IGNORE_PATH /usr/lib/x86_64-linux-gnu /lib/x86_64-linux-gnu
                      /usr/lib/x86_64-linux-gnu/cmake)
set(ENV{PKG_CONFIG_LIBDIR}
    /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
find_program(_qemu_aarch64 qemu-aarch64-static qemu-aarch64)
if(_qemu_aarch64)
  # Runs the arm64 binary at build time (shell completion from its CLI).
  set(CMAKE_CROSSCOMPILING_EMULATOR ${_qemu_aarch64} -L /usr/aarch64-linux-gnu)
endif()
