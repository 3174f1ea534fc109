/* SPDX-License-Identifier: MIT */
/*
 * A hook run first thing on mm's own threads (the fault service), so that
 * the VMM can confine them (vmm/seccomp.c installs the thread's seccomp
 * filter) without mm/ knowing of the VMM or of libseccomp.
 */
#ifndef FORKVM_MM_THREAD_HOOK_H
#define FORKVM_MM_THREAD_HOOK_H

/*
 * Set once, before the first space exists, by whoever embeds mm/; NULL
 * (the default) runs nothing.  @kind names the thread: "fault".
 */
extern void (*mm_thread_start_hook)(const char *kind);

/** mm_thread_start() - run the hook, if any, on the calling thread. */
static inline void mm_thread_start(const char *kind)
{
	if (mm_thread_start_hook)
		mm_thread_start_hook(kind);
}

#endif /* FORKVM_MM_THREAD_HOOK_H */
