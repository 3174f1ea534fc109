// SPDX-License-Identifier: MIT
/*
 * Disk files of a snapshot: written from a disk handle nobody writes (a
 * disk_fork() child taken in the pause, or the disk itself while a full
 * snapshot holds the guest paused) with disk_export(), so that zero blocks
 * stay holes; checked as untrusted input at restore.
 */
#include "vmm/snapshot/store_disks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/disk.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int disk_path(char *buf, size_t len, const char *dir, unsigned int i)
{
	char name[16];
	int n;

	snap_disk_name(i, name, sizeof(name));
	n = snprintf(buf, len, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int write_one(struct disk *d, const char *path, struct snap_disk *sd,
		     struct snap_write_stats *st, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644), ret = 0;
	struct stat sb;

	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "creating %s: %s", path, strerror(errno));
		return ret;
	}
	if (ftruncate(fd, (off_t)sd->size)) {
		ret = -errno;
		snprintf(err, errlen, "sizing %s: %s", path, strerror(errno));
		goto out;
	}
	ret = disk_export(d, fd, &sd->blocks);
	if (ret) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(-ret));
		goto out;
	}
	if (fsync(fd)) {
		ret = -errno;
		snprintf(err, errlen, "fsync %s: %s", path, strerror(errno));
		goto out;
	}
	st->disk_blocks += sd->blocks;
	if (!fstat(fd, &sb))
		st->disks_disk_bytes += (uint64_t)sb.st_blocks * 512;
out:
	if (close(fd) && !ret) {
		ret = -errno;
		snprintf(err, errlen, "closing %s: %s", path, strerror(errno));
	}
	return ret;
}

int snap_disks_write(const struct snap_write *w, const char *tmp, struct snap_write_stats *st,
		     char *err, size_t errlen)
{
	char path[PATH_MAX];
	uint64_t t0 = now_ns();
	unsigned int i;
	int ret;

	for (i = 0; i < w->man->ndisks; i++) {
		if (disk_path(path, sizeof(path), tmp, i)) {
			snprintf(err, errlen, "%s: name too long", tmp);
			return -ENAMETOOLONG;
		}
		ret = write_one(w->disks[i], path, &w->man->disk[i], st, err, errlen);
		if (ret)
			return ret;
	}
	st->disks_ns = now_ns() - t0;
	return 0;
}

void snap_disks_remove(const char *tmp)
{
	char path[PATH_MAX];
	unsigned int i;

	for (i = 0; i < SNAP_MAX_DISKS; i++) {
		if (!disk_path(path, sizeof(path), tmp, i))
			unlink(path);
	}
}

int snap_disks_check(const char *dir, const struct snap_manifest *man, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat sb;
	unsigned int i;
	int fd, ret;

	for (i = 0; i < man->ndisks; i++) {
		if (disk_path(path, sizeof(path), dir, i)) {
			snprintf(err, errlen, "%s: name too long", dir);
			return -ENAMETOOLONG;
		}
		/* Not followed, never blocking: a FIFO would hang the restore. */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			return ret;
		}
		ret = fstat(fd, &sb) || !S_ISREG(sb.st_mode) ? -EINVAL : 0;
		close(fd);
		if (ret) {
			snprintf(err, errlen, "%s: not a regular file", path);
			return ret;
		}
		if ((uint64_t)sb.st_size != man->disk[i].size) {
			snprintf(err, errlen, "%s: %lld bytes, the manifest says %llu", path,
				 (long long)sb.st_size, (unsigned long long)man->disk[i].size);
			return -EINVAL;
		}
	}
	return 0;
}
