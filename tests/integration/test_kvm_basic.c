// SPDX-License-Identifier: MIT
/*
 * The smallest KVM integration test: enter a 64-bit guest directly (our own
 * GDT, page tables and long-mode sregs; no vmm/ code), at CPL 0 and at CPL 3
 * with IOPL 3, and check what it computed and the port I/O it did.  Runs
 * through scripts/in-kvm (directly, or in the nested guest); skips where no
 * /dev/kvm exists.
 */
#include <criterion/criterion.h>
#include <inttypes.h>

#include "tests/helpers/mini_kvm.h"

#define LOOP_N 100000ULL
#define SUM_N (LOOP_N * (LOOP_N + 1) / 2) /* 5000050000: needs 64 bits */
#define PORT_SUM 0x1234
#define PORT_BYTE 0x80
#define PORT_IN 0x1235
#define PORT_DONE 0x1236
#define IN_VALUE 0xfeedbeefULL

static struct mkvm vm;

static void open_or_skip(void)
{
	int ret = mkvm_open(&vm);

	if (ret == -ENOENT || ret == -ENXIO || ret == -ENODEV)
		cr_skip_test("no /dev/kvm here (%s); run through scripts/in-kvm", strerror(-ret));
	cr_assert_eq(ret, 0, "mkvm_open: %s", strerror(-ret));
}

static void fini(void)
{
	mkvm_close(&vm);
}

/*
 * Sum 1..LOOP_N into %rax, store it, report its low half on PORT_SUM, a byte
 * on PORT_BYTE, read a value from PORT_IN, store it and write it to PORT_DONE.
 */
static void write_program(void)
{
	uint8_t *code = mkvm_boot_ptr(&vm, MKVM_CODE);
	uint8_t *p = code;

	mkvm_mov_imm(&p, MKVM_RCX, LOOP_N);
	mkvm_emit(&p, "\x31\xc0", 2); /* xor %eax,%eax */
	mkvm_emit(&p, "\x48\x01\xc8", 3); /* 1: add %rcx,%rax */
	mkvm_emit(&p, "\x48\xff\xc9", 3); /* dec %rcx */
	mkvm_emit(&p, "\x75\xf8", 2); /* jnz 1b */
	mkvm_mov_imm(&p, MKVM_RBX, MKVM_BOOT_GPA + MKVM_DATA);
	mkvm_emit(&p, "\x48\x89\x03", 3); /* mov %rax,(%rbx) */
	mkvm_out(&p, PORT_SUM, 4);
	mkvm_mov_imm(&p, MKVM_RAX, 0x42);
	mkvm_out(&p, PORT_BYTE, 1);
	mkvm_in32(&p, PORT_IN);
	mkvm_emit(&p, "\x48\x89\x43\x08", 4); /* mov %rax,8(%rbx) */
	mkvm_out(&p, PORT_DONE, 4);
	mkvm_emit(&p, "\xeb\xfe", 2); /* jmp . */
}

struct io_expect {
	uint8_t direction;
	uint16_t port;
	uint8_t size;
	uint64_t value; /* OUT: the data expected; IN: the data given */
};

static void run_and_check(unsigned int cpl)
{
	static const struct io_expect expect[] = {
		{ KVM_EXIT_IO_OUT, PORT_SUM, 4, SUM_N & 0xffffffff },
		{ KVM_EXIT_IO_OUT, PORT_BYTE, 1, 0x42 },
		{ KVM_EXIT_IO_IN, PORT_IN, 4, IN_VALUE },
		{ KVM_EXIT_IO_OUT, PORT_DONE, 4, IN_VALUE },
	};
	uint64_t *data = mkvm_boot_ptr(&vm, MKVM_DATA);
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	char why[128];
	unsigned int i;
	int ret;

	write_program();
	ret = mkvm_enter_long_mode(&vm, cpl, MKVM_BOOT_GPA + MKVM_CODE);
	cr_assert_eq(ret, 0, "entering long mode at CPL %u: %s", cpl, strerror(-ret));

	for (i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
		const struct io_expect *e = &expect[i];

		ret = mkvm_run(&vm);
		cr_assert_eq(ret, KVM_EXIT_IO, "exit %u: expected KVM_EXIT_IO on port 0x%x, got %s",
			     i, e->port, mkvm_describe_exit(&vm, ret, why, sizeof(why)));
		cr_assert_eq(vm.run->io.port, e->port, "exit %u: port 0x%x, expected 0x%x", i,
			     vm.run->io.port, e->port);
		cr_assert_eq(vm.run->io.direction, e->direction, "exit %u: wrong direction", i);
		cr_assert_eq(vm.run->io.size, e->size, "exit %u: size %u, expected %u", i,
			     vm.run->io.size, e->size);
		cr_assert_eq(vm.run->io.count, 1, "exit %u: count %u", i, vm.run->io.count);
		if (e->direction == KVM_EXIT_IO_OUT)
			cr_assert_eq(mkvm_io_value(&vm), e->value,
				     "exit %u: port 0x%x got 0x%" PRIx64 ", expected 0x%" PRIx64, i,
				     e->port, mkvm_io_value(&vm), e->value);
		else
			mkvm_io_set_value(&vm, e->value);
	}

	cr_assert_eq(data[0], SUM_N, "guest stored sum %" PRIu64 ", expected %llu", data[0], SUM_N);
	cr_assert_eq(data[1], IN_VALUE, "guest stored the IN value 0x%" PRIx64 ", expected 0x%llx",
		     data[1], IN_VALUE);
	cr_assert_eq(ioctl(vm.vcpu, KVM_GET_REGS, &regs), 0);
	cr_assert_eq(regs.rax, IN_VALUE, "rax 0x%llx", (unsigned long long)regs.rax);
	cr_assert_eq(regs.rcx, 0, "loop counter left at %llu", (unsigned long long)regs.rcx);
	cr_assert_eq(ioctl(vm.vcpu, KVM_GET_SREGS, &sregs), 0);
	/* The guest really ran where we put it: CS.RPL is the CPL, in long mode. */
	cr_assert_eq(sregs.cs.selector & 3, cpl, "CS 0x%x: CPL %u, expected %u", sregs.cs.selector,
		     sregs.cs.selector & 3, cpl);
	cr_assert_eq(sregs.cs.l, 1, "CS.L is 0: not in 64-bit mode");
	cr_assert(sregs.efer & 0x400, "EFER.LMA clear: not in long mode");
}

Test(kvm_basic, guest_at_cpl0_computes_and_does_port_io, .init = open_or_skip, .fini = fini)
{
	run_and_check(0);
}

Test(kvm_basic, guest_at_cpl3_with_iopl3_computes_and_does_port_io, .init = open_or_skip,
     .fini = fini)
{
	run_and_check(3);
}
