/* SPDX-License-Identifier: MIT */
/*
 * mm internals shared by the mm sources (and by white-box tests).  Not an API.
 *
 * Frames live in one memfd per family (the pool); frame n is the 4 KiB at
 * offset n * 4 KiB.  Per-frame metadata lives in a second memfd, so that a
 * clone in another process (fork(2) of the VMM) sees the same page_count.
 *
 * Locking: pool->lock (the family lock) protects every space's table and
 * flags, the window layout and the region list.  The frame metadata (count,
 * maps) and the counters are updated only with atomic read-modify-writes, so
 * that they stay right when clones become other processes; the lock still
 * orders the decisions taken on them in-process.  The fault service's own
 * lock comes before a pool lock (see fault.c).  Each function says which
 * locks it needs ("Context:"), and debug builds check it (mm_assert_held()).
 */
#ifndef FORKVM_MM_MM_INTERNAL_H
#define FORKVM_MM_MM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "mm/mm.h"

#define MM_MAX_RANGES 8
#define MM_DEFAULT_MAX_BYTES (1ULL << 40) /* offset space only: sparse, NORESERVE */
#define MM_DEFAULT_COW_BATCH 16
#define MM_MAX_COW_BATCH 512
/* Pages a fault collapses when the mapping budget is tight: 2 MiB. */
#define MM_COLLAPSE_PAGES 512
/* page_count may not grow past this: a pin that would is refused. */
#define MM_COUNT_LIMIT (UINT32_MAX - 2 * MM_PIN_BIAS)

/*
 * Debug builds (no NDEBUG, or -DMM_DEBUG) check lock contexts and count
 * underflows and abort with a message; release builds count underflows
 * (pool_stats.underflows) and go on.
 */
#if defined(MM_DEBUG) || !defined(NDEBUG)
#define MM_DEBUG_CHECKS 1
#else
#define MM_DEBUG_CHECKS 0
#endif

/* A mutex that knows its owner, for mm_assert_held(). */
struct mm_lock {
	pthread_mutex_t mutex;
	_Atomic uintptr_t owner; /* mm_thread_id() of the holder, 0 when free */
};

