// SPDX-License-Identifier: MIT
/*
 * Lazy pages (mm/lazy.c): a space whose pages come from a file on first
 * touch.  No KVM: host threads touch the window as a vCPU would, and the
 * device paths (pins, space_read/write) are called directly.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/mm.h"

#define PAGE MM_PAGE_SIZE
#define NPAGES 64

static struct pool *pool;
static int file_fd = -1;

static void setup_with(bool compat)
{
	struct pool_config cfg = { .max_bytes = 1ULL << 30, .cow_batch = 1, .uffd_compat = compat };
	char path[] = "/tmp/forkvm-lazy-XXXXXX";

	cr_assert_eq(pool_create(&cfg, &pool), 0);
	file_fd = mkstemp(path);
	cr_assert_geq(file_fd, 0);
	unlink(path);
}

static void setup(void)
{
	setup_with(false);
}

static void setup_compat(void)
{
	setup_with(true);
}

static void teardown(void)
{
	struct pool_stats st;

	pool_get_stats(pool, &st);
	cr_expect_eq(st.spaces, 0, "every space destroyed");
	pool_destroy(pool);
	pool = NULL;
	close(file_fd);
	file_fd = -1;
}

/* What the file holds at page @p: a pattern no other page has. */
static uint8_t file_byte(uint64_t p, size_t i)
{
	return (uint8_t)(p * 7 + i % 251 + 1);
}

/* The file: pages [0, NPAGES) with data except @hole_from..@hole_to (holes). */
static void write_file(uint64_t hole_from, uint64_t hole_to)
{
	uint8_t buf[PAGE];

	cr_assert_eq(ftruncate(file_fd, NPAGES * PAGE), 0);
	for (uint64_t p = 0; p < NPAGES; p++) {
		if (p >= hole_from && p < hole_to)
			continue;
		for (size_t i = 0; i < PAGE; i++)
			buf[i] = file_byte(p, i);
		cr_assert_eq(pwrite(file_fd, buf, PAGE, (off_t)(p * PAGE)), (ssize_t)PAGE);
	}
}

/* A space of NPAGES whose pages [0, 16) and [24, NPAGES) are lazy from the file. */
static struct space *lazy_space(void)
{
	struct space_range r = { .gpa = 0, .size = NPAGES * PAGE };
	struct space *s;
	unsigned int id;

	write_file(16, 24);
	cr_assert_eq(space_create(pool, &r, 1, &s), 0);
	cr_assert_eq(space_lazy_file(s, file_fd, &id), 0);
	cr_assert_eq(space_lazy_add(s, id, 0, 16 * PAGE, 0), 0);
	cr_assert_eq(space_lazy_add(s, id, 24 * PAGE, (NPAGES - 24) * PAGE, 24 * PAGE), 0);
	return s;
}

static bool page_is_file(const uint8_t *b, uint64_t p)
{
	for (size_t i = 0; i < PAGE; i++)
		if (b[i] != file_byte(p, i))
			return false;
	return true;
}

static bool page_is_zero(const uint8_t *b)
{
	for (size_t i = 0; i < PAGE; i++)
		if (b[i])
			return false;
	return true;
}

static struct space_lazy_stats stats(struct space *s)
{
	struct space_lazy_stats st;

	space_lazy_get_stats(s, &st);
	return st;
}

static void touch_loads(void)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0);

	cr_assert_eq(stats(s).pending, NPAGES - 8);
	cr_assert(page_is_file(w + 3 * PAGE, 3), "a read through the window loads the page");
	cr_assert(page_is_file(w + 40 * PAGE, 40));
	cr_assert_eq(stats(s).faults, 2);
	cr_assert_eq(stats(s).pending, NPAGES - 10);
	/* A write to a page not loaded: the rest of the page is the file's. */
	w[5 * PAGE + 10] = 0xee;
	cr_assert_eq(w[5 * PAGE + 10], 0xee);
	cr_assert_eq(w[5 * PAGE + 11], file_byte(5, 11));
	cr_assert_eq(stats(s).faults, 3);
	/* Loaded once: touching again takes no fault. */
	cr_assert(page_is_file(w + 3 * PAGE, 3));
	cr_assert_eq(stats(s).faults, 3);
	/* Loaded pages own their frames, as written ones. */
	cr_assert_neq(space_frame_of(s, 3 * PAGE), MM_NO_FRAME);
	space_destroy(s);
}

