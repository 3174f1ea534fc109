// SPDX-License-Identifier: MIT
/*
 * The Linux boot plan without KVM: bzImage validation (every malformed header
 * refused with a message that says what was found), kernel and initrd
 * placement, the zero page, the e820 map around the hole, and the 64-bit
 * entry's GDT and page tables.  Images are synthetic, built here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <criterion/criterion.h>

#include "vmm/linux/board.h"
#include "vmm/linux/linux.h"
#include "vmm/vcpu_state.h"

#define SETUP_SECTS 4
#define KERNEL_BYTES 8192
#define IMG_SIZE ((SETUP_SECTS + 1) * 512 + KERNEL_BYTES)

static uint8_t img[IMG_SIZE];
static struct linux_plan plan;
static char err[512];

static void put(size_t off, uint64_t v, unsigned int n)
{
	memcpy(img + off, &v, n);
}

static uint64_t get(const uint8_t *p, size_t off, unsigned int n)
{
	uint64_t v = 0;

	memcpy(&v, p + off, n);
	return v;
}

/* A bzImage header as Debian 12's 6.1 kernel has it, with a small kernel. */
static void make_image(void)
{
	unsigned int i;

	memset(img, 0, sizeof(img));
	for (i = (SETUP_SECTS + 1) * 512; i < IMG_SIZE; i++)
		img[i] = (uint8_t)(i * 7);
	put(BP_SETUP_SECTS, SETUP_SECTS, 1);
	put(BP_BOOT_FLAG, BOOT_FLAG_MAGIC, 2);
	put(BP_JUMP, 0xeb, 1);
	put(BP_JUMP + 1, 0x6a, 1); /* header ends at 0x26c */
	put(BP_HEADER, HDRS_MAGIC, 4);
	put(BP_VERSION, 0x020f, 2);
	put(BP_LOADFLAGS, LOADED_HIGH, 1);
	put(BP_INITRD_ADDR_MAX, 0x7fffffff, 4);
	put(BP_KERNEL_ALIGNMENT, 0x200000, 4);
	put(BP_RELOCATABLE, 1, 1);
	put(BP_XLOADFLAGS, XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G, 2);
	put(BP_CMDLINE_SIZE, 2047, 4);
	put(BP_PREF_ADDRESS, 0x1000000, 8);
	put(BP_INIT_SIZE, 0x400000, 4);
}

static int check(size_t size)
{
	struct bzimage bz;

	err[0] = '\0';
	return bzimage_check(img, size, &bz, err, sizeof(err));
}

static int plan_for(uint64_t mem, uint64_t initrd_size, const char *cmdline)
{
	struct space_range ram[LINUX_MAX_RANGES];
	struct linux_plan_input in = {
		.image = img,
		.image_size = IMG_SIZE,
		.initrd_size = initrd_size,
		.cmdline = cmdline,
		.ram = ram,
		.acpi_rsdp = LINUX_ACPI,
	};

	in.nram = linux_ram_ranges(mem, ram);
	err[0] = '\0';
	return linux_plan(&in, &plan, err, sizeof(err));
}

TestSuite(linux_image, .init = make_image);

Test(linux_image, a_6_1_style_header_is_accepted_with_its_fields)
{
	struct bzimage bz;

	cr_assert_eq(bzimage_check(img, IMG_SIZE, &bz, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(bz.version, 0x020f);
	cr_assert_eq(bz.setup_size, (SETUP_SECTS + 1) * 512);
	cr_assert_eq(bz.kernel_offset, (SETUP_SECTS + 1) * 512);
	cr_assert_eq(bz.kernel_size, KERNEL_BYTES);
	cr_assert_eq(bz.pref_address, 0x1000000);
	cr_assert_eq(bz.init_size, 0x400000);
	cr_assert_eq(bz.header_end, 0x26c);
	cr_assert(bz.relocatable);
}

Test(linux_image, a_file_without_hdrs_is_refused_as_bad_magic)
{
	put(BP_HEADER, 0x12345678, 4);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "not a bzImage") && strstr(err, "bad magic"), "%s", err);
}

Test(linux_image, a_vmlinux_elf_is_refused_naming_vmlinuz)
{
	memcpy(img,
	       "\x7f"
	       "ELF",
	       4);
	put(BP_HEADER, 0, 4);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "ELF") && strstr(err, "vmlinuz"), "%s", err);
}

Test(linux_image, a_bad_boot_flag_is_refused)
{
	put(BP_BOOT_FLAG, 0x1234, 2);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "0x1234"), "%s", err);
}

Test(linux_image, protocol_2_06_is_too_old_and_the_message_says_both_versions)
{
	put(BP_VERSION, 0x0206, 2);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "2.06") && strstr(err, "2.12"), "%s", err);
}

