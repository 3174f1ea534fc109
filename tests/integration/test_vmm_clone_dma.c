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

#include "devices/serial.h"
#include "devices/virtio/mmio.h"
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

static struct family *start_family_hooked(const char *elf, const char *workload, const char *args,
					  const char *disk, uint64_t latency_ns,
					  unsigned int max_vms, enum mm_policy policy,
					  void (*before_restore)(struct machine *, void *))
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
	fc.before_restore = before_restore;
	cr_assert_eq(family_create(&fc, &f, err, sizeof(err)), 0, "family_create: %s", err);
	cr_assert_eq(family_start(f), 0);
	return f;
}

static struct family *start_family(const char *elf, const char *workload, const char *args,
				   const char *disk, uint64_t latency_ns, unsigned int max_vms,
				   enum mm_policy policy)
{
	return start_family_hooked(elf, workload, args, disk, latency_ns, max_vms, policy, NULL);
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

/* ---- clones with virtio-blk requests in flight ------------------------------ */

static void make_disk_of(char *path, size_t len, const char *name, uint64_t size)
{
	char err[512];

	vmm_path(path, len, name);
	cr_assert_eq(mkdisk_write(path, size, CLI_DEFAULT_DISK_SEED, err, sizeof(err)), 0, "%s",
		     err);
}

static void make_disk(char *path, size_t len, const char *name)
{
	make_disk_of(path, len, name, 4 << 20);
}

struct dma_counts {
	unsigned int vms; /* result lines found */
	unsigned int lost, misplaced, exposed_min_zero;
};

/* Add up dmastress's result line in the console @path (a VM's own file). */
static void add_counts(const char *path, struct dma_counts *c)
{
	static char text[256 * 1024];
	unsigned int lost, misplaced, exposed;
	const char *p;

	vmm_read_file(path, text, sizeof(text));
	p = strstr(text, "lost=");
	/* The result line is the one with lost=, after the fork lines. */
	if (!p || sscanf(p, "lost=%u misplaced=%u", &lost, &misplaced) != 2)
		return;
	c->vms++;
	c->lost += lost;
	c->misplaced += misplaced;
	p = strstr(p, "exposed_min=");
	if (p && sscanf(p, "exposed_min=%u", &exposed) == 1 && !exposed)
		c->exposed_min_zero++;
}

/* Every VM's dmastress counts, from the family's console files. */
static void family_counts(struct family *f, struct dma_counts *c)
{
	char path[4300];
	unsigned int i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < family_size(f); i++) {
		if (i == 0)
			vmm_path(path, sizeof(path), "family-console.txt");
		else
			snprintf(path, sizeof(path), "%s", family_member(f, i)->console);
		add_counts(path, c);
	}
}

/* Every fork of the family caught requests in flight at the device. */
static void expect_inflight_at_every_fork(struct family *f)
{
	unsigned int i;

	for (i = 1; i < family_size(f); i++) {
		struct family_member *mb = family_member(f, i);

		cr_expect_not_null(mb->m, "VM %u was not made", i);
		cr_expect_gt(mb->t.inflight, 0,
			     "VM %u: no request in flight at its fork: it proves nothing (child VM "
			     "built ahead %d, prepare %.1f ms, vCPUs %.1f ms)",
			     i, mb->t.spare, mb->t.prepare_ns / 1e6, mb->t.vcpus_ns / 1e6);
	}
}

static void log_forks(struct family *f, const char *what)
{
	double max = 0, sum = 0;
	unsigned int i, n = family_size(f), inflight = 0;

	for (i = 1; i < n; i++) {
		const struct clone_timing *t = &family_member(f, i)->t;

		sum += t->paused_ns / 1e6;
		if (t->paused_ns / 1e6 > max)
			max = t->paused_ns / 1e6;
		inflight += t->inflight;
	}
	if (n > 1)
		cr_log_info("%s: %u forks, %u requests in flight at them, pause mean %.1f ms "
			    "max %.1f ms",
			    what, n - 1, inflight, sum / (n - 1), max);
}