Test(mm_lazy, touching_pages_through_the_window_loads_them, .init = setup, .fini = teardown)
{
	touch_loads();
}

Test(mm_lazy, touching_loads_them_on_the_6_1_path, .init = setup_compat, .fini = teardown)
{
	touch_loads();
}

Test(mm_lazy, holes_read_zero_and_take_no_load, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0), buf[PAGE];

	cr_assert(page_is_zero(w + 20 * PAGE), "a hole of the file is a zero page");
	cr_assert_eq(stats(s).zero_faults, 1);
	cr_assert_eq(stats(s).loaded, 0);
	w[21 * PAGE] = 1; /* a first write to a hole lands as in any space */
	cr_assert_eq(w[21 * PAGE], 1);
	cr_assert_eq(space_read(s, 21 * PAGE, buf, PAGE), 0);
	cr_assert_eq(buf[0], 1);
	cr_assert_eq(space_read(s, 22 * PAGE, buf, PAGE), 0);
	cr_assert(page_is_zero(buf));
	cr_assert_eq(stats(s).loaded, 0);
	space_destroy(s);
}

Test(mm_lazy, reads_writes_and_pins_of_unloaded_pages_load_them, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0), buf[PAGE];
	struct mm_pin pin;
	uint64_t frame;

	/* space_read: through the direct map, where no fault would load it. */
	cr_assert_eq(space_read(s, 1 * PAGE, buf, PAGE), 0);
	cr_assert(page_is_file(buf, 1));
	/* space_write of part of a page keeps the file's other bytes. */
	cr_assert_eq(space_write(s, 2 * PAGE + 100, "xy", 2), 0);
	cr_assert_eq(w[2 * PAGE + 100], 'x');
	cr_assert_eq(w[2 * PAGE + 99], file_byte(2, 99));
	/* A read pin sees the file's data through its iovec. */
	cr_assert_eq(space_pin(s, 30 * PAGE, PAGE, 0, &pin), 0);
	cr_assert(page_is_file(pin.iov[0].iov_base, 30));
	space_unpin(&pin);
	/* A write pin: the device writes part of it, the guest sees both. */
	cr_assert_eq(space_pin(s, 31 * PAGE, 2 * PAGE, MM_PIN_WRITE, &pin), 0);
	cr_assert_eq(pin.niov, 1, "two neighbours loaded into neighbouring frames");
	memset(pin.iov[0].iov_base, 0x5a, 16);
	space_unpin(&pin);
	cr_assert_eq(w[31 * PAGE], 0x5a);
	cr_assert_eq(w[31 * PAGE + 16], file_byte(31, 16));
	cr_assert(page_is_file(w + 32 * PAGE, 32));
	/* A snapshot reader's reference. */
	cr_assert_eq(space_ref_page(s, 33 * PAGE, &frame), 0);
	cr_assert(page_is_file(pool_frame_ptr(pool, frame), 33));
	pool_frame_put(pool, frame);
	cr_assert_eq(stats(s).faults, 0, "none of these went through the window");
	cr_assert_eq(stats(s).loaded, 6);
	space_destroy(s);
}

static void fork_then_touch(void)
{
	struct space *s = lazy_space(), *c;
	uint8_t *w = space_hva(s, 0), *cw;

	w[4 * PAGE] = 0x44; /* loaded and changed before the fork */
	cr_assert(page_is_file(w + 6 * PAGE, 6)); /* loaded, unchanged */
	cr_assert_eq(space_fork(s, &c), 0);
	cw = space_hva(c, 0);
	cr_assert_eq(stats(c).pending, NPAGES - 8 - 2);
	/* Lazy in both: each loads its own. */
	cr_assert(page_is_file(cw + 8 * PAGE, 8));
	cr_assert(page_is_file(w + 8 * PAGE, 8));
	cw[8 * PAGE] = 1;
	cr_assert_eq(w[8 * PAGE], file_byte(8, 0), "the child's write is its own");
	w[9 * PAGE] = 2;
	cr_assert(page_is_file(cw + 9 * PAGE, 9), "the parent's write is its own");
	/* Loaded before the fork: shared, copy on write. */
	cr_assert_eq(cw[4 * PAGE], 0x44);
	cr_assert(page_is_file(cw + 6 * PAGE, 6));
	cw[6 * PAGE] = 3;
	cr_assert_eq(w[6 * PAGE], file_byte(6, 0));
	w[4 * PAGE] = 4;
	cr_assert_eq(cw[4 * PAGE], 0x44);
	/* A hole, in the child. */
	cr_assert(page_is_zero(cw + 17 * PAGE));
	space_destroy(c);
	/* The parent still loads after its child went. */
	cr_assert(page_is_file(w + 50 * PAGE, 50));
	space_destroy(s);
}

