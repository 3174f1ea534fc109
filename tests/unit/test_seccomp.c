// SPDX-License-Identifier: MIT
/*
 * The seccomp filters of vmm/seccomp.c, without KVM: each test forks a
 * child that confines itself (vmm_seccomp_start(), then a thread of the
 * kind under test), makes one call, and exits 0 if the call came back.
 * The parent reads the child's end (exit or signal) and its stderr.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "devices/thread_hook.h"
#include "mm/thread_hook.h"
#include "vmm/seccomp.h"

/* Exit codes of the child that are not the call's doing. */
#define CHILD_CANNOT_START 100
#define CHILD_CANNOT_ENTER 101

struct call {
	enum vmm_thread_kind kind;
	int (*fn)(void); /* 0 when the call did what it should */
	const char *hook; /* enter through this hook ("device", "fault"), not directly */
};

struct end {
	int status;
	char err[2048];
};

static void *thread_main(void *arg)
{
	const struct call *c = arg;

	if (c->hook && !strcmp(c->hook, "device"))
		devices_thread_start("device");
	else if (c->hook)
		mm_thread_start(c->hook);
	else if (vmm_seccomp_enter(c->kind))
		_exit(CHILD_CANNOT_ENTER);
	return (void *)(intptr_t)c->fn();
}

/* Run @c in a child confined in @mode; the main kind runs on the main thread. */
static void run(const struct call *c, enum vmm_seccomp_mode mode, struct end *e)
{
	int p[2];
	pid_t pid;
	ssize_t n, len = 0;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char err[256];
		pthread_t t;
		void *ret;

		dup2(p[1], STDERR_FILENO);
		close(p[0]);
		if (vmm_seccomp_start(mode, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			_exit(CHILD_CANNOT_START);
		}
		if (c->kind == VMM_THREAD_MAIN)
			_exit(c->fn());
		if (pthread_create(&t, NULL, thread_main, (void *)c))
			_exit(CHILD_CANNOT_START);
		pthread_join(t, &ret);
		_exit((int)(intptr_t)ret);
	}
	close(p[1]);
	while ((n = read(p[0], e->err + len, sizeof(e->err) - 1 - (size_t)len)) > 0)
		len += n;
	e->err[len] = '\0';
	close(p[0]);
	cr_assert_eq(waitpid(pid, &e->status, 0), pid);
}

static void expect_killed(const struct call *c, const char *kind, const char *call)
{
	struct end e;
	char want[128];

	run(c, VMM_SECCOMP_REPORT, &e);
	cr_assert(WIFSIGNALED(e.status) && WTERMSIG(e.status) == SIGSYS,
		  "the %s thread's %s did not die by SIGSYS (status 0x%x): %s", kind, call,
		  e.status, e.err);
	snprintf(want, sizeof(want), "forkvm: seccomp: the %s thread (tid ", kind);
	cr_expect_not_null(strstr(e.err, want), "no '%s' in: %s", want, e.err);
	snprintf(want, sizeof(want), "forbidden system call: %s (nr ", call);
	cr_expect_not_null(strstr(e.err, want), "no '%s' in: %s", want, e.err);

	/* kill mode: the same end, at once and without a word. */
	run(c, VMM_SECCOMP_KILL, &e);
	cr_assert(WIFSIGNALED(e.status) && WTERMSIG(e.status) == SIGSYS,
		  "kill mode: the %s thread's %s did not die by SIGSYS (status 0x%x): %s", kind,
		  call, e.status, e.err);
	cr_expect_null(strstr(e.err, "seccomp"), "kill mode wrote: %s", e.err);
}

static void expect_allowed(const struct call *c, const char *what)
{
	struct end e;

	run(c, VMM_SECCOMP_REPORT, &e);
	cr_expect(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0,
		  "%s: status 0x%x (exit %d), stderr: %s", what, e.status,
		  WIFEXITED(e.status) ? WEXITSTATUS(e.status) : -1, e.err);
}

/* ---- calls --------------------------------------------------------------- */

static int call_execve(void)
{
	char *const argv[] = { "/bin/true", NULL };

	execve("/bin/true", argv, NULL);
	return 1;
}

static int call_socket_inet(void)
{
	return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 1 : 2;
}

