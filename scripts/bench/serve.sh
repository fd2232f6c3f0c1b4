#!/usr/bin/env bash
# serve.sh - tcptrail serve's budgets:
#
#   storm    loopback connection storm (loadgen --mode client-first
#            --threads 2) untraced vs under `tcptrail serve` scraped every
#            second, in interleaved pairs; figure: median traced/untraced
#            (budget >= 0.85)
#   scrape   a scrape with >= 10,000 series (listeners on distinct ports in
#            the bench namespace, --max-series 100000): median and max time
#            to the full answer over 20 fresh scrapes (budget <= 50 ms)
#   rss      VmRSS of an idle `tcptrail serve` after one scrape (budget
#            <= 24 MiB)
#   soak     --soak S seconds (default 600) of churn through new comms and
#            ports (a process named churn-N every 0.5 s leaves a CLOSE_WAIT
#            socket on its own listening port for 30 s: ~60 groups at a
#            time, over the cap of 50), scraped every
#            second with --max-series 50: VmRSS every 30 s (budget: flat)
#   cost     ns per run of each program under the storm, from serve's own
#            tcptrail_bpf_program_* metrics (kernel.bpf_stats_enabled=1 for
#            the run, restored on exit; state program budget <= 250 ns)
#
# Usage: serve.sh [--tcptrail PATH] [--loadgen PATH] [--pairs N]
#                 [--duration S] [--listeners N] [--soak S]
#                 [--parts storm,scrape,rss,cost,soak] [--serve-args "ARGS"]
# --serve-args: extra options for serve in the storm (e.g. "--gauge-interval 10s").
set -euo pipefail
source "$(dirname "$0")/lib.sh"

pairs=5
duration=5
listeners=3400
soak=600
serve_args=""
parts="storm,scrape,rss,cost"
while (($#)); do
  case $1 in
  --tcptrail) TCPTRAIL=$2; shift 2 ;;
  --loadgen) LOADGEN=$2; shift 2 ;;
  --pairs) pairs=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  --listeners) listeners=$2; shift 2 ;;
  --soak) soak=$2; shift 2 ;;
  --serve-args) serve_args=$2; shift 2 ;;
  --parts) parts=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done
tcptrail_has serve || die "$TCPTRAIL has no serve subcommand"
bench_setup

free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# scraper PORT: GET /metrics every second until killed.
scraper() {
  "$PYTHON" - "$1" <<'PY' &
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
while True:
    try:
        urllib.request.urlopen(url, timeout=5).read()
    except Exception as e:
        print(f"scrape failed: {e}", file=sys.stderr)
    time.sleep(1)
PY
  SCRAPER_PID=$!
  STARTED_PIDS+=("$SCRAPER_PID")
}

start_serve() { # start_serve LOG ARGS...
  local log_file=$1
  shift
  SERVE_PORT=$(free_port)
  start_tracer "$log_file" "$TCPTRAIL" serve --listen "127.0.0.1:$SERVE_PORT" "$@"
  wait_ready "$TRACER_PID" "$log_file" 60 || die "serve did not start: $(cat "$log_file")"
}

rate_of() {
  local out
  out=$(run_load --mode client-first --threads 2 --duration "$duration") || true
  if [[ -n $out ]]; then json_get connections_per_s <<<"$out"; else echo fail; fi
}

IFS=, read -r -a part_list <<<"$parts"
for part in "${part_list[@]}"; do
  case $part in
  storm)
    ratios=()
    for ((i = 1; i <= pairs; i++)); do
      if ((i % 2)); then base=$(rate_of); fi
      # shellcheck disable=SC2086
      start_serve "$BENCH_TMP/storm.log" $serve_args
      scraper "$SERVE_PORT"
      traced=$(rate_of)
      kill "$SCRAPER_PID"; wait "$SCRAPER_PID" 2>/dev/null || true
      stop_tracer "$TRACER_PID"
      if ! ((i % 2)); then base=$(rate_of); fi
      ratio=$("$PYTHON" -c 'import sys
try: print(f"{float(sys.argv[2])/float(sys.argv[1]):.4f}")
except Exception: print("nan")' "$base" "$traced")
      printf 'storm pair %d: untraced %s/s, serve %s/s, ratio %s\n' "$i" "$base" "$traced" "$ratio"
      ratios+=("$ratio")
    done
    read -r med lo hi < <(printf '%s\n' "${ratios[@]}" | grep -v nan | stats_of)
    printf 'storm: median ratio %s (min %s, max %s) over %d pairs of %ss (serve %s)\n' "$med" "$lo" "$hi" "$pairs" "$duration" "$serve_args"
    ;;
  scrape)
    # Listeners on distinct ports, held by one process in the namespace.
    ip netns exec "$NETNS" "$PYTHON" - "$listeners" "$BENCH_TMP/listening" <<'PY' &
import resource, socket, sys, time
n = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
keep = []
for i in range(n):
    s = socket.socket()
    s.bind(("127.0.0.1", 20000 + i))
    s.listen(8)
    keep.append(s)
open(sys.argv[2], "w").write("ok")
time.sleep(600)
PY
    holder=$!
    STARTED_PIDS+=("$holder")
    for ((t = 0; t < 300; t++)); do [[ -s $BENCH_TMP/listening ]] && break; sleep 0.1; done
    [[ -s $BENCH_TMP/listening ]] || die "listeners not up"
    start_serve "$BENCH_TMP/scrape.log" --max-series 100000
    "$PYTHON" - "$SERVE_PORT" <<'PY'
