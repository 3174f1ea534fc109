// SPDX-License-Identifier: MIT
/*
 * Snapshot format and store without KVM: the manifest round trip, the
 * sparse memory file, the atomic directory (a full disk leaves nothing), and
 * every kind of bad input refused with one line; then a deterministic
 * mutation fuzzer over a valid manifest and memory file
 * (FORKVM_FUZZ_ITERS=N for a longer run: `make fuzz`).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/disk.h"
#include "mm/mm.h"
#include "vmm/device.h"
#include "vmm/machine_state.h"
#include "vmm/snapshot/cmd.h"
#include "vmm/snapshot/snapshot.h"

#define PAGE MM_PAGE_SIZE
#define NPAGES 64

static struct pool *pool;
static char tmpdir[256];

static void setup(void)
{
	cr_assert_eq(pool_create(NULL, &pool), 0);
	snprintf(tmpdir, sizeof(tmpdir), "%s/snap-test.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static void teardown(void)
{
	pool_destroy(pool);
	rm_rf(tmpdir);
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* A state blob that passes mstate_check(): a header and one VM-sized section. */
static struct machine_state state;

static void make_state(void)
{
	uint8_t *p;

	cr_assert_eq(mstate_init(&state, 4096), 0);
	p = mstate_add(&state, MSTATE_DEVICE, 1, DEVICE_SERIAL, 100);
	cr_assert_not_null(p);
	memset(p, 0x5a, 100);
}

static void make_manifest(struct snap_manifest *man, uint64_t pages)
{
	memset(man, 0, sizeof(*man));
	man->major = SNAP_FORMAT_MAJOR;
	man->minor = SNAP_FORMAT_MINOR;
	man->kind = SNAP_LIVE;
	snprintf(man->cpu_model, sizeof(man->cpu_model), "Test CPU @ 1 GHz");
	man->ncpuid = 2;
	man->cpuid[0] = (struct snap_cpuid){ 1, 0, 0x306a9, 0, 1u << 28, 1u << 26 };
	man->cpuid[1] = (struct snap_cpuid){ 7, 0, 0, 1u << 5, 0, 0 };
	man->nranges = 1;
	man->range[0] = (struct snap_range){ 0, pages * PAGE };
	man->mem_file_size = pages * PAGE;
	man->ncpus = 2;
	man->policy = MM_POLICY_PAGECOUNT;
	man->ndevs = 1;
	man->dev[0] = (struct snap_dev){ 1, DEVICE_SERIAL };
	if (!state.buf)
		make_state();
	man->state = state.buf;
	man->state_size = (uint32_t)mstate_size(&state);
}

static struct space *make_space(uint64_t pages)
{
	struct space_range r = { 0, pages * PAGE };
	struct space *s;

	cr_assert_eq(space_create(pool, &r, 1, &s), 0);
	return s;
}

/* Pages 0..NPAGES: even ones written with a pattern, page 5 written with
 * zeros, odd ones never written. */
static void fill(struct space *s)
{
	uint8_t page[PAGE];
	unsigned int p;

	for (p = 0; p < NPAGES; p += 2) {
		memset(page, (int)(p + 1), sizeof(page));
		memcpy(page, &p, sizeof(p));
		cr_assert_eq(space_write(s, (uint64_t)p * PAGE, page, PAGE), 0);
	}
	memset(page, 0, sizeof(page));
	cr_assert_eq(space_write(s, 5 * PAGE, page, PAGE), 0);
}

static void assert_same(struct space *a, struct space *b)
{
	static uint8_t pa[PAGE], pb[PAGE];
	unsigned int p;

	for (p = 0; p < NPAGES; p++) {
		cr_assert_eq(space_read(a, (uint64_t)p * PAGE, pa, PAGE), 0);
		cr_assert_eq(space_read(b, (uint64_t)p * PAGE, pb, PAGE), 0);
		cr_assert(!memcmp(pa, pb, PAGE), "page %u differs", p);
	}
}

static int write_snapshot(const char *name, struct space *s, struct snap_write_stats *st,
			  uint64_t fail_after, char *err, size_t errlen)
{
	static struct snap_manifest man;
	char dir[512];
	struct snap_write w;

	make_manifest(&man, NPAGES);
	path_of(dir, sizeof(dir), name);
	w = (struct snap_write){ .dir = dir, .man = &man, .space = s, .fail_after = fail_after };
	return snap_store_write(&w, st, err, errlen);
}

static bool leftovers(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	bool found = false;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		found |= strstr(e->d_name, ".tmp-") != NULL;
	closedir(d);
	return found;
}

TestSuite(snapshot, .init = setup, .fini = teardown);

/* @a built into a manifest, then parsed into @b (which points into the blob). */
static int build_and_parse(const struct snap_manifest *a, struct snap_manifest *b, char *err,
			   size_t errlen)
{
	static uint8_t blob[1 << 16];
	long len;

	len = snap_manifest_build(a, blob, sizeof(blob));
	cr_assert_gt(len, 0);
	return snap_manifest_parse(blob, (size_t)len, b, err, errlen);
}

