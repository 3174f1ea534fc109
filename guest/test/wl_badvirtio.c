// SPDX-License-Identifier: MIT
/*
 * badvirtio: submit malformed virtio-blk chains and report what the device
 * answered, one line per case:
 *   badvirtio: <case>: used.len=N status=S -> ok|BAD
 * then check that a well-formed request still works.  Exit 0 iff every
 * case got an accepted error answer and the final request succeeded.
 *
 * Accepted answers (docs/virtio-errors.md, see docs/test-guest.md): a
 * malformed chain completes with used.len 0 and the status byte, which we
 * pre-fill with 0xff, either set to VIRTIO_BLK_S_IOERR or left untouched
 * (when the device cannot trust the chain enough to find it); never
 * VIRTIO_BLK_S_OK.  Where a case allows it, DEVICE_NEEDS_RESET in the status
 * register is accepted instead of a used element; the guest then resets the
 * device before the next case.
 */
#include <string.h>

#include "guest/test/console.h"
#include "guest/test/guest.h"
#include "guest/test/io.h"
#include "guest/test/virtio_blk.h"

#define STATUS_UNTOUCHED 0xff
/* Far outside RAM (at most 3 GiB) and the MMIO hole. */
#define BAD_GPA 0x4000000000ULL
/* Waiting for an answer that may never come: about a second. */
#define BAD_TIMEOUT_TSC (3ULL * 1000 * 1000 * 1000)

/* What a case accepts as the device's answer. */
#define ACCEPT_IOERR (1u << 0)
#define ACCEPT_UNTOUCHED (1u << 1)
#define ACCEPT_UNSUPP (1u << 2)
#define ACCEPT_NEEDS_RESET (1u << 3) /* no used element, NEEDS_RESET set instead */

static struct vblk bv;

static struct {
	struct virtio_blk_req_hdr hdr;
	uint8_t status;
} bq __attribute__((aligned(64)));

static struct vring_desc itab[VRING_MAX_SIZE + 8] __attribute__((aligned(16)));
static struct vring_desc itab2[4] __attribute__((aligned(16)));
static uint8_t bdata[VRING_MAX_SIZE * 512 + 4096] __attribute__((aligned(4096)));

static void set_desc(struct vring_desc *d, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	d->addr = addr;
	d->len = len;
	d->flags = flags;
	d->next = next;
}

static void prep_req(uint32_t type)
{
	bq.hdr.type = type;
	bq.hdr.reserved = 0;
	bq.hdr.sector = 0;
	bq.status = STATUS_UNTOUCHED;
}

