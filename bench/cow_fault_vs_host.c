// SPDX-License-Identifier: MIT
/*
 * Question: what does one copy-on-write fault cost through forkvm's fault
 * service (userfaultfd write-protect, a handler thread, copy + remap + wake),
 * against the host kernel's own COW fault after fork()?  And does copying a
 * block of neighbouring shared pages on one fault (cow_batch) pay?
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "mm/mm.h"

#define BYTES (64ULL << 20)
#define PAGES (BYTES >> 12)

/* Host: a child holds the pages; the parent writes one byte per page. */
static double host_cow_us_per_page(void)
{
	uint8_t *m = mmap(NULL, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int pipefd[2];
	double t0, t;
	pid_t pid;
	char c;

	memset(m, 1, BYTES);
	if (pipe(pipefd) < 0)
		exit(1);
	pid = fork();
	if (pid == 0) {
		close(pipefd[1]);
		if (read(pipefd[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	t0 = now_us();
	for (uint64_t p = 0; p < PAGES; p++)
		m[p << 12] = 2;
	t = (now_us() - t0) / PAGES;
	close(pipefd[1]);
	waitpid(pid, NULL, 0);
	munmap(m, BYTES);
	return t;
}

/* forkvm: fork a space, then write one byte per page of the parent, in
 * order (@stride 1) or one page in @stride (isolated faults). */
static double space_cow_us_per_fault(unsigned int batch, unsigned int stride, double *per_page)
{
	struct pool_config cfg = { .cow_batch = batch };
	struct space_range r = { 0, BYTES };
	struct pool_stats st;
	struct pool *pool;
	struct space *s, *c;
	uint8_t *w;
	double t0, t;

	if (pool_create(&cfg, &pool) || space_create(pool, &r, 1, &s)) {
		fprintf(stderr, "cow_fault_vs_host: cannot create a space\n");
		exit(1);
	}
	w = space_hva(s, 0);
	memset(w, 1, BYTES);
	if (space_fork(s, &c))
		exit(1);
	t0 = now_us();
	for (uint64_t p = 0; p < PAGES; p += stride)
		w[p << 12] = 2;
	t = now_us() - t0;
	pool_get_stats(pool, &st);
	*per_page = t / (PAGES / stride);
	space_destroy(c);
	space_destroy(s);
	pool_destroy(pool);
	return t / st.faults;
}

int main(void)
{
	int reps = bench_reps(5);
	double host[8], one[8], seq[8], b8[8], b16[8], pp;

	for (int i = 0; i < reps; i++) {
		host[i] = host_cow_us_per_page();
		one[i] = space_cow_us_per_fault(1, 16, &pp);
		space_cow_us_per_fault(1, 1, &seq[i]);
		space_cow_us_per_fault(8, 1, &b8[i]);
		space_cow_us_per_fault(16, 1, &b16[i]);
	}
	double h = median(host, reps), o = median(one, reps), s1 = median(seq, reps),
	       s8 = median(b8, reps), s16 = median(b16, reps);

	printf("cow_fault_vs_host: 64 MiB, median of %d runs\n", reps);
	printf("cow_fault_vs_host.host_us: %.2f\n", h);
	printf("cow_fault_vs_host.fault_us: %.2f\n", o);
	printf("cow_fault_vs_host.ratio: %.2f\n", o / h);
	printf("cow_fault_vs_host.seq_batch1_us_per_page: %.2f\n", s1);
	printf("cow_fault_vs_host.seq_batch8_us_per_page: %.2f\n", s8);
	printf("cow_fault_vs_host.seq_batch16_us_per_page: %.2f\n", s16);
	printf("cow_fault_vs_host.batch8.ratio: %.2f\n", s8 / h);
	printf("cow_fault_vs_host.batch16.ratio: %.2f\n", s16 / h);
	return 0;
}