Test(linux_image, protocol_2_12_is_the_oldest_accepted)
{
	put(BP_VERSION, 0x020b, 2);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	put(BP_VERSION, 0x020c, 2);
	cr_assert_eq(check(IMG_SIZE), 0, "%s", err);
}

Test(linux_image, a_kernel_without_64_bit_entry_is_refused)
{
	put(BP_XLOADFLAGS, XLF_CAN_BE_LOADED_ABOVE_4G, 2);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "64-bit entry"), "%s", err);
}

Test(linux_image, a_zimage_loaded_low_is_refused)
{
	put(BP_LOADFLAGS, 0, 1);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "zImage"), "%s", err);
}

Test(linux_image, a_file_cut_inside_the_setup_is_truncated)
{
	cr_assert_eq(check((SETUP_SECTS + 1) * 512), -ENOEXEC);
	cr_assert(strstr(err, "truncated"), "%s", err);
	cr_assert_eq(check(700), -ENOEXEC);
	cr_assert(strstr(err, "truncated"), "%s", err);
	cr_assert_eq(check(100), -ENOEXEC);
	cr_assert(strstr(err, "too short"), "%s", err);
	cr_assert_eq(check(0), -ENOEXEC);
}

Test(linux_image, setup_sects_zero_means_four)
{
	put(BP_SETUP_SECTS, 0, 1);
	cr_assert_eq(check(IMG_SIZE), 0, "%s", err);
	put(BP_SETUP_SECTS, 200, 1); /* 100 KiB of setup: past the end of the file */
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "truncated"), "%s", err);
}

Test(linux_image, a_header_that_ends_past_the_setup_is_refused)
{
	put(BP_JUMP + 1, 0x00, 1); /* ends at 0x202, before init_size */
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "setup header ends"), "%s", err);
}

Test(linux_image, alignment_address_and_init_size_are_checked)
{
	put(BP_KERNEL_ALIGNMENT, 0x300000, 4);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "kernel_alignment"), "%s", err);
	make_image();
	put(BP_PREF_ADDRESS, 0x1001000, 8); /* not 2 MiB aligned */
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "preferred load address"), "%s", err);
	put(BP_PREF_ADDRESS, 0xffffffff00000000ULL, 8);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	make_image();
	put(BP_INIT_SIZE, KERNEL_BYTES - 1, 4);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
	cr_assert(strstr(err, "init_size"), "%s", err);
	put(BP_INIT_SIZE, 0xffffffff, 4);
	cr_assert_eq(check(IMG_SIZE), -ENOEXEC);
}

Test(linux_image, every_truncation_and_byte_flip_is_refused_or_accepted_without_crash)
{
	size_t n, off;

	/* ASan/UBSan builds catch a read outside the buffer. */
	for (n = 0; n < IMG_SIZE; n += 97) {
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, img, n);
		if (n <= (SETUP_SECTS + 1) * 512)
			cr_assert_neq(bzimage_check(copy, n, &plan.bz, err, sizeof(err)), 0);
		free(copy);
	}
	for (off = 0x1f1; off < 0x270; off++) {
		uint8_t save = img[off];

		img[off] ^= 0xff;
		(void)check(IMG_SIZE);
		img[off] = save;
	}
}

TestSuite(linux_plan, .init = make_image);

Test(linux_plan, kernel_goes_to_its_preferred_address_and_enters_at_0x200)
{
	cr_assert_eq(plan_for(256 << 20, 0, "console=ttyS0"), 0, "%s", err);
	cr_assert_eq(plan.kernel_gpa, 0x1000000);
	cr_assert_eq(plan.entry, 0x1000200);
	cr_assert_eq(plan.initrd_size, 0);
	cr_assert_eq(plan.cmdline_len, strlen("console=ttyS0"));
}

Test(linux_plan, the_zero_page_carries_the_header_and_our_fields)
{
	const uint8_t *zp = plan.zero_page;

	cr_assert_eq(plan_for(256 << 20, 3 << 20, "x"), 0, "%s", err);
	/* The image's setup header, byte for byte, then our fields over it. */
	cr_assert_eq(get(zp, BP_HEADER, 4), HDRS_MAGIC);
	cr_assert_eq(get(zp, BP_VERSION, 2), 0x020f);
	cr_assert_eq(get(zp, BP_INIT_SIZE, 4), 0x400000);
	cr_assert_eq(get(zp, BP_TYPE_OF_LOADER, 1), LOADER_UNDEFINED);
	cr_assert_eq(get(zp, BP_CMD_LINE_PTR, 4), LINUX_CMDLINE);
	cr_assert_eq(get(zp, BP_RAMDISK_IMAGE, 4), plan.initrd_gpa);
	cr_assert_eq(get(zp, BP_RAMDISK_SIZE, 4), 3 << 20);
	cr_assert_eq(get(zp, BP_ACPI_RSDP_ADDR, 8), LINUX_ACPI);
	cr_assert_eq(get(zp, BP_SENTINEL, 1), 0);
	cr_assert_eq(get(zp, BP_E820_ENTRIES, 1), 4);
	/* Nothing of the image outside the header (0x26c..) leaks in. */
	cr_assert_eq(get(zp, 0x26c, 4), 0);
}

