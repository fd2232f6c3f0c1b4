#!/usr/bin/env bash
# Creates a client and a server network namespace joined by veth
# (198.18.0.1 <-> 198.18.0.2, 2001:db8::1 <-> 2001:db8::2) and plays textbook
# TCP scenes in them, for demos and the README's sample output:
#   normal   client sends 10 B, server replies 7 B, client closes first
#   passive  the server closes first
#   refused  SYN to a closed port -> RST
#   reset    the client aborts with SO_LINGER 0 -> RST
#   ipv6     'normal' over IPv6
#   leak     the server never closes an accepted socket: CLOSE_WAIT (held
#            for $LEAK_HOLD seconds, default 30)
# Usage: sudo scripts/scenario.sh [scene...]   (default: all but leak)
# CAPTURE=file.pcap records the scenes' packets (tcpdump on the server's
# veth), e.g. to compare `tcptrail ladder` with tshark's view.
# Prints the netns inode of the server and client namespaces first, so that
#   tcptrail trace --netns <inode>
# can follow one side. Namespaces are deleted on exit, even on failure.
set -euo pipefail
scenes=("$@")
((${#scenes[@]})) || scenes=(normal passive refused reset ipv6)
cli=tt-demo-cli-$$ srv=tt-demo-srv-$$
cap_pid=
stop_capture() {
  [[ -n $cap_pid ]] || return 0
  # Let tcpdump write what it has read: until the file stops growing.
  local size=-1 same=0
  for _ in $(seq 50); do
    local now
    now=$(stat -c %s "$CAPTURE" 2>/dev/null || echo 0)
    if [[ $now == "$size" ]]; then ((++same >= 3)) && break; else same=0; fi
    size=$now
    sleep 0.1
  done
  kill -INT "$cap_pid" 2>/dev/null || true
  wait "$cap_pid" 2>/dev/null || true
  cap_pid=
}
cleanup() { stop_capture; ip netns del "$cli" 2>/dev/null || true; ip netns del "$srv" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$cli"
ip netns add "$srv"
ip link add tt-c$$ netns "$cli" type veth peer name tt-s$$ netns "$srv"
ip -n "$cli" addr add 198.18.0.1/24 dev tt-c$$
ip -n "$srv" addr add 198.18.0.2/24 dev tt-s$$
ip -n "$cli" addr add 2001:db8::1/64 dev tt-c$$ nodad
ip -n "$srv" addr add 2001:db8::2/64 dev tt-s$$ nodad
for ns in "$cli" "$srv"; do
  ip -n "$ns" link set lo up
done
ip -n "$cli" link set tt-c$$ up
ip -n "$srv" link set tt-s$$ up
if [[ -n ${CAPTURE:-} ]]; then
  ip netns exec "$srv" tcpdump -i "tt-s$$" -n -U --immediate-mode -w "$CAPTURE" tcp 2>"$CAPTURE.log" &
  cap_pid=$!
  for _ in $(seq 200); do grep -q "listening on" "$CAPTURE.log" 2>/dev/null && break; sleep 0.05; done
  grep -q "listening on" "$CAPTURE.log" || { echo "scenario: tcpdump did not start" >&2; exit 1; }
fi
echo "server netns inode: $(stat -L -c %i /run/netns/$srv)"
echo "client netns inode: $(stat -L -c %i /run/netns/$cli)"
sleep "${SCENE_DELAY:-0}"

py() { ip netns exec "$1" python3 -c "$2" "${@:3}"; }
server='
import socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print("ready", flush=True)
c, _ = s.accept(); c.recv(1024); c.sendall(b"y" * 7)
mode = sys.argv[3]
try:
    if mode == "passive": c.close(); time.sleep(0.3)
    elif mode == "leak": time.sleep(float(sys.argv[4]))
    else: c.recv(1024); time.sleep(0.1); c.close()
except ConnectionResetError:
    pass  # the reset scene: the peer aborted
s.close()
'
client='
import socket, struct, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
c = socket.socket(fam); c.connect((sys.argv[1], int(sys.argv[2])))
c.sendall(b"x" * 10); c.recv(1024)
mode = sys.argv[3]
if mode == "reset":
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
elif mode == "passive":
    c.recv(1024); time.sleep(0.1)
c.close()
'
run_pair() { # addr port mode
  ip netns exec "$srv" python3 -c "$server" "$1" "$2" "$3" "${LEAK_HOLD:-30}" | { read -r _; py "$cli" "$client" "$1" "$2" "$3"; cat >/dev/null; }
}
for scene in "${scenes[@]}"; do
  case "$scene" in
    normal) run_pair 198.18.0.2 8080 normal ;;
    passive) run_pair 198.18.0.2 8081 passive ;;
    refused) py "$cli" 'import socket
try: socket.create_connection(("198.18.0.2", 9))
except ConnectionRefusedError: pass' ;;
    reset) run_pair 198.18.0.2 8082 reset ;;
    ipv6) run_pair 2001:db8::2 8083 normal ;;
    leak) run_pair 198.18.0.2 8084 leak ;;
    *) echo "scenario: unknown scene $scene" >&2; exit 2 ;;
  esac
  sleep 0.2
done
stop_capture
