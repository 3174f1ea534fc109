// SPDX-License-Identifier: MIT
/*
 * Deterministic randomized tests of everything a guest (or a guest image)
 * controls: virtqueue chains, virtio-blk behind virtio-mmio, the UART, the
 * ELF loader.  A fixed seed and fixed iteration counts: a failure repeats
 * exactly.  Run under `make SAN=1` to have ASan/UBSan watch every access.
 *
 * The oracles: a chain the queue accepts must satisfy the invariants of
 * struct vq_chain and match an independent walk by the rules of
 * docs/virtio-errors.md; a device must hold no pin once its requests are
 * answered (completions arrive on the disk's thread, racing the traffic),
 * must publish nothing while held, and must work again after a reset; the UART must emit exactly the bytes written to
 * THR outside DLAB and loopback; the ELF loader must refuse or load, and a
 * loaded image must satisfy the documented rules, with nothing written below
 * 1 MiB.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/serial.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"
#include "mm/mm.h"
#include "tests/helpers/fake_elf.h"
#include "tests/helpers/fake_mem.h"
#include "vmm/elf.h"

#define W VRING_DESC_F_WRITE
#define N VRING_DESC_F_NEXT
#define I VRING_DESC_F_INDIRECT

/* ---- a small deterministic generator (xorshift64*) ---------------------- */

static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
	rng_state = seed ? seed : 1;
}

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Uniform-ish in [0, n). */
static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* True with probability 1/n. */
static bool one_in(unsigned int n)
{
	return below(n) == 0;
}

/* A value near a boundary, or anything. */
static uint64_t edgy(uint64_t near)
{
	switch (below(8)) {
	case 0:
		return 0;
	case 1:
		return ~0ull - below(4);
	case 2:
		return near + below(3) - 1;
	case 3:
		return near - below(17);
	case 4:
		return 1ull << below(64);
	default:
		return rnd();
	}
}

/* ---- (a) virtqueue chains ------------------------------------------------ */

#define VQ_MEM_BASE 0x10000u
#define VQ_MEM_SIZE (1u << 20)
#define VQ_RING 0x11000u
#define VQ_TABLES 0x40000u /* indirect tables */
#define VQ_BUFS 0x60000u /* data buffers */
#define VQ_ROUNDS 400

static struct fake_mem vmem;

static bool in_ram(uint64_t gpa, uint64_t len)
{
	uint64_t end;

	return len && !__builtin_add_overflow(gpa, len, &end) && gpa >= VQ_MEM_BASE &&
	       end <= VQ_MEM_BASE + VQ_MEM_SIZE;
}

static void get_desc(uint64_t table, uint16_t i, uint64_t *addr, uint32_t *len, uint16_t *flags,
		     uint16_t *next)
{
	uint8_t *p = fake_mem_ptr(&vmem, table + 16ull * i);

	memcpy(addr, p, 8);
	memcpy(len, p + 8, 4);
	memcpy(flags, p + 12, 2);
	memcpy(next, p + 14, 2);
	*addr = le64toh(*addr);
	*len = le32toh(*len);
	*flags = le16toh(*flags);
	*next = le16toh(*next);
}

/*
 * The rules of docs/virtio-errors.md section 1, walked independently:
 * true and the segments if the chain is well formed.
 */
static bool ref_walk(const struct fake_vring *r, bool indirect, uint16_t head, struct vq_seg *seg,
		     unsigned int *nseg, uint64_t *rlen, uint64_t *wlen)
{
	uint64_t table = r->desc, addr;
	unsigned int tsize = r->num, n = 0;
	bool in_ind = false, seen_w = false;
	uint16_t idx = head, flags, next;
	uint32_t len;

	*nseg = 0;
	*rlen = *wlen = 0;
	if (head >= r->num)
		return false;
	for (;;) {
		get_desc(table, idx, &addr, &len, &flags, &next);
		if ((flags & I) && !in_ind && indirect) {
			if ((flags & N) || len == 0 || len % 16 || len / 16 > r->num ||
			    !in_ram(addr, len))
				return false;
			table = addr;
			tsize = len / 16;
			in_ind = true;
			idx = 0;
			continue;
		}
		if (flags & I)
			return false;
		if (++n > r->num)
			return false;
		/* Zero-length descriptors are ignored, except that a readable
		 * one still may not follow a (non-empty) writable one. */
		if (!(flags & W) && seen_w)
			return false;
		if (len) {
			seen_w |= (flags & W) != 0;
			if (!in_ram(addr, len))
				return false;
			seg[(*nseg)++] = (struct vq_seg){ .gpa = addr, .len = len };
			*(flags & W ? wlen : rlen) += len;
			if (*rlen > UINT32_MAX || *wlen > UINT32_MAX)
				return false;
		}
		if (!(flags & N))
			return true;
		if (next >= tsize)
			return false;
		idx = next;
	}
}