Test(mm_lazy, a_fork_of_a_lazy_space_then_touches, .init = setup, .fini = teardown)
{
	fork_then_touch();
}

Test(mm_lazy, a_fork_of_a_lazy_space_on_the_6_1_path, .init = setup_compat, .fini = teardown)
{
	fork_then_touch();
}

Test(mm_lazy, a_later_file_overrides_an_earlier_one, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	char path[] = "/tmp/forkvm-lazy2-XXXXXX";
	int fd2 = mkstemp(path);
	uint8_t page2[PAGE];
	unsigned int id;

	cr_assert_geq(fd2, 0);
	unlink(path);
	memset(page2, 0x77, PAGE);
	cr_assert_eq(pwrite(fd2, page2, PAGE, 10 * PAGE), (ssize_t)PAGE);
	cr_assert_eq(space_lazy_file(s, fd2, &id), 0);
	close(fd2); /* the space keeps its own descriptor */
	cr_assert_eq(space_lazy_add(s, id, 10 * PAGE, PAGE, 10 * PAGE), 0);
	cr_assert_eq(((uint8_t *)space_hva(s, 10 * PAGE))[100], 0x77);
	cr_assert(page_is_file(space_hva(s, 11 * PAGE), 11));
	cr_assert_eq(stats(s).pending, NPAGES - 8 - 2);
	space_destroy(s);
}

Test(mm_lazy, bad_calls_are_refused, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	unsigned int id = 0;

	cr_assert_eq(space_lazy_add(s, 0, 1, PAGE, 0), -EINVAL);
	cr_assert_eq(space_lazy_add(s, 0, 0, 0, 0), -EINVAL);
	cr_assert_eq(space_lazy_add(s, 5, 0, PAGE, 0), -EINVAL);
	cr_assert_eq(space_lazy_add(s, 0, NPAGES * PAGE, PAGE, 0), -EFAULT);
	cr_assert_eq(space_lazy_add(s, 0, (NPAGES - 1) * PAGE, 2 * PAGE, 0), -EFAULT);
	cr_assert_eq(space_lazy_add(s, 0, 0, PAGE, 1ULL << 56), -EINVAL);
	cr_assert_eq(space_write(s, 40 * PAGE, "a", 1), 0);
	cr_assert_eq(space_lazy_add(s, 0, 40 * PAGE, PAGE, 0), -EBUSY, "a page with a frame");
	cr_assert_eq(space_lazy_file(s, -1, &id), -EBADF);
	space_destroy(s);
}

static int err_seen;
static uint64_t err_gpa;

static void on_error(void *opaque, int err, uint64_t gpa)
{
	err_seen = err;
	err_gpa = gpa;
}

Test(mm_lazy, a_short_file_is_an_error_not_a_crash, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0), buf[PAGE];
	struct mm_pin pin;
	uint64_t gpa;

	/* Cut after the checks: page 50 on is gone. */
	cr_assert_eq(ftruncate(file_fd, 50 * PAGE), 0);
	cr_assert_eq(space_read(s, 55 * PAGE, buf, PAGE), -EIO);
	cr_assert_eq(space_write(s, 56 * PAGE, "a", 1), -EIO);
	cr_assert_eq(space_pin(s, 57 * PAGE, PAGE, 0, &pin), -EIO);
	cr_assert_eq(space_frame_of(s, 58 * PAGE), MM_NO_FRAME);
	cr_assert_eq(stats(s).pending, NPAGES - 8, "the pages stay lazy");
	cr_assert(page_is_file(w + 49 * PAGE, 49), "what is there still loads");
	/* Through the window: the error channel stops the space. */
	space_set_error_handler(s, on_error, NULL);
	cr_assert_eq(w[60 * PAGE], 0, "the toucher is woken into the fence");
	cr_assert_eq(err_seen, -EIO);
	cr_assert_eq(err_gpa, 60 * PAGE);
	cr_assert_eq(space_error(s, &gpa), -EIO);
	space_destroy(s);
}

