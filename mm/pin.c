// SPDX-License-Identifier: MIT
/*
 * The device side of guest memory: pins (Linux's FOLL_PIN) and short copies.
 * A device pins a request's buffer before the I/O and reaches it through the
 * direct map, which no write-protection covers: that is why a write pin
 * breaks COW first, and why fork copies maybe-pinned frames.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/mm_internal.h"

/* Pages [*first, *first + *n) of @s for a guest range, or -errno. */
static int range_pages(const struct space *s, uint64_t gpa, uint64_t len, uint64_t *first,
		       uint64_t *n)
{
	uint64_t last_gpa, last;

	/* @gpa and @len come from the guest (descriptors) or a file. */
	if (len == 0)
		return -EINVAL;
	if (__builtin_add_overflow(gpa, len - 1, &last_gpa))
		return -EINVAL;
	*first = space_page_of(s, gpa);
	last = space_page_of(s, last_gpa);
	if (*first == UINT64_MAX || last == UINT64_MAX)
		return -EFAULT;
	/* A buffer must be contiguous in guest-physical memory. */
	if (last - *first != (last_gpa >> MM_PAGE_SHIFT) - (gpa >> MM_PAGE_SHIFT))
		return -EFAULT;
	*n = last - *first + 1;
	return 0;
}

/* Context: pool->lock held. */
static void unpin_frames(struct pool *pool, const uint64_t *frames, unsigned int n)
{
	/* A frame whose last reference was the pin (its space went) is freed. */
	for (unsigned int i = 0; i < n; i++)
		frame_unpin(pool, frames[i]);
}

int space_pin(struct space *s, uint64_t gpa, uint64_t len, unsigned int flags, struct mm_pin *pin)
{
	struct pool *pool = s->pool;
	uint64_t first, n, off = gpa & (MM_PAGE_SIZE - 1), left = len;
	unsigned int i;
	int ret;

	memset(pin, 0, sizeof(*pin));
	if (flags & ~MM_PIN_WRITE)
		return -EINVAL;
	ret = range_pages(s, gpa, len, &first, &n);
	if (ret < 0)
		return ret;
	if (n > MM_PIN_MAX_PAGES)
		return -E2BIG;
	pin->frames = malloc(n * sizeof(*pin->frames));
	pin->iov = malloc(n * sizeof(*pin->iov));
	if (!pin->frames || !pin->iov) {
		ret = -ENOMEM;
		goto err_free;
	}

	pool_lock(pool);
	for (i = 0; i < n; i++) {
		uint64_t p = first + i;

		/*
		 * A write pin needs the frame the guest will read afterwards:
		 * an exclusive page keeps its frame (never a copy), a shared
		 * one is copied now, while the guest's writes still fault.
		 */
		ret = flags & MM_PIN_WRITE ? space_make_exclusive(s, p) : space_make_present(s, p);
		if (ret < 0)
			goto err_unpin;
		ret = frame_pin(pool, s->frame[p]);
		if (ret < 0)
			goto err_unpin;
		pin->frames[i] = s->frame[p];
	}
	s->has_pinned = true; /* never cleared, as Linux's mm->has_pinned */
	s->active_pins++;
	atomic_fetch_add(&pool->ctr->pins, 1);
	pool_unlock(pool);

	for (i = 0; i < n; i++) {
		uint64_t chunk = MM_PAGE_SIZE - off < left ? MM_PAGE_SIZE - off : left;
		uint8_t *va = (uint8_t *)frame_ptr(pool, pin->frames[i]) + off;

		if (pin->niov &&
		    (uint8_t *)pin->iov[pin->niov - 1].iov_base + pin->iov[pin->niov - 1].iov_len ==
			va)
			pin->iov[pin->niov - 1].iov_len += chunk;
		else
			pin->iov[pin->niov++] = (struct iovec){ va, chunk };
		left -= chunk;
		off = 0;
	}
	pin->space = s;
	pin->gpa = gpa;
	pin->len = len;
	pin->flags = flags;
	pin->nframes = n;
	return 0;

err_unpin:
	unpin_frames(pool, pin->frames, i);
	pool_unlock(pool);
err_free:
	free(pin->frames);
	free(pin->iov);
	memset(pin, 0, sizeof(*pin));
	return ret;
}

void space_unpin(struct mm_pin *pin)
{
	struct space *s = pin->space;
	struct pool *pool;
	bool last;

	if (!s)
		return;
	pool = s->pool;
	pool_lock(pool);
	unpin_frames(pool, pin->frames, pin->nframes);
	/* A destroyed space lives on for its pins (space_destroy()). */
	last = --s->active_pins == 0 && s->destroyed;
	pool_unlock(pool);
	if (last)
		free(s);
	free(pin->frames);
	free(pin->iov);
	memset(pin, 0, sizeof(*pin));
}

