// SPDX-License-Identifier: MIT
/*
 * The memory manager, exercised for real: writes go through a space's window
 * (the fault service resolves them), device DMA goes through pinned
 * direct-map iovecs.  The scenarios follow Linux's selftests/mm/cow.c.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mm/mm.h"
#include "mm/mm_internal.h"

#define PAGE MM_PAGE_SIZE
#define NPAGES 64

static struct pool *pool;

static void setup_policy(enum mm_policy policy, bool compat, unsigned int batch)
{
	struct pool_config cfg = {
		.max_bytes = 1ULL << 30, .policy = policy, .cow_batch = batch, .uffd_compat = compat
	};

	cr_assert_eq(pool_create(&cfg, &pool), 0);
}

static void setup(void)
{
	setup_policy(MM_POLICY_PAGECOUNT, false, 1);
}

static void setup_compat(void)
{
	setup_policy(MM_POLICY_PAGECOUNT, true, 1);
}

static void setup_nopin(void)
{
	setup_policy(MM_POLICY_NOPIN, false, 1);
}

static void setup_mapcount(void)
{
	setup_policy(MM_POLICY_MAPCOUNT, false, 1);
}

static void teardown(void)
{
	struct pool_stats st;

	pool_get_stats(pool, &st);
	cr_expect_eq(st.spaces, 0, "every space destroyed");
	pool_destroy(pool);
	pool = NULL;
}

static struct space *new_space(uint64_t pages)
{
	struct space_range r = { .gpa = 0, .size = pages * PAGE };
	struct space *s;

	cr_assert_eq(space_create(pool, &r, 1, &s), 0);
	return s;
}

static uint8_t *page(struct space *s, uint64_t p)
{
	return space_hva(s, p * PAGE);
}

static void fill(struct space *s, uint64_t p, uint8_t v)
{
	memset(page(s, p), v, PAGE);
}

static bool page_is(const void *va, uint8_t v)
{
	const uint8_t *b = va;

	for (size_t i = 0; i < PAGE; i++)
		if (b[i] != v)
			return false;
	return true;
}

static struct pool_stats stats(void)
{
	struct pool_stats st;

	pool_get_stats(pool, &st);
	return st;
}

static struct space *fork_of(struct space *s)
{
	struct space *c;

	cr_assert_eq(space_fork(s, &c), 0);
	return c;
}

/* ---- never-written pages ---------------------------------------------- */

static void unwritten_pages_read_zero_and_get_fresh_frames(void)
{
	struct space *s = new_space(NPAGES);

	cr_assert(page_is(page(s, 3), 0));
	cr_assert_eq(space_frame_of(s, 5 * PAGE), MM_NO_FRAME);
	fill(s, 5, 0xab);
	cr_assert_neq(space_frame_of(s, 5 * PAGE), MM_NO_FRAME);
	cr_assert_eq(stats().copies, 0, "a first write is never a copy");
	cr_assert_eq(stats().fresh, 1);
	cr_assert_eq(stats().live_frames, 1);
	space_destroy(s);
	cr_assert_eq(stats().live_frames, 0);
}

Test(mm, unwritten_pages_read_zero_and_get_fresh_frames, .init = setup, .fini = teardown)
{
	unwritten_pages_read_zero_and_get_fresh_frames();
}

/* ---- 1. COW after fork, both directions ------------------------------- */

static void write_in_child_leaves_parent_intact(void)
{
	struct space *parent = new_space(NPAGES), *child;

	for (int p = 0; p < NPAGES; p++)
		fill(parent, p, 0x11);
	child = fork_of(parent);
	cr_assert(page_is(page(child, 7), 0x11));
	fill(child, 7, 0x22);
	cr_assert(page_is(page(child, 7), 0x22));
	cr_assert(page_is(page(parent, 7), 0x11), "the parent must not see the child's write");
	fill(parent, 9, 0x33);
	cr_assert(page_is(page(parent, 9), 0x33));
	cr_assert(page_is(page(child, 9), 0x11), "the child must not see the parent's write");
	/* A page neither wrote is still one frame, shared. */
	cr_assert_eq(space_frame_of(parent, 20 * PAGE), space_frame_of(child, 20 * PAGE));
	cr_assert_eq(pool_frame_count(pool, space_frame_of(child, 20 * PAGE)), 2);
	/* Pages the parent never wrote stay separate after the fork too. */
	fill(child, NPAGES - 1, 0x44);
	fill(parent, NPAGES - 1, 0x55);
	cr_assert(page_is(page(child, NPAGES - 1), 0x44));
	space_destroy(child);
	space_destroy(parent);
	cr_assert_eq(stats().live_frames, 0);
}

Test(mm, write_in_child_leaves_parent_intact, .init = setup, .fini = teardown)
{
	write_in_child_leaves_parent_intact();
}

Test(mm, write_in_child_leaves_parent_intact_on_the_6_1_uffd_path, .init = setup_compat,
     .fini = teardown)
{
	write_in_child_leaves_parent_intact();
}

Test(mm, never_written_pages_of_a_parent_stay_private_after_fork, .init = setup, .fini = teardown)
{
	struct space *parent = new_space(NPAGES), *child;

	fill(parent, 0, 1);
	child = fork_of(parent);
	fill(parent, 10, 0x5a); /* never written before the fork: no fault */
	fill(child, 11, 0xa5);
	cr_assert(page_is(page(child, 10), 0));
	cr_assert(page_is(page(parent, 11), 0));
	space_destroy(child);
	space_destroy(parent);
}

/* ---- 2. after one side copies, the other reuses ------------------------ */

static void other_side_reuses_after_one_side_copies(void)
{
	struct space *parent = new_space(NPAGES), *child;
	uint64_t old;

	fill(parent, 4, 0x10);
	child = fork_of(parent);
	old = space_frame_of(parent, 4 * PAGE);
	fill(parent, 4, 0x20);
	cr_assert_eq(stats().copies, 1);
	cr_assert_neq(space_frame_of(parent, 4 * PAGE), old, "the parent moved to a copy");
	cr_assert_eq(pool_frame_count(pool, old), 1);
	fill(child, 4, 0x30);
	cr_assert_eq(stats().copies, 1, "page_count == 1: no second copy");
	cr_assert_eq(stats().reuses, 1);
	cr_assert_eq(space_frame_of(child, 4 * PAGE), old, "the child reused the frame in place");
	cr_assert(page_is(page(parent, 4), 0x20));
	cr_assert(page_is(page(child, 4), 0x30));
	space_destroy(child);
	space_destroy(parent);
}

