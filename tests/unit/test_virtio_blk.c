// SPDX-License-Identifier: MIT
/* virtio-blk behind the virtio-mmio transport, driven through its registers,
 * over a fake guest memory and a temporary backing file. */
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"
#include "tests/helpers/fake_mem.h"

#define MEM_SIZE (4u << 20)
#define RING_GPA 0x1000u
#define QSIZE 16u
#define HDR 0x10000u
#define STATUS 0x11000u
#define DATA 0x20000u
#define DISK_SECTORS 64u
#define MMIO_BASE 0xd0000000u
#define W VRING_DESC_F_WRITE
#define N VRING_DESC_F_NEXT

/* Register offsets, spelled out again here on purpose (the spec's values). */
#define R_MAGIC 0x000
#define R_VERSION 0x004
#define R_DEVICE_ID 0x008
#define R_DEV_FEATURES 0x010
#define R_DEV_FEATURES_SEL 0x014
#define R_DRV_FEATURES 0x020
#define R_DRV_FEATURES_SEL 0x024
#define R_QUEUE_SEL 0x030
#define R_QUEUE_NUM_MAX 0x034
#define R_QUEUE_NUM 0x038
#define R_QUEUE_READY 0x044
#define R_QUEUE_NOTIFY 0x050
#define R_INT_STATUS 0x060
#define R_INT_ACK 0x064
#define R_STATUS 0x070
#define R_DESC_LO 0x080
#define R_DESC_HI 0x084
#define R_DRIVER_LO 0x090
#define R_DEVICE_LO 0x0a0
#define R_CONFIG 0x100

static struct fake_mem mem;
static struct fake_vring ring;
static struct virtio_mmio *mmio;
static struct bus_region reg;
static char path[] = "/tmp/forkvm-blk-XXXXXX";
static int disk_fd = -1;
static struct virtio_dev *blkdev; /* owned by mmio */
static uint16_t qsize = QSIZE; /* the async suite's queue is deeper */
static uint64_t latency_ns; /* the async suite's disk holds each request */

static uint32_t rd(uint64_t off)
{
	uint32_t v;

	reg.read(reg.opaque, off, &v, 4);
	return le32toh(v);
}

static void wr(uint64_t off, uint32_t v)
{
	v = htole32(v);
	reg.write(reg.opaque, off, &v, 4);
}

/* QueueNotify, then wait for the requests it started to be answered (without
 * a host the MMIO write pops and submits; the disk completes on its thread). */
static void notify(void)
{
	wr(R_QUEUE_NOTIFY, 0);
	cr_assert_eq(virtio_mmio_drain(mmio, 10000), 0, "requests answered within 10 s");
}

static void make_disk(void)
{
	uint8_t sector[512];
	unsigned int i;

	disk_fd = mkstemp(path);
	cr_assert_geq(disk_fd, 0);
	for (i = 0; i < DISK_SECTORS; i++) {
		memset(sector, (int)(i + 1), sizeof(sector));
		cr_assert_eq(pwrite(disk_fd, sector, sizeof(sector), i * 512), 512);
	}
}

static void open_device(bool readonly, const struct dev_host *host)
{
	struct virtio_blk_config cfg = {
		.path = path,
		.readonly = readonly,
		.latency_ns = latency_ns,
	};
	struct virtio_dev *dev;

	cr_assert_eq(virtio_blk_create(&cfg, &dev), 0);
	cr_assert_eq(virtio_mmio_create(MMIO_BASE, 5, dev, &mem.gm, host, &mmio), 0);
	blkdev = dev;
	reg = virtio_mmio_region(mmio);
}

