// SPDX-License-Identifier: MIT
/* The documented disk pattern generator and checker. */
#include <criterion/criterion.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/disk_pattern.h"

static char path[] = "/tmp/forkvm-pattern-XXXXXX";
static int fd = -1;

static void setup(void)
{
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
}

static void teardown(void)
{
	close(fd);
	unlink(path);
}

TestSuite(disk_pattern, .init = setup, .fini = teardown);

Test(disk_pattern, splitmix64_matches_the_reference_values)
{
	/* splitmix64 of 0 and 1 (the well-known first outputs of seed 0/1). */
	cr_expect_eq(disk_pattern_splitmix64(0), 0xe220a8397b1dcdafull);
	cr_expect_eq(disk_pattern_splitmix64(1), 0x910a2dec89025cc1ull);
}

Test(disk_pattern, word_at_offset_is_splitmix_of_offset_xor_seed)
{
	uint64_t s = DISK_PATTERN_SEED_READ;

	cr_expect_eq(disk_pattern_word(s, 64), disk_pattern_splitmix64(64 ^ s));
}

Test(disk_pattern, filled_file_has_little_endian_words)
{
	uint64_t w;

	cr_assert_eq(disk_pattern_fill(fd, 4096, 7), 0);
	cr_assert_eq(pread(fd, &w, 8, 8), 8);
	cr_expect_eq(le64toh(w), disk_pattern_word(7, 8));
	cr_expect_eq(lseek(fd, 0, SEEK_END), 4096);
}

Test(disk_pattern, filled_file_checks_clean)
{
	uint64_t bad = 0;

	cr_assert_eq(disk_pattern_fill(fd, (3u << 20) + 13, 42), 0);
	cr_expect_eq(disk_pattern_check(fd, 42, &bad), 0);
}

Test(disk_pattern, check_reports_first_bad_offset)
{
	uint64_t bad = 0;
	uint8_t b;

	cr_assert_eq(disk_pattern_fill(fd, 2u << 20, 42), 0);
	cr_assert_eq(pread(fd, &b, 1, 1500000), 1);
	b ^= 0x10;
	cr_assert_eq(pwrite(fd, &b, 1, 1500000), 1);
	cr_expect_eq(disk_pattern_check(fd, 42, &bad), 1);
	cr_expect_eq(bad, 1500000);
}

Test(disk_pattern, other_seed_does_not_check)
{
	uint64_t bad = 99;

	cr_assert_eq(disk_pattern_fill(fd, 4096, DISK_PATTERN_SEED_READ), 0);
	cr_expect_eq(disk_pattern_check(fd, DISK_PATTERN_SEED_WRITE, &bad), 1);
	cr_expect_lt(bad, 8);
}

Test(disk_pattern, buffer_fill_from_unaligned_offset_matches_file)
{
	uint8_t a[100], b[100];

	cr_assert_eq(disk_pattern_fill(fd, 4096, 5), 0);
	cr_assert_eq(pread(fd, a, sizeof(a), 13), 100);
	disk_pattern_fill_buf(b, 13, sizeof(b), 5);
	cr_expect_eq(memcmp(a, b, 100), 0);
}
