// SPDX-License-Identifier: MIT
/*
 * memcheck: write mem_word() over all free memory, verify it, print a
 * checksum and write it to the result port.  passes=N (default 1) repeats
 * with a different pattern per pass, so a test can pause, snapshot or
 * clone the VM in the middle.  With several vCPUs, each writes its own
 * slice and then verifies its neighbour's (so a write must be visible
 * across vCPUs, not just in one vCPU's cache or TLB).
 *
 * The checksum is the 64-bit sum of every word read back over all passes,
 * folded to 32 bits: deterministic for a given free range and pass count,
 * whatever the number of vCPUs.
 *
 * hold=P (1..passes) makes every vCPU wait after pass P until the host
 * writes a non-zero word at the address the hold line prints: a test then
 * knows the guest is mid-run for as long as it likes (no timing).
 */
#include "guest/test/console.h"
#include "guest/test/guest.h"
#include "guest/test/io.h"
#include "guest/test/pattern.h"

#define PAGE_SIZE 4096ULL

static struct smp_barrier mc_barrier;
static uint64_t mc_passes, mc_hold;
static uint32_t mc_bad_args;
/* hold=P: the host writes it (non-zero) to let the vCPUs go on. */
static volatile uint64_t mc_release;
static uint64_t mc_sum[GUEST_MAX_CPUS] __attribute__((aligned(64)));

/* First mismatch anywhere (the vCPU that finds one first wins). */
static uint32_t mc_failed;
static uint64_t mc_fail_addr, mc_fail_got, mc_fail_want;

static void slice(const struct machine *m, uint32_t i, uint32_t n, uint64_t *lo, uint64_t *hi)
{
	uint64_t start = (m->free_start + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	uint64_t end = (m->free_start + m->free_size) & ~(PAGE_SIZE - 1);
	uint64_t pages = end > start ? (end - start) / PAGE_SIZE : 0;

	*lo = start + pages * i / n * PAGE_SIZE;
	*hi = start + pages * (i + 1) / n * PAGE_SIZE;
}

static void fill(uint64_t lo, uint64_t hi, uint32_t pass)
{
	uint64_t a;

	for (a = lo; a < hi; a += 8)
		*(volatile uint64_t *)a = mem_word(a, pass);
}

static uint64_t verify(uint64_t lo, uint64_t hi, uint32_t pass)
{
	uint64_t a, w, sum = 0;

	for (a = lo; a < hi; a += 8) {
		w = *(volatile uint64_t *)a;
		if (w != mem_word(a, pass) &&
		    !__atomic_exchange_n(&mc_failed, 1, __ATOMIC_ACQ_REL)) {
			mc_fail_addr = a;
			mc_fail_got = w;
			mc_fail_want = mem_word(a, pass);
		}
		sum += w;
	}
	return sum;
}

static int memcheck_run(const struct wl_ctx *ctx)
{
	uint64_t lo, hi, pass, sum = 0;
	uint32_t n = ctx->ncpus, i;

	if (ctx->cpu == 0) {
		mc_passes = 1;
		mc_hold = 0;
		if (args_get_u64(ctx->m->args, "passes", &mc_passes) < 0 || !mc_passes ||
		    mc_passes > 255)
			mc_bad_args = 1;
		if (args_get_u64(ctx->m->args, "hold", &mc_hold) < 0 || mc_hold > mc_passes)
			mc_bad_args = 1;
	}
	smp_barrier_wait(&mc_barrier, n);
	if (mc_bad_args) {
		if (ctx->cpu == 0)
			con_printf("memcheck: FAIL: bad args '%s' (want passes=1..255, "
				   "hold=0..passes)\n",
				   ctx->m->args);
		return GUEST_EXIT_USAGE;
	}

	for (pass = 0; pass < mc_passes; pass++) {
		slice(ctx->m, ctx->cpu, n, &lo, &hi);
		fill(lo, hi, (uint32_t)pass);
		/* Every slice written before anyone verifies a neighbour's. */
		smp_barrier_wait(&mc_barrier, n);
		slice(ctx->m, (ctx->cpu + 1) % n, n, &lo, &hi);
		sum += verify(lo, hi, (uint32_t)pass);
		smp_barrier_wait(&mc_barrier, n);
		if (ctx->cpu == 0 && mc_passes > 1)
			con_printf("memcheck: pass %lu/%lu %s\n", (unsigned long)pass + 1,
				   (unsigned long)mc_passes, READ_ONCE(mc_failed) ? "BAD" : "ok");
		if (READ_ONCE(mc_failed))
			break;
		if (pass + 1 == mc_hold) {
			if (ctx->cpu == 0)
				con_printf(
				    "memcheck: holding after pass %lu: waiting for a non-zero "
				    "word at 0x%lx\n",
				    (unsigned long)pass + 1, (unsigned long)&mc_release);
			while (!mc_release)
				cpu_relax();
		}
	}
	mc_sum[ctx->cpu] = sum;
	smp_barrier_wait(&mc_barrier, n);
	if (ctx->cpu != 0)
		return 0;

	if (mc_failed) {
		con_printf("memcheck: FAIL at 0x%lx: got 0x%lx, expected 0x%lx\n",
			   (unsigned long)mc_fail_addr, (unsigned long)mc_fail_got,
			   (unsigned long)mc_fail_want);
		return GUEST_EXIT_FAIL;
	}
	for (i = 1, sum = mc_sum[0]; i < n; i++)
		sum += mc_sum[i];
	slice(ctx->m, 0, 1, &lo, &hi);
	outl(PORT_RESULT, fold32(sum));
	con_printf("memcheck: %lu MiB ok checksum 0x%08x\n", (unsigned long)((hi - lo) >> 20),
		   fold32(sum));
	return 0;
}

const struct workload wl_memcheck = { "memcheck", true, memcheck_run };
