// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * floor.bpf.c - what each part of tcptrail's state program costs on its own:
 * one program on sock:inet_sock_set_state doing one thing, chosen by
 * `variant` at load (floor.sh measures each with bpf_stats).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
/* tcptrail's own maps and ring helpers: its storage value (sock_info), its
 * ring (sized by floor.c as tcptrail sizes it) and its wake-up policy. */
#include "sock.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum {
	V_EMPTY,      /* nothing: the cost of running a program at all */
	V_CLOCK,      /* bpf_ktime_get_ns() */
	V_STORAGE,    /* the clock into socket storage, created on first use */
	V_HASH,       /* the same in a preallocated hash map keyed by socket */
	V_RING_168,   /* a 168-byte record (tt_state_event's size) */
	V_RING_104,   /* a 104-byte record */
	V_RING_56,    /* a 56-byte record */
	V_CLOCK_RING_104, /* the clock and a 104-byte record */
	/*
	 * The same record written to a per-CPU staging area, and the area
	 * sent as one ring record once it holds BATCH of them: what batching
	 * would save. (Not a design as it stands: nothing sends a partial
	 * batch, and records of one socket made on two CPUs would reach user
	 * space out of order.)
	 */
	V_BATCH_104,
};

#define BATCH 16
struct stage {
	__u32 n;
	__u32 _pad;
	char rec[BATCH][104];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stage);
} floor_stages SEC(".maps");

const volatile __u32 variant = V_EMPTY;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 17);
	__type(key, __u64);
	__type(value, struct sock_info);
} hash SEC(".maps");

static const struct sock_info zero_value;

#define RECORD(size)                                                   \
	do {                                                           \
		char *rec = ring_reserve(size);                        \
		if (!rec)                                              \
			return 0;                                      \
		__builtin_memset(rec, 1, size);                        \
		ring_submit(rec, size);                                \
	} while (0)

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct sock_info *v;

	switch (variant) {
	case V_CLOCK:
		return bpf_ktime_get_ns() & 1;
	case V_STORAGE:
		v = bpf_sk_storage_get(&sock_infos, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (v)
			v->state_ts = bpf_ktime_get_ns();
		return 0;
	case V_HASH:
		v = bpf_map_lookup_elem(&hash, &key);
		if (!v && newstate != TCP_CLOSE) {
			bpf_map_update_elem(&hash, &key, &zero_value, BPF_NOEXIST);
			v = bpf_map_lookup_elem(&hash, &key);
		}
		if (v)
			v->state_ts = bpf_ktime_get_ns();
		if (newstate == TCP_CLOSE)
			bpf_map_delete_elem(&hash, &key);
		return 0;
	case V_RING_168:
		RECORD(168);
		return 0;
	case V_RING_104:
		RECORD(104);
		return 0;
	case V_RING_56:
		RECORD(56);
		return 0;
	case V_CLOCK_RING_104: {
		__u64 *rec = ring_reserve(104);
		if (!rec)
			return 0;
		__builtin_memset(rec, 1, 104);
		rec[0] = bpf_ktime_get_ns();
		ring_submit(rec, 104);
		return 0;
	}
	case V_BATCH_104: {
		__u32 zero = 0, n;
		struct stage *st = bpf_map_lookup_elem(&floor_stages, &zero);
		__u64 *rec;
		if (!st)
			return 0;
		n = st->n;
		if (n >= BATCH)
			n = 0;
		rec = (__u64 *)st->rec[n];
		__builtin_memset(rec, 1, 104);
		rec[0] = bpf_ktime_get_ns();
		if (++n == BATCH) {
			if (bpf_ringbuf_output(&events, st->rec, sizeof(st->rec), BPF_RB_NO_WAKEUP))
				stat_inc(&stat_lost);
			n = 0;
		}
		st->n = n;
		return 0;
	}
	}
	return 0;
}
