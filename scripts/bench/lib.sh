# shellcheck shell=bash
# Helpers shared by the scripts in scripts/bench/ (sourced, not run).
#
# Load runs in a private network namespace (created once per script, deleted
# on exit): its loopback, its TIME_WAIT sockets and its net.ipv4 sysctls are
# its own, so widening the ephemeral port range there changes nothing on the
# host and needs no restore. The tracers attach globally, as in production.

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$bench_dir/../.." && pwd)

TCPTRAIL=${TCPTRAIL:-$repo_root/build/tcptrail}
LOADGEN=${LOADGEN:-$repo_root/build/scripts/bench/tcptrail-loadgen}
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}
NETNS=""
NETNS_INODE=""
BENCH_TMP=""
declare -a STARTED_PIDS=()
declare -A READY_LINE_PIDS=() # tracers whose ready line wait_ready waits for

log() { printf '%s\n' "$*" >&2; }
die() {
  log "$(basename "$0"): error: $*"
  exit 1
}

need_root() { [[ $(id -u) -eq 0 ]] || die "needs root (BPF, network namespaces)"; }

# Name of every subcommand `tcptrail --help` lists (CLI11 answers --help for
# an unknown subcommand with the top-level help, so `sub --help` proves
# nothing).
# (Output is captured first: `cmd | grep -q` fails under pipefail when grep
# exits before cmd has written everything.)
tcptrail_has() {
  [[ -x $TCPTRAIL ]] || return 1
  local subs
  subs=$("$TCPTRAIL" --help 2>/dev/null |
    awk '/^Subcommands:/ { f = 1; next } f && NF { print $1 }') || true
  grep -qx -- "$1" <<<"$subs"
}

# True when `tcptrail SUB --help` mentions OPTION.
tcptrail_has_option() {
  tcptrail_has "$1" || return 1
  local help
  help=$("$TCPTRAIL" "$1" --help 2>/dev/null) || true
  grep -q -- "$2" <<<"$help"
}

bench_setup() {
  need_root
  [[ -x $LOADGEN ]] || die "no load generator at $LOADGEN (build: cmake --build build --target tcptrail-loadgen, or pass --loadgen)"
  [[ -n $PYTHON ]] || die "python3 is needed for the statistics"
  BENCH_TMP=$(mktemp -d /tmp/tcptrail-bench.XXXXXX)
  NETNS="tcptrail-bench-$$"
  ip netns add "$NETNS" || die "ip netns add $NETNS failed"
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  ip netns exec "$NETNS" ip link set lo up
  # Private to the namespace: no restore needed.
  ip netns exec "$NETNS" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
  ip netns exec "$NETNS" sysctl -qw net.ipv4.tcp_tw_reuse=1
  NETNS_INODE=$(ip netns exec "$NETNS" stat -L -c %i /proc/self/ns/net)
  # tracefs for bpftrace's tracepoint: probes (mounted only if missing).
  if [[ ! -e /sys/kernel/tracing/events ]]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
  fi
}

bench_cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    stop_tracer "$pid" 2>/dev/null || true
  done
  [[ -n $NETNS ]] && ip netns del "$NETNS" 2>/dev/null
  [[ -n $BENCH_TMP && -d $BENCH_TMP ]] && rm -rf "$BENCH_TMP"
  [[ $(type -t bench_extra_cleanup) == function ]] && bench_extra_cleanup
  return 0
}

# loadgen ARGS... : one run in the namespace; prints its JSON line.
run_load() {
  ip netns exec "$NETNS" "$LOADGEN" --json "$@"
}

# json_get FIELD < json-line
json_get() {
  "$PYTHON" -c 'import json,sys; v=json.loads(sys.stdin.read())[sys.argv[1]]; print(str(v).lower() if isinstance(v,bool) else v)' "$1"
}

# start_tracer LOG CMD... : starts CMD with stdout to /dev/null (or to
# $TRACER_OUT), stderr to LOG, SIGINT at its default disposition (a
# non-interactive shell starts background jobs with SIGINT ignored); sets
# TRACER_PID. When CMD is $TCPTRAIL, wait_ready waits for its ready line.
start_tracer() {
  local log_file=$1
  shift
  env --default-signal=INT "$@" >"${TRACER_OUT:-/dev/null}" 2>"$log_file" &
  TRACER_PID=$!
  STARTED_PIDS+=("$TRACER_PID")
  [[ $1 == "$TCPTRAIL" ]] && READY_LINE_PIDS[$TRACER_PID]=1
  return 0
}

# wait_ready PID LOG [TIMEOUT_S]: until the tracer has attached to
# sock:inet_sock_set_state. What counts as ready:
#   - tcptrail ($TCPTRAIL, see start_tracer) prints "tcptrail: ready" on
#     stderr after attaching every program and after its start-up work
#     (leaks enumerates every socket): only that line counts;
#   - any other tracer (bpftrace, another tcptrail build): the ready line,
#     or `bpftool perf show` listing an
#     attachment of inet_sock_set_state held by PID (raw_tracepoint link for
#     tp_btf programs, perf event for bpftrace's tracepoint probes). bpftrace
#     attaches all probes before it runs BEGIN, and a program is attached as
#     soon as bpftool lists its fd, so no grace period is added.
# Polls every 5 ms. Fails if the tracer exits or the timeout passes.
wait_ready() {
  local pid=$1 log_file=$2 timeout=${3:-60}
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    grep -q '^tcptrail: ready' "$log_file" 2>/dev/null && return 0
    if [[ -z ${READY_LINE_PIDS[$pid]:-} ]] && bpftool perf show 2>/dev/null |
      grep -E "^pid $pid +fd [0-9]+: .*inet_sock_set_state" >/dev/null; then
      return 0
    fi
    sleep 0.005
  done
  return 1
}

# stop_tracer PID: SIGINT, up to 15 s to drain and exit, then SIGKILL.
# Sets STOP_STATUS to the exit status. Only ever signals a pid this script
# started. Call it directly, not in $(...): only the starting shell can wait.
stop_tracer() {
  local pid=$1 i status=0
  kill -INT "$pid" 2>/dev/null || true
  for ((i = 0; i < 1500; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "tracer $pid did not exit after SIGINT; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || status=$?
  local -a keep=()
  local p
  for p in "${STARTED_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  STARTED_PIDS=("${keep[@]}")
  STOP_STATUS=$status
}

# Median, min and max of numbers on stdin.
stats_of() {
  "$PYTHON" -c '
import statistics, sys
v = [float(x) for x in sys.stdin.read().split()]
print(f"{statistics.median(v):.4f} {min(v):.4f} {max(v):.4f}" if v else "nan nan nan")'
}
