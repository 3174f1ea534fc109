// SPDX-License-Identifier: MIT
/*
 * Question: what does cloning a guest space cost, against the host kernel's
 * fork() of a process with the same memory touched?  And does the cost follow
 * the touched pages rather than the guest size?
 *
 * Prints name: value lines; ratios < 1 mean forkvm is faster.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "mm/mm.h"

#define GUEST (512ULL << 20)

static void touch(uint8_t *p, uint64_t bytes)
{
	for (uint64_t o = 0; o < bytes; o += 4096)
		p[o] = (uint8_t)(o >> 12) | 1;
}

/* Host baseline: fork() of this process with @touched bytes of a 512 MiB
 * anonymous mapping written, timed in the parent. */
static double host_fork_us(uint64_t touched)
{
	uint8_t *m = mmap(NULL, GUEST, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double t0, t;
	pid_t pid;

	touch(m, touched);
	t0 = now_us();
	pid = fork();
	if (pid == 0)
		_exit(0);
	t = now_us() - t0;
	waitpid(pid, NULL, 0);
	munmap(m, GUEST);
	return t;
}

/* forkvm: space_fork() of a 512 MiB space with @touched bytes written.
 * @warm: the parent was forked before (its pages are write-protected already,
 * as for a template cloned again and again). */
static double space_fork_us(uint64_t touched, bool warm)
{
	struct space_range r = { 0, GUEST };
	struct pool *pool;
	struct space *s, *c;
	double t0, t;

	if (pool_create(NULL, &pool) || space_create(pool, &r, 1, &s)) {
		fprintf(stderr, "clone_vs_fork: cannot create a space\n");
		exit(1);
	}
	touch(space_hva(s, 0), touched);
	if (warm) {
		if (space_fork(s, &c))
			exit(1);
		space_destroy(c);
	}
	t0 = now_us();
	if (space_fork(s, &c)) {
		fprintf(stderr, "clone_vs_fork: space_fork failed\n");
		exit(1);
	}
	t = now_us() - t0;
	space_destroy(c);
	space_destroy(s);
	pool_destroy(pool);
	return t;
}

/*
 * Tearing down: destroy a clone that wrote every page of its own (so every
 * frame is freed), against the host's munmap() of as much touched memory.
 */
static void compare_destroy(void)
{
	struct space_range r = { 0, GUEST };
	int reps = bench_reps(5);
	double host[8], ours[8];

	for (int i = 0; i < reps; i++) {
		uint8_t *m =
		    mmap(NULL, GUEST, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct pool *pool;
		struct space *s, *c;
		double t0;

		touch(m, GUEST);
		t0 = now_us();
		munmap(m, GUEST);
		host[i] = now_us() - t0;

		if (pool_create(NULL, &pool) || space_create(pool, &r, 1, &s) ||
		    space_fork(s, &c)) {
			fprintf(stderr, "clone_vs_fork: cannot create a space\n");
			exit(1);
		}
		memset(space_hva(c, 0), 3, GUEST);
		t0 = now_us();
		space_destroy(c);
		ours[i] = now_us() - t0;
		space_destroy(s);
		pool_destroy(pool);
	}
	double h = median(host, reps), o = median(ours, reps);

	printf("clone_vs_fork.destroy.host_munmap_us: %.0f\n", h);
	printf("clone_vs_fork.destroy.space_destroy_us: %.0f\n", o);
	printf("clone_vs_fork.destroy.ratio: %.2f\n", o / h);
}

static void compare(const char *name, uint64_t touched, double *ours_out)
{
	int reps = bench_reps(7);
	double host[16], ours[16], warm[16];

	for (int i = 0; i < reps; i++) {
		host[i] = host_fork_us(touched);
		ours[i] = space_fork_us(touched, false);
		warm[i] = space_fork_us(touched, true);
	}
	double h = median(host, reps), o = median(ours, reps), w = median(warm, reps);

	printf("clone_vs_fork.%s.host_fork_us: %.0f\n", name, h);
	printf("clone_vs_fork.%s.clone_us: %.0f\n", name, o);
	printf("clone_vs_fork.%s.warm_clone_us: %.0f\n", name, w);
	printf("clone_vs_fork.%s.ratio: %.2f\n", name, o / h);
	printf("clone_vs_fork.%s.warm_ratio: %.2f\n", name, w / h);
	*ours_out = o;
}

int main(void)
{
	double all, eighth;

	printf("clone_vs_fork: 512 MiB, median of %d runs\n", bench_reps(7));
	compare("all", GUEST, &all);
	compare("eighth", GUEST / 8, &eighth);
	printf("clone_vs_fork.eighth_vs_all.ratio: %.2f\n", eighth / all);
	compare_destroy();
	return 0;
}
