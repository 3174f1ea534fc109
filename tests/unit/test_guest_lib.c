// SPDX-License-Identifier: MIT
/*
 * Host unit tests for the pure-C parts of the freestanding test guest:
 * printf formatting, the data patterns, the split-virtqueue builder, the
 * virtio-blk driver's transfer limit and asynchronous bookkeeping (a ring
 * in host memory, the test playing the device) and the device-tree reader
 * (against FDTs built here with libfdt, as the VMM does).
 * The guest's .c files are compiled in directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>
#include <libfdt.h>

#include "guest/test/fmt.c"
#include "guest/test/machine.c"
#include "guest/test/pattern.h"
#include "guest/test/virtio_blk.c"
#include "guest/test/vring.c"

/* ---- fmt ------------------------------------------------------------------ */

#define CHECK_FMT(...)                                                \
	do {                                                          \
		char got[128], want[128];                             \
		int n1 = fmt_snprintf(got, sizeof(got), __VA_ARGS__); \
		int n2 = snprintf(want, sizeof(want), __VA_ARGS__);   \
		cr_assert_str_eq(got, want);                          \
		cr_assert_eq(n1, n2);                                 \
	} while (0)

Test(guest_fmt, conversions_match_libc)
{
	CHECK_FMT("plain text");
	CHECK_FMT("%s|%5s|%-5s|", "ab", "ab", "ab");
	CHECK_FMT("%d %d %d %i", 0, -1, 2147483647, -2147483647 - 1);
	CHECK_FMT("%u %u", 0u, 4294967295u);
	CHECK_FMT("%x %X %08x %-8x|", 0xdeadbeefu, 0xabcu, 0x1fu, 0x1fu);
	CHECK_FMT("%lx %llx %lu %ld", 0xffffffffffffffffUL, 0x123456789abcdefULL, 1UL << 63, -5L);
	CHECK_FMT("%016lx %5d %-5d| %05d", 0x42UL, 42, 42, -42);
	CHECK_FMT("%c%c %% %zu", 'o', 'k', (size_t)77);
	CHECK_FMT("%*d|%-*d|", 6, 7, 6, 7);
	CHECK_FMT("%p %p", (void *)0x1000, (void *)0xffff800000000000UL);
}

Test(guest_fmt, snprintf_truncates_and_reports_full_length)
{
	char buf[8];

	cr_assert_eq(fmt_snprintf(buf, sizeof(buf), "0123456789"), 10);
	cr_assert_str_eq(buf, "0123456");
	cr_assert_eq(fmt_snprintf(buf, 1, "abc"), 3);
	cr_assert_str_eq(buf, "");
}

/* Without the format attribute: formats gcc would (rightly) refuse at compile time. */
static void unchecked_format(char *buf, size_t size, const char *fmt, ...)
{
	struct sn_buf b = { buf, size, 0 };
	va_list ap;

	va_start(ap, fmt);
	fmt_vformat(sn_out, &b, fmt, ap);
	va_end(ap);
	buf[b.pos < size ? b.pos : size - 1] = '\0';
}

Test(guest_fmt, null_string_and_unknown_conversion_are_printed_safely)
{
	char buf[32];

	unchecked_format(buf, sizeof(buf), "%s", (const char *)NULL);
	cr_assert_str_eq(buf, "(null)");
	unchecked_format(buf, sizeof(buf), "a%qb");
	cr_assert_str_eq(buf, "a%qb");
}

/* ---- patterns --------------------------------------------------------------- */

Test(guest_pattern, splitmix64_matches_the_reference_sequence)
{
	/* The reference splitmix64 generator seeded with 0: its first outputs. */
	cr_assert_eq(disk_pattern_splitmix64(0), 0xe220a8397b1dcdafULL);
	cr_assert_eq(disk_pattern_splitmix64(0x9e3779b97f4a7c15ULL), 0x6e789e6aa1b965f4ULL);
}

Test(guest_pattern, disk_word_is_splitmix_of_offset_xor_seed)
{
	cr_assert_eq(disk_word(0, DISK_SEED_READ), disk_pattern_splitmix64(0x666f726b766dULL));
	cr_assert_eq(disk_word(4096, DISK_SEED_WRITE),
		     disk_pattern_splitmix64(4096 ^ 0x777269746521ULL));
	cr_assert_neq(disk_word(8, DISK_SEED_READ), disk_word(16, DISK_SEED_READ));
}

