/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Maps, configuration and per-socket state shared by every tcptrail program.
 * Every definition is __weak so that the per-hook objects link into one
 * (bpftool gen object) with a single instance of each.
 */
#ifndef TCPTRAIL_MAPS_BPF_H
#define TCPTRAIL_MAPS_BPF_H

#include "tcptrail/events.h"

#define MAX_FILTER_PIDS TT_MAX_FILTER_PIDS
#define MAX_FILTER_PORTS TT_MAX_FILTER_PORTS
#define MAX_FILTER_CIDRS TT_MAX_FILTER_CIDRS

/*
 * Knobs, set by user space before load; 0 means off. The scalars come first,
 * the filters' tables last: every run of the state program reads a dozen of
 * them, and declared in this order they share two cache lines of .rodata
 * instead of six.
 */
const volatile __u32 cfg_af __weak = 0;           /* 4 or 6 */
const volatile __u32 cfg_netns __weak = 0;        /* netns inode */
const volatile __u32 cfg_state_mask __weak = 0;   /* 1 << state, either side */
const volatile __u32 cfg_n_pids __weak = 0;
const volatile __u32 cfg_comm_set __weak = 0;
/* --cgroup/--container: the owner's cgroup is this cgroup (v2 id) or one of
 * its descendants; cfg_cgroup_level is its depth (root 0). */
const volatile __u64 cfg_cgroup_id __weak = 0;
const volatile __u32 cfg_cgroup_level __weak = 0;
const volatile __u32 cfg_n_lports __weak = 0;
const volatile __u32 cfg_n_rports __weak = 0;
const volatile __u32 cfg_n_laddrs __weak = 0;
const volatile __u32 cfg_n_raddrs __weak = 0;

/* History mode: aggregate each socket's path in its storage, one
 * tt_conn_event per connection (see events.h). */
const volatile __u32 cfg_aggregate __weak = 0;
/*
 * History mode: the kernel keeps the paths of sockets with storage and sends
 * one record per connection; open ones are read back with an
 * iter/bpf_sk_storage_map iterator. 0 where the kernel refuses that iterator
 * (hardened builds): every socket's transitions then go out one by one, as
 * for sockets without storage, and user space assembles every path.
 */
const volatile __u32 cfg_kernel_paths __weak = 0;
/*
 * trace, diagnose, history: the state program makes socket storage only for
 * listeners (each child inherits a copy, BPF_F_CLONE) and the owner seeding
 * makes it for sockets that existed at start. Every other socket goes
 * without: making storage costs ~1 us, about 100 ns on each of a
 * connection's ~10 runs. User space remembers what the kernel cannot for
 * those (SocketMemory; in history, HistoryAssembler).
 */
const volatile __u32 cfg_lazy_storage __weak = 0;
/*
 * trace, diagnose, history: the state program stages its per-transition
 * records per CPU (stages below) and sends TT_STAGE_RECORDS at a time; the
 * flush program (flush.bpf.c), run on each CPU by user space, sends what
 * waits and marks how far that CPU's records are complete. One reservation
 * per batch instead of per record: ~50-80 ns/run less on the 2-core VM
 * (scripts/bench/floor.sh).
 */
const volatile __u32 cfg_batch __weak = 0;
const volatile __u32 cfg_no_retransmits __weak = 0;
/* tcp_send_reset has its third argument, enum sk_rst_reason (see
 * have_rst_reason() in core_fixes.bpf.h). */
const volatile __u32 cfg_rst_reason __weak = 0;
const volatile __u32 cfg_no_resets __weak = 0;
/*
 * serve: count transitions, ends, segments and times into serve_stats (see
 * events.h) as well as, or (cfg_serve_no_records) instead of, sending
 * records through the ring.
 */
const volatile __u32 cfg_serve __weak = 0;
const volatile __u32 cfg_serve_no_records __weak = 0;
/* Each CPU wakes the consumer once it has submitted this many bytes since its
 * last wake-up; the consumer also drains on a timer. 0: wake on every record. */
