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
	/* Tests only: called on the saved state before the child restores it. */
	void (*tamper)(struct machine_state *ms, void *arg);
	void *tamper_arg;
	/* Tests only: non-NULL, it gets the saved state (and owns it). */
	struct machine_state *saved;
};

struct clone_timing {
	uint64_t prepare_ns; /* building the child's VM and vCPUs, parent running */
	uint64_t paused_ns; /* the parent stopped: pause, hold, fork, state, devices, resume */
	uint64_t fork_ns; /* space_fork() alone */
	uint64_t restore_ns; /* the child's memslot, state and devices, parent running */
	unsigned int inflight; /* device requests in flight at the instant */
};

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