Test(guest_pattern, mem_word_differs_per_address_and_pass)
{
	cr_assert_neq(mem_word(0x200000, 0), mem_word(0x200008, 0));
	cr_assert_neq(mem_word(0x200000, 0), mem_word(0x200000, 1));
	cr_assert_eq(fold32(0x1234567800000000ULL | 0x9abcdef0), 0x12345678u ^ 0x9abcdef0u);
}

/* ---- vring ------------------------------------------------------------------ */

static uint8_t ring_mem_host[3 * 4096] __attribute__((aligned(4096)));

/* Play the device: complete the next available chain with @len. */
static uint16_t device_complete(struct vring *vr, uint16_t *dev_last_avail, uint32_t len)
{
	uint16_t head = vr->avail->ring[*dev_last_avail % vr->size];
	uint16_t u = vr->used->idx;

	vr->used->ring[u % vr->size].id = head;
	vr->used->ring[u % vr->size].len = len;
	vr->used->idx = u + 1;
	(*dev_last_avail)++;
	return head;
}

Test(guest_vring, layout_follows_the_split_ring_format)
{
	struct vring vr;

	cr_assert_eq(vring_init(&vr, ring_mem_host, 64), 0);
	cr_assert_eq((uint8_t *)vr.avail - ring_mem_host, 64 * 16);
	/* avail is 6 + 2 * 64 bytes; used is 4-byte aligned after it */
	cr_assert_eq((uint8_t *)vr.used - ring_mem_host, 1160);
	cr_assert_eq(vring_mem_size(64), 4096);
	cr_assert_eq(vring_mem_size(256), 2 * 4096);
	cr_assert_eq(vr.num_free, 64);
	cr_assert_eq(vring_init(&vr, ring_mem_host, 48), -1);
	cr_assert_eq(vring_init(&vr, ring_mem_host, 0), -1);
	cr_assert_eq(vring_init(&vr, ring_mem_host, 512), -1);
}

Test(guest_vring, add_chain_links_descriptors_with_directions)
{
	struct vring vr;
	struct vring_buf bufs[3] = {
		{ 0x1000, 16, false },
		{ 0x2000, 512, true },
		{ 0x3000, 1, true },
	};
	int head;
	uint16_t i;

	vring_init(&vr, ring_mem_host, 16);
	head = vring_add_chain(&vr, bufs, 3);
	cr_assert_eq(head, 0);
	cr_assert_eq(vr.avail->idx, 1);
	cr_assert_eq(vr.avail->ring[0], 0);
	i = (uint16_t)head;
	cr_assert_eq(vr.desc[i].addr, 0x1000);
	cr_assert_eq(vr.desc[i].len, 16);
	cr_assert_eq(vr.desc[i].flags, VRING_DESC_F_NEXT);
	i = vr.desc[i].next;
	cr_assert_eq(vr.desc[i].addr, 0x2000);
	cr_assert_eq(vr.desc[i].flags, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE);
	i = vr.desc[i].next;
	cr_assert_eq(vr.desc[i].addr, 0x3000);
	cr_assert_eq(vr.desc[i].flags, VRING_DESC_F_WRITE);
	cr_assert_eq(vr.num_free, 13);
}

Test(guest_vring, used_elements_are_consumed_once_and_chains_freed)
{
	struct vring vr;
	struct vring_buf b[2] = { { 0x1000, 16, false }, { 0x3000, 1, true } };
	uint16_t dev_last = 0;
	uint32_t id, len;
	int head;

	vring_init(&vr, ring_mem_host, 4);
	cr_assert_not(vring_get_used(&vr, &id, &len));
	head = vring_add_chain(&vr, b, 2);
	cr_assert_eq(vring_add_chain(&vr, b, 2), 2);
	cr_assert_eq(vring_add_chain(&vr, b, 1), -1, "only 4 descriptors");
	device_complete(&vr, &dev_last, 1);
	cr_assert(vring_get_used(&vr, &id, &len));
	cr_assert_eq(id, (uint32_t)head);
	cr_assert_eq(len, 1);
	cr_assert_not(vring_get_used(&vr, &id, &len));
	cr_assert_eq(vring_free_chain(&vr, (uint16_t)id), 0);
	cr_assert_eq(vr.num_free, 2);
	cr_assert_geq(vring_add_chain(&vr, b, 2), 0);
}

