// SPDX-License-Identifier: MIT
/*
 * Taking a snapshot of a machine and building a machine from one.  The
 * pause is the clone's (machine_pause(): vCPUs at an instruction boundary,
 * devices held); what happens in it depends on the kind: a full snapshot
 * writes the memory there, a live one only forks it (space_fork()).
 */
#include "vmm/snapshot/snapshot.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/disk.h"
#include "devices/virtio/blk.h"
#include "mm/mm.h"
#include "vmm/board.h"
#include "vmm/disks.h"
#include "vmm/machine.h"
#include "vmm/machine_state.h"
#include "vmm/snapshot/lazy.h"
#include "vmm/uart.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* /proc/cpuinfo's first "model name", or "unknown". */
static void host_cpu_model(char *out, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];

	snprintf(out, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) || !colon)
			continue;
		colon++;
		colon += strspn(colon, " \t");
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(out, len, "%s", colon);
		break;
	}
	fclose(f);
}

static unsigned int cpuid_from_kvm(const struct kvm_cpuid2 *k, struct snap_cpuid *out)
{
	unsigned int i, n = k->nent < SNAP_MAX_CPUID ? k->nent : SNAP_MAX_CPUID;

	for (i = 0; i < n; i++) {
		const struct kvm_cpuid_entry2 *e = &k->entries[i];

		out[i] =
		    (struct snap_cpuid){ e->function, e->index, e->eax, e->ebx, e->ecx, e->edx };
	}
	return n;
}

/* ---- the CPU check ----------------------------------------------------------- */

/* The feature words: (leaf, subleaf, register), a mask of feature bits. */
struct feature_word {
	uint32_t function, index;
	unsigned int reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
	const char *reg_name;
};

static const struct feature_word feature_words[] = {
	{ 0x1, 0, 2, "ecx" }, { 0x1, 0, 3, "edx" },	   { 0x7, 0, 1, "ebx" },
	{ 0x7, 0, 2, "ecx" }, { 0x7, 0, 3, "edx" },	   { 0x7, 1, 0, "eax" },
	{ 0xd, 1, 0, "eax" }, { 0x80000001, 0, 2, "ecx" }, { 0x80000001, 0, 3, "edx" },
};

struct feature_name {
	uint32_t function, index;
	unsigned int reg, bit;
	const char *name;
};

static const struct feature_name feature_names[] = {
	{ 0x1, 0, 2, 0, "sse3" },	{ 0x1, 0, 2, 9, "ssse3" },
	{ 0x1, 0, 2, 12, "fma" },	{ 0x1, 0, 2, 19, "sse4.1" },
	{ 0x1, 0, 2, 20, "sse4.2" },	{ 0x1, 0, 2, 22, "movbe" },
	{ 0x1, 0, 2, 23, "popcnt" },	{ 0x1, 0, 2, 25, "aes" },
	{ 0x1, 0, 2, 26, "xsave" },	{ 0x1, 0, 2, 28, "avx" },
	{ 0x1, 0, 2, 29, "f16c" },	{ 0x1, 0, 2, 30, "rdrand" },
	{ 0x1, 0, 3, 25, "sse" },	{ 0x1, 0, 3, 26, "sse2" },
	{ 0x7, 0, 1, 3, "bmi1" },	{ 0x7, 0, 1, 5, "avx2" },
	{ 0x7, 0, 1, 8, "bmi2" },	{ 0x7, 0, 1, 9, "erms" },
	{ 0x7, 0, 1, 16, "avx512f" },	{ 0x7, 0, 1, 18, "rdseed" },
	{ 0x7, 0, 1, 19, "adx" },	{ 0x7, 0, 1, 29, "sha" },
	{ 0x7, 0, 2, 1, "avx512vbmi" }, { 0x7, 0, 3, 24, "amx-tile" },
	{ 0xd, 1, 0, 1, "xsavec" },	{ 0x80000001, 0, 2, 5, "lzcnt" },
};

static uint32_t reg_of(const struct snap_cpuid *e, unsigned int reg)
{
	const uint32_t r[4] = { e->eax, e->ebx, e->ecx, e->edx };

	return r[reg];
}

static const struct snap_cpuid *find_leaf(const struct snap_cpuid *v, unsigned int n,
					  uint32_t function, uint32_t index)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (v[i].function == function && v[i].index == index)
			return &v[i];
	}
	return NULL;
}

