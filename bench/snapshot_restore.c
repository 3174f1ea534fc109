// SPDX-License-Identifier: MIT
/*
 * Question: how long until a restored guest can run, eager (the whole memory
 * file read first), lazy (pages on first touch) and lazy with its working
 * set prefetched, against mapping the memory file MAP_PRIVATE (the way
 * Firecracker restores); and what do the first touches of the working set
 * cost afterwards, per page?
 *
 * A 512 MiB guest memory with every page above 16 MiB written ("all", 496
 * MiB of data) or every 8th ("eighth", 62 MiB).  The working set is every
 * 8th page with data (what the guest touches first, in this model); the
 * page cache holds the memory file in every case (it was just written).
 *
 * Host part (no KVM, any machine): the memory of a snapshot written with
 * snap_store_write(), made ready in a new space each way, then the working
 * set touched through the window, as vCPUs touch it.
 * Machine part (KVM, through scripts/in-kvm): a held test guest snapshotted,
 * then snapshot_restore() + machine_start() timed for each way: the time to
 * the guest's first instruction.
 * Prints name: value lines; a ratio < 1 means faster than its baseline.
 * FORKVM_BENCH_PART=host or vm runs one part only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_guest.h"
#include "mm/mm.h"
#include "vmm/machine.h"
#include "vmm/snapshot/lazy.h"
#include "vmm/snapshot/snapshot.h"

#define GUEST (512ULL << 20)
#define FILL_FROM BENCH_GUEST_FILL_FROM
#define WS_EVERY 8

static char tmp[256];

static void rm_rf(const char *dir)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "bench: %s failed\n", cmd);
}

/* The working set: every WS_EVERY-th page with data (the guest filled 1 in @every). */
static uint64_t *working_set(unsigned int every, size_t *n)
{
	uint64_t step = (uint64_t)every * WS_EVERY * 4096, *ws;
	size_t k = 0;

	*n = (GUEST - FILL_FROM) / step;
	ws = malloc(*n * sizeof(*ws));
	for (uint64_t gpa = FILL_FROM; ws && k < *n; gpa += step)
		ws[k++] = gpa;
	return ws;
}

/*
 * @dir's working-set file: @ws and their data as the fill wrote it (a byte
 * of the frame number, odd), bound to @dir's manifest.
 */
