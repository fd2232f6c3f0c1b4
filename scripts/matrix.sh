#!/usr/bin/env bash
# The kernel matrix: tcptrail's checks on the kernels its users run, each
# booted under QEMU by scripts/vmtest.sh with this host's root filesystem
# (and so this build) shared read-only.
#   scripts/matrix.sh [--kernels LIST] [--suite LIST] [--fallbacks LIST]
#     --kernels    kernels to boot (default 6.1,6.12,newest): every one runs
#                  scripts/vm/smoke.sh (doctor, attach, live runs)
#     --suite      of those, the ones that also run the whole integration
#                  suite (default 6.1,newest)
#     --fallbacks  the ones that also run the history and trace tests with
#                  the fallbacks forced (default newest)
# The host's own kernel is covered by scripts/test.sh. Prints one
# "matrix: KERNEL: N passed, M failed" line per kernel and a closing
# "matrix: N passed, M failed"; exits non-zero when anything failed.
# Needs the build in build/ (scripts/setup.sh) and root.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kernels=6.1,6.12,newest
suite=6.1,newest
fallbacks=newest
while (($#)); do
  case $1 in
  --kernels) kernels=$2; shift 2 ;;
  --suite) suite=$2; shift 2 ;;
  --fallbacks) fallbacks=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "matrix: unknown argument: $1" >&2; exit 2 ;;
  esac
done
in_list() { [[ ",$2," == *",$1,"* ]]; }

passed=0 failed=0
summary=()
IFS=, read -ra names <<<"$kernels"
for k in "${names[@]}"; do
  args=()
  in_list "$k" "$suite" && args+=(--suite)
  in_list "$k" "$fallbacks" && args+=(--fallbacks)
  log=$(mktemp)
  start=$SECONDS
  # Generous: the suite takes ~5x its native time under TCG.
  "$root/scripts/vmtest.sh" --kernel "$k" --timeout 2400 -- \
    "$root/scripts/vm/checks.sh" "${args[@]}" "$root/build" 2>&1 | tee "$log" || true
  line=$(grep -E '^checks: .*: [0-9]+ passed, [0-9]+ failed' "$log" | tail -1 || true)
  release=$(grep -oE 'release [^)]+' "$log" | head -1 | cut -d' ' -f2 || true)
  if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
  else
    p=0 f=1 # the guest never got to its summary
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  summary+=("matrix: $k (${release:-?}): $p passed, $f failed ($((SECONDS - start)) s)")
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
echo "matrix: $passed passed, $failed failed"
((failed == 0))
