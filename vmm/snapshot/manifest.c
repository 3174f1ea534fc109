// SPDX-License-Identifier: MIT
/*
 * The manifest as a device tree.  Cells are big-endian (FDT's rule); 64-bit
 * values are two cells, high first.  The machine state is one opaque
 * property in the host's byte order (its sections are x86-64 KVM structs).
 */
#include "vmm/snapshot/manifest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libfdt.h>

#include "mm/mm.h"
#include "vmm/device.h"

#define COMPATIBLE "forkvm,snapshot"

const char *snap_kind_name(enum snap_kind kind)
{
	switch (kind) {
	case SNAP_FULL:
		return "full";
	case SNAP_LIVE:
		return "live";
	case SNAP_DIFF:
		return "diff";
	}
	return "?";
}

/* ---- build ----------------------------------------------------------------- */

#define TRY(x)                           \
	do {                             \
		int try_ret_ = (x);      \
		if (try_ret_)            \
			return try_ret_; \
	} while (0)

static void put64(fdt32_t *c, uint64_t v)
{
	c[0] = cpu_to_fdt32((uint32_t)(v >> 32));
	c[1] = cpu_to_fdt32((uint32_t)v);
}

static int build_host(void *fdt, const struct snap_manifest *man)
{
	fdt32_t cells[SNAP_MAX_CPUID * 6];
	unsigned int i;

	TRY(fdt_begin_node(fdt, "host"));
	TRY(fdt_property_string(fdt, "cpu-model", man->cpu_model));
	for (i = 0; i < man->ncpuid; i++) {
		const struct snap_cpuid *e = &man->cpuid[i];

		cells[i * 6 + 0] = cpu_to_fdt32(e->function);
		cells[i * 6 + 1] = cpu_to_fdt32(e->index);
		cells[i * 6 + 2] = cpu_to_fdt32(e->eax);
		cells[i * 6 + 3] = cpu_to_fdt32(e->ebx);
		cells[i * 6 + 4] = cpu_to_fdt32(e->ecx);
		cells[i * 6 + 5] = cpu_to_fdt32(e->edx);
	}
	TRY(fdt_property(fdt, "cpuid", cells, man->ncpuid * 6 * sizeof(fdt32_t)));
	return fdt_end_node(fdt);
}

static int build_memory(void *fdt, const struct snap_manifest *man)
{
	fdt32_t cells[SNAP_MAX_RANGES * 4], v[2];
	unsigned int i;

	TRY(fdt_begin_node(fdt, "memory"));
	TRY(fdt_property_string(fdt, "file", SNAP_MEMORY_NAME));
	put64(v, man->mem_file_size);
	TRY(fdt_property(fdt, "file-size", v, sizeof(v)));
	put64(v, man->pages_present);
	TRY(fdt_property(fdt, "pages-present", v, sizeof(v)));
	if (man->kind == SNAP_DIFF)
		TRY(fdt_property_string(fdt, "base", man->base));
	for (i = 0; i < man->nranges; i++) {
		put64(&cells[i * 4], man->range[i].gpa);
		put64(&cells[i * 4 + 2], man->range[i].size);
	}
	TRY(fdt_property(fdt, "ranges", cells, man->nranges * 4 * sizeof(fdt32_t)));
	return fdt_end_node(fdt);
}

static int build_machine(void *fdt, const struct snap_manifest *man)
{
	fdt32_t cells[SNAP_MAX_DEVS * 2];
	unsigned int i;

	TRY(fdt_begin_node(fdt, "machine"));
	TRY(fdt_property_u32(fdt, "cpus", man->ncpus));
	TRY(fdt_property_u32(fdt, "mm-policy", man->policy));
	for (i = 0; i < man->ndevs; i++) {
		cells[i * 2] = cpu_to_fdt32(man->dev[i].id);
		cells[i * 2 + 1] = cpu_to_fdt32(man->dev[i].type);
	}
	TRY(fdt_property(fdt, "devices", cells, man->ndevs * 2 * sizeof(fdt32_t)));
	TRY(fdt_property(fdt, "state", man->state, man->state_size));
	return fdt_end_node(fdt);
}

