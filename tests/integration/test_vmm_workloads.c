// SPDX-License-Identifier: MIT
/*
 * Every workload of the test guest through `forkvm run`, under KVM (directly or
 * in the nested guest of scripts/in-kvm).  Small memory, short runs: inside the
 * nested guest everything is emulated.
 */
#include "tests/integration/test_vmm_helpers.h"

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

Test(vmm_workloads, memcheck_passes_and_reports_a_checksum, .timeout = 120)
{
	vmm_kvm_or_skip();
	cr_assert_eq(run_workload("memcheck", "1", NULL), 0, "%s", out);
	cr_expect_not_null(strstr(out, "result: 0x"), "%s", out);
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
	char disk[300];

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "wrong.img");
	make_disk(disk, "0x1");
	cr_assert_neq(run_workload("blkread", "1", disk), 0, "%s", out);
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
