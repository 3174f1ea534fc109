// SPDX-License-Identifier: MIT
/* The test disk pattern: word at offset o is splitmix64(o ^ seed), little-endian. */
#include "vmm/mkdisk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20)

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void fill(uint64_t *buf, uint64_t off, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len / 8; i++)
		buf[i] = htole64(splitmix64((off + i * 8) ^ seed));
}

int mkdisk_write(const char *path, uint64_t size, uint64_t seed, char *err, size_t errlen)
{
	uint64_t *buf, off;
	int fd, ret = 0;

	if (!size || size % 8) {
		snprintf(err, errlen, "%s: size must be a non-zero multiple of 8", path);
		return -EINVAL;
	}
	buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	for (off = 0; off < size; off += CHUNK) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;

		fill(buf, off, n, seed);
		if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
			ret = errno ? -errno : -EIO;
			snprintf(err, errlen, "%s: write: %s", path, strerror(-ret));
			break;
		}
	}
	if (!ret && fsync(fd) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: fsync: %s", path, strerror(errno));
	}
	close(fd);
out:
	free(buf);
	return ret;
}

int mkdisk_check(const char *path, uint64_t size, uint64_t seed, char *err, size_t errlen)
{
	uint64_t *want, *have, off, total;
	struct stat st;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % 8) {
		snprintf(err, errlen, "%s: empty, or not a multiple of 8 bytes", path);
		close(fd);
		return -EINVAL;
	}
	total = (uint64_t)st.st_size;
	if (size && size != total) {
		snprintf(err, errlen, "%s: %llu bytes, expected %llu", path,
			 (unsigned long long)total, (unsigned long long)size);
		close(fd);
		return -EBADMSG;
	}
	want = malloc(CHUNK);
	have = malloc(CHUNK);
	if (!want || !have) {
		ret = -ENOMEM;
		goto out;
	}
	for (off = 0; off < total && !ret; off += CHUNK) {
		size_t n = total - off < CHUNK ? (size_t)(total - off) : CHUNK, i;

		if (pread(fd, have, n, (off_t)off) != (ssize_t)n) {
			ret = errno ? -errno : -EIO;
			snprintf(err, errlen, "%s: read: %s", path, strerror(-ret));
			break;
		}
		fill(want, off, n, seed);
		if (!memcmp(want, have, n))
			continue;
		for (i = 0; i < n / 8; i++) {
			if (want[i] != have[i])
				break;
		}
		snprintf(err, errlen,
			 "%s: pattern mismatch at byte offset 0x%llx: found 0x%016llx, expected 0x%016llx (seed 0x%llx)",
			 path, (unsigned long long)(off + i * 8),
			 (unsigned long long)le64toh(have[i]), (unsigned long long)le64toh(want[i]),
			 (unsigned long long)seed);
		ret = -EBADMSG;
	}
out:
	free(want);
	free(have);
	close(fd);
	return ret;
}
