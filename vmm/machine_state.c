// SPDX-License-Identifier: MIT
/* The aggregate machine state: sections in one buffer, and their framing check. */
#include "vmm/machine_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/machine.h"
#include "vmm/vcpu_state.h"
#include "vmm/vm_state.h"

_Static_assert(sizeof(struct mstate_header) == MSTATE_ALIGN, "header is one alignment unit");
_Static_assert(sizeof(struct mstate_section) == MSTATE_ALIGN, "section header is one unit");

static size_t pad(size_t n)
{
	return (n + MSTATE_ALIGN - 1) & ~(size_t)(MSTATE_ALIGN - 1);
}

size_t mstate_room(size_t size)
{
	return sizeof(struct mstate_section) + pad(size);
}

int mstate_init(struct machine_state *ms, size_t cap)
{
	struct mstate_header *h;

	cap = pad(cap < sizeof(*h) ? sizeof(*h) : cap);
	ms->buf = aligned_alloc(MSTATE_ALIGN, cap);
	if (!ms->buf)
		return -ENOMEM;
	ms->cap = cap;
	h = (struct mstate_header *)ms->buf;
	memset(h, 0, sizeof(*h));
	h->magic = MSTATE_MAGIC;
	h->version = MSTATE_VERSION;
	h->size = sizeof(*h);
	return 0;
}

void mstate_free(struct machine_state *ms)
{
	free(ms->buf);
	ms->buf = NULL;
	ms->cap = 0;
}

size_t mstate_size(const struct machine_state *ms)
{
	return ((const struct mstate_header *)ms->buf)->size;
}

void *mstate_add(struct machine_state *ms, uint32_t kind, uint32_t id, uint32_t type, uint32_t size)
{
	struct mstate_header *h = (struct mstate_header *)ms->buf;
	struct mstate_section *s;

	if (size > MSTATE_SECTION_MAX || h->size + mstate_room(size) > ms->cap)
		return NULL;
	s = (struct mstate_section *)(ms->buf + h->size);
	memset(s, 0, mstate_room(size));
	s->kind = kind;
	s->id = id;
	s->type = type;
	s->size = size;
	h->size += mstate_room(size);
	h->nsections++;
	return s + 1;
}

static const struct mstate_section *next_section(const struct machine_state *ms, size_t *off)
{
	const struct mstate_section *s = (const struct mstate_section *)(ms->buf + *off);

	*off += mstate_room(s->size);
	return s;
}

int mstate_check(const struct machine_state *ms, char *err, size_t errlen)
{
	const struct mstate_header *h = (const struct mstate_header *)ms->buf;
	size_t off = sizeof(*h), i, j, off2;

	if (!ms->buf || ms->cap < sizeof(*h) || h->magic != MSTATE_MAGIC) {
		snprintf(err, errlen, "machine state: bad magic");
		return -EINVAL;
	}
	if (h->version != MSTATE_VERSION) {
		snprintf(err, errlen, "machine state: version %u, this forkvm reads version %u",
			 h->version, MSTATE_VERSION);
		return -EINVAL;
	}
	/* Guest-independent but untrusted: a snapshot file will fill it. */
	if (h->size < sizeof(*h) || h->size > ms->cap || h->size % MSTATE_ALIGN) {
		snprintf(err, errlen, "machine state: size %llu outside its buffer of %zu",
			 (unsigned long long)h->size, ms->cap);
		return -EINVAL;
	}
	for (i = 0; i < h->nsections; i++) {
		const struct mstate_section *s;

		if (off + sizeof(*s) > h->size) {
			snprintf(err, errlen, "machine state: section %zu of %u past the end", i,
				 h->nsections);
			return -EINVAL;
		}
		s = (const struct mstate_section *)(ms->buf + off);
		if (s->size > MSTATE_SECTION_MAX || off + mstate_room(s->size) > h->size) {
			snprintf(err, errlen, "machine state: section %zu: size %llu too large", i,
				 (unsigned long long)s->size);
			return -EINVAL;
		}
		if (s->kind < MSTATE_VM || s->kind > MSTATE_DEVICE) {
			snprintf(err, errlen, "machine state: section %zu: unknown kind %u", i,
				 s->kind);
			return -EINVAL;
		}
		/* Sections are few (vCPUs + devices): a quadratic check is fine. */
		off2 = sizeof(*h);
		for (j = 0; j < i; j++) {
			const struct mstate_section *t = next_section(ms, &off2);

			if (t->kind == s->kind && t->id == s->id) {
				snprintf(err, errlen,
					 "machine state: two sections of kind %u id %u", s->kind,
					 s->id);
				return -EINVAL;
			}
		}
		off += mstate_room(s->size);
	}
	if (off != h->size) {
		snprintf(err, errlen, "machine state: %llu bytes after the last section",
			 (unsigned long long)(h->size - off));
		return -EINVAL;
	}
	return 0;
}

