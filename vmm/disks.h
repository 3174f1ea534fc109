/* SPDX-License-Identifier: MIT */
/* A --disk: virtio-blk behind a virtio-mmio window, DMA through mm pins. */
#ifndef FORKVM_VMM_DISKS_H
#define FORKVM_VMM_DISKS_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"

struct machine_disk;
struct space;

/* What the machine keeps of a disk: an opaque handle and its MMIO region. */
struct disk_dev {
	void *obj;
	void (*destroy)(void *obj);
	void (*pause)(void *obj);
	void (*resume)(void *obj);
	struct bus_region region;
};

/**
 * disk_create() - a virtio-blk on @d's file at MMIO @base, interrupt @gsi.
 * Return: 0 or -errno; @err names the --disk.
 */
int disk_create(const struct machine_disk *d, uint64_t base, unsigned int gsi, struct space *space,
		const struct dev_host *host, struct disk_dev *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_DISKS_H */
