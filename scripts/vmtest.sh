#!/usr/bin/env bash
# Runs a command inside QEMU-booted Debian kernels, so tcptrail's BPF programs
# are tested on the kernels its users run, not only on the host's.
#
#   scripts/vmtest.sh [options] -- COMMAND [ARG...]
#
#   --kernel NAME   6.1     Debian 12 stock cloud kernel (linux-image-cloud-amd64)
#                   6.12    6.12.x for Debian 12, from bookworm-backports
#                   newest  the newest kernel of any Debian suite searched
#                           (bookworm-backports, trixie, trixie-backports, sid)
#                   6.12-cloud, newest-cloud: the cloud flavour of the last two
#                   all     6.1, 6.12 and newest (the default)
#                   Repeat the option or separate names with commas.
#   --timeout S     kill a guest after S seconds (default 900); it counts as exit 124
#   --out DIR       results, one folder per kernel name (default build/vmtest)
#   --refresh       update the kernel package lists now (else at most once a day)
#   --verbose       also print the boot console, and the kernel's warnings after
#   --accel A       kvm, tcg or auto (default; also TCPTRAIL_VMTEST_ACCEL): auto
#                   uses KVM when /dev/kvm boots the first kernel, else TCG
#
# The guest boots with a small busybox initramfs, mounts the host's root
# read-only over virtiofs under a tmpfs overlay (so it can write anywhere, and
# nothing reaches the host), chroots into it and runs COMMAND as root in the
# caller's working directory, with TCPTRAIL_VM=1, TCPTRAIL_VM_KERNEL=NAME, CI
# (if set) and TCPTRAIL_VM_OUT=/tmp/vmtest-out in its environment. /run is a
# fresh tmpfs there (but the caller's directory shows through), /tmp is the
# host's seen through the overlay (a checkout under /tmp keeps working), and
# the host's other mounts are not seen. Files written into $TCPTRAIL_VM_OUT
# come back to OUT/NAME/out/; OUT/NAME/console.log keeps the whole serial
# console, boot included. COMMAND's stdout and stderr arrive merged, on
# stdout. The exit status is COMMAND's (124: timeout; 125: the guest never
# ran it, see console.log); with several kernels, 1 if any failed.
#
# Kernels and apt lists are cached in /var/cache/tcptrail-vmtest (override with
# TCPTRAIL_VMTEST_CACHE), so a later run needs no network. Needs root: it
# installs missing host packages and runs virtiofsd.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${TCPTRAIL_VMTEST_CACHE:-/var/cache/tcptrail-vmtest}
mirror=http://deb.debian.org/debian
security_mirror=http://deb.debian.org/debian-security
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
virtiofsd=/usr/lib/qemu/virtiofsd
# Markers the guest prints around COMMAND, so the host can cut the boot and
# power-off noise out of what it prints.
start_mark='@@vmtest-command-start@@'
end_mark='@@vmtest-command-end@@'
# The guest's tar of $TCPTRAIL_VM_OUT starts 1 MiB into the result disk; the
# first sector holds "rc=N tar=N size=N" (the guest writes it last).
out_disk_size=2G

die() {
  echo "vmtest: $*" >&2
  exit 2
}
log() { echo "vmtest: $*" >&2; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; } # T0 T1

# ---- kernels ---------------------------------------------------------------
# name -> "suites|version prefix|metapackage". The metapackage's dependency
# names the ABI package (linux-image-<release>), whatever the suite.
declare -A kernel_spec=(
  [6.1]="bookworm bookworm-updates bookworm-security|6.1.|linux-image-cloud-amd64"
  [6.12]="bookworm-backports|6.12.|linux-image-amd64"
  [6.12-cloud]="bookworm-backports|6.12.|linux-image-cloud-amd64"
  [newest]="bookworm-backports trixie trixie-backports sid||linux-image-amd64"
  [newest-cloud]="bookworm-backports trixie trixie-backports sid||linux-image-cloud-amd64"
)
all_kernels=(6.1 6.12 newest)

