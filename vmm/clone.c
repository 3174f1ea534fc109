// SPDX-License-Identifier: MIT
/*
 * machine_clone(): everything that does not need the parent's state (KVM VM,
 * vCPUs with their CPUID, console, the state buffer) is built while the
 * parent runs; the pause covers the memory fork, reading the parent's state
 * and cloning its devices at that instant.  The child's memslot, its state
 * and its threads come after the resume.
 */
#include "vmm/clone.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/mm.h"
#include "vmm/board.h"
#include "vmm/machine.h"
#include "vmm/machine_state.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Every device must know how to clone itself: refuse before touching anything. */
static int check_cloneable(struct machine *parent, char *err, size_t errlen)
{
	unsigned int i;

	for (i = 0; i < parent->ndevs; i++) {
		const struct device *d = &parent->dev[i];

		if (d->ops->clone)
			continue;
		snprintf(err, errlen,
			 "cannot clone a VM with %s yet: device %u (%s) has no clone operation",
			 d->ops->type_id == DEVICE_VIRTIO_BLK_MMIO ? "virtio disks" : "this device",
			 d->id, d->ops->type);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* KVM VM without RAM and its vCPUs: the costly part of a child, parent-independent. */
static int build_vm(struct machine *c, unsigned int ncpus, char *err, size_t errlen)
{
	int ret;

	c->console_fd = -1;
	c->console_out = -1;
	pthread_mutex_init(&c->pause_lock, NULL);
	c->kvm.fd = -1;
	c->owns_pool = false;
	ret = kvm_open(&c->kvm, err, errlen);
	if (ret)
		return ret;
	ret = vm_create(&c->kvm, NULL, &c->vm, err, errlen);
	if (ret)
		return ret;
	c->vm_created = true;
	/* Same host, same policy: the same CPUID as the parent's vCPUs. */
	ret = cpus_create(&c->vm, ncpus, &c->cpus, err, errlen);
	if (ret)
		return ret;
	c->cpus_created = true;
	return 0;
}

int machine_clone_spare(unsigned int ncpus, struct machine **out, char *err, size_t errlen)
{
	struct machine *c = calloc(1, sizeof(*c));
	int ret;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ret = build_vm(c, ncpus, err, errlen);
	if (ret) {
		machine_destroy(c);
		return ret;
	}
	*out = c;
	return 0;
}

/* The child without memory or state: VM, console, vCPUs. Parent running. */
static int prepare_child(struct machine *parent, const struct clone_config *cc, struct machine *c,
			 bool built, struct machine_state *ms, char *err, size_t errlen)
{
	int ret;

	if (!built) {
		ret = build_vm(c, parent->cpus.n, err, errlen);
		if (ret)
			return ret;
	}
	c->pool = parent->pool;
	c->board = parent->board;
	c->image = parent->image;
	c->ndisks = parent->ndisks;
	/* The state buffer too: nothing to allocate while the parent waits. */
	ret = mstate_init(ms, machine_state_room(parent));
	if (ret) {
		snprintf(err, errlen, "state buffer: %s", strerror(-ret));
		return ret;
	}
	ret = machine_open_console(c, cc->console, cc->console_prefix, err, errlen);
	if (ret)
		return ret;
	c->cpus.print_results = !cc->quiet_results;
	c->cpus.fork_hook = cc->fork_hook;
	return 0;
}

/*
 * Parent paused and its devices held: only what must see that instant.  Its
 * memory is forked, its state read and each device cloned into the child.
 */
static int save_paused(struct machine *parent, const struct clone_config *cc, struct machine *c,
		       struct machine_state *ms, struct clone_timing *t, char *err, size_t errlen)
{
	uint64_t t0 = now_ns();
	unsigned int i;
	int ret;

	t->inflight = machine_inflight(parent);
	ret = space_fork(parent->space, &c->space);
	t->fork_ns = now_ns() - t0;
	t0 = now_ns();
	if (ret) {
		snprintf(err, errlen, "space_fork: %s", strerror(-ret));
		return ret;
	}
	ret = machine_save_state(parent, ms, err, errlen);
	t->save_ns = now_ns() - t0;
	t0 = now_ns();
	if (ret)
		return ret;
	/* The fork register belongs to the instant too: read it paused. */
	c->cpus.fork_result =
	    cc->guest_fork ? 0 : __atomic_load_n(&parent->cpus.fork_result, __ATOMIC_SEQ_CST);
	for (i = 0; i < parent->ndevs; i++) {
		const struct device *d = &parent->dev[i];
		void *obj;

		ret = d->ops->clone(d->obj, c, &obj, err, errlen);
		if (ret)
			return ret;
		ret = machine_add_device(c, d->ops, obj, d->id);
		if (ret) {
			d->ops->destroy(obj);
			snprintf(err, errlen, "child: too many devices");
			return ret;
		}
	}
	t->devices_ns = now_ns() - t0;
	return 0;
}

/* Parent running: the child's devices join its machine. */
static int attach_devices(struct machine *c, char *err, size_t errlen)
{
	unsigned int i;
	int ret;

	for (i = 0; i < c->ndevs; i++) {
		const struct device *d = &c->dev[i];

		if (!d->ops->attach)
			continue;
		ret = d->ops->attach(d->obj, c, err, errlen);
		if (ret)
			return ret;
	}
	return 0;
}

int machine_clone(struct machine *parent, const struct clone_config *cc, struct machine **child,
		  struct clone_timing *t, char *err, size_t errlen)
{
	struct machine_state ms = { .buf = NULL };
	struct machine *c = cc->spare;
	struct clone_timing local;
	uint64_t t0;
	int ret;

	if (!t)
		t = &local;
	memset(t, 0, sizeof(*t));
	if (errlen)
		err[0] = '\0';
	/* A spare of another size is of no use: build afresh. */
	if (c && c->cpus.n != parent->cpus.n) {
		machine_destroy(c);
		c = NULL;
	}
	ret = check_cloneable(parent, err, errlen);
	if (ret) {
		machine_destroy(c);
		return ret;
	}
	t->spare = c != NULL;
	if (!c)
		c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	t0 = now_ns();
	ret = prepare_child(parent, cc, c, t->spare, &ms, err, errlen);
	t->prepare_ns = now_ns() - t0;
	if (ret)
		goto err_child;

	t0 = now_ns();
	ret = machine_pause(parent);
	t->vcpus_ns = now_ns() - t0;
	if (ret) {
		snprintf(err, errlen, "the parent already stopped");
		goto err_child; /* nothing to resume */
	}
	ret = save_paused(parent, cc, c, &ms, t, err, errlen);
	machine_resume(parent);
	t->paused_ns = now_ns() - t0;
	if (ret)
		goto err_child;
	if (cc->parent_resumed)
		cc->parent_resumed(cc->parent_resumed_arg);
	if (cc->before_restore)
		cc->before_restore(parent, cc->before_restore_arg);

	t0 = now_ns();
	if (cc->tamper)
		cc->tamper(&ms, cc->tamper_arg);
	ret = vm_set_space(&c->vm, c->space, err, errlen);
	if (ret)
		goto err_child;
	ret = attach_devices(c, err, errlen);
	if (ret)
		goto err_child;
	ret = machine_restore_state(c, &ms, err, errlen);
	if (ret)
		goto err_child;
	if (c->board && c->board->cloned) {
		ret = c->board->cloned(c, err, errlen);
		if (ret)
			goto err_child;
	}
	/* Right after the restore re-submitted the requests in flight: none of
	 * them can have completed if the disk's latency exceeds this gap. */
	if (cc->hold_child)
		machine_hold_devices(c);
	t->restore_ns = now_ns() - t0;
	ret = cc->hold_child ? 0 : machine_start(c);
	if (ret) {
		snprintf(err, errlen, "starting the child's vCPUs: %s", strerror(-ret));
		goto err_child;
	}
	if (cc->saved)
		*cc->saved = ms;
	else
		mstate_free(&ms);
	*child = c;
	return 0;

err_child:
	/* Also drops the child's share of the frames: the parent is unaffected. */
	machine_destroy(c);
	mstate_free(&ms);
	return ret;
}
