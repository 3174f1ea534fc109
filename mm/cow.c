// SPDX-License-Identifier: MIT
/*
 * The write-fault rule, as Linux's do_wp_page() settled it: copy unless it is
 * obvious that this space is the exclusive owner of the frame, and obvious
 * means the page is marked exclusive (PG_EXCL, Linux's PageAnonExclusive) or
 * page_count == 1.  And its other half, the exclusive rule: an exclusive
 * frame that may be pinned is never shared; the other side gets a copy.
 * Everything here runs with the pool lock held.
 */
#include <errno.h>
#include <string.h>

#include "mm/mm_internal.h"

/*
 * Reuse only when it is obvious that we are the exclusive owner.
 * Context: pool->lock held.
 */
static bool page_can_reuse(const struct space *s, uint64_t p)
{
	struct pool *pool = s->pool;
	uint64_t f = s->frame[p];

	/* Legacy policy: one mapping looks exclusive; pins and references are missed. */
	if (pool->policy == MM_POLICY_MAPCOUNT)
		return frame_maps(pool, f) == 1;
	/* Marked exclusive: nobody else holds it, and its pins are ours. */
	if (s->pflags[p] & PG_EXCL)
		return true;
	/* A pin is a reference the mapping count cannot see. */
	if (frame_maybe_pinned(pool, f))
		return false;
	/* Any other reference (a clone, a snapshot writer) forces a copy. */
	return frame_count(pool, f) == 1;
}

/* May a fault on a neighbour copy this page too, while it is at it? */
static bool should_copy_along(struct space *s, uint64_t q)
{
	struct pool *pool = s->pool;
	uint64_t f = s->frame[q];

	/* Never written, or already writable: nothing to break. */
	if (f == MM_NO_FRAME || !(s->pflags[q] & PG_WP))
		return false;
	/* A device may be using it: leave it to its own fault. */
	if (frame_maybe_pinned(pool, f))
		return false;
	/* Ours alone: its own fault will reuse it in place, no copy. */
	return !page_can_reuse(s, q);
}

/*
 * Give page @p a frame of its own if it has none: its home slot, which holds
 * whatever was written there without a fault (or reads as zero), or the
 * page's data from the backing source, loaded now (a lazy page, lazy.c).
 * Return: 0, or -errno when a lazy page could not be loaded (the page stays
 * lazy and frameless).  Context: pool->lock held.
 */
int space_make_present(struct space *s, uint64_t p)
{
	mm_assert_held(&s->pool->lock);
	if (s->frame[p] != MM_NO_FRAME)
		return 0;
	if (s->pflags[p] & PG_LAZY) {
		int ret = lazy_load(s, p);

		if (ret < 0)
			return ret;
	}
	s->frame[p] = s->home->start + p;
	s->pflags[p] |= PG_EXCL;
	frame_init(s->pool, s->frame[p]);
	atomic_fetch_add(&s->pool->ctr->fresh, 1);
	return 0;
}

bool copy_should_fail(struct pool *pool)
{
	unsigned int n = atomic_load(&pool->inject_copy_failures);

	while (n && !atomic_compare_exchange_weak(&pool->inject_copy_failures, &n, n - 1))
		;
	return n != 0;
}

/*
 * Copy @n pages of @s (each shared and write-protected) into new frames and
 * map those.  Pages whose new mapping failed keep their old frame.
 * Context: pool->lock held.
 */