Test(mm_lazy, an_unreadable_file_is_an_error, .init = setup, .fini = teardown)
{
	struct space_range r = { .gpa = 0, .size = NPAGES * PAGE };
	char path[] = "/tmp/forkvm-lazy3-XXXXXX";
	int fd = mkstemp(path), wfd;
	struct space *s;
	uint8_t buf[PAGE];
	unsigned int id;

	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, NPAGES * PAGE), 0);
	wfd = open(path, O_WRONLY | O_CLOEXEC);
	unlink(path);
	close(fd);
	cr_assert_geq(wfd, 0);
	cr_assert_eq(space_create(pool, &r, 1, &s), 0);
	cr_assert_eq(space_lazy_file(s, wfd, &id), 0);
	close(wfd);
	cr_assert_eq(space_lazy_add(s, id, 0, NPAGES * PAGE, 0), 0);
	cr_assert_eq(space_read(s, 0, buf, PAGE), -EBADF);
	space_destroy(s);
}

Test(mm_lazy, prefetch_loads_the_listed_pages_in_runs, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0);
	/* Unsorted tail, a hole, a page outside, a misaligned one: skipped. */
	uint64_t gpas[] = { 2 * PAGE,  3 * PAGE,  4 * PAGE,	 20 * PAGE,
			    30 * PAGE, 31 * PAGE, NPAGES * PAGE, 33 * PAGE + 1 };
	uint64_t loaded;

	cr_assert_eq(space_lazy_prefetch(s, gpas, 8, &loaded), 0);
	cr_assert_eq(loaded, 5);
	cr_assert_eq(stats(s).prefetched, 5);
	cr_assert(page_is_file(w + 3 * PAGE, 3));
	cr_assert(page_is_file(w + 31 * PAGE, 31));
	cr_assert_eq(stats(s).faults, 0, "prefetched pages take no fault");
	/* Twice: nothing left to load. */
	cr_assert_eq(space_lazy_prefetch(s, gpas, 8, &loaded), 0);
	cr_assert_eq(loaded, 0);
	space_destroy(s);
}

Test(mm_lazy, the_log_holds_the_pages_touched_while_recording, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0), buf[PAGE];
	uint64_t *gpas, one = 9 * PAGE, loaded;
	ssize_t n;

	(void)w[1 * PAGE]; /* before recording */
	space_lazy_record(s, true);
	(void)*(volatile uint8_t *)(w + 40 * PAGE);
	cr_assert_eq(space_read(s, 3 * PAGE, buf, 1), 0);
	(void)*(volatile uint8_t *)(w + 20 * PAGE); /* a hole: nothing to load */
	cr_assert_eq(space_lazy_prefetch(s, &one, 1, &loaded), 0);
	(void)*(volatile uint8_t *)(w + 2 * PAGE);
	space_lazy_record(s, false);
	(void)*(volatile uint8_t *)(w + 5 * PAGE); /* after */
	n = space_lazy_take_log(s, &gpas);
	cr_assert_eq(n, 3);
	cr_assert_eq(gpas[0], 2 * PAGE);
	cr_assert_eq(gpas[1], 3 * PAGE);
	cr_assert_eq(gpas[2], 40 * PAGE);
	free(gpas);
	cr_assert_eq(space_lazy_take_log(s, &gpas), 0, "taken: empty");
	free(gpas);
	space_destroy(s);
}

Test(mm_lazy, a_space_without_a_backing_source_has_no_lazy_state, .init = setup, .fini = teardown)
{
	struct space_range r = { .gpa = 0, .size = NPAGES * PAGE };
	struct space_lazy_stats st;
	uint64_t *gpas, g = 0, loaded = 1;
	struct space *s;

	cr_assert_eq(space_create(pool, &r, 1, &s), 0);
	space_lazy_get_stats(s, &st);
	cr_assert_eq(st.pending + st.loaded + st.zero_faults, 0);
	cr_assert_eq(space_lazy_add(s, 0, 0, PAGE, 0), -EINVAL);
	cr_assert_eq(space_lazy_prefetch(s, &g, 1, &loaded), 0);
	cr_assert_eq(loaded, 0);
	cr_assert_eq(space_lazy_take_log(s, &gpas), 0);
	((uint8_t *)space_hva(s, 0))[0] = 1;
	space_lazy_get_stats(s, &st);
	cr_assert_eq(st.zero_faults, 0, "no missing mode: a first touch takes no fault");
	space_destroy(s);
}