const volatile __u64 cfg_wakeup_cpu_bytes __weak = 0;
/* The fd walk (owners.bpf.c) tells user space of every fd of a socket in
 * these states (1 << TCP state), not only of the listeners it seeds:
 * diagnose's and leaks' owners (TracerConfig::walk_record_states). */
const volatile __u32 cfg_walk_states __weak = 0;

/* The filters' tables: cfg_n_* entries of each are used. */
const volatile __u32 cfg_pids[MAX_FILTER_PIDS] __weak = {};
const volatile char cfg_comm[TT_COMM_LEN] __weak = {}; /* if cfg_comm_set */
const volatile __u16 cfg_lports[MAX_FILTER_PORTS] __weak = {};
const volatile __u16 cfg_rports[MAX_FILTER_PORTS] __weak = {};
const volatile struct tt_cidr cfg_laddrs[MAX_FILTER_CIDRS] __weak = {};
const volatile struct tt_cidr cfg_raddrs[MAX_FILTER_CIDRS] __weak = {};

/* One ring buffer for every record kind; sized by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps") __weak;

/* Bytes this CPU submitted since it last woke the consumer (ring_submit). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ring_unsignalled SEC(".maps") __weak;

/*
 * A CPU's staged state records (cfg_batch). `busy` says who works on it:
 * the state program or the flush program. One may interrupt the other on
 * the same CPU (a softirq during a flush run in process context, the flush's
 * IPI during a state run), never itself (the kernel skips a tracing program
 * nested in itself). Whoever finds it busy leaves rec[0..n) alone: the state
 * program writes its record into the spare slot, rec[TT_STAGE_RECORDS], and
 * sends it on its own; the flush program sends no mark (user space tries
 * again).
 */
#define STAGE_FREE 0
#define STAGE_FLUSH 1
#define STAGE_STATE 2

struct tt_stage {
	__u32 busy; /* STAGE_* */
	__u32 n;    /* records waiting in rec[] */
	struct tt_state_event rec[TT_STAGE_RECORDS + 1];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tt_stage);
} stages SEC(".maps") __weak;

/*
 * Counters of rare failures, in .bss: user space reads them through the
 * skeleton's mmap, with no syscall and no capability. Atomic adds cost only
 * on the failure paths.
 */
__u64 stat_lost __weak = 0;         /* failed bpf_ringbuf_reserve() */
__u64 stat_storage_fail __weak = 0; /* socket storage could not be created */

/*
 * History mode: children that reached ESTABLISHED, per listener cookie. An
 * entry is made when a listener enters LISTEN and taken out in its
 * LISTEN -> CLOSE record; a listener without one (listening before tcptrail
 * started, or the map full) reports its count as unknown.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* nothing allocated unless used */
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} listener_accepts SEC(".maps") __weak;

/*
 * --cgroup: cgroup id -> 1 if it is cfg_cgroup_id or below it, 0 if not.
 * Filled where a cgroup is met with its pointer (an owner taken, a socket's
 * sk_cgrp_data, the seeding), read by the filter, which has only the id.
 */
#define CGROUP_VERDICTS_MAX 4096 /* user space sets 1 without --cgroup */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CGROUP_VERDICTS_MAX);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_verdicts SEC(".maps") __weak;

/*
 * Owners of the sockets that existed before start (see owners.bpf.c),
 * found by the start-up fd walk and claimed by the first program that meets
 * the socket without one (seed_claim() in sock.bpf.h). Keyed by the
 * socket's address; the inode checks that the address still holds the same
 * socket. Entries of sockets that never meet a program stay: the map is
 * bounded. Preallocated, with room for the TCP sockets the kernel had
 * allocated at start and a margin (seed_owner_entries() in user space):
 * an insert then takes an element from a free list instead of allocating
 * one, which made the walk of 10,000 sockets ~4 ms shorter on 6.18.
 */
