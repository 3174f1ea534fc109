// SPDX-License-Identifier: MIT
/*
 * forkvm's command line: bad arguments exit 2 with one line naming the
 * argument, --help lists every option, mkdisk makes and checks test disks.
 * None of this needs KVM.
 */
#include "tests/integration/test_vmm_helpers.h"

static char out[VMM_OUT_MAX];

static unsigned int count_lines(const char *s)
{
	unsigned int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Exit 2 and one line naming @name, for forkvm with @args. */
static void expect_usage_error(const char *name, const char *const *args)
{
	int st = vmm_run(out, sizeof(out), args);

	cr_expect_eq(st, 2, "status %d for a bad %s; output:\n%s", st, name, out);
	cr_expect_not_null(strstr(out, name), "the message does not name %s:\n%s", name, out);
	cr_expect_eq(count_lines(out), 1, "not exactly one line:\n%s", out);
}

Test(vmm_cli, bad_mem_sizes_name_mem)
{
	static const char *const bad[] = { "1k", "8M", "4G", "12Q",
					   "",	 "-1", "0x", "100000000000000000000" };
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = { "run",	"--guest", "test", "--workload",
				       "hello", "--mem",   bad[i], NULL };

		expect_usage_error("--mem", args);
	}
}

Test(vmm_cli, bad_cpus_name_cpus)
{
	static const char *const bad[] = { "0", "65", "-1", "two", "1.5" };
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *args[] = { "run",	"--guest", "test", "--workload",
				       "hello", "--cpus",  bad[i], NULL };

		expect_usage_error("--cpus", args);
	}
}

Test(vmm_cli, missing_or_bad_guest_and_workload_are_named)
{
	const char *a1[] = { "run", "--workload", "hello", NULL };
	const char *a2[] = { "run", "--guest", "linux", "--workload", "hello", NULL };
	const char *a3[] = { "run", "--guest", "test", NULL };
	const char *a4[] = { "run", "--guest", "test", "--workload", "Bad Name!", NULL };

	expect_usage_error("--guest", a1);
	expect_usage_error("--guest", a2);
	expect_usage_error("--workload", a3);
	expect_usage_error("--workload", a4);
}

Test(vmm_cli, unknown_options_values_and_commands_are_named)
{
	const char *a1[] = {
		"run", "--guest", "test", "--workload", "hello", "--frobnicate", NULL
	};
	const char *a2[] = { "run", "--guest", "test", "--workload", "hello", "--mem", NULL };
	const char *a3[] = { "launch", NULL };
	const char *a4[] = { "run",   "--guest", "test",     "--workload",
			     "hello", "--disk",	 "x.img,rw", NULL };
	const char *a5[] = { "run", "--guest", "test", "--workload", "hello", "stray", NULL };
	const char *a6[] = { "mkdisk", "--seed", "zz", "f.img", NULL };
	const char *a7[] = { "mkdisk", "f.img", "1000", NULL };

	expect_usage_error("--frobnicate", a1);
	expect_usage_error("--mem", a2);
	expect_usage_error("launch", a3);
	expect_usage_error("--disk", a4);
	expect_usage_error("stray", a5);
	expect_usage_error("--seed", a6);
	expect_usage_error("SIZE", a7);
}

Test(vmm_cli, a_bad_letter_in_a_cluster_of_short_options_is_named)
{
	const char *a1[] = { "run", "-xy", NULL };
	const char *a2[] = { "run", "--guest", "test", "-xy", NULL };

	/* Were "run: unknown option" and "test: unknown option". */
	expect_usage_error("'-xy': unknown option -x", a1);
	expect_usage_error("'-xy': unknown option -x", a2);
}

Test(vmm_cli, help_lists_every_option)
{
	static const char *const opts[] = { "--guest",	    "--workload",    "--args",
					    "--mem",	    "--cpus",	     "--disk",
					    "--console",    "--guest-elf",   "--timeout",
					    "--pause-test", "mkdisk",	     "--seed",
					    "--check",	    "scripts/in-kvm" };
	const char *args[] = { "--help", NULL };
	unsigned int i;

	cr_assert_eq(vmm_run(out, sizeof(out), args), 0);
	for (i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		cr_expect_not_null(strstr(out, opts[i]), "--help does not mention %s", opts[i]);
}

Test(vmm_cli, mkdisk_makes_a_disk_that_checks_and_a_wrong_seed_fails)
{
	char path[300];
	const char *make[] = { "mkdisk", "--seed", "0x1234", path, "64K", NULL };
	const char *good[] = { "mkdisk", "--check", "--seed", "0x1234", path, NULL };
	const char *bad[] = { "mkdisk", "--check", path, NULL };
	const char *size[] = { "mkdisk", "--check", "--seed", "0x1234", path, "128K", NULL };

	vmm_path(path, sizeof(path), "disk.img");
	cr_assert_eq(vmm_run(out, sizeof(out), make), 0, "%s", out);
	cr_assert_eq(vmm_run(out, sizeof(out), good), 0, "%s", out);
	cr_assert_eq(vmm_run(out, sizeof(out), bad), 1, "%s", out);
	cr_expect_not_null(strstr(out, "mismatch at byte offset 0x0"), "%s", out);
	cr_assert_eq(vmm_run(out, sizeof(out), size), 1, "%s", out);
	unlink(path);
}

Test(vmm_cli, missing_kvm_or_guest_is_one_clear_line)
{
	const char *args[] = { "run",
			       "--guest",
			       "test",
			       "--workload",
			       "hello",
			       "--guest-elf",
			       "/nonexistent/test.elf",
			       NULL };
	int st = vmm_run(out, sizeof(out), args);

	cr_expect_eq(st, 1, "status %d:\n%s", st, out);
	/* Without KVM the message points to scripts/in-kvm; with it, it names the ELF. */
	cr_expect(strstr(out, "scripts/in-kvm") || strstr(out, "/nonexistent/test.elf"), "%s", out);
}
