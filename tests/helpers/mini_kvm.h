/* SPDX-License-Identifier: MIT */
/*
 * mini_kvm: a tiny long-mode KVM harness for the integration tests and
 * bench/kvm_costs.c, independent of vmm/ (which is written against it, not
 * with it).  One VM, one vCPU, a private "boot area" of 2 MiB at GPA
 * MKVM_BOOT_GPA holding the GDT, TSS, identity page tables (first 4 GiB in
 * 2 MiB user-accessible pages, A and D preset so the CPU never writes them),
 * the code and a stack.  GPA 0 .. 1 GiB is left to the caller's memslots (an
 * mm space's window, for instance).  Entry is directly in 64-bit mode, at
 * CPL 0 or at CPL 3 with IOPL 3.  A guest fault has no IDT to go to: it ends
 * as KVM_EXIT_SHUTDOWN.
 *
 * Header-only (static inline) because benches link no test-helper library.
 * Functions return 0 or -errno; KVM's own exits are the caller's business.
 */
#ifndef FORKVM_TESTS_HELPERS_MINI_KVM_H
#define FORKVM_TESTS_HELPERS_MINI_KVM_H

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MKVM_BOOT_GPA 0x40000000ULL
#define MKVM_BOOT_SIZE 0x200000ULL
#define MKVM_BOOT_SLOT 0
/* Offsets in the boot area. */
#define MKVM_GDT 0x0000
#define MKVM_TSS 0x0800
#define MKVM_PML4 0x1000
#define MKVM_PDPT 0x2000
#define MKVM_PD 0x3000 /* four PDs: 0x3000 .. 0x6fff */
#define MKVM_CODE 0x10000
#define MKVM_DATA 0x20000
#define MKVM_STACK_TOP 0x100000

#define MKVM_SEL_KCODE 0x08
#define MKVM_SEL_KDATA 0x10
#define MKVM_SEL_UCODE 0x1b /* GDT index 3, RPL 3 */
#define MKVM_SEL_UDATA 0x23 /* GDT index 4, RPL 3 */
#define MKVM_SEL_TSS 0x28

struct mkvm {
	int kvm;
	int vm;
	int vcpu;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *boot; /* host view of the boot area */
};

/* Host pointer to boot-area offset @off. */
static inline void *mkvm_boot_ptr(struct mkvm *m, uint64_t off)
{
	return m->boot + off;
}

static inline int mkvm_set_slot(struct mkvm *m, uint32_t slot, uint64_t gpa, void *hva,
				uint64_t size)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	return ioctl(m->vm, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

static inline void mkvm_close(struct mkvm *m)
{
	if (m->run)
		munmap(m->run, m->run_size);
	if (m->vcpu >= 0)
		close(m->vcpu);
	if (m->vm >= 0)
		close(m->vm);
	if (m->kvm >= 0)
		close(m->kvm);
	if (m->boot)
		munmap(m->boot, MKVM_BOOT_SIZE);
	m->run = NULL;
	m->boot = NULL;
	m->vcpu = m->vm = m->kvm = -1;
}

/*
 * mkvm_open() - a VM with its boot area and one vCPU.  -ENOENT (or -EACCES)
 * means there is no /dev/kvm to use here: callers skip, others fail.
 */
static inline int mkvm_open(struct mkvm *m)
{
	int ret;

	memset(m, 0, sizeof(*m));
	m->kvm = m->vm = m->vcpu = -1;
	m->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (m->kvm < 0)
		return -errno;
	m->vm = ioctl(m->kvm, KVM_CREATE_VM, 0);
	if (m->vm < 0)
		goto err;
	ret = ioctl(m->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ret < 0)
		goto err;
	m->run_size = (size_t)ret;
	m->boot =
	    mmap(NULL, MKVM_BOOT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->boot == MAP_FAILED) {
		m->boot = NULL;
		goto err;
	}
	ret = mkvm_set_slot(m, MKVM_BOOT_SLOT, MKVM_BOOT_GPA, m->boot, MKVM_BOOT_SIZE);
	if (ret < 0) {
		errno = -ret;
		goto err;
	}
	m->vcpu = ioctl(m->vm, KVM_CREATE_VCPU, 0);
	if (m->vcpu < 0)
		goto err;
	m->run = mmap(NULL, m->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, m->vcpu, 0);
	if (m->run == MAP_FAILED) {
		m->run = NULL;
		goto err;
	}
	return 0;
err:
	ret = -errno;
	mkvm_close(m);
	return ret;
}

static inline void mkvm_seg(struct kvm_segment *s, uint16_t sel, bool code, unsigned int dpl)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->type = code ? 11 : 3; /* execute/read accessed; read/write accessed */
	s->present = 1;
	s->dpl = dpl;
	s->s = 1;
	s->l = code ? 1 : 0;
	s->db = code ? 0 : 1;
	s->g = 1;
}

