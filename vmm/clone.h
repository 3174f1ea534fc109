/* SPDX-License-Identifier: MIT */
/*
 * Live clone of a running machine (DESIGN.md 3.1 "Clone (fork)"): pause it,
 * fork its guest memory copy-on-write (space_fork), build a second KVM VM over
 * the child space with the parent's vCPU, irqchip, PIT and clock state, and
 * resume both.  The child is a machine of the same family (same frame pool).
 */
#ifndef FORKVM_VMM_CLONE_H
#define FORKVM_VMM_CLONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct machine;

struct clone_config {
	const char *console; /* the child's console file; NULL: stdout */
	const char *console_prefix; /* NULL: none */
	bool quiet_results; /* do not print the child's "result:" lines */
};

struct clone_timing {
	uint64_t prepare_ns; /* building the child's VM and vCPUs, parent running */
	uint64_t paused_ns; /* the parent stopped: pause, fork, state read, resume */
	uint64_t fork_ns; /* space_fork() alone */
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
 * Return: 0; -ESRCH if the parent already stopped; -EOPNOTSUPP if it has
 * virtio disks (their device state is not cloned yet); or -errno.
 */
int machine_clone(struct machine *parent, const struct clone_config *cc, struct machine **child,
		  struct clone_timing *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_CLONE_H */