static int call_open_existing(void)
{
	return open("/etc/passwd", O_RDONLY | O_CLOEXEC) >= 0 ? 1 : 2;
}

static int call_open_existing_for_writing(void)
{
	return open("/tmp", O_RDWR | O_CLOEXEC) >= 0 ? 1 : 2;
}

/* mm/'s mapping count, on paths device and fault threads run. */
static int call_read_own_maps(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 12;
	close(fd);
	return 0;
}

static int call_fork(void)
{
	/* glibc's fork() is clone without CLONE_THREAD. */
	pid_t pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);

	if (pid == 0)
		_exit(0);
	return 1;
}

static int call_mmap_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p != MAP_FAILED ? 1 : 2;
}

static int call_tty_ioctl(void)
{
	struct termios t;

	return ioctl(STDERR_FILENO, TCGETS, &t) == 0 ? 1 : 2;
}

static int call_kill_other(void)
{
	/* init, which no filter lets us signal (signal 0: nothing is sent). */
	return syscall(SYS_tgkill, 1, 1, 0) == 0 ? 1 : 2;
}

/* What every kind needs: memory, a lock, a write, time. */
static int call_everyday(void)
{
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	struct timespec ts;
	char *p = malloc(1 << 20); /* mmap'd: above glibc's threshold */

	if (!p)
		return 3;
	memset(p, 1, 1 << 20);
	free(p);
	pthread_mutex_lock(&m);
	pthread_mutex_unlock(&m);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	fprintf(stderr, "everyday\n");
	return 0;
}

/* An allowed ioctl number goes through to the fd (not KVM's here: ENOTTY). */
static int call_kvm_run_on_a_pipe(void)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	/* KVM_RUN, and the register reads of a crash report. */
	if (ioctl(STDERR_FILENO, KVM_RUN, 0) == 0 || errno != ENOTTY)
		return 4;
	if (ioctl(STDERR_FILENO, KVM_GET_REGS, &regs) == 0 || errno != ENOTTY)
		return 13;
	return ioctl(STDERR_FILENO, KVM_GET_SREGS, &sregs) < 0 && errno == ENOTTY ? 0 : 14;
}

/* A device thread makes a thread (clone3 says ENOSYS, glibc falls back). */
static void *nothing(void *arg)
{
	return arg;
}

static int call_pthread_create(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, nothing, NULL))
		return 5;
	pthread_join(t, NULL);
	return 0;
}

static int call_eventfd_kick(void)
{
	int fd = eventfd(0, EFD_CLOEXEC);
	uint64_t v = 1;

	if (fd < 0)
		return 8;
	if (write(fd, &v, sizeof(v)) != sizeof(v) || read(fd, &v, sizeof(v)) != sizeof(v))
		return 9;
	close(fd);
	return v == 1 ? 0 : 10;
}

/* A COW copy: the kind allows it and so must the main filter it inherits. */
static int call_copy_file_range(void)
{
	return copy_file_range(-1, NULL, -1, NULL, 4096, 0) < 0 && errno == EBADF ? 0 : 11;
}

static int call_new_file(void)
{
	int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR)
		return 6;
	if (fd >= 0)
		close(fd);
	return 0;
}

static int call_uffd_ioctl_on_a_pipe(void)
{
	struct uffdio_range { /* the layout of linux/userfaultfd.h's */
		uint64_t start, len;
	} r = { 0, 4096 };

	/* UFFDIO_WAKE's number, on a pipe: ENOTTY, not SIGSYS. */
	return ioctl(STDERR_FILENO, _IOR(0xAA, 0x02, struct uffdio_range), &r) < 0 &&
		       errno == ENOTTY
		   ? 0
		   : 7;
}

/* ---- forbidden calls: every kind dies, saying who and what ----------------- */

Test(seccomp, main_thread_execve_kills_with_a_message)
{
	struct call c = { VMM_THREAD_MAIN, call_execve, NULL };

	expect_killed(&c, "main", "execve");
}

Test(seccomp, main_thread_inet_socket_kills)
{
	struct call c = { VMM_THREAD_MAIN, call_socket_inet, NULL };

	expect_killed(&c, "main", "socket");
}

Test(seccomp, main_thread_fork_kills)
{
	struct call c = { VMM_THREAD_MAIN, call_fork, NULL };

	expect_killed(&c, "main", "clone");
}

