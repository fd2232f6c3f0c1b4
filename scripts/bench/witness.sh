#!/usr/bin/env bash
# witness.sh - does this kernel run BPF programs for every transition?
#
# Compares what `tcptrail trace` reports with the kernel's own tracefs event
# for the same tracepoint (sock:inet_sock_set_state), transition by
# transition, and names the task that was on the CPU for each one tcptrail
# did not see. A client in one network namespace connects to a server in
# another over a veth pair and closes at once; the server closes 50 ms later.
# With delayed ACKs (the default) the ACK of the client's FIN leaves from a
# timer, in softirq on whatever task the CPU runs then: the case where a
# kernel that exempts some tasks from BPF tracing hides transitions.
# --quickack turns delayed ACKs off on both routes.
#
# Usage: witness.sh [--tcptrail PATH] [--connections N] [--quickack]
# Prints "witness: kernel N, tcptrail M, missed K" and, per task on the CPU,
# how many transitions ran there and how many tcptrail missed; exits 1 when
# tcptrail missed more than it reported as lost.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

connections=1000
quickack=0
while (($#)); do
  case $1 in
  --tcptrail) TCPTRAIL=$2; shift 2 ;;
  --connections) connections=$2; shift 2 ;;
  --quickack) quickack=1; shift ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done
[[ $connections =~ ^[0-9]+$ ]] && ((connections >= 1 && connections <= 100000)) ||
  die "--connections must be 1..100000"
need_root
[[ -x $TCPTRAIL ]] || die "no tcptrail at $TCPTRAIL"
[[ -n $PYTHON ]] || die "python3 is needed"

tracing=/sys/kernel/tracing
if [[ ! -e $tracing/events ]]; then
  mount -t tracefs nodev "$tracing" 2>/dev/null || die "tracefs is not mounted and cannot be"
fi
event=$tracing/events/sock/inet_sock_set_state
[[ -w $event/enable ]] || die "no tracefs event sock:inet_sock_set_state"
[[ $(<"$event/enable") == 0 ]] || die "the tracefs event is already on (someone else uses it)"

tmp=$(mktemp -d /tmp/tcptrail-witness.XXXXXX)
a="tcptrail-wit-a-$$" b="tcptrail-wit-b-$$"
tracer_pid=""
old_buffer=$(<"$tracing/buffer_size_kb")
cleanup() {
  echo 0 >"$event/enable" 2>/dev/null || true
  echo "$old_buffer" >"$tracing/buffer_size_kb" 2>/dev/null || true
  [[ -n $tracer_pid ]] && kill "$tracer_pid" 2>/dev/null
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$a"
ip netns add "$b"
ip -n "$a" link add veth0 type veth peer name veth0 netns "$b"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" addr add 198.18.0.1/24 dev veth0
ip -n "$b" addr add 198.18.0.2/24 dev veth0
for ns in "$a" "$b"; do ip -n "$ns" link set veth0 up; done
if ((quickack)); then
  ip -n "$a" route replace 198.18.0.0/24 dev veth0 proto kernel scope link src 198.18.0.1 quickack 1
  ip -n "$b" route replace 198.18.0.0/24 dev veth0 proto kernel scope link src 198.18.0.2 quickack 1
fi
inode=$(ip netns exec "$a" stat -L -c %i /proc/self/ns/net)

# 64 bytes of trace per transition at most; the buffer is per CPU.
echo $((connections / 4 + 4096)) >"$tracing/buffer_size_kb"
echo >"$tracing/trace"
"$TCPTRAIL" trace --format json --netns "$inode" >"$tmp/trace.json" 2>"$tmp/trace.err" &
tracer_pid=$!
for ((i = 0; i < 200; i++)); do
  grep -q '^tcptrail: ready' "$tmp/trace.err" && break
  kill -0 "$tracer_pid" 2>/dev/null || die "tcptrail exited: $(cat "$tmp/trace.err")"
  sleep 0.05
done
echo 1 >"$event/enable"

# The server closes each connection 50 ms after accepting it.
ip netns exec "$b" "$PYTHON" -c '
import socket, sys, threading, time
n = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("198.18.0.2", 5555))
srv.listen(1024)
print("listening", flush=True)
def close_later(c):
    time.sleep(0.05)
    c.close()
threads = []
for _ in range(n):
    c, _ = srv.accept()
    t = threading.Thread(target=close_later, args=(c,))
    t.start()
    threads.append(t)
for t in threads:
    t.join()
' "$connections" >"$tmp/server.out" &
server_pid=$!
for ((i = 0; i < 100; i++)); do
  [[ -s $tmp/server.out ]] && break
  sleep 0.05
done
ip netns exec "$a" "$PYTHON" -c '
import socket, sys, time
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.connect(("198.18.0.2", 5555))
    s.close()
    time.sleep(0.005)
' "$connections"
wait "$server_pid"
sleep 0.3
echo 0 >"$event/enable"
kill -INT "$tracer_pid"
wait "$tracer_pid" || die "tcptrail failed: $(cat "$tmp/trace.err")"
tracer_pid=""
cp "$tracing/trace" "$tmp/kernel.trace"

"$PYTHON" - "$tmp/trace.json" "$tmp/kernel.trace" "$(uname -r)" <<'PY'
import collections, json, re, sys

trace_json, kernel_trace, release = sys.argv[1:4]
# tcptrail: transitions of the client side (netns filter), by local port,
# old and new state. An inferred TIME_WAIT is the kernel's CLOSE.
seen = collections.Counter()
reported_lost = 0
for line in open(trace_json):
    ev = json.loads(line)
    if ev.get("event") == "lost":
        reported_lost += ev.get("count", 0)
    if ev.get("event") != "state":
        continue
    new = "CLOSE" if ev["new"] == "TIME_WAIT" and ev["inferred"] else ev["new"]
    seen[(ev["lport"], ev["old"], new)] += 1
pat = re.compile(r"sport=(\d+) dport=\d+ saddr=198\.18\.0\.1 .*"
                 r"oldstate=TCP_(\w+) newstate=TCP_(\w+)")
total = missed = 0
by_task = collections.Counter()
missed_by_task = collections.Counter()
examples = []
for line in open(kernel_trace, errors="replace"):
    m = pat.search(line)
    if not m or line.startswith("#"):
        continue
    task = line.split()[0].rsplit("-", 1)[0]
    old, new = m.group(2), m.group(3)
    # connect() reports CLOSE -> SYN_SENT before a port is chosen.
    port = 0 if (old, new) == ("CLOSE", "SYN_SENT") else int(m.group(1))
    total += 1
    by_task[task] += 1
    key = (port, old, new)
    if seen[key] > 0:
        seen[key] -= 1
    else:
        missed += 1
        missed_by_task[task] += 1
        if len(examples) < 5:
            examples.append(" ".join(line.split()[:4]) + f" {port} {old} -> {new}")
print(f"witness: {release}: kernel {total}, tcptrail {total - missed}, "
      f"missed {missed} (of which tcptrail reported {reported_lost} as lost)")
for task, n in by_task.most_common():
    print(f"  {task}: {n} transitions on the CPU, {missed_by_task[task]} missed")
for e in examples:
    print(f"  missed: {e}")
sys.exit(1 if missed > reported_lost else 0)
PY
