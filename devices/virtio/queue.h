/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, device side (virtio 1.x section 2.7).
 *
 * Everything in the rings is guest-controlled.  vq_pop_chain() copies each
 * value out of guest memory once (struct guest_mem read) and validates the
 * copy; the rest of the device only ever sees a struct vq_chain whose
 * segments are inside guest memory, do not overflow, and list the readable
 * segments before the writable ones.  See docs/virtio-errors.md for what the
 * device answers to a malformed chain.
 *
 * Not thread-safe: the transport serializes all calls on one queue (mmio.c:
 * its lock, taken by the vCPU, service and completion threads alike).
 */
#ifndef FORKVM_DEVICES_VIRTIO_QUEUE_H
#define FORKVM_DEVICES_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_ring.h>

#include "devices/bus.h"

/* Largest queue any of our devices offers (QueueNumMax <= this). */
#define VQ_MAX_SIZE 256

/* Ring layout (split virtqueue), byte offsets. */
#define VQ_DESC_SIZE 16
#define VQ_AVAIL_RING(i) (4 + 2 * (uint64_t)(i))
#define VQ_USED_RING(i) (4 + 8 * (uint64_t)(i))

struct vq_seg {
	uint64_t gpa;
	uint32_t len;
};

/* Why a chain was refused (chain->error is -EINVAL for all of them). */
enum vq_chain_err {
	VQ_OK = 0,
	VQ_ERR_HEAD, /* head index >= queue size */
	VQ_ERR_NEXT, /* next index >= queue (or indirect table) size */
	VQ_ERR_TOO_LONG, /* more descriptors than the queue size: a loop */
	VQ_ERR_RANGE, /* buffer not inside guest memory */
	VQ_ERR_OVERFLOW, /* addr + len, or a total length, overflows */
	VQ_ERR_ORDER, /* device-readable after device-writable */
	VQ_ERR_NESTED, /* indirect descriptor inside an indirect table */
	VQ_ERR_INDIRECT_LEN, /* indirect table length 0 or not a multiple of 16 */
	VQ_ERR_INDIRECT_FLAGS, /* indirect with NEXT, or indirect not negotiated */
	VQ_ERR_READ, /* a descriptor could not be read */
};

/**
 * struct vq_chain - one validated descriptor chain.
 * @head: the head descriptor index, to give back in the used ring.
 * @nread, @nwrite: seg[0 .. nread) are device-readable, seg[nread ..
 *	nread + nwrite) device-writable.  Zero-length descriptors are dropped.
 * @read_len, @write_len: total bytes of each kind (no overflow: checked).
 * @error: 0, or -EINVAL for a malformed chain (@why says which rule); such a
 *	chain must be answered with vq_fail_chain() and nothing else.
 * @status_ok, @status_gpa: for a malformed chain, whether its last
 *	descriptor can take an error status byte, and where.
 */
struct vq_chain {
	uint16_t head;
	uint16_t nread;
	uint16_t nwrite;
	uint32_t read_len;
	uint32_t write_len;
	int error;
	enum vq_chain_err why;
	bool status_ok;
	uint64_t status_gpa;
	struct vq_seg seg[VQ_MAX_SIZE];
};

/*
 * One split virtqueue, device side, in three parts that live differently:
 * - struct vq_config: what the driver configured through the transport's
 *   registers (guest values until vq_enable() accepted them);
 * - struct vq_ring_state: the device's position in the rings, the part a
 *   clone or a snapshot must carry over;
 * - @mem: the live guest memory of this VM, never saved (a clone's queue
 *   gets its own).
 * struct vq_state is the saved form of the first two (vq_save/vq_restore).
 */
struct vq_config {
	uint16_t num; /* QueueNum */
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	bool ready; /* QueueReady, once vq_enable() accepted the rest */
	/* Negotiated ring features, fixed when the queue is enabled. */
	bool event_idx;
	bool indirect;
};

struct vq_ring_state {
	bool broken; /* fatal queue error: ignored until reset */
	uint16_t last_avail; /* next avail ring entry to consume */
	uint16_t avail_pending; /* entries from last_avail the last avail->idx read showed */
	uint16_t used_idx; /* our copy of used->idx */
	uint16_t signalled_used; /* used_idx when we last decided about an interrupt */
	bool signalled_valid; /* signalled_used means something */
};

/**
 * struct virtqueue - one split virtqueue, device side.
 * The transport fills @cfg (num and the three ring addresses) from the
 * driver's registers, then calls vq_enable().
 */
struct virtqueue {
	unsigned int index;
	const struct guest_mem *mem;
	struct vq_config cfg;
	struct vq_ring_state st;
};

