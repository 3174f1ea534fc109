// SPDX-License-Identifier: MIT
/*
 * The backing source of a space: pages that have no frame yet but data in a
 * file (a snapshot's memory file, for a lazy restore).  Such a page is marked
 * PG_LAZY and remembers where its data is (file and offset).  It is loaded
 * into its home slot through the direct map when it is first touched, and
 * from then on owns that frame as if it had been written there:
 *  - a touch through the window: the window is registered in missing mode
 *    too, so the access blocks in the kernel and the fault service calls
 *    space_resolve_missing(), which loads the page and wakes the toucher;
 *  - a pin, space_read/write, space_ref_page, space_frame_of: they go
 *    through space_make_present(), which loads a lazy page first.  These
 *    paths reach frames through the direct map, which no userfaultfd covers:
 *    without the check they would see the empty home slot.
 * A page with no data that is touched through the window takes a missing
 * fault too (missing mode cannot tell it apart): it is made to exist, zero,
 * as the first touch of a space without missing mode makes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mm/mm_internal.h"

#define LAZY_OFF_BITS 56
#define LAZY_OFF_MASK ((1ULL << LAZY_OFF_BITS) - 1)
/* In a source entry: the page was given a source (the entry stays after the load). */
#define LAZY_SET (1ULL << 63)
#define LAZY_ID(e) (((e) >> LAZY_OFF_BITS) & 0x7f)
/* One prefetch read covers at most this many pages (4 MiB). */
#define LAZY_RUN_MAX 1024

struct lazy {
	int fd[MM_LAZY_MAX_FILES];
	unsigned int nfiles;
	/* Per page: LAZY_SET | file id << 56 | offset in the file, set by
	 * space_lazy_add() and kept after the load (space_lazy_read_source()).
	 * Anonymous and NORESERVE: entries never set cost nothing. */
	uint64_t *src;
	struct space_lazy_stats st;
	unsigned int readaround; /* pages a fault loads at most (a power of 2) */
	bool recording;
	bool log_lost; /* an append failed: the log is incomplete */
	uint64_t *log; /* page indices loaded on touch while recording */
	size_t nlog, logcap;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The guest address of page @p (the inverse of space_page_of()). */
static uint64_t page_gpa(const struct space *s, uint64_t p)
{
	for (unsigned int i = s->nranges; i-- > 0;)
		if (p >= s->range_page[i])
			return s->ranges[i].gpa + ((p - s->range_page[i]) << MM_PAGE_SHIFT);
	return p << MM_PAGE_SHIFT;
}

static struct lazy *lazy_alloc(uint64_t npages)
{
	struct lazy *lz = calloc(1, sizeof(*lz));

