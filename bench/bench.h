/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the bench programs (header-only). */
#ifndef FORKVM_BENCH_BENCH_H
#define FORKVM_BENCH_BENCH_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static inline double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median of @n samples (sorts them). */
static inline double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Environment override for a count, for quick runs: FORKVM_BENCH_QUICK=1. */
static inline int bench_reps(int full)
{
	const char *q = getenv("FORKVM_BENCH_QUICK");

	return q && *q == '1' ? (full > 3 ? 3 : full) : full;
}

#endif /* FORKVM_BENCH_BENCH_H */
