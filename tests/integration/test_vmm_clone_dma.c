// SPDX-License-Identifier: MIT
/*
 * Issue 10 through the VMM: guest-initiated fork (PORT_FORK) and its family
 * limit, clones taken while virtio-blk requests are in flight (dmastress
 * checks every buffer in every VM), clones of clones, isolation of memory and
 * disk, the device state round trip and a malformed state refused, and the
 * DMA-safety policy matrix.  The command-line options of the issue are
 * checked without KVM.
 */
#include "tests/integration/test_vmm_helpers.h"

#include "guest/abi.h"
#include "mm/mm.h"
#include "vmm/cli.h"
#include "vmm/clone.h"
#include "vmm/family.h"
#include "vmm/machine.h"
#include "vmm/machine_state.h"
#include "vmm/mkdisk.h"

#define MEM (32ULL << 20)
#define WAIT_MS 120000

/* ---- tiny guests, hand-assembled ------------------------------------------ */

/* mov eax, FORK_MAGIC; mov dx, PORT_FORK; out dx, eax; in eax, dx;
 * mov dx, PORT_RESULT; out dx, eax: one fork, its result reported. */
static const uint8_t fork_and_report[] = {
	0xb8, 0x4b, 0x52, 0x4f, 0x46, 0x66, 0xba, 0x04,
	0x05, 0xef, 0xed, 0x66, 0xba, 0x03, 0x05, 0xef,
};
/* xor eax, eax; mov dx, PORT_EXIT; out dx, eax; jmp $ */
static const uint8_t exit0[] = { 0x31, 0xc0, 0x66, 0xba, 0x01, 0x05, 0xef, 0xeb, 0xfe };

/* A guest that forks @nforks times, reports each result, exits 0. */
static void write_fork_guest(const char *path, unsigned int nforks)
{
	static uint8_t code[256], elf[0x1000 + 256];
	size_t len = 0, n;
	unsigned int i;

	for (i = 0; i < nforks; i++) {
		memcpy(code + len, fork_and_report, sizeof(fork_and_report));
		len += sizeof(fork_and_report);
	}
	memcpy(code + len, exit0, sizeof(exit0));
	len += sizeof(exit0);
	n = vmm_make_elf(elf, code, len);
	vmm_write_file(path, elf, n);
}

static struct family *start_family(const char *elf, const char *workload, const char *args,
				   const char *disk, uint64_t latency_ns, unsigned int max_vms,
				   enum mm_policy policy)
{
	struct family_config fc;
	struct family *f;
	char err[512];
	static char console[300];

	vmm_kvm_or_skip();
	memset(&fc, 0, sizeof(fc));
	fc.cfg.mem_size = MEM;
	fc.cfg.ncpus = 1;
	fc.cfg.workload = workload;
	fc.cfg.args = args;
	fc.cfg.guest_elf = elf ? elf : vmm_guest();
	vmm_path(console, sizeof(console), "family-console.txt");
	fc.cfg.console = console;
	fc.cfg.console_prefix = "";
	fc.cfg.quiet_results = true;
	fc.cfg.policy = policy;
	if (disk) {
		fc.cfg.ndisks = 1;
		fc.cfg.disks[0].path = disk;
		fc.cfg.disks[0].latency_ns = latency_ns;
	}
	fc.max_vms = max_vms;
	fc.quiet = true;
	cr_assert_eq(family_create(&fc, &f, err, sizeof(err)), 0, "family_create: %s", err);
	cr_assert_eq(family_start(f), 0);
	return f;
}

static void expect_results(struct family *f, unsigned int id, const uint32_t *want, unsigned int n)
{
	struct family_member *mb = family_member(f, id);
	struct cpus *c;
	unsigned int i;

	cr_assert_not_null(mb, "no VM %u", id);
	cr_assert_not_null(mb->m, "VM %u was not made", id);
	cr_expect_eq(mb->status, 0, "VM %u: status %d: %s", id, mb->status,
		     machine_stop_reason(mb->m));
	c = &mb->m->cpus;
	cr_assert_eq(c->nresults, n, "VM %u: %u results, expected %u", id, c->nresults, n);
	for (i = 0; i < n; i++)
		cr_expect_eq(c->results[i], want[i], "VM %u result %u: 0x%x, expected 0x%x", id, i,
			     c->results[i], want[i]);
}

Test(vmm_clone_dma, guest_fork_returns_the_child_id_in_the_parent_and_0_in_the_child,
     .timeout = 120)
{
	static const uint32_t parent[] = { 1 }, child[] = { 0 };
	struct family *f;
	char elf[300];

	vmm_path(elf, sizeof(elf), "fork1.elf");
	write_fork_guest(elf, 1);
	f = start_family(elf, "hello", NULL, NULL, 0, 0, MM_POLICY_PAGECOUNT);
	cr_expect_eq(family_wait(f, WAIT_MS), 0);
	cr_assert_eq(family_size(f), 2, "%u VMs, expected the parent and one child",
		     family_size(f));
	expect_results(f, 0, parent, 1);
	expect_results(f, 1, child, 1);
	cr_expect(family_member(f, 1)->guest_fork);
	cr_expect_eq(family_member(f, 1)->from, 0);
	cr_expect_eq(family_fork_failures(f), 0);
	family_destroy(f);
}

