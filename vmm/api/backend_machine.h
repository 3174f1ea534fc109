/* SPDX-License-Identifier: MIT */
/*
 * The control API over a real family of machines (vmm/family.h): the ops of
 * api_backend.h on family_member(), family_clone(), machine_pause() and the
 * frame pool's counters.
 */
#ifndef FORKVM_VMM_API_BACKEND_MACHINE_H
#define FORKVM_VMM_API_BACKEND_MACHINE_H

#include "vmm/api/api_backend.h"

struct family;
struct api_machine_backend;

extern const struct api_backend_ops api_machine_ops;

/**
 * api_machine_backend_create() - a backend (the ops' ctx) over @f.
 * @console: the family's console file (struct family_config's cfg.console;
 *           clone I writes "@console.I"), or NULL when the consoles go to
 *           stdout (then the console call answers 501).
 * Return: 0 or -ENOMEM.
 */
int api_machine_backend_create(struct family *f, const char *console,
			       struct api_machine_backend **out)
    __attribute__((warn_unused_result));

/**
 * api_machine_backend_stop_all() - stop every VM of the family that still
 * runs (status 3, @reason), resuming first the ones paused through the API.
 * Only once the server is stopped: it acts as the server's thread would.
 */
void api_machine_backend_stop_all(struct api_machine_backend *b, const char *reason);

/**
 * api_machine_backend_destroy() - free @b.  Stop the API server first (it
 * calls the ops), and destroy the family after.  NULL is a no-op.
 */
void api_machine_backend_destroy(struct api_machine_backend *b);

#endif /* FORKVM_VMM_API_BACKEND_MACHINE_H */