Test(snapshot, manifest_round_trip_keeps_every_field)
{
	static struct snap_manifest a, b;
	char err[256];

	make_manifest(&a, NPAGES);
	a.pages_present = 7;
	cr_assert_eq(build_and_parse(&a, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(b.major, a.major);
	cr_assert_eq(b.minor, a.minor);
	cr_assert_eq(b.kind, SNAP_LIVE);
	cr_assert_str_eq(b.cpu_model, a.cpu_model);
	cr_assert_eq(b.ncpuid, 2);
	cr_assert(!memcmp(b.cpuid, a.cpuid, 2 * sizeof(a.cpuid[0])));
	cr_assert_eq(b.nranges, 1);
	cr_assert_eq(b.range[0].size, NPAGES * PAGE);
	cr_assert_eq(b.mem_file_size, NPAGES * PAGE);
	cr_assert_eq(b.pages_present, 7);
	cr_assert_eq(b.ncpus, 2);
	cr_assert_eq(b.ndevs, 1);
	cr_assert_eq(b.dev[0].id, 1);
	cr_assert_eq(b.dev[0].type, DEVICE_SERIAL);
	cr_assert_eq(b.state_size, a.state_size);
	cr_assert(!memcmp(b.state, a.state, a.state_size));
}

Test(snapshot, manifest_too_small_a_buffer_is_enospc)
{
	static struct snap_manifest a;
	uint8_t blob[256];

	make_manifest(&a, NPAGES);
	cr_assert_eq(snap_manifest_build(&a, blob, sizeof(blob)), -ENOSPC);
}

Test(snapshot, another_major_is_refused_naming_found_and_expected)
{
	static struct snap_manifest a, b;
	char err[256];

	make_manifest(&a, NPAGES);
	a.major = 2;
	a.minor = 3;
	cr_assert_eq(build_and_parse(&a, &b, err, sizeof(err)), -EPROTONOSUPPORT);
	cr_assert(strstr(err, "format 2.3"), "%s", err);
	cr_assert(strstr(err, "reads format 1.x"), "%s", err);
}

Test(snapshot, a_newer_minor_is_read)
{
	static struct snap_manifest a, b;
	char err[256];

	make_manifest(&a, NPAGES);
	a.minor = SNAP_FORMAT_MINOR + 5;
	cr_assert_eq(build_and_parse(&a, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(b.minor, SNAP_FORMAT_MINOR + 5);
}

/* Each broken manifest: refused, with a message naming what is wrong. */
static void refuse_manifest(void (*breakit)(struct snap_manifest *), const char *what)
{
	static struct snap_manifest a, b;
	char err[256] = "";

	make_manifest(&a, NPAGES);
	breakit(&a);
	cr_assert_neq(build_and_parse(&a, &b, err, sizeof(err)), 0, "accepted: %s", what);
	cr_assert(strstr(err, what), "'%s' does not name '%s'", err, what);
	cr_assert_null(strchr(err, '\n'));
}

static void unaligned(struct snap_manifest *m)
{
	m->range[0].gpa = 100;
}
static void overflowing(struct snap_manifest *m)
{
	m->nranges = 2;
	m->range[1] = (struct snap_range){ UINT64_MAX - PAGE + 1, 2 * PAGE };
}
static void overlapping(struct snap_manifest *m)
{
	m->nranges = 2;
	m->range[1] = (struct snap_range){ PAGE, PAGE };
}
static void file_size_wrong(struct snap_manifest *m)
{
	m->mem_file_size += PAGE;
}
static void no_cpus(struct snap_manifest *m)
{
	m->ncpus = 0;
}
static void too_many_cpus(struct snap_manifest *m)
{
	m->ncpus = 65;
}
static void dup_device(struct snap_manifest *m)
{
	m->ndevs = 2;
	m->dev[1] = m->dev[0];
}
static void unknown_device(struct snap_manifest *m)
{
	m->dev[0].type = 77;
}
static void tiny_state(struct snap_manifest *m)
{
	m->state_size = 10;
}
static void bad_policy(struct snap_manifest *m)
{
	m->policy = 9;
}
static void base_is_a_path(struct snap_manifest *m)
{
	m->kind = SNAP_DIFF;
	snprintf(m->base, sizeof(m->base), "../elsewhere");
}
static void base_is_dotdot(struct snap_manifest *m)
{
	m->kind = SNAP_DIFF;
	snprintf(m->base, sizeof(m->base), "..");
}
static void too_present(struct snap_manifest *m)
{
	m->pages_present = NPAGES + 1;
}

Test(snapshot, broken_manifests_are_refused_naming_the_property)
{
	refuse_manifest(unaligned, "/memory/ranges[0]");
	refuse_manifest(overflowing, "/memory/ranges[1]");
	refuse_manifest(overlapping, "/memory/ranges[1]");
	refuse_manifest(file_size_wrong, "/memory/file-size");
	refuse_manifest(no_cpus, "/machine/cpus 0");
	refuse_manifest(too_many_cpus, "/machine/cpus 65");
	refuse_manifest(dup_device, "id 1 twice");
	refuse_manifest(unknown_device, "/machine/devices[0]");
	refuse_manifest(tiny_state, "/machine/state");
	refuse_manifest(bad_policy, "/machine/mm-policy");
	refuse_manifest(too_present, "/memory/pages-present");
	refuse_manifest(base_is_a_path, "/memory/base '../elsewhere'");
	refuse_manifest(base_is_dotdot, "/memory/base '..'");
}

/* ---- disks (1.2) ------------------------------------------------------------ */

#define DISK_BYTES (1u << 20)

static void write_bytes(const char *path, const void *buf, size_t len);

/* A virtio-blk device (id 2) and its disk entry. */
static void with_disk(struct snap_manifest *m)
{
	m->ndevs = 2;
	m->dev[1] = (struct snap_dev){ 2, DEVICE_VIRTIO_BLK_MMIO };
	m->ndisks = 1;
	m->disk[0] = (struct snap_disk){ .dev_id = 2,
					 .readonly = 1,
					 .size = DISK_BYTES,
					 .blocks = 17,
					 .latency_ns = 20000000,
					 .id = "test.img" };
}

Test(snapshot, manifest_round_trip_keeps_every_disk_field)
{
	static struct snap_manifest a, b;
	char err[256];

	make_manifest(&a, NPAGES);
	with_disk(&a);
	cr_assert_eq(build_and_parse(&a, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(b.ndisks, 1);
	cr_assert_eq(b.disk[0].dev_id, 2);
	cr_assert_eq(b.disk[0].readonly, 1);
	cr_assert_eq(b.disk[0].size, DISK_BYTES);
	cr_assert_eq(b.disk[0].blocks, 17);
	cr_assert_eq(b.disk[0].latency_ns, 20000000);
	cr_assert_str_eq(b.disk[0].id, "test.img");
	/* Without disks there is no /disks node: what 1.1 wrote reads as before. */
	make_manifest(&a, NPAGES);
	cr_assert_eq(build_and_parse(&a, &b, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(b.ndisks, 0);
}

static void disk_missing(struct snap_manifest *m)
{
	with_disk(m);
	m->ndisks = 0;
}
static void disk_of_another_device(struct snap_manifest *m)
{
	with_disk(m);
	m->disk[0].dev_id = 1;
}
static void disk_without_device(struct snap_manifest *m)
{
	with_disk(m);
	m->ndevs = 1;
}
static void disk_odd_size(struct snap_manifest *m)
{
	with_disk(m);
	m->disk[0].size = DISK_BYTES + 100;
}
static void disk_empty(struct snap_manifest *m)
{
	with_disk(m);
	m->disk[0].size = 0;
}
static void disk_huge(struct snap_manifest *m)
{
	with_disk(m);
	m->disk[0].size = SNAP_DISK_MAX + 512;
}
static void disk_too_many_blocks(struct snap_manifest *m)
{
	with_disk(m);
	m->disk[0].blocks = DISK_BYTES / 4096 + 1;
}
static void disk_readonly_2(struct snap_manifest *m)
{
	with_disk(m);
	m->disk[0].readonly = 2;
}
static void disk_slow(struct snap_manifest *m)
{
	with_disk(m);
	m->disk[0].latency_ns = SNAP_LATENCY_MAX + 1;
}
static void two_disks_swapped(struct snap_manifest *m)
{
	with_disk(m);
	m->ndevs = 3;
	m->dev[2] = (struct snap_dev){ 3, DEVICE_VIRTIO_BLK_MMIO };
	m->ndisks = 2;
	m->disk[1] = m->disk[0];
	m->disk[0].dev_id = 3; /* disk0 must back the first blk, id 2 */
}

Test(snapshot, broken_disk_entries_are_refused_naming_the_property)
{
	refuse_manifest(disk_missing, "virtio disk 2 has no /disks entry");
	refuse_manifest(disk_of_another_device, "/disks/disk0/device 1");
	refuse_manifest(disk_without_device, "/disks: 1 disks for 0 virtio-blk devices");
	refuse_manifest(disk_odd_size, "/disks/disk0/size");
	refuse_manifest(disk_empty, "/disks/disk0/size 0");
	refuse_manifest(disk_huge, "/disks/disk0/size");
	refuse_manifest(disk_too_many_blocks, "/disks/disk0/blocks-present");
	refuse_manifest(disk_readonly_2, "/disks/disk0/read-only 2");
	refuse_manifest(disk_slow, "/disks/disk0/latency-ns");
	refuse_manifest(two_disks_swapped, "/disks/disk0/device 3");
}

/* A disk node named out of order, or a file that is a path. */
Test(snapshot, a_disk_node_or_file_of_another_name_is_refused)
{
	static struct snap_manifest a, b;
	static uint8_t blob[1 << 16];
	char err[256];
	long len;
	int node;

	make_manifest(&a, NPAGES);
	with_disk(&a);
	len = snap_manifest_build(&a, blob, sizeof(blob));
	cr_assert_gt(len, 0);
	node = fdt_path_offset(blob, "/disks/disk0");
	cr_assert_geq(node, 0);
	/* Same length, so the tree stays the same size as the file. */
	cr_assert_eq(fdt_setprop_inplace(blob, node, "file", "../xy\0", 6), 0);
	cr_assert_eq(snap_manifest_parse(blob, (size_t)len, &b, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "/disks/disk0/file '../xy'"), "%s", err);
	len = snap_manifest_build(&a, blob, sizeof(blob));
	node = fdt_path_offset(blob, "/disks/disk0");
	cr_assert_eq(fdt_set_name(blob, node, "disk7"), 0);
	cr_assert_eq(snap_manifest_parse(blob, (size_t)len, &b, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "/disks/disk7: expected disk0"), "%s", err);
}

/* A disk image: the pattern in every other 4 KiB block, the rest zeros. */
static void make_image(const char *path)
{
	static uint8_t img[DISK_BYTES];
	unsigned int i;

	memset(img, 0, sizeof(img));
	for (i = 0; i < DISK_BYTES; i += 8192)
		memset(img + i, 0x40 + (i >> 13) % 64, 4096);
	write_bytes(path, img, sizeof(img));
}

static void same_file(const char *a, const char *b)
{
	static uint8_t x[DISK_BYTES], y[DISK_BYTES];
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);

	cr_assert(fa >= 0 && fb >= 0);
	cr_assert_eq(pread(fa, x, sizeof(x), 0), DISK_BYTES);
	cr_assert_eq(pread(fb, y, sizeof(y), 0), DISK_BYTES);
	cr_assert(!memcmp(x, y, sizeof(x)), "%s and %s differ", a, b);
	close(fa);
	close(fb);
}

static void io_done(struct disk_io *io, int res)
{
	__atomic_store_n((int *)io->priv, res == 0 ? 1 : -1, __ATOMIC_RELEASE);
}

/* One write of @len bytes of @byte at @pos through @d, waited for. */
static void disk_write_sync(struct disk *d, uint64_t pos, size_t len, int byte)
{
	static uint8_t buf[DISK_BYTES];
	struct iovec iov = { buf, len };
	int done = 0;
	struct disk_io io = {
		.op = DISK_WRITE, .pos = pos, .iov = &iov, .niov = 1, .done = io_done, .priv = &done
	};

	memset(buf, byte, len);
	cr_assert_eq(disk_submit(d, &io), 0);
	while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE))
		usleep(100);
	cr_assert_eq(done, 1);
}

Test(snapshot, a_disk_is_written_sparse_and_checked_at_open)
{
	static struct snap_manifest man;
	struct space *a = make_space(NPAGES);
	struct disk_config dc = { 0 };
	struct disk *d, *fork, *disks[1];
	struct snap_write_stats st;
	char err[256], dir[512], img[512], path[600];
	struct snap_loaded l;
	struct snap_write w;
	struct stat sb;

	fill(a);
	path_of(img, sizeof(img), "disk.img");
	make_image(img);
	dc.path = img;
	cr_assert_eq(disk_open(&dc, &d, err, sizeof(err)), 0, "%s", err);
	/* The snapshot's view: a fork; the disk's later writes are not in it. */
	cr_assert_eq(disk_fork(d, &fork), 0);
	disk_write_sync(d, 8192, 4096, 0x77);
	make_manifest(&man, NPAGES);
	with_disk(&man);
	man.disk[0].readonly = 0;
	disks[0] = fork;
	path_of(dir, sizeof(dir), "withdisk");
	w = (struct snap_write){ .dir = dir, .man = &man, .space = a, .disks = disks };
	cr_assert_eq(snap_store_write(&w, &st, err, sizeof(err)), 0, "%s", err);
	/* Half the blocks hold data: those are written, the rest are holes. */
	cr_assert_eq(st.disk_blocks, DISK_BYTES / 8192);
	cr_assert_eq(man.disk[0].blocks, DISK_BYTES / 8192);
	snprintf(path, sizeof(path), "%s/disk0", dir);
	same_file(path, img);
	cr_assert_eq(stat(path, &sb), 0);
	cr_assert_leq((uint64_t)sb.st_blocks * 512, DISK_BYTES / 2 + 65536, "not sparse: %lld",
		      (long long)sb.st_blocks * 512);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(l.man.ndisks, 1);
	snap_store_close(&l);

	/* Opened as a restore does: the guest's writes never reach the file. */
	{
		struct disk_config rc = { .path = path, .overlay = true };
		struct disk *r;

		cr_assert_eq(chmod(path, 0444), 0); /* read-only is enough */
		cr_assert_eq(disk_open(&rc, &r, err, sizeof(err)), 0, "%s", err);
		disk_write_sync(r, 0, DISK_BYTES, 0x99);
		disk_close(r);
		same_file(path, img);
		cr_assert_eq(chmod(path, 0644), 0);
	}

	/* Bad disk files: short, a FIFO, missing; one line each. */
	cr_assert_eq(truncate(path, DISK_BYTES - 512), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "disk0: 1048064 bytes, the manifest says 1048576"), "%s", err);
	cr_assert_null(strchr(err, '\n'));
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkfifo(path, 0644), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "disk0: not a regular file"), "%s", err);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "disk0: No such file"), "%s", err);

	/* A failed write leaves neither the snapshot nor its disk file. */
	path_of(dir, sizeof(dir), "withdisk-full");
	w.dir = dir;
	w.fail_after = PAGE;
	cr_assert_neq(snap_store_write(&w, &st, err, sizeof(err)), 0);
	cr_assert_eq(access(dir, F_OK), -1);
	cr_assert(!leftovers());
	disk_close(fork);
	disk_close(d);
	space_destroy(a);
}

