// SPDX-License-Identifier: MIT
/*
 * virtio-blk on a backing file.
 *
 * The DMA path: a request's data buffers are reached only through
 * guest_mem->pin() (write = true when the device writes guest memory, i.e.
 * for IN and GET_ID), the I/O runs on the pinned iovecs, and every pin is
 * released before the request is completed.  The header and the status byte
 * go through guest_mem read/write.  Nothing keeps a host pointer into guest
 * memory from one request to the next.
 *
 * Requests run in queue_notify(), which the transport calls on its service
 * thread (one per device) with its lock held.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/log.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"

/* virtio 1.x 5.2 (not from <linux/virtio_blk.h>: its config struct name
 * collides with ours). */
#define BLK_F_SIZE_MAX 1
#define BLK_F_SEG_MAX 2
#define BLK_F_RO 5
#define BLK_F_FLUSH 9
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define BLK_ID_BYTES 20

#define SECTOR_SHIFT 9
#define SECTOR_SIZE (1u << SECTOR_SHIFT)
#define BLK_QUEUE_MAX 256
#define BLK_SEG_MAX (BLK_QUEUE_MAX - 2)
/* One pin covers at most this much (mm pins at most 4 MiB). */
#define BLK_PIN_CHUNK (1u << 20)
#define BLK_CONFIG_SIZE 24

struct blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

struct blk {
	struct virtio_dev vdev; /* first: container */
	int fd;
	bool readonly;
	uint64_t capacity; /* sectors */
	char id[BLK_ID_BYTES];
	uint8_t config[BLK_CONFIG_SIZE];
	struct vq_chain *chain; /* scratch for one request */
	/* Pins of the request in progress (empty between requests). */
	struct dma_buf *bufs;
	unsigned int nbufs, bufs_cap;
	struct iovec *iov;
	unsigned int niov, iov_cap;
};

static struct blk *to_blk(struct virtio_dev *dev)
{
	return (struct blk *)dev;
}

static void blk_config_read(struct virtio_dev *dev, uint32_t off, void *data, unsigned int len)
{
	memcpy(data, to_blk(dev)->config + off, len);
}

/* Copy @len bytes at offset @off of the chain's readable area. */
static int read_area(const struct guest_mem *mem, const struct vq_chain *c, uint32_t off, void *buf,
		     uint32_t len)
{
	unsigned int i;
	uint8_t *p = buf;
	int ret;

	for (i = 0; i < c->nread && len; i++) {
		const struct vq_seg *s = &c->seg[i];
		uint32_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off < len ? s->len - off : len;
		ret = mem->read(mem->opaque, s->gpa + off, p, n);
		if (ret)
			return ret;
		p += n;
		len -= n;
		off = 0;
	}
	return len ? -EINVAL : 0;
}

static void unpin_all(struct blk *b)
{
	const struct guest_mem *mem = b->vdev.mem;

	while (b->nbufs)
		mem->unpin(mem->opaque, &b->bufs[--b->nbufs]);
	/* Not even a stale host pointer survives the request. */
	if (b->niov)
		memset(b->iov, 0, b->niov * sizeof(*b->iov));
	b->niov = 0;
}

