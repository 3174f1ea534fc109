// SPDX-License-Identifier: MIT
#include <string.h>

#include "guest/test/fmt.h"
#include "guest/test/io.h"
#include "guest/test/machine.h"
#include "guest/test/virtio_blk.h"

/* The ring lives in the image (bss), well away from memcheck's free memory. */
static uint8_t ring_mem[8192] __attribute__((aligned(4096)));

/* Header and status of the one request in flight. */
static struct {
	struct virtio_blk_req_hdr hdr;
	uint8_t status;
} req __attribute__((aligned(64)));

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

int vblk_request(struct vblk *b, uint32_t type, uint64_t sector, void *data, uint32_t len,
		 uint32_t *used_len)
{
	struct vring_buf bufs[VBLK_QUEUE_SIZE];
	bool write = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	uint32_t seg = b->size_max ? b->size_max : len, off, id, ulen;
	unsigned int n = 0;
	int head;

	req.hdr.type = type;
	req.hdr.reserved = 0;
	req.hdr.sector = sector;
	req.status = 0xff;
	bufs[n++] = (struct vring_buf){ vring_addr(&req.hdr), sizeof(req.hdr), false };
	for (off = 0; off < len && n + 1u < b->vr.size; off += seg) {
		uint32_t l = len - off < seg ? len - off : seg;

		bufs[n++] = (struct vring_buf){ vring_addr((char *)data + off), l, write };
	}
	if (off < len)
		return -1;
	bufs[n++] = (struct vring_buf){ vring_addr(&req.status), 1, true };
	head = vring_add_chain(&b->vr, bufs, n);
	if (head < 0)
		return -1;
	vblk_notify(b, 0);
	if (!vblk_wait_used(b, VBLK_TIMEOUT_TSC, &id, &ulen))
		return -1;
	if (used_len)
		*used_len = ulen;
	if (id != (uint32_t)head || vring_free_chain(&b->vr, (uint16_t)head))
		return -1;
	return READ_ONCE(req.status);
}
