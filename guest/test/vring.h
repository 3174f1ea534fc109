/* SPDX-License-Identifier: MIT */
/*
 * Split virtqueue, driver side (virtio 1.x, 2.7): descriptor table, avail and
 * used rings in guest memory, a free list of descriptors, completions found
 * by polling the used ring.  Pure C (no port or MMIO access): the host unit
 * test builds rings with it in ordinary memory.  In the guest, memory is
 * identity mapped, so a pointer is its guest-physical address.
 */
#ifndef FORKVM_GUEST_TEST_VRING_H
#define FORKVM_GUEST_TEST_VRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4

#define VRING_MAX_SIZE 256

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];
};

struct vring {
	uint16_t size; /* a power of two, at most VRING_MAX_SIZE */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx; /* our copy of avail->idx */
	uint16_t last_used; /* next used->ring slot to consume */
	uint16_t free_head;
	uint16_t num_free;
};

/* One buffer of a request: guest-physical address, length, device-writable or not. */
struct vring_buf {
	uint64_t addr;
	uint32_t len;
	bool write;
};

/** vring_mem_size() - bytes of memory (4 KiB aligned) a ring of @size entries needs. */
size_t vring_mem_size(uint16_t size);

/**
 * vring_init() - lay out a ring of @size entries in @mem (zeroed here) and
 * put every descriptor on the free list.
 * Return: 0, or -1 when @size is not a power of two in 1..VRING_MAX_SIZE.
 */
int vring_init(struct vring *vr, void *mem, uint16_t size);

/** vring_addr() - the guest-physical address of @p (identity mapping). */
static inline uint64_t vring_addr(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/**
 * vring_add_chain() - take @n descriptors from the free list, chain them with
 * @bufs in order and make the chain available to the device.
 * Return: the head descriptor index, or -1 when fewer than @n are free.
 */
int vring_add_chain(struct vring *vr, const struct vring_buf *bufs, unsigned int n);

/**
 * vring_add_indirect() - take one descriptor from the free list, point it at
 * the indirect table @table of @len bytes (built by the caller) and make it
 * available.  Return: the descriptor index, or -1 when none is free.
 */
int vring_add_indirect(struct vring *vr, uint64_t table, uint32_t len);

/**
 * vring_publish() - make descriptor @head available (for hand-built chains;
 * vring_add_chain() calls it).  The device sees the new avail->idx only
 * after the ring entry (release order).
 */
void vring_publish(struct vring *vr, uint16_t head);

/**
 * vring_get_used() - consume the next used element, if the device produced one.
 * Return: true and *@id, *@len set; false when the used ring has nothing new.
 */
bool vring_get_used(struct vring *vr, uint32_t *id, uint32_t *len);

/**
 * vring_free_chain() - give the chain at @head back to the free list,
 * following NEXT at most size hops.  Return: 0, or -1 if the chain is broken.
 */
int vring_free_chain(struct vring *vr, uint16_t head);

/**
 * vring_reset_free() - put every descriptor back on the free list; only
 * when nothing is in flight (after hand-built chains that the free list
 * never saw).
 */
void vring_reset_free(struct vring *vr);

#endif /* FORKVM_GUEST_TEST_VRING_H */
