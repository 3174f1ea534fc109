// SPDX-License-Identifier: MIT
/*
 * Split virtqueue, device side.  Every value read from a ring is a guest
 * value: it is copied into a local once, then validated, and only the
 * validated copy is used.  The comments name each guest value where it is
 * checked.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/log.h"
#include "devices/virtio/queue.h"

/* A descriptor as the guest wrote it (little-endian). */
struct vq_desc_raw {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

_Static_assert(sizeof(struct vq_desc_raw) == VQ_DESC_SIZE, "descriptor layout");

/* A descriptor after its one copy out of guest memory, host-endian. */
struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static const char *const chain_err_str[] = {
	[VQ_OK] = "ok",
	[VQ_ERR_HEAD] = "head index past the queue",
	[VQ_ERR_NEXT] = "next index past the table",
	[VQ_ERR_TOO_LONG] = "chain longer than the queue (loop?)",
	[VQ_ERR_RANGE] = "buffer outside guest memory",
	[VQ_ERR_OVERFLOW] = "address or length overflow",
	[VQ_ERR_ORDER] = "device-readable descriptor after a device-writable one",
	[VQ_ERR_NESTED] = "nested indirect descriptor",
	[VQ_ERR_INDIRECT_LEN] = "indirect table length zero or not a multiple of 16",
	[VQ_ERR_INDIRECT_FLAGS] = "indirect descriptor with NEXT, or indirect not negotiated",
	[VQ_ERR_READ] = "descriptor unreadable",
};

const char *vq_chain_err_str(enum vq_chain_err why)
{
	if ((unsigned int)why >= sizeof(chain_err_str) / sizeof(chain_err_str[0]))
		return "?";
	return chain_err_str[why];
}

/* Is [gpa, gpa + len) guest memory?  len > 0, gpa + len does not overflow. */
static bool mem_is_ram(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint8_t b;

	if (mem->check)
		return mem->check(mem->opaque, gpa, len) == 0;
	/* Without check(): probe both ends (enough for one RAM range). */
	return mem->read(mem->opaque, gpa, &b, 1) == 0 &&
	       mem->read(mem->opaque, gpa + len - 1, &b, 1) == 0;
}

static int read_le16(const struct virtqueue *vq, uint64_t gpa, uint16_t *v)
{
	uint16_t raw;
	int ret = vq->mem->read(vq->mem->opaque, gpa, &raw, sizeof(raw));

	if (ret)
		return ret;
	*v = le16toh(raw);
	return 0;
}

static int write_le16(const struct virtqueue *vq, uint64_t gpa, uint16_t v)
{
	uint16_t raw = htole16(v);

	return vq->mem->write(vq->mem->opaque, gpa, &raw, sizeof(raw));
}

void vq_init(struct virtqueue *vq, unsigned int index, const struct guest_mem *mem)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	vq->mem = mem;
}

void vq_reset(struct virtqueue *vq)
{
	vq_init(vq, vq->index, vq->mem);
}

/* A ring of @size bytes at @gpa, aligned to @align, inside guest memory. */
static bool ring_is_valid(const struct guest_mem *mem, uint64_t gpa, uint64_t size, uint64_t align)
{
	uint64_t end;

	if (gpa & (align - 1))
		return false;
	if (__builtin_add_overflow(gpa, size, &end))
		return false;
	return mem_is_ram(mem, gpa, size);
}

/* Can a queue run with @cfg: its size and its three rings? */
static bool config_is_valid(const struct guest_mem *mem, const struct vq_config *cfg, uint16_t max)
{
	uint64_t n = cfg->num;

	/* Guest value: QueueNum, a power of two in [1, QueueNumMax]. */
	if (n == 0 || n > max || n > VQ_MAX_SIZE || (n & (n - 1)))
		return false;
	/* Guest values: the three ring addresses (alignment from virtio 1.x
	 * 2.7, sizes including used_event / avail_event). */
	return ring_is_valid(mem, cfg->desc_gpa, VQ_DESC_SIZE * n, 16) &&
	       ring_is_valid(mem, cfg->avail_gpa, VQ_AVAIL_RING(n) + 2, 2) &&
	       ring_is_valid(mem, cfg->used_gpa, VQ_USED_RING(n) + 2, 4);
}

