// SPDX-License-Identifier: MIT
/*
 * The control API's backend over a family of machines.  Every op runs on
 * the API server's thread (api_backend.h), so the pause flags below need no
 * lock; the family's own worker (guest forks) and family_wait() run
 * concurrently and take the family's locks inside family_*().
 *
 * Machines are used through references (family_get(), machine_put()): a
 * VM killed here is reaped (family_reap()) and its machine freed at once,
 * the template too, while its clones run on the family's pool.  States are
 * the machines' own (machine_life()): "paused" also while a clone or a
 * snapshot pauses it for a moment.
 *
 * Known limits:
 * - A VM paused through the API is resumed only through it (paused[]), and
 *   its clone is refused (-EBUSY): machine_clone() pauses and resumes the
 *   parent itself.  A guest fork queued just before an API pause has the
 *   same effect.
 * - COW copies, reuses, faults and pins are counted per pool (the family),
 *   not per VM: a VM's own figures are null, the family's are given.
 */
#include "vmm/api/backend_machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/cpus.h"
#include "vmm/family.h"
#include "vmm/machine.h"
#include "vmm/snapshot/snapshot.h"

#define KILL_STATUS CPUS_STATUS_GUEST_CRASH

struct api_machine_backend {
	struct family *f;
	char *console; /* NULL: stdout */
	bool paused[FAMILY_MAX_VMS]; /* paused through the API */
	/* Each VM's kept snapshot ("keep":true), the base a diff names. */
	struct snap_base *base[FAMILY_MAX_VMS];
};

int api_machine_backend_create(struct family *f, const char *console,
			       struct api_machine_backend **out)
{
	struct api_machine_backend *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->f = f;
	if (console) {
		b->console = strdup(console);
		if (!b->console) {
			free(b);
			return -ENOMEM;
		}
	}
	*out = b;
	return 0;
}

void api_machine_backend_destroy(struct api_machine_backend *b)
{
	unsigned int i;

	if (!b)
		return;
	/* Before the family: a kept base holds frames of its pool. */
	for (i = 0; i < FAMILY_MAX_VMS; i++)
		snap_base_free(b->base[i]);
	free(b->console);
	free(b);
}

/*
 * VM @id's machine, a reference (machine_put() it), or NULL with *@ret:
 * -ENOENT no such VM, -ESRCH no machine (not made, or reaped: stopped).
 */
static struct machine *vm_get(struct api_machine_backend *b, uint32_t id, int *ret)
{
	*ret = -ENOENT;
	if (id >= family_size(b->f))
		return NULL;
	*ret = -ESRCH;
	return family_get(b->f, id);
}

/* vm_get(), and not stopped: else NULL and -ESRCH. */
static struct machine *running_vm(struct api_machine_backend *b, uint32_t id, int *ret)
{
	struct machine *m = vm_get(b, id, ret);

	if (m && machine_life(m) == MACHINE_STOPPED) {
		machine_put(m);
		*ret = -ESRCH;
		return NULL;
	}
	return m;
}

static const enum api_vm_state api_states[] = {
	[MACHINE_CREATED] = API_VM_CREATED,
	[MACHINE_RUNNING] = API_VM_RUNNING,
	[MACHINE_PAUSED] = API_VM_PAUSED,
	[MACHINE_STOPPED] = API_VM_STOPPED,
};

/* VM @id's info; @m its machine or NULL. */
static void fill_info(struct family_member *mb, struct machine *m, uint32_t id,
		      struct api_vm_info *vi)
{
	*vi = (struct api_vm_info){
		.id = id,
		.parent = mb->from,
		.has_parent = id != 0,
		.guest_fork = mb->guest_fork,
	};
	if (m) {
		vi->state = api_states[machine_life(m)];
		if (vi->state == API_VM_STOPPED) {
			vi->exit_status = machine_exit_status(m);
		}
	} else if (mb->pending) {
		vi->state = API_VM_CREATED; /* a guest fork's child, being made */
	} else {
		/* Reaped (its status recorded), or a clone that could not be made. */
		vi->state = API_VM_STOPPED;
		vi->exit_status = mb->reaped ? mb->status : CPUS_STATUS_HOST_ERROR;
	}
}

