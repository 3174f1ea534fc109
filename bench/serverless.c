// SPDX-License-Identifier: MIT
/*
 * Question: for the serverless case end to end, how does cloning a warm
 * template compare with the host kernel's fork() of a process of the same
 * size doing the same work?
 *
 * A template of 256 MiB has run a warm-up (every page written), and is then
 * forked 100 times in a row; each child writes a fixed working set of 2 MiB
 * (512 pages) spread like a heap (runs of 1-16 pages at scattered places) and
 * exits.  forkvm: space_fork() of the template, the child's writes through its
 * window (a vCPU's view), space_destroy().  Host: fork(2) of a process with
 * 256 MiB of anonymous memory written, the child writes the same pages and
 * _exit()s, the parent waits.  mm only, no KVM.
 *
 * Reported, forkvm against host (ratios < 1 mean forkvm is faster, except
 * clones per second, where > 1 is):
 *  - clones per second over the whole loop (fork, child's work, teardown);
 *  - p50/p99 of fork-to-child-running: from the fork call to the child's
 *    first instruction (host: the child's clock; forkvm: space_fork()
 *    returned, the child's window is ready for a vCPU);
 *  - p50 of the child's total time: from the fork call to its last write;
 *  - faults per child (host: the child's minor faults; forkvm: write faults
 *    the fault service served).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "mm/mm.h"

#define GUEST (256ULL << 20)
#define PAGES (GUEST >> 12)
#define CLONES 100
#define SET_PAGES 512 /* 2 MiB */

struct result {
	double total_us; /* the whole loop */
	double running[CLONES]; /* fork call -> child running */
	double child[CLONES]; /* fork call -> child's last write */
	double faults; /* per child */
};

/* The working set: runs of 1-16 pages at scattered places, as a heap's
 * live objects after some allocations and frees.  The same for every child. */
static unsigned int working_set(uint64_t *pages)
{
	unsigned int seed = 42, n = 0;

	while (n < SET_PAGES) {
		uint64_t at = rand_r(&seed) % (PAGES - 16);
		unsigned int len = 1 + rand_r(&seed) % 16;

		for (unsigned int i = 0; i < len && n < SET_PAGES; i++)
			pages[n++] = at + i;
	}
	return n;
}

static void write_set(uint8_t *m, const uint64_t *set, unsigned int n, uint8_t v)
{
	for (unsigned int i = 0; i < n; i++)
		m[(set[i] << 12) + 64] = v;
}

/* Host: fork(2) of this process with a warm 256 MiB anonymous mapping. */
static void run_host(const uint64_t *set, unsigned int nset, struct result *res)
{
	uint8_t *m = mmap(NULL, GUEST, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* What each child reports: its start, its end, its minor faults. */
	double *shared =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double faults = 0, t_start;

	if (m == MAP_FAILED || shared == MAP_FAILED) {
		fprintf(stderr, "serverless: mmap failed\n");
		exit(1);
	}
	memset(m, 0x5a, GUEST);
	t_start = now_us();
	for (int i = 0; i < CLONES; i++) {
		double t0 = now_us();
		pid_t pid = fork();

		if (pid == 0) {
			struct rusage ru0, ru1;

			shared[0] = now_us();
			getrusage(RUSAGE_SELF, &ru0);
			write_set(m, set, nset, (uint8_t)i);
			getrusage(RUSAGE_SELF, &ru1);
			shared[1] = now_us();
			shared[2] = ru1.ru_minflt - ru0.ru_minflt;
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, NULL, 0) != pid) {
			fprintf(stderr, "serverless: fork failed\n");
			exit(1);
		}
		res->running[i] = shared[0] - t0;
		res->child[i] = shared[1] - t0;
		faults += shared[2];
	}
	res->total_us = now_us() - t_start;
	res->faults = faults / CLONES;
	munmap(shared, 4096);
	munmap(m, GUEST);
}

/* forkvm: space_fork() of a warm 256 MiB template. */
static void run_forkvm(const uint64_t *set, unsigned int nset, struct result *res)
{
	struct space_range r = { 0, GUEST };
	struct pool_stats st0, st1;
	struct pool *pool;
	struct space *t;
	double t_start;

	if (pool_create(NULL, &pool) || space_create(pool, &r, 1, &t)) {
		fprintf(stderr, "serverless: cannot create the template\n");
		exit(1);
	}
	memset(space_hva(t, 0), 0x5a, GUEST);
	pool_get_stats(pool, &st0);
	t_start = now_us();
	for (int i = 0; i < CLONES; i++) {
		double t0 = now_us();
		struct space *c;

		if (space_fork(t, &c)) {
			fprintf(stderr, "serverless: clone %d failed\n", i);
			exit(1);
		}
		res->running[i] = now_us() - t0;
		write_set(space_hva(c, 0), set, nset, (uint8_t)i);
		res->child[i] = now_us() - t0;
		space_destroy(c);
	}
	res->total_us = now_us() - t_start;
	pool_get_stats(pool, &st1);
	res->faults = (double)(st1.faults - st0.faults) / CLONES;
	space_destroy(t);
	pool_destroy(pool);
}

/* The @pct percentile of @n samples (sorts them). */
static double percentile(double *v, int n, int pct)
{
	int i = (n * pct + 99) / 100 - 1;

	median(v, n); /* sorts */
	return v[i < 0 ? 0 : i];
}

int main(void)
{
	static struct result host, ours;
	uint64_t set[SET_PAGES];
	unsigned int nset = working_set(set);
	double h, o;

	printf("serverless: 256 MiB warm template, %d clones each writing %u pages (2 MiB)\n",
	       CLONES, nset);
	run_host(set, nset, &host);
	run_forkvm(set, nset, &ours);

	h = CLONES / (host.total_us / 1e6);
	o = CLONES / (ours.total_us / 1e6);
	printf("serverless.host_clones_per_s: %.0f\n", h);
	printf("serverless.clones_per_s: %.0f\n", o);
	printf("serverless.clones_per_s.ratio: %.2f\n", o / h);

	h = percentile(host.running, CLONES, 50);
	o = percentile(ours.running, CLONES, 50);
	printf("serverless.host_running_p50_us: %.0f\n", h);
	printf("serverless.running_p50_us: %.0f\n", o);
	printf("serverless.running_p50.ratio: %.2f\n", o / h);
	h = percentile(host.running, CLONES, 99);
	o = percentile(ours.running, CLONES, 99);
	printf("serverless.host_running_p99_us: %.0f\n", h);
	printf("serverless.running_p99_us: %.0f\n", o);
	printf("serverless.running_p99.ratio: %.2f\n", o / h);

	h = percentile(host.child, CLONES, 50);
	o = percentile(ours.child, CLONES, 50);
	printf("serverless.host_child_p50_us: %.0f\n", h);
	printf("serverless.child_p50_us: %.0f\n", o);
	printf("serverless.child_p50.ratio: %.2f\n", o / h);

	printf("serverless.host_faults_per_child: %.0f\n", host.faults);
	printf("serverless.faults_per_child: %.0f\n", ours.faults);
	printf("serverless.faults_per_child.ratio: %.2f\n", ours.faults / host.faults);
	return 0;
}
