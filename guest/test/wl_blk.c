// SPDX-License-Identifier: MIT
/*
 * blkread: read the whole virtio-blk disk and check every word against the
 * disk pattern with seed DISK_SEED_READ.  blkwrite: write the pattern with
 * seed DISK_SEED_WRITE over the whole disk, flush, read it back and check.
 * Both start with a GET_ID request and print the answer.
 */
#include "guest/test/console.h"
#include "guest/test/guest.h"
#include "guest/test/io.h"
#include "guest/test/pattern.h"
#include "guest/test/virtio_blk.h"

#define BLK_CHUNK (64 * 1024)

static uint8_t blk_buf[BLK_CHUNK] __attribute__((aligned(4096)));
static struct vblk blk;

static int blk_start(const struct wl_ctx *ctx, const char *name)
{
	char err[128], id[VIRTIO_BLK_ID_BYTES + 1];
	uint32_t ulen = 0;
	int st, i;

	if (vblk_find(&blk, ctx->m, err, sizeof(err))) {
		con_printf("%s: FAIL: no usable virtio-blk: %s\n", name, err);
		return GUEST_EXIT_NODEV;
	}
	con_printf("%s: virtio-blk at 0x%lx: %lu sectors (%lu KiB), features 0x%lx, queue %u\n",
		   name, (unsigned long)blk.base, (unsigned long)blk.capacity,
		   (unsigned long)(blk.capacity >> 1), (unsigned long)blk.features, blk.vr.size);
	for (i = 0; i < VIRTIO_BLK_ID_BYTES; i++)
		blk_buf[i] = 0;
	st = vblk_request(&blk, VIRTIO_BLK_T_GET_ID, 0, blk_buf, VIRTIO_BLK_ID_BYTES, &ulen);
	for (i = 0; i < VIRTIO_BLK_ID_BYTES; i++)
		id[i] = blk_buf[i] >= 0x20 && blk_buf[i] < 0x7f ? (char)blk_buf[i]
			: blk_buf[i]				? '?'
								: '\0';
	id[VIRTIO_BLK_ID_BYTES] = '\0';
	con_printf("%s: get-id status %d used.len %u id '%s'\n", name, st, ulen, id);
	if (st < 0) {
		con_printf("%s: FAIL: get-id request got no answer\n", name);
		return GUEST_EXIT_FAIL;
	}
	if (!blk.capacity) {
		con_printf("%s: FAIL: the disk is empty\n", name);
		return GUEST_EXIT_FAIL;
	}
	/* Device values: a request must carry at least one sector, else the
	 * read and write loops below would never advance. */
	if (!vblk_max_transfer(&blk, BLK_CHUNK)) {
		con_printf(
		    "%s: FAIL: queue %u, size_max %u, seg_max %u leave no room for a sector\n",
		    name, blk.vr.size, blk.size_max, blk.seg_max);
		return GUEST_EXIT_FAIL;
	}
	return 0;
}

/* Read [sector, sector + len / 512) into blk_buf and compare with @seed's pattern. */
static int read_check(const char *name, uint64_t sector, uint32_t len, uint64_t seed)
{
	uint64_t off = sector * VBLK_SECTOR, *w = (uint64_t *)blk_buf, want;
	uint32_t ulen = 0, i;
	int st;

	st = vblk_request(&blk, VIRTIO_BLK_T_IN, sector, blk_buf, len, &ulen);
	if (st != VIRTIO_BLK_S_OK || ulen != len + 1) {
		con_printf("%s: FAIL: read of %u bytes at sector %lu: status %d used.len %u\n",
			   name, len, (unsigned long)sector, st, ulen);
		return GUEST_EXIT_FAIL;
	}
	for (i = 0; i < len / 8; i++) {
		want = disk_word(off + 8 * i, seed);
		if (w[i] != want) {
			con_printf(
			    "%s: FAIL: mismatch at disk offset 0x%lx: got 0x%lx, expected 0x%lx\n",
			    name, (unsigned long)(off + 8 * i), (unsigned long)w[i],
			    (unsigned long)want);
			return GUEST_EXIT_FAIL;
		}
	}
	return 0;
}

static int blkread_run(const struct wl_ctx *ctx)
{
	uint64_t s;
	uint32_t chunk;
	int ret;

	ret = blk_start(ctx, "blkread");
	if (ret)
		return ret;
	chunk = vblk_max_transfer(&blk, BLK_CHUNK) / VBLK_SECTOR;
	for (s = 0; s < blk.capacity; s += chunk) {
		uint64_t n = blk.capacity - s < chunk ? blk.capacity - s : chunk;

		ret = read_check("blkread", s, (uint32_t)n * VBLK_SECTOR, DISK_SEED_READ);
		if (ret)
			return ret;
	}
	con_printf("blkread: %lu sectors (%lu KiB) ok, pattern seed 0x%lx\n",
		   (unsigned long)blk.capacity, (unsigned long)(blk.capacity >> 1),
		   (unsigned long)DISK_SEED_READ);
	return 0;
}

static int blkwrite_run(const struct wl_ctx *ctx)
{
	uint64_t s, *w = (uint64_t *)blk_buf;
	uint32_t chunk, ulen = 0, i;
	int ret, st;

	ret = blk_start(ctx, "blkwrite");
	if (ret)
		return ret;
	if (vblk_has(&blk, VIRTIO_BLK_F_RO)) {
		con_printf("blkwrite: FAIL: the disk is read-only (VIRTIO_BLK_F_RO)\n");
		return GUEST_EXIT_FAIL;
	}
	chunk = vblk_max_transfer(&blk, BLK_CHUNK) / VBLK_SECTOR;
	for (s = 0; s < blk.capacity; s += chunk) {
		uint64_t n = blk.capacity - s < chunk ? blk.capacity - s : chunk;
		uint32_t len = (uint32_t)n * VBLK_SECTOR;

		for (i = 0; i < len / 8; i++)
			w[i] = disk_word(s * VBLK_SECTOR + 8 * i, DISK_SEED_WRITE);
		st = vblk_request(&blk, VIRTIO_BLK_T_OUT, s, blk_buf, len, &ulen);
		if (st != VIRTIO_BLK_S_OK) {
			con_printf("blkwrite: FAIL: write of %u bytes at sector %lu: status %d\n",
				   len, (unsigned long)s, st);
			return GUEST_EXIT_FAIL;
		}
	}
	if (vblk_has(&blk, VIRTIO_BLK_F_FLUSH)) {
		st = vblk_request(&blk, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, &ulen);
		if (st != VIRTIO_BLK_S_OK) {
			con_printf("blkwrite: FAIL: flush: status %d\n", st);
			return GUEST_EXIT_FAIL;
		}
		con_printf("blkwrite: flush ok\n");
	} else {
		con_printf("blkwrite: device offers no VIRTIO_BLK_F_FLUSH: no flush sent\n");
	}
	for (s = 0; s < blk.capacity; s += chunk) {
		uint64_t n = blk.capacity - s < chunk ? blk.capacity - s : chunk;

		ret = read_check("blkwrite", s, (uint32_t)n * VBLK_SECTOR, DISK_SEED_WRITE);
		if (ret)
			return ret;
	}
	con_printf(
	    "blkwrite: %lu sectors (%lu KiB) written, flushed, read back ok, pattern seed 0x%lx\n",
	    (unsigned long)blk.capacity, (unsigned long)(blk.capacity >> 1),
	    (unsigned long)DISK_SEED_WRITE);
	return 0;
}

const struct workload wl_blkread = { "blkread", false, blkread_run };
const struct workload wl_blkwrite = { "blkwrite", false, blkwrite_run };
