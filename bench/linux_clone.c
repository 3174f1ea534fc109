// SPDX-License-Identifier: MIT
/*
 * Question: what does a clone of a running Linux guest cost, against the
 * host kernel's fork() of a process with as much memory touched?  (The
 * same question as clone_vm_vs_fork, with Debian's stock kernel and the
 * build's initramfs instead of the test guest: docs/linux-guest.md.)
 *
 * forkvm: a Linux guest of 256 MiB, then one of 1 GiB, boots and fills
 * 3/8 of its RAM through tmpfs (/init's sh workload: dd of /dev/zero into
 * /tmp, then sleep), then is cloned with machine_clone() three times
 * (each child runs on, idle, until it is destroyed; the child's VM is
 * built beforehand, as a family does).  Host: this process with an
 * anonymous mapping of as many bytes as the guest has frames present (4 KiB
 * pages, MADV_NOHUGEPAGE, like the guest's frames), fork()ed three times.
 * Medians; a ratio < 1 means forkvm is faster.
 *
 * Usage: linux_clone [256|1024]  (default both).  Needs KVM and the build's
 * Linux files: run it through scripts/in-kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "mm/mm.h"
#include "vmm/clone.h"
#include "vmm/machine.h"

#define REPS 3
#define PAGE 4096ULL

struct figures {
	double present_mib; /* the parent's frames before the first clone */
	double paused_ms, fork_ms, call_ms; /* medians */
	double host_ms; /* fork() of as much memory, median */
};

static char kernel[600], initrd[600];

/* The parent: booted, memory filled, idle.  NULL on failure (said why). */
static struct machine *boot_filled(uint64_t mib, const char *console)
{
	char cmdline[512], err[512];
	struct machine_config cfg;
	struct machine *m;

	snprintf(cmdline, sizeof(cmdline),
		 "console=ttyS0 reboot=t panic=-1 loglevel=1 forkvm_run=sh "
		 "forkvm_cmd=\"dd if=/dev/zero of=/tmp/fill bs=1M count=%llu 2>/dev/null; "
		 "echo filled; sleep 100000\"",
		 (unsigned long long)(mib * 3 / 8));
	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = mib << 20;
	cfg.ncpus = 1;
	cfg.kernel = kernel;
	cfg.initrd = initrd;
	cfg.cmdline = cmdline;
	cfg.console = console;
	cfg.console_prefix = ""; /* a tap: lines are counted */
	cfg.quiet_results = true;
	if (machine_create(&cfg, &m, err, sizeof(err))) {
		fprintf(stderr, "linux_clone: %s\n", err);
		return NULL;
	}
	if (machine_start(m)) {
		machine_destroy(m);
		return NULL;
	}
	/* "forkvm-init: up", then "filled". */
	if (machine_wait_console(m, 2, 600000)) {
		fprintf(stderr,
			"linux_clone: the %llu MiB guest did not fill its memory (see %s)\n",
			(unsigned long long)mib, console);
		machine_destroy(m);
		return NULL;
	}
	return m;
}

static int vm_side(uint64_t mib, struct figures *f)
{
	char console[] = "/tmp/linux_clone.XXXXXX", err[512];
	double paused[REPS], fork[REPS], call[REPS], t0;
	struct space_stats ss;
	struct machine *m, *child;
	int fd, i;

	if ((fd = mkstemp(console)) < 0 || close(fd))
		return -1;
	m = boot_filled(mib, console);
	if (!m)
		return -1;
	for (i = 0; i < REPS; i++) {
		struct clone_config cc = {
			.console = "/dev/null",
			.quiet_results = true,
		};
		struct clone_timing t;

		if (machine_clone_spare(m->cpus.n, &cc.spare, err, sizeof(err))) {
			fprintf(stderr, "linux_clone: %s\n", err);
			machine_destroy(m);
			return -1;
		}
		t0 = now_us();
		if (machine_clone(m, &cc, &child, &t, err, sizeof(err))) {
			fprintf(stderr, "linux_clone: clone: %s\n", err);
			machine_destroy(m);
			return -1;
		}
		call[i] = (now_us() - t0) / 1e3;
		/* Pages the guest wrote before its first fork hold no frame yet:
		 * count what the parent's space holds after the first clone, and
		 * check the fill is there (else the figures are of another guest). */
		if (i == 0) {
			space_get_stats(m->space, &ss);
			f->present_mib = ss.present * PAGE / 1048576.0;
		}
		if (f->present_mib < (double)(mib * 3 / 8)) {
			printf("linux_clone: FAILED: the %llu MiB guest has %.1f MiB present, less "
			       "than its fill of %llu MiB (console: %s)\n",
			       (unsigned long long)mib, f->present_mib,
			       (unsigned long long)(mib * 3 / 8), console);
			machine_destroy(child);
			machine_destroy(m);
			return -1;
		}
		paused[i] = t.paused_ns / 1e6;
		fork[i] = t.fork_ns / 1e6;
		printf("linux_clone.%llu: clone %d: paused %.2f ms (memory fork %.2f ms), call "
		       "%.2f ms\n",
		       (unsigned long long)mib, i + 1, paused[i], fork[i], call[i]);
		machine_destroy(child);
	}
	machine_destroy(m);
	unlink(console);
	f->paused_ms = median(paused, REPS);
	f->fork_ms = median(fork, REPS);
	f->call_ms = median(call, REPS);
	return 0;
}