static void read_around(void)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0);
	uint64_t *gpas;

	cr_assert_eq(space_lazy_set_readaround(s, 3), -EINVAL);
	cr_assert_eq(space_lazy_set_readaround(s, 0), -EINVAL);
	cr_assert_eq(space_lazy_set_readaround(s, 16), 0);
	space_lazy_record(s, true);
	cr_assert(page_is_file(w + 3 * PAGE, 3));
	cr_assert_eq(stats(s).faults, 1);
	cr_assert_eq(stats(s).read_around, 15, "its block of 16 came with it");
	cr_assert(page_is_file(w + 15 * PAGE, 15));
	cr_assert(page_is_file(w + 0 * PAGE, 0));
	cr_assert_eq(stats(s).faults, 1, "the block's pages take no fault");
	/* Block [16, 32): 16..23 are a hole of the file; 24..31 come in. */
	cr_assert(page_is_file(w + 26 * PAGE, 26));
	cr_assert_eq(stats(s).read_around, 15 + 7);
	cr_assert(page_is_file(w + 24 * PAGE, 24));
	cr_assert(page_is_file(w + 31 * PAGE, 31));
	cr_assert_eq(stats(s).faults, 2);
	cr_assert(page_is_zero(w + 23 * PAGE));
	cr_assert_eq(stats(s).pending, NPAGES - 8 - 24);
	space_lazy_record(s, false);
	cr_assert_eq(space_lazy_take_log(s, &gpas), 2, "only the touched pages are logged");
	cr_assert_eq(gpas[0], 3 * PAGE);
	cr_assert_eq(gpas[1], 26 * PAGE);
	free(gpas);
	space_destroy(s);
}

Test(mm_lazy, a_fault_reads_its_lazy_block_around, .init = setup, .fini = teardown)
{
	read_around();
}

Test(mm_lazy, a_fault_reads_around_on_the_6_1_path, .init = setup_compat, .fini = teardown)
{
	read_around();
}

Test(mm_lazy, fill_gives_lazy_pages_the_contents_given, .init = setup, .fini = teardown)
{
	struct space *s = lazy_space();
	uint8_t *w = space_hva(s, 0), *pages = malloc(3 * PAGE), buf[PAGE];
	uint64_t gpas[] = { 2 * PAGE, 20 * PAGE, 30 * PAGE }, loaded;

	cr_assert_not_null(pages);
	memset(pages, 0x11, PAGE);
	memset(pages + PAGE, 0x22, PAGE);
	memset(pages + 2 * PAGE, 0x33, PAGE);
	w[30 * PAGE] = 9; /* loaded (by this fault) before: left alone */
	cr_assert_eq(space_lazy_fill(s, gpas, pages, 3, &loaded), 0);
	cr_assert_eq(loaded, 1, "only the lazy page of the three");
	cr_assert_eq(w[2 * PAGE + 7], 0x11);
	cr_assert(page_is_zero(w + 20 * PAGE), "a hole stays a hole");
	cr_assert_eq(w[30 * PAGE], 9);
	cr_assert_eq(stats(s).prefetched, 1);
	cr_assert_eq(stats(s).faults, 1);
	/* The file's data stays readable for every page that had a source. */
	cr_assert_eq(space_lazy_read_source(s, 2 * PAGE, buf), 0);
	cr_assert(page_is_file(buf, 2));
	cr_assert_eq(space_lazy_read_source(s, 30 * PAGE, buf), 0);
	cr_assert(page_is_file(buf, 30), "the file's, not the page's later write");
	cr_assert_eq(space_lazy_read_source(s, 20 * PAGE, buf), -ENOENT);
	cr_assert_eq(space_lazy_read_source(s, 0, buf), 0, "page 0 at offset 0 has a source");
	cr_assert(page_is_file(buf, 0));
	cr_assert_eq(space_lazy_read_source(s, NPAGES * PAGE, buf), -EFAULT);
	free(pages);
	space_destroy(s);
}