/* A descriptor that is valid, almost valid, or garbage. */
static void random_desc(uint64_t table, uint16_t i, uint16_t tsize, unsigned int ntables)
{
	uint64_t addr = VQ_BUFS + below(0x8000);
	uint32_t len = (uint32_t)(1 + below(0x800));
	uint16_t flags = (uint16_t)(below(4) ? (one_in(2) ? W : 0) | (one_in(4) ? 0 : N) : rnd());
	uint16_t next = (uint16_t)(below(8) ? below(tsize) : edgy(tsize));

	if (ntables && one_in(8)) {
		/* Point at an indirect table, usually a well-formed one. */
		flags = (uint16_t)(I | (one_in(6) ? N : 0) | (one_in(8) ? W : 0));
		addr = VQ_TABLES + 0x1000 * below(ntables);
		len = (uint32_t)(16 * (1 + below(tsize)));
		if (one_in(6))
			len = (uint32_t)edgy(len);
	}
	switch (below(12)) {
	case 0:
		addr = edgy(VQ_MEM_BASE + VQ_MEM_SIZE);
		break;
	case 1:
		len = (uint32_t)edgy(0);
		break;
	case 2:
		addr = VQ_MEM_BASE + VQ_MEM_SIZE - below(0x1000);
		break;
	case 3:
		len = 0;
		break;
	}
	fake_desc(&vmem, table, i, addr, len, flags, next);
}

static void check_chain(const struct fake_vring *r, const struct virtqueue *vq,
			const struct vq_chain *c)
{
	struct vq_seg seg[VQ_MAX_SIZE];
	uint64_t rsum = 0, wsum = 0, rlen, wlen;
	unsigned int i, nseg;
	bool ok = ref_walk(r, vq->cfg.indirect, c->head, seg, &nseg, &rlen, &wlen);

	if (c->error) {
		cr_assert_eq(c->error, -EINVAL);
		cr_assert_neq(c->why, VQ_OK);
		cr_assert(!ok, "chain %u refused (%s) but well formed", c->head,
			  vq_chain_err_str(c->why));
		if (c->status_ok)
			cr_assert(in_ram(c->status_gpa, 1));
		return;
	}
	cr_assert(ok, "chain %u accepted but malformed", c->head);
	cr_assert_leq(c->nread + c->nwrite, r->num);
	cr_assert_eq(c->nread + c->nwrite, nseg);
	for (i = 0; i < (unsigned int)(c->nread + c->nwrite); i++) {
		cr_assert_gt(c->seg[i].len, 0);
		cr_assert(in_ram(c->seg[i].gpa, c->seg[i].len));
		cr_assert_eq(c->seg[i].gpa, seg[i].gpa);
		cr_assert_eq(c->seg[i].len, seg[i].len);
		*(i < c->nread ? &rsum : &wsum) += c->seg[i].len;
	}
	cr_assert_eq(rsum, c->read_len);
	cr_assert_eq(wsum, c->write_len);
	cr_assert_eq(rlen, c->read_len);
	cr_assert_eq(wlen, c->write_len);
}

