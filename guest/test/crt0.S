/* SPDX-License-Identifier: MIT */
/*
 * Entry of every vCPU (docs/boot-protocol.md, "Entry"): long mode, CPL 3,
 * RSP = 0, RDI = FDT, RSI = vCPU index, RDX = number of vCPUs.  Pick this
 * vCPU's stack from guest_stacks by index and call guest_main(fdt, cpu, ncpus).
 */
#include "guest/test/guest.h"

	.section .text.entry, "ax"
	.globl _start
	.type _start, @function
_start:
	cmpq	$GUEST_MAX_CPUS, %rsi
	jae	1f
	/* top of stack i = guest_stacks + (i + 1) * GUEST_STACK_SIZE, 16-byte aligned */
	leaq	1(%rsi), %rax
	shlq	$GUEST_STACK_SHIFT, %rax
	leaq	guest_stacks(%rax), %rsp
	xorl	%ebp, %ebp
	/* RDI, RSI, RDX are already guest_main's arguments. */
	call	guest_main
	/* guest_main does not return; if it did, stop with an error. */
1:	movw	$0x501, %dx
	movl	$GUEST_EXIT_BADCPU, %eax
	outl	%eax, %dx
2:	pause
	jmp	2b
	.size _start, . - _start

	.section .note.GNU-stack, "", @progbits
