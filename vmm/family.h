/* SPDX-License-Identifier: MIT */
/*
 * A family: a parent machine and every machine cloned from it, from outside
 * (`forkvm run --clones N`, family_clone()) or by the guest itself (a write
 * of FORK_MAGIC to PORT_FORK, guest/abi.h).  The family assigns ids (the
 * parent is 0, then 1, 2, ... in the order the clones are made), bounds its
 * size, gives each clone a console of its own, and runs the clone worker:
 * the thread that serves the guests' fork requests, so that no vCPU ever
 * clones from its own thread (it could not pause itself).
 */
#ifndef FORKVM_VMM_FAMILY_H
#define FORKVM_VMM_FAMILY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm.h"
#include "vmm/clone.h"
#include "vmm/machine.h"

/* The parent and up to 64 clones. */
#define FAMILY_MAX_VMS 65u

struct cli;
struct family;

struct family_config {
	struct machine_config cfg; /* the parent's; a clone I writes cfg.console.I */
	unsigned int max_vms; /* 0: FAMILY_MAX_VMS; at most FAMILY_MAX_VMS */
	bool quiet; /* no "forkvm: VM I forked ..." lines on stdout */
	/* Tests only: clone_config.before_restore of every guest fork. */
	void (*before_restore)(struct machine *parent, void *arg);
	void *before_restore_arg;
};

/*
 * One VM of the family.  Read after family_wait(); @m only through
 * family_get() while VMs run (family_reap() may take it away).
 */
struct family_member {
	struct machine *m; /* NULL: not made (failed, being made) or reaped */
	bool reaped; /* stopped, recorded below and its machine let go (family_reap) */
	bool pending; /* its clone is being made (m NULL until it is) */
	unsigned int id;
	unsigned int from; /* the id of the VM it was cloned from (0 for the parent) */
	bool guest_fork; /* made by its parent's guest (PORT_FORK), else from outside */
	struct clone_timing t; /* zero for the parent */
	/* Filled by family_wait(): */
	int status;
	uint32_t result; /* the last port-0x503 value, if has_result */
	bool has_result;
	struct space_stats sst;
	char reason[640]; /* why it stopped, "" for a clean guest exit */
	char console[4200];
};

/**
 * family_restore_after_parent_line() - a family_config.before_restore for
 * the DMA policy matrix: hold a clone's restore until its parent printed
 * one more console line (at most 10 s).  dmastress prints its fork line
 * after writing its pinned pages, so the parent writes them while the fork
 * still shares them: the order in which Linux's legacy copy-on-write rules
 * lost device writes.  Tests and the demo only (--restore-after-parent-line).
 */
void family_restore_after_parent_line(struct machine *parent, void *arg);

/**
 * family_create() - a family whose parent is made from @fc->cfg (not started).
 * Return: 0 or -errno with @err.
 */
int family_create(const struct family_config *fc, struct family **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * family_adopt() - a family whose parent is @m, a machine made elsewhere (a
 * restored snapshot), not started: on success the family owns it, on
 * failure the caller still does.  @fc->cfg's memory size, vCPUs and disks
 * are taken from @m.  Return: 0 or -errno with @err.
 */
int family_adopt(const struct family_config *fc, struct machine *m, struct family **out, char *err,
		 size_t errlen) __attribute__((warn_unused_result));

/** family_start() - start the parent's vCPUs and the clone worker.  Return: 0 or -errno. */
int family_start(struct family *f) __attribute__((warn_unused_result));

/**
 * family_clone() - clone VM @from from outside (as --clones does).  A clone
 * that cannot be made still takes an id (its member has m == NULL).
 * Return: 0 and *@id, -ENOSPC when the family is full (no id taken), or
 * machine_clone()'s error with @err.
 */
int family_clone(struct family *f, unsigned int from, unsigned int *id, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** family_size() - ids taken so far (VMs made, and clones that failed). */
unsigned int family_size(struct family *f);

/** family_member() - VM @id, or NULL past family_size(). */
struct family_member *family_member(struct family *f, unsigned int id);

/** family_parent() - the machine of VM 0 (NULL once reaped). */
struct machine *family_parent(struct family *f);

/**
 * family_get() - a reference to VM @id's machine (machine_put() it), or
 * NULL: no such VM, not made, or reaped.
 */
struct machine *family_get(struct family *f, unsigned int id);

/**
 * family_set_notify() - an eventfd the family writes 1 to each time a
 * member's machine is made (a clone from outside, a guest fork), so that an
 * event loop can watch the new machine's stop (machine_stop_fd()); -1: none.
 */
void family_set_notify(struct family *f, int fd);

/** family_pool() - the family's frame pool (alive as long as the family). */
struct pool *family_pool(struct family *f);

/**
 * family_reap() - VM @id stopped: record its status, results, stats and
 * stop reason in its member and let its machine go (destroyed now, or when
 * the last family_get() reference is put).  The family's pool stays for
 * the others: the template may go first.
 * Return: 0; -ENOENT no such VM; -ESRCH not made or reaped already;
 * -EBUSY it still runs.
 */
int family_reap(struct family *f, unsigned int id);

/**
 * family_wait() - wait until every VM of the family stopped and no fork is
 * pending, at most @timeout_ms in all (0: no limit; VMs still running then
 * are stopped as timed out), and fill each member's status and stats.
 * Return: the family's status: the first non-zero member status in id order
 * (a clone that could not be made counts as 1), else 0.
 */
int family_wait(struct family *f, unsigned int timeout_ms);

/** family_fork_failures() - guest forks answered FORK_FAILED (family full, clone failed). */
unsigned int family_fork_failures(struct family *f);

/** family_destroy() - stop the worker, destroy every VM (clones first); NULL is a no-op. */
void family_destroy(struct family *f);

/**
 * family_report() - after family_wait(): a family of one VM, its stop reason
 * on stderr (if any); of several, each VM and the family's memory on stdout.
 */
void family_report(struct family *f);

/**
 * family_run() - `forkvm run`: @cli's machine, its --clones and whatever
 * its guest forks; run all to the end; with more than one VM, report each
 * VM and the family's memory.
 * Return: the process exit status (family_wait()).
 */
int family_run(const struct cli *cli);

/**
 * family_run_clones() - start @f, clone its parent @clones times at once
 * (as --clones does), run all to the end and report each VM and the
 * family's memory on stdout (`forkvm restore DIR --clones N`).
 * Return: the exit status (family_wait()).
 */
int family_run_clones(struct family *f, unsigned int clones, unsigned int timeout_ms);

#endif /* FORKVM_VMM_FAMILY_H */