/* hdr -> data(W) -> status(W), in @t[0..2] */
static void three(struct vring_desc *t, uint64_t data, uint32_t len)
{
	set_desc(&t[0], vring_addr(&bq.hdr), sizeof(bq.hdr), VRING_DESC_F_NEXT, 1);
	set_desc(&t[1], data, len, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(&t[2], vring_addr(&bq.status), 1, VRING_DESC_F_WRITE, 0);
}

static uint16_t build_loop(void)
{
	three(bv.vr.desc, vring_addr(bdata), 512);
	bv.vr.desc[2].flags |= VRING_DESC_F_NEXT;
	bv.vr.desc[2].next = 0;
	return 0;
}

/* An indirect table of size + 2 descriptors: header, size data, status. */
static uint16_t build_too_long(void)
{
	uint16_t n = bv.vr.size + 2, i;

	set_desc(&itab[0], vring_addr(&bq.hdr), sizeof(bq.hdr), VRING_DESC_F_NEXT, 1);
	for (i = 1; i < n - 1; i++)
		set_desc(&itab[i], vring_addr(bdata + 512 * (i - 1)), 512,
			 VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, i + 1);
	set_desc(&itab[n - 1], vring_addr(&bq.status), 1, VRING_DESC_F_WRITE, 0);
	set_desc(&bv.vr.desc[0], vring_addr(itab), n * sizeof(itab[0]), VRING_DESC_F_INDIRECT, 0);
	return 0;
}

static uint16_t build_out_of_range(void)
{
	three(bv.vr.desc, BAD_GPA, 512);
	return 0;
}

static uint16_t build_len_overflow(void)
{
	/* addr + len wraps around 2^64 */
	three(bv.vr.desc, 0xfffffffffffffe00ULL, 0x400);
	return 0;
}

static uint16_t build_write_before_read(void)
{
	struct vring_desc *t = bv.vr.desc;

	set_desc(&t[0], vring_addr(bdata), 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(&t[1], vring_addr(&bq.hdr), sizeof(bq.hdr), VRING_DESC_F_NEXT, 2);
	set_desc(&t[2], vring_addr(&bq.status), 1, VRING_DESC_F_WRITE, 0);
	return 0;
}

static uint16_t build_nested_indirect(void)
{
	set_desc(&itab2[0], vring_addr(bdata), 512, VRING_DESC_F_WRITE, 0);
	three(itab, 0, 0);
	set_desc(&itab[1], vring_addr(itab2), sizeof(itab2[0]),
		 VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 2);
	set_desc(&bv.vr.desc[0], vring_addr(itab), 3 * sizeof(itab[0]), VRING_DESC_F_INDIRECT, 0);
	return 0;
}

static uint16_t build_indirect_bad_len(void)
{
	three(itab, vring_addr(bdata), 512);
	/* 2.5 descriptors: not a multiple of 16 */
	set_desc(&bv.vr.desc[0], vring_addr(itab), 40, VRING_DESC_F_INDIRECT, 0);
	return 0;
}

static uint16_t build_unknown_type(void)
{
	struct vring_desc *t = bv.vr.desc;

	bq.hdr.type = 0x55;
	set_desc(&t[0], vring_addr(&bq.hdr), sizeof(bq.hdr), VRING_DESC_F_NEXT, 1);
	set_desc(&t[1], vring_addr(&bq.status), 1, VRING_DESC_F_WRITE, 0);
	return 0;
}

static uint16_t build_head_past_ring(void)
{
	three(bv.vr.desc, vring_addr(bdata), 512);
	return bv.vr.size + 5;
}

struct bad_case {
	const char *name;
	uint16_t (*build)(void); /* fills the table, returns the head to publish */
	unsigned int accept;
};

#define ACCEPT_MALFORMED (ACCEPT_IOERR | ACCEPT_UNTOUCHED)

static const struct bad_case cases[] = {
	{ "descriptor loop", build_loop, ACCEPT_MALFORMED | ACCEPT_NEEDS_RESET },
	{ "chain longer than the queue", build_too_long, ACCEPT_MALFORMED | ACCEPT_NEEDS_RESET },
	{ "out-of-range address", build_out_of_range, ACCEPT_MALFORMED },
	{ "length overflow", build_len_overflow, ACCEPT_MALFORMED },
	{ "writable descriptor before readable", build_write_before_read, ACCEPT_MALFORMED },
	{ "nested indirect table", build_nested_indirect, ACCEPT_MALFORMED | ACCEPT_NEEDS_RESET },
	{ "indirect table of bad length", build_indirect_bad_len,
	  ACCEPT_MALFORMED | ACCEPT_NEEDS_RESET },
	{ "unknown request type", build_unknown_type, ACCEPT_UNSUPP },
	{ "head index past the ring", build_head_past_ring, ACCEPT_UNTOUCHED | ACCEPT_NEEDS_RESET },
};

static bool status_accepted(uint8_t st, unsigned int accept)
{
	if (st == VIRTIO_BLK_S_IOERR)
		return accept & ACCEPT_IOERR;
	if (st == VIRTIO_BLK_S_UNSUPP)
		return accept & ACCEPT_UNSUPP;
	if (st == STATUS_UNTOUCHED)
		return accept & ACCEPT_UNTOUCHED;
	return false;
}

/* Bring the device back after NEEDS_RESET or a lost request. Return: 0 or -1. */
static int recover(const char *why)
{
	char err[128];

	con_printf("badvirtio: (%s: resetting the device)\n", why);
	if (vblk_reinit(&bv, err, sizeof(err))) {
		con_printf("badvirtio: FAIL: device reset failed: %s\n", err);
		return -1;
	}
	return 0;
}

/* Return: 1 when the answer was accepted, 0 when not, -1 when the device is gone. */
static int run_case(const struct bad_case *c)
{
	uint32_t id = 0, len = 0, devst;
	bool got, ok;
	uint16_t head;

	prep_req(VIRTIO_BLK_T_IN);
	memset(itab, 0, sizeof(itab));
	head = c->build();
	vring_publish(&bv.vr, head);
	vblk_notify(&bv, 0);
	got = vblk_wait_used(&bv, BAD_TIMEOUT_TSC, &id, &len);
	devst = vblk_read(&bv, VIRTIO_MMIO_STATUS);
	if (got) {
		/* A chain that was answered (unknown type) carries the status byte in used.len. */
		ok = id == head && (len == 0 || (len == 1 && (c->accept & ACCEPT_UNSUPP))) &&
		     status_accepted(READ_ONCE(bq.status), c->accept);
		con_printf("badvirtio: %s: used.len=%u status=%u -> %s\n", c->name, len,
			   READ_ONCE(bq.status), ok ? "ok" : "BAD");
		if (id != head)
			con_printf("badvirtio: %s: used.id=%u, expected %u\n", c->name, id, head);
	} else {
		ok = (c->accept & ACCEPT_NEEDS_RESET) && (devst & VIRTIO_STATUS_NEEDS_RESET) &&
		     status_accepted(READ_ONCE(bq.status), ACCEPT_UNTOUCHED);
		con_printf("badvirtio: %s: used.len=none status=%u device-status=0x%x -> %s\n",
			   c->name, READ_ONCE(bq.status), devst, ok ? "ok" : "BAD");
	}
	if (devst & VIRTIO_STATUS_FAILED)
		ok = false;
	if (!got || (devst & VIRTIO_STATUS_NEEDS_RESET)) {
		if (recover(devst & VIRTIO_STATUS_NEEDS_RESET ? "device needs reset" : "no answer"))
			return -1;
	} else {
		/* Nothing in flight: the hand-built chain goes back to the free list. */
		vring_reset_free(&bv.vr);
	}
	return ok;
}

/* Queues past the configured ones: QueueNumMax must read 0, a notify must do nothing. */
static int run_bad_queue(void)
{
	const char *name = "queue index past the configured queues";
	uint32_t q, max, devst, maxs = 0;
	bool ok;

	for (q = 1; q < 4; q++) {
		vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, q);
		max = vblk_read(&bv, VIRTIO_MMIO_QUEUE_NUM_MAX);
		maxs |= max;
	}
	vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, 0xffff);
	maxs |= vblk_read(&bv, VIRTIO_MMIO_QUEUE_NUM_MAX);
	vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, 0);
	vblk_notify(&bv, 1);
	vblk_notify(&bv, 0xffff);
	devst = vblk_read(&bv, VIRTIO_MMIO_STATUS);
	/* Queue 0 must still be set up as we left it. */
	ok = !maxs && vblk_read(&bv, VIRTIO_MMIO_QUEUE_READY) == 1 &&
	     !(devst & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_NEEDS_RESET)) &&
	     READ_ONCE(bv.vr.used->idx) == bv.vr.last_used;
	con_printf(
	    "badvirtio: %s: used.len=none status=none QueueNumMax=%u device-status=0x%x -> %s\n",
	    name, maxs, devst, ok ? "ok" : "BAD");
	if (devst & VIRTIO_STATUS_NEEDS_RESET && recover("device needs reset"))
		return -1;
	return ok;
}

