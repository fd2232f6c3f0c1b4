#!/usr/bin/env bash
# run-all.sh - the whole benchmark suite in one command.
#
# Builds tcptrail and tcptrail-loadgen if they are missing (cmake, ./build),
# then runs: the untraced rate of every loadgen mode, overhead.sh,
# kernel-cost.sh, startup.sh and loss.sh; prints a summary table and writes
# every figure to scripts/bench/results.json (or the path given).
#
# Usage: run-all.sh [RESULTS.json] [--quick] [--pairs N] [--duration S]
#   --quick   2 pairs of 3 s, 5 start-ups, 20,000 idle connections
#   environment: TCPTRAIL, LOADGEN (binaries), as in lib.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

out="$here/results.json"
pairs=5
duration=5
runs=20
scale=100000
while (($#)); do
  case $1 in
  --quick) pairs=2 duration=3 runs=5 scale=20000; shift ;;
  --pairs) pairs=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  -*) die "unknown argument: $1" ;;
  *) out=$1; shift ;;
  esac
done
need_root

if [[ ! -x $TCPTRAIL || ! -x $LOADGEN ]]; then
  log "run-all: building tcptrail and tcptrail-loadgen"
  [[ -f $repo_root/build/CMakeCache.txt ]] ||
    cmake -S "$repo_root" -B "$repo_root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$repo_root/build" -j"$(nproc)" --target tcptrail tcptrail-loadgen >/dev/null
fi
export TCPTRAIL LOADGEN

tmp=$(mktemp -d /tmp/tcptrail-bench-all.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

log "== untraced rates"
bench_setup_rates() {
  bench_setup
  local m json
  : >"$tmp/rates.jsonl"
  for m in "client-first" "server-first" "rst" "client-first -6"; do
    # shellcheck disable=SC2086
    json=$(run_load --mode $m --threads 2 --duration "$duration") || true
    echo "$json" >>"$tmp/rates.jsonl"
  done
}
(bench_setup_rates)
log "== overhead"
"$here/overhead.sh" --pairs "$pairs" --duration "$duration" --json "$tmp/overhead.json" | tee "$tmp/overhead.txt" >&2
log "== kernel cost"
"$here/kernel-cost.sh" --duration "$duration" --json "$tmp/kernel-cost.json" >&2
log "== start-up and memory"
"$here/startup.sh" --runs "$runs" --duration "$duration" --scale "$scale" --json "$tmp/startup.json" >&2
log "== loss"
"$here/loss.sh" --duration "$duration" --json "$tmp/loss.json" >&2 || true

"$PYTHON" - "$tmp" "$out" "$TCPTRAIL" <<'EOF'
import json, os, platform, subprocess, sys, time
tmp, out, tcptrail = sys.argv[1:4]
def load(name):
    p = os.path.join(tmp, name)
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None
rates = [json.loads(l) for l in open(os.path.join(tmp, "rates.jsonl")) if l.strip()]
res = {
    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "kernel": platform.release(), "cpus": os.cpu_count(), "tcptrail": tcptrail,
    "untraced": rates, "overhead": load("overhead.json"),
    "kernel_cost": load("kernel-cost.json"), "startup": load("startup.json"),
    "loss": load("loss.json"),
}
json.dump(res, open(out, "w"), indent=1)

print()
print(f"{'figure':<48} {'value':>14}  budget")
def row(name, value, budget=""):
    print(f"{name:<48} {value:>14}  {budget}")
for r in rates:
    row(f"untraced {r['mode']} {r['family']} conn/s", f"{r['connections_per_s']:.0f}",
        f"({r['transitions_per_connection']} transitions/conn)")
budgets = {"trace-json": ">= 0.65", "history-json": ">= 0.80"}
for mode, m in ((res["overhead"] or {}).get("modes") or {}).items():
    v = "skipped" if "skipped" in m else (
        "n/a" if m.get("median_ratio") is None else f"{m['median_ratio']:.3f}")
    row(f"traced/untraced median, {mode}", v, budgets.get(mode, "ahead of peer"))
for p in (res["kernel_cost"] or {}).get("programs", []):
    if p["run_cnt"]:
        row(f"ns/run {p['tracer']} {p['name']}", f"{p['avg_ns']:.0f}",
            "<= 250" if p["name"] == "handle_inet_sock_set_state" else "")
progs = (res["kernel_cost"] or {}).get("programs", [])
for tracer in sorted({p["tracer"] for p in progs}):
    state = [p for p in progs if p["tracer"] == tracer and
             p["name"] == "handle_inet_sock_set_state" and p["run_cnt"]]
    flush = [p for p in progs if p["tracer"] == tracer and p["name"] == "flush_stage"]
    if state and flush:
        total = state[0]["run_time_ns"] + sum(p["run_time_ns"] for p in flush)
        row(f"ns/transition {tracer}, state + flush", f"{total / state[0]['run_cnt']:.0f}")
for r in (res["startup"] or {}).get("results", []):
    if r["metric"] == "startup_ms":
        row(f"start-up ms (median) {r['tool']}", f"{r['median']:.1f}",
            "<= 50" if r["tool"] == "tcptrail" else "")
    elif r["metric"] == "rss":
        row("peak RSS idle KiB, trace", r["idle_hwm_kib"], "<= 16384")
        row("peak RSS after storm KiB, trace", r["storm_hwm_kib"])
    elif r["metric"] == "scale":
        row(f"{r['tool']} B/conn ({r['connections']} idle)",
            r["user_bytes_per_connection"], "<= 256")
        row(f"{r['tool']} BPF map bytes held", r["map_bytes_held"])
for c in (res["loss"] or {}).get("checks", []):
    row(f"loss {c['check']}: delivered+lost vs expected",
        f"{'PASS' if c['pass'] else 'FAIL'}", f"{c['sum']} vs {c['expected']} (lost {c['lost']})")
print(f"\nwrote {out}")
EOF
