/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers shared by the per-hook programs: tuples, owners, filters, ring. */
#ifndef TCPTRAIL_SOCK_BPF_H
#define TCPTRAIL_SOCK_BPF_H

#include <bpf/bpf_endian.h>
#include "maps.bpf.h"
#include "core_fixes.bpf.h"

#define AF_INET 2
#define AF_INET6 10
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

#define TT_READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#define TT_WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))

static __always_inline void stat_inc(__u64 *counter)
{
	__sync_fetch_and_add(counter, 1);
}

/* skc of a full TCP socket, through its bpf_skc_to_tcp_sock() (see skc_plain()). */
static __always_inline const struct sock_common *tcp_skc(const struct tcp_sock *tp)
{
	return &tp->inet_conn.icsk_inet.sk.__sk_common;
}

/*
 * The same socket, reached through bpf_skc_to_*(): a pointer the verifier
 * does not call trusted, for fill_tuple(). Loading a pointer field
 * (skc_net) through a trusted one (a tp_btf or iterator argument) makes
 * 6.4+ verifiers look up "sock_common__safe_trusted" and three more such
 * names in the kernel's BTF, linearly, on every path that reaches the load:
 * on 6.18.44-fc-v1300 (125,851 types) that was half of the time spent
 * verifying trace's programs (42-48 -> 20-26 ms). Through this alias the
 * load is typed without a search. A caller that has a bpf_skc_to_*()
 * result passes it instead (tcp_skc()). NULL if skc is none of the three
 * kinds.
 */
static __always_inline const struct sock_common *skc_plain(const struct sock_common *skc)
{
	const struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)skc);
	const struct tcp_timewait_sock *tw;
	const struct tcp_request_sock *req;

	if (tp)
		return tcp_skc(tp);
	tw = bpf_skc_to_tcp_timewait_sock((void *)skc);
	if (tw)
		return &tw->tw_sk.__tw_common;
	req = bpf_skc_to_tcp_request_sock((void *)skc);
	if (req)
		return &req->req.req.__req_common;
	return NULL;
}

/*
 * Addresses and ports of a socket (full, request or timewait). skc is a
 * BTF pointer: direct loads (CO-RE relocated, fault tolerant) cost far less
 * than a bpf_probe_read_kernel() per field. From a trusted pointer, pass
 * skc_plain() or tcp_skc(); an untrusted one (an iter/task_file file's
 * socket) may be passed as it is.
 */
static __always_inline bool fill_tuple(struct tt_sock *s, const struct sock_common *skc)
{
	__u16 family = skc->skc_family;

	if (family == AF_INET) {
		s->af = 4;
		*(__u32 *)s->laddr = skc->skc_rcv_saddr;
		*(__u32 *)s->raddr = skc->skc_daddr;
	} else if (family == AF_INET6) {
		s->af = 6;
		for (int i = 0; i < 4; i++) {
			((__u32 *)s->laddr)[i] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			((__u32 *)s->raddr)[i] = skc->skc_v6_daddr.in6_u.u6_addr32[i];
		}
	} else {
		return false;
	}
	s->lport = skc->skc_num;
	s->rport = bpf_ntohs(skc->skc_dport);
	s->netns = net_inum_cached(skc->skc_net.net);
	return true;
}

/*
 * The socket's cookie. The kernel makes it on first use and keeps it in
 * sk_cookie: read it there, call the helper (which makes it) only once.
 */
static __always_inline __u64 sock_cookie(const struct sock *sk)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;

	return cookie ? cookie : bpf_get_socket_cookie((void *)sk);
}

/* SOCK_DEAD: orphaned, no file refers to the socket any more. */
static __always_inline bool sock_flag_dead(const struct sock *sk)
{
	return sk->__sk_common.skc_flags & (1UL << SOCK_DEAD);
}

/*
 * SOCK_DONE: tcp_fin() saw the peer's FIN. (sk_shutdown's RCV_SHUTDOWN does
 * not tell: close() sets it on our own side.)
 */
static __always_inline bool sock_flag_done(const struct sock *sk)
{
	return sk->__sk_common.skc_flags & (1UL << SOCK_DONE);
}

