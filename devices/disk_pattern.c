// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/disk_pattern.h"

#define CHUNK (1u << 20)

void disk_pattern_fill_buf(void *buf, uint64_t off, size_t len, uint64_t seed)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t word_off = off & ~7ull, w = htole64(disk_pattern_word(seed, word_off));
		size_t skip = (size_t)(off - word_off), n = 8 - skip;

		if (n > len)
			n = len;
		memcpy(p, (uint8_t *)&w + skip, n);
		p += n;
		off += n;
		len -= n;
	}
}

int disk_pattern_fill(int fd, uint64_t size, uint64_t seed)
{
	uint8_t *buf = malloc(CHUNK);
	uint64_t off = 0;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	if (ftruncate(fd, (off_t)size)) {
		ret = -errno;
		goto out;
	}
	while (off < size) {
		size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK, done = 0;

		disk_pattern_fill_buf(buf, off, n, seed);
		while (done < n) {
			ssize_t w = pwrite(fd, buf + done, n - done, (off_t)(off + done));

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				ret = w < 0 ? -errno : -EIO;
				goto out;
			}
			done += (size_t)w;
		}
		off += n;
	}
out:
	free(buf);
	return ret;
}

int disk_pattern_check(int fd, uint64_t seed, uint64_t *bad_off)
{
	uint8_t *buf = malloc(2 * CHUNK), *want;
	uint64_t off = 0;
	struct stat st;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	want = buf + CHUNK;
	if (fstat(fd, &st)) {
		ret = -errno;
		goto out;
	}
	while (off < (uint64_t)st.st_size) {
		uint64_t left = (uint64_t)st.st_size - off;
		size_t n = left < CHUNK ? (size_t)left : CHUNK, i;
		ssize_t r = pread(fd, buf, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ret = r < 0 ? -errno : -EIO;
			goto out;
		}
		n = (size_t)r;
		disk_pattern_fill_buf(want, off, n, seed);
		if (memcmp(buf, want, n)) {
			for (i = 0; buf[i] == want[i]; i++)
				;
			*bad_off = off + i;
			ret = 1;
			goto out;
		}
		off += n;
	}
out:
	free(buf);
	return ret;
}
