#!/usr/bin/env bash
# startup-busy.sh - exec-to-ready time of each tracing subcommand on a busy
# host: `--idle N` connections held open (2N sockets with descriptors, every
# one a candidate for owner seeding) and the TIME_WAIT sockets left by a
# short connection storm (--timewait S seconds of client-first loadgen),
# all in a private network namespace. Reports the median of --runs starts of
# `tcptrail SUB --exit-after-attach` (exec, probe, load, attach, seed, exit).
# --args passes filters to every start, e.g. --args '--lport 1' to measure
# a host whose sockets the filters all exclude.
#
# Usage: startup-busy.sh [--tcptrail PATH] [--loadgen PATH] [--runs N]
#                        [--idle N] [--timewait S] [--args 'ARGS']
#                        [--json FILE]
set -euo pipefail
source "$(dirname "$0")/lib.sh"

runs=15
idle=5000
timewait=1
json_out=""
extra=()
while (($#)); do
  case $1 in
  --tcptrail) TCPTRAIL=$2; shift 2 ;;
  --loadgen) LOADGEN=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  --idle) idle=$2; shift 2 ;;
  --timewait) timewait=$2; shift 2 ;;
  --json) json_out=$2; shift 2 ;;
  --args) read -ra extra <<<"$2"; shift 2 ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done
((runs >= 1 && runs <= 1000)) || die "--runs must be 1..1000"

bench_setup
now_ns() { date +%s%N; }

# TIME_WAIT sockets: a storm in which the client closes first. tw_reuse is
# on in the namespace, but nothing reuses them before they expire (60 s).
if ((timewait > 0)); then
  run_load --mode client-first --threads 2 --duration "$timewait" >/dev/null
fi
# Held connections, in the background for as long as the runs take.
if ((idle > 0)); then
  errf="$BENCH_TMP/idle.err"
  # Not through run_load(): $! must be loadgen itself (ip netns exec execs
  # it), so that the clean-up signals the process that holds the sockets.
  ip netns exec "$NETNS" "$LOADGEN" --json --mode idle --idle "$idle" --duration 600 \
    >/dev/null 2>"$errf" &
  idle_pid=$!
  STARTED_PIDS+=("$idle_pid")
  bench_extra_cleanup() { kill "$idle_pid" 2>/dev/null || true; wait "$idle_pid" 2>/dev/null || true; }
  # Wait until the namespace holds them all (ESTABLISHED, both ends).
  for ((i = 0; i < 600; i++)); do
    est=$(ip netns exec "$NETNS" ss -Htn state established | wc -l)
    ((est >= 2 * idle)) && break
    kill -0 "$idle_pid" 2>/dev/null || die "loadgen idle exited: $(cat "$errf")"
    sleep 0.1
  done
fi
tw=$(ip netns exec "$NETNS" ss -Htan state time-wait | wc -l)
est=$(ip netns exec "$NETNS" ss -Htn state established | wc -l)
log "busy host: $est ESTABLISHED sockets with descriptors, $tw TIME_WAIT ($(uname -r))"

rows=()
for sub in trace history diagnose leaks; do
  samples=()
  for ((i = 0; i < runs; i++)); do
    t0=$(now_ns)
    if "$TCPTRAIL" "$sub" ${extra[@]+"${extra[@]}"} --exit-after-attach >/dev/null 2>"$BENCH_TMP/err"; then
      t1=$(now_ns)
      samples+=("$(((t1 - t0) / 1000))")
    else
      log "$sub: $(tail -n 2 "$BENCH_TMP/err" | tr '\n' ' ')"
    fi
  done
  read -r med lo hi < <(printf '%s\n' "${samples[@]}" | awk '{ print $1 / 1000 }' | stats_of)
  printf '%-10s start-up %8s ms median (min %s, max %s; %d runs; %d ESTABLISHED, %d TIME_WAIT)\n' \
    "$sub" "$med" "$lo" "$hi" "${#samples[@]}" "$est" "$tw"
  rows+=("{\"metric\":\"startup_busy_ms\",\"tool\":\"tcptrail $sub\",\"median\":$med,\"min\":$lo,\"max\":$hi,\"runs\":${#samples[@]},\"established\":$est,\"time_wait\":$tw,\"args\":\"${extra[*]:-}\",\"kernel\":\"$(uname -r)\"}")
done
[[ -z $json_out ]] || printf '%s\n' "${rows[@]}" >"$json_out"