void snap_disk_name(unsigned int i, char *buf, size_t len)
{
	snprintf(buf, len, "disk%u", i);
}

static int build_disks(void *fdt, const struct snap_manifest *man)
{
	unsigned int i;
	fdt32_t v[2];
	char name[16];

	if (!man->ndisks)
		return 0;
	TRY(fdt_begin_node(fdt, "disks"));
	for (i = 0; i < man->ndisks; i++) {
		const struct snap_disk *d = &man->disk[i];

		snap_disk_name(i, name, sizeof(name));
		TRY(fdt_begin_node(fdt, name));
		TRY(fdt_property_string(fdt, "file", name));
		TRY(fdt_property_u32(fdt, "device", d->dev_id));
		put64(v, d->size);
		TRY(fdt_property(fdt, "size", v, sizeof(v)));
		put64(v, d->blocks);
		TRY(fdt_property(fdt, "blocks-present", v, sizeof(v)));
		TRY(fdt_property_u32(fdt, "read-only", d->readonly));
		put64(v, d->latency_ns);
		TRY(fdt_property(fdt, "latency-ns", v, sizeof(v)));
		TRY(fdt_property_string(fdt, "id", d->id));
		TRY(fdt_end_node(fdt));
	}
	return fdt_end_node(fdt);
}

static int build(void *fdt, size_t cap, const struct snap_manifest *man)
{
	fdt32_t ver[2] = { cpu_to_fdt32(man->major), cpu_to_fdt32(man->minor) };

	TRY(fdt_create(fdt, (int)cap));
	TRY(fdt_finish_reservemap(fdt));
	TRY(fdt_begin_node(fdt, ""));
	TRY(fdt_property_string(fdt, "compatible", COMPATIBLE));
	TRY(fdt_property(fdt, "forkvm,format", ver, sizeof(ver)));
	TRY(fdt_property_string(fdt, "forkvm,kind", snap_kind_name(man->kind)));
	TRY(build_host(fdt, man));
	TRY(build_memory(fdt, man));
	TRY(build_machine(fdt, man));
	TRY(build_disks(fdt, man));
	TRY(fdt_end_node(fdt));
	return fdt_finish(fdt);
}

long snap_manifest_build(const struct snap_manifest *man, void *buf, size_t cap)
{
	int ret;

	if (cap > INT32_MAX || man->ncpuid > SNAP_MAX_CPUID || man->nranges > SNAP_MAX_RANGES ||
	    man->ndevs > SNAP_MAX_DEVS || man->state_size > SNAP_STATE_MAX ||
	    man->ndisks > SNAP_MAX_DISKS)
		return -EINVAL;
	ret = build(buf, cap, man);
	if (ret == -FDT_ERR_NOSPACE)
		return -ENOSPC;
	if (ret)
		return -EINVAL;
	return fdt_totalsize(buf);
}

/* ---- parse (untrusted) ----------------------------------------------------- */

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "manifest: %s", msg);
	return -EINVAL;
}

static uint64_t get64(const fdt32_t *c)
{
	return (uint64_t)fdt32_to_cpu(c[0]) << 32 | fdt32_to_cpu(c[1]);
}

/* A property of @node: its bytes, or NULL with @err naming it. */
static const void *prop(const void *fdt, int node, const char *path, const char *name, int *len,
			char *err, size_t errlen)
{
	const void *p = fdt_getprop(fdt, node, name, len);

	if (!p)
		bad(err, errlen, "%s/%s: missing", path, name);
	return p;
}

/* A property of exactly @want bytes. */
static const void *prop_len(const void *fdt, int node, const char *path, const char *name, int want,
			    char *err, size_t errlen)
{
	int len;
	const void *p = prop(fdt, node, path, name, &len, err, errlen);

	if (p && len != want) {
		bad(err, errlen, "%s/%s: %d bytes, expected %d", path, name, len, want);
		return NULL;
	}
	return p;
}