Test(linux_plan, the_initrd_sits_page_aligned_at_the_top_below_initrd_addr_max)
{
	cr_assert_eq(plan_for(256 << 20, (3 << 20) + 5, NULL), 0, "%s", err);
	cr_assert_eq(plan.initrd_gpa % 4096, 0);
	cr_assert_leq(plan.initrd_gpa + plan.initrd_size, 256 << 20);
	cr_assert_gt(plan.initrd_gpa + plan.initrd_size + 4096, 256 << 20);
	cr_assert_geq(plan.initrd_gpa, plan.kernel_gpa + 0x400000);

	/* A kernel that takes initrds only below 64 MiB. */
	put(BP_INITRD_ADDR_MAX, (64 << 20) - 1, 4);
	cr_assert_eq(plan_for(256 << 20, 1 << 20, NULL), 0, "%s", err);
	cr_assert_eq(plan.initrd_gpa + (1 << 20), 64 << 20);
}

Test(linux_plan, a_kernel_too_big_for_mem_is_refused_naming_mem)
{
	put(BP_INIT_SIZE, 0x3f98000, 4); /* Debian 6.1's: ~64 MiB */
	cr_assert_eq(plan_for(64 << 20, 0, NULL), -E2BIG);
	cr_assert(strstr(err, "too big for --mem") && strstr(err, "80 MiB"), "%s", err);
	cr_assert_eq(plan_for(96 << 20, 0, NULL), 0, "%s", err);
}

Test(linux_plan, an_initrd_that_does_not_fit_is_refused)
{
	cr_assert_eq(plan_for(32 << 20, 13 << 20, NULL), -E2BIG);
	cr_assert(strstr(err, "initrd") && strstr(err, "--mem"), "%s", err);
	cr_assert_eq(plan_for(32 << 20, 12 << 20, NULL), 0, "%s", err);
	cr_assert_eq(plan_for(4ULL << 30, 2ULL << 30, NULL), -E2BIG);
}

Test(linux_plan, a_command_line_longer_than_the_kernel_takes_is_refused)
{
	char *line = malloc(4096);

	memset(line, 'a', 2047);
	line[2047] = '\0';
	cr_assert_eq(plan_for(256 << 20, 0, line), 0, "%s", err);
	line[2047] = 'a';
	line[2048] = '\0';
	cr_assert_eq(plan_for(256 << 20, 0, line), -E2BIG);
	cr_assert(strstr(err, "2048 bytes") && strstr(err, "2047"), "%s", err);
	free(line);
}

Test(linux_plan, a_bad_image_fails_the_plan_with_enoexec)
{
	put(BP_HEADER, 0, 4);
	cr_assert_eq(plan_for(256 << 20, 0, NULL), -ENOEXEC);
}

TestSuite(linux_e820);

static void e820_entry(const uint8_t *zp, unsigned int i, uint64_t *addr, uint64_t *size,
		       uint32_t *type)
{
	size_t off = BP_E820_TABLE + (size_t)i * E820_ENTRY_SIZE;

	*addr = get(zp, off, 8);
	*size = get(zp, off + 8, 8);
	*type = (uint32_t)get(zp, off + 16, 4);
}

Test(linux_e820, ram_up_to_3g_is_one_range_and_more_goes_above_4g)
{
	struct space_range r[LINUX_MAX_RANGES];

	cr_assert_eq(linux_ram_ranges(256 << 20, r), 1);
	cr_assert_eq(r[0].gpa, 0);
	cr_assert_eq(r[0].size, 256 << 20);
	cr_assert_eq(linux_ram_ranges(3ULL << 30, r), 1);
	cr_assert_eq(linux_ram_ranges((3ULL << 30) + 4096, r), 2);
	cr_assert_eq(r[0].size, 3ULL << 30);
	cr_assert_eq(r[1].gpa, 4ULL << 30);
	cr_assert_eq(r[1].size, 4096);
}

