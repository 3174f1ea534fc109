/* SPDX-License-Identifier: MIT */
/*
 * A virtual disk's backing store, asynchronous: requests are submitted from
 * any thread and complete on the disk's own completion thread, many in
 * flight at once (io_uring where the kernel allows it, a worker pool
 * otherwise).  A disk can be forked like guest memory: after disk_fork()
 * the parent and the child each see the contents as of that instant, and
 * each one's later writes are its own (a copy-on-write overlay; see
 * docs/devices.md).  The device (virtio-blk) owns the guest side: pins,
 * rings, status bytes; a disk only moves bytes between iovecs and storage.
 */
#ifndef FORKVM_DEVICES_DISK_H
#define FORKVM_DEVICES_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct disk;

struct disk_config {
	const char *path;
	bool readonly;
	uint64_t latency_ns; /* each request completes no earlier than this after submit (tests, demo) */
};

enum disk_op {
	DISK_READ,
	DISK_WRITE,
	DISK_FLUSH,
};

/**
 * struct disk_io - one request; the caller owns it until @done runs.
 * @op, @pos (bytes), @iov/@niov: what to do (iov unused for DISK_FLUSH).
 * @done: called exactly once, on the disk's completion thread, with 0 or
 *	-errno (a short read or write past the end is -EIO).
 * @priv: the caller's.
 */
struct disk_io {
	enum disk_op op;
	uint64_t pos;
	const struct iovec *iov;
	unsigned int niov;
	void (*done)(struct disk_io *io, int res);
	void *priv;
};

/** disk_open() - open @cfg->path.  Return: 0 or -errno with @err. */
int disk_open(const struct disk_config *cfg, struct disk **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** disk_size() - the size in bytes (a multiple of 512; a file's tail is cut). */
uint64_t disk_size(const struct disk *d);

bool disk_readonly(const struct disk *d);

/**
 * disk_submit() - start @io.  Return: 0 (then @io->done will be called), or
 * -errno and @io was not started (bad range, read-only, engine failure).
 */
int disk_submit(struct disk *d, struct disk_io *io) __attribute__((warn_unused_result));

/**
 * disk_fork() - a second disk whose contents are @d's at this instant; from
 * now on the writes of each are private.  Requests in flight on @d complete
 * on @d as usual.  Return: 0 or -errno (@d unchanged).
 */
int disk_fork(struct disk *d, struct disk **child) __attribute__((warn_unused_result));

/** disk_inflight() - requests submitted and not yet completed. */
unsigned int disk_inflight(const struct disk *d);

/** disk_engine() - "io_uring" or "threads": what runs this disk's I/O. */
const char *disk_engine(const struct disk *d);

/** disk_close() - wait for the requests in flight, then free; NULL is a no-op. */
void disk_close(struct disk *d);

#endif /* FORKVM_DEVICES_DISK_H */
