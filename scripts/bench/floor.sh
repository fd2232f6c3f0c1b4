#!/usr/bin/env bash
# floor.sh - what each part of the state program costs on its own.
#
# Builds floor/floor.bpf.c (one program on sock:inet_sock_set_state that does
# one thing: nothing, read the clock, socket storage, a hash map, one ring
# record of 168/104/56 bytes, the clock and a 104-byte record, or the same
# record staged per CPU and sent 16 at a time) with clang, bpftool and cc
# into a temporary directory, then for each variant and --runs times: loads
# it, runs a loadgen storm in a private namespace, and reports the program's
# average ns per run from bpf_stats. The README's "minimal program" table
# comes from here.
#
# Usage: floor.sh [--loadgen PATH] [--runs N] [--duration S]
#   environment: FLOOR_VARIANTS="0 1 7" measures only those (numbered from 0
#   in the order of the table)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

runs=3
duration=4
while (($#)); do
  case $1 in
  --loadgen) LOADGEN=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  --duration) duration=$2; shift 2 ;;
  -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
  esac
done
((runs >= 1 && runs <= 100)) || die "--runs must be 1..100"

bench_setup
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
bench_extra_cleanup() { sysctl -qw kernel.bpf_stats_enabled="$old_stats"; }
sysctl -qw kernel.bpf_stats_enabled=1

src="$bench_dir/floor"
arch=$(uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/')
arch_dir="$repo_root/bpf/vmlinux/$arch"
[[ -f $arch_dir/vmlinux.h ]] || die "no vmlinux.h for $(uname -m) in $repo_root/bpf/vmlinux"
clang -g -O2 -target bpf -D__TARGET_ARCH_"$arch" -I"$arch_dir" \
  -I"$repo_root/bpf" -I"$repo_root/include" \
  -c "$src/floor.bpf.c" -o "$BENCH_TMP/floor.bpf.o" || die "clang failed"
bpftool gen skeleton "$BENCH_TMP/floor.bpf.o" name floor_bpf >"$BENCH_TMP/floor.skel.h" ||
  die "bpftool gen skeleton failed"
cc -O2 -I"$BENCH_TMP" -I"$repo_root/include" "$src/floor.c" -o "$BENCH_TMP/floor" -lbpf || die "cc failed"

names=(empty clock clock+storage clock+hash ring-168B ring-104B ring-56B clock+ring-104B batch16-104B)
stats() { # prog id -> "run_cnt run_time_ns"
  bpftool prog show id "$1" --json |
    "$PYTHON" -c 'import json,sys; p=json.load(sys.stdin); print(p.get("run_cnt",0), p.get("run_time_ns",0))'
}

printf '%-16s %s\n' variant "ns per run (one figure per run)"
for v in ${FLOOR_VARIANTS:-${!names[@]}}; do
  [[ $v =~ ^[0-9]+$ && -n ${names[v]:-} ]] || die "no variant $v (0-$((${#names[@]} - 1)))"
  figures=()
  for ((r = 0; r < runs; r++)); do
    out="$BENCH_TMP/floor.out"
    "$BENCH_TMP/floor" "$v" $((duration + 3)) >"$out" 2>&1 &
    pid=$!
    STARTED_PIDS+=("$pid")
    for ((t = 0; t < 100; t++)); do grep -q ready "$out" && break; sleep 0.05; done
    id=$(bpftool prog show 2>/dev/null | awk -F: '/ name floor_state / {print $1}' | tail -n 1)
    [[ -n $id ]] || die "variant $v did not load: $(cat "$out")"
    read -r c0 t0 < <(stats "$id")
    run_load --mode client-first --threads 2 --duration "$duration" >/dev/null
    read -r c1 t1 < <(stats "$id")
    wait "$pid" || true
    ((c1 > c0)) || die "variant $v never ran"
    figures+=($(((t1 - t0) / (c1 - c0))))
    fail=$(awk '/ring_fail/ {print $2}' "$out")
    [[ ${fail:-0} == 0 ]] || log "variant ${names[v]}: $fail failed reservations (ring full)"
  done
  printf '%-16s %s\n' "${names[v]}" "${figures[*]}"
done
