/* SPDX-License-Identifier: MIT */
/*
 * `forkvm restore DIR --api SOCKET`: the restored machine as VM 0 of a
 * family, served by the control API as `forkvm run --api` serves a run
 * (vmm/api/api_run.h): clones, pauses, snapshots of the restored guest
 * through the socket, and the run ends on SIGINT or SIGTERM.
 */
#ifndef FORKVM_VMM_API_API_RESTORE_H
#define FORKVM_VMM_API_API_RESTORE_H

struct restore_opts;

/**
 * api_restore_main() - restore the snapshot in @dir with @o, serve the API
 * on @sock, run until every VM stopped (at most @timeout_ms, 0: no limit)
 * and a signal came.  @clones: restore's --clones, refused with the API
 * (clones are made through it).
 * Return: the exit status: the family's (family_wait()), 1 for a snapshot
 * refused or a host error, 2 for bad arguments (a socket path of the wrong
 * length, --clones).
 */
int api_restore_main(const char *dir, const struct restore_opts *o, unsigned int timeout_ms,
		     const char *sock, unsigned int clones);

#endif /* FORKVM_VMM_API_API_RESTORE_H */