Test(mm, other_side_reuses_after_one_side_copies, .init = setup, .fini = teardown)
{
	other_side_reuses_after_one_side_copies();
}

Test(mm, other_side_reuses_after_one_side_copies_on_the_6_1_uffd_path, .init = setup_compat,
     .fini = teardown)
{
	other_side_reuses_after_one_side_copies();
}

/* ---- 3. generations and leaks ---------------------------------------- */

Test(mm, three_generations_then_destroy_all_leaves_no_frame, .init = setup, .fini = teardown)
{
	struct space *g0 = new_space(NPAGES), *g1, *g2, *g3;

	for (int p = 0; p < NPAGES; p++)
		fill(g0, p, 1);
	g1 = fork_of(g0);
	fill(g1, 1, 2);
	g2 = fork_of(g1);
	fill(g2, 2, 3);
	fill(g1, 2, 4);
	g3 = fork_of(g2);
	fill(g3, 3, 5);
	fill(g0, 3, 6);
	cr_assert(page_is(page(g3, 1), 2) && page_is(page(g3, 2), 3) && page_is(page(g3, 3), 5));
	cr_assert(page_is(page(g2, 1), 2) && page_is(page(g2, 2), 3) && page_is(page(g2, 3), 1));
	cr_assert(page_is(page(g1, 2), 4) && page_is(page(g1, 3), 1));
	cr_assert(page_is(page(g0, 1), 1) && page_is(page(g0, 3), 6));
	space_destroy(g1); /* a middle generation first */
	cr_assert(page_is(page(g2, 1), 2));
	space_destroy(g0);
	space_destroy(g3);
	space_destroy(g2);
	cr_assert_eq(stats().live_frames, 0);
	cr_assert_eq(pool->nregions, 0, "every region released");
}

/* ---- 4. and 5. pinned pages across fork ------------------------------ */

/*
 * The parent's device holds a write pin on page 3 across a fork and keeps
 * writing through it afterwards; the parent's CPU writes the page too.
 * Returns true when the parent saw every device write and the child none.
 */
static bool pinned_page_survives_fork(void)
{
	struct space *parent = new_space(NPAGES), *child;
	struct mm_pin pin;
	uint8_t *dma;
	bool ok = true;

	fill(parent, 3, 0x01);
	cr_assert_eq(space_pin(parent, 3 * PAGE, PAGE, MM_PIN_WRITE, &pin), 0);
	cr_assert_eq(pin.niov, 1);
	dma = pin.iov[0].iov_base;
	child = fork_of(parent);

	dma[0] = 0xd1; /* device write after the fork */
	page(parent, 3)[8] = 0xc1; /* parent CPU write to the same page */
	dma[16] = 0xd2; /* and the device goes on writing */
	ok &= page(parent, 3)[0] == 0xd1 && page(parent, 3)[16] == 0xd2;
	ok &= page(parent, 3)[8] == 0xc1;
	ok &= page(child, 3)[0] == 0x01 && page(child, 3)[16] == 0x01 && page(child, 3)[8] == 0x01;
	space_unpin(&pin);
	space_destroy(child);
	space_destroy(parent);
	cr_assert_eq(stats().live_frames, 0);
	return ok;
}

Test(mm, frame_pinned_at_fork_is_copied_for_the_child, .init = setup, .fini = teardown)
{
	cr_assert(pinned_page_survives_fork(),
		  "device writes after fork must reach the parent and never the child");
	cr_assert_eq(stats().fork_copies, 1);
}

Test(mm, nopin_policy_loses_device_writes_and_the_test_sees_it, .init = setup_nopin,
     .fini = teardown)
{
	cr_assert_not(pinned_page_survives_fork(),
		      "under nopin the parent COWs away from its pinned frame (wrong-way COW)");
	cr_assert_eq(stats().fork_copies, 0);
}

Test(mm, parent_cpu_write_does_not_move_a_pinned_page, .init = setup, .fini = teardown)
{
	struct space *parent = new_space(NPAGES), *child;
	struct mm_pin pin;
	uint64_t f;

	fill(parent, 3, 1);
	cr_assert_eq(space_pin(parent, 3 * PAGE, PAGE, MM_PIN_WRITE, &pin), 0);
	f = space_frame_of(parent, 3 * PAGE);
	child = fork_of(parent);
	fill(parent, 3, 2);
	cr_assert_eq(space_frame_of(parent, 3 * PAGE), f);
	cr_assert_neq(space_frame_of(child, 3 * PAGE), f);
	cr_assert_eq(stats().faults, 0, "the pinned page stayed writable in the parent");
	space_unpin(&pin);
	space_destroy(child);
	space_destroy(parent);
}

Test(mm, write_pin_of_a_shared_page_breaks_cow_first, .init = setup, .fini = teardown)
{
	struct space *parent = new_space(NPAGES), *child;
	struct mm_pin pin;

	fill(parent, 6, 0x61);
	child = fork_of(parent);
	cr_assert_eq(space_pin(child, 6 * PAGE + 100, 200, MM_PIN_WRITE, &pin), 0);
	memset(pin.iov[0].iov_base, 0x62, 200);
	cr_assert_eq(page(child, 6)[100], 0x62, "the device wrote what the child reads");
	cr_assert_eq(page(child, 6)[99], 0x61);
	cr_assert(page_is(page(parent, 6), 0x61), "and never the parent's frame");
	space_unpin(&pin);
	space_destroy(child);
	space_destroy(parent);
}

Test(mm, pin_across_pages_gives_merged_iovecs_in_the_direct_map, .init = setup, .fini = teardown)
{
	struct space *s = new_space(NPAGES);
	struct mm_pin pin;

	cr_assert_eq(space_pin(s, 2 * PAGE + 10, 3 * PAGE, MM_PIN_WRITE, &pin), 0);
	cr_assert_eq(pin.nframes, 4);
	cr_assert_eq(pin.niov, 1, "home frames are contiguous: one iovec");
	cr_assert_eq(pin.iov[0].iov_len, 3 * PAGE);
	memset(pin.iov[0].iov_base, 0x77, 3 * PAGE);
	cr_assert_eq(page(s, 2)[10], 0x77);
	cr_assert_eq(page(s, 5)[9], 0x77);
	cr_assert_eq(page(s, 5)[10], 0);
	cr_assert_eq(stats().pinned_frames, 4);
	space_unpin(&pin);
	cr_assert_eq(stats().pinned_frames, 0);
	space_destroy(s);
}

