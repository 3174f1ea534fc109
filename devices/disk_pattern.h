/* SPDX-License-Identifier: MIT */
/*
 * The test disk content (docs/boot-protocol.md, "The disk pattern"): the
 * little-endian 64-bit word at byte offset o (a multiple of 8) of a disk made
 * with seed s is splitmix64(o ^ s).  A size that is not a multiple of 8 ends
 * with the first bytes of the next word.
 */
#ifndef FORKVM_DEVICES_DISK_PATTERN_H
#define FORKVM_DEVICES_DISK_PATTERN_H

#include <stddef.h>
#include <stdint.h>

#define DISK_PATTERN_SEED_READ 0x666f726b766dull /* "forkvm", blkread */
#define DISK_PATTERN_SEED_WRITE 0x777269746521ull /* "write!", blkwrite */

static inline uint64_t disk_pattern_splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/** disk_pattern_word() - the word at @off (a multiple of 8) for @seed. */
static inline uint64_t disk_pattern_word(uint64_t seed, uint64_t off)
{
	return disk_pattern_splitmix64(off ^ seed);
}

/** disk_pattern_fill_buf() - @len bytes of the pattern from disk offset @off. */
void disk_pattern_fill_buf(void *buf, uint64_t off, size_t len, uint64_t seed);

/**
 * disk_pattern_fill() - make @fd exactly @size bytes of the pattern.
 * Return: 0 or -errno.
 */
int disk_pattern_fill(int fd, uint64_t size, uint64_t seed) __attribute__((warn_unused_result));

/**
 * disk_pattern_check() - compare the whole of @fd with the pattern.
 * Return: 0 if every byte matches; 1 with *@bad_off = the first offset that
 * differs; -errno on a read error.
 */
int disk_pattern_check(int fd, uint64_t seed, uint64_t *bad_off)
    __attribute__((warn_unused_result));

#endif /* FORKVM_DEVICES_DISK_PATTERN_H */
