// SPDX-License-Identifier: MIT
/*
 * The asynchronous, forkable disk (devices/disk.h).
 *
 * A request (struct disk_io) becomes one or more raw operations on an engine
 * (devices/disk_engine.h: io_uring or a worker pool), which calls back on its
 * completion thread; the request completes when its last operation does.
 *
 * Layers (devices/disk_layer.h): before any fork a disk is its file, one
 * layer that holds every block, and a request is one operation on it.  At a
 * fork the handle's top layer is frozen and shared, and parent and child
 * each get a new empty top layer over it (or, if the top holds nothing and
 * nothing is being written into it, the child gets one and the parent keeps
 * its empty top).  A read is split at 4 KiB block boundaries into runs, one
 * operation per run of blocks held by the same layer.  A write goes to the
 * top layer; a block the write covers only in part and the top does not hold
 * yet is first copied up (read from the layer below, merged, written whole).
 *
 * Concurrency of writes: a write that allocates (touches a block its top
 * layer does not hold) waits while another write overlapping its blocks is
 * in flight, since the two could copy up the same block and one would undo
 * the other.  Writes that do not allocate never wait.  Every write, started
 * before a fork or after, stays in d->writes until it completes, so a write
 * after the fork also waits for the in-flight one it overlaps.
 *
 * Latency: with cfg->latency_ns a request is started no earlier than that
 * after its submission (by the delay thread, in submission order), so it
 * stays in flight, data not yet moved, for at least that long.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/disk.h"
#include "devices/disk_engine.h"
#include "devices/disk_layer.h"
#include "devices/thread_hook.h"

#define SECTOR_SIZE 512u
#define DISK_IOV_MAX 1024u /* IOV_MAX on Linux, and io_uring's UIO_MAXIOV */
#define SUBMIT_BATCH 32u /* a request's operations handed to the engine at once */

enum engine_kind {
	ENGINE_URING,
	ENGINE_THREADS,
};

struct req;

/* One raw operation of a request (a run of a read, a write, a copy-up, a
 * sync).  A copy-up runs twice: read the block from below, then write it. */
struct sub {
	struct disk_eop eop; /* first: container */
	struct req *r;
	const struct iovec *slice; /* the data of this stage */
	unsigned int nslice;
	size_t left; /* bytes of this stage not yet moved */
	struct iovec *rest; /* what is left of slice after a short transfer */
	/* Blocks [sb0, sb1] become held by the target layer when this is done. */
	bool set_bits;
	uint64_t sb0, sb1;
	/* A sync of this layer: if it fails, the layer is still to be synced. */
	struct disk_layer *synced;
	/* Copy-up of one block: bounce holds it; the request's bytes
	 * [data_off, data_off + data_len) go to bounce + in_block. */
	enum { SUB_PLAIN, SUB_CU_READ, SUB_CU_WRITE } stage;
	void *bounce;
	struct iovec biov;
	uint64_t blk_off;
	size_t data_off, data_len, in_block;
};

struct req {
	struct disk *d;
	struct disk_io *io;
	uint64_t len; /* bytes of data */
	uint64_t b0, b1; /* blocks touched (len > 0) */
	uint64_t due_ns; /* latency: start no earlier */
	struct req *next; /* d->delayed or d->blocked */
	struct req *wprev, *wnext; /* d->writes */
	bool registered; /* in d->writes, target->writers counted */
	struct disk_layer *target; /* the top when planned (a reference) */
	int pending; /* atomic: subs not yet done */
	int res; /* atomic: the first error */
	unsigned int nsub;
	struct sub *subs;
	struct iovec *pool; /* the subs' slices */
};

struct disk {
	pthread_mutex_t lock;
	pthread_cond_t idle_cv; /* inflight dropped to 0 */
	struct disk_engine *eng;
	enum engine_kind kind;
	bool fallback; /* not forced: a fork may fall back to the worker pool */
	struct disk_layer *top; /* lock */
	uint64_t size;
	bool readonly;
	char *dir; /* where overlay files go */
	unsigned int inflight; /* lock */
	struct req *writes; /* started writes, until done (lock) */
	struct req *blocked, **blocked_tail; /* allocating writes waiting (lock) */
	bool folding; /* disk_fold() runs: every write waits (lock) */
	/* Latency: requests wait here, FIFO = due order (lock). */
	uint64_t latency_ns;
	bool have_delay, delay_stop;
	pthread_t delay_thread;
	pthread_cond_t delay_cv;
	struct req *delayed, **delayed_tail;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t block_start(uint64_t b)
{
	return b << DISK_BLOCK_SHIFT;
}

/* The end of block @b's bytes inside the disk (the last block may be short). */
static uint64_t block_end(const struct disk *d, uint64_t b)
{
	uint64_t e = block_start(b + 1);

	return e < d->size ? e : d->size;
}

/* Copy @len bytes at offset @off of the data described by @iov into @dst,
 * i.e. iov[off .. off + len). */
static void iov_copy_out(const struct iovec *iov, unsigned int niov, size_t off, void *dst,
			 size_t len)
{
	uint8_t *p = dst;

	for (unsigned int i = 0; i < niov && len; i++) {
		size_t n;

		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		n = iov[i].iov_len - off;
		if (n > len)
			n = len;
		memcpy(p, (uint8_t *)iov[i].iov_base + off, n);
		p += n;
		len -= n;
		off = 0;
	}
}

/* Describe bytes [off, off + len) of @src in @dst.  Return: entries used. */
static unsigned int iov_slice(struct iovec *dst, const struct iovec *src, unsigned int nsrc,
			      size_t off, size_t len)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < nsrc && len; i++) {
		size_t take;

		if (off >= src[i].iov_len) {
			off -= src[i].iov_len;
			continue;
		}
		take = src[i].iov_len - off;
		if (take > len)
			take = len;
		if (take) {
			dst[n].iov_base = (uint8_t *)src[i].iov_base + off;
			dst[n].iov_len = take;
			n++;
		}
		len -= take;
		off = 0;
	}
	return n;
}

