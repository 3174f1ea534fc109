// SPDX-License-Identifier: MIT
#include <string.h>

#include "guest/test/fmt.h"
#include "guest/test/io.h"
#include "guest/test/machine.h"
#include "guest/test/virtio_blk.h"

/* The ring lives in the image (bss), well away from memcheck's free memory. */
static uint8_t ring_mem[8192] __attribute__((aligned(4096)));

/* The features we can use; anything else offered is declined. */
#define VBLK_WANTED                                                       \
	((1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_BLK_F_SIZE_MAX) | \
	 (1ULL << VIRTIO_BLK_F_SEG_MAX) | (1ULL << VIRTIO_BLK_F_RO) |     \
	 (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) | \
	 (1ULL << VIRTIO_F_INDIRECT_DESC))

uint32_t vblk_read(const struct vblk *b, uint32_t reg)
{
	return mmio_read32(b->base + reg);
}

void vblk_write(const struct vblk *b, uint32_t reg, uint32_t v)
{
	mmio_write32(b->base + reg, v);
}

void vblk_notify(const struct vblk *b, uint32_t queue)
{
	/* x86 keeps stores in order: the avail->idx store is visible before this one. */
	vblk_write(b, VIRTIO_MMIO_QUEUE_NOTIFY, queue);
}

static void set_status(const struct vblk *b, uint32_t bits)
{
	vblk_write(b, VIRTIO_MMIO_STATUS, vblk_read(b, VIRTIO_MMIO_STATUS) | bits);
}

static uint32_t config32(const struct vblk *b, uint32_t off)
{
	return vblk_read(b, VIRTIO_MMIO_CONFIG + off);
}

static void read_config(struct vblk *b)
{
	uint32_t gen;

	do {
		gen = vblk_read(b, VIRTIO_MMIO_CONFIG_GENERATION);
		/* struct virtio_blk_config: capacity (le64), size_max, seg_max, ... */
		b->capacity = config32(b, 0) | (uint64_t)config32(b, 4) << 32;
		b->size_max = vblk_has(b, VIRTIO_BLK_F_SIZE_MAX) ? config32(b, 8) : 0;
		b->seg_max = vblk_has(b, VIRTIO_BLK_F_SEG_MAX) ? config32(b, 12) : 0;
	} while (gen != vblk_read(b, VIRTIO_MMIO_CONFIG_GENERATION));
}

static int setup_queue(struct vblk *b, char *err, size_t errlen)
{
	uint32_t max, size = VBLK_QUEUE_SIZE;
	uint64_t a;

	vblk_write(b, VIRTIO_MMIO_QUEUE_SEL, 0);
	if (vblk_read(b, VIRTIO_MMIO_QUEUE_READY)) {
		fmt_snprintf(err, errlen, "queue 0 already ready after reset");
		return -1;
	}
	max = vblk_read(b, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (!max) {
		fmt_snprintf(err, errlen, "queue 0 not available (QueueNumMax 0)");
		return -1;
	}
	while (size > max)
		size >>= 1;
	if (vring_init(&b->vr, ring_mem, (uint16_t)size) ||
	    vring_mem_size(size) > sizeof(ring_mem)) {
		fmt_snprintf(err, errlen, "bad queue size %u (max %u)", size, max);
		return -1;
	}
	vblk_write(b, VIRTIO_MMIO_QUEUE_NUM, size);
	a = vring_addr(b->vr.desc);
	vblk_write(b, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)a);
	vblk_write(b, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(a >> 32));
	a = vring_addr(b->vr.avail);
	vblk_write(b, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a);
	vblk_write(b, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
	a = vring_addr(b->vr.used);
	vblk_write(b, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)a);
	vblk_write(b, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(a >> 32));
	vblk_write(b, VIRTIO_MMIO_QUEUE_READY, 1);
	memset(b->req, 0, sizeof(b->req));
	b->ndev = b->nbusy = 0;
	b->done_head = b->done_count = 0;
	return 0;
}

