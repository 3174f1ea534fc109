// SPDX-License-Identifier: MIT
/* Wiring a virtio-blk disk: backing file, mm-backed guest memory, MMIO transport. */
#include "vmm/disks.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/machine.h"

#include <stdlib.h>

#include "devices/mm_guest_mem.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"

/* The guest_mem lives as long as the transport that copied it. */
struct disk {
	struct guest_mem mem;
	struct virtio_mmio *mmio;
};

static void disk_destroy(void *obj)
{
	struct disk *disk = obj;

	virtio_mmio_destroy(disk->mmio);
	free(disk);
}

static void disk_pause(void *obj)
{
	virtio_mmio_pause(((struct disk *)obj)->mmio);
}

static void disk_resume(void *obj)
{
	virtio_mmio_resume(((struct disk *)obj)->mmio);
}

int disk_create(const struct machine_disk *d, uint64_t base, unsigned int gsi, struct space *space,
		const struct dev_host *host, struct disk_dev *out, char *err, size_t errlen)
{
	struct virtio_blk_config cfg = { .path = d->path, .readonly = d->readonly };
	struct virtio_dev *dev;
	struct disk *disk;
	int ret;

	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return -ENOMEM;
	mm_guest_mem_init(&disk->mem, space);
	ret = virtio_blk_create(&cfg, &dev);
	if (ret) {
		snprintf(err, errlen, "--disk %s: %s", d->path, strerror(-ret));
		goto err_free;
	}
	ret = virtio_mmio_create(base, gsi, dev, &disk->mem, host, &disk->mmio);
	if (ret) {
		/* On failure the transport did not take the device. */
		dev->ops->destroy(dev);
		snprintf(err, errlen, "--disk %s: virtio-mmio at 0x%llx: %s", d->path,
			 (unsigned long long)base, strerror(-ret));
		goto err_free;
	}
	out->obj = disk;
	out->destroy = disk_destroy;
	out->pause = disk_pause;
	out->resume = disk_resume;
	out->region = virtio_mmio_region(disk->mmio);
	return 0;

err_free:
	free(disk);
	return ret;
}
