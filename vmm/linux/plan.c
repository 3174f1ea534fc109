// SPDX-License-Identifier: MIT
/*
 * Where a Linux guest's pieces go: RAM ranges around the hole, the e820 map,
 * kernel and initrd placement, the zero page, and the 64-bit entry's GDT and
 * page tables.  Plain computation: no KVM, no guest memory.
 */
#include "vmm/linux/linux.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_A 0x20ULL
#define PTE_D 0x40ULL
#define PTE_PS 0x80ULL

static void put16(uint8_t *p, size_t off, uint16_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static void put32(uint8_t *p, size_t off, uint32_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

static void put64(uint8_t *p, size_t off, uint64_t v)
{
	memcpy(p + off, &v, sizeof(v));
}

unsigned int linux_ram_ranges(uint64_t mem_size, struct space_range ranges[LINUX_MAX_RANGES])
{
	if (mem_size <= LINUX_HOLE_START) {
		ranges[0] = (struct space_range){ .gpa = 0, .size = mem_size };
		return 1;
	}
	ranges[0] = (struct space_range){ .gpa = 0, .size = LINUX_HOLE_START };
	ranges[1] =
	    (struct space_range){ .gpa = LINUX_HIGH_START, .size = mem_size - LINUX_HOLE_START };
	return 2;
}

static void e820_put(uint8_t *zp, unsigned int *n, uint64_t addr, uint64_t size, uint32_t type)
{
	size_t off = BP_E820_TABLE + (size_t)*n * E820_ENTRY_SIZE;

	if (!size || *n == BP_E820_MAX)
		return;
	put64(zp, off, addr);
	put64(zp, off + 8, size);
	put32(zp, off + 16, type);
	(*n)++;
}

unsigned int linux_e820(const struct space_range *ram, unsigned int nram, uint8_t *zero_page)
{
	unsigned int n = 0, i;

	for (i = 0; i < nram; i++) {
		uint64_t start = ram[i].gpa, end = ram[i].gpa + ram[i].size;

		if (start < 0x100000) {
			/* Low RAM up to the EBDA; the BIOS area holds our ACPI tables. */
			e820_put(zero_page, &n, start,
				 (end < LINUX_EBDA ? end : LINUX_EBDA) - start, E820_RAM);
			if (end <= 0x100000)
				continue;
			e820_put(zero_page, &n, LINUX_EBDA, 0xa0000 - LINUX_EBDA, E820_RESERVED);
			e820_put(zero_page, &n, LINUX_ACPI, 0x100000 - LINUX_ACPI, E820_RESERVED);
			start = 0x100000;
		}
		e820_put(zero_page, &n, start, end - start, E820_RAM);
	}
	zero_page[BP_E820_ENTRIES] = (uint8_t)n;
	return n;
}

/* The end of the RAM range that holds GPA 0, the only one the kernel and initrd use. */
static uint64_t low_ram_end(const struct space_range *ram, unsigned int nram)
{
	unsigned int i;

	for (i = 0; i < nram; i++) {
		if (ram[i].gpa == 0)
			return ram[i].size < LINUX_HOLE_START ? ram[i].size : LINUX_HOLE_START;
	}
	return 0;
}

static int place_initrd(const struct linux_plan_input *in, struct linux_plan *out, uint64_t top,
			char *err, size_t errlen)
{
	uint64_t lim = (uint64_t)out->bz.initrd_addr_max + 1, kernel_end, size = in->initrd_size;
	uint64_t gpa;

	if (!size)
		return 0;
	if (size > LINUX_MAX_INITRD) {
		snprintf(err, errlen, "initrd: %llu MiB is more than the %llu MiB forkvm accepts",
			 (unsigned long long)(size >> 20), LINUX_MAX_INITRD >> 20);
		return -E2BIG;
	}
	if (lim < top)
		top = lim;
	kernel_end = out->kernel_gpa + out->bz.init_size;
	/* At the top of low RAM, page aligned, above everything the kernel unpacks into. */
	if (top < size || ((top - size) & ~4095ULL) < kernel_end) {
		snprintf(err, errlen,
			 "initrd of %llu KiB does not fit between the kernel's end (%llu MiB: "
			 "load address + init_size) and %llu MiB: give more --mem",
			 (unsigned long long)(size >> 10), (unsigned long long)(kernel_end >> 20),
			 (unsigned long long)(top >> 20));
		return -E2BIG;
	}
	gpa = (top - size) & ~4095ULL;
	out->initrd_gpa = gpa;
	out->initrd_size = size;
	return 0;
}

int linux_plan(const struct linux_plan_input *in, struct linux_plan *out, char *err, size_t errlen)
{
	uint64_t top = low_ram_end(in->ram, in->nram), need;
	uint8_t *zp = out->zero_page;
	const uint8_t *img = in->image;
	size_t len;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = bzimage_check(in->image, in->image_size, &out->bz, err, errlen);
	if (ret)
		return ret;
	out->kernel_gpa = out->bz.pref_address;
	out->entry = out->kernel_gpa + BZ_ENTRY64_OFFSET;
	/* The decompressor works in init_size bytes from the load address. */
	need = out->kernel_gpa + out->bz.init_size;
	if (need > top) {
		snprintf(err, errlen,
			 "kernel image: too big for --mem: it needs RAM up to %llu MiB (load "
			 "address %llu MiB + init_size %llu MiB), the guest has %llu MiB below "
			 "the hole",
			 (unsigned long long)((need + (1 << 20) - 1) >> 20),
			 (unsigned long long)(out->kernel_gpa >> 20),
			 (unsigned long long)(out->bz.init_size >> 20),
			 (unsigned long long)(top >> 20));
		return -E2BIG;
	}
	ret = place_initrd(in, out, top, err, errlen);
	if (ret)
		return ret;
	len = in->cmdline ? strlen(in->cmdline) : 0;
	if (len > out->bz.cmdline_size || len >= LINUX_CMDLINE_MAX) {
		snprintf(err, errlen, "--cmdline: %zu bytes, the kernel takes at most %u", len,
			 out->bz.cmdline_size);
		return -E2BIG;
	}
	out->cmdline_len = len;

	/* The zero page: the image's setup header at its own offsets, then ours. */
	memcpy(zp + BP_SETUP_SECTS, img + BP_SETUP_SECTS, out->bz.header_end - BP_SETUP_SECTS);
	zp[BP_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	zp[BP_LOADFLAGS] = (uint8_t)((out->bz.loadflags | CAN_USE_HEAP) & ~KEEP_SEGMENTS);
	put16(zp, BP_HEAP_END_PTR, 0xfe00);
	put32(zp, BP_CODE32_START, (uint32_t)out->kernel_gpa);
	put32(zp, BP_CMD_LINE_PTR, (uint32_t)LINUX_CMDLINE);
	put32(zp, BP_EXT_CMD_LINE_PTR, 0);
	put32(zp, BP_RAMDISK_IMAGE, (uint32_t)out->initrd_gpa);
	put32(zp, BP_EXT_RAMDISK_IMAGE, (uint32_t)(out->initrd_gpa >> 32));
	put32(zp, BP_RAMDISK_SIZE, (uint32_t)out->initrd_size);
	put32(zp, BP_EXT_RAMDISK_SIZE, (uint32_t)(out->initrd_size >> 32));
	put32(zp, BP_HARDWARE_SUBARCH, 0); /* a PC */
	put64(zp, BP_ACPI_RSDP_ADDR, in->acpi_rsdp);
	linux_e820(in->ram, in->nram, zp);
	return 0;
}

static uint64_t seg_desc(uint8_t access, uint8_t flags)
{
	/* Base 0, limit 0xfffff pages. */
	return 0xffffULL | (uint64_t)access << 40 | 0xfULL << 48 | (uint64_t)flags << 52;
}

void linux_build_low(uint8_t *low)
{
	const uint64_t table = PTE_P | PTE_RW | PTE_A;
	uint64_t tss = LINUX_TSS, limit = 0x67;
	unsigned int i;

	memset(low, 0, LINUX_LOW_END);
	/* boot.rst, 64-bit protocol: __BOOT_CS 0x10 execute/read, __BOOT_DS 0x18 read/write. */
	put64(low, LINUX_GDT + LINUX_SEL_CS, seg_desc(0x9b, 0xa)); /* present, DPL 0, L */
	put64(low, LINUX_GDT + LINUX_SEL_DS, seg_desc(0x93, 0xc)); /* present, DPL 0, G DB */
	/* A busy 64-bit TSS: VMX refuses to enter long mode with an unusable TR. */
	put64(low, LINUX_GDT + LINUX_SEL_TSS,
	      (limit & 0xffff) | (tss & 0xffffff) << 16 | 0x8bULL << 40 |
		  ((limit >> 16) & 0xf) << 48 | ((tss >> 24) & 0xff) << 56);
	put64(low, LINUX_GDT + LINUX_SEL_TSS + 8, tss >> 32);

	put64(low, LINUX_PML4, LINUX_PDPT | table);
	for (i = 0; i < 4; i++)
		put64(low, LINUX_PDPT + i * 8, (LINUX_PD + i * 0x1000) | table);
	/* 4 GiB identity in 2 MiB pages: kernel, zero page, command line, initrd. */
	for (i = 0; i < 4 * 512; i++)
		put64(low, LINUX_PD + i * 8, ((uint64_t)i << 21) | table | PTE_D | PTE_PS);
}
