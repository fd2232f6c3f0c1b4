#!/usr/bin/env bash
# Prints the path of a tarball holding a fresh Debian 12 (bookworm) root that
# never saw a tcptrail build: debootstrap --variant=minbase from the apt mirror
# this machine uses, made once and cached under /var/cache/tcptrail-ci.
#   scripts/pkg/debian-root.sh [ARCH]     ARCH defaults to the host's (amd64)
set -euo pipefail
arch=${1:-$(dpkg --print-architecture)}
cache=/var/cache/tcptrail-ci
tarball=$cache/bookworm-$arch-minbase.tar
if [[ -s $tarball ]]; then
  echo "$tarball"
  exit 0
fi
# The mirror of the first bookworm entry in this machine's apt sources.
mirror=$(grep -hs -E '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/* |
  grep -m1 -o 'https\?://[^ ]*/debian\b' || true)
mirror=${mirror:-http://deb.debian.org/debian}
mkdir -p "$cache"
work=$(mktemp -d "$cache/root.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
echo "debian-root: debootstrap bookworm ($arch) from $mirror" >&2
debootstrap --variant=minbase --arch="$arch" bookworm "$work/root" "$mirror" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -20 "$work/debootstrap.log" >&2
  exit 1
}
tar -C "$work/root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "debian-root: $tarball in $(($(date +%s) - start)) s" >&2
echo "$tarball"
