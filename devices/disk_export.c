// SPDX-License-Identifier: MIT
/*
 * disk_export() (devices/disk.h): a disk's contents written out as a plain
 * file, synchronously, straight from its layers.  Each block is read from
 * the topmost layer of the handle's chain that holds it, in runs of blocks
 * held by the same layer; blocks that are all zeros are not written (a
 * sparse file keeps its holes).  On the base layer, SEEK_DATA skips the
 * image file's own holes without reading them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/disk.h"
#include "devices/disk_layer.h"

#define EXPORT_CHUNK (1u << 20) /* bytes read at once */

static bool block_is_zero(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		if (w[i])
			return false;
	}
	for (i = len & ~(size_t)7; i < len; i++) {
		if (p[i])
			return false;
	}
	return true;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			/* Past the end of a shorter file: zeros, as a hole reads. */
			memset(p, 0, len);
			return 0;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
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

/* Bytes [@off, @off + @len) from layer @l's file to @fd, non-zero blocks only. */
static int copy_run(int from, int to, uint8_t *buf, uint64_t off, uint64_t len, uint64_t *blocks)
{
	while (len) {
		size_t n = len > EXPORT_CHUNK ? EXPORT_CHUNK : (size_t)len, i;
		int ret = pread_full(from, buf, n, off);

		if (ret)
			return ret;
		for (i = 0; i < n; i += DISK_BLOCK_SIZE) {
			size_t b = n - i < DISK_BLOCK_SIZE ? n - i : DISK_BLOCK_SIZE;

			if (block_is_zero(buf + i, b))
				continue;
			ret = pwrite_full(to, buf + i, b, off + i);
			if (ret)
				return ret;
			(*blocks)++;
		}
		off += n;
		len -= n;
	}
	return 0;
}

/*
 * The base layer's run [@off, @end): only its data extents (a hole reads
 * zeros, which are not written anyway).
 */
static int copy_base_run(int from, int to, uint8_t *buf, uint64_t off, uint64_t end,
			 uint64_t *blocks)
{
	while (off < end) {
		off_t data = lseek(from, (off_t)off, SEEK_DATA), hole;
		int ret;

		if (data < 0) {
			/* ENXIO: holes only from here; else no SEEK_DATA: read it all. */
			if (errno == ENXIO)
				return 0;
			return copy_run(from, to, buf, off, end - off, blocks);
		}
		if ((uint64_t)data >= end)
			return 0;
		hole = lseek(from, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end)
			hole = (off_t)end;
		/* From its block's start (runs start on blocks): extents need
		 * not be block-aligned, and the zero test is per block. */
		off = (uint64_t)data & ~(uint64_t)(DISK_BLOCK_SIZE - 1);
		ret = copy_run(from, to, buf, off, (uint64_t)hole - off, blocks);
		if (ret)
			return ret;
		off = (uint64_t)hole;
	}
	return 0;
}

int disk_export(struct disk *d, int fd, uint64_t *blocks)
{
	struct disk_layer *top = disk_top_get(d);
	uint64_t size = disk_size(d), nblocks = (size + DISK_BLOCK_SIZE - 1) >> DISK_BLOCK_SHIFT;
	uint64_t b = 0, n = 0;
	uint8_t *buf = malloc(EXPORT_CHUNK);
	int ret = 0;

	if (!buf) {
		disk_layer_put(top);
		return -ENOMEM;
	}
	while (b < nblocks) {
		struct disk_layer *l = disk_layer_find(top, b);
		uint64_t e = b + 1, from, to;

		/* A run of blocks held by the same layer. */
		while (e < nblocks && disk_layer_find(top, e) == l)
			e++;
		from = b << DISK_BLOCK_SHIFT;
		to = e << DISK_BLOCK_SHIFT;
		if (to > size)
			to = size;
		ret = l->bits ? copy_run(l->fd, fd, buf, from, to - from, &n)
			      : copy_base_run(l->fd, fd, buf, from, to, &n);
		if (ret)
			break;
		b = e;
	}
	free(buf);
	disk_layer_put(top);
	if (!ret && blocks)
		*blocks = n;
	return ret;
}