uintptr_t mm_thread_id(void);
void mm_lock_init(struct mm_lock *l);
void mm_lock(struct mm_lock *l);
void mm_unlock(struct mm_lock *l);
void mm_bug(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static inline bool mm_lock_held(struct mm_lock *l)
{
	/* Only the holder itself can see its own id here: no ordering needed. */
	return atomic_load_explicit(&l->owner, memory_order_relaxed) == mm_thread_id();
}

#if MM_DEBUG_CHECKS
#define mm_assert_held(l)                                                       \
	do {                                                                    \
		if (!mm_lock_held(l))                                           \
			mm_bug("%s: %s not held by this thread", __func__, #l); \
	} while (0)
#else
#define mm_assert_held(l) ((void)(l))
#endif

struct frame_meta {
	_Atomic uint32_t count; /* references + pins * MM_PIN_BIAS (page_count) */
	/* Spaces whose table holds the frame (mapcount): kept only under
	 * MM_POLICY_MAPCOUNT, its only reader. */
	_Atomic uint32_t maps;
};

/*
 * A region is a run of frame numbers handed out together: a space's home
 * (where its never-written pages live, page p at start + p) or its copy
 * target (where its COW copies go), or a spill run for copies that cannot go
 * home.  Regions keep a space's private frames contiguous so that adjacent
 * window pages map adjacent pool offsets and their VMAs merge.
 */
struct region {
	uint64_t start;
	uint64_t nframes;
	uint64_t live; /* frames of the region with count > 0 */
	unsigned int users; /* spaces using it as home or copy target */
	uint64_t spill_next; /* spill regions: next unused frame */
};

struct pool_counters {
	_Atomic uint64_t live_frames;
	_Atomic uint64_t fresh;
	_Atomic uint64_t copies;
	_Atomic uint64_t reuses;
	_Atomic uint64_t fork_copies;
	_Atomic uint64_t pins;
	_Atomic uint64_t pinned_frames;
	_Atomic uint64_t faults;
	_Atomic uint64_t ref_copies;
	_Atomic uint64_t underflows;
	_Atomic uint64_t fault_errors;
};

struct pool {
	struct mm_lock lock;
	int fd; /* frames */
	int meta_fd; /* struct frame_meta per frame, then the counters */
	struct frame_meta *meta;
	struct pool_counters *ctr;
	uint8_t *dmap; /* direct map of every frame; never write-protected */
	uint64_t nframes;
	enum mm_policy policy;
	unsigned int cow_batch;
	bool uffd_compat;

	/* Regions sorted by start; free frame-number space as extents. */
	struct region **regions;
	unsigned int nregions, regions_cap;
	struct extent {
		uint64_t start, len;
	} * free_ext;
	unsigned int nfree, free_cap;
	struct region *spill; /* current spill region, or NULL */
	unsigned int nspaces;
	/* Test hook: the next this many COW copies fail as if the pool were
	 * full (-ENOSPC).  Only tests set it. */
	_Atomic unsigned int inject_copy_failures;
};

/* Per-page state bits in space->pflags. */
#define PG_WP (1u << 0) /* write-protected in the window (uffd-wp) */
#define PG_NEW (1u << 1) /* space_fork(): protected by this fork, not yet in the window */
/*
 * The page's frame is exclusive to this space (Linux's PageAnonExclusive):
 * no other space's table and no reader holds it; pins of it are this
 * space's own.  Set when the space gets a frame of its own (first write,
 * copy, reuse); cleared only by sharing (fork, space_ref_page()).  A write
 * to an exclusive page reuses the frame whatever its count; an exclusive
 * frame that may be pinned is never shared or protected: the other side
 * gets a copy (page_must_copy_to_share()).  Independent of PG_WP, which
 * says only that the window traps writes.
 */
#define PG_EXCL (1u << 2)
/*
 * The page has no frame yet, but data in the space's backing source (a
 * file, see lazy.c): the first touch (a window fault, a pin, a copy) loads
 * it into its home slot, and it owns that frame from then on.
 */
#define PG_LAZY (1u << 3)

struct lazy;

struct space {
	struct pool *pool;
	struct space_range ranges[MM_MAX_RANGES];
	uint64_t range_page[MM_MAX_RANGES]; /* first page index of each range */
	unsigned int nranges;
	uint64_t npages;
	uint8_t *window; /* npages pages of host VA */
	uint64_t *frame; /* page -> frame, MM_NO_FRAME when never written */
	uint8_t *pflags;
	/*
	 * home: frame home + p backs page p while p owns no frame, so a first
	 * write lands there with no fault at all (adopted into the table
	 * later, see space_adopt_written()).  copy: COW copies of page p go
	 * to copy + p.  A child starts with copy == home; a parent gets a new
	 * copy region at each fork, because its old copies are shared now.
	 */
	struct region *home, *copy;
	bool has_pinned;
	bool registered; /* with the fault service */
	bool unregistered; /* the window, or pages remapped since, unknown to userfaultfd */
	unsigned int active_pins;
	/* space_destroy() ran while pins were held: the last unpin frees it. */
	bool destroyed;
	/* The error channel (mm.h): the first fault that could not be resolved. */
	int error;
	uint64_t error_gpa;
	bool fenced; /* the window was replaced by private memory (see fault.c) */
	space_error_fn error_fn;
	void *error_opaque;
	/* The backing source of its PG_LAZY pages (lazy.c), or NULL. */
	struct lazy *lazy;
};

/*
 * pool.c: frames and regions.  Counts are atomics (no lock needed to read
 * one); every function that allocates, frees or shares a frame needs
 * pool->lock, which orders the decision taken on the count.
 */
static inline struct frame_meta *frame_meta(struct pool *pool, uint64_t f)
{
	return &pool->meta[f];
}
static inline void pool_lock(struct pool *pool)
{
	mm_lock(&pool->lock);
}
static inline void pool_unlock(struct pool *pool)
{
	mm_unlock(&pool->lock);
}
uint32_t frame_count(struct pool *pool, uint64_t f);
uint32_t frame_maps(struct pool *pool, uint64_t f);
bool frame_maybe_pinned(struct pool *pool, uint64_t f);
void frame_init(struct pool *pool, uint64_t f);
void frame_init_unmapped(struct pool *pool, uint64_t f);
void frames_init_run(struct pool *pool, uint64_t f, uint64_t n);
void frame_get(struct pool *pool, uint64_t f);
void frame_share(struct pool *pool, uint64_t f);
int frame_pin(struct pool *pool, uint64_t f);
void frame_unpin(struct pool *pool, uint64_t f);
void frame_put(struct pool *pool, uint64_t f, bool mapped);
/* Frames freed in a row, given back to the host with one punch. */
struct punch_batch {
	uint64_t start, n;
};
void frame_put_batched(struct pool *pool, uint64_t f, bool mapped, struct punch_batch *b);
void punch_flush(struct pool *pool, struct punch_batch *b);
struct region *region_alloc(struct pool *pool, uint64_t nframes);
void region_put(struct pool *pool, struct region *r);
/* A free frame for a copy of page @p of @s: copy + p when free, else spill. */
uint64_t frame_alloc_for(struct space *s, uint64_t p);
int pool_punch(struct pool *pool, uint64_t f, uint64_t n);
void pool_copy_frames(struct pool *pool, uint64_t dst, uint64_t src, uint64_t n);
static inline void *frame_ptr(struct pool *pool, uint64_t f)
{
	return pool->dmap + (f << MM_PAGE_SHIFT);
}

/* space.c: the window. */
struct space *space_alloc(struct pool *pool, const struct space_range *ranges, unsigned int n,
			  uint64_t npages);
void space_free(struct space *s);
void space_release_frames(struct space *s);
int window_map(struct space *s, uint64_t p, uint64_t n, uint64_t f);
int window_protect(struct space *s, uint64_t p, uint64_t n, bool wp);
uint64_t space_page_of(const struct space *s, uint64_t gpa);
/* The frame the window maps at page @p: its own, or its home slot. */
uint64_t space_mapped_frame(const struct space *s, uint64_t p);
void space_adopt_written(struct space *s);
int space_map_all(struct space *s);
uint64_t vma_count(const void *start, uint64_t len);

/* cow.c: the write-fault rule and the exclusive rule.  pool->lock held. */
int space_resolve_write(struct space *s, uint64_t p, bool batch);
int space_make_present(struct space *s, uint64_t p);
int space_make_exclusive(struct space *s, uint64_t p);
/*
 * Must whoever would share page @p's frame (a fork's child, a reader) get a
 * copy instead?  Inline: space_fork() asks it for every page.
 * Context: pool->lock held.
 */
static inline bool page_must_copy_to_share(const struct space *s, uint64_t p)
{
	struct pool *pool = s->pool;

	mm_assert_held(&pool->lock);
	/*
	 * Legacy policies: share pinned frames like any other (wrong-way COW).
	 * mapcount models Linux before 5.9, which had neither this rule nor
	 * page_count reuse; nopin has only the latter.
	 */
	if (pool->policy != MM_POLICY_PAGECOUNT)
		return false;
	/* Shared already: every holder is protected, and a pin of it only reads. */
	if (!(s->pflags[p] & PG_EXCL))
		return false;
	/* A space that never pinned cannot hold a pinned frame. */
	if (!s->has_pinned)
		return false;
	/* A device may be writing it: protecting it would move the guest away. */
	return frame_maybe_pinned(pool, s->frame[p]);
}
/*
 * lazy.c: the backing source.  lazy_load() loads page @p (PG_LAZY) into its
 * home slot and clears PG_LAZY; the caller then makes the slot its frame
 * (space_make_present() does both).  lazy_fork() gives a fork's child the
 * parent's lazy pages and a reference to its files; lazy_free() drops a
 * space's backing source.  Context: pool->lock held (lazy_free(): or the
 * space unreachable).
 */
int lazy_load(struct space *s, uint64_t p);
int lazy_fork(struct space *parent, struct space *child);
void lazy_free(struct space *s);
/* A missing-page fault at page @p of a lazy space's window. */
int space_resolve_missing(struct space *s, uint64_t p);

/* Test hook (pool->inject_copy_failures): should this copy fail? */
bool copy_should_fail(struct pool *pool);

/*
 * fault.c: test hooks, NULL outside tests.  before_lookup: the handler
 * thread got a fault at @addr, no lock held yet.  last_user_gone:
 * service_put() of the last user, just before it stops the handler thread.
 */
struct fault_test_hooks {
	void (*before_lookup)(uintptr_t addr);
	void (*last_user_gone)(void);
};
extern struct fault_test_hooks fault_test_hooks;

/* fault.c: the userfaultfd service. */
int fault_service_add(struct space *s);
/* Register the whole window (write-protect, and missing mode for a lazy space). */
int window_register(struct space *s);
bool fault_service_has_missing(void);
void fault_service_remove(struct space *s);
void vma_budget_note_map(void);
bool vma_budget_tight(void);

#endif /* FORKVM_MM_MM_INTERNAL_H */
