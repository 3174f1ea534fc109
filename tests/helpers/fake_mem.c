// SPDX-License-Identifier: MIT
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/queue.h"
#include "tests/helpers/fake_mem.h"

#define FAKE_PAGE 4096u

static void count(unsigned int *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

static int range_check(const struct fake_mem *m, uint64_t gpa, uint64_t len)
{
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return -EINVAL;
	if (gpa < m->base || end > m->base + m->size)
		return -EFAULT;
	return 0;
}

static int fm_check(void *opaque, uint64_t gpa, uint64_t len)
{
	return range_check(opaque, gpa, len);
}

static int fm_read(void *opaque, uint64_t gpa, void *buf, size_t len)
{
	struct fake_mem *m = opaque;
	int ret = range_check(m, gpa, len);

	if (ret)
		return ret;
	count(&m->reads);
	memcpy(buf, m->buf + (gpa - m->base), len);
	return 0;
}

static int fm_write(void *opaque, uint64_t gpa, const void *buf, size_t len)
{
	struct fake_mem *m = opaque;
	int ret = range_check(m, gpa, len);

	if (ret)
		return ret;
	count(&m->writes);
	memcpy(m->buf + (gpa - m->base), buf, len);
	return 0;
}

/* One iovec per page touched, like a pin of scattered frames. */
static int fm_pin(void *opaque, uint64_t gpa, uint64_t len, bool write, struct dma_buf *out)
{
	struct fake_mem *m = opaque;
	unsigned int n, i;
	struct iovec *iov;
	uint64_t at, end;
	int ret = range_check(m, gpa, len);

	if (ret)
		return ret;
	n = (unsigned int)((gpa + len - 1) / FAKE_PAGE - gpa / FAKE_PAGE + 1);
	iov = calloc(n, sizeof(*iov));
	if (!iov)
		return -ENOMEM;
	end = gpa + len;
	for (i = 0, at = gpa; at < end; i++) {
		uint64_t next = (at / FAKE_PAGE + 1) * FAKE_PAGE;

		if (next > end)
			next = end;
		iov[i].iov_base = m->buf + (at - m->base);
		iov[i].iov_len = next - at;
		at = next;
	}
	out->niov = n;
	out->iov = iov;
	out->priv = iov;
	count(&m->pins);
	if (write)
		count(&m->write_pins);
	m->last_pin_thread = pthread_self();
	return 0;
}

static void fm_unpin(void *opaque, struct dma_buf *buf)
{
	struct fake_mem *m = opaque;

	free(buf->priv);
	buf->priv = NULL;
	buf->iov = NULL;
	buf->niov = 0;
	count(&m->unpins);
}

int fake_mem_init(struct fake_mem *m, uint64_t base, uint64_t size, bool with_check)
{
	memset(m, 0, sizeof(*m));
	m->buf = calloc(1, size);
	if (!m->buf)
		return -ENOMEM;
	m->base = base;
	m->size = size;
	m->gm = (struct guest_mem){
		.read = fm_read,
		.write = fm_write,
		.pin = fm_pin,
		.unpin = fm_unpin,
		.check = with_check ? fm_check : NULL,
		.opaque = m,
	};
	return 0;
}

void fake_mem_fini(struct fake_mem *m)
{
	free(m->buf);
	m->buf = NULL;
}

void *fake_mem_ptr(struct fake_mem *m, uint64_t gpa)
{
	if (gpa < m->base || gpa >= m->base + m->size)
		return NULL;
	return m->buf + (gpa - m->base);
}

bool fake_mem_pins_released(const struct fake_mem *m)
{
	return __atomic_load_n(&m->pins, __ATOMIC_SEQ_CST) ==
	       __atomic_load_n(&m->unpins, __ATOMIC_SEQ_CST);
}

uint8_t fake_mem_u8(struct fake_mem *m, uint64_t gpa)
{
	return *(uint8_t *)fake_mem_ptr(m, gpa);
}

void fake_mem_set_u8(struct fake_mem *m, uint64_t gpa, uint8_t v)
{
	*(uint8_t *)fake_mem_ptr(m, gpa) = v;
}

static void put16(struct fake_mem *m, uint64_t gpa, uint16_t v)
{
	v = htole16(v);
	memcpy(fake_mem_ptr(m, gpa), &v, 2);
}

static uint16_t get16(struct fake_mem *m, uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, fake_mem_ptr(m, gpa), 2);
	return le16toh(v);
}

void fake_vring_init(struct fake_vring *r, struct fake_mem *m, uint16_t num, uint64_t gpa)
{
	r->m = m;
	r->num = num;
	r->desc = gpa;
	r->avail = gpa + 16u * num;
	r->used = (r->avail + 6 + 2u * num + FAKE_PAGE - 1) & ~(uint64_t)(FAKE_PAGE - 1);
	r->avail_idx = 0;
}

void fake_vring_attach(const struct fake_vring *r, struct virtqueue *vq)
{
	vq->cfg.num = r->num;
	vq->cfg.desc_gpa = r->desc;
	vq->cfg.avail_gpa = r->avail;
	vq->cfg.used_gpa = r->used;
}

uint64_t fake_vring_end(const struct fake_vring *r)
{
	return r->used + 6 + 8u * r->num;
}

void fake_desc(struct fake_mem *m, uint64_t table, uint16_t idx, uint64_t addr, uint32_t len,
	       uint16_t flags, uint16_t next)
{
	uint8_t *p = fake_mem_ptr(m, table + 16u * idx);
	uint64_t a = htole64(addr);
	uint32_t l = htole32(len);
	uint16_t f = htole16(flags), n = htole16(next);

	memcpy(p, &a, 8);
	memcpy(p + 8, &l, 4);
	memcpy(p + 12, &f, 2);
	memcpy(p + 14, &n, 2);
}

void fake_vring_desc(struct fake_vring *r, uint16_t idx, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	fake_desc(r->m, r->desc, idx, addr, len, flags, next);
}

void fake_vring_publish(struct fake_vring *r, uint16_t head)
{
	put16(r->m, r->avail + 4 + 2u * (r->avail_idx % r->num), head);
	r->avail_idx++;
	put16(r->m, r->avail + 2, r->avail_idx);
}

void fake_vring_set_avail_idx(struct fake_vring *r, uint16_t idx)
{
	r->avail_idx = idx;
	put16(r->m, r->avail + 2, idx);
}

void fake_vring_set_avail_flags(struct fake_vring *r, uint16_t flags)
{
	put16(r->m, r->avail, flags);
}

void fake_vring_set_used_event(struct fake_vring *r, uint16_t v)
{
	put16(r->m, r->avail + 4 + 2u * r->num, v);
}

uint16_t fake_vring_avail_event(struct fake_vring *r)
{
	return get16(r->m, r->used + 4 + 8u * r->num);
}

uint16_t fake_vring_used_idx(struct fake_vring *r)
{
	return get16(r->m, r->used + 2);
}

void fake_vring_used(struct fake_vring *r, uint16_t i, uint32_t *id, uint32_t *len)
{
	uint8_t *p = fake_mem_ptr(r->m, r->used + 4 + 8u * (i % r->num));
	uint32_t v;

	memcpy(&v, p, 4);
	*id = le32toh(v);
	memcpy(&v, p + 4, 4);
	*len = le32toh(v);
}
