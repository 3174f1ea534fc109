/* SPDX-License-Identifier: MIT */
/*
 * Guest-wide constants (also included by crt0.S: #defines only above the
 * __ASSEMBLER__ guard) and the workload interface.
 */
#ifndef FORKVM_GUEST_TEST_GUEST_H
#define FORKVM_GUEST_TEST_GUEST_H

#define GUEST_MAX_CPUS 64
#define GUEST_STACK_SHIFT 14 /* 16 KiB of stack per vCPU */
#define GUEST_STACK_SIZE (1 << GUEST_STACK_SHIFT)

/* Exit codes other than a workload's own 0 (ok) / 1 (check failed). */
#define GUEST_EXIT_FAIL 1
#define GUEST_EXIT_USAGE 2 /* unknown workload or bad forkvm,args */
#define GUEST_EXIT_NODEV 3 /* the workload's device is missing or refused to start */
#define GUEST_EXIT_BADFDT 4 /* the device tree is unusable or breaks the boot protocol */
#define GUEST_EXIT_BADCPU 5 /* RSI/RDX out of range */
/* dmastress: a fork it was asked for was not made (FORK_FAILED, or nothing in flight) */
#define GUEST_EXIT_NOFORK 6

#ifndef __ASSEMBLER__
#include <stdbool.h>
#include <stdint.h>

#include "guest/test/machine.h"

struct wl_ctx {
	const struct machine *m;
	uint32_t cpu; /* this vCPU's index */
	uint32_t ncpus; /* vCPUs taking part (all of them, for SMP workloads) */
};

struct workload {
	const char *name;
	/* true: every vCPU calls run(); false: only vCPU 0, the others wait. */
	bool smp;
	/* Return: the exit code (only vCPU 0's is used). */
	int (*run)(const struct wl_ctx *ctx);
};

extern const struct workload wl_hello, wl_memcheck, wl_atomics, wl_blkread, wl_blkwrite,
    wl_badvirtio, wl_dmastress;

/* The first byte after the image (linker script); free memory must start at or above it. */
extern char __image_end[];

/* A reusable barrier for the vCPUs of an SMP workload. */
struct smp_barrier {
	uint32_t count;
	uint32_t gen;
};

void smp_barrier_wait(struct smp_barrier *b, uint32_t n);

#endif /* __ASSEMBLER__ */
#endif /* FORKVM_GUEST_TEST_GUEST_H */
