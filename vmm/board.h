/* SPDX-License-Identifier: MIT */
/*
 * A board: what one kind of guest needs from the machine beyond its core
 * (KVM VM, vCPUs, memory, devices, clone): its image and tables in memory,
 * its vCPUs' entry state, and what a paused vCPU of it must look like.  The
 * test guest (vmm/board_test.c: ELF, FDT, CPL-3 entry) and Linux
 * (vmm/linux/board.c: bzImage, ACPI, 64-bit entry) are the two boards; the
 * machine picks one from its configuration and calls it through this table.
 */
#ifndef FORKVM_VMM_BOARD_H
#define FORKVM_VMM_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/layout.h"

struct machine;
struct machine_config;
struct space_range;
struct vcpu;
struct vcpu_state;

#define BOARD_MAX_RANGES 2

struct board_ops {
	const char *name; /* "test", "linux": for messages */
	uint64_t mem_max; /* the largest RAM this guest takes */
	/* Optional: the RAM ranges (at most BOARD_MAX_RANGES) of a guest of
	 * @mem_size bytes; their number.  NULL: one range at GPA 0. */
	unsigned int (*ram_ranges)(uint64_t mem_size, struct space_range *out);
	/* Put the guest into @m's memory: image, tables, device description.
	 * Called once the machine's devices exist (their windows are fixed). */
	int (*load)(struct machine *m, const struct machine_config *cfg, char *err, size_t errlen);
	/* The entry state of vCPU @v (all of them, the BSP first). */
	int (*setup_vcpu)(struct machine *m, struct vcpu *v, char *err, size_t errlen);
	/* A paused vCPU's state is one this guest can be in.  0 or -EPROTO. */
	int (*check_state)(const struct vcpu_state *st, char *err, size_t errlen);
	/* Optional: @child, a clone restored but not yet started, is told it
	 * is a new machine (Linux: a new VM generation ID). */
	int (*cloned)(struct machine *child, char *err, size_t errlen);
};

extern const struct board_ops board_test_ops;
extern const struct board_ops board_linux_ops;

/* Where disk @i's virtio-mmio window and interrupt are, on every board. */
static inline uint64_t board_virtio_base(unsigned int i)
{
	return LAYOUT_VIRTIO_BASE + (uint64_t)i * LAYOUT_VIRTIO_STRIDE;
}

static inline unsigned int board_virtio_gsi(unsigned int i)
{
	return LAYOUT_VIRTIO_GSI0 + i;
}

#endif /* FORKVM_VMM_BOARD_H */