/* ---- 6. an extra reference (a snapshot reader) ------------------------ */

/* Returns true when the reader's view stayed as it was at the reference. */
static bool reader_view_survives_write(void)
{
	struct space *s = new_space(NPAGES);
	uint64_t f;
	bool intact;

	fill(s, 8, 0x80);
	cr_assert_eq(space_ref_page(s, 8 * PAGE, &f), 0);
	fill(s, 8, 0x81);
	cr_assert(page_is(page(s, 8), 0x81));
	intact = page_is(pool_frame_ptr(pool, f), 0x80);
	pool_frame_put(pool, f);
	space_destroy(s);
	cr_assert_eq(stats().live_frames, 0);
	return intact;
}

Test(mm, pagecount_copies_when_a_reader_holds_a_reference, .init = setup, .fini = teardown)
{
	cr_assert(reader_view_survives_write(), "the snapshot reader's view was torn");
	cr_assert_eq(stats().copies, 1);
}

Test(mm, mapcount_policy_tears_the_reader_view_and_the_test_sees_it, .init = setup_mapcount,
     .fini = teardown)
{
	cr_assert_not(reader_view_survives_write(), "mapcount reuses in place under a reader");
	cr_assert_eq(stats().reuses, 1);
}

/* ---- 6b. a reference of a write-pinned page (issue 9) ------------------ */

/*
 * The guest wrote page 5; a device holds a write pin on it (a virtio-blk read
 * in flight); a snapshot writer takes a reference; the guest writes the page
 * again and the device completes, then a second write pin of the page.
 * Returns true when the device's writes land where the guest reads, both pins
 * are one frame, and the reader kept the page as of its reference.
 */
static bool pinned_page_survives_a_reference(void)
{
	struct space *s = new_space(NPAGES);
	struct mm_pin pin1, pin2;
	uint8_t *dma1, *dma2;
	uint64_t ref;
	bool ok = true;

	fill(s, 5, 0x50);
	cr_assert_eq(space_pin(s, 5 * PAGE, PAGE, MM_PIN_WRITE, &pin1), 0);
	dma1 = pin1.iov[0].iov_base;
	cr_assert_eq(space_ref_page(s, 5 * PAGE, &ref), 0);
	page(s, 5)[8] = 0xc1; /* the guest writes the page */
	dma1[0] = 0xd1; /* the device completes its read into the page */
	cr_assert_eq(space_pin(s, 5 * PAGE, PAGE, MM_PIN_WRITE, &pin2), 0);
	dma2 = pin2.iov[0].iov_base;
	dma2[16] = 0xd2;
	ok &= pin2.frames[0] == pin1.frames[0];
	ok &= space_frame_of(s, 5 * PAGE) == pin1.frames[0];
	ok &= page(s, 5)[0] == 0xd1 && page(s, 5)[16] == 0xd2 && page(s, 5)[8] == 0xc1;
	ok &= page_is(pool_frame_ptr(pool, ref), 0x50);
	space_unpin(&pin2);
	space_unpin(&pin1);
	pool_frame_put(pool, ref);
	space_destroy(s);
	cr_assert_eq(stats().live_frames, 0);
	return ok;
}

Test(mm, reference_of_a_write_pinned_page_gives_the_reader_a_copy, .init = setup, .fini = teardown)
{
	cr_assert(pinned_page_survives_a_reference(),
		  "device writes must reach the guest's frame and both pins share it");
	cr_assert_eq(stats().copies, 0, "an exclusive page is never copied for a write or a pin");
	cr_assert_eq(stats().ref_copies, 1, "the reader got a copy");
	cr_assert_eq(stats().faults, 0, "the pinned page stayed writable");
}

Test(mm, reference_of_a_write_pinned_page_on_the_6_1_uffd_path, .init = setup_compat,
     .fini = teardown)
{
	cr_assert(pinned_page_survives_a_reference());
}

/*
 * mapcount models Linux before 5.9: the reader shares the pinned frame, and
 * with one mapping the guest's write reuses it in place.  The device's
 * writes stay with the guest; the reader's view tears.
 */
Test(mm, reference_of_a_write_pinned_page_under_mapcount_tears_the_reader_view,
     .init = setup_mapcount, .fini = teardown)
{
	struct space *s = new_space(NPAGES);
	struct mm_pin pin;
	uint8_t *dma;
	uint64_t ref;

	fill(s, 5, 0x50);
	cr_assert_eq(space_pin(s, 5 * PAGE, PAGE, MM_PIN_WRITE, &pin), 0);
	dma = pin.iov[0].iov_base;
	cr_assert_eq(space_ref_page(s, 5 * PAGE, &ref), 0);
	cr_assert_eq(ref, pin.frames[0], "mapcount shares the pinned frame with the reader");
	page(s, 5)[8] = 0xc1;
	dma[0] = 0xd1;
	cr_assert_eq(space_frame_of(s, 5 * PAGE), pin.frames[0],
		     "one mapping: the guest's write reused the frame in place");
	cr_assert(page(s, 5)[0] == 0xd1 && page(s, 5)[8] == 0xc1, "guest and device agree");
	cr_assert_not(page_is(pool_frame_ptr(pool, ref), 0x50),
		      "the reader's view tore, and the test sees it");
	space_unpin(&pin);
	pool_frame_put(pool, ref);
	space_destroy(s);
	cr_assert_eq(stats().live_frames, 0);
}

/*
 * mapcount at a fork: the pinned frame is shared and protected, the parent's
 * next write maps two spaces and copies, and the device's later writes land
 * in the frame the parent left (wrong-way COW, as Linux before 5.9).
 */
Test(mm, mapcount_fork_of_a_pinned_page_loses_device_writes_and_the_test_sees_it,
     .init = setup_mapcount, .fini = teardown)
{
	struct space *s = new_space(NPAGES), *child;
	struct mm_pin pin;
	uint8_t *dma;

	fill(s, 6, 0x60);
	cr_assert_eq(space_pin(s, 6 * PAGE, PAGE, MM_PIN_WRITE, &pin), 0);
	dma = pin.iov[0].iov_base;
	cr_assert_eq(space_fork(s, &child), 0);
	page(s, 6)[8] = 0xc6; /* the parent writes the page: two mappings, a copy */
	dma[0] = 0xd6; /* the device completes its read */
	cr_assert_neq(space_frame_of(s, 6 * PAGE), pin.frames[0],
		      "the parent moved off the pinned frame");
	cr_assert_neq(page(s, 6)[0], 0xd6,
		      "the parent lost the device's write, and the test sees it");
	space_unpin(&pin);
	space_destroy(child);
	space_destroy(s);
	cr_assert_eq(stats().live_frames, 0);
}

