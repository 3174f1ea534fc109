/* SPDX-License-Identifier: MIT */
/*
 * The Linux board: what `forkvm run --kernel` puts into a machine's memory
 * (kernel, initrd, command line, zero page, ACPI tables, page tables) and
 * how its boot vCPU starts.  The machine core (memory, VM, vCPUs, devices)
 * is the same as the test guest's.
 */
#ifndef FORKVM_VMM_LINUX_BOARD_H
#define FORKVM_VMM_LINUX_BOARD_H

#include <stddef.h>
#include <stdint.h>

struct machine;
struct machine_config;
struct vcpu;
struct vcpu_state;

#define LINUX_DEFAULT_CMDLINE "console=ttyS0 reboot=t panic=-1"

/* What `forkvm run --kernel PATH [--initrd PATH] [--cmdline STR]` asks for. */
struct linux_boot {
	const char *kernel; /* a bzImage */
	const char *initrd; /* NULL: none */
	const char *cmdline; /* NULL: LINUX_DEFAULT_CMDLINE */
};

/**
 * linux_board_load() - read @lb->kernel (a bzImage) and @lb->initrd,
 * check them, and write kernel, initrd, command line, zero page, ACPI tables
 * (one LAPIC per vCPU, a virtio-mmio device per disk at the addresses and
 * GSIs the machine gave them) and the entry's page tables into @m's memory;
 * @m->image.entry gets the 64-bit entry point.
 * Return: 0 or -errno with @err (a bad image: -ENOEXEC, too big: -E2BIG).
 */
int linux_board_load(struct machine *m, const struct machine_config *cfg,
		     const struct linux_boot *lb, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * linux_board_setup_vcpu() - vCPU 0 at the 64-bit entry (linux_setup_vcpu());
 * the others are left waiting for INIT/SIPI.  Return: 0 or -errno with @err.
 */
int linux_board_setup_vcpu(struct machine *m, struct vcpu *v, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * linux_board_check_state() - what a paused vCPU of a Linux guest must look
 * like: long mode with paging, or waiting for its SIPI (an AP Linux has
 * not started).  Return: 0 or -EPROTO with @err.
 */
int linux_board_check_state(const struct vcpu_state *st, char *err, size_t errlen);

#endif /* FORKVM_VMM_LINUX_BOARD_H */
