// SPDX-License-Identifier: MIT
/*
 * Installing the filters of vmm/seccomp_rules.c, and reporting a forbidden
 * call (docs/seccomp.md).
 *
 * Every kind's filter is compiled once, in vmm_seccomp_start(), into a BPF
 * program kept in memory: a thread that starts then loads its program with
 * one seccomp(2), with no libseccomp work (and no allocation) on its path.
 *
 * The report: in REPORT mode a filter answers a forbidden call with
 * SECCOMP_RET_TRAP, so the kernel skips the call and sends the thread a
 * SIGSYS.  Our handler writes one line (kind, thread id, the call's name
 * and arguments) with write(2), which every filter allows, then makes the
 * death call that every filter answers with SECCOMP_RET_KILL_PROCESS.  The
 * forbidden call never runs in either mode; REPORT only adds the line.  No
 * vCPU, device or fault thread may change the handler: rt_sigaction is in
 * the main set only.
 */
#include "vmm/seccomp.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "devices/thread_hook.h"
#include "mm/thread_hook.h"
#include "vmm/seccomp_rules.h"

/* Names of system calls 0..SYSCALL_NAMES-1 (x86-64 has ~460). */
#define SYSCALL_NAMES 512

static const char *const kind_names[VMM_THREAD_KINDS] = {
	[VMM_THREAD_MAIN] = "main",	[VMM_THREAD_API] = "api",     [VMM_THREAD_VCPU] = "vcpu",
	[VMM_THREAD_DEVICE] = "device", [VMM_THREAD_FAULT] = "fault",
};

/* Written by vmm_seccomp_start() before any other thread exists; read-only after. */
static struct {
	enum vmm_seccomp_mode mode;
	long death_nr; /* SECCOMP_DEATH_CALL */
	struct sock_fprog prog[VMM_THREAD_KINDS];
	const char *names[SYSCALL_NAMES];
} sc;

/* The calling thread's kind, for the report. */
static __thread enum vmm_thread_kind my_kind = VMM_THREAD_MAIN;

const char *vmm_thread_kind_name(enum vmm_thread_kind kind)
{
	return (unsigned int)kind < VMM_THREAD_KINDS ? kind_names[kind] : NULL;
}

int vmm_thread_kind_parse(const char *name)
{
	for (int k = 0; k < VMM_THREAD_KINDS; k++)
		if (name && !strcmp(name, kind_names[k]))
			return k;
	return -EINVAL;
}

/* ---- the report (async-signal-safe: no allocation, no stdio) ------------- */

struct line {
	char buf[512];
	size_t len;
};

static void put(struct line *l, const char *s)
{
	while (*s && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = *s++;
}

static void put_num(struct line *l, unsigned long long v, unsigned int base)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (base == 16)
		put(l, "0x");
	while (i > 0 && l->len < sizeof(l->buf) - 1)
		l->buf[l->len++] = tmp[--i];
}

static void on_sigsys(int sig, siginfo_t *si, void *uctx)
{
	const ucontext_t *uc = uctx;
	const greg_t *r = uc->uc_mcontext.gregs;
	const unsigned long long args[] = { r[REG_RDI], r[REG_RSI], r[REG_RDX] };
	int nr = si->si_syscall;
	const char *name = nr >= 0 && nr < SYSCALL_NAMES ? sc.names[nr] : NULL;
	struct line l = { .len = 0 };

	put(&l, "forkvm: seccomp: the ");
	put(&l, kind_names[my_kind]);
	put(&l, " thread (tid ");
	put_num(&l, (unsigned long long)syscall(SYS_gettid), 10);
	put(&l, ") made a forbidden system call: ");
	put(&l, name ? name : "?");
	put(&l, " (nr ");
	put_num(&l, (unsigned int)nr, 10);
	put(&l, ", args ");
	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
		put(&l, i ? ", " : "");
		put_num(&l, args[i], 16);
	}
	put(&l, "); killing forkvm (--no-seccomp runs without filters)\n");
	if (write(STDERR_FILENO, l.buf, l.len) < 0) {
		/* Nothing left to tell: we die next either way. */
	}
	syscall(sc.death_nr);
	/* Unreachable under a filter; without one, still never return. */
	_exit(128 + sig);
}

/* ---- building the programs ------------------------------------------------ */

/* @kind's filter as a BPF program in @prog (malloc()ed). */
static int compile(enum vmm_thread_kind kind, uint32_t refuse, struct sock_fprog *prog)
{
	scmp_filter_ctx ctx = seccomp_init(refuse);
	int fd = -1, ret;
	off_t len;

	if (!ctx)
		return -ENOMEM;
	/* no_new_privs is set once by vmm_seccomp_start(), for every thread. */
	ret = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (!ret)
		ret = seccomp_rules_add(ctx, kind, getpid());
	if (ret)
		goto out;
	fd = memfd_create("forkvm-seccomp", MFD_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = seccomp_export_bpf(ctx, fd);
	if (ret)
		goto out;
	len = lseek(fd, 0, SEEK_END);
	if (len <= 0 || len % sizeof(struct sock_filter) ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		ret = -EOVERFLOW;
		goto out;
	}
	prog->filter = malloc((size_t)len);
	if (!prog->filter) {
		ret = -ENOMEM;
		goto out;
	}
	if (pread(fd, prog->filter, (size_t)len, 0) != len) {
		free(prog->filter);
		prog->filter = NULL;
		ret = -EIO;
		goto out;
	}
	prog->len = (unsigned short)(len / sizeof(struct sock_filter));
out:
	if (fd >= 0)
		close(fd);
	seccomp_release(ctx);
	return ret;
}

static int install_reporter(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, NULL) ? -errno : 0;
}

