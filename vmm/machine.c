// SPDX-License-Identifier: MIT
/* Assembling a machine on its board, and taking it apart. */
#include "vmm/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mm/mm.h"
#include "vmm/board.h"
#include "vmm/console.h"
#include "vmm/disks.h"
#include "vmm/uart.h"

int machine_add_device(struct machine *m, const struct device_ops *ops, void *obj, uint32_t id)
{
	if (m->ndevs == MACHINE_MAX_DEVS)
		return -ENOSPC;
	if (!id)
		id = m->next_dev_id + 1;
	if (id > m->next_dev_id)
		m->next_dev_id = id;
	m->dev[m->ndevs++] = (struct device){ .ops = ops, .obj = obj, .id = id };
	return 0;
}

int machine_open_console(struct machine *m, const char *path, const char *prefix, char *err,
			 size_t errlen)
{
	int fd = STDOUT_FILENO, ret;

	if (path) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			ret = -errno;
			snprintf(err, errlen, "--console %s: %s", path, strerror(errno));
			return ret;
		}
		m->console_fd = fd;
	}
	if (prefix) {
		ret = console_tap_create(fd, prefix, &m->tap);
		if (ret) {
			snprintf(err, errlen, "console tap: %s", strerror(-ret));
			return ret;
		}
		fd = console_tap_fd(m->tap);
	}
	m->console_out = fd;
	return 0;
}

int machine_wait_console(struct machine *m, unsigned long lines, unsigned int timeout_ms)
{
	if (!m->tap)
		return -ENOTSUP;
	return console_tap_wait_lines(m->tap, lines, timeout_ms);
}

unsigned long machine_console_lines(struct machine *m)
{
	return m->tap ? console_tap_lines(m->tap) : 0;
}

static int add_disks(struct machine *m, const struct machine_config *cfg, char *err, size_t errlen)
{
	unsigned int i;
	int ret;

	for (i = 0; i < cfg->ndisks; i++) {
		ret = disk_add(m, &cfg->disks[i], board_virtio_base(i), board_virtio_gsi(i), err,
			       errlen);
		if (ret)
			return ret;
		m->ndisks++;
	}
	return 0;
}

const struct board_ops *machine_board(const struct machine *m)
{
	return m->board ? m->board : &board_test_ops;
}

