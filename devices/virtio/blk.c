// SPDX-License-Identifier: MIT
/*
 * virtio-blk on a devices/disk.h backend, asynchronous.
 *
 * The DMA path: a request's data buffers are reached only through
 * guest_mem->pin() (write = true when the device writes guest memory, i.e.
 * for IN and GET_ID).  A read or write is pinned, handed to the disk
 * (disk_submit) and is then in flight: many at once, up to the queue size
 * (a head can be in flight only once).  Its I/O runs in the disk's engine
 * with no lock held; the disk calls blk_io_done() on its completion thread,
 * which tells the transport (virtio_req_done).  The transport, under its
 * lock, then calls blk_finish(): the status byte is written, the pins are
 * released, the request freed; then it pushes the used entry and notifies
 * (or keeps the request for later while it holds completions, see mmio.h).
 * So a pin is held from submission to completion, across a clone if one
 * happens meanwhile: that is what mm's fork must see (DESIGN.md 3.1).
 * FLUSH goes through the disk as well; GET_ID is answered at once.
 *
 * Context: blk_queue_notify() and blk_submit() run with the transport lock
 * held (service thread, or the restore of a clone); blk_io_done() on the
 * disk's completion thread without it.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "devices/disk.h"
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
	struct disk *disk;
	bool readonly;
	uint64_t latency_ns; /* of the disk (a fork's disk gets the same) */
	uint64_t capacity; /* sectors */
	char id[BLK_ID_BYTES];
	uint8_t config[BLK_CONFIG_SIZE];
	struct vq_chain *chain; /* scratch for queue_notify */
};