# A private apt configuration: its own sources, lists and package cache
# under $cache/apt, so the host's /etc/apt and apt state are never touched.
# APT_CONFIG is read before /etc/apt/apt.conf.d, and points that away too:
# the host's hooks (APT::Update::Post-Invoke...) and its cache settings
# (Docker images turn off pkgcache.bin, which costs 2 s a look-up) stay out.
# Only the host's network policy is carried over: proxies, and whether
# Release files may be expired (a host that uses a snapshot mirror, or whose
# clock is off, turns Check-Valid-Until off).
apt_dir=$cache/apt
papt() { APT_CONFIG=$apt_dir/apt.conf "$@"; }
setup_apt() {
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/parts"
  local s sources conf
  sources=$(
    for s in bookworm bookworm-updates bookworm-backports trixie trixie-backports sid; do
      echo "deb [signed-by=$keyring] $mirror $s main"
    done
    echo "deb [signed-by=$keyring] $security_mirror bookworm-security main"
  )
  conf=$(
    cat <<EOF
Dir::Etc::Parts "$apt_dir/parts";
Dir::Etc::Main "/dev/null";
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "/dev/null";
Dir::Cache "$apt_dir/cache";
Dir::Cache::pkgcache "pkgcache.bin";
Dir::Cache::srcpkgcache "srcpkgcache.bin";
APT::Architectures { "amd64"; };
Acquire::Languages "none";
APT::Sandbox::User "root"; // the cache is root's: _apt could not write it
EOF
    apt-config dump 2>/dev/null |
      grep -E '^Acquire::(Check-Valid-Until|Check-Date|Retries|[a-z]+::Proxy)( |::)' || true
  )
  # Rewritten only when changed: a newer sources.list makes apt rebuild its
  # 90 MB cache (2.5 s).
  [[ $(cat "$apt_dir/sources.list" 2>/dev/null) == "$sources" ]] ||
    echo "$sources" >"$apt_dir/sources.list"
  [[ $(cat "$apt_dir/apt.conf" 2>/dev/null) == "$conf" ]] ||
    echo "$conf" >"$apt_dir/apt.conf"
}

# update_lists: refreshes the private lists when --refresh was given or they
# are older than a day. A failure (offline) keeps the old lists.
update_lists() {
  local stamp=$apt_dir/updated
  if ((refresh)) || [[ ! -e $stamp ]] || [[ -n $(find "$stamp" -mmin +1440) ]]; then
    log "updating the kernel package lists ($apt_dir)"
    if papt apt-get -qq update >"$apt_dir/update.log" 2>&1; then
      touch "$stamp"
    else
      log "apt-get update failed (offline?), using the lists as they are:"
      tail -3 "$apt_dir/update.log" >&2
    fi
  fi
}