/* A terminated string of at most @max - 1 characters, copied into @out. */
static int prop_str(const void *fdt, int node, const char *path, const char *name, char *out,
		    size_t max, char *err, size_t errlen)
{
	int len;
	const char *p = prop(fdt, node, path, name, &len, err, errlen);

	if (!p)
		return -EINVAL;
	/* Guest-independent but untrusted: the terminator inside, no NUL before it. */
	if (len < 1 || (size_t)len > max || p[len - 1] != '\0' || strlen(p) != (size_t)len - 1)
		return bad(err, errlen, "%s/%s: not a string of at most %zu characters", path, name,
			   max - 1);
	memcpy(out, p, (size_t)len);
	return 0;
}

static int subnode(const void *fdt, const char *name, char *err, size_t errlen)
{
	int node = fdt_subnode_offset(fdt, 0, name);

	if (node < 0)
		return bad(err, errlen, "/%s: missing", name);
	return node;
}

static int parse_version(const void *fdt, struct snap_manifest *man, char *err, size_t errlen)
{
	const fdt32_t *ver;
	char compat[32];

	if (prop_str(fdt, 0, "", "compatible", compat, sizeof(compat), err, errlen))
		return -EINVAL;
	if (strcmp(compat, COMPATIBLE))
		return bad(err, errlen, "compatible '%s', expected '%s'", compat, COMPATIBLE);
	ver = prop_len(fdt, 0, "", "forkvm,format", 8, err, errlen);
	if (!ver)
		return -EINVAL;
	man->major = fdt32_to_cpu(ver[0]);
	man->minor = fdt32_to_cpu(ver[1]);
	if (man->major != SNAP_FORMAT_MAJOR) {
		snprintf(err, errlen,
			 "snapshot format %u.%u: this forkvm reads format %u.x (up to %u.%u and "
			 "later minor versions)",
			 man->major, man->minor, SNAP_FORMAT_MAJOR, SNAP_FORMAT_MAJOR,
			 SNAP_FORMAT_MINOR);
		return -EPROTONOSUPPORT;
	}
	return 0;
}

static int parse_kind(const void *fdt, struct snap_manifest *man, char *err, size_t errlen)
{
	char kind[8];

	if (prop_str(fdt, 0, "", "forkvm,kind", kind, sizeof(kind), err, errlen))
		return -EINVAL;
	if (!strcmp(kind, "full"))
		man->kind = SNAP_FULL;
	else if (!strcmp(kind, "live"))
		man->kind = SNAP_LIVE;
	else if (!strcmp(kind, "diff"))
		man->kind = SNAP_DIFF;
	else
		return bad(err, errlen, "forkvm,kind '%s': expected full, live or diff", kind);
	return 0;
}

static int parse_host(const void *fdt, struct snap_manifest *man, char *err, size_t errlen)
{
	const fdt32_t *c;
	unsigned int i;
	int node, len;

	node = subnode(fdt, "host", err, errlen);
	if (node < 0)
		return node;
	if (prop_str(fdt, node, "/host", "cpu-model", man->cpu_model, sizeof(man->cpu_model), err,
		     errlen))
		return -EINVAL;
	c = prop(fdt, node, "/host", "cpuid", &len, err, errlen);
	if (!c)
		return -EINVAL;
	if (len % 24 || (unsigned int)len / 24 > SNAP_MAX_CPUID)
		return bad(err, errlen, "/host/cpuid: %d bytes, expected up to %u entries of 24",
			   len, SNAP_MAX_CPUID);
	man->ncpuid = (unsigned int)len / 24;
	for (i = 0; i < man->ncpuid; i++) {
		struct snap_cpuid *e = &man->cpuid[i];

		e->function = fdt32_to_cpu(c[i * 6 + 0]);
		e->index = fdt32_to_cpu(c[i * 6 + 1]);
		e->eax = fdt32_to_cpu(c[i * 6 + 2]);
		e->ebx = fdt32_to_cpu(c[i * 6 + 3]);
		e->ecx = fdt32_to_cpu(c[i * 6 + 4]);
		e->edx = fdt32_to_cpu(c[i * 6 + 5]);
	}
	return 0;
}

