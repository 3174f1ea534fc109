// SPDX-License-Identifier: MIT
/*
 * The frame pool of a family: a memfd of 4 KiB frames, a reference count per
 * frame (page_count, pins counted with a bias), regions of frame numbers, and
 * the direct map devices reach frames through.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/mm_internal.h"

static const char *const policy_names[] = {
	[MM_POLICY_PAGECOUNT] = "pagecount",
	[MM_POLICY_MAPCOUNT] = "mapcount",
	[MM_POLICY_NOPIN] = "nopin",
};

const char *mm_policy_name(enum mm_policy policy)
{
	if ((unsigned int)policy >= sizeof(policy_names) / sizeof(policy_names[0]))
		return "?";
	return policy_names[policy];
}

int mm_policy_parse(const char *name, enum mm_policy *out)
{
	for (unsigned int i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++) {
		if (strcmp(name, policy_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* The address of a thread-local byte: unique per live thread, never 0. */
uintptr_t mm_thread_id(void)
{
	static _Thread_local char tag;

	return (uintptr_t)&tag;
}

void mm_lock_init(struct mm_lock *l)
{
	pthread_mutex_init(&l->mutex, NULL);
	atomic_init(&l->owner, 0);
}

void mm_lock(struct mm_lock *l)
{
	pthread_mutex_lock(&l->mutex);
	/* Read back only by this thread (mm_lock_held()): relaxed is enough. */
	atomic_store_explicit(&l->owner, mm_thread_id(), memory_order_relaxed);
}

void mm_unlock(struct mm_lock *l)
{
	atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
	pthread_mutex_unlock(&l->mutex);
}