Test(vmm_clone_dma, fifty_guest_forks_with_reads_in_flight_lose_nothing_in_any_vm, .timeout = 600)
{
	struct dma_counts c;
	struct family *f;
	char disk[300];
	unsigned int i;

	make_disk(disk, sizeof(disk), "fifty.img");
	/* 32 reads in flight at each fork, 300 ms each: still at the device
	 * when the parent pauses (its next child is built beforehand). */
	f = start_family(NULL, "dmastress", "forks=50 inflight=32", disk, 300000000ULL, 0,
			 MM_POLICY_PAGECOUNT);
	cr_expect_eq(family_wait(f, 500000), 0, "a VM failed (lost, misplaced or fork failed)");
	cr_assert_eq(family_size(f), 51, "%u VMs, expected 51", family_size(f));
	for (i = 0; i < 51; i++)
		cr_expect_eq(family_member(f, i)->status, 0, "VM %u: status %d: %s", i,
			     family_member(f, i)->status,
			     family_member(f, i)->m ? machine_stop_reason(family_member(f, i)->m)
						    : "not made");
	expect_inflight_at_every_fork(f);
	family_counts(f, &c);
	cr_expect_eq(c.vms, 51, "%u result lines, expected 51", c.vms);
	cr_expect_eq(c.lost, 0);
	cr_expect_eq(c.misplaced, 0);
	log_forks(f, "50 forks");
	family_destroy(f);
}

Test(vmm_clone_dma, clones_of_clones_with_reads_in_flight_lose_nothing, .timeout = 300)
{
	unsigned int i, grandchildren = 0;
	struct dma_counts c;
	struct family *f;
	char disk[300];

	make_disk(disk, sizeof(disk), "depth.img");
	/* forks=3 depth=2: the parent forks 3 times, each child forks at its
	 * remaining rounds: 7 VMs, some cloned from clones. */
	f = start_family(NULL, "dmastress", "forks=3 depth=2 inflight=16", disk, 1000000000ULL, 0,
			 MM_POLICY_PAGECOUNT);
	cr_expect_eq(family_wait(f, 240000), 0);
	cr_assert_eq(family_size(f), 7, "%u VMs, expected 7", family_size(f));
	for (i = 1; i < 7; i++)
		grandchildren += family_member(f, i)->from != 0;
	cr_expect_eq(grandchildren, 3, "%u clones of clones, expected 3", grandchildren);
	expect_inflight_at_every_fork(f);
	family_counts(f, &c);
	cr_expect_eq(c.vms, 7);
	cr_expect_eq(c.lost, 0);
	cr_expect_eq(c.misplaced, 0);
	family_destroy(f);
}

/*
 * The proof that the harness sees the bug: the same scenario under each
 * policy.  The latency outlasts the parent's whole pause, so the device
 * writes after the parent's CPU wrote the fork slots' pages.
 *
 * The legacy policies lose a device write when the parent writes a page
 * while the fork still shares its pinned frame.  The clone's restore
 * re-executes its requests in flight, which pins (under mapcount: copies)
 * those pages in the clone; on one CPU it would always run before the
 * parent's writes, and mapcount would then lose nothing.  So the matrix
 * holds each restore until the parent has printed its fork line, which
 * dmastress prints after writing its pages: the order in which Linux's
 * legacy rules lost writes (the parent writes first).  The same order
 * under pagecount must lose nothing (family_restore_after_parent_line).
 */
static void policy_run(enum mm_policy policy, struct dma_counts *c, struct pool_stats *ps)
{
	struct family *f;
	char disk[300];

	make_disk(disk, sizeof(disk), "matrix.img");
	f = start_family_hooked(NULL, "dmastress", "forks=3 inflight=32", disk, 400000000ULL, 0,
				policy, family_restore_after_parent_line);
	family_wait(f, 240000);
	cr_assert_eq(family_size(f), 4, "%s: %u VMs, expected 4", mm_policy_name(policy),
		     family_size(f));
	expect_inflight_at_every_fork(f);
	family_counts(f, c);
	cr_expect_eq(c->vms, 4, "%s: %u result lines", mm_policy_name(policy), c->vms);
	cr_log_info("%s: lost=%u misplaced=%u", mm_policy_name(policy), c->lost, c->misplaced);
	pool_get_stats(family_parent(f)->pool, ps);
	family_destroy(f);
}

