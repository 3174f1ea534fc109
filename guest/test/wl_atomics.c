// SPDX-License-Identifier: MIT
/*
 * atomics: every vCPU does `lock xadd` on shared counters, iters=K times
 * (default 100000); every counter and the total must come out exact.
 * Four counters share one cache line (the hardest case for the line's
 * owner to change hands), a fifth sits alone on its own line.
 *
 * hold=1 makes every vCPU wait half-way through its loop until the host
 * writes a non-zero word at the address the hold line prints: a test then
 * knows the guest is mid-run for as long as it likes (no timing).
 */
#include "guest/test/console.h"
#include "guest/test/guest.h"
#include "guest/test/io.h"

#define ATOMICS_DEFAULT_ITERS 100000
#define ATOMICS_SHARED 4

static struct {
	volatile uint64_t shared[ATOMICS_SHARED] __attribute__((aligned(64)));
	volatile uint64_t alone __attribute__((aligned(64)));
	/* Sum of the values xadd returned, per vCPU: checks the old values too. */
	uint64_t old_sum[GUEST_MAX_CPUS] __attribute__((aligned(64)));
} ctr;

static struct smp_barrier atomics_barrier;
static uint64_t atomics_iters, atomics_hold;
static uint32_t atomics_bad_args;
/* hold=1: the host writes it (non-zero) to let the vCPUs go on. */
static volatile uint64_t atomics_release;

static int atomics_run(const struct wl_ctx *ctx)
{
	uint64_t i, k, want, total = 0, sum = 0, olds = 0, n = ctx->ncpus;
	int j, bad = 0;

	if (ctx->cpu == 0) {
		atomics_iters = ATOMICS_DEFAULT_ITERS;
		atomics_hold = 0;
		if (args_get_u64(ctx->m->args, "iters", &atomics_iters) < 0)
			atomics_bad_args = 1;
		if (args_get_u64(ctx->m->args, "hold", &atomics_hold) < 0 || atomics_hold > 1)
			atomics_bad_args = 1;
	}
	smp_barrier_wait(&atomics_barrier, ctx->ncpus);
	if (atomics_bad_args) {
		if (ctx->cpu == 0)
			con_printf("atomics: FAIL: bad args '%s' (want iters=N, hold=0|1)\n",
				   ctx->m->args);
		return ctx->cpu == 0 ? GUEST_EXIT_USAGE : 0;
	}
	k = atomics_iters;
	for (i = 0; i < k; i++) {
		if (i == k / 2 && atomics_hold) {
			if (ctx->cpu == 0)
				con_printf("atomics: holding at iteration %lu: waiting for a "
					   "non-zero word at 0x%lx\n",
					   (unsigned long)i, (unsigned long)&atomics_release);
			while (!atomics_release)
				cpu_relax();
		}
		sum += xadd64(&ctr.shared[i % ATOMICS_SHARED], 1);
		xadd64(&ctr.alone, 2);
	}
	ctr.old_sum[ctx->cpu] = sum;
	smp_barrier_wait(&atomics_barrier, ctx->ncpus);
	if (ctx->cpu != 0)
		return 0;

	for (j = 0; j < ATOMICS_SHARED; j++) {
		/* i in [0, k) with i % 4 == j, from each vCPU */
		want = n * ((k + ATOMICS_SHARED - 1 - j) / ATOMICS_SHARED);
		if (ctr.shared[j] != want) {
			con_printf("atomics: FAIL: counter %d is %lu, expected %lu\n", j,
				   (unsigned long)ctr.shared[j], (unsigned long)want);
			bad = 1;
		}
		total += ctr.shared[j];
		/* Each counter's old values are 0 .. want-1, whoever got them. */
		olds += want ? want * (want - 1) / 2 : 0;
	}
	if (ctr.alone != 2 * n * k) {
		con_printf("atomics: FAIL: counter alone is %lu, expected %lu\n",
			   (unsigned long)ctr.alone, (unsigned long)(2 * n * k));
		bad = 1;
	}
	for (i = 0, sum = 0; i < n; i++)
		sum += ctr.old_sum[i];
	if (sum != olds) {
		con_printf("atomics: FAIL: xadd returned values sum to %lu, expected %lu\n",
			   (unsigned long)sum, (unsigned long)olds);
		bad = 1;
	}
	con_printf("atomics: %u vCPUs x %lu iterations: total %lu, expected %lu -> %s\n",
		   ctx->ncpus, (unsigned long)k, (unsigned long)total, (unsigned long)(n * k),
		   bad ? "BAD" : "ok");
	outl(PORT_RESULT, (uint32_t)total);
	return bad ? GUEST_EXIT_FAIL : 0;
}

const struct workload wl_atomics = { "atomics", true, atomics_run };