/* The byte at @off of @path. */
static int byte_at(const char *path, off_t off)
{
	uint8_t b = 0;
	int fd = open(path, O_RDONLY);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	close(fd);
	return b;
}

Test(snapshot, a_live_snapshots_disk_folds_back_onto_its_image)
{
	struct disk_config dc = { 0 };
	struct disk *d, *fork;
	char err[256], img[512];

	path_of(img, sizeof(img), "fold.img");
	make_image(img);
	dc.path = img;
	cr_assert_eq(disk_open(&dc, &d, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(disk_fold(d), -EBUSY, "nothing to fold before a fork");
	cr_assert_eq(disk_fork(d, &fork), 0);
	disk_write_sync(d, 8192, 4096, 0x77);
	cr_assert_eq(byte_at(img, 8192), 0x41, "a write after the fork reached the image");
	/* The fork stands on the image: folding now would change its view. */
	cr_assert_eq(disk_fold(d), -EBUSY);
	cr_assert_eq(disk_layers(d), 2);
	disk_close(fork);
	cr_assert_eq(disk_fold(d), 0);
	cr_assert_eq(disk_layers(d), 1);
	cr_assert_eq(byte_at(img, 8192), 0x77, "the overlay's block was not copied in");
	cr_assert_eq(byte_at(img, 0), 0x40, "a block the overlay did not hold changed");
	/* From now on the disk is its file again. */
	disk_write_sync(d, 16384, 4096, 0x55);
	cr_assert_eq(byte_at(img, 16384), 0x55);
	disk_close(d);

	/* A snapshot's file opened under an overlay is never folded into. */
	dc.overlay = true;
	cr_assert_eq(disk_open(&dc, &d, err, sizeof(err)), 0, "%s", err);
	disk_write_sync(d, 0, 4096, 0x11);
	cr_assert_eq(disk_fold(d), -EBUSY);
	cr_assert_eq(byte_at(img, 0), 0x40);
	disk_close(d);
}

Test(snapshot, not_a_tree_and_a_truncated_tree_are_refused)
{
	static struct snap_manifest a, b;
	static uint8_t blob[1 << 16];
	char err[256];
	long len;

	make_manifest(&a, NPAGES);
	len = snap_manifest_build(&a, blob, sizeof(blob));
	cr_assert_eq(snap_manifest_parse(blob, (size_t)len - 1, &b, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "truncated"), "%s", err);
	blob[0] ^= 0xff;
	cr_assert_eq(snap_manifest_parse(blob, (size_t)len, &b, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "not a device tree"), "%s", err);
	cr_assert_eq(snap_manifest_parse(blob, 3, &b, err, sizeof(err)), -EINVAL);
}

Test(snapshot, store_round_trip_gives_the_same_memory_with_holes)
{
	struct space *a = make_space(NPAGES), *b = make_space(NPAGES);
	struct snap_write_stats st;
	struct snap_loaded l;
	char err[256], dir[512];
	uint64_t pages = 0;
	off_t data;

	fill(a);
	cr_assert_eq(write_snapshot("s1", a, &st, 0, err, sizeof(err)), 0, "%s", err);
	/* 32 written pages with data; page 5 (zeros) and the odd ones are holes. */
	cr_assert_eq(st.pages, NPAGES / 2);
	cr_assert_eq(st.bytes, NPAGES / 2 * PAGE);
	path_of(dir, sizeof(dir), "s1");
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(l.man.pages_present, NPAGES / 2);
	/* Holes where nothing was written (the file system may round up). */
	data = lseek(l.mem_fd, 1 * PAGE, SEEK_DATA);
	cr_assert_geq(data, 1 * PAGE);
	cr_assert_eq(snap_store_load_memory(&l, b, &pages, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(pages, NPAGES / 2);
	assert_same(a, b);
	/* Zero pages were not given frames. */
	cr_assert_eq(space_frame_of(b, 1 * PAGE), MM_NO_FRAME);
	cr_assert_eq(space_frame_of(b, 5 * PAGE), MM_NO_FRAME);
	snap_store_close(&l);
	snap_store_close(&l);
	cr_assert(!leftovers());
	space_destroy(a);
	space_destroy(b);
}

Test(snapshot, a_diff_holds_only_what_changed_and_restores_equal_to_the_instant)
{
	struct space *s = make_space(NPAGES), *fa, *fb, *c = make_space(NPAGES);
	static struct snap_manifest man;
	struct snap_write_stats st;
	struct snap_loaded la, lb;
	char err[256], da[512], db[512];
	uint8_t page[PAGE];
	struct snap_write w;

	fill(s);
	cr_assert_eq(space_fork(s, &fa), 0);
	path_of(da, sizeof(da), "a");
	make_manifest(&man, NPAGES);
	w = (struct snap_write){ .dir = da, .man = &man, .space = fa };
	cr_assert_eq(snap_store_write(&w, &st, err, sizeof(err)), 0, "%s", err);
	/* After A: page 2 rewritten, page 4 zeroed, page 3 written the first time. */
	memset(page, 0x77, sizeof(page));
	cr_assert_eq(space_write(s, 2 * PAGE, page, PAGE), 0);
	cr_assert_eq(space_write(s, 3 * PAGE, page, PAGE), 0);
	memset(page, 0, sizeof(page));
	cr_assert_eq(space_write(s, 4 * PAGE, page, PAGE), 0);
	cr_assert_eq(space_fork(s, &fb), 0);
	path_of(db, sizeof(db), "b");
	make_manifest(&man, NPAGES);
	man.kind = SNAP_DIFF;
	snprintf(man.base, sizeof(man.base), "a");
	w = (struct snap_write){ .dir = db, .man = &man, .space = fb, .base = fa };
	cr_assert_eq(snap_store_write(&w, &st, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(st.pages, 3, "the diff has %llu pages, 3 changed",
		     (unsigned long long)st.pages);

	/* The chain: A, then B over it, gives the memory at B's instant. */
	cr_assert_eq(snap_store_open(da, &la, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_store_open(db, &lb, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(lb.man.kind, SNAP_DIFF);
	cr_assert_str_eq(lb.man.base, "a");
	cr_assert_eq(snap_store_load_memory(&la, c, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_store_load_memory(&lb, c, NULL, err, sizeof(err)), 0, "%s", err);
	assert_same(fb, c);
	/* Control: A alone is not B's instant (page 4 still has its data). */
	cr_assert_eq(space_read(fa, 4 * PAGE, page, PAGE), 0);
	cr_assert_neq(page[100], 0);
	snap_store_close(&la);
	snap_store_close(&lb);
	space_destroy(fa);
	space_destroy(fb);
	space_destroy(c);
	space_destroy(s);
}

/* Every page of @s holds generation @gen in each of its words. */
static void write_generation(struct space *s, uint64_t gen)
{
	static uint64_t page[PAGE / 8];
	unsigned int p, i;

	for (i = 0; i < PAGE / 8; i++)
		page[i] = gen;
	for (p = 0; p < NPAGES; p++)
		cr_assert_eq(space_write(s, (uint64_t)p * PAGE, page, PAGE), 0);
}

/* The "guest" runs on during the write: half-way, it rewrites everything. */
struct running {
	struct space *guest;
	uint64_t next_gen;
};

static void guest_runs(void *arg, uint64_t gpa)
{
	struct running *r = arg;

	if (gpa == NPAGES / 2 * PAGE)
		write_generation(r->guest, r->next_gen);
}

/* Generations found in the snapshot in @dir, as a bit mask of 1..63. */
static uint64_t generations(const char *dir)
{
	static uint64_t page[PAGE / 8];
	struct space *c = make_space(NPAGES);
	struct snap_loaded l;
	uint64_t seen = 0;
	char err[256];
	unsigned int p, i;

	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_store_load_memory(&l, c, NULL, err, sizeof(err)), 0, "%s", err);
	for (p = 0; p < NPAGES; p++) {
		cr_assert_eq(space_read(c, (uint64_t)p * PAGE, page, PAGE), 0);
		for (i = 0; i < PAGE / 8; i++)
			seen |= 1ULL << (page[i] & 63);
	}
	snap_store_close(&l);
	space_destroy(c);
	return seen;
}

/*
 * A live snapshot: the memory forked at the pause is written while the
 * guest rewrites all of it with the next generation; the file holds one
 * generation, the one at the pause.  The control writes the running space
 * itself, and sees two.
 */
Test(snapshot, live_snapshot_of_a_rewriting_guest_holds_one_generation)
{
	struct space *s = make_space(NPAGES), *frozen;
	static struct snap_manifest man;
	struct running run = { .guest = s };
	char err[256], dir[512];
	struct snap_write w;

	write_generation(s, 1);
	cr_assert_eq(space_fork(s, &frozen), 0);
	run.next_gen = 2;
	make_manifest(&man, NPAGES);
	path_of(dir, sizeof(dir), "live");
	w = (struct snap_write){ .dir = dir,
				 .man = &man,
				 .space = frozen,
				 .after_page = guest_runs,
				 .after_page_arg = &run };
	cr_assert_eq(snap_store_write(&w, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(generations(dir), 1ULL << 1, "generations 0x%llx",
		     (unsigned long long)generations(dir));

	/* Control: no fork, the running space written as it changes. */
	run.next_gen = 3;
	path_of(dir, sizeof(dir), "torn");
	w.dir = dir;
	w.space = s;
	cr_assert_eq(snap_store_write(&w, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(generations(dir), (1ULL << 2) | (1ULL << 3), "generations 0x%llx",
		     (unsigned long long)generations(dir));
	space_destroy(frozen);
	space_destroy(s);
}

Test(snapshot, an_existing_directory_is_never_replaced)
{
	struct space *a = make_space(NPAGES);
	char err[256], dir[512];
	struct stat sb;

	path_of(dir, sizeof(dir), "s1");
	cr_assert_eq(mkdir(dir, 0755), 0);
	cr_assert_eq(write_snapshot("s1", a, NULL, 0, err, sizeof(err)), -EEXIST);
	cr_assert(strstr(err, "exists"), "%s", err);
	cr_assert_eq(stat(dir, &sb), 0);
	cr_assert(!leftovers());
	space_destroy(a);
}

Test(snapshot, a_full_disk_leaves_no_snapshot_and_no_temporary)
{
	struct space *a = make_space(NPAGES);
	char err[256], dir[512];
	struct stat sb;
	uint64_t cut;

	fill(a);
	/* Fail at each point of the memory file: never a loadable half. */
	for (cut = PAGE; cut < NPAGES / 2 * PAGE; cut += 7 * PAGE) {
		cr_assert_eq(write_snapshot("s1", a, NULL, cut, err, sizeof(err)), -ENOSPC);
		cr_assert(strstr(err, "No space left"), "%s", err);
		path_of(dir, sizeof(dir), "s1");
		cr_assert_neq(stat(dir, &sb), 0, "a half snapshot exists after a cut at %llu",
			      (unsigned long long)cut);
		cr_assert(!leftovers());
	}
	/* Control: without the failure the same call succeeds. */
	cr_assert_eq(write_snapshot("s1", a, NULL, 0, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stat(dir, &sb), 0);
	space_destroy(a);
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

Test(snapshot, bad_files_are_refused_with_one_line)
{
	struct space *a = make_space(NPAGES);
	char err[256], dir[512], path[600];
	struct snap_loaded l;

	fill(a);
	cr_assert_eq(write_snapshot("s1", a, NULL, 0, err, sizeof(err)), 0, "%s", err);
	path_of(dir, sizeof(dir), "s1");

	/* The memory file shorter than the layout. */
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MEMORY_NAME);
	cr_assert_eq(truncate(path, NPAGES * PAGE - PAGE), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "the layout needs"), "%s", err);
	cr_assert_null(strchr(err, '\n'));

	/* A FIFO instead of the memory file: refused, not waited on. */
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(mkfifo(path, 0644), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "not a regular file"), "%s", err);

	/* No memory file. */
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, SNAP_MEMORY_NAME), "%s", err);

	/* An empty manifest, and none at all. */
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	write_bytes(path, "", 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -EINVAL);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), -ENOENT);
	space_destroy(a);
}

Test(snapshot, data_outside_the_layout_is_refused)
{
	static struct snap_manifest man;
	static uint8_t blob[1 << 16];
	struct space_range r[2] = { { 0, 4 * PAGE }, { 8 * PAGE, 4 * PAGE } };
	char err[256], dir[512], path[600];
	uint8_t page[PAGE];
	struct snap_loaded l;
	struct space *s;
	long len;

	/* Two ranges with a gap; a hand-made memory file with data in the gap. */
	make_manifest(&man, 12);
	man.nranges = 2;
	man.range[0] = (struct snap_range){ 0, 4 * PAGE };
	man.range[1] = (struct snap_range){ 8 * PAGE, 4 * PAGE };
	len = snap_manifest_build(&man, blob, sizeof(blob));
	path_of(dir, sizeof(dir), "gap");
	cr_assert_eq(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MANIFEST_NAME);
	write_bytes(path, blob, (size_t)len);
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MEMORY_NAME);
	memset(page, 0xab, sizeof(page));
	write_bytes(path, "", 0);
	cr_assert_eq(truncate(path, 12 * PAGE), 0);
	{
		int fd = open(path, O_WRONLY);

		cr_assert_eq(pwrite(fd, page, PAGE, 5 * PAGE), PAGE);
		close(fd);
	}
	cr_assert_eq(space_create(pool, r, 2, &s), 0);
	cr_assert_eq(snap_store_open(dir, &l, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(snap_store_load_memory(&l, s, NULL, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "outside the memory layout"), "%s", err);
	snap_store_close(&l);
	space_destroy(s);
}

Test(snapshot, cpu_check_names_each_missing_feature)
{
	struct snap_cpuid saved[2] = { { 1, 0, 0, 0, 1u << 28, 0 },
				       { 7, 0, 0, (1u << 5) | (1u << 4), 0, 0 } };
	struct snap_cpuid host[2] = { { 1, 0, 0, 0, 1u << 28, 0 }, { 7, 0, 0, 0, 0, 0 } };
	char out[256];

	cr_assert_eq(snap_cpuid_missing(saved, 2, host, 2, out, sizeof(out)), 2);
	cr_assert(strstr(out, "avx2"), "%s", out);
	cr_assert(strstr(out, "cpuid 0x7.0 ebx bit 4"), "%s", out);
	/* Control: the same CPU lacks nothing. */
	cr_assert_eq(snap_cpuid_missing(saved, 2, saved, 2, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	/* A host without leaf 7 at all lacks all of it. */
	cr_assert_eq(snap_cpuid_missing(saved, 2, host, 1, out, sizeof(out)), 2);
}

/* ---- the command line ---------------------------------------------------------------- */

/* Extract from a NULL-terminated copy of @words; the rest joined by spaces. */
static int extract(const char *const *words, struct snapshot_cli *sc, char *rest, char *err)
{
	char *argv[32];
	int argc = 0, ret, i;

	while (words[argc]) {
		argv[argc] = (char *)words[argc];
		argc++;
	}
	argv[argc] = NULL;
	ret = snapshot_cli_extract(&argc, argv, sc, err, 256);
	rest[0] = '\0';
	for (i = 0; i < argc; i++) {
		strcat(rest, argv[i]);
		if (i + 1 < argc)
			strcat(rest, " ");
	}
	cr_assert_null(argv[argc]);
	return ret;
}

Test(snapshot_cli, options_are_taken_out_and_the_rest_kept_in_order)
{
	const char *w[] = { "forkvm",
			    "run",
			    "--snapshot-dir",
			    "d1",
			    "--guest",
			    "test",
			    "--snapshot-kind=full",
			    "--args",
			    "--snapshot-dir x",
			    "--snapshot-at-line",
			    "3",
			    "--snapshot-diff-dir",
			    "d2",
			    "--snapshot-diff-at-line=7",
			    "--workload",
			    "memcheck",
			    NULL };
	struct snapshot_cli sc;
	char rest[512], err[256];

	cr_assert_eq(extract(w, &sc, rest, err), 0, "%s", err);
	cr_assert_str_eq(rest,
			 "forkvm run --guest test --args --snapshot-dir x --workload memcheck");
	cr_assert_str_eq(sc.dir, "d1");
	cr_assert_eq(sc.kind, SNAP_FULL);
	cr_assert_eq(sc.at_line, 3);
	cr_assert_str_eq(sc.diff_dir, "d2");
	cr_assert_eq(sc.diff_at_line, 7);
	cr_assert(!sc.stop);
}

Test(snapshot_cli, defaults_are_live_at_line_1)
{
	const char *w[] = { "forkvm", "run", "--snapshot-dir", "d", "--snapshot-stop", NULL };
	struct snapshot_cli sc;
	char rest[512], err[256];

	cr_assert_eq(extract(w, &sc, rest, err), 0, "%s", err);
	cr_assert_str_eq(rest, "forkvm run");
	cr_assert_eq(sc.kind, SNAP_LIVE);
	cr_assert_eq(sc.at_line, 1);
	cr_assert(sc.stop);
}

static void cli_refused(const char *const *w, const char *what)
{
	struct snapshot_cli sc;
	char rest[512], err[256] = "";

	cr_assert_eq(extract(w, &sc, rest, err), -EINVAL, "accepted (wanted '%s')", what);
	cr_assert(strstr(err, what), "'%s' does not name '%s'", err, what);
}

Test(snapshot_cli, bad_options_are_named)
{
	const char *kind[] = { "forkvm", "run", "--snapshot-dir", "d", "--snapshot-kind",
			       "hot",	 NULL };
	const char *line[] = { "forkvm", "run", "--snapshot-dir", "d", "--snapshot-at-line",
			       "0",	 NULL };
	const char *nodir[] = { "forkvm", "run", "--snapshot-at-line", "2", NULL };
	const char *noval[] = { "forkvm", "run", "--snapshot-dir", NULL };
	const char *noline[] = {
		"forkvm", "run", "--snapshot-dir", "d", "--snapshot-at-line", NULL
	};
	const char *unknown[] = { "forkvm", "run", "--snapshot-dir", "d", "--snapshot-frob", NULL };
	const char *order[] = { "forkvm",
				"run",
				"--snapshot-dir",
				"d",
				"--snapshot-at-line",
				"5",
				"--snapshot-diff-dir",
				"e",
				"--snapshot-diff-at-line",
				"5",
				NULL };
	const char *half[] = { "forkvm", "run", "--snapshot-dir", "d", "--snapshot-diff-dir",
			       "e",	 NULL };

	cli_refused(kind, "--snapshot-kind 'hot'");
	cli_refused(line, "--snapshot-at-line '0'");
	cli_refused(nodir, "need --snapshot-dir");
	cli_refused(noval, "--snapshot-dir: missing");
	cli_refused(noline, "--snapshot-at-line: missing value");
	cli_refused(unknown, "--snapshot-frob: unknown option");
	cli_refused(order, "must come after");
	cli_refused(half, "go together");
}

Test(snapshot_cli, a_delay_after_the_line_is_taken_and_checked)
{
	const char *ok[] = {
		"forkvm", "run", "--snapshot-dir", "d", "--snapshot-delay=250", "--mem", "32M", NULL
	};
	const char *big[] = { "forkvm", "run", "--snapshot-dir", "d", "--snapshot-delay",
			      "60001",	NULL };
	const char *nodir[] = { "forkvm", "run", "--snapshot-delay", "5", NULL };
	struct snapshot_cli sc;
	char rest[512], err[256];

	cr_assert_eq(extract(ok, &sc, rest, err), 0, "%s", err);
	cr_assert_eq(sc.delay_ms, 250);
	cr_assert_str_eq(rest, "forkvm run --mem 32M");
	cli_refused(big, "--snapshot-delay '60001'");
	cli_refused(nodir, "need --snapshot-dir");
}

/* ---- the mutation fuzzer ------------------------------------------------------------ */

static uint64_t rng = 0x666f726b766d;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned int fuzz_iters(unsigned int dflt)
{
	const char *s = getenv("FORKVM_FUZZ_ITERS");

	return s && atoi(s) > 0 ? (unsigned int)atoi(s) : dflt;
}

/* One mutation of @buf (@len bytes, room for @cap): returns the new length. */
static size_t mutate(uint8_t *buf, size_t len, size_t cap)
{
	static const uint32_t interesting[] = {
		0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 64, 4096
	};
	unsigned int k, n = 1 + (unsigned int)(next() % 4);

	for (k = 0; k < n; k++) {
		size_t at = len ? (size_t)(next() % len) : 0;
		uint32_t v;

		switch (next() % 5) {
		case 0: /* flip a bit */
			if (len)
				buf[at] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1: /* a random byte */
			if (len)
				buf[at] = (uint8_t)next();
			break;
		case 2: /* an interesting big-endian cell, aligned like FDT cells */
			at &= ~(size_t)3;
			v = interesting[next() % (sizeof(interesting) / sizeof(interesting[0]))];
			if (at + 4 <= len) {
				v = cpu_to_fdt32(v);
				memcpy(buf + at, &v, 4);
			}
			break;
		case 3: /* truncate */
			len = len ? (size_t)(next() % len) : 0;
			break;
		case 4: /* grow with junk */
			while (len < cap && next() % 8)
				buf[len++] = (uint8_t)next();
			break;
		}
	}
	return len;
}

Test(snapshot, fuzz_manifest_mutations_never_crash_and_what_passes_is_sane)
{
	static struct snap_manifest a, b;
	static uint8_t good[1 << 16], blob[(1 << 16) + 4096];
	unsigned int i, iters = fuzz_iters(50000), accepted = 0, states_ok = 0;
	char err[256];
	long len;

	make_manifest(&a, NPAGES);
	with_disk(&a);
	len = snap_manifest_build(&a, good, sizeof(good));
	cr_assert_gt(len, 0);
	for (i = 0; i < iters; i++) {
		struct machine_state ms = { .buf = NULL };
		unsigned int d, k = 0;
		size_t n;

		memcpy(blob, good, (size_t)len);
		n = mutate(blob, (size_t)len, sizeof(blob));
		if (snap_manifest_parse(blob, n, &b, err, sizeof(err)))
			continue;
		accepted++;
		/* Whatever passes holds what the restore relies on. */
		cr_assert(b.nranges >= 1 && b.nranges <= SNAP_MAX_RANGES);
		cr_assert(b.ncpus >= 1 && b.ncpus <= SNAP_MAX_CPUS);
		cr_assert(b.ndevs <= SNAP_MAX_DEVS && b.ncpuid <= SNAP_MAX_CPUID);
		/* Each virtio-blk device has its disk, in order, of a sane size. */
		cr_assert_leq(b.ndisks, SNAP_MAX_DISKS);
		for (d = 0; d < b.ndevs; d++) {
			if (b.dev[d].type != DEVICE_VIRTIO_BLK_MMIO)
				continue;
			cr_assert_lt(k, b.ndisks);
			cr_assert_eq(b.disk[k].dev_id, b.dev[d].id);
			cr_assert(b.disk[k].size && b.disk[k].size % 512 == 0 &&
				  b.disk[k].size <= SNAP_DISK_MAX);
			cr_assert_leq(b.disk[k].readonly, 1);
			cr_assert_lt(strlen(b.disk[k].id), sizeof(b.disk[k].id));
			k++;
		}
		cr_assert_eq(k, b.ndisks);
		cr_assert_eq(b.mem_file_size,
			     b.range[b.nranges - 1].gpa + b.range[b.nranges - 1].size);
		cr_assert((const uint8_t *)b.state >= blob &&
			  (const uint8_t *)b.state + b.state_size <= blob + n);
		/* And the state's own framing check copes with what is inside. */
		cr_assert_eq(mstate_init(&ms, b.state_size), 0);
		memset(ms.buf, 0, ms.cap);
		memcpy(ms.buf, b.state, b.state_size);
		states_ok += mstate_check(&ms, err, sizeof(err)) == 0;
		mstate_free(&ms);
	}
	/* The fuzzer must reach past the first check sometimes, or it tests nothing. */
	cr_assert_gt(accepted, iters / 100, "only %u of %u mutations parsed", accepted, iters);
	cr_assert_gt(states_ok, 0);
}

Test(snapshot, fuzz_memory_file_mutations_never_crash)
{
	struct space *a = make_space(NPAGES);
	static uint8_t file[NPAGES * PAGE + 8192];
	unsigned int i, iters = fuzz_iters(10000) / 50, loaded = 0;
	char err[256], dir[512], path[600];
	struct snap_loaded l;
	int fd;
	ssize_t got;

	fill(a);
	cr_assert_eq(write_snapshot("s1", a, NULL, 0, err, sizeof(err)), 0, "%s", err);
	path_of(dir, sizeof(dir), "s1");
	snprintf(path, sizeof(path), "%s/%s", dir, SNAP_MEMORY_NAME);
	fd = open(path, O_RDONLY);
	got = read(fd, file, NPAGES * PAGE);
	close(fd);
	cr_assert_eq(got, NPAGES * PAGE);
	for (i = 0; i < iters; i++) {
		static uint8_t m[sizeof(file)];
		struct space *b;
		size_t n;
		int ret;

		memcpy(m, file, NPAGES * PAGE);
		n = (next() % 4) ? NPAGES * PAGE : mutate(m, NPAGES * PAGE, sizeof(m));
		if (n == NPAGES * PAGE)
			m[next() % n] ^= (uint8_t)(1 + next() % 255);
		write_bytes(path, m, n);
		ret = snap_store_open(dir, &l, err, sizeof(err));
		if (n != NPAGES * PAGE) {
			cr_assert_eq(ret, -EINVAL, "a %zu-byte memory file was accepted", n);
			continue;
		}
		cr_assert_eq(ret, 0, "%s", err);
		b = make_space(NPAGES);
		cr_assert_eq(snap_store_load_memory(&l, b, NULL, err, sizeof(err)), 0, "%s", err);
		snap_store_close(&l);
		space_destroy(b);
		loaded++;
	}
	cr_assert_gt(loaded, 0);
	space_destroy(a);
}