static int parse_memory(const void *fdt, struct snap_manifest *man, char *err, size_t errlen)
{
	const fdt32_t *c, *v;
	uint64_t end = 0, total = 0;
	char file[16];
	unsigned int i;
	int node, len;

	node = subnode(fdt, "memory", err, errlen);
	if (node < 0)
		return node;
	/* A file name from the snapshot is never a path: only ours is accepted. */
	if (prop_str(fdt, node, "/memory", "file", file, sizeof(file), err, errlen))
		return -EINVAL;
	if (strcmp(file, SNAP_MEMORY_NAME))
		return bad(err, errlen, "/memory/file '%s': expected '%s'", file, SNAP_MEMORY_NAME);
	v = prop_len(fdt, node, "/memory", "file-size", 8, err, errlen);
	if (!v)
		return -EINVAL;
	man->mem_file_size = get64(v);
	v = prop_len(fdt, node, "/memory", "pages-present", 8, err, errlen);
	if (!v)
		return -EINVAL;
	man->pages_present = get64(v);
	if (man->kind == SNAP_DIFF) {
		if (prop_str(fdt, node, "/memory", "base", man->base, sizeof(man->base), err,
			     errlen))
			return -EINVAL;
		/* A name from the snapshot is never a path: a sibling directory only. */
		if (!man->base[0] || strchr(man->base, '/') || !strcmp(man->base, ".") ||
		    !strcmp(man->base, ".."))
			return bad(err, errlen, "/memory/base '%s': expected a directory name",
				   man->base);
	}
	c = prop(fdt, node, "/memory", "ranges", &len, err, errlen);
	if (!c)
		return -EINVAL;
	if (len == 0 || len % 16 || (unsigned int)len / 16 > SNAP_MAX_RANGES)
		return bad(err, errlen, "/memory/ranges: %d bytes, expected 1 to %u ranges of 16",
			   len, SNAP_MAX_RANGES);
	man->nranges = (unsigned int)len / 16;
	for (i = 0; i < man->nranges; i++) {
		struct snap_range *r = &man->range[i];
		uint64_t r_end;

		r->gpa = get64(&c[i * 4]);
		r->size = get64(&c[i * 4 + 2]);
		/* Untrusted: aligned, non-empty, no wrap, sorted, under the cap. */
		if (r->gpa % MM_PAGE_SIZE || r->size % MM_PAGE_SIZE || !r->size)
			return bad(err, errlen,
				   "/memory/ranges[%u]: 0x%llx+0x%llx is not page-aligned and "
				   "non-empty",
				   i, (unsigned long long)r->gpa, (unsigned long long)r->size);
		if (__builtin_add_overflow(r->gpa, r->size, &r_end) || r->gpa < end ||
		    __builtin_add_overflow(total, r->size, &total) || total > SNAP_MEM_MAX)
			return bad(err, errlen,
				   "/memory/ranges[%u]: 0x%llx+0x%llx overflows, overlaps or "
				   "exceeds %llu GiB",
				   i, (unsigned long long)r->gpa, (unsigned long long)r->size,
				   (unsigned long long)(SNAP_MEM_MAX >> 30));
		end = r_end;
	}
	if (man->mem_file_size != end)
		return bad(err, errlen,
			   "/memory/file-size %llu does not match the layout, which ends at %llu",
			   (unsigned long long)man->mem_file_size, (unsigned long long)end);
	if (man->pages_present > total / MM_PAGE_SIZE)
		return bad(err, errlen, "/memory/pages-present %llu: the layout has %llu pages",
			   (unsigned long long)man->pages_present,
			   (unsigned long long)(total / MM_PAGE_SIZE));
	return 0;
}

