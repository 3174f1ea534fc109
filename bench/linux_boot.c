// SPDX-License-Identifier: MIT
/*
 * Boot to /init of Debian's stock kernel with the build's initramfs
 * (docs/linux-guest.md): forkvm against QEMU (-accel kvm -M pc, the same
 * kernel, initramfs, memory and command line) in the same run.  Measured
 * from the start of the process to the console line "forkvm-init: up"
 * (/init's first line), and to the process's end for forkvm.
 *
 * Needs KVM: run it through scripts/in-kvm; on the nested path QEMU and its
 * firmware must be carried in: FORKVM_NESTED_FILES="/usr/bin/qemu-system-x86_64
 * /usr/share/seabios/bios-256k.bin /usr/share/qemu/linuxboot_dma.bin
 * /usr/share/qemu/kvmvapic.bin".  Three boots each.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"

#define REPS 3
#define APPEND "console=ttyS0 reboot=t panic=-1 quiet forkvm_run=hello"

/*
 * Run @argv, read its stdout until @marker appears: *@t_marker gets the
 * microseconds to it (-1: never), *@t_end to the exit.  @kill_at_marker
 * stops it there (QEMU cannot be told to exit by the guest).
 */
static int timed_run(char *const *argv, const char *marker, int kill_at_marker, double *t_marker,
		     double *t_end)
{
	char buf[65536];
	size_t used = 0;
	int pfd[2], status;
	double t0 = now_us();
	pid_t pid;

	*t_marker = -1;
	if (pipe(pfd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		dup2(null, STDIN_FILENO);
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], buf + used, sizeof(buf) - 1 - used);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		used += (size_t)r;
		buf[used] = '\0';
		if (*t_marker < 0 && strstr(buf, marker)) {
			*t_marker = now_us() - t0;
			if (kill_at_marker)
				kill(pid, SIGTERM);
		}
		if (used > sizeof(buf) / 2) {
			/* Keep the tail: the marker may straddle. */
			memmove(buf, buf + used - 256, 256);
			used = 256;
		}
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*t_end = now_us() - t0;
	return 0;
}

int main(int argc, char **argv)
{
	char dir[512], forkvm[600], kernel[600], initrd[600], *slash;
	const char *o = getenv("FORKVM_OUT");
	double f_init[REPS], f_end[REPS], q_init[REPS], q_end[REPS];
	int reps = bench_reps(REPS), i, nq = 0, fd;

	/* The build dir: $FORKVM_OUT, else the one this program sits in (OUT/bench/). */
	if (o && *o) {
		snprintf(dir, sizeof(dir), "%s", o);
	} else {
		snprintf(dir, sizeof(dir), "%s", argv[0]);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		strncat(dir, "/..", sizeof(dir) - strlen(dir) - 1);
	}
	snprintf(forkvm, sizeof(forkvm), "%s/forkvm", dir);
	snprintf(kernel, sizeof(kernel), "%s/linux/vmlinuz", dir);
	snprintf(initrd, sizeof(initrd), "%s/linux/initrd.cpio", dir);
	fd = open("/dev/kvm", O_RDWR);
	if (fd < 0) {
		printf("linux_boot: skipped: no /dev/kvm (%s); run it through scripts/in-kvm\n",
		       strerror(errno));
		return 0;
	}
	close(fd);
	if (access(kernel, R_OK) || access(initrd, R_OK)) {
		printf("linux_boot: FAILED: no %s or %s (make builds them)\n", kernel, initrd);
		return 1;
	}

	for (i = 0; i < reps; i++) {
		char *fargv[] = { forkvm,      "run",	"--kernel", kernel,	 "--initrd",
				  initrd,      "--mem", "256M",	    "--cmdline", APPEND,
				  "--timeout", "300",	NULL };
		char *qargv[] = { "qemu-system-x86_64",
				  "-accel",
				  "kvm",
				  "-M",
				  "pc",
				  "-m",
				  "256M",
				  "-nodefaults",
				  "-display",
				  "none",
				  "-no-reboot",
				  "-serial",
				  "stdio",
				  "-kernel",
				  kernel,
				  "-initrd",
				  initrd,
				  "-append",
				  APPEND,
				  NULL };

		if (timed_run(fargv, "forkvm-init: up", 0, &f_init[i], &f_end[i]) ||
		    f_init[i] < 0) {
			printf("linux_boot: FAILED: forkvm did not reach /init\n");
			return 1;
		}
		printf("linux_boot: forkvm boot %d: /init at %.0f ms, exit at %.0f ms\n", i + 1,
		       f_init[i] / 1e3, f_end[i] / 1e3);
		if (timed_run(qargv, "forkvm-init: up", 1, &q_init[nq], &q_end[nq]) == 0 &&
		    q_init[nq] >= 0) {
			printf("linux_boot: qemu boot %d: /init at %.0f ms\n", i + 1,
			       q_init[nq] / 1e3);
			nq++;
		}
	}
	printf("linux_boot_to_init_forkvm_ms: %.0f\n", median(f_init, reps) / 1e3);
	printf("linux_boot_to_exit_forkvm_ms: %.0f\n", median(f_end, reps) / 1e3);
	if (nq) {
		double q = median(q_init, nq) / 1e3, f = median(f_init, reps) / 1e3;

		printf("linux_boot_to_init_qemu_ms: %.0f\n", q);
		printf("linux_boot_to_init_qemu_over_forkvm: %.2f\n", q / f);
	} else {
		printf("linux_boot_to_init_qemu_ms: n/a (qemu-system-x86_64 -accel kvm did not "
		       "reach /init)\n");
	}
	return 0;
}