/* The driver's side of initialization (virtio 1.x 3.1.1). */
static void driver_init(uint64_t features)
{
	wr(R_STATUS, 0);
	wr(R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(R_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(R_DRV_FEATURES_SEL, 0);
	wr(R_DRV_FEATURES, (uint32_t)features);
	wr(R_DRV_FEATURES_SEL, 1);
	wr(R_DRV_FEATURES, (uint32_t)(features >> 32));
	wr(R_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
}

static void queue_setup(void)
{
	fake_vring_init(&ring, &mem, qsize, RING_GPA);
	wr(R_QUEUE_SEL, 0);
	wr(R_QUEUE_NUM, qsize);
	wr(R_DESC_LO, (uint32_t)ring.desc);
	wr(R_DESC_HI, 0);
	wr(R_DRIVER_LO, (uint32_t)ring.avail);
	wr(R_DEVICE_LO, (uint32_t)ring.used);
	wr(R_QUEUE_READY, 1);
	wr(R_STATUS, rd(R_STATUS) | VIRTIO_CONFIG_S_DRIVER_OK);
}

#define BASE_FEATURES (1ull << VIRTIO_F_VERSION_1)

static void setup_dev(bool readonly, const struct dev_host *host)
{
	cr_assert_eq(fake_mem_init(&mem, 0, MEM_SIZE, true), 0);
	make_disk();
	open_device(readonly, host);
	driver_init(BASE_FEATURES | (1ull << VIRTIO_RING_F_INDIRECT_DESC));
	cr_assert(rd(R_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	queue_setup();
}

static void setup(void)
{
	qsize = QSIZE;
	latency_ns = 0;
	setup_dev(false, NULL);
}

static void setup_ro(void)
{
	qsize = QSIZE;
	latency_ns = 0;
	setup_dev(true, NULL);
}

static void teardown(void)
{
	virtio_mmio_destroy(mmio);
	cr_expect(fake_mem_pins_released(&mem), "pins %u unpins %u", mem.pins, mem.unpins);
	fake_mem_fini(&mem);
	close(disk_fd);
	unlink(path);
}

/* A request header at HDR. */
static void put_hdr(uint32_t type, uint64_t sector)
{
	uint32_t t = htole32(type), z = 0;
	uint64_t s = htole64(sector);
	uint8_t *p = fake_mem_ptr(&mem, HDR);

	memcpy(p, &t, 4);
	memcpy(p + 4, &z, 4);
	memcpy(p + 8, &s, 8);
}

/* Submit header + data (@data_flags W for device-writable) + status; run. */
static void submit(uint32_t type, uint64_t sector, uint32_t data_len, uint16_t data_flags)
{
	uint16_t head = (uint16_t)(ring.avail_idx * 3 % QSIZE);

	put_hdr(type, sector);
	fake_mem_set_u8(&mem, STATUS, 0xee);
	if (data_len) {
		fake_vring_desc(&ring, head, HDR, 16, N, head + 1);
		fake_vring_desc(&ring, head + 1, DATA, data_len, data_flags | N, head + 2);
		fake_vring_desc(&ring, head + 2, STATUS, 1, W, 0);
	} else {
		fake_vring_desc(&ring, head, HDR, 16, N, head + 1);
		fake_vring_desc(&ring, head + 1, STATUS, 1, W, 0);
	}
	fake_vring_publish(&ring, head);
	notify();
}

static uint32_t last_used_len(void)
{
	uint32_t id, len;

	cr_assert_eq(fake_vring_used_idx(&ring), ring.avail_idx, "every request completed");
	fake_vring_used(&ring, fake_vring_used_idx(&ring) - 1, &id, &len);
	return len;
}

static uint8_t status(void)
{
	return fake_mem_u8(&mem, STATUS);
}

TestSuite(virtio_blk, .init = setup, .fini = teardown);

Test(virtio_blk, mmio_identifies_as_version_2_block_device)
{
	cr_expect_eq(rd(R_MAGIC), 0x74726976);
	cr_expect_eq(rd(R_VERSION), 2);
	cr_expect_eq(rd(R_DEVICE_ID), VIRTIO_ID_BLOCK);
	wr(R_QUEUE_SEL, 0);
	cr_expect_eq(rd(R_QUEUE_NUM_MAX), 256);
	wr(R_QUEUE_SEL, 1);
	cr_expect_eq(rd(R_QUEUE_NUM_MAX), 0, "one queue only");
}

Test(virtio_blk, offers_version_1_and_indirect_and_event_idx)
{
	wr(R_DEV_FEATURES_SEL, 1);
	cr_expect(rd(R_DEV_FEATURES) & (1u << (VIRTIO_F_VERSION_1 - 32)));
	wr(R_DEV_FEATURES_SEL, 0);
	cr_expect(rd(R_DEV_FEATURES) & (1u << VIRTIO_RING_F_INDIRECT_DESC));
	cr_expect(rd(R_DEV_FEATURES) & (1u << VIRTIO_RING_F_EVENT_IDX));
	cr_expect_not(rd(R_DEV_FEATURES) & (1u << 5), "not read-only");
}

Test(virtio_blk, features_without_version_1_are_refused)
{
	driver_init(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	cr_expect_not(rd(R_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
}

Test(virtio_blk, features_not_offered_are_refused)
{
	driver_init(BASE_FEATURES | (1ull << 3));
	cr_expect_not(rd(R_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
}

Test(virtio_blk, config_space_holds_capacity_in_sectors)
{
	uint64_t cap;

	reg.read(reg.opaque, R_CONFIG, &cap, 8);
	cr_expect_eq(le64toh(cap), DISK_SECTORS);
	cr_expect_eq(rd(R_CONFIG), DISK_SECTORS, "32-bit halves work too");
}

Test(virtio_blk, read_copies_disk_sectors_into_guest_memory)
{
	uint8_t *p = fake_mem_ptr(&mem, DATA);

	submit(0, 3, 1024, W);
	cr_expect_eq(status(), 0);
	cr_expect_eq(last_used_len(), 1025);
	cr_expect_eq(p[0], 4);
	cr_expect_eq(p[511], 4);
	cr_expect_eq(p[512], 5);
	cr_expect_eq(p[1023], 5);
	cr_expect_eq(mem.write_pins, mem.pins, "a read pins guest memory for writing");
	cr_expect_gt(mem.pins, 0);
}

Test(virtio_blk, write_stores_guest_data_in_the_file)
{
	uint8_t buf[512];

	memset(fake_mem_ptr(&mem, DATA), 0xab, 512);
	submit(1, 10, 512, 0);
	cr_expect_eq(status(), 0);
	cr_expect_eq(last_used_len(), 1);
	cr_assert_eq(pread(disk_fd, buf, 512, 10 * 512), 512);
	cr_expect_eq(buf[0], 0xab);
	cr_expect_eq(buf[511], 0xab);
	cr_expect_eq(mem.write_pins, 0, "a write pins guest memory read-only");
}

Test(virtio_blk, large_read_spanning_many_pins_is_complete)
{
	uint8_t *p = fake_mem_ptr(&mem, DATA);
	unsigned int i;

	/* The whole 32 KiB disk, page-scattered by the fake pin. */
	submit(0, 0, DISK_SECTORS * 512, W);
	cr_expect_eq(status(), 0);
	for (i = 0; i < DISK_SECTORS; i++)
		cr_expect_eq(p[i * 512 + 100], i + 1, "sector %u", i);
}

Test(virtio_blk, flush_succeeds)
{
	submit(4, 0, 0, 0);
	cr_expect_eq(status(), 0);
	cr_expect_eq(last_used_len(), 1);
}

Test(virtio_blk, get_id_returns_the_20_byte_serial)
{
	char id[21] = { 0 };

	submit(8, 0, 20, W);
	cr_expect_eq(status(), 0);
	cr_expect_eq(last_used_len(), 21);
	memcpy(id, fake_mem_ptr(&mem, DATA), 20);
	cr_expect_str_eq(id, strrchr(path, '/') + 1);
}

Test(virtio_blk, unknown_request_type_gets_unsupp)
{
	submit(77, 0, 512, W);
	cr_expect_eq(status(), 2);
	cr_expect_eq(last_used_len(), 1);
}

Test(virtio_blk, read_past_capacity_gets_ioerr)
{
	submit(0, DISK_SECTORS - 1, 1024, W);
	cr_expect_eq(status(), 1);
}

Test(virtio_blk, sector_overflow_gets_ioerr)
{
	submit(0, UINT64_MAX / 256, 512, W);
	cr_expect_eq(status(), 1);
}

Test(virtio_blk, length_not_a_multiple_of_512_gets_ioerr)
{
	submit(0, 0, 100, W);
	cr_expect_eq(status(), 1);
}

Test(virtio_blk, malformed_chain_gets_ioerr_and_zero_length)
{
	/* Data buffer outside guest memory, valid status descriptor. */
	put_hdr(0, 0);
	fake_mem_set_u8(&mem, STATUS, 0xee);
	fake_vring_desc(&ring, 0, HDR, 16, N, 1);
	fake_vring_desc(&ring, 1, MEM_SIZE + 0x1000, 512, W | N, 2);
	fake_vring_desc(&ring, 2, STATUS, 1, W, 0);
	fake_vring_publish(&ring, 0);
	notify();
	cr_expect_eq(status(), 1);
	cr_expect_eq(last_used_len(), 0);
	cr_expect_eq(mem.pins, 0, "nothing pinned for a malformed chain");
}

Test(virtio_blk, completion_raises_used_buffer_interrupt)
{
	uint64_t before = virtio_mmio_irq_count(mmio);

	submit(4, 0, 0, 0);
	cr_expect_eq(virtio_mmio_irq_count(mmio), before + 1);
	cr_expect_eq(rd(R_INT_STATUS) & 1, 1);
	wr(R_INT_ACK, 1);
	cr_expect_eq(rd(R_INT_STATUS), 0);
}

Test(virtio_blk, notify_of_queue_past_configured_queues_needs_reset)
{
	uint64_t before = virtio_mmio_irq_count(mmio);

	wr(R_QUEUE_NOTIFY, 1);
	cr_expect(rd(R_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_expect_eq(rd(R_INT_STATUS) & 2, 2, "config-change interrupt");
	cr_expect_eq(virtio_mmio_irq_count(mmio), before + 1);
}

Test(virtio_blk, avail_idx_jump_needs_reset_and_queue_is_ignored)
{
	fake_vring_set_avail_idx(&ring, QSIZE + 5);
	wr(R_QUEUE_NOTIFY, 0);
	cr_expect(rd(R_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	fake_vring_set_avail_idx(&ring, 0);
	submit(4, 0, 0, 0);
	cr_expect_eq(fake_vring_used_idx(&ring), 0, "ignored until reset");
	cr_expect_eq(status(), 0xee);
}

Test(virtio_blk, reset_clears_needs_reset_and_queue_works_again)
{
	wr(R_QUEUE_NOTIFY, 3);
	cr_assert(rd(R_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	wr(R_STATUS, 0);
	cr_expect_eq(rd(R_STATUS), 0);
	cr_expect_eq(rd(R_QUEUE_READY), 0);
	driver_init(BASE_FEATURES);
	memset(fake_mem_ptr(&mem, RING_GPA), 0, 0x2000);
	queue_setup();
	submit(4, 0, 0, 0);
	cr_expect_eq(status(), 0);
}

Test(virtio_blk, bad_ring_address_at_queue_ready_needs_reset)
{
	wr(R_STATUS, 0);
	driver_init(BASE_FEATURES);
	wr(R_QUEUE_SEL, 0);
	wr(R_QUEUE_NUM, QSIZE);
	wr(R_DESC_LO, 0);
	wr(R_DESC_HI, 0x10); /* 64 GiB: not guest memory */
	wr(R_DRIVER_LO, 0x2000);
	wr(R_DEVICE_LO, 0x3000);
	wr(R_QUEUE_READY, 1);
	cr_expect(rd(R_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_expect_eq(rd(R_QUEUE_READY), 0);
}

Test(virtio_blk, ring_address_registers_read_back_and_are_frozen_while_ready)
{
	static const uint32_t lo[] = { R_DESC_LO, R_DRIVER_LO, R_DEVICE_LO };
	unsigned int i;

	/* The running queue keeps its layout: writes are ignored. */
	wr(R_DESC_HI, 0x1234);
	cr_expect_eq(rd(R_DESC_LO), (uint32_t)ring.desc);
	cr_expect_eq(rd(R_DESC_HI), 0);
	cr_expect_eq(rd(R_DRIVER_LO), (uint32_t)ring.avail);
	cr_expect_eq(rd(R_DEVICE_LO), (uint32_t)ring.used);
	/* After a reset each half of each address reads back what was written. */
	wr(R_STATUS, 0);
	for (i = 0; i < 3; i++) {
		wr(lo[i], 0xa0000000u + i);
		wr(lo[i] + 4, 0xb0000000u + i);
	}
	for (i = 0; i < 3; i++) {
		cr_expect_eq(rd(lo[i]), 0xa0000000u + i, "register %#x", lo[i]);
		cr_expect_eq(rd(lo[i] + 4), 0xb0000000u + i, "register %#x", lo[i] + 4);
	}
	/* A queue past the configured ones reads 0. */
	wr(R_QUEUE_SEL, 1);
	cr_expect_eq(rd(R_DESC_LO), 0);
}

Test(virtio_blk, narrow_register_access_is_ignored)
{
	uint8_t b = 0;

	reg.read(reg.opaque, R_MAGIC, &b, 1);
	cr_expect_eq(b, 0);
	reg.write(reg.opaque, R_STATUS, &b, 1);
	cr_expect(rd(R_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK, "status not reset by a byte write");
}

Test(virtio_blk, config_access_past_the_end_reads_zero)
{
	cr_expect_eq(rd(R_CONFIG + 0x200), 0);
}

Test(virtio_blk_ro, write_to_readonly_disk_gets_ioerr, .init = setup_ro, .fini = teardown)
{
	uint8_t buf[512];

	memset(fake_mem_ptr(&mem, DATA), 0xab, 512);
	submit(1, 0, 512, 0);
	cr_expect_eq(status(), 1);
	cr_assert_eq(pread(disk_fd, buf, 512, 0), 512);
	cr_expect_eq(buf[0], 1, "the file is unchanged");
}

Test(virtio_blk_ro, readonly_disk_offers_the_ro_feature, .init = setup_ro, .fini = teardown)
{
	wr(R_DEV_FEATURES_SEL, 0);
	cr_expect(rd(R_DEV_FEATURES) & (1u << 5));
}

Test(virtio_blk, indirect_request_is_served)
{
	uint8_t *p = fake_mem_ptr(&mem, DATA);
	uint64_t table = 0x30000;

	put_hdr(0, 9);
	fake_mem_set_u8(&mem, STATUS, 0xee);
	fake_desc(&mem, table, 0, HDR, 16, N, 1);
	fake_desc(&mem, table, 1, DATA, 256, W | N, 2);
	fake_desc(&mem, table, 2, DATA + 0x1000, 256, W | N, 3);
	fake_desc(&mem, table, 3, STATUS, 1, W, 0);
	fake_vring_desc(&ring, 0, table, 4 * 16, VRING_DESC_F_INDIRECT, 0);
	fake_vring_publish(&ring, 0);
	notify();
	cr_expect_eq(status(), 0);
	cr_expect_eq(last_used_len(), 513);
	cr_expect_eq(p[0], 10);
	cr_expect_eq(p[0x1000 + 255], 10);
}

Test(virtio_blk, event_idx_publishes_avail_event_and_honours_used_event)
{
	uint64_t before;

	wr(R_STATUS, 0);
	driver_init(BASE_FEATURES | (1ull << VIRTIO_RING_F_EVENT_IDX));
	memset(fake_mem_ptr(&mem, RING_GPA), 0, 0x2000);
	queue_setup();
	submit(4, 0, 0, 0);
	cr_expect_eq(fake_vring_avail_event(&ring), 1, "driver asked to notify on the next buffer");
	/* Interrupt only when used idx passes 5. */
	fake_vring_set_used_event(&ring, 5);
	before = virtio_mmio_irq_count(mmio);
	submit(4, 0, 0, 0);
	submit(4, 0, 0, 0);
	cr_expect_eq(virtio_mmio_irq_count(mmio), before, "used idx 3 has not passed 5");
}

/* ---- with a host: the service thread, irqfd and ioeventfd --------------- */

static int irq_efd = -1;
static int kick_efd = -1;
static bool accept_ioeventfd;

static int host_irqfd(void *opaque, unsigned int gsi)
{
	return irq_efd;
}

static int host_ioeventfd(void *opaque, uint64_t addr, uint32_t datamatch, int fd)
{
	if (!accept_ioeventfd)
		return -ENOSYS;
	cr_expect_eq(addr, MMIO_BASE + 0x50);
	cr_expect_eq(datamatch, 0);
	kick_efd = fd;
	return 0;
}

static const struct dev_host host = { .irqfd = host_irqfd, .ioeventfd = host_ioeventfd };

static void setup_host(bool accept)
{
	irq_efd = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(irq_efd, 0);
	accept_ioeventfd = accept;
	kick_efd = -1;
	qsize = QSIZE;
	latency_ns = 0;
	setup_dev(false, &host);
}

static void setup_host_noioevent(void)
{
	setup_host(false);
}

static void setup_host_ioevent(void)
{
	setup_host(true);
}

static void teardown_host(void)
{
	teardown();
	close(irq_efd);
}

static void wait_irq(void)
{
	struct pollfd p = { .fd = irq_efd, .events = POLLIN };
	uint64_t v;

	cr_assert_eq(poll(&p, 1, 5000), 1, "interrupt within 5 s");
	cr_assert_eq(read(irq_efd, &v, 8), 8);
}

Test(virtio_blk_host, request_runs_on_the_service_thread_without_ioeventfd,
     .init = setup_host_noioevent, .fini = teardown_host)
{
	cr_expect_eq(virtio_mmio_ioeventfds(mmio), 0);
	submit(0, 2, 512, W);
	wait_irq();
	cr_expect_eq(status(), 0);
	cr_expect_eq(fake_mem_u8(&mem, DATA), 3);
}

Test(virtio_blk_host, ioeventfd_signal_runs_the_queue, .init = setup_host_ioevent,
     .fini = teardown_host)
{
	uint64_t one = 1;
	uint16_t head = 0;

	cr_assert_eq(virtio_mmio_ioeventfds(mmio), 1);
	cr_assert_geq(kick_efd, 0);
	/* What KVM does on the guest's QueueNotify write. */
	put_hdr(0, 5);
	fake_vring_desc(&ring, head, HDR, 16, N, 1);
	fake_vring_desc(&ring, 1, DATA, 512, W | N, 2);
	fake_vring_desc(&ring, 2, STATUS, 1, W, 0);
	fake_vring_publish(&ring, head);
	cr_assert_eq(write(kick_efd, &one, 8), 8);
	wait_irq();
	cr_expect_eq(status(), 0);
	cr_expect_eq(fake_mem_u8(&mem, DATA), 6);
}

Test(virtio_blk_host, hold_defers_kicks_until_release, .init = setup_host_noioevent,
     .fini = teardown_host)
{
	struct pollfd p = { .fd = irq_efd, .events = POLLIN };

	virtio_mmio_hold(mmio);
	submit(0, 7, 512, W);
	cr_expect_eq(poll(&p, 1, 200), 0, "no completion while held");
	cr_expect_eq(fake_vring_used_idx(&ring), 0);
	cr_expect_eq(mem.pins, 0, "held: the chain was not even popped");
	cr_expect_eq(virtio_mmio_inflight(mmio), 0);
	virtio_mmio_release(mmio);
	wait_irq();
	cr_expect_eq(fake_mem_u8(&mem, DATA), 8);
	cr_expect_not(pthread_equal(mem.last_pin_thread, pthread_self()),
		      "the held request ran on the service thread, not the releaser's");
}

/* ---- asynchronous requests: many in flight, hold, save and restore ------- */

#define DEEP_QSIZE 256u
#define NREQ 64u
#define REQ_HDR(i) (0x100000u + 0x100u * (i))
#define REQ_STATUS(i) (0x108000u + (i))
#define REQ_DATA(i) (0x200000u + 0x1000u * (i))
#define REQ_SECTORS 8u /* 4 KiB per read */
#define LATENCY_MS 500u

static void setup_async(void)
{
	qsize = DEEP_QSIZE;
	latency_ns = LATENCY_MS * 1000000ull;
	setup_dev(false, NULL);
}

/* Read request @i (descriptors 3i..3i+2): 4 KiB from sector 8 * (i % 8). */
static void put_read(struct fake_mem *m, struct fake_vring *r, unsigned int i)
{
	uint32_t hdr[4] = { htole32(0), 0, htole32(REQ_SECTORS * (i % 8)), 0 };
	uint16_t d = (uint16_t)(3 * i);

	memcpy(fake_mem_ptr(m, REQ_HDR(i)), hdr, sizeof(hdr));
	fake_mem_set_u8(m, REQ_STATUS(i), 0xee);
	memset(fake_mem_ptr(m, REQ_DATA(i)), 0, REQ_SECTORS * 512);
	fake_desc(m, r->desc, d, REQ_HDR(i), 16, N, d + 1);
	fake_desc(m, r->desc, d + 1, REQ_DATA(i), REQ_SECTORS * 512, W | N, d + 2);
	fake_desc(m, r->desc, d + 2, REQ_STATUS(i), 1, W, 0);
	fake_vring_publish(r, d);
}

/* Does request @i's buffer hold its sectors (sector s is filled with s + 1)? */
static bool read_landed(struct fake_mem *m, unsigned int i)
{
	const uint8_t *p = fake_mem_ptr(m, REQ_DATA(i));
	unsigned int s, j;

	for (s = 0; s < REQ_SECTORS; s++)
		for (j = 0; j < 512; j++)
			if (p[s * 512 + j] != REQ_SECTORS * (i % 8) + s + 1)
				return false;
	return true;
}

/* Every used entry of @r names a distinct read among the first @n, with
 * 4 KiB + the status byte, and that read's status is OK. */
static void expect_all_answered(struct fake_mem *m, struct fake_vring *r, unsigned int n)
{
	bool seen[NREQ] = { false };
	uint32_t id, len;
	unsigned int k;

	cr_assert_eq(fake_vring_used_idx(r), n);
	for (k = 0; k < n; k++) {
		fake_vring_used(r, (uint16_t)k, &id, &len);
		cr_assert(id % 3 == 0 && id / 3 < n, "used id %u", id);
		cr_expect_not(seen[id / 3], "read %u answered twice", id / 3);
		seen[id / 3] = true;
		cr_expect_eq(len, REQ_SECTORS * 512 + 1);
		cr_expect_eq(fake_mem_u8(m, REQ_STATUS(id / 3)), 0, "read %u status", id / 3);
		cr_expect(read_landed(m, id / 3), "read %u has its data", id / 3);
	}
}

TestSuite(virtio_blk_async, .init = setup_async, .fini = teardown, .timeout = 60);

Test(virtio_blk_async, sixty_four_reads_are_in_flight_at_once_and_all_get_their_data)
{
	unsigned int i;

	for (i = 0; i < NREQ; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	/* The notify popped and submitted all 64; each stays LATENCY_MS. */
	cr_expect_eq(virtio_mmio_inflight(mmio), NREQ);
	cr_expect_eq(fake_vring_used_idx(&ring), 0, "nothing answered before the disk");
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	cr_expect_eq(virtio_mmio_inflight(mmio), 0);
	expect_all_answered(&mem, &ring, NREQ);
}

Test(virtio_blk_async, each_read_keeps_its_pin_until_it_completes)
{
	unsigned int i;

	for (i = 0; i < NREQ; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	/* One 4 KiB page per read: one pin each, none released yet. */
	cr_expect_eq(mem.pins, NREQ);
	cr_expect_eq(mem.write_pins, NREQ, "a read pins for the device to write");
	cr_expect_eq(mem.unpins, 0, "pins held while the I/O runs");
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	cr_expect_eq(mem.unpins, NREQ, "every pin released at completion");
}

Test(virtio_blk_async, completions_while_held_are_invisible_until_release)
{
	uint64_t irqs;
	unsigned int i, held, used0, hidden = 0;

	for (i = 0; i < NREQ; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	virtio_mmio_hold(mmio);
	held = virtio_mmio_inflight(mmio);
	cr_assert_gt(held, 0, "a read still in flight at the hold (latency %u ms)", LATENCY_MS);
	used0 = fake_vring_used_idx(&ring);
	irqs = virtio_mmio_irq_count(mmio);
	/* Every I/O finishes while held... */
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	/* ...but nothing of it is published: used idx, status bytes, interrupt. */
	cr_expect_eq(fake_vring_used_idx(&ring), used0);
	cr_expect_eq(virtio_mmio_inflight(mmio), held);
	cr_expect_eq(virtio_mmio_irq_count(mmio), irqs);
	for (i = 0; i < NREQ; i++)
		hidden += fake_mem_u8(&mem, REQ_STATUS(i)) == 0xee;
	cr_expect_eq(hidden, held, "status bytes of the held reads untouched");
	cr_expect_eq(mem.pins - mem.unpins, held, "their pins still held");
	virtio_mmio_release(mmio);
	cr_expect_eq(virtio_mmio_inflight(mmio), 0);
	cr_expect_gt(virtio_mmio_irq_count(mmio), irqs, "release interrupts");
	expect_all_answered(&mem, &ring, NREQ);
	cr_expect(fake_mem_pins_released(&mem));
}

Test(virtio_blk_async, kick_while_held_pops_nothing_until_release)
{
	virtio_mmio_hold(mmio);
	put_read(&mem, &ring, 0);
	wr(R_QUEUE_NOTIFY, 0);
	cr_expect_eq(mem.pins, 0);
	cr_expect_eq(virtio_mmio_inflight(mmio), 0);
	virtio_mmio_release(mmio);
	cr_expect_eq(virtio_mmio_inflight(mmio), 1, "the deferred kick popped it");
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	expect_all_answered(&mem, &ring, 1);
}

Test(virtio_blk_async, reset_waits_for_reads_in_flight_and_answers_none)
{
	unsigned int i;

	for (i = 0; i < 8; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	cr_assert_eq(virtio_mmio_inflight(mmio), 8);
	wr(R_STATUS, 0);
	cr_expect_eq(virtio_mmio_inflight(mmio), 0, "the reset waited for the I/O");
	cr_expect(fake_mem_pins_released(&mem), "pins %u unpins %u", mem.pins, mem.unpins);
	cr_expect_eq(fake_vring_used_idx(&ring), 0, "no used entry after a reset");
	cr_expect_eq(fake_mem_u8(&mem, REQ_STATUS(0)), 0xee, "no status byte either");
}

Test(virtio_blk_async, reset_while_held_drops_the_held_completions_and_their_pins)
{
	unsigned int i;

	for (i = 0; i < 8; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	virtio_mmio_hold(mmio);
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	cr_assert_eq(virtio_mmio_inflight(mmio), 8, "held back, pins held");
	wr(R_STATUS, 0);
	cr_expect_eq(virtio_mmio_inflight(mmio), 0);
	cr_expect(fake_mem_pins_released(&mem), "pins %u unpins %u", mem.pins, mem.unpins);
	virtio_mmio_release(mmio);
	cr_expect_eq(fake_vring_used_idx(&ring), 0, "nothing published at release either");
	cr_expect_eq(fake_mem_u8(&mem, REQ_STATUS(0)), 0xee);
}

Test(virtio_blk_async, queue_disabled_with_reads_in_flight_answers_none_of_them)
{
	unsigned int i;

	for (i = 0; i < 4; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	cr_assert_eq(virtio_mmio_inflight(mmio), 4);
	wr(R_QUEUE_READY, 0);
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	cr_expect_eq(fake_vring_used_idx(&ring), 0, "not into a ring the driver took back");
	cr_expect(fake_mem_pins_released(&mem));
}

Test(virtio_blk_async, destroy_with_reads_in_flight_waits_and_releases_every_pin)
{
	unsigned int i;

	for (i = 0; i < 16; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	cr_assert_eq(virtio_mmio_inflight(mmio), 16);
	virtio_mmio_destroy(mmio);
	cr_expect(fake_mem_pins_released(&mem), "pins %u unpins %u", mem.pins, mem.unpins);
	cr_expect_eq(fake_vring_used_idx(&ring), 0, "a stopped device answers nothing");
	/* teardown destroys again: make that a no-op on a fresh transport. */
	open_device(false, NULL);
}

Test(virtio_blk_async, head_made_available_again_while_in_flight_needs_reset)
{
	put_read(&mem, &ring, 0);
	fake_vring_publish(&ring, 0); /* head 0 again, still in flight */
	wr(R_QUEUE_NOTIFY, 0);
	cr_expect(rd(R_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	cr_expect_eq(virtio_mmio_inflight(mmio), 1);
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
}

/* ---- saved state ---------------------------------------------------------- */

static struct fake_mem cmem; /* the clone's memory: the parent's at the hold */
static struct fake_vring cring;
static struct virtio_mmio *cmmio;

/* A clone of the device, as the VMM makes one: hold, fork the disk and the
 * memory, a fresh transport over the copy. */
static void make_clone(void)
{
	struct virtio_dev *cdev;

	cr_assert_eq(fake_mem_init(&cmem, 0, MEM_SIZE, true), 0);
	memcpy(cmem.buf, mem.buf, MEM_SIZE);
	cring = ring;
	cring.m = &cmem;
	cr_assert_eq(virtio_blk_fork(blkdev, &cdev), 0);
	cr_assert_eq(virtio_mmio_create(MMIO_BASE, 5, cdev, &cmem.gm, NULL, &cmmio), 0);
}

static void drop_clone(void)
{
	virtio_mmio_destroy(cmmio);
	cr_expect(fake_mem_pins_released(&cmem));
	fake_mem_fini(&cmem);
}

Test(virtio_blk_async, save_restore_save_gives_identical_bytes)
{
	struct virtio_mmio_state *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char err[256] = "";
	unsigned int i;

	for (i = 0; i < 8; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	virtio_mmio_hold(mmio);
	cr_assert_eq(virtio_mmio_save(mmio, a), 0);
	cr_assert_gt(a->vq[0].ninflight, 0, "a read in flight at the save");
	make_clone();
	cr_assert_eq(virtio_mmio_restore(cmmio, a, err, sizeof(err)), 0, "%s", err);
	/* The re-executed reads stay in flight LATENCY_MS: held at once, none
	 * can complete into the second state. */
	virtio_mmio_hold(cmmio);
	cr_assert_eq(virtio_mmio_inflight(cmmio), a->vq[0].ninflight,
		     "a re-executed read completed before the hold (latency %u ms)", LATENCY_MS);
	cr_assert_eq(virtio_mmio_save(cmmio, b), 0);
	cr_expect_eq(memcmp(a, b, sizeof(*a)), 0, "save -> restore -> save differs");
	cr_expect_eq(b->vq[0].ninflight, a->vq[0].ninflight);
	virtio_mmio_release(cmmio);
	virtio_mmio_release(mmio);
	cr_assert_eq(virtio_mmio_drain(cmmio, 20000), 0);
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	drop_clone();
	free(a);
	free(b);
}

Test(virtio_blk_async, restore_into_a_transport_that_is_not_fresh_is_refused)
{
	struct virtio_mmio_state *st = calloc(1, sizeof(*st));
	char err[256] = "";

	virtio_mmio_hold(mmio);
	cr_assert_eq(virtio_mmio_save(mmio, st), 0);
	cr_expect_eq(virtio_mmio_restore(mmio, st, err, sizeof(err)), -EBUSY,
		     "a running device (status %#x)", st->status);
	cr_expect(strstr(err, "not fresh"), "%s", err);
	virtio_mmio_release(mmio);
	free(st);
}

Test(virtio_blk_async, save_outside_a_hold_is_refused)
{
	struct virtio_mmio_state *a = calloc(1, sizeof(*a));

	cr_expect_eq(virtio_mmio_save(mmio, a), -EBUSY);
	free(a);
}

Test(virtio_blk_async, restore_reexecutes_reads_in_flight_into_the_clone_memory)
{
	struct virtio_mmio_state *st = calloc(1, sizeof(*st));
	char err[256] = "";
	unsigned int i, n;

	for (i = 0; i < 16; i++)
		put_read(&mem, &ring, i);
	wr(R_QUEUE_NOTIFY, 0);
	virtio_mmio_hold(mmio);
	cr_assert_eq(virtio_mmio_save(mmio, st), 0);
	n = st->vq[0].ninflight;
	cr_assert_eq(n, 16, "all 16 in flight at the hold (latency %u ms)", LATENCY_MS);
	/* The memory fork: the clone's buffers are still empty. */
	make_clone();
	for (i = 0; i < 16; i++)
		cr_assert_not(read_landed(&cmem, i));
	cr_assert_eq(virtio_mmio_restore(cmmio, st, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(virtio_mmio_inflight(cmmio), 16, "re-executed, in flight in the clone");
	virtio_mmio_release(mmio);
	cr_assert_eq(virtio_mmio_drain(cmmio, 20000), 0);
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	/* Each VM got every read answered, into its own memory. */
	expect_all_answered(&cmem, &cring, 16);
	expect_all_answered(&mem, &ring, 16);
	drop_clone();
	free(st);
}

Test(virtio_blk_async, a_chain_published_but_not_popped_at_the_hold_is_served_in_the_clone)
{
	struct virtio_mmio_state *st = calloc(1, sizeof(*st));
	char err[256] = "";

	/* The driver published and kicked; the hold came first: not popped. */
	virtio_mmio_hold(mmio);
	put_read(&mem, &ring, 0);
	wr(R_QUEUE_NOTIFY, 0);
	cr_assert_eq(virtio_mmio_save(mmio, st), 0);
	cr_assert_eq(st->vq[0].ninflight, 0);
	make_clone();
	cr_assert_eq(virtio_mmio_restore(cmmio, st, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(virtio_mmio_drain(cmmio, 20000), 0);
	expect_all_answered(&cmem, &cring, 1);
	virtio_mmio_release(mmio);
	cr_assert_eq(virtio_mmio_drain(mmio, 20000), 0);
	expect_all_answered(&mem, &ring, 1);
	drop_clone();
	free(st);
}

/* A valid state of this (parent) device with a read in flight, held. */
static struct virtio_mmio_state *valid_state(void)
{
	struct virtio_mmio_state *st = calloc(1, sizeof(*st));

	put_read(&mem, &ring, 0);
	put_read(&mem, &ring, 1);
	wr(R_QUEUE_NOTIFY, 0);
	virtio_mmio_hold(mmio);
	cr_assert_eq(virtio_mmio_save(mmio, st), 0);
	cr_assert_eq(st->vq[0].ninflight, 2);
	return st;
}

/* @st must be refused by a fresh clone, which stays fresh, and must name
 * @what in its message. */
static void expect_refused(struct virtio_mmio_state *st, const char *what)
{
	char err[256] = "";

	make_clone();
	cr_expect_eq(virtio_mmio_restore(cmmio, st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, what), "message '%s' does not say '%s'", err, what);
	cr_expect_eq(virtio_mmio_inflight(cmmio), 0, "nothing re-executed");
	reg = virtio_mmio_region(cmmio);
	cr_expect_eq(rd(R_STATUS), 0, "the clone is still fresh");
	reg = virtio_mmio_region(mmio);
	drop_clone();
	virtio_mmio_release(mmio);
	free(st);
}

Test(virtio_blk_async, restore_refuses_a_bad_magic)
{
	struct virtio_mmio_state *st = valid_state();

	st->magic ^= 1;
	expect_refused(st, "magic");
}

Test(virtio_blk_async, restore_refuses_another_version)
{
	struct virtio_mmio_state *st = valid_state();

	st->version = VIRTIO_MMIO_STATE_VERSION + 1;
	expect_refused(st, "version");
}

Test(virtio_blk_async, restore_refuses_another_device_type)
{
	struct virtio_mmio_state *st = valid_state();

	st->device_id = VIRTIO_ID_NET;
	expect_refused(st, "device type");
}

Test(virtio_blk_async, restore_refuses_acked_features_not_offered)
{
	struct virtio_mmio_state *st = valid_state();

	st->acked |= 1ull << 3;
	st->drv_features |= 1ull << 3;
	expect_refused(st, "not a subset");
}

Test(virtio_blk_async, restore_refuses_a_queue_size_not_a_power_of_two)
{
	struct virtio_mmio_state *st = valid_state();

	st->vq[0].num = 200;
	expect_refused(st, "queue size");
}

Test(virtio_blk_async, restore_refuses_a_queue_size_above_the_maximum)
{
	struct virtio_mmio_state *st = valid_state();

	st->vq[0].num = 512;
	expect_refused(st, "queue size");
}

Test(virtio_blk_async, restore_refuses_a_ring_outside_guest_memory)
{
	struct virtio_mmio_state *st = valid_state();

	st->vq[0].used_gpa = MEM_SIZE - 0x100;
	expect_refused(st, "not inside guest memory");
}

Test(virtio_blk_async, restore_refuses_an_inflight_head_past_the_queue)
{
	struct virtio_mmio_state *st = valid_state();

	st->vq[0].inflight[1] = DEEP_QSIZE;
	expect_refused(st, ">= queue size");
}

Test(virtio_blk_async, restore_refuses_a_duplicate_inflight_head)
{
	struct virtio_mmio_state *st = valid_state();

	st->vq[0].inflight[1] = st->vq[0].inflight[0];
	expect_refused(st, "twice");
}

Test(virtio_blk_async, restore_refuses_more_inflight_than_the_queue_holds)
{
	struct virtio_mmio_state *st = valid_state();

	st->vq[0].ninflight = DEEP_QSIZE + 1;
	expect_refused(st, "in flight");
}

Test(virtio_blk_async, restore_refuses_the_state_of_another_disk)
{
	struct virtio_mmio_state *st = valid_state();
	struct virtio_blk_state bs;

	memcpy(&bs, st->dev_state, sizeof(bs));
	bs.capacity++;
	memcpy(st->dev_state, &bs, sizeof(bs));
	expect_refused(st, "not this disk");
}