static int setup_vcpus(struct machine *m, const struct machine_config *cfg, char *err,
		       size_t errlen)
{
	unsigned int i;
	int ret;

	ret = cpus_create(&m->vm, cfg->ncpus, &m->cpus, err, errlen);
	if (ret)
		return ret;
	m->cpus_created = true;
	m->cpus.print_results = !cfg->quiet_results;
	for (i = 0; i < cfg->ncpus; i++) {
		ret = m->board->setup_vcpu(m, &m->cpus.vcpu[i], err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

int machine_create(const struct machine_config *cfg, struct machine **out, char *err, size_t errlen)
{
	const struct board_ops *board = cfg->kernel ? &board_linux_ops : &board_test_ops;
	struct space_range ram[BOARD_MAX_RANGES] = { { .gpa = 0, .size = cfg->mem_size } };
	struct pool_config pcfg = { .policy = cfg->policy };
	unsigned int nram = 1;
	struct machine *m;
	int ret;

	if (cfg->mem_size < LAYOUT_MEM_MIN || cfg->mem_size > board->mem_max ||
	    cfg->mem_size % MM_PAGE_SIZE || cfg->ndisks > LAYOUT_MAX_DISKS ||
	    (!cfg->kernel && !cfg->workload)) {
		snprintf(err, errlen, "bad machine configuration");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->board = board;
	m->console_fd = -1;
	m->console_out = STDOUT_FILENO;
	pthread_mutex_init(&m->pause_lock, NULL);
	m->kvm.fd = -1;
	m->owns_pool = true;

	ret = kvm_open(&m->kvm, err, errlen);
	if (ret)
		goto err;
	ret = pool_create(&pcfg, &m->pool);
	if (ret) {
		snprintf(err, errlen, "guest memory pool: %s", strerror(-ret));
		goto err;
	}
	if (board->ram_ranges)
		nram = board->ram_ranges(cfg->mem_size, ram);
	ret = space_create(m->pool, ram, nram, &m->space);
	if (ret) {
		snprintf(err, errlen, "guest memory of %llu MiB: %s",
			 (unsigned long long)(cfg->mem_size >> 20), strerror(-ret));
		goto err;
	}
	ret = vm_create(&m->kvm, m->space, &m->vm, err, errlen);
	if (ret)
		goto err;
	m->vm_created = true;

	ret = machine_open_console(m, cfg->console, cfg->console_prefix, err, errlen);
	if (ret)
		goto err;
	ret = uart_add(m, err, errlen);
	if (ret)
		goto err;
	ret = add_disks(m, cfg, err, errlen);
	if (ret)
		goto err;
	ret = m->board->load(m, cfg, err, errlen);
	if (ret)
		goto err;
	ret = setup_vcpus(m, cfg, err, errlen);
	if (ret)
		goto err;
	*out = m;
	return 0;

err:
	machine_destroy(m);
	return ret;
}

/*
 * mm could not serve a guest write of this machine (space_error_fn): stop
 * it, with the reason; the rest of its family goes on.  Called by mm's
 * fault thread with the family lock held: cpus_stop() only flags and kicks.
 */
static void machine_mm_error(void *opaque, int err, uint64_t gpa)
{
	struct machine *m = opaque;
	char why[160];

	snprintf(why, sizeof(why),
		 "guest memory: a write at 0x%llx could not be served (%s); this VM stops",
		 (unsigned long long)gpa, strerror(-err));
	cpus_stop(&m->cpus, CPUS_STATUS_HOST_ERROR, why);
}

int machine_start(struct machine *m)
{
	int ret;

	space_set_error_handler(m->space, machine_mm_error, m);
	pthread_mutex_lock(&m->pause_lock);
	ret = cpus_start(&m->cpus);
	if (!ret && m->life == MACHINE_CREATED)
		m->life = MACHINE_RUNNING;
	pthread_mutex_unlock(&m->pause_lock);
	return ret;
}

/* The guest stopped by itself: record it.  Context: the life lock held. */
static void see_stop(struct machine *m)
{
	if (__atomic_load_n(&m->cpus.stop, __ATOMIC_SEQ_CST))
		m->life = MACHINE_STOPPED;
}

struct space *machine_space(const struct machine *m)
{
	return m->space;
}

struct pool *machine_pool(const struct machine *m)
{
	return m->pool;
}

struct cpus *machine_cpus(struct machine *m)
{
	return &m->cpus;
}

unsigned int machine_ncpus(const struct machine *m)
{
	return m->cpus.n;
}

unsigned int machine_ndisks(const struct machine *m)
{
	return m->ndisks;
}

int machine_exit_status(struct machine *m)
{
	int status;

	pthread_mutex_lock(&m->cpus.lock);
	status = m->cpus.status;
	pthread_mutex_unlock(&m->cpus.lock);
	return status;
}

bool machine_last_result(struct machine *m, uint32_t *out)
{
	bool any;

	pthread_mutex_lock(&m->cpus.lock);
	any = m->cpus.nresults > 0;
	if (any)
		*out = m->cpus.results[m->cpus.nresults - 1];
	pthread_mutex_unlock(&m->cpus.lock);
	return any;
}

void machine_set_fork_hook(struct machine *m, struct cpus_fork_hook hook)
{
	m->cpus.fork_hook = hook;
}

enum machine_life machine_life(struct machine *m)
{
	enum machine_life l;

	pthread_mutex_lock(&m->pause_lock);
	see_stop(m);
	l = m->life;
	pthread_mutex_unlock(&m->pause_lock);
	return l;
}

const char *machine_life_name(enum machine_life l)
{
	static const char *const names[] = { "created", "running", "paused", "stopped" };

	return (unsigned int)l < 4 ? names[l] : "unknown";
}

void machine_stop(struct machine *m, int status, const char *reason)
{
	pthread_mutex_lock(&m->pause_lock);
	m->life = MACHINE_STOPPED;
	pthread_mutex_unlock(&m->pause_lock);
	/* Flags and kicks only: parked vCPUs leave too (cpus.h). */
	cpus_stop(&m->cpus, status, reason);
}

int machine_stop_fd(struct machine *m)
{
	return m->cpus_created ? m->cpus.stop_fd : -1;
}

/*
 * Atomic, not under the life lock: machine_pause() holds that lock while it
 * waits for the vCPUs to park, and a vCPU asking for a guest fork takes the
 * family's lock first, under which family_get() takes a reference.
 */
struct machine *machine_get(struct machine *m)
{
	__atomic_add_fetch(&m->refs, 1, __ATOMIC_SEQ_CST);
	return m;
}

void machine_put(struct machine *m)
{
	/* @refs counts the references besides the first: 0 before is the last. */
	if (m && __atomic_fetch_sub(&m->refs, 1, __ATOMIC_SEQ_CST) == 0)
		machine_destroy(m);
}

struct pool_ref {
	struct pool *pool;
	unsigned int refs; /* atomic */
};

int pool_ref_create(struct pool *pool, struct pool_ref **out)
{
	struct pool_ref *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->pool = pool;
	r->refs = 1;
	*out = r;
	return 0;
}

struct pool_ref *pool_ref_get(struct pool_ref *r)
{
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_SEQ_CST);
	return r;
}

void pool_ref_put(struct pool_ref *r)
{
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_SEQ_CST) == 0) {
		pool_destroy(r->pool);
		free(r);
	}
}

struct pool *pool_ref_pool(const struct pool_ref *r)
{
	return r->pool;
}

void machine_share_pool(struct machine *m, struct pool_ref *r)
{
	m->pool_ref = pool_ref_get(r);
	m->owns_pool = false;
}

int machine_wait(struct machine *m, unsigned int timeout_ms)
{
	return cpus_wait(&m->cpus, timeout_ms);
}

bool machine_stopped(struct machine *m)
{
	bool stopped;

	pthread_mutex_lock(&m->cpus.lock);
	stopped = m->cpus.stop;
	pthread_mutex_unlock(&m->cpus.lock);
	return stopped;
}

const char *machine_stop_reason(struct machine *m)
{
	return m->cpus.reason;
}

int machine_pause_check(struct machine *m, char *err, size_t errlen)
{
	struct vcpu_state *st;
	unsigned int i;
	int ret;

	st = aligned_alloc(64, sizeof(*st));
	if (!st)
		return -ENOMEM;
	ret = machine_pause(m);
	if (ret)
		goto out;
	for (i = 0; i < m->cpus.n && !ret; i++) {
		struct vcpu *v = &m->cpus.vcpu[i];

		ret = vcpu_save_state(v, st);
		if (ret) {
			snprintf(err, errlen, "vCPU %u: save state: %s", i, strerror(-ret));
			break;
		}
		ret = machine_board(m)->check_state(st, err, errlen);
		if (ret)
			break;
		/* Round trip: the guest must not notice. */
		ret = vcpu_restore_state(v, st);
		if (ret)
			snprintf(err, errlen, "vCPU %u: restore state: %s", i, strerror(-ret));
	}
	machine_resume(m);
out:
	free(st);
	return ret;
}

void machine_hold_devices(struct machine *m)
{
	unsigned int i;

	for (i = 0; i < m->ndevs; i++) {
		if (m->dev[i].ops->hold)
			m->dev[i].ops->hold(m->dev[i].obj);
	}
}

void machine_release_devices(struct machine *m)
{
	unsigned int i;

	for (i = m->ndevs; i-- > 0;) {
		if (m->dev[i].ops->release)
			m->dev[i].ops->release(m->dev[i].obj);
	}
}

unsigned int machine_inflight(struct machine *m)
{
	unsigned int i, n = 0;

	for (i = 0; i < m->ndevs; i++) {
		struct device_stats st = { 0 };

		if (!m->dev[i].ops->stats)
			continue;
		m->dev[i].ops->stats(m->dev[i].obj, &st);
		n += st.inflight;
	}
	return n;
}

int machine_pause(struct machine *m)
{
	int ret = 0;

	/* Nested pauses (the control API's and a clone's) count: the last
	 * resume resumes. */
	pthread_mutex_lock(&m->pause_lock);
	if (m->pause_depth == 0) {
		ret = cpus_pause(&m->cpus);
		if (!ret) {
			machine_hold_devices(m);
			m->life = MACHINE_PAUSED;
		}
	}
	if (!ret)
		m->pause_depth++;
	see_stop(m);
	pthread_mutex_unlock(&m->pause_lock);
	return ret;
}

void machine_resume(struct machine *m)
{
	pthread_mutex_lock(&m->pause_lock);
	if (m->pause_depth && --m->pause_depth == 0) {
		machine_release_devices(m);
		cpus_resume(&m->cpus);
		if (m->life == MACHINE_PAUSED)
			m->life = MACHINE_RUNNING;
	}
	see_stop(m);
	pthread_mutex_unlock(&m->pause_lock);
}

void machine_destroy(struct machine *m)
{
	unsigned int i;

	if (!m)
		return;
	/* On return no mm error report is running, none will: the vCPUs can go. */
	if (m->space)
		space_set_error_handler(m->space, NULL, NULL);
	if (m->cpus_created)
		cpus_destroy(&m->cpus);
	/* Devices after the vCPUs (nobody calls them any more), in reverse order. */
	for (i = m->ndevs; i-- > 0;)
		m->dev[i].ops->destroy(m->dev[i].obj);
	m->ndevs = 0;
	/* After the serial port: nothing writes into the tap any more. */
	console_tap_destroy(m->tap);
	m->tap = NULL;
	if (m->vm_created)
		vm_destroy(&m->vm);
	space_destroy(m->space);
	/* Held by reference (a family's): the last holder frees it.  Else a
	 * clone shares its parent's pool; the parent, destroyed last, frees it. */
	if (m->pool_ref)
		pool_ref_put(m->pool_ref);
	else if (m->owns_pool)
		pool_destroy(m->pool);
	kvm_close(&m->kvm);
	if (m->console_fd >= 0)
		close(m->console_fd);
	free(m);
}
