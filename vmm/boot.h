/* SPDX-License-Identifier: MIT */
/*
 * The test guest's boot protocol (docs/boot-protocol.md), the VMM's half:
 * GDT, TSS, IDT, ring-0 exception stubs and identity page tables in low guest
 * memory, and the 64-bit CPL-3 entry state of every vCPU.
 */
#ifndef FORKVM_VMM_BOOT_H
#define FORKVM_VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct space;
struct vcpu;

/**
 * boot_write_tables() - write the GDT, TSS, IDT, stubs and page tables into
 * @space (before any vCPU runs).  Return: 0 or -errno.
 */
int boot_write_tables(struct space *space) __attribute__((warn_unused_result));

/** boot_build_tables() - the same bytes into @low (the first 64 KiB of RAM). */
void boot_build_tables(uint8_t *low, size_t len);

struct boot_entry {
	uint64_t rip;
	uint64_t fdt_gpa;
	unsigned int ncpus;
};

/**
 * boot_setup_vcpu() - put @v in 64-bit long mode at CPL 3 (CS 0x1b, SS 0x23,
 * RFLAGS 0x3002) at @e->rip with RDI = FDT, RSI = index, RDX = ncpus, and
 * runnable (APs too: no INIT/SIPI).  Return: 0 or -errno; @err says which step.
 */
int boot_setup_vcpu(struct vcpu *v, const struct boot_entry *e, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_BOOT_H */
