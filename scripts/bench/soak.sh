#!/usr/bin/env bash
# soak.sh - connection churn for a long time under one tracer; RSS sampled
# every interval must stay flat after warm-up (issue 6).
#
# Usage: soak.sh [--minutes M] [--mode history|trace|leaks] [--interval S]
#                [--out FILE.json]
# Default: 10 minutes of `tcptrail history -f json > /dev/null` under a
# client-first storm (2 threads) in a private namespace, VmRSS every 30 s.
# Prints the samples, the warm-up figure (first sample after 60 s), the final
# one and the drift; writes them to --out as JSON.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

minutes=10 mode=history interval=30 out=""
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --interval) interval=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done

bench_setup
args=("$mode" -f json)
[[ $mode == leaks ]] && args=(leaks --interval 10s)
start_tracer "$BENCH_TMP/tracer.log" "$TCPTRAIL" "${args[@]}"
tracer=$TRACER_PID
wait_ready "$tracer" "$BENCH_TMP/tracer.log" || die "tracer not ready: $(cat "$BENCH_TMP/tracer.log")"

total=$((minutes * 60))
# Churn in back-to-back 60 s loadgen runs (each settles its sockets).
(
  end=$((SECONDS + total))
  while ((SECONDS < end)); do
    run_load --mode client-first --threads 2 --duration $((end - SECONDS < 60 ? end - SECONDS : 60)) >>"$BENCH_TMP/load.jsonl" || true
  done
) &
load=$!

samples=()
t=0
while ((t < total)); do
  sleep "$interval"
  t=$((t + interval))
  kill -0 "$tracer" 2>/dev/null || die "tracer died: $(cat "$BENCH_TMP/tracer.log")"
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$tracer/status")
  samples+=("$t:$rss")
  log "t=${t}s VmRSS=${rss} kB"
done
wait "$load" || true
stop_tracer "$tracer"
conns=$("$PYTHON" -c 'import json,sys; print(sum(json.loads(l)["connections"] for l in open(sys.argv[1])))' "$BENCH_TMP/load.jsonl")

"$PYTHON" - "$mode" "$conns" "$STOP_STATUS" "${samples[@]}" <<'PY' | tee "${out:-/dev/null}"
import json, sys
mode, conns, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
samples = [tuple(map(int, s.split(":"))) for s in sys.argv[4:]]
warm = next((r for t, r in samples if t >= 60), samples[0][1])
final = samples[-1][1]
print(json.dumps({"mode": mode, "connections": conns, "exit_status": status,
                  "rss_kb_samples": samples, "rss_kb_after_warmup": warm,
                  "rss_kb_final": final, "drift_kb": final - warm}))
PY
