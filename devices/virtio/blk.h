/* SPDX-License-Identifier: MIT */
/* virtio-blk on a backing file, requests executed on an I/O thread. */
#ifndef FORKVM_DEVICES_VIRTIO_BLK_H
#define FORKVM_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>

struct virtio_dev;

struct virtio_blk_config {
	const char *path;
	bool readonly;
};

/** virtio_blk_create() - Return: 0 or -errno (the file cannot be opened, ...). */
int virtio_blk_create(const struct virtio_blk_config *cfg, struct virtio_dev **out)
    __attribute__((warn_unused_result));

#endif /* FORKVM_DEVICES_VIRTIO_BLK_H */
