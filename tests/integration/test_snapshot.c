// SPDX-License-Identifier: MIT
/*
 * Snapshots through the forkvm binary: a guest saved mid-run (full and live)
 * and restored in a new process finishes with the result of an
 * uninterrupted run; a snapshot restores as often as wanted; a damaged one,
 * one of another format, one for a CPU this host is not, or one whose state
 * KVM refuses gets one line and exit status 1; a full disk leaves nothing.
 */
#include <libfdt.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "tests/integration/test_vmm_helpers.h"
#include "devices/disk_pattern.h"
#include "vmm/cli.h"
#include "vmm/machine.h"
#include "vmm/machine_state.h"
#include "vmm/mkdisk.h"
#include "vmm/snapshot/snapshot.h"
#include "vmm/vm_state.h"
#include "vmm/vcpu_state.h"

#define TIMEOUT "120"
#define MEM "16M" /* the least the VMM takes: nested TCG is slow */

static char out[VMM_OUT_MAX];

static void refused(const char *dir, const char *what);
static void *read_file(const char *path, size_t *len);

/* The value of the last "result: 0x..." line of @s, or -1. */
static long long last_result(const char *s)
{
	const char *p = s, *hit = NULL;

	while ((p = strstr(p, "result: 0x"))) {
		hit = p;
		p++;
	}
	return hit ? strtoll(hit + 8, NULL, 16) : -1;
}

static long long run_memcheck(const char *passes_args, const char *dir, const char *kind,
			      const char *line)
{
	const char *args[] = { "run",	    "--guest",
			       "test",	    "--workload",
			       "memcheck",  "--mem",
			       MEM,	    "--cpus",
			       "2",	    "--args",
			       passes_args, "--timeout",
			       TIMEOUT,	    dir ? "--snapshot-dir" : NULL,
			       dir,	    "--snapshot-kind",
			       kind,	    "--snapshot-at-line",
			       line,	    NULL };
	int status = vmm_run(out, sizeof(out), args);

	cr_assert_eq(status, 0, "run: %s", out);
	if (dir)
		cr_assert(strstr(out, "forkvm: snapshot "), "no snapshot line: %s", out);
	return last_result(out);
}

static int restore(const char *dir)
{
	const char *args[] = { "restore", dir, "--timeout", TIMEOUT, NULL };

	return vmm_run(out, sizeof(out), args);
}

/* An uninterrupted run's checksum, once per pass count. */
static long long plain_result(const char *passes)
{
	static char done[4][32];
	static long long result[4];
	unsigned int i;

	for (i = 0; i < 4 && done[i][0]; i++) {
		if (!strcmp(done[i], passes))
			return result[i];
	}
	result[i % 4] = run_memcheck(passes, NULL, NULL, NULL);
	snprintf(done[i % 4], sizeof(done[0]), "%s", passes);
	return result[i % 4];
}

/* Snapshot at @line of a memcheck with @passes, restore, same checksum. */
static void same_result(const char *kind, const char *passes, const char *line, const char *name)
{
	char dir[300];
	long long plain, saved, restored;

	vmm_kvm_or_skip();
	vmm_path(dir, sizeof(dir), name);
	plain = plain_result(passes);
	cr_assert_neq(plain, -1, "no result: %s", out);
	saved = run_memcheck(passes, dir, kind, line);
	cr_assert_eq(saved, plain, "the snapshotted run's result differs: %s", out);
	cr_assert_eq(restore(dir), 0, "restore: %s", out);
	restored = last_result(out);
	cr_assert_eq(restored, plain, "restored 0x%llx, uninterrupted 0x%llx: %s", restored, plain,
		     out);
	/* It carried on, it did not start again. */
	cr_assert_null(strstr(out, "guest: workload"), "the restored guest booted again: %s", out);
	cr_assert(strstr(out, "MiB ok checksum"), "%s", out);
}

Test(snapshot, live_snapshot_restores_to_the_same_checksum, .timeout = 300)
{
	same_result("live", "passes=4", "2", "live");
}

Test(snapshot, full_snapshot_restores_to_the_same_checksum, .timeout = 300)
{
	same_result("full", "passes=4", "2", "full");
}

/*
 * A live snapshot while every vCPU rewrites all its memory with the pass
 * number (memcheck's pass p writes f(a, p) everywhere, then checks its
 * neighbour's slice): the restored guest finishes the pass it was in and the
 * rest with the right sum.  memcheck rewrites a whole pass before it reads,
 * so this does not see a torn snapshot by itself: the one-generation
 * property, with its control, is unit-tested
 * (live_snapshot_of_a_rewriting_guest_holds_one_generation).
 */
