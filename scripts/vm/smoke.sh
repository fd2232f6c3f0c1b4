#!/usr/bin/env bash
# The kernel matrix's smoke checks, run inside a guest by scripts/matrix.sh
# (or on any host, as root): doctor, every subcommand's --exit-after-attach,
# and live trace / history / snapshot / leaks runs against a loopback
# connection. Prints one line per check and a closing
# "smoke: N passed, M failed"; exits non-zero when a check failed.
#   scripts/vm/smoke.sh [BUILD_DIR]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
tt=$build/tcptrail
out=${TCPTRAIL_VM_OUT:-$(mktemp -d)}
mkdir -p "$out"
passed=0 failed=0
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT

# Whether a line of FILE holds both patterns (no `grep | grep -q`: under
# pipefail the first grep's SIGPIPE, when -q stops reading, fails the test).
has() { # FILE PATTERN1 ERE2
  [[ $(grep -F -- "$2" "$1" | grep -cE -- "$3") -gt 0 ]]
}

check() { # NAME CMD...: passes when CMD exits 0
  local name=$1
  shift
  if "$@" >"$out/$name.log" 2>&1; then
    echo "smoke: ok   $name"
    passed=$((passed + 1))
  else
    echo "smoke: FAIL $name (exit $?)"
    sed 's/^/    /' "$out/$name.log" | tail -n 20
    failed=$((failed + 1))
  fi
}

# One loopback connection: a server on PORT that reads a request, answers
# and closes after the client (the textbook four-way close).
converse() { # PORT
  python3 - "$1" <<'EOF'
import socket, sys, threading
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
def serve():
    c, _ = srv.accept()
    c.recv(100)
    c.sendall(b"pong")
    c.recv(100)  # EOF: the client closed first
    c.close()
t = threading.Thread(target=serve)
t.start()
cl = socket.create_connection(("127.0.0.1", port))
cl.sendall(b"ping")
cl.recv(100)
cl.close()
t.join()
srv.close()
EOF
}

# tracer SUBCOMMAND ARGS...: runs it in the background until ready; sets TPID.
tracer() {
  local log=$out/tracer.$1.err
  "$tt" "$@" >"$out/tracer.$1.out" 2>"$log" &
  TPID=$!
  pids+=("$TPID")
  for _ in $(seq 1 600); do
    grep -q '^tcptrail: ready' "$log" && return 0
    kill -0 "$TPID" 2>/dev/null || { cat "$log"; return 1; }
    sleep 0.1
  done
  return 1
}
stop() { kill -INT "$TPID"; wait "$TPID"; }

live_trace() {
  tracer trace -f json || return 1
  converse 47011 || return 1
  sleep 1
  stop || return 1
  local o=$out/tracer.trace.out
  for t in '"old":"CLOSE","new":"SYN_SENT"' '"old":"SYN_SENT","new":"ESTABLISHED"' \
    '"old":"LISTEN","new":"SYN_RECV"' '"old":"ESTABLISHED","new":"FIN_WAIT1"' \
    '"old":"ESTABLISHED","new":"CLOSE_WAIT"' '"old":"LAST_ACK","new":"CLOSE"'; do
    has "$o" 47011 "$t" || { echo "missing $t in:"; grep 47011 "$o"; return 1; }
  done
}

live_history() {
  tracer history -f json || return 1
  converse 47012 || return 1
  sleep 1
  stop || return 1
  local o=$out/tracer.history.out
  # The client closes first: TIME_WAIT, or an orphaned FIN_WAIT2 when the
  # server's FIN comes after the ACK of the client's (delayed ACK).
  has "$o" '"rport":47012' '"role":"active".*"end":"(closed|orphan_fin_wait2)"' &&
    has "$o" '"lport":47012,"raddr":"127' '"role":"passive".*"end":"closed"' ||
    { grep 47012 "$o"; return 1; }
}

live_snapshot() {
  python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",47013)); s.listen(); time.sleep(30)' &
  local spid=$!
  pids+=("$spid")
  # Until it listens (python starts slowly on a busy or emulated machine).
  for _ in $(seq 1 100); do
    [[ -n $(ss -Hltn 'sport = :47013') ]] && break
    sleep 0.1
  done
  "$tt" snapshot -f json --lport 47013 >"$out/snapshot.out" || return 1
  # The same from sock_diag and /proc, as on a kernel without iterators.
  TCPTRAIL_FORCE_FALLBACK=iter:tcp,iter:task_file \
    "$tt" snapshot -f json --lport 47013 >"$out/snapshot-diag.out" || return 1
  kill "$spid"
  grep -q '"state":"LISTEN".*"comm":"python3"' "$out/snapshot.out" ||
    { cat "$out/snapshot.out"; return 1; }
  grep -q '"state":"LISTEN".*"comm":"python3"' "$out/snapshot-diag.out" ||
    { cat "$out/snapshot-diag.out"; return 1; }
}

echo "smoke: kernel $(uname -r)"
check doctor "$tt" doctor
check doctor-json sh -c "'$tt' doctor -f json | python3 -m json.tool"
for sub in trace history snapshot leaks diagnose ladder serve; do
  check "attach-$sub" "$tt" "$sub" --exit-after-attach
done
check live-trace live_trace
check live-history live_history
check live-snapshot live_snapshot
check live-leaks "$tt" leaks --once
# Optional programs refused: tracing goes on and says what is lost; a
# required one refused: a one-line error that points to doctor.
no_iterators() {
  TCPTRAIL_FORCE_FALLBACK=iter:task_file,iter:tcp "$tt" trace --exit-after-attach \
    2>"$out/no-iter.err" || { cat "$out/no-iter.err"; return 1; }
  grep -q 'warning: iter:task_file unavailable.*show no owner' "$out/no-iter.err" ||
    { cat "$out/no-iter.err"; return 1; }
  if TCPTRAIL_FORCE_FALLBACK=tp_btf:inet_sock_set_state "$tt" trace \
    --exit-after-attach 2>"$out/no-iter.err"; then
    echo "trace ran without its tracepoint"; return 1
  fi
  grep -q '^hint: run `tcptrail doctor`' "$out/no-iter.err" || { cat "$out/no-iter.err"; return 1; }
}
check forced-no-iterators no_iterators
echo "smoke: $passed passed, $failed failed"
((failed == 0))
