// SPDX-License-Identifier: MIT
/* The split virtqueue parser against a fake guest memory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "devices/virtio/queue.h"
#include "tests/helpers/fake_mem.h"

#define MEM_SIZE (1u << 20)
#define RING_GPA 0x1000u
#define QSIZE 16u
#define BUF 0x10000u /* data buffers from here */
#define TABLE 0x40000u /* indirect tables from here */
#define OUTSIDE 0x200000u /* past the end of guest memory */
#define W VRING_DESC_F_WRITE
#define N VRING_DESC_F_NEXT
#define I VRING_DESC_F_INDIRECT
/* The status a blk device answers malformed chains with. */
#define VIRTIO_BLK_S_IOERR_TEST 1

static struct fake_mem mem;
static struct fake_vring ring;
static struct virtqueue vq;
static struct vq_chain *chain;

static void setup_with(bool with_check)
{
	cr_assert_eq(fake_mem_init(&mem, 0, MEM_SIZE, with_check), 0);
	fake_vring_init(&ring, &mem, QSIZE, RING_GPA);
	vq_init(&vq, 0, &mem.gm);
	fake_vring_attach(&ring, &vq);
	vq.cfg.indirect = true;
	cr_assert_eq(vq_enable(&vq, QSIZE), 0);
	chain = calloc(1, sizeof(*chain));
	cr_assert_not_null(chain);
}

static void setup(void)
{
	setup_with(true);
}

static void setup_nocheck(void)
{
	setup_with(false);
}

static void teardown(void)
{
	free(chain);
	fake_mem_fini(&mem);
}

/* A request: header (readable), data (writable), status (writable 1 byte). */
static void good_request(uint16_t d0)
{
	fake_vring_desc(&ring, d0, BUF, 16, N, d0 + 1);
	fake_vring_desc(&ring, d0 + 1, BUF + 0x1000, 512, W | N, d0 + 2);
	fake_vring_desc(&ring, d0 + 2, BUF + 0x2000, 1, W, 0);
	fake_vring_publish(&ring, d0);
}

/* Pop one chain that must be malformed for @why. */
static void pop_bad(enum vq_chain_err why)
{
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(chain->error, -EINVAL);
	cr_expect_eq(chain->why, why, "why %d (%s), expected %d (%s)", chain->why,
		     vq_chain_err_str(chain->why), why, vq_chain_err_str(why));
}

/* Answer it as a device would and check the used entry and status byte. */
static void fail_and_check(uint16_t head, uint64_t status_gpa, uint8_t expect_status)
{
	uint32_t id, len;

	fake_mem_set_u8(&mem, status_gpa, 0xee);
	cr_assert_eq(vq_fail_chain(&vq, chain, VIRTIO_BLK_S_IOERR_TEST), 0);
	cr_assert_eq(fake_vring_used_idx(&ring), 1);
	fake_vring_used(&ring, 0, &id, &len);
	cr_expect_eq(id, head);
	cr_expect_eq(len, 0, "a malformed chain is completed with used.len 0");
	cr_expect_eq(fake_mem_u8(&mem, status_gpa), expect_status);
}

TestSuite(virtqueue, .init = setup, .fini = teardown);

Test(virtqueue, empty_ring_pops_nothing)
{
	cr_expect_eq(vq_pop_chain(&vq, chain), 0);
}

Test(virtqueue, direct_chain_gives_readable_then_writable_segments)
{
	good_request(3);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(chain->error, 0);
	cr_expect_eq(chain->head, 3);
	cr_assert_eq(chain->nread, 1);
	cr_assert_eq(chain->nwrite, 2);
	cr_expect_eq(chain->seg[0].gpa, BUF);
	cr_expect_eq(chain->seg[0].len, 16);
	cr_expect_eq(chain->seg[1].gpa, BUF + 0x1000);
	cr_expect_eq(chain->seg[1].len, 512);
	cr_expect_eq(chain->seg[2].gpa, BUF + 0x2000);
	cr_expect_eq(chain->read_len, 16);
	cr_expect_eq(chain->write_len, 513);
	cr_expect_eq(vq_pop_chain(&vq, chain), 0);
}

