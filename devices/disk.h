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
 *
 * Engines: io_uring (liburing) when io_uring_queue_init() works, else a pool
 * of worker threads; FORKVM_DISK_ENGINE=io_uring|threads forces one (then a
 * failure to start it fails disk_open()).  disk_engine() says which runs.
 * A child of disk_fork() runs its parent's engine (unless forced, the worker
 * pool if its own ring cannot be made).
 *
 * Fork: before the first fork a disk is its file.  disk_fork() freezes the
 * handle's current top layer (the file, at the first fork: it is never
 * written again) and gives parent and child each a new empty overlay (a
 * sparse unlinked file next to the image, else in $TMPDIR or /tmp) over it;
 * reads take each 4 KiB block from the topmost layer holding it.  So after
 * a fork nobody's writes reach the image file: they live in the overlays and
 * go away with the last handle.  A write already started at the fork lands
 * in the layer that was the top then, which both sides now share: the
 * parent sees it, the child may or may not (the VMM re-executes the child's
 * in-flight requests with the same data, so both agree).  With latency_ns a
 * request is started latency_ns after its submission, so one submitted just
 * before a fork has not started yet: it acts on the parent's new top only.
 * DISK_FLUSH syncs the image file (writes made before the first fork);
 * overlays are never synced, since they do not outlive the process.
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
	/* Each request completes no earlier than this after submit (tests, demo):
	 * it is held back before its data moves, as on a slow device. */
	uint64_t latency_ns;
	/* Open the file read-only and put the disk's writes in an overlay from
	 * the start (as after a fork): the file is never written (a snapshot's
	 * disk, restored).  Ignored with @readonly. */
	bool overlay;
};

enum disk_op {
	DISK_READ,
	DISK_WRITE,
	DISK_FLUSH,
};

/**
 * struct disk_io - one request; the caller owns it until @done runs.
 * @op, @pos (bytes), @iov/@niov: what to do (iov unused for DISK_FLUSH).
 * @done: called exactly once, on the disk's completion thread (never inside
 *	disk_submit()), with 0 or -errno (a short read or write past the end
 *	is -EIO).  It may submit more requests.  Requests in flight together
 *	complete in any order; overlapping writes in flight together leave
 *	either one's data.
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

/**
 * disk_open() - open @cfg->path (a regular file or a block device; a
 * directory is -EISDIR).  A size that is not a multiple of 512 is cut to one,
 * with a line on stderr.  Return: 0 or -errno with @err (may be NULL).
 */
int disk_open(const struct disk_config *cfg, struct disk **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** disk_size() - the size in bytes (a multiple of 512; a file's tail is cut). */
uint64_t disk_size(const struct disk *d);

bool disk_readonly(const struct disk *d);

/**
 * disk_submit() - start @io.  Return: 0 (then @io->done will be called), or
 * -errno and @io was not started: -EINVAL for a range past the end, iov
 * lengths whose total overflows, more than 1024 iovecs or an unknown op;
 * -EROFS for a write to a read-only disk; -ENOMEM or an engine's error.
 * A flush of a read-only disk completes with 0.
 */
int disk_submit(struct disk *d, struct disk_io *io) __attribute__((warn_unused_result));

/**
 * disk_fork() - a second disk whose contents are @d's at this instant; from
 * now on the writes of each are private.  Requests in flight on @d complete
 * on @d as usual.  Return: 0 or -errno (@d unchanged).
 */
int disk_fork(struct disk *d, struct disk **child) __attribute__((warn_unused_result));

/**
 * disk_fold() - undo a fork's overlay: if @d's top is an overlay right over
 * its image file and nothing else uses that file any more (its forks
 * closed, no request from before the fork in flight), copy the overlay's
 * blocks into the file and make the file the top again, so that @d's
 * writes reach the image as before the fork.  Writes wait meanwhile;
 * reads go on.  Never for a file opened with disk_config.overlay or
 * read-only.  Return: 0; -EBUSY when it does not apply (nothing changed);
 * or -errno of the copy (the overlay stays, the file may hold some of its
 * blocks, which equal the overlay's).
 */
int disk_fold(struct disk *d) __attribute__((warn_unused_result));

/**
 * disk_layers() - the layers a read may look through: 1 before any fork (the
 * file), 2 after the first, then one more for each fork of a handle that
 * wrote since its last fork (a fork of one that did not adds none).
 */
unsigned int disk_layers(struct disk *d);

/** disk_inflight() - requests submitted whose @done has not returned yet. */
unsigned int disk_inflight(const struct disk *d);

/** disk_latency_ns() - the disk_config.latency_ns it was opened with. */
uint64_t disk_latency_ns(const struct disk *d);

/**
 * disk_export() - write @d's contents as of now into @fd at the same
 * offsets, synchronously: every 4 KiB block that is not all zeros (the rest
 * stays whatever @fd holds there: holes in a fresh sparse file).  Meant for
 * a handle nobody writes (a disk_fork() child kept for the purpose, or a
 * disk whose guest is paused): a write in flight may or may not be seen.
 * Return: 0 with *@blocks the blocks written, or -errno.
 */
int disk_export(struct disk *d, int fd, uint64_t *blocks) __attribute__((warn_unused_result));

/** disk_engine() - "io_uring" or "threads": what runs this disk's I/O. */
const char *disk_engine(const struct disk *d);

/**
 * disk_close() - wait for the requests in flight, then free; NULL is a no-op.
 * Layers shared with forks stay until their last handle closes; parent and
 * children may close in any order.
 */
void disk_close(struct disk *d);

#endif /* FORKVM_DEVICES_DISK_H */