/* One request in flight: its pins, its disk I/O, its answer. */
struct blk_req {
	struct virtio_req vreq; /* first: container; the transport's */
	struct blk *b;
	struct disk_io io;
	uint64_t status_gpa;
	uint8_t status; /* set by blk_io_done */
	uint32_t used_len; /* data bytes written to the guest + 1, on success */
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

static void req_free(struct blk_req *r)
{
	free(r->bufs);
	free(r->iov);
	free(r);
}

/* A request for chain @c answering at @status_gpa, @used_len on success; NULL if out of memory. */
static struct blk_req *req_new(struct blk *b, const struct vq_chain *c, uint64_t status_gpa,
			       uint32_t used_len)
{
	struct blk_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->b = b;
	r->vreq.head = c->head;
	r->status_gpa = status_gpa;
	r->used_len = used_len;
	return r;
}

static void unpin_all(struct blk_req *r)
{
	const struct guest_mem *mem = r->b->vdev.mem;

	while (r->nbufs)
		mem->unpin(mem->opaque, &r->bufs[--r->nbufs]);
	/* Not even a stale host pointer survives the request. */
	if (r->niov)
		memset(r->iov, 0, r->niov * sizeof(*r->iov));
	r->niov = 0;
}

static int pin_one(struct blk_req *r, uint64_t gpa, uint32_t len, bool write)
{
	const struct guest_mem *mem = r->b->vdev.mem;
	struct dma_buf *d;
	unsigned int need;
	int ret;

	if (r->nbufs == r->bufs_cap) {
		unsigned int cap = r->bufs_cap ? 2 * r->bufs_cap : 4;
		struct dma_buf *nb = realloc(r->bufs, cap * sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		r->bufs = nb;
		r->bufs_cap = cap;
	}
	d = &r->bufs[r->nbufs];
	ret = mem->pin(mem->opaque, gpa, len, write, d);
	if (ret)
		return ret;
	r->nbufs++;
	need = r->niov + d->niov;
	if (need > r->iov_cap) {
		unsigned int cap = need > 2 * r->iov_cap ? need : 2 * r->iov_cap;
		struct iovec *ni = realloc(r->iov, cap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		r->iov = ni;
		r->iov_cap = cap;
	}
	memcpy(r->iov + r->niov, d->iov, d->niov * sizeof(*d->iov));
	r->niov = need;
	return 0;
}

/*
 * Pin [off, off + len) of the chain's readable (@write false) or writable
 * area, in chunks, and gather the iovecs in r->iov.  On error nothing stays
 * pinned.
 */
static int pin_area(struct blk_req *r, const struct vq_chain *c, bool write, uint32_t off,
		    uint32_t len)
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

			ret = pin_one(r, gpa, chunk, write);
			if (ret)
				goto err;
			gpa += chunk;
			n -= chunk;
		}
	}
	return 0;
err:
	unpin_all(r);
	return ret;
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

/*
 * The disk's completion thread, no lock held: record the answer and hand
 * the request to the transport, which publishes it (blk_finish) now or at
 * release.
 */
static void blk_io_done(struct disk_io *io, int res)
{
	struct blk_req *r = io->priv;

	if (res) {
		r->status = BLK_S_IOERR;
		r->used_len = 1;
	} else {
		r->status = BLK_S_OK;
	}
	virtio_req_done(&r->b->vdev, &r->vreq);
}

/* transport: publish (status byte), unpin, free.  Lock held. */
static uint32_t blk_finish(struct virtio_dev *dev, struct virtio_req *vreq, bool publish)
{
	struct blk_req *r = (struct blk_req *)vreq;
	const struct guest_mem *mem = dev->mem;
	uint32_t used = r->used_len;

	/* The status byte is outside the pinned data area (the writable
	 * area's last byte); the used entry that publishes it comes after. */
	if (publish)
		(void)mem->write(mem->opaque, r->status_gpa, &r->status, 1);
	unpin_all(r);
	req_free(r);
	return used;
}

/*
 * Start a read (@in) or write: pin, submit, in flight.  Return: 0 when in
 * flight (the answer comes through blk_io_done), or the status to answer
 * at once (nothing pinned then).
 */
static int start_rw(struct blk *b, struct virtqueue *vq, const struct vq_chain *c,
		    const struct blk_req_hdr *h, bool in, uint64_t status_gpa, uint8_t *st)
{
	/* IN: data is the writable area before the status byte; OUT: the
	 * readable area after the header. */
	uint32_t len = in ? c->write_len - 1 : c->read_len - sizeof(*h);
	struct blk_req *r;
	uint64_t pos;
	int ret;

	if (!is_in_disk(b, h->sector, len, &pos)) {
		dev_guest_err(b->vdev.name, "%s of %u bytes at sector %llu: outside the disk",
			      in ? "read" : "write", len, (unsigned long long)h->sector);
		*st = BLK_S_IOERR;
		return 1;
	}
	if (!in && b->readonly) {
		*st = BLK_S_IOERR;
		return 1;
	}
	if (len == 0) {
		*st = BLK_S_OK;
		return 1;
	}
	r = req_new(b, c, status_gpa, in ? len + 1 : 1);
	if (!r) {
		*st = BLK_S_IOERR;
		return 1;
	}
	ret = pin_area(r, c, in, in ? 0 : sizeof(*h), len);
	if (ret) {
		dev_guest_err(b->vdev.name, "pin of %u bytes failed (%d)", len, ret);
		goto err;
	}
	r->io = (struct disk_io){
		.op = in ? DISK_READ : DISK_WRITE,
		.pos = pos,
		.iov = r->iov,
		.niov = r->niov,
		.done = blk_io_done,
		.priv = r,
	};
	ret = disk_submit(b->disk, &r->io);
	if (ret) {
		dev_guest_err(b->vdev.name, "disk submit failed (%d)", ret);
		unpin_all(r);
		goto err;
	}
	/* blk_io_done may run already, but the transport lock (ours) keeps
	 * it from publishing before the request is on the in-flight list. */
	virtio_req_start(&b->vdev, vq, &r->vreq);
	return 0;
err:
	req_free(r);
	*st = BLK_S_IOERR;
	return 1;
}

/* FLUSH through the disk, so it orders after the writes before it. */
static int start_flush(struct blk *b, struct virtqueue *vq, const struct vq_chain *c,
		       uint64_t status_gpa, uint8_t *st)
{
	struct blk_req *r;

	/* A read-only disk has nothing to flush. */
	if (b->readonly) {
		*st = BLK_S_OK;
		return 1;
	}
	r = req_new(b, c, status_gpa, 1);
	if (!r) {
		*st = BLK_S_IOERR;
		return 1;
	}
	r->io = (struct disk_io){ .op = DISK_FLUSH, .done = blk_io_done, .priv = r };
	if (disk_submit(b->disk, &r->io)) {
		req_free(r);
		*st = BLK_S_IOERR;
		return 1;
	}
	virtio_req_start(&b->vdev, vq, &r->vreq);
	return 0;
}

/* GET_ID at once: a copy into the pinned buffer, no I/O. */
static uint8_t get_id(struct blk *b, const struct vq_chain *c, uint32_t *used)
{
	struct blk_req r = { .b = b };
	uint32_t len = c->write_len - 1, copied = 0;
	unsigned int i;

	if (len > BLK_ID_BYTES)
		len = BLK_ID_BYTES;
	if (len == 0)
		return BLK_S_OK;
	if (pin_area(&r, c, true, 0, len)) {
		free(r.bufs);
		free(r.iov);
		return BLK_S_IOERR;
	}
	for (i = 0; i < r.niov; i++) {
		memcpy(r.iov[i].iov_base, b->id + copied, r.iov[i].iov_len);
		copied += (uint32_t)r.iov[i].iov_len;
	}
	unpin_all(&r);
	free(r.bufs);
	free(r.iov);
	*used += len;
	return BLK_S_OK;
}

/*
 * One chain, popped or re-read at a restore: answer it at once or put it in
 * flight.  Return: 0, or -errno for a queue error.  Lock held.
 */
static int blk_submit(struct virtio_dev *dev, struct virtqueue *vq, const struct vq_chain *c)
{
	struct blk *b = to_blk(dev);
	const struct guest_mem *mem = dev->mem;
	const struct vq_seg *last;
	struct blk_req_hdr h;
	uint64_t status_gpa;
	uint32_t used = 1;
	uint8_t st;

	if (c->error)
		return vq_fail_chain(vq, c, BLK_S_IOERR);
	if (c->nwrite == 0) {
		/* Nowhere to put a status: malformed as well. */
		dev_guest_err(dev->name, "chain %u has no status byte", c->head);
		return vq_push_used(vq, c->head, 0);
	}
	/* Guest value: the head, made available again while in flight. */
	if (virtio_head_busy(dev, vq, c->head)) {
		dev_guest_err(dev->name, "chain %u made available again while in flight", c->head);
		return -EPROTO;
	}
	/* The status byte: the writable area's last byte. */
	last = &c->seg[c->nread + c->nwrite - 1];
	status_gpa = last->gpa + last->len - 1;
	/* Guest value: the request header, copied once. */
	if (c->read_len < sizeof(h) || read_area(mem, c, 0, &h, sizeof(h))) {
		st = BLK_S_IOERR;
		goto answer;
	}
	h.type = le32toh(h.type);
	h.sector = le64toh(h.sector);
	switch (h.type) {
	case BLK_T_IN:
	case BLK_T_OUT:
		if (start_rw(b, vq, c, &h, h.type == BLK_T_IN, status_gpa, &st) == 0)
			return 0;
		break;
	case BLK_T_FLUSH:
		if (start_flush(b, vq, c, status_gpa, &st) == 0)
			return 0;
		break;
	case BLK_T_GET_ID:
		st = get_id(b, c, &used);
		break;
	default:
		/* Guest value: type; anything else is not supported. */
		dev_guest_err(dev->name, "request type %u not supported", h.type);
		st = BLK_S_UNSUPP;
	}
answer:
	if (st != BLK_S_OK)
		used = 1;
	(void)mem->write(mem->opaque, status_gpa, &st, 1);
	return vq_push_used(vq, c->head, used);
}

/* Pop and submit until the ring is empty.  Lock held. */
static int blk_queue_notify(struct virtio_dev *dev, struct virtqueue *vq)
{
	struct vq_chain *c = to_blk(dev)->chain;
	unsigned int answered = 0;
	int ret;

	do {
		while ((ret = vq_pop_chain(vq, c)) == 1) {
			uint16_t before = vq->st.used_idx;

			ret = dev->ops->submit(dev, vq, c);
			if (ret)
				break;
			answered += vq->st.used_idx != before;
		}
		if (ret < 0)
			break;
	} while (vq_enable_notify(vq));
	if (answered)
		dev->transport.used(dev->transport.opaque, vq);
	return ret < 0 ? ret : 0;
}

static int blk_save(struct virtio_dev *dev, void *buf, uint32_t len)
{
	struct blk *b = to_blk(dev);
	struct virtio_blk_state st;

	if (len < sizeof(st))
		return -ENOSPC;
	memset(&st, 0, sizeof(st));
	st.version = VIRTIO_BLK_STATE_VERSION;
	st.readonly = b->readonly;
	st.capacity = b->capacity;
	st.features = dev->features;
	memcpy(st.id, b->id, sizeof(st.id));
	memcpy(buf, &st, sizeof(st));
	return sizeof(st);
}

/* The state must describe this very disk: a clone's device is made from
 * the parent's (virtio_blk_fork), a snapshot's from the same file. */
static int blk_restore(struct virtio_dev *dev, const void *buf, uint32_t len, char *err,
		       size_t errlen)
{
	struct blk *b = to_blk(dev);
	struct virtio_blk_state st;

	if (len != sizeof(st)) {
		snprintf(err, errlen, "virtio-blk state: %u bytes, expected %zu", len, sizeof(st));
		return -EINVAL;
	}
	memcpy(&st, buf, sizeof(st));
	if (st.version != VIRTIO_BLK_STATE_VERSION) {
		snprintf(err, errlen, "virtio-blk state: version %u, expected %u", st.version,
			 VIRTIO_BLK_STATE_VERSION);
		return -EINVAL;
	}
	if (st.readonly > 1 || st.reserved) {
		snprintf(err, errlen, "virtio-blk state: readonly %u, reserved %u", st.readonly,
			 st.reserved);
		return -EINVAL;
	}
	if (st.capacity != b->capacity || st.readonly != b->readonly ||
	    st.features != dev->features || memcmp(st.id, b->id, sizeof(st.id))) {
		snprintf(err, errlen,
			 "virtio-blk state: capacity %llu sectors%s, features %#llx: not this disk "
			 "(%llu sectors%s, features %#llx)",
			 (unsigned long long)st.capacity, st.readonly ? " read-only" : "",
			 (unsigned long long)st.features, (unsigned long long)b->capacity,
			 b->readonly ? " read-only" : "", (unsigned long long)dev->features);
		return -EINVAL;
	}
	return 0;
}

static void blk_destroy(struct virtio_dev *dev)
{
	struct blk *b = to_blk(dev);

	/* The transport dropped every request first; close waits for nothing. */
	disk_close(b->disk);
	free(b->chain);
	free(b);
}

static const struct virtio_dev_ops blk_ops = {
	.config_read = blk_config_read,
	.queue_notify = blk_queue_notify,
	.submit = blk_submit,
	.finish = blk_finish,
	/* No .reset: the transport waits for the requests in flight and drops
	 * them; the device keeps nothing else per request. */
	.save = blk_save,
	.restore = blk_restore,
	.destroy = blk_destroy,
};

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

/* A device around @disk (taken on success); @id is NUL-padded. */
static int blk_new(struct disk *disk, bool readonly, uint64_t latency_ns,
		   const char id[BLK_ID_BYTES], struct virtio_dev **out)
{
	struct blk *b;
	uint64_t cap;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->chain = malloc(sizeof(*b->chain));
	if (!b->chain) {
		free(b);
		return -ENOMEM;
	}
	b->disk = disk;
	b->readonly = readonly;
	b->latency_ns = latency_ns;
	b->capacity = disk_size(disk) >> SECTOR_SHIFT;
	memcpy(b->id, id, BLK_ID_BYTES);

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
			    (readonly ? 1ull << BLK_F_RO : 0),
		.nqueues = 1,
		.queue_max = BLK_QUEUE_MAX,
		.config_size = BLK_CONFIG_SIZE,
	};
	*out = &b->vdev;
	return 0;
}