static int parse_devices(const void *fdt, int node, struct snap_manifest *man, char *err,
			 size_t errlen)
{
	const fdt32_t *c;
	unsigned int i, j;
	int len;

	c = prop(fdt, node, "/machine", "devices", &len, err, errlen);
	if (!c)
		return -EINVAL;
	if (len % 8 || (unsigned int)len / 8 > SNAP_MAX_DEVS)
		return bad(err, errlen, "/machine/devices: %d bytes, expected up to %u pairs of 8",
			   len, SNAP_MAX_DEVS);
	man->ndevs = (unsigned int)len / 8;
	for (i = 0; i < man->ndevs; i++) {
		struct snap_dev *d = &man->dev[i];

		d->id = fdt32_to_cpu(c[i * 2]);
		d->type = fdt32_to_cpu(c[i * 2 + 1]);
		if (!d->id || (d->type != DEVICE_SERIAL && d->type != DEVICE_VIRTIO_BLK_MMIO))
			return bad(err, errlen, "/machine/devices[%u]: id %u type %u unknown", i,
				   d->id, d->type);
		for (j = 0; j < i; j++) {
			if (man->dev[j].id == d->id)
				return bad(err, errlen, "/machine/devices: id %u twice", d->id);
		}
	}
	return 0;
}

static int parse_machine(const void *fdt, struct snap_manifest *man, char *err, size_t errlen)
{
	const fdt32_t *c;
	const void *st;
	int node, len;

	node = subnode(fdt, "machine", err, errlen);
	if (node < 0)
		return node;
	c = prop_len(fdt, node, "/machine", "cpus", 4, err, errlen);
	if (!c)
		return -EINVAL;
	man->ncpus = fdt32_to_cpu(*c);
	if (man->ncpus < 1 || man->ncpus > SNAP_MAX_CPUS)
		return bad(err, errlen, "/machine/cpus %u: expected 1 to %u", man->ncpus,
			   SNAP_MAX_CPUS);
	c = prop_len(fdt, node, "/machine", "mm-policy", 4, err, errlen);
	if (!c)
		return -EINVAL;
	man->policy = fdt32_to_cpu(*c);
	if (man->policy > MM_POLICY_NOPIN)
		return bad(err, errlen, "/machine/mm-policy %u unknown", man->policy);
	if (parse_devices(fdt, node, man, err, errlen))
		return -EINVAL;
	st = prop(fdt, node, "/machine", "state", &len, err, errlen);
	if (!st)
		return -EINVAL;
	if (len < 64 || (unsigned int)len > SNAP_STATE_MAX)
		return bad(err, errlen, "/machine/state: %d bytes, expected 64 to %u", len,
			   SNAP_STATE_MAX);
	man->state = st;
	man->state_size = (uint32_t)len;
	return 0;
}

static int parse_disk(const void *fdt, int node, unsigned int i, struct snap_disk *d, char *err,
		      size_t errlen)
{
	char path[32], name[16], file[16];
	const fdt32_t *c;

	snap_disk_name(i, name, sizeof(name));
	snprintf(path, sizeof(path), "/disks/%s", name);
	/* A file name from the snapshot is never a path: only disk<i> is accepted. */
	if (prop_str(fdt, node, path, "file", file, sizeof(file), err, errlen))
		return -EINVAL;
	if (strcmp(file, name))
		return bad(err, errlen, "%s/file '%s': expected '%s'", path, file, name);
	c = prop_len(fdt, node, path, "device", 4, err, errlen);
	if (!c)
		return -EINVAL;
	d->dev_id = fdt32_to_cpu(*c);
	c = prop_len(fdt, node, path, "size", 8, err, errlen);
	if (!c)
		return -EINVAL;
	d->size = get64(c);
	if (!d->size || d->size % 512 || d->size > SNAP_DISK_MAX)
		return bad(err, errlen, "%s/size %llu: expected a multiple of 512, 512 to %llu",
			   path, (unsigned long long)d->size, (unsigned long long)SNAP_DISK_MAX);
	c = prop_len(fdt, node, path, "blocks-present", 8, err, errlen);
	if (!c)
		return -EINVAL;
	d->blocks = get64(c);
	if (d->blocks > (d->size + 4095) / 4096)
		return bad(err, errlen, "%s/blocks-present %llu: the disk has %llu blocks", path,
			   (unsigned long long)d->blocks,
			   (unsigned long long)((d->size + 4095) / 4096));
	c = prop_len(fdt, node, path, "read-only", 4, err, errlen);
	if (!c)
		return -EINVAL;
	d->readonly = fdt32_to_cpu(*c);
	if (d->readonly > 1)
		return bad(err, errlen, "%s/read-only %u: expected 0 or 1", path, d->readonly);
	c = prop_len(fdt, node, path, "latency-ns", 8, err, errlen);
	if (!c)
		return -EINVAL;
	d->latency_ns = get64(c);
	if (d->latency_ns > SNAP_LATENCY_MAX)
		return bad(err, errlen, "%s/latency-ns %llu: at most %llu", path,
			   (unsigned long long)d->latency_ns, SNAP_LATENCY_MAX);
	if (prop_str(fdt, node, path, "id", d->id, sizeof(d->id), err, errlen))
		return -EINVAL;
	return 0;
}

