// SPDX-License-Identifier: MIT
/*
 * Snapshot directories.  Write: memory first (its page count goes into the
 * manifest), manifest second, each fsynced; then the temporary directory,
 * the rename (RENAME_NOREPLACE) and the parent.  Read: every size from the
 * snapshot is checked before it is used, files must be regular (a FIFO
 * would hang the restore), and reads are capped.
 */
#include "vmm/snapshot/store.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/snapshot/store_disks.h"

#define RUN_MAX (1u << 20) /* bytes gathered before one pwrite */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static bool page_is_zero(const void *p)
{
	const uint64_t *w = p;
	size_t i;

	for (i = 0; i < MM_PAGE_SIZE / sizeof(*w); i++) {
		if (w[i])
			return false;
	}
	return true;
}

/* @dir/@name into @buf; -ENAMETOOLONG if it does not fit. */
static int join(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- write ------------------------------------------------------------------ */

struct writer {
	const struct snap_write *w;
	int fd;
	uint8_t *buf;
	size_t len; /* bytes gathered at run_off */
	uint64_t run_off;
	uint64_t written;
};

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int flush_run(struct writer *wr)
{
	int ret;

	if (!wr->len)
		return 0;
	/* The tests' full disk: fail as pwrite(2) would on one. */
	if (wr->w->fail_after && wr->written + wr->len > wr->w->fail_after)
		return -ENOSPC;
	ret = pwrite_all(wr->fd, wr->buf, wr->len, wr->run_off);
	if (ret)
		return ret;
	wr->written += wr->len;
	wr->len = 0;
	return 0;
}

/* Every present, non-zero page at its GPA; the rest stays a hole. */
static int write_memory(struct writer *wr, struct snap_write_stats *st, char *err, size_t errlen)
{
	const struct snap_manifest *man = wr->w->man;
	unsigned int r;
	int ret;

	for (r = 0; r < man->nranges; r++) {
		uint64_t gpa, end = man->range[r].gpa + man->range[r].size;

		for (gpa = man->range[r].gpa; gpa < end; gpa += MM_PAGE_SIZE) {
			uint8_t *page = wr->buf + wr->len;

			uint64_t f = space_frame_of(wr->w->space, gpa);

			/* A diff: a page still on its base's frame was not written since. */
			if (wr->w->base ? f == space_frame_of(wr->w->base, gpa) : f == MM_NO_FRAME)
				goto hole;
			ret = space_read(wr->w->space, gpa, page, MM_PAGE_SIZE);
			if (ret) {
				snprintf(err, errlen, "reading guest memory at 0x%llx: %s",
					 (unsigned long long)gpa, strerror(-ret));
				return ret;
			}
			if (wr->w->after_page)
				wr->w->after_page(wr->w->after_page_arg, gpa);
			if (!wr->w->base && page_is_zero(page))
				goto hole;
			if (!wr->len)
				wr->run_off = gpa;
			wr->len += MM_PAGE_SIZE;
			st->pages++;
			if (wr->len < RUN_MAX)
				continue;
		hole:
			ret = flush_run(wr);
			if (ret)
				goto err_write;
		}
		ret = flush_run(wr);
		if (ret)
			goto err_write;
	}
	st->bytes = wr->written;
	return 0;

err_write:
	snprintf(err, errlen, "writing %s: %s", SNAP_MEMORY_NAME, strerror(-ret));
	return ret;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

static int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), ret;

	if (fd < 0)
		return -errno;
	ret = pwrite_all(fd, buf, len, 0);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	return ret;
}

/* The memory file, then the manifest that counts its pages. */
static int write_contents(const struct snap_write *w, const char *tmp, struct snap_write_stats *st,
			  char *err, size_t errlen)
{
	struct writer wr = { .w = w, .fd = -1 };
	char path[PATH_MAX];
	struct stat sb;
	uint64_t t0 = now_ns();
	void *blob = NULL;
	long len;
	int ret;

	if (join(path, sizeof(path), tmp, SNAP_MEMORY_NAME)) {
		snprintf(err, errlen, "%s: name too long", tmp);
		return -ENAMETOOLONG;
	}
	wr.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (wr.fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "creating %s: %s", path, strerror(errno));
		return ret;
	}
	wr.buf = malloc(RUN_MAX);
	if (!wr.buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* The file's length is the layout's end: never-written tails are holes. */
	if (ftruncate(wr.fd, (off_t)w->man->mem_file_size)) {
		ret = -errno;
		snprintf(err, errlen, "sizing %s: %s", path, strerror(errno));
		goto out;
	}
	ret = write_memory(&wr, st, err, errlen);
	if (ret)
		goto out;
	if (fsync(wr.fd)) {
		ret = -errno;
		snprintf(err, errlen, "fsync %s: %s", path, strerror(errno));
		goto out;
	}
	if (!fstat(wr.fd, &sb))
		st->disk_bytes = (uint64_t)sb.st_blocks * 512;
	st->memory_ns = now_ns() - t0;
	ret = snap_disks_write(w, tmp, st, err, errlen);
	if (ret)
		goto out;
	t0 = now_ns();

	w->man->pages_present = st->pages;
	blob = malloc(SNAP_MANIFEST_MAX);
	if (!blob) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	len = snap_manifest_build(w->man, blob, SNAP_MANIFEST_MAX);
	if (len < 0) {
		ret = (int)len;
		snprintf(err, errlen, "building the manifest: %s", strerror(-ret));
		goto out;
	}
	ret = join(path, sizeof(path), tmp, SNAP_MANIFEST_NAME);
	if (!ret)
		ret = write_file(path, blob, (size_t)len);
	if (ret)
		snprintf(err, errlen, "writing %s: %s", path, strerror(-ret));
	st->sync_ns = now_ns() - t0;
out:
	free(blob);
	free(wr.buf);
	close(wr.fd);
	return ret;
}

