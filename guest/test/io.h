/* SPDX-License-Identifier: MIT */
/*
 * Port I/O, MMIO and small SMP primitives for the freestanding test guest.
 * The guest runs at CPL 3 with IOPL 3 (docs/boot-protocol.md), so in/out
 * and pause are allowed; hlt is not (it would #GP), so waiting is a pause loop.
 */
#ifndef FORKVM_GUEST_TEST_IO_H
#define FORKVM_GUEST_TEST_IO_H

#include <stdint.h>

#include "guest/abi.h"

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/*
 * MMIO through a plain mov: KVM decodes the faulting instruction, so keep
 * it the simplest form (one 32-bit load or store, no read-modify-write).
 */
static inline uint32_t mmio_read32(uint64_t addr)
{
	uint32_t v;

	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(addr) : "memory");
	return v;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(addr) : "memory");
}

static inline uint8_t mmio_read8(uint64_t addr)
{
	uint8_t v;

	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(addr) : "memory");
	return v;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* lock xadd: returns the old value. */
static inline uint64_t xadd64(volatile uint64_t *p, uint64_t v)
{
	__asm__ volatile("lock xaddq %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

static inline uint32_t xadd32(volatile uint32_t *p, uint32_t v)
{
	__asm__ volatile("lock xaddl %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define barrier() __asm__ volatile("" : : : "memory")

/* Stop the VM with @code (the VMM exits with it). Never returns. */
static inline __attribute__((noreturn)) void guest_exit(uint32_t code)
{
	outl(PORT_EXIT, code);
	for (;;)
		cpu_relax();
}

/**
 * guest_fork() - ask the VMM to clone this machine, like fork(2) (guest/abi.h).
 * The out and the in sit in one asm statement: the clone happens between
 * them, and nothing of ours may run in between.  The memory clobber makes
 * every store before the call happen before the clone, in both machines.
 * Return: the child's id (> 0) in the parent, 0 in the child, FORK_FAILED
 * when no child could be made (FORK_NONE: the VMM ignored the request).
 */
static inline uint32_t guest_fork(void)
{
	uint32_t v;

	__asm__ volatile("outl %0, %w1\n\tinl %w1, %0"
			 : "=a"(v)
			 : "d"((uint32_t)PORT_FORK), "0"(FORK_MAGIC)
			 : "memory");
	return v;
}

#endif /* FORKVM_GUEST_TEST_IO_H */
