/* SPDX-License-Identifier: MIT */
/*
 * Booting a stock Linux kernel (docs/linux-guest.md): the bzImage checked as
 * untrusted input, its placement in guest memory, the zero page (boot_params
 * with the e820 map, command line and initrd), the identity page tables and
 * GDT of the 64-bit entry, and the vCPU state there.  Everything but
 * linux_setup_vcpu() is plain computation on buffers, testable without KVM.
 */
#ifndef FORKVM_VMM_LINUX_LINUX_H
#define FORKVM_VMM_LINUX_LINUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm.h"
#include "vmm/linux/bootproto.h"

/* The Linux board's low memory (all below 1 MiB, all in RAM GPA 0..). */
#define LINUX_GDT 0x1000ULL /* null, null, code64 0x10, data 0x18, TSS 0x20 */
#define LINUX_TSS 0x1100ULL
#define LINUX_ZERO_PAGE 0x7000ULL /* boot_params; the entry's RSP is just below */
#define LINUX_PML4 0x9000ULL
#define LINUX_PDPT 0xa000ULL
#define LINUX_PD 0xb000ULL /* four PDs, 0xb000-0xefff: 4 GiB in 2 MiB pages */
#define LINUX_LOW_END 0x10000ULL /* end of what linux_build_low() writes */
#define LINUX_CMDLINE 0x20000ULL
#define LINUX_CMDLINE_MAX 0x10000ULL
#define LINUX_ACPI 0xe0000ULL /* RSDP first: inside the BIOS area Linux scans */
#define LINUX_ACPI_MAX 0x10000ULL
#define LINUX_EBDA 0x9fc00ULL /* low RAM ends here in the e820 map */
#define LINUX_VMGENID 0xf0000ULL /* the 16-byte VM generation ID (reserved) */
#define LINUX_VMGENID_SIZE 16
#define LINUX_GED_GSI 20 /* the Generic Event Device: "a new generation ID" */

/* Boot selectors of the 64-bit protocol: __BOOT_CS and __BOOT_DS. */
#define LINUX_SEL_CS 0x10
#define LINUX_SEL_DS 0x18
#define LINUX_SEL_TSS 0x20

/* RAM around the PCI/MMIO hole: up to 3 GiB at 0, the rest from 4 GiB. */
#define LINUX_HOLE_START 0xc0000000ULL
#define LINUX_HIGH_START 0x100000000ULL
#define LINUX_MAX_RANGES 2 /* = BOARD_MAX_RANGES */

#define LINUX_MAX_IMAGE (256ULL << 20) /* a bzImage larger than this is refused */
#define LINUX_MAX_INITRD (1ULL << 30)
#define LINUX_MIN_VERSION 0x020c /* 2.12: xloadflags, the 64-bit entry */

/* What the setup header of a bzImage says, once checked. */
struct bzimage {
	uint16_t version;
	uint8_t loadflags;
	uint16_t xloadflags;
	bool relocatable;
	uint32_t kernel_alignment;
	uint64_t pref_address;
	uint32_t init_size; /* memory the kernel needs from its load address */
	uint32_t initrd_addr_max; /* highest byte the initrd may occupy */
	uint32_t cmdline_size; /* longest command line, NUL excluded */
	size_t setup_size; /* boot sector + setup sectors: the real-mode part */
	size_t kernel_offset; /* the protected-mode code in the file */
	size_t kernel_size;
	size_t header_end; /* bytes 0x1f1..header_end are the setup header */
};

/**
 * bzimage_check() - validate @size bytes at @data as a bzImage forkvm can
 * enter in 64-bit mode: boot sector flag, "HdrS", protocol >= 2.12 with
 * XLF_KERNEL_64, loaded high, setup sectors inside the file, a sane
 * alignment, preferred address and init_size.  Return: 0 (and @bz) or
 * -ENOEXEC with @err saying what was found and what is needed.
 */
int bzimage_check(const void *data, size_t size, struct bzimage *bz, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * linux_ram_ranges() - the RAM ranges of a guest of @mem_size bytes: one at
 * 0 up to 3 GiB, the rest from 4 GiB (the hole holds virtio, IOAPIC, LAPIC).
 * Return: the number of ranges (1 or 2).
 */
unsigned int linux_ram_ranges(uint64_t mem_size, struct space_range ranges[LINUX_MAX_RANGES]);

/**
 * linux_e820() - the e820 map of @ram into @zero_page: low RAM to the EBDA,
 * the BIOS area (ACPI tables) reserved, RAM from 1 MiB, and high RAM.
 * Return: the number of entries.
 */
unsigned int linux_e820(const struct space_range *ram, unsigned int nram, uint8_t *zero_page);

struct linux_plan_input {
	const void *image; /* the bzImage's bytes */
	size_t image_size;
	uint64_t initrd_size; /* 0: none */
	const char *cmdline;
	const struct space_range *ram;
	unsigned int nram;
	uint64_t acpi_rsdp; /* GPA of the RSDP, 0: none */
};

struct linux_plan {
	struct bzimage bz;
	uint64_t kernel_gpa; /* where the protected-mode code goes */
	uint64_t entry; /* kernel_gpa + 0x200: the 64-bit entry */
	uint64_t initrd_gpa;
	uint64_t initrd_size;
	size_t cmdline_len; /* without the NUL */
	uint8_t zero_page[BP_SIZE];
};

/**
 * linux_plan() - check the image, place kernel and initrd in @in->ram (low
 * RAM, below 4 GiB: the kernel at its preferred address with init_size
 * bytes free after it, the initrd at the top below initrd_addr_max), check
 * the command line against the kernel's limit, and build the zero page.
 * Return: 0 or -ENOEXEC (bad image), -E2BIG (does not fit in RAM, command
 * line too long) with @err.
 */
int linux_plan(const struct linux_plan_input *in, struct linux_plan *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * linux_build_low() - the GDT, TSS and identity page tables (4 GiB in 2 MiB
 * pages) of the 64-bit entry into @low, the first LINUX_LOW_END bytes of RAM.
 */
void linux_build_low(uint8_t *low);

struct vcpu;

/**
 * linux_setup_vcpu() - the boot vCPU in 64-bit mode at @entry, CS/DS the
 * boot selectors, paging on CR3 = LINUX_PML4, RSI = the zero page,
 * interrupts off.  Only the BSP: the APs wait for Linux's INIT/SIPI in the
 * in-kernel LAPIC.  Return: 0 or -errno with @err.
 */
int linux_setup_vcpu(struct vcpu *v, uint64_t entry, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_LINUX_LINUX_H */