Test(dev_fuzz, random_chains_are_either_valid_or_refused)
{
	struct vq_chain *c = malloc(sizeof(*c));
	unsigned int round, i, popped = 0, good = 0;

	cr_assert_not_null(c);
	rng_seed(0x666f726b766d0001ull);
	cr_assert_eq(fake_mem_init(&vmem, VQ_MEM_BASE, VQ_MEM_SIZE, true), 0);
	for (round = 0; round < VQ_ROUNDS; round++) {
		uint16_t num = (uint16_t)(1u << below(9)); /* 1 .. 256 */
		unsigned int ntables = (unsigned int)below(8), t, k;
		struct fake_vring r;
		struct virtqueue vq;
		int ret;

		fake_vring_init(&r, &vmem, num, VQ_RING);
		vq_init(&vq, 0, &vmem.gm);
		fake_vring_attach(&r, &vq);
		vq.cfg.indirect = !one_in(4);
		vq.cfg.event_idx = one_in(2);
		cr_assert_eq(vq_enable(&vq, VQ_MAX_SIZE), 0);
		/* Start anywhere in the 16-bit index space. */
		vq.st.last_avail = vq.st.used_idx = (uint16_t)rnd();
		fake_vring_set_avail_idx(&r, vq.st.last_avail);
		for (i = 0; i < num; i++)
			random_desc(r.desc, (uint16_t)i, num, ntables);
		for (t = 0; t < ntables; t++)
			for (k = 0; k < num; k++)
				random_desc(VQ_TABLES + 0x1000 * t, (uint16_t)k, num, ntables);
		for (i = 0; i < 2u * num + 4; i++) {
			uint16_t head = (uint16_t)(below(8) ? below(num) : edgy(num));

			if (one_in(64))
				/* A jump past the queue: the queue must break. */
				fake_vring_set_avail_idx(
				    &r, (uint16_t)(r.avail_idx + num + 1 + below(1000)));
			else
				fake_vring_publish(&r, head);
			while ((ret = vq_pop_chain(&vq, c)) == 1) {
				popped++;
				check_chain(&r, &vq, c);
				if (c->error) {
					cr_assert_eq(vq_fail_chain(&vq, c, 1), 0);
				} else {
					good++;
					cr_assert_eq(vq_push_used(&vq, c->head, c->write_len), 0);
				}
				(void)vq_should_notify(&vq);
			}
			if (ret < 0) {
				cr_assert(vq.st.broken);
				break;
			}
			(void)vq_enable_notify(&vq);
		}
	}
	fake_mem_fini(&vmem);
	free(c);
	/* The generator must reach both outcomes often. */
	cr_expect_gt(good, popped / 10, "%u good of %u", good, popped);
	cr_expect_lt(good, popped - popped / 10, "%u good of %u", good, popped);
}

/* ---- (b) virtio-blk behind virtio-mmio ----------------------------------- */

#define BLK_MEM (2u << 20)
#define BLK_RING 0x1000u
#define BLK_QSIZE 64u
#define BLK_HDR 0x10000u
#define BLK_STATUS 0x11000u
#define BLK_DATA 0x20000u
#define BLK_SECTORS 32u
#define BLK_OPS 20000

#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_DRIVER_LO 0x090
#define R_DRIVER_HI 0x094
#define R_DEVICE_LO 0x0a0
#define R_DEVICE_HI 0x0a4
#define R_CONFIG 0x100
#define BLK_CONFIG_BYTES 24u

struct blk_rig {
	struct fake_mem mem;
	struct fake_vring ring;
	struct virtio_mmio *mmio;
	struct bus_region reg;
	char path[64];
	int fd;
	uint8_t config[BLK_CONFIG_BYTES]; /* what config space must read */
};

static uint32_t rig_rd(struct blk_rig *g, uint64_t off)
{
	uint32_t v;

	g->reg.read(g->reg.opaque, off, &v, 4);
	return le32toh(v);
}

static void rig_wr(struct blk_rig *g, uint64_t off, uint32_t v)
{
	v = htole32(v);
	g->reg.write(g->reg.opaque, off, &v, 4);
}

static void rig_open(struct blk_rig *g, const struct dev_host *host)
{
	struct virtio_blk_config cfg = { .path = g->path };
	uint8_t sector[512];
	struct virtio_dev *dev;
	uint64_t cap = htole64(BLK_SECTORS);
	uint32_t v;
	unsigned int i;

	cr_assert_eq(fake_mem_init(&g->mem, 0, BLK_MEM, true), 0);
	snprintf(g->path, sizeof(g->path), "/tmp/forkvm-fuzz-XXXXXX");
	g->fd = mkstemp(g->path);
	cr_assert_geq(g->fd, 0);
	for (i = 0; i < BLK_SECTORS; i++) {
		memset(sector, (int)(i + 1), sizeof(sector));
		cr_assert_eq(pwrite(g->fd, sector, sizeof(sector), i * 512), 512);
	}
	cr_assert_eq(virtio_blk_create(&cfg, &dev), 0);
	cr_assert_eq(virtio_mmio_create(0xd0000000, 5, dev, &g->mem.gm, host, &g->mmio), 0);
	g->reg = virtio_mmio_region(g->mmio);
	memset(g->config, 0, sizeof(g->config));
	memcpy(g->config, &cap, 8);
	v = htole32(1u << 20);
	memcpy(g->config + 8, &v, 4);
	v = htole32(254);
	memcpy(g->config + 12, &v, 4);
	v = htole32(512);
	memcpy(g->config + 20, &v, 4);
}