Test(snapshot, live_snapshot_during_rewrites_restores_consistent, .timeout = 300)
{
	same_result("live", "passes=8", "4", "live-gen");
}

Test(snapshot, one_snapshot_restores_twice_with_the_same_result, .timeout = 300)
{
	char dir[300];
	long long first;

	vmm_kvm_or_skip();
	vmm_path(dir, sizeof(dir), "twice");
	run_memcheck("passes=3", dir, "live", "2");
	cr_assert_eq(restore(dir), 0, "restore: %s", out);
	first = last_result(out);
	cr_assert_neq(first, -1, "%s", out);
	/* The second one with its console in a file: the result line stays on stdout. */
	{
		char console[300], *text;
		const char *args[] = { "restore",   dir,     "--console", console,
				       "--timeout", TIMEOUT, NULL };
		size_t len;

		vmm_path(console, sizeof(console), "twice.console");
		cr_assert_eq(vmm_run(out, sizeof(out), args), 0, "second restore: %s", out);
		cr_assert_eq(last_result(out), first, "%s", out);
		cr_assert_null(strstr(out, "MiB ok checksum"), "console on stdout: %s", out);
		text = read_file(console, &len);
		text[len] = '\0';
		cr_assert(strstr(text, "MiB ok checksum"), "console file: %s", text);
		free(text);
	}
}

/* The pages count of the "forkvm: snapshot DIR (...)" line for @dir. */
static long long snapshot_pages(const char *dir)
{
	char pat[400];
	const char *p, *q;

	snprintf(pat, sizeof(pat), "forkvm: snapshot %s (", dir);
	p = strstr(out, pat);
	cr_assert_not_null(p, "no snapshot line for %s: %s", dir, out);
	q = strstr(p, " pages");
	cr_assert_not_null(q);
	while (q > p && q[-1] != ' ')
		q--;
	return strtoll(q, NULL, 10);
}

Test(snapshot, a_diff_chain_restores_from_the_later_instant, .timeout = 300)
{
	char a[300], b[300], cmd[400];
	const char *args[] = { "run",	   "--guest",
			       "test",	   "--workload",
			       "memcheck", "--mem",
			       MEM,	   "--cpus",
			       "2",	   "--args",
			       "passes=8", "--timeout",
			       TIMEOUT,	   "--snapshot-dir",
			       a,	   "--snapshot-at-line",
			       "2",	   "--snapshot-diff-dir",
			       b,	   "--snapshot-diff-at-line",
			       "5",	   NULL };
	long long plain, pages_a, pages_b;

	vmm_kvm_or_skip();
	vmm_path(a, sizeof(a), "chain-a");
	vmm_path(b, sizeof(b), "chain-b");
	plain = plain_result("passes=8");
	cr_assert_eq(vmm_run(out, sizeof(out), args), 0, "%s", out);
	cr_assert_eq(last_result(out), plain, "%s", out);
	pages_a = snapshot_pages(a);
	pages_b = snapshot_pages(b);
	cr_assert(strstr(out, "(diff)"), "%s", out);
	/* memcheck rewrites all its memory each pass, so the diff is about as big
	 * as its base (the unit test checks that a diff holds exactly what
	 * changed); what it lacks is the guest's code and page tables, which
	 * restoring the diff without its base would miss (see below). */
	cr_assert_gt(pages_b, 0);
	cr_assert_gt(pages_a, 0);

	/* The diff restores from line 5 on, the base from line 2 on. */
	cr_assert_eq(restore(b), 0, "restore diff: %s", out);
	cr_assert_eq(last_result(out), plain, "%s", out);
	cr_assert_null(strstr(out, "pass 4/8 ok"), "the chain restored an earlier instant: %s",
		       out);
	cr_assert_eq(restore(a), 0, "restore base: %s", out);
	cr_assert_eq(last_result(out), plain, "%s", out);
	cr_assert(strstr(out, "pass 4/8 ok"), "%s", out);

	/* Without its base a diff is refused, naming the base. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", a);
	cr_assert_eq(system(cmd), 0);
	refused(b, "chain-a");
}

Test(snapshot, an_existing_directory_is_refused_and_kept, .timeout = 120)
{
	char dir[300];
	struct stat sb;

	vmm_kvm_or_skip();
	vmm_path(dir, sizeof(dir), "exists");
	cr_assert_eq(mkdir(dir, 0755), 0);
	{
		const char *args[] = { "run",	"--guest",	  "test", "--workload",
				       "hello", "--snapshot-dir", dir,	  NULL };

		cr_assert_eq(vmm_run(out, sizeof(out), args), 1, "%s", out);
	}
	cr_assert(strstr(out, "exists"), "%s", out);
	cr_assert_eq(stat(dir, &sb), 0);
}

/* ---- bad snapshots ------------------------------------------------------------------ */

static void *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	void *buf;
	long n;

	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 4096);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* A fresh snapshot (copied per case by cp -a) of a held-free memcheck. */