static double host_fork_ms(uint64_t bytes)
{
	double v[REPS];
	uint8_t *p;
	int i;

	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	madvise(p, bytes, MADV_NOHUGEPAGE);
	for (uint64_t o = 0; o < bytes; o += PAGE)
		p[o] = (uint8_t)(o >> 12) | 1;
	for (i = 0; i < REPS; i++) {
		double t0 = now_us();
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		v[i] = (now_us() - t0) / 1e3;
		waitpid(pid, NULL, 0);
	}
	munmap(p, bytes);
	return median(v, REPS);
}

static void build_dir(const char *argv0, char *dir, size_t len)
{
	const char *o = getenv("FORKVM_OUT");
	char *slash;

	if (o && *o) {
		snprintf(dir, len, "%s", o);
		return;
	}
	snprintf(dir, len, "%s", argv0);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	strncat(dir, "/..", len - strlen(dir) - 1);
}

int main(int argc, char **argv)
{
	static const uint64_t sizes[] = { 256, 1024 };
	char dir[512];
	unsigned int i;
	int fd;

	build_dir(argv[0], dir, sizeof(dir));
	snprintf(kernel, sizeof(kernel), "%s/linux/vmlinuz", dir);
	snprintf(initrd, sizeof(initrd), "%s/linux/initrd.cpio", dir);
	fd = open("/dev/kvm", O_RDWR);
	if (fd < 0) {
		printf("linux_clone: skipped: no /dev/kvm (%s); run it through scripts/in-kvm\n",
		       strerror(errno));
		return 0;
	}
	close(fd);
	if (access(kernel, R_OK) || access(initrd, R_OK)) {
		printf("linux_clone: FAILED: no %s or %s (make builds them)\n", kernel, initrd);
		return 1;
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct figures f;

		/* linux_clone MiB: that size only. */
		if (argc > 1 && strtoull(argv[1], NULL, 0) != sizes[i])
			continue;

		if (vm_side(sizes[i], &f)) {
			printf("linux_clone: FAILED at %llu MiB\n", (unsigned long long)sizes[i]);
			return 1;
		}
		f.host_ms = host_fork_ms((uint64_t)(f.present_mib * 1048576.0) & ~(PAGE - 1));
		printf("linux_clone.%llu.present_mib: %.1f\n", (unsigned long long)sizes[i],
		       f.present_mib);
		printf("linux_clone.%llu.paused_ms: %.2f (memory fork %.2f)\n",
		       (unsigned long long)sizes[i], f.paused_ms, f.fork_ms);
		printf("linux_clone.%llu.clone_call_ms: %.2f\n", (unsigned long long)sizes[i],
		       f.call_ms);
		printf("linux_clone.%llu.host_fork_ms: %.2f (same bytes touched, 4 KiB pages)\n",
		       (unsigned long long)sizes[i], f.host_ms);
		printf("linux_clone.%llu.ratio_paused_vs_fork: %.2f\n",
		       (unsigned long long)sizes[i], f.host_ms > 0 ? f.paused_ms / f.host_ms : 0);
	}
	return 0;
}