static void remove_tmp(const char *tmp)
{
	char path[PATH_MAX];

	if (!join(path, sizeof(path), tmp, SNAP_MANIFEST_NAME))
		unlink(path);
	if (!join(path, sizeof(path), tmp, SNAP_MEMORY_NAME))
		unlink(path);
	snap_disks_remove(tmp);
	rmdir(tmp);
}

int snap_store_write(const struct snap_write *w, struct snap_write_stats *st, char *err,
		     size_t errlen)
{
	static unsigned int seq;
	char dcopy[PATH_MAX], bcopy[PATH_MAX], tmp[PATH_MAX], parent[PATH_MAX];
	struct snap_write_stats local;
	struct stat sb;
	uint64_t t0;
	int ret, n;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (strlen(w->dir) >= PATH_MAX - 64 || !*w->dir) {
		snprintf(err, errlen, "snapshot directory name empty or too long");
		return -ENAMETOOLONG;
	}
	if (!lstat(w->dir, &sb)) {
		snprintf(err, errlen, "%s exists: a snapshot never replaces anything", w->dir);
		return -EEXIST;
	}
	snprintf(dcopy, sizeof(dcopy), "%s", w->dir);
	snprintf(bcopy, sizeof(bcopy), "%s", w->dir);
	snprintf(parent, sizeof(parent), "%s", dirname(dcopy));
	n = snprintf(tmp, sizeof(tmp), "%s/.%s.tmp-%d-%u", parent, basename(bcopy), (int)getpid(),
		     __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		snprintf(err, errlen, "snapshot directory name too long");
		return -ENAMETOOLONG;
	}
	if (mkdir(tmp, 0755)) {
		ret = -errno;
		snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
		return ret;
	}
	ret = write_contents(w, tmp, st, err, errlen);
	if (ret)
		goto err_tmp;
	t0 = now_ns();
	ret = fsync_path(tmp);
	if (ret) {
		snprintf(err, errlen, "fsync %s: %s", tmp, strerror(-ret));
		goto err_tmp;
	}
	/* The instant the snapshot exists: whole, or not at all. */
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, w->dir, RENAME_NOREPLACE)) {
		ret = -errno;
		snprintf(err, errlen, "renaming %s to %s: %s", tmp, w->dir, strerror(errno));
		goto err_tmp;
	}
	ret = fsync_path(parent);
	st->sync_ns += now_ns() - t0;
	if (ret) {
		/* Renamed, not durable: say so, and leave it (it is whole). */
		snprintf(err, errlen, "fsync %s: %s", parent, strerror(-ret));
		return ret;
	}
	return 0;

err_tmp:
	remove_tmp(tmp);
	return ret;
}

/* ---- read (untrusted) ---------------------------------------------------------- */

