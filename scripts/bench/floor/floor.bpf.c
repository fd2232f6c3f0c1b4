// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * floor.bpf.c - what each part of tcptrail's state program costs on its own:
 * one program on sock:inet_sock_set_state doing one thing, chosen by
 * `variant` at load (floor.sh measures each with bpf_stats).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

enum {
	V_EMPTY,      /* nothing: the cost of running a program at all */
	V_CLOCK,      /* bpf_ktime_get_ns() */
	V_STORAGE,    /* the clock into socket storage, created on first use */
	V_HASH,       /* the same in a preallocated hash map keyed by socket */
	V_RING_168,   /* a 168-byte record (tt_state_event's size) */
	V_RING_104,   /* a 104-byte record */
	V_RING_56,    /* a 56-byte record */
};

const volatile __u32 variant = V_EMPTY;
/* Each CPU wakes the consumer after this many bytes (tcptrail: ring / 4 / CPUs). */
const volatile __u64 wake_bytes = 512 << 10;

struct value {
	__u64 ts;
	char rest[200]; /* tcptrail's sock_info is 208 bytes */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct value);
} storage SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 17);
	__type(key, __u64);
	__type(value, struct value);
} hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* tcptrail's default */
} ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} unsignalled SEC(".maps");

__u64 ring_fail = 0;
static const struct value zero_value;

/* As tcptrail's ring_submit(): a wake-up per wake_bytes per CPU. */
static __always_inline void submit(void *rec, __u32 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP, *pending;
	__u32 zero = 0;

	pending = bpf_map_lookup_elem(&unsignalled, &zero);
	if (pending) {
		*pending += size;
		if (*pending >= wake_bytes) {
			*pending = 0;
			flags = BPF_RB_FORCE_WAKEUP;
		}
	}
	bpf_ringbuf_submit(rec, flags);
}

#define RECORD(size)                                                   \
	do {                                                           \
		char *rec = bpf_ringbuf_reserve(&ring, size, 0);       \
		if (!rec) {                                            \
			__sync_fetch_and_add(&ring_fail, 1);           \
			return 0;                                      \
		}                                                      \
		__builtin_memset(rec, 1, size);                        \
		submit(rec, size);                                     \
	} while (0)

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_state, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;
	struct value *v;

	switch (variant) {
	case V_CLOCK:
		return bpf_ktime_get_ns() & 1;
	case V_STORAGE:
		v = bpf_sk_storage_get(&storage, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (v)
			v->ts = bpf_ktime_get_ns();
		return 0;
	case V_HASH:
		v = bpf_map_lookup_elem(&hash, &key);
		if (!v && newstate != TCP_CLOSE) {
			bpf_map_update_elem(&hash, &key, &zero_value, BPF_NOEXIST);
			v = bpf_map_lookup_elem(&hash, &key);
		}
		if (v)
			v->ts = bpf_ktime_get_ns();
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
	}
	return 0;
}
