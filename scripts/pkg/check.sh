#!/usr/bin/env bash
# Packaging checks (issue 19), run by scripts/test.sh:
#   deb        the Debian package built by CPack from build/ (dependencies by
#              dpkg-shlibdeps), lintian without errors or unexplained
#              warnings (packaging/lintian-overrides explains the rest)
#   portable   a -DTCPTRAIL_PORTABLE=ON build in build-portable/ whose only
#              NEEDED libraries are glibc's
#   arm64      the portable binary cross-built for arm64 (build-arm64/):
#              an aarch64 ELF needing only glibc, `--version` under
#              qemu-user, then `--version`, `doctor` and
#              `trace --exit-after-attach` in Debian 12's arm64 cloud kernel
#              booted by qemu-system-aarch64 (scripts/pkg/arm64-vm.sh)
#   clean-root both, in a fresh Debian 12 root that never saw the build
#              (debootstrap, cached by scripts/pkg/debian-root.sh): the
#              portable binary runs from a bare copy; then
#              `apt-get install ./tcptrail_*.deb` and the installed
#              tcptrail runs --version, doctor and trace --exit-after-attach.
# Prints "pkg: PASS|FAIL <check>" lines, the time of each step, and
# "pkg: N passed, M failed"; exits non-zero when anything failed. Needs root
# and the build in build/ (scripts/setup.sh).
#   scripts/pkg/check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
portable_build=$root/build-portable
passed=0 failed=0
t0=$SECONDS
pass() { echo "pkg: PASS $*"; passed=$((passed + 1)); }
fail() { echo "pkg: FAIL $*"; failed=$((failed + 1)); }
step() { echo "pkg: -- $* ($((SECONDS - t0)) s)"; }

# ---- the .deb
step "cpack"
rm -f "$build"/tcptrail_*.deb
if cmake --build "$build" -j"$(nproc)" --target tcptrail_package >"$build/cpack.log" 2>&1; then
  deb=$(ls "$build"/tcptrail_*.deb)
  pass "deb: $(basename "$deb")"
else
  tail -20 "$build/cpack.log"
  fail "deb: cpack"
  deb=
fi
if [[ -n $deb ]]; then
  step "lintian"
  # --fail-on warning: a warning not explained in packaging/lintian-overrides
  # fails the check, as an error does.
  if lintian --fail-on error,warning --display-info "$deb"; then
    pass "lintian"
  else
    fail "lintian"
  fi
  deps=$(dpkg-deb -f "$deb" Depends)
  echo "pkg: Depends: $deps"
  [[ $deps == *libc6* ]] && pass "shlibdeps computed Depends" ||
    fail "shlibdeps: Depends '$deps' lacks libc6"
fi