/* Open a regular file of @dir without following a symlink or blocking on a FIFO. */
static int open_regular(const char *dir, const char *name, struct stat *sb, char *err,
			size_t errlen)
{
	char path[PATH_MAX];
	int fd, ret;

	if (join(path, sizeof(path), dir, name)) {
		snprintf(err, errlen, "%s: name too long", dir);
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, sb) || !S_ISREG(sb->st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static int read_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA; /* shrank under us */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int snap_store_open(const char *dir, struct snap_loaded *l, char *err, size_t errlen)
{
	struct stat sb;
	int fd, ret;

	memset(l, 0, sizeof(*l));
	l->mem_fd = -1;
	fd = open_regular(dir, SNAP_MANIFEST_NAME, &sb, err, errlen);
	if (fd < 0)
		return fd;
	if (sb.st_size < 1 || (uint64_t)sb.st_size > SNAP_MANIFEST_MAX) {
		snprintf(err, errlen, "%s/%s: %lld bytes, expected 1 to %u", dir,
			 SNAP_MANIFEST_NAME, (long long)sb.st_size, SNAP_MANIFEST_MAX);
		close(fd);
		return -EINVAL;
	}
	l->blob_size = (size_t)sb.st_size;
	/* 64-byte aligned: the machine state inside is used in place by nobody,
	 * but a copy of it must be (see snapshot.c). */
	l->blob = aligned_alloc(64, (l->blob_size + 63) & ~(size_t)63);
	if (!l->blob) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = read_all(fd, l->blob, l->blob_size);
	close(fd);
	if (ret) {
		snprintf(err, errlen, "%s/%s: %s", dir, SNAP_MANIFEST_NAME,
			 ret == -ENODATA ? "shorter than its size" : strerror(-ret));
		goto err_blob;
	}
	ret = snap_manifest_parse(l->blob, l->blob_size, &l->man, err, errlen);
	if (ret)
		goto err_blob;
	l->mem_fd = open_regular(dir, SNAP_MEMORY_NAME, &sb, err, errlen);
	if (l->mem_fd < 0) {
		ret = l->mem_fd;
		goto err_blob;
	}
	if ((uint64_t)sb.st_size != l->man.mem_file_size) {
		snprintf(err, errlen, "%s/%s: %lld bytes, the layout needs %llu (truncated?)", dir,
			 SNAP_MEMORY_NAME, (long long)sb.st_size,
			 (unsigned long long)l->man.mem_file_size);
		ret = -EINVAL;
		goto err_blob;
	}
	ret = snap_disks_check(dir, &l->man, err, errlen);
	if (ret)
		goto err_blob;
	return 0;

err_blob:
	snap_store_close(l);
	return ret;
}

/* Is [@off, @off + @len) inside one range of the layout? */
static bool in_layout(const struct snap_manifest *man, uint64_t off, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < man->nranges; i++) {
		const struct snap_range *r = &man->range[i];

		if (off >= r->gpa && off - r->gpa + len <= r->size)
			return true;
	}
	return false;
}

int snap_store_load_memory(struct snap_loaded *l, struct space *space, uint64_t *pages, char *err,
			   size_t errlen)
{
	uint64_t size = l->man.mem_file_size, off = 0, n = 0;
	bool diff = l->man.kind == SNAP_DIFF;
	uint8_t *buf = malloc(RUN_MAX);
	int ret = 0;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	while (off < size) {
		off_t data = lseek(l->mem_fd, (off_t)off, SEEK_DATA), hole;
		uint64_t end;

		if (data < 0 && errno == ENXIO)
			break; /* only holes from here */
		if (data < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: SEEK_DATA: %s", SNAP_MEMORY_NAME,
				 strerror(errno));
			goto out;
		}
		hole = lseek(l->mem_fd, data, SEEK_HOLE);
		if (hole < 0 || hole <= data) {
			ret = hole < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s: SEEK_HOLE failed", SNAP_MEMORY_NAME);
			goto out;
		}
		/* Pages, whatever the file system's extent granularity. */
		off = (uint64_t)data & ~(uint64_t)(MM_PAGE_SIZE - 1);
		end = (uint64_t)hole < size ? (uint64_t)hole : size;
		while (off < end) {
			size_t len = end - off > RUN_MAX ? RUN_MAX : (size_t)(end - off), i;
			ssize_t got;

			len = (len + MM_PAGE_SIZE - 1) & ~(size_t)(MM_PAGE_SIZE - 1);
			if (off + len > size)
				len = (size_t)(size - off);
			got = pread(l->mem_fd, buf, len, (off_t)off);
			if (got != (ssize_t)len) {
				ret = got < 0 ? -errno : -ENODATA;
				snprintf(err, errlen, "%s at %llu: %s", SNAP_MEMORY_NAME,
					 (unsigned long long)off,
					 got < 0 ? strerror(errno) : "shorter than its size");
				goto out;
			}
			/* Runs of non-zero pages, one space_write (one lock round) each. */
			for (i = 0; i < len;) {
				size_t run = 0;

				/* In a diff a zero page is a change too. */
				while (i + run < len && (diff || !page_is_zero(buf + i + run)))
					run += MM_PAGE_SIZE;
				if (!run) {
					i += MM_PAGE_SIZE;
					continue;
				}
				if (!in_layout(&l->man, off + i, run)) {
					ret = -EINVAL;
					snprintf(
					    err, errlen,
					    "%s: data at 0x%llx+0x%zx, outside the memory layout",
					    SNAP_MEMORY_NAME, (unsigned long long)(off + i), run);
					goto out;
				}
				ret = space_write(space, off + i, buf + i, run);
				if (ret) {
					snprintf(err, errlen, "loading guest memory at 0x%llx: %s",
						 (unsigned long long)(off + i), strerror(-ret));
					goto out;
				}
				n += run / MM_PAGE_SIZE;
				i += run;
			}
			off += len;
		}
	}
	if (pages)
		*pages = n;
out:
	free(buf);
	return ret;
}

void snap_store_close(struct snap_loaded *l)
{
	free(l->blob);
	l->blob = NULL;
	if (l->mem_fd >= 0)
		close(l->mem_fd);
	l->mem_fd = -1;
}
