// SPDX-License-Identifier: MIT
/* virtio-blk over a real mm guest space: the DMA path through space_pin. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/disk_pattern.h"
#include "devices/mm_guest_mem.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"
#include "mm/mm.h"

#define MEM_SIZE (4u << 20)
#define QSIZE 16u
#define DESC 0x1000u
#define AVAIL 0x2000u
#define USED 0x3000u
#define HDR 0x10000u
#define STATUS 0x11000u
#define DATA 0x20000u
#define SEED 0x1234u

static struct pool *pool;
static struct space *space;
static struct guest_mem gm;
static struct virtio_mmio *mmio;
static struct bus_region reg;
static char path[] = "/tmp/forkvm-mmblk-XXXXXX";
static int disk_fd = -1;
static uint16_t avail_idx;
static struct virtio_dev *blkdev; /* owned by mmio */

static void wr(uint64_t off, uint32_t v)
{
	v = htole32(v);
	reg.write(reg.opaque, off, &v, 4);
}

static uint32_t rd(uint64_t off)
{
	uint32_t v;

	reg.read(reg.opaque, off, &v, 4);
	return le32toh(v);
}

static void put(uint64_t gpa, const void *p, size_t n)
{
	cr_assert_eq(space_write(space, gpa, p, n), 0);
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	struct {
		uint64_t a;
		uint32_t l;
		uint16_t f, n;
	} d = { htole64(addr), htole32(len), htole16(flags), htole16(next) };

	put(DESC + 16u * i, &d, 16);
}

static void publish(uint16_t head)
{
	uint16_t h = htole16(head), idx;

	put(AVAIL + 4 + 2u * (avail_idx % QSIZE), &h, 2);
	avail_idx++;
	idx = htole16(avail_idx);
	put(AVAIL + 2, &idx, 2);
	wr(0x050, 0);
}

static void setup_with(uint64_t latency)
{
	struct space_range r = { 0, MEM_SIZE };
	struct virtio_blk_config cfg = { .path = path, .latency_ns = latency };
	struct virtio_dev *dev;
	int ret;

	ret = pool_create(NULL, &pool);
	if (ret == -ENOSYS || ret == -EPERM)
		cr_skip_test("no userfaultfd write-protect here (%d)", ret);
	cr_assert_eq(ret, 0);
	cr_assert_eq(space_create(pool, &r, 1, &space), 0);
	mm_guest_mem_init(&gm, space);
	disk_fd = mkstemp(path);
	cr_assert_geq(disk_fd, 0);
	cr_assert_eq(disk_pattern_fill(disk_fd, 64 * 512, SEED), 0);
	cr_assert_eq(virtio_blk_create(&cfg, &dev), 0);
	cr_assert_eq(virtio_mmio_create(0xd0000000, 5, dev, &gm, NULL, &mmio), 0);
	blkdev = dev;
	reg = virtio_mmio_region(mmio);
	avail_idx = 0;
	wr(0x070, 1 | 2);
	wr(0x024, 1);
	wr(0x020, 1); /* VERSION_1 */
	wr(0x070, 1 | 2 | 8);
	wr(0x030, 0);
	wr(0x038, QSIZE);
	wr(0x080, DESC);
	wr(0x090, AVAIL);
	wr(0x0a0, USED);
	wr(0x044, 1);
	wr(0x070, 1 | 2 | 8 | 4);
	cr_assert_eq(rd(0x070), 15);
}

static void setup(void)
{
	setup_with(0);
}

static void teardown(void)
{
	virtio_mmio_destroy(mmio);
	space_destroy(space);
	pool_destroy(pool);
	close(disk_fd);
	unlink(path);
}

/* Request @i of @type (0 IN, 1 OUT; descriptors 3i..3i+2, its own header,
 * data and status): popped and submitted when this returns, not
 * necessarily answered. */
static void start_io_at(unsigned int i, uint32_t type, uint64_t data, uint64_t sector, uint32_t len)
{
	uint32_t hdr[4] = { htole32(type), 0, htole32((uint32_t)sector), 0 };
	uint8_t st = 0xee;
	uint16_t d = (uint16_t)(3 * i);

	put(HDR + 16 * i, hdr, 16);
	put(STATUS + i, &st, 1);
	desc(d, HDR + 16 * i, 16, VRING_DESC_F_NEXT, d + 1);
	desc(d + 1, data, len, (type == 0 ? VRING_DESC_F_WRITE : 0) | VRING_DESC_F_NEXT, d + 2);
	desc(d + 2, STATUS + i, 1, VRING_DESC_F_WRITE, 0);
	publish(d);
}