static void hook(const char *kind)
{
	vmm_thread_start(kind);
}

int vmm_seccomp_start(enum vmm_seccomp_mode mode, char *err, size_t errlen)
{
	uint32_t refuse = mode == VMM_SECCOMP_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_TRAP;
	int ret;

	mm_thread_start_hook = hook;
	devices_thread_start_hook = hook;
	if (mode == VMM_SECCOMP_OFF)
		return 0;
	sc.death_nr = seccomp_syscall_resolve_name(SECCOMP_DEATH_CALL);
	for (int nr = 0; nr < SYSCALL_NAMES; nr++)
		sc.names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
	for (int k = 0; k < VMM_THREAD_KINDS; k++) {
		ret = compile(k, refuse, &sc.prog[k]);
		if (ret) {
			snprintf(err, errlen, "seccomp: the %s filter: %s", kind_names[k],
				 strerror(-ret));
			return ret;
		}
	}
	if (mode == VMM_SECCOMP_REPORT && (ret = install_reporter())) {
		snprintf(err, errlen, "seccomp: SIGSYS handler: %s", strerror(-ret));
		return ret;
	}
	/* Without it an unprivileged process may not install a filter. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		ret = -errno;
		snprintf(err, errlen, "seccomp: PR_SET_NO_NEW_PRIVS: %s", strerror(-ret));
		return ret;
	}
	sc.mode = mode;
	ret = vmm_seccomp_enter(VMM_THREAD_MAIN);
	if (ret)
		snprintf(err, errlen, "seccomp: the main filter: %s", strerror(-ret));
	return ret;
}

int vmm_seccomp_enter(enum vmm_thread_kind kind)
{
	char name[16];

	if ((unsigned int)kind >= VMM_THREAD_KINDS)
		return -EINVAL;
	/* "forkvm-<kind>", shown by top -H and ps -L; the main thread keeps its name. */
	if (kind != VMM_THREAD_MAIN) {
		snprintf(name, sizeof(name), "forkvm-%s", kind_names[kind]);
		prctl(PR_SET_NAME, name, 0, 0, 0);
	}
	my_kind = kind;
	if (sc.mode == VMM_SECCOMP_OFF)
		return 0;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &sc.prog[kind]))
		return -errno;
	return 0;
}

void vmm_thread_start(const char *kind)
{
	int k = vmm_thread_kind_parse(kind);
	int ret = k < 0 ? k : vmm_seccomp_enter(k);

	if (ret) {
		fprintf(stderr, "forkvm: seccomp: cannot confine a '%s' thread: %s\n",
			kind ? kind : "(null)", strerror(-ret));
		abort();
	}
}

/* ---- command line ---------------------------------------------------------- */

/* FORKVM_SECCOMP=off|report|kill: the default the options override. */
static int mode_from_env(enum vmm_seccomp_mode *mode, char *err, size_t errlen)
{
	const char *e = getenv("FORKVM_SECCOMP");

	if (!e || !*e)
		return 0;
	if (!strcmp(e, "off"))
		*mode = VMM_SECCOMP_OFF;
	else if (!strcmp(e, "report"))
		*mode = VMM_SECCOMP_REPORT;
	else if (!strcmp(e, "kill"))
		*mode = VMM_SECCOMP_KILL;
	else {
		snprintf(err, errlen, "FORKVM_SECCOMP='%s': expected off, report or kill", e);
		return -EINVAL;
	}
	return 0;
}

int vmm_seccomp_cli_extract(int *argc, char **argv, enum vmm_seccomp_mode *mode, char *err,
			    size_t errlen)
{
	int i = 1, j;

	if (mode_from_env(mode, err, errlen))
		return -EINVAL;

	while (i < *argc) {
		const char *a = argv[i];

		if (!strcmp(a, "--"))
			break;
		if (!strcmp(a, "--no-seccomp"))
			*mode = VMM_SECCOMP_OFF;
		else if (!strcmp(a, "--seccomp") || !strcmp(a, "--seccomp=report"))
			*mode = VMM_SECCOMP_REPORT;
		else if (!strcmp(a, "--seccomp=kill"))
			*mode = VMM_SECCOMP_KILL;
		else if (!strncmp(a, "--seccomp=", 10)) {
			snprintf(err, errlen, "'%s': expected --seccomp=report or --seccomp=kill",
				 a);
			return -EINVAL;
		} else {
			i++;
			continue;
		}
		for (j = i; j < *argc; j++)
			argv[j] = argv[j + 1];
		(*argc)--;
	}
	return 0;
}

const char *vmm_seccomp_cli_usage(void)
{
	return "run and restore confine every thread with a seccomp filter of its kind\n"
	       "(docs/seccomp.md); a forbidden system call kills forkvm:\n"
	       "  --seccomp[=report]    the default: first print which thread made which\n"
	       "                        call, then die (SIGSYS)\n"
	       "  --seccomp=kill        die at once (SECCOMP_RET_KILL_PROCESS), silently\n"
	       "  --no-seccomp          no filters\n"
	       "  (FORKVM_SECCOMP=off|report|kill sets the default these options override)\n";
}