Test(mm, nopin_policy_protects_a_pinned_page_for_a_reader_and_the_test_sees_it, .init = setup_nopin,
     .fini = teardown)
{
	cr_assert_not(pinned_page_survives_a_reference(),
		      "under nopin the reference shares the pinned frame (wrong-way COW)");
}

Test(mm, reference_of_an_unpinned_page_is_shared_not_copied, .init = setup, .fini = teardown)
{
	struct space *s = new_space(NPAGES);
	uint64_t ref;

	fill(s, 2, 0x20);
	cr_assert_eq(space_ref_page(s, 2 * PAGE, &ref), 0);
	cr_assert_eq(ref, space_frame_of(s, 2 * PAGE), "no pin: the reader shares the frame");
	cr_assert_eq(stats().ref_copies, 0);
	/* A write pin now must break COW: the reader keeps its view. */
	{
		struct mm_pin pin;

		cr_assert_eq(space_pin(s, 2 * PAGE, PAGE, MM_PIN_WRITE, &pin), 0);
		cr_assert_neq(pin.frames[0], ref);
		memset(pin.iov[0].iov_base, 0x21, PAGE);
		space_unpin(&pin);
	}
	cr_assert(page_is(page(s, 2), 0x21));
	cr_assert(page_is(pool_frame_ptr(pool, ref), 0x20));
	pool_frame_put(pool, ref);
	space_destroy(s);
	cr_assert_eq(stats().live_frames, 0);
}

/* ---- 7. read pins of shared pages ------------------------------------ */

Test(mm, read_pin_of_a_shared_page_reads_consistent_data, .init = setup, .fini = teardown)
{
	struct space *parent = new_space(NPAGES), *child;
	struct mm_pin pin;
	uint8_t *dma;

	fill(parent, 12, 0x12);
	child = fork_of(parent);
	cr_assert_eq(space_pin(child, 12 * PAGE, PAGE, 0, &pin), 0);
	cr_assert_eq(stats().copies, 0, "a read pin does not unshare (docs/mm.md)");
	dma = pin.iov[0].iov_base;
	fill(parent, 12, 0x13); /* the other sharer writes during the DMA */
	cr_assert(page_is(dma, 0x12), "the device must read the data as of the pin");
	fill(child, 12, 0x14); /* and so does the pinning space itself */
	cr_assert(page_is(dma, 0x12));
	cr_assert(page_is(page(child, 12), 0x14));
	space_unpin(&pin);
	space_destroy(child);
	space_destroy(parent);
	cr_assert_eq(stats().live_frames, 0);
}

/* ---- batching and the mapping budget ---------------------------------- */

Test(mm, batched_cow_copies_the_block_and_merges_mappings, .init = NULL, .fini = teardown)
{
	struct space *parent, *child;
	struct space_stats st;

	setup_policy(MM_POLICY_PAGECOUNT, false, 8);
	parent = new_space(NPAGES);
	for (int p = 0; p < NPAGES; p++)
		fill(parent, p, 9);
	child = fork_of(parent);
	for (int p = 0; p < 16; p++)
		fill(child, p, 10);
	cr_assert_eq(stats().faults, 2, "one fault per 8-page block");
	cr_assert_eq(stats().copies, 16);
	space_get_stats(child, &st);
	cr_assert_leq(st.vmas, 2, "copied pages merge into one VMA, got %lu", st.vmas);
	cr_assert(page_is(page(parent, 15), 9));
	space_destroy(child);
	space_destroy(parent);
}

/* ---- 9. bad calls ----------------------------------------------------- */

Test(mm, bad_ranges_are_refused, .init = setup, .fini = teardown)
{
	struct space_range bad[][2] = {
		{ { 0, 0 } }, /* empty */
		{ { 100, PAGE } }, /* unaligned */
		{ { UINT64_MAX - PAGE + 1, 2 * PAGE } }, /* wraps */
		{ { 0, 4 * PAGE }, { 2 * PAGE, PAGE } }, /* overlap */
		{ { UINT64_MAX - PAGE + 1, PAGE } }, /* ends at the top: gpa + size wraps */
		{ { UINT64_MAX - PAGE + 1, PAGE }, { 0, PAGE } }, /* top, then unsorted */
		{ { 4 * PAGE, PAGE }, { 0, PAGE } }, /* unsorted */
		{ { 0, 2 * PAGE }, { 0, 2 * PAGE } }, /* the same range twice */
	};
	unsigned int n[] = { 1, 1, 1, 2, 1, 2, 2, 2 };
	struct space *s = NULL;

	for (unsigned int i = 0; i < sizeof(n) / sizeof(n[0]); i++)
		cr_assert_eq(space_create(pool, bad[i], n[i], &s), -EINVAL, "case %u", i);
	cr_assert_eq(space_create(pool, bad[0], 0, &s), -EINVAL);
	cr_assert_null(s);
}

Test(mm, adjacent_sorted_ranges_and_one_just_below_the_top_are_accepted, .init = setup,
     .fini = teardown)
{
	struct space_range ok[] = { { 0, PAGE },
				    { PAGE, PAGE },
				    { UINT64_MAX - 2 * PAGE + 1, PAGE } };
	struct space *s;

	cr_assert_eq(space_create(pool, ok, 3, &s), 0);
	cr_assert_eq(space_size(s), 3 * PAGE);
	cr_assert_not_null(space_hva(s, UINT64_MAX - 2 * PAGE + 1));
	space_destroy(s);
}

/* ---- the error channel: a fault that cannot be resolved -------------- */

struct error_seen {
	_Atomic int calls;
	int err;
	uint64_t gpa;
};

static void on_space_error(void *opaque, int err, uint64_t gpa)
{
	struct error_seen *e = opaque;

	e->err = err;
	e->gpa = gpa;
	atomic_fetch_add(&e->calls, 1);
}

static void *write_one_byte(void *va)
{
	*(volatile uint8_t *)va = 0x77;
	return NULL;
}

