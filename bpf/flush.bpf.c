// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Batched mode: sends the state records staged on this CPU, then a
 * tt_flush_event marking how far this CPU's records are complete. Never
 * attached: user space runs it on each CPU in turn (BPF_PROG_TEST_RUN with
 * BPF_F_TEST_RUN_ON_CPU, an IPI to the other CPUs) at every poll.
 *
 * Returns 1 when it marked, 0 when the stage was busy (it interrupted the
 * state program: try again) or the ring was full.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "sock.bpf.h"

SEC("raw_tp")
int flush_stage(void *ctx)
{
	struct tt_flush_event *mark;
	struct tt_stage *st;
	__u32 zero = 0, n;
	__u64 ts;

	st = bpf_map_lookup_elem(&stages, &zero);
	if (!st || !stage_take(st, STAGE_FLUSH))
		return 0;
	n = st->n;
	stage_send(st, n);
	/*
	 * The clock after the records went out and before the mark is
	 * reserved: a state run that interrupts us from here on takes a later
	 * time, whichever side of the mark its record lands.
	 */
	ts = bpf_ktime_get_ns();
	mark = bpf_ringbuf_reserve(&events, sizeof(*mark), 0);
	if (mark) {
		fill_header(&mark->hdr, TT_KIND_FLUSH, sizeof(*mark), ts, 0);
		mark->records = n;
		mark->_pad = 0;
		bpf_ringbuf_submit(mark, BPF_RB_NO_WAKEUP);
	}
	stage_release(st);
	return mark != NULL;
}
