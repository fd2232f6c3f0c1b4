#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit tests (no
# privileges) and integration tests (root, real kernel, network namespaces).
# Under CI=true (or TCPTRAIL_REQUIRE_BPF=1) an integration test that cannot
# run fails with its reason instead of skipping.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root/build"
rc=0
echo "== unit tests"
ctest -L unit --output-on-failure -j"$(nproc)" || rc=1
echo "== integration tests (real kernel)"
ctest -L integration --output-on-failure || rc=1

# ---- fuzzing (issue 6): the decoder and every formatter, libFuzzer with
# ASan+UBSan, in its own build tree (build-fuzz/), for a bounded time.
echo "== fuzz (30 s)"
"$root/scripts/fuzz.sh" 30 || rc=1

exit $rc