int vq_enable(struct virtqueue *vq, uint16_t max)
{
	if (!config_is_valid(vq->mem, &vq->cfg, max))
		return -EINVAL;
	memset(&vq->st, 0, sizeof(vq->st));
	vq->cfg.ready = true;
	return 0;
}

static void chain_fail(struct vq_chain *c, enum vq_chain_err why)
{
	/* The first rule broken is the one reported. */
	if (c->error)
		return;
	c->error = -EINVAL;
	c->why = why;
}

static int read_desc(const struct virtqueue *vq, uint64_t table, uint16_t idx, struct vq_desc *d)
{
	struct vq_desc_raw raw;
	int ret;

	/* The one copy of this descriptor out of guest memory. */
	ret =
	    vq->mem->read(vq->mem->opaque, table + (uint64_t)idx * VQ_DESC_SIZE, &raw, sizeof(raw));
	if (ret)
		return ret;
	d->addr = le64toh(raw.addr);
	d->len = le32toh(raw.len);
	d->flags = le16toh(raw.flags);
	d->next = le16toh(raw.next);
	return 0;
}

/* A data descriptor: check it and, while the chain is still good, add it. */
static void add_desc(struct virtqueue *vq, struct vq_chain *c, const struct vq_desc *d)
{
	bool writable = d->flags & VRING_DESC_F_WRITE;
	uint64_t end;
	uint32_t *total = writable ? &c->write_len : &c->read_len;
	uint32_t sum;

	/* Guest value: flags.WRITE; readable descriptors come first. */
	if (!writable && c->nwrite)
		chain_fail(c, VQ_ERR_ORDER);
	if (d->len) {
		/* Guest values: addr and len; the buffer must not wrap... */
		if (__builtin_add_overflow(d->addr, (uint64_t)d->len, &end))
			chain_fail(c, VQ_ERR_OVERFLOW);
		/* ...and must be guest memory. */
		else if (!mem_is_ram(vq->mem, d->addr, d->len))
			chain_fail(c, VQ_ERR_RANGE);
	}
	/* Guest value: the sum of the lengths must fit the used ring's u32. */
	if (__builtin_add_overflow(*total, d->len, &sum))
		chain_fail(c, VQ_ERR_OVERFLOW);
	if (c->error || !d->len)
		return;
	*total = sum;
	/* At most vq->cfg.num data descriptors reach here (the hop limit). */
	c->seg[c->nread + c->nwrite] = (struct vq_seg){ .gpa = d->addr, .len = d->len };
	if (writable)
		c->nwrite++;
	else
		c->nread++;
}

/*
 * Walk the chain from @head.  On a broken rule the walk goes on (without
 * collecting segments) as long as it can, only to find the chain's last
 * descriptor, which may take the error status (docs/virtio-errors.md).
 */
