/* SPDX-License-Identifier: MIT */
/*
 * `forkvm run ... --api SOCKET`: the control API served over a running
 * family, and the run's life around it.  With the API a run does not end
 * when its VMs stop (a client may still ask how they ended): it ends on
 * SIGINT or SIGTERM, which also stop the VMs that still run.
 */
#ifndef FORKVM_VMM_API_API_RUN_H
#define FORKVM_VMM_API_API_RUN_H

#include <stdbool.h>
#include <stddef.h>

struct family;
struct api_run;

/**
 * api_run_block_signals() - block SIGINT and SIGTERM in the calling thread,
 * so that every thread created after it inherits the mask and only the
 * API run's signal thread takes them.  Call before the family's threads
 * exist.  Return: 0 or -errno.
 */
int api_run_block_signals(void) __attribute__((warn_unused_result));

/**
 * api_run_start() - serve the API for @f on @path and start the signal
 * thread.  @console: the family's console file or NULL (stdout).
 * Return: 0, or -errno with a one-line reason in @err.
 */
int api_run_start(struct family *f, const char *path, const char *console, struct api_run **out,
		  char *err, size_t errlen) __attribute__((warn_unused_result));

/**
 * api_run_finish() - after the family's VMs have stopped: wait for SIGINT
 * or SIGTERM (unless one came already), stop serving, free @r.  NULL is a
 * no-op.  Return: true if the run was ended by a signal while VMs ran.
 */
bool api_run_finish(struct api_run *r);

#endif /* FORKVM_VMM_API_API_RUN_H */