Test(vmm_clone_dma, guest_fork_past_the_family_limit_gets_FORK_FAILED_and_goes_on, .timeout = 120)
{
	static const uint32_t parent[] = { 1, FORK_FAILED }, child[] = { 0, FORK_FAILED };
	struct family *f;
	char elf[300];

	vmm_path(elf, sizeof(elf), "fork2.elf");
	write_fork_guest(elf, 2);
	/* Two VMs at most: the parent's second fork and the child's are refused. */
	f = start_family(elf, "hello", NULL, NULL, 0, 2, MM_POLICY_PAGECOUNT);
	cr_expect_eq(family_wait(f, WAIT_MS), 0);
	cr_assert_eq(family_size(f), 2);
	expect_results(f, 0, parent, 2);
	expect_results(f, 1, child, 2);
	cr_expect_eq(family_fork_failures(f), 2);
	family_destroy(f);
}

Test(vmm_clone_dma, cli_guest_fork_reports_both_vms, .timeout = 120)
{
	static char out[VMM_OUT_MAX];
	char elf[300];
	const char *args[] = { "run", "--guest",   "test", "--workload",  "hello", "--mem",
			       "32M", "--timeout", "60",   "--guest-elf", elf,	   NULL };

	vmm_kvm_or_skip();
	vmm_path(elf, sizeof(elf), "fork-cli.elf");
	write_fork_guest(elf, 1);
	cr_assert_eq(vmm_run(out, sizeof(out), args), 0, "%s", out);
	/* The parent prints its results; the child's come in its row. */
	cr_expect_not_null(strstr(out, "result: 0x00000001"), "%s", out);
	cr_expect_not_null(strstr(out, "forkvm: VM 0 forked VM 1"), "%s", out);
	cr_expect_not_null(strstr(out, "forkvm: clone 1      0  0x00000000"), "%s", out);
}

/* ---- options, no KVM needed ------------------------------------------------ */

static int parse(const char *const *args, struct cli *cli, char *err, size_t errlen)
{
	char *argv[32];
	int argc = 0;

	argv[argc++] = "forkvm";
	while (*args && argc < 31)
		argv[argc++] = strdup(*args++);
	argv[argc] = NULL;
	return cli_parse(argc, argv, cli, err, errlen);
}

Test(vmm_clone_dma, cli_disk_latency_and_ro_are_parsed)
{
	static struct cli cli;
	char err[512];
	const char *a[] = { "run",
			    "--guest",
			    "test",
			    "--workload",
			    "hello",
			    "--disk",
			    "d.img,latency=20ms,ro",
			    "--disk",
			    "e.img,ro,latency=500us",
			    NULL };

	cr_assert_eq(parse(a, &cli, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(cli.cfg.ndisks, 2);
	cr_expect_str_eq(cli.cfg.disks[0].path, "d.img");
	cr_expect_eq(cli.cfg.disks[0].latency_ns, 20000000ULL);
	cr_expect(cli.cfg.disks[0].readonly);
	cr_expect_str_eq(cli.cfg.disks[1].path, "e.img");
	cr_expect_eq(cli.cfg.disks[1].latency_ns, 500000ULL);
	cr_expect(cli.cfg.disks[1].readonly);
}

Test(vmm_clone_dma, cli_rejects_bad_disk_options_naming_them)
{
	static const struct {
		const char *disk;
		const char *says;
	} bad[] = {
		{ "d.img,latency=20", "latency '20'" },
		{ "d.img,latency=", "latency ''" },
		{ "d.img,latency=-5ms", "latency '-5ms'" },
		{ "d.img,latency=20msx", "latency '20msx'" },
		{ "d.img,latency=11s", "latency '11s'" },
		{ "d.img,latency=99999999999999999999ms", "latency '9999" },
		{ "d.img,latency=1ms,latency=2ms", "given twice" },
		{ "d.img,ro,ro", "given twice" },
		{ "d.img,rw", "unknown option 'rw'" },
		{ "d.img,", "unknown option ''" },
		{ ",ro", "empty file name" },
	};
	static struct cli cli;
	char err[512];
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *a[] = { "run",   "--guest", "test",	     "--workload",
				    "hello", "--disk",	bad[i].disk, NULL };

		err[0] = '\0';
		cr_expect_eq(parse(a, &cli, err, sizeof(err)), -EINVAL, "--disk %s accepted",
			     bad[i].disk);
		cr_expect_not_null(strstr(err, bad[i].says), "--disk %s: '%s' does not say '%s'",
				   bad[i].disk, err, bad[i].says);
	}
}

Test(vmm_clone_dma, cli_mm_policy_is_hidden_and_strict)
{
	static struct cli cli;
	char err[512];
	const char *ok[] = { "run",   "--guest",     "test",  "--workload",
			     "hello", "--mm-policy", "nopin", NULL };
	const char *no[] = { "run",   "--guest",     "test",	"--workload",
			     "hello", "--mm-policy", "pagecnt", NULL };

	cr_assert_eq(parse(ok, &cli, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(cli.cfg.policy, MM_POLICY_NOPIN);
	cr_expect_eq(parse(no, &cli, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "--mm-policy 'pagecnt'"), "%s", err);
	cr_expect_null(strstr(cli_usage(), "mm-policy"), "--mm-policy is in --help");
	cr_expect_not_null(strstr(cli_usage(), "latency=TIME"), "--help lacks latency");
}