Test(vmm_clone_dma, policy_pagecount_loses_no_device_write, .timeout = 300)
{
	struct pool_stats ps;
	struct dma_counts c;

	vmm_kvm_or_skip();
	policy_run(MM_POLICY_PAGECOUNT, &c, &ps);
	cr_expect_eq(c.lost, 0);
	cr_expect_eq(c.misplaced, 0);
}

Test(vmm_clone_dma, policy_nopin_loses_device_writes_and_the_harness_sees_it, .timeout = 300)
{
	struct pool_stats ps;
	struct dma_counts c;

	vmm_kvm_or_skip();
	policy_run(MM_POLICY_NOPIN, &c, &ps);
	cr_expect_gt(c.lost, 0, "nopin shares pinned frames: the parent must lose its reads");
}

Test(vmm_clone_dma, policy_mapcount_loses_device_writes_and_the_harness_sees_it, .timeout = 300)
{
	struct pool_stats ps;
	struct dma_counts c;

	vmm_kvm_or_skip();
	policy_run(MM_POLICY_MAPCOUNT, &c, &ps);
	cr_expect_eq(ps.fork_copies, 0, "mapcount shares pinned frames at fork (Linux before 5.9)");
	cr_expect_gt(c.lost, 0, "the parent wrote its pinned pages first: writes must be lost");
}

/* ---- clones from outside: state round trip, malformed state, isolation ---- */

/* Outside clones: 400 ms at the device, above a clone's prepare and pause
 * on a loaded nested host, so requests seen in flight still are at the pause. */
#define OUTSIDE_LATENCY_NS 400000000ULL

static struct family *start_rounds(const char *disk, const char *args)
{
	struct family *f =
	    start_family(NULL, "dmastress", args, disk, OUTSIDE_LATENCY_NS, 0, MM_POLICY_PAGECOUNT);

	/* Line 1 is the start-up line, 2 the device, 3 dmastress's: running. */
	cr_assert_eq(machine_wait_console(family_parent(f), 3, WAIT_MS), 0,
		     "dmastress not running");
	return f;
}

/* Wait until the parent has requests at the device. */
static void wait_inflight(struct machine *m)
{
	unsigned int i;

	for (i = 0; i < 2000 && !machine_inflight(m); i++)
		usleep(1000);
	cr_assert_gt(machine_inflight(m), 0, "no request in flight after 2 s");
}

static const void *device_section(const struct machine_state *ms, uint32_t type, uint32_t *id,
				  uint32_t *size)
{
	uint32_t i, t;
	const void *p;

	for (i = 1; i < 16; i++) {
		p = mstate_find(ms, MSTATE_DEVICE, i, &t, size);
		if (p && t == type) {
			*id = i;
			return p;
		}
	}
	return NULL;
}

