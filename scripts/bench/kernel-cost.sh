#!/usr/bin/env bash
# kernel-cost.sh - in-kernel cost of each BPF program per run (bpf_stats).
#
# Sets kernel.bpf_stats_enabled=1 (restored on exit, whatever happens), starts
# the tracer, reads run_cnt/run_time_ns of each of its programs (the
# programs the tracer's pid holds attached, from `bpftool perf show`, then
# `bpftool prog show id N --json`), runs a loadgen storm, reads them again,
# and reports the difference: runs, ns and average ns per run. tcptrail's
# programs are named handle_*; they run in `trace` mode (a record per
# transition) and in `history` mode (aggregated: a record per connection). The peer (bpftrace tcpstates script) is
# measured the same way for comparison.
#
# Usage: kernel-cost.sh [--tcptrail PATH] [--loadgen PATH] [--duration S]
#                       [--no-peer] [--json FILE] [-- extra loadgen args]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

duration=5
json_out=""
peer=1
loadgen_args=(--mode client-first --threads 2)
while (($#)); do
  case $1 in
  --tcptrail) TCPTRAIL=$2; shift 2 ;;
  --loadgen) LOADGEN=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  --no-peer) peer=0; shift ;;
  --json) json_out=$2; shift 2 ;;
  --) shift; loadgen_args=("$@"); break ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done

bench_setup
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
bench_extra_cleanup() { sysctl -qw kernel.bpf_stats_enabled="$old_stats"; }
sysctl -qw kernel.bpf_stats_enabled=1

# prog_snapshot PID > file: "id name run_cnt run_time_ns" per program: the
# ones attached by PID, and tcptrail's flush_stage (batched mode), which is
# never attached: tcptrail runs it with BPF_PROG_TEST_RUN on each CPU at every
# poll, and the kernel counts those runs too. (Only one tracer runs at a time
# here, so every flush_stage loaded is this one's.)
prog_snapshot() {
  local id
  for id in $({
      bpftool perf show 2>/dev/null | awk -v p="$1" '$1 == "pid" && $2 == p {
        for (i = 1; i <= NF; i++) if ($i == "prog_id") print $(i + 1) }'
      bpftool prog show 2>/dev/null | awk -F: '/ name flush_stage / { print $1 }'
    } | sort -un); do
    bpftool prog show id "$id" --json 2>/dev/null |
      "$PYTHON" -c 'import json,sys; p=json.load(sys.stdin); print(p["id"], p.get("name","?"), p.get("run_cnt",0), p.get("run_time_ns",0))'
  done
}

rows="$BENCH_TMP/rows.jsonl"
: >"$rows"
measure() { # label cmd...
  local label=$1 log_file="$BENCH_TMP/$1.log"
  shift
  BPFTRACE_MAP_KEYS_MAX=10240 start_tracer "$log_file" "$@"
  if ! wait_ready "$TRACER_PID" "$log_file" 60; then
    log "$label: tracer did not become ready: $(tail -n 3 "$log_file" | tr '\n' ' ')"
    stop_tracer "$TRACER_PID"
    return
  fi
  prog_snapshot "$TRACER_PID" >"$BENCH_TMP/before"
  local out
  out=$(run_load "${loadgen_args[@]}" --duration "$duration")
  prog_snapshot "$TRACER_PID" >"$BENCH_TMP/after"
  stop_tracer "$TRACER_PID"
  "$PYTHON" - "$label" "$BENCH_TMP/before" "$BENCH_TMP/after" "$out" >>"$rows" <<'EOF'
import json, sys
label, before, after, load = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
def read(path):
    d = {}
    for line in open(path):
        i, name, cnt, ns = line.split()
        d[i] = (name, int(cnt), int(ns))
    return d
b, a = read(before), read(after)
for i, (name, cnt, ns) in sorted(a.items(), key=lambda kv: kv[1][0]):
    c0, n0 = b.get(i, (name, 0, 0))[1:]
    runs, t = cnt - c0, ns - n0
    print(json.dumps({"tracer": label, "prog_id": int(i), "name": name,
                      "run_cnt": runs, "run_time_ns": t,
                      "avg_ns": round(t / runs, 1) if runs else None,
                      "loadgen_transitions": load["transitions"],
                      "loadgen_cps": load["connections_per_s"]}))
EOF
}

if tcptrail_has trace; then
  measure tcptrail "$TCPTRAIL" trace --format json
  # History mode aggregates in the kernel: one record per connection.
  measure tcptrail-hist "$TCPTRAIL" history --format json
else
  log "tcptrail: skipped: not available ($TCPTRAIL)"
fi
if ((peer)) && command -v bpftrace >/dev/null; then
  measure peer-bpftrace bpftrace "$bench_dir/peer-tcpstates.bt"
fi

printf '%-14s %-30s %12s %14s %10s\n' tracer program run_cnt run_time_ns avg_ns
"$PYTHON" - "$rows" <<'EOF'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    avg = "-" if r["avg_ns"] is None else f'{r["avg_ns"]:.0f}'
    print(f'{r["tracer"]:<14} {r["name"]:<30} {r["run_cnt"]:>12} {r["run_time_ns"]:>14} {avg:>10}')
# Batched mode moves part of the work into flush_stage: the cost per
# transition counts both.
rows = [json.loads(l) for l in open(sys.argv[1])]
for tracer in sorted({r["tracer"] for r in rows}):
    state = [r for r in rows if r["tracer"] == tracer and r["name"] == "handle_inet_sock_set_state"]
    flush = [r for r in rows if r["tracer"] == tracer and r["name"] == "flush_stage"]
    if state and flush and state[0]["run_cnt"]:
        t = state[0]["run_time_ns"] + sum(f["run_time_ns"] for f in flush)
        print(f'{tracer}: state + flush programs per transition: {t / state[0]["run_cnt"]:.0f} ns')
EOF
if [[ -n $json_out ]]; then
  "$PYTHON" -c 'import json,sys; print(json.dumps({"benchmark":"kernel-cost","programs":[json.loads(l) for l in open(sys.argv[1])]}))' "$rows" >"$json_out"
  log "kernel-cost: wrote $json_out"
fi
