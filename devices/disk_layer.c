// SPDX-License-Identifier: MIT
/* The layers of a copy-on-write disk (devices/disk_layer.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "devices/disk_layer.h"

struct disk_layer *disk_layer_base(int fd)
{
	struct disk_layer *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->refs = 1;
	l->fd = fd;
	return l;
}

/* An unlinked file in @dir: O_TMPFILE, or mkstemp + unlink where the
 * filesystem does not support it.  Return: the fd or -errno. */
static int tmpfile_in(const char *dir)
{
	char path[PATH_MAX];
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	if (snprintf(path, sizeof(path), "%s/.forkvm-disk-XXXXXX", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

int disk_layer_new(const char *dir, uint64_t size, struct disk_layer **out)
{
	const char *dirs[] = { dir, getenv("TMPDIR"), "/tmp" };
	uint64_t nblocks = (size + DISK_BLOCK_SIZE - 1) >> DISK_BLOCK_SHIFT;
	struct disk_layer *l;
	int fd = -ENOENT, ret;

	for (unsigned int i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && fd < 0; i++)
		if (dirs[i] && *dirs[i])
			fd = tmpfile_in(dirs[i]);
	if (fd < 0)
		return fd;
	/* Sized like the disk, so every read inside it is full (holes read 0). */
	if (ftruncate(fd, (off_t)size)) {
		ret = -errno;
		goto err_fd;
	}
	ret = -ENOMEM;
	l = calloc(1, sizeof(*l));
	if (!l)
		goto err_fd;
	l->bits = calloc(nblocks / 64 + 1, sizeof(uint64_t));
	if (!l->bits)
		goto err_layer;
	l->refs = 1;
	l->fd = fd;
	l->nblocks = nblocks;
	*out = l;
	return 0;

err_layer:
	free(l);
err_fd:
	close(fd);
	return ret;
}

struct disk_layer *disk_layer_get(struct disk_layer *l)
{
	__atomic_add_fetch(&l->refs, 1, __ATOMIC_RELAXED);
	return l;
}

void disk_layer_put(struct disk_layer *l)
{
	/* Iterative: a long chain must not recurse once per layer. */
	while (l && __atomic_sub_fetch(&l->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		struct disk_layer *below = l->below;

		close(l->fd);
		free(l->bits);
		free(l);
		l = below;
	}
}

bool disk_layer_holds_all(const struct disk_layer *l, uint64_t b0, uint64_t b1)
{
	if (!l->bits)
		return true;
	for (uint64_t b = b0; b <= b1; b++)
		if (!disk_layer_has(l, b))
			return false;
	return true;
}

void disk_layer_set(struct disk_layer *l, uint64_t b0, uint64_t b1)
{
	if (!l->bits)
		return;
	for (uint64_t b = b0; b <= b1; b++) {
		uint64_t bit = 1ull << (b % 64);
		uint64_t old = __atomic_fetch_or(&l->bits[b / 64], bit, __ATOMIC_RELEASE);

		if (!(old & bit))
			__atomic_add_fetch(&l->nset, 1, __ATOMIC_RELAXED);
	}
}

unsigned int disk_layer_depth(const struct disk_layer *top)
{
	unsigned int n = 0;

	for (; top; top = top->below)
		n++;
	return n;
}