Test(vmm_clone_dma, device_state_save_restore_save_is_identical_through_the_vmm, .timeout = 300)
{
	struct machine_state parent_st = { .buf = NULL }, child_st = { .buf = NULL };
	struct clone_config cc = { .quiet_results = true, .console_prefix = "[child] " };
	static const uint32_t types[] = { DEVICE_SERIAL, DEVICE_VIRTIO_BLK_MMIO };
	struct machine *parent, *child = NULL;
	struct clone_timing t;
	char disk[300], err[512], console[300];
	struct family *f;
	unsigned int i;

	make_disk(disk, sizeof(disk), "roundtrip.img");
	f = start_rounds(disk, "forks=0 rounds=8 inflight=32");
	parent = family_parent(f);
	vmm_path(console, sizeof(console), "roundtrip-child.txt");
	cc.console = console;
	cc.saved = &parent_st;
	/* The child's devices held right after their restore: its re-executed
	 * requests (400 ms each) cannot complete before its state is read back. */
	cc.hold_child = true;
	/* The child's VM built beforehand: the pause follows the check at once. */
	cr_assert_eq(machine_clone_spare(1, &cc.spare, err, sizeof(err)), 0, "%s", err);
	wait_inflight(parent);
	cr_assert_eq(machine_clone(parent, &cc, &child, &t, err, sizeof(err)), 0,
		     "machine_clone: %s", err);
	cr_expect_gt(t.inflight, 0, "nothing in flight at the clone");
	cr_assert_eq(mstate_init(&child_st, machine_state_room(child)), 0);
	cr_assert_eq(machine_save_state(child, &child_st, err, sizeof(err)), 0, "%s", err);
	for (i = 0; i < 2; i++) {
		uint32_t pid = 0, cid = 0, psize = 0, csize = 0;
		const void *p = device_section(&parent_st, types[i], &pid, &psize);
		const void *c = device_section(&child_st, types[i], &cid, &csize);

		cr_assert_not_null(p, "parent: no device of type %u saved", types[i]);
		cr_assert_not_null(c, "child: no device of type %u saved", types[i]);
		cr_expect_eq(pid, cid, "device ids differ");
		cr_assert_eq(psize, csize);
		cr_expect_eq(memcmp(p, c, psize), 0, "type %u: saved -> restored -> saved differs",
			     types[i]);
	}
	/* Then the child runs: its re-executed reads must verify in it. */
	machine_release_devices(child);
	cr_assert_eq(machine_start(child), 0);
	if (machine_wait(child, WAIT_MS)) {
		static char text[64 * 1024];

		vmm_read_file(console, text, sizeof(text));
		cr_expect_fail("child: %s; its console:\n%s", machine_stop_reason(child), text);
	}
	cr_expect_eq(family_wait(f, WAIT_MS), 0, "parent: %s", machine_stop_reason(parent));
	machine_destroy(child);
	family_destroy(f);
	mstate_free(&parent_st);
	mstate_free(&child_st);
}

enum tamper_kind {
	TAMPER_BLK_MAGIC,
	TAMPER_BLK_VERSION,
	TAMPER_BLK_ACKED_NOT_OFFERED,
	TAMPER_BLK_QUEUE_SIZE,
	TAMPER_SERIAL_MAGIC,
	TAMPER_SECTION_SIZE,
	TAMPER_STATE_VERSION,
	TAMPER_DEVICE_TYPE,
	TAMPER_N,
};

static void tamper(struct machine_state *ms, void *arg)
{
	enum tamper_kind k = *(enum tamper_kind *)arg;
	struct virtio_mmio_state *blk;
	struct mstate_header *h = (struct mstate_header *)ms->buf;
	struct mstate_section *s;
	struct serial_state *ser;
	uint32_t id, size;

	blk = (void *)device_section(ms, DEVICE_VIRTIO_BLK_MMIO, &id, &size);
	ser = (void *)device_section(ms, DEVICE_SERIAL, &id, &size);
	cr_assert_not_null(blk);
	cr_assert_not_null(ser);
	switch (k) {
	case TAMPER_BLK_MAGIC:
		blk->magic ^= 1;
		break;
	case TAMPER_BLK_VERSION:
		blk->version++;
		break;
	case TAMPER_BLK_ACKED_NOT_OFFERED:
		blk->acked |= 1ULL << 55;
		break;
	case TAMPER_BLK_QUEUE_SIZE:
		blk->vq[0].num = 3;
		break;
	case TAMPER_SERIAL_MAGIC:
		ser->magic = 0;
		break;
	case TAMPER_SECTION_SIZE:
		s = (struct mstate_section *)((uint8_t *)blk - sizeof(*s));
		s->size = 1ULL << 40;
		break;
	case TAMPER_STATE_VERSION:
		h->version = 99;
		break;
	case TAMPER_DEVICE_TYPE:
		s = (struct mstate_section *)((uint8_t *)ser - sizeof(*s));
		s->type = DEVICE_VIRTIO_BLK_MMIO;
		break;
	case TAMPER_N:
		break;
	}
}