static int write_ws(const char *dir, const uint64_t *ws, size_t n)
{
	struct snap_loaded l;
	char err[512];
	uint8_t *data = malloc(n * 4096);
	int ret = -1;

	if (!data || snap_store_open(dir, &l, err, sizeof(err))) {
		fprintf(stderr, "bench: %s\n", data ? err : "out of memory");
		free(data);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		memset(data + i * 4096, (int)(ws[i] >> 12) | 1, 4096);
	if (snap_ws_write(dir, snap_ws_hash(l.blob, l.blob_size, SNAP_WS_HASH_SEED), ws, data, n,
			  err, sizeof(err)))
		fprintf(stderr, "bench: %s\n", err);
	else
		ret = 0;
	snap_store_close(&l);
	free(data);
	return ret;
}

/* Read one byte of each working-set page through @base (a window or a mapping). */
static double touch_us(const uint8_t *base, const uint64_t *ws, size_t n)
{
	volatile uint8_t sink = 0;
	double t0 = now_us();

	for (size_t i = 0; i < n; i++)
		sink += base[ws[i]];
	(void)sink;
	return now_us() - t0;
}

struct way {
	double ready_us, touch_us;
};

/* Firecracker's way: open, mmap MAP_PRIVATE; the touches fault from the page cache. */
static struct way by_mmap(const char *dir, const uint64_t *ws, size_t n)
{
	struct way w = { 0 };
	char path[400];
	uint8_t *p;
	double t0;
	int fd;

	snprintf(path, sizeof(path), "%s/memory", dir);
	t0 = now_us();
	fd = open(path, O_RDONLY | O_CLOEXEC);
	p = mmap(NULL, GUEST, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	w.ready_us = now_us() - t0;
	if (p == MAP_FAILED)
		return w;
	w.touch_us = touch_us(p, ws, n);
	munmap(p, GUEST);
	close(fd);
	return w;
}

/* Lazy with a read-around of 1 page (none) and of SNAP_LAZY_READAROUND (the default). */
enum how { EAGER, LAZY, LAZY_RA, PREFETCH };
static const char *const how_name[] = { "eager", "lazy_page", "lazy", "prefetch" };

/* A new space made ready from @dir, @how; then the working set touched. */
static int by_mm(struct pool *pool, const char *dir, enum how how, const uint64_t *ws, size_t n,
		 struct way *w, struct space_lazy_stats *st)
{
	struct space_range r = { 0, GUEST };
	struct snap_lazy_opts lo = { .lazy = true, .prefetch = how == PREFETCH };
	struct snap_loaded l;
	struct space *s;
	char err[512];
	double t0;
	int ret;

	t0 = now_us();
	if (space_create(pool, &r, 1, &s))
		return -1;
	ret = snap_store_open(dir, &l, err, sizeof(err));
	if (!ret && how == EAGER)
		ret = snap_store_load_memory(&l, s, NULL, err, sizeof(err));
	else if (!ret)
		ret = snap_lazy_memory(&l, 1, dir, s, &lo, err, sizeof(err));
	if (!ret && how != EAGER)
		ret = space_lazy_set_readaround(s, how == LAZY ? 1 : SNAP_LAZY_READAROUND);
	snap_store_close(&l);
	w->ready_us = now_us() - t0;
	if (ret) {
		fprintf(stderr, "bench: %s: %s\n", how_name[how], err);
		space_destroy(s);
		return -1;
	}
	w->touch_us = touch_us(space_hva(s, 0), ws, n);
	space_lazy_get_stats(s, st);
	space_destroy(s);
	return 0;
}

static int host_part(const char *label, unsigned int every)
{
	struct space_range r = { 0, GUEST };
	struct snap_manifest *man = calloc(1, sizeof(*man));
	static uint8_t page[4096], state[128];
	struct space_lazy_stats st[4];
	struct way w[4], mm;
	struct space *s, *frozen;
	struct pool *pool;
	char dir[300], err[256];
	uint64_t *ws;
	size_t n;

	ws = working_set(every, &n);
	if (!man || !ws || pool_create(NULL, &pool) || space_create(pool, &r, 1, &s))
		return -1;
	for (uint64_t gpa = FILL_FROM; gpa < GUEST; gpa += every * 4096ULL) {
		memset(page, (int)(gpa >> 12) | 1, sizeof(page));
		if (space_write(s, gpa, page, sizeof(page)))
			return -1;
	}
	if (space_fork(s, &frozen))
		return -1;
	*man = (struct snap_manifest){ .major = SNAP_FORMAT_MAJOR,
				       .minor = SNAP_FORMAT_MINOR,
				       .kind = SNAP_LIVE,
				       .nranges = 1,
				       .range = { { 0, GUEST } },
				       .mem_file_size = GUEST,
				       .ncpus = 1,
				       .state = state,
				       .state_size = sizeof(state) };
	snprintf(dir, sizeof(dir), "%s/host-%s", tmp, label);
	if (snap_store_write(&(struct snap_write){ .dir = dir, .man = man, .space = frozen }, NULL,
			     err, sizeof(err))) {
		fprintf(stderr, "bench: store: %s\n", err);
		return -1;
	}
	space_destroy(frozen);
	space_destroy(s);
	if (write_ws(dir, ws, n))
		return -1;
	/* Twice each, interleaved; the second round is the one printed. */
	for (int round = 0; round < 2; round++) {
		mm = by_mmap(dir, ws, n);
		for (enum how h = EAGER; h <= PREFETCH; h++)
			if (by_mm(pool, dir, h, ws, n, &w[h], &st[h]))
				return -1;
	}
	printf("host.%s.working_set_pages: %zu\n", label, n);
	printf("host.%s.mmap_private.ready_ms: %.3f\n", label, mm.ready_us / 1e3);
	printf("host.%s.mmap_private.touch_us_per_page: %.2f\n", label, mm.touch_us / n);
	for (enum how h = EAGER; h <= PREFETCH; h++) {
		printf("host.%s.%s.ready_ms: %.3f\n", label, how_name[h], w[h].ready_us / 1e3);
		printf("host.%s.%s.ready_vs_mmap: %.2f\n", label, how_name[h],
		       w[h].ready_us / mm.ready_us);
		printf("host.%s.%s.touch_us_per_page: %.2f\n", label, how_name[h],
		       w[h].touch_us / n);
		printf("host.%s.%s.touch_vs_mmap: %.2f\n", label, how_name[h],
		       w[h].touch_us / mm.touch_us);
		printf("host.%s.%s.ready_plus_touch_vs_mmap: %.2f\n", label, how_name[h],
		       (w[h].ready_us + w[h].touch_us) / (mm.ready_us + mm.touch_us));
		printf("host.%s.%s.loads: %llu pages, %llu faults, %llu read around, %llu "
		       "prefetched\n",
		       label, how_name[h], (unsigned long long)st[h].loaded,
		       (unsigned long long)st[h].faults, (unsigned long long)st[h].read_around,
		       (unsigned long long)st[h].prefetched);
	}
	rm_rf(dir);
	pool_destroy(pool);
	free(man);
	free(ws);
	return 0;
}

/*
 * snapshot_restore() and machine_start(): the time to the guest's first
 * instruction; then, in *@ws_us, until the working set was touched (through
 * the window, as the vCPUs would: lazy pages fault in).
 */
static double restore_us(const char *dir, struct snap_lazy_opts *lo, const uint64_t *ws, size_t n,
			 double *ws_us)
{
	struct restore_opts ro = { .console = "/dev/null", .quiet_results = true, .lazy = lo };
	struct restore_timing rt;
	struct machine *r;
	char err[512];
	double t0, t;

	t0 = now_us();
	if (snapshot_restore(dir, &ro, &r, &rt, err, sizeof(err))) {
		fprintf(stderr, "bench: restore: %s\n", err);
		return -1;
	}
	if (machine_start(r)) {
		machine_destroy(r);
		return -1;
	}
	t = now_us() - t0;
	*ws_us = t + touch_us(space_hva(r->space, 0), ws, n);
	cpus_stop(&r->cpus, 0, NULL);
	machine_wait(r, 0);
	machine_destroy(r);
	return t;
}

static int machine_part(const char *label, unsigned int every)
{
	struct snap_lazy_opts lazy = { .lazy = true }, pre = { .lazy = true, .prefetch = true };
	double eager_us, lazy_us, pre_us, eager_ws, lazy_ws, pre_ws;
	struct snapshot_timing t;
	struct machine *m;
	char dir[300], err[512];
	uint64_t *ws;
	struct way mm;
	size_t n;

	ws = working_set(every, &n);
	if (!ws || bench_guest_make(&m, GUEST, every, NULL))
		return -1;
	snprintf(dir, sizeof(dir), "%s/vm-%s", tmp, label);
	if (machine_snapshot(m, &(struct snapshot_opts){ .dir = dir, .kind = SNAP_LIVE }, &t, err,
			     sizeof(err))) {
		fprintf(stderr, "bench: snapshot: %s\n", err);
		return -1;
	}
	cpus_stop(&m->cpus, 0, NULL);
	machine_wait(m, 0);
	machine_destroy(m);
	if (write_ws(dir, ws, n))
		return -1;
	eager_us = restore_us(dir, NULL, ws, n, &eager_ws);
	lazy_us = restore_us(dir, &lazy, ws, n, &lazy_ws);
	pre_us = restore_us(dir, &pre, ws, n, &pre_ws);
	mm = by_mmap(dir, ws, n);
	if (eager_us < 0 || lazy_us < 0 || pre_us < 0)
		return -1;
	printf("vm.%s.restore_to_start_ms: eager %.2f, lazy %.2f, lazy+prefetch %.2f\n", label,
	       eager_us / 1e3, lazy_us / 1e3, pre_us / 1e3);
	printf("vm.%s.restore_and_touch_ws_ms: eager %.2f, lazy %.2f, lazy+prefetch %.2f\n", label,
	       eager_ws / 1e3, lazy_ws / 1e3, pre_ws / 1e3);
	printf("vm.%s.mmap_private_plus_touch_ws_ms: %.2f\n", label,
	       (mm.ready_us + mm.touch_us) / 1e3);
	printf("vm.%s.with_ws_vs_mmap_touch: eager %.2f, lazy %.2f, lazy+prefetch %.2f\n", label,
	       eager_ws / (mm.ready_us + mm.touch_us), lazy_ws / (mm.ready_us + mm.touch_us),
	       pre_ws / (mm.ready_us + mm.touch_us));
	printf("vm.%s.lazy_vs_eager: %.3f\n", label, lazy_us / eager_us);
	printf("vm.%s.prefetch_vs_eager: %.3f\n", label, pre_us / eager_us);
	printf("vm.%s.eager_vs_mmap_touch: %.2f\n", label, eager_us / (mm.ready_us + mm.touch_us));
	printf("vm.%s.prefetch_vs_mmap_touch: %.2f\n", label, pre_us / (mm.ready_us + mm.touch_us));
	rm_rf(dir);
	free(ws);
	return 0;
}

int main(void)
{
	const char *base = getenv("TMPDIR"), *part = getenv("FORKVM_BENCH_PART");
	int ret = 0;

	snprintf(tmp, sizeof(tmp), "%s/forkvm-bench-restore.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	/* FORKVM_BENCH_PART=host or vm: one part only (the nested path is slow). */
	if (!part || strcmp(part, "vm"))
		ret = host_part("all", 1) || host_part("eighth", 8);
	if (!ret && (!part || strcmp(part, "host")) &&
	    bench_guest_have_kvm("snapshot_restore (the machine part)"))
		ret = machine_part("all", 1) || machine_part("eighth", 8);
	rm_rf(tmp);
	return ret;
}