Test(linux_e820, the_map_reserves_the_bios_area_and_keeps_every_ram_byte_else)
{
	static uint8_t zp[BP_SIZE];
	uint64_t mem = 6ULL << 30, ram = 0, addr, size, prev_end = 0;
	struct space_range r[LINUX_MAX_RANGES];
	unsigned int n, i, nr;
	uint32_t type;

	nr = linux_ram_ranges(mem, r);
	n = linux_e820(r, nr, zp);
	cr_assert_eq(n, 5);
	cr_assert_eq(zp[BP_E820_ENTRIES], 5);
	for (i = 0; i < n; i++) {
		e820_entry(zp, i, &addr, &size, &type);
		cr_assert_geq(addr, prev_end, "entry %u overlaps", i);
		prev_end = addr + size;
		if (type == E820_RAM)
			ram += size;
		/* Nothing in the hole: virtio, IOAPIC, LAPIC live there. */
		cr_assert(addr + size <= LINUX_HOLE_START || addr >= LINUX_HIGH_START);
	}
	e820_entry(zp, 0, &addr, &size, &type);
	cr_assert(addr == 0 && size == LINUX_EBDA && type == E820_RAM);
	e820_entry(zp, 2, &addr, &size, &type);
	cr_assert(addr == LINUX_ACPI && addr + size == 0x100000 && type == E820_RESERVED);
	e820_entry(zp, 4, &addr, &size, &type);
	cr_assert(addr == LINUX_HIGH_START && size == 3ULL << 30 && type == E820_RAM);
	/* All RAM but the EBDA..1 MiB gap. */
	cr_assert_eq(ram, mem - (0x100000 - LINUX_EBDA));
}

TestSuite(linux_low);

Test(linux_low, page_tables_map_4g_identity_and_the_gdt_has_the_boot_selectors)
{
	static uint8_t low[LINUX_LOW_END];
	uint64_t cs, ds, pte;
	unsigned int i;

	linux_build_low(low);
	cr_assert_eq(get(low, LINUX_PML4, 8) & ~0xfffULL, LINUX_PDPT);
	for (i = 0; i < 4; i++)
		cr_assert_eq(get(low, LINUX_PDPT + i * 8, 8) & ~0xfffULL, LINUX_PD + i * 0x1000);
	for (i = 0; i < 2048; i++) {
		pte = get(low, LINUX_PD + i * 8, 8);
		cr_assert_eq(pte & ~0x1fffffULL, (uint64_t)i << 21);
		cr_assert_eq(pte & 0x83, 0x83, "present, writable, 2 MiB");
	}
	cs = get(low, LINUX_GDT + LINUX_SEL_CS, 8);
	ds = get(low, LINUX_GDT + LINUX_SEL_DS, 8);
	cr_assert(cs & (1ULL << 53), "CS is a 64-bit (L) segment");
	cr_assert(cs & (1ULL << 47), "CS present");
	cr_assert_eq((cs >> 45) & 3, 0, "CS DPL 0");
	cr_assert_eq((cs >> 43) & 1, 1, "CS executable");
	cr_assert_eq((ds >> 43) & 1, 0, "DS data");
	cr_assert_eq((ds >> 41) & 1, 1, "DS writable");
	cr_assert_eq(get(low, LINUX_GDT, 8), 0);
}

TestSuite(linux_state);

Test(linux_state, a_paused_linux_vcpu_is_in_long_mode_or_an_ap_waiting_for_sipi)
{
	static struct vcpu_state st;
	char msg[256];

	memset(&st, 0, sizeof(st));
	st.index = 0;
	st.nmsrs = 10;
	st.sregs.efer = 0x500; /* LME | LMA */
	st.sregs.cr0 = 0x80050033;
	cr_assert_eq(linux_board_check_state(&st, msg, sizeof(msg)), 0, "%s", msg);
	/* An AP Linux has not started (nosmp, or early in the boot). */
	memset(&st, 0, sizeof(st));
	st.index = 1;
	st.mp_state.mp_state = KVM_MP_STATE_UNINITIALIZED;
	cr_assert_eq(linux_board_check_state(&st, msg, sizeof(msg)), 0, "%s", msg);
	/* The BSP in real mode is no Linux of ours: we enter in long mode. */
	st.index = 0;
	cr_assert_eq(linux_board_check_state(&st, msg, sizeof(msg)), -EPROTO);
	cr_assert(strstr(msg, "vCPU 0 paused outside long mode"), "%s", msg);
	/* Long mode without its MSRs saved. */
	st.sregs.efer = 0x500;
	st.sregs.cr0 = 0x80050033;
	st.nmsrs = 0;
	cr_assert_eq(linux_board_check_state(&st, msg, sizeof(msg)), -EPROTO);
	cr_assert(strstr(msg, "no MSRs"), "%s", msg);
}
