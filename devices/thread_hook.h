/* SPDX-License-Identifier: MIT */
/*
 * A hook run first thing on the device threads (virtio service, disk
 * engines and their helpers), so that the VMM can confine them
 * (vmm/seccomp.c installs the thread's seccomp filter) without devices/
 * knowing of the VMM or of libseccomp.
 */
#ifndef FORKVM_DEVICES_THREAD_HOOK_H
#define FORKVM_DEVICES_THREAD_HOOK_H

/*
 * Set once, before the first device exists, by whoever embeds devices/; NULL
 * (the default) runs nothing.  @kind names the thread: "device".
 */
extern void (*devices_thread_start_hook)(const char *kind);

/** devices_thread_start() - run the hook, if any, on the calling thread. */
static inline void devices_thread_start(const char *kind)
{
	if (devices_thread_start_hook)
		devices_thread_start_hook(kind);
}

#endif /* FORKVM_DEVICES_THREAD_HOOK_H */
