// SPDX-License-Identifier: MIT
/*
 * The io_uring disk engine (liburing).  Submissions come from any thread and
 * take the SQ lock; one completion thread per engine reaps the CQ and calls
 * each operation's done().  At most as many operations as the CQ has entries
 * are in the kernel at once (so the CQ cannot overflow); the rest wait in a
 * FIFO that the completion thread feeds to the ring as completions free room.
 */
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>

#include "devices/disk_engine.h"
#include "devices/thread_hook.h"

/* user_data of the NOP that stops the completion thread. */
#define URING_STOP 0ull
/* user_data of an SQE rewritten into a NOP after io_uring_enter refused it. */
#define URING_DISCARD 1ull
/* SQEs per io_uring_enter (a request's operations go in one batch). */
#define URING_BATCH 32u

struct uring_engine {
	struct disk_engine e; /* first: container */
	struct io_uring ring;
	pthread_mutex_t lock; /* the SQ, inflight, the backlog */
	unsigned int inflight; /* operations in the kernel (lock) */
	unsigned int cap; /* CQ entries: the most that may be in the kernel */
	unsigned int sq_entries;
	struct disk_eop *backlog, **backlog_tail; /* lock */
	pthread_t thread;
};

static struct uring_engine *to_uring(struct disk_engine *e)
{
	return (struct uring_engine *)e;
}

/* An SQE a failed enter left in the ring: a NOP nobody waits for. */
static void discard(struct io_uring_sqe *sqe)
{
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, URING_DISCARD);
}

/* @op NULL: the stop NOP. */
static void prep(struct io_uring_sqe *sqe, struct disk_eop *op)
{
	if (!op) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, URING_STOP);
		return;
	}
	switch (op->kind) {
	case DISK_EOP_READ:
		io_uring_prep_readv(sqe, op->fd, op->iov, op->niov, op->off);
		break;
	case DISK_EOP_WRITE:
		io_uring_prep_writev(sqe, op->fd, op->iov, op->niov, op->off);
		break;
	case DISK_EOP_FSYNC:
		io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
		break;
	case DISK_EOP_NOP:
		io_uring_prep_nop(sqe);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
}

/* io_uring_submit(), retried while the kernel is short of memory. */
static int enter(struct uring_engine *u)
{
	int ret, tries = 0;

	do {
		ret = io_uring_submit(&u->ring);
		if (ret >= 0)
			return 0;
		sched_yield();
	} while ((ret == -EINTR || ret == -EAGAIN) && tries++ < 1000);
	return ret;
}

/*
 * Hand @n operations (at most URING_BATCH) to the kernel with one
 * io_uring_enter.  @ops NULL: one stop NOP.  Return: 0, or -errno and none
 * was started (their SQEs, which the failed enter did not consume, are
 * turned into discarded NOPs).
 * Context: u->lock held.
 */
static int push(struct uring_engine *u, struct disk_eop **ops, unsigned int n)
{
	struct io_uring_sqe *sqe[URING_BATCH];
	int ret;

	/* SQEs a failed enter left (discarded NOPs) go first, alone, so that
	 * a failure below only ever concerns this batch. */
	if (io_uring_sq_ready(&u->ring)) {
		ret = enter(u);
		if (ret)
			return ret;
	}
	for (unsigned int i = 0; i < n; i++) {
		/* n <= the SQ size and the SQ is empty: there is room. */
		sqe[i] = io_uring_get_sqe(&u->ring);
		prep(sqe[i], ops ? ops[i] : NULL);
	}
	ret = enter(u);
	if (ret) {
		for (unsigned int i = 0; i < n; i++)
			discard(sqe[i]);
		return ret;
	}
	if (ops)
		u->inflight += n;
	return 0;
}

/* Start what fits in the ring now, queue the rest.  Return: how many of
 * @ops the engine took (all, unless the kernel refused a batch), or -errno
 * when it took none. */
static int uring_submit(struct disk_engine *e, struct disk_eop **ops, unsigned int n)
{
	struct uring_engine *u = to_uring(e);
	unsigned int i = 0;
	int ret = 0;

	pthread_mutex_lock(&u->lock);
	while (i < n && !u->backlog && u->inflight < u->cap) {
		unsigned int m = n - i;

		if (m > URING_BATCH)
			m = URING_BATCH;
		if (m > u->cap - u->inflight)
			m = u->cap - u->inflight;
		if (m > u->sq_entries)
			m = u->sq_entries;
		ret = push(u, ops + i, m);
		if (ret)
			break;
		i += m;
	}
	if (!ret) {
		for (; i < n; i++) {
			ops[i]->next = NULL;
			*u->backlog_tail = ops[i];
			u->backlog_tail = &ops[i]->next;
		}
	}
	pthread_mutex_unlock(&u->lock);
	return i ? (int)i : ret;
}

