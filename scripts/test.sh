#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit tests (no
# privileges), integration tests (root, this host's kernel, network
# namespaces), a bounded fuzzing run, and the kernel matrix (the same
# build's checks under QEMU on Debian 12's 6.1, bookworm's 6.12 and the
# newest Debian kernel: scripts/matrix.sh, ~30 min under TCG).
# Under CI=true (or TCPTRAIL_REQUIRE_BPF=1) an integration test that cannot
# run fails with its reason instead of skipping.
#   scripts/test.sh              everything
#   scripts/test.sh --no-matrix  everything but the kernel matrix
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
matrix=1
case ${1:-} in
--no-matrix) matrix=0 ;;
"") ;;
*) echo "usage: scripts/test.sh [--no-matrix]" >&2; exit 2 ;;
esac
"$root/scripts/setup.sh"
cd "$root/build"
rc=0
passed=0 failed=0
# count LOG: adds ctest's "N tests failed out of M" to the totals.
count() {
  local line
  line=$(grep -E '[0-9]+ tests failed out of [0-9]+' "$1" | tail -1 || true)
  if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  else
    failed=$((failed + 1)) # ctest did not even report
  fi
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== unit tests"
ctest -L unit --output-on-failure -j"$(nproc)" 2>&1 | tee "$log" || rc=1
count "$log"
echo "== integration tests (real kernel)"
ctest -L integration --output-on-failure 2>&1 | tee "$log" || rc=1
count "$log"

# ---- fuzzing (issue 6): the decoder and every formatter, libFuzzer with
# ASan+UBSan, in its own build tree (build-fuzz/), for a bounded time.
echo "== fuzz (30 s)"
if "$root/scripts/fuzz.sh" 30; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  rc=1
fi

# ---- packaging (issue 19): the .deb (CPack, lintian), the portable binary,
# both installed and run in a fresh Debian 12 root (debootstrap, cached).
echo "== packaging"
"$root/scripts/pkg/check.sh" 2>&1 | tee "$log" || rc=1
line=$(grep -E '^pkg: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
else
  failed=$((failed + 1))
fi

# ---- packaging (issue 18): the serve systemd unit (systemd-analyze verify)
# and the Kubernetes DaemonSet (YAML, required fields, capabilities).
echo "== serve packaging"
"$root/scripts/check-packaging.sh" "$root/build" 2>&1 | tee "$log" || rc=1
line=$(grep -E '^packaging: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
else
  failed=$((failed + 1))
fi

# ---- the kernel matrix (issue 16): every kernel users run, under QEMU.
if ((matrix)); then
  echo "== kernel matrix"
  "$root/scripts/matrix.sh" 2>&1 | tee "$log" || rc=1
  line=$(grep -E '^matrix: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
  if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
  else
    failed=$((failed + 1))
  fi
fi

((failed == 0)) || rc=1
echo "tests: $passed passed, $failed failed"
exit $rc
