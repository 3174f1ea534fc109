// SPDX-License-Identifier: MIT
/*
 * Every workload of the test guest through `forkvm run`, under KVM (directly or
 * in the nested guest of scripts/in-kvm).  Small memory, short runs: inside the
 * nested guest everything is emulated.
 */
#include "tests/integration/test_vmm_helpers.h"

#include <inttypes.h>

#include "devices/disk_pattern.h"

#define TIMEOUT "60"

static char out[VMM_OUT_MAX];

static int run_workload(const char *workload, const char *cpus, const char *disk)
{
	const char *args[] = { "run",	 "--guest",   "test",  "--workload",
			       workload, "--mem",     "64M",   "--cpus",
			       cpus,	 "--timeout", TIMEOUT, disk ? "--disk" : NULL,
			       disk,	 NULL };

	return vmm_run(out, sizeof(out), args);
}

static void make_disk(const char *path, const char *seed)
{
	const char *args[] = { "mkdisk", "--seed", seed, path, "2M", NULL };

	cr_assert_eq(vmm_run(out, sizeof(out), args), 0, "mkdisk: %s", out);
}

Test(vmm_workloads, hello_exits_zero_with_its_greeting, .timeout = 120)
{
	vmm_kvm_or_skip();
	cr_assert_eq(run_workload("hello", "1", NULL), 0, "%s", out);
	cr_expect_not_null(strstr(out, "hello from forkvm test guest"), "%s", out);
}

/*
 * memcheck's checksum, computed here from docs/test-guest.md rather than with
 * the guest's code: the word at GPA a in pass p is
 * (a ^ p << 56 ^ 0x6d656d636b00) * 0x9e3779b97f4a7c15, summed over the
 * page-aligned free range and every pass, folded to 32 bits (lo ^ hi).
 * The free range is the one the guest printed on its first line.
 */
static uint32_t memcheck_checksum(const char *console, unsigned int passes)
{
	unsigned long long start, size;
	uint64_t a, lo, hi, sum = 0;
	const char *p = strstr(console, "free 0x");
	unsigned int pass;

	cr_assert_not_null(p, "no free range on the first line:\n%s", console);
	cr_assert_eq(sscanf(p, "free 0x%llx+0x%llx", &start, &size), 2, "%.60s", p);
	lo = (start + 4095) & ~4095ULL;
	hi = (start + size) & ~4095ULL;
	for (pass = 0; pass < passes; pass++)
		for (a = lo; a < hi; a += 8)
			sum +=
			    (a ^ (uint64_t)pass << 56 ^ 0x6d656d636b00ULL) * 0x9e3779b97f4a7c15ULL;
	return (uint32_t)sum ^ (uint32_t)(sum >> 32);
}

/* @text ends a line of @s (guest lines may end in "\r\n"). */
static bool ends_a_line(const char *s, const char *text)
{
	size_t n = strlen(text);

	for (; (s = strstr(s, text)) != NULL; s++)
		if (s[n] == '\r' || s[n] == '\n')
			return true;
	return false;
}

/* The checksum both on the guest's last memcheck line and as the result. */
static void expect_memcheck_checksum(unsigned int passes)
{
	char line[64];
	uint32_t want = memcheck_checksum(out, passes);

	snprintf(line, sizeof(line), "ok checksum 0x%08" PRIx32, want);
	cr_expect(ends_a_line(out, line), "want '%s':\n%s", line, out);
	snprintf(line, sizeof(line), "result: 0x%08" PRIx32, want);
	cr_expect(ends_a_line(out, line), "want '%s':\n%s", line, out);
}

Test(vmm_workloads, memcheck_passes_and_reports_a_checksum, .timeout = 120)
{
	vmm_kvm_or_skip();
	cr_assert_eq(run_workload("memcheck", "1", NULL), 0, "%s", out);
	expect_memcheck_checksum(1);
}

