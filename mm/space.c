// SPDX-License-Identifier: MIT
/*
 * Guest spaces: the GPA -> frame table of one VM and the host window that
 * KVM memslots point at.  Page p of the window is a MAP_SHARED mapping of
 * the pool at the page's frame, or at its home slot while it has none.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/mm_internal.h"

uint64_t space_mapped_frame(const struct space *s, uint64_t p)
{
	return s->frame[p] != MM_NO_FRAME ? s->frame[p] : s->home->start + p;
}

/* Page index of @gpa, or UINT64_MAX when it is not guest memory. */
uint64_t space_page_of(const struct space *s, uint64_t gpa)
{
	for (unsigned int i = 0; i < s->nranges; i++) {
		const struct space_range *r = &s->ranges[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return s->range_page[i] + ((gpa - r->gpa) >> MM_PAGE_SHIFT);
	}
	return UINT64_MAX;
}

/* The caller's ranges (from a configuration or a snapshot file). */
static int check_ranges(const struct space_range *ranges, unsigned int n, uint64_t *npages)
{
	uint64_t total = 0, end = 0;

	if (n == 0 || n > MM_MAX_RANGES)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++) {
		if ((ranges[i].gpa | ranges[i].size) & (MM_PAGE_SIZE - 1) || ranges[i].size == 0)
			return -EINVAL;
		if (i > 0 && ranges[i].gpa < end)
			return -EINVAL; /* overlapping or unsorted */
		/* End below 2^64: an end that wraps to 0 would let any next range pass. */
		if (__builtin_add_overflow(ranges[i].gpa, ranges[i].size, &end) || end == 0)
			return -EINVAL;
		if (__builtin_add_overflow(total, ranges[i].size >> MM_PAGE_SHIFT, &total))
			return -EINVAL;
	}
	*npages = total;
	return 0;
}

/*
 * The page table of a space (frame per page, then a flag byte per page), in
 * one mapping populated up front: first-touching it page by page costs a
 * fault per 4 KiB, which on a 512 MiB guest was half of a clone's time.
 */
static size_t tables_bytes(uint64_t npages)
{
	return npages * (sizeof(uint64_t) + 1);
}

