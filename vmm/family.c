// SPDX-License-Identifier: MIT
/*
 * A parent and its live clones: ids, consoles, the clone worker that serves
 * guest forks, waiting for all, the report of `forkvm run`.
 *
 * Locks: f->lock protects the member count, the request queue and the
 * worker's state; f->clone_lock serializes clones (the worker's and
 * family_clone()'s), so one machine is never paused by two clones at once.
 * Order: clone_lock, then lock; a machine's cpus->lock is never held while
 * either is taken, and its life lock (machine_pause(), machine_life()) is
 * never taken with lock held: a vCPU that asks for a guest fork takes lock
 * while machine_pause() holds the life lock waiting for it to park.
 */
#include "vmm/family.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "devices/time.h"
#include "guest/abi.h"
#include "vmm/api/api_run.h"
#include "vmm/cli.h"

#define FAMILY_HOST_ERROR 1
/* Without --clone-after: how long to wait for the guest's clone line. */
#define FIRST_LINE_WAIT_MS 60000u
/* Fork requests waiting for the worker; more are answered FORK_FAILED. */
#define FAMILY_QUEUE 256u
/* Child VMs built ahead: two VMs forking at once both find one ready. */
#define FAMILY_SPARES 2u

struct fork_req {
	unsigned int from;
	unsigned int vcpu;
};

/* What a member's fork hook points at. */
struct hook_ctx {
	struct family *f;
	unsigned int id;
};

struct family {
	struct family_config fc;
	unsigned int max_vms;
	pthread_mutex_t clone_lock;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a request queued, one served, or quit */
	/* Under lock: */
	unsigned int n; /* ids taken */
	unsigned int qhead, qlen;
	struct fork_req queue[FAMILY_QUEUE];
	bool busy; /* the worker is serving a request */
	bool quit;
	struct machine *spare[FAMILY_SPARES]; /* child VMs built ahead (machine_clone_spare) */
	unsigned int nspare;
	bool spare_failed; /* building one failed: do not retry in a loop */
	bool worker_started;
	unsigned int fork_failures;
	pthread_t worker;
	struct hook_ctx hook[FAMILY_MAX_VMS];
	struct family_member vm[FAMILY_MAX_VMS];
	struct pool_stats after_clone; /* family_run's report */
	/* The family's frame pool: every machine holds a reference, the family
	 * too, so that they may go in any order (family_reap()). */
	struct pool_ref *pool;
	int notify_fd; /* under lock: written when a member's machine is made; -1: none */
};

static void fork_request(void *opaque, struct cpus *c, unsigned int vcpu)
{
	struct hook_ctx *h = opaque;
	struct family *f = h->f;
	bool queued = false;

	pthread_mutex_lock(&f->lock);
	if (!f->quit && f->qlen < FAMILY_QUEUE) {
		f->queue[(f->qhead + f->qlen++) % FAMILY_QUEUE] =
		    (struct fork_req){ .from = h->id, .vcpu = vcpu };
		queued = true;
		pthread_cond_broadcast(&f->cond);
	} else {
		f->fork_failures++;
	}
	pthread_mutex_unlock(&f->lock);
	if (!queued) {
		fprintf(stderr, "forkvm: guest fork by VM %u refused: too many requests pending\n",
			h->id);
		cpus_fork_done(c, vcpu, FORK_FAILED);
	}
}

void family_restore_after_parent_line(struct machine *parent, void *arg)
{
	unsigned long lines = machine_console_lines(parent);

	(void)arg;
	/* No line in time (the parent failed): restore anyway. */
	(void)machine_wait_console(parent, lines + 1, 10000);
}

/* A guest fork's answer to its parent: given once, at the parent's resume. */
struct fork_answer {
	struct cpus *cpus; /* the parent's */
	unsigned int vcpu; /* the one that asked */
	const unsigned int *id; /* the child's */
	bool given;
};

static void answer_parent(void *arg)
{
	struct fork_answer *a = arg;

	a->given = true;
	cpus_fork_done(a->cpus, a->vcpu, *a->id);
}