/*
 * The task on the CPU: tgid and comm by direct loads from its task_struct.
 * One helper call instead of bpf_get_current_pid_tgid() plus
 * bpf_get_current_comm(), which copies the name a byte at a time. The name
 * may be torn by a concurrent prctl(PR_SET_NAME), as with the helper; user
 * space treats it as untrusted bytes either way.
 */
static __always_inline void current_task(__u32 *tgid, char comm[TT_COMM_LEN])
{
	const struct task_struct *t = bpf_get_current_task_btf();

	*tgid = t->tgid;
	((__u64 *)comm)[0] = *(const __u64 *)&t->comm[0];
	((__u64 *)comm)[1] = *(const __u64 *)&t->comm[8];
}

#define IPPROTO_TCP 6
#define SOCK_STREAM 1

/*
 * The TCP socket (IPv4 or IPv6 stream) an iter/task_file record's file is,
 * or NULL. A thread whose fd table is its group leader's is skipped: the
 * kernel's task_file iterator already skips it (task_seq_get_next(),
 * skip_if_dup_files), and the same test here keeps that guarantee explicit.
 * A thread that unshare(CLONE_FILES)d has a table of its own and is kept.
 */
static __always_inline struct sock *task_file_tcp_sock(const struct task_struct *task,
							struct file *file)
{
	struct socket *so;
	struct sock *sk;

	if (!task || !file)
		return NULL;
	if (task->pid != task->tgid && task->files == task->group_leader->files)
		return NULL;
	so = bpf_sock_from_file(file); /* NULL unless file->f_op == &socket_file_ops */
	if (!so)
		return NULL;
	sk = so->sk;
	if (!sk || sk->sk_protocol != IPPROTO_TCP || sk->sk_type != SOCK_STREAM)
		return NULL;
	if (sk->__sk_common.skc_family != AF_INET && sk->__sk_common.skc_family != AF_INET6)
		return NULL;
	return sk;
}

/*
 * The socket's storage if it has any, made never. (Checking sk_bpf_storage
 * for NULL first saves sockets without storage the helper call; done here,
 * for every program, it nearly doubled the verifier's time: 26 -> 46 ms of
 * start-up. The state program does it itself, at +1.7 ms.)
 */
static __always_inline struct sock_info *sock_info_peek(const struct sock *sk)
{
	return bpf_sk_storage_get(&sock_infos, (void *)sk, NULL, 0);
}

/*
 * Cgroups (v2). A cgroup's id is its kernfs node's (kn->id: the inode number
 * of its directory on 64-bit). A direct load of a pointer field through a
 * trusted BTF pointer (a tp_btf argument, bpf_get_current_task_btf()) makes
 * 6.x verifiers look up "<type>__safe_rcu" and friends by name in the
 * kernel's BTF, a linear search of 100,000+ types, for every such load on
 * every path: direct loads from trusted pointers here took the state
 * program's verification from 8 to 41 ms (Linux 6.18), the start-up from ~55
 * to ~90 ms. So a socket's cgroup is read by direct loads through a
 * bpf_skc_to_*() alias (see skc_plain(): no search), the current task's id
 * comes from bpf_get_current_cgroup_id(), and any other pointer on the way
 * is read with BPF_CORE_READ (probe reads, ~25 ns each at run time).
 */
#define CGROUP_MAX_DEPTH 32

static __always_inline __u64 cgroup_id_of(const struct cgroup *cg)
{
	return cg ? BPF_CORE_READ(cg, kn, id) : 0;
}

/* A task's cgroup in the v2 hierarchy. */
static __always_inline const struct cgroup *task_cgroup(const struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp);
}

/* Whether cg is cfg_cgroup_id or one of its descendants. */
static __noinline bool cgroup_under_filter(const struct cgroup *cg)
{
	int level = BPF_CORE_READ(cg, level);

	if (level < (int)cfg_cgroup_level)
		return false;
	for (int i = 0; i < CGROUP_MAX_DEPTH; i++) {
		if (level <= (int)cfg_cgroup_level || !cg)
			break;
		/* struct cgroup starts with its css, self */
		cg = (const struct cgroup *)BPF_CORE_READ(cg, self.parent);
		level--;
	}
	return level == (int)cfg_cgroup_level && cg && BPF_CORE_READ(cg, kn, id) == cfg_cgroup_id;
}

