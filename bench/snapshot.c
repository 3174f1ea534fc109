// SPDX-License-Identifier: MIT
/*
 * Question: what does a snapshot cost, full and live, against writing the
 * same bytes with write(2); how long is the guest paused; how big is it on
 * disk; and what does an eager restore cost against mapping the memory file
 * MAP_PRIVATE and touching its pages (the way Firecracker restores)?
 *
 * A 512 MiB test guest held mid-run (atomics hold=1), with all of its memory
 * above 16 MiB written from the host, or 1/8 of it.  Needs KVM (run it
 * through scripts/in-kvm).  Prints name: value lines; a ratio < 1 means
 * forkvm is faster than its baseline.  Snapshot files go to $TMPDIR.
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
#include "vmm/snapshot/snapshot.h"

#define GUEST (512ULL << 20)
#define FILL_FROM BENCH_GUEST_FILL_FROM

static char tmp[256];

/* Baseline: @bytes written to a new file with write(2) in 1 MiB calls, fsynced. */
static double write_baseline_us(uint64_t bytes)
{
	static uint8_t buf[1 << 20];
	char path[300];
	double t0, t;
	uint64_t done;
	int fd;

	snprintf(path, sizeof(path), "%s/baseline", tmp);
	memset(buf, 0x5a, sizeof(buf));
	t0 = now_us();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	for (done = 0; done < bytes; done += sizeof(buf)) {
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			break;
	}
	fsync(fd);
	close(fd);
	t = now_us() - t0;
	unlink(path);
	return t;
}

/* Baseline: mmap the memory file MAP_PRIVATE and read one byte of every data page. */
static double mmap_touch_us(const char *dir)
{
	char path[400];
	volatile uint8_t sink = 0;
	uint8_t *p;
	double t0, t;
	off_t off, end;
	struct stat sb;
	int fd;

	snprintf(path, sizeof(path), "%s/memory", dir);
	t0 = now_us();
	fd = open(path, O_RDONLY);
	fstat(fd, &sb);
	p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	for (off = 0; (off = lseek(fd, off, SEEK_DATA)) >= 0; off = end) {
		end = lseek(fd, off, SEEK_HOLE);
		for (; off < end; off += 4096)
			sink += p[off];
	}
	t = now_us() - t0;
	munmap(p, (size_t)sb.st_size);
	close(fd);
	(void)sink;
	return t;
}

static void rm_rf(const char *dir)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "bench: %s failed\n", cmd);
}

/*
 * The store alone, no KVM (runs on any host): a 512 MiB space filled from
 * the host, forked as a live snapshot does, written with snap_store_write()
 * against write(2) of the same bytes; loaded into a new space against
 * mapping the file MAP_PRIVATE and touching it.
 */
static int store_only(const char *label, unsigned int every)
{
	struct space_range r = { 0, GUEST };
	struct snap_manifest *man = calloc(1, sizeof(*man));
	static uint8_t page[4096], state[64 * 2];
	struct snap_write_stats st;
	struct space *s, *frozen, *c;
	struct snap_loaded l;
	struct pool *pool;
	char dir[300], err[256];
	double t0, write_us, load_us;
	uint64_t gpa;

	if (!man || pool_create(NULL, &pool) || space_create(pool, &r, 1, &s))
		return -1;
	for (gpa = FILL_FROM; gpa < GUEST; gpa += every * 4096ULL) {
		memset(page, (int)(gpa >> 12) | 1, sizeof(page));
		if (space_write(s, gpa, page, sizeof(page)))
			return -1;
	}
	if (space_fork(s, &frozen))
		return -1;
	man->major = SNAP_FORMAT_MAJOR;
	man->minor = SNAP_FORMAT_MINOR;
	man->kind = SNAP_LIVE;
	man->nranges = 1;
	man->range[0] = (struct snap_range){ 0, GUEST };
	man->mem_file_size = GUEST;
	man->ncpus = 1;
	man->state = state;
	man->state_size = sizeof(state);
	snprintf(dir, sizeof(dir), "%s/store-%s", tmp, label);
	t0 = now_us();
	if (snap_store_write(&(struct snap_write){ .dir = dir, .man = man, .space = frozen }, &st,
			     err, sizeof(err))) {
		fprintf(stderr, "bench: store: %s\n", err);
		return -1;
	}
	write_us = now_us() - t0;
	if (space_create(pool, &r, 1, &c) || snap_store_open(dir, &l, err, sizeof(err)))
		return -1;
	t0 = now_us();
	if (snap_store_load_memory(&l, c, NULL, err, sizeof(err)))
		return -1;
	load_us = now_us() - t0;
	snap_store_close(&l);
	printf("store.%s.data_MiB: %.1f\n", label, st.bytes / 1048576.0);
	printf("store.%s.write_ms: %.2f (memory %.2f, sync+rename %.2f)\n", label, write_us / 1e3,
	       st.memory_ns / 1e6, st.sync_ns / 1e6);
	printf("store.%s.write_vs_write2: %.2f\n", label, write_us / write_baseline_us(st.bytes));
	printf("store.%s.load_ms: %.2f\n", label, load_us / 1e3);
	printf("store.%s.load_vs_mmap_touch: %.2f\n", label, load_us / mmap_touch_us(dir));
	rm_rf(dir);
	space_destroy(c);
	space_destroy(frozen);
	space_destroy(s);
	pool_destroy(pool);
	free(man);
	return 0;
}