static void start_read_at(unsigned int i, uint64_t data, uint64_t sector, uint32_t len)
{
	start_io_at(i, 0, data, sector, len);
}

static uint8_t submit_read(uint64_t sector, uint32_t len)
{
	uint8_t st;

	start_read_at(0, DATA, sector, len);
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	cr_assert_eq(space_read(space, STATUS, &st, 1), 0);
	return st;
}

TestSuite(mm_blk, .init = setup, .fini = teardown);

Test(mm_blk, read_lands_in_guest_memory_and_every_pin_is_released)
{
	struct pool_stats st;
	uint8_t got[4096], want[4096];

	cr_assert_eq(submit_read(8, 4096), 0);
	cr_assert_eq(space_read(space, DATA, got, sizeof(got)), 0);
	disk_pattern_fill_buf(want, 8 * 512, sizeof(want), SEED);
	cr_expect_eq(memcmp(got, want, sizeof(got)), 0);
	pool_get_stats(pool, &st);
	cr_expect_gt(st.pins, 0);
	cr_expect_eq(st.pinned_frames, 0, "no pin outlives its request");
}

Test(mm_blk, device_write_into_a_forked_page_leaves_the_child_intact)
{
	struct space *child;
	uint8_t before[512], after[512];

	memset(before, 0x5a, sizeof(before));
	put(DATA, before, sizeof(before));
	cr_assert_eq(space_fork(space, &child), 0);
	/* The parent's device writes the shared page: the pin breaks COW. */
	cr_assert_eq(submit_read(0, 512), 0);
	cr_assert_eq(space_read(child, DATA, after, sizeof(after)), 0);
	cr_expect_eq(memcmp(before, after, sizeof(after)), 0, "the child kept its copy");
	cr_assert_eq(space_read(space, DATA, after, sizeof(after)), 0);
	cr_expect_neq(memcmp(before, after, sizeof(after)), 0, "the parent got the data");
	space_destroy(child);
}

Test(mm_blk, check_refuses_ranges_outside_the_space)
{
	cr_expect_eq(gm.check(gm.opaque, 0, MEM_SIZE), 0);
	cr_expect_eq(gm.check(gm.opaque, MEM_SIZE - 1, 2), -EFAULT);
	cr_expect_eq(gm.check(gm.opaque, UINT64_MAX, 2), -EINVAL);
	cr_expect_eq(gm.check(gm.opaque, 0, 0), -EINVAL);
}

Test(mm_blk, read_past_capacity_gets_ioerr_without_pinning)
{
	struct pool_stats st;

	cr_expect_eq(submit_read(63, 1024), 1);
	pool_get_stats(pool, &st);
	cr_expect_eq(st.pinned_frames, 0);
}

/* ---- requests in flight across a fork ------------------------------------- */

#define LATENCY_MS 400u

static void setup_async(void)
{
	setup_with(LATENCY_MS * 1000000ull);
}

TestSuite(mm_blk_async, .init = setup_async, .fini = teardown, .timeout = 60);

static bool has_disk_data(struct space *s, uint64_t gpa, uint64_t sector, uint32_t len)
{
	uint8_t got[4096], want[4096];

	cr_assert_leq(len, sizeof(got));
	cr_assert_eq(space_read(s, gpa, got, len), 0);
	disk_pattern_fill_buf(want, sector * 512, len, SEED);
	return memcmp(got, want, len) == 0;
}

Test(mm_blk_async, a_read_in_flight_keeps_its_frame_pinned_until_it_completes)
{
	struct pool_stats st;
	uint64_t frame;

	start_read_at(0, DATA, 8, 4096);
	frame = space_frame_of(space, DATA);
	cr_assert_neq(frame, MM_NO_FRAME, "the write pin gave the page a frame");
	cr_expect_geq(pool_frame_count(pool, frame), 1024, "pinned: the bias is in page_count");
	pool_get_stats(pool, &st);
	cr_expect_gt(st.pinned_frames, 0);
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	cr_expect_lt(pool_frame_count(pool, frame), 1024, "unpinned at completion");
	pool_get_stats(pool, &st);
	cr_expect_eq(st.pinned_frames, 0);
	cr_expect(has_disk_data(space, DATA, 8, 4096));
}

Test(mm_blk_async, fork_during_a_read_copies_the_pinned_frame_and_the_data_stays_in_the_parent)
{
	struct pool_stats st;
	struct space *child;
	uint8_t before[4096], after[4096];

	memset(before, 0x5a, sizeof(before));
	put(DATA, before, sizeof(before));
	start_read_at(0, DATA, 0, 4096);
	cr_assert_eq(virtio_mmio_inflight(mmio), 1);
	/* The clone instant, with the device's write still to come. */
	cr_assert_eq(space_fork(space, &child), 0);
	pool_get_stats(pool, &st);
	cr_expect_gt(st.fork_copies, 0, "the pinned frame was copied for the child");
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	cr_expect(has_disk_data(space, DATA, 0, 4096), "the parent got its data");
	cr_assert_eq(space_read(child, DATA, after, sizeof(after)), 0);
	cr_expect_eq(memcmp(before, after, sizeof(after)), 0,
		     "the device's write did not land in the child");
	space_destroy(child);
}