static int copy_pages(struct space *s, const uint64_t *pages, unsigned int n)
{
	struct pool *pool = s->pool;
	uint64_t nf[MM_MAX_COW_BATCH];
	unsigned int i, j, done = 0;
	int ret = 0;

	mm_assert_held(&pool->lock);
	if (copy_should_fail(pool))
		return -ENOSPC;
	for (i = 0; i < n; i++) {
		nf[i] = frame_alloc_for(s, pages[i]);
		if (nf[i] == MM_NO_FRAME) {
			n = i;
			ret = -ENOSPC;
			break;
		}
		frame_init(pool, nf[i]);
	}
	/* One in-kernel copy per run of neighbouring frames on both sides. */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && nf[j] == nf[i] + (j - i) &&
				s->frame[pages[j]] == s->frame[pages[i]] + (j - i);
		     j++)
			;
		pool_copy_frames(pool, nf[i], s->frame[pages[i]], j - i);
	}
	/* One mmap per run of neighbouring pages in neighbouring frames. */
	for (i = 0; i < n && ret == 0; i = j) {
		for (j = i + 1; j < n && pages[j] == pages[i] + (j - i) && nf[j] == nf[i] + (j - i);
		     j++)
			;
		ret = window_map(s, pages[i], j - i, nf[i]);
		if (ret == 0)
			done = j;
		else /* a failed MAP_FIXED may have unmapped the old pages */
			for (unsigned int k = i; k < j; k++)
				if (window_map(s, pages[k], 1, s->frame[pages[k]]) == 0)
					window_protect(s, pages[k], 1, true);
	}
	for (i = 0; i < done; i++) {
		frame_put(pool, s->frame[pages[i]], true);
		s->frame[pages[i]] = nf[i];
		s->pflags[pages[i]] = (s->pflags[pages[i]] & ~PG_WP) | PG_EXCL;
	}
	for (i = done; i < n; i++)
		frame_put(pool, nf[i], true);
	atomic_fetch_add(&pool->ctr->copies, done);
	return ret;
}

/*
 * Make page @p of @s writable, as a guest write needs it: a fresh frame if
 * it has none, the same frame if we are its exclusive owner, else a copy.
 * With @batch, shared neighbours in the same aligned block are copied along
 * (one fault and one mmap for several pages; see docs/mm.md).
 * Context: pool->lock held.
 */
int space_resolve_write(struct space *s, uint64_t p, bool batch)
{
	struct pool *pool = s->pool;
	uint64_t pages[MM_MAX_COW_BATCH];
	unsigned int n = 0, block;
	uint64_t first;
	int ret;

	mm_assert_held(&pool->lock);
	if (s->frame[p] == MM_NO_FRAME) {
		ret = space_make_present(s, p);
		if (ret < 0)
			return ret;
		if (!(s->pflags[p] & PG_WP))
			return 0;
		/* The flag follows the window: cleared only once it is true. */
		ret = window_protect(s, p, 1, false);
		if (ret == 0)
			s->pflags[p] &= ~PG_WP;
		return ret;
	}
	/* Resolved already: a pin or another fault got here first. */
	if (!(s->pflags[p] & PG_WP))
		return 0;
	if (page_can_reuse(s, p)) {
		ret = window_protect(s, p, 1, false);
		if (ret < 0)
			return ret;
		s->pflags[p] = (s->pflags[p] & ~PG_WP) | PG_EXCL;
		atomic_fetch_add(&pool->ctr->reuses, 1);
		return 0;
	}
	block = batch ? pool->cow_batch : 1;
	/* Near vm.max_map_count: collapse the block, as khugepaged would. */
	if (batch && vma_budget_tight())
		block = MM_COLLAPSE_PAGES;
	first = p & ~(uint64_t)(block - 1);
	for (uint64_t q = first; q < first + block && q < s->npages; q++)
		if (q == p || should_copy_along(s, q))
			pages[n++] = q;
	return copy_pages(s, pages, n);
}

/*
 * Make page @p exclusive and writable, for a device (write pin) or host
 * write: a fresh frame if it has none; nothing at all if it is exclusive and
 * writable already (whatever pins it holds); else the write-fault rule.
 * Context: pool->lock held.
 */
int space_make_exclusive(struct space *s, uint64_t p)
{
	if (s->frame[p] == MM_NO_FRAME)
		return space_make_present(s, p);
	return space_resolve_write(s, p, false);
}