static void walk_chain(struct virtqueue *vq, struct vq_chain *c, uint16_t head)
{
	uint64_t table = vq->cfg.desc_gpa, end;
	uint32_t tsize = vq->cfg.num;
	bool in_indirect = false, have_last = false;
	struct vq_desc d, last = { 0 };
	unsigned int n = 0;
	uint16_t idx = head;

	for (;;) {
		if (read_desc(vq, table, idx, &d)) {
			chain_fail(c, VQ_ERR_READ);
			have_last = false;
			break;
		}
		/* Guest value: flags.INDIRECT, only once, at the chain's end. */
		if ((d.flags & VRING_DESC_F_INDIRECT) && !in_indirect && vq->cfg.indirect) {
			if (d.flags & VRING_DESC_F_NEXT)
				chain_fail(c, VQ_ERR_INDIRECT_FLAGS);
			/* Guest value: the table's length, whole descriptors, > 0. */
			if (d.len == 0 || d.len % VQ_DESC_SIZE) {
				chain_fail(c, VQ_ERR_INDIRECT_LEN);
				have_last = false;
				break;
			}
			/* ...at most a queue's worth (the chain limit)... */
			if (d.len / VQ_DESC_SIZE > vq->cfg.num) {
				chain_fail(c, VQ_ERR_TOO_LONG);
				have_last = false;
				break;
			}
			/* Guest value: the table's address, not wrapping, in RAM. */
			if (__builtin_add_overflow(d.addr, (uint64_t)d.len, &end)) {
				chain_fail(c, VQ_ERR_OVERFLOW);
				have_last = false;
				break;
			}
			if (!mem_is_ram(vq->mem, d.addr, d.len)) {
				chain_fail(c, VQ_ERR_RANGE);
				have_last = false;
				break;
			}
			table = d.addr;
			tsize = d.len / VQ_DESC_SIZE;
			in_indirect = true;
			idx = 0;
			continue;
		}
		if (d.flags & VRING_DESC_F_INDIRECT)
			/* In a table, or not negotiated: never followed. */
			chain_fail(c, in_indirect ? VQ_ERR_NESTED : VQ_ERR_INDIRECT_FLAGS);
		/* The hop limit: more data descriptors than the queue size
		 * means a loop (or a chain the driver may not build). */
		if (++n > vq->cfg.num) {
			chain_fail(c, VQ_ERR_TOO_LONG);
			/* A loop explains whatever else broke on the way. */
			c->why = VQ_ERR_TOO_LONG;
			have_last = false;
			break;
		}
		if (!(d.flags & VRING_DESC_F_INDIRECT))
			add_desc(vq, c, &d);
		last = d;
		have_last = true;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		/* Guest value: next, an index into the current table. */
		if (d.next >= tsize) {
			chain_fail(c, VQ_ERR_NEXT);
			have_last = false;
			break;
		}
		idx = d.next;
	}

	if (!c->error || !have_last)
		return;
	/* Can the last descriptor take a status byte?  Device-writable, not
	 * indirect, at least one byte, not wrapping, inside guest memory. */
	if (!(last.flags & VRING_DESC_F_WRITE) || (last.flags & VRING_DESC_F_INDIRECT) ||
	    last.len == 0 || __builtin_add_overflow(last.addr, (uint64_t)last.len, &end) ||
	    !mem_is_ram(vq->mem, last.addr, last.len))
		return;
	c->status_ok = true;
	c->status_gpa = last.addr + last.len - 1;
}

/* Walk the chain at @head (a guest value, from the avail ring or a state). */
static void read_chain(struct virtqueue *vq, uint16_t head, struct vq_chain *c)
{
	c->head = head;
	c->nread = c->nwrite = 0;
	c->read_len = c->write_len = 0;
	c->error = 0;
	c->why = VQ_OK;
	c->status_ok = false;
	c->status_gpa = 0;
	/* Guest value: the head index, an index into the descriptor table. */
	if (head >= vq->cfg.num)
		chain_fail(c, VQ_ERR_HEAD);
	else
		walk_chain(vq, c, head);
	if (c->error)
		dev_guest_err("virtqueue", "queue %u: chain %u: %s", vq->index, head,
			      vq_chain_err_str(c->why));
}

int vq_read_chain(struct virtqueue *vq, uint16_t head, struct vq_chain *c)
{
	if (!vq->cfg.ready || vq->st.broken)
		return -EIO;
	read_chain(vq, head, c);
	return 0;
}