const void *mstate_find(const struct machine_state *ms, uint32_t kind, uint32_t id, uint32_t *type,
			uint32_t *size)
{
	const struct mstate_header *h = (const struct mstate_header *)ms->buf;
	size_t off = sizeof(*h);
	uint32_t i;

	for (i = 0; i < h->nsections; i++) {
		const struct mstate_section *s = next_section(ms, &off);

		if (s->kind != kind || s->id != id)
			continue;
		if (type)
			*type = s->type;
		if (size)
			*size = (uint32_t)s->size;
		return s + 1;
	}
	return NULL;
}

/* ---- a machine's state in sections ----------------------------------------- */

size_t machine_state_room(struct machine *m)
{
	size_t room = sizeof(struct mstate_header);
	unsigned int i;

	room += mstate_room(sizeof(struct vm_state));
	room += m->cpus.n * mstate_room(sizeof(struct vcpu_state));
	for (i = 0; i < m->ndevs; i++) {
		const struct device *d = &m->dev[i];

		if (d->ops->state_size)
			room += mstate_room(d->ops->state_size(d->obj));
	}
	return room;
}

int machine_save_state(struct machine *m, struct machine_state *ms, char *err, size_t errlen)
{
	struct vm_state *vs;
	unsigned int i;
	int ret;

	/* Firecracker's order: the VM's devices (irqchip, PIT, clock) first. */
	vs = mstate_add(ms, MSTATE_VM, 0, 0, sizeof(*vs));
	if (!vs)
		goto no_room;
	ret = vm_save_state(&m->vm, vs);
	if (ret) {
		snprintf(err, errlen, "irqchip/PIT/clock state: %s", strerror(-ret));
		return ret;
	}
	for (i = 0; i < m->cpus.n; i++) {
		struct vcpu_state *st = mstate_add(ms, MSTATE_VCPU, i, 0, sizeof(*st));

		if (!st)
			goto no_room;
		ret = vcpu_save_state(&m->cpus.vcpu[i], st);
		if (ret) {
			snprintf(err, errlen, "vCPU %u state: %s", i, strerror(-ret));
			return ret;
		}
	}
	for (i = 0; i < m->ndevs; i++) {
		const struct device *d = &m->dev[i];
		uint32_t size;
		void *buf;

		if (!d->ops->state_size || !d->ops->save)
			continue;
		size = d->ops->state_size(d->obj);
		buf = mstate_add(ms, MSTATE_DEVICE, d->id, d->ops->type_id, size);
		if (!buf)
			goto no_room;
		ret = d->ops->save(d->obj, buf, size);
		if (ret) {
			snprintf(err, errlen, "%s (device %u) state: %s", d->ops->type, d->id,
				 strerror(-ret));
			return ret;
		}
	}
	return 0;

no_room:
	snprintf(err, errlen, "machine state: buffer of %zu bytes too small", ms->cap);
	return -ENOSPC;
}

int machine_restore_state(struct machine *m, const struct machine_state *ms, char *err,
			  size_t errlen)
{
	const struct vm_state *vs;
	uint32_t type, size;
	unsigned int i;
	int ret;

	ret = mstate_check(ms, err, errlen);
	if (ret)
		return ret;
	vs = mstate_find(ms, MSTATE_VM, 0, NULL, &size);
	if (!vs || size != sizeof(*vs)) {
		snprintf(err, errlen, "machine state: no VM section of %zu bytes", sizeof(*vs));
		return -EINVAL;
	}
	ret = vm_restore_state(&m->vm, vs);
	if (ret) {
		snprintf(err, errlen, "irqchip/PIT/clock state: %s", strerror(-ret));
		return ret;
	}
	for (i = 0; i < m->cpus.n; i++) {
		const struct vcpu_state *st = mstate_find(ms, MSTATE_VCPU, i, NULL, &size);

		if (!st || size != sizeof(*st)) {
			snprintf(err, errlen, "machine state: no vCPU %u section of %zu bytes", i,
				 sizeof(*st));
			return -EINVAL;
		}
		ret = vcpu_restore_state(&m->cpus.vcpu[i], st);
		if (ret) {
			snprintf(err, errlen, "vCPU %u state: %s", i, strerror(-ret));
			return ret;
		}
	}
	for (i = 0; i < m->ndevs; i++) {
		const struct device *d = &m->dev[i];
		const void *buf;

		if (!d->ops->restore)
			continue;
		buf = mstate_find(ms, MSTATE_DEVICE, d->id, &type, &size);
		if (!buf) {
			snprintf(err, errlen, "machine state: no section for %s (device %u)",
				 d->ops->type, d->id);
			return -EINVAL;
		}
		if (type != d->ops->type_id) {
			snprintf(err, errlen,
				 "machine state: device %u is a %s (type %u), the state is of "
				 "type %u",
				 d->id, d->ops->type, d->ops->type_id, type);
			return -EINVAL;
		}
		ret = d->ops->restore(d->obj, buf, size, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}
