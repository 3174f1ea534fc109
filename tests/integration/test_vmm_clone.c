// SPDX-License-Identifier: MIT
/*
 * Live clones (vmm/clone.c) in this process and through `forkvm run --clones`:
 * a clone taken in the middle of memcheck ends with the checksum of an
 * unforked run (as does its parent, and a clone of the clone), one taken during
 * 2-vCPU atomics gets the exact total, parent and child memory are
 * independent, and a VM with a disk is refused without harm to it.
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

Test(vmm_clone, memcheck_clones_end_with_the_unforked_checksum, .timeout = 300)
{
	struct machine *parent, *c1, *c2;
	uint32_t want, rp, r1, r2;

	want = unforked("memcheck", "passes=4", 2);
	parent = start("memcheck", "passes=4", 2, NULL);
	/* Line 1 is the start-up line, line 2 "pass 1/4 ok": mid-run, memory written. */
	cr_assert_eq(machine_wait_console(parent, 2, WAIT_MS), 0, "no 'pass 1/4' line");
	c1 = clone_of(parent, "clone1.txt");
	/* A clone of the clone: same family, same pool. */
	c2 = clone_of(c1, "clone2.txt");
	/* Mid-run: the parent had not printed its checksum (line 6) yet. */
	cr_expect_eq(machine_wait_console(parent, 6, 0), -ETIMEDOUT,
		     "memcheck ended before the clones: not a mid-run clone");
	rp = result_of(parent, "parent");
	r1 = result_of(c1, "clone 1");
	r2 = result_of(c2, "clone 2");
	cr_expect_eq(rp, want, "parent 0x%08x, unforked 0x%08x", rp, want);
	cr_expect_eq(r1, want, "clone 0x%08x, unforked 0x%08x", r1, want);
	cr_expect_eq(r2, want, "clone of the clone 0x%08x, unforked 0x%08x", r2, want);
	machine_destroy(c2);
	machine_destroy(c1);
	machine_destroy(parent);
}

Test(vmm_clone, atomics_on_two_vcpus_is_exact_in_every_clone, .timeout = 300)
{
	struct machine *vm[3];
	unsigned int i;

	vm[0] = start("atomics", "iters=20000000", 2, NULL);
	cr_assert_eq(machine_wait_console(vm[0], 1, WAIT_MS), 0, "no start-up line");
	vm[1] = clone_of(vm[0], "clone1.txt");
	vm[2] = clone_of(vm[0], "clone2.txt");
	/* Mid-run: the parent had not printed its total (line 2) yet. */
	cr_expect_eq(machine_wait_console(vm[0], 2, 0), -ETIMEDOUT,
		     "atomics ended before the clones: not a mid-run clone");
	for (i = 0; i < 3; i++)
		cr_expect_eq(result_of(vm[i], i ? "clone" : "parent"), 40000000u,
			     "VM %u: atomics total wrong", i);
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
	struct machine *parent, *child;
	uint64_t gpa, before, got;

	parent = start("memcheck", "passes=2", 1, NULL);
	cr_assert_eq(machine_wait_console(parent, 2, WAIT_MS), 0, "no 'pass 1/2' line");
	child = clone_of(parent, "child.txt");
	result_of(parent, "parent");
	result_of(child, "child");
	gpa = parent->image.end; /* the free range: written by memcheck in both */
	cr_assert_eq(space_read(child->space, gpa, &before, sizeof(before)), 0);
	cr_assert_eq(space_write(parent->space, gpa, &marker_p, sizeof(marker_p)), 0);
	cr_assert_eq(space_read(child->space, gpa, &got, sizeof(got)), 0);
	cr_expect_eq(got, before, "the parent's write shows in the child");
	cr_assert_eq(space_write(child->space, gpa + 8, &marker_c, sizeof(marker_c)), 0);
	cr_assert_eq(space_read(parent->space, gpa + 8, &got, sizeof(got)), 0);
	cr_expect_neq(got, marker_c, "the child's write shows in the parent");
	cr_assert_eq(space_read(parent->space, gpa, &got, sizeof(got)), 0);
	cr_expect_eq(got, marker_p);
	machine_destroy(child);
	machine_destroy(parent);
}

Test(vmm_clone, a_vm_with_a_disk_is_refused_and_keeps_running, .timeout = 300)
{
	struct clone_config cc = { .quiet_results = true };
	struct machine *m, *child = NULL;
	char disk[300], err[512];
	int ret;

	vmm_kvm_or_skip();
	vmm_path(disk, sizeof(disk), "clone-disk.img");
	cr_assert_eq(mkdisk_write(disk, 1 << 20, CLI_DEFAULT_DISK_SEED, err, sizeof(err)), 0, "%s",
		     err);
	m = start("blkread", NULL, 1, disk);
	cr_assert_eq(machine_wait_console(m, 1, WAIT_MS), 0, "no start-up line");
	ret = machine_clone(m, &cc, &child, NULL, err, sizeof(err));
	cr_expect_eq(ret, -EOPNOTSUPP, "machine_clone: %d (%s)", ret, err);
	cr_expect_null(child);
	cr_expect_not_null(strstr(err, "disk"), "error does not name the disk: %s", err);
	cr_expect_eq(machine_wait(m, WAIT_MS), 0, "the parent did not finish well: %s",
		     machine_stop_reason(m));
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

Test(vmm_clone, cli_clone_of_a_vm_with_a_disk_fails_that_clone_only, .timeout = 300)
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
	cr_expect_eq(vmm_run(out, sizeof(out), args), 1, "%s", out);
	cr_expect_not_null(strstr(out, "clone 1 failed: cannot clone a VM with virtio disks"), "%s",
			   out);
	cr_expect_not_null(strstr(out, "[parent] blkread: "), "%s", out);
	cr_expect_not_null(strstr(out, "forkvm: parent       0"), "the parent failed:\n%s", out);
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