static int m_list(void *ctx, struct api_vm_info *out, size_t max, size_t *n)
{
	struct api_machine_backend *b = ctx;
	unsigned int size = family_size(b->f), id;
	struct family_member *mb;
	struct machine *m;

	*n = 0;
	for (id = 0; id < size && *n < max; id++) {
		mb = family_member(b->f, id);
		if (!mb)
			continue;
		m = family_get(b->f, id);
		fill_info(mb, m, id, &out[(*n)++]);
		machine_put(m);
	}
	return 0;
}

static int m_get(void *ctx, uint32_t id, struct api_vm_info *info, struct api_vm_stats *st)
{
	struct api_machine_backend *b = ctx;
	struct family_member *mb;
	struct space_stats ss;
	struct machine *m;
	int ret;

	if (id >= family_size(b->f) || !(mb = family_member(b->f, id)))
		return -ENOENT;
	m = vm_get(b, id, &ret);
	fill_info(mb, m, id, info);
	*st = (struct api_vm_stats){
		.pages = API_STAT_NONE,
		.private_frames = API_STAT_NONE,
		.shared_frames = API_STAT_NONE,
		.pinned_frames = API_STAT_NONE,
		.cow_copies = API_STAT_NONE,
		.cow_reuses = API_STAT_NONE,
		.faults = API_STAT_NONE,
		.inflight = API_STAT_NONE,
		.vmas = API_STAT_NONE,
	};
	if (m) {
		space_get_stats(machine_space(m), &ss);
		st->inflight = machine_inflight(m);
		machine_put(m);
	} else if (mb->reaped) {
		ss = mb->sst; /* as it was when it stopped */
	} else {
		return 0;
	}
	st->pages = ss.pages;
	st->shared_frames = ss.shared;
	st->private_frames = ss.present - ss.shared;
	st->vmas = ss.vmas;
	return 0;
}

static int m_pause(void *ctx, uint32_t id)
{
	struct api_machine_backend *b = ctx;
	struct machine *m;
	int ret;

	m = running_vm(b, id, &ret);
	if (!m)
		return ret;
	ret = b->paused[id] ? -EALREADY : machine_pause(m);
	if (!ret)
		b->paused[id] = true;
	machine_put(m);
	return ret;
}

static int m_resume(void *ctx, uint32_t id)
{
	struct api_machine_backend *b = ctx;
	struct machine *m;
	int ret;

	m = vm_get(b, id, &ret);
	if (!m)
		return ret;
	if (!b->paused[id]) {
		ret = machine_life(m) == MACHINE_STOPPED ? -ESRCH : -EALREADY;
	} else {
		machine_resume(m);
		b->paused[id] = false;
		ret = 0;
	}
	machine_put(m);
	return ret;
}

/* Stop @m (VM @id) for good; the API's pause undone first. */
static void stop_vm(struct api_machine_backend *b, uint32_t id, struct machine *m,
		    const char *reason)
{
	/* Release held devices and parked vCPUs first: they leave by running. */
	if (b->paused[id]) {
		machine_resume(m);
		b->paused[id] = false;
	}
	machine_stop(m, KILL_STATUS, reason);
}

/*
 * Stop VM @id and let its machine go (family_reap()): its memory is freed
 * now, also for the template, whose clones run on with the family's pool.
 */
static int m_kill(void *ctx, uint32_t id)
{
	struct api_machine_backend *b = ctx;
	struct machine *m;
	int ret;

	m = running_vm(b, id, &ret);
	if (!m)
		return ret;
	stop_vm(b, id, m, "killed through the control API");
	ret = family_reap(b->f, id);
	/* Ours is the last reference unless family_wait() holds one. */
	machine_put(m);
	/* Reaped by another meanwhile: it is gone all the same. */
	return ret == -ESRCH ? 0 : ret;
}

