// SPDX-License-Identifier: MIT
/*
 * forkvm confined by its seccomp filters (vmm/seccomp.c) over the main
 * workloads, as a user runs it: a disk read by a VM and its clone, and
 * guest forks with disk reads in flight (device, fault, vCPU and control
 * threads all busy).  Kill mode is the strict check: any call outside a
 * list ends the run with SIGSYS; report mode would name it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tests/integration/test_vmm_helpers.h"
#include "vmm/cli.h"
#include "vmm/mkdisk.h"

static char out[VMM_OUT_MAX];

static void make_disk(char *path, size_t len, const char *name)
{
	char err[512];

	vmm_path(path, len, name);
	cr_assert_eq(mkdisk_write(path, 4 << 20, CLI_DEFAULT_DISK_SEED, err, sizeof(err)), 0, "%s",
		     err);
}

/* forkvm died of a signal (vmm_run() says -1), or printed a report line. */
static void expect_no_seccomp_end(int status)
{
	cr_expect_neq(status, -1, "forkvm died of a signal (SIGSYS?):\n%s", out);
	cr_expect_null(strstr(out, "forkvm: seccomp:"), "a forbidden call:\n%s", out);
}

Test(seccomp_run, a_vm_with_a_disk_and_its_clone_read_it_all_in_kill_mode, .timeout = 300)
{
	char disk[300];
	const char *args[] = {
		"run", "--seccomp=kill", "--guest", "test",	"--workload", "blkread",   "--mem",
		"32M", "--disk",	 disk,	    "--clones", "1",	      "--timeout", "120",
		NULL
	};
	int status;

	vmm_kvm_or_skip();
	make_disk(disk, sizeof(disk), "seccomp-blk.img");
	status = vmm_run(out, sizeof(out), args);
	expect_no_seccomp_end(status);
	cr_assert_eq(status, 0, "%s", out);
	cr_expect_not_null(strstr(out, "[parent] blkread: 8192 sectors (4096 KiB) ok"), "%s", out);
	cr_expect_not_null(strstr(out, "[clone 1] blkread: 8192 sectors (4096 KiB) ok"), "%s", out);
}

Test(seccomp_run, guest_forks_with_reads_in_flight_lose_nothing_confined, .timeout = 400)
{
	char disk[300], spec[320];
	const char *args[] = { "run",	     "--seccomp", "--guest", "test",
			       "--workload", "dmastress", "--args",  "forks=2 inflight=16",
			       "--mem",	     "32M",	  "--disk",  spec,
			       "--timeout",  "200",	  NULL };
	int status;

	vmm_kvm_or_skip();
	make_disk(disk, sizeof(disk), "seccomp-dma.img");
	/* Each read held 20 ms: the forks find some in flight. */
	snprintf(spec, sizeof(spec), "%s,latency=20ms", disk);
	status = vmm_run(out, sizeof(out), args);
	expect_no_seccomp_end(status);
	cr_assert_eq(status, 0, "%s", out);
	cr_expect_not_null(strstr(out, "forkvm: VM 0 forked VM 1"), "%s", out);
	cr_expect_not_null(strstr(out, "lost=0 misplaced=0"), "%s", out);
	cr_expect_null(strstr(out, "lost=1"), "%s", out);
}