Test(virtqueue, push_used_publishes_id_and_length)
{
	uint32_t id, len;

	good_request(0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(vq_push_used(&vq, chain->head, 513), 0);
	cr_expect_eq(fake_vring_used_idx(&ring), 1);
	fake_vring_used(&ring, 0, &id, &len);
	cr_expect_eq(id, 0);
	cr_expect_eq(len, 513);
}

Test(virtqueue, zero_length_descriptor_adds_no_segment)
{
	fake_vring_desc(&ring, 0, BUF, 16, N, 1);
	fake_vring_desc(&ring, 1, BUF + 0x100, 0, N, 2);
	fake_vring_desc(&ring, 2, BUF + 0x200, 1, W, 0);
	fake_vring_publish(&ring, 0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(chain->error, 0);
	cr_expect_eq(chain->nread, 1);
	cr_expect_eq(chain->nwrite, 1);
}

Test(virtqueue, indirect_table_is_followed)
{
	fake_desc(&mem, TABLE, 0, BUF, 16, N, 1);
	fake_desc(&mem, TABLE, 1, BUF + 0x1000, 4096, W | N, 2);
	fake_desc(&mem, TABLE, 2, BUF + 0x3000, 1, W, 0);
	fake_vring_desc(&ring, 5, TABLE, 3 * 16, I, 0);
	fake_vring_publish(&ring, 5);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(chain->error, 0);
	cr_expect_eq(chain->head, 5);
	cr_expect_eq(chain->nread, 1);
	cr_expect_eq(chain->nwrite, 2);
	cr_expect_eq(chain->seg[1].gpa, BUF + 0x1000);
	cr_expect_eq(chain->write_len, 4097);
}

Test(virtqueue, direct_descriptors_may_end_in_an_indirect_table)
{
	fake_desc(&mem, TABLE, 0, BUF + 0x1000, 512, W | N, 1);
	fake_desc(&mem, TABLE, 1, BUF + 0x3000, 1, W, 0);
	fake_vring_desc(&ring, 0, BUF, 16, N, 1);
	fake_vring_desc(&ring, 1, TABLE, 2 * 16, I, 0);
	fake_vring_publish(&ring, 0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(chain->error, 0);
	cr_expect_eq(chain->nread, 1);
	cr_expect_eq(chain->nwrite, 2);
}

Test(virtqueue, indexes_wrap_around_at_16_bits)
{
	uint32_t id, len;
	unsigned int i;

	/* Driver and device both start just below the wrap. */
	vq.st.last_avail = 65534;
	vq.st.used_idx = 65534;
	fake_vring_set_avail_idx(&ring, 65534);
	for (i = 0; i < 4; i++) {
		fake_vring_desc(&ring, i, BUF + 0x100 * i, 8, W, 0);
		fake_vring_publish(&ring, i);
	}
	cr_expect_eq(ring.avail_idx, 2);
	for (i = 0; i < 4; i++) {
		cr_assert_eq(vq_pop_chain(&vq, chain), 1);
		cr_assert_eq(chain->error, 0);
		cr_expect_eq(chain->head, i);
		cr_assert_eq(vq_push_used(&vq, chain->head, 8), 0);
	}
	cr_expect_eq(vq_pop_chain(&vq, chain), 0);
	cr_expect_eq(fake_vring_used_idx(&ring), 2);
	/* Entry for used index 65535 sits in slot 65535 % 16 = 15. */
	fake_vring_used(&ring, 65535, &id, &len);
	cr_expect_eq(id, 1);
	fake_vring_used(&ring, 0, &id, &len);
	cr_expect_eq(id, 2);
}

Test(virtqueue, need_event_follows_the_virtio_rule)
{
	/* Notify when used_event lies in [old, new). */
	cr_expect(vq_need_event(0, 1, 0));
	cr_expect_not(vq_need_event(1, 1, 0));
	cr_expect(vq_need_event(5, 8, 3));
	cr_expect_not(vq_need_event(8, 8, 3));
	cr_expect_not(vq_need_event(2, 8, 3));
	/* Across the wrap. */
	cr_expect(vq_need_event(65535, 2, 65534));
	cr_expect_not(vq_need_event(2, 2, 65534));
}

Test(virtqueue, event_idx_suppresses_interrupts_until_used_event)
{
	unsigned int i;

	vq.cfg.event_idx = true;
	/* The first decision always notifies (nothing signalled yet). */
	good_request(0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(vq_push_used(&vq, chain->head, 1), 0);
	cr_expect(vq_should_notify(&vq));
	/* Driver wants an interrupt only once used idx passes 3. */
	fake_vring_set_used_event(&ring, 3);
	for (i = 0; i < 2; i++) {
		fake_vring_desc(&ring, 4 + i, BUF, 1, W, 0);
		fake_vring_publish(&ring, 4 + i);
		cr_assert_eq(vq_pop_chain(&vq, chain), 1);
		cr_assert_eq(vq_push_used(&vq, chain->head, 1), 0);
		cr_expect_not(vq_should_notify(&vq), "used idx %u", vq.st.used_idx);
	}
	fake_vring_desc(&ring, 6, BUF, 1, W, 0);
	fake_vring_publish(&ring, 6);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(vq_push_used(&vq, chain->head, 1), 0);
	cr_expect(vq_should_notify(&vq), "used idx 4 passed used_event 3");
}

Test(virtqueue, no_interrupt_flag_suppresses_without_event_idx)
{
	good_request(0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_assert_eq(vq_push_used(&vq, chain->head, 1), 0);
	fake_vring_set_avail_flags(&ring, VRING_AVAIL_F_NO_INTERRUPT);
	cr_expect_not(vq_should_notify(&vq));
	fake_vring_set_avail_flags(&ring, 0);
	cr_expect(vq_should_notify(&vq));
}

Test(virtqueue, enable_notify_publishes_avail_event_and_sees_late_buffers)
{
	vq.cfg.event_idx = true;
	good_request(0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_expect_not(vq_enable_notify(&vq));
	cr_expect_eq(fake_vring_avail_event(&ring), 1);
	good_request(3);
	cr_expect(vq_enable_notify(&vq));
}

/* ---- malformed chains: see docs/virtio-errors.md ----------------------- */

Test(virtqueue, descriptor_loop_is_completed_with_no_status_written)
{
	fake_vring_desc(&ring, 0, BUF, 16, N, 1);
	fake_vring_desc(&ring, 1, BUF + 0x2000, 1, W | N, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_TOO_LONG);
	cr_expect_not(chain->status_ok, "a loop has no last descriptor");
	fail_and_check(0, BUF + 0x2000, 0xee);
}

Test(virtqueue, self_loop_is_refused)
{
	fake_vring_desc(&ring, 7, BUF, 1, W | N, 7);
	fake_vring_publish(&ring, 7);
	pop_bad(VQ_ERR_TOO_LONG);
}

Test(virtqueue, loop_inside_indirect_table_is_refused)
{
	fake_desc(&mem, TABLE, 0, BUF, 16, N, 1);
	fake_desc(&mem, TABLE, 1, BUF + 0x100, 16, N, 0);
	fake_vring_desc(&ring, 0, TABLE, 2 * 16, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_TOO_LONG);
}

Test(virtqueue, chain_longer_than_queue_counting_indirect_entries_is_refused)
{
	unsigned int i;

	/* 2 direct + 15 indirect = 17 data descriptors > 16. */
	for (i = 0; i < 15; i++)
		fake_desc(&mem, TABLE, i, BUF + 0x100 * i, 8, W | (i < 14 ? N : 0), i + 1);
	fake_vring_desc(&ring, 0, BUF, 16, N, 1);
	fake_vring_desc(&ring, 1, BUF + 0x1000, 16, N, 2);
	fake_vring_desc(&ring, 2, TABLE, 15 * 16, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_TOO_LONG);
}

Test(virtqueue, indirect_table_larger_than_queue_is_refused)
{
	fake_vring_desc(&ring, 0, TABLE, (QSIZE + 1) * 16, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_TOO_LONG);
}

Test(virtqueue, out_of_range_address_gets_error_status)
{
	fake_vring_desc(&ring, 0, BUF, 16, N, 1);
	fake_vring_desc(&ring, 1, OUTSIDE, 512, W | N, 2);
	fake_vring_desc(&ring, 2, BUF + 0x2000, 1, W, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_RANGE);
	cr_expect(chain->status_ok);
	cr_expect_eq(chain->status_gpa, BUF + 0x2000);
	fail_and_check(0, BUF + 0x2000, 1);
}

Test(virtqueue, buffer_straddling_end_of_memory_is_refused)
{
	fake_vring_desc(&ring, 0, MEM_SIZE - 8, 16, N, 1);
	fake_vring_desc(&ring, 1, BUF + 0x2000, 1, W, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_RANGE);
	fail_and_check(0, BUF + 0x2000, 1);
}

Test(virtqueue, out_of_range_status_descriptor_gets_nothing_written)
{
	fake_vring_desc(&ring, 0, BUF, 16, N, 1);
	fake_vring_desc(&ring, 1, OUTSIDE, 1, W, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_RANGE);
	cr_expect_not(chain->status_ok);
	fail_and_check(0, BUF + 0x2000, 0xee);
}

Test(virtqueue, overflowing_length_gets_error_status)
{
	fake_vring_desc(&ring, 0, BUF, 16, N, 1);
	fake_vring_desc(&ring, 1, UINT64_MAX - 0xfff, 0x2000, W | N, 2);
	fake_vring_desc(&ring, 2, BUF + 0x2000, 1, W, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_OVERFLOW);
	fail_and_check(0, BUF + 0x2000, 1);
}

Test(virtqueue, writable_before_readable_gets_error_status)
{
	fake_vring_desc(&ring, 0, BUF + 0x1000, 512, W | N, 1);
	fake_vring_desc(&ring, 1, BUF, 16, N, 2);
	fake_vring_desc(&ring, 2, BUF + 0x2000, 1, W, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_ORDER);
	fail_and_check(0, BUF + 0x2000, 1);
}

Test(virtqueue, nested_indirect_gets_error_status)
{
	fake_desc(&mem, TABLE + 0x1000, 0, BUF, 16, 0, 0);
	fake_desc(&mem, TABLE, 0, BUF, 16, N, 1);
	fake_desc(&mem, TABLE, 1, TABLE + 0x1000, 16, I | N, 2);
	fake_desc(&mem, TABLE, 2, BUF + 0x2000, 1, W, 0);
	fake_vring_desc(&ring, 0, TABLE, 3 * 16, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_NESTED);
	fail_and_check(0, BUF + 0x2000, 1);
}

Test(virtqueue, nested_indirect_as_last_descriptor_gets_nothing_written)
{
	fake_desc(&mem, TABLE + 0x1000, 0, BUF + 0x2000, 1, W, 0);
	fake_desc(&mem, TABLE, 0, BUF, 16, N, 1);
	fake_desc(&mem, TABLE, 1, TABLE + 0x1000, 16, I, 0);
	fake_vring_desc(&ring, 0, TABLE, 2 * 16, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_NESTED);
	cr_expect_not(chain->status_ok);
	fail_and_check(0, BUF + 0x2000, 0xee);
}

Test(virtqueue, indirect_length_not_multiple_of_16_is_refused)
{
	fake_desc(&mem, TABLE, 0, BUF + 0x2000, 1, W, 0);
	fake_vring_desc(&ring, 0, TABLE, 24, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_INDIRECT_LEN);
	cr_expect_not(chain->status_ok);
	fail_and_check(0, BUF + 0x2000, 0xee);
}

Test(virtqueue, indirect_length_zero_is_refused)
{
	fake_vring_desc(&ring, 0, TABLE, 0, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_INDIRECT_LEN);
	fail_and_check(0, BUF + 0x2000, 0xee);
}

Test(virtqueue, indirect_table_outside_memory_is_refused)
{
	fake_vring_desc(&ring, 0, OUTSIDE, 32, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_RANGE);
}

Test(virtqueue, indirect_with_next_flag_is_refused)
{
	fake_desc(&mem, TABLE, 0, BUF + 0x2000, 1, W, 0);
	fake_vring_desc(&ring, 0, TABLE, 16, I | N, 1);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_INDIRECT_FLAGS);
	fail_and_check(0, BUF + 0x2000, 1);
}

Test(virtqueue, indirect_without_the_feature_is_refused)
{
	vq.cfg.indirect = false;
	fake_desc(&mem, TABLE, 0, BUF + 0x2000, 1, W, 0);
	fake_vring_desc(&ring, 0, TABLE, 16, I, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_INDIRECT_FLAGS);
	fail_and_check(0, BUF + 0x2000, 0xee);
}

Test(virtqueue, head_index_past_queue_is_completed_with_zero_length)
{
	fake_vring_publish(&ring, QSIZE + 3);
	pop_bad(VQ_ERR_HEAD);
	cr_expect_not(chain->status_ok);
	fail_and_check(QSIZE + 3, BUF + 0x2000, 0xee);
}

Test(virtqueue, next_index_past_queue_is_refused)
{
	fake_vring_desc(&ring, 0, BUF, 16, N, QSIZE);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_NEXT);
	fail_and_check(0, BUF + 0x2000, 0xee);
}

Test(virtqueue, good_chain_after_a_malformed_one_still_works)
{
	fake_vring_desc(&ring, 9, BUF, 1, W | N, 9);
	fake_vring_publish(&ring, 9);
	good_request(0);
	pop_bad(VQ_ERR_TOO_LONG);
	cr_assert_eq(vq_fail_chain(&vq, chain, 1), 0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_expect_eq(chain->error, 0);
	cr_expect_eq(chain->head, 0);
}

Test(virtqueue, avail_idx_jump_past_queue_size_breaks_the_queue)
{
	fake_vring_set_avail_idx(&ring, QSIZE + 1);
	cr_expect_eq(vq_pop_chain(&vq, chain), -EPROTO);
	cr_expect(vq.st.broken);
	good_request(0);
	cr_expect_eq(vq_pop_chain(&vq, chain), -EIO, "a broken queue stays ignored");
	vq_reset(&vq);
	cr_expect_not(vq.st.broken);
}

Test(virtqueue, avail_idx_of_exactly_queue_size_is_accepted)
{
	fake_vring_set_avail_idx(&ring, QSIZE);
	cr_expect_eq(vq_pop_chain(&vq, chain), 1);
}

Test(virtqueue, avail_idx_is_read_once_per_batch_not_once_per_chain)
{
	unsigned int i, before;

	for (i = 0; i < 4; i++) {
		fake_vring_desc(&ring, i, BUF + 0x100 * i, 8, W, 0);
		fake_vring_publish(&ring, i);
	}
	before = mem.reads;
	for (i = 0; i < 4; i++) {
		cr_assert_eq(vq_pop_chain(&vq, chain), 1);
		cr_assert_eq(chain->head, i);
	}
	cr_assert_eq(vq_pop_chain(&vq, chain), 0);
	/* Per chain: its avail ring entry and its one descriptor; per batch:
	 * avail->idx once, and once more to see the ring empty. */
	cr_expect_eq(mem.reads - before, 4 * 2 + 2);
}

Test(virtqueue, entries_published_during_a_batch_are_seen_once_it_is_used_up)
{
	fake_vring_desc(&ring, 0, BUF, 8, W, 0);
	fake_vring_desc(&ring, 1, BUF + 0x100, 8, W, 0);
	fake_vring_publish(&ring, 0);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	fake_vring_publish(&ring, 1);
	cr_assert_eq(vq_pop_chain(&vq, chain), 1);
	cr_expect_eq(chain->head, 1);
	cr_expect_eq(vq_pop_chain(&vq, chain), 0);
}

Test(virtqueue, enable_rejects_size_not_power_of_two)
{
	vq_reset(&vq);
	fake_vring_attach(&ring, &vq);
	vq.cfg.num = 12;
	cr_expect_eq(vq_enable(&vq, QSIZE), -EINVAL);
	vq.cfg.num = 32;
	cr_expect_eq(vq_enable(&vq, QSIZE), -EINVAL, "above QueueNumMax");
}

Test(virtqueue, enable_rejects_ring_outside_memory_or_misaligned)
{
	vq_reset(&vq);
	fake_vring_attach(&ring, &vq);
	vq.cfg.used_gpa = MEM_SIZE - 8;
	cr_expect_eq(vq_enable(&vq, QSIZE), -EINVAL);
	vq.cfg.used_gpa = ring.used + 2;
	cr_expect_eq(vq_enable(&vq, QSIZE), -EINVAL);
	vq.cfg.used_gpa = ring.used;
	vq.cfg.desc_gpa = UINT64_MAX - 15;
	cr_expect_eq(vq_enable(&vq, QSIZE), -EINVAL);
}

Test(virtqueue_nocheck, out_of_range_found_by_probing_without_check, .init = setup_nocheck,
     .fini = teardown)
{
	fake_vring_desc(&ring, 0, OUTSIDE, 16, N, 1);
	fake_vring_desc(&ring, 1, BUF + 0x2000, 1, W, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_RANGE);
	fail_and_check(0, BUF + 0x2000, 1);
}

/* Memory that claims every range is RAM, to reach the 32-bit length sum. */
static int check_all(void *opaque, uint64_t gpa, uint64_t len)
{
	return 0;
}

Test(virtqueue, total_length_overflowing_32_bits_is_refused)
{
	mem.gm.check = check_all;
	fake_vring_desc(&ring, 0, BUF, 0x80000000u, W | N, 1);
	fake_vring_desc(&ring, 1, BUF, 0x80000000u, W | N, 2);
	fake_vring_desc(&ring, 2, BUF + 0x2000, 1, W, 0);
	fake_vring_publish(&ring, 0);
	pop_bad(VQ_ERR_OVERFLOW);
	fail_and_check(0, BUF + 0x2000, 1);
}