/* Whether the --cgroup filter is set and id has no verdict yet. */
static __always_inline bool cgroup_verdict_missing(__u64 id)
{
	return cfg_cgroup_id && id && !bpf_map_lookup_elem(&cgroup_verdicts, &id);
}

/* Records cg's --cgroup verdict under its id, for cgroup_allowed(). */
static __always_inline void cgroup_verdict_set(__u64 id, const struct cgroup *cg)
{
	__u8 verdict = cgroup_under_filter(cg);

	bpf_map_update_elem(&cgroup_verdicts, &id, &verdict, BPF_ANY);
}

/* cg's id, with its verdict recorded if it has none. */
static __always_inline __u64 cgroup_note(const struct cgroup *cg)
{
	__u64 id = cgroup_id_of(cg);

	if (cgroup_verdict_missing(id))
		cgroup_verdict_set(id, cg);
	return id;
}

/*
 * The cgroup of a full socket's creator (cgroup_sk_alloc(); an accepted
 * socket's is its listener's, cgroup_sk_clone()), or NULL; cg->kn->id is its
 * id. Direct loads, no helper: tp is a bpf_skc_to_tcp_sock() result, which
 * no verifier calls trusted (see above), or NULL. sock_cgroup_data holds a
 * struct cgroup pointer since commit 8520e224f547 ("bpf, cgroups: Fix
 * cgroup v2 fallback on v1/v2 mixed mode", 5.15); older kernels: unknown.
 */
static __always_inline const struct cgroup *sock_cgroup(const struct tcp_sock *tp)
{
	if (!tp || !bpf_core_field_exists(tp->inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup))
		return NULL;
	return tp->inet_conn.icsk_inet.sk.sk_cgrp_data.cgroup;
}

/* sock_cgroup(tp)'s id, 0 if none; direct loads too. */
static __always_inline __u64 sock_cgroup_id(const struct tcp_sock *tp)
{
	const struct cgroup *cg = sock_cgroup(tp);

	return cg ? cg->kn->id : 0;
}

/* The --cgroup filter; true when it is not set. */
static __always_inline bool cgroup_allowed(__u64 id)
{
	__u8 *verdict;

	if (!cfg_cgroup_id)
		return true;
	verdict = bpf_map_lookup_elem(&cgroup_verdicts, &id);
	return verdict && *verdict;
}

/*
 * The cgroup id of the task on the CPU, for an owner taken in process
 * context: one helper call (task_dfl_cgroup(current)->kn->id), where the
 * same path read by probe reads cost four. The cgroup itself is read only
 * for a --cgroup verdict not made yet.
 */
static __always_inline __u64 current_cgroup_id(void)
{
	__u64 id = bpf_get_current_cgroup_id();

	if (cgroup_verdict_missing(id))
		cgroup_verdict_set(id, task_cgroup(bpf_get_current_task_btf()));
	return id;
}

/*
 * The owner from socket storage, when known; the owner's cgroup also from
 * there, else the socket creator's (tp: the socket's bpf_skc_to_tcp_sock(),
 * or NULL).
 */
static __always_inline void copy_owner(struct tt_sock *s, const struct sock_info *info,
				       const struct tcp_sock *tp)
{
	if (info && (info->flags & TT_F_OWNER)) {
		s->pid = info->pid;
		__builtin_memcpy(s->comm, info->comm, sizeof(s->comm));
		if (info->cgroup_id) {
			s->cgroup_id = info->cgroup_id;
			return;
		}
	}
	s->cgroup_id = sock_cgroup_id(tp);
	if (cgroup_verdict_missing(s->cgroup_id))
		cgroup_verdict_set(s->cgroup_id, sock_cgroup(tp));
}

/* The task on the CPU, and the owner from socket storage when known. */
static __always_inline void fill_owner(struct tt_sock *s, const struct sock_info *info,
				       const struct tcp_sock *tp)
{
	current_task(&s->cpu_pid, s->cpu_comm);
	copy_owner(s, info, tp);
}

/*
 * inet_put_port() zeroes the local port before the tracepoint fires for a
 * transition into CLOSE (and for the RST an abort sends right after), so the
 * port is remembered while it is known and filled in when it reads 0. Not
 * called at CLOSE -> SYN_SENT, where 0 is the truth: connect() has not
 * chosen the port yet.
 */
