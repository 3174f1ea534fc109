// SPDX-License-Identifier: MIT
/* `forkvm mkdisk`: the test disk pattern (devices/disk_pattern.h) into or against a file. */
#include "vmm/mkdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/disk_pattern.h"

int mkdisk_write(const char *path, uint64_t size, uint64_t seed, char *err, size_t errlen)
{
	int fd, ret;

	if (!size) {
		snprintf(err, errlen, "%s: size must not be zero", path);
		return -EINVAL;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = disk_pattern_fill(fd, size, seed);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (ret)
		snprintf(err, errlen, "%s: writing the pattern: %s", path, strerror(-ret));
	close(fd);
	return ret;
}

int mkdisk_check(const char *path, uint64_t size, uint64_t seed, char *err, size_t errlen)
{
	uint64_t bad_off = 0;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || st.st_size <= 0) {
		snprintf(err, errlen, "%s: empty or unreadable", path);
		close(fd);
		return -EINVAL;
	}
	if (size && size != (uint64_t)st.st_size) {
		snprintf(err, errlen, "%s: %llu bytes, expected %llu", path,
			 (unsigned long long)st.st_size, (unsigned long long)size);
		close(fd);
		return -EBADMSG;
	}
	ret = disk_pattern_check(fd, seed, &bad_off);
	if (ret == 1) {
		snprintf(err, errlen, "%s: pattern mismatch at byte offset 0x%llx (seed 0x%llx)",
			 path, (unsigned long long)bad_off, (unsigned long long)seed);
		ret = -EBADMSG;
	} else if (ret) {
		snprintf(err, errlen, "%s: reading: %s", path, strerror(-ret));
	}
	close(fd);
	return ret;
}