struct space *space_alloc(struct pool *pool, const struct space_range *ranges, unsigned int n,
			  uint64_t npages)
{
	struct space *s = calloc(1, sizeof(*s));
	uint64_t page = 0;
	void *t;

	if (!s)
		return NULL;
	t = mmap(NULL, tables_bytes(npages), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (t == MAP_FAILED) {
		free(s);
		return NULL;
	}
	s->pool = pool;
	s->nranges = n;
	s->npages = npages;
	for (unsigned int i = 0; i < n; i++) {
		s->ranges[i] = ranges[i];
		s->range_page[i] = page;
		page += ranges[i].size >> MM_PAGE_SHIFT;
	}
	s->frame = t;
	s->pflags = (uint8_t *)(s->frame + npages);
	/* Registered with userfaultfd when a page is first protected. */
	s->unregistered = true;
	memset(s->frame, 0xff, npages * sizeof(*s->frame)); /* MM_NO_FRAME */
	return s;
}

void space_free(struct space *s)
{
	lazy_free(s);
	munmap(s->frame, tables_bytes(s->npages));
	free(s);
}

/* Gives @s a home region (also its first copy target).  Context: pool->lock held. */
static int space_take_home(struct space *s)
{
	mm_assert_held(&s->pool->lock);
	s->home = region_alloc(s->pool, s->npages);
	if (!s->home)
		return -ENOSPC;
	s->home->users++; /* one reference as home, one as copy target */
	s->copy = s->home;
	return 0;
}

int space_create(struct pool *pool, const struct space_range *ranges, unsigned int nranges,
		 struct space **out)
{
	uint64_t npages;
	struct space *s;
	int ret;

	ret = check_ranges(ranges, nranges, &npages);
	if (ret < 0)
		return ret;
	if (npages > pool->nframes)
		return -ENOSPC;
	s = space_alloc(pool, ranges, nranges, npages);
	if (!s)
		return -ENOMEM;
	pool_lock(pool);
	ret = space_take_home(s);
	pool_unlock(pool);
	if (ret < 0)
		goto err_free;
	/* Every page at its home slot: one VMA, no frame until written. */
	s->window = mmap(NULL, npages << MM_PAGE_SHIFT, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_NORESERVE, pool->fd, s->home->start << MM_PAGE_SHIFT);
	if (s->window == MAP_FAILED) {
		ret = -errno;
		goto err_home;
	}
	ret = fault_service_add(s);
	if (ret < 0)
		goto err_window;
	pool_lock(pool);
	pool->nspaces++;
	pool_unlock(pool);
	*out = s;
	return 0;

err_window:
	munmap(s->window, npages << MM_PAGE_SHIFT);
err_home:
	pool_lock(pool);
	region_put(pool, s->home);
	region_put(pool, s->copy);
	pool_unlock(pool);
err_free:
	space_free(s);
	return ret;
}

/* Drops every frame of @s and its regions.  Context: pool->lock held. */
void space_release_frames(struct space *s)
{
	struct pool *pool = s->pool;
	struct punch_batch b = { 0 };

	mm_assert_held(&pool->lock);
	space_adopt_written(s);
	for (uint64_t p = 0; p < s->npages; p++) {
		if (s->frame[p] != MM_NO_FRAME)
			frame_put_batched(pool, s->frame[p], true, &b);
		s->frame[p] = MM_NO_FRAME;
	}
	punch_flush(pool, &b);
	region_put(pool, s->home);
	region_put(pool, s->copy);
}

/*
 * Pins held keep the struct (not the table or the window): space_unpin()
 * needs only the pool and the pin count, and frees it after the last pin.
 * Context: no mm lock held.
 */
void space_destroy(struct space *s)
{
	struct pool *pool;
	bool pinned;

	if (!s)
		return;
	pool = s->pool;
	fault_service_remove(s);
	pool_lock(pool);
	space_release_frames(s); /* pinned frames live on through their pin bias */
	lazy_free(s);
	pool->nspaces--;
	pinned = s->active_pins > 0;
	s->destroyed = true;
	pool_unlock(pool);
	munmap(s->window, s->npages << MM_PAGE_SHIFT);
	munmap(s->frame, tables_bytes(s->npages));
	s->frame = NULL;
	s->pflags = NULL;
	if (!pinned)
		free(s);
}

/*
 * Adopt pages [p, end) that own no frame: their home slots hold data.
 * Context: pool->lock held.
 */
static void adopt_run(struct space *s, uint64_t p, uint64_t end)
{
	while (p < end) {
		uint64_t q;

		if (s->frame[p] != MM_NO_FRAME) {
			p++; /* the slot belongs to a frame in use */
			continue;
		}
		for (q = p; q < end && s->frame[q] == MM_NO_FRAME; q++) {
			s->frame[q] = s->home->start + q;
			s->pflags[q] |= PG_EXCL;
		}
		frames_init_run(s->pool, s->home->start + p, q - p);
		atomic_fetch_add(&s->pool->ctr->fresh, q - p);
		p = q;
	}
}

/*
 * Adopt the pages @s wrote without a fault: a page with no frame maps its
 * home slot writable, so a first write lands there directly.
 *
 * Only pages the table has no frame for can need it, so the walk goes by
 * the table: one SEEK_DATA per run of frameless pages (a hole-only run
 * costs that one call), and a SEEK_HOLE only where such a run holds data.
 * A SEEK_HOLE walks the whole data extent, past the run's end into home
 * slots of pages adopted earlier (12 ms for 512 MiB here), so its answer is
 * kept for the runs that follow and no extent is walked twice.  A template
 * whose pages are all adopted (every clone after the first) makes no
 * syscall at all; the scan from the home region's start did two per extent,
 * the SEEK_HOLE over everything it had adopted already.
 * Context: pool->lock held.
 */
void space_adopt_written(struct space *s)
{
	struct pool *pool = s->pool;
	off_t base = s->home->start << MM_PAGE_SHIFT;
	uint64_t data_end = 0; /* pages [.., data_end) hold data, as last seen */
	uint64_t p = 0;

	mm_assert_held(&pool->lock);
	while (p < s->npages) {
		uint64_t end, d, h;
		off_t pos;

		if (s->frame[p] != MM_NO_FRAME) {
			p++;
			continue;
		}
		for (end = p + 1; end < s->npages && s->frame[end] == MM_NO_FRAME; end++)
			;
		/* [p, end): no frame.  Which of these home slots hold data? */
		while (p < end) {
			if (p < data_end) {
				d = p;
			} else {
				pos = lseek(pool->fd, base + (p << MM_PAGE_SHIFT), SEEK_DATA);
				if (pos < 0)
					return; /* ENXIO: no data up to the file's end */
				d = (pos - base) >> MM_PAGE_SHIFT;
				if (d >= end)
					break;
				pos = lseek(pool->fd, pos, SEEK_HOLE);
				h = pos < 0 ? s->npages : (uint64_t)(pos - base) >> MM_PAGE_SHIFT;
				data_end = h < s->npages ? h : s->npages;
			}
			h = data_end < end ? data_end : end;
			adopt_run(s, d, h);
			p = h;
		}
		p = end;
	}
}

/*
 * Map pages [p, p + n) of the window to frames [f, f + n).  The new mapping
 * is a new VMA that userfaultfd does not know; it is writable, so nothing
 * needs to catch its writes until it is write-protected again, and
 * window_protect() registers the window first (one call for all the pages
 * remapped since).  Context: pool->lock held.
 */
int window_map(struct space *s, uint64_t p, uint64_t n, uint64_t f)
{
	void *va = s->window + (p << MM_PAGE_SHIFT);

	mm_assert_held(&s->pool->lock);
	/* A fenced window (fault.c) is private memory: leave it so. */
	if (s->fenced)
		return 0;
	if (mmap(va, n << MM_PAGE_SHIFT, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED | MAP_NORESERVE, s->pool->fd,
		 f << MM_PAGE_SHIFT) == MAP_FAILED)
		return -errno;
	s->unregistered = true;
	vma_budget_note_map();
	return 0;
}

/*
 * Lay the whole window out from the table, one mmap per contiguous run.
 * Context: pool->lock held.
 */
int space_map_all(struct space *s)
{
	uint64_t p = 0;

	mm_assert_held(&s->pool->lock);
	while (p < s->npages) {
		uint64_t f = space_mapped_frame(s, p), q = p + 1;

		while (q < s->npages && space_mapped_frame(s, q) == f + (q - p))
			q++;
		if (mmap(s->window + (p << MM_PAGE_SHIFT), (q - p) << MM_PAGE_SHIFT,
			 PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE,
			 s->pool->fd, f << MM_PAGE_SHIFT) == MAP_FAILED)
			return -errno;
		p = q;
	}
	return 0;
}

struct pool *space_pool(const struct space *s)
{
	return s->pool;
}

const struct space_range *space_ranges(const struct space *s, unsigned int *nranges)
{
	*nranges = s->nranges;
	return s->ranges;
}

uint64_t space_size(const struct space *s)
{
	return s->npages << MM_PAGE_SHIFT;
}

void *space_hva(const struct space *s, uint64_t gpa)
{
	uint64_t p = space_page_of(s, gpa);

	if (p == UINT64_MAX)
		return NULL;
	return s->window + (p << MM_PAGE_SHIFT) + (gpa & (MM_PAGE_SIZE - 1));
}

uint64_t space_frame_of(struct space *s, uint64_t gpa)
{
	uint64_t p = space_page_of(s, gpa), f;

	if (p == UINT64_MAX)
		return MM_NO_FRAME;
	pool_lock(s->pool);
	/* Not loaded yet: a reader (a snapshot writer) needs its data. */
	if (s->frame[p] == MM_NO_FRAME && (s->pflags[p] & PG_LAZY) &&
	    space_make_present(s, p) < 0) {
		pool_unlock(s->pool);
		return MM_NO_FRAME;
	}
	f = s->frame[p];
	if (f == MM_NO_FRAME) {
		off_t off = (s->home->start + p) << MM_PAGE_SHIFT;

		/* Written without a fault?  Then it owns its home frame now. */
		if (lseek(s->pool->fd, off, SEEK_DATA) == off) {
			f = s->frame[p] = s->home->start + p;
			s->pflags[p] |= PG_EXCL;
			frame_init(s->pool, f);
			atomic_fetch_add(&s->pool->ctr->fresh, 1);
		}
	}
	pool_unlock(s->pool);
	return f;
}

void space_set_error_handler(struct space *s, space_error_fn fn, void *opaque)
{
	int err;

	/* Under the lock the fault thread calls the handler with: none runs now. */
	pool_lock(s->pool);
	s->error_fn = fn;
	s->error_opaque = opaque;
	err = s->error;
	pool_unlock(s->pool);
	if (fn && err)
		fn(opaque, err, s->error_gpa);
}

int space_error(struct space *s, uint64_t *gpa)
{
	int err;

	pool_lock(s->pool);
	err = s->error;
	if (gpa)
		*gpa = s->error_gpa;
	pool_unlock(s->pool);
	return err;
}

/* Host VMAs that overlap [start, start + len), from /proc/self/maps. */
uint64_t vma_count(const void *start, uint64_t len)
{
	uintptr_t lo = (uintptr_t)start, hi = len > UINTPTR_MAX - lo ? UINTPTR_MAX : lo + len;
	char line[512];
	uint64_t n = 0;
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx", &a, &b) == 2 && a < hi && b > lo)
			n++;
	}
	fclose(f);
	return n;
}

void space_get_stats(struct space *s, struct space_stats *st)
{
	struct pool *pool = s->pool;

	memset(st, 0, sizeof(*st));
	pool_lock(pool);
	space_adopt_written(s);
	st->pages = s->npages;
	for (uint64_t p = 0; p < s->npages; p++) {
		if (s->pflags[p] & PG_WP)
			st->protected_pages++;
		if (s->frame[p] == MM_NO_FRAME)
			continue;
		st->present++;
		if (frame_count(pool, s->frame[p]) > 1)
			st->shared++;
	}
	st->has_pinned = s->has_pinned;
	pool_unlock(pool);
	st->vmas = vma_count(s->window, s->npages << MM_PAGE_SHIFT);
}
