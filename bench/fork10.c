// SPDX-License-Identifier: MIT
/*
 * Question: does one process stay inside its mapping budget, and how much
 * memory does the family use, when ten clones of a 512 MiB guest each write
 * 5% of their pages at random?  Baseline: ten full copies (10 x 512 MiB) and
 * the kernel's vm.max_map_count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "mm/mm.h"

#define GUEST (512ULL << 20)
#define PAGES (GUEST >> 12)
#define CLONES 10

static uint64_t process_vmas(void)
{
	char line[512];
	uint64_t n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f))
		n++;
	if (f)
		fclose(f);
	return n;
}

static long max_map_count(void)
{
	long v = 65530;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = 65530;
		fclose(f);
	}
	return v;
}

/* @name NULL: the default configuration, under the names scripts read. */
static void run(unsigned int batch, const char *name)
{
	struct pool_config cfg = { .cow_batch = batch };
	struct space_range r = { 0, GUEST };
	struct space *t, *c[CLONES];
	struct pool_stats st;
	struct pool *pool;
	uint64_t vmas0;
	double t0, t1;
	char pfx[64];

	if (pool_create(&cfg, &pool) || space_create(pool, &r, 1, &t)) {
		fprintf(stderr, "fork10: cannot create the template\n");
		exit(1);
	}
	memset(space_hva(t, 0), 0x5a, GUEST);
	vmas0 = process_vmas();
	t0 = now_us();
	for (int i = 0; i < CLONES; i++) {
		unsigned int seed = i + 1;
		uint8_t *w;

		if (space_fork(t, &c[i])) {
			fprintf(stderr, "fork10: clone %d failed\n", i);
			exit(1);
		}
		w = space_hva(c[i], 0);
		for (uint64_t k = 0; k < PAGES / 20; k++)
			w[(uint64_t)(rand_r(&seed) % PAGES) << 12] = (uint8_t)i;
	}
	t1 = now_us();
	pool_get_stats(pool, &st);

	snprintf(pfx, sizeof(pfx), name ? "fork10.batch%s" : "fork10", name);
	printf("%s.vmas: %lu\n", pfx, process_vmas() - vmas0);
	printf("%s.vmas_vs_max_map_count.ratio: %.2f\n", pfx,
	       (double)(process_vmas() - vmas0) / max_map_count());
	printf("%s.pool_mib: %.0f\n", pfx, st.live_frames * 4096.0 / (1 << 20));
	printf("%s.pool_vs_copies.ratio: %.3f\n", pfx,
	       st.live_frames * 4096.0 / (CLONES * (double)GUEST));
	printf("%s.faults: %lu\n", pfx, st.faults);
	printf("%s.ms: %.0f\n", pfx, (t1 - t0) / 1000);
	for (int i = 0; i < CLONES; i++)
		space_destroy(c[i]);
	space_destroy(t);
	pool_destroy(pool);
}

int main(int argc, char **argv)
{
	long limit = max_map_count();

	printf("fork10: 512 MiB template, %d clones writing 5%% of pages at random\n", CLONES);
	printf("fork10.max_map_count: %ld\n", limit);
	printf("fork10.full_copies_mib: %llu\n", CLONES * (GUEST >> 20));
	run(0, NULL);
	/* Other batch sizes to compare: fork10 8 1 */
	for (int i = 1; i < argc; i++)
		run(atoi(argv[i]), argv[i]);
	return 0;
}
