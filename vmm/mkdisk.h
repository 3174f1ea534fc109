/* SPDX-License-Identifier: MIT */
/* `forkvm mkdisk`: write or check a test disk (docs/boot-protocol.md "The disk pattern"). */
#ifndef FORKVM_VMM_MKDISK_H
#define FORKVM_VMM_MKDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * mkdisk_write() - make @path @size bytes long holding the pattern of @seed.
 * Return: 0 or -errno, @err says why.
 */
int mkdisk_write(const char *path, uint64_t size, uint64_t seed, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * mkdisk_check() - check that @path holds the pattern of @seed (and is
 * @size bytes long when @size is non-zero).  Return: 0, -EBADMSG at the
 * first wrong word (@err gives its offset), or -errno.
 */
int mkdisk_check(const char *path, uint64_t size, uint64_t seed, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_MKDISK_H */