Test(seccomp, api_thread_execve_kills_with_a_message)
{
	struct call c = { VMM_THREAD_API, call_execve, NULL };

	expect_killed(&c, "api", "execve");
}

Test(seccomp, vcpu_thread_socket_kills_with_a_message)
{
	struct call c = { VMM_THREAD_VCPU, call_socket_inet, NULL };

	expect_killed(&c, "vcpu", "socket");
}

Test(seccomp, vcpu_thread_open_kills)
{
	struct call c = { VMM_THREAD_VCPU, call_open_existing, NULL };

	expect_killed(&c, "vcpu", "openat");
}

Test(seccomp, vcpu_thread_other_ioctl_kills)
{
	struct call c = { VMM_THREAD_VCPU, call_tty_ioctl, NULL };

	expect_killed(&c, "vcpu", "ioctl");
}

Test(seccomp, vcpu_thread_executable_mapping_kills)
{
	struct call c = { VMM_THREAD_VCPU, call_mmap_exec, NULL };

	expect_killed(&c, "vcpu", "mmap");
}

Test(seccomp, vcpu_thread_signal_to_another_process_kills)
{
	struct call c = { VMM_THREAD_VCPU, call_kill_other, NULL };

	expect_killed(&c, "vcpu", "tgkill");
}

Test(seccomp, device_thread_execve_kills_with_a_message)
{
	struct call c = { VMM_THREAD_DEVICE, call_execve, NULL };

	expect_killed(&c, "device", "execve");
}

Test(seccomp, device_thread_opening_an_existing_file_for_writing_kills)
{
	struct call c = { VMM_THREAD_DEVICE, call_open_existing_for_writing, NULL };

	expect_killed(&c, "device", "openat");
}

Test(seccomp, device_thread_fork_kills)
{
	struct call c = { VMM_THREAD_DEVICE, call_fork, NULL };

	expect_killed(&c, "device", "clone");
}

Test(seccomp, fault_thread_socket_kills_with_a_message)
{
	struct call c = { VMM_THREAD_FAULT, call_socket_inet, NULL };

	expect_killed(&c, "fault", "socket");
}

Test(seccomp, fault_thread_tty_ioctl_kills)
{
	struct call c = { VMM_THREAD_FAULT, call_tty_ioctl, NULL };

	expect_killed(&c, "fault", "ioctl");
}

/* The hooks of devices/ and mm/ install the kind's filter. */
Test(seccomp, the_device_hook_confines_its_thread)
{
	struct call c = { VMM_THREAD_DEVICE, call_socket_inet, "device" };

	expect_killed(&c, "device", "socket");
}

Test(seccomp, the_mm_hook_confines_the_fault_thread)
{
	struct call c = { VMM_THREAD_FAULT, call_execve, "fault" };

	expect_killed(&c, "fault", "execve");
}

/* ---- allowed calls go through ------------------------------------------- */

Test(seccomp, every_kind_allocates_locks_writes_and_reads_the_clock)
{
	for (int k = 0; k < VMM_THREAD_KINDS; k++) {
		struct call c = { k, call_everyday, NULL };

		expect_allowed(&c, vmm_thread_kind_name(k));
	}
}

Test(seccomp, vcpu_thread_may_run_and_read_its_registers)
{
	struct call c = { VMM_THREAD_VCPU, call_kvm_run_on_a_pipe, NULL };

	expect_allowed(&c, "vcpu KVM_RUN");
}

Test(seccomp, device_thread_may_make_a_thread)
{
	struct call c = { VMM_THREAD_DEVICE, call_pthread_create, NULL };

	expect_allowed(&c, "device pthread_create");
}

Test(seccomp, device_thread_may_make_a_new_unlinked_file)
{
	struct call c = { VMM_THREAD_DEVICE, call_new_file, NULL };

	expect_allowed(&c, "device O_TMPFILE");
}

Test(seccomp, device_and_fault_threads_may_read_the_mapping_count)
{
	struct call d = { VMM_THREAD_DEVICE, call_read_own_maps, NULL };
	struct call f = { VMM_THREAD_FAULT, call_read_own_maps, NULL };

	expect_allowed(&d, "device /proc/self/maps");
	expect_allowed(&f, "fault /proc/self/maps");
}

