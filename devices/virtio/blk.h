/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk on a devices/disk.h backend: requests run asynchronously, many
 * in flight, each one's buffers pinned until it completes (blk.c).
 */
#ifndef FORKVM_DEVICES_VIRTIO_BLK_H
#define FORKVM_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

struct disk;
struct virtio_dev;

struct virtio_blk_config {
	const char *path;
	bool readonly;
	uint64_t latency_ns; /* each request stays in flight at least this long (tests, demo) */
	/* The GET_ID answer, at most 20 bytes; NULL: the file's base name. */
	const char *id;
	bool overlay; /* disk_config.overlay: the file is never written */
};

/* What virtio_blk_info() tells: the device's configuration and its disk. */
struct virtio_blk_info {
	struct disk *disk; /* the device's; it stays the device's */
	bool readonly;
	uint64_t latency_ns;
	char id[21]; /* the GET_ID answer, NUL-terminated */
};

/*
 * The device type's own saved state, inside struct virtio_mmio_state's
 * dev_state (fixed-width fields, no pointers, no implicit padding).  A
 * restore checks that it describes the device it is loaded into.
 */
#define VIRTIO_BLK_STATE_VERSION 1u

struct virtio_blk_state {
	uint32_t version;
	uint32_t readonly; /* 0 or 1 */
	uint64_t capacity; /* sectors */
	uint64_t features; /* offered */
	char id[20]; /* GET_ID, NUL-padded */
	uint32_t reserved;
};

/** virtio_blk_create() - Return: 0 or -errno (the file cannot be opened, ...). */
int virtio_blk_create(const struct virtio_blk_config *cfg, struct virtio_dev **out)
    __attribute__((warn_unused_result));

/**
 * virtio_blk_fork() - a new blk device with @parent's configuration whose
 * disk is disk_fork() of @parent's at this instant (its contents as of now,
 * its later writes private).  Call it while @parent's transport is held
 * (virtio_mmio_hold), so the disk, the rings and the in-flight set are of
 * one instant; then put *@child behind the clone's transport and restore
 * the parent's saved state into it.  Requests in flight on @parent stay
 * @parent's.  Return: 0 or -errno (@parent unchanged).
 */
int virtio_blk_fork(struct virtio_dev *parent, struct virtio_dev **child)
    __attribute__((warn_unused_result));

/** virtio_blk_info() - @dev's configuration.  Return: 0, -EINVAL if not a blk. */
int virtio_blk_info(struct virtio_dev *dev, struct virtio_blk_info *out)
    __attribute__((warn_unused_result));

/** virtio_blk_engine() - what runs the disk's I/O: "io_uring" or "threads". */
const char *virtio_blk_engine(struct virtio_dev *dev);

#endif /* FORKVM_DEVICES_VIRTIO_BLK_H */
