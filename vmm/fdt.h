/* SPDX-License-Identifier: MIT */
/* The machine description for the test guest (docs/boot-protocol.md "Device tree"). */
#ifndef FORKVM_VMM_FDT_H
#define FORKVM_VMM_FDT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/layout.h"

struct fdt_mmio_dev {
	uint64_t base;
	uint64_t size;
	uint32_t gsi;
};

struct fdt_machine {
	uint64_t mem_size;
	unsigned int ncpus;
	const char *workload;
	const char *args; /* may be NULL: an empty string */
	uint64_t free_start;
	uint64_t free_size;
	unsigned int nvirtio;
	struct fdt_mmio_dev virtio[LAYOUT_MAX_DISKS];
};

/**
 * fdt_build() - write the FDT of @m into @buf (at most @size bytes) with
 * libfdt's sequential-write API.  Return: 0 or -ENOSPC / -EINVAL.
 */
int fdt_build(const struct fdt_machine *m, void *buf, size_t size)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_FDT_H */