void api_machine_backend_stop_all(struct api_machine_backend *b, const char *reason)
{
	unsigned int id, n = family_size(b->f);
	struct machine *m;

	for (id = 0; id < n; id++) {
		m = family_get(b->f, id);
		if (m && machine_life(m) != MACHINE_STOPPED)
			stop_vm(b, id, m, reason);
		machine_put(m);
	}
}

static int m_clone(void *ctx, uint32_t id, unsigned int count, uint32_t *ids, unsigned int *made,
		   char *err, size_t errlen)
{
	struct api_machine_backend *b = ctx;
	struct machine *m;
	unsigned int i, child;
	int ret;

	*made = 0;
	m = running_vm(b, id, &ret);
	if (!m)
		return ret;
	machine_put(m); /* family_clone() finds it again */
	if (b->paused[id]) {
		snprintf(err, errlen, "VM %u is paused through the API: resume it first", id);
		return -EBUSY;
	}
	for (i = 0; i < count; i++) {
		ret = family_clone(b->f, id, &child, err, errlen);
		if (ret == -ENOSPC && !*err)
			snprintf(err, errlen, "the family is full");
		if (ret == -ENOSPC)
			return ret;
		/* A failed clone still took an id (a stopped member): name it. */
		ids[(*made)++] = child;
		if (ret)
			return ret;
	}
	return 0;
}

static const enum snap_kind snap_kinds[] = {
	[API_SNAPSHOT_FULL] = SNAP_FULL,
	[API_SNAPSHOT_LIVE] = SNAP_LIVE,
	[API_SNAPSHOT_DIFF] = SNAP_DIFF,
};

static uint64_t us_of(uint64_t ns)
{
	return ns / 1000;
}

static int snapshot_vm(struct api_machine_backend *b, uint32_t id, struct machine *m,
		       const struct api_snapshot_req *rq, struct api_snapshot_result *res,
		       char *err, size_t errlen)
{
	struct snap_base *kept = NULL;
	struct snapshot_opts o = { .dir = rq->dir };
	struct snapshot_timing t;
	int ret;

	if ((unsigned int)rq->kind >= sizeof(snap_kinds) / sizeof(snap_kinds[0]))
		return -EINVAL;
	/* The server's working directory is not the client's. */
	if (rq->dir[0] != '/') {
		snprintf(err, errlen, "dir '%s': not an absolute path", rq->dir);
		return -EINVAL;
	}
	if (rq->kind == API_SNAPSHOT_DIFF) {
		if (!b->base[id]) {
			snprintf(err, errlen,
				 "VM %u has no kept snapshot: take one with \"keep\":true first",
				 id);
			return -EINVAL;
		}
		if (!rq->base || strcmp(rq->base, b->base[id]->dir)) {
			snprintf(err, errlen, "base '%s' is not VM %u's kept snapshot (%s)",
				 rq->base ? rq->base : "", id, b->base[id]->dir);
			return -EINVAL;
		}
		o.base = b->base[id];
	}
	o.kind = snap_kinds[rq->kind];
	o.keep = rq->keep ? &kept : NULL;
	ret = machine_snapshot(m, &o, &t, err, errlen);
	/* A missing parent directory is a value refused, not "no such VM". */
	if (ret == -ENOENT)
		ret = -EINVAL;
	if (ret)
		return ret;
	if (rq->keep) {
		/* One base per VM: the one a diff just used goes now. */
		snap_base_free(b->base[id]);
		b->base[id] = kept;
	}
	*res = (struct api_snapshot_result){
		.paused_us = us_of(t.paused_ns),
		.total_us = us_of(t.total_ns),
		.pages = t.w.pages,
		.disk_bytes = t.w.disk_bytes,
	};
	return 0;
}