# resolve NAME: prints "package version release" of the kernel NAME stands
# for: the highest version of its metapackage in its suites, and the
# linux-image-<release> package that version depends on.
resolve() {
  local suites prefix meta
  IFS='|' read -r suites prefix meta <<<"${kernel_spec[$1]}"
  local best='' line version suite
  # madison: "pkg | version | http://mirror suite/main amd64 Packages"
  while IFS='|' read -r _ version line; do
    version=${version// /}
    suite=$(awk '{print $2}' <<<"$line")
    suite=${suite%%/*}
    [[ " $suites " == *" $suite "* && $version == "$prefix"* ]] || continue
    if [[ -z $best ]] || dpkg --compare-versions "$version" gt "$best"; then
      best=$version
    fi
  done < <(papt apt-cache madison "$meta" 2>/dev/null)
  [[ -n $best ]] || return 1
  local pkg
  pkg=$(papt apt-cache show "$meta=$best" 2>/dev/null |
    sed -n 's/^Depends: //p' | tr ',' '\n' |
    grep -oE 'linux-image-[0-9][^ ]*' | head -1)
  [[ -n $pkg ]] || return 1
  echo "$pkg $best ${pkg#linux-image-}"
}

# fetch_kernel PACKAGE VERSION RELEASE: downloads and extracts the kernel
# into $cache/kernels/RELEASE/root unless it is already there. Kernels up to
# 6.x are one linux-image-* package; newer ones are split into
# linux-binary-* (vmlinuz), linux-modules-* (.ko.xz) and linux-base-*
# (config, System.map), which linux-image-* then only depends on.
fetch_kernel() {
  local pkg=$1 version=$2 rel=$3 dir=$cache/kernels/$3
  [[ -e $dir/ready ]] && return 0
  local tmp=$cache/kernels/.tmp-$rel
  rm -rf "$tmp" && mkdir -p "$tmp/debs" "$tmp/root"
  local pkgs=("$pkg=$version")
  if papt apt-cache show "$pkg=$version" | grep -q "^Depends:.*linux-binary-$rel"; then
    pkgs=("linux-binary-$rel=$version" "linux-modules-$rel=$version" "linux-base-$rel=$version")
  fi
  log "downloading ${pkgs[*]}"
  local t0=$EPOCHREALTIME
  if ! (cd "$tmp/debs" && papt apt-get -qq download "${pkgs[@]}"); then
    log "apt-get download ${pkgs[*]} failed"
    rm -rf "$tmp"
    return 1
  fi
  # (Called as a condition, where set -e is off: hence the explicit dies.)
  local t1=$EPOCHREALTIME deb
  for deb in "$tmp"/debs/*.deb; do
    dpkg-deb -x "$deb" "$tmp/root" || die "dpkg-deb -x $deb failed"
  done
  # A package may install into /usr/lib/modules (merged /usr); depmod and
  # modprobe -d look in <root>/lib/modules.
  if [[ ! -d $tmp/root/lib/modules/$rel && -d $tmp/root/usr/lib/modules/$rel ]]; then
    mkdir -p "$tmp/root/lib" && ln -s ../usr/lib/modules "$tmp/root/lib/modules"
  fi
  # vmlinuz and config: in /boot up to 6.x, in /usr/lib/modules/RELEASE
  # (like other distributions) in the split packages. Link both to fixed
  # names so the rest does not care.
  local f
  for f in vmlinuz config; do
    if [[ -f $tmp/root/boot/$f-$rel ]]; then
      ln -s "root/boot/$f-$rel" "$tmp/$f"
    elif [[ -f $tmp/root/lib/modules/$rel/$f ]]; then
      ln -s "root/lib/modules/$rel/$f" "$tmp/$f"
    else
      die "no $f in ${pkgs[*]}"
    fi
  done
  depmod -b "$tmp/root" "$rel" || die "depmod $rel failed"
  rm -rf "$tmp/debs"
  local t2=$EPOCHREALTIME
  printf 'packages=%s\ndownload_seconds=%s\nextract_seconds=%s\n' "${pkgs[*]}" \
    "$(seconds "$t0" "$t1")" "$(seconds "$t1" "$t2")" >"$tmp/info"
  touch "$tmp/ready"
  rm -rf "$dir"
  mv "$tmp" "$dir" || die "cannot move $tmp to $dir"
  log "$rel: downloaded in $(seconds "$t0" "$t1") s, extracted in $(seconds "$t1" "$t2") s"
}

# prune_kernels: removes cached kernels that no name resolves to any more
# (a newer "newest" replaced them) and half-extracted ones.
prune_kernels() {
  local d keep
  keep=$(cat "$cache"/kernels/*.resolved 2>/dev/null | awk '{print $3}')
  for d in "$cache"/kernels/*/ "$cache"/kernels/.tmp-*/; do
    [[ -d $d ]] || continue
    d=${d%/}
    grep -qxF "${d##*/}" <<<"$keep" && continue
    log "removing the unused kernel ${d##*/}"
    rm -rf "$d"
  done
}

# ---- host packages ---------------------------------------------------------
install_host_packages() {
  local pkgs=(qemu-system-x86 qemu-system-common busybox-static kmod cpio xz-utils zstd util-linux)
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# ---- initramfs ---------------------------------------------------------------
# Modules the initramfs loads before it can mount the root: PCI transport,
# the result disk, virtiofs (with fuse) and overlayfs. Whatever is built in
# shows up as "builtin" and is skipped. Everything else (veth, nf_tables...)
# the guest's kernel loads on demand through the host's modprobe, from the
# cached /lib/modules/RELEASE bound into the guest.
boot_modules=(virtio_pci virtio_blk virtiofs overlay)

# build_initramfs RELEASE NAME DIR: writes DIR/initramfs.cpio.
build_initramfs() {
  local rel=$1 name=$2 work=$3 kroot=$cache/kernels/$1/root
  local ir=$work/initramfs
  mkdir -p "$ir"/{bin,dev,proc,sys,lower,rw,newroot,modules}
  cp /bin/busybox "$ir/bin/busybox"
  ln -s busybox "$ir/bin/sh"
  # The kernel opens /dev/console for init before anything is mounted.
  mknod -m 600 "$ir/dev/console" c 5 1
  # insmod order: each module after its dependencies; busybox's insmod reads
  # only uncompressed .ko, so decompress here.
  local line path order=()
  while read -r line; do
    [[ $line == insmod\ * ]] || continue
    path=${line#insmod }
    path=${path%% *}
    local base=${path##*/}
    base=${base%.xz}
    base=${base%.zst}
    [[ " ${order[*]} " == *" $base "* ]] && continue
    case $path in
    *.xz) xz -dc "$path" >"$ir/modules/$base" ;;
    *.zst) zstd -qdc "$path" >"$ir/modules/$base" ;;
    *) cp "$path" "$ir/modules/$base" ;;
    esac
    order+=("$base")
  done < <(modprobe -d "$kroot" -S "$rel" --show-depends -a "${boot_modules[@]}")
  printf '%s\n' "${order[@]}" >"$ir/modules/order"
  printf '%s\n' "${order[*]:-none}" >"$work/boot-modules"
  cp "$root/scripts/vm/init" "$ir/init"
  chmod +x "$ir/init"
  write_stage2 "$rel" "$name" >"$ir/stage2"
  printf 'cwd=%q\n' "$PWD" >"$ir/config"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"
}

# write_stage2 RELEASE NAME: the script the guest runs inside the chroot, as
# PID 1: the values of this run, then scripts/vm/stage2.
write_stage2() {
  local env=(TCPTRAIL_VM=1 "TCPTRAIL_VM_KERNEL=$2" TCPTRAIL_VM_OUT=/tmp/vmtest-out)
  [[ -n ${CI+set} ]] && env+=("CI=$CI")
  echo '#!/bin/bash'
  printf 'release=%q\n' "$1"
  printf 'kernel_dir=%q\n' "$cache/kernels/$1"
  printf 'cwd=%q\n' "$PWD"
  printf 'start_mark=%q\nend_mark=%q\n' "$start_mark" "$end_mark"
  printf 'console_loglevel=%d\n' $((verbose ? 4 : 1))
  printf 'cmd_env=(' && printf '%q ' "${env[@]}" && echo ')'
  printf 'cmd=(' && printf '%q ' "${command[@]}" && echo ')'
  cat "$root/scripts/vm/stage2"
}

# ---- one boot ----------------------------------------------------------------
# Background processes of the current boot (virtiofsd, console filter, QEMU),
# killed by pid on every way out. A pid leaves the list once reaped, so a
# recycled pid is never signalled.
pids=()
reap() { # reap PID: waits for it, sets reaped_rc
  reaped_rc=0
  wait "$1" 2>/dev/null || reaped_rc=$?
  local keep=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=(${keep[@]+"${keep[@]}"})
}
cleanup() {
  local p
  for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
  for p in ${pids[@]+"${pids[@]}"}; do reap "$p"; done
  [[ -n ${work:-} ]] && rm -rf "$work"
  work=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# console_filter LOG START_FILE: reads the serial console on stdin, keeps all
# of it in LOG, and prints only what the command wrote (everything with
# --verbose). It stamps START_FILE when the command starts. Reads to EOF
# (QEMU's exit), so QEMU never writes into a closed pipe.
console_filter() {
  set +e
  local logf=$1 startf=$2 line
  while IFS= read -r line; do
    printf '%s\n' "$line" >>"$logf"
    if [[ $line == *"$start_mark"* ]]; then
      echo "$EPOCHREALTIME" >"$startf"
      break
    fi
    if ((verbose)); then printf '%s\n' "$line" >&2; fi
  done
  # From here on the command's output, up to the end mark, which may follow
  # a last line without newline; after it, only power-off noise.
  tee -a "$logf" | sed -u -n -e "/$end_mark/{s/$end_mark.*//;/./p;:a;n;ba}" -e p
}

# boot NAME RELEASE: runs the command on one kernel; sets boot_rc.
boot() {
  local name=$1 rel=$2
  local dest=$out_base/$name
  # Two runs of one kernel into one folder would clobber each other's
  # results: the second waits (the lock goes with this fd, closed below).
  exec {dest_lock}>"$dest.lock"
  if ! flock -n "$dest_lock"; then
    log "$name: waiting for the other vmtest run that writes $dest"
    flock "$dest_lock"
  fi
  rm -rf "$dest" && mkdir -p "$dest/out"
  echo "$rel" >"$dest/release"
  work=$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")
  build_initramfs "$rel" "$name" "$work"
  log "$name: booting $rel (boot modules: $(<"$work/boot-modules"))"
  truncate -s "$out_disk_size" "$work/out.img"

  # virtiofsd shares a read-only bind mount of / (made in a private mount
  # namespace, so the host sees nothing): the guest cannot write to the host
  # even by remounting. The bind is not recursive: /proc, /sys, /dev of the
  # host stay out, the guest mounts its own. cache=always lets the guest
  # keep what it has read for the whole boot: under TCG every FUSE round
  # trip is dear, and it makes an exec ~0.1 s instead of ~0.5 s (measured).
  # The price: a host file changed during a boot may look stale in it.
  mkdir -p "$work/share"
  # shellcheck disable=SC2016 # the inner sh expands $1..$3
  unshare -m --propagation private -- sh -c '
    mount --bind / "$1" && mount -o remount,bind,ro "$1" &&
    exec "$2" --socket-path="$3" -o source="$1" -o cache=always \
      -o log_level=warn' sh "$work/share" "$virtiofsd" "$work/fs.sock" \
    >"$work/virtiofsd.log" 2>&1 &
  pids+=($!)
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -S $work/fs.sock ]] && break
    sleep 0.05
  done
  [[ -S $work/fs.sock ]] || { cat "$work/virtiofsd.log" >&2; die "virtiofsd did not start"; }

  mkfifo "$work/console"
  console_filter "$dest/console.log" "$work/started" <"$work/console" &
  local filter_pid=$!
  pids+=("$filter_pid")
  # timeout(1) is QEMU's parent: it kills QEMU when the time is up (exit
  # 124), and passes on the TERM that cleanup sends it.
  local t0=$EPOCHREALTIME
  timeout -k 10 "$timeout" \
    qemu-system-x86_64 "${accel_args[@]}" -m 4G -smp 2 -nographic -no-reboot \
    -nic none \
    -kernel "$cache/kernels/$rel/vmlinuz" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 panic=-1 rdinit=/init mitigations=off" \
    -chardev socket,id=char0,path="$work/fs.sock" \
    -device vhost-user-fs-pci,chardev=char0,tag=hostroot \
    -object memory-backend-memfd,id=mem,size=4G,share=on -numa node,memdev=mem \
    -drive file="$work/out.img",format=raw,if=virtio,cache=unsafe \
    -d guest_errors,cpu_reset -D "$work/qemu-debug.log" \
    </dev/null >"$work/console" 2>"$work/qemu.log" &
  local qemu_pid=$!
  pids+=("$qemu_pid")
  reap "$qemu_pid"
  local qemu_rc=$reaped_rc t1=$EPOCHREALTIME
  reap "$filter_pid"

  boot_seconds=$(seconds "$t0" "$t1")
  startup_seconds='?'
  [[ -e $work/started ]] && startup_seconds=$(seconds "$t0" "$(<"$work/started")")
  # "rc=N tar=N size=N", written by the guest after the command.
  local status rc='' tar_rc='' size=''
  status=$(head -c 512 "$work/out.img" | tr -d '\0')
  if [[ $status =~ ^rc=([0-9]+)\ tar=([0-9]+)\ size=([0-9]+) ]]; then
    rc=${BASH_REMATCH[1]} tar_rc=${BASH_REMATCH[2]} size=${BASH_REMATCH[3]}
  fi
  if ((qemu_rc == 124 || qemu_rc == 137)); then
    log "$name: $rel: timed out after $timeout s, QEMU killed"
    boot_rc=124
  elif [[ -z $rc ]]; then
    log "$name: $rel: the guest did not report an exit status (QEMU exit $qemu_rc); last console lines ($dest/console.log):"
    # Diagnostics only: none of them may end the script (set -e), which
    # would skip the retry below.
    {
      tail -15 "$dest/console.log" | sed 's/^/  | /'
      sed 's/^/  qemu: /' "$work/qemu.log"
      sed 's/^/  virtiofsd: /' "$work/virtiofsd.log"
      grep -i -m3 -E 'triple|fault' "$work/qemu-debug.log" | sed 's/^/  qemu -d: /'
      cp "$work/qemu-debug.log" "$dest/"
    } >&2 2>/dev/null || true
    boot_rc=125
  else
    boot_rc=$rc
  fi
  if [[ -n $size ]] && ((tar_rc == 0 && size > 0)); then
    dd if="$work/out.img" of="$work/out.tar" bs=1M skip=1 count=$(((size + 1048575) / 1048576)) status=none
    truncate -s "$size" "$work/out.tar"
    tar -xf "$work/out.tar" -C "$dest/out"
  elif [[ -n $tar_rc ]] && ((tar_rc != 0)); then
    log "$name: $rel: could not return \$TCPTRAIL_VM_OUT (tar exit $tar_rc, larger than $out_disk_size?)"
    ((boot_rc)) || boot_rc=125
  fi
  cleanup
  exec {dest_lock}>&-
}

# ---- accelerator ---------------------------------------------------------------
# KVM when it works, TCG otherwise. /dev/kvm opening is not enough: a nested
# or software hypervisor may create VMs and still fail a stock kernel (QEMU
# aborts on "failed to set MSR 0x10a" with plain -cpu host where
# IA32_ARCH_CAPABILITIES is not passed through; a PVM host, kvm_pvm, stops
# Debian's kernel in its decompressor with "KVM internal error"). So the probe
# boots KERNEL for real on two CPUs, without an initramfs, and waits for the
# panic that ends a kernel with no root: only a kernel that got through its
# whole start-up prints it. The verdict is kept per host boot. Sets
# accel_args and accel_name.
kvm_cpu=host,-arch-capabilities
probe_accel() {
  local kernel=$1 want=$2 reason='' out pid i
  accel_args=(-accel tcg -cpu max) accel_name=tcg
  [[ $want == tcg ]] && return 0
  local verdict_file
  verdict_file=$cache/accel.$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
  if [[ $want == auto && -s $verdict_file ]]; then
    reason=$(<"$verdict_file")
  elif [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
    reason='no usable /dev/kvm'
  else
    out=$(mktemp)
    qemu-system-x86_64 -accel kvm -cpu "$kvm_cpu" -m 512 -smp 2 -nographic \
      -no-reboot -nic none -kernel "$kernel" \
      -append 'console=ttyS0 panic=-1 rdinit=/nonexistent root=/dev/nonexistent' \
      </dev/null >"$out" 2>&1 &
    pid=$!
    for ((i = 0; i < 300; i++)); do # 30 s
      grep -aq -e 'Kernel panic' -e 'KVM internal error' "$out" && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if grep -aq 'Kernel panic' "$out"; then
      reason=''
    else
      reason=$(grep -ao -m1 -e 'KVM internal error.*' -e '^qemu-system.*' "$out" | tr -cd '[:print:]' || true)
      reason=${reason:-the probe guest did not finish booting in 30 s}
    fi
    rm -f "$out"
    [[ $want == auto ]] && printf '%s\n' "${reason:-ok}" >"$verdict_file"
  fi
  if [[ -z $reason || $reason == ok ]]; then
    accel_args=(-accel kvm -cpu "$kvm_cpu") accel_name=kvm
    return 0
  fi
  [[ $want == kvm ]] && die "--accel kvm: $reason"
  log "KVM not used ($reason): TCG, several times slower"
}

# ---- main --------------------------------------------------------------------
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }

names=() timeout=900 out_base=$root/build/vmtest refresh=0 verbose=0
accel=${TCPTRAIL_VMTEST_ACCEL:-auto}
while (($#)); do
  case $1 in
  --kernel) IFS=, read -ra k <<<"${2:?--kernel needs a name}" && names+=("${k[@]}") && shift 2 ;;
  --kernel=*) IFS=, read -ra k <<<"${1#*=}" && names+=("${k[@]}") && shift ;;
  --timeout) timeout=${2:?} && shift 2 ;;
  --timeout=*) timeout=${1#*=} && shift ;;
  --out) out_base=${2:?} && shift 2 ;;
  --out=*) out_base=${1#*=} && shift ;;
  --refresh) refresh=1 && shift ;;
  --verbose) verbose=1 && shift ;;
  --accel) accel=${2:?} && shift 2 ;;
  --accel=*) accel=${1#*=} && shift ;;
  -h | --help) usage && exit 0 ;;
  --) shift && break ;;
  *) usage >&2 && exit 2 ;;
  esac
