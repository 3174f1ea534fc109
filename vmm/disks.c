// SPDX-License-Identifier: MIT
/* Wiring a virtio-blk disk: backing file, mm-backed guest memory, MMIO transport. */
#include "vmm/disks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/mm_guest_mem.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "vmm/iobus.h"
#include "vmm/machine.h"

/* The guest_mem lives as long as the transport that copied it. */
struct disk {
	struct guest_mem mem;
	struct virtio_mmio *mmio;
	uint64_t base;
	unsigned int gsi;
	char path[256]; /* for messages */
};

static void disk_destroy(void *obj)
{
	struct disk *disk = obj;

	virtio_mmio_destroy(disk->mmio);
	free(disk);
}

static void disk_hold(void *obj)
{
	virtio_mmio_pause(((struct disk *)obj)->mmio);
}

static void disk_release(void *obj)
{
	virtio_mmio_resume(((struct disk *)obj)->mmio);
}

static const struct device_ops disk_ops = {
	.type = "virtio-blk",
	.type_id = DEVICE_VIRTIO_BLK_MMIO,
	.hold = disk_hold,
	.release = disk_release,
	.destroy = disk_destroy,
};

int disk_add(struct machine *m, const struct machine_disk *d, uint64_t base, unsigned int gsi,
	     char *err, size_t errlen)
{
	struct virtio_blk_config cfg = { .path = d->path, .readonly = d->readonly };
	struct bus_region region;
	struct virtio_dev *dev;
	struct disk *disk;
	int ret;

	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return -ENOMEM;
	disk->base = base;
	disk->gsi = gsi;
	snprintf(disk->path, sizeof(disk->path), "%s", d->path);
	mm_guest_mem_init(&disk->mem, m->space);
	ret = virtio_blk_create(&cfg, &dev);
	if (ret) {
		snprintf(err, errlen, "--disk %s: %s", d->path, strerror(-ret));
		goto err_free;
	}
	ret = virtio_mmio_create(base, gsi, dev, &disk->mem, &m->vm.host, &disk->mmio);
	if (ret) {
		/* On failure the transport did not take the device. */
		dev->ops->destroy(dev);
		snprintf(err, errlen, "--disk %s: virtio-mmio at 0x%llx: %s", d->path,
			 (unsigned long long)base, strerror(-ret));
		goto err_free;
	}
	ret = machine_add_device(m, &disk_ops, disk, 0);
	if (ret) {
		snprintf(err, errlen, "--disk %s: too many devices", d->path);
		disk_destroy(disk);
		return ret;
	}
	region = virtio_mmio_region(disk->mmio);
	ret = iobus_add(&m->vm.mmio, &region);
	if (ret)
		snprintf(err, errlen, "--disk %s: MMIO region: %s", d->path, strerror(-ret));
	return ret;

err_free:
	free(disk);
	return ret;
}