static int badvirtio_run(const struct wl_ctx *ctx)
{
	unsigned int i, nbad = 0, ncases = 0;
	uint32_t len = 0;
	char err[128];
	int r, st;

	if (vblk_find(&bv, ctx->m, err, sizeof(err))) {
		con_printf("badvirtio: FAIL: no usable virtio-blk: %s\n", err);
		return GUEST_EXIT_NODEV;
	}
	con_printf("badvirtio: virtio-blk at 0x%lx, features 0x%lx, queue %u\n",
		   (unsigned long)bv.base, (unsigned long)bv.features, bv.vr.size);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = run_case(&cases[i]);
		if (r < 0)
			return GUEST_EXIT_FAIL;
		ncases++;
		nbad += !r;
	}
	r = run_bad_queue();
	if (r < 0)
		return GUEST_EXIT_FAIL;
	ncases++;
	nbad += !r;

	st = vblk_request(&bv, VIRTIO_BLK_T_IN, 0, bdata, 512, &len);
	r = st == VIRTIO_BLK_S_OK && len == 513;
	con_printf(
	    "badvirtio: well-formed request after the bad ones: used.len=%u status=%d -> %s\n", len,
	    st, r ? "ok" : "BAD");
	ncases++;
	nbad += !r;
	con_printf("badvirtio: %u cases, %u BAD -> %s\n", ncases, nbad, nbad ? "BAD" : "ok");
	return nbad ? GUEST_EXIT_FAIL : 0;
}

const struct workload wl_badvirtio = { "badvirtio", false, badvirtio_run };
