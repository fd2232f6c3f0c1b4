// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sock:inet_sock_set_state for TCP: one tt_state_event per transition, with
 * the time spent in the old state, the owner and a seq/ack snapshot.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "conn.bpf.h"
#include "serve.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * Transitions that only a system call makes, so the task on the CPU owns
 * the socket: connect(), listen(), close()/shutdown(). Everything a packet
 * or a timer causes runs in softirq context on behalf of whoever was on the
 * CPU, and keeps the owner recorded earlier.
 */
static __always_inline bool in_owner_context(__u8 old, __u8 new)
{
	return (old == TCP_CLOSE && new == TCP_SYN_SENT) || new == TCP_LISTEN ||
	       new == TCP_FIN_WAIT1 || (old == TCP_CLOSE_WAIT && new == TCP_LAST_ACK);
}

/*
 * History mode: adds the transition to the socket's path and sends the whole
 * path once, when the connection ends. Only sockets with storage are
 * aggregated: listeners (one storage per listen()), their children (a clone
 * of the listener's, made by the kernel) and sockets seen at start. A socket
 * connect() made has none (cfg_lazy_storage): making it costs ~1 us, ~100 ns
 * on each of its connection's runs, more than sending its ~5 transitions in
 * batches as `trace` does, for HistoryAssembler to put together.
 */
static __always_inline int aggregate(const struct sock *sk, const struct tcp_sock *tp,
				     struct sock_info *info, struct tt_sock *s, __u64 now,
				     __u8 old, __u8 new, __u8 flags, __u8 detail, __u16 err)
{
	struct tt_conn_event *ev;
	/*
	 * The cookie is made now, at every step, not first at the end: at
	 * FIN_WAIT2/CLOSING -> CLOSE tcp_time_wait() has already copied the
	 * socket's cookie into the timewait socket, which ss and every other
	 * tool see for the next 60 s; made after that copy, ours would differ.
	 */
	__u64 cookie = sock_cookie(sk);
	__u32 *accepted;

	if (new == TCP_LISTEN) {
		__u32 zero = 0;

		info->listener_cookie = cookie;
		bpf_map_update_elem(&listener_accepts, &cookie, &zero, BPF_ANY);
	} else if (old == TCP_SYN_RECV && new == TCP_ESTABLISHED && info->listener_cookie) {
		accepted = bpf_map_lookup_elem(&listener_accepts, &info->listener_cookie);
		if (accepted)
			__sync_fetch_and_add(accepted, 1);
	}
	conn_add_step(info, now, tp, old, new, flags & ~TT_F_OLD_TS, detail);
	if (new != TCP_CLOSE && new != TCP_TIME_WAIT)
		return 0;

	/* The end: one record for the whole connection. */
	copy_owner(s, info, tp);
	if (filter_pass_states(s, conn_states(info))) {
		ev = ring_reserve(sizeof(*ev));
		if (ev) {
			conn_fill(ev, s, info, tp, cookie, err);
			ev->conn_flags |= TT_CF_ENDED;
			if (old == TCP_LISTEN)
				conn_accepted(ev, info, true);
			ring_submit(ev, sizeof(*ev));
		}
	}
	conn_reset(info);
	return 0;
}

/*
 * A child's deferred LISTEN -> SYN_RECV (SI_BIRTH_PENDING), sent at its next
 * transition with its final cookie and tuple, stamped with the time it was
 * born. Its own ring record, outside the stage: user space puts records in
 * time order in any case. Rare (one per accepted connection, on the kernels
 * that need it), so the verifier's extra walk is the only cost elsewhere.
 * Returns whether a record went out. The caller keeps that value alive
 * (barrier_var): with the value unused, clang drops the callee's return
 * value altogether, and R0 may then hold a stack pointer at the
 * subprogram's exit (it did after the --raddr CIDR loop), which the
 * verifier refuses.
 */
