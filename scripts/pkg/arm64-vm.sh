#!/usr/bin/env bash
# Boots Debian 12's arm64 cloud kernel under qemu-system-aarch64 (TCG) with a
# tiny initramfs: busybox (static), glibc's arm64 loader and libraries, and
# the portable arm64 tcptrail, nothing else. Inside, it runs
# `tcptrail --version`, `tcptrail doctor` and
# `tcptrail trace --exit-after-attach`, and prints "vmcheck: NAME rc=N" for
# each.
#   scripts/pkg/arm64-vm.sh TCPTRAIL_ARM64_BINARY
# Needs qemu-system-arm and the arm64 architecture added to dpkg (the
# kernel and busybox are downloaded with apt-get download, into
# /var/cache/tcptrail-ci/arm64-vm, not installed).
set -euo pipefail
bin=$(realpath "$1")
cache=/var/cache/tcptrail-ci/arm64-vm
mkdir -p "$cache"
kpkg=$(apt-cache depends linux-image-cloud-arm64:arm64 |
  sed -n 's/^ *Depends: \(linux-image-[0-9][^:]*\).*/\1/p' | head -1)
[[ -n $kpkg ]] || { echo "arm64-vm: no linux-image-cloud-arm64:arm64 (dpkg --add-architecture arm64; apt-get update)" >&2; exit 1; }
kernel=$cache/$kpkg.vmlinuz
# The kernel's config goes to /boot/config-RELEASE, where Debian installs
# it: libbpf reads CONFIG_* values for tcptrail's __kconfig externs there.
config=$cache/$kpkg.config
if [[ ! -s $kernel || ! -s $config ]]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get -qq download "$kpkg:arm64") 2>&1 | grep -v unsandboxed || true
  dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' './boot/config-*'
  cp "$tmp"/boot/config-* "$config"
  cp "$tmp"/boot/vmlinuz-* "$kernel.tmp" && mv "$kernel.tmp" "$kernel"
  rm -rf "$tmp"
fi
busybox=$cache/busybox
if [[ ! -s $busybox ]]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get -qq download busybox-static:arm64) 2>&1 | grep -v unsandboxed || true
  dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" ./bin/busybox
  cp "$tmp/bin/busybox" "$busybox.tmp" && mv "$busybox.tmp" "$busybox"
  rm -rf "$tmp"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r"/{bin,boot,proc,sys,dev,tmp,lib/aarch64-linux-gnu}
cp "$config" "$r/boot/config-${kpkg#linux-image-}"
cp "$busybox" "$r/bin/busybox"
cp "$bin" "$r/tcptrail"
# glibc only: what the portable binary's NEEDED entries name, and the loader.
cp -L /usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1 "$r/lib/"
for lib in $(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  [[ $lib == ld-linux* ]] && continue
  cp -L "/usr/lib/aarch64-linux-gnu/$lib" "$r/lib/aarch64-linux-gnu/"
done
cat >"$r/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t bpf bpf /sys/fs/bpf
mount -t devtmpfs dev /dev
echo "vmcheck: kernel $(uname -r) $(uname -m)"
for c in "--version" "doctor" "trace --exit-after-attach"; do
  /tcptrail $c
  echo "vmcheck: $c rc=$?"
done
poweroff -f
INIT
chmod +x "$r/init"
(cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"
start=$SECONDS
timeout 900 qemu-system-aarch64 -M virt -cpu max -smp 2 -m 1024 -nographic \
  -nic none -no-reboot -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyAMA0 panic=-1 quiet" </dev/null | tee "$work/console.log" || true
echo "arm64-vm: $kpkg booted and checked in $((SECONDS - start)) s"
for c in "--version" "doctor" "trace --exit-after-attach"; do
  grep -q "^vmcheck: $c rc=0" "$work/console.log" || { echo "arm64-vm: FAIL $c"; exit 1; }
done
echo "arm64-vm: PASS"
