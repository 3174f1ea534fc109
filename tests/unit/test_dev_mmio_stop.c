// SPDX-License-Identifier: MIT
/* virtio_mmio_stop(): what a QueueNotify does once the service thread is gone. */
#include <criterion/criterion.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/virtio.h"
#include "tests/helpers/fake_mem.h"

#define RING 0x1000u
#define HDR 0x10000u
#define DATA 0x20000u
#define STATUS 0x11000u

static void wr(struct bus_region *reg, uint64_t off, uint32_t v)
{
	v = htole32(v);
	reg->write(reg->opaque, off, &v, 4);
}

static uint32_t rd(struct bus_region *reg, uint64_t off)
{
	uint32_t v;

	reg->read(reg->opaque, off, &v, 4);
	return le32toh(v);
}

Test(dev_mmio_stop, notify_after_stop_is_dropped_not_run_on_the_vcpu)
{
	char path[] = "/tmp/forkvm-stop-XXXXXX";
	struct virtio_blk_config cfg = { .path = path };
	struct dev_host host = { 0 }; /* a service thread, no ioeventfd */
	struct virtio_mmio *mmio;
	struct virtio_dev *dev;
	struct fake_mem mem;
	struct fake_vring ring;
	struct bus_region reg;
	uint8_t sector[512] = { 0 };
	int fd = mkstemp(path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, sector, sizeof(sector), 0), 512);
	cr_assert_eq(fake_mem_init(&mem, 0, 1u << 20, true), 0);
	cr_assert_eq(virtio_blk_create(&cfg, &dev), 0);
	cr_assert_eq(virtio_mmio_create(0xd0000000, 5, dev, &mem.gm, &host, &mmio), 0);
	reg = virtio_mmio_region(mmio);
	wr(&reg, 0x070, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(&reg, 0x024, 1);
	wr(&reg, 0x020, 1); /* VERSION_1 (bit 32) */
	wr(&reg, 0x070,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	fake_vring_init(&ring, &mem, 16, RING);
	wr(&reg, 0x038, 16);
	wr(&reg, 0x080, (uint32_t)ring.desc);
	wr(&reg, 0x090, (uint32_t)ring.avail);
	wr(&reg, 0x0a0, (uint32_t)ring.used);
	wr(&reg, 0x044, 1);
	wr(&reg, 0x070, rd(&reg, 0x070) | VIRTIO_CONFIG_S_DRIVER_OK);
	cr_assert(rd(&reg, 0x070) & VIRTIO_CONFIG_S_DRIVER_OK);

	virtio_mmio_stop(mmio);
	fake_vring_desc(&ring, 0, HDR, 16, VRING_DESC_F_NEXT, 1); /* IN, sector 0 */
	fake_vring_desc(&ring, 1, DATA, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	fake_vring_desc(&ring, 2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	fake_vring_publish(&ring, 0);
	wr(&reg, 0x050, 0);
	/* Documented: "Later notifications are lost"; it used to run the
	 * request on the notifying (vCPU) thread. */
	cr_expect_eq(fake_vring_used_idx(&ring), 0);
	cr_expect_eq(mem.pins, 0);

	virtio_mmio_destroy(mmio);
	fake_mem_fini(&mem);
	close(fd);
	unlink(path);
}
