/* SPDX-License-Identifier: MIT */
/*
 * The contract between a virtio transport (mmio.c, later pci.c) and a virtio
 * device type (blk.c, ...).  The transport owns the registers, the queues, the
 * interrupt line and the notification thread; the device type owns its config
 * space and the meaning of the requests on its queues.
 *
 * Threads: every device callback is called with the transport's lock held,
 * either on a vCPU thread (register accesses, notify without ioeventfd) or on
 * the transport's per-device service thread (ioeventfd notifications).  So a
 * device never runs two callbacks at once and needs no lock of its own for
 * state it only touches from callbacks.
 */
#ifndef FORKVM_DEVICES_VIRTIO_VIRTIO_H
#define FORKVM_DEVICES_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "devices/bus.h"

struct virtio_dev;
struct virtqueue;

/* What a device may call back into its transport (set by the transport). */
struct virtio_transport {
	/* The device pushed used buffers on @vq: interrupt the driver if the
	 * ring's notification rule asks for it. */
	void (*used)(void *opaque, struct virtqueue *vq);
	void *opaque;
};

struct virtio_dev_ops {
	/* Read/write @len bytes (1, 2, 4 or 8) at @off of the config space;
	 * @off + @len <= config_size is checked by the transport. */
	void (*config_read)(struct virtio_dev *dev, uint32_t off, void *data, unsigned int len);
	void (*config_write)(struct virtio_dev *dev, uint32_t off, const void *data,
			     unsigned int len);
	/* The driver set DRIVER_OK; @features are the acked features. */
	void (*start)(struct virtio_dev *dev);
	/* The driver notified @vq (it is ready and the queue is not broken).
	 * Return 0, or -errno for an error the queue cannot recover from:
	 * the transport then sets DEVICE_NEEDS_RESET, raises a config-change
	 * interrupt and ignores the queue until reset. */
	int (*queue_notify)(struct virtio_dev *dev, struct virtqueue *vq);
	/* Device reset (status 0): drop any device-side request state.  No
	 * request is in flight when this is called (the transport lock). */
	void (*reset)(struct virtio_dev *dev);
	/* Free the device (called by the transport's destroy). */
	void (*destroy)(struct virtio_dev *dev);
};

/*
 * One instance of a device type.  The device fills the first block at
 * creation; the transport fills the second when it takes the device.
 */
struct virtio_dev {
	const struct virtio_dev_ops *ops;
	const char *name; /* for log lines: "virtio-blk" */
	uint32_t device_id; /* VIRTIO_ID_BLOCK, ... */
	uint64_t features; /* offered (VIRTIO_F_VERSION_1 included) */
	unsigned int nqueues;
	uint16_t queue_max; /* power of two, <= VQ_MAX_SIZE */
	uint32_t config_size;

	/* Set by the transport. */
	const struct guest_mem *mem;
	uint64_t acked; /* valid from FEATURES_OK */
	struct virtio_transport transport;
};

static inline bool virtio_has_feature(uint64_t features, unsigned int bit)
{
	return bit < 64 && (features >> bit) & 1;
}

#endif /* FORKVM_DEVICES_VIRTIO_VIRTIO_H */