Test(seccomp, fault_thread_may_issue_userfaultfd_ioctls)
{
	struct call c = { VMM_THREAD_FAULT, call_uffd_ioctl_on_a_pipe, NULL };

	expect_allowed(&c, "fault UFFDIO_WAKE");
}

/*
 * A thread runs under its own filter and the one it inherited: what a kind
 * allows, the main filter must allow too (a fault thread's COW copy).
 */
Test(seccomp, guest_memory_calls_pass_both_filters_of_fault_and_device_threads)
{
	struct call f = { VMM_THREAD_FAULT, call_copy_file_range, NULL };
	struct call d = { VMM_THREAD_DEVICE, call_copy_file_range, NULL };

	expect_allowed(&f, "fault copy_file_range");
	expect_allowed(&d, "device copy_file_range");
}

Test(seccomp, main_thread_may_make_an_eventfd_and_threads)
{
	struct call a = { VMM_THREAD_MAIN, call_eventfd_kick, NULL };
	struct call b = { VMM_THREAD_MAIN, call_pthread_create, NULL };

	expect_allowed(&a, "main eventfd");
	expect_allowed(&b, "main pthread_create");
}

Test(seccomp, off_mode_confines_nothing)
{
	struct call c = { VMM_THREAD_VCPU, call_open_existing, NULL };
	struct end e;

	run(&c, VMM_SECCOMP_OFF, &e);
	cr_expect(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 1, "status 0x%x: %s", e.status,
		  e.err);
}

/* ---- options ------------------------------------------------------------- */

Test(seccomp, options_are_taken_out_of_argv)
{
	char *argv[] = { "forkvm",	   "run", "--no-seccomp", "--workload", "hello",
			 "--seccomp=kill", NULL };
	int argc = 6;
	enum vmm_seccomp_mode m = VMM_SECCOMP_REPORT;
	char err[128] = "";

	unsetenv("FORKVM_SECCOMP");
	cr_assert_eq(vmm_seccomp_cli_extract(&argc, argv, &m, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(m, VMM_SECCOMP_KILL, "the last option wins");
	cr_assert_eq(argc, 4);
	cr_expect_str_eq(argv[2], "--workload");
	cr_expect_str_eq(argv[3], "hello");
	cr_expect_null(argv[4]);
}

Test(seccomp, a_bad_mode_is_refused_naming_it)
{
	char *argv[] = { "forkvm", "run", "--seccomp=trap", NULL };
	int argc = 3;
	enum vmm_seccomp_mode m = VMM_SECCOMP_OFF;
	char err[128] = "";

	unsetenv("FORKVM_SECCOMP");
	cr_expect_eq(vmm_seccomp_cli_extract(&argc, argv, &m, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "'--seccomp=trap'"), "%s", err);
}

Test(seccomp, the_environment_sets_the_default_and_options_override_it)
{
	char *argv[] = { "forkvm", "run", NULL };
	char *argv2[] = { "forkvm", "run", "--seccomp", NULL };
	int argc = 2, argc2 = 3;
	enum vmm_seccomp_mode m = VMM_SECCOMP_REPORT;
	char err[128] = "";

	setenv("FORKVM_SECCOMP", "off", 1);
	cr_assert_eq(vmm_seccomp_cli_extract(&argc, argv, &m, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(m, VMM_SECCOMP_OFF);
	cr_assert_eq(vmm_seccomp_cli_extract(&argc2, argv2, &m, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(m, VMM_SECCOMP_REPORT);
	setenv("FORKVM_SECCOMP", "maybe", 1);
	cr_expect_eq(vmm_seccomp_cli_extract(&argc, argv, &m, err, sizeof(err)), -EINVAL);
	cr_expect_not_null(strstr(err, "FORKVM_SECCOMP='maybe'"), "%s", err);
	unsetenv("FORKVM_SECCOMP");
}

Test(seccomp, kinds_have_names_both_ways)
{
	for (int k = 0; k < VMM_THREAD_KINDS; k++)
		cr_expect_eq(vmm_thread_kind_parse(vmm_thread_kind_name(k)), k);
	cr_expect_eq(vmm_thread_kind_parse("gpu"), -EINVAL);
	cr_expect_null(vmm_thread_kind_name(VMM_THREAD_KINDS));
}
