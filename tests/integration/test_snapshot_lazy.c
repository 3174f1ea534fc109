// SPDX-License-Identifier: MIT
/*
 * Lazy restore through the forkvm binary (KVM, via scripts/in-kvm):
 * `forkvm restore DIR --lazy`, a working set recorded with --record-ws and
 * loaded with --prefetch, and damaged working-set files, which are ignored
 * with a warning (they only make a restore faster).
 */
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "tests/integration/test_vmm_helpers.h"
#include "vmm/snapshot/lazy.h"

#define TIMEOUT "120"
#define MEM "32M"

static char out[VMM_OUT_MAX];

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

/* memcheck passes=4 on 2 vCPUs, snapshotted (live) at console line 2 into @dir if set. */
static long long run_memcheck(const char *dir)
{
	const char *args[] = { "run",	   "--guest",
			       "test",	   "--workload",
			       "memcheck", "--mem",
			       MEM,	   "--cpus",
			       "2",	   "--args",
			       "passes=4", "--timeout",
			       TIMEOUT,	   dir ? "--snapshot-dir" : NULL,
			       dir,	   "--snapshot-at-line",
			       "2",	   NULL };
	int status = vmm_run(out, sizeof(out), args);

	cr_assert_eq(status, 0, "run: %s", out);
	return last_result(out);
}

/* `forkvm restore DIR [extra...]`: the exit status; the output in out. */
static int restore(const char *dir, const char *a1, const char *a2, const char *a3)
{
	const char *args[] = { "restore", dir, "--timeout", TIMEOUT, a1, a2, a3, NULL };

	return vmm_run(out, sizeof(out), args);
}

/* The number after @what in out (the first occurrence), or -1. */
static long long number_after(const char *what)
{
	const char *p = strstr(out, what);

	return p ? strtoll(p + strlen(what), NULL, 10) : -1;
}

static long long plain;
static char snap[300];

/* One uninterrupted run and one snapshot, shared by the tests of this program. */
static void snapshot_once(void)
{
	static bool done;

	vmm_kvm_or_skip();
	if (done)
		return;
	plain = run_memcheck(NULL);
	cr_assert_neq(plain, -1, "no result: %s", out);
	vmm_path(snap, sizeof(snap), "lazy");
	cr_assert_eq(run_memcheck(snap), plain, "the snapshotted run's result differs: %s", out);
	done = true;
}

static void finished_like_plain(const char *how)
{
	long long r = last_result(out);

	cr_assert_eq(r, plain, "%s: restored 0x%llx, uninterrupted 0x%llx: %s", how, r, plain, out);
	cr_assert_null(strstr(out, "guest: workload"), "%s: booted again: %s", how, out);
}

Test(snapshot_lazy, a_lazy_restore_finishes_with_the_same_checksum, .timeout = 400)
{
	snapshot_once();
	cr_assert_eq(restore(snap, "--lazy", NULL, NULL), 0, "%s", out);
	finished_like_plain("--lazy");
	/* The memory file's pages, none loaded before the start. */
	cr_assert_gt(number_after("lazy start: "), 0, "no lazy line: %s", out);
	cr_assert_eq(number_after("pages load on first touch, "), 0, "%s", out);
	/* The guest touched its memory: pages came in by its own faults. */
	cr_assert_gt(number_after("after start ("), 0, "%s", out);
	cr_assert_null(strstr(out, "warning"), "%s", out);
}

Test(snapshot_lazy, a_recorded_working_set_is_loaded_before_the_start, .timeout = 400)
{
	char ws[400];
	struct stat sb;
	long long recorded, prefetched;

	snapshot_once();
	cr_assert_eq(restore(snap, "--lazy", "--record-ws", "300"), 0, "%s", out);
	finished_like_plain("--record-ws");
	recorded = number_after("forkvm: working set: ");
	cr_assert_gt(recorded, 0, "nothing recorded: %s", out);
	snprintf(ws, sizeof(ws), "%s/%s", snap, SNAP_WS_NAME);
	cr_assert_eq(stat(ws, &sb), 0);
	cr_assert_eq(sb.st_size, SNAP_WS_HEADER + 8 * recorded);

	cr_assert_eq(restore(snap, "--prefetch", NULL, NULL), 0, "%s", out);
	finished_like_plain("--prefetch");
	/* Every recorded page had data, and all of it was loaded before the start. */
	prefetched = number_after("pages load on first touch, ");
	cr_assert_eq(prefetched, recorded, "prefetched %lld of %lld: %s", prefetched, recorded,
		     out);
	cr_assert_eq(number_after("of a working set of "), recorded, "%s", out);
	cr_assert_null(strstr(out, "warning"), "%s", out);
}

/* Write @len bytes of @data as the snapshot's working-set file (or unlink it). */
static void put_ws(const void *data, size_t len)
{
	char ws[400];

	snprintf(ws, sizeof(ws), "%s/%s", snap, SNAP_WS_NAME);
	unlink(ws);
	if (data)
		vmm_write_file(ws, data, len);
}

/* A restore with --prefetch over a bad working set: the warning, no prefetch, the same end. */
static void ignored(const char *what, const char *warning)
{
	cr_assert_eq(restore(snap, "--prefetch", NULL, NULL), 0, "%s: %s", what, out);
	finished_like_plain(what);
	cr_assert(strstr(out, warning), "%s: no '%s': %s", what, warning, out);
	cr_assert_eq(number_after("pages load on first touch, "), 0, "%s: %s", what, out);
}