int virtio_blk_create(const struct virtio_blk_config *cfg, struct virtio_dev **out)
{
	struct disk_config dc;
	char id[BLK_ID_BYTES] = { 0 };
	char err[256];
	const char *base;
	struct disk *disk;
	int ret;

	if (!cfg || !cfg->path)
		return -EINVAL;
	dc = (struct disk_config){
		.path = cfg->path,
		.readonly = cfg->readonly,
		.latency_ns = cfg->latency_ns,
		.overlay = cfg->overlay,
	};
	if (cfg->id && strlen(cfg->id) > BLK_ID_BYTES)
		return -EINVAL;
	ret = disk_open(&dc, &disk, err, sizeof(err));
	if (ret)
		return ret;
	/* The ID: given, else the file's base name; NUL-padded, at most 20 bytes. */
	base = strrchr(cfg->path, '/');
	base = base ? base + 1 : cfg->path;
	if (cfg->id)
		base = cfg->id;
	memcpy(id, base, strnlen(base, sizeof(id)));
	ret = blk_new(disk, cfg->readonly, cfg->latency_ns, id, out);
	if (ret)
		disk_close(disk);
	return ret;
}

int virtio_blk_fork(struct virtio_dev *parent, struct virtio_dev **child)
{
	struct blk *b = to_blk(parent);
	struct disk *disk;
	int ret;

	if (!parent || parent->ops != &blk_ops)
		return -EINVAL;
	ret = disk_fork(b->disk, &disk);
	if (ret)
		return ret;
	ret = blk_new(disk, b->readonly, b->latency_ns, b->id, child);
	if (ret)
		disk_close(disk);
	return ret;
}

int virtio_blk_info(struct virtio_dev *dev, struct virtio_blk_info *out)
{
	struct blk *b = to_blk(dev);

	if (!dev || dev->ops != &blk_ops)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->disk = b->disk;
	out->readonly = b->readonly;
	out->latency_ns = b->latency_ns;
	memcpy(out->id, b->id, BLK_ID_BYTES);
	return 0;
}

const char *virtio_blk_engine(struct virtio_dev *dev)
{
	return disk_engine(to_blk(dev)->disk);
}
