// SPDX-License-Identifier: MIT
/* Descriptor tables, exception stubs, page tables and the CPL-3 entry state. */
#include "vmm/boot.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "mm/mm.h"
#include "vmm/cpus.h"
#include "vmm/layout.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define CR4_OSXSAVE (1ULL << 18)
#define EFER_SCE (1ULL << 0)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)

#define PTE_P 0x1ULL
#define PTE_RW 0x2ULL
#define PTE_US 0x4ULL
#define PTE_A 0x20ULL
#define PTE_D 0x40ULL
#define PTE_PS 0x80ULL

#define STUB_SIZE 12 /* push 0 / 2-byte nop, push imm32, jmp rel32 */
#define STUB_COMMON (LAYOUT_STUBS + 256 * STUB_SIZE)

/* The vectors for which the CPU pushes an error code. */
static bool has_error_code(unsigned int vector)
{
	switch (vector) {
	case 8:
	case 10:
	case 11:
	case 12:
	case 13:
	case 14:
	case 17:
	case 21:
	case 29:
	case 30:
		return true;
	default:
		return false;
	}
}

static void put64(uint8_t *low, uint64_t gpa, uint64_t v)
{
	memcpy(low + gpa, &v, sizeof(v));
}

static void put32(uint8_t *low, uint64_t gpa, uint32_t v)
{
	memcpy(low + gpa, &v, sizeof(v));
}

static uint64_t seg_desc(uint8_t access, uint8_t flags)
{
	/* Base 0, limit 0xfffff (ignored in 64-bit mode except for data segments' G/DB). */
	return 0xffffULL | (uint64_t)access << 40 | 0xfULL << 48 | (uint64_t)flags << 52;
}

static void build_gdt_tss(uint8_t *low)
{
	uint64_t tss = LAYOUT_TSS, limit = 0x67;

	put64(low, LAYOUT_GDT + 0x00, 0);
	put64(low, LAYOUT_GDT + SEL_KCODE, seg_desc(0x9a, 0xa)); /* DPL 0, L */
	put64(low, LAYOUT_GDT + SEL_KDATA, seg_desc(0x92, 0xc)); /* DPL 0, G DB */
	put64(low, LAYOUT_GDT + (SEL_UCODE & ~3), seg_desc(0xfa, 0xa)); /* DPL 3, L */
	put64(low, LAYOUT_GDT + (SEL_UDATA & ~3), seg_desc(0xf2, 0xc)); /* DPL 3, G DB */
	/* 64-bit TSS, busy (it is loaded in TR), 16 bytes. */
	put64(low, LAYOUT_GDT + SEL_TSS,
	      (limit & 0xffff) | (tss & 0xffffff) << 16 | 0x8bULL << 40 |
		  ((limit >> 16) & 0xf) << 48 | ((tss >> 24) & 0xff) << 56);
	put64(low, LAYOUT_GDT + SEL_TSS + 8, tss >> 32);

	/* TSS: RSP0 at offset 4; I/O map base past the limit (IOPL 3 needs no bitmap). */
	put64(low, LAYOUT_TSS + 4, LAYOUT_STACK0_TOP);
	low[LAYOUT_TSS + 102] = 0x68;
	low[LAYOUT_TSS + 103] = 0;
}

static void build_idt_stubs(uint8_t *low)
{
	static const uint8_t common[] = {
		0x66, 0xba, 0x02, 0x05, /* mov $0x502, %dx */
		0x58, 0xef, /* pop %rax; out %eax, %dx   (vector) */
		0x58, 0xef, /* pop %rax; out %eax, %dx   (error code) */
		0x58, 0xef, /* pop %rax; out %eax, %dx   (RIP low) */
		0x48, 0xc1, 0xe8, 0x20, /* shr $32, %rax */
		0xef, /* out %eax, %dx             (RIP high) */
		0xfa, 0xf4, 0xeb, 0xfd, /* cli; 1: hlt; jmp 1b */
	};
	unsigned int v;

	for (v = 0; v < 256; v++) {
		uint64_t stub = LAYOUT_STUBS + v * STUB_SIZE, gate = LAYOUT_IDT + v * 16;
		uint8_t *p = low + stub;
		int32_t rel = (int32_t)(STUB_COMMON - (stub + STUB_SIZE));

		if (has_error_code(v)) {
			p[0] = 0x66; /* 2-byte nop: the CPU pushed the error code */
			p[1] = 0x90;
		} else {
			p[0] = 0x6a; /* push $0 */
			p[1] = 0x00;
		}
		p[2] = 0x68; /* push $vector (imm32) */
		memcpy(p + 3, &(uint32_t){ v }, 4);
		p[7] = 0xe9; /* jmp common */
		memcpy(p + 8, &rel, 4);

		/* 64-bit interrupt gate, DPL 0, present, kernel code, no IST. */
		low[gate + 0] = stub & 0xff;
		low[gate + 1] = (stub >> 8) & 0xff;
		low[gate + 2] = SEL_KCODE;
		low[gate + 3] = 0;
		low[gate + 4] = 0;
		low[gate + 5] = 0x8e;
		low[gate + 6] = (stub >> 16) & 0xff;
		low[gate + 7] = (stub >> 24) & 0xff;
		put32(low, gate + 8, (uint32_t)(stub >> 32));
		put32(low, gate + 12, 0);
	}
	memcpy(low + STUB_COMMON, common, sizeof(common));
}

