#!/usr/bin/env bash
# What scripts/matrix.sh runs inside each guest kernel (it works on any host
# too, as root):
#   scripts/vm/checks.sh [--suite] [--fallbacks] [BUILD_DIR]
#   (always)     scripts/vm/smoke.sh: doctor, every subcommand's attach,
#                live trace/history/snapshot/leaks runs;
#   --suite      the whole integration suite (ctest -L integration);
#                without it, the cookie and seeding tests alone (checked on
#                every kernel);
#   --fallbacks  the history and trace integration tests again with the
#                fallbacks forced (TCPTRAIL_FORCE_FALLBACK), so each one runs
#                on a kernel that does not need it.
# Ends with "checks: N passed, M failed" (smoke checks and ctest tests
# added up); exits non-zero when anything failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
suite=0 fallbacks=0 build=$root/build
while (($#)); do
  case $1 in
  --suite) suite=1 ;;
  --fallbacks) fallbacks=1 ;;
  *) build=$1 ;;
  esac
  shift
done
export CI=true TCPTRAIL_REQUIRE_BPF=1
passed=0 failed=0
# Adds a log's closing counts to the totals; no count line is a failure.
count_smoke() {
  local line
  line=$(grep -E '^smoke: [0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
  if [[ $line =~ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
  else
    failed=$((failed + 1))
  fi
}
count_ctest() {
  local line
  # (colour codes stripped: ctest colours its summary on a terminal)
  line=$(sed 's/\x1b\[[0-9;]*m//g' "$1" | grep -E '[0-9]+ tests failed out of [0-9]+' | tail -1)
  if [[ $line =~ ([0-9]+)\ tests\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=$((failed + BASH_REMATCH[1]))
    passed=$((passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
  else
    failed=$((failed + 1))
  fi
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

"$root/scripts/vm/smoke.sh" "$build" | tee "$log"
count_smoke "$log"

if ((suite)); then
  echo "checks: integration suite on $(uname -r)"
  (cd "$build" && ctest -L integration --output-on-failure --timeout 300) 2>&1 | tee "$log"
  count_ctest "$log"
else
  # The cookie contract (every record's cookie is the one ss shows, through
  # TIME_WAIT too) and the owners of sockets open at start (the fd walk,
  # iter/tcp stopped after the listeners, the claims) are checked on every
  # kernel, suite or not.
  echo "checks: cookie and seeding tests on $(uname -r)"
  (cd "$build" && ctest -L integration --output-on-failure --timeout 300 \
    -R 'Cookie|OpenBeforeStart|Seeded|OwnerOfAServerStartedBefore') 2>&1 | tee "$log"
  count_ctest "$log"
fi
if ((fallbacks)); then
  # history without map-element iterators (paths assembled in user space),
  # trace and history without batching (a ring record per transition).
  export TCPTRAIL_FORCE_FALLBACK=iter:bpf_sk_storage_map,bpf_without_caps
  echo "checks: forced fallbacks ($TCPTRAIL_FORCE_FALLBACK) on $(uname -r)"
  (cd "$build" && ctest -L integration --output-on-failure --timeout 300 \
    -R '^(HistoryTest|TraceTest)\.') 2>&1 | tee "$log"
  count_ctest "$log"
  unset TCPTRAIL_FORCE_FALLBACK
fi
echo "checks: $(uname -r): $passed passed, $failed failed"
((failed == 0))
