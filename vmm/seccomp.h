/* SPDX-License-Identifier: MIT */
/*
 * A seccomp filter per thread kind (docs/seccomp.md): every thread of a
 * confined forkvm may make only the system calls its kind needs.  Built
 * with Debian's libseccomp.
 *
 * The main thread installs the "main" filter before it makes any thread, so
 * every thread inherits it; vCPU, device and fault threads then add their
 * own narrower one first thing (vmm_thread_start(), through the hooks of
 * mm/thread_hook.h and devices/thread_hook.h).  A thread runs under the
 * intersection of what it inherited and its own filter.
 */
#ifndef FORKVM_VMM_SECCOMP_H
#define FORKVM_VMM_SECCOMP_H

#include <stddef.h>

enum vmm_seccomp_mode {
	VMM_SECCOMP_OFF, /* no filter (--no-seccomp) */
	/*
	 * A forbidden call traps: a SIGSYS handler prints the thread's kind
	 * and the call's name, then makes a call every filter answers with
	 * SECCOMP_RET_KILL_PROCESS.  The default.
	 */
	VMM_SECCOMP_REPORT,
	/* A forbidden call is SECCOMP_RET_KILL_PROCESS at once, silently. */
	VMM_SECCOMP_KILL,
};

/*
 * What run and restore use unless told otherwise.  Not under ASan: its
 * LeakSanitizer checks at exit from a process it clones and ptraces, which
 * no filter allows (SAN=1 builds run unconfined unless --seccomp is given,
 * with ASAN_OPTIONS=detect_leaks=0).
 */
#if defined(__SANITIZE_ADDRESS__)
#define VMM_SECCOMP_DEFAULT VMM_SECCOMP_OFF
#else
#define VMM_SECCOMP_DEFAULT VMM_SECCOMP_REPORT
#endif

enum vmm_thread_kind {
	VMM_THREAD_MAIN, /* main thread, family worker: everything the VMM does */
	VMM_THREAD_API, /* the API server: the main set (it clones, snapshots) */
	VMM_THREAD_VCPU,
	VMM_THREAD_DEVICE, /* virtio service, disk engines, console taps */
	VMM_THREAD_FAULT, /* the userfaultfd service of mm/ */
	VMM_THREAD_KINDS,
};

/** vmm_thread_kind_name() - "main", "api", "vcpu", "device", "fault"; NULL if out of range. */
const char *vmm_thread_kind_name(enum vmm_thread_kind kind);

/** vmm_thread_kind_parse() - the kind named @name, or -EINVAL. */
int vmm_thread_kind_parse(const char *name);

/**
 * vmm_seccomp_start() - confine this process from now on: set the thread
 * hooks of mm/ and devices/, install the SIGSYS reporter (REPORT mode) and
 * the main filter on the calling thread.  Call it from the main thread
 * before any other thread exists.  VMM_SECCOMP_OFF only names the threads.
 * Return: 0, or -errno with @err saying what failed.
 */
int vmm_seccomp_start(enum vmm_seccomp_mode mode, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * vmm_seccomp_enter() - install @kind's filter on the calling thread, in
 * the mode vmm_seccomp_start() chose (nothing when it was not called or
 * was OFF), and name the thread "forkvm-<kind>".  Return: 0 or -errno.
 */
int vmm_seccomp_enter(enum vmm_thread_kind kind);

/**
 * vmm_thread_start() - vmm_seccomp_enter() for the kind named @kind; the
 * hook's signature.  A filter that cannot be installed stops the process
 * with a message: a thread must not run unconfined when confinement was
 * asked for.
 */
void vmm_thread_start(const char *kind);

/**
 * vmm_seccomp_cli_extract() - take --no-seccomp and --seccomp[=report|kill]
 * out of @argv (shifting the rest down, updating *@argc) and set *@mode,
 * first from $FORKVM_SECCOMP (off, report, kill) if set, then from the
 * options; *@mode is left alone when neither says anything.  Return: 0, or -EINVAL with
 * @err saying what was wrong.
 */
int vmm_seccomp_cli_extract(int *argc, char **argv, enum vmm_seccomp_mode *mode, char *err,
			    size_t errlen);

/** vmm_seccomp_cli_usage() - the options' lines for --help. */
const char *vmm_seccomp_cli_usage(void);

#endif /* FORKVM_VMM_SECCOMP_H */