static void rig_close(struct blk_rig *g)
{
	virtio_mmio_destroy(g->mmio);
	cr_expect(fake_mem_pins_released(&g->mem), "pins %u unpins %u", g->mem.pins, g->mem.unpins);
	fake_mem_fini(&g->mem);
	close(g->fd);
	unlink(g->path);
}

/* Reset, negotiate, set up queue 0 and go: the driver's side, done right. */
static void rig_driver_init(struct blk_rig *g)
{
	uint64_t f = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
		     (one_in(2) ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0);

	rig_wr(g, R_STATUS, 0);
	rig_wr(g, R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	rig_wr(g, R_DRV_FEATURES_SEL, 0);
	rig_wr(g, R_DRV_FEATURES, (uint32_t)f);
	rig_wr(g, R_DRV_FEATURES_SEL, 1);
	rig_wr(g, R_DRV_FEATURES, (uint32_t)(f >> 32));
	rig_wr(g, R_STATUS,
	       VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	cr_assert(rig_rd(g, R_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	fake_vring_init(&g->ring, &g->mem, BLK_QSIZE, BLK_RING);
	memset(fake_mem_ptr(&g->mem, BLK_RING), 0, fake_vring_end(&g->ring) - BLK_RING);
	rig_wr(g, R_QUEUE_SEL, 0);
	rig_wr(g, R_QUEUE_NUM, BLK_QSIZE);
	rig_wr(g, R_DESC_LO, (uint32_t)g->ring.desc);
	rig_wr(g, R_DESC_HI, 0);
	rig_wr(g, R_DRIVER_LO, (uint32_t)g->ring.avail);
	rig_wr(g, R_DRIVER_HI, 0);
	rig_wr(g, R_DEVICE_LO, (uint32_t)g->ring.used);
	rig_wr(g, R_DEVICE_HI, 0);
	rig_wr(g, R_QUEUE_READY, 1);
	cr_assert_eq(rig_rd(g, R_QUEUE_READY), 1);
	rig_wr(g, R_STATUS, rig_rd(g, R_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
	cr_assert_eq(rig_rd(g, R_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET, 0);
}

/* A request of header, data and status; often bent out of shape. */
static void rig_submit(struct blk_rig *g, bool mutate)
{
	uint16_t head = (uint16_t)below(BLK_QSIZE - 3);
	uint32_t type = mutate && one_in(4) ? (uint32_t)rnd() : (uint32_t)below(2) * 1;
	uint64_t sector = mutate && one_in(4) ? edgy(BLK_SECTORS) : below(BLK_SECTORS);
	uint32_t len = 512 * (uint32_t)(1 + below(4));
	uint16_t data_flags;
	uint8_t hdr[16];

	if (mutate && one_in(3))
		type = one_in(2) ? 4 : 8; /* FLUSH, GET_ID */
	if (mutate && one_in(4))
		len = (uint32_t)edgy(len);
	/* IN and GET_ID: the device writes the data buffer. */
	data_flags = (uint16_t)((type == 0 || type == 8 ? W : 0) | N);
	type = htole32(type);
	sector = htole64(sector);
	memcpy(hdr, &type, 4);
	memset(hdr + 4, 0, 4);
	memcpy(hdr + 8, &sector, 8);
	memcpy(fake_mem_ptr(&g->mem, BLK_HDR), hdr, sizeof(hdr));
	fake_mem_set_u8(&g->mem, BLK_STATUS, 0xee);
	fake_vring_desc(&g->ring, head, BLK_HDR, 16, N, head + 1);
	fake_vring_desc(&g->ring, head + 1, BLK_DATA + below(0x1000), len, data_flags, head + 2);
	fake_vring_desc(&g->ring, head + 2, BLK_STATUS, 1, W, 0);
	if (mutate && one_in(2))
		/* Any field of any of the three descriptors. */
		((uint8_t *)fake_mem_ptr(
		    &g->mem, g->ring.desc + 16ull * (head + below(3))))[below(16)] = (uint8_t)rnd();
	fake_vring_publish(&g->ring, head);
	rig_wr(g, R_QUEUE_NOTIFY, 0);
}

/* One random register or config access of a random width at a random offset. */
static void rig_poke(struct blk_rig *g)
{
	static const unsigned int widths[] = { 1, 2, 4, 8 };
	unsigned int len = widths[below(4)];
	uint64_t off;
	uint8_t buf[16], guard[16];

	switch (below(4)) {
	case 0:
		off = R_CONFIG + below(BLK_CONFIG_BYTES + 8);
		break;
	case 1:
		off = below(VIRTIO_MMIO_SIZE);
		break;
	default:
		off = 4 * below(0x40) + (one_in(8) ? below(4) : 0);
	}
	if (one_in(2)) {
		uint64_t v = one_in(2) ? rnd() : below(BLK_MEM);

		/* QueueNotify runs the device on whatever the rings hold. */
		memcpy(buf, &v, sizeof(v));
		g->reg.write(g->reg.opaque, off, buf, len);
		return;
	}
	memset(buf, 0xa5, sizeof(buf));
	memset(guard, 0xa5, sizeof(guard));
	g->reg.read(g->reg.opaque, off, buf, len);
	/* Nothing past @len is touched. */
	cr_assert_arr_eq(buf + len, guard + len, sizeof(buf) - len, "read of %u at %#llx", len,
			 (unsigned long long)off);
	if (off >= R_CONFIG) {
		uint64_t c = off - R_CONFIG;
		bool in = c + len <= BLK_CONFIG_BYTES;

		if (in)
			cr_assert_arr_eq(buf, g->config + c, len, "config %u at %llu", len,
					 (unsigned long long)c);
		else
			cr_assert_arr_eq(buf, (uint8_t[8]){ 0 }, len);
	}
}

/* After the storm: a reset and one well-formed read must work. */
/* One well-formed request on a clean ring; wait for its answer. */
static void rig_request(struct blk_rig *g, uint16_t head, uint32_t type, uint32_t len_used)
{
	uint32_t hdr[4] = { htole32(type), 0, 0, 0 }; /* sector 0 */
	uint32_t id, len;
	unsigned int i;

	fake_vring_desc(&g->ring, head, BLK_HDR, 16, N, head + 1);
	fake_vring_desc(&g->ring, head + 1, BLK_DATA, 512, (type == 0 ? W : 0) | N, head + 2);
	fake_vring_desc(&g->ring, head + 2, BLK_STATUS, 1, W, 0);
	memcpy(fake_mem_ptr(&g->mem, BLK_HDR), hdr, 16);
	fake_mem_set_u8(&g->mem, BLK_STATUS, 0xee);
	fake_vring_publish(&g->ring, head);
	rig_wr(g, R_QUEUE_NOTIFY, 0);
	/* With a service thread the pop itself is asynchronous. */
	for (i = 0; i < 2000 && fake_vring_used_idx(&g->ring) != g->ring.avail_idx; i++)
		usleep(1000);
	cr_assert_eq(fake_vring_used_idx(&g->ring), g->ring.avail_idx);
	fake_vring_used(&g->ring, g->ring.avail_idx - 1, &id, &len);
	cr_assert_eq(id, head);
	cr_assert_eq(len, len_used);
	cr_assert_eq(fake_mem_u8(&g->mem, BLK_STATUS), 0);
}

/* After the storm: a reset, then a write and a read of sector 0 must work. */
static void rig_check_recovers(struct blk_rig *g)
{
	uint8_t *data = fake_mem_ptr(&g->mem, BLK_DATA);
	unsigned int i;

	rig_driver_init(g);
	/* Through the device: after a clone the disk's writes go to its
	 * overlay, not to the file (disk.h), so the file cannot reset it. */
	memset(data, 1, 512);
	rig_request(g, 0, 1, 1); /* OUT */
	memset(data, 0, 512);
	rig_request(g, 3, 0, 513); /* IN */
	for (i = 0; i < 512; i++)
		cr_assert_eq(data[i], 1);
}

Test(dev_fuzz, blk_survives_random_register_traffic_and_requests)
{
	struct blk_rig g;
	unsigned int op;

	rng_seed(0x666f726b766d0002ull);
	rig_open(&g, NULL);
	rig_driver_init(&g);
	for (op = 0; op < BLK_OPS; op++) {
		unsigned int what = (unsigned int)below(100);

		if (what < 45)
			rig_poke(&g);
		else if (what < 90)
			rig_submit(&g, !one_in(4));
		else if (what < 95)
			rig_driver_init(&g);
		else
			/* The rings' memory itself, anywhere in it. */
			((uint8_t *)fake_mem_ptr(&g.mem, BLK_RING))[below(0x3000)] = (uint8_t)rnd();
		/* Completions race the next accesses, or are waited for: once
		 * every request is answered, nothing may stay pinned. */
		if (one_in(2)) {
			cr_assert_eq(virtio_mmio_drain(g.mmio, 10000), 0, "op %u", op);
			cr_assert(fake_mem_pins_released(&g.mem), "op %u: pins %u unpins %u", op,
				  g.mem.pins, g.mem.unpins);
		}
	}
	rig_check_recovers(&g);
	rig_close(&g);
}

static int fake_irqfd(void *opaque, unsigned int gsi)
{
	return *(int *)opaque;
}

/*
 * Whatever state guest traffic drove the device into, a clone of it can be
 * made: the saved state restores into a fresh transport over a copy of the
 * memory (its in-flight chains re-read there, whatever the guest scribbled
 * over them since), and the clone goes away cleanly.
 */
static void rig_check_clone(struct blk_rig *g, unsigned int op)
{
	struct virtio_mmio_state *st = calloc(1, sizeof(*st));
	struct virtio_mmio *cmmio;
	struct virtio_dev *cdev;
	struct fake_mem cmem;
	char err[256] = "";

	cr_assert_not_null(st);
	cr_assert_eq(virtio_mmio_save(g->mmio, st), 0, "op %u", op);
	cr_assert_eq(fake_mem_init(&cmem, 0, BLK_MEM, true), 0);
	memcpy(cmem.buf, g->mem.buf, BLK_MEM);
	cr_assert_eq(virtio_blk_fork(virtio_mmio_dev(g->mmio), &cdev), 0);
	cr_assert_eq(virtio_mmio_create(0xd0000000, 5, cdev, &cmem.gm, NULL, &cmmio), 0);
	cr_assert_eq(virtio_mmio_restore(cmmio, st, err, sizeof(err)), 0, "op %u: %s", op, err);
	cr_assert_eq(virtio_mmio_drain(cmmio, 10000), 0, "op %u", op);
	virtio_mmio_destroy(cmmio);
	cr_assert(fake_mem_pins_released(&cmem), "op %u", op);
	fake_mem_fini(&cmem);
	free(st);
}

/*
 * Held: whatever completes is not published (used idx, interrupts), a kick
 * pops nothing, and only requests in flight hold pins; after release every
 * completion is published and every pin goes.
 */
static void rig_check_held(struct blk_rig *g, unsigned int op)
{
	unsigned int held, used;
	uint64_t irqs;

	virtio_mmio_hold(g->mmio);
	used = fake_vring_used_idx(&g->ring);
	irqs = virtio_mmio_irq_count(g->mmio);
	if (one_in(2))
		rig_submit(g, false);
	cr_assert_eq(virtio_mmio_drain(g->mmio, 10000), 0, "op %u", op);
	held = virtio_mmio_inflight(g->mmio);
	/* A read or write holds one pin (< 1 MiB); FLUSH and GET_ID none. */
	cr_assert_leq(g->mem.pins - g->mem.unpins, held, "op %u", op);
	cr_assert_eq(fake_vring_used_idx(&g->ring), used, "op %u: published while held", op);
	cr_assert_eq(virtio_mmio_irq_count(g->mmio), irqs, "op %u: interrupt while held", op);
	if (one_in(2))
		rig_check_clone(g, op);
	virtio_mmio_release(g->mmio);
	if (one_in(2)) {
		cr_assert_eq(virtio_mmio_drain(g->mmio, 10000), 0, "op %u", op);
		cr_assert(fake_mem_pins_released(&g->mem), "op %u", op);
	}
}

Test(dev_fuzz, blk_service_thread_survives_resets_and_holds_racing_requests)
{
	int irq = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct dev_host host = { .irqfd = fake_irqfd, .opaque = &irq };
	struct blk_rig g;
	unsigned int op;

	cr_assert_geq(irq, 0);
	rng_seed(0x666f726b766d0003ull);
	rig_open(&g, &host);
	rig_driver_init(&g);
	for (op = 0; op < BLK_OPS / 4; op++) {
		unsigned int what = (unsigned int)below(100);

		if (what < 30) {
			rig_poke(&g);
		} else if (what < 80) {
			rig_submit(&g, one_in(2));
		} else if (what < 90) {
			rig_driver_init(&g);
		} else {
			rig_check_held(&g, op);
		}
	}
	cr_assert_eq(virtio_mmio_drain(g.mmio, 10000), 0);
	cr_assert(fake_mem_pins_released(&g.mem));
	rig_check_recovers(&g);
	rig_close(&g);
	close(irq);
}

/* ---- (c) the UART ---------------------------------------------------------- */

Test(dev_fuzz, serial_survives_random_port_traffic_and_emits_exactly_thr_bytes)
{
	int fd = memfd_create("fuzz-serial", MFD_CLOEXEC);
	uint8_t lcr = 0, mcr = 0, buf[8], guard[8];
	uint64_t expect = 0;
	struct serial *s;
	struct bus_region reg;
	struct stat st;
	unsigned int op;

	cr_assert_geq(fd, 0);
	rng_seed(0x666f726b766d0004ull);
	cr_assert_eq(serial_create(fd, NULL, SERIAL_COM1_GSI, &s), 0);
	reg = serial_region(s);
	for (op = 0; op < 50000; op++) {
		static const unsigned int widths[] = { 1, 2, 4 };
		unsigned int len = widths[below(3)];
		uint64_t off = one_in(8) ? below(64) : below(8);
		uint32_t v = (uint32_t)rnd();

		if (one_in(2)) {
			reg.write(reg.opaque, off, &v, len);
			/* Only the low byte counts; track DLAB and loopback. */
			if (off == 3)
				lcr = (uint8_t)v;
			else if (off == 4)
				mcr = (uint8_t)v & 0x1f;
			else if (off == 0 && !(lcr & 0x80) && !(mcr & 0x10))
				expect++;
			continue;
		}
		memset(buf, 0x5c, sizeof(buf));
		memset(guard, 0x5c, sizeof(guard));
		reg.read(reg.opaque, off, buf, len);
		cr_assert_arr_eq(buf + len, guard + len, sizeof(buf) - len);
		if (off == 5)
			cr_assert_eq(buf[0] & 0x60, 0x60, "LSR says THRE|TEMT");
	}
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq((uint64_t)st.st_size, expect);
	serial_destroy(s);
	close(fd);
}

/* ---- (d) the ELF loader ---------------------------------------------------- */

#define ELF_MEM (16ull << 20)
#define ELF_ROUNDS 3000

/* The documented rules (vmm/elf.h) for an image elf_load() accepted. */
static void check_loaded(const uint8_t *data, size_t size, const struct elf_image *img)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	unsigned int i;
	bool entry_ok = false;

	cr_assert_geq(size, sizeof(eh));
	memcpy(&eh, data, sizeof(eh));
	cr_assert_leq(eh.e_phoff + eh.e_phnum * sizeof(ph), size);
	for (i = 0; i < eh.e_phnum; i++) {
		memcpy(&ph, data + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || (!ph.p_memsz && !ph.p_filesz))
			continue;
		cr_assert_leq(ph.p_filesz, ph.p_memsz);
		cr_assert_leq(ph.p_offset, size);
		cr_assert_leq(ph.p_filesz, size - ph.p_offset);
		cr_assert_geq(ph.p_paddr, 0x100000);
		cr_assert_leq(ph.p_memsz, ELF_MEM);
		cr_assert_leq(ph.p_paddr, ELF_MEM - ph.p_memsz);
		if ((ph.p_flags & PF_X) && img->entry >= ph.p_paddr &&
		    img->entry - ph.p_paddr < ph.p_memsz)
			entry_ok = true;
	}
	cr_assert(entry_ok);
	cr_assert_leq(img->end, ELF_MEM);
}

static void mutate_elf(uint8_t *elf, size_t *size)
{
	static const size_t phdr_fields[] = { 0, 4, 8, 16, 24, 32, 40, 48 };
	unsigned int n = 1 + (unsigned int)below(4), k;

	for (k = 0; k < n; k++) {
		switch (below(6)) {
		case 0: /* a random byte anywhere */
			elf[below(*size)] = (uint8_t)rnd();
			break;
		case 1: { /* a program header field */
			uint64_t v = edgy(one_in(2) ? 0x100000 : ELF_MEM);
			size_t at = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) * below(2) +
				    phdr_fields[below(8)];

			memcpy(elf + at, &v, at % 8 == 4 ? 4 : 8);
			break;
		}
		case 2: { /* e_phoff, e_phnum, e_entry */
			uint64_t v = edgy(64);
			uint16_t n16 = (uint16_t)edgy(2);

			if (one_in(2))
				memcpy(elf + offsetof(Elf64_Ehdr, e_phoff), &v, 8);
			else if (one_in(2))
				memcpy(elf + offsetof(Elf64_Ehdr, e_phnum), &n16, 2);
			else
				memcpy(elf + offsetof(Elf64_Ehdr, e_entry), &v, 8);
			break;
		}
		case 3: /* a truncated file */
			*size = below(*size + 1);
			if (!*size)
				*size = 1;
			break;
		case 4: /* p_type PT_LOAD with p_memsz 0 */
			memset(elf + sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) * below(2) + 40, 0, 8);
			break;
		default: /* a small nudge of a size or offset */
			elf[sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) * below(2) + 8 +
			    8 * below(5)] += (uint8_t)(below(3) - 1);
		}
	}
}

Test(dev_fuzz, elf_loader_loads_or_refuses_mutated_images)
{
	struct space_range r = { .gpa = 0, .size = ELF_MEM };
	uint8_t base[FAKE_ELF_SIZE], *low;
	unsigned int round, loaded = 0, i;
	struct pool *pool;
	struct space *space;

	rng_seed(0x666f726b766d0005ull);
	cr_assert_eq(pool_create(NULL, &pool), 0);
	cr_assert_eq(space_create(pool, &r, 1, &space), 0);
	fake_elf_build(base);
	for (round = 0; round < ELF_ROUNDS; round++) {
		size_t size = sizeof(base);
		unsigned int skew = (unsigned int)below(8);
		/* Exactly the file's bytes, at any alignment: ASan sees an overread. */
		uint8_t *buf = malloc(size + skew), *elf = buf + skew;
		struct elf_image img = { 0 };
		char err[256] = "";
		int ret;

		cr_assert_not_null(buf);
		memcpy(elf, base, size);
		mutate_elf(elf, &size);
		if (size < sizeof(base)) {
			uint8_t *tight = malloc(size + skew);

			cr_assert_not_null(tight);
			memcpy(tight + skew, elf, size);
			free(buf);
			buf = tight;
			elf = tight + skew;
		}
		ret = elf_load(space, elf, size, &img, err, sizeof(err));
		if (ret) {
			cr_assert_lt(ret, 0);
			cr_assert_neq(err[0], '\0', "a refusal says why");
		} else {
			loaded++;
			check_loaded(elf, size, &img);
		}
		free(buf);
	}
	/* Nothing was ever written below 1 MiB (the VMM's tables and FDT). */
	low = malloc(0x100000);
	cr_assert_not_null(low);
	cr_assert_eq(space_read(space, 0, low, 0x100000), 0);
	for (i = 0; i < 0x100000; i++)
		cr_assert_eq(low[i], 0, "byte %#x below 1 MiB written", i);
	free(low);
	space_destroy(space);
	pool_destroy(pool);
	cr_expect_gt(loaded, ELF_ROUNDS / 20, "only %u of %u loaded", loaded, ELF_ROUNDS);
	cr_expect_lt(loaded, ELF_ROUNDS - ELF_ROUNDS / 20, "%u of %u loaded", loaded, ELF_ROUNDS);
}
