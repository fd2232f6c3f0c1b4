#!/usr/bin/env bash
# loss.sh - does every transition reach the user, or get counted as lost?
#
# At the storm's full rate, runs `tcptrail trace --format json --netns N` to
# a file (N = the bench namespace, so other activity on the host neither adds
# events nor takes ring-buffer slots), then counts the delivered state events
# ({"event":"state"} lines; an "inferred" TIME_WAIT event replaces the
# tracepoint's FIN_WAIT2->CLOSE one-for-one) plus the sum of {"event":"lost"}
# counts, and compares with the transitions loadgen caused. PASS requires
# exact equality; with the default ring buffer it also requires lost = 0.
# The second run uses --ringbuf-size 4096: lost > 0 is expected there, and
# the sum must still be exact.
#
# Usage: loss.sh [--tcptrail PATH] [--loadgen PATH] [--duration S]
#                [--json FILE] [-- extra loadgen args]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

duration=5
json_out=""
loadgen_args=(--mode client-first --threads 2)
while (($#)); do
  case $1 in
  --tcptrail) TCPTRAIL=$2; shift 2 ;;
  --loadgen) LOADGEN=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  --json) json_out=$2; shift 2 ;;
  --) shift; loadgen_args=("$@"); break ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done

bench_setup
if ! tcptrail_has trace; then
  echo "loss: skipped: not available ($TCPTRAIL trace)"
  [[ -n $json_out ]] && echo '{"benchmark":"loss","skipped":"not available"}' >"$json_out"
  exit 0
fi
netns_args=()
tcptrail_has_option trace --netns && netns_args=(--netns "$NETNS_INODE")

rows="$BENCH_TMP/rows.jsonl"
: >"$rows"
fails=0
check() { # label [tcptrail args...]
  local label=$1 log_file="$BENCH_TMP/$1.log" events="$BENCH_TMP/$1.jsonl"
  shift
  TRACER_OUT=$events start_tracer "$log_file" "$TCPTRAIL" trace --format json "${netns_args[@]}" "$@"
  if ! wait_ready "$TRACER_PID" "$log_file" 60; then
    log "$label: tracer did not become ready: $(tail -n 3 "$log_file" | tr '\n' ' ')"
    stop_tracer "$TRACER_PID"
    fails=$((fails + 1))
    return
  fi
  local out
  out=$(run_load "${loadgen_args[@]}" --duration "$duration") || true
  stop_tracer "$TRACER_PID"
  "$PYTHON" - "$label" "$events" "$out" "$NETNS_INODE" "$STOP_STATUS" \
    "${#netns_args[@]}" >>"$rows" <<'EOF'
import json, sys
label, path, load, netns, status, filtered = sys.argv[1:7]
load = json.loads(load) if load.strip() else {}
delivered = lost = other_ns = bad = 0
for line in open(path, errors="replace"):
    try:
        r = json.loads(line)
    except ValueError:
        bad += 1
        continue
    ev = r.get("event")
    if ev == "state":
        if str(r.get("netns")) == netns:
            delivered += 1
        else:
            other_ns += 1
    elif ev == "lost":
        lost += int(r.get("count", 0))
expected = load.get("transitions")
exact = load.get("transitions_exact", False)
ok = expected is not None and exact and delivered + lost == expected
if label == "default-ringbuf":
    ok = ok and lost == 0
print(json.dumps({"check": label, "expected": expected, "delivered": delivered,
                  "lost": lost, "sum": delivered + lost,
                  "pass": ok, "loadgen_exact": exact,
                  "loadgen_cps": load.get("connections_per_s"),
                  "other_netns_events": other_ns, "unparsed_lines": bad,
                  "kernel_netns_filter": filtered != "0",
                  "tracer_status": int(status)}))
EOF
  tail -n 1 "$rows" | "$PYTHON" -c '
import json, sys
r = json.loads(sys.stdin.read())
r["verdict"] = "PASS" if r["pass"] else "FAIL"
print("{check:<16} {verdict}  loadgen transitions {expected}  delivered {delivered}"
      " + lost {lost} = {sum}  ({loadgen_cps} conn/s)".format(**r))'
  tail -n 1 "$rows" | grep -q '"pass": true' || fails=$((fails + 1))
}

check default-ringbuf
if tcptrail_has_option trace --ringbuf-size; then
  check tiny-ringbuf --ringbuf-size 4096
else
  echo "tiny-ringbuf     skipped: not available (--ringbuf-size)"
fi
if [[ -n $json_out ]]; then
  "$PYTHON" -c 'import json,sys; print(json.dumps({"benchmark":"loss","checks":[json.loads(l) for l in open(sys.argv[1])]}))' "$rows" >"$json_out"
  log "loss: wrote $json_out"
fi
exit $((fails > 0))
