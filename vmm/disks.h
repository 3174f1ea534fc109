/* SPDX-License-Identifier: MIT */
/* A --disk: virtio-blk behind a virtio-mmio window, DMA through mm pins. */
#ifndef FORKVM_VMM_DISKS_H
#define FORKVM_VMM_DISKS_H

#include <stddef.h>
#include <stdint.h>

struct machine;
struct machine_disk;

/**
 * disk_add() - a virtio-blk on @d's file at MMIO @base, interrupt @gsi, on
 * @m's MMIO bus and in its device list.  Return: 0 or -errno; @err names
 * the --disk.
 */
int disk_add(struct machine *m, const struct machine_disk *d, uint64_t base, unsigned int gsi,
	     char *err, size_t errlen) __attribute__((warn_unused_result));

struct device;
struct virtio_dev;

/**
 * disk_device_virtio() - the virtio-blk device behind @dev if @dev is a disk
 * of disk_add() (or a clone of one), else NULL (a snapshot reads its disk).
 */
struct virtio_dev *disk_device_virtio(const struct device *dev);

#endif /* FORKVM_VMM_DISKS_H */
