// SPDX-License-Identifier: MIT
/*
 * Lazy restore through the forkvm binary (KVM, via scripts/in-kvm):
 * `forkvm restore DIR --lazy`, a working set recorded with --record-ws and
 * loaded with --prefetch, and damaged working-set files, which are ignored
 * with a warning (they only make a restore faster).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
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
	/* Header, addresses to a page boundary, then a page of data each. */
	cr_assert_eq(sb.st_size,
		     ((SNAP_WS_HEADER + 8 * recorded + 4095) & ~4095LL) + 4096 * recorded);

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

/* The working-set file's bytes, read whole. */
static uint8_t *get_ws(size_t *len)
{
	char ws[400];
	struct stat sb;
	uint8_t *buf;
	int fd;

	snprintf(ws, sizeof(ws), "%s/%s", snap, SNAP_WS_NAME);
	fd = open(ws, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", ws, strerror(errno));
	cr_assert_eq(fstat(fd, &sb), 0);
	*len = (size_t)sb.st_size;
	buf = malloc(*len);
	cr_assert_not_null(buf);
	cr_assert_eq(read(fd, buf, *len), (ssize_t)*len);
	close(fd);
	return buf;
}

/* @good with the 8 bytes at @at replaced by @v, as the working set. */
static void put_ws_with(const uint8_t *good, size_t len, size_t at, uint64_t v)
{
	uint8_t *bad = malloc(len);

	cr_assert_not_null(bad);
	memcpy(bad, good, len);
	memcpy(bad + at, &v, 8);
	put_ws(bad, len);
	free(bad);
}

Test(snapshot_lazy, a_damaged_working_set_is_ignored_with_a_warning, .timeout = 900)
{
	const size_t e0 = SNAP_WS_HEADER, e1 = SNAP_WS_HEADER + 8;
	uint64_t first, second, word;
	uint8_t *good;
	uint32_t n;
	size_t len;

	snapshot_once();
	put_ws(NULL, 0);
	ignored("none", "no working set recorded");
	cr_assert_eq(restore(snap, "--lazy", "--record-ws", "300"), 0, "%s", out);
	good = get_ws(&len);
	memcpy(&n, good + 12, 4);
	cr_assert_geq(n, 2, "a working set of %u pages: too small to damage", n);
	memcpy(&first, good + e0, 8);
	memcpy(&second, good + e1, 8);

	put_ws(good, len - 1);
	ignored("short", "bytes for");
	memcpy(&word, good, 8);
	put_ws_with(good, len, 0, word ^ 1);
	ignored("magic", "not a working-set file");
	memcpy(&word, good + 16, 8);
	put_ws_with(good, len, 16, word ^ 1);
	ignored("another snapshot", "recorded for another snapshot");
	memcpy(&word, good + len - 8, 8);
	put_ws_with(good, len, len - 8, word ^ 0x100);
	ignored("data", "does not match its checksum");
	put_ws_with(good, len, e0, second);
	ignored("unsorted", "not above the one before");
	put_ws_with(good, len, e0, first + 16);
	ignored("unaligned", "not a page of the memory layout");
	put_ws_with(good, len, SNAP_WS_HEADER + 8 * (n - 1), 64ULL << 20);
	ignored("outside", "not a page of the memory layout");
	put_ws(good, 7);
	ignored("tiny", "7 bytes, expected 32");
	/* The good one is taken again afterwards. */
	put_ws(good, len);
	cr_assert_eq(restore(snap, "--prefetch", NULL, NULL), 0, "%s", out);
	finished_like_plain("good");
	cr_assert_eq(number_after("pages load on first touch, "), n, "%s", out);
	free(good);
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
