/* SPDX-License-Identifier: MIT */
/*
 * Private to devices/disk*.c: the layers of a copy-on-write disk.  A layer
 * is a file plus a bitmap of the 4 KiB blocks it holds; the base layer (the
 * image file) holds every block and has no bitmap.  Layers form chains
 * (each holds a reference to the one below); a disk handle reads a block
 * from the topmost layer of its chain that holds it and writes only into its
 * own top layer.  Layers below a top are frozen: nobody starts a write into
 * them any more (writes started before the fork that froze one still land in
 * it).  Bitmap words are read and set atomically, since a frozen layer is
 * shared by handles with different locks while its last writes complete.
 */
#ifndef FORKVM_DEVICES_DISK_LAYER_H
#define FORKVM_DEVICES_DISK_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#define DISK_BLOCK_SHIFT 12
#define DISK_BLOCK_SIZE (1u << DISK_BLOCK_SHIFT)

struct disk_layer {
	int refs; /* atomic: handles whose top it is + layers right above it */
	int fd;
	uint64_t *bits; /* NULL: holds every block (the base file) */
	uint64_t nblocks;
	uint64_t nset; /* atomic: bits set */
	int writers; /* atomic: writes started into it, not completed */
	int users; /* atomic: of @refs, those of requests (their target) */
	int dirty; /* atomic: written since the last flush synced it */
	struct disk_layer *below; /* a reference; NULL under the base */
};

/** disk_layer_base() - the base layer over @fd (owned from now on). */
struct disk_layer *disk_layer_base(int fd);

/**
 * disk_layer_new() - an empty overlay layer for a disk of @size bytes: an
 * unlinked sparse file (O_TMPFILE) in @dir, else $TMPDIR, else /tmp.
 * @below is set later by the caller (with a reference).
 * Return: 0 or -errno.
 */
int disk_layer_new(const char *dir, uint64_t size, struct disk_layer **out)
    __attribute__((warn_unused_result));

struct disk_layer *disk_layer_get(struct disk_layer *l);

/** disk_layer_put() - drop a reference; the last one frees the layer and
 * puts the one below. */
void disk_layer_put(struct disk_layer *l);

/** disk_layer_has() - does @l hold block @b? */
static inline bool disk_layer_has(const struct disk_layer *l, uint64_t b)
{
	if (!l->bits)
		return true;
	return __atomic_load_n(&l->bits[b / 64], __ATOMIC_ACQUIRE) & (1ull << (b % 64));
}

/** disk_layer_holds_all() - does @l hold every block of [@b0, @b1]? */
bool disk_layer_holds_all(const struct disk_layer *l, uint64_t b0, uint64_t b1);

/**
 * disk_layer_set() - mark blocks [@b0, @b1] held, after their data landed
 * (release: pairs with the acquire in disk_layer_has()).
 */
void disk_layer_set(struct disk_layer *l, uint64_t b0, uint64_t b1);

/** disk_layer_find() - the topmost layer from @top down holding block @b. */
static inline struct disk_layer *disk_layer_find(struct disk_layer *top, uint64_t b)
{
	struct disk_layer *l = top;

	while (!disk_layer_has(l, b))
		l = l->below;
	return l;
}

/** disk_layer_depth() - layers from @top down to the base, both counted. */
unsigned int disk_layer_depth(const struct disk_layer *top);

struct disk;

/** disk_top_get() - a reference to @d's current top layer (disk.c). */
struct disk_layer *disk_top_get(struct disk *d);

#endif /* FORKVM_DEVICES_DISK_LAYER_H */