Test(mm, an_unresolvable_fault_is_reported_and_stops_only_its_space, .init = setup,
     .fini = teardown, .timeout = 60)
{
	struct space_range r[2] = { { 0, 16 * PAGE }, { 1ULL << 32, 16 * PAGE } };
	uint64_t gpa = (1ULL << 32) + 3 * PAGE + 100, where;
	struct error_seen seen = { 0 }, late = { 0 };
	struct space *parent, *bad, *good, *x;
	struct timespec deadline;
	pthread_t w;
	uint8_t b;

	cr_assert_eq(space_create(pool, r, 2, &parent), 0);
	for (int p = 0; p < 16; p++) {
		fill(parent, p, 0x31);
		memset(space_hva(parent, r[1].gpa + p * PAGE), 0x31, PAGE);
	}
	bad = fork_of(parent);
	good = fork_of(parent);
	space_set_error_handler(bad, on_space_error, &seen);
	/* Every copy fails from now on: the pool looks full. */
	atomic_store(&pool->inject_copy_failures, UINT_MAX);
	cr_assert_eq(pthread_create(&w, NULL, write_one_byte, space_hva(bad, gpa)), 0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 20;
	cr_assert_eq(pthread_timedjoin_np(w, NULL, &deadline), 0,
		     "the writer must be released (fenced), not retry forever");
	atomic_store(&pool->inject_copy_failures, 0);

	cr_assert_eq(atomic_load(&seen.calls), 1, "reported once");
	cr_assert_eq(seen.err, -ENOSPC);
	cr_assert_eq(seen.gpa, gpa & ~(PAGE - 1), "at the guest address, got %#lx", seen.gpa);
	cr_assert_eq(space_error(bad, &where), -ENOSPC);
	cr_assert_eq(where, seen.gpa);
	cr_assert_eq(stats().fault_errors, 1);
	/* A handler registered after the failure hears of it at once. */
	space_set_error_handler(bad, on_space_error, &late);
	cr_assert_eq(atomic_load(&late.calls), 1);
	/* The failed space: fenced off, never cloned, its table as before the failure. */
	fill(bad, 10, 0x44); /* no fault any more: private memory */
	cr_assert_eq(stats().fault_errors, 1);
	cr_assert_eq(space_fork(bad, &x), -ENOSPC);
	cr_assert_eq(space_read(bad, gpa, &b, 1), 0);
	cr_assert_eq(b, 0x31);
	/* The rest of the family goes on. */
	fill(good, 9, 0x32);
	cr_assert(page_is(page(good, 9), 0x32));
	fill(parent, 9, 0x33);
	cr_assert(page_is(page(parent, 9), 0x33));
	cr_assert(page_is(page(good, 10), 0x31));
	cr_assert_eq(space_error(good, NULL), 0);
	cr_assert_eq(space_error(parent, NULL), 0);
	space_destroy(bad);
	space_destroy(good);
	space_destroy(parent);
	cr_assert_eq(stats().live_frames, 0);
}

/* ---- teardown while the fault thread still has a fault to handle ----- */

static sem_t hook_in, hook_go, hook_stopping;
static _Atomic int hook_calls;

static void wait_sem(sem_t *sem)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 10;
	sem_timedwait(sem, &t); /* a timeout lets the test fail, not hang here */
}

/*
 * Handler thread.  Fault 1 (page A) is held until two writers of page B are
 * queued, so that one read() returns both of theirs.  Fault 2 resolves B and
 * wakes both writers; fault 3 is the duplicate, still to be handled, and is
 * held until the last space is being destroyed.
 */
static void hold_fault(uintptr_t addr)
{
	int n = atomic_fetch_add(&hook_calls, 1);

	if (n == 0) {
		sem_post(&hook_in);
		wait_sem(&hook_go);
	} else if (n == 2) {
		wait_sem(&hook_stopping);
	}
}

static void last_user_gone(void)
{
	sem_post(&hook_stopping);
}

struct writer {
	pthread_t thread;
	_Atomic pid_t tid;
	uint8_t *va;
};

static void *writer_thread(void *arg)
{
	struct writer *w = arg;

	atomic_store(&w->tid, gettid());
	*(volatile uint8_t *)w->va = 0x5a;
	return NULL;
}

/* Is the writer asleep (here: blocked in its userfault)? */
static bool writer_sleeps(struct writer *w)
{
	char path[64], buf[256], *p;
	bool sleeps = false;
	FILE *f;

	if (!atomic_load(&w->tid))
		return false;
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", atomic_load(&w->tid));
	f = fopen(path, "re");
	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sleeps = p[2] == 'S' || p[2] == 'D';
	fclose(f);
	return sleeps;
}

Test(mm, last_destroy_does_not_deadlock_with_a_fault_still_to_handle, .init = setup,
     .fini = teardown, .timeout = 60)
{
	struct space *parent = new_space(NPAGES), *child;
	struct writer w[3] = { { .va = NULL } };

	sem_init(&hook_in, 0, 0);
	sem_init(&hook_go, 0, 0);
	sem_init(&hook_stopping, 0, 0);
	atomic_store(&hook_calls, 0);
	fill(parent, 0, 1);
	fill(parent, 1, 1);
	child = fork_of(parent);
	fault_test_hooks.before_lookup = hold_fault;
	fault_test_hooks.last_user_gone = last_user_gone;
	w[0].va = page(child, 0);
	w[1].va = w[2].va = page(child, 1);
	pthread_create(&w[0].thread, NULL, writer_thread, &w[0]);
	wait_sem(&hook_in);
	pthread_create(&w[1].thread, NULL, writer_thread, &w[1]);
	pthread_create(&w[2].thread, NULL, writer_thread, &w[2]);
	for (int i = 0; i < 10000 && !(writer_sleeps(&w[1]) && writer_sleeps(&w[2])); i++)
		usleep(1000);
	sem_post(&hook_go);
	for (int i = 0; i < 3; i++)
		pthread_join(w[i].thread, NULL);
	cr_assert_eq(page(child, 1)[0], 0x5a);
	/* The handler holds the duplicate fault until the last destroy begins. */
	space_destroy(child);
	space_destroy(parent); /* before the fix: joined the handler with svc.lock held */
	cr_assert_eq(atomic_load(&hook_calls), 3,
		     "the duplicate fault was handled after the wake (%d)",
		     atomic_load(&hook_calls));
	fault_test_hooks = (struct fault_test_hooks){ 0 };
}

