/* SPDX-License-Identifier: MIT */
/* Loading the test guest's ELF into guest memory.  The file is untrusted input. */
#ifndef FORKVM_VMM_ELF_H
#define FORKVM_VMM_ELF_H

#include <stddef.h>
#include <stdint.h>

struct space;

struct elf_image {
	uint64_t entry;
	uint64_t end; /* first page-aligned GPA after every PT_LOAD segment */
};

/**
 * elf_check() - validate @size bytes at @data as a guest image for a RAM of
 * @mem_size bytes: ELF64, little-endian, x86-64, ET_EXEC, program headers
 * inside the file, PT_LOAD segments inside the file and inside RAM at or above
 * 1 MiB, not overlapping, sizes without overflow, entry inside a loaded
 * executable segment.  Return: 0 (and @img) or -EINVAL/-ENOEXEC with @err.
 */
int elf_check(const void *data, size_t size, uint64_t mem_size, struct elf_image *img, char *err,
	      size_t errlen) __attribute__((warn_unused_result));

/** elf_load() - elf_check(), then copy the segments into @space. */
int elf_load(struct space *space, const void *data, size_t size, struct elf_image *img, char *err,
	     size_t errlen) __attribute__((warn_unused_result));

/** elf_load_file() - elf_load() of the file at @path. */
int elf_load_file(struct space *space, const char *path, struct elf_image *img, char *err,
		  size_t errlen) __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_ELF_H */