static __always_inline void remember_lport(struct tt_sock *s, struct sock_info *info)
{
	if (!info)
		return;
	if (s->lport)
		info->lport = s->lport;
	else
		s->lport = info->lport;
}

/*
 * Makes the task on the CPU, already in s (current_task()), the socket's
 * owner: for events in process context.
 */
static __always_inline void take_owner(const struct tt_sock *s, struct sock_info *info)
{
	info->pid = s->cpu_pid;
	__builtin_memcpy(info->comm, s->cpu_comm, sizeof(info->comm));
	info->cgroup_id = current_cgroup_id();
	info->flags |= TT_F_OWNER;
}

/* The owner the fd walk found, into a socket's storage. */
static __always_inline void seed_give(struct sock_info *info, const struct seed_owner *seed)
{
	info->pid = seed->pid;
	__builtin_memcpy(info->comm, seed->comm, sizeof(info->comm));
	info->cgroup_id = seed->cgroup_id;
	info->flags |= TT_F_OWNER;
	if (!info->lport)
		info->lport = seed->lport;
	__sync_fetch_and_add(&seeded_sockets, 1);
}

/*
 * A socket that existed before start, met without an owner: the owner the
 * start-up fd walk found for it (owners.bpf.c) goes into its storage, made
 * here if it has none, and its seed_owners entry goes. Returns the storage
 * (`info` if there is no claim). The caller asks only while seed_pending,
 * and never for a socket whose storage already says it has no claim.
 */
static __always_inline struct sock_info *seed_claim(const struct sock *sk,
						    struct sock_info *info)
{
	struct seed_owner *seed = NULL;
	__u64 key = (__u64)sk;
	__u32 h = sk->__sk_common.skc_hash;

	if (*seed_filter_word(h) & seed_filter_bit(h))
		seed = bpf_map_lookup_elem(&seed_owners, &key);
	if (!seed) {
		if (info)
			info->si_flags |= SI_SEED_TRIED;
		return info;
	}
	/* The same address may hold another socket by now. */
	if (BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino) == seed->ino) {
		if (!info)
			info = bpf_sk_storage_get(&sock_infos, (void *)sk, NULL,
						  BPF_SK_STORAGE_GET_F_CREATE);
		if (info)
			seed_give(info, seed);
	}
	bpf_map_delete_elem(&seed_owners, &key);
	return info;
}

/* Whether to ask seed_claim(): there are seeds, and `info` may lack one. */
static __always_inline bool seed_wanted_for(const struct sock_info *info)
{
	return seed_pending &&
	       !(info && ((info->flags & TT_F_OWNER) || (info->si_flags & SI_SEED_TRIED)));
}

static __always_inline bool cidr_match(const volatile struct tt_cidr *c, __u8 af, const __u8 *addr)
{
	__u32 bits = c->prefix_len;

	if (c->af != af)
		return false;
	for (int i = 0; i < TT_ADDR_LEN; i++) {
		__u8 mask;

		if (bits == 0)
			return true;
		mask = bits >= 8 ? 0xff : (__u8)(0xff << (8 - bits));
		if ((addr[i] & mask) != (c->addr[i] & mask))
			return false;
		bits = bits >= 8 ? bits - 8 : 0;
	}
	return true;
}

static __always_inline bool cidrs_match(const volatile struct tt_cidr *tab, __u32 n, __u8 af,
					const __u8 *addr)
{
	for (__u32 i = 0; i < MAX_FILTER_CIDRS; i++) {
		if (i >= n)
			break;
		if (cidr_match(&tab[i], af, addr))
			return true;
	}
	return false;
}

static __always_inline bool ports_match(const volatile __u16 *tab, __u32 n, __u16 port)
{
	for (__u32 i = 0; i < MAX_FILTER_PORTS; i++) {
		if (i >= n)
			break;
		if (tab[i] == port)
			return true;
	}
	return false;
}

static __always_inline __u32 state_bit(__u8 state)
{
	return 1U << (state & 31);
}

