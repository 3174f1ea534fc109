// SPDX-License-Identifier: MIT
/* Wiring a virtio-blk disk: backing file, mm-backed guest memory, MMIO transport. */
#include "vmm/disks.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/machine.h"

#if __has_include("devices/mm_guest_mem.h")
#define HAVE_VIRTIO_BLK 1
#include "devices/mm_guest_mem.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#endif

#ifdef HAVE_VIRTIO_BLK
#error "wire the devices engineer's API here"
#else
int disk_create(const struct machine_disk *d, uint64_t base, unsigned int gsi,
		struct space *space, const struct dev_host *host, struct disk_dev *out, char *err,
		size_t errlen)
{
	snprintf(err, errlen, "--disk %s: virtio-blk is not built in yet", d->path);
	return -ENOTSUP;
}
#endif
