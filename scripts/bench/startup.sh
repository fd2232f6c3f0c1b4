#!/usr/bin/env bash
# startup.sh - exec-to-ready time and memory.
#
# Start-up: the median (and min/max) over --runs starts of the wall time from
# exec to "attached and ready":
#   - if `tcptrail trace --help` lists --exit-after-attach: the wall time of
#     `tcptrail trace --exit-after-attach` (attaches everything, exits 0),
#     timed with date +%s%N around the command (exec, load, attach, exit);
#   - otherwise: from exec until tcptrail prints "tcptrail: ready" on stderr
#     (or bpftool lists its inet_sock_set_state attachment), polled every
#     5 ms, so the figure is coarse (+0-10 ms for the polling itself).
#   The peer (bpftrace script) is timed with the second method.
# Memory: VmHWM (peak RSS) of `tcptrail trace --format json > /dev/null`
# after 2 s idle, then after a --duration loadgen storm; and, unless
# --scale 0, VmRSS and the BPF maps' memory (bytes_memlock) of `history` and
# `leaks` (when they exist) while loadgen holds --scale idle connections.
#
# Usage: startup.sh [--tcptrail PATH] [--loadgen PATH] [--runs N]
#                   [--duration S] [--scale N] [--json FILE]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

runs=20
duration=5
scale=100000
json_out=""
while (($#)); do
  case $1 in
  --tcptrail) TCPTRAIL=$2; shift 2 ;;
  --loadgen) LOADGEN=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  --scale) scale=$2; shift 2 ;;
  --json) json_out=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done
((runs >= 1 && runs <= 1000)) || die "--runs must be 1..1000"

bench_setup
rows="$BENCH_TMP/rows.jsonl"
: >"$rows"
emit() { echo "$1" >>"$rows"; }

now_ns() { date +%s%N; }

# time_to_ready LABEL CMD... : sets READY_MS
time_to_ready() {
  local label=$1 log_file="$BENCH_TMP/$1.log" t0 t1
  shift
  t0=$(now_ns)
  start_tracer "$log_file" "$@"
  if wait_ready "$TRACER_PID" "$log_file" 60; then
    t1=$(now_ns)
    READY_MS=$(((t1 - t0) / 1000))
    READY_MS=$("$PYTHON" -c "print(${READY_MS}/1000)")
  else
    READY_MS=fail
  fi
  stop_tracer "$TRACER_PID"
}

startup() { # label method cmd...
  local label=$1 method=$2 i t0 t1 samples=()
  shift 2
  for ((i = 0; i < runs; i++)); do
    if [[ $method == exit-after-attach ]]; then
      t0=$(now_ns)
      if "$@" >/dev/null 2>"$BENCH_TMP/startup.err"; then
        t1=$(now_ns)
        samples+=("$("$PYTHON" -c "print(($t1 - $t0) / 1e6)")")
      else
        log "$label: $(tail -n 2 "$BENCH_TMP/startup.err" | tr '\n' ' ')"
      fi
    else
      time_to_ready "$label" "$@"
      [[ $READY_MS == fail ]] || samples+=("$READY_MS")
    fi
  done
  local med lo hi
  read -r med lo hi < <(printf '%s\n' "${samples[@]}" | stats_of)
  printf '%-24s start-up %8s ms median (min %s, max %s; %d runs; %s)\n' \
    "$label" "$med" "$lo" "$hi" "${#samples[@]}" "$method"
  emit "{\"metric\":\"startup_ms\",\"tool\":\"$label\",\"method\":\"$method\",\"median\":$med,\"min\":$lo,\"max\":$hi,\"runs\":${#samples[@]}}"
}

kib_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# BPF map memory (bytes_memlock) of the maps the pid's programs use.
map_bytes() {
  local ids
  ids=$(bpftool perf show 2>/dev/null | awk -v p="$1" '$1 == "pid" && $2 == p {
      for (i = 1; i <= NF; i++) if ($i == "prog_id") print $(i + 1) }' | sort -un)
  local id
  for id in $ids; do bpftool prog show id "$id" --json 2>/dev/null; echo; done |
    "$PYTHON" -c '
import json, subprocess, sys
maps = set()
for line in sys.stdin:
    if line.strip():
        maps.update(json.loads(line).get("map_ids", []))
total = 0
for m in maps:
    j = json.loads(subprocess.run(["bpftool", "map", "show", "id", str(m), "--json"],
                                  capture_output=True, text=True).stdout or "{}")
    total += int(j.get("bytes_memlock", 0))
print(total)'
}