Test(guest_vring, indexes_wrap_around_16_bits)
{
	struct vring vr;
	struct vring_buf b[3] = { { 0x1000, 16, false }, { 0x2000, 8, true }, { 0x3000, 1, true } };
	uint16_t dev_last = 0;
	uint32_t id, len, k;
	int head;

	vring_init(&vr, ring_mem_host, 8);
	for (k = 0; k < 70000; k++) {
		head = vring_add_chain(&vr, b, 1 + k % 3);
		cr_assert_geq(head, 0);
		cr_assert_eq(device_complete(&vr, &dev_last, k), head);
		cr_assert(vring_get_used(&vr, &id, &len));
		cr_assert_eq(id, (uint32_t)head);
		cr_assert_eq(len, k);
		cr_assert_eq(vring_free_chain(&vr, (uint16_t)id), 0);
	}
	cr_assert_eq(vr.avail->idx, (uint16_t)70000);
	cr_assert_eq(vr.num_free, 8);
}

Test(guest_vring, free_chain_refuses_a_loop_or_bad_head)
{
	struct vring vr;

	vring_init(&vr, ring_mem_host, 4);
	vr.desc[0].flags = VRING_DESC_F_NEXT;
	vr.desc[0].next = 1;
	vr.desc[1].flags = VRING_DESC_F_NEXT;
	vr.desc[1].next = 0;
	cr_assert_eq(vring_free_chain(&vr, 0), -1);
	cr_assert_eq(vring_free_chain(&vr, 4), -1);
	vring_reset_free(&vr);
	cr_assert_eq(vr.num_free, 4);
}

/* ---- machine (device tree) --------------------------------------------------- */

struct fdt_opts {
	const char *workload;
	const char *args;
	int ncpus;
	int nvirtio;
	bool no_chosen;
	bool no_free;
};

/* A device tree laid out as docs/boot-protocol.md says, built as the VMM does. */
static void *make_fdt(const struct fdt_opts *o)
{
	size_t size = 16384;
	void *fdt = malloc(size);
	char name[64];
	int i;

	cr_assert(fdt);
	cr_assert_eq(fdt_create(fdt, size), 0);
	cr_assert_eq(fdt_finish_reservemap(fdt), 0);
	cr_assert_eq(fdt_begin_node(fdt, ""), 0);
	fdt_property_u32(fdt, "#address-cells", 2);
	fdt_property_u32(fdt, "#size-cells", 2);
	fdt_property_string(fdt, "compatible", "forkvm,test");
	if (!o->no_chosen) {
		fdt_begin_node(fdt, "chosen");
		if (o->workload)
			fdt_property_string(fdt, "forkvm,workload", o->workload);
		fdt_property_string(fdt, "forkvm,args", o->args ? o->args : "");
		if (!o->no_free) {
			fdt32_t fm[4] = { cpu_to_fdt32(0), cpu_to_fdt32(0x300000), cpu_to_fdt32(0),
					  cpu_to_fdt32(0x7d00000) };

			fdt_property(fdt, "forkvm,free-memory", fm, sizeof(fm));
		}
		fdt_property_string(fdt, "stdout-path", "/uart@3f8");
		fdt_end_node(fdt);
	}
	fdt_begin_node(fdt, "memory@0");
	fdt_property_string(fdt, "device_type", "memory");
	{
		fdt32_t reg[4] = { 0, 0, 0, cpu_to_fdt32(0x8000000) };

		fdt_property(fdt, "reg", reg, sizeof(reg));
	}
	fdt_end_node(fdt);
	fdt_begin_node(fdt, "cpus");
	fdt_property_u32(fdt, "#address-cells", 1);
	fdt_property_u32(fdt, "#size-cells", 0);
	for (i = 0; i < o->ncpus; i++) {
		snprintf(name, sizeof(name), "cpu@%d", i);
		fdt_begin_node(fdt, name);
		fdt_property_string(fdt, "device_type", "cpu");
		fdt_property_u32(fdt, "reg", i);
		fdt_end_node(fdt);
	}
	fdt_end_node(fdt);
	fdt_begin_node(fdt, "uart@2f8");
	fdt_property_string(fdt, "compatible", "ns16550a");
	{
		fdt32_t reg[4] = { 0, cpu_to_fdt32(0x2f8), 0, cpu_to_fdt32(8) };

		fdt_property(fdt, "reg", reg, sizeof(reg));
	}
	fdt_property(fdt, "forkvm,io-port", NULL, 0);
	fdt_property_u32(fdt, "interrupts", 3);
	fdt_end_node(fdt);
	for (i = 0; i < o->nvirtio; i++) {
		uint64_t base = 0xd0000000ULL + 0x1000ULL * i;
		fdt32_t reg[4] = { cpu_to_fdt32(base >> 32), cpu_to_fdt32((uint32_t)base), 0,
				   cpu_to_fdt32(0x1000) };

		snprintf(name, sizeof(name), "virtio_mmio@%llx", (unsigned long long)base);
		fdt_begin_node(fdt, name);
		fdt_property_string(fdt, "compatible", "virtio,mmio");
		fdt_property(fdt, "reg", reg, sizeof(reg));
		fdt_property_u32(fdt, "interrupts", 5 + i);
		fdt_end_node(fdt);
	}
	cr_assert_eq(fdt_end_node(fdt), 0);
	cr_assert_eq(fdt_finish(fdt), 0);
	return fdt;
}