static const char *feature_name(const struct feature_word *w, unsigned int bit)
{
	unsigned int i;

	for (i = 0; i < sizeof(feature_names) / sizeof(feature_names[0]); i++) {
		const struct feature_name *f = &feature_names[i];

		if (f->function == w->function && f->index == w->index && f->reg == w->reg &&
		    f->bit == bit)
			return f->name;
	}
	return NULL;
}

unsigned int snap_cpuid_missing(const struct snap_cpuid *saved, unsigned int nsaved,
				const struct snap_cpuid *host, unsigned int nhost, char *out,
				size_t outlen)
{
	unsigned int i, bit, missing = 0;
	size_t used = 0;

	if (outlen)
		out[0] = '\0';
	for (i = 0; i < sizeof(feature_words) / sizeof(feature_words[0]); i++) {
		const struct feature_word *w = &feature_words[i];
		const struct snap_cpuid *s = find_leaf(saved, nsaved, w->function, w->index);
		const struct snap_cpuid *h = find_leaf(host, nhost, w->function, w->index);
		uint32_t lack;

		if (!s)
			continue;
		lack = reg_of(s, w->reg) & ~(h ? reg_of(h, w->reg) : 0);
		for (bit = 0; bit < 32; bit++) {
			const char *name;
			int n;

			if (!(lack & (1u << bit)))
				continue;
			name = feature_name(w, bit);
			if (name)
				n = snprintf(out + used, outlen - used, "%s%s", missing ? ", " : "",
					     name);
			else
				n = snprintf(out + used, outlen - used, "%scpuid 0x%x.%u %s bit %u",
					     missing ? ", " : "", w->function, w->index,
					     w->reg_name, bit);
			missing++;
			if (n > 0 && used + (size_t)n < outlen)
				used += (size_t)n;
		}
	}
	return missing;
}

/* ---- snapshot ------------------------------------------------------------------ */