static __noinline int emit_birth(const struct sock *sk, const struct tt_sock *s,
				 const struct sock_info *info, __u64 born)
{
	struct tt_state_event *ev;

	if (!filter_pass(s, TCP_LISTEN, TCP_SYN_RECV))
		return 0;
	ev = ring_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	fill_header(&ev->hdr, TT_KIND_STATE, sizeof(*ev), born, sock_cookie(sk));
	ev->sk = *s;
	ev->old_state_ns = 0;
	ev->bytes_acked = 0;
	ev->bytes_received = 0;
	ev->snd_una = 0;
	ev->snd_nxt = 0;
	ev->rcv_nxt = 0;
	ev->isn_local = 0;
	ev->isn_remote = 0;
	ev->total_retrans = 0;
	ev->error = 0;
	ev->old_state = TCP_LISTEN;
	ev->new_state = TCP_SYN_RECV;
	ev->flags = (info->flags & TT_F_OWNER) | TT_F_PASSIVE;
	ev->detail = TT_DETAIL_NONE;
	ev->stored = 1;
	ev->_pad = 0;
	ring_submit(ev, sizeof(*ev));
	return 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_inet_sock_set_state, const struct sock *sk, const int oldstate,
	     const int newstate)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	struct tt_state_event *ev;
	struct tt_stage *stage;
	struct sock_info *info;
	__u32 mine = 0, slot;
	struct tt_sock s = {};
	__u8 old = oldstate, new = newstate;
	__u8 flags = 0, detail = TT_DETAIL_NONE;
	__u64 now, old_ns = 0;
	__u16 err = 0;
	bool create;

	if (!tp) /* not TCP, or not a full socket */
		return 0;
	if (!fill_tuple(&s, tcp_skc(tp)))
		return 0;
	stage = stage_get();
	if (cfg_batch && !stage)
		return 0; /* never: a per-CPU array's one entry */
	if (stage) /* before the clock; if the flush holds it, see !mine */
		stage_take(stage, STAGE_STATE);
	now = bpf_ktime_get_ns();
	current_task(&s.cpu_pid, s.cpu_comm);

	create = !cfg_lazy_storage || new == TCP_LISTEN;
	/*
	 * A socket without any BPF storage (sk_bpf_storage NULL: in lazy mode
	 * every client) skips the helper call: -12 ns/run in 3 interleaved
	 * pairs. The pointer is loaded through tp: through sk, a trusted
	 * pointer, 6.4+ verifiers search the kernel BTF for it on every path
	 * (see skc_plain()), which took 1.7 ms of verification here.
	 */
	if (create)
		info = bpf_sk_storage_get(&sock_infos, (void *)sk, NULL,
					  BPF_SK_STORAGE_GET_F_CREATE);
	else if (tp->inet_conn.icsk_inet.sk.sk_bpf_storage)
		info = sock_info_peek(sk);
	else
		info = NULL;
	/*
	 * A socket open before start, seen for the first time: its owner is
	 * in seed_owners. Not asked at a new life (old CLOSE: the owner is on
	 * the CPU). Asked in process context too, where take_owner() below
	 * has the last word: a socket without storage (history's clients) then
	 * gets storage, so that its whole path is kept in one place, and the
	 * entry goes either way instead of staying until exit.
	 */
	if (old != TCP_CLOSE && seed_wanted_for(info))
		info = seed_claim(sk, info);
	if (!info) {
		/*
		 * The kernel adds no storage to a socket going away (sk_refcnt
		 * already 0): first seen on its way into CLOSE, nothing is lost,
		 * there is no later state to time. Anything else is a real
		 * failure (memory), reported to the user.
		 */
		if (create && new != TCP_CLOSE)
			stat_inc(&stat_storage_fail);
	} else if (new == TCP_SYN_RECV && old == TCP_LISTEN) {
		/* A child accepted from a listener: its storage is a clone of
		 * the listener's (BPF_F_CLONE). Keep the owner, nothing else. */
		info->flags = (info->flags & TT_F_OWNER) | TT_F_PASSIVE;
		/*
		 * Kernels that set the child's state before its identity
		 * (6.1: inet_csk_clone_lock() moves it to SYN_RECV while it is
		 * still a copy of the listener, and only then gives it the
		 * request's cookie and the peer's address) report the
		 * listener's cookie and no remote end here. The birth is then
		 * told at the child's next transition, from storage, with the
		 * identity it has by then: one model on every kernel.
		 */
		info->si_flags = s.rport ? 0 : SI_BIRTH_PENDING;
		info->born_ts = now;
		conn_reset(info); /* keeps listener_cookie: the listener's */
	} else {
		if (new == TCP_SYN_SENT || new == TCP_LISTEN) {
			/* A new life: connect() or listen(), perhaps again. */
			info->flags = new == TCP_SYN_SENT ? TT_F_ACTIVE : 0;
			info->si_flags = 0;
			info->serve_abort = 0;
			info->born_ts = new == TCP_SYN_SENT ? now : 0;
			conn_reset(info);
			info->listener_cookie = 0;
		}
		if (info->state == old && info->state_ts) {
			old_ns = now - info->state_ts;
			flags |= TT_F_OLD_TS;
		}
	}

	if (info) {
		if (new != TCP_SYN_SENT)
			remember_lport(&s, info);
		if (in_owner_context(old, new))
			take_owner(&s, info);
		/*
		 * ISNs: at SYN_SENT -> * the SYN went out with seq ISN and
		 * snd_nxt = ISN + 1; once ESTABLISHED, rcv_nxt = peer ISN + 1
		 * (the handshake's ACK is processed, no data yet). A child
		 * leaves SYN_RECV with snd_una = ISN + 1 from its request sock.
		 */
		if (old == TCP_SYN_SENT && tp->snd_nxt) {
			info->isn_local = tp->snd_nxt - 1;
			info->flags |= TT_F_ISN_LOCAL;
		} else if (old == TCP_SYN_RECV && new == TCP_ESTABLISHED) {
			info->isn_local = tp->snd_una - 1;
			info->flags |= TT_F_ISN_LOCAL;
		}
		if ((old == TCP_SYN_SENT || old == TCP_SYN_RECV) && new == TCP_ESTABLISHED) {
			info->isn_remote = tp->rcv_nxt - 1;
			info->flags |= TT_F_ISN_REMOTE;
		}
	}

	if (new == TCP_CLOSE) {
		__u8 si = info ? info->si_flags : 0;

		err = sk->sk_err;
		if (si & SI_RST_RCVD) {
			detail = TT_DETAIL_RESET_RCVD;
		} else if (si & SI_RST_SENT) {
			detail = TT_DETAIL_RESET_SENT;
		} else if (err) {
			detail = TT_DETAIL_ERROR;
		} else if (old == TCP_CLOSING || (old == TCP_FIN_WAIT2 && sock_flag_done(sk))) {
			/*
			 * The peer's FIN is in (tcp_fin() set SOCK_DONE before
			 * it called tcp_time_wait(sk, TCP_TIME_WAIT, 0); CLOSING
			 * is only entered on it): a timewait socket (same cookie)
			 * replaced the full socket and lives on in TIME_WAIT
			 * without tracepoints. Report the connection's state,
			 * not the dying full socket's.
			 */
			new = TCP_TIME_WAIT;
			flags |= TT_F_INFERRED;
			detail = TT_DETAIL_TW;
		} else if (old == TCP_FIN_WAIT2) {
			/*
			 * No FIN from the peer yet: an orphan (closed by its
			 * owner) handed to a timewait socket in the FIN_WAIT2
			 * substate (tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)), which
			 * waits tcp_fin_timeout for the FIN. Not TIME_WAIT: ss
			 * shows FIN-WAIT-2. The kernel's CLOSE stays.
			 */
			detail = TT_DETAIL_ORPHAN_FIN_WAIT2;
		}
	}

	if (info) {
		info->state = new;
		info->state_ts = now;
		flags |= info->flags & TT_F_CONN_MASK;
	}
	if (sock_flag_dead(sk))
		flags |= TT_F_ORPHAN;

	if (cfg_aggregate && cfg_kernel_paths && info) {
		/* Aggregated: this run stages nothing. */
		if (stage && stage_mine(stage))
			stage_release(stage);
		return aggregate(sk, tp, info, &s, now, old, new, flags, detail, err);
	}

	copy_owner(&s, info, tp);
	if (!info && in_owner_context(old, new)) {
		/* No storage to remember it in, but the owner is on the CPU. */
		s.pid = s.cpu_pid;
		__builtin_memcpy(s.comm, s.cpu_comm, sizeof(s.comm));
		s.cgroup_id = current_cgroup_id();
		flags |= TT_F_OWNER;
	}
	if (info && (info->si_flags & SI_BIRTH_PENDING)) {
		if (new == TCP_SYN_RECV)
			goto out; /* its identity is not the child's yet */
		info->si_flags &= ~SI_BIRTH_PENDING;
		if (old == TCP_SYN_RECV) {
			int sent = emit_birth(sk, &s, info, now - old_ns);

			barrier_var(sent);
		}
	}
	if (!filter_pass(&s, old, new))
		goto out;
	if (cfg_serve) {
		serve_transition(info, old, new, flags, detail, err, old_ns, now);
		if (cfg_serve_no_records)
			goto out;
	}

	if (stage) {
		mine = stage_mine(stage);
		slot = stage_slot(stage, mine);
		if (slot > TT_STAGE_RECORDS) /* never: for the verifier */
			goto out;
		ev = &stage->rec[slot];
	} else {
		ev = ring_reserve(sizeof(*ev));
		if (!ev)
			return 0;
	}
	fill_header(&ev->hdr, TT_KIND_STATE, sizeof(*ev), now, sock_cookie(sk));
	ev->sk = s;
	ev->old_state_ns = old_ns;
	ev->bytes_acked = tp->bytes_acked;
	ev->bytes_received = tp->bytes_received;
	ev->snd_una = tp->snd_una;
	ev->snd_nxt = tp->snd_nxt;
	ev->rcv_nxt = tp->rcv_nxt;
	ev->isn_local = info ? info->isn_local : 0;
	ev->isn_remote = info ? info->isn_remote : 0;
	ev->total_retrans = tp->total_retrans;
	ev->error = err;
	ev->old_state = old;
	ev->new_state = new;
	ev->flags = flags;
	ev->detail = detail;
	ev->stored = info != NULL;
	ev->_pad = 0;
	if (!stage) {
		ring_submit(ev, sizeof(*ev));
		return 0;
	}
	if (!mine) {
		/* We interrupted the flush program: the spare slot, alone. */
		ring_output(ev, sizeof(*ev), 1);
		return 0;
	}
	stage->n = slot + 1;
	if (slot + 1 == TT_STAGE_RECORDS)
		stage_send(stage, TT_STAGE_RECORDS);
out:
	if (stage && stage_mine(stage))
		stage_release(stage);
	return 0;
}
