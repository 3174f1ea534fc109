/* SPDX-License-Identifier: MIT */
/*
 * Private to devices/disk*.c: what runs a disk's raw I/O.  An engine takes
 * raw operations (one fd, one offset, one iovec array) from any thread and
 * calls each operation's done() on its own completion thread.  Two
 * implementations: io_uring (disk_uring.c) and a worker pool
 * (disk_threads.c).  The layered disk on top (disk.c) turns one struct
 * disk_io into one or more of these.
 */
#ifndef FORKVM_DEVICES_DISK_ENGINE_H
#define FORKVM_DEVICES_DISK_ENGINE_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum disk_eop_kind {
	DISK_EOP_READ, /* preadv */
	DISK_EOP_WRITE, /* pwritev */
	DISK_EOP_FSYNC, /* fdatasync */
	DISK_EOP_NOP, /* nothing: completes with 0 (zero-length requests) */
};

/**
 * struct disk_eop - one raw operation; the submitter owns it until @done.
 * @done: called once on the engine's completion thread with the byte count
 *	(READ/WRITE, possibly short), 0 (FSYNC/NOP) or -errno.  The engine
 *	does not touch @op after @done returns.
 * @next, @res: the engine's own (queue link, result on its way to @done).
 */
struct disk_eop {
	enum disk_eop_kind kind;
	int fd;
	uint64_t off;
	const struct iovec *iov;
	unsigned int niov;
	void (*done)(struct disk_eop *op, ssize_t res);
	struct disk_eop *next;
	ssize_t res;
};

struct disk_engine;

struct disk_engine_ops {
	const char *name;
	/*
	 * Start @ops[0..@n) (never calls done() inline).  Return: how many,
	 * from the first, the engine took (each will complete); -errno if it
	 * took none.
	 */
	int (*submit)(struct disk_engine *e, struct disk_eop **ops, unsigned int n);
	/* Stop the threads and free; every submitted op has completed. */
	void (*destroy)(struct disk_engine *e);
};

struct disk_engine {
	const struct disk_engine_ops *ops;
};

/* The queue depth an engine is made for (ring entries, not a hard cap). */
#define DISK_ENGINE_DEPTH 256u
/* Worker threads of the pool engine. */
#define DISK_ENGINE_THREADS 8u

/** disk_uring_create() - an io_uring engine.  Return: 0 or -errno. */
int disk_uring_create(unsigned int depth, struct disk_engine **out)
    __attribute__((warn_unused_result));

/** disk_threads_create() - a pool of @nthreads workers.  Return: 0 or -errno. */
int disk_threads_create(unsigned int nthreads, struct disk_engine **out)
    __attribute__((warn_unused_result));

#endif /* FORKVM_DEVICES_DISK_ENGINE_H */
