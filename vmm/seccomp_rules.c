// SPDX-License-Identifier: MIT
/*
 * The allowlist of each thread kind.  Found by running the workloads (test
 * guest with disks, clones, guest forks, snapshots, the API; the Linux
 * guest) under `strace -f` with named threads, then read against the code
 * and against what glibc, liburing and libmicrohttpd call underneath
 * (docs/seccomp.md says how to redo it).  Argument checks where a call is
 * broad: no executable mapping anywhere, threads only (no new process), a
 * signal only to ourselves, the vCPU and fault threads' ioctls by number.
 */
#include "vmm/seccomp_rules.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Every thread: memory, locks, signals to ourselves, time, logging. */
static const char *const common[] = {
	"futex",
	"rt_sigprocmask",
	"rt_sigreturn",
	"restart_syscall",
	"exit",
	"exit_group",
	"munmap",
	"madvise",
	"brk",
	"mremap",
	"clock_gettime",
	"clock_nanosleep",
	"nanosleep",
	"gettid",
	"getpid",
	"sched_yield",
	"write",
	"writev",
	"getrandom",
	/* glibc's stdio asks for the stream's file type on its first write. */
	"fstat",
	"newfstatat",
};

/* Thread start and end (pthread_create), for kinds that make threads. */
static const char *const threads[] = {
	"set_robust_list",
	"rseq",
	"sched_getaffinity",
};

/* vCPU: KVM_RUN and what its exits do (serial writes, eventfd kicks of devices). */
static const unsigned long vcpu_ioctls[] = {
	KVM_RUN,
	/* A guest crash is reported with its registers (vcpu_describe()). */
	KVM_GET_REGS,
	KVM_GET_SREGS,
};

/*
 * Guest memory as mm/ manages it, for the fault service and for the device
 * threads that pin and write guest pages: COW copies (copy_file_range
 * between pool offsets, or the direct map), remaps (mmap MAP_FIXED, in
 * the common set), write protection and wakes, hole punches, lazy loads
 * from a snapshot's files.
 */
static const char *const guest_memory[] = {
	"copy_file_range",
	"fallocate",
	"pread64",
	"preadv",
};
static const unsigned long uffd_ioctls[] = {
	UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_WAKE, UFFDIO_WRITEPROTECT, UFFDIO_CONTINUE,
};

/*
 * Devices: queue kicks (eventfd reads), disk I/O by threads or io_uring,
 * completions (irqfd writes), a clone's private disk layer made on its
 * first write (an unlinked new file: see add_new_files()).
 */
static const char *const device[] = {
	"read", "readv", "pwrite64",	   "pwritev", "preadv2", "pwritev2",  "fsync",	"fdatasync",
	"poll", "ppoll", "io_uring_enter", "lseek",   "close",	 "ftruncate", "unlink",
};

/* The fault service: userfaultfd messages, then guest_memory[]. */
static const char *const fault[] = {
	"read",
	"poll",
	"ppoll",
	"close",
};

/*
 * The main thread, the family worker and the API server: everything the
 * VMM does (files, KVM, guest memory, userfaultfd, io_uring, the API's
 * UNIX socket, thread management).  No exec, no new process, no socket
 * but AF_UNIX, no ptrace, no mount, no module, no key, no BPF.
 */
static const char *const control[] = {
	"read",
	"readv",
	"pread64",
	"preadv",
	"preadv2",
	"pwrite64",
	"pwritev",
	"pwritev2",
	"lseek",
	"openat",
	"open",
	"close",
	"close_range",
	"fstat",
	"newfstatat",
	"stat",
	"lstat",
	"statx",
	"statfs",
	"fstatfs",
	"fcntl",
	"dup",
	"dup2",
	"dup3",
	"pipe2",
	"eventfd2",
	"memfd_create",
	"ftruncate",
	"fallocate",
	"fsync",
	"fdatasync",
	"sync_file_range",
	"mkdir",
	"mkdirat",
	"unlink",
	"unlinkat",
	"rename",
	"renameat",
	"renameat2",
	"rmdir",
	"readlink",
	"readlinkat",
	"getdents64",
	"chmod",
	"fchmod",
	"fchmodat",
	"umask",
	"getcwd",
	"access",
	"faccessat",
	"faccessat2",
	"ioctl",
	"userfaultfd",
	"io_uring_setup",
	"io_uring_enter",
	"io_uring_register",
	"poll",
	"ppoll",
	"select",
	"pselect6",
	"epoll_create1",
	"epoll_ctl",
	"epoll_wait",
	"epoll_pwait",
	"rt_sigaction",
	"rt_sigtimedwait",
	"signalfd4",
	"sigaltstack",
	"getuid",
	"geteuid",
	"getgid",
	"getegid",
	"getppid",
	"prlimit64",
	"getrlimit",
	"getrusage",
	"sysinfo",
	"uname",
	"mincore",
	"membarrier",
	"sched_setaffinity",
	"bind",
	"listen",
	"accept",
	"accept4",
	"recvfrom",
	"recvmsg",
	"sendto",
	"sendmsg",
	"shutdown",
	"getsockopt",
	"setsockopt",
	"getsockname",
	"getpeername",
	"seccomp",
};