int vq_pop_chain(struct virtqueue *vq, struct vq_chain *c)
{
	uint16_t avail_idx, pending, head;

	if (!vq->cfg.ready || vq->st.broken)
		return -EIO;
	/* avail->idx is read again only when the entries it showed last
	 * time are used up: once per batch, not once per chain. */
	if (!vq->st.avail_pending) {
		if (read_le16(vq, vq->cfg.avail_gpa + 2, &avail_idx))
			goto err_ring;
		/* Guest value: avail->idx may only run ahead of us by a queue's worth. */
		pending = avail_idx - vq->st.last_avail;
		if (pending > vq->cfg.num) {
			dev_guest_err(
			    "virtqueue", "queue %u: avail idx %u jumped %u past %u (size %u)",
			    vq->index, avail_idx, pending, vq->st.last_avail, vq->cfg.num);
			vq->st.broken = true;
			return -EPROTO;
		}
		if (pending == 0)
			return 0;
		vq->st.avail_pending = pending;
		/* Read the ring entries only after the index that published
		 * them; pairs with the driver's write barrier before its
		 * avail->idx update. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
	}
	if (read_le16(vq, vq->cfg.avail_gpa + VQ_AVAIL_RING(vq->st.last_avail % vq->cfg.num),
		      &head))
		goto err_ring;
	vq->st.last_avail++;
	vq->st.avail_pending--;
	read_chain(vq, head, c);
	return 1;

err_ring:
	dev_guest_err("virtqueue", "queue %u: avail ring unreadable", vq->index);
	vq->st.broken = true;
	return -EFAULT;
}

int vq_push_used(struct virtqueue *vq, uint16_t head, uint32_t len)
{
	struct {
		uint32_t id;
		uint32_t len;
	} elem = { htole32(head), htole32(len) };
	int ret;

	if (!vq->cfg.ready || vq->st.broken)
		return -EIO;
	ret = vq->mem->write(vq->mem->opaque,
			     vq->cfg.used_gpa + VQ_USED_RING(vq->st.used_idx % vq->cfg.num), &elem,
			     sizeof(elem));
	if (ret)
		goto err;
	/* The element before the index that publishes it; pairs with the
	 * driver's read barrier after it reads used->idx. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	ret = write_le16(vq, vq->cfg.used_gpa + 2, vq->st.used_idx + 1);
	if (ret)
		goto err;
	vq->st.used_idx++;
	return 0;
err:
	vq->st.broken = true;
	return ret;
}

int vq_fail_chain(struct virtqueue *vq, const struct vq_chain *c, uint8_t status)
{
	if (c->status_ok)
		/* Failure only means the byte is not written; still completed. */
		(void)vq->mem->write(vq->mem->opaque, c->status_gpa, &status, 1);
	return vq_push_used(vq, c->head, 0);
}

bool vq_should_notify(struct virtqueue *vq)
{
	uint16_t old, event, flags;

	/* Our used->idx store before the driver's used_event / flags load;
	 * pairs with the driver's full barrier between its used_event store
	 * and its used->idx load. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->cfg.event_idx) {
		/* Guest value: avail->flags; any unreadable value means notify. */
		if (read_le16(vq, vq->cfg.avail_gpa, &flags))
			return true;
		return !(flags & VRING_AVAIL_F_NO_INTERRUPT);
	}
	old = vq->st.signalled_used;
	vq->st.signalled_used = vq->st.used_idx;
	if (!vq->st.signalled_valid) {
		vq->st.signalled_valid = true;
		return true;
	}
	/* Guest value: used_event, any 16-bit value is meaningful. */
	if (read_le16(vq, vq->cfg.avail_gpa + VQ_AVAIL_RING(vq->cfg.num), &event))
		return true;
	return vq_need_event(event, vq->st.used_idx, old);
}