/*
 * machine_snapshot() of VM @id.  No family lock: a clone or guest fork of
 * the same VM meanwhile nests its pause in the snapshot's (machine_pause()).
 */
static int m_snapshot(void *ctx, uint32_t id, const struct api_snapshot_req *rq,
		      struct api_snapshot_result *res, char *err, size_t errlen)
{
	struct api_machine_backend *b = ctx;
	struct machine *m;
	int ret;

	m = running_vm(b, id, &ret);
	if (!m)
		return ret;
	ret = snapshot_vm(b, id, m, rq, res, err, errlen);
	machine_put(m);
	return ret;
}

/* The last @lines lines of the file @path into @buf. */
static int tail_file(const char *path, unsigned int lines, char *buf, size_t buflen, size_t *len)
{
	struct stat st;
	off_t off;
	ssize_t n;
	size_t i, start;
	unsigned int seen = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*len = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno; /* nothing written yet */
	if (fstat(fd, &st)) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	off = st.st_size > (off_t)buflen ? st.st_size - (off_t)buflen : 0;
	n = pread(fd, buf, buflen, off);
	if (n < 0)
		n = -errno; /* before close() can change errno */
	close(fd);
	if (n < 0)
		return (int)n;
	/* Back from the end: the start of the last @lines lines. */
	start = 0;
	for (i = (size_t)n; i > 0; i--) {
		if (buf[i - 1] == '\n' && i != (size_t)n && ++seen == lines) {
			start = i;
			break;
		}
	}
	/* Read from the middle of the file: drop the partial first line. */
	if (!start && off) {
		char *nl = memchr(buf, '\n', (size_t)n);

		start = nl ? (size_t)(nl - buf) + 1 : (size_t)n;
	}
	memmove(buf, buf + start, (size_t)n - start);
	*len = (size_t)n - start;
	return 0;
}

static int m_console(void *ctx, uint32_t id, unsigned int lines, char *buf, size_t buflen,
		     size_t *len)
{
	struct api_machine_backend *b = ctx;
	char path[4200];

	if (id >= family_size(b->f))
		return -ENOENT;
	if (!b->console)
		return -EOPNOTSUPP;
	if (id)
		snprintf(path, sizeof(path), "%s.%u", b->console, id);
	else
		snprintf(path, sizeof(path), "%s", b->console);
	return tail_file(path, lines, buf, buflen, len);
}

static int m_family(void *ctx, struct api_family_stats *st)
{
	struct api_machine_backend *b = ctx;
	unsigned int size = family_size(b->f), id;
	struct pool_stats ps;
	struct machine *m;

	*st = (struct api_family_stats){
		.vms = size,
		.frames_used = API_STAT_NONE,
		.frames_total = API_STAT_NONE,
		.bytes_resident = API_STAT_NONE,
		.vmas = API_STAT_NONE,
		.cow_copies = API_STAT_NONE,
		.cow_reuses = API_STAT_NONE,
		.faults = API_STAT_NONE,
		.pinned_frames = API_STAT_NONE,
	};
	for (id = 0; id < size; id++) {
		m = family_get(b->f, id);
		st->running += m && machine_life(m) != MACHINE_STOPPED;
		machine_put(m);
	}
	/* The family's pool: there even when VM 0 is gone. */
	pool_get_stats(family_pool(b->f), &ps);
	st->frames_used = ps.live_frames;
	st->cow_copies = ps.copies;
	st->cow_reuses = ps.reuses;
	st->faults = ps.faults;
	st->pinned_frames = ps.pinned_frames;
	return 0;
}

const struct api_backend_ops api_machine_ops = {
	.list = m_list,
	.get = m_get,
	.pause = m_pause,
	.resume = m_resume,
	.kill = m_kill,
	.clone = m_clone,
	.snapshot = m_snapshot,
	.console = m_console,
	.family = m_family,
};
