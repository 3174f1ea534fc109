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
 * irqfd for @gsi.  Takes ownership of @dev on success only (on failure the
 * caller still owns it: dev->ops->destroy(dev)).  With @host non-NULL a
 * service thread per device runs the requests; with @host NULL (unit tests)
 * they run synchronously inside the QueueNotify write.  @mem is copied.
 * Return: 0 or -errno.
 */
int virtio_mmio_create(uint64_t base, unsigned int gsi, struct virtio_dev *dev,
		       const struct guest_mem *mem, const struct dev_host *host,
		       struct virtio_mmio **out) __attribute__((warn_unused_result));
void virtio_mmio_destroy(struct virtio_mmio *vm);
struct bus_region virtio_mmio_region(struct virtio_mmio *vm);

/**
 * virtio_mmio_stop() - stop the service thread (ioeventfd notifications);
 * returns after the request in progress, if any, completed and unpinned.
 * Later notifications are lost: call it only on the way to destroy.  Safe
 * to call twice; virtio_mmio_destroy() calls it.
 */
void virtio_mmio_stop(struct virtio_mmio *vm);

/**
 * virtio_mmio_pause() - stop running requests (for clone/snapshot): returns
 * once no request is in flight, so no pin is held.  Notifications that arrive
 * meanwhile are kept and served by virtio_mmio_resume().
 */
void virtio_mmio_pause(struct virtio_mmio *vm);
void virtio_mmio_resume(struct virtio_mmio *vm);

/** virtio_mmio_irq_count() - interrupts raised so far (for tests). */
uint64_t virtio_mmio_irq_count(struct virtio_mmio *vm);
/** virtio_mmio_ioeventfds() - queues whose notify KVM took as an ioeventfd. */
unsigned int virtio_mmio_ioeventfds(struct virtio_mmio *vm);

#endif /* FORKVM_DEVICES_VIRTIO_MMIO_H */