static int one(const char *label, unsigned int every)
{
	struct restore_opts ro = { .console = "/dev/null", .quiet_results = true };
	double full_us, full_pause_us, live_us, live_pause_us, base_us, restore_us, mmap_us;
	struct snapshot_timing t;
	struct restore_timing rt;
	struct machine *m, *r;
	char dir[300], err[512];
	uint64_t bytes, disk;
	double t0;

	if (bench_guest_make(&m, GUEST, every, NULL))
		return -1;
	snprintf(dir, sizeof(dir), "%s/full", tmp);
	if (machine_snapshot(m, &(struct snapshot_opts){ .dir = dir, .kind = SNAP_FULL }, &t, err,
			     sizeof(err))) {
		fprintf(stderr, "bench: full snapshot: %s\n", err);
		return -1;
	}
	full_us = t.total_ns / 1e3;
	full_pause_us = t.paused_ns / 1e3;
	bytes = t.w.bytes;
	disk = t.w.disk_bytes;
	rm_rf(dir);
	snprintf(dir, sizeof(dir), "%s/live", tmp);
	if (machine_snapshot(m, &(struct snapshot_opts){ .dir = dir, .kind = SNAP_LIVE }, &t, err,
			     sizeof(err))) {
		fprintf(stderr, "bench: live snapshot: %s\n", err);
		return -1;
	}
	live_us = t.total_ns / 1e3;
	live_pause_us = t.paused_ns / 1e3;
	cpus_stop(&m->cpus, 0, NULL);
	machine_wait(m, 0);
	machine_destroy(m);
	base_us = write_baseline_us(bytes);

	t0 = now_us();
	if (snapshot_restore(dir, &ro, &r, &rt, err, sizeof(err))) {
		fprintf(stderr, "bench: restore: %s\n", err);
		return -1;
	}
	restore_us = now_us() - t0;
	machine_destroy(r);
	mmap_us = mmap_touch_us(dir);
	rm_rf(dir);

	printf("%s.data_MiB: %.1f\n", label, bytes / 1048576.0);
	printf("%s.on_disk_MiB: %.1f\n", label, disk / 1048576.0);
	printf("%s.full.total_ms: %.2f\n", label, full_us / 1e3);
	printf("%s.full.paused_ms: %.2f\n", label, full_pause_us / 1e3);
	printf("%s.live.total_ms: %.2f\n", label, live_us / 1e3);
	printf("%s.live.paused_ms: %.3f\n", label, live_pause_us / 1e3);
	printf("%s.write2_baseline_ms: %.2f\n", label, base_us / 1e3);
	printf("%s.full_vs_write2: %.2f\n", label, full_us / base_us);
	printf("%s.live_vs_write2: %.2f\n", label, live_us / base_us);
	printf("%s.live_pause_vs_full_pause: %.4f\n", label, live_pause_us / full_pause_us);
	printf("%s.restore_eager_ms: %.2f (build %.2f, memory %.2f, state %.2f)\n", label,
	       restore_us / 1e3, rt.build_ns / 1e6, rt.memory_ns / 1e6, rt.state_ns / 1e6);
	printf("%s.mmap_private_touch_ms: %.2f\n", label, mmap_us / 1e3);
	printf("%s.restore_vs_mmap_touch: %.2f\n", label, restore_us / mmap_us);
	return 0;
}

int main(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmp, sizeof(tmp), "%s/forkvm-bench-snap.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	if (store_only("all", 1) || store_only("eighth", 8)) {
		rm_rf(tmp);
		return 1;
	}
	if (!bench_guest_have_kvm("snapshot (the machine part)")) {
		rm_rf(tmp);
		return 0;
	}
	if (one("all", 1) || one("eighth", 8)) {
		rm_rf(tmp);
		return 1;
	}
	rm_rf(tmp);
	return 0;
}