/* The owner filters (--pid, --comm, --cgroup); true when none is set. */
static __always_inline bool owner_allowed(__u32 pid, const char *comm, __u64 cgroup_id)
{
	if (!cgroup_allowed(cgroup_id))
		return false;
	if (cfg_n_pids) {
		bool found = false;

		for (__u32 i = 0; i < MAX_FILTER_PIDS; i++) {
			if (i >= cfg_n_pids)
				break;
			if (cfg_pids[i] == pid) {
				found = true;
				break;
			}
		}
		if (!found)
			return false;
	}
	if (cfg_comm_set) {
		for (int i = 0; i < TT_COMM_LEN; i++) {
			if (comm[i] != cfg_comm[i])
				return false;
			if (!cfg_comm[i])
				break;
		}
	}
	return true;
}

/* The address and port filters (--lport, --rport, --laddr, --raddr). */
static __always_inline bool endpoints_allowed(const struct tt_sock *s, bool step)
{
	if (cfg_n_lports && !step && !ports_match(cfg_lports, cfg_n_lports, s->lport))
		return false;
	if (cfg_n_rports && !ports_match(cfg_rports, cfg_n_rports, s->rport))
		return false;
	if (cfg_n_laddrs && !cidrs_match(cfg_laddrs, cfg_n_laddrs, s->af, s->laddr))
		return false;
	if (cfg_n_raddrs && !cidrs_match(cfg_raddrs, cfg_n_raddrs, s->af, s->raddr))
		return false;
	return true;
}

/*
 * The user's filters; called before bpf_ringbuf_reserve(). states: the
 * state_bit()s of the states concerned (either side of a transition, or
 * every state of an aggregated path). step: the record is one step of a path
 * that user space assembles and filters as a whole (history mode, a socket
 * without storage), so only what holds for every step is checked here: not
 * the states, the owner (named at connect() only) or the local port (0 until
 * connect() binds it, and again at CLOSE).
 */
static __always_inline bool filter_check(const struct tt_sock *s, __u32 states, bool step)
{
	if (cfg_af && s->af != cfg_af)
		return false;
	if (cfg_netns && s->netns != cfg_netns)
		return false;
	if (cfg_state_mask && !step && !(cfg_state_mask & states))
		return false;
	/*
	 * Lazy mode: a socket without storage may have an owner only user
	 * space knows (SocketMemory, HistoryAssembler); it checks pid and comm
	 * once it has filled the owner in. Tested only with an owner filter
	 * set, so that without one the verifier meets no extra branch.
	 */
	if ((cfg_n_pids || cfg_comm_set) && ((cfg_lazy_storage && !s->pid) || step)) {
		/* The cgroup is known without storage: the socket's. */
		if (!cgroup_allowed(s->cgroup_id))
			return false;
		goto owner_checked;
	}
	if (!owner_allowed(s->pid, s->comm, s->cgroup_id))
		return false;
owner_checked:
	return endpoints_allowed(s, step);
}

/* A whole path's record (history mode: from socket storage). */
static __always_inline bool filter_pass_states(const struct tt_sock *s, __u32 states)
{
	return filter_check(s, states, false);
}

/*
 * A record of one transition (old_state == new_state for a segment). In
 * history mode that is a step of a path user space assembles: see
 * filter_check().
 */
static __always_inline bool filter_pass(const struct tt_sock *s, __u8 old_state, __u8 new_state)
{
	return filter_check(s, state_bit(old_state) | state_bit(new_state), cfg_aggregate);
}

/* Reserves a record, counting a failure as a loss the consumer reports. */
static __always_inline void *ring_reserve(__u64 size)
{
	void *rec = bpf_ringbuf_reserve(&events, size, 0);

	if (!rec)
		stat_inc(&stat_lost);
	return rec;
}

/*
 * The wake-up flag for `size` more bytes submitted on this CPU: the consumer
 * is woken only once this CPU has submitted cfg_wakeup_cpu_bytes since its
 * last wake-up. A wake-up per record costs more than the rest of the
 * program; asking the ring how much waits (bpf_ringbuf_query) costs a helper
 * call and a cache line the consumer writes, ~25 ns/run more on the 2-core
 * VM. At most cfg_wakeup_cpu_bytes x CPUs wait unannounced; the consumer also
 * drains on a short timer, so nothing waits long at a low rate.
 */