Test(vmm_workloads, memcheck_on_two_vcpus_in_three_passes_gives_the_same_sum, .timeout = 180)
{
	const char *args[] = { "run",	   "--guest",	"test",	  "--workload", "memcheck",
			       "--mem",	   "64M",	"--cpus", "2",		"--args",
			       "passes=3", "--timeout", TIMEOUT,  NULL };

	vmm_kvm_or_skip();
	cr_assert_eq(vmm_run(out, sizeof(out), args), 0, "%s", out);
	cr_expect_not_null(strstr(out, "memcheck: pass 3/3 ok"), "%s", out);
	expect_memcheck_checksum(3);
}

Test(vmm_workloads, atomics_on_one_vcpu_is_exact, .timeout = 120)
{
	vmm_kvm_or_skip();
	cr_assert_eq(run_workload("atomics", "1", NULL), 0, "%s", out);
	/* 1 vCPU x 100000 lock xadd. */
	cr_expect_not_null(strstr(out, "result: 0x000186a0"), "%s", out);
}

Test(vmm_workloads, atomics_on_two_vcpus_is_exact, .timeout = 120)
{
	vmm_kvm_or_skip();
	cr_assert_eq(run_workload("atomics", "2", NULL), 0, "%s", out);
	cr_expect_not_null(strstr(out, "result: 0x00030d40"), "%s", out);
}

Test(vmm_workloads, blkread_verifies_a_mkdisk_disk, .timeout = 120)
{
	char disk[300], arg[320];

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "read.img");
	make_disk(disk, "0x666f726b766d");
	snprintf(arg, sizeof(arg), "%s,ro", disk);
	cr_assert_eq(run_workload("blkread", "1", arg), 0, "%s", out);
	unlink(disk);
}

Test(vmm_workloads, blkread_on_a_wrong_disk_fails, .timeout = 120)
{
	char disk[300], want[160];
	uint64_t got;
	int fd;

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "wrong.img");
	make_disk(disk, "0x1");
	/* 1 is also forkvm's host error: the guest's own lines say which. */
	cr_assert_eq(run_workload("blkread", "1", disk), 1, "%s", out);
	cr_expect_not_null(strstr(out, "blkread: get-id status 0"), "%s", out);
	/* The first word differs: the file's own, and the one blkread expects. */
	fd = open(disk, O_RDONLY);
	cr_assert_geq(fd, 0, "%s: %s", disk, strerror(errno));
	cr_assert_eq(pread(fd, &got, sizeof(got), 0), (ssize_t)sizeof(got));
	close(fd);
	snprintf(want, sizeof(want),
		 "blkread: FAIL: mismatch at disk offset 0x0: got 0x%" PRIx64
		 ", expected 0x%" PRIx64,
		 got, disk_pattern_word(DISK_PATTERN_SEED_READ, 0));
	cr_expect(ends_a_line(out, want), "want '%s':\n%s", want, out);
	cr_expect(ends_a_line(out, "guest: exit 1"), "%s", out);
	unlink(disk);
}

Test(vmm_workloads, blkwrite_leaves_the_pattern_the_host_checks, .timeout = 120)
{
	char disk[300];
	const char *check[] = { "mkdisk", "--check", "--seed", "0x777269746521", disk, NULL };

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "write.img");
	make_disk(disk, "0x1");
	cr_assert_eq(run_workload("blkwrite", "1", disk), 0, "%s", out);
	cr_assert_eq(vmm_run(out, sizeof(out), check), 0, "host check: %s", out);
	unlink(disk);
}

Test(vmm_workloads, badvirtio_gets_an_error_for_every_bad_chain, .timeout = 120)
{
	char disk[300], *p;
	unsigned int cases = 0;

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "bad.img");
	make_disk(disk, "0x666f726b766d");
	/* The VMM must survive the guest's malformed chains and report its exit. */
	cr_expect_eq(run_workload("badvirtio", "1", disk), 0, "%s", out);
	cr_expect_null(strstr(out, "-> BAD"), "%s", out);
	cr_expect_not_null(strstr(out, "well-formed request after the bad ones"), "%s", out);
	for (p = out; (p = strstr(p, "badvirtio: ")) != NULL; p++)
		cases += strstr(p, "-> ok") && strchr(p, '\n') > strstr(p, "-> ok");
	cr_expect_geq(cases, 8, "only %u cases answered ok:\n%s", cases, out);
	unlink(disk);
}