static size_t ws_image(uint8_t *buf, const char *magic, uint32_t count, const uint64_t *gpas,
		       unsigned int n)
{
	memcpy(buf, magic, 8);
	memcpy(buf + 8, &(uint32_t){ SNAP_WS_VERSION }, 4);
	memcpy(buf + 12, &count, 4);
	memcpy(buf + 16, gpas, n * 8);
	return 16 + n * 8;
}

Test(snapshot_lazy, a_damaged_working_set_is_ignored_with_a_warning, .timeout = 600)
{
	uint8_t buf[256];
	uint64_t good[] = { 0x100000, 0x101000, 0x200000 };
	uint64_t unsorted[] = { 0x101000, 0x100000 };
	uint64_t outside[] = { 0x100000, 64ULL << 20 };
	uint64_t unaligned[] = { 0x100010 };

	snapshot_once();
	put_ws(NULL, 0);
	ignored("none", "no working set recorded");
	put_ws(buf, ws_image(buf, SNAP_WS_MAGIC, 3, good, 2));
	ignored("short", "bytes for 3 entries");
	put_ws(buf, ws_image(buf, "FORKVMXX", 3, good, 3));
	ignored("magic", "not a working-set file");
	put_ws(buf, ws_image(buf, SNAP_WS_MAGIC, 2, unsorted, 2));
	ignored("unsorted", "not above the one before");
	put_ws(buf, ws_image(buf, SNAP_WS_MAGIC, 2, outside, 2));
	ignored("outside", "not a page of the memory layout");
	put_ws(buf, ws_image(buf, SNAP_WS_MAGIC, 1, unaligned, 1));
	ignored("unaligned", "not a page of the memory layout");
	put_ws(buf, 7);
	ignored("tiny", "7 bytes, expected 16");
	/* A good one is taken again afterwards. */
	put_ws(buf, ws_image(buf, SNAP_WS_MAGIC, 3, good, 3));
	cr_assert_eq(restore(snap, "--prefetch", NULL, NULL), 0, "%s", out);
	finished_like_plain("good");
	cr_assert_eq(number_after("of a working set of "), 3, "%s", out);
	put_ws(NULL, 0);
}

Test(snapshot_lazy, bad_lazy_options_are_usage_errors, .timeout = 60)
{
	char dir[300];

	vmm_path(dir, sizeof(dir), "no-such-snapshot");
	cr_assert_eq(restore(dir, "--record-ws", "0", NULL), 2, "%s", out);
	cr_assert(strstr(out, "--record-ws '0': expected 1 to"), "%s", out);
	cr_assert_eq(restore(dir, "--record-ws", "x", NULL), 2, "%s", out);
	cr_assert_eq(restore(dir, "--record-ws", NULL, NULL), 2, "%s", out);
	cr_assert(strstr(out, "missing value"), "%s", out);
	cr_assert_eq(restore(dir, "--prefetch", "--record-ws", "5"), 2, "%s", out);
	cr_assert(strstr(out, "without --prefetch"), "%s", out);
	/* A missing snapshot with --lazy: the usual one line, status 1. */
	cr_assert_eq(restore(dir, "--lazy", NULL, NULL), 1, "%s", out);
	cr_assert(strstr(out, "forkvm restore: "), "%s", out);
}

/* A diff chain restored lazily: each page from the newest member that has it. */
Test(snapshot_lazy, a_diff_chain_restores_lazily_from_the_later_instant, .timeout = 400)
{
	char a[300], b[300];
	const char *run[] = { "run",	  "--guest",
			      "test",	  "--workload",
			      "memcheck", "--mem",
			      MEM,	  "--cpus",
			      "2",	  "--args",
			      "passes=8", "--timeout",
			      TIMEOUT,	  "--snapshot-dir",
			      a,	  "--snapshot-at-line",
			      "2",	  "--snapshot-diff-dir",
			      b,	  "--snapshot-diff-at-line",
			      "5",	  NULL };
	const char *plain8[] = { "run",	     "--guest",	  "test",   "--workload", "memcheck",
				 "--mem",    MEM,	  "--cpus", "2",	  "--args",
				 "passes=8", "--timeout", TIMEOUT,  NULL };
	long long want;

	vmm_kvm_or_skip();
	vmm_path(a, sizeof(a), "chain-a");
	vmm_path(b, sizeof(b), "chain-b");
	cr_assert_eq(vmm_run(out, sizeof(out), plain8), 0, "%s", out);
	want = last_result(out);
	cr_assert_neq(want, -1, "%s", out);
	cr_assert_eq(vmm_run(out, sizeof(out), run), 0, "%s", out);
	cr_assert_eq(last_result(out), want, "%s", out);
	cr_assert_eq(restore(b, "--lazy", NULL, NULL), 0, "restore diff: %s", out);
	cr_assert_eq(last_result(out), want, "%s", out);
	cr_assert_null(strstr(out, "pass 4/8 ok"), "the chain restored an earlier instant: %s",
		       out);
	cr_assert_gt(number_after("after start ("), 0, "%s", out);
}
