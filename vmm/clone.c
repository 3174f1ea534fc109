// SPDX-License-Identifier: MIT
/*
 * machine_clone(): everything that does not need the parent's state (KVM VM,
 * vCPUs with their CPUID, console, state buffers) is built while the parent
 * runs; the pause covers only the memory fork and reading the parent's state.
 * The child's memslot, its state and its threads come after the resume.
 */
#include "vmm/clone.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mm/mm.h"
#include "vmm/machine.h"
#include "vmm/vcpu_state.h"
#include "vmm/vm_state.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* The parent's state at the pause, on its way to the child. */
struct clone_state {
	struct vm_state vm;
	unsigned int n;
	struct vcpu_state *vcpu; /* n, 64-byte aligned (XSAVE area) */
};

static void free_state(struct clone_state *cs)
{
	free(cs->vcpu);
	cs->vcpu = NULL;
}

/* The child without memory or state: VM, console, vCPUs. Parent running. */
static int prepare_child(struct machine *parent, const struct clone_config *cc, struct machine *c,
			 struct clone_state *cs, char *err, size_t errlen)
{
	int ret;

	c->console_fd = -1;
	c->kvm.fd = -1;
	c->pool = parent->pool;
	c->owns_pool = false;
	c->image = parent->image;

	/* The state buffers too: nothing to allocate while the parent waits. */
	cs->n = parent->cpus.n;
	cs->vcpu = aligned_alloc(64, cs->n * sizeof(*cs->vcpu));
	if (!cs->vcpu) {
		snprintf(err, errlen, "state buffers: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	ret = kvm_open(&c->kvm, err, errlen);
	if (ret)
		return ret;
	ret = vm_create(&c->kvm, NULL, &c->vm, err, errlen);
	if (ret)
		return ret;
	c->vm_created = true;
	ret = machine_add_console(c, cc->console, cc->console_prefix, err, errlen);
	if (ret)
		return ret;
	/* Same host, same policy: the same CPUID as the parent's vCPUs. */
	ret = cpus_create(&c->vm, parent->cpus.n, &c->cpus, err, errlen);
	if (ret)
		return ret;
	c->cpus_created = true;
	c->cpus.print_results = !cc->quiet_results;
	return 0;
}

/*
 * Parent paused: only what must see it stopped.  Its memory is forked, its
 * VM-wide and per-vCPU state read; nothing of the child is touched yet.
 */
static int save_paused(struct machine *parent, struct machine *c, struct clone_state *cs,
		       struct clone_timing *t, char *err, size_t errlen)
{
	uint64_t t0 = now_ns();
	unsigned int i;
	int ret;

	ret = space_fork(parent->space, &c->space);
	t->fork_ns = now_ns() - t0;
	if (ret) {
		snprintf(err, errlen, "space_fork: %s", strerror(-ret));
		return ret;
	}
	/* Firecracker's order: the VM's devices (irqchip, PIT, clock) first. */
	ret = vm_save_state(&parent->vm, &cs->vm);
	if (ret) {
		snprintf(err, errlen, "parent irqchip/PIT/clock state: %s", strerror(-ret));
		return ret;
	}
	for (i = 0; i < cs->n; i++) {
		ret = vcpu_save_state(&parent->cpus.vcpu[i], &cs->vcpu[i]);
		if (ret) {
			snprintf(err, errlen, "parent vCPU %u state: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Parent running again: the child gets its memslot and the saved state. */
static int restore_child(struct machine *c, const struct clone_state *cs, char *err, size_t errlen)
{
	unsigned int i;
	int ret;

	ret = vm_set_space(&c->vm, c->space, err, errlen);
	if (ret)
		return ret;
	ret = vm_restore_state(&c->vm, &cs->vm);
	if (ret) {
		snprintf(err, errlen, "child irqchip/PIT/clock state: %s", strerror(-ret));
		return ret;
	}
	for (i = 0; i < cs->n; i++) {
		ret = vcpu_restore_state(&c->cpus.vcpu[i], &cs->vcpu[i]);
		if (ret) {
			snprintf(err, errlen, "child vCPU %u state: %s", i, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

int machine_clone(struct machine *parent, const struct clone_config *cc, struct machine **child,
		  struct clone_timing *t, char *err, size_t errlen)
{
	struct clone_state cs = { .vcpu = NULL };
	struct clone_timing local;
	struct machine *c;
	uint64_t t0;
	int ret;

	if (!t)
		t = &local;
	memset(t, 0, sizeof(*t));
	if (errlen)
		err[0] = '\0';
	if (parent->ndisks) {
		snprintf(err, errlen,
			 "cannot clone a VM with virtio disks yet (it has %u): their device "
			 "state is not cloned",
			 parent->ndisks);
		return -EOPNOTSUPP;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	t0 = now_ns();
	ret = prepare_child(parent, cc, c, &cs, err, errlen);
	t->prepare_ns = now_ns() - t0;
	if (ret)
		goto err_child;

	t0 = now_ns();
	ret = machine_pause(parent);
	if (ret) {
		snprintf(err, errlen, "the parent already stopped");
		goto err_child; /* nothing to resume */
	}
	ret = save_paused(parent, c, &cs, t, err, errlen);
	machine_resume(parent);
	t->paused_ns = now_ns() - t0;
	if (ret)
		goto err_child;

	ret = restore_child(c, &cs, err, errlen);
	if (ret)
		goto err_child;
	ret = machine_start(c);
	if (ret) {
		snprintf(err, errlen, "starting the child's vCPUs: %s", strerror(-ret));
		goto err_child;
	}
	free_state(&cs);
	*child = c;
	return 0;

err_child:
	/* Also drops the child's share of the frames: the parent is unaffected. */
	machine_destroy(c);
	free_state(&cs);
	return ret;
}
