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

/*
 * The guest_mem lives as long as the transport that copied it.  @dev is
 * owned by the transport; kept to fork it (virtio_blk_fork).
 */
struct disk {
	struct guest_mem mem;
	struct virtio_mmio *mmio;
	struct virtio_dev *dev;
	uint64_t base;
	unsigned int gsi;
};

static void disk_destroy(void *obj)
{
	struct disk *disk = obj;

	/* The transport owns the device; a clone not attached yet owns it here. */
	if (disk->mmio)
		virtio_mmio_destroy(disk->mmio);
	else if (disk->dev)
		disk->dev->ops->destroy(disk->dev);
	free(disk);
}

static void disk_hold(void *obj)
{
	virtio_mmio_hold(((struct disk *)obj)->mmio);
}

static void disk_release(void *obj)
{
	virtio_mmio_release(((struct disk *)obj)->mmio);
}

static uint32_t disk_state_size(void *obj)
{
	return sizeof(struct virtio_mmio_state);
}

static int disk_save(void *obj, void *buf, uint32_t size)
{
	if (size != sizeof(struct virtio_mmio_state))
		return -EINVAL;
	return virtio_mmio_save(((struct disk *)obj)->mmio, buf);
}

static void disk_stats(void *obj, struct device_stats *st)
{
	st->inflight = virtio_mmio_inflight(((struct disk *)obj)->mmio);
}

static int attach(struct machine *m, struct disk *disk, struct virtio_dev *dev, char *err,
		  size_t errlen);

/* Held, at the instant: a blk whose disk is the parent's, forked now. */
static int disk_clone(void *obj, struct machine *child, void **child_obj, char *err, size_t errlen)
{
	struct disk *parent = obj, *disk;
	int ret;

	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return -ENOMEM;
	disk->base = parent->base;
	disk->gsi = parent->gsi;
	ret = virtio_blk_fork(parent->dev, &disk->dev);
	if (ret) {
		snprintf(err, errlen, "virtio-blk at 0x%llx: disk fork: %s",
			 (unsigned long long)parent->base, strerror(-ret));
		free(disk);
		return ret;
	}
	*child_obj = disk;
	return 0;
}

/* Parent running: the forked blk behind a transport over the child's memory. */
static int disk_attach(void *obj, struct machine *child, char *err, size_t errlen)
{
	struct disk *disk = obj;

	return attach(child, disk, disk->dev, err, errlen);
}

static int disk_restore(void *obj, const void *buf, uint32_t size, char *err, size_t errlen)
{
	struct disk *disk = obj;

	/* The section's size is untrusted like its contents. */
	if (size != sizeof(struct virtio_mmio_state)) {
		snprintf(err, errlen, "virtio-blk at 0x%llx: state of %u bytes, expected %zu",
			 (unsigned long long)disk->base, size, sizeof(struct virtio_mmio_state));
		return -EINVAL;
	}
	return virtio_mmio_restore(disk->mmio, buf, err, errlen);
}

static const struct device_ops disk_ops = {
	.type = "virtio-blk",
	.type_id = DEVICE_VIRTIO_BLK_MMIO,
	.hold = disk_hold,
	.release = disk_release,
	.state_size = disk_state_size,
	.save = disk_save,
	.clone = disk_clone,
	.attach = disk_attach,
	.restore = disk_restore,
	.stats = disk_stats,
	.destroy = disk_destroy,
};

/*
 * @dev behind a transport at @disk's window, over @m's memory; on @m's MMIO
 * bus.  On failure @dev is destroyed (disk->dev NULL), @disk is the caller's.
 */
static int attach(struct machine *m, struct disk *disk, struct virtio_dev *dev, char *err,
		  size_t errlen)
{
	struct bus_region region;
	int ret;

	mm_guest_mem_init(&disk->mem, m->space);
	ret = virtio_mmio_create(disk->base, disk->gsi, dev, &disk->mem, &m->vm.host, &disk->mmio);
	if (ret) {
		/* On failure the transport did not take the device. */
		dev->ops->destroy(dev);
		disk->dev = NULL;
		disk->mmio = NULL;
		snprintf(err, errlen, "virtio-mmio at 0x%llx: %s", (unsigned long long)disk->base,
			 strerror(-ret));
		return ret;
	}
	disk->dev = dev;
	region = virtio_mmio_region(disk->mmio);
	ret = iobus_add(&m->vm.mmio, &region);
	if (ret) {
		snprintf(err, errlen, "virtio-mmio at 0x%llx: MMIO region: %s",
			 (unsigned long long)disk->base, strerror(-ret));
		virtio_mmio_destroy(disk->mmio);
		disk->mmio = NULL;
		disk->dev = NULL;
	}
	return ret;
}

int disk_add(struct machine *m, const struct machine_disk *d, uint64_t base, unsigned int gsi,
	     char *err, size_t errlen)
{
	struct virtio_blk_config cfg = {
		.path = d->path,
		.readonly = d->readonly,
		.latency_ns = d->latency_ns,
		.id = d->id,
		.overlay = d->overlay,
	};
	struct virtio_dev *dev;
	struct disk *disk;
	char why[256];
	int ret;

	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return -ENOMEM;
	disk->base = base;
	disk->gsi = gsi;
	ret = virtio_blk_create(&cfg, &dev);
	if (ret) {
		snprintf(err, errlen, "--disk %s: %s", d->path, strerror(-ret));
		free(disk);
		return ret;
	}
	ret = attach(m, disk, dev, why, sizeof(why));
	if (ret) {
		snprintf(err, errlen, "--disk %s: %s", d->path, why);
		free(disk);
		return ret;
	}
	ret = machine_add_device(m, &disk_ops, disk, 0);
	if (ret) {
		snprintf(err, errlen, "--disk %s: too many devices", d->path);
		disk_destroy(disk);
	}
	return ret;
}

struct virtio_dev *disk_device_virtio(const struct device *dev)
{
	if (dev->ops != &disk_ops)
		return NULL;
	return ((struct disk *)dev->obj)->dev;
}
