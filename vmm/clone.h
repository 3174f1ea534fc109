/* SPDX-License-Identifier: MIT */
/*
 * Live clone of a running machine (DESIGN.md 3.1 "Clone (fork)"): pause its
 * vCPUs, hold its devices' completions (requests stay in flight), fork its
 * guest memory copy-on-write (space_fork: frames that may be pinned are
 * copied for the child), save the machine state, clone each device, resume.
 * The child gets the parent's vCPU, irqchip, PIT, clock and device state;
 * its devices re-execute the requests the parent had in flight.  The child
 * is a machine of the same family (same frame pool).
 */
#ifndef FORKVM_VMM_CLONE_H
#define FORKVM_VMM_CLONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/cpus.h"

struct machine;
struct machine_state;

struct clone_config {
	const char *console; /* the child's console file; NULL: stdout */
	const char *console_prefix; /* NULL: none */
	bool quiet_results; /* do not print the child's "result:" lines */
	/* A guest-initiated fork: the child's fork register starts at 0 (else
	 * it is the parent's). */
	bool guest_fork;
	struct cpus_fork_hook fork_hook; /* the child's (request NULL: none) */
	/* NULL, or a child built beforehand (machine_clone_spare()): taken by
	 * machine_clone() whatever its outcome. */
	struct machine *spare;
	/*
	 * Called once the parent runs again, with the child's memory and state
	 * made and its restore still to come: a guest fork answers its parent
	 * here, so the parent waits for its pause only, not for the child.
	 */
	void (*parent_resumed)(void *arg);
	void *parent_resumed_arg;
	/*
	 * Tests only: called after parent_resumed, before the child's restore
	 * (which re-executes the requests in flight), with the parent.  The
	 * policy matrix holds the restore here until the parent has written
	 * its pages, the order in which the legacy policies lose writes.
	 */
	void (*before_restore)(struct machine *parent, void *arg);
	void *before_restore_arg;
	/* Tests only: called on the saved state before the child restores it. */
	void (*tamper)(struct machine_state *ms, void *arg);
	void *tamper_arg;
	/* Tests only: non-NULL, it gets the saved state (and owns it). */
	struct machine_state *saved;
	/* Tests only: the child's devices are held right after their restore
	 * and the child is not started: the caller may save its state, then
	 * calls machine_release_devices() and machine_start().  With a disk
	 * latency, no re-executed request completes before the hold. */
	bool hold_child;
};

struct clone_timing {
	uint64_t prepare_ns; /* building the child's VM and vCPUs, parent running */
	uint64_t paused_ns; /* the parent stopped: pause, hold, fork, state, devices, resume */
	uint64_t vcpus_ns; /* of the pause: stopping the vCPUs and holding the devices */
	uint64_t fork_ns; /* of the pause: space_fork() */
	uint64_t save_ns; /* of the pause: reading the machine state */
	uint64_t devices_ns; /* of the pause: cloning the devices (disk fork) */
	uint64_t restore_ns; /* the child's memslot, state and devices, parent running */
	unsigned int inflight; /* device requests in flight at the instant */
	bool spare; /* the child's VM was built beforehand (prepare_ns: the rest) */
};

/**
 * machine_clone_spare() - the costly, parent-independent part of a child
 * (a KVM VM without RAM, @ncpus vCPUs), built ahead of a clone so that a
 * guest fork does not wait for it (clone_config.spare).  Destroy an unused
 * one with machine_destroy().  Return: 0 or -errno with @err.
 */
int machine_clone_spare(unsigned int ncpus, struct machine **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * machine_clone() - a live copy of @parent, started.
 * @parent: a started machine; it keeps running whatever happens here (a
 *          failed clone resumes it).  It must outlive the child: destroy
 *          every clone before its parent (they share its frame pool).
 * @cc: the child's console and result printing.
 * @child: the new machine, running from the parent's state at the pause.
 * @t: where the time went, or NULL.
 * @err: a one-line reason on failure.
 * Return: 0; -ESRCH if the parent already stopped; -EOPNOTSUPP if it holds
 * a device that cannot be cloned; -EINVAL if the saved state was refused at
 * restore; or -errno (memory, pool full, a KVM call).
 */
int machine_clone(struct machine *parent, const struct clone_config *cc, struct machine **child,
		  struct clone_timing *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_CLONE_H */