/**
 * struct vq_state - the saved form of one queue (fixed-width fields, no
 * pointers, no implicit padding): a clone's or a snapshot's.  @inflight
 * lists the heads of the chains the device had popped and not completed at
 * the instant, in pop order (@ninflight of them); the transport fills it.
 */
struct vq_state {
	uint16_t num;
	uint8_t ready;
	uint8_t event_idx;
	uint8_t indirect;
	uint8_t broken;
	uint8_t signalled_valid;
	uint8_t reserved0;
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	uint16_t last_avail;
	uint16_t avail_pending;
	uint16_t used_idx;
	uint16_t signalled_used;
	uint16_t ninflight;
	uint16_t reserved1[3];
	uint16_t inflight[VQ_MAX_SIZE];
};

/** vq_init() - a queue in reset state; @mem is the guest memory to use. */
void vq_init(struct virtqueue *vq, unsigned int index, const struct guest_mem *mem);

/** vq_reset() - back to the reset state (keeps @index and @mem). */
void vq_reset(struct virtqueue *vq);

/**
 * vq_enable() - validate the driver's ring configuration and start the queue.
 * @max: the device's QueueNumMax.
 * Return: 0, or -EINVAL (size not a power of two or above @max, misaligned
 * or overflowing ring address, ring not inside guest memory).
 */
int vq_enable(struct virtqueue *vq, uint16_t max) __attribute__((warn_unused_result));

/**
 * vq_pop_chain() - take the next available chain.
 * Return: 1 and *@chain (check chain->error!), 0 if the ring is empty, or
 * -errno for a fatal queue error (the avail index moved by more than the
 * queue size, a ring is unreadable): the queue is then broken.
 */
int vq_pop_chain(struct virtqueue *vq, struct vq_chain *chain);

/**
 * vq_read_chain() - walk and validate the chain at @head without touching
 * the avail ring (a chain popped earlier: re-executed after a restore).
 * Return: 0 and *@chain (check chain->error!), -EIO if the queue is not
 * running.
 */
int vq_read_chain(struct virtqueue *vq, uint16_t head, struct vq_chain *chain);

/**
 * vq_push_used() - give chain @head back to the driver with @len bytes
 * written.  Return: 0 or -errno (ring unwritable: the queue is broken).
 */
int vq_push_used(struct virtqueue *vq, uint16_t head, uint32_t len);

/**
 * vq_fail_chain() - answer a malformed chain: write @status into its last
 * descriptor when chain->status_ok, and push it used with len 0.
 */
int vq_fail_chain(struct virtqueue *vq, const struct vq_chain *chain, uint8_t status);

/**
 * vq_should_notify() - after pushing used entries: must the driver be
 * interrupted?  Applies VIRTIO_RING_F_EVENT_IDX (used_event) or, without
 * it, VRING_AVAIL_F_NO_INTERRUPT.  Remembers the answer's used index.
 */
bool vq_should_notify(struct virtqueue *vq);

/**
 * vq_enable_notify() - with EVENT_IDX, publish avail_event = last_avail so
 * the driver notifies on its next buffer.  Return: true if buffers arrived
 * meanwhile (the caller must pop again), false if the ring is empty.
 */
bool vq_enable_notify(struct virtqueue *vq);

/**
 * vq_need_event() - the ring's notification rule: has @new_idx moved past
 * @event since @old_idx?  (All three wrap at 16 bits.)
 */
static inline bool vq_need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

/**
 * vq_save() - the queue's configuration and ring state into @out (the
 * in-flight list is the caller's: ninflight = 0 here).  @out is zeroed
 * first, so equal states give equal bytes.
 */
void vq_save(const struct virtqueue *vq, struct vq_state *out);

/**
 * vq_restore() - check @in like untrusted input, then load it.  Rules: flags
 * are 0 or 1 and reserved fields 0; a ready queue has a size that is a power
 * of two <= @max, its rings aligned and inside guest memory (as vq_enable()),
 * event_idx/indirect only if @acked has them, avail_pending <= size; at most
 * size in-flight heads, each < size, none twice, none on a queue that is not
 * ready or broken.  Return: 0, or -EINVAL with a reason in @err (@vq is then
 * unchanged).
 */
int vq_restore(struct virtqueue *vq, const struct vq_state *in, uint16_t max, uint64_t acked,
	       char *err, size_t errlen) __attribute__((warn_unused_result));

const char *vq_chain_err_str(enum vq_chain_err why);

#endif /* FORKVM_DEVICES_VIRTIO_QUEUE_H */
