/* SPDX-License-Identifier: MIT */
/* virtio-mmio transport, version 2 (virtio 1.x "modern" layout). */
#ifndef FORKVM_DEVICES_VIRTIO_MMIO_H
#define FORKVM_DEVICES_VIRTIO_MMIO_H

#include "devices/bus.h"

struct virtio_dev;
struct virtio_mmio;

#define VIRTIO_MMIO_SIZE 0x1000

/**
 * virtio_mmio_create() - put @dev behind an MMIO window at @base.
 * Queue notifications arrive through an ioeventfd registered with @host
 * (falling back to the MMIO write path), interrupts leave through the
 * irqfd for @gsi.  Takes ownership of @dev.
 * Return: 0 or -errno.
 */
int virtio_mmio_create(uint64_t base, unsigned int gsi, struct virtio_dev *dev,
		       const struct guest_mem *mem, const struct dev_host *host,
		       struct virtio_mmio **out) __attribute__((warn_unused_result));
void virtio_mmio_destroy(struct virtio_mmio *vm);
struct bus_region virtio_mmio_region(struct virtio_mmio *vm);

#endif /* FORKVM_DEVICES_VIRTIO_MMIO_H */
