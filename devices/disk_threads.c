// SPDX-License-Identifier: MIT
/*
 * The worker-pool disk engine, for kernels or sandboxes without io_uring
 * (seccomp, sysctl kernel.io_uring_disabled): N workers run
 * preadv/pwritev/fdatasync, so up to N operations are in the kernel at once;
 * a separate completion thread calls each operation's done(), so a slow
 * done() never holds a worker and done() always runs on one thread, as with
 * io_uring.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "devices/disk_engine.h"
#include "devices/thread_hook.h"

struct threads_engine {
	struct disk_engine e; /* first: container */
	pthread_mutex_t lock; /* both queues, the stop flags */
	pthread_cond_t work_cv; /* work queued or stop (workers wait) */
	pthread_cond_t done_cv; /* a result queued or stop (completion thread waits) */
	struct disk_eop *work, **work_tail;
	struct disk_eop *done, **done_tail;
	bool stop_workers, stop_completer;
	pthread_t completer;
	unsigned int nthreads;
	pthread_t workers[];
};

static struct threads_engine *to_threads(struct disk_engine *e)
{
	return (struct threads_engine *)e;
}

static ssize_t run(struct disk_eop *op)
{
	ssize_t n;

	do {
		switch (op->kind) {
		case DISK_EOP_READ:
			n = preadv(op->fd, op->iov, (int)op->niov, (off_t)op->off);
			break;
		case DISK_EOP_WRITE:
			n = pwritev(op->fd, op->iov, (int)op->niov, (off_t)op->off);
			break;
		case DISK_EOP_FSYNC:
			n = fdatasync(op->fd);
			break;
		default:
			n = 0;
			break;
		}
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static void *worker_main(void *arg)
{
	struct threads_engine *t = arg;

	devices_thread_start("device");
	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct disk_eop *op;

		while (!t->work && !t->stop_workers)
			pthread_cond_wait(&t->work_cv, &t->lock);
		if (!t->work)
			break;
		op = t->work;
		t->work = op->next;
		if (!t->work)
			t->work_tail = &t->work;
		pthread_mutex_unlock(&t->lock);

		op->res = run(op);

		pthread_mutex_lock(&t->lock);
		op->next = NULL;
		*t->done_tail = op;
		t->done_tail = &op->next;
		pthread_cond_signal(&t->done_cv);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static void *completer_main(void *arg)
{
	struct threads_engine *t = arg;

	devices_thread_start("device");
	pthread_mutex_lock(&t->lock);
	for (;;) {
		struct disk_eop *batch;

		while (!t->done && !t->stop_completer)
			pthread_cond_wait(&t->done_cv, &t->lock);
		if (!t->done)
			break;
		batch = t->done;
		t->done = NULL;
		t->done_tail = &t->done;
		pthread_mutex_unlock(&t->lock);
		while (batch) {
			struct disk_eop *op = batch;

			batch = op->next;
			op->done(op, op->res);
		}
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static int threads_submit(struct disk_engine *e, struct disk_eop **ops, unsigned int n)
{
	struct threads_engine *t = to_threads(e);

	pthread_mutex_lock(&t->lock);
	for (unsigned int i = 0; i < n; i++) {
		ops[i]->next = NULL;
		*t->work_tail = ops[i];
		t->work_tail = &ops[i]->next;
	}
	if (n > 1)
		pthread_cond_broadcast(&t->work_cv);
	else
		pthread_cond_signal(&t->work_cv);
	pthread_mutex_unlock(&t->lock);
	return (int)n;
}

/* Stop and join the first @n workers, then the completion thread. */
static void stop_threads(struct threads_engine *t, unsigned int n, bool completer)
{
	pthread_mutex_lock(&t->lock);
	t->stop_workers = true;
	pthread_cond_broadcast(&t->work_cv);
	pthread_mutex_unlock(&t->lock);
	for (unsigned int i = 0; i < n; i++)
		pthread_join(t->workers[i], NULL);
	if (!completer)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop_completer = true;
	pthread_cond_signal(&t->done_cv);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->completer, NULL);
}

static void threads_destroy(struct disk_engine *e)
{
	struct threads_engine *t = to_threads(e);

	stop_threads(t, t->nthreads, true);
	pthread_cond_destroy(&t->done_cv);
	pthread_cond_destroy(&t->work_cv);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static const struct disk_engine_ops threads_ops = {
	.name = "threads",
	.submit = threads_submit,
	.destroy = threads_destroy,
};

int disk_threads_create(unsigned int nthreads, struct disk_engine **out)
{
	struct threads_engine *t;
	unsigned int i;
	int ret;

	if (!nthreads)
		return -EINVAL;
	t = calloc(1, sizeof(*t) + nthreads * sizeof(t->workers[0]));
	if (!t)
		return -ENOMEM;
	t->e.ops = &threads_ops;
	t->work_tail = &t->work;
	t->done_tail = &t->done;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->work_cv, NULL);
	pthread_cond_init(&t->done_cv, NULL);
	ret = -pthread_create(&t->completer, NULL, completer_main, t);
	if (ret)
		goto err_free;
	for (i = 0; i < nthreads; i++) {
		ret = -pthread_create(&t->workers[i], NULL, worker_main, t);
		if (ret)
			goto err_threads;
	}
	t->nthreads = nthreads;
	*out = &t->e;
	return 0;

err_threads:
	stop_threads(t, i, true);
err_free:
	pthread_cond_destroy(&t->done_cv);
	pthread_cond_destroy(&t->work_cv);
	pthread_mutex_destroy(&t->lock);
	free(t);
	return ret;
}
