// SPDX-License-Identifier: MIT
/*
 * Regression tests for file and command-line input the VMM must refuse
 * cleanly (vmm/elf.c, vmm/cli.c).  No KVM needed: the ELF is loaded into an
 * mm space, the command line only parsed.
 */
#include <criterion/criterion.h>
#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "mm/mm.h"
#include "tests/helpers/fake_elf.h"
#include "vmm/cli.h"
#include "vmm/elf.h"

#define MEM (16ull << 20)

static struct pool *pool;
static struct space *space;

static void setup(void)
{
	struct space_range r = { .gpa = 0, .size = MEM };

	cr_assert_eq(pool_create(NULL, &pool), 0);
	cr_assert_eq(space_create(pool, &r, 1, &space), 0);
}

static void teardown(void)
{
	space_destroy(space);
	pool_destroy(pool);
}

static void set_phdr(uint8_t *elf, unsigned int i, const Elf64_Phdr *ph)
{
	memcpy(elf + sizeof(Elf64_Ehdr) + i * sizeof(*ph), ph, sizeof(*ph));
}

static void set_phnum(uint8_t *elf, uint16_t n)
{
	memcpy(elf + offsetof(Elf64_Ehdr, e_phnum), &n, sizeof(n));
}

TestSuite(vmm_input, .init = setup, .fini = teardown);

Test(vmm_input, segment_with_file_bytes_but_no_memory_size_is_refused)
{
	uint8_t elf[FAKE_ELF_SIZE], probe[16], zero[16] = { 0 };
	struct elf_image img;
	char err[256] = "";
	/* p_memsz 0 used to skip every check, then elf_load copied p_filesz
	 * bytes from past the file's end to a GPA below 1 MiB. */
	Elf64_Phdr bad = {
		.p_type = PT_LOAD,
		.p_flags = PF_R,
		.p_offset = 1ull << 40,
		.p_paddr = 0x1000,
		.p_vaddr = 0x1000,
		.p_filesz = 0x100,
		.p_memsz = 0,
	};

	fake_elf_build(elf);
	set_phdr(elf, 2, &bad);
	set_phnum(elf, 3);
	cr_assert_neq(elf_load(space, elf, sizeof(elf), &img, err, sizeof(err)), 0);
	cr_expect_not_null(strstr(err, "p_filesz > p_memsz") ?: strstr(err, "outside the file"),
			   "%s", err);
	cr_assert_eq(space_read(space, 0x1000, probe, sizeof(probe)), 0);
	cr_expect_arr_eq(probe, zero, sizeof(probe));
}

Test(vmm_input, program_headers_at_an_unaligned_offset_are_read_safely)
{
	uint8_t *buf = malloc(FAKE_ELF_SIZE + 0x100), *elf = buf;
	uint64_t phoff = 0x43;
	struct elf_image img;
	char err[256] = "";
	uint8_t b;

	cr_assert_not_null(buf);
	fake_elf_build(elf);
	/* Move the table to an odd file offset (UBSan used to stop here on a
	 * misaligned Elf64_Phdr load). */
	memmove(elf + phoff, elf + sizeof(Elf64_Ehdr), 2 * sizeof(Elf64_Phdr));
	memcpy(elf + offsetof(Elf64_Ehdr, e_phoff), &phoff, sizeof(phoff));
	cr_assert_eq(elf_load(space, elf, FAKE_ELF_SIZE, &img, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(img.entry, FAKE_ELF_CODE_GPA);
	cr_assert_eq(space_read(space, FAKE_ELF_DATA_GPA, &b, 1), 0);
	cr_expect_eq(b, 0x5a);
	free(buf);
}

Test(vmm_input, mkdisk_size_with_leading_space_and_minus_is_refused)
{
	char *argv[] = { "forkvm", "mkdisk", "disk.img", " -512", NULL };
	char err[256] = "";
	struct cli cli;

	/* strtoull skips the space and negates: 2^64 - 512 bytes of pattern. */
	cr_expect_neq(cli_parse(4, argv, &cli, err, sizeof(err)), 0, "size %llu",
		      (unsigned long long)cli.disk_size);
	cr_expect_not_null(strstr(err, "SIZE"), "%s", err);
}

Test(vmm_input, cpus_with_leading_space_is_refused)
{
	char *argv[] = { "forkvm", "run",    "--guest", "test", "--workload",
			 "hello",  "--cpus", " 2",	NULL };
	char err[256] = "";
	struct cli cli;

	cr_expect_neq(cli_parse(8, argv, &cli, err, sizeof(err)), 0);
	cr_expect_not_null(strstr(err, "--cpus"), "%s", err);
}