Test(mm_blk_async, clone_with_reads_in_flight_reexecutes_them_into_its_own_memory)
{
	struct virtio_mmio_state *vs = calloc(1, sizeof(*vs));
	struct virtio_mmio *cmmio;
	struct virtio_dev *cdev;
	struct guest_mem cgm;
	struct space *child;
	uint8_t st;
	char err[256] = "";
	unsigned int i;

	for (i = 0; i < 4; i++)
		start_read_at(i, DATA + 0x1000 * i, 8 * i, 4096);
	/* The clone pipeline: hold, fork memory and disk, save, restore. */
	virtio_mmio_hold(mmio);
	cr_assert_eq(space_fork(space, &child), 0);
	cr_assert_eq(virtio_blk_fork(blkdev, &cdev), 0);
	cr_assert_eq(virtio_mmio_save(mmio, vs), 0);
	cr_assert_eq(vs->vq[0].ninflight, 4, "all 4 in flight (latency %u ms)", LATENCY_MS);
	mm_guest_mem_init(&cgm, child);
	cr_assert_eq(virtio_mmio_create(0xd0000000, 5, cdev, &cgm, NULL, &cmmio), 0);
	cr_assert_eq(virtio_mmio_restore(cmmio, vs, err, sizeof(err)), 0, "%s", err);
	virtio_mmio_release(mmio);
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	cr_assert_eq(virtio_mmio_drain(cmmio, 10000), 0);
	for (i = 0; i < 4; i++) {
		cr_expect(has_disk_data(space, DATA + 0x1000 * i, 8 * i, 4096), "parent read %u",
			  i);
		cr_expect(has_disk_data(child, DATA + 0x1000 * i, 8 * i, 4096), "child read %u", i);
		cr_assert_eq(space_read(child, STATUS + i, &st, 1), 0);
		cr_expect_eq(st, 0, "child read %u answered OK", i);
	}
	virtio_mmio_destroy(cmmio);
	space_destroy(child);
	free(vs);
}

/* The side of one VM the helpers above drive (they use the globals). */
struct side {
	struct space *space;
	struct virtio_mmio *mmio;
	struct bus_region reg;
	uint16_t avail_idx;
};

static void switch_to(struct side *save, const struct side *to)
{
	*save = (struct side){ space, mmio, reg, avail_idx };
	space = to->space;
	mmio = to->mmio;
	reg = to->reg;
	avail_idx = to->avail_idx;
}

/* Sectors [@first, @first + 8 * @n) hold @n 4 KiB blocks of byte @v + block. */
static void expect_blocks(unsigned int first_block, unsigned int n, uint8_t v, const char *who)
{
	uint8_t got[4096];
	unsigned int b, j;

	for (b = first_block; b < first_block + n; b++) {
		start_read_at(0, DATA, 8 * b, 4096);
		cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
		cr_assert_eq(space_read(space, DATA, got, sizeof(got)), 0);
		for (j = 0; j < sizeof(got); j++)
			if (got[j] != (uint8_t)(v + b))
				break;
		cr_expect_eq(j, sizeof(got), "%s: block %u byte %u is %#x, expected %#x", who, b, j,
			     j < sizeof(got) ? got[j] : 0, (uint8_t)(v + b));
	}
}