import statistics, sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/metrics"
times, series = [], 0
for i in range(21):
    time.sleep(0.25)  # past the 200 ms shared-collection window: fresh
    t0 = time.monotonic()
    body = urllib.request.urlopen(url, timeout=10).read().decode()
    dt = time.monotonic() - t0
    series = sum(1 for l in body.splitlines() if l and not l.startswith("#"))
    if i:
        times.append(dt * 1000)
print(f"scrape: {series} series, median {statistics.median(times):.1f} ms, "
      f"max {max(times):.1f} ms over {len(times)} scrapes")
PY
    stop_tracer "$TRACER_PID"
    kill "$holder"; wait "$holder" 2>/dev/null || true
    ;;
  rss)
    start_serve "$BENCH_TMP/rss.log"
    sleep 2
    "$PYTHON" -c 'import sys,urllib.request; urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read()' "$SERVE_PORT"
    sleep 3
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$TRACER_PID/status")
    anon=$(awk '/^RssAnon:/ { print $2 }' "/proc/$TRACER_PID/status")
    awk -v r="$rss" -v a="$anon" 'BEGIN { printf "rss: idle serve VmRSS %.1f MiB (RssAnon %.1f MiB)\n", r / 1024, a / 1024 }'
    stop_tracer "$TRACER_PID"
    ;;
  soak)
    # Only the bench namespace: other tenants' sockets stay out of the figure.
    start_serve "$BENCH_TMP/soak.log" --max-series 50 --netns "$NETNS_INODE"
    scraper "$SERVE_PORT"
    ip netns exec "$NETNS" "$PYTHON" - "$soak" <<'PY' &
import ctypes, os, socket, sys, time
libc = ctypes.CDLL(None)
end = time.monotonic() + float(sys.argv[1])
n = 0
while time.monotonic() < end:
    n += 1
    pid = os.fork()
    if pid == 0:
        libc.prctl(15, f"churn-{n}".encode(), 0, 0, 0)
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        port = 30000 + n % 5000
        for _ in range(100):  # an earlier client may hold it (ephemeral)
            try:
                ls.bind(("127.0.0.1", port))
                break
            except OSError:
                port = 30000 + (port + 1 - 30000) % 5000
        ls.listen(4)
        c = socket.socket()
        c.connect(("127.0.0.1", port))
        a, _ = ls.accept()
        c.close()  # a is now in CLOSE_WAIT, held by churn-N
        time.sleep(30)
        os._exit(0)
    time.sleep(0.5)
    while True:  # reap
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
time.sleep(31)
PY
    churn=$!
    STARTED_PIDS+=("$churn")
    samples=()
    for ((t = 0; t <= soak; t += 30)); do
      samples+=("$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$TRACER_PID/status")")
      ((t + 30 <= soak)) && sleep 30
    done
    wait "$churn" 2>/dev/null || true
    folded=$("$PYTHON" -c 'import sys,urllib.request,re
b=urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
print(re.search(r"^tcptrail_series_folded_samples_total (\S+)$", b, re.M).group(1))' "$SERVE_PORT")
    kill "$SCRAPER_PID"; wait "$SCRAPER_PID" 2>/dev/null || true
    stop_tracer "$TRACER_PID"
    printf 'soak: %ss, VmRSS MiB every 30 s: %s\n' "$soak" "${samples[*]}"
    printf 'soak: folded samples at the end: %s\n' "$folded"
    ;;
  cost)
    old_stats=$(sysctl -n kernel.bpf_stats_enabled)
    bench_extra_cleanup() { sysctl -qw kernel.bpf_stats_enabled="$old_stats"; }
    sysctl -qw kernel.bpf_stats_enabled=1
    start_serve "$BENCH_TMP/cost.log"
    scrape_runs() {
      "$PYTHON" -c '
import re, sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics").read().decode()
for m in re.finditer(r"^tcptrail_bpf_program_(run_seconds|runs)_total\{program=\"([^\"]+)\"\} (\S+)$", body, re.M):
    print(m.group(2), m.group(1), m.group(3))' "$SERVE_PORT"
    }
    scrape_runs >"$BENCH_TMP/cost.before"
    rate=$(rate_of)
    sleep 0.3
    scrape_runs >"$BENCH_TMP/cost.after"
    "$PYTHON" - "$BENCH_TMP/cost.before" "$BENCH_TMP/cost.after" "$rate" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        prog, kind, v = line.split()
        d.setdefault(prog, {})[kind] = float(v)
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
print(f"cost: storm at {sys.argv[3]} conn/s under serve")
for prog in sorted(b):
    runs = b[prog]["runs"] - a.get(prog, {}).get("runs", 0)
    ns = (b[prog]["run_seconds"] - a.get(prog, {}).get("run_seconds", 0)) * 1e9
    if runs:
        print(f"cost: {prog}: {runs:.0f} runs, {ns / runs:.0f} ns/run")
PY
    stop_tracer "$TRACER_PID"
    sysctl -qw kernel.bpf_stats_enabled="$old_stats"
    ;;
  *) die "unknown part: $part" ;;
  esac
done