/* Only devices whose whole state is in their saved section. */
static int check_snapshottable(struct machine *m, char *err, size_t errlen)
{
	unsigned int i;

	for (i = 0; i < m->ndevs; i++) {
		const struct device *d = &m->dev[i];

		if (d->ops->type_id == DEVICE_SERIAL)
			continue;
		if (d->ops->type_id == DEVICE_VIRTIO_BLK_MMIO && disk_device_virtio(d))
			continue;
		snprintf(err, errlen,
			 "cannot snapshot a VM with %s yet: device %u (%s) keeps state outside "
			 "guest memory",
			 d->ops->type_id == DEVICE_VIRTIO_BLK_MMIO ? "virtio disks" : "this device",
			 d->id, d->ops->type);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The disks, in device order (their MMIO windows' order): what restores them. */
static int fill_disks(struct machine *m, struct snap_manifest *man, char *err, size_t errlen)
{
	struct virtio_blk_info bi;
	unsigned int i;

	for (i = 0; i < m->ndevs; i++) {
		struct virtio_dev *v = disk_device_virtio(&m->dev[i]);
		struct snap_disk *d;

		if (!v)
			continue;
		if (man->ndisks == SNAP_MAX_DISKS || virtio_blk_info(v, &bi)) {
			snprintf(err, errlen, "device %u: not a disk a snapshot can hold",
				 m->dev[i].id);
			return -EINVAL;
		}
		d = &man->disk[man->ndisks++];
		d->dev_id = m->dev[i].id;
		d->readonly = bi.readonly;
		d->size = disk_size(bi.disk);
		d->latency_ns = bi.latency_ns;
		snprintf(d->id, sizeof(d->id), "%s", bi.id);
	}
	return 0;
}

/*
 * Paused: the disks as they are now.  A full snapshot writes them from the
 * disks themselves while the guest stays paused; the others fork each one
 * (its contents at the instant, nobody writes the fork) and write the fork.
 */
static int freeze_disks(struct machine *m, bool fork, struct disk **out, struct disk **orig,
			unsigned int *n, char *err, size_t errlen)
{
	struct virtio_blk_info bi;
	unsigned int i;
	int ret;

	for (i = 0; i < m->ndevs; i++) {
		struct virtio_dev *v = disk_device_virtio(&m->dev[i]);

		if (!v || virtio_blk_info(v, &bi))
			continue;
		orig[*n] = bi.disk;
		if (!fork) {
			out[(*n)++] = bi.disk;
			continue;
		}
		ret = disk_fork(bi.disk, &out[*n]);
		if (ret) {
			snprintf(err, errlen, "device %u: disk fork: %s", m->dev[i].id,
				 strerror(-ret));
			return ret;
		}
		(*n)++;
	}
	return 0;
}

static int fill_manifest(struct machine *m, enum snap_kind kind, struct snap_manifest *man,
			 char *err, size_t errlen)
{
	const struct space_range *r;
	unsigned int i, n;

	memset(man, 0, sizeof(*man));
	man->major = SNAP_FORMAT_MAJOR;
	man->minor = SNAP_FORMAT_MINOR;
	man->kind = kind;
	host_cpu_model(man->cpu_model, sizeof(man->cpu_model));
	man->ncpuid = cpuid_from_kvm(m->cpus.cpuid, man->cpuid);
	r = space_ranges(m->space, &n);
	if (n > SNAP_MAX_RANGES) {
		snprintf(err, errlen, "%u memory ranges, a snapshot holds %u", n, SNAP_MAX_RANGES);
		return -EINVAL;
	}
	for (i = 0; i < n; i++)
		man->range[i] = (struct snap_range){ r[i].gpa, r[i].size };
	man->nranges = n;
	man->mem_file_size = r[n - 1].gpa + r[n - 1].size;
	man->ncpus = m->cpus.n;
	man->policy = pool_policy(m->pool);
	for (i = 0; i < m->ndevs; i++)
		man->dev[i] = (struct snap_dev){ m->dev[i].id, m->dev[i].ops->type_id };
	man->ndevs = m->ndevs;
	return fill_disks(m, man, err, errlen);
}

void snap_base_free(struct snap_base *b)
{
	if (!b)
		return;
	space_destroy(b->frozen);
	free(b);
}

/* A diff goes next to its base: the manifest names the base, not its path. */
static int check_base(const struct snapshot_opts *o, char *err, size_t errlen)
{
	char a[PATH_MAX], b[PATH_MAX];

	if (!o->base || !o->base->frozen) {
		snprintf(err, errlen, "a diff snapshot needs a base snapshot taken in this run");
		return -EINVAL;
	}
	snprintf(a, sizeof(a), "%s", o->dir);
	snprintf(b, sizeof(b), "%s", o->base->dir);
	if (strcmp(dirname(a), dirname(b))) {
		snprintf(err, errlen, "a diff must be in its base's directory (%s)", o->base->dir);
		return -EINVAL;
	}
	return 0;
}

static int keep_base(const struct snapshot_opts *o, struct space **frozen, char *err, size_t errlen)
{
	struct snap_base *b = calloc(1, sizeof(*b));
	char copy[PATH_MAX];

	if (!b) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(b->dir, sizeof(b->dir), "%s", o->dir);
	snprintf(copy, sizeof(copy), "%s", o->dir);
	snprintf(b->name, sizeof(b->name), "%s", basename(copy));
	b->frozen = *frozen;
	*frozen = NULL;
	*o->keep = b;
	return 0;
}

int machine_snapshot(struct machine *m, const struct snapshot_opts *o, struct snapshot_timing *t,
		     char *err, size_t errlen)
{
	struct machine_state ms = { .buf = NULL };
	struct disk *disks[SNAP_MAX_DISKS] = { NULL }, *orig[SNAP_MAX_DISKS] = { NULL };
	unsigned int ndisks = 0, i;
	struct snapshot_timing local;
	struct space *frozen = NULL;
	struct snap_manifest *man;
	struct snap_write w;
	bool fork = o->kind != SNAP_FULL || o->keep;
	uint64_t t0;
	int ret;

	if (!t)
		t = &local;
	memset(t, 0, sizeof(*t));
	if (o->keep)
		*o->keep = NULL;
	if (o->kind != SNAP_FULL && o->kind != SNAP_LIVE && o->kind != SNAP_DIFF) {
		snprintf(err, errlen, "unknown snapshot kind %d", o->kind);
		return -EINVAL;
	}
	if (o->kind == SNAP_DIFF) {
		ret = check_base(o, err, errlen);
		if (ret)
			return ret;
	}
	ret = check_snapshottable(m, err, errlen);
	if (ret)
		return ret;
	man = calloc(1, sizeof(*man));
	if (!man)
		return -ENOMEM;
	ret = fill_manifest(m, o->kind, man, err, errlen);
	if (ret)
		goto out;
	if (o->kind == SNAP_DIFF)
		snprintf(man->base, sizeof(man->base), "%s", o->base->name);
	/* Everything allocated before the pause. */
	ret = mstate_init(&ms, machine_state_room(m));
	if (ret) {
		snprintf(err, errlen, "state buffer: %s", strerror(-ret));
		goto out;
	}

	t0 = now_ns();
	ret = machine_pause(m);
	if (ret) {
		snprintf(err, errlen, "the guest already stopped");
		goto out;
	}
	t->inflight = machine_inflight(m);
	ret = machine_save_state(m, &ms, err, errlen);
	if (!ret)
		ret = freeze_disks(m, o->kind != SNAP_FULL, disks, orig, &ndisks, err, errlen);
	if (!ret && fork) {
		/* The reference to every frame: the guest's writes copy away. */
		ret = space_fork(m->space, &frozen);
		if (ret)
			snprintf(err, errlen, "space_fork: %s", strerror(-ret));
	}
	if (ret || o->kind != SNAP_FULL) {
		machine_resume(m);
		t->paused_ns = now_ns() - t0;
		if (ret)
			goto out;
	}
	man->state = ms.buf;
	man->state_size = (uint32_t)mstate_size(&ms);
	w = (struct snap_write){
		.dir = o->dir,
		.man = man,
		.space = frozen ? frozen : m->space,
		.base = o->kind == SNAP_DIFF ? o->base->frozen : NULL,
		.disks = disks,
		.fail_after = o->fail_after,
	};
	t->ndisks = ndisks;
	ret = snap_store_write(&w, &t->w, err, errlen);
	if (o->kind == SNAP_FULL) {
		machine_resume(m);
		t->paused_ns = now_ns() - t0;
	}
	t->total_ns = now_ns() - t0;
	if (!ret && o->keep)
		ret = keep_base(o, &frozen, err, errlen);
out:
	/*
	 * The forks only: a full snapshot wrote the disks themselves.  Then the
	 * guest's disk gets its image back (what it wrote since the instant
	 * copied in), unless a clone shares the image (-EBUSY: it stays on its
	 * overlay, as a clone's parent does).
	 */
	for (i = 0; o->kind != SNAP_FULL && i < ndisks; i++) {
		disk_close(disks[i]);
		t->folded += disk_fold(orig[i]) == 0;
	}
	space_destroy(frozen);
	mstate_free(&ms);
	free(man);
	return ret;
}

/* ---- restore --------------------------------------------------------------------- */

/*
 * Disk @k of @dir: a virtio-blk on the file disk<k> at the k-th window, the
 * file never written (the restored guest's writes go to an overlay).
 */
static int add_disk(struct machine *m, const char *dir, const struct snap_disk *sd, unsigned int k,
		    char *err, size_t errlen)
{
	struct machine_disk md = {
		.readonly = sd->readonly,
		.latency_ns = sd->latency_ns,
		.id = sd->id,
		.overlay = true,
	};
	char path[PATH_MAX], name[16];
	int n, ret;

	snap_disk_name(k, name, sizeof(name));
	n = snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(err, errlen, "%s: name too long", dir);
		return -ENAMETOOLONG;
	}
	md.path = path;
	ret = disk_add(m, &md, board_virtio_base(k), board_virtio_gsi(k), err, errlen);
	if (!ret)
		m->ndisks++;
	return ret;
}

/* The devices of the manifest, in its order, with its ids; disks from @dir. */
static int add_devices(struct machine *m, const struct snap_manifest *man, const char *dir,
		       char *err, size_t errlen)
{
	unsigned int i, k = 0;
	int ret;

	for (i = 0; i < man->ndevs; i++) {
		const struct snap_dev *d = &man->dev[i];

		/* The next id is the one after the highest so far: make it @d's. */
		m->next_dev_id = d->id - 1;
		if (d->type == DEVICE_VIRTIO_BLK_MMIO) {
			/* The parse matched the k-th blk to /disks/disk<k>. */
			ret = add_disk(m, dir, &man->disk[k], k, err, errlen);
			k++;
		} else {
			ret = uart_add(m, err, errlen);
		}
		if (ret)
			return ret;
		if (m->dev[m->ndevs - 1].id != d->id) {
			snprintf(err, errlen, "device %u: could not be given its id", d->id);
			return -EINVAL;
		}
	}
	return 0;
}

static int check_cpu(struct machine *m, const struct snap_manifest *man, char *err, size_t errlen)
{
	struct snap_cpuid *host = calloc(SNAP_MAX_CPUID, sizeof(*host));
	char missing[384];
	unsigned int n;

	if (!host)
		return -ENOMEM;
	n = snap_cpuid_missing(man->cpuid, man->ncpuid, host, cpuid_from_kvm(m->cpus.cpuid, host),
			       missing, sizeof(missing));
	free(host);
	if (!n)
		return 0;
	snprintf(err, errlen, "this host's CPU lacks %u feature%s the guest saw (on %s): %s", n,
		 n == 1 ? "" : "s", man->cpu_model, missing);
	return -EOPNOTSUPP;
}

static int build(struct machine *m, const struct snap_loaded *l, const char *dir,
		 const struct restore_opts *o, char *err, size_t errlen)
{
	const struct snap_manifest *man = &l->man;
	struct space_range ranges[SNAP_MAX_RANGES];
	struct pool_config pcfg = { .policy = (enum mm_policy)man->policy };
	unsigned int i;
	int ret;

	/* What this VMM's machines are (machine_create()'s limits): RAM below
	 * the MMIO hole.  The format allows more; this forkvm restores these. */
	if (man->nranges != 1 || man->range[0].gpa != 0 || man->range[0].size < LAYOUT_MEM_MIN ||
	    man->range[0].size > LAYOUT_MEM_MAX) {
		snprintf(err, errlen,
			 "memory layout of %u range(s) from 0x%llx: this forkvm restores one "
			 "range at 0 of %llu MiB to %llu MiB",
			 man->nranges, (unsigned long long)man->range[0].gpa,
			 (unsigned long long)(LAYOUT_MEM_MIN >> 20),
			 (unsigned long long)(LAYOUT_MEM_MAX >> 20));
		return -EINVAL;
	}
	ret = kvm_open(&m->kvm, err, errlen);
	if (ret)
		return ret;
	ret = pool_create(&pcfg, &m->pool);
	if (ret) {
		snprintf(err, errlen, "guest memory pool: %s", strerror(-ret));
		return ret;
	}
	m->owns_pool = true;
	for (i = 0; i < man->nranges; i++)
		ranges[i] = (struct space_range){ man->range[i].gpa, man->range[i].size };
	ret = space_create(m->pool, ranges, man->nranges, &m->space);
	if (ret) {
		snprintf(err, errlen, "guest memory: %s", strerror(-ret));
		return ret;
	}
	ret = vm_create(&m->kvm, m->space, &m->vm, err, errlen);
	if (ret)
		return ret;
	m->vm_created = true;
	ret = machine_open_console(m, o->console, o->console_prefix, err, errlen);
	if (ret)
		return ret;
	ret = add_devices(m, man, dir, err, errlen);
	if (ret)
		return ret;
	ret = cpus_create(&m->vm, man->ncpus, &m->cpus, err, errlen);
	if (ret)
		return ret;
	m->cpus_created = true;
	m->cpus.print_results = !o->quiet_results;
	return check_cpu(m, man, err, errlen);
}

/* A diff's base: @dir's sibling @name. */
static int base_path(const char *dir, const char *name, char *out, size_t len)
{
	char copy[PATH_MAX];
	int n;

	snprintf(copy, sizeof(copy), "%s", dir);
	n = snprintf(out, len, "%s/%s", dirname(copy), name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static bool same_layout(const struct snap_manifest *a, const struct snap_manifest *b)
{
	return a->nranges == b->nranges &&
	       !memcmp(a->range, b->range, a->nranges * sizeof(a->range[0]));
}

/*
 * @dir and, for a diff, its bases down to a full or live snapshot: chain[0]
 * is @dir.  Return: how many were opened, or -errno with @err.
 */
static int open_chain(const char *dir, struct snap_loaded *chain, char (*paths)[PATH_MAX],
		      char *err, size_t errlen)
{
	unsigned int k;
	int ret;

	snprintf(paths[0], sizeof(paths[0]), "%s", dir);
	for (k = 0;; k++) {
		ret = snap_store_open(paths[k], &chain[k], err, errlen);
		if (ret)
			goto err;
		if (k && !same_layout(&chain[k].man, &chain[0].man)) {
			snprintf(err, errlen, "base %s: its memory layout is not the diff's",
				 paths[k]);
			ret = -EINVAL;
			k++;
			goto err;
		}
		if (chain[k].man.kind != SNAP_DIFF)
			return (int)k + 1;
		if (k == SNAP_CHAIN_MAX) {
			snprintf(err, errlen, "a chain of diffs longer than %u (a loop?)",
				 SNAP_CHAIN_MAX);
			ret = -ELOOP;
			k++;
			goto err;
		}
		if (base_path(paths[k], chain[k].man.base, paths[k + 1], sizeof(paths[k + 1]))) {
			snprintf(err, errlen, "%s: base name too long", paths[k]);
			ret = -ENAMETOOLONG;
			k++;
			goto err;
		}
	}

err:
	/* Each message names the snapshot (snap_store_open() gives its path). */
	while (k-- > 0)
		snap_store_close(&chain[k]);
	return ret;
}

int snapshot_restore(const char *dir, const struct restore_opts *o, struct machine **out,
		     struct restore_timing *t, char *err, size_t errlen)
{
	struct snap_loaded *chain = calloc(SNAP_CHAIN_MAX + 1, sizeof(*chain)), *l = chain;
	char(*paths)[PATH_MAX] = calloc(SNAP_CHAIN_MAX + 1, PATH_MAX);
	struct machine_state ms = { .buf = NULL };
	struct restore_timing local;
	struct machine *m;
	uint64_t t0 = now_ns(), pages;
	int ret, n = 0, k;

	if (!t)
		t = &local;
	memset(t, 0, sizeof(*t));
	if (!chain || !paths) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err_loaded;
	}
	n = open_chain(dir, chain, paths, err, errlen);
	if (n < 0) {
		ret = n;
		n = 0;
		goto err_loaded;
	}
	/* The state is used in place: a 64-byte aligned copy of the property. */
	ret = mstate_init(&ms, l->man.state_size);
	if (ret) {
		snprintf(err, errlen, "out of memory");
		goto err_loaded;
	}
	memset(ms.buf, 0, ms.cap);
	memcpy(ms.buf, l->man.state, l->man.state_size);
	ret = mstate_check(&ms, err, errlen);
	if (ret)
		goto err_loaded;
	t->open_ns = now_ns() - t0;

	t0 = now_ns();
	m = calloc(1, sizeof(*m));
	if (!m) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto err_loaded;
	}
	m->console_fd = -1;
	m->console_out = STDOUT_FILENO;
	/* calloc: every lock of the machine is a default mutex (glibc's all-zero). */
	m->kvm.fd = -1;
	/* The disks are the newest snapshot's (each snapshot holds them whole). */
	ret = build(m, l, paths[0], o, err, errlen);
	if (ret)
		goto err_machine;
	t->build_ns = now_ns() - t0;

	/* The oldest first: each diff overwrites what changed since its base. */
	t0 = now_ns();
	if (o->lazy && o->lazy->lazy) {
		ret = snap_lazy_memory(chain, n, dir, m->space, o->lazy, err, errlen);
		if (ret)
			goto err_machine;
		t->pages = o->lazy->lazy_pages;
	}
	for (k = n - 1; k >= 0 && !(o->lazy && o->lazy->lazy); k--) {
		ret = snap_store_load_memory(&chain[k], m->space, &pages, err, errlen);
		if (ret)
			goto err_machine;
		t->pages += pages;
	}
	t->memory_ns = now_ns() - t0;

	t0 = now_ns();
	ret = machine_restore_state(m, &ms, err, errlen);
	if (ret)
		goto err_machine;
	t->state_ns = now_ns() - t0;
	mstate_free(&ms);
	for (k = 0; k < n; k++)
		snap_store_close(&chain[k]);
	free(chain);
	free(paths);
	*out = m;
	return 0;

err_machine:
	machine_destroy(m);
err_loaded:
	mstate_free(&ms);
	for (k = 0; k < n; k++)
		snap_store_close(&chain[k]);
	free(chain);
	free(paths);
	return ret;
}
