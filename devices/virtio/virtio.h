/* SPDX-License-Identifier: MIT */
/*
 * The contract between a virtio transport (mmio.c, later pci.c) and a virtio
 * device type (blk.c, ...).  The transport owns the registers, the queues, the
 * interrupt line and the notification thread; the device type owns its config
 * space and the meaning of the requests on its queues.
 *
 * Threads: every device callback is called with the transport's lock held,
 * on a vCPU thread (register accesses, notify without a service thread), on
 * the transport's per-device service thread (notifications), or on the
 * thread that publishes a completed request (the device's completion
 * thread, or whoever calls the transport's release/reset).  So a device never
 * runs two callbacks at once.  That lock is also the ring lock: a virtqueue
 * is only touched with it held.  Host I/O runs without it: a device starts
 * a request in submit() and reports its end with virtio_req_done(), from
 * any thread, without the lock.
 */
#ifndef FORKVM_DEVICES_VIRTIO_VIRTIO_H
#define FORKVM_DEVICES_VIRTIO_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_ring.h>

#include "devices/bus.h"

struct virtio_dev;
struct virtqueue;
struct vq_chain;

/**
 * struct virtio_req - one request popped from a queue and not completed: the
 * device embeds it in its own request record.  The transport owns the fields
 * from virtio_req_start() until the device's finish() is called.
 * @head: the chain's head index (the used ring's id); set by the device.
 */
struct virtio_req {
	uint16_t head;
	/* The transport's. */
	uint16_t queue;
	uint32_t gen; /* the queue's generation at start (a reset drops older ones) */
	bool done; /* the I/O finished; publication may be held */
	struct virtio_req *prev, *next; /* the queue's in-flight list, pop order */
};

/* What a device may call back into its transport (set by the transport). */
struct virtio_transport {
	/* The device pushed used buffers on @vq: interrupt the driver if the
	 * ring's notification rule asks for it.  Lock held. */
	void (*used)(void *opaque, struct virtqueue *vq);
	/* @req (popped from @vq) is now in flight.  Lock held. */
	void (*req_start)(void *opaque, struct virtqueue *vq, struct virtio_req *req);
	/* @req's I/O finished.  Any thread, lock NOT held. */
	void (*req_done)(void *opaque, struct virtio_req *req);
	/* Is chain @head of @vq in flight already?  Lock held. */
	bool (*head_busy)(void *opaque, struct virtqueue *vq, uint16_t head);
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
	/* Start the request of @chain, popped from @vq by queue_notify() or
	 * re-read from guest memory at a restore (an in-flight chain of the
	 * saved state).  Either answer it at once (vq_push_used) or make it a
	 * request in flight (virtio_req_start, then virtio_req_done).  Return
	 * as queue_notify(). */
	int (*submit)(struct virtio_dev *dev, struct virtqueue *vq, const struct vq_chain *chain);
	/* A request whose I/O is done leaves the device: if @publish, write
	 * the device's part of the answer into guest memory (blk: the status
	 * byte); in any case release its pins and free it.  Return: the used
	 * length to push (ignored when !@publish).  The transport then pushes
	 * the used entry and notifies. */
	uint32_t (*finish)(struct virtio_dev *dev, struct virtio_req *req, bool publish);
	/* Device reset (status 0): drop any device-side request state.  No
	 * request is in flight when this is called: the transport waited for
	 * them and dropped them. */
	void (*reset)(struct virtio_dev *dev);
	/* The device type's own state (config and the like, no requests: the
	 * transport saves those) into @buf of @len bytes.  Return: the bytes
	 * used, or -errno (-ENOSPC: @len too small). */
	int (*save)(struct virtio_dev *dev, void *buf, uint32_t len);
	/* Check @buf (untrusted) against this device: it must describe the same
	 * device (a clone's or a snapshot's of the same disk).  Return: 0 or
	 * -EINVAL with @err. */
	int (*restore)(struct virtio_dev *dev, const void *buf, uint32_t len, char *err,
		       size_t errlen);
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

/** virtio_req_start() - @req (its head set) is in flight on @vq.  Lock held. */
static inline void virtio_req_start(struct virtio_dev *dev, struct virtqueue *vq,
				    struct virtio_req *req)
{
	dev->transport.req_start(dev->transport.opaque, vq, req);
}

/**
 * virtio_head_busy() - is @head in flight on @vq already?  The device must
 * check it before virtio_req_start(): a driver that makes a head available
 * again before it is used broke the ring protocol (a queue error).
 */
static inline bool virtio_head_busy(struct virtio_dev *dev, struct virtqueue *vq, uint16_t head)
{
	return dev->transport.head_busy(dev->transport.opaque, vq, head);
}

/**
 * virtio_req_done() - @req's I/O finished (from any thread, lock not held).
 * The transport calls dev->ops->finish() now, or at release if it holds
 * completions, or drops the request (finish with !publish) at a reset.
 */
static inline void virtio_req_done(struct virtio_dev *dev, struct virtio_req *req)
{
	dev->transport.req_done(dev->transport.opaque, req);
}

static inline bool virtio_has_feature(uint64_t features, unsigned int bit)
{
	return bit < 64 && (features >> bit) & 1;
}

#endif /* FORKVM_DEVICES_VIRTIO_VIRTIO_H */