static __always_inline __u64 ring_wakeup_flag(__u32 size)
{
	__u32 zero = 0;
	__u64 *unsignalled;

	if (!cfg_wakeup_cpu_bytes)
		return 0;
	unsignalled = bpf_map_lookup_elem(&ring_unsignalled, &zero);
	if (!unsignalled)
		return BPF_RB_NO_WAKEUP;
	*unsignalled += size;
	if (*unsignalled < cfg_wakeup_cpu_bytes)
		return BPF_RB_NO_WAKEUP;
	*unsignalled = 0;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void ring_submit(void *rec, __u32 size)
{
	bpf_ringbuf_submit(rec, ring_wakeup_flag(size));
}

/*
 * Batched mode: this CPU's stage, or NULL when batching is off. Never NULL
 * with batching on: the caller returns at once if it were, so the verifier
 * walks one path per mode, not both.
 */
static __always_inline struct tt_stage *stage_get(void)
{
	__u32 zero = 0;

	return cfg_batch ? bpf_map_lookup_elem(&stages, &zero) : NULL;
}

/*
 * Takes the stage for `who` (STAGE_STATE, STAGE_FLUSH) if it is free;
 * false if the other program holds it. The state program takes it before
 * the record's timestamp is read, so that a flush mark never passes a
 * record still being made: see tt_flush_event.
 */
static __always_inline bool stage_take(struct tt_stage *st, __u32 who)
{
	if (TT_READ_ONCE(st->busy) != STAGE_FREE)
		return false;
	TT_WRITE_ONCE(st->busy, who);
	barrier(); /* st->n is read after busy is set */
	return true;
}

/*
 * 1 if the state program holds the stage, else 0 (the flush program does:
 * we interrupted it). Computed, not branched on, by the callers that pick
 * the slot, so that the verifier walks the record's fill once.
 */
static __always_inline __u32 stage_mine(const struct tt_stage *st)
{
	__u32 busy = TT_READ_ONCE(st->busy);

	barrier_var(busy);
	return (busy >> 1) & 1; /* STAGE_STATE -> 1, STAGE_FLUSH -> 0 */
}

/* The slot for this run's record: the next free one, or the spare one. */
static __always_inline __u32 stage_slot(const struct tt_stage *st, __u32 mine)
{
	__u32 mask = -mine; /* all ones when the stage is ours */

	return ((st->n & (TT_STAGE_RECORDS - 1)) & mask) | (TT_STAGE_RECORDS & ~mask);
}

static __always_inline void stage_release(struct tt_stage *st)
{
	barrier();
	TT_WRITE_ONCE(st->busy, STAGE_FREE);
}

/*
 * Copies `size` bytes holding `records` records into the ring as one ring
 * record. A full ring loses them all, and counts them.
 */
static __always_inline void ring_output(void *data, __u32 size, __u32 records)
{
	if (bpf_ringbuf_output(&events, data, size, ring_wakeup_flag(size)))
		__sync_fetch_and_add(&stat_lost, records);
}

/* Sends the staged records as one ring record and empties the stage. */
static __always_inline void stage_send(struct tt_stage *st, __u32 n)
{
	if (n == 0 || n > TT_STAGE_RECORDS)
		return;
	ring_output(st->rec, n * sizeof(st->rec[0]), n);
	st->n = 0;
}

/* The seq/ack snapshot of a segment event; zeros without a full socket. */
static __always_inline void fill_seg_seq(struct tt_seg_event *ev, const struct tcp_sock *tp,
					 const struct sock_info *info)
{
	ev->snd_una = tp ? tp->snd_una : 0;
	ev->snd_nxt = tp ? tp->snd_nxt : 0;
	ev->rcv_nxt = tp ? tp->rcv_nxt : 0;
	ev->isn_local = info ? info->isn_local : 0;
	ev->isn_remote = info ? info->isn_remote : 0;
}

static __always_inline void fill_header(struct tt_header *h, __u16 kind, __u16 size, __u64 ts,
					__u64 cookie)
{
	h->kind = kind;
	h->size = size;
	h->cpu = bpf_get_smp_processor_id();
	h->ts_ns = ts;
	h->cookie = cookie;
}

#endif /* TCPTRAIL_SOCK_BPF_H */