	if (!lz)
		return NULL;
	lz->readaround = 1;
	lz->src = mmap(NULL, npages * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (lz->src == MAP_FAILED) {
		free(lz);
		return NULL;
	}
	return lz;
}

/* Context: pool->lock held, or @s unreachable by any other thread. */
void lazy_free(struct space *s)
{
	struct lazy *lz = s->lazy;

	if (!lz)
		return;
	for (unsigned int i = 0; i < lz->nfiles; i++)
		close(lz->fd[i]);
	munmap(lz->src, s->npages * sizeof(uint64_t));
	free(lz->log);
	free(lz);
	s->lazy = NULL;
}

/* Read @len bytes at @off of @fd into @buf; -EIO if the file is shorter. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *b = buf;

	while (len) {
		ssize_t n = pread(fd, b, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		b += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Remember page @p for the working set.  Context: pool->lock held. */
static void log_page(struct lazy *lz, uint64_t p)
{
	if (!lz->recording)
		return;
	if (lz->nlog == lz->logcap) {
		size_t cap = lz->logcap ? lz->logcap * 2 : 1024;
		uint64_t *n = realloc(lz->log, cap * sizeof(*n));

		if (!n) {
			lz->log_lost = true;
			return;
		}
		lz->log = n;
		lz->logcap = cap;
	}
	lz->log[lz->nlog++] = p;
}

/*
 * Load lazy page @p into its home slot.  On failure the slot is emptied
 * again (a partial read must not be adopted as written data) and the page
 * stays lazy.  Context: pool->lock held.
 */
int lazy_load(struct space *s, uint64_t p)
{
	struct pool *pool = s->pool;
	struct lazy *lz = s->lazy;
	uint64_t f = s->home->start + p, e = lz->src[p], t0 = now_ns();
	int ret;

	mm_assert_held(&pool->lock);
	ret = pread_full(lz->fd[LAZY_ID(e)], frame_ptr(pool, f), MM_PAGE_SIZE, e & LAZY_OFF_MASK);
	lz->st.load_ns += now_ns() - t0;
	if (ret < 0) {
		pool_punch(pool, f, 1);
		return ret;
	}
	s->pflags[p] &= ~PG_LAZY;
	lz->st.pending--;
	lz->st.loaded++;
	log_page(lz, p);
	return 0;
}

/* Do pages @p and @p + 1 come from neighbouring offsets of one file? */
static bool lazy_follows(const struct space *s, uint64_t p)
{
	return p + 1 < s->npages && (s->pflags[p + 1] & PG_LAZY) &&
	       s->lazy->src[p + 1] == s->lazy->src[p] + MM_PAGE_SIZE;
}

/*
 * Load pages [@p, @p + @n) (lazy, neighbours in one file) with one read
 * into their home slots, which become their frames.  The caller counts
 * them as prefetched or read around.  Context: pool->lock held.
 */
static int load_run(struct space *s, uint64_t p, uint64_t n)
{
	struct pool *pool = s->pool;
	struct lazy *lz = s->lazy;
	uint64_t e = lz->src[p], f = s->home->start + p, t0 = now_ns();
	int ret;

	ret = pread_full(lz->fd[LAZY_ID(e)], frame_ptr(pool, f), n << MM_PAGE_SHIFT,
			 e & LAZY_OFF_MASK);
	lz->st.load_ns += now_ns() - t0;
	if (ret < 0) {
		pool_punch(pool, f, n);
		return ret;
	}
	for (uint64_t q = p; q < p + n; q++) {
		s->pflags[q] = (s->pflags[q] & ~PG_LAZY) | PG_EXCL;
		s->frame[q] = f + (q - p);
	}
	frames_init_run(pool, f, n);
	atomic_fetch_add(&pool->ctr->fresh, n);
	lz->st.pending -= n;
	lz->st.loaded += n;
	return 0;
}

/*
 * A missing fault at lazy page @p: with a read-around of R pages, the lazy
 * neighbours of its aligned block of R that follow it in the file (on both
 * sides) are read with it in one pread(), as the kernel reads ahead around a
 * file fault.  Context: pool->lock held.
 */
static int fault_load(struct space *s, uint64_t p)
{
	struct lazy *lz = s->lazy;
	uint64_t first = p & ~(uint64_t)(lz->readaround - 1), lo = p, hi = p + 1;
	int ret;

	if (lz->readaround <= 1)
		return space_make_present(s, p);
	while (lo > first && (s->pflags[lo - 1] & PG_LAZY) &&
	       lz->src[lo - 1] + MM_PAGE_SIZE == lz->src[lo])
		lo--;
	while (hi < first + lz->readaround && lazy_follows(s, hi - 1))
		hi++;
	ret = load_run(s, lo, hi - lo);
	if (ret < 0)
		return ret;
	lz->st.read_around += hi - lo - 1;
	log_page(lz, p);
	return 0;
}

/*
 * A missing fault at page @p: load it if it is lazy; else it has no data,
 * and it is made to exist (zero) in the frame the window maps there, by a
 * write of nothing through the direct map, so that the retried access finds
 * it as any first touch would.  The window's own mapping is left to the
 * kernel: a write-protected page keeps its protection.
 * Context: pool->lock held.
 */
int space_resolve_missing(struct space *s, uint64_t p)
{
	struct pool *pool = s->pool;
	uint8_t *slot;
	int ret;

	mm_assert_held(&pool->lock);
	if (s->frame[p] == MM_NO_FRAME && (s->pflags[p] & PG_LAZY)) {
		ret = fault_load(s, p);
		if (ret == 0)
			s->lazy->st.faults++;
		return ret;
	}
	slot = frame_ptr(pool, space_mapped_frame(s, p));
	__atomic_fetch_add(slot, 0, __ATOMIC_RELAXED);
	if (s->lazy)
		s->lazy->st.zero_faults++;
	return 0;
}

int space_lazy_file(struct space *s, int fd, unsigned int *id)
{
	struct pool *pool = s->pool;
	struct lazy *lz = NULL;
	int nfd, ret = 0;

	if (!fault_service_has_missing())
		return -ENOSYS;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (nfd < 0)
		return -errno;
	pool_lock(pool);
	if (!s->lazy) {
		lz = lazy_alloc(s->npages);
		if (!lz) {
			ret = -ENOMEM;
			goto out;
		}
		/* Pages written so far own their frames: none of them is lazy. */
		space_adopt_written(s);
		s->lazy = lz;
		ret = window_register(s);
		if (ret < 0) {
			lazy_free(s);
			goto out;
		}
		s->unregistered = false;
	}
	if (s->lazy->nfiles == MM_LAZY_MAX_FILES) {
		ret = -EMFILE;
		goto out;
	}
	*id = s->lazy->nfiles;
	s->lazy->fd[s->lazy->nfiles++] = nfd;
	nfd = -1;
out:
	pool_unlock(pool);
	if (nfd >= 0)
		close(nfd);
	return ret;
}

int space_lazy_add(struct space *s, unsigned int id, uint64_t gpa, uint64_t len, uint64_t file_off)
{
	struct pool *pool = s->pool;
	uint64_t first, last, n, end;
	int ret = 0;

	if (((gpa | len | file_off) & (MM_PAGE_SIZE - 1)) || len == 0)
		return -EINVAL;
	if (__builtin_add_overflow(file_off, len, &end) || end > LAZY_OFF_MASK)
		return -EINVAL;
	if (__builtin_add_overflow(gpa, len - 1, &end))
		return -EINVAL;
	first = space_page_of(s, gpa);
	last = space_page_of(s, end);
	if (first == UINT64_MAX || last == UINT64_MAX ||
	    last - first != (end >> MM_PAGE_SHIFT) - (gpa >> MM_PAGE_SHIFT))
		return -EFAULT;
	n = last - first + 1;
	pool_lock(pool);
	if (!s->lazy || id >= s->lazy->nfiles) {
		ret = -EINVAL;
		goto out;
	}
	for (uint64_t p = first; p < first + n; p++) {
		if (s->frame[p] != MM_NO_FRAME) {
			ret = -EBUSY;
			goto out;
		}
	}
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = first + i;

		if (!(s->pflags[p] & PG_LAZY))
			s->lazy->st.pending++;
		s->pflags[p] |= PG_LAZY;
		s->lazy->src[p] =
		    LAZY_SET | (uint64_t)id << LAZY_OFF_BITS | (file_off + (i << MM_PAGE_SHIFT));
	}
out:
	pool_unlock(pool);
	return ret;
}

int space_lazy_prefetch(struct space *s, const uint64_t *gpas, size_t n, uint64_t *loaded)
{
	struct pool *pool = s->pool;
	uint64_t done = 0;
	size_t i = 0;
	int ret = 0;

	pool_lock(pool);
	while (s->lazy && i < n && ret == 0) {
		uint64_t p = space_page_of(s, gpas[i]), run = 1;

		i++;
		if (p == UINT64_MAX || (gpas[i - 1] & (MM_PAGE_SIZE - 1)) ||
		    !(s->pflags[p] & PG_LAZY) || s->frame[p] != MM_NO_FRAME)
			continue;
		/* The next addresses in the list that are the next pages of the file. */
		while (i < n && run < LAZY_RUN_MAX && gpas[i] == gpas[i - 1] + MM_PAGE_SIZE &&
		       space_page_of(s, gpas[i]) == p + run && lazy_follows(s, p + run - 1)) {
			run++;
			i++;
		}
		ret = load_run(s, p, run);
		if (ret == 0) {
			done += run;
			s->lazy->st.prefetched += run;
		}
	}
	pool_unlock(pool);
	if (loaded)
		*loaded = done;
	return ret;
}

int space_lazy_set_readaround(struct space *s, unsigned int pages)
{
	int ret = 0;

	if (!pages || pages > LAZY_RUN_MAX || (pages & (pages - 1)))
		return -EINVAL;
	pool_lock(s->pool);
	if (s->lazy)
		s->lazy->readaround = pages;
	else
		ret = -EINVAL;
	pool_unlock(s->pool);
	return ret;
}

int space_lazy_fill(struct space *s, const uint64_t *gpas, const void *pages, size_t n,
		    uint64_t *loaded)
{
	struct pool *pool = s->pool;
	uint64_t done = 0;

	pool_lock(pool);
	for (size_t i = 0; s->lazy && i < n; i++) {
		uint64_t p = space_page_of(s, gpas[i]), f;

		if (p == UINT64_MAX || (gpas[i] & (MM_PAGE_SIZE - 1)) || !(s->pflags[p] & PG_LAZY))
			continue;
		f = s->home->start + p;
		memcpy(frame_ptr(pool, f), (const uint8_t *)pages + i * MM_PAGE_SIZE, MM_PAGE_SIZE);
		s->pflags[p] = (s->pflags[p] & ~PG_LAZY) | PG_EXCL;
		s->frame[p] = f;
		frame_init(pool, f);
		done++;
	}
	if (s->lazy) {
		atomic_fetch_add(&pool->ctr->fresh, done);
		s->lazy->st.pending -= done;
		s->lazy->st.loaded += done;
		s->lazy->st.prefetched += done;
	}
	pool_unlock(pool);
	if (loaded)
		*loaded = done;
	return 0;
}

int space_lazy_read_source(struct space *s, uint64_t gpa, void *buf)
{
	uint64_t p = space_page_of(s, gpa), e;
	int ret;

	if (p == UINT64_MAX || (gpa & (MM_PAGE_SIZE - 1)))
		return -EFAULT;
	pool_lock(s->pool);
	e = s->lazy ? s->lazy->src[p] : 0;
	ret = e & LAZY_SET
		  ? pread_full(s->lazy->fd[LAZY_ID(e)], buf, MM_PAGE_SIZE, e & LAZY_OFF_MASK)
		  : -ENOENT;
	pool_unlock(s->pool);
	return ret;
}

void space_lazy_record(struct space *s, bool on)
{
	pool_lock(s->pool);
	if (s->lazy)
		s->lazy->recording = on;
	pool_unlock(s->pool);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

ssize_t space_lazy_take_log(struct space *s, uint64_t **gpas)
{
	struct lazy *lz;
	uint64_t *log = NULL;
	size_t n = 0;
	bool lost = false;

	*gpas = NULL;
	pool_lock(s->pool);
	lz = s->lazy;
	if (lz) {
		log = lz->log;
		n = lz->nlog;
		lost = lz->log_lost;
		lz->log = NULL;
		lz->nlog = lz->logcap = 0;
		lz->log_lost = false;
	}
	pool_unlock(s->pool);
	if (lost) {
		free(log);
		return -ENOMEM;
	}
	/* A page loads once: the indices are unique already. */
	if (n)
		qsort(log, n, sizeof(*log), cmp_u64);
	for (size_t i = 0; i < n; i++)
		log[i] = page_gpa(s, log[i]);
	*gpas = log;
	return (ssize_t)n;
}

void space_lazy_get_stats(struct space *s, struct space_lazy_stats *st)
{
	pool_lock(s->pool);
	if (s->lazy)
		*st = s->lazy->st;
	else
		memset(st, 0, sizeof(*st));
	pool_unlock(s->pool);
}

/*
 * The child of a fork keeps the parent's pages that are not loaded yet
 * lazy, with its own descriptors of the same files; each side then loads
 * them into its own home.  Context: pool->lock held.
 */
int lazy_fork(struct space *parent, struct space *child)
{
	struct lazy *pl = parent->lazy, *cl;

	mm_assert_held(&parent->pool->lock);
	if (!pl)
		return 0;
	cl = lazy_alloc(child->npages);
	if (!cl)
		return -ENOMEM;
	child->lazy = cl;
	for (unsigned int i = 0; i < pl->nfiles; i++) {
		cl->fd[i] = fcntl(pl->fd[i], F_DUPFD_CLOEXEC, 0);
		if (cl->fd[i] < 0) {
			int ret = -errno;

			cl->nfiles = i;
			lazy_free(child);
			return ret;
		}
	}
	cl->nfiles = pl->nfiles;
	cl->readaround = pl->readaround;
	for (uint64_t p = 0; p < parent->npages; p++) {
		if (!(parent->pflags[p] & PG_LAZY))
			continue;
		child->pflags[p] |= PG_LAZY;
		cl->src[p] = pl->src[p]; /* only lazy ones: a loaded page's is its parent's data */
		cl->st.pending++;
	}
	return 0;
}