#define SEED_MAX_SOCKETS (256 * 1024)
struct seed_owner {
	__u64 ino; /* the socket's inode, as the fd walk saw it */
	__u32 pid;
	__u16 lport; /* a transition into CLOSE reads 0 (remember_lport()) */
	__u16 _pad;
	char comm[TT_COMM_LEN];
	__u64 cgroup_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SEED_MAX_SOCKETS); /* sized at start: seed_owner_entries() */
	__type(key, __u64); /* struct sock address */
	__type(value, struct seed_owner);
} seed_owners SEC(".maps") __weak;

/* Set by user space while the fd walk may put sockets in seed_owners that
 * only a later claim can give an owner; programs skip the lookup without it. */
__u32 seed_pending __weak = 0;
__u64 seeded_sockets __weak = 0; /* owners given from seed_owners */
__u64 seed_walked __weak = 0;    /* put in seed_owners by the fd walk */

/*
 * One bit per socket hash (skc_hash, a scalar the verifier lets both the fd
 * walk and the tracing programs read; an address cannot be hashed) of the
 * sockets in seed_owners, set by the fd walk: most sockets made after
 * start miss here, in one load, instead of in a hash map lookup on every
 * transition of history's sockets without storage (with 10,000 seeds, 4%
 * of the others pass to the lookup).
 */
#define SEED_FILTER_WORDS 4096 /* 262,144 bits: 32 KiB of .bss */
__u64 seed_filter[SEED_FILTER_WORDS] __weak = {};

/* The filter's word and bit for a socket hash. */
static __always_inline __u64 *seed_filter_word(__u32 h)
{
	return &seed_filter[(h >> 6) & (SEED_FILTER_WORDS - 1)];
}

static __always_inline __u64 seed_filter_bit(__u32 h)
{
	return 1ULL << (h & 63);
}

/* serve: this CPU's counters (cfg_serve), added up by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tt_serve_stats);
} serve_stats SEC(".maps") __weak;

/* sock_info.flags beyond the TT_F_* ones it shares with events */
#define SI_RST_SENT (1U << 0)
#define SI_RST_RCVD (1U << 1)
/* A child whose LISTEN -> SYN_RECV was deferred (see handle_inet_sock_set_state) */
#define SI_BIRTH_PENDING (1U << 2)
/* seed_owners was asked for this socket's owner, in vain */
#define SI_SEED_TRIED (1U << 3)

/*
 * What tcptrail keeps with each socket, in socket-local storage: freed with
 * the socket, so it never fills up and needs no eviction. BPF_F_CLONE copies
 * a listener's entry into each child it accepts (sk_clone_lock()), which is
 * how an accepted socket learns its owner: the listener's.
 */
struct sock_info {
	__u64 state_ts;   /* bpf_ktime_get_ns() when `state` was entered */
	__u32 pid;        /* owner tgid (TT_F_OWNER) */
	__u32 _pad32;
	__u32 isn_local;  /* TT_F_ISN_LOCAL */
	__u32 isn_remote; /* TT_F_ISN_REMOTE */
	__u16 lport;      /* last non-zero local port (see remember_lport) */
	__u16 _pad16;
	__u8 state;       /* state entered at state_ts; 0 = not seen */
	__u8 flags;       /* TT_F_ISN_*, TT_F_ACTIVE, TT_F_PASSIVE, TT_F_OWNER */
	__u8 si_flags;    /* SI_* */
	__u8 serve_abort; /* serve: 1 + role of an abrupt close counted "closed" */
	char comm[TT_COMM_LEN];
	__u64 cgroup_id; /* owner's cgroup (v2) id (TT_F_OWNER), 0 if unknown */
	__u64 born_ts;    /* serve: SYN_SENT or SYN_RECV entered (0: unknown) */
	/* History mode (cfg_aggregate) only, below. */
	__u64 listener_cookie; /* a listener's own cookie, copied to its children */
	__u16 resets_sent;
	__u16 resets_received;
	__u8 n_steps;
	__u8 steps_dropped;
	__u8 _pad2[2];
	struct tt_conn_step steps[TT_CONN_MAX_STEPS];
};


struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sock_info);
} sock_infos SEC(".maps") __weak;

#endif /* TCPTRAIL_MAPS_BPF_H */