/* ---- space_destroy() with pins held ---------------------------------- */

Test(mm, pins_hold_a_destroyed_space_until_the_last_unpin, .init = setup, .fini = teardown)
{
	struct space *s = new_space(NPAGES);
	struct mm_pin pin;

	fill(s, 1, 0x11);
	cr_assert_eq(space_pin(s, PAGE, 2 * PAGE, MM_PIN_WRITE, &pin), 0);
	space_destroy(s); /* a device still has a request in flight */
	cr_assert_eq(stats().spaces, 0);
	cr_assert_eq(stats().live_frames, 2, "the pin holds its frames");
	memset(pin.iov[0].iov_base, 0x12, 2 * PAGE); /* the device completes */
	space_unpin(&pin);
	cr_assert_null(pin.space);
	cr_assert_eq(stats().live_frames, 0, "the last unpin frees the frames");
	cr_assert_eq(stats().pinned_frames, 0);
	cr_assert_eq(pool->nregions, 0, "and the regions");
}

Test(mm, bad_pins_and_copies_return_errors_and_change_nothing, .init = setup, .fini = teardown)
{
	struct space *s = new_space(NPAGES);
	struct mm_pin pin;
	uint8_t buf[16];
	uint64_t f;

	fill(s, 0, 0x42);
	cr_assert_eq(space_pin(s, 0, 0, 0, &pin), -EINVAL);
	cr_assert_eq(space_pin(s, UINT64_MAX - 3, 8, 0, &pin), -EINVAL);
	cr_assert_eq(space_pin(s, NPAGES * PAGE - 4, 8, 0, &pin), -EFAULT);
	cr_assert_eq(space_pin(s, NPAGES * PAGE, 1, 0, &pin), -EFAULT);
	cr_assert_eq(space_pin(s, 0, 8, 0x80, &pin), -EINVAL);
	cr_assert_eq(space_read(s, NPAGES * PAGE, buf, 1), -EFAULT);
	cr_assert_eq(space_write(s, UINT64_MAX, buf, 2), -EINVAL);
	cr_assert_eq(space_ref_page(s, NPAGES * PAGE, &f), -EFAULT);
	cr_assert_null(space_hva(s, NPAGES * PAGE));
	cr_assert_eq(stats().pins, 0);
	cr_assert_eq(stats().pinned_frames, 0);
	cr_assert(page_is(page(s, 0), 0x42));
	space_destroy(s);
}

Test(mm, pin_longer_than_the_limit_is_refused, .init = NULL, .fini = teardown)
{
	struct space *s;
	struct mm_pin pin;

	setup_policy(MM_POLICY_PAGECOUNT, false, 1);
	s = new_space(MM_PIN_MAX_PAGES + 2);
	cr_assert_eq(space_pin(s, 0, (MM_PIN_MAX_PAGES + 1) * PAGE, 0, &pin), -E2BIG);
	space_destroy(s);
}

Test(mm, pin_count_overflow_is_refused_and_releases_what_it_took, .init = setup, .fini = teardown)
{
	struct space *s = new_space(NPAGES);
	struct mm_pin pin;
	uint64_t f1;

	fill(s, 0, 1);
	fill(s, 1, 1);
	f1 = space_frame_of(s, PAGE);
	/* White box: page 1's frame is one pin away from the limit. */
	atomic_store(&pool->meta[f1].count, MM_COUNT_LIMIT - MM_PIN_BIAS + 1);
	cr_assert_eq(space_pin(s, 0, 2 * PAGE, 0, &pin), -EOVERFLOW);
	cr_assert_eq(pool_frame_count(pool, space_frame_of(s, 0)), 1, "page 0's pin undone");
	atomic_store(&pool->meta[f1].count, 1);
	space_destroy(s);
}

Test(mm, bad_pool_configs_are_refused, .init = NULL, .fini = NULL)
{
	struct pool_config c = { .cow_batch = 3 };
	struct pool *p;

	cr_assert_eq(pool_create(&c, &p), -EINVAL, "batch not a power of two");
	c = (struct pool_config){ .policy = 7 };
	cr_assert_eq(pool_create(&c, &p), -EINVAL);
	c = (struct pool_config){ .cow_batch = 1024 };
	cr_assert_eq(pool_create(&c, &p), -EINVAL);
}

Test(mm, policies_parse_by_name, .init = NULL, .fini = NULL)
{
	enum mm_policy p;

	cr_assert_eq(mm_policy_parse("nopin", &p), 0);
	cr_assert_eq(p, MM_POLICY_NOPIN);
	cr_assert_str_eq(mm_policy_name(MM_POLICY_MAPCOUNT), "mapcount");
	cr_assert_eq(mm_policy_parse("bogus", &p), -EINVAL);
}

/* ---- counting: underflow and lock contexts ---------------------------- */

#if MM_DEBUG_CHECKS
Test(mm, putting_a_frame_whose_count_is_0_aborts_in_debug_builds, .init = setup, .signal = SIGABRT)
{
	pool_frame_put(pool, 12345); /* a frame nobody holds */
}

Test(mm, a_function_that_needs_the_pool_lock_aborts_without_it_in_debug_builds, .init = setup,
     .signal = SIGABRT)
{
	struct space *s = new_space(NPAGES);

	space_make_present(s, 0);
}
#else
Test(mm, putting_a_frame_whose_count_is_0_is_counted_in_release_builds, .init = setup,
     .fini = teardown)
{
	pool_frame_put(pool, 12345); /* a frame nobody holds */
	cr_assert_eq(stats().underflows, 1);
	cr_assert_eq(pool_frame_count(pool, 12345), 0);
}
#endif

Test(mm, pin_and_unpin_keep_counts_exact, .init = setup, .fini = teardown)
{
	struct space *s = new_space(NPAGES);
	struct mm_pin a, b;
	uint64_t f;

	fill(s, 4, 1);
	f = space_frame_of(s, 4 * PAGE);
	cr_assert_eq(space_pin(s, 4 * PAGE, PAGE, MM_PIN_WRITE, &a), 0);
	cr_assert_eq(space_pin(s, 4 * PAGE, PAGE, 0, &b), 0);
	cr_assert_eq(pool_frame_count(pool, f), 1 + 2 * MM_PIN_BIAS);
	cr_assert_eq(stats().pinned_frames, 1);
	space_unpin(&a);
	cr_assert_eq(pool_frame_count(pool, f), 1 + MM_PIN_BIAS);
	cr_assert_eq(stats().pinned_frames, 1);
	space_unpin(&b);
	cr_assert_eq(pool_frame_count(pool, f), 1);
	cr_assert_eq(stats().pinned_frames, 0);
	cr_assert_eq(stats().underflows, 0);
	space_destroy(s);
}