/* ---- request lifetime ------------------------------------------------------ */

static void req_free(struct req *r)
{
	for (unsigned int i = 0; r->subs && i < r->nsub; i++) {
		free(r->subs[i].rest);
		free(r->subs[i].bounce);
	}
	free(r->subs);
	free(r->pool);
	if (r->target) {
		__atomic_sub_fetch(&r->target->users, 1, __ATOMIC_RELEASE);
		disk_layer_put(r->target);
	}
	free(r);
}

/* Does @a overlap the blocks of @b? */
static bool overlaps(const struct req *a, const struct req *b)
{
	return a->b0 <= b->b1 && b->b0 <= a->b1;
}

/*
 * Must write @r wait?  Only a write that allocates in the current top, and
 * only while a write overlapping its blocks is in flight or waits before it.
 * Context: d->lock held.
 */
static bool write_must_wait(struct disk *d, struct req *r)
{
	/* disk_fold() is copying the top into the base: no write starts. */
	if (d->folding)
		return true;
	/* Writing only blocks the top holds: no copy-up, nothing to undo. */
	if (disk_layer_holds_all(d->top, r->b0, r->b1))
		return false;
	/* A write in flight may be copying up (or filling) one of our blocks. */
	for (struct req *w = d->writes; w; w = w->wnext)
		if (overlaps(w, r))
			return true;
	/* Keep the order of overlapping writers that wait. */
	for (struct req *b = d->blocked; b && b != r; b = b->next)
		if (overlaps(b, r))
			return true;
	return false;
}

/* Context: d->lock held. */
static void write_register(struct disk *d, struct req *r)
{
	r->target = disk_layer_get(d->top);
	__atomic_add_fetch(&r->target->users, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&r->target->writers, 1, __ATOMIC_RELAXED);
	r->wprev = NULL;
	r->wnext = d->writes;
	if (d->writes)
		d->writes->wprev = r;
	d->writes = r;
	r->registered = true;
}

static int req_plan_and_start(struct req *r);
static void req_finish(struct req *r);
static void finish_elsewhere(struct req *r);

/*
 * The waiting writes that no longer have to wait, registered and taken off
 * d->blocked, as a list for start_taken().  Context: d->lock held.
 */
static struct req *take_unblocked(struct disk *d)
{
	struct req *start = NULL, **start_tail = &start, **pp;