Test(mm_blk_async, clone_with_writes_in_flight_then_each_vm_reads_back_only_its_own_writes)
{
	struct virtio_mmio_state *vs = calloc(1, sizeof(*vs));
	struct side parent, child = { 0 };
	struct virtio_dev *cdev;
	struct guest_mem cgm;
	uint8_t buf[4096];
	char err[256] = "";
	unsigned int i;

	/* The parent writes blocks 0-3 with 0xa0 + block, all in flight. */
	for (i = 0; i < 4; i++) {
		memset(buf, 0xa0 + i, sizeof(buf));
		put(DATA + 0x1000 * (i + 1), buf, sizeof(buf));
		start_io_at(i, 1, DATA + 0x1000 * (i + 1), 8 * i, 4096);
	}
	virtio_mmio_hold(mmio);
	cr_assert_eq(space_fork(space, &child.space), 0);
	cr_assert_eq(virtio_blk_fork(blkdev, &cdev), 0);
	cr_assert_eq(virtio_mmio_save(mmio, vs), 0);
	cr_assert_eq(vs->vq[0].ninflight, 4, "all 4 writes in flight (latency %u ms)", LATENCY_MS);
	virtio_mmio_release(mmio);
	mm_guest_mem_init(&cgm, child.space);
	cr_assert_eq(virtio_mmio_create(0xd0000000, 5, cdev, &cgm, NULL, &child.mmio), 0);
	cr_assert_eq(virtio_mmio_restore(child.mmio, vs, err, sizeof(err)), 0, "%s", err);
	child.reg = virtio_mmio_region(child.mmio);
	child.avail_idx = avail_idx;
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	cr_assert_eq(virtio_mmio_drain(child.mmio, 10000), 0);

	/* The child overwrites block 0 with 0xc0, then reads all back. */
	switch_to(&parent, &child);
	memset(buf, 0xc0, sizeof(buf));
	put(DATA + 0x1000, buf, sizeof(buf));
	start_io_at(1, 1, DATA + 0x1000, 0, 4096);
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	expect_blocks(0, 1, 0xc0, "child");
	expect_blocks(1, 3, 0xa0, "child");
	switch_to(&child, &parent);
	/* The parent has its own writes, none of the child's. */
	expect_blocks(0, 4, 0xa0, "parent");

	virtio_mmio_destroy(child.mmio);
	space_destroy(child.space);
	free(vs);
}

/* A clone of a device, over a fork of the memory, from @vs. */
static void clone_side(const struct virtio_mmio_state *vs, struct side *c, struct guest_mem *cgm)
{
	struct virtio_dev *cdev;
	char err[256] = "";

	cr_assert_eq(space_fork(space, &c->space), 0);
	cr_assert_eq(virtio_blk_fork(blkdev, &cdev), 0);
	mm_guest_mem_init(cgm, c->space);
	cr_assert_eq(virtio_mmio_create(0xd0000000, 5, cdev, cgm, NULL, &c->mmio), 0);
	cr_assert_eq(virtio_mmio_restore(c->mmio, vs, err, sizeof(err)), 0, "%s", err);
	c->reg = virtio_mmio_region(c->mmio);
	c->avail_idx = avail_idx;
}

Test(mm_blk_async, two_clones_one_with_a_write_in_flight_one_without_each_write_their_own)
{
	struct virtio_mmio_state *vs = calloc(1, sizeof(*vs));
	struct side parent, c[2] = { { 0 } };
	struct guest_mem cgm[2];
	uint8_t buf[4096];
	unsigned int k;

	/* Block 0 written and answered; block 1 in flight at clone 1. */
	memset(buf, 0xa0, sizeof(buf));
	put(DATA + 0x1000, buf, sizeof(buf));
	start_io_at(0, 1, DATA + 0x1000, 0, 4096);
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	memset(buf, 0xa1, sizeof(buf));
	put(DATA + 0x2000, buf, sizeof(buf));
	start_io_at(1, 1, DATA + 0x2000, 8, 4096);
	virtio_mmio_hold(mmio);
	cr_assert_eq(virtio_mmio_save(mmio, vs), 0);
	cr_assert_eq(vs->vq[0].ninflight, 1);
	clone_side(vs, &c[0], &cgm[0]);
	virtio_mmio_release(mmio);
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
	/* Clone 2: nothing in flight. */
	virtio_mmio_hold(mmio);
	cr_assert_eq(virtio_mmio_save(mmio, vs), 0);
	cr_assert_eq(vs->vq[0].ninflight, 0);
	clone_side(vs, &c[1], &cgm[1]);
	virtio_mmio_release(mmio);
	/* Every VM writes block 2 with its own byte, then reads 0-2 back. */
	for (k = 0; k < 3; k++) {
		struct side *s = k < 2 ? &c[k] : NULL;

		if (s)
			switch_to(&parent, s);
		cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
		memset(buf, 0xa2 + 0x10 * k, sizeof(buf));
		put(DATA + 0x3000, buf, sizeof(buf));
		start_io_at(2, 1, DATA + 0x3000, 16, 4096);
		cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0);
		expect_blocks(0, 2, 0xa0, k < 2 ? "clone" : "parent");
		expect_blocks(2, 1, 0xa0 + 0x10 * k, k < 2 ? "clone" : "parent");
		if (s) {
			*s = (struct side){ space, mmio, reg, avail_idx };
			switch_to(s, &parent);
		}
	}
	for (k = 0; k < 2; k++) {
		virtio_mmio_destroy(c[k].mmio);
		space_destroy(c[k].space);
	}
	free(vs);
}