/* 1.2: one disk per virtio-blk device, in the devices' order. */
static int parse_disks(const void *fdt, struct snap_manifest *man, char *err, size_t errlen)
{
	int disks = fdt_subnode_offset(fdt, 0, "disks"), node;
	unsigned int i, k = 0;

	if (disks >= 0) {
		fdt_for_each_subnode(node, fdt, disks)
		{
			char want[16];
			const char *name = fdt_get_name(fdt, node, NULL);

			if (man->ndisks == SNAP_MAX_DISKS)
				return bad(err, errlen, "/disks: more than %u disks",
					   SNAP_MAX_DISKS);
			snap_disk_name(man->ndisks, want, sizeof(want));
			if (!name || strcmp(name, want))
				return bad(err, errlen, "/disks/%s: expected %s", name ? name : "?",
					   want);
			if (parse_disk(fdt, node, man->ndisks, &man->disk[man->ndisks], err,
				       errlen))
				return -EINVAL;
			man->ndisks++;
		}
	}
	for (i = 0; i < man->ndevs; i++) {
		if (man->dev[i].type != DEVICE_VIRTIO_BLK_MMIO)
			continue;
		if (k == man->ndisks)
			return bad(err, errlen,
				   "/machine/devices[%u]: virtio disk %u has no /disks entry", i,
				   man->dev[i].id);
		if (man->disk[k].dev_id != man->dev[i].id)
			return bad(err, errlen,
				   "/disks/disk%u/device %u: expected %u, the virtio disk at "
				   "/machine/devices[%u]",
				   k, man->disk[k].dev_id, man->dev[i].id, i);
		k++;
	}
	if (k != man->ndisks)
		return bad(err, errlen, "/disks: %u disks for %u virtio-blk devices", man->ndisks,
			   k);
	return 0;
}

int snap_manifest_parse(const void *blob, size_t size, struct snap_manifest *man, char *err,
			size_t errlen)
{
	int ret;

	memset(man, 0, sizeof(*man));
	if (size < sizeof(struct fdt_header) || size > SNAP_MANIFEST_MAX)
		return bad(err, errlen, "%zu bytes, expected %zu to %u", size,
			   sizeof(struct fdt_header), SNAP_MANIFEST_MAX);
	if (fdt_magic(blob) != FDT_MAGIC)
		return bad(err, errlen, "not a device tree (magic 0x%08x, expected 0x%08x)",
			   fdt_magic(blob), FDT_MAGIC);
	/* A header that claims more than the file holds is a truncated file. */
	if (fdt_totalsize(blob) != size)
		return bad(err, errlen, "the tree says %u bytes, the file has %zu (truncated?)",
			   fdt_totalsize(blob), size);
	ret = fdt_check_full(blob, size);
	if (ret)
		return bad(err, errlen, "corrupt device tree: %s", fdt_strerror(ret));
	ret = parse_version(blob, man, err, errlen);
	if (ret)
		return ret;
	if (parse_kind(blob, man, err, errlen) || parse_host(blob, man, err, errlen) ||
	    parse_memory(blob, man, err, errlen) || parse_machine(blob, man, err, errlen) ||
	    parse_disks(blob, man, err, errlen))
		return -EINVAL;
	return 0;
}