void mm_bug(const char *fmt, ...)
{
	va_list ap;

	fputs("forkvm: mm: BUG: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

enum mm_policy pool_policy(const struct pool *pool)
{
	return pool->policy;
}

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

int pool_create(const struct pool_config *cfg, struct pool **out)
{
	struct pool_config def = { 0 };
	struct pool *pool;
	uint64_t meta_bytes;
	int ret;

	if (!cfg)
		cfg = &def;
	if ((unsigned int)cfg->policy > MM_POLICY_NOPIN || cfg->cow_batch > MM_MAX_COW_BATCH)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->fd = pool->meta_fd = -1;
	pool->policy = cfg->policy;
	pool->cow_batch = cfg->cow_batch ? cfg->cow_batch : MM_DEFAULT_COW_BATCH;
	/* A batch is an aligned block: keep it a power of two. */
	if (pool->cow_batch & (pool->cow_batch - 1)) {
		ret = -EINVAL;
		goto err_free;
	}
	pool->uffd_compat = cfg->uffd_compat || env_true("FORKVM_UFFD_COMPAT");
	pool->nframes = (cfg->max_bytes ? cfg->max_bytes : MM_DEFAULT_MAX_BYTES) >> MM_PAGE_SHIFT;
	if (pool->nframes == 0 || pool->nframes > (1ULL << 36)) {
		ret = -EINVAL;
		goto err_free;
	}
	mm_lock_init(&pool->lock);

	pool->fd = memfd_create("forkvm-frames", MFD_CLOEXEC);
	pool->meta_fd = memfd_create("forkvm-frame-meta", MFD_CLOEXEC);
	if (pool->fd < 0 || pool->meta_fd < 0) {
		ret = -errno;
		goto err_fds;
	}
	meta_bytes = pool->nframes * sizeof(struct frame_meta) + sizeof(struct pool_counters);
	if (ftruncate(pool->fd, pool->nframes << MM_PAGE_SHIFT) < 0 ||
	    ftruncate(pool->meta_fd, meta_bytes) < 0) {
		ret = -errno;
		goto err_fds;
	}
	pool->dmap = mmap(NULL, pool->nframes << MM_PAGE_SHIFT, PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_NORESERVE, pool->fd, 0);
	if (pool->dmap == MAP_FAILED) {
		ret = -errno;
		goto err_fds;
	}
	pool->meta = mmap(NULL, meta_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
			  pool->meta_fd, 0);
	if (pool->meta == MAP_FAILED) {
		ret = -errno;
		goto err_dmap;
	}
	pool->ctr = (struct pool_counters *)(pool->meta + pool->nframes);
	pool->free_ext = malloc(sizeof(*pool->free_ext) * 16);
	if (!pool->free_ext) {
		ret = -ENOMEM;
		goto err_meta;
	}
	pool->free_cap = 16;
	pool->free_ext[0] = (struct extent){ 0, pool->nframes };
	pool->nfree = 1;
	*out = pool;
	return 0;

err_meta:
	munmap(pool->meta, meta_bytes);
err_dmap:
	munmap(pool->dmap, pool->nframes << MM_PAGE_SHIFT);
err_fds:
	if (pool->fd >= 0)
		close(pool->fd);
	if (pool->meta_fd >= 0)
		close(pool->meta_fd);
	pthread_mutex_destroy(&pool->lock.mutex);
err_free:
	free(pool);
	return ret;
}

void pool_destroy(struct pool *pool)
{
	if (!pool)
		return;
	munmap(pool->meta,
	       pool->nframes * sizeof(struct frame_meta) + sizeof(struct pool_counters));
	munmap(pool->dmap, pool->nframes << MM_PAGE_SHIFT);
	close(pool->fd);
	close(pool->meta_fd);
	for (unsigned int i = 0; i < pool->nregions; i++)
		free(pool->regions[i]);
	free(pool->regions);
	free(pool->free_ext);
	pthread_mutex_destroy(&pool->lock.mutex);
	free(pool);
}

void pool_get_stats(struct pool *pool, struct pool_stats *st)
{
	struct pool_counters *c = pool->ctr;

	pool_lock(pool);
	st->live_frames = atomic_load(&c->live_frames);
	st->fresh = atomic_load(&c->fresh);
	st->copies = atomic_load(&c->copies);
	st->reuses = atomic_load(&c->reuses);
	st->fork_copies = atomic_load(&c->fork_copies);
	st->pins = atomic_load(&c->pins);
	st->pinned_frames = atomic_load(&c->pinned_frames);
	st->faults = atomic_load(&c->faults);
	st->ref_copies = atomic_load(&c->ref_copies);
	st->underflows = atomic_load(&c->underflows);
	st->fault_errors = atomic_load(&c->fault_errors);
	st->spaces = pool->nspaces;
	pool_unlock(pool);
}

void *pool_frame_ptr(struct pool *pool, uint64_t frame)
{
	if (frame >= pool->nframes)
		return NULL;
	return frame_ptr(pool, frame);
}

/*
 * page_count of @f.  Context: any; without pool->lock it is a snapshot that
 * may change at once, with it no other thread of this process changes it.
 */
uint32_t frame_count(struct pool *pool, uint64_t f)
{
	/* Pairs with the release of every update (frame_add(), frame_sub()). */
	return atomic_load_explicit(&frame_meta(pool, f)->count, memory_order_acquire);
}

/*
 * Is the mapcount kept?  Only the mapcount policy reads it (cow.c), so the
 * others leave it alone: at fork and destroy it was one more atomic
 * read-modify-write per page, a third of a warm clone's time in user space.
 */
static bool pool_keeps_maps(const struct pool *pool)
{
	return pool->policy == MM_POLICY_MAPCOUNT;
}

/*
 * mapcount of @f: spaces whose table holds it, under the mapcount policy
 * (pool_keeps_maps()); meaningless under the others.  Context: as frame_count().
 */
uint32_t frame_maps(struct pool *pool, uint64_t f)
{
	return atomic_load_explicit(&frame_meta(pool, f)->maps, memory_order_acquire);
}

uint32_t pool_frame_count(struct pool *pool, uint64_t frame)
{
	if (frame >= pool->nframes)
		return 0;
	return frame_count(pool, frame);
}

/* As Linux's page_maybe_dma_pinned(): a count this high may hold a pin. */
bool frame_maybe_pinned(struct pool *pool, uint64_t f)
{
	return frame_count(pool, f) >= MM_PIN_BIAS;
}

/* Region lookup by frame number; regions are sorted by start. */
static struct region *region_of(struct pool *pool, uint64_t f)
{
	unsigned int lo = 0, hi = pool->nregions;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;
		struct region *r = pool->regions[mid];

		if (f < r->start)
			hi = mid;
		else if (f >= r->start + r->nframes)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

/*
 * Frames [f, f + n) of one region were free (count 0) and are now held by
 * @maps (0 or 1) space tables and one reference each.  Free frames belong to
 * the allocator, which pool->lock serialises: plain stores, ordered for other
 * threads by the lock's release and for other processes by the release of
 * the next update.  Context: pool->lock held.
 */
static void frames_init(struct pool *pool, uint64_t f, uint64_t n, uint32_t maps)
{
	struct region *r = region_of(pool, f);

	mm_assert_held(&pool->lock);
	for (uint64_t i = 0; i < n; i++) {
		if (MM_DEBUG_CHECKS && frame_count(pool, f + i) != 0)
			mm_bug("frame %#lx given out with count %u", (unsigned long)(f + i),
			       frame_count(pool, f + i));
		atomic_store_explicit(&pool->meta[f + i].maps, maps, memory_order_relaxed);
		atomic_store_explicit(&pool->meta[f + i].count, 1, memory_order_release);
	}
	atomic_fetch_add(&pool->ctr->live_frames, n);
	if (r)
		r->live += n;
}

/* The bulk path of adoption: one region lookup.  Context: pool->lock held. */
void frames_init_run(struct pool *pool, uint64_t f, uint64_t n)
{
	frames_init(pool, f, n, 1);
}

/* A new frame held by one space's table.  Context: pool->lock held. */
void frame_init(struct pool *pool, uint64_t f)
{
	frames_init(pool, f, 1, 1);
}

/* A new frame held by a reader only (no table).  Context: pool->lock held. */
void frame_init_unmapped(struct pool *pool, uint64_t f)
{
	frames_init(pool, f, 1, 0);
}

/* One more reference, mapped or not.  Context: pool->lock held. */
static void frame_add(struct pool *pool, uint64_t f, uint32_t delta, bool mapped)
{
	struct frame_meta *m = frame_meta(pool, f);

	mm_assert_held(&pool->lock);
	if (mapped && pool_keeps_maps(pool))
		atomic_fetch_add_explicit(&m->maps, 1, memory_order_relaxed);
	/* Release: pairs with the acquire in frame_count(). */
	atomic_fetch_add_explicit(&m->count, delta, memory_order_release);
}

/* A reader's reference (space_ref_page()).  Context: pool->lock held. */
void frame_get(struct pool *pool, uint64_t f)
{
	frame_add(pool, f, 1, false);
}

/* Another space's table holds @f: a reference and a mapping.  Context: pool->lock held. */
void frame_share(struct pool *pool, uint64_t f)
{
	frame_add(pool, f, 1, true);
}

/*
 * A pin: MM_PIN_BIAS more.  Return: 0, or -EOVERFLOW when the count would
 * pass MM_COUNT_LIMIT (nothing changed).  Context: pool->lock held.
 */
int frame_pin(struct pool *pool, uint64_t f)
{
	struct frame_meta *m = frame_meta(pool, f);
	uint32_t old = frame_count(pool, f);

	mm_assert_held(&pool->lock);
	do {
		if (old > MM_COUNT_LIMIT - MM_PIN_BIAS)
			return -EOVERFLOW;
		/* Release on success: pairs with the acquire in frame_count(). */
	} while (!atomic_compare_exchange_weak_explicit(
	    &m->count, &old, old + MM_PIN_BIAS, memory_order_release, memory_order_relaxed));
	if (old < MM_PIN_BIAS)
		atomic_fetch_add(&pool->ctr->pinned_frames, 1);
	return 0;
}

/*
 * A count or mapcount would go below 0: the caller dropped what it did not
 * hold.  Loud in debug builds; counted, and ignored, in release builds.
 */
static void count_underflow(struct pool *pool, uint64_t f, const char *what, uint32_t have,
			    uint32_t delta)
{
	if (MM_DEBUG_CHECKS)
		mm_bug("%s of frame %#lx: count %u, dropping %u", what, (unsigned long)f, have,
		       delta);
	atomic_fetch_add(&pool->ctr->underflows, 1);
}

/*
 * Take @delta off @f's count without ever passing below 0.  Return: the
 * count before, or UINT32_MAX on underflow (nothing changed).
 */
static uint32_t count_sub(struct pool *pool, _Atomic uint32_t *c, uint64_t f, uint32_t delta,
			  const char *what)
{
	uint32_t old = atomic_load_explicit(c, memory_order_relaxed);

	do {
		if (old < delta) {
			count_underflow(pool, f, what, old, delta);
			return UINT32_MAX;
		}
		/* Acq_rel: the last dropper sees every write made under a reference. */
	} while (!atomic_compare_exchange_weak_explicit(c, &old, old - delta, memory_order_acq_rel,
							memory_order_relaxed));
	return old;
}

/*
 * Copy frames [src, src + n) to [dst, dst + n) inside the pool file, in the
 * kernel: no page table of ours is touched, where a memcpy through the direct
 * map took two page faults per frame (source and fresh destination), 5-10x
 * the copy itself.  Falls back to memcpy if the kernel refuses.
 */
void pool_copy_frames(struct pool *pool, uint64_t dst, uint64_t src, uint64_t n)
{
	loff_t in = src << MM_PAGE_SHIFT, out = dst << MM_PAGE_SHIFT;
	size_t left = n << MM_PAGE_SHIFT;

	while (left) {
		ssize_t done = copy_file_range(pool->fd, &in, pool->fd, &out, left, 0);

		if (done <= 0) {
			if (done < 0 && errno == EINTR)
				continue;
			/* No copy_file_range here: the direct map does it too. */
			memcpy(pool->dmap + out, pool->dmap + in, left);
			return;
		}
		left -= done;
	}
}

int pool_punch(struct pool *pool, uint64_t f, uint64_t n)
{
	if (fallocate(pool->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, f << MM_PAGE_SHIFT,
		      n << MM_PAGE_SHIFT) < 0)
		return -errno;
	return 0;
}

static void region_release(struct pool *pool, struct region *r);

/*
 * Drop @delta (1: a reference, MM_PIN_BIAS: a pin) and one mapping if
 * @mapped.  Returns true when that was the last reference: the frame is
 * free, and its memory is the caller's to give back (punch).
 * Context: pool->lock held.
 */
static bool frame_sub(struct pool *pool, uint64_t f, uint32_t delta, bool mapped, const char *what)
{
	struct frame_meta *m = frame_meta(pool, f);
	struct region *r;
	uint32_t old;

	mm_assert_held(&pool->lock);
	if (mapped && pool_keeps_maps(pool) &&
	    count_sub(pool, &m->maps, f, 1, "unmap") == UINT32_MAX)
		return false;
	old = count_sub(pool, &m->count, f, delta, what);
	if (old == UINT32_MAX)
		return false;
	if (delta == MM_PIN_BIAS && old - delta < MM_PIN_BIAS)
		atomic_fetch_sub(&pool->ctr->pinned_frames, 1);
	if (old != delta)
		return false;
	/* No store to maps: frames_init() sets it before the frame is reused. */
	atomic_fetch_sub(&pool->ctr->live_frames, 1);
	r = region_of(pool, f);
	if (r && --r->live == 0 && r->users == 0)
		region_release(pool, r);
	return true;
}

/*
 * Drop one reference; at zero the frame's memory goes back to the host.
 * Context: pool->lock held.
 */
void frame_put(struct pool *pool, uint64_t f, bool mapped)
{
	if (frame_sub(pool, f, 1, mapped, "put"))
		pool_punch(pool, f, 1);
}

/* Drop a pin; if it was the last reference, free the frame.  Context: pool->lock held. */
void frame_unpin(struct pool *pool, uint64_t f)
{
	if (frame_sub(pool, f, MM_PIN_BIAS, false, "unpin"))
		pool_punch(pool, f, 1);
}

/*
 * As frame_put(), but frames freed one after another are given back with one
 * punch per run, when @b is flushed: a space's destroy frees its frames in
 * order, and a syscall per frame made destroying 512 MiB take seconds.
 */
void frame_put_batched(struct pool *pool, uint64_t f, bool mapped, struct punch_batch *b)
{
	if (!frame_sub(pool, f, 1, mapped, "put"))
		return;
	if (b->n && f == b->start + b->n) {
		b->n++;
		return;
	}
	punch_flush(pool, b);
	b->start = f;
	b->n = 1;
}

void punch_flush(struct pool *pool, struct punch_batch *b)
{
	if (b->n)
		pool_punch(pool, b->start, b->n);
	b->n = 0;
}

void pool_frame_put(struct pool *pool, uint64_t frame)
{
	if (frame >= pool->nframes) {
		count_underflow(pool, frame, "pool_frame_put (no such frame)", 0, 1);
		return;
	}
	pool_lock(pool);
	frame_put(pool, frame, false);
	pool_unlock(pool);
}

static int grow(void **arr, unsigned int *cap, unsigned int need, size_t elem)
{
	void *n;

	if (need <= *cap)
		return 0;
	n = realloc(*arr, elem * (*cap * 2));
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap *= 2;
	return 0;
}

/* First fit in the free extents. */
static int ext_take(struct pool *pool, uint64_t n, uint64_t *start)
{
	for (unsigned int i = 0; i < pool->nfree; i++) {
		struct extent *e = &pool->free_ext[i];

		if (e->len < n)
			continue;
		*start = e->start;
		e->start += n;
		e->len -= n;
		if (e->len == 0) {
			memmove(e, e + 1, sizeof(*e) * (pool->nfree - i - 1));
			pool->nfree--;
		}
		return 0;
	}
	return -ENOSPC;
}

static void ext_give(struct pool *pool, uint64_t start, uint64_t n)
{
	unsigned int i = 0;

	while (i < pool->nfree && pool->free_ext[i].start < start)
		i++;
	/* Merge with the previous and/or next extent when they touch. */
	if (i > 0 && pool->free_ext[i - 1].start + pool->free_ext[i - 1].len == start) {
		pool->free_ext[i - 1].len += n;
		if (i < pool->nfree && start + n == pool->free_ext[i].start) {
			pool->free_ext[i - 1].len += pool->free_ext[i].len;
			memmove(&pool->free_ext[i], &pool->free_ext[i + 1],
				sizeof(struct extent) * (pool->nfree - i - 1));
			pool->nfree--;
		}
		return;
	}
	if (i < pool->nfree && start + n == pool->free_ext[i].start) {
		pool->free_ext[i].start = start;
		pool->free_ext[i].len += n;
		return;
	}
	/* On allocation failure the extent is leaked, never reused: safe. */
	if (grow((void **)&pool->free_ext, &pool->free_cap, pool->nfree + 1,
		 sizeof(struct extent)) < 0)
		return;
	memmove(&pool->free_ext[i + 1], &pool->free_ext[i],
		sizeof(struct extent) * (pool->nfree - i));
	pool->free_ext[i] = (struct extent){ start, n };
	pool->nfree++;
}

struct region *region_alloc(struct pool *pool, uint64_t nframes)
{
	struct region *r;
	uint64_t start;
	unsigned int i;

	if (!pool->regions) {
		pool->regions = malloc(sizeof(*pool->regions) * 16);
		if (!pool->regions)
			return NULL;
		pool->regions_cap = 16;
	}
	if (grow((void **)&pool->regions, &pool->regions_cap, pool->nregions + 1,
		 sizeof(*pool->regions)) < 0)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (ext_take(pool, nframes, &start) < 0) {
		free(r);
		return NULL;
	}
	*r = (struct region){ .start = start, .nframes = nframes, .users = 1 };
	for (i = 0; i < pool->nregions && pool->regions[i]->start < start; i++)
		;
	memmove(&pool->regions[i + 1], &pool->regions[i],
		sizeof(*pool->regions) * (pool->nregions - i));
	pool->regions[i] = r;
	pool->nregions++;
	return r;
}

static void region_release(struct pool *pool, struct region *r)
{
	unsigned int i = 0;

	while (pool->regions[i] != r)
		i++;
	/* Frames written but never adopted (a home's lazy pages) go too. */
	pool_punch(pool, r->start, r->nframes);
	ext_give(pool, r->start, r->nframes);
	if (pool->spill == r)
		pool->spill = NULL;
	memmove(&pool->regions[i], &pool->regions[i + 1],
		sizeof(*pool->regions) * (pool->nregions - i - 1));
	pool->nregions--;
	free(r);
}

void region_put(struct pool *pool, struct region *r)
{
	if (--r->users == 0 && r->live == 0)
		region_release(pool, r);
}

#define SPILL_FRAMES 512

/* Context: pool->lock held. */
uint64_t frame_alloc_for(struct space *s, uint64_t p)
{
	struct pool *pool = s->pool;
	uint64_t f = s->copy->start + p;

	mm_assert_held(&pool->lock);
	/* Home position in the copy region: keeps neighbours mergeable. */
	if (frame_count(pool, f) == 0)
		return f;
	if (!pool->spill || pool->spill->spill_next == pool->spill->nframes) {
		if (pool->spill)
			region_put(pool, pool->spill);
		pool->spill = region_alloc(pool, SPILL_FRAMES);
		if (!pool->spill)
			return MM_NO_FRAME;
	}
	return pool->spill->start + pool->spill->spill_next++;
}