/* The raw 8-byte GDT descriptor of a flat segment. */
static inline uint64_t mkvm_gdt_entry(bool code, unsigned int dpl)
{
	uint64_t access = 0x80 | (dpl << 5) | 0x10 | (code ? 0x0b : 0x03);
	uint64_t flags = code ? 0xa : 0xc; /* G + L, or G + D/B */

	return 0xffffULL | (access << 40) | (0xfULL << 48) | (flags << 52);
}

/*
 * mkvm_enter_long_mode() - write the GDT, TSS and page tables into the boot
 * area and load the vCPU for 64-bit execution at @rip with RSP = the boot
 * area's stack, at CPL @cpl (0, or 3 with IOPL 3).
 */
static inline int mkvm_enter_long_mode(struct mkvm *m, unsigned int cpl, uint64_t rip)
{
	uint64_t *gdt = mkvm_boot_ptr(m, MKVM_GDT);
	uint64_t *pml4 = mkvm_boot_ptr(m, MKVM_PML4);
	uint64_t *pdpt = mkvm_boot_ptr(m, MKVM_PDPT);
	uint64_t *pd = mkvm_boot_ptr(m, MKVM_PD);
	uint64_t tss = MKVM_BOOT_GPA + MKVM_TSS;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	unsigned int i;

	gdt[0] = 0;
	gdt[1] = mkvm_gdt_entry(true, 0);
	gdt[2] = mkvm_gdt_entry(false, 0);
	gdt[3] = mkvm_gdt_entry(true, 3);
	gdt[4] = mkvm_gdt_entry(false, 3);
	/* 64-bit TSS (busy), 16 bytes. */
	gdt[5] = 0x67 | ((tss & 0xffffff) << 16) | (0x8bULL << 40) | ((tss >> 24 & 0xff) << 56);
	gdt[6] = tss >> 32;
	memset(mkvm_boot_ptr(m, MKVM_TSS), 0, 0x68);
	/* P | RW | US, and for the 2 MiB leaves also PS | A | D. */
	pml4[0] = (MKVM_BOOT_GPA + MKVM_PDPT) | 0x7;
	for (i = 0; i < 4; i++)
		pdpt[i] = (MKVM_BOOT_GPA + MKVM_PD + i * 0x1000ULL) | 0x7;
	for (i = 0; i < 4 * 512; i++)
		pd[i] = ((uint64_t)i << 21) | 0x7 | 0x80 | 0x20 | 0x40;

	if (ioctl(m->vcpu, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	mkvm_seg(&sregs.cs, cpl ? MKVM_SEL_UCODE : MKVM_SEL_KCODE, true, cpl);
	mkvm_seg(&sregs.ss, cpl ? MKVM_SEL_UDATA : MKVM_SEL_KDATA, false, cpl);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.selector = MKVM_SEL_TSS;
	sregs.tr.base = tss;
	sregs.tr.limit = 0x67;
	sregs.tr.type = 11;
	sregs.tr.present = 1;
	sregs.gdt.base = MKVM_BOOT_GPA + MKVM_GDT;
	sregs.gdt.limit = 7 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr3 = MKVM_BOOT_GPA + MKVM_PML4;
	sregs.cr4 = (1 << 5) | (1 << 9) | (1 << 10); /* PAE, OSFXSR, OSXMMEXCPT */
	sregs.cr0 = 0x80050033; /* PG, WP, NE, ET, MP, PE */
	sregs.efer = 0x500; /* LMA, LME */
	if (ioctl(m->vcpu, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rsp = MKVM_BOOT_GPA + MKVM_STACK_TOP;
	regs.rflags = cpl ? 0x3002 : 0x2; /* IOPL 3 for port I/O at CPL 3 */
	if (ioctl(m->vcpu, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* One KVM_RUN.  Return: the exit reason, or -errno. */
static inline int mkvm_run(struct mkvm *m)
{
	if (ioctl(m->vcpu, KVM_RUN, 0) < 0)
		return -errno;
	return (int)m->run->exit_reason;
}

/* The first (up to 8) bytes of the current KVM_EXIT_IO's data. */
static inline uint64_t mkvm_io_value(struct mkvm *m)
{
	uint64_t v = 0;
	size_t n = m->run->io.size;

	memcpy(&v, (uint8_t *)m->run + m->run->io.data_offset, n > 8 ? 8 : n);
	return v;
}

static inline void mkvm_io_set_value(struct mkvm *m, uint64_t v)
{
	size_t n = m->run->io.size;

	memcpy((uint8_t *)m->run + m->run->io.data_offset, &v, n > 8 ? 8 : n);
}

/* A readable line about an unexpected exit, for assertion messages. */
static inline const char *mkvm_describe_exit(struct mkvm *m, int reason, char *buf, size_t len)
{
	struct kvm_regs regs;

	if (reason < 0) {
		snprintf(buf, len, "KVM_RUN failed: %s", strerror(-reason));
		return buf;
	}
	memset(&regs, 0, sizeof(regs));
	ioctl(m->vcpu, KVM_GET_REGS, &regs);
	if (reason == KVM_EXIT_INTERNAL_ERROR)
		snprintf(buf, len, "exit INTERNAL_ERROR suberror %u at RIP 0x%llx",
			 m->run->internal.suberror, (unsigned long long)regs.rip);
	else if (reason == KVM_EXIT_FAIL_ENTRY)
		snprintf(buf, len, "exit FAIL_ENTRY reason 0x%llx",
			 (unsigned long long)m->run->fail_entry.hardware_entry_failure_reason);
	else
		snprintf(buf, len, "exit reason %d at RIP 0x%llx", reason,
			 (unsigned long long)regs.rip);
	return buf;
}

/*
 * A few x86-64 instruction encoders, enough for straight-line test guests.
 * Each appends to *@p and advances it.
 */
enum mkvm_reg { MKVM_RAX = 0, MKVM_RCX = 1, MKVM_RDX = 2, MKVM_RBX = 3, MKVM_RDI = 7 };

static inline void mkvm_emit(uint8_t **p, const void *bytes, size_t n)
{
	memcpy(*p, bytes, n);
	*p += n;
}

/* mov $imm64, %reg */
static inline void mkvm_mov_imm(uint8_t **p, enum mkvm_reg reg, uint64_t imm)
{
	uint8_t op[2] = { 0x48, (uint8_t)(0xb8 + reg) };

	mkvm_emit(p, op, 2);
	mkvm_emit(p, &imm, 8);
}

/* out %al/%eax, (%dx) with %dx = @port, %eax/%al = @reg's low bits */
static inline void mkvm_out(uint8_t **p, uint16_t port, unsigned int size)
{
	uint8_t mov_dx[4] = { 0x66, 0xba, (uint8_t)port, (uint8_t)(port >> 8) };
	uint8_t op = size == 1 ? 0xee : 0xef;

	mkvm_emit(p, mov_dx, 4);
	if (size == 2)
		mkvm_emit(p, "\x66", 1);
	mkvm_emit(p, &op, 1);
}

/* in (%dx), %eax with %dx = @port (zero-extends into %rax) */
static inline void mkvm_in32(uint8_t **p, uint16_t port)
{
	uint8_t mov_dx[4] = { 0x66, 0xba, (uint8_t)port, (uint8_t)(port >> 8) };

	mkvm_emit(p, mov_dx, 4);
	mkvm_emit(p, "\xed", 1);
}

/*
 * mkvm_program_write_pages() - at @code: store the qword @value at @gpa,
 * @gpa + @stride, ... (@n stores), then write @n to @done_port (32 bits) and
 * spin.  Return: the code's length.
 */
static inline size_t mkvm_program_write_pages(uint8_t *code, uint64_t gpa, uint64_t stride,
					      uint32_t n, uint64_t value, uint16_t done_port)
{
	uint8_t *p = code;
	uint8_t add_rdi[3] = { 0x48, 0x81, 0xc7 };
	uint32_t imm = (uint32_t)stride;

	mkvm_mov_imm(&p, MKVM_RDI, gpa);
	mkvm_mov_imm(&p, MKVM_RCX, n);
	mkvm_mov_imm(&p, MKVM_RAX, value);
	mkvm_emit(&p, "\x48\x89\x07", 3); /* 1: mov %rax,(%rdi) */
	mkvm_emit(&p, add_rdi, 3); /* add $stride,%rdi */
	mkvm_emit(&p, &imm, 4);
	mkvm_emit(&p, "\x48\xff\xc9", 3); /* dec %rcx */
	mkvm_emit(&p, "\x75\xf1", 2); /* jnz 1b */
	mkvm_mov_imm(&p, MKVM_RAX, n);
	mkvm_out(&p, done_port, 4);
	mkvm_emit(&p, "\xeb\xfe", 2); /* jmp . */
	return (size_t)(p - code);
}

/*
 * mkvm_program_out_loop() - at @code: write %ecx (counting down from @n) to
 * @port @n times, then write 0 to @done_port and spin.  Return: the length.
 */
static inline size_t mkvm_program_out_loop(uint8_t *code, uint16_t port, uint32_t n,
					   uint16_t done_port)
{
	uint8_t *p = code;
	uint8_t mov_dx[4] = { 0x66, 0xba, (uint8_t)port, (uint8_t)(port >> 8) };

	mkvm_mov_imm(&p, MKVM_RCX, n);
	mkvm_emit(&p, mov_dx, 4);
	mkvm_emit(&p, "\x89\xc8", 2); /* 1: mov %ecx,%eax */
	mkvm_emit(&p, "\xef", 1); /* out %eax,(%dx) */
	mkvm_emit(&p, "\x48\xff\xc9", 3); /* dec %rcx */
	mkvm_emit(&p, "\x75\xf8", 2); /* jnz 1b */
	mkvm_mov_imm(&p, MKVM_RAX, 0);
	mkvm_out(&p, done_port, 4);
	mkvm_emit(&p, "\xeb\xfe", 2); /* jmp . */
	return (size_t)(p - code);
}

#endif /* FORKVM_TESTS_HELPERS_MINI_KVM_H */
