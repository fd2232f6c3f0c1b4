#!/usr/bin/env bash
# scale-durations.sh - many live sockets at once, every one reported with a
# correct duration (issue 7: bcc's tcplife/tcpstates stop at 10,240 sockets).
#
# Usage: scale-durations.sh [--connections N] [--hold S]
# Default: 19,000 idle connections (38,000 sockets, both ends) held for 15 s
# in a private namespace under `tcptrail trace -f json --netns <it>`. Then
# every client socket must report ESTABLISHED -> FIN_WAIT1 with a known
# old_state_ns >= the hold time, and every server socket CLOSE_WAIT ->
# LAST_ACK; lost must be 0. Prints PASS/FAIL with the counts.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

conns=19000 hold=15
while (($#)); do
  case $1 in
    --connections) conns=$2; shift 2 ;;
    --hold) hold=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done

bench_setup
TRACER_OUT="$BENCH_TMP/trace.jsonl" start_tracer "$BENCH_TMP/tracer.log" \
  "$TCPTRAIL" trace -f json --netns "$NETNS_INODE" --ringbuf-size 64M
tracer=$TRACER_PID
wait_ready "$tracer" "$BENCH_TMP/tracer.log" || die "tracer not ready: $(cat "$BENCH_TMP/tracer.log")"
run_load --mode idle --idle "$conns" --duration "$hold" >"$BENCH_TMP/load.json" 2>"$BENCH_TMP/load.err" ||
  die "loadgen failed: $(tail -3 "$BENCH_TMP/load.err")"
sleep 1
stop_tracer "$tracer"

"$PYTHON" - "$BENCH_TMP/trace.jsonl" "$conns" "$hold" <<'PY'
import json, sys
path, conns, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
est_fw1, cw_la, lost, unknown, short = 0, 0, 0, 0, 0
for line in open(path):
    ev = json.loads(line)
    if ev["event"] == "lost":
        lost += ev["count"]
    elif ev["event"] == "state":
        pair = (ev["old"], ev["new"])
        if pair in (("ESTABLISHED", "FIN_WAIT1"), ("CLOSE_WAIT", "LAST_ACK")):
            if pair[0] == "ESTABLISHED":
                est_fw1 += 1
                ns = ev["old_state_ns"]
                if ns is None:
                    unknown += 1
                elif ns < (hold - 1) * 1e9:  # opened over time: >= hold - 1 s
                    short += 1
            else:
                cw_la += 1
ok = est_fw1 == conns and cw_la == conns and lost == 0 and unknown == 0 and short == 0
print(f"{'PASS' if ok else 'FAIL'}: {2 * conns} live sockets; "
      f"ESTABLISHED->FIN_WAIT1 {est_fw1}/{conns} (duration unknown {unknown}, "
      f"shorter than the hold {short}), CLOSE_WAIT->LAST_ACK {cw_la}/{conns}, lost {lost}")
sys.exit(0 if ok else 1)
PY
