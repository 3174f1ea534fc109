// SPDX-License-Identifier: MIT
/*
 * Live clones (vmm/clone.c) in this process and through `forkvm run --clones`:
 * a clone taken in the middle of memcheck ends with the checksum of an
 * unforked run (as does its parent, and a clone of the clone), one taken during
 * 2-vCPU atomics gets the exact total, parent and child memory are
 * independent, and a VM with a disk is cloned and both read all of it
 * (issue 10; clones with requests in flight: test_vmm_clone_dma.c).
 *
 * "In the middle" is made sure of, not hoped for: the in-process guests run
 * with hold=..., so they wait mid-run until the test writes their hold word
 * (docs/test-guest.md), and the test clones at console lines.
 */
#include "tests/integration/test_vmm_helpers.h"

#include "mm/mm.h"
#include "vmm/cli.h"
#include "vmm/clone.h"
#include "vmm/machine.h"
#include "vmm/mkdisk.h"

#define MEM (32ULL << 20)
#define WAIT_MS 120000

static struct machine *start(const char *workload, const char *args, unsigned int ncpus,
			     const char *disk)
{
	struct machine_config cfg;
	struct machine *m;
	char err[512], console[300];

	vmm_kvm_or_skip();
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = MEM;
	cfg.ncpus = ncpus;
	cfg.workload = workload;
	cfg.args = args;
	cfg.guest_elf = vmm_guest();
	vmm_path(console, sizeof(console), "console.txt");
	cfg.console = console;
	/* A tap (empty prefix): the test waits for console lines. */
	cfg.console_prefix = "";
	cfg.quiet_results = true;
	if (disk) {
		cfg.ndisks = 1;
		cfg.disks[0].path = disk;
	}
	cr_assert_eq(machine_create(&cfg, &m, err, sizeof(err)), 0, "machine_create: %s", err);
	cr_assert_eq(machine_start(m), 0);
	return m;
}

static struct machine *clone_of(struct machine *parent, const char *name)
{
	struct clone_config cc = { .quiet_results = true, .console_prefix = "" };
	struct clone_timing t;
	struct machine *child = NULL;
	char err[512], console[300];
	int ret;

	vmm_path(console, sizeof(console), name);
	cc.console = console;
	ret = machine_clone(parent, &cc, &child, &t, err, sizeof(err));
	cr_assert_eq(ret, 0, "machine_clone: %s (%s)", err, strerror(-ret));
	cr_log_info("%s: parent paused %.2f ms (fork %.2f ms), prepared in %.2f ms", name,
		    t.paused_ns / 1e6, t.fork_ns / 1e6, t.prepare_ns / 1e6);
	return child;
}

/* Wait for the guest's exit; its last port-0x503 result.  Not destroyed. */
static uint32_t result_of(struct machine *m, const char *name)
{
	int status = machine_wait(m, WAIT_MS);

	cr_assert_eq(status, 0, "%s: guest status %d: %s", name, status, machine_stop_reason(m));
	cr_assert_geq(m->cpus.nresults, 1, "%s: no result reported", name);
	return m->cpus.results[m->cpus.nresults - 1];
}

static uint32_t unforked(const char *workload, const char *args, unsigned int ncpus)
{
	struct machine *m = start(workload, args, ncpus, NULL);
	uint32_t r = result_of(m, "unforked");

	machine_destroy(m);
	return r;
}

/* The guests hold (hold=...) until the test writes their hold word: release all. */
static void release_all(struct machine *const *vm, unsigned int n, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		vmm_release(vm[i], gpa);
}

/*
 * A clone ran the rest of the run itself: its console (from the clone on)
 * has @last and no start-up line.
 */
static void expect_ran_the_rest(const char *name, const char *last)
{
	static char text[64 * 1024];
	char path[300];

	vmm_path(path, sizeof(path), name);
	vmm_read_file(path, text, sizeof(text));
	cr_expect_not_null(strstr(text, last), "%s: no '%s':\n%s", name, last, text);
	cr_expect_null(strstr(text, "guest: workload"), "%s: booted again:\n%s", name, text);
}

Test(vmm_clone, memcheck_clones_end_with_the_unforked_checksum, .timeout = 300)
{
	struct machine *vm[3];
	char console[300];
	uint32_t want, r[3];
	uint64_t gpa;
	unsigned int i;

	want = unforked("memcheck", "passes=4", 2);
	/*
	 * hold=3: the parent waits after pass 3 until the test lets it go on,
	 * so it cannot end before the clones are made, however fast it runs.
	 */
	vm[0] = start("memcheck", "passes=4 hold=3", 2, NULL);
	/* Line 1 is the start-up line, line 2 "pass 1/4 ok": mid-run, memory written. */
	cr_assert_eq(machine_wait_console(vm[0], 2, WAIT_MS), 0, "no 'pass 1/4' line");
	vm[1] = clone_of(vm[0], "clone1.txt");
	/* A clone of the clone: same family, same pool. */
	vm[2] = clone_of(vm[1], "clone2.txt");
	/* Line 5: the parent holds after pass 3 (the clones at the same point). */
	cr_assert_eq(machine_wait_console(vm[0], 5, WAIT_MS), 0, "no hold line");
	vmm_path(console, sizeof(console), "console.txt");
	gpa = vmm_hold_word(console);
	release_all(vm, 3, gpa);
	for (i = 0; i < 3; i++) {
		r[i] = result_of(vm[i], i ? "clone" : "parent");
		cr_expect_eq(r[i], want, "VM %u: checksum 0x%08x, unforked 0x%08x", i, r[i], want);
	}
	expect_ran_the_rest("clone1.txt", "memcheck: pass 4/4 ok");
	expect_ran_the_rest("clone2.txt", "memcheck: pass 4/4 ok");
	for (i = 3; i-- > 0;)
		machine_destroy(vm[i]);
}