	for (pp = &d->blocked; *pp;) {
		struct req *b = *pp;

		if (write_must_wait(d, b)) {
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		write_register(d, b);
		b->next = NULL;
		*start_tail = b;
		start_tail = &b->next;
	}
	d->blocked_tail = pp;
	return start;
}

/*
 * Start the writes of take_unblocked() (those that fail to start complete
 * with the error here).  Context: d->lock not held.
 */
static void start_taken(struct req *start)
{
	while (start) {
		struct req *b = start;
		int ret;

		start = b->next;
		ret = req_plan_and_start(b);
		if (ret) {
			/* This may be disk_submit()'s thread (its write failed). */
			b->res = ret;
			finish_elsewhere(b);
		}
	}
}

/*
 * Take @r out of d->writes and start the waiting writes that no longer
 * have to wait.  Context: d->lock not held; taken and released here, and
 * released before anything is submitted.
 */
static void write_unregister(struct disk *d, struct req *r)
{
	struct req *start;

	__atomic_sub_fetch(&r->target->writers, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&d->lock);
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		d->writes = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	r->registered = false;
	/* disk_fold() waits for the last write. */
	if (!d->writes && d->folding)
		pthread_cond_broadcast(&d->idle_cv);
	start = take_unblocked(d);
	pthread_mutex_unlock(&d->lock);
	start_taken(start);
}

/*
 * The last sub is done: complete the request.  Bits of the written blocks
 * are already set (sub_finish), so a write is visible before its done().
 * Context: a disk thread (completion or delay), no lock held; done() runs
 * without any disk lock.
 */
static void req_finish(struct req *r)
{
	struct disk *d = r->d;
	struct disk_io *io = r->io;
	int res = __atomic_load_n(&r->res, __ATOMIC_ACQUIRE);

	if (r->registered) {
		__atomic_store_n(&r->target->dirty, 1, __ATOMIC_RELAXED);
		write_unregister(d, r);
	}
	req_free(r);
	io->done(io, res);
	pthread_mutex_lock(&d->lock);
	if (--d->inflight == 0)
		pthread_cond_broadcast(&d->idle_cv);
	pthread_mutex_unlock(&d->lock);
}

/* Keep the first error of a request. */
static void sub_set_error(struct req *r, int err)
{
	int zero = 0;

	__atomic_compare_exchange_n(&r->res, &zero, err, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

static void sub_finish(struct sub *s, int err)
{
	struct req *r = s->r;

	if (err) {
		sub_set_error(r, err);
		if (s->synced)
			__atomic_store_n(&s->synced->dirty, 1, __ATOMIC_RELAXED);
	} else if (s->set_bits) {
		disk_layer_set(r->target, s->sb0, s->sb1);
	}
	if (__atomic_sub_fetch(&r->pending, 1, __ATOMIC_ACQ_REL) == 0)
		req_finish(r);
}

static int sub_submit(struct sub *s)
{
	struct disk_eop *op = &s->eop;
	int ret = s->r->d->eng->ops->submit(s->r->d->eng, &op, 1);

	return ret < 0 ? ret : 0;
}

/* Point the sub at a new stage's data. */
static void sub_stage(struct sub *s, enum disk_eop_kind kind, int fd, uint64_t off,
		      const struct iovec *slice, unsigned int nslice, size_t len)
{
	s->eop.kind = kind;
	s->eop.fd = fd;
	s->eop.off = off;
	s->eop.iov = slice;
	s->eop.niov = nslice;
	s->slice = slice;
	s->nslice = nslice;
	s->left = len;
}

/* A short transfer moved @moved of s->left bytes: go on with the rest. */
static int sub_continue(struct sub *s, size_t moved)
{
	size_t done_total = 0;

	for (unsigned int i = 0; i < s->nslice; i++)
		done_total += s->slice[i].iov_len;
	done_total -= s->left - moved;
	if (!s->rest) {
		s->rest = malloc(s->nslice * sizeof(*s->rest));
		if (!s->rest)
			return -ENOMEM;
	}
	s->left -= moved;
	s->eop.off += moved;
	s->eop.iov = s->rest;
	s->eop.niov = iov_slice(s->rest, s->slice, s->nslice, done_total, s->left);
	return sub_submit(s);
}

/* Engine callback.  Context: the engine's completion thread, no lock held. */
static void sub_eop_done(struct disk_eop *eop, ssize_t res)
{
	struct sub *s = (struct sub *)eop;
	struct req *r = s->r;
	int ret;

	if (res < 0) {
		sub_finish(s, (int)res);
		return;
	}
	if (eop->kind == DISK_EOP_READ || eop->kind == DISK_EOP_WRITE) {
		if ((size_t)res < s->left) {
			/* Nothing moved: past the end of a file cut behind our back. */
			ret = res ? sub_continue(s, (size_t)res) : -EIO;
			if (ret)
				sub_finish(s, ret);
			return;
		}
	}
	if (s->stage == SUB_CU_READ) {
		/* The block as below holds it, then this request's bytes over it. */
		iov_copy_out(r->io->iov, r->io->niov, s->data_off,
			     (uint8_t *)s->bounce + s->in_block, s->data_len);
		s->stage = SUB_CU_WRITE;
		sub_stage(s, DISK_EOP_WRITE, r->target->fd, s->blk_off, &s->biov, 1,
			  s->biov.iov_len);
		ret = sub_submit(s);
		if (ret)
			sub_finish(s, ret);
		return;
	}
	sub_finish(s, 0);
}

static void *finish_main(void *arg)
{
	devices_thread_start("device");
	req_finish(arg);
	return NULL;
}

/*
 * The engine took part of a request and everything it took has completed
 * already: finish it, but not on the submitter's thread (done() never runs
 * inside disk_submit(), whose caller may hold the lock done() takes).  Only
 * after an engine failure, so a thread of its own is cheap enough.
 */
static void finish_elsewhere(struct req *r)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, finish_main, r);
	pthread_attr_destroy(&attr);
	if (ret)
		req_finish(r); /* no thread either: here, rather than never */
}

/*
 * Submit @r's subs.  Return: 0 (r->done will run), or -errno and nothing
 * was started.
 */
static int req_submit_subs(struct req *r)
{
	struct disk_engine *e = r->d->eng;
	/* Once the last sub is taken by the engine, @r may be done and freed. */
	unsigned int i = 0, n = r->nsub;
	int ret = 0;

	__atomic_store_n(&r->pending, (int)n, __ATOMIC_RELAXED);
	while (i < n) {
		struct disk_eop *ops[SUBMIT_BATCH];
		unsigned int m = n - i < SUBMIT_BATCH ? n - i : SUBMIT_BATCH;

		for (unsigned int k = 0; k < m; k++)
			ops[k] = &r->subs[i + k].eop;
		ret = e->ops->submit(e, ops, m);
		if (ret < 0)
			break;
		i += (unsigned int)ret;
		if ((unsigned int)ret < m) {
			ret = -EIO;
			break;
		}
	}
	if (i == n)
		return 0;
	if (i == 0)
		return ret;
	/* Some started: they complete the request, with the error. */
	sub_set_error(r, ret);
	if (__atomic_sub_fetch(&r->pending, (int)(n - i), __ATOMIC_ACQ_REL) == 0)
		finish_elsewhere(r);
	return 0;
}

static int req_alloc_subs(struct req *r, unsigned int nsub, unsigned int npool)
{
	r->subs = calloc(nsub, sizeof(*r->subs));
	if (!r->subs)
		return -ENOMEM;
	if (npool) {
		r->pool = calloc(npool, sizeof(*r->pool));
		if (!r->pool)
			return -ENOMEM;
	}
	r->nsub = nsub;
	for (unsigned int i = 0; i < nsub; i++) {
		r->subs[i].r = r;
		r->subs[i].eop.done = sub_eop_done;
	}
	return 0;
}

/* A NOP, for a request that moves nothing. */
static int plan_nop(struct req *r)
{
	int ret = req_alloc_subs(r, 1, 0);

	if (ret)
		return ret;
	sub_stage(&r->subs[0], DISK_EOP_NOP, -1, 0, NULL, 0, 0);
	return 0;
}

/* Sub @s moves request bytes [a, b) from/to @fd at the same disk offset. */
static void plan_run(struct req *r, struct sub *s, struct iovec **pool, enum disk_eop_kind kind,
		     int fd, uint64_t a, uint64_t b)
{
	const struct disk_io *io = r->io;
	unsigned int n;

	if (r->nsub == 1 && a == io->pos && b - a == r->len) {
		/* The whole request: the caller's iovec as it is. */
		sub_stage(s, kind, fd, a, io->iov, io->niov, (size_t)(b - a));
		return;
	}
	n = iov_slice(*pool, io->iov, io->niov, (size_t)(a - io->pos), (size_t)(b - a));
	sub_stage(s, kind, fd, a, *pool, n, (size_t)(b - a));
	*pool += n;
}

/* Reads: one sub per run of blocks held by the same layer. */
static int plan_read(struct req *r)
{
	const struct disk_io *io = r->io;
	struct run {
		struct disk_layer *l;
		uint64_t a; /* first byte */
	} one, *runs = &one;
	unsigned int nruns = 0, cap = 1, i;
	uint64_t a = io->pos, b;
	struct iovec *pool;
	int ret;

	/* One walk: bits only get set, so a second could see other runs. */
	for (b = r->b0; b <= r->b1; b++) {
		struct disk_layer *l = disk_layer_find(r->target, b);

		if (nruns && runs[nruns - 1].l == l)
			continue;
		if (nruns == cap) {
			struct run *n = malloc(2 * cap * sizeof(*n));

			if (!n) {
				ret = -ENOMEM;
				goto out;
			}
			memcpy(n, runs, nruns * sizeof(*n));
			if (runs != &one)
				free(runs);
			runs = n;
			cap *= 2;
		}
		runs[nruns].l = l;
		runs[nruns].a = nruns ? block_start(b) : a;
		nruns++;
	}
	ret = req_alloc_subs(r, nruns, nruns > 1 ? io->niov + nruns : 0);
	if (ret)
		goto out;
	pool = r->pool;
	for (i = 0; i < nruns; i++) {
		uint64_t end = i + 1 < nruns ? runs[i + 1].a : io->pos + r->len;

		plan_run(r, &r->subs[i], &pool, DISK_EOP_READ, runs[i].l->fd, runs[i].a, end);
	}
out:
	if (runs != &one)
		free(runs);
	return ret;
}

/* A copy-up of block @blk for the bytes of [s, e) inside it. */
static int plan_copy_up(struct req *r, struct sub *s, uint64_t blk, uint64_t a, uint64_t e)
{
	struct disk *d = r->d;
	uint64_t off = block_start(blk), end = block_end(d, blk);
	uint64_t from = a > off ? a : off, to = e < end ? e : end;
	/* The top does not hold the block, so it is an overlay: below exists. */
	struct disk_layer *lower = disk_layer_find(r->target->below, blk);

	s->bounce = aligned_alloc(DISK_BLOCK_SIZE, DISK_BLOCK_SIZE);
	if (!s->bounce)
		return -ENOMEM;
	s->stage = SUB_CU_READ;
	s->blk_off = off;
	s->biov.iov_base = s->bounce;
	s->biov.iov_len = (size_t)(end - off);
	s->data_off = (size_t)(from - r->io->pos);
	s->data_len = (size_t)(to - from);
	s->in_block = (size_t)(from - off);
	s->set_bits = true;
	s->sb0 = s->sb1 = blk;
	sub_stage(s, DISK_EOP_READ, lower->fd, off, &s->biov, 1, s->biov.iov_len);
	return 0;
}

/* Does [a, e) cover all of block @b's bytes? */
static bool covers(const struct disk *d, uint64_t a, uint64_t e, uint64_t b)
{
	return a <= block_start(b) && e >= block_end(d, b);
}

/*
 * Writes go to r->target (the top when the write was registered): the
 * blocks it holds or the write covers whole directly, a partly covered
 * block it does not hold through a copy-up.
 */
static int plan_write(struct req *r)
{
	struct disk *d = r->d;
	struct disk_layer *t = r->target;
	uint64_t a = r->io->pos, e = a + r->len, ma, mb;
	bool head_cu, tail_cu;
	unsigned int n = 0, i = 0;
	struct iovec *pool;
	int ret;

	head_cu = !covers(d, a, e, r->b0) && !disk_layer_has(t, r->b0);
	tail_cu = r->b1 != r->b0 && !covers(d, a, e, r->b1) && !disk_layer_has(t, r->b1);
	ma = head_cu ? block_end(d, r->b0) : a;
	if (ma > e)
		ma = e;
	mb = tail_cu ? block_start(r->b1) : e;
	n = head_cu + tail_cu + (ma < mb);
	ret = req_alloc_subs(r, n, n > 1 ? r->io->niov : 0);
	if (ret)
		return ret;
	pool = r->pool;
	if (head_cu) {
		ret = plan_copy_up(r, &r->subs[i++], r->b0, a, e);
		if (ret)
			return ret;
	}
	if (ma < mb) {
		struct sub *s = &r->subs[i++];

		plan_run(r, s, &pool, DISK_EOP_WRITE, t->fd, ma, mb);
		/* Each of these blocks is covered whole or already held. */
		s->set_bits = true;
		s->sb0 = ma >> DISK_BLOCK_SHIFT;
		s->sb1 = (mb - 1) >> DISK_BLOCK_SHIFT;
	}
	if (tail_cu) {
		ret = plan_copy_up(r, &r->subs[i++], r->b1, a, e);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * A flush syncs the image file: always before the first fork, and after it
 * only if writes made before the fork have not been synced yet.  Overlays
 * are never synced: they are unlinked files that end with the last handle,
 * so a sync would buy no durability, and an overlay whose blocks were
 * written back costs the kernel much more to free (measured: seconds for a
 * few thousand blocks on ext4) than one whose dirty pages are just dropped.
 */
static int plan_flush(struct req *r)
{
	struct disk_layer *base = r->target;
	int ret;

	while (base->below)
		base = base->below;
	if (r->d->readonly)
		return plan_nop(r);
	if (base != r->target && !__atomic_exchange_n(&base->dirty, 0, __ATOMIC_RELAXED))
		return plan_nop(r);
	ret = req_alloc_subs(r, 1, 0);
	if (ret)
		return ret;
	__atomic_store_n(&base->dirty, 0, __ATOMIC_RELAXED);
	sub_stage(&r->subs[0], DISK_EOP_FSYNC, base->fd, 0, NULL, 0, 0);
	/* r->target's reference keeps the chain, base included, alive. */
	r->subs[0].synced = base;
	return 0;
}

/* Return: 0 (the request will complete), or -errno and nothing started. */
static int req_plan_and_start(struct req *r)
{
	int ret;

	switch (r->io->op) {
	case DISK_READ:
		ret = r->len ? plan_read(r) : plan_nop(r);
		break;
	case DISK_WRITE:
		ret = r->len ? plan_write(r) : plan_nop(r);
		break;
	default:
		ret = plan_flush(r);
		break;
	}
	if (ret)
		return ret;
	return req_submit_subs(r);
}

/*
 * Start @r now: a write that must wait joins d->blocked (and is started
 * when the write it waits for completes).  Return: 0, or -errno and @r is
 * neither started nor registered.
 * Context: d->lock not held (taken to choose the layer, released before
 * the engine is called).
 */
static int req_begin(struct req *r)
{
	struct disk *d = r->d;
	int ret;

	pthread_mutex_lock(&d->lock);
	if (r->io->op == DISK_WRITE && r->len) {
		if (write_must_wait(d, r)) {
			r->next = NULL;
			*d->blocked_tail = r;
			d->blocked_tail = &r->next;
			pthread_mutex_unlock(&d->lock);
			return 0;
		}
		write_register(d, r);
	} else {
		r->target = disk_layer_get(d->top);
		__atomic_add_fetch(&r->target->users, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&d->lock);
	ret = req_plan_and_start(r);
	if (ret && r->registered)
		write_unregister(d, r);
	return ret;
}

/* Latency: start each request when it is due, in submission order.
 * Context: holds d->lock except while it starts a request. */
static void *delay_main(void *arg)
{
	struct disk *d = arg;

	devices_thread_start("device");
	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct req *r = d->delayed;
		uint64_t now;
		int ret;

		if (!r) {
			if (d->delay_stop)
				break;
			pthread_cond_wait(&d->delay_cv, &d->lock);
			continue;
		}
		now = mono_ns();
		if (r->due_ns > now) {
			struct timespec ts = { .tv_sec = (time_t)(r->due_ns / 1000000000ull),
					       .tv_nsec = (long)(r->due_ns % 1000000000ull) };

			pthread_cond_timedwait(&d->delay_cv, &d->lock, &ts);
			continue;
		}
		d->delayed = r->next;
		if (!d->delayed)
			d->delayed_tail = &d->delayed;
		pthread_mutex_unlock(&d->lock);
		ret = req_begin(r);
		if (ret) {
			r->res = ret;
			req_finish(r);
		}
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* ---- handles ----------------------------------------------------------------- */

static int engine_kind_from_env(enum engine_kind *kind, bool *fallback)
{
	const char *s = getenv("FORKVM_DISK_ENGINE");

	*fallback = false;
	if (!s || !*s) {
		*kind = ENGINE_URING;
		*fallback = true;
	} else if (!strcmp(s, "io_uring")) {
		*kind = ENGINE_URING;
	} else if (!strcmp(s, "threads")) {
		*kind = ENGINE_THREADS;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int engine_create(enum engine_kind kind, struct disk_engine **out)
{
	if (kind == ENGINE_URING)
		return disk_uring_create(DISK_ENGINE_DEPTH, out);
	return disk_threads_create(DISK_ENGINE_THREADS, out);
}

static void handle_free(struct disk *d)
{
	if (d->have_delay) {
		pthread_mutex_lock(&d->lock);
		d->delay_stop = true;
		pthread_cond_signal(&d->delay_cv);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->delay_thread, NULL);
	}
	if (d->eng)
		d->eng->ops->destroy(d->eng);
	if (d->top)
		disk_layer_put(d->top);
	pthread_cond_destroy(&d->delay_cv);
	pthread_cond_destroy(&d->idle_cv);
	pthread_mutex_destroy(&d->lock);
	free(d->dir);
	free(d);
}

/*
 * A handle with its threads and no layer yet.  @fallback: io_uring may
 * fall back to the worker pool.
 */
static int handle_alloc(uint64_t size, bool readonly, uint64_t latency_ns, const char *dir,
			enum engine_kind kind, bool fallback, struct disk **out)
{
	struct disk *d = calloc(1, sizeof(*d));
	pthread_condattr_t ca;
	int ret;

	if (!d)
		return -ENOMEM;
	d->size = size;
	d->readonly = readonly;
	d->latency_ns = latency_ns;
	d->blocked_tail = &d->blocked;
	d->delayed_tail = &d->delayed;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->idle_cv, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->delay_cv, &ca);
	pthread_condattr_destroy(&ca);
	d->dir = strdup(dir);
	if (!d->dir) {
		ret = -ENOMEM;
		goto err;
	}
	ret = engine_create(kind, &d->eng);
	if (ret && kind == ENGINE_URING && fallback) {
		kind = ENGINE_THREADS;
		ret = engine_create(kind, &d->eng);
	}
	if (ret)
		goto err;
	d->kind = kind;
	d->fallback = fallback;
	if (latency_ns) {
		ret = -pthread_create(&d->delay_thread, NULL, delay_main, d);
		if (ret)
			goto err;
		d->have_delay = true;
	}
	*out = d;
	return 0;

err:
	handle_free(d);
	return ret;
}

#define ERR(...) (err && errlen ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

int disk_open(const struct disk_config *cfg, struct disk **out, char *err, size_t errlen)
{
	enum engine_kind kind;
	char dir[PATH_MAX];
	struct stat st;
	uint64_t size;
	struct disk *d;
	bool fallback, overlay;
	int fd, ret;

	if (!cfg || !cfg->path || !out) {
		ERR("disk: no path");
		return -EINVAL;
	}
	if (engine_kind_from_env(&kind, &fallback)) {
		ERR("disk: FORKVM_DISK_ENGINE=%s: expected io_uring or threads",
		    getenv("FORKVM_DISK_ENGINE"));
		return -EINVAL;
	}
	overlay = cfg->overlay && !cfg->readonly;
	fd = open(cfg->path, (cfg->readonly || overlay ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		ERR("disk: %s: %s", cfg->path, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		ERR("disk: %s: %s", cfg->path, strerror(-ret));
		goto err_fd;
	}
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size)) {
			ret = -errno;
			ERR("disk: %s: BLKGETSIZE64: %s", cfg->path, strerror(-ret));
			goto err_fd;
		}
	} else {
		ret = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		ERR("disk: %s: not a regular file or a block device", cfg->path);
		goto err_fd;
	}
	if (size % SECTOR_SIZE)
		fprintf(stderr,
			"disk: %s: size %llu is not a multiple of %u; the last %llu bytes are not "
			"part of the disk\n",
			cfg->path, (unsigned long long)size, SECTOR_SIZE,
			(unsigned long long)(size % SECTOR_SIZE));
	size -= size % SECTOR_SIZE;
	/* Overlay files go next to the image (same filesystem, room for the
	 * disk's writes), else $TMPDIR or /tmp (disk_layer_new). */
	snprintf(dir, sizeof(dir), "%s", cfg->path);
	ret = handle_alloc(size, cfg->readonly, cfg->latency_ns, dirname(dir), kind, fallback, &d);
	if (ret) {
		ERR("disk: %s: cannot start the %s engine: %s", cfg->path,
		    kind == ENGINE_URING ? "io_uring" : "threads", strerror(-ret));
		goto err_fd;
	}
	d->top = disk_layer_base(fd);
	if (!d->top) {
		ret = -ENOMEM;
		ERR("disk: %s: out of memory", cfg->path);
		handle_free(d);
		goto err_fd;
	}
	if (overlay) {
		struct disk_layer *o;

		/* The base is frozen from the start: writes go to @o only. */
		ret = disk_layer_new(d->dir, size, &o);
		if (ret) {
			ERR("disk: %s: overlay: %s", cfg->path, strerror(-ret));
			handle_free(d); /* closes @fd with the base layer */
			return ret;
		}
		o->below = d->top;
		d->top = o;
	}
	*out = d;
	return 0;

err_fd:
	close(fd);
	return ret;
}

uint64_t disk_size(const struct disk *d)
{
	return d->size;
}

bool disk_readonly(const struct disk *d)
{
	return d->readonly;
}

const char *disk_engine(const struct disk *d)
{
	return d->eng->ops->name;
}

uint64_t disk_latency_ns(const struct disk *d)
{
	return d->latency_ns;
}

struct disk_layer *disk_top_get(struct disk *d)
{
	struct disk_layer *t;

	pthread_mutex_lock(&d->lock);
	t = disk_layer_get(d->top);
	pthread_mutex_unlock(&d->lock);
	return t;
}

unsigned int disk_inflight(const struct disk *d)
{
	return __atomic_load_n(&d->inflight, __ATOMIC_RELAXED);
}

unsigned int disk_layers(struct disk *d)
{
	unsigned int n;

	pthread_mutex_lock(&d->lock);
	n = disk_layer_depth(d->top);
	pthread_mutex_unlock(&d->lock);
	return n;
}

/* Check @io against the disk.  Return: 0 with *@len its data bytes, or -errno. */
static int check_io(const struct disk *d, const struct disk_io *io, uint64_t *len)
{
	uint64_t total = 0;

	if (!io || !io->done)
		return -EINVAL;
	*len = 0;
	switch (io->op) {
	case DISK_FLUSH:
		return 0;
	case DISK_READ:
	case DISK_WRITE:
		break;
	default:
		return -EINVAL;
	}
	if (io->op == DISK_WRITE && d->readonly)
		return -EROFS;
	if (io->niov > DISK_IOV_MAX || (io->niov && !io->iov))
		return -EINVAL;
	for (unsigned int i = 0; i < io->niov; i++)
		if (__builtin_add_overflow(total, (uint64_t)io->iov[i].iov_len, &total))
			return -EINVAL;
	/* Inside the disk, without overflow: pos <= size and total <= size - pos. */
	if (io->pos > d->size || total > d->size - io->pos)
		return -EINVAL;
	*len = total;
	return 0;
}

int disk_submit(struct disk *d, struct disk_io *io)
{
	struct req *r;
	uint64_t len;
	int ret;

	ret = check_io(d, io, &len);
	if (ret)
		return ret;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->d = d;
	r->io = io;
	r->len = len;
	if (len) {
		r->b0 = io->pos >> DISK_BLOCK_SHIFT;
		r->b1 = (io->pos + len - 1) >> DISK_BLOCK_SHIFT;
	}
	pthread_mutex_lock(&d->lock);
	d->inflight++;
	if (d->latency_ns) {
		r->due_ns = mono_ns() + d->latency_ns;
		*d->delayed_tail = r;
		d->delayed_tail = &r->next;
		pthread_cond_signal(&d->delay_cv);
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	pthread_mutex_unlock(&d->lock);
	ret = req_begin(r);
	if (ret) {
		req_free(r);
		pthread_mutex_lock(&d->lock);
		if (--d->inflight == 0)
			pthread_cond_broadcast(&d->idle_cv);
		pthread_mutex_unlock(&d->lock);
	}
	return ret;
}

/* Context: d->lock taken for the swap of the top only; the overlay files
 * and the child's threads are made before it, outside. */
int disk_fork(struct disk *d, struct disk **child)
{
	struct disk_layer *p = NULL, *c = NULL, *t;
	struct disk *n;
	int ret;

	/* A ring can fail where the parent's worked (RLIMIT_MEMLOCK on kernels
	 * before 5.12): unless forced, the child then gets the worker pool. */
	ret = handle_alloc(d->size, d->readonly, d->latency_ns, d->dir, d->kind, d->fallback, &n);
	if (ret)
		return ret;
	if (!d->readonly) {
		/* Made before the lock: file creation is the slow part. */
		ret = disk_layer_new(d->dir, d->size, &p);
		if (ret)
			goto err_handle;
		ret = disk_layer_new(d->dir, d->size, &c);
		if (ret)
			goto err_p;
	}
	pthread_mutex_lock(&d->lock);
	t = d->top;
	if (d->readonly) {
		/* Nobody writes: share the chain as it is. */
		n->top = disk_layer_get(t);
	} else if (t->bits && !__atomic_load_n(&t->writers, __ATOMIC_ACQUIRE) &&
		   !__atomic_load_n(&t->nset, __ATOMIC_RELAXED)) {
		/*
		 * The top holds nothing and nothing is being written into it
		 * (writers read first: a write sets its bits before it leaves):
		 * the child stands on what is below it, the parent keeps it.
		 */
		c->below = disk_layer_get(t->below);
		n->top = c;
		c = NULL;
	} else {
		/* Freeze the top: the parent's reference moves to its new top. */
		p->below = t;
		c->below = disk_layer_get(t);
		d->top = p;
		n->top = c;
		p = c = NULL;
	}
	pthread_mutex_unlock(&d->lock);
	if (p)
		disk_layer_put(p);
	*child = n;
	return 0;

err_p:
	disk_layer_put(p);
err_handle:
	handle_free(n);
	return ret;
}

/* Copy the blocks @top holds into @base's file, runs at a time.  Nobody
 * writes @top meanwhile (disk_fold() drained and holds back the writes). */
static int fold_copy(struct disk_layer *top, struct disk_layer *base, uint64_t size)
{
	const size_t max = 256u * DISK_BLOCK_SIZE;
	uint64_t b = 0, e, off, len;
	uint8_t *buf = malloc(max);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	while (b < top->nblocks && !ret) {
		if (!disk_layer_has(top, b)) {
			b++;
			continue;
		}
		for (e = b + 1; e < top->nblocks && e - b < 256 && disk_layer_has(top, e); e++)
			;
		off = b << DISK_BLOCK_SHIFT;
		len = (e << DISK_BLOCK_SHIFT) < size ? (e - b) << DISK_BLOCK_SHIFT : size - off;
		if (pread(top->fd, buf, (size_t)len, (off_t)off) != (ssize_t)len ||
		    pwrite(base->fd, buf, (size_t)len, (off_t)off) != (ssize_t)len)
			ret = errno ? -errno : -EIO;
		b = e;
	}
	free(buf);
	return ret;
}

int disk_fold(struct disk *d)
{
	struct disk_layer *top, *base;
	struct req *start;
	int ret = 0, mode;

	pthread_mutex_lock(&d->lock);
	top = d->top;
	base = top->below;
	/*
	 * Only an overlay right over a base file that no other layer stands
	 * on (no fork shares it: only @top's reference and those of requests
	 * from before the fork, which are reads since the writes drained
	 * below; a read in flight across a later write of its block may see
	 * either), opened for writing (not a snapshot's file under
	 * disk_config.overlay).
	 */
	mode = base ? fcntl(base->fd, F_GETFL) : -1;
	if (d->readonly || !top->bits || !base || base->bits || d->folding ||
	    __atomic_load_n(&base->refs, __ATOMIC_ACQUIRE) -
		    __atomic_load_n(&base->users, __ATOMIC_ACQUIRE) !=
		1 ||
	    mode < 0 || (mode & O_ACCMODE) != O_RDWR) {
		pthread_mutex_unlock(&d->lock);
		return -EBUSY;
	}
	d->folding = true;
	while (d->writes)
		pthread_cond_wait(&d->idle_cv, &d->lock);
	pthread_mutex_unlock(&d->lock);

	errno = 0;
	ret = fold_copy(top, base, d->size);

	pthread_mutex_lock(&d->lock);
	if (!ret && d->top == top) {
		/* The base holds every block again: writes go to the file. */
		d->top = disk_layer_get(base);
		__atomic_store_n(&base->dirty, 1, __ATOMIC_RELAXED);
	} else {
		top = NULL; /* failed, or forked meanwhile: the overlay stays */
		if (!ret)
			ret = -EBUSY;
	}
	d->folding = false;
	start = take_unblocked(d);
	pthread_mutex_unlock(&d->lock);
	start_taken(start);
	if (top)
		disk_layer_put(top);
	return ret;
}

void disk_close(struct disk *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	while (d->inflight)
		pthread_cond_wait(&d->idle_cv, &d->lock);
	pthread_mutex_unlock(&d->lock);
	handle_free(d);
}