static int add_names(scmp_filter_ctx ctx, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		int ret;

		/* A name this architecture lacks (open, stat on arm64) is skipped. */
		if (nr == __NR_SCMP_ERROR)
			continue;
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (ret)
			return ret;
	}
	return 0;
}

static int add_ioctls(scmp_filter_ctx ctx, const unsigned long *cmds, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* The request is an unsigned int in the kernel: compare 32 bits. */
		int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					   SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)cmds[i]));

		if (ret)
			return ret;
	}
	return 0;
}

/* mmap and mprotect, never with PROT_EXEC: no new code once we run. */
static int add_memory(scmp_filter_ctx ctx)
{
	int ret;

	ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				       SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	return ret;
}

/* Signals to our own process only (raise, abort, pthread_kill). */
static int add_signals(scmp_filter_ctx ctx, int pid)
{
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)pid));
}

/*
 * Threads, not processes: clone with CLONE_THREAD.  clone3 passes its
 * flags in memory a filter cannot read, so it fails with ENOSYS, which
 * makes glibc fall back to clone.
 */
static int add_threads(scmp_filter_ctx ctx)
{
	int ret = add_names(ctx, threads, ARRAY_SIZE(threads));

	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				       SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return ret;
}

/*
 * Files a device thread may open: new ones only (O_TMPFILE, or O_CREAT |
 * O_EXCL as mkstemp() does), never an existing file of the host for
 * writing.
 */
static int add_new_files(scmp_filter_ctx ctx)
{
	int ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				   SCMP_A2(SCMP_CMP_MASKED_EQ, O_TMPFILE, O_TMPFILE));

	if (!ret)
		ret = seccomp_rule_add(
		    ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
		    SCMP_A2(SCMP_CMP_MASKED_EQ, O_CREAT | O_EXCL, O_CREAT | O_EXCL));
	return ret;
}

/*
 * Read-only opens: mm/ reads /proc/self/maps (its mapping count, on COW
 * and pin paths that device threads run too) and
 * /proc/sys/vm/max_map_count with fopen(..., "re") each time.  A filter
 * cannot see the path, so any file may be opened for reading, none for
 * writing (docs/seccomp.md: what keeping one fd open in mm/ would save).
 */
static int add_read_only_files(scmp_filter_ctx ctx)
{
	return seccomp_rule_add(
	    ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
	    SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC | O_TMPFILE, O_RDONLY));
}

static int add_guest_memory(scmp_filter_ctx ctx)
{
	int ret = add_names(ctx, guest_memory, ARRAY_SIZE(guest_memory));

	if (!ret)
		ret = add_read_only_files(ctx);
	return ret ? ret : add_ioctls(ctx, uffd_ioctls, ARRAY_SIZE(uffd_ioctls));
}

/*
 * Every thread inherits the filter of the thread that made it, and the
 * control threads make them all: so the control set holds every other
 * kind's calls (ioctl, openat and clone are in it without restriction).
 */
static int add_control(scmp_filter_ctx ctx)
{
	int ret = add_names(ctx, control, ARRAY_SIZE(control));

	if (!ret)
		ret = add_names(ctx, device, ARRAY_SIZE(device));
	if (!ret)
		ret = add_names(ctx, fault, ARRAY_SIZE(fault));
	if (!ret)
		ret = add_names(ctx, guest_memory, ARRAY_SIZE(guest_memory));

	if (!ret)
		ret = add_threads(ctx);
	/* The API's socket; nothing that reaches a network. */
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
				       SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	/* Naming a thread (vmm_seccomp_enter()), before its own filter. */
	if (!ret)
		ret = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
				       SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	return ret;
}

int seccomp_rules_add(scmp_filter_ctx ctx, enum vmm_thread_kind kind, int pid)
{
	int ret;

	ret = seccomp_rule_add(ctx, SCMP_ACT_KILL_PROCESS,
			       seccomp_syscall_resolve_name(SECCOMP_DEATH_CALL), 0);
	/* -EACCES: killing is the default action already (kill mode). */
	if (ret == -EACCES)
		ret = 0;
	if (!ret)
		ret = add_names(ctx, common, ARRAY_SIZE(common));
	if (!ret)
		ret = add_memory(ctx);
	if (!ret)
		ret = add_signals(ctx, pid);
	if (ret)
		return ret;
	switch (kind) {
	case VMM_THREAD_MAIN:
	case VMM_THREAD_API:
		return add_control(ctx);
	case VMM_THREAD_VCPU:
		return add_ioctls(ctx, vcpu_ioctls, ARRAY_SIZE(vcpu_ioctls));
	case VMM_THREAD_DEVICE:
		ret = add_names(ctx, device, ARRAY_SIZE(device));
		if (!ret)
			ret = add_guest_memory(ctx);
		if (!ret)
			ret = add_new_files(ctx);
		/* A disk's request finished off its submitter's thread (disk.c). */
		return ret ? ret : add_threads(ctx);
	case VMM_THREAD_FAULT:
		ret = add_names(ctx, fault, ARRAY_SIZE(fault));
		return ret ? ret : add_guest_memory(ctx);
	case VMM_THREAD_KINDS:
		break;
	}
	return -EINVAL;
}