/*
 * One completion freed room: move waiting operations into the ring.  An
 * operation the kernel refuses completes with the error (after the unlock).
 * Context: u->lock held.
 */
static struct disk_eop *feed_backlog(struct uring_engine *u)
{
	struct disk_eop *failed = NULL;

	while (u->backlog && u->inflight < u->cap) {
		struct disk_eop *op = u->backlog;

		u->backlog = op->next;
		if (!u->backlog)
			u->backlog_tail = &u->backlog;
		if (push(u, &op, 1)) {
			op->next = failed;
			failed = op;
		}
	}
	return failed;
}

static void *uring_main(void *arg)
{
	struct uring_engine *u = arg;
	bool stop = false;

	devices_thread_start("device");
	while (!stop) {
		struct io_uring_cqe *cqes[URING_BATCH];
		struct disk_eop *ops[URING_BATCH], *failed;
		int res[URING_BATCH];
		unsigned int n, k = 0;
		int ret;

		ret = io_uring_wait_cqe(&u->ring, &cqes[0]);
		if (ret == -EINTR || ret == -EAGAIN)
			continue;
		if (ret < 0)
			break; /* the ring is unusable; nothing more will complete */
		/* All that is there, up to a batch: one lock for all of them. */
		n = io_uring_peek_batch_cqe(&u->ring, cqes, URING_BATCH);
		for (unsigned int i = 0; i < n; i++) {
			uint64_t data = io_uring_cqe_get_data64(cqes[i]);

			if (data == URING_STOP) {
				stop = true; /* last: everything was complete before it */
			} else if (data != URING_DISCARD) {
				ops[k] = (struct disk_eop *)(uintptr_t)data;
				res[k++] = cqes[i]->res;
			}
		}
		io_uring_cq_advance(&u->ring, n);
		pthread_mutex_lock(&u->lock);
		u->inflight -= k;
		failed = feed_backlog(u);
		pthread_mutex_unlock(&u->lock);
		for (unsigned int i = 0; i < k; i++)
			ops[i]->done(ops[i], res[i]);
		while (failed) {
			struct disk_eop *f = failed;

			failed = f->next;
			f->done(f, -EIO);
		}
	}
	return NULL;
}

static void uring_destroy(struct disk_engine *e)
{
	struct uring_engine *u = to_uring(e);
	int ret;

	pthread_mutex_lock(&u->lock);
	ret = push(u, NULL, 1);
	pthread_mutex_unlock(&u->lock);
	/* Without the stop NOP the thread would wait forever: cancel it (it
	 * waits in io_uring_enter, a cancellation point). */
	if (ret)
		pthread_cancel(u->thread);
	pthread_join(u->thread, NULL);
	io_uring_queue_exit(&u->ring);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static const struct disk_engine_ops uring_ops = {
	.name = "io_uring",
	.submit = uring_submit,
	.destroy = uring_destroy,
};

int disk_uring_create(unsigned int depth, struct disk_engine **out)
{
	struct uring_engine *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return -ENOMEM;
	u->e.ops = &uring_ops;
	u->backlog_tail = &u->backlog;
	/* SUBMIT_ALL (5.18): an SQE the kernel cannot start gets an error CQE
	 * and the rest of the batch still goes in, so nothing is left in the
	 * SQ after an enter.  Older kernels: without it (the next enter takes
	 * any leftover, push()). */
	ret = io_uring_queue_init(depth, &u->ring, IORING_SETUP_SUBMIT_ALL);
	if (ret == -EINVAL)
		ret = io_uring_queue_init(depth, &u->ring, 0);
	if (ret < 0)
		goto err_free;
	u->cap = *u->ring.cq.kring_entries;
	u->sq_entries = *u->ring.sq.kring_entries;
	ret = -pthread_mutex_init(&u->lock, NULL);
	if (ret)
		goto err_ring;
	ret = -pthread_create(&u->thread, NULL, uring_main, u);
	if (ret)
		goto err_lock;
	*out = &u->e;
	return 0;

err_lock:
	pthread_mutex_destroy(&u->lock);
err_ring:
	io_uring_queue_exit(&u->ring);
err_free:
	free(u);
	return ret;
}