Test(guest_machine, reads_everything_the_boot_protocol_puts_in_the_fdt)
{
	struct fdt_opts o = {
		.workload = "memcheck", .args = "passes=3", .ncpus = 3, .nvirtio = 2
	};
	void *fdt = make_fdt(&o);
	struct machine m;
	char err[128] = "";

	cr_assert_eq(machine_from_fdt(fdt, &m, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(m.workload, "memcheck");
	cr_assert_str_eq(m.args, "passes=3");
	cr_assert_eq(m.free_start, 0x300000);
	cr_assert_eq(m.free_size, 0x7d00000);
	cr_assert_eq(m.mem_size, 0x8000000);
	cr_assert_eq(m.ncpus, 3);
	cr_assert_eq(m.uart_port, 0x2f8);
	cr_assert_eq(m.nvirtio, 2);
	cr_assert_eq(m.virtio[0].base, 0xd0000000ULL);
	cr_assert_eq(m.virtio[0].size, 0x1000);
	cr_assert_eq(m.virtio[0].irq, 5);
	cr_assert_eq(m.virtio[1].base, 0xd0001000ULL);
	cr_assert_eq(m.virtio[1].irq, 6);
	free(fdt);
}

Test(guest_machine, missing_pieces_are_errors_with_a_message)
{
	struct fdt_opts no_chosen = { .no_chosen = true, .ncpus = 1 };
	struct fdt_opts no_workload = { .ncpus = 1 };
	struct fdt_opts no_free = { .workload = "hello", .no_free = true, .ncpus = 1 };
	struct fdt_opts no_cpus = { .workload = "hello", .ncpus = 0 };
	struct fdt_opts *bad[] = { &no_chosen, &no_workload, &no_free, &no_cpus };
	struct machine m;
	char err[128];
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *fdt = make_fdt(bad[i]);

		err[0] = '\0';
		cr_assert_lt(machine_from_fdt(fdt, &m, err, sizeof(err)), 0, "case %u", i);
		cr_assert_neq(err[0], '\0', "case %u has no message", i);
		free(fdt);
	}
}

Test(guest_machine, garbage_is_not_a_device_tree)
{
	static uint32_t junk[64] = { 0xdeadbeef };
	struct machine m;
	char err[128];

	cr_assert_lt(machine_from_fdt(junk, &m, err, sizeof(err)), 0);
	cr_assert(strstr(err, "FDT"));
}

Test(guest_machine, args_are_key_value_words)
{
	uint64_t v = 7;

	cr_assert_eq(args_get_u64("", "passes", &v), 0);
	cr_assert_eq(v, 7);
	cr_assert_eq(args_get_u64("passes=3", "passes", &v), 1);
	cr_assert_eq(v, 3);
	cr_assert_eq(args_get_u64("iters=0x10,passes=12", "passes", &v), 1);
	cr_assert_eq(v, 12);
	cr_assert_eq(args_get_u64("iters=0x10 passes=12", "iters", &v), 1);
	cr_assert_eq(v, 16);
	cr_assert_eq(args_get_u64("size=4M", "size", &v), 1);
	cr_assert_eq(v, 4 << 20);
	cr_assert_eq(args_get_u64("xpasses=3", "passes", &v), 0);
	cr_assert_eq(args_get_u64("passes=abc", "passes", &v), -1);
	cr_assert_eq(args_get_u64("passes=3x", "passes", &v), -1);
}

/* ---- virtio-blk driver: limits the device gives ------------------------- */

Test(guest_vblk, max_transfer_follows_size_max_and_seg_max)
{
	struct vblk b = { .vr.size = 64 };

	cr_expect_eq(vblk_max_transfer(&b, 64 * 1024), 64 * 1024);
	b.size_max = 4096;
	b.seg_max = 4;
	cr_expect_eq(vblk_max_transfer(&b, 64 * 1024), 16 * 1024);
	/* Whole sectors only. */
	b.size_max = 700;
	b.seg_max = 1;
	cr_expect_eq(vblk_max_transfer(&b, 64 * 1024), 512);
}

Test(guest_vblk, max_transfer_is_zero_when_the_device_leaves_no_room_for_a_sector)
{
	struct vblk b = { .vr.size = 2 };

	/* Queue of 1 or 2: header and status take every descriptor. */
	cr_expect_eq(vblk_max_transfer(&b, 64 * 1024), 0);
	b.vr.size = 1;
	cr_expect_eq(vblk_max_transfer(&b, 64 * 1024), 0);
	/* size_max below a sector. */
	b.vr.size = 64;
	b.size_max = 100;
	b.seg_max = 1;
	cr_expect_eq(vblk_max_transfer(&b, 64 * 1024), 0);
}

/* ---- virtio-blk driver: asynchronous requests ----------------------------- */

/* A driver over a ring in host memory (nothing here touches MMIO). */
static void vblk_host(struct vblk *b, uint16_t size, bool indirect)
{
	memset(b, 0, sizeof(*b));
	b->features =
	    (1ULL << VIRTIO_F_VERSION_1) | (indirect ? 1ULL << VIRTIO_F_INDIRECT_DESC : 0);
	b->capacity = 2048;
	cr_assert_eq(vring_init(&b->vr, ring_mem_host, size), 0);
}

/* Play the device: publish a used element for head @head with @len. */
static void device_used(struct vring *vr, uint16_t head, uint32_t len)
{
	uint16_t u = vr->used->idx;

	vr->used->ring[u % vr->size].id = head;
	vr->used->ring[u % vr->size].len = len;
	vr->used->idx = u + 1;
}

Test(guest_vblk, submit_builds_an_indirect_table_of_header_data_and_status)
{
	static uint8_t data[1024];
	struct vblk b;
	const struct vring_desc *t;
	int tok;

	vblk_host(&b, 64, true);
	tok = vblk_submit(&b, VIRTIO_BLK_T_IN, 6, data, sizeof(data));
	cr_assert_geq(tok, 0);
	cr_assert_eq(b.vr.num_free, 63, "one ring descriptor per request");
	cr_assert_eq(b.vr.desc[b.vr.avail->ring[0]].flags, VRING_DESC_F_INDIRECT);
	cr_assert_eq(b.vr.desc[b.vr.avail->ring[0]].len, 3 * 16);
	t = (const struct vring_desc *)(uintptr_t)b.vr.desc[b.vr.avail->ring[0]].addr;
	cr_assert_eq(t, b.req[tok].ind);
	cr_assert_eq(((uintptr_t)t) % 16, 0);
	cr_assert_eq(t[0].addr, vring_addr(&b.req[tok].hdr));
	cr_assert_eq(t[0].flags, VRING_DESC_F_NEXT);
	cr_assert_eq(t[0].next, 1);
	cr_assert_eq(b.req[tok].hdr.sector, 6);
	cr_assert_eq(t[1].addr, vring_addr(data));
	cr_assert_eq(t[1].len, 1024);
	cr_assert_eq(t[1].flags, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE);
	cr_assert_eq(t[2].addr, vring_addr(&b.req[tok].status));
	cr_assert_eq(t[2].flags, VRING_DESC_F_WRITE);
	cr_assert_eq(vblk_inflight(&b), 1);
	cr_assert_eq(vblk_pending(&b), 1);
}

Test(guest_vblk, a_full_queue_of_requests_is_in_flight_and_reaped_in_completion_order)
{
	static uint8_t data[64][1024];
	struct vblk_done done[64];
	int tok[64], i;
	struct vblk b;

	vblk_host(&b, 64, true);
	cr_assert_eq(vblk_async_max(&b, 1024), 64);
	for (i = 0; i < 64; i++) {
		tok[i] = vblk_submit(&b, VIRTIO_BLK_T_IN, 2 * i, data[i], 1024);
		cr_assert_geq(tok[i], 0);
	}
	cr_assert_eq(vblk_submit(&b, VIRTIO_BLK_T_IN, 0, data[0], 1024), -1, "queue full");
	cr_assert_eq(vblk_pending(&b), 64);
	cr_assert_eq(vblk_reap(&b, done, 64), 0, "nothing completed yet");
	/* The device completes out of order: the last three, then the first. */
	for (i = 63; i >= 61; i--) {
		b.req[tok[i]].status = VIRTIO_BLK_S_OK;
		device_used(&b.vr, b.req[tok[i]].head, 1025);
	}
	b.req[tok[0]].status = VIRTIO_BLK_S_IOERR;
	device_used(&b.vr, b.req[tok[0]].head, 1);
	cr_assert_eq(vblk_pending(&b), 60, "a used element is no longer at the device");
	cr_assert_eq(vblk_inflight(&b), 64, "but in flight for the driver until reaped");
	cr_assert_eq(vblk_reap(&b, done, 2), 2);
	cr_assert_eq(done[0].token, tok[63]);
	cr_assert_eq(done[0].status, VIRTIO_BLK_S_OK);
	cr_assert_eq(done[0].used_len, 1025);
	cr_assert_eq(done[1].token, tok[62]);
	cr_assert_eq(vblk_reap(&b, done, 64), 2);
	cr_assert_eq(done[0].token, tok[61]);
	cr_assert_eq(done[1].token, tok[0]);
	cr_assert_eq(done[1].status, VIRTIO_BLK_S_IOERR);
	cr_assert_eq(vblk_inflight(&b), 60);
	cr_assert_eq(b.vr.num_free, 4);
	/* Freed tokens and descriptors are used again. */
	cr_assert_geq(vblk_submit(&b, VIRTIO_BLK_T_IN, 0, data[0], 1024), 0);
	cr_assert_eq(b.bad_used, 0);
}

Test(guest_vblk, without_indirect_a_request_takes_three_descriptors)
{
	static uint8_t data[1024];
	struct vblk b;
	int i;

	vblk_host(&b, 64, false);
	cr_assert_eq(vblk_async_max(&b, 1024), 21);
	for (i = 0; i < 21; i++)
		cr_assert_geq(vblk_submit(&b, VIRTIO_BLK_T_IN, 0, data, 1024), 0);
	cr_assert_eq(vblk_submit(&b, VIRTIO_BLK_T_IN, 0, data, 1024), -1);
	cr_assert_eq(b.vr.num_free, 1);
	cr_assert_eq(vblk_inflight(&b), 21);
}

Test(guest_vblk, a_used_element_naming_no_request_is_counted_not_reaped)
{
	static uint8_t data[1024];
	struct vblk_done done[4];
	struct vblk b;
	int tok;

	vblk_host(&b, 8, true);
	tok = vblk_submit(&b, VIRTIO_BLK_T_IN, 0, data, 1024);
	device_used(&b.vr, 5, 1025); /* never made available */
	device_used(&b.vr, 200, 1025); /* past the ring */
	device_used(&b.vr, b.req[tok].head, 1025);
	device_used(&b.vr, b.req[tok].head, 1025); /* twice */
	cr_assert_eq(vblk_reap(&b, done, 4), 1);
	cr_assert_eq(done[0].token, tok);
	cr_assert_eq(b.bad_used, 3);
	cr_assert_eq(vblk_inflight(&b), 0);
}
