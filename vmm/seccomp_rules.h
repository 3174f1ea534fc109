/* SPDX-License-Identifier: MIT */
/*
 * The allowlists of vmm/seccomp.c, one per thread kind, as libseccomp rules.
 * Internal to vmm/seccomp*.c.
 */
#ifndef FORKVM_VMM_SECCOMP_RULES_H
#define FORKVM_VMM_SECCOMP_RULES_H

#include <seccomp.h>

#include "vmm/seccomp.h"

/*
 * A system call every filter answers with SECCOMP_RET_KILL_PROCESS:
 * x86-64's tuxcall, never implemented (ENOSYS without a filter), which
 * no code of ours or of our libraries makes.  The SIGSYS reporter makes it
 * to die once it has printed its message.
 */
#define SECCOMP_DEATH_CALL "tuxcall"

/**
 * seccomp_rules_add() - add @kind's allowlist to @ctx (made with a default
 * action that refuses), plus the death call.  @pid is the process's id,
 * the only target tgkill() may name.  Return: 0 or -errno (a name
 * libseccomp does not know, out of memory).
 */
int seccomp_rules_add(scmp_filter_ctx ctx, enum vmm_thread_kind kind, int pid);

#endif /* FORKVM_VMM_SECCOMP_RULES_H */
