// SPDX-License-Identifier: MIT
/*
 * The memory manager on its own, no KVM: a 256 MiB guest space with every
 * page written (a warm template), forked 100 times; each clone writes a few
 * pages; all 100 stay alive.  Shows what is shared, copied and reused, and
 * the family's memory against 100 full copies.  Checks every clone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "mm/mm.h"

#define GUEST (256ULL << 20)
#define PAGES (GUEST >> 12)
#define CLONES 100
#define WRITES 24 /* pages each clone writes: 8 scattered, 16 in a row */

static uint64_t page_of_write(unsigned int clone, unsigned int k)
{
	unsigned int seed = clone * 7919 + k;

	if (k < 8)
		return rand_r(&seed) % PAGES;
	return (clone * 613 + 4096) % (PAGES - 16) + (k - 8);
}

int main(void)
{
	struct pool_stats st, before;
	struct space_range r = { 0, GUEST };
	struct space *t, *c[CLONES];
	struct space_stats ss;
	struct pool *pool;
	double t0, times[CLONES];
	uint64_t vmas = 0;
	unsigned int bad = 0;

	if (pool_create(NULL, &pool) || space_create(pool, &r, 1, &t)) {
		fprintf(stderr, "mm_demo: cannot create a guest space (userfaultfd write-protect "
				"on shared memory needs Linux >= 5.19)\n");
		return 1;
	}
	printf("A 256 MiB guest space, every page written (a warm template).\n");
	for (uint64_t p = 0; p < PAGES; p++)
		memset((uint8_t *)space_hva(t, p << 12), (int)(p & 0x7f), 4096);

	printf("Forking it %d times; each clone writes %d pages through its window.\n", CLONES,
	       WRITES);
	space_get_stats(t, &ss); /* adopts the pages written without a fault */
	pool_get_stats(pool, &before);
	for (int i = 0; i < CLONES; i++) {
		t0 = now_us();
		if (space_fork(t, &c[i])) {
			fprintf(stderr, "mm_demo: fork %d failed\n", i);
			return 1;
		}
		times[i] = now_us() - t0;
		for (unsigned int k = 0; k < WRITES; k++)
			*(uint32_t *)space_hva(c[i], page_of_write(i, k) << 12) = 0xc0de0000 + i;
	}

	/* Every clone sees its own writes and the template everywhere else. */
	for (int i = 0; i < CLONES; i++) {
		for (unsigned int k = 0; k < WRITES; k++)
			bad += *(uint32_t *)space_hva(c[i], page_of_write(i, k) << 12) !=
			       0xc0de0000u + i;
		for (uint64_t p = 1; p < PAGES; p += 997) {
			uint8_t *b = space_hva(c[i], (p << 12) + 100);
			bool written = false;

			for (unsigned int k = 0; k < WRITES; k++)
				written |= page_of_write(i, k) == p;
			bad += !written && *b != (uint8_t)(p & 0x7f);
		}
		space_get_stats(c[i], &ss);
		vmas += ss.vmas;
	}
	for (uint64_t p = 0; p < PAGES; p += 61)
		bad += *(uint8_t *)space_hva(t, (p << 12) + 5) != (uint8_t)(p & 0x7f);
	pool_get_stats(pool, &st);

	double mib = st.live_frames * 4096.0 / (1 << 20);
	printf("\n  %-34s %12s\n", "", "value");
	printf("  %-34s %12d\n", "live guests (template + clones)", CLONES + 1);
	printf("  %-34s %9.2f ms\n", "median clone time", median(times, CLONES) / 1000);
	printf("  %-34s %12lu\n", "frames of the template, shared",
	       (unsigned long)before.live_frames);
	printf("  %-34s %12lu\n", "frames copied on write",
	       (unsigned long)(st.copies - before.copies));
	printf("  %-34s %12lu\n", "frames reused in place",
	       (unsigned long)(st.reuses - before.reuses));
	printf("  %-34s %12lu\n", "write faults served",
	       (unsigned long)(st.faults - before.faults));
	printf("  %-34s %12lu\n", "host VMAs of the 100 clones", (unsigned long)vmas);
	printf("  %-34s %9.0f MiB\n", "family memory (live frames)", mib);
	printf("  %-34s %9.0f MiB\n", "101 full copies would take", (CLONES + 1) * 256.0);
	printf("  %-34s %11.1f%%\n", "ratio", 100.0 * mib / ((CLONES + 1) * 256.0));
	printf("mm_demo.memory_vs_copies.ratio: %.4f\n", mib / ((CLONES + 1) * 256.0));
	printf("\n%s: every clone has its own writes and the template's pages elsewhere\n",
	       bad ? "FAILED" : "verified");

	for (int i = 0; i < CLONES; i++)
		space_destroy(c[i]);
	space_destroy(t);
	pool_get_stats(pool, &st);
	pool_destroy(pool);
	if (st.live_frames) {
		printf("FAILED: %lu frames leaked\n", (unsigned long)st.live_frames);
		return 1;
	}
	return bad ? 1 : 0;
}
