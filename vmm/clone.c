// SPDX-License-Identifier: MIT
/*
 * machine_clone(): everything that does not need the parent's state (KVM VM,
 * vCPUs with their CPUID, console) is built while the parent runs; the pause
 * covers only the memory fork, the memslot and the state copy.
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

/* The child without memory or state: VM, console, vCPUs. Parent running. */
static int prepare_child(struct machine *parent, const struct clone_config *cc, struct machine *c,
			 char *err, size_t errlen)
{
	int ret;

	c->console_fd = -1;
	c->kvm.fd = -1;
	c->pool = parent->pool;
	c->owns_pool = false;
	c->image = parent->image;

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

/* Copy the parent's VM-wide and per-vCPU state into the child. Parent paused. */
static int copy_state(struct machine *parent, struct machine *c, char *err, size_t errlen)
{
	struct vcpu_state *st = NULL;
	struct vm_state *vs;
	unsigned int i;
	int ret;

	vs = malloc(sizeof(*vs));
	st = aligned_alloc(64, sizeof(*st));
	if (!vs || !st) {
		ret = -ENOMEM;
		snprintf(err, errlen, "state buffers: %s", strerror(-ret));
		goto out;
	}
	/* Firecracker's order: the VM's devices (irqchip, PIT, clock) first. */
	ret = vm_save_state(&parent->vm, vs);
	if (ret) {
		snprintf(err, errlen, "parent irqchip/PIT/clock state: %s", strerror(-ret));
		goto out;
	}
	ret = vm_restore_state(&c->vm, vs);
	if (ret) {
		snprintf(err, errlen, "child irqchip/PIT/clock state: %s", strerror(-ret));
		goto out;
	}
	for (i = 0; i < parent->cpus.n; i++) {
		ret = vcpu_save_state(&parent->cpus.vcpu[i], st);
		if (ret) {
			snprintf(err, errlen, "parent vCPU %u state: %s", i, strerror(-ret));
			goto out;
		}
		ret = vcpu_restore_state(&c->cpus.vcpu[i], st);
		if (ret) {
			snprintf(err, errlen, "child vCPU %u state: %s", i, strerror(-ret));
			goto out;
		}
	}
out:
	free(st);
	free(vs);
	return ret;
}

/* Parent paused: its memory and state become the child's. */
static int fork_paused(struct machine *parent, struct machine *c, struct clone_timing *t, char *err,
		       size_t errlen)
{
	uint64_t t0 = now_ns();
	int ret;

	ret = space_fork(parent->space, &c->space);
	t->fork_ns = now_ns() - t0;
	if (ret) {
		snprintf(err, errlen, "space_fork: %s", strerror(-ret));
		return ret;
	}
	ret = vm_set_space(&c->vm, c->space, err, errlen);
	if (ret)
		return ret;
	return copy_state(parent, c, err, errlen);
}

int machine_clone(struct machine *parent, const struct clone_config *cc, struct machine **child,
		  struct clone_timing *t, char *err, size_t errlen)
{
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
	ret = prepare_child(parent, cc, c, err, errlen);
	t->prepare_ns = now_ns() - t0;
	if (ret)
		goto err_child;

	t0 = now_ns();
	ret = machine_pause(parent);
	if (ret) {
		snprintf(err, errlen, "the parent already stopped");
		goto err_child; /* nothing to resume */
	}
	ret = fork_paused(parent, c, t, err, errlen);
	if (!ret)
		ret = machine_start(c);
	machine_resume(parent);
	t->paused_ns = now_ns() - t0;
	if (ret) {
		if (!*err)
			snprintf(err, errlen, "starting the child's vCPUs: %s", strerror(-ret));
		goto err_child;
	}
	*child = c;
	return 0;

err_child:
	/* Also drops the child's share of the frames: the parent is unaffected. */
	machine_destroy(c);
	return ret;
}
