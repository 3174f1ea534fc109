// SPDX-License-Identifier: MIT
#include <string.h>

#include "guest/test/vring.h"

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static size_t avail_offset(uint16_t size)
{
	return sizeof(struct vring_desc) * size;
}

static size_t used_offset(uint16_t size)
{
	/* avail: flags, idx, ring[size], used_event */
	return align_up(avail_offset(size) + 2 * (3 + size), 4);
}

size_t vring_mem_size(uint16_t size)
{
	/* used: flags, idx, ring[size], avail_event */
	return align_up(used_offset(size) + 4 + 8 * size + 2, 4096);
}

int vring_init(struct vring *vr, void *mem, uint16_t size)
{
	if (!size || size > VRING_MAX_SIZE || (size & (size - 1)))
		return -1;
	memset(mem, 0, vring_mem_size(size));
	vr->size = size;
	vr->desc = mem;
	vr->avail = (struct vring_avail *)((char *)mem + avail_offset(size));
	vr->used = (struct vring_used *)((char *)mem + used_offset(size));
	vr->avail_idx = 0;
	vr->last_used = 0;
	vring_reset_free(vr);
	return 0;
}

void vring_reset_free(struct vring *vr)
{
	unsigned int i;

	for (i = 0; i < vr->size; i++)
		vr->desc[i].next = (uint16_t)((i + 1) % vr->size);
	vr->free_head = 0;
	vr->num_free = vr->size;
}

void vring_publish(struct vring *vr, uint16_t head)
{
	vr->avail->ring[vr->avail_idx % vr->size] = head;
	vr->avail_idx++;
	/* The ring entry before the index: pairs with the device's read of avail->idx. */
	__atomic_store_n(&vr->avail->idx, vr->avail_idx, __ATOMIC_RELEASE);
}

int vring_add_chain(struct vring *vr, const struct vring_buf *bufs, unsigned int n)
{
	uint16_t head, i, last = 0;
	unsigned int k;

	if (!n || n > vr->num_free)
		return -1;
	head = i = vr->free_head;
	for (k = 0; k < n; k++) {
		struct vring_desc *d = &vr->desc[i];

		d->addr = bufs[k].addr;
		d->len = bufs[k].len;
		d->flags =
		    (bufs[k].write ? VRING_DESC_F_WRITE : 0) | (k + 1 < n ? VRING_DESC_F_NEXT : 0);
		last = i;
		i = d->next;
	}
	/* The last descriptor's next still links the rest of the free list. */
	vr->free_head = vr->desc[last].next;
	vr->num_free -= n;
	vring_publish(vr, head);
	return head;
}

int vring_add_indirect(struct vring *vr, uint64_t table, uint32_t len)
{
	uint16_t head = vr->free_head;
	struct vring_desc *d = &vr->desc[head];

	if (!vr->num_free)
		return -1;
	vr->free_head = d->next;
	vr->num_free--;
	d->addr = table;
	d->len = len;
	d->flags = VRING_DESC_F_INDIRECT;
	/* next is unused without NEXT; keep the free-list link out of the device's view. */
	d->next = 0;
	vring_publish(vr, head);
	return head;
}

bool vring_get_used(struct vring *vr, uint32_t *id, uint32_t *len)
{
	const struct vring_used_elem *e;

	/* Pairs with the device's release of used->idx after the element. */
	if (__atomic_load_n(&vr->used->idx, __ATOMIC_ACQUIRE) == vr->last_used)
		return false;
	e = &vr->used->ring[vr->last_used % vr->size];
	*id = e->id;
	*len = e->len;
	vr->last_used++;
	return true;
}

int vring_free_chain(struct vring *vr, uint16_t head)
{
	uint16_t i = head, n = 1;

	if (head >= vr->size)
		return -1;
	while (vr->desc[i].flags & VRING_DESC_F_NEXT) {
		i = vr->desc[i].next;
		if (i >= vr->size || ++n > vr->size)
			return -1;
	}
	vr->desc[i].next = vr->free_head;
	vr->free_head = head;
	vr->num_free += n;
	return 0;
}
