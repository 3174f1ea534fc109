/* SPDX-License-Identifier: MIT */
/*
 * Data patterns.  The disk pattern is the one of docs/boot-protocol.md
 * ("The disk pattern"): the 64-bit little-endian word at byte offset o of a
 * disk made with seed s is splitmix64(o ^ s).
 */
#ifndef FORKVM_GUEST_TEST_PATTERN_H
#define FORKVM_GUEST_TEST_PATTERN_H

#include <stdint.h>

/* One definition of the disk pattern for the host tools and the guest:
 * the header is freestanding (inline functions, declarations only). */
#include "devices/disk_pattern.h"

#define DISK_SEED_READ DISK_PATTERN_SEED_READ
#define DISK_SEED_WRITE DISK_PATTERN_SEED_WRITE

/* The word at disk byte offset @off (a multiple of 8). */
static inline uint64_t disk_word(uint64_t off, uint64_t seed)
{
	return disk_pattern_word(seed, off);
}

/*
 * memcheck's word for guest-physical address @gpa in pass @pass: one
 * multiply per word (memcheck covers all of RAM, so it must be cheap), and
 * every address and pass gets a different value, so aliased or stale pages
 * show up.
 */
static inline uint64_t mem_word(uint64_t gpa, uint32_t pass)
{
	return (gpa ^ ((uint64_t)pass << 56) ^ 0x6d656d636b00ULL) * 0x9e3779b97f4a7c15ULL;
}

/* Fold a 64-bit checksum to the 32 bits the result port carries. */
static inline uint32_t fold32(uint64_t v)
{
	return (uint32_t)v ^ (uint32_t)(v >> 32);
}

#endif /* FORKVM_GUEST_TEST_PATTERN_H */