Test(vmm_clone, atomics_on_two_vcpus_is_exact_in_every_clone, .timeout = 300)
{
	struct machine *vm[3];
	char console[300];
	unsigned int i;

	/* hold=1: every vCPU waits half-way through its loop until released. */
	vm[0] = start("atomics", "iters=4000000 hold=1", 2, NULL);
	/* Line 1 is the start-up line: the loops are starting, and cannot end. */
	cr_assert_eq(machine_wait_console(vm[0], 1, WAIT_MS), 0, "no start-up line");
	vm[1] = clone_of(vm[0], "clone1.txt");
	vm[2] = clone_of(vm[0], "clone2.txt");
	/* Line 2: vCPU 0 holds half-way. */
	cr_assert_eq(machine_wait_console(vm[0], 2, WAIT_MS), 0, "no hold line");
	vmm_path(console, sizeof(console), "console.txt");
	release_all(vm, 3, vmm_hold_word(console));
	for (i = 0; i < 3; i++)
		cr_expect_eq(result_of(vm[i], i ? "clone" : "parent"), 8000000u,
			     "VM %u: atomics total wrong", i);
	expect_ran_the_rest("clone1.txt", "expected 8000000 -> ok");
	expect_ran_the_rest("clone2.txt", "expected 8000000 -> ok");
	for (i = 3; i-- > 0;)
		machine_destroy(vm[i]);
}

/*
 * memcheck's verify already fails a guest that sees the other VM's writes; this
 * checks it from the host too: after both ran, a write into one space is
 * invisible in the other, in both directions.
 */
Test(vmm_clone, parent_and_child_memory_are_independent, .timeout = 300)
{
	const uint64_t marker_p = 0x706172656e74ULL, marker_c = 0x6368696c64ULL;
	struct machine *vm[2];
	char console[300];
	uint64_t gpa, before, got;

	/* Held after pass 1 (line 3) until both are released: cloned mid-run. */
	vm[0] = start("memcheck", "passes=2 hold=1", 1, NULL);
	cr_assert_eq(machine_wait_console(vm[0], 3, WAIT_MS), 0, "no hold line");
	vm[1] = clone_of(vm[0], "child.txt");
	vmm_path(console, sizeof(console), "console.txt");
	release_all(vm, 2, vmm_hold_word(console));
	result_of(vm[0], "parent");
	result_of(vm[1], "child");
	gpa = vm[0]->image.end; /* the free range: written by memcheck in both */
	cr_assert_eq(space_read(vm[1]->space, gpa, &before, sizeof(before)), 0);
	cr_assert_eq(space_write(vm[0]->space, gpa, &marker_p, sizeof(marker_p)), 0);
	cr_assert_eq(space_read(vm[1]->space, gpa, &got, sizeof(got)), 0);
	cr_expect_eq(got, before, "the parent's write shows in the child");
	cr_assert_eq(space_write(vm[1]->space, gpa + 8, &marker_c, sizeof(marker_c)), 0);
	cr_assert_eq(space_read(vm[0]->space, gpa + 8, &got, sizeof(got)), 0);
	cr_expect_neq(got, marker_c, "the child's write shows in the parent");
	cr_assert_eq(space_read(vm[0]->space, gpa, &got, sizeof(got)), 0);
	cr_expect_eq(got, marker_p);
	machine_destroy(vm[1]);
	machine_destroy(vm[0]);
}

/* Issue 10: a VM with a disk is cloned (its disk forked); both read it all. */
Test(vmm_clone, a_vm_with_a_disk_is_cloned_and_both_finish, .timeout = 300)
{
	struct machine *m, *child;
	char disk[300], err[512];

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "clone-disk.img");
	cr_assert_eq(mkdisk_write(disk, 1 << 20, CLI_DEFAULT_DISK_SEED, err, sizeof(err)), 0, "%s",
		     err);
	m = start("blkread", NULL, 1, disk);
	cr_assert_eq(machine_wait_console(m, 1, WAIT_MS), 0, "no start-up line");
	child = clone_of(m, "disk-child.txt");
	cr_expect_eq(machine_wait(child, WAIT_MS), 0, "the child did not finish well: %s",
		     machine_stop_reason(child));
	cr_expect_eq(machine_wait(m, WAIT_MS), 0, "the parent did not finish well: %s",
		     machine_stop_reason(m));
	machine_destroy(child);
	machine_destroy(m);
}