if tcptrail_has trace; then
  if tcptrail_has_option trace --exit-after-attach; then
    startup tcptrail exit-after-attach "$TCPTRAIL" trace --exit-after-attach
  else
    startup tcptrail ready-line "$TCPTRAIL" trace --format json
  fi

  # Peak RSS idle, then under the storm.
  log_file="$BENCH_TMP/rss.log"
  start_tracer "$log_file" "$TCPTRAIL" trace --format json
  if wait_ready "$TRACER_PID" "$log_file" 60; then
    sleep 2
    idle_hwm=$(kib_of "$TRACER_PID" VmHWM)
    run_load --mode client-first --threads 2 --duration "$duration" >/dev/null || true
    storm_hwm=$(kib_of "$TRACER_PID" VmHWM)
    printf '%-24s peak RSS idle %s KiB, after a %ss storm %s KiB\n' "tcptrail trace" \
      "$idle_hwm" "$duration" "$storm_hwm"
    emit "{\"metric\":\"rss\",\"tool\":\"tcptrail trace --format json\",\"idle_hwm_kib\":$idle_hwm,\"storm_hwm_kib\":$storm_hwm}"
  fi
  stop_tracer "$TRACER_PID"

  if ((scale > 0)); then
    for sub in history leaks; do
      if ! tcptrail_has "$sub"; then
        printf '%-24s skipped: not available (%s %s)\n' "tcptrail $sub" "$TCPTRAIL" "$sub"
        continue
      fi
      log_file="$BENCH_TMP/$sub.log"
      start_tracer "$log_file" "$TCPTRAIL" "$sub"
      # Ready after its enumeration of every socket: that memory belongs in
      # the "before" figure.
      wait_ready "$TRACER_PID" "$log_file" 120 || { stop_tracer "$TRACER_PID"; continue; }
      rss0=$(kib_of "$TRACER_PID" VmRSS)
      anon0=$(kib_of "$TRACER_PID" RssAnon)
      maps0=$(map_bytes "$TRACER_PID")
      errf="$BENCH_TMP/idle.err"
      : >"$errf"
      # Hold `scale` connections for 60 s (opening 100k takes a while) and
      # sample 2 s after all are open: long before the close storm, which
      # puts every server socket in CLOSE_WAIT for a moment.
      run_load --mode idle --idle "$scale" --duration 60 2>"$errf" >"$BENCH_TMP/idle.json" &
      lg=$!
      rss1=0 anon1=0 maps1=0
      for ((t = 0; t < 3000; t++)); do # up to 300 s
        if grep -q holding "$errf"; then
          sleep 2
          rss1=$(kib_of "$TRACER_PID" VmRSS)
          anon1=$(kib_of "$TRACER_PID" RssAnon)
          maps1=$(map_bytes "$TRACER_PID")
          break
        fi
        kill -0 "$lg" 2>/dev/null || break
        sleep 0.1
      done
      wait "$lg" || true
      stop_tracer "$TRACER_PID"
      per_conn=$("$PYTHON" -c "print(round(($rss1 - $rss0) * 1024 / $scale, 1))")
      # RssAnon: private anonymous memory (the heap) alone, without the
      # file-backed and shared pages VmRSS also counts.
      anon_per_conn=$("$PYTHON" -c "print(round(($anon1 - $anon0) * 1024 / $scale, 1))")
      printf '%-24s %d idle connections: RSS %s -> %s KiB (%s B/connection; anonymous %s -> %s KiB, %s B/connection), BPF maps %s -> %s bytes\n' \
        "tcptrail $sub" "$scale" "$rss0" "$rss1" "$per_conn" "$anon0" "$anon1" "$anon_per_conn" "$maps0" "$maps1"
      emit "{\"metric\":\"scale\",\"tool\":\"tcptrail $sub\",\"connections\":$scale,\"rss_before_kib\":$rss0,\"rss_held_kib\":$rss1,\"user_bytes_per_connection\":$per_conn,\"anon_before_kib\":$anon0,\"anon_held_kib\":$anon1,\"anon_bytes_per_connection\":$anon_per_conn,\"map_bytes_before\":$maps0,\"map_bytes_held\":$maps1}"
    done
  fi
else
  echo "tcptrail: skipped: not available ($TCPTRAIL)"
fi

if command -v bpftrace >/dev/null; then
  peer_runs=$((runs < 5 ? runs : 5)) # ~1 s each
  saved=$runs
  runs=$peer_runs
  startup peer-bpftrace ready-attach bpftrace "$bench_dir/peer-tcpstates.bt"
  runs=$saved
fi

if [[ -n $json_out ]]; then
  "$PYTHON" -c 'import json,sys; print(json.dumps({"benchmark":"startup","results":[json.loads(l) for l in open(sys.argv[1])]}))' "$rows" >"$json_out"
  log "startup: wrote $json_out"
fi
