// SPDX-License-Identifier: MIT
/*
 * badvirtio: submit malformed virtio-blk chains and report what the device
 * answered, one line per case:
 *   badvirtio: <case>: used.len=N status=S -> ok|BAD
 * then check that a well-formed request still works.  Exit 0 iff every
 * case got an accepted error answer and the final request succeeded.
 *
 * The answer each case must get is the one docs/virtio-errors.md defines:
 * malformed chains complete with used.len 0 and VIRTIO_BLK_S_IOERR in the
 * status byte (pre-filled with 0xff) only when the walk reaches a last
 * descriptor that can take it; request errors complete with used.len 1 and
 * the status; queue errors set DEVICE_NEEDS_RESET and produce no used
 * element, after which the guest resets the device.
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

static uint16_t build_next_past_table(void)
{
	three(bv.vr.desc, vring_addr(bdata), 512);
	bv.vr.desc[1].next = bv.vr.size + 3;
	return 0;
}

static uint16_t build_status_out_of_range(void)
{
	three(bv.vr.desc, vring_addr(bdata), 512);
	bv.vr.desc[2].addr = BAD_GPA;
	return 0;
}

static uint16_t build_read_past_end(void)
{
	three(bv.vr.desc, vring_addr(bdata), 512);
	bq.hdr.sector = bv.capacity;
	return 0;
}

static uint16_t build_partial_sector(void)
{
	three(bv.vr.desc, vring_addr(bdata), 500);
	return 0;
}

struct bad_case {
	const char *name;
	uint16_t (*build)(void); /* fills the table, returns the head to publish */
	uint8_t status; /* the status byte docs/virtio-errors.md promises */
	uint32_t used_len; /* and used.len */
};

/*
 * Malformed chains (docs/virtio-errors.md section 1): used.len 0, IOERR in
 * the status byte only when the walk reaches a last descriptor that
 * qualifies.  Request errors (section 2): used.len 1 and the status.
 */
static const struct bad_case cases[] = {
	{ "descriptor loop", build_loop, STATUS_UNTOUCHED, 0 },
	{ "chain longer than the queue", build_too_long, STATUS_UNTOUCHED, 0 },
	{ "next index past the table", build_next_past_table, STATUS_UNTOUCHED, 0 },
	{ "out-of-range address", build_out_of_range, VIRTIO_BLK_S_IOERR, 0 },
	{ "status descriptor out of range", build_status_out_of_range, STATUS_UNTOUCHED, 0 },
	{ "length overflow", build_len_overflow, VIRTIO_BLK_S_IOERR, 0 },
	{ "writable descriptor before readable", build_write_before_read, VIRTIO_BLK_S_IOERR, 0 },
	{ "nested indirect table", build_nested_indirect, VIRTIO_BLK_S_IOERR, 0 },
	{ "indirect table of bad length", build_indirect_bad_len, STATUS_UNTOUCHED, 0 },
	{ "head index past the ring", build_head_past_ring, STATUS_UNTOUCHED, 0 },
	{ "unknown request type", build_unknown_type, VIRTIO_BLK_S_UNSUPP, 1 },
	{ "read past the end of the disk", build_read_past_end, VIRTIO_BLK_S_IOERR, 1 },
	{ "data length not a multiple of 512", build_partial_sector, VIRTIO_BLK_S_IOERR, 1 },
};

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

/* Return: 1 when the answer was the documented one, 0 when not, -1 when the device is gone. */
static int run_case(const struct bad_case *c)
{
	uint32_t id = 0, len = 0, devst;
	uint8_t st;
	bool got, ok;
	uint16_t head;

	prep_req(VIRTIO_BLK_T_IN);
	memset(itab, 0, sizeof(itab));
	head = c->build();
	vring_publish(&bv.vr, head);
	vblk_notify(&bv, 0);
	got = vblk_wait_used(&bv, BAD_TIMEOUT_TSC, &id, &len);
	devst = vblk_read(&bv, VIRTIO_MMIO_STATUS);
	st = READ_ONCE(bq.status);
	ok = got && id == head && len == c->used_len && st == c->status &&
	     !(devst & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED));
	if (got)
		con_printf("badvirtio: %s: used.len=%u status=%u -> %s\n", c->name, len, st,
			   ok ? "ok" : "BAD");
	else
		con_printf("badvirtio: %s: used.len=none status=%u -> BAD\n", c->name, st);
	if (!ok)
		con_printf("badvirtio: %s: expected used.id=%u used.len=%u status=%u; got id %u, "
			   "device status 0x%x\n",
			   c->name, head, c->used_len, c->status, id, devst);
	if (!got || (devst & VIRTIO_STATUS_NEEDS_RESET)) {
		if (recover(devst & VIRTIO_STATUS_NEEDS_RESET ? "device needs reset" : "no answer"))
			return -1;
	} else {
		/* Nothing in flight: the hand-built chain goes back to the free list. */
		vring_reset_free(&bv.vr);
	}
	return ok;
}

