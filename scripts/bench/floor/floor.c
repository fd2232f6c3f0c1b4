// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// floor VARIANT SECONDS: loads floor.bpf.c's program with `variant`, drains
// the ring with libbpf (poll with a 50 ms timeout, then consume), prints
// "ready", and after SECONDS the number of failed reservations. The ring and
// the wake-up threshold are sized as tcptrail sizes them by default (4 MiB;
// a quarter of it split over the CPUs).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tcptrail/events.h" /* struct tt_cidr, in the skeleton's .rodata */
#include "floor.skel.h"

static int drop(void *ctx, void *data, size_t size) { return 0; }

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: floor VARIANT SECONDS\n");
		return 2;
	}
	struct floor_bpf *skel = floor_bpf__open();
	if (!skel)
		return 1;
	const unsigned ring_bytes = 4u << 20;
	const int cpus = libbpf_num_possible_cpus();
	skel->rodata->variant = (unsigned)atoi(argv[1]);
	skel->rodata->cfg_wakeup_cpu_bytes = ring_bytes / 4 / (cpus > 0 ? cpus : 1);
	if (bpf_map__set_max_entries(skel->maps.events, ring_bytes) ||
	    floor_bpf__load(skel) || floor_bpf__attach(skel)) {
		fprintf(stderr, "floor: load/attach failed\n");
		return 1;
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.events), drop, NULL, NULL);
	if (!rb)
		return 1;
	printf("ready\n");
	fflush(stdout);
	time_t end = time(NULL) + atoi(argv[2]);
	while (time(NULL) < end) {
		ring_buffer__poll(rb, 50);
		ring_buffer__consume(rb);
	}
	printf("ring_fail %llu\n", (unsigned long long)skel->bss->stat_lost);
	ring_buffer__free(rb);
	floor_bpf__destroy(skel);
	return 0;
}