done
command=("$@")
((${#command[@]})) || { usage >&2 && exit 2; }
[[ $timeout =~ ^[0-9]+$ ]] || die "--timeout wants seconds"
[[ $accel =~ ^(auto|kvm|tcg)$ ]] || die "--accel wants kvm, tcg or auto, not '$accel'"
((${#names[@]})) || names=(all)
selected=()
for n in "${names[@]}"; do
  if [[ $n == all ]]; then set -- "${all_kernels[@]}"; else set -- "$n"; fi
  for k; do
    [[ -n ${kernel_spec[$k]:-} ]] || die "unknown kernel '$k' (known: all ${!kernel_spec[*]})"
    [[ " ${selected[*]} " == *" $k "* ]] || selected+=("$k")
  done
done
[[ $(id -u) -eq 0 ]] || die "needs root (apt-get, virtiofsd)"
# The guest sees the host's root file system only (no submounts), so the
# working directory must be on it.
[[ $(findmnt -n -o TARGET --target "$PWD") == / ]] ||
  die "$PWD is not on the root file system, which is all the guest sees"
mkdir -p "$out_base"
out_base=$(cd "$out_base" && pwd)

install_host_packages
mkdir -p "$cache/kernels"
# One run at a time resolves and downloads; boots may run side by side.
exec {lock}>"$cache/lock"
flock "$lock"
setup_apt
update_lists
declare -A release_of
for n in "${selected[@]}"; do
  [[ -n ${release_of[$n]:-} ]] && continue
  pkg=''
  if r=$(resolve "$n"); then
    read -r pkg version rel <<<"$r"
    if fetch_kernel "$pkg" "$version" "$rel"; then
      echo "$r" >"$cache/kernels/$n.resolved"
    else
      pkg=''
    fi
  fi
  if [[ -z $pkg ]]; then
    # Offline, or a mirror without that version: the kernel used last time.
    [[ -e $cache/kernels/$n.resolved ]] || die "cannot get kernel '$n' (see $apt_dir/update.log)"
    read -r pkg version rel <"$cache/kernels/$n.resolved"
    [[ -e $cache/kernels/$rel/ready ]] || die "cannot get kernel '$n'"
    log "$n: using the kernel cached last time"
  fi
  release_of[$n]=$rel
  log "$n: $pkg $version (release $rel)"
done
prune_kernels
flock -u "$lock"
probe_accel "$cache/kernels/${release_of[${selected[0]}]}/vmlinuz" "$accel"
log "accelerator: $accel_name"

summary=() failed=() last_rc=0
for n in "${selected[@]}"; do
  for attempt in 1 2 3; do
    boot "$n" "${release_of[$n]}"
    # A guest that died before it ran the command is booted again: under
    # TCG a kernel sometimes oopses while booting (7.3.4: an int3 in
    # ktime_get_update_offsets_now, 1 boot in ~30). The same int3 oops can
    # hit a patched tracepoint site while programs attach or detach under
    # load (7.3.4: "Oops: int3" at inet_sk_state_store+0x17, once in the
    # integration suite): the emulator's live code patching, not the
    # command, so that run is booted again too, and said. A command's own
    # failure, or any other death after it started, is never retried.
    [[ $boot_rc == 125 ]] && ((attempt < 3)) || break
    if [[ $startup_seconds == '?' ]]; then
      log "$n: the guest died before it ran the command; booting it again ($((attempt + 1))/3)"
    elif grep -Eq '^\[ *[0-9]+\.[0-9]+\] Oops: int3' "$out_base/$n/console.log" 2>/dev/null; then
      log "$n: the guest kernel oopsed on an int3 (TCG live code patching) while the command ran; running it again ($((attempt + 1))/3)"
    else
      break
    fi
  done
  log "$n: command started $startup_seconds s after QEMU, QEMU ran $boot_seconds s"
  summary+=("vmtest: ${release_of[$n]}: exit $boot_rc ($boot_seconds s)")
  ((boot_rc == 0)) || failed+=("$n (${release_of[$n]})")
  last_rc=$boot_rc
done
printf '%s\n' "${summary[@]}"
((${#failed[@]})) || exit 0
printf -v list '%s, ' "${failed[@]}"
echo "vmtest: FAILED on: ${list%, }"
# One kernel: its own exit status (124 timeout, 125 no status); several: 1.
((${#selected[@]} == 1)) && exit "$last_rc"
exit 1
