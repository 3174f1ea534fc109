/* SPDX-License-Identifier: MIT */
/* virtio-mmio transport, version 2 (virtio 1.x "modern" layout). */
#ifndef FORKVM_DEVICES_VIRTIO_MMIO_H
#define FORKVM_DEVICES_VIRTIO_MMIO_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "devices/virtio/queue.h"

struct virtio_dev;
struct virtio_mmio;

#define VIRTIO_MMIO_SIZE 0x1000

/**
 * virtio_mmio_create() - put @dev behind an MMIO window at @base.
 * Queue notifications arrive through an ioeventfd registered with @host
 * (falling back to the MMIO write path), interrupts leave through the
 * irqfd for @gsi.  Takes ownership of @dev on success only (on failure the
 * caller still owns it: dev->ops->destroy(dev)).  With @host non-NULL a
 * service thread per device pops and submits the requests; with @host NULL
 * (unit tests) that happens inside the QueueNotify write.  Either way a
 * request's I/O completes later, on the device's own completion thread.
 * @mem is copied.
 * Return: 0 or -errno.
 */
int virtio_mmio_create(uint64_t base, unsigned int gsi, struct virtio_dev *dev,
		       const struct guest_mem *mem, const struct dev_host *host,
		       struct virtio_mmio **out) __attribute__((warn_unused_result));
void virtio_mmio_destroy(struct virtio_mmio *vm);
struct bus_region virtio_mmio_region(struct virtio_mmio *vm);
/** virtio_mmio_dev() - the device behind the transport (virtio_blk_fork's parent). */
struct virtio_dev *virtio_mmio_dev(struct virtio_mmio *vm);

/**
 * virtio_mmio_stop() - stop the service thread (ioeventfd notifications),
 * then wait for the I/O in flight to finish and drop those requests: their
 * pins are released, nothing more is written to guest memory (no status,
 * no used entry).  Later notifications are lost: call it only on the way to
 * destroy.  Safe to call twice; virtio_mmio_destroy() calls it.
 */
void virtio_mmio_stop(struct virtio_mmio *vm);

/**
 * virtio_mmio_hold() - hold completions, not I/O (for a clone or a snapshot).
 * First it takes what the driver has made available (as a kick would), so
 * the instant finds it in flight.  After it returns: no chain is popped, no used entry, status byte or
 * interrupt is published into guest memory, and kicks are deferred.  I/O
 * already submitted keeps running in the host kernel; its completions are
 * queued, their pins still held, until virtio_mmio_release().  So between
 * the two, the rings in guest memory and the set of chains popped and not
 * completed (virtio_mmio_save()) describe one instant.  Does not wait for
 * I/O.  Context: takes the transport lock.
 */
void virtio_mmio_hold(struct virtio_mmio *vm);

/**
 * virtio_mmio_release() - publish the completions queued while held (status
 * bytes, used entries, one interrupt per queue where the ring asks for it)
 * and serve the deferred kicks (on the service thread when there is one).
 */
void virtio_mmio_release(struct virtio_mmio *vm);

/* The names before hold/release (kept until vmm/ switches): the same. */
static inline void virtio_mmio_pause(struct virtio_mmio *vm)
{
	virtio_mmio_hold(vm);
}

static inline void virtio_mmio_resume(struct virtio_mmio *vm)
{
	virtio_mmio_release(vm);
}

/**
 * virtio_mmio_inflight() - chains popped and not completed (published):
 * requests whose I/O runs plus completions held back.
 */
unsigned int virtio_mmio_inflight(struct virtio_mmio *vm);

/**
 * virtio_mmio_drain() - wait up to @timeout_ms until no request's I/O runs
 * and, unless held, every completion is published (virtio_mmio_inflight()
 * is 0).  While held, the completions stay queued: it returns once the last
 * I/O finished.  Does not pop: a kick still in the service thread's eventfd
 * is not waited for.  Return: 0 or -ETIMEDOUT.
 */
int virtio_mmio_drain(struct virtio_mmio *vm, int timeout_ms);

/*
 * The saved state of a transport and its device: plain fixed-width fields,
 * no pointers, no implicit padding.  Any change to this layout, to struct
 * vq_state or to a device's state bumps VIRTIO_MMIO_STATE_VERSION; a state of
 * another version is refused (there is no conversion yet).
 */
#define VIRTIO_MMIO_STATE_MAGIC 0x6f696d76u /* "vmio" */
#define VIRTIO_MMIO_STATE_VERSION 1u
#define VIRTIO_MMIO_STATE_MAX_QUEUES 4u
#define VIRTIO_MMIO_STATE_DEV_BYTES 128u

struct virtio_mmio_state {
	uint32_t magic;
	uint32_t version;
	uint32_t device_id;
	uint32_t nqueues;
	uint64_t features; /* offered */
	uint64_t drv_features; /* DriverFeatures as the driver wrote them */
	uint64_t acked; /* accepted at FEATURES_OK */
	uint32_t status;
	uint32_t isr;
	uint32_t dev_feat_sel;
	uint32_t drv_feat_sel;
	uint32_t queue_sel;
	uint32_t config_gen;
	uint32_t dev_state_size; /* bytes of dev_state in use */
	uint32_t reserved;
	uint8_t dev_state[VIRTIO_MMIO_STATE_DEV_BYTES]; /* the device type's (blk.h) */
	struct vq_state vq[VIRTIO_MMIO_STATE_MAX_QUEUES]; /* nqueues used, the rest 0 */
};

/**
 * virtio_mmio_save() - the transport, its queues, the device's own state and,
 * per queue, the heads of the chains popped and not completed, in pop order.
 * Call it between virtio_mmio_hold() and virtio_mmio_release().  Equal
 * states give equal bytes.  Return: 0, -EBUSY if not held, or -errno.
 */
int virtio_mmio_save(struct virtio_mmio *vm, struct virtio_mmio_state *out)
    __attribute__((warn_unused_result));

/**
 * virtio_mmio_restore() - load @st into a freshly created transport and
 * device (a clone's: same base, gsi and device type, its own guest memory,
 * status still 0, not held).  @st is checked like untrusted input first (see
 * docs/virtio-errors.md, "Device state"); on a refusal nothing changed.
 * Then the in-flight chains of @st are re-executed: each head's chain is read
 * from this transport's guest memory, validated as any chain, and submitted
 * (DESIGN.md 3.2), and every ready queue is kicked once.
 * Return: 0, -EINVAL with @err for a bad state, -EBUSY if the transport is
 * not fresh, or -errno.
 */
int virtio_mmio_restore(struct virtio_mmio *vm, const struct virtio_mmio_state *st, char *err,
			size_t errlen) __attribute__((warn_unused_result));

/** virtio_mmio_irq_count() - interrupts raised so far (for tests). */
uint64_t virtio_mmio_irq_count(struct virtio_mmio *vm);
/** virtio_mmio_ioeventfds() - queues whose notify KVM took as an ioeventfd. */
unsigned int virtio_mmio_ioeventfds(struct virtio_mmio *vm);

#endif /* FORKVM_DEVICES_VIRTIO_MMIO_H */