/*
 * Copy one page's @chunk bytes at @off between @buf and page @p of @s.
 * Context: pool->lock held.
 */
static int copy_page(struct space *s, uint64_t p, uint64_t off, uint8_t *buf, size_t chunk,
		     bool to_guest)
{
	struct pool *pool = s->pool;
	off_t pos;
	int ret;

	if (to_guest) {
		ret = space_make_exclusive(s, p); /* a write breaks COW like a CPU write */
		if (ret < 0)
			return ret;
		memcpy((uint8_t *)frame_ptr(pool, s->frame[p]) + off, buf, chunk);
		return 0;
	}
	/* A lazy page is loaded first: its home slot does not hold it yet. */
	if (s->frame[p] == MM_NO_FRAME && (s->pflags[p] & PG_LAZY)) {
		ret = space_make_present(s, p);
		if (ret < 0)
			return ret;
	}
	if (s->frame[p] != MM_NO_FRAME) {
		memcpy(buf, (uint8_t *)frame_ptr(pool, s->frame[p]) + off, chunk);
		return 0;
	}
	/* pread() of a hole reads zeros without allocating a page. */
	pos = ((s->home->start + p) << MM_PAGE_SHIFT) + off;
	return pread(pool->fd, buf, chunk, pos) == (ssize_t)chunk ? 0 : -EIO;
}

static int space_copy(struct space *s, uint64_t gpa, uint8_t *buf, size_t len, bool to_guest)
{
	uint64_t first, n, off = gpa & (MM_PAGE_SIZE - 1);
	int ret;

	ret = range_pages(s, gpa, len, &first, &n);
	if (ret < 0)
		return ret;
	pool_lock(s->pool);
	for (uint64_t p = first; p < first + n && ret == 0; p++) {
		size_t chunk = MM_PAGE_SIZE - off < len ? MM_PAGE_SIZE - off : len;

		ret = copy_page(s, p, off, buf, chunk, to_guest);
		buf += chunk;
		len -= chunk;
		off = 0;
	}
	pool_unlock(s->pool);
	return ret;
}

int space_read(struct space *s, uint64_t gpa, void *buf, size_t len)
{
	return space_copy(s, gpa, buf, len, false);
}

int space_write(struct space *s, uint64_t gpa, const void *buf, size_t len)
{
	/* Only read from when copying to the guest. */
	return space_copy(s, gpa, (uint8_t *)buf, len, true);
}

/*
 * A reader's copy of page @p: a new frame that only the reader holds.
 * Context: pool->lock held.
 */
static int ref_copy(struct space *s, uint64_t p, uint64_t *frame)
{
	struct pool *pool = s->pool;
	uint64_t nf;

	if (copy_should_fail(pool))
		return -ENOSPC;
	nf = frame_alloc_for(s, p);
	if (nf == MM_NO_FRAME)
		return -ENOSPC;
	pool_copy_frames(pool, nf, s->frame[p], 1);
	frame_init_unmapped(pool, nf);
	atomic_fetch_add(&pool->ctr->ref_copies, 1);
	*frame = nf;
	return 0;
}

/*
 * A reader's view of page @p: the exclusive rule.  Every snapshot or bulk
 * reference goes through here.  Context: pool->lock held.
 */
static int ref_page_locked(struct space *s, uint64_t p, uint64_t *frame)
{
	struct pool *pool = s->pool;
	int ret;

	mm_assert_held(&pool->lock);
	ret = space_make_present(s, p);
	if (ret < 0)
		return ret;
	/* Exclusive and maybe pinned: a device may write it; share nothing. */
	if (page_must_copy_to_share(s, p))
		return ref_copy(s, p, frame);
	if (frame_count(pool, s->frame[p]) >= MM_COUNT_LIMIT)
		return -EOVERFLOW;
	/* The next guest write must see a second reference: protect first. */
	if (!(s->pflags[p] & PG_WP)) {
		ret = window_protect(s, p, 1, true);
		if (ret < 0)
			return ret;
		s->pflags[p] |= PG_WP;
	}
	s->pflags[p] &= ~PG_EXCL;
	frame_get(pool, s->frame[p]);
	*frame = s->frame[p];
	return 0;
}

int space_ref_page(struct space *s, uint64_t gpa, uint64_t *frame)
{
	struct pool *pool = s->pool;
	uint64_t p = space_page_of(s, gpa);
	int ret;

	if (p == UINT64_MAX)
		return -EFAULT;
	pool_lock(pool);
	ret = ref_page_locked(s, p, frame);
	pool_unlock(pool);
	return ret;
}