Test(vmm_clone, a_stopped_vm_cannot_be_cloned, .timeout = 120)
{
	struct clone_config cc = { .quiet_results = true };
	struct machine *m, *child = NULL;
	char err[512];

	m = start("hello", NULL, 1, NULL);
	cr_assert_eq(machine_wait(m, WAIT_MS), 0);
	cr_expect_eq(machine_clone(m, &cc, &child, NULL, err, sizeof(err)), -ESRCH, "%s", err);
	cr_expect_null(child);
	machine_destroy(m);
}

/* "forkvm: parent  0  0x..." rows: the result column of @name. */
static const char *row_result(const char *out, const char *name, char *buf, size_t len)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "forkvm: %-9s    0  0x", name);
	p = strstr(out, key);
	if (!p)
		return NULL;
	snprintf(buf, len, "%.10s", p + strlen(key) - 2);
	return buf;
}

Test(vmm_clone, cli_clones_report_every_vm_and_the_memory, .timeout = 300)
{
	static char out[VMM_OUT_MAX];
	const char *args[] = { "run",	   "--guest",	      "test",	  "--workload",
			       "memcheck", "--args",	      "passes=3", "--mem",
			       "32M",	   "--clones",	      "3",	  "--timeout",
			       "120",	   "--clone-at-line", "2",	  NULL };
	char want[16], got[16];
	const char *names[] = { "parent", "clone 1", "clone 2", "clone 3" };
	const char *r;
	unsigned int i;

	vmm_kvm_or_skip();
	cr_assert_eq(vmm_run(out, sizeof(out), args), 0, "%s", out);
	r = row_result(out, "parent", want, sizeof(want));
	cr_assert_not_null(r, "no parent row:\n%s", out);
	for (i = 1; i < 4; i++) {
		cr_expect_not_null(row_result(out, names[i], got, sizeof(got)), "no %s row:\n%s",
				   names[i], out);
		cr_expect_str_eq(got, want, "%s: checksum differs:\n%s", names[i], out);
	}
	cr_expect_not_null(strstr(out, "[clone 3] memcheck: pass 3/3 ok"), "%s", out);
	cr_expect_not_null(strstr(out, "live right after cloning"), "%s", out);
	cr_expect_not_null(strstr(out, "COW faults"), "%s", out);
}

Test(vmm_clone, cli_clone_of_a_vm_with_a_disk_reads_it_all_in_both, .timeout = 300)
{
	static char out[VMM_OUT_MAX];
	char disk[300], err[512];
	const char *args[] = { "run",	"--guest",   "test",   "--workload", "blkread",
			       "--mem", "32M",	     "--disk", disk,	     "--clones",
			       "1",	"--timeout", "120",    NULL };

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "cli-disk.img");
	cr_assert_eq(mkdisk_write(disk, 1 << 20, CLI_DEFAULT_DISK_SEED, err, sizeof(err)), 0, "%s",
		     err);
	cr_expect_eq(vmm_run(out, sizeof(out), args), 0, "%s", out);
	cr_expect_not_null(strstr(out, "[parent] blkread: 2048 sectors (1024 KiB) ok"), "%s", out);
	cr_expect_not_null(strstr(out, "[clone 1] blkread: 2048 sectors (1024 KiB) ok"), "%s", out);
	cr_expect_not_null(strstr(out, "forkvm: parent       0"), "the parent failed:\n%s", out);
	cr_expect_not_null(strstr(out, "forkvm: clone 1      0"), "the clone failed:\n%s", out);
}

Test(vmm_clone, cli_rejects_bad_clone_arguments)
{
	static char out[VMM_OUT_MAX];
	const char *zero[] = { "run",	"--guest",  "test", "--workload",
			       "hello", "--clones", "0",    NULL };
	const char *many[] = { "run",	"--guest",  "test", "--workload",
			       "hello", "--clones", "65",   NULL };
	const char *after[] = { "run",	 "--guest",	  "test", "--workload",
				"hello", "--clone-after", "10",	  NULL };
	const char *both[] = { "run",	"--guest",	   "test", "--workload",
			       "hello", "--clones",	   "1",	   "--clone-after",
			       "10",	"--clone-at-line", "2",	   NULL };

	cr_expect_eq(vmm_run(out, sizeof(out), zero), 2, "%s", out);
	cr_expect_not_null(strstr(out, "--clones '0'"), "%s", out);
	cr_expect_eq(vmm_run(out, sizeof(out), many), 2, "%s", out);
	cr_expect_not_null(strstr(out, "--clones '65'"), "%s", out);
	cr_expect_eq(vmm_run(out, sizeof(out), after), 2, "%s", out);
	cr_expect_not_null(strstr(out, "needs --clones") || strstr(out, "need --clones"), "%s",
			   out);
	cr_expect_eq(vmm_run(out, sizeof(out), both), 2, "%s", out);
}