/*
 * Clone VM @from into the next id; @answer (a guest fork, else NULL) is
 * given as soon as the parent runs again.  Context: clone_lock held.
 */
static int clone_member(struct family *f, unsigned int from, struct fork_answer *answer,
			unsigned int *id, char *err, size_t errlen)
{
	bool guest_fork = answer != NULL;
	struct clone_config cc = { .quiet_results = true, .guest_fork = guest_fork };
	struct machine *parent = f->vm[from].m;
	struct family_member *mb;
	struct machine *child = NULL;
	struct clone_timing t;
	char prefix[32];
	int ret;

	pthread_mutex_lock(&f->lock);
	if (f->n >= f->max_vms) {
		pthread_mutex_unlock(&f->lock);
		snprintf(err, errlen, "the family has %u VMs, its limit", f->max_vms);
		return -ENOSPC;
	}
	*id = f->n++;
	mb = &f->vm[*id];
	memset(mb, 0, sizeof(*mb));
	mb->id = *id;
	mb->from = from;
	mb->guest_fork = guest_fork;
	mb->pending = true;
	pthread_mutex_unlock(&f->lock);

	snprintf(prefix, sizeof(prefix), "[clone %u] ", *id);
	cc.console_prefix = prefix;
	if (f->fc.cfg.console) {
		snprintf(mb->console, sizeof(mb->console), "%s.%u", f->fc.cfg.console, *id);
		cc.console = mb->console;
	}
	f->hook[*id] = (struct hook_ctx){ .f = f, .id = *id };
	cc.fork_hook = (struct cpus_fork_hook){ .request = fork_request, .opaque = &f->hook[*id] };
	if (answer) {
		answer->id = id;
		cc.parent_resumed = answer_parent;
		cc.parent_resumed_arg = answer;
		cc.before_restore = f->fc.before_restore;
		cc.before_restore_arg = f->fc.before_restore_arg;
	}
	pthread_mutex_lock(&f->lock);
	cc.spare = f->nspare ? f->spare[--f->nspare] : NULL;
	/* The worker builds the next one once idle. */
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	if (parent) {
		ret = machine_clone(parent, &cc, &child, &t, err, errlen);
	} else {
		machine_destroy(cc.spare);
		snprintf(err, errlen, "VM %u was never made or is gone", from);
		ret = -ESRCH;
	}

	if (!ret)
		machine_share_pool(child, f->pool);
	pthread_mutex_lock(&f->lock);
	mb->m = ret ? NULL : child;
	mb->pending = false;
	if (f->notify_fd >= 0 && write(f->notify_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
		perror("forkvm: family notify");
	pthread_cond_broadcast(&f->cond); /* family_wait() may wait for it */
	mb->t = ret ? (struct clone_timing){ 0 } : t;
	if (ret)
		mb->status = FAMILY_HOST_ERROR;
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static void serve(struct family *f, const struct fork_req *rq)
{
	struct fork_answer answer = { .vcpu = rq->vcpu };
	struct machine *parent;
	unsigned int id = 0;
	char err[512];
	int ret;

	/* Under clone_lock the parent cannot be reaped (family_reap()). */
	pthread_mutex_lock(&f->clone_lock);
	parent = f->vm[rq->from].m;
	if (!parent) {
		/* Stopped and reaped since it asked: nobody to answer. */
		pthread_mutex_unlock(&f->clone_lock);
		pthread_mutex_lock(&f->lock);
		f->fork_failures++;
		pthread_mutex_unlock(&f->lock);
		return;
	}
	machine_get(parent);
	answer.cpus = machine_cpus(parent);
	ret = clone_member(f, rq->from, &answer, &id, err, sizeof(err));
	pthread_mutex_unlock(&f->clone_lock);
	if (ret) {
		/* Given an id already, the parent sees a child that died at once. */
		if (answer.given)
			fprintf(stderr,
				"forkvm: guest fork by VM %u: VM %u could not be started: %s\n",
				rq->from, id, err);
		else
			fprintf(stderr, "forkvm: guest fork by VM %u failed: %s\n", rq->from, err);
		pthread_mutex_lock(&f->lock);
		f->fork_failures++;
		pthread_mutex_unlock(&f->lock);
	} else if (!f->fc.quiet) {
		const struct clone_timing *t = &f->vm[id].t;

		printf("forkvm: VM %u forked VM %u: parent paused %.2f ms (vCPUs %.2f, memory fork "
		       "%.2f, state %.2f, devices %.2f), %u device requests in flight\n",
		       rq->from, id, t->paused_ns / 1e6, t->vcpus_ns / 1e6, t->fork_ns / 1e6,
		       t->save_ns / 1e6, t->devices_ns / 1e6, t->inflight);
		fflush(stdout);
	}
	if (!answer.given)
		cpus_fork_done(machine_cpus(parent), rq->vcpu, ret ? FORK_FAILED : id);
	machine_put(parent);
}

/* Idle, and the next clone would have to build its VM.  Context: f->lock held. */
static bool should_build_spare(const struct family *f)
{
	/* A request waits: serve it first. */
	if (f->qlen || f->quit)
		return false;
	/* Enough are ready, or building one just failed (the clone will say why). */
	if (f->nspare == FAMILY_SPARES || f->spare_failed)
		return false;
	/* No clone can come any more. */
	if (f->n + f->nspare >= f->max_vms)
		return false;
	/* A family that has cloned will clone again; one with disks must catch
	 * its requests in flight at the first fork already.  Others (most
	 * runs never fork) do not pay for a VM they may not use. */
	return f->n > 1 || f->fc.cfg.ndisks > 0;
}

/*
 * The clone worker: serves fork requests in order and, while idle, builds
 * the next child's VM and vCPUs ahead, so that a guest fork waits for the
 * pause only: the requests it has in flight are still in flight then.
 */
static void *worker(void *arg)
{
	struct family *f = arg;
	struct machine *spare;
	struct fork_req rq;
	char err[256];

	pthread_mutex_lock(&f->lock);
	for (;;) {
		if (should_build_spare(f)) {
			pthread_mutex_unlock(&f->lock);
			spare = NULL;
			if (machine_clone_spare(f->fc.cfg.ncpus, &spare, err, sizeof(err)))
				spare = NULL;
			pthread_mutex_lock(&f->lock);
			if (spare)
				f->spare[f->nspare++] = spare;
			f->spare_failed = !spare;
			continue;
		}
		while (!f->quit && !f->qlen && !should_build_spare(f))
			pthread_cond_wait(&f->cond, &f->lock);
		if (f->quit)
			break;
		if (!f->qlen)
			continue;
		rq = f->queue[f->qhead];
		f->qhead = (f->qhead + 1) % FAMILY_QUEUE;
		f->qlen--;
		f->busy = true;
		pthread_mutex_unlock(&f->lock);
		serve(f, &rq);
		pthread_mutex_lock(&f->lock);
		f->busy = false;
		f->spare_failed = false;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* A family around @m (made by the caller, or by machine_create() if NULL). */
static int family_make(const struct family_config *fc, struct machine *m, struct family **out,
		       char *err, size_t errlen)
{
	pthread_condattr_t attr;
	struct family *f;
	int ret;

	if (fc->max_vms > FAMILY_MAX_VMS) {
		snprintf(err, errlen, "a family has at most %u VMs", FAMILY_MAX_VMS);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->fc = *fc;
	f->max_vms = fc->max_vms ? fc->max_vms : FAMILY_MAX_VMS;
	f->notify_fd = -1;
	pthread_mutex_init(&f->clone_lock, NULL);
	pthread_mutex_init(&f->lock, NULL);
	/* family_wait() waits against CLOCK_MONOTONIC. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &attr);
	pthread_condattr_destroy(&attr);

	if (m) {
		f->vm[0].m = m;
	} else {
		ret = machine_create(&f->fc.cfg, &f->vm[0].m, err, errlen);
		if (ret) {
			family_destroy(f);
			return ret;
		}
	}
	ret = pool_ref_create(machine_pool(f->vm[0].m), &f->pool);
	if (ret) {
		snprintf(err, errlen, "out of memory");
		if (m) /* the caller still owns it */
			f->vm[0].m = NULL;
		family_destroy(f);
		return ret;
	}
	machine_share_pool(f->vm[0].m, f->pool);
	f->n = 1;
	f->hook[0] = (struct hook_ctx){ .f = f, .id = 0 };
	machine_set_fork_hook(
	    f->vm[0].m, (struct cpus_fork_hook){ .request = fork_request, .opaque = &f->hook[0] });
	*out = f;
	return 0;
}

int family_create(const struct family_config *fc, struct family **out, char *err, size_t errlen)
{
	return family_make(fc, NULL, out, err, errlen);
}

int family_adopt(const struct family_config *fc, struct machine *m, struct family **out, char *err,
		 size_t errlen)
{
	struct family_config c = *fc;
	const struct space_range *r;
	unsigned int n, i;

	/* What the family reads of its parent's configuration. */
	r = space_ranges(machine_space(m), &n);
	c.cfg.mem_size = 0;
	for (i = 0; i < n; i++)
		c.cfg.mem_size += r[i].size;
	c.cfg.ncpus = machine_ncpus(m);
	c.cfg.ndisks = machine_ndisks(m);
	return family_make(&c, m, out, err, errlen);
}

int family_start(struct family *f)
{
	int ret;

	ret = -pthread_create(&f->worker, NULL, worker, f);
	if (ret)
		return ret;
	f->worker_started = true;
	return machine_start(f->vm[0].m);
}

int family_clone(struct family *f, unsigned int from, unsigned int *id, char *err, size_t errlen)
{
	int ret;

	if (from >= family_size(f)) {
		snprintf(err, errlen, "no VM %u in the family", from);
		return -EINVAL;
	}
	pthread_mutex_lock(&f->clone_lock);
	ret = clone_member(f, from, NULL, id, err, errlen);
	pthread_mutex_unlock(&f->clone_lock);
	return ret;
}

unsigned int family_size(struct family *f)
{
	unsigned int n;

	pthread_mutex_lock(&f->lock);
	n = f->n;
	pthread_mutex_unlock(&f->lock);
	return n;
}

struct family_member *family_member(struct family *f, unsigned int id)
{
	return id < family_size(f) ? &f->vm[id] : NULL;
}

struct machine *family_parent(struct family *f)
{
	return f->vm[0].m;
}

struct machine *family_get(struct family *f, unsigned int id)
{
	struct machine *m = NULL;

	pthread_mutex_lock(&f->lock);
	if (id < f->n && f->vm[id].m)
		m = machine_get(f->vm[id].m);
	pthread_mutex_unlock(&f->lock);
	return m;
}

void family_set_notify(struct family *f, int fd)
{
	pthread_mutex_lock(&f->lock);
	f->notify_fd = fd;
	pthread_mutex_unlock(&f->lock);
}

struct pool *family_pool(struct family *f)
{
	return pool_ref_pool(f->pool);
}

/* What the report needs of a stopped member, read from @m. */
static void record_member(struct family_member *mb, struct machine *m, int status)
{
	mb->status = status;
	mb->has_result = machine_last_result(m, &mb->result);
	snprintf(mb->reason, sizeof(mb->reason), "%s", machine_stop_reason(m));
	space_get_stats(machine_space(m), &mb->sst);
}

int family_reap(struct family *f, unsigned int id)
{
	struct family_member *mb;
	struct machine *m;
	int status;

	/* clone_lock: no clone of it is in progress, none starts after, and
	 * only the holder of clone_lock sets a made member's machine to NULL. */
	pthread_mutex_lock(&f->clone_lock);
	mb = family_member(f, id);
	m = mb ? mb->m : NULL;
	/* Not under f->lock: a machine's life lock never is (machine_pause()
	 * holds it while it waits for vCPUs that may wait for f->lock). */
	if (!m || machine_life(m) != MACHINE_STOPPED) {
		pthread_mutex_unlock(&f->clone_lock);
		return !mb ? -ENOENT : !m ? -ESRCH : -EBUSY;
	}
	status = machine_exit_status(m);
	pthread_mutex_lock(&f->lock);
	record_member(mb, m, status);
	mb->m = NULL;
	mb->reaped = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_mutex_unlock(&f->clone_lock);
	/* The family's reference: the machine goes now unless a caller holds
	 * one (family_wait(), an API call), then with that caller's. */
	machine_put(m);
	return 0;
}

unsigned int family_fork_failures(struct family *f)
{
	unsigned int n;

	pthread_mutex_lock(&f->lock);
	n = f->fork_failures;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for member @id to stop and record it; a reaped one is recorded already. */
static void wait_member(struct family *f, unsigned int id, unsigned int timeout_ms)
{
	struct machine *m = family_get(f, id);
	int status;

	if (!m)
		return;
	status = machine_wait(m, timeout_ms);
	pthread_mutex_lock(&f->lock);
	if (!f->vm[id].reaped)
		record_member(&f->vm[id], m, status);
	pthread_mutex_unlock(&f->lock);
	machine_put(m);
}

int family_wait(struct family *f, unsigned int timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	unsigned int i = 0, n;
	struct timespec ts;
	uint64_t left;

	for (;;) {
		left = timeout_ms ? (deadline > now_ms() ? deadline - now_ms() : 1) : 0;
		pthread_mutex_lock(&f->lock);
		n = f->n;
		if (i == n && !f->qlen && !f->busy) {
			pthread_mutex_unlock(&f->lock);
			break;
		}
		/*
		 * A fork is being served: a member may come.  Or member i is
		 * still being made (a guest fork answers its parent before its
		 * child is restored, so the parent may end first): wait for it.
		 */
		if (i == n || f->vm[i].pending) {
			deadline_after_ms(&ts, 1000);
			pthread_cond_timedwait(&f->cond, &f->lock, &ts);
			pthread_mutex_unlock(&f->lock);
			continue;
		}
		pthread_mutex_unlock(&f->lock);
		wait_member(f, i, (unsigned int)left);
		i++;
	}
	for (i = 0; i < n; i++) {
		if (f->vm[i].status)
			return f->vm[i].status;
	}
	return 0;
}

void family_destroy(struct family *f)
{
	unsigned int i;

	if (!f)
		return;
	if (f->worker_started) {
		pthread_mutex_lock(&f->lock);
		f->quit = true;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
		pthread_join(f->worker, NULL);
	}
	for (i = 0; i < f->nspare; i++)
		machine_destroy(f->spare[i]);
	/* Each machine holds the pool by reference: any order would do. */
	for (i = f->n; i-- > 0;)
		machine_put(f->vm[i].m);
	pool_ref_put(f->pool);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->clone_lock);
	free(f);
}

/* ---- forkvm run --------------------------------------------------------- */

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	       (uint64_t)((now.tv_nsec - t0->tv_nsec) / 1000000);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* --pause-test N: pause, check the state of every vCPU and resume, N times. */
static void pause_test(struct machine *m, unsigned int n)
{
	char err[256];
	unsigned int i, done = 0;
	int ret;

	for (i = 0; i < n; i++) {
		sleep_ms(2);
		ret = machine_pause_check(m, err, sizeof(err));
		if (ret == -ESRCH)
			break; /* the guest finished first */
		if (ret) {
			fprintf(stderr, "forkvm: --pause-test: %s\n", err);
			machine_stop(m, FAMILY_HOST_ERROR, "pause test failed");
			return;
		}
		done++;
	}
	fprintf(stderr, "forkvm: pause-test: %u pauses, state read and restored\n", done);
}

/* The clone point: --clone-after MS, or console line --clone-at-line N (1). */
static void wait_clone_point(const struct cli *cli, struct machine *parent)
{
	struct timespec t0;
	uint64_t limit;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	limit = cli->clone_after_given ? cli->clone_after_ms : FIRST_LINE_WAIT_MS;
	if (cli->clone_after_given) {
		/* The time, or the parent's stop: whichever comes first. */
		struct pollfd p = { .fd = machine_stop_fd(parent), .events = POLLIN };

		while (ms_since(&t0) < limit && poll(&p, 1, (int)(limit - ms_since(&t0))) < 0 &&
		       errno == EINTR)
			;
		return;
	}
	while (ms_since(&t0) < limit && !machine_stopped(parent)) {
		if (machine_wait_console(parent, cli->clone_at_line ?: 1, 50) == 0)
			return;
	}
}

static void clone_all(struct family *f, unsigned int clones)
{
	unsigned int i, id;
	char err[512];
	int ret;

	for (i = 1; i <= clones; i++) {
		ret = family_clone(f, 0, &id, err, sizeof(err));
		if (ret == -ENOSPC) {
			printf("forkvm: clone %u failed: %s\n", i, err);
			break;
		}
		if (ret) {
			printf("forkvm: clone %u failed: %s\n", id, err);
			if (ret == -ESRCH)
				break; /* the parent is gone: no further clone can work */
			continue;
		}
		printf("forkvm: clone %u made: parent paused %.2f ms (memory fork %.2f ms), "
		       "child VM built beforehand in %.2f ms\n",
		       id, f->vm[id].t.paused_ns / 1e6, f->vm[id].t.fork_ns / 1e6,
		       f->vm[id].t.prepare_ns / 1e6);
	}
	fflush(stdout);
	pool_get_stats(family_pool(f), &f->after_clone);
}

static void vm_name(unsigned int i, char *buf, size_t len)
{
	if (i == 0)
		snprintf(buf, len, "parent");
	else
		snprintf(buf, len, "clone %u", i);
}

/* Why member @mb stopped ("" for a clean exit), recorded by family_wait() or family_reap(). */
static const char *member_reason(const struct family_member *mb)
{
	return mb->reason;
}

static void report_vms(struct family *f)
{
	char name[24], result[16];
	unsigned int i;

	printf("forkvm: %-9s %4s  %-10s  %8s  %8s  %5s  %4s  %8s  %8s\n", "VM", "exit", "result",
	       "present", "shared", "VMAs", "from", "inflight", "pause ms");
	for (i = 0; i < f->n; i++) {
		const struct family_member *mb = &f->vm[i];

		vm_name(i, name, sizeof(name));
		if (!mb->m && !mb->reaped) {
			printf("forkvm: %-9s %4d  (not cloned)\n", name, mb->status);
			continue;
		}
		snprintf(result, sizeof(result), mb->has_result ? "0x%08x" : "-", mb->result);
		printf("forkvm: %-9s %4d  %-10s  %8llu  %8llu  %5llu", name, mb->status, result,
		       (unsigned long long)mb->sst.present, (unsigned long long)mb->sst.shared,
		       (unsigned long long)mb->sst.vmas);
		if (i)
			printf("  %4u  %8u  %8.2f", mb->from, mb->t.inflight,
			       mb->t.paused_ns / 1e6);
		printf("\n");
		if (*member_reason(mb))
			printf("forkvm: %-9s stopped: %s\n", name, member_reason(mb));
	}
}

static void print_frames(const char *what, uint64_t frames, uint64_t full)
{
	printf("forkvm:   %-28s %9llu frames %8.1f MiB  %5.1f%%\n", what,
	       (unsigned long long)frames, frames * (double)MM_PAGE_SIZE / (1 << 20),
	       full ? 100.0 * frames / full : 0.0);
}

static void report_memory(struct family *f, bool after_clone)
{
	uint64_t pages = f->fc.cfg.mem_size / MM_PAGE_SIZE;
	unsigned int nvms = 0, i;
	struct pool_stats end;
	char what[64];
	uint64_t full;

	for (i = 0; i < f->n; i++)
		nvms += f->vm[i].m != NULL || f->vm[i].reaped;
	full = pages * nvms;
	pool_get_stats(family_pool(f), &end);
	printf("forkvm: memory of the family (mm pool, 4 KiB frames), %u VMs of %llu MiB:\n", nvms,
	       (unsigned long long)(f->fc.cfg.mem_size >> 20));
	snprintf(what, sizeof(what), "%u full copies (no sharing)", nvms);
	print_frames(what, full, full);
	if (after_clone)
		print_frames("live right after cloning", f->after_clone.live_frames, full);
	print_frames("live at the end", end.live_frames, full);
	printf("forkvm:   COW faults %llu: copies %llu, reuses %llu; fork copies %llu; "
	       "fresh %llu\n",
	       (unsigned long long)end.faults, (unsigned long long)end.copies,
	       (unsigned long long)end.reuses, (unsigned long long)end.fork_copies,
	       (unsigned long long)end.fresh);
}

void family_report(struct family *f)
{
	const char *reason;

	if (family_size(f) == 1) {
		reason = member_reason(&f->vm[0]);
		if (*reason)
			fprintf(stderr, "forkvm: %s\n", reason);
	} else {
		report_vms(f);
		report_memory(f, false);
	}
	fflush(stdout);
}

int family_run(const struct cli *cli)
{
	struct family_config fc = { .cfg = cli->cfg };
	struct api_run *api = NULL;
	struct machine *parent;
	struct family *f;
	char err[512];
	const char *reason;
	int ret, status;

	/* Consoles of several VMs on one output: prefix the parent's too. */
	if (cli->clones)
		fc.cfg.console_prefix = "[parent] ";
	if (cli->restore_after_parent_line)
		fc.before_restore = family_restore_after_parent_line;
	/* Before any thread exists: only the API's signal thread takes them. */
	if (cli->api_socket && api_run_block_signals()) {
		fprintf(stderr, "forkvm: --api: cannot block SIGINT/SIGTERM\n");
		return FAMILY_HOST_ERROR;
	}
	ret = family_create(&fc, &f, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "forkvm: %s\n", err);
		return FAMILY_HOST_ERROR;
	}
	ret = family_start(f);
	if (ret) {
		fprintf(stderr, "forkvm: cannot start the vCPUs: %s\n", strerror(-ret));
		family_destroy(f);
		return FAMILY_HOST_ERROR;
	}
	if (cli->api_socket) {
		ret = api_run_start(f, cli->api_socket, fc.cfg.console, &api, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "forkvm: %s\n", err);
			family_destroy(f);
			return FAMILY_HOST_ERROR;
		}
		fprintf(stderr, "forkvm: control API on %s (docs/api.md)\n", cli->api_socket);
	}
	/* Held: an API client may kill and reap VM 0 meanwhile. */
	parent = family_get(f, 0);
	if (cli->pause_test)
		pause_test(parent, cli->pause_test);
	if (cli->clones) {
		wait_clone_point(cli, parent);
		clone_all(f, cli->clones);
	}
	machine_put(parent);
	status = family_wait(f, cli->timeout_ms);
	if (!cli->clones && family_size(f) == 1) {
		/* One VM: no table, its stop reason on stderr as before. */
		reason = member_reason(&f->vm[0]);
		if (*reason)
			fprintf(stderr, "forkvm: %s\n", reason);
	} else {
		report_vms(f);
		report_memory(f, cli->clones);
	}
	fflush(stdout);
	api_run_finish(api);
	family_destroy(f);
	return status;
}

int family_run_clones(struct family *f, unsigned int clones, unsigned int timeout_ms)
{
	int ret, status;

	ret = family_start(f);
	if (ret) {
		fprintf(stderr, "forkvm: cannot start the vCPUs: %s\n", strerror(-ret));
		return FAMILY_HOST_ERROR;
	}
	clone_all(f, clones);
	status = family_wait(f, timeout_ms);
	report_vms(f);
	report_memory(f, true);
	fflush(stdout);
	return status;
}