/* ---- 8. stress: writers, forks and pins against a model --------------- */

#define S_PAGES 256
#define S_SPACES 6
#define S_WRITERS 3
#define S_ROUNDS 20000

struct stress_space {
	struct space *s;
	pthread_rwlock_t quiesce; /* writers hold it shared; fork takes it exclusive */
	uint64_t model[S_PAGES]; /* the tag every word of the page must hold */
};

static struct stress_space sp[S_SPACES];
static unsigned int nsp;
static _Atomic bool forks_done;
/* Worker threads record their first failure here; the test asserts after the join. */
static _Atomic int worker_err;
static char worker_what[128];

static void worker_failed(const char *what, int ret)
{
	int zero = 0;

	if (atomic_compare_exchange_strong(&worker_err, &zero, ret ? ret : -EPROTO))
		snprintf(worker_what, sizeof(worker_what), "%s", what);
}
static pthread_mutex_t sp_lock = PTHREAD_MUTEX_INITIALIZER;

static void tag_page(uint64_t *words, uint64_t tag)
{
	for (size_t i = 0; i < PAGE / 8; i++)
		words[i] = tag;
}

static bool page_has_tag(const uint64_t *words, uint64_t tag)
{
	for (size_t i = 0; i < PAGE / 8; i++)
		if (words[i] != tag)
			return false;
	return true;
}

/* One step on space i: a CPU write through the window, or a device write
 * through a write pin. */
static void stress_step(unsigned int i, unsigned int *seed, uint64_t tag)
{
	struct stress_space *x = &sp[i];
	unsigned int p = rand_r(seed) % S_PAGES;

	pthread_rwlock_wrlock(&x->quiesce); /* one writer per space at a time */
	if (rand_r(seed) % 8 == 0) {
		struct mm_pin pin;
		int ret = space_pin(x->s, (uint64_t)p * PAGE, PAGE, MM_PIN_WRITE, &pin);

		if (ret < 0) {
			worker_failed("space_pin", ret);
			pthread_rwlock_unlock(&x->quiesce);
			return;
		}
		tag_page(pin.iov[0].iov_base, tag);
		space_unpin(&pin);
	} else {
		tag_page((uint64_t *)page(x->s, p), tag);
	}
	x->model[p] = tag;
	pthread_rwlock_unlock(&x->quiesce);
}

static void *stress_writer(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg, id = seed;

	/* Keep writing until every fork happened, however slow the machine. */
	for (uint64_t r = 0;
	     (r < S_ROUNDS || !atomic_load(&forks_done)) && !atomic_load(&worker_err); r++) {
		unsigned int n;

		pthread_mutex_lock(&sp_lock);
		n = nsp;
		pthread_mutex_unlock(&sp_lock);
		stress_step(rand_r(&seed) % n, &seed, ((uint64_t)id << 48) | (r + 1));
	}
	return NULL;
}

static void *stress_forker(void *arg)
{
	unsigned int seed = 77;

	for (;;) {
		unsigned int i, n;
		struct space *c;
		int ret;

		usleep(2000);
		pthread_mutex_lock(&sp_lock);
		n = nsp;
		pthread_mutex_unlock(&sp_lock);
		if (n == S_SPACES || atomic_load(&worker_err)) {
			atomic_store(&forks_done, true);
			break;
		}
		i = rand_r(&seed) % n;
		/* Pause the parent's "vCPUs", as the VMM does for a clone. */
		pthread_rwlock_wrlock(&sp[i].quiesce);
		ret = space_fork(sp[i].s, &c);
		if (ret < 0) {
			pthread_rwlock_unlock(&sp[i].quiesce);
			worker_failed("space_fork", ret);
			atomic_store(&forks_done, true);
			break;
		}
		sp[n].s = c;
		memcpy(sp[n].model, sp[i].model, sizeof(sp[n].model));
		pthread_rwlock_init(&sp[n].quiesce, NULL);
		pthread_rwlock_unlock(&sp[i].quiesce);
		pthread_mutex_lock(&sp_lock);
		nsp = n + 1;
		pthread_mutex_unlock(&sp_lock);
	}
	return NULL;
}

static void stress(void)
{
	pthread_t w[S_WRITERS], f;

	nsp = 1;
	atomic_store(&forks_done, false);
	atomic_store(&worker_err, 0);
	sp[0].s = new_space(S_PAGES);
	memset(sp[0].model, 0, sizeof(sp[0].model));
	pthread_rwlock_init(&sp[0].quiesce, NULL);
	for (uintptr_t i = 0; i < S_WRITERS; i++)
		pthread_create(&w[i], NULL, stress_writer, (void *)(i + 1));
	pthread_create(&f, NULL, stress_forker, NULL);
	for (int i = 0; i < S_WRITERS; i++)
		pthread_join(w[i], NULL);
	pthread_join(f, NULL);
	cr_assert_eq(atomic_load(&worker_err), 0, "a worker's %s failed: %s", worker_what,
		     strerror(-atomic_load(&worker_err)));
	for (unsigned int i = 0; i < nsp; i++)
		for (unsigned int p = 0; p < S_PAGES; p++)
			cr_assert(page_has_tag((uint64_t *)page(sp[i].s, p), sp[i].model[p]),
				  "space %u page %u: want tag %#lx, word 0 is %#lx", i, p,
				  sp[i].model[p], *(uint64_t *)page(sp[i].s, p));
	cr_assert_eq(stats().pinned_frames, 0);
	cr_log_info("stress: %u spaces, %lu faults, %lu copies, %lu reuses, %lu pins", nsp,
		    stats().faults, stats().copies, stats().reuses, stats().pins);
	cr_assert_eq(nsp, S_SPACES);
	cr_assert_gt(stats().copies, 100);
	cr_assert_gt(stats().reuses, 0);
	cr_assert_gt(stats().pins, 100);
	for (unsigned int i = 0; i < nsp; i++)
		space_destroy(sp[i].s);
	cr_assert_eq(stats().live_frames, 0, "no frame leaked");
}