/* Device initialization, virtio 1.x 3.1.1, from reset to DRIVER_OK. */
static int bring_up(struct vblk *b, char *err, size_t errlen)
{
	uint64_t offered;

	vblk_write(b, VIRTIO_MMIO_STATUS, 0);
	if (vblk_read(b, VIRTIO_MMIO_STATUS)) {
		fmt_snprintf(err, errlen, "device status not 0 after reset");
		return -1;
	}
	set_status(b, VIRTIO_STATUS_ACKNOWLEDGE);
	set_status(b, VIRTIO_STATUS_DRIVER);
	vblk_write(b, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	offered = vblk_read(b, VIRTIO_MMIO_DEVICE_FEATURES);
	vblk_write(b, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	offered |= (uint64_t)vblk_read(b, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	if (!(offered & (1ULL << VIRTIO_F_VERSION_1))) {
		fmt_snprintf(err, errlen,
			     "device does not offer VIRTIO_F_VERSION_1 (features 0x%lx)",
			     (unsigned long)offered);
		set_status(b, VIRTIO_STATUS_FAILED);
		return -1;
	}
	b->features = offered & VBLK_WANTED;
	vblk_write(b, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vblk_write(b, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)b->features);
	vblk_write(b, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vblk_write(b, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(b->features >> 32));
	set_status(b, VIRTIO_STATUS_FEATURES_OK);
	if (!(vblk_read(b, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
		fmt_snprintf(err, errlen, "device refused features 0x%lx",
			     (unsigned long)b->features);
		set_status(b, VIRTIO_STATUS_FAILED);
		return -1;
	}
	read_config(b);
	if (setup_queue(b, err, errlen)) {
		set_status(b, VIRTIO_STATUS_FAILED);
		return -1;
	}
	set_status(b, VIRTIO_STATUS_DRIVER_OK);
	return 0;
}

int vblk_probe(struct vblk *b, uint64_t base, char *err, size_t errlen)
{
	uint32_t v;

	memset(b, 0, sizeof(*b));
	b->base = base;
	v = vblk_read(b, VIRTIO_MMIO_MAGIC);
	if (v != VIRTIO_MMIO_MAGIC_VALUE) {
		fmt_snprintf(err, errlen, "bad magic 0x%x at 0x%lx", v, (unsigned long)base);
		return -1;
	}
	v = vblk_read(b, VIRTIO_MMIO_VERSION);
	if (v != 2) {
		fmt_snprintf(err, errlen, "virtio-mmio version %u, want 2", v);
		return -1;
	}
	v = vblk_read(b, VIRTIO_MMIO_DEVICE_ID);
	if (v != VIRTIO_ID_BLOCK) {
		fmt_snprintf(err, errlen, "device id %u, want %u (block)", v, VIRTIO_ID_BLOCK);
		return -1;
	}
	return bring_up(b, err, errlen);
}

int vblk_reinit(struct vblk *b, char *err, size_t errlen)
{
	return bring_up(b, err, errlen);
}

int vblk_find(struct vblk *b, const struct machine *m, char *err, size_t errlen)
{
	unsigned int i;

	if (!m->nvirtio) {
		fmt_snprintf(err, errlen, "no virtio,mmio device in the device tree");
		return -1;
	}
	for (i = 0; i < m->nvirtio; i++) {
		/* Device id 0 is an empty slot: keep looking. */
		if (mmio_read32(m->virtio[i].base + VIRTIO_MMIO_MAGIC) == VIRTIO_MMIO_MAGIC_VALUE &&
		    mmio_read32(m->virtio[i].base + VIRTIO_MMIO_DEVICE_ID) != VIRTIO_ID_BLOCK)
			continue;
		return vblk_probe(b, m->virtio[i].base, err, errlen);
	}
	fmt_snprintf(err, errlen, "no virtio-blk among %u virtio,mmio devices", m->nvirtio);
	return -1;
}

bool vblk_wait_used(struct vblk *b, uint64_t tsc_ticks, uint32_t *id, uint32_t *len)
{
	uint64_t start = rdtsc();

	for (;;) {
		if (vring_get_used(&b->vr, id, len))
			return true;
		if (rdtsc() - start > tsc_ticks)
			return false;
		cpu_relax();
	}
}

uint32_t vblk_max_transfer(const struct vblk *b, uint32_t want)
{
	uint32_t segs, seg = 1u << 20;

	/* Device values: QueueNumMax (hence vr.size) may leave no room for a
	 * data descriptor beside the header and the status. */
	if (b->vr.size < 3)
		return 0;
	segs = b->vr.size - 2u;
	if (b->seg_max && b->seg_max < segs)
		segs = b->seg_max;
	if (b->size_max && b->size_max < seg)
		seg = b->size_max;
	if ((uint64_t)segs * seg < want)
		want = segs * seg;
	return want & ~(VBLK_SECTOR - 1);
}

static bool is_device_write(uint32_t type)
{
	return type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

static int token_alloc(struct vblk *b, uint32_t type, uint64_t sector)
{
	unsigned int t;

	for (t = 0; t < VBLK_QUEUE_SIZE; t++) {
		struct vblk_req *r = &b->req[t];

		if (r->state != VBLK_REQ_FREE)
			continue;
		r->hdr.type = type;
		r->hdr.reserved = 0;
		r->hdr.sector = sector;
		r->status = 0xff; /* untouched: docs/virtio-errors.md */
		r->used_len = 0;
		r->sync = false;
		return (int)t;
	}
	return -1;
}

/*
 * Header, @len bytes at @data cut in segments of at most size_max, status:
 * into @bufs (room for @max).  Return: the number of buffers, 0 if @max is too few.
 */
static unsigned int fill_bufs(const struct vblk *b, struct vblk_req *r, void *data, uint32_t len,
			      struct vring_buf *bufs, unsigned int max)
{
	bool write = is_device_write(r->hdr.type);
	uint32_t seg = b->size_max ? b->size_max : len, off;
	unsigned int n = 0;

	bufs[n++] = (struct vring_buf){ vring_addr(&r->hdr), sizeof(r->hdr), false };
	for (off = 0; off < len && n + 1u < max; off += seg) {
		uint32_t l = len - off < seg ? len - off : seg;

		bufs[n++] = (struct vring_buf){ vring_addr((char *)data + off), l, write };
	}
	if (off < len)
		return 0;
	bufs[n++] = (struct vring_buf){ vring_addr(&r->status), 1, true };
	return n;
}

/* Hand request @t, whose chain starts at @head, to the device (already published). */
static void mark_inflight(struct vblk *b, int t, int head)
{
	b->req[t].head = (uint16_t)head;
	b->req[t].state = VBLK_REQ_INFLIGHT;
	b->head_token[head] = (uint8_t)t;
	b->ndev++;
	b->nbusy++;
}

int vblk_submit(struct vblk *b, uint32_t type, uint64_t sector, void *data, uint32_t len)
{
	struct vring_buf bufs[VBLK_ASYNC_DESC];
	struct vblk_req *r;
	unsigned int n, k;
	int t, head;

	t = token_alloc(b, type, sector);
	if (t < 0)
		return -1;
	r = &b->req[t];
	n = fill_bufs(b, r, data, len, bufs, VBLK_ASYNC_DESC);
	if (!n)
		return -1;
	if (vblk_has(b, VIRTIO_F_INDIRECT_DESC)) {
		for (k = 0; k < n; k++)
			r->ind[k] = (struct vring_desc){
				bufs[k].addr, bufs[k].len,
				(uint16_t)((bufs[k].write ? VRING_DESC_F_WRITE : 0) |
					   (k + 1 < n ? VRING_DESC_F_NEXT : 0)),
				(uint16_t)(k + 1 < n ? k + 1 : 0)
			};
		head = vring_add_indirect(&b->vr, vring_addr(r->ind), n * sizeof(r->ind[0]));
	} else {
		head = vring_add_chain(&b->vr, bufs, n);
	}
	if (head < 0)
		return -1;
	mark_inflight(b, t, head);
	return t;
}

void vblk_kick(struct vblk *b)
{
	vblk_notify(b, 0);
}

unsigned int vblk_poll(struct vblk *b)
{
	unsigned int n = 0;
	uint32_t id, len;

	while (vring_get_used(&b->vr, &id, &len)) {
		struct vblk_req *r;

		n++;
		/* Device values: id must name a head we made available. */
		if (id >= b->vr.size || b->req[b->head_token[id]].state != VBLK_REQ_INFLIGHT ||
		    b->req[b->head_token[id]].head != id) {
			b->bad_used++;
			continue;
		}
		r = &b->req[b->head_token[id]];
		b->ndev--;
		if (vring_free_chain(&b->vr, (uint16_t)id))
			b->bad_used++;
		r->used_len = len;
		r->state = VBLK_REQ_DONE;
		if (!r->sync) {
			b->done_fifo[(b->done_head + b->done_count) % VBLK_QUEUE_SIZE] =
			    b->head_token[id];
			b->done_count++;
		}
	}
	return n;
}

unsigned int vblk_reap(struct vblk *b, struct vblk_done *done, unsigned int max)
{
	unsigned int n = 0;

	vblk_poll(b);
	while (n < max && b->done_count) {
		int t = b->done_fifo[b->done_head];
		struct vblk_req *r = &b->req[t];

		b->done_head = (b->done_head + 1) % VBLK_QUEUE_SIZE;
		b->done_count--;
		/* The device wrote the status before it published the used element. */
		done[n++] = (struct vblk_done){ t, READ_ONCE(r->status), r->used_len };
		r->state = VBLK_REQ_FREE;
		b->nbusy--;
	}
	return n;
}

unsigned int vblk_pending(const struct vblk *b)
{
	/* Pairs with the device's release of used->idx after each element. */
	uint16_t unread = __atomic_load_n(&b->vr.used->idx, __ATOMIC_ACQUIRE) - b->vr.last_used;

	return unread > b->ndev ? 0 : b->ndev - unread;
}

unsigned int vblk_async_max(const struct vblk *b, uint32_t len)
{
	unsigned int per = 1, segs;
	uint32_t seg = b->size_max ? b->size_max : len;

	if (!seg)
		return 0;
	segs = (len + seg - 1) / seg;
	if (segs + 2 > VBLK_ASYNC_DESC || (b->seg_max && segs > b->seg_max))
		return 0;
	if (!vblk_has(b, VIRTIO_F_INDIRECT_DESC))
		per = segs + 2;
	return b->vr.size / per < VBLK_QUEUE_SIZE ? b->vr.size / per : VBLK_QUEUE_SIZE;
}

int vblk_request(struct vblk *b, uint32_t type, uint64_t sector, void *data, uint32_t len,
		 uint32_t *used_len)
{
	struct vring_buf bufs[VBLK_QUEUE_SIZE];
	uint32_t bad = b->bad_used;
	struct vblk_req *r;
	uint64_t start;
	unsigned int n;
	int t, head, st;

	t = token_alloc(b, type, sector);
	if (t < 0)
		return -1;
	r = &b->req[t];
	n = fill_bufs(b, r, data, len, bufs,
		      b->vr.size < VBLK_QUEUE_SIZE ? b->vr.size : VBLK_QUEUE_SIZE);
	if (!n)
		return -1;
	head = vring_add_chain(&b->vr, bufs, n);
	if (head < 0)
		return -1;
	r->sync = true;
	mark_inflight(b, t, head);
	vblk_notify(b, 0);
	start = rdtsc();
	while (READ_ONCE(r->state) != VBLK_REQ_DONE) {
		if (vblk_poll(b) && b->bad_used != bad)
			return -1; /* a used element that names no request: the device is lost */
		if (rdtsc() - start > VBLK_TIMEOUT_TSC)
			return -1; /* the token stays busy: the device may still write */
		cpu_relax();
	}
	if (used_len)
		*used_len = r->used_len;
	st = READ_ONCE(r->status);
	r->state = VBLK_REQ_FREE;
	b->nbusy--;
	return st;
}