# ---- the portable binary
step "portable build"
mkdir -p "$portable_build"
if cmake -S "$root" -B "$portable_build" -DCMAKE_BUILD_TYPE=Release \
  -DTCPTRAIL_PORTABLE=ON -DTCPTRAIL_BUILD_TESTS=OFF >"$portable_build/build.log" 2>&1 &&
  cmake --build "$portable_build" -j"$(nproc)" --target tcptrail >>"$portable_build/build.log" 2>&1; then
  portable=$portable_build/tcptrail
  needed=$(readelf -d "$portable" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  echo "pkg: portable NEEDED: $needed"
  glibc=$(objdump -T "$portable" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  echo "pkg: portable needs $glibc or newer"
  extra=$(tr ' ' '\n' <<<"$needed" | grep -vxE 'libc\.so\.6|libm\.so\.6|ld-linux[-a-z0-9_.]*\.so\.[0-9]+|' || true)
  [[ -z $extra ]] && pass "portable: only glibc NEEDED" ||
    fail "portable: needs $extra"
else
  tail -20 "$portable_build/build.log"
  fail "portable: build"
  portable=
fi

# ---- arm64: cross build, then a boot of Debian's arm64 kernel
step "arm64 cross build"
arm64_build=$root/build-arm64
mkdir -p "$arm64_build"
if cmake -S "$root" -B "$arm64_build" -DCMAKE_BUILD_TYPE=Release \
  -DTCPTRAIL_PORTABLE=ON -DTCPTRAIL_BUILD_TESTS=OFF \
  -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-aarch64-linux-gnu.cmake" \
  >"$arm64_build/build.log" 2>&1 &&
  cmake --build "$arm64_build" -j"$(nproc)" --target tcptrail >>"$arm64_build/build.log" 2>&1; then
  a64=$arm64_build/tcptrail
  machine=$(readelf -h "$a64" | sed -n 's/^ *Machine: *//p')
  needed=$(readelf -d "$a64" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  echo "pkg: arm64: $machine, NEEDED: $needed"
  extra=$(tr ' ' '\n' <<<"$needed" | grep -vxE 'libc\.so\.6|libm\.so\.6|ld-linux[-a-z0-9_.]*\.so\.[0-9]+|' || true)
  [[ $machine == AArch64 && -z $extra ]] && pass "arm64: AArch64, only glibc NEEDED" ||
    fail "arm64: $machine, needs $extra"
  if out=$(qemu-aarch64-static -L /usr/aarch64-linux-gnu "$a64" --version 2>&1); then
    sed 's/^/    /' <<<"$out"
    pass "arm64: --version under qemu-user"
  else
    fail "arm64: --version under qemu-user: $out"
  fi
  step "arm64 VM"
  if "$root/scripts/pkg/arm64-vm.sh" "$a64" 2>&1 | sed 's/^/    /'; then
    pass "arm64: --version, doctor, trace --exit-after-attach on Debian's arm64 kernel"
  else
    fail "arm64: VM checks"
  fi
else
  tail -20 "$arm64_build/build.log"
  fail "arm64: cross build"
fi

# ---- a clean Debian 12 root
step "clean root"
tarball=$("$root/scripts/pkg/debian-root.sh")
chroot_dir=$(mktemp -d /var/tmp/tcptrail-root.XXXXXX)
mounts=()
cleanup() {
  local m
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m=${mounts[i]}
    umount -l "$m" 2>/dev/null || true
  done
  # Only once nothing is mounted below it.
  if ! grep -q " $chroot_dir/" /proc/mounts; then
    rm -rf --one-file-system "$chroot_dir"
  fi
}
trap cleanup EXIT
mnt() { # TYPE-or---bind SRC DIR
  mkdir -p "$chroot_dir/$3"
  if [[ $1 == --bind ]]; then mount --bind "$2" "$chroot_dir/$3"; else mount -t "$1" "$2" "$chroot_dir/$3"; fi
  mounts+=("$chroot_dir/$3")
}
tar -C "$chroot_dir" -xf "$tarball"
mnt proc proc /proc
mnt sysfs sysfs /sys
mnt bpf bpf /sys/fs/bpf
mnt --bind /dev /dev
cp -L /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
in_root() { chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root "$@"; }
check() { # NAME CMD...: runs CMD in the root, shows its output
  local name=$1
  shift
  local out rc=0
  out=$(in_root "$@" 2>&1) || rc=$?
  sed 's/^/    /' <<<"$out"
  ((rc == 0)) && pass "$name" || fail "$name (exit $rc)"
}
if [[ -n $portable ]]; then
  step "portable in the clean root"
  cp "$portable" "$chroot_dir/tcptrail-portable"
  check "portable: --version in a clean root" /tcptrail-portable --version
  check "portable: doctor in a clean root" /tcptrail-portable doctor
  check "portable: trace --exit-after-attach in a clean root" \
    /tcptrail-portable trace --exit-after-attach
  rm -f "$chroot_dir/tcptrail-portable"
fi
if [[ -n $deb ]]; then
  step "apt-get install ./$(basename "$deb")"
  cp "$deb" "$chroot_dir/tmp/"
  check "deb: apt-get install ./$(basename "$deb") in a clean root" sh -c \
    "apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/$(basename "$deb") >/dev/null && dpkg -L tcptrail"
  check "deb: tcptrail --version" tcptrail --version
  check "deb: tcptrail doctor" tcptrail doctor
  check "deb: tcptrail trace --exit-after-attach" tcptrail trace --exit-after-attach
  check "deb: man pages and completion installed" sh -c '
    set -e
    for p in tcptrail tcptrail-trace tcptrail-doctor; do
      test -s /usr/share/man/man8/$p.8.gz
    done
    test -s /usr/share/bash-completion/completions/tcptrail
    test -s /usr/share/zsh/vendor-completions/_tcptrail
    test -s /usr/share/doc/tcptrail/copyright
    command -v tcptrail'
fi
step "done"
echo "pkg: $passed passed, $failed failed ($((SECONDS - t0)) s)"
((failed == 0))
