// SPDX-License-Identifier: MIT
/*
 * Fork of a guest space: the child shares every present frame with the
 * parent, write-protected in both, except frames a device may have pinned,
 * which are copied for the child at once (Linux's copy-on-fork of
 * maybe-pinned pages): a device keeps writing into the parent's frame, and
 * the parent's next CPU write must not move away from it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mm/mm_internal.h"

/*
 * Write-protect (@wp) or unprotect every run of pages whose flags have @bit.
 * Context: pool->lock held.
 */
static int protect_flagged(struct space *s, uint8_t bit, bool wp)
{
	uint64_t p = 0;
	int ret;

	while (p < s->npages) {
		uint64_t q;

		if (!(s->pflags[p] & bit)) {
			p++;
			continue;
		}
		for (q = p + 1; q < s->npages && (s->pflags[q] & bit); q++)
			;
		ret = window_protect(s, p, q - p, wp);
		if (ret < 0)
			return ret;
		p = q;
	}
	return 0;
}

int space_fork(struct space *parent, struct space **childp)
{
	struct pool *pool = parent->pool;
	uint64_t bytes = parent->npages << MM_PAGE_SHIFT;
	struct region *parent_copy;
	struct space *child;
	int ret;

	child = space_alloc(pool, parent->ranges, parent->nranges, parent->npages);
	if (!child)
		return -ENOMEM;
	child->window =
	    mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (child->window == MAP_FAILED) {
		ret = -ENOMEM;
		goto err_tables;
	}

	pool_lock(pool);
	/* A space whose memory failed is fenced: its window is not its table. */
	if (parent->error) {
		ret = parent->error;
		parent_copy = NULL;
		child->home = NULL;
		goto err_regions;
	}
	child->home = region_alloc(pool, parent->npages);
	parent_copy = region_alloc(pool, parent->npages);
	if (!child->home || !parent_copy) {
		ret = -ENOSPC;
		goto err_regions;
	}
	child->home->users++;
	child->copy = child->home;

	/* The parent's vCPUs are stopped: this is the instant of the fork. */
	space_adopt_written(parent);
	for (uint64_t p = 0; p < parent->npages; p++) {
		uint64_t f = parent->frame[p];

		child->frame[p] = f;
		if (f == MM_NO_FRAME)
			continue;
		/* The exclusive rule: a maybe-pinned exclusive frame is not shared. */
		if (page_must_copy_to_share(parent, p)) {
			uint64_t nf = child->home->start + p;

			pool_copy_frames(pool, nf, f, 1);
			frame_init(pool, nf);
			child->frame[p] = nf;
			child->pflags[p] = PG_EXCL;
			atomic_fetch_add(&pool->ctr->fork_copies, 1);
			continue;
		}
		frame_share(pool, f);
		child->pflags[p] = PG_WP;
		if (!(parent->pflags[p] & PG_WP))
			parent->pflags[p] |= PG_NEW;
	}

	/* Pages not loaded yet stay so in both: each loads its own from the file. */
	ret = lazy_fork(parent, child);
	if (ret < 0)
		goto err_child;
	ret = space_map_all(child);
	if (ret < 0)
		goto err_child;
	/* Missing faults first: the child may have no page to protect. */
	if (child->lazy) {
		ret = window_register(child);
		if (ret < 0)
			goto err_child;
		child->unregistered = false;
	}
	ret = protect_flagged(child, PG_WP, true);
	if (ret < 0)
		goto err_child;
	ret = protect_flagged(parent, PG_NEW, true);
	if (ret < 0) {
		/* Leave the parent as it was: writable where it was writable. */
		protect_flagged(parent, PG_NEW, false);
		goto err_child;
	}
	/* Committed: shared pages are no longer exclusive to the parent. */
	for (uint64_t p = 0; p < parent->npages; p++) {
		if (parent->frame[p] != MM_NO_FRAME && child->frame[p] == parent->frame[p])
			parent->pflags[p] &= ~PG_EXCL;
		if (parent->pflags[p] & PG_NEW)
			parent->pflags[p] ^= PG_NEW | PG_WP;
	}
	/* The parent's old copies are shared now: new copies go elsewhere. */
	region_put(pool, parent->copy);
	parent->copy = parent_copy;
	pool->nspaces++;
	pool_unlock(pool);

	ret = fault_service_add(child);
	if (ret < 0) {
		space_destroy(child);
		return ret;
	}
	*childp = child;
	return 0;

err_child:
	for (uint64_t p = 0; p < parent->npages; p++)
		parent->pflags[p] &= ~PG_NEW;
	space_release_frames(child); /* and its regions */
	child->home = NULL;
err_regions:
	if (child->home)
		region_put(pool, child->home);
	if (parent_copy)
		region_put(pool, parent_copy);
	pool_unlock(pool);
	munmap(child->window, bytes);
err_tables:
	space_free(child);
	return ret;
}