Test(vmm_clone_dma, malformed_device_state_is_refused_and_the_parent_runs_on, .timeout = 300)
{
	static const char *const says[TAMPER_N] = { "magic",  "version", "feature",    "queue",
						    "serial", "size",	 "version 99", "type" };
	struct clone_config cc = { .quiet_results = true, .tamper = tamper };
	struct machine *parent, *child;
	char disk[300], err[512];
	struct family *f;
	enum tamper_kind k;
	int ret;

	make_disk(disk, sizeof(disk), "tamper.img");
	f = start_rounds(disk, "forks=0 rounds=16 inflight=16");
	parent = family_parent(f);
	for (k = 0; k < TAMPER_N; k++) {
		child = NULL;
		cc.tamper_arg = &k;
		wait_inflight(parent);
		ret = machine_clone(parent, &cc, &child, NULL, err, sizeof(err));
		cr_expect_eq(ret, -EINVAL, "tamper %d: machine_clone gave %d (%s)", k, ret, err);
		cr_expect_null(child);
		cr_expect_not_null(strcasestr(err, says[k]), "tamper %d: '%s' does not say '%s'", k,
				   err, says[k]);
		if (child)
			machine_destroy(child);
	}
	/* The parent never noticed: all its reads verify. */
	cr_expect_eq(family_wait(f, WAIT_MS), 0, "parent: %s", machine_stop_reason(parent));
	family_destroy(f);
}

Test(vmm_clone_dma, a_childs_writes_never_show_in_the_parent_or_a_sibling, .timeout = 300)
{
	const uint64_t marker = 0x6368696c6431ULL;
	struct machine *vm[3];
	char disk[300], err[512];
	unsigned int id[2], i;
	struct family *f;
	uint64_t gpa, before[3], got;

	make_disk_of(disk, sizeof(disk), "isolation.img", 1 << 20);
	/* blkwrite: every VM writes the whole disk and reads it back, one
	 * 64 KiB request at a time, each 400 ms at the device. */
	f = start_family(NULL, "blkwrite", NULL, disk, OUTSIDE_LATENCY_NS, 0, MM_POLICY_PAGECOUNT);
	vm[0] = family_parent(f);
	cr_assert_eq(machine_wait_console(vm[0], 2, WAIT_MS), 0, "blkwrite not started");
	for (i = 0; i < 2; i++) {
		wait_inflight(vm[0]);
		cr_assert_eq(family_clone(f, 0, &id[i], err, sizeof(err)), 0, "%s", err);
		vm[i + 1] = family_member(f, id[i])->m;
		cr_expect_gt(family_member(f, id[i])->t.inflight, 0, "clone %u: nothing in flight",
			     i + 1);
	}
	/* Every VM read back its own writes over its own disk: 0. */
	cr_expect_eq(family_wait(f, WAIT_MS), 0);
	for (i = 0; i < 3; i++)
		cr_expect_eq(family_member(f, i)->status, 0, "VM %u: status %d: %s", i,
			     family_member(f, i)->status, machine_stop_reason(vm[i]));
	/* Nobody's writes reached the file under the family: it is the parent's
	 * disk as of the first clone, which had not written it all. */
	cr_expect_neq(mkdisk_check(disk, 0, 0x777269746521ULL, err, sizeof(err)), 0,
		      "the whole write pattern is in the shared file");
	/* Memory: a write into clone 1 shows neither in the parent nor in clone 2. */
	gpa = vm[0]->image.end;
	for (i = 0; i < 3; i++)
		cr_assert_eq(space_read(vm[i]->space, gpa, &before[i], sizeof(before[i])), 0);
	cr_assert_eq(space_write(vm[1]->space, gpa, &marker, sizeof(marker)), 0);
	cr_assert_eq(space_read(vm[0]->space, gpa, &got, sizeof(got)), 0);
	cr_expect_eq(got, before[0], "clone 1's write shows in the parent");
	cr_assert_eq(space_read(vm[2]->space, gpa, &got, sizeof(got)), 0);
	cr_expect_eq(got, before[2], "clone 1's write shows in clone 2");
	family_destroy(f);
}