static void build_page_tables(uint8_t *low)
{
	const uint64_t table = PTE_P | PTE_RW | PTE_US | PTE_A;
	unsigned int i;

	put64(low, LAYOUT_PML4, LAYOUT_PDPT | table);
	for (i = 0; i < 4; i++)
		put64(low, LAYOUT_PDPT + i * 8, (LAYOUT_PD + i * 0x1000) | table);
	/* 4 GiB identity in 2 MiB pages, user-accessible, A and D preset. */
	for (i = 0; i < 4 * 512; i++)
		put64(low, LAYOUT_PD + i * 8, ((uint64_t)i << 21) | table | PTE_D | PTE_PS);
}

void boot_build_tables(uint8_t *low, size_t len)
{
	if (len < LAYOUT_FDT)
		return;
	memset(low, 0, LAYOUT_FDT);
	build_gdt_tss(low);
	build_idt_stubs(low);
	build_page_tables(low);
}

int boot_write_tables(struct space *space)
{
	uint8_t *low = calloc(1, LAYOUT_FDT);
	int ret;

	if (!low)
		return -ENOMEM;
	boot_build_tables(low, LAYOUT_FDT);
	/* Page 0 stays untouched, as the protocol says. */
	ret = space_write(space, LAYOUT_GDT, low + LAYOUT_GDT, LAYOUT_FDT - LAYOUT_GDT);
	free(low);
	return ret;
}

static const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t fn,
						 uint32_t idx)
{
	unsigned int i;

	for (i = 0; i < c->nent; i++) {
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	}
	return NULL;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = sel & 3;
	s->s = 1;
	s->l = code;
	s->db = !code;
	s->g = 1;
}

static int fail(char *err, size_t errlen, struct vcpu *v, const char *what)
{
	int ret = -errno;

	snprintf(err, errlen, "vCPU %u: %s: %s", v->index, what, strerror(errno));
	return ret ? ret : -EIO;
}

int boot_setup_vcpu(struct vcpu *v, const struct boot_entry *e, char *err, size_t errlen)
{
	const struct kvm_cpuid2 *cpuid = v->cpus->cpuid;
	const struct kvm_cpuid_entry2 *leaf;
	struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	bool xsave, nx;

	leaf = cpuid_find(cpuid, 1, 0);
	xsave = leaf && (leaf->ecx & (1u << 26));
	leaf = cpuid_find(cpuid, 0x80000001, 0);
	nx = leaf && (leaf->edx & (1u << 20));

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return fail(err, errlen, v, "KVM_GET_SREGS");
	set_seg(&sregs.cs, SEL_UCODE, 0xb, true);
	set_seg(&sregs.ss, SEL_UDATA, 0x3, false);
	set_seg(&sregs.ds, SEL_UDATA, 0x3, false);
	set_seg(&sregs.es, SEL_UDATA, 0x3, false);
	set_seg(&sregs.fs, SEL_UDATA, 0x3, false);
	set_seg(&sregs.gs, SEL_UDATA, 0x3, false);
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = LAYOUT_TSS;
	sregs.tr.limit = 0x67;
	sregs.tr.selector = SEL_TSS;
	sregs.tr.type = 0xb; /* 64-bit TSS, busy */
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.type = 0x2;
	sregs.ldt.unusable = 1;
	sregs.gdt.base = LAYOUT_GDT;
	sregs.gdt.limit = SEL_TSS + 16 - 1;
	sregs.idt.base = LAYOUT_IDT;
	sregs.idt.limit = 256 * 16 - 1;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.cr3 = LAYOUT_PML4;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | (xsave ? CR4_OSXSAVE : 0);
	sregs.efer = EFER_SCE | EFER_LME | EFER_LMA | (nx ? EFER_NXE : 0);
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return fail(err, errlen, v, "KVM_SET_SREGS (64-bit CPL-3 entry)");

	if (xsave && v->vm->kvm->has_xcrs) {
		struct kvm_xcrs xcrs;
		uint64_t xcr0 = 0x3; /* x87, SSE */

		leaf = cpuid_find(cpuid, 0xd, 0);
		if (leaf && (leaf->eax & 0x4))
			xcr0 |= 0x4; /* AVX */
		memset(&xcrs, 0, sizeof(xcrs));
		xcrs.nr_xcrs = 1;
		xcrs.xcrs[0].xcr = 0;
		xcrs.xcrs[0].value = xcr0;
		if (ioctl(v->fd, KVM_SET_XCRS, &xcrs) < 0)
			return fail(err, errlen, v, "KVM_SET_XCRS");
	}

	memset(&regs, 0, sizeof(regs));
	regs.rip = e->rip;
	regs.rsp = 0;
	regs.rflags = 0x3002; /* IOPL 3, IF 0, bit 1 reserved-one */
	regs.rdi = e->fdt_gpa;
	regs.rsi = v->index;
	regs.rdx = e->ncpus;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return fail(err, errlen, v, "KVM_SET_REGS");

	/* APs start runnable, at the same entry: no INIT/SIPI dance. */
	if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
		return fail(err, errlen, v, "KVM_SET_MP_STATE");
	return 0;
}