static void base_snapshot(char *dir, size_t len)
{
	static char made[300];

	if (!made[0]) {
		vmm_path(made, sizeof(made), "base");
		run_memcheck("passes=3", made, "live", "2");
	}
	snprintf(dir, len, "%s", made);
}

static void copy_base(const char *name, char *dir, size_t len)
{
	char base[300], cmd[800];

	base_snapshot(base, sizeof(base));
	vmm_path(dir, len, name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", dir, base, dir);
	cr_assert_eq(system(cmd), 0);
}

/* Restore @dir: exit 1, one line on stderr containing @what. */
static void refused(const char *dir, const char *what)
{
	const char *nl;

	cr_assert_eq(restore(dir), 1, "accepted (wanted '%s'): %s", what, out);
	cr_assert(strstr(out, what), "'%s' not in: %s", what, out);
	nl = strchr(out, '\n');
	cr_assert(nl && !nl[1], "more than one line: %s", out);
	cr_assert(!strncmp(out, "forkvm restore: ", 16), "%s", out);
}

/* Edit the manifest with libfdt (in place: same sizes). */
static void edit_manifest(const char *dir, void (*edit)(void *fdt, void *arg), void *arg)
{
	char path[400];
	size_t len;
	void *fdt;

	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	fdt = read_file(path, &len);
	edit(fdt, arg);
	write_file(path, fdt, len);
	free(fdt);
}

static void set_major(void *fdt, void *arg)
{
	fdt32_t v[2] = { cpu_to_fdt32(9), cpu_to_fdt32(0) };

	cr_assert_eq(fdt_setprop_inplace(fdt, 0, "forkvm,format", v, sizeof(v)), 0);
}

/* Every feature bit of leaf 7.0 edx: no host has them all (reserved bits). */
static void all_features(void *fdt, void *arg)
{
	int node = fdt_subnode_offset(fdt, 0, "host"), len, i;
	fdt32_t *c = fdt_getprop_w(fdt, node, "cpuid", &len);

	cr_assert_not_null(c);
	for (i = 0; i < len / 24; i++) {
		if (fdt32_to_cpu(c[i * 6]) == 7 && fdt32_to_cpu(c[i * 6 + 1]) == 0)
			c[i * 6 + 5] = cpu_to_fdt32(0xffffffff);
	}
}

/* The vCPU section's state: a CR0 that KVM refuses to load. */
static void bad_vcpu(void *fdt, void *arg)
{
	int node = fdt_subnode_offset(fdt, 0, "machine"), len;
	uint8_t *st = fdt_getprop_w(fdt, node, "state", &len);
	struct mstate_header h;
	size_t off = sizeof(h);
	uint32_t i;

	/* The property is 4-byte aligned only: headers copied out, fields in
	 * with memcpy. */
	cr_assert_not_null(st);
	memcpy(&h, st, sizeof(h));
	for (i = 0; i < h.nsections; i++) {
		struct mstate_section sec;

		memcpy(&sec, st + off, sizeof(sec));
		if (sec.kind == MSTATE_VCPU) {
			/* CR0.PG without CR0.PE: KVM_SET_SREGS refuses it. */
			uint64_t cr0 = 0x80000000ULL;

			memcpy(st + off + sizeof(sec) + offsetof(struct vcpu_state, sregs.cr0),
			       &cr0, sizeof(cr0));
			return;
		}
		off += sizeof(sec) + ((sec.size + 63) & ~63ULL);
	}
	cr_assert_fail("no vCPU section");
}

/* 4 GiB of RAM: a layout the format allows and this VMM does not (the MMIO hole). */
static void big_memory(void *fdt, void *arg)
{
	int node = fdt_subnode_offset(fdt, 0, "memory"), len;
	fdt32_t *r = fdt_getprop_w(fdt, node, "ranges", &len);
	fdt32_t *f = fdt_getprop_w(fdt, node, "file-size", &len);

	cr_assert(r && f);
	r[2] = f[0] = cpu_to_fdt32(1);
	r[3] = f[1] = cpu_to_fdt32(0);
}

Test(snapshot, damaged_snapshots_get_one_line_and_status_1, .timeout = 300)
{
	char dir[300], path[400], cmd[800];
	size_t len;
	uint8_t *buf;

	vmm_kvm_or_skip();

	copy_base("nodir", dir, sizeof(dir));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
	refused(dir, "No such file");

	copy_base("magic", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	buf = read_file(path, &len);
	buf[0] ^= 0x55;
	write_file(path, buf, len);
	free(buf);
	refused(dir, "not a device tree");

	copy_base("trunc", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	buf = read_file(path, &len);
	write_file(path, buf, len / 2);
	free(buf);
	refused(dir, "truncated");

	copy_base("corrupt", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	buf = read_file(path, &len);
	/* The structure block's offset past the end: fdt_check_full refuses. */
	((fdt32_t *)buf)[2] = cpu_to_fdt32((uint32_t)len + 8);
	write_file(path, buf, len);
	free(buf);
	refused(dir, "manifest:");

	copy_base("major", dir, sizeof(dir));
	edit_manifest(dir, set_major, NULL);
	refused(dir, "format 9.0: this forkvm reads format 1.x");

	copy_base("short", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MEMORY_NAME);
	cr_assert_eq(truncate(path, 32 << 20), 0);
	refused(dir, "the layout needs");

	copy_base("cpu", dir, sizeof(dir));
	edit_manifest(dir, all_features, NULL);
	refused(dir, "lacks");

	copy_base("layout", dir, sizeof(dir));
	edit_manifest(dir, big_memory, NULL);
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MEMORY_NAME);
	cr_assert_eq(truncate(path, 4LL << 30), 0);
	refused(dir, "this forkvm restores one range at 0");

	copy_base("kvm", dir, sizeof(dir));
	edit_manifest(dir, bad_vcpu, NULL);
	refused(dir, "vCPU 0 state");
}

/* A snapshot onto a 1 MiB tmpfs: ENOSPC, and nothing left behind. */
Test(snapshot, a_full_disk_fails_the_snapshot_and_leaves_nothing, .timeout = 120)
{
	char mnt[300], dir[400], cmd[500];
	const char *args[] = { "run",	   "--guest",	     "test",  "--workload",
			       "memcheck", "--mem",	     MEM,     "--args",
			       "passes=2", "--snapshot-dir", dir,     "--snapshot-at-line",
			       "2",	   "--timeout",	     TIMEOUT, NULL };
	struct stat sb;

	vmm_kvm_or_skip();
	vmm_path(mnt, sizeof(mnt), "small");
	cr_assert_eq(mkdir(mnt, 0755), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m"))
		cr_skip_test("cannot mount a small tmpfs here (%s)", strerror(errno));
	snprintf(dir, sizeof(dir), "%s/snap", mnt);
	cr_assert_eq(vmm_run(out, sizeof(out), args), 1, "%s", out);
	cr_assert(strstr(out, "No space left on device"), "%s", out);
	cr_assert_neq(stat(dir, &sb), 0, "a snapshot was left on a full disk");
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", mnt);
	cr_assert_eq(system(cmd), 0, "a temporary was left in %s", mnt);
	umount(mnt);
}

/* ---- save -> restore -> save ------------------------------------------------------ */

static const void *section(const struct machine_state *ms, uint32_t kind, uint32_t id,
			   uint32_t *size)
{
	const void *p = mstate_find(ms, kind, id, NULL, size);

	cr_assert_not_null(p, "no section %u/%u", kind, id);
	return p;
}

/*
 * A snapshot restored in this process, its state read back before it runs:
 * every part of it that does not move with time comes back bit for bit
 * (the clock, the PIT's load time and the TSC move, so they are left out).
 */
Test(snapshot, a_restored_state_saves_back_identical, .timeout = 300)
{
	struct restore_opts ro = { .console = "/dev/null", .quiet_results = true };
	struct machine_state orig = { .buf = NULL }, again = { .buf = NULL };
	const struct vcpu_state *a, *b;
	const struct vm_state *va, *vb;
	struct snap_loaded l;
	struct machine *m;
	char dir[300], err[512];
	uint32_t sa, sb, i, j;

	vmm_kvm_or_skip();
	base_snapshot(dir, sizeof(dir));
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mstate_init(&orig, l.man.state_size), 0);
	memcpy(orig.buf, l.man.state, l.man.state_size);
	cr_assert_eq(mstate_check(&orig, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snapshot_restore(dir, &ro, &m, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(mstate_init(&again, machine_state_room(m)), 0);
	/* Not started: its vCPUs are as quiet as paused ones. */
	cr_assert_eq(machine_save_state(m, &again, err, sizeof(err)), 0, "%s", err);

	va = section(&orig, MSTATE_VM, 0, &sa);
	vb = section(&again, MSTATE_VM, 0, &sb);
	cr_assert_eq(sa, sb);
	cr_assert(!memcmp(&va->pic_master, &vb->pic_master, sizeof(va->pic_master)));
	cr_assert(!memcmp(&va->pic_slave, &vb->pic_slave, sizeof(va->pic_slave)));
	cr_assert(!memcmp(&va->ioapic, &vb->ioapic, sizeof(va->ioapic)));
	for (i = 0; i < m->cpus.n; i++) {
		a = section(&orig, MSTATE_VCPU, i, &sa);
		b = section(&again, MSTATE_VCPU, i, &sb);
		cr_assert_eq(sa, sb);
		cr_assert(!memcmp(&a->regs, &b->regs, sizeof(a->regs)), "vCPU %u regs", i);
		cr_assert(!memcmp(&a->sregs, &b->sregs, sizeof(a->sregs)), "vCPU %u sregs", i);
		cr_assert(!memcmp(&a->lapic, &b->lapic, sizeof(a->lapic)), "vCPU %u lapic", i);
		cr_assert(!memcmp(&a->mp_state, &b->mp_state, sizeof(a->mp_state)));
		cr_assert_eq(a->xsave_size, b->xsave_size);
		cr_assert(!memcmp(a->xsave, b->xsave, a->xsave_size), "vCPU %u xsave", i);
		cr_assert_eq(a->nmsrs, b->nmsrs);
		for (j = 0; j < a->nmsrs; j++) {
			cr_assert_eq(a->msrs[j].index, b->msrs[j].index);
			if (a->msrs[j].index == 0x10) /* IA32_TSC: it ticks */
				continue;
			cr_assert_eq(a->msrs[j].data, b->msrs[j].data, "vCPU %u MSR 0x%x", i,
				     a->msrs[j].index);
		}
	}
	for (i = 0; i < l.man.ndevs; i++) {
		const void *da = section(&orig, MSTATE_DEVICE, l.man.dev[i].id, &sa);
		const void *db = section(&again, MSTATE_DEVICE, l.man.dev[i].id, &sb);

		cr_assert_eq(sa, sb);
		cr_assert(!memcmp(da, db, sa), "device %u", l.man.dev[i].id);
	}
	machine_destroy(m);
	mstate_free(&orig);
	mstate_free(&again);
	snap_store_close(&l);
}

/*
 * The machine state as KVM sees it, fuzzed: bytes of the state property
 * mutated (framing kept or not), each restored in this process and never
 * started: refused with one line, or accepted and destroyed, never a crash
 * or a hang.
 */
Test(snapshot, fuzz_restore_of_mutated_states_never_crashes, .timeout = 600)
{
	struct restore_opts ro = { .console = "/dev/null", .quiet_results = true };
	char dir[300], path[400], err[512];
	const char *env = getenv("FORKVM_FUZZ_ITERS");
	unsigned int i, iters = env && atoi(env) > 0 ? (unsigned int)atoi(env) / 1000 + 24 : 24;
	unsigned int refused_n = 0, accepted = 0;
	/* Bytes of the state header whose every change must be refused: magic,
	 * version, section count, size (reserved, 12..15, is not checked). */
	static const unsigned int framing[] = { 0,  1,	2,  3,	4,  5,	6,  7,	8,  9,
						10, 11, 16, 17, 18, 19, 20, 21, 22, 23 };
	uint64_t rng = 0x736e6170;
	uint8_t *good, *buf, *st;
	size_t len;
	int node, slen;

	vmm_kvm_or_skip();
	copy_base("fuzz", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	good = read_file(path, &len);
	buf = malloc(len);
	node = fdt_subnode_offset(good, 0, "machine");
	cr_assert_not_null(fdt_getprop(good, node, "state", &slen));
	for (i = 0; i < iters; i++) {
		struct machine *m;
		unsigned int k, n;

		memcpy(buf, good, len);
		st = fdt_getprop_w(buf, node, "state", &slen);
		n = 1 + (unsigned int)(rng % 8);
		for (k = 0; k < n; k++) {
			uint64_t at;

			rng ^= rng << 13;
			rng ^= rng >> 7;
			rng ^= rng << 17;
			/* Every 4th: the framing, surely refused; else the first 4 KiB
			 * (VM section, vCPU 0's header, registers, LAPIC): the owners'
			 * checks and KVM's. */
			if (i % 4 == 0 && k == 0)
				at = framing[rng % (sizeof(framing) / sizeof(framing[0]))];
			else
				at = rng % (uint64_t)(slen < 4096 ? slen : 4096);
			st[at] ^= (uint8_t)(1 + (rng >> 32) % 255);
		}
		write_file(path, buf, len);
		if (snapshot_restore(dir, &ro, &m, NULL, err, sizeof(err))) {
			cr_assert_null(strchr(err, '\n'), "%s", err);
			cr_assert_neq(err[0], '\0');
			refused_n++;
			continue;
		}
		machine_destroy(m);
		accepted++;
	}
	cr_assert_geq(refused_n, iters / 4, "only %u refused", refused_n);
	cr_log_info("%u refused, %u accepted (never run)", refused_n, accepted);
	free(buf);
	free(good);
}

/* ---- disks ---------------------------------------------------------------------------- */

#define DISK_MEM "32M"

/* A 4 MiB disk holding the pattern blkread and dmastress check. */
static void make_disk(char *path, size_t len, const char *name)
{
	char err[512];

	vmm_path(path, len, name);
	cr_assert_eq(mkdisk_write(path, 4 << 20, CLI_DEFAULT_DISK_SEED, err, sizeof(err)), 0, "%s",
		     err);
}

/* forkvm run of @workload on @disk (with its ",latency=..."), with a
 * snapshot into @dir at @line (none if @dir is NULL), stopped there if @stop. */
static int run_disk(const char *workload, const char *args, const char *disk, const char *dir,
		    const char *kind, const char *line, bool stop)
{
	const char *argv[] = { "run", "--guest", "test", "--workload", workload, "--mem", DISK_MEM,
			       "--args", args, "--disk", disk, "--timeout", TIMEOUT,
			       dir ? "--snapshot-dir" : NULL, dir, "--snapshot-kind", kind,
			       "--snapshot-at-line", line,
			       /* The requests that follow the line surely sent. */
			       "--snapshot-delay", "300", stop ? "--snapshot-stop" : NULL, NULL };

	return vmm_run(out, sizeof(out), argv);
}

/* The "N device requests in flight at the instant" of the snapshot line. */
static long in_flight_at_snapshot(void)
{
	const char *p = strstr(out, "device requests in flight at the instant");

	cr_assert_not_null(p, "no disk line in the snapshot's report: %s", out);
	while (p > out && p[-1] == ' ')
		p--;
	while (p > out && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return strtol(p, NULL, 10);
}

static unsigned int count(const char *s, const char *what)
{
	unsigned int n = 0;

	while ((s = strstr(s, what))) {
		n++;
		s++;
	}
	return n;
}

/* dmastress, 32 reads of 2 s each in flight at the snapshot. */
static void dma_snapshot(char *dir, size_t len)
{
	static char made[300];
	char disk[300], spec[400];

	if (!made[0]) {
		make_disk(disk, sizeof(disk), "dma.img");
		snprintf(spec, sizeof(spec), "%s,latency=2s", disk);
		vmm_path(made, sizeof(made), "dma-snap");
		/* Line 3 is dmastress's first: its first reads go out right after.
		 * The guest runs on: its disk forked, its reads complete. */
		cr_assert_eq(run_disk("dmastress", "forks=0 rounds=2 inflight=32", spec, made,
				      "live", "3", false),
			     0, "%s", out);
		cr_assert_geq(in_flight_at_snapshot(), 1,
			      "no request in flight at the snapshot: it proves nothing: %s", out);
		cr_assert(strstr(out, "dmastress: vm=0 lost=0 misplaced=0"), "%s", out);
		cr_assert(strstr(out, "the guest writes its image again"), "%s", out);
		cr_assert_eq(count(out, "-> ok"), 1, "%s", out);
		cr_log_info("dmastress snapshot: %ld requests in flight", in_flight_at_snapshot());
	}
	snprintf(dir, len, "%s", made);
}

Test(snapshot, a_disk_snapshot_with_reads_in_flight_restores_to_the_same_result, .timeout = 600)
{
	char disk[300], spec[400], dir[300], line[256];
	const char *p;

	vmm_kvm_or_skip();
	/* The uninterrupted run: its dmastress line (no vm name differs). */
	make_disk(disk, sizeof(disk), "dma-plain.img");
	snprintf(spec, sizeof(spec), "%s,latency=2s", disk);
	cr_assert_eq(
	    run_disk("dmastress", "forks=0 rounds=2 inflight=32", spec, NULL, NULL, NULL, false), 0,
	    "%s", out);
	p = strstr(out, "dmastress: vm=0 lost=");
	cr_assert_not_null(p, "%s", out);
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\r\n"), p);
	cr_assert(strstr(line, "-> ok"), "%s", out);

	dma_snapshot(dir, sizeof(dir));
	cr_assert_eq(restore(dir), 0, "restore: %s", out);
	/* Every buffer read, the re-executed ones included, holds the pattern. */
	cr_assert(strstr(out, line), "restored run differs from '%s': %s", line, out);
	cr_assert_eq(last_result(out), 0, "%s", out);
	cr_assert_null(strstr(out, "guest: workload"), "the restored guest booted again: %s", out);
}

/* One row of the family table: its present and shared frames. */
static void family_row(const char *name, unsigned long long *present, unsigned long long *shared)
{
	char pat[64];
	const char *p;
	int status;
	char result[32];

	snprintf(pat, sizeof(pat), "forkvm: %-9s ", name);
	p = strstr(out, pat);
	cr_assert_not_null(p, "no row for %s: %s", name, out);
	cr_assert_eq(sscanf(p + strlen(pat), "%d %31s %llu %llu", &status, result, present, shared),
		     4, "%s", p);
	cr_assert_eq(status, 0, "%s: %s", name, out);
}

/* The frames of a "forkvm:   <what> N frames" line of the memory report. */
static unsigned long long family_frames(const char *what)
{
	const char *p = strstr(out, what);
	unsigned long long n;

	cr_assert_not_null(p, "no '%s': %s", what, out);
	cr_assert_eq(sscanf(p + strlen(what), " %llu frames", &n), 1, "%s", p);
	return n;
}

Test(snapshot, restore_clones_n_share_the_snapshot_and_each_finishes, .timeout = 600)
{
	const char *args[] = { "restore", NULL, "--clones", "2", "--timeout", TIMEOUT, NULL };
	unsigned long long present[3], shared[3], after, full;
	char dir[300];

	vmm_kvm_or_skip();
	dma_snapshot(dir, sizeof(dir));
	args[1] = dir;
	cr_assert_eq(vmm_run(out, sizeof(out), args), 0, "%s", out);
	/* Three VMs from the instant, each with the reads in flight then. */
	cr_assert_eq(count(out, "lost=0 misplaced=0"), 3, "%s", out);
	cr_assert_eq(count(out, "-> ok"), 3, "%s", out);
	cr_assert_null(strstr(out, "FAIL"), "%s", out);
	family_row("parent", &present[0], &shared[0]);
	family_row("clone 1", &present[1], &shared[1]);
	family_row("clone 2", &present[2], &shared[2]);
	after = family_frames("live right after cloning");
	full = family_frames("3 full copies (no sharing)");
	cr_log_info("restore --clones 2: present %llu/%llu/%llu, shared %llu/%llu/%llu, live "
		    "after cloning %llu frames, 3 full copies %llu",
		    present[0], present[1], present[2], shared[0], shared[1], shared[2], after,
		    full);
	/*
	 * The clones run on the restored frames.  Not all: the pages with reads
	 * in flight are copied at each clone (docs/mm.md, the exclusive rule),
	 * and dmastress rewrites its slots, so a share remains at the end and
	 * the family needed fewer frames than its VMs had pages.
	 */
	cr_assert_gt(shared[1], 0, "%s", out);
	cr_assert_gt(shared[2], 0, "%s", out);
	cr_assert_lt(after, present[0] + present[1] + present[2], "%s", out);
}

static uint64_t file_hash(const char *path)
{
	size_t len, i;
	uint8_t *p = read_file(path, &len);
	uint64_t h = 1469598103934665603ULL;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	free(p);
	return h ^ len;
}

Test(snapshot, a_full_disk_snapshot_mid_write_restores_and_its_files_stay_unchanged, .timeout = 600)
{
	char disk[300], spec[400], dir[300], disk0[400], manifest[400];
	uint64_t before, man_before;
	char cmd[400];

	vmm_kvm_or_skip();
	make_disk(disk, sizeof(disk), "write.img");
	snprintf(cmd, sizeof(cmd), "truncate -s 512K '%s'", disk);
	cr_assert_eq(system(cmd), 0);
	snprintf(spec, sizeof(spec), "%s,latency=500ms", disk);
	vmm_path(dir, sizeof(dir), "write-snap");
	/* Line 4 is blkwrite's get-id line: its 64 KiB writes follow, 500 ms each. */
	cr_assert_eq(run_disk("blkwrite", "", spec, dir, "full", "4", true), 0, "%s", out);
	cr_assert_geq(in_flight_at_snapshot(), 1, "no write in flight at the snapshot: %s", out);
	snprintf(disk0, sizeof(disk0), "%s/disk0", dir);
	snprintf(manifest, sizeof(manifest), "%s/%s", dir, SNAP_MANIFEST_NAME);
	before = file_hash(disk0);
	man_before = file_hash(manifest);
	/* The restored guest writes the whole disk, flushes and reads it back. */
	cr_assert_eq(restore(dir), 0, "restore: %s", out);
	cr_assert(strstr(out, "written, flushed, read back ok"), "%s", out);
	cr_assert_null(strstr(out, "guest: workload"), "the restored guest booted again: %s", out);
	/* Its writes went to an overlay: the snapshot restores the same again. */
	cr_assert_eq(file_hash(disk0), before, "the restore wrote the snapshot's disk file");
	cr_assert_eq(file_hash(manifest), man_before);
	cr_assert_eq(restore(dir), 0, "second restore: %s", out);
	cr_assert(strstr(out, "written, flushed, read back ok"), "%s", out);
}

/*
 * A live snapshot forks the disk; once the snapshot is written the guest's
 * disk is folded back onto its image: every write of the run, before and
 * after the snapshot, is in the image file at the end.
 */
Test(snapshot, after_a_live_disk_snapshot_the_guests_writes_reach_its_image, .timeout = 600)
{
	char disk[300], spec[400], dir[300], cmd[400], err[512];

	vmm_kvm_or_skip();
	make_disk(disk, sizeof(disk), "live-write.img");
	snprintf(cmd, sizeof(cmd), "truncate -s 512K '%s'", disk);
	cr_assert_eq(system(cmd), 0);
	snprintf(spec, sizeof(spec), "%s,latency=500ms", disk);
	vmm_path(dir, sizeof(dir), "live-write-snap");
	cr_assert_eq(run_disk("blkwrite", "", spec, dir, "live", "4", false), 0, "%s", out);
	cr_assert(strstr(out, "written, flushed, read back ok"), "%s", out);
	cr_assert(strstr(out, "the guest writes its image again"), "%s", out);
	/* blkwrite's pattern everywhere. */
	cr_assert_eq(mkdisk_check(disk, 512 << 10, DISK_PATTERN_SEED_WRITE, err, sizeof(err)), 0,
		     "the image lacks writes of the run: %s", err);
}

static void set_disk_u32(void *fdt, void *arg)
{
	int node = fdt_path_offset(fdt, "/disks/disk0");

	cr_assert_geq(node, 0);
	cr_assert_eq(fdt_setprop_inplace_u32(fdt, node, "device", *(uint32_t *)arg), 0);
}

static void set_disk_size(void *fdt, void *arg)
{
	int node = fdt_path_offset(fdt, "/disks/disk0");
	uint64_t size = *(uint64_t *)arg;
	fdt32_t v[2] = { cpu_to_fdt32((uint32_t)(size >> 32)), cpu_to_fdt32((uint32_t)size) };

	cr_assert_geq(node, 0);
	cr_assert_eq(fdt_setprop_inplace(fdt, node, "size", v, sizeof(v)), 0);
}

/* A copy of the dmastress snapshot, for one damage each. */
static void copy_dma(const char *name, char *dir, size_t len)
{
	char base[300], cmd[800];

	dma_snapshot(base, sizeof(base));
	vmm_path(dir, len, name);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", dir, base, dir);
	cr_assert_eq(system(cmd), 0);
}

Test(snapshot, bad_disk_entries_and_files_get_one_line_and_status_1, .timeout = 600)
{
	char dir[300], path[400];
	uint32_t id = 1;
	uint64_t size;

	vmm_kvm_or_skip();
	copy_dma("nodisk", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/disk0", dir);
	cr_assert_eq(unlink(path), 0);
	refused(dir, "disk0: No such file or directory");

	copy_dma("shortdisk", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/disk0", dir);
	cr_assert_eq(truncate(path, 1 << 20), 0);
	refused(dir, "disk0: 1048576 bytes, the manifest says 4194304");

	copy_dma("diskdev", dir, sizeof(dir));
	edit_manifest(dir, set_disk_u32, &id);
	refused(dir, "/disks/disk0/device 1");

	copy_dma("disksize", dir, sizeof(dir));
	size = 4194304 + 100;
	edit_manifest(dir, set_disk_size, &size);
	refused(dir, "/disks/disk0/size 4194404");

	/* Sizes that add up in the manifest but not with the file. */
	copy_dma("disksize2", dir, sizeof(dir));
	size = 8 << 20;
	edit_manifest(dir, set_disk_size, &size);
	refused(dir, "the manifest says 8388608");
}