/*
 * Queue errors (docs/virtio-errors.md section 3): the device sets
 * DEVICE_NEEDS_RESET and ignores the queue until a reset; no used element.
 */
static int queue_error_answer(const char *name, uint32_t extra_ok, const char *detail)
{
	uint64_t start = rdtsc();
	uint32_t devst, id, len;
	bool used;

	/*
	 * Errors found on a notify are found by the device's service thread,
	 * asynchronously (docs/virtio-errors.md section 3, Timing): poll Status.
	 */
	for (;;) {
		devst = vblk_read(&bv, VIRTIO_MMIO_STATUS);
		if ((devst & VIRTIO_STATUS_NEEDS_RESET) || rdtsc() - start > BAD_TIMEOUT_TSC)
			break;
		cpu_relax();
	}
	used = vblk_wait_used(&bv, BAD_TIMEOUT_TSC / 100, &id, &len);
	bool ok = extra_ok && (devst & VIRTIO_STATUS_NEEDS_RESET) &&
		  !(devst & VIRTIO_STATUS_FAILED) && !used;

	con_printf("badvirtio: %s: used.len=%s status=none device-status=0x%x%s -> %s\n", name,
		   used ? "SOME" : "none", devst, detail, ok ? "ok" : "BAD");
	if (recover("after a queue error"))
		return -1;
	return ok;
}

static int run_bad_queue_notify(void)
{
	uint32_t q, maxs = 0;

	/* Queues past the configured one read QueueNumMax 0... */
	for (q = 1; q < 4; q++) {
		vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, q);
		maxs |= vblk_read(&bv, VIRTIO_MMIO_QUEUE_NUM_MAX);
	}
	vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, 0xffff);
	maxs |= vblk_read(&bv, VIRTIO_MMIO_QUEUE_NUM_MAX);
	vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, 0);
	/* ...and a notify of one is a queue error. */
	vblk_notify(&bv, 1);
	return queue_error_answer("notify of a queue past the configured queues", !maxs,
				  maxs ? " QueueNumMax!=0" : " QueueNumMax=0");
}

static int run_bad_queue_ready(void)
{
	uint32_t ready;

	vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, 1);
	vblk_write(&bv, VIRTIO_MMIO_QUEUE_NUM, 16);
	vblk_write(&bv, VIRTIO_MMIO_QUEUE_READY, 1);
	ready = vblk_read(&bv, VIRTIO_MMIO_QUEUE_READY);
	vblk_write(&bv, VIRTIO_MMIO_QUEUE_SEL, 0);
	return queue_error_answer("QueueReady on a queue past the configured queues", !ready,
				  ready ? " QueueReady=1" : " QueueReady=0");
}

static int run_avail_jump(void)
{
	/* avail->idx more than a queue's worth ahead of the device */
	bv.vr.avail_idx += bv.vr.size + 1;
	__atomic_store_n(&bv.vr.avail->idx, bv.vr.avail_idx, __ATOMIC_RELEASE);
	vblk_notify(&bv, 0);
	return queue_error_answer("avail index past the queue size", 1, "");
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
	for (i = 0; i < 3; i++) {
		r = i == 0   ? run_bad_queue_notify()
		    : i == 1 ? run_bad_queue_ready()
			     : run_avail_jump();
		if (r < 0)
			return GUEST_EXIT_FAIL;
		ncases++;
		nbad += !r;
	}

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