Test(mm, stress_writers_forks_and_pins_match_the_model, .init = setup, .fini = teardown,
     .timeout = 120)
{
	stress();
}

Test(mm, stress_on_the_6_1_uffd_path_with_batched_cow, .init = NULL, .fini = teardown,
     .timeout = 120)
{
	setup_policy(MM_POLICY_PAGECOUNT, true, 8);
	stress();
}

/* ---- the mapping budget ---------------------------------------------- */

/*
 * With a budget this process is already near (the environment lowers
 * vm.max_map_count for mm), a fault collapses its whole 2 MiB block:
 * scattered writes then cost one mapping per block, not two per write.
 */
Test(mm, tight_mapping_budget_collapses_whole_blocks, .init = NULL, .fini = teardown)
{
	struct space *parent, *child;
	struct space_stats st;
	uint64_t pages = 4 * MM_COLLAPSE_PAGES; /* four 2 MiB blocks */

	setenv("FORKVM_MAX_MAP_COUNT", "64", 1); /* read when the service starts */
	setup_policy(MM_POLICY_PAGECOUNT, false, 1);
	parent = new_space(pages);
	for (uint64_t p = 0; p < pages; p++)
		fill(parent, p, 0x33);
	child = fork_of(parent);
	for (uint64_t p = 3; p < pages; p += 37)
		page(child, p)[0] = 0x44;
	cr_assert_leq(stats().faults, 4, "one fault per block, got %lu", stats().faults);
	cr_assert_eq(stats().copies, pages, "every shared page of a touched block copied");
	space_get_stats(child, &st);
	cr_assert_leq(st.vmas, 2, "collapsed blocks merge into one mapping, got %lu", st.vmas);
	for (uint64_t p = 0; p < pages; p++)
		cr_assert_eq(page(child, p)[0], (p >= 3 && (p - 3) % 37 == 0) ? 0x44 : 0x33);
	cr_assert(page_is(page(parent, 3), 0x33), "the parent is untouched");
	space_destroy(child);
	space_destroy(parent);
	unsetenv("FORKVM_MAX_MAP_COUNT");
}

Test(mm, fork_of_a_full_pool_fails_cleanly_and_leaves_the_parent_as_it_was, .init = NULL,
     .fini = teardown)
{
	struct pool_config cfg = { .max_bytes = 8 * 16 * PAGE, .cow_batch = 1 };
	struct space *parent, *child[8];
	unsigned int n = 0;
	int ret;

	cr_assert_eq(pool_create(&cfg, &pool), 0);
	parent = new_space(16);
	for (int p = 0; p < 16; p++)
		fill(parent, p, 0x70 + p);
	while ((ret = space_fork(parent, &child[n])) == 0)
		n++;
	cr_assert_eq(ret, -ENOSPC, "a full pool says so");
	cr_assert_geq(n, 1);
	/* The parent still reads and writes as before; its children too. */
	for (int p = 0; p < 16; p++)
		cr_assert(page_is(page(parent, p), 0x70 + p));
	fill(parent, 2, 0x99);
	cr_assert(page_is(page(child[0], 2), 0x72));
	for (unsigned int i = 0; i < n; i++)
		space_destroy(child[i]);
	fill(parent, 3, 0x9a);
	cr_assert(page_is(page(parent, 3), 0x9a));
	space_destroy(parent);
	cr_assert_eq(stats().live_frames, 0);
}

Test(mm, space_write_and_read_have_no_pin_limit, .init = setup, .fini = teardown)
{
	uint64_t pages = 2 * MM_PIN_MAX_PAGES + 3, len = pages * PAGE - 100;
	struct space *s = new_space(pages);
	uint8_t *buf = malloc(len), *back = malloc(len);

	for (uint64_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	cr_assert_eq(space_write(s, 50, buf, len), 0, "an image larger than a pin loads");
	cr_assert_eq(space_read(s, 50, back, len), 0);
	cr_assert_eq(memcmp(buf, back, len), 0);
	cr_assert_eq(page(s, 0)[49], 0, "nothing written before the start");
	cr_assert_eq(page(s, 0)[50], buf[0]);
	cr_assert_eq(stats().pins, 0, "copies take no pins");
	free(buf);
	free(back);
	space_destroy(s);
}

/* ---- performance paths keep the rules (issue 15) ------------------------ */

/*
 * The adoption scan goes by the table: it looks only at pages with no frame,
 * and reuses one SEEK_HOLE answer for the runs after it.  Pages written
 * without a fault after a first fork, before, between and after pages
 * adopted then (their home slots hold data too), must all be adopted, and
 * shared with the next child, and no other page may be.
 */
Test(mm, pages_written_between_forks_next_to_adopted_ones_are_adopted, .init = setup,
     .fini = teardown)
{
	struct space *t = new_space(256), *c;
	struct space_stats ss;
	const uint64_t later[] = { 4, 5, 6, 7, 64, 65, 66, 67, 70, 100, 101, 255 };

	for (int p = 8; p < 64; p++)
		fill(t, p, 0x11);
	c = fork_of(t); /* adopts [8, 64); protects them in t */
	space_destroy(c);
	for (unsigned int i = 0; i < sizeof(later) / sizeof(later[0]); i++)
		fill(t, later[i], (uint8_t)(0x20 + i)); /* no fault: home slots */
	c = fork_of(t);
	space_get_stats(c, &ss);
	cr_assert_eq(ss.present, 56 + sizeof(later) / sizeof(later[0]));
	for (unsigned int i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
		uint64_t gpa = later[i] * PAGE;

		cr_assert(page_is(page(c, later[i]), (uint8_t)(0x20 + i)), "page %lu",
			  (unsigned long)later[i]);
		cr_assert_eq(space_frame_of(c, gpa), space_frame_of(t, gpa), "page %lu shared",
			     (unsigned long)later[i]);
	}
	cr_assert_eq(space_frame_of(c, 3 * PAGE), MM_NO_FRAME);
	cr_assert_eq(space_frame_of(c, 68 * PAGE), MM_NO_FRAME);
	/* Shared means protected: a write on either side copies. */
	fill(t, 66, 0x77);
	fill(c, 100, 0x88);
	cr_assert(page_is(page(c, 66), 0x20 + 6));
	cr_assert(page_is(page(t, 100), 0x20 + 9));
	space_destroy(c);
	space_destroy(t);
	cr_assert_eq(stats().live_frames, 0);
}
