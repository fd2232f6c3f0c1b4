#!/usr/bin/env bash
# Installs tcptrail's build and test dependencies from Debian 12 packages
# and configures + builds into ./build. Idempotent; needs root for apt-get.
#   scripts/setup.sh            install (if missing) and build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(
  build-essential cmake pkg-config
  clang llvm libclang-rt-14-dev        # BPF compiler, libFuzzer runtime
  libbpf-dev bpftool libelf-dev zlib1g-dev
  libcli11-dev libfmt-dev
  googletest libgtest-dev nlohmann-json3-dev
  iproute2 nftables iputils-ping tcpdump libcap2-bin util-linux procps
  python3                              # scripts/scenario.sh, bench helpers
  curl                                 # tests: scraping serve's /metrics
  scdoc zsh                            # man pages; zsh completion test
  lintian debootstrap libzstd-dev      # .deb check, portable binary
  crossbuild-essential-arm64 qemu-system-arm qemu-user-static cpio # arm64
  libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev:arm64 libzstd-dev:arm64
  libfmt-dev:arm64
  libxml2-dev libxml2-utils tshark librsvg2-bin # ladder: SVG checks, tshark, PNG
  prometheus-cpp-dev                   # serve: exposition + HTTP server
  prometheus                           # serve tests: the real server, promtool
  python3-yaml                         # packaging checks: DaemonSet YAML
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  # The :arm64 libraries of the cross build come through multiarch.
  if [[ " ${missing[*]}" == *:arm64* ]] &&
    ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  export DEBIAN_FRONTEND=noninteractive
  # tshark: no setuid dumpcap (and no question asked)
  echo "wireshark-common wireshark-common/install-setuid boolean false" |
    debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The prometheus package starts its own server where systemd runs: the tests
# start theirs, on their own ports.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)"
