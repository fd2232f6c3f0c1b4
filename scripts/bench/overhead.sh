#!/usr/bin/env bash
# overhead.sh - throughput cost of a tracer: untraced vs traced loadgen runs,
# interleaved in pairs whose order flips (A B, B A, A B, ...), for each mode:
#
#   trace-json    tcptrail trace --format json > /dev/null
#   trace-table   tcptrail trace > /dev/null
#   history-json  tcptrail history --format json > /dev/null
#   leaks         tcptrail leaks > /dev/null
#   peer-bpftrace bpftrace scripts/bench/peer-tcpstates.bt > /dev/null
#
# Each run: loadgen --mode client-first --threads 2 for --duration seconds in
# a private network namespace. A traced run starts the tracer, waits until it
# is attached (see wait_ready in lib.sh), runs the load, then stops the
# tracer with SIGINT. Ratio = traced connections/s / untraced connections/s of
# the same pair; the mode's figure is the median ratio. Modes whose tcptrail
# subcommand does not exist print "skipped: not available".
#
# Usage: overhead.sh [--tcptrail PATH] [--loadgen PATH] [--pairs N]
#                    [--duration S] [--modes m1,m2,...] [--json FILE]
#                    [-- extra loadgen args]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

pairs=5
duration=5
modes="trace-json,trace-table,history-json,leaks,peer-bpftrace"
json_out=""
loadgen_args=(--mode client-first --threads 2)
while (($#)); do
  case $1 in
  --tcptrail) TCPTRAIL=$2; shift 2 ;;
  --loadgen) LOADGEN=$2; shift 2 ;;
  --pairs) pairs=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  --modes) modes=$2; shift 2 ;;
  --json) json_out=$2; shift 2 ;;
  --) shift; loadgen_args=("$@"); break ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done
((pairs >= 1 && pairs <= 100)) || die "--pairs must be 1..100"

bench_setup

# mode -> command line (stdout goes to /dev/null in start_tracer)
mode_cmd() {
  case $1 in
  trace-json) echo "$TCPTRAIL trace --format json" ;;
  trace-table) echo "$TCPTRAIL trace" ;;
  history-json) echo "$TCPTRAIL history --format json" ;;
  leaks) echo "$TCPTRAIL leaks" ;;
  peer-bpftrace) echo "bpftrace $bench_dir/peer-tcpstates.bt" ;;
  *) return 1 ;;
  esac
}

mode_available() {
  case $1 in
  trace-json | trace-table) tcptrail_has trace ;;
  history-json) tcptrail_has history ;;
  leaks) tcptrail_has leaks ;;
  peer-bpftrace) command -v bpftrace >/dev/null ;;
  *) return 1 ;;
  esac
}

# One loadgen run; sets RATE to its connections/s (or "fail").
untraced_run() {
  local out
  out=$(run_load "${loadgen_args[@]}" --duration "$duration") || true
  if [[ -n $out ]]; then
    RATE=$(json_get connections_per_s <<<"$out")
    [[ $(json_get errors <<<"$out") == 0 ]] ||
      log "loadgen reported errors: $out"
  else
    RATE=fail
  fi
}

# Sets RATE for one run under the mode's tracer.
traced_run() {
  local mode=$1 log_file="$BENCH_TMP/$1.log"
  # shellcheck disable=SC2046
  BPFTRACE_MAP_KEYS_MAX=10240 start_tracer "$log_file" $(mode_cmd "$mode")
  if ! wait_ready "$TRACER_PID" "$log_file" 60; then
    log "$mode: tracer did not become ready: $(tail -n 3 "$log_file" | tr '\n' ' ')"
    stop_tracer "$TRACER_PID"
    RATE=fail
    return
  fi
  untraced_run
  stop_tracer "$TRACER_PID"
  if [[ $STOP_STATUS != 0 && $STOP_STATUS != 130 ]]; then
    log "$mode: tracer exited with status $STOP_STATUS: $(tail -n 3 "$log_file" | tr '\n' ' ')"
  fi
}

results="$BENCH_TMP/results.jsonl"
: >"$results"
IFS=, read -r -a mode_list <<<"$modes"
printf '%-14s %-5s %12s %12s %7s\n' mode pair untraced/s traced/s ratio
for mode in "${mode_list[@]}"; do
  mode_cmd "$mode" >/dev/null || die "unknown mode: $mode"
  if ! mode_available "$mode"; then
    printf '%-14s skipped: not available (%s)\n' "$mode" "$(mode_cmd "$mode" | cut -d' ' -f1-2)"
    echo "{\"mode\":\"$mode\",\"skipped\":\"not available\"}" >>"$results"
    continue
  fi
  ratios=()
  for ((i = 1; i <= pairs; i++)); do
    if ((i % 2)); then
      untraced_run; base=$RATE
      traced_run "$mode"; traced=$RATE
    else
      traced_run "$mode"; traced=$RATE
      untraced_run; base=$RATE
    fi
    ratio=$("$PYTHON" -c 'import sys
try: print(f"{float(sys.argv[2])/float(sys.argv[1]):.4f}")
except Exception: print("nan")' "$base" "$traced")
    printf '%-14s %-5s %12s %12s %7s  (%s first)\n' "$mode" "$i" "$base" "$traced" "$ratio" \
      "$( ((i % 2)) && echo untraced || echo traced)"
    ratios+=("$ratio")
    echo "{\"mode\":\"$mode\",\"pair\":$i,\"untraced\":\"$base\",\"traced\":\"$traced\",\"ratio\":\"$ratio\"}" >>"$results"
  done
  read -r med lo hi < <(printf '%s\n' "${ratios[@]}" | grep -v nan | stats_of)
  printf '%-14s median ratio %s (min %s, max %s) over %d pairs\n' "$mode" "$med" "$lo" "$hi" "$pairs"
done

summary=$("$PYTHON" - "$results" "$pairs" "$duration" "${loadgen_args[*]}" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = {"benchmark": "overhead", "pairs": int(sys.argv[2]),
       "duration_s": float(sys.argv[3]), "loadgen_args": sys.argv[4], "modes": {}}
def num(x):
    try:
        v = float(x)
        return None if v != v else v
    except (TypeError, ValueError):
        return None
for r in rows:
    m = out["modes"].setdefault(r["mode"], {})
    if "skipped" in r:
        m["skipped"] = r["skipped"]
        continue
    m.setdefault("pairs", []).append({"untraced_cps": num(r["untraced"]),
                                      "traced_cps": num(r["traced"]),
                                      "ratio": num(r["ratio"])})
for m in out["modes"].values():
    if "pairs" in m:
        rs = [p["ratio"] for p in m["pairs"] if p["ratio"] is not None]
        us = [p["untraced_cps"] for p in m["pairs"] if p["untraced_cps"] is not None]
        m["median_ratio"] = statistics.median(rs) if rs else None
        m["median_untraced_cps"] = statistics.median(us) if us else None
print(json.dumps(out))
EOF
)
if [[ -n $json_out ]]; then
  echo "$summary" >"$json_out"
  log "overhead: wrote $json_out"
fi