bool vq_enable_notify(struct virtqueue *vq)
{
	uint16_t avail_idx;

	if (!vq->cfg.ready || vq->st.broken)
		return false;
	if (vq->cfg.event_idx &&
	    write_le16(vq, vq->cfg.used_gpa + VQ_USED_RING(vq->cfg.num), vq->st.last_avail))
		return false;
	/* avail_event store before the avail->idx load; pairs with the
	 * driver's full barrier between its avail->idx store and its
	 * avail_event load. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (read_le16(vq, vq->cfg.avail_gpa + 2, &avail_idx))
		return false;
	return avail_idx != vq->st.last_avail;
}

void vq_save(const struct virtqueue *vq, struct vq_state *out)
{
	memset(out, 0, sizeof(*out));
	out->num = vq->cfg.num;
	out->ready = vq->cfg.ready;
	out->event_idx = vq->cfg.event_idx;
	out->indirect = vq->cfg.indirect;
	out->broken = vq->st.broken;
	out->signalled_valid = vq->st.signalled_valid;
	out->desc_gpa = vq->cfg.desc_gpa;
	out->avail_gpa = vq->cfg.avail_gpa;
	out->used_gpa = vq->cfg.used_gpa;
	out->last_avail = vq->st.last_avail;
	out->avail_pending = vq->st.avail_pending;
	out->used_idx = vq->st.used_idx;
	out->signalled_used = vq->st.signalled_used;
}

static bool is_bool(uint8_t v)
{
	return v <= 1;
}

/* The ring configuration @in describes, as vq_restore() installs it. */
static struct vq_config config_of(const struct vq_state *in)
{
	return (struct vq_config){
		.num = in->num,
		.desc_gpa = in->desc_gpa,
		.avail_gpa = in->avail_gpa,
		.used_gpa = in->used_gpa,
		.ready = in->ready,
		.event_idx = in->event_idx,
		.indirect = in->indirect,
	};
}

/* Every value of @in is untrusted (a snapshot file, another process). */
static int check_state(const struct guest_mem *mem, const struct vq_state *in, uint16_t max,
		       uint64_t acked, char *err, size_t errlen)
{
	struct vq_config cfg = config_of(in);
	uint8_t seen[VQ_MAX_SIZE] = { 0 };
	unsigned int i;

	if (!is_bool(in->ready) || !is_bool(in->event_idx) || !is_bool(in->indirect) ||
	    !is_bool(in->broken) || !is_bool(in->signalled_valid)) {
		snprintf(err, errlen, "a flag is neither 0 nor 1");
		return -EINVAL;
	}
	if (in->reserved0 || in->reserved1[0] || in->reserved1[1] || in->reserved1[2]) {
		snprintf(err, errlen, "reserved fields are not 0");
		return -EINVAL;
	}
	if ((in->event_idx && !(acked >> VIRTIO_RING_F_EVENT_IDX & 1)) ||
	    (in->indirect && !(acked >> VIRTIO_RING_F_INDIRECT_DESC & 1))) {
		snprintf(err, errlen, "ring features event_idx %u indirect %u not negotiated",
			 in->event_idx, in->indirect);
		return -EINVAL;
	}
	/* A queue not ready keeps whatever the driver wrote to its registers;
	 * vq_enable() checks them when the driver sets QueueReady. */
	if (in->ready) {
		if (in->num == 0 || in->num > max || (in->num & (in->num - 1))) {
			snprintf(err, errlen, "queue size %u: not a power of two in [1, %u]",
				 in->num, max);
			return -EINVAL;
		}
		if (!config_is_valid(mem, &cfg, max)) {
			snprintf(
			    err, errlen,
			    "rings desc %#llx avail %#llx used %#llx: misaligned or not inside "
			    "guest memory",
			    (unsigned long long)in->desc_gpa, (unsigned long long)in->avail_gpa,
			    (unsigned long long)in->used_gpa);
			return -EINVAL;
		}
		if (in->avail_pending > in->num) {
			snprintf(err, errlen, "avail_pending %u > queue size %u", in->avail_pending,
				 in->num);
			return -EINVAL;
		}
	} else if (in->avail_pending) {
		snprintf(err, errlen, "avail_pending %u on a queue that is not ready",
			 in->avail_pending);
		return -EINVAL;
	}
	if (in->ninflight && (!in->ready || in->broken)) {
		snprintf(err, errlen, "%u requests in flight on a queue that is not running",
			 in->ninflight);
		return -EINVAL;
	}
	if (in->ninflight > in->num) {
		snprintf(err, errlen, "%u requests in flight > queue size %u", in->ninflight,
			 in->num);
		return -EINVAL;
	}
	for (i = 0; i < in->ninflight; i++) {
		uint16_t h = in->inflight[i];

		if (h >= in->num) {
			snprintf(err, errlen, "in-flight head %u >= queue size %u", h, in->num);
			return -EINVAL;
		}
		if (seen[h]++) {
			snprintf(err, errlen, "in-flight head %u listed twice", h);
			return -EINVAL;
		}
	}
	for (; i < VQ_MAX_SIZE; i++) {
		if (in->inflight[i]) {
			snprintf(err, errlen, "in-flight slot %u past the count %u is not 0", i,
				 in->ninflight);
			return -EINVAL;
		}
	}
	return 0;
}

int vq_restore(struct virtqueue *vq, const struct vq_state *in, uint16_t max, uint64_t acked,
	       char *err, size_t errlen)
{
	int ret = check_state(vq->mem, in, max, acked, err, errlen);

	if (ret)
		return ret;
	vq->cfg = config_of(in);
	vq->st = (struct vq_ring_state){
		.broken = in->broken,
		.last_avail = in->last_avail,
		.avail_pending = in->avail_pending,
		.used_idx = in->used_idx,
		.signalled_used = in->signalled_used,
		.signalled_valid = in->signalled_valid,
	};
	return 0;
}
