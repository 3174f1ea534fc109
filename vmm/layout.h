/* SPDX-License-Identifier: MIT */
/* The test guest's physical layout: docs/boot-protocol.md, in constants. */
#ifndef FORKVM_VMM_LAYOUT_H
#define FORKVM_VMM_LAYOUT_H

#define LAYOUT_GDT 0x1000ULL
#define LAYOUT_TSS 0x1080ULL
#define LAYOUT_IDT 0x2000ULL
#define LAYOUT_STUBS 0x3000ULL
#define LAYOUT_STACK0_TOP 0x5000ULL /* TSS.RSP0: the ring-0 stack for exceptions */
#define LAYOUT_PML4 0x8000ULL
#define LAYOUT_PDPT 0x9000ULL
#define LAYOUT_PD 0xa000ULL /* four PDs: 0xa000-0xdfff, 4 GiB in 2 MiB pages */
#define LAYOUT_PD_SPARE 0xe000ULL
#define LAYOUT_FDT 0x10000ULL
#define LAYOUT_FDT_MAX 0x10000ULL
#define LAYOUT_IMAGE_MIN 0x100000ULL /* PT_LOAD segments start here or above */

#define LAYOUT_MEM_MIN (16ULL << 20)
#define LAYOUT_MEM_MAX (3ULL << 30) /* the test guest's RAM stays below the MMIO hole */
/* Linux: up to 3 GiB at 0, the rest from 4 GiB (vmm/linux/plan.c). */
#define LAYOUT_LINUX_MEM_MAX (64ULL << 30)

#define LAYOUT_VIRTIO_BASE 0xd0000000ULL
#define LAYOUT_VIRTIO_STRIDE 0x1000ULL
#define LAYOUT_VIRTIO_GSI0 5
#define LAYOUT_MAX_DISKS 8

/* Selectors (GDT indexes 1..6). */
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UCODE 0x1b
#define SEL_UDATA 0x23
#define SEL_TSS 0x28

#endif /* FORKVM_VMM_LAYOUT_H */