static int pin_one(struct blk *b, uint64_t gpa, uint32_t len, bool write)
{
	const struct guest_mem *mem = b->vdev.mem;
	struct dma_buf *d;
	unsigned int need;
	int ret;

	if (b->nbufs == b->bufs_cap) {
		unsigned int cap = b->bufs_cap ? 2 * b->bufs_cap : 16;
		struct dma_buf *nb = realloc(b->bufs, cap * sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		b->bufs = nb;
		b->bufs_cap = cap;
	}
	d = &b->bufs[b->nbufs];
	ret = mem->pin(mem->opaque, gpa, len, write, d);
	if (ret)
		return ret;
	b->nbufs++;
	need = b->niov + d->niov;
	if (need > b->iov_cap) {
		unsigned int cap = need > 2 * b->iov_cap ? need : 2 * b->iov_cap;
		struct iovec *ni = realloc(b->iov, cap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		b->iov = ni;
		b->iov_cap = cap;
	}
	memcpy(b->iov + b->niov, d->iov, d->niov * sizeof(*d->iov));
	b->niov = need;
	return 0;
}

/*
 * Pin [off, off + len) of the chain's readable (@write false) or writable
 * area, in chunks, and gather the iovecs in b->iov.  On error nothing stays
 * pinned.
 */
static int pin_area(struct blk *b, const struct vq_chain *c, bool write, uint32_t off, uint32_t len)
{
	unsigned int i = write ? c->nread : 0, end = write ? c->nread + c->nwrite : c->nread;
	int ret;

	for (; i < end && len; i++) {
		const struct vq_seg *s = &c->seg[i];
		uint64_t gpa;
		uint32_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		gpa = s->gpa + off;
		n = s->len - off < len ? s->len - off : len;
		len -= n;
		off = 0;
		while (n) {
			uint32_t chunk = n < BLK_PIN_CHUNK ? n : BLK_PIN_CHUNK;

			ret = pin_one(b, gpa, chunk, write);
			if (ret)
				goto err;
			gpa += chunk;
			n -= chunk;
		}
	}
	return 0;
err:
	unpin_all(b);
	return ret;
}

/* preadv/pwritev all of b->iov at @pos; short transfers continue. */
static int do_io(struct blk *b, uint64_t pos, bool write)
{
	struct iovec *iov = b->iov;
	unsigned int left = b->niov;

	while (left) {
		int cnt = left < IOV_MAX ? (int)left : IOV_MAX;
		ssize_t n = write ? pwritev(b->fd, iov, cnt, (off_t)pos)
				  : preadv(b->fd, iov, cnt, (off_t)pos);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the file shrank under us */
		pos += (uint64_t)n;
		while (left && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			left--;
		}
		if (left) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Guest values @sector and @len: the range must be inside the disk. */
static bool is_in_disk(const struct blk *b, uint64_t sector, uint32_t len, uint64_t *pos)
{
	uint64_t end;

	if (len % SECTOR_SIZE)
		return false;
	if (__builtin_mul_overflow(sector, (uint64_t)SECTOR_SIZE, pos) ||
	    __builtin_add_overflow(*pos, (uint64_t)len, &end))
		return false;
	return end <= b->capacity << SECTOR_SHIFT;
}

static uint8_t rw(struct blk *b, const struct vq_chain *c, const struct blk_req_hdr *h, bool in,
		  uint32_t *used)
{
	/* IN: data is the writable area before the status byte; OUT: the
	 * readable area after the header. */
	uint32_t len = in ? c->write_len - 1 : c->read_len - sizeof(*h);
	uint64_t pos;
	int ret;

	if (!is_in_disk(b, h->sector, len, &pos)) {
		dev_guest_err(b->vdev.name, "%s of %u bytes at sector %llu: outside the disk",
			      in ? "read" : "write", len, (unsigned long long)h->sector);
		return BLK_S_IOERR;
	}
	if (!in && b->readonly)
		return BLK_S_IOERR;
	if (len == 0)
		return BLK_S_OK;
	ret = pin_area(b, c, in, in ? 0 : sizeof(*h), len);
	if (ret) {
		dev_guest_err(b->vdev.name, "pin of %u bytes failed (%d)", len, ret);
		return BLK_S_IOERR;
	}
	ret = do_io(b, pos, !in);
	unpin_all(b);
	if (ret)
		return BLK_S_IOERR;
	if (in)
		*used += len;
	return BLK_S_OK;
}

static uint8_t get_id(struct blk *b, const struct vq_chain *c, uint32_t *used)
{
	uint32_t len = c->write_len - 1, copied = 0;
	unsigned int i;
	int ret;

	if (len > BLK_ID_BYTES)
		len = BLK_ID_BYTES;
	if (len == 0)
		return BLK_S_OK;
	ret = pin_area(b, c, true, 0, len);
	if (ret)
		return BLK_S_IOERR;
	for (i = 0; i < b->niov; i++) {
		memcpy(b->iov[i].iov_base, b->id + copied, b->iov[i].iov_len);
		copied += (uint32_t)b->iov[i].iov_len;
	}
	unpin_all(b);
	*used += len;
	return BLK_S_OK;
}

/* One well-formed chain: returns the used length (status byte included). */
static uint32_t handle(struct blk *b, const struct vq_chain *c, uint64_t status_gpa)
{
	const struct guest_mem *mem = b->vdev.mem;
	struct blk_req_hdr h;
	uint32_t used = 1;
	uint8_t st;

	/* Guest value: the request header, copied once. */
	if (c->read_len < sizeof(h) || read_area(mem, c, 0, &h, sizeof(h))) {
		st = BLK_S_IOERR;
		goto out;
	}
	h.type = le32toh(h.type);
	h.sector = le64toh(h.sector);
	switch (h.type) {
	case BLK_T_IN:
		st = rw(b, c, &h, true, &used);
		break;
	case BLK_T_OUT:
		st = rw(b, c, &h, false, &used);
		break;
	case BLK_T_FLUSH:
		st = b->readonly || fdatasync(b->fd) == 0 ? BLK_S_OK : BLK_S_IOERR;
		break;
	case BLK_T_GET_ID:
		st = get_id(b, c, &used);
		break;
	default:
		/* Guest value: type; anything else is not supported. */
		dev_guest_err(b->vdev.name, "request type %u not supported", h.type);
		st = BLK_S_UNSUPP;
	}
out:
	if (st != BLK_S_OK)
		used = 1;
	(void)mem->write(mem->opaque, status_gpa, &st, 1);
	return used;
}

static int blk_queue_notify(struct virtio_dev *dev, struct virtqueue *vq)
{
	struct blk *b = to_blk(dev);
	struct vq_chain *c = b->chain;
	unsigned int done = 0;
	int ret;

	do {
		while ((ret = vq_pop_chain(vq, c)) == 1) {
			const struct vq_seg *last;

			if (c->error) {
				ret = vq_fail_chain(vq, c, BLK_S_IOERR);
			} else if (c->nwrite == 0) {
				/* Nowhere to put a status: malformed as well. */
				dev_guest_err(dev->name, "chain %u has no status byte", c->head);
				ret = vq_push_used(vq, c->head, 0);
			} else {
				/* The status byte: the writable area's last byte. */
				last = &c->seg[c->nread + c->nwrite - 1];
				ret = vq_push_used(vq, c->head,
						   handle(b, c, last->gpa + last->len - 1));
			}
			if (ret)
				break;
			done++;
		}
		if (ret < 0)
			break;
	} while (vq_enable_notify(vq));
	if (done)
		dev->transport.used(dev->transport.opaque, vq);
	return ret < 0 ? ret : 0;
}

static void blk_destroy(struct virtio_dev *dev)
{
	struct blk *b = to_blk(dev);

	close(b->fd);
	free(b->chain);
	free(b->bufs);
	free(b->iov);
	free(b);
}

static const struct virtio_dev_ops blk_ops = {
	.config_read = blk_config_read,
	.queue_notify = blk_queue_notify,
	/* No .reset: requests complete inside queue_notify, nothing is in flight. */
	.destroy = blk_destroy,
};

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

int virtio_blk_create(const struct virtio_blk_config *cfg, struct virtio_dev **out)
{
	const char *base;
	struct stat st;
	struct blk *b;
	uint64_t cap;
	int ret;

	if (!cfg || !cfg->path)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->chain = malloc(sizeof(*b->chain));
	if (!b->chain) {
		ret = -ENOMEM;
		goto err_free;
	}
	b->fd = open(cfg->path, (cfg->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		ret = -errno;
		goto err_free;
	}
	if (fstat(b->fd, &st)) {
		ret = -errno;
		goto err_close;
	}
	b->readonly = cfg->readonly;
	b->capacity = (uint64_t)st.st_size >> SECTOR_SHIFT;
	/* The ID: the file's base name, NUL-padded, at most 20 bytes. */
	base = strrchr(cfg->path, '/');
	base = base ? base + 1 : cfg->path;
	memcpy(b->id, base, strnlen(base, sizeof(b->id)));

	cap = htole64(b->capacity);
	memcpy(b->config, &cap, 8);
	put_le32(b->config + 8, BLK_PIN_CHUNK); /* size_max */
	put_le32(b->config + 12, BLK_SEG_MAX); /* seg_max */
	put_le32(b->config + 20, SECTOR_SIZE); /* blk_size (informative) */

	b->vdev = (struct virtio_dev){
		.ops = &blk_ops,
		.name = "virtio-blk",
		.device_id = VIRTIO_ID_BLOCK,
		.features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
			    (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << BLK_F_SIZE_MAX) |
			    (1ull << BLK_F_SEG_MAX) | (1ull << BLK_F_FLUSH) |
			    (cfg->readonly ? 1ull << BLK_F_RO : 0),
		.nqueues = 1,
		.queue_max = BLK_QUEUE_MAX,
		.config_size = BLK_CONFIG_SIZE,
	};
	*out = &b->vdev;
	return 0;

err_close:
	close(b->fd);
err_free:
	free(b->chain);
	free(b);
	return ret;
}
