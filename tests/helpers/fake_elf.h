/* SPDX-License-Identifier: MIT */
/* A small valid guest ELF built in memory, for loader tests without a file. */
#ifndef FORKVM_TESTS_HELPERS_FAKE_ELF_H
#define FORKVM_TESTS_HELPERS_FAKE_ELF_H

#include <stddef.h>
#include <stdint.h>

/* Where fake_elf_build() puts things. */
#define FAKE_ELF_CODE_GPA 0x100000u /* PT_LOAD R+X, the entry point */
#define FAKE_ELF_DATA_GPA 0x200000u /* PT_LOAD R+W, with a zero-filled tail */
#define FAKE_ELF_CODE_OFF 0x100u
#define FAKE_ELF_DATA_OFF 0x200u
#define FAKE_ELF_SIZE 0x300u /* bytes of the image */

/**
 * fake_elf_build() - write a valid ET_EXEC x86-64 image of FAKE_ELF_SIZE
 * bytes into @buf: the ELF header, two program headers at e_phoff 64, code
 * bytes 0xf4 at FAKE_ELF_CODE_OFF, data bytes 0x5a at FAKE_ELF_DATA_OFF.
 * Return: FAKE_ELF_SIZE.
 */
size_t fake_elf_build(uint8_t *buf);

#endif /* FORKVM_TESTS_HELPERS_FAKE_ELF_H */
