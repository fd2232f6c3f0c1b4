#!/usr/bin/env bash
# Builds the libFuzzer target (clang, ASan + UBSan, in build-fuzz/) and runs
# it for a bounded time over the decoder and every output formatter.
#
#   scripts/fuzz.sh [SECONDS]     (default 60)
#
# Seeds: tests/fuzz/corpus/ (read-only). New inputs go to
# build-fuzz/fuzz-corpus/, crash reproducers to build-fuzz/fuzz-artifacts/;
# replay one with: build-fuzz/tests/fuzz/fuzz_decode <file>.
# Exit status: 0 when the run found nothing, non-zero otherwise.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

build="$root/build-fuzz"
echo "== fuzz: building fuzz_decode (clang, ASan+UBSan) in $build"
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DTCPTRAIL_FUZZ=ON \
  -DTCPTRAIL_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target fuzz_decode -j"$(nproc)" >/dev/null

corpus="$build/fuzz-corpus"
artifacts="$build/fuzz-artifacts"
mkdir -p "$corpus" "$artifacts"
echo "== fuzz: running fuzz_decode for ${seconds}s"
# -timeout: one input taking longer than 10 s is a hang (a finding too).
"$build/tests/fuzz/fuzz_decode" -max_total_time="$seconds" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
  "$corpus" "$root/tests/fuzz/corpus" 2>"$build/fuzz.log" || {
  rc=$?
  tail -n 60 "$build/fuzz.log" >&2
  echo "fuzz: FAILED (exit $rc); reproducers in $artifacts, log $build/fuzz.log" >&2
  exit 1
}
grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "$build/fuzz.log" || true
echo "fuzz: ok (${seconds}s, no crash, leak or invariant violation)"
