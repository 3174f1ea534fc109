// SPDX-License-Identifier: MIT
/*
 * Question: what does a clone's pause of the parent cost when its disk has
 * 64 requests in flight, against the same clone with none?  The pause
 * holds completions but waits for no I/O, so the two should be close: the
 * difference is the pinned frames space_fork() copies for the child and the
 * in-flight set saved with the device.
 *
 * Two VMs of the same size with the same disk (each request held 300 ms):
 * one runs dmastress with 64 reads in flight, the other atomics (no I/O).
 * Clones alternate between them; each clone is destroyed at once.  Prints
 * `name: value` lines and the ratio (> 1: the in-flight clone pauses longer).
 * Needs KVM: run it through scripts/in-kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "vmm/cli.h"
#include "vmm/clone.h"
#include "vmm/machine.h"
#include "vmm/mkdisk.h"

#define MEM (32ULL << 20)
#define LATENCY_NS 300000000ULL
#define INFLIGHT 64

struct sample {
	double paused_ms, fork_ms, devices_ms;
	unsigned int inflight;
};

static struct machine *boot(const char *guest, const char *disk, const char *workload,
			    const char *args)
{
	struct machine_config cfg;
	struct machine *m;
	char err[512];

	memset(&cfg, 0, sizeof(cfg));
	cfg.mem_size = MEM;
	cfg.ncpus = 1;
	cfg.workload = workload;
	cfg.args = args;
	cfg.guest_elf = guest;
	cfg.console = "/dev/null";
	cfg.quiet_results = true;
	cfg.ndisks = 1;
	cfg.disks[0].path = disk;
	cfg.disks[0].latency_ns = LATENCY_NS;
	if (machine_create(&cfg, &m, err, sizeof(err))) {
		fprintf(stderr, "clone_pause_inflight: %s\n", err);
		return NULL;
	}
	if (machine_start(m)) {
		machine_destroy(m);
		return NULL;
	}
	return m;
}

/* Clone @m once (its child's VM built beforehand, as a family does). */
static int clone_once(struct machine *m, unsigned int want, struct sample *s)
{
	struct clone_config cc = { .console = "/dev/null", .quiet_results = true };
	struct machine *child = NULL;
	struct clone_timing t;
	unsigned int i;
	char err[512];

	if (machine_clone_spare(m->cpus.n, &cc.spare, err, sizeof(err))) {
		fprintf(stderr, "clone_pause_inflight: %s\n", err);
		return -1;
	}
	/* Up to 5 s for the reads to be at the device again. */
	for (i = 0; want && i < 5000 && machine_inflight(m) < want; i++)
		usleep(1000);
	if (machine_clone(m, &cc, &child, &t, err, sizeof(err))) {
		fprintf(stderr, "clone_pause_inflight: clone: %s\n", err);
		return -1;
	}
	s->paused_ms = t.paused_ns / 1e6;
	s->fork_ms = t.fork_ns / 1e6;
	s->devices_ms = t.devices_ns / 1e6;
	s->inflight = t.inflight;
	machine_destroy(child);
	return 0;
}

int main(int argc, char **argv)
{
	const char *guest = getenv("FORKVM_GUEST");
	char disk_a[] = "/tmp/clone_pause_inflight.a.XXXXXX";
	char disk_b[] = "/tmp/clone_pause_inflight.b.XXXXXX";
	int reps = bench_reps(10), r, fd;
	double busy[32], idle[32], busy_fork[32], idle_fork[32], busy_dev[32], idle_dev[32];
	unsigned int min_inflight = ~0u, max_idle = 0;
	struct machine *a, *b;
	struct sample s;
	char err[512];

	if (!guest || !*guest)
		guest = "build/guest/test.elf";
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("clone_pause_inflight: skipped: no /dev/kvm (%s); run through "
		       "scripts/in-kvm\n",
		       strerror(errno));
		return 0;
	}
	close(fd);
	/* One disk each: the two VMs' disks fork independently. */
	if ((fd = mkstemp(disk_a)) < 0 || close(fd) || (fd = mkstemp(disk_b)) < 0 || close(fd) ||
	    mkdisk_write(disk_a, 4 << 20, CLI_DEFAULT_DISK_SEED, err, sizeof(err)) ||
	    mkdisk_write(disk_b, 4 << 20, CLI_DEFAULT_DISK_SEED, err, sizeof(err))) {
		fprintf(stderr, "clone_pause_inflight: disks: %s\n", err);
		return 1;
	}
	a = boot(guest, disk_a, "dmastress", "forks=0 rounds=100000 inflight=64");
	b = boot(guest, disk_b, "atomics", "iters=4000000000");
	if (!a || !b)
		return 1;
	for (r = 0; r < reps; r++) {
		if (clone_once(a, INFLIGHT, &s))
			return 1;
		busy[r] = s.paused_ms;
		busy_fork[r] = s.fork_ms;
		busy_dev[r] = s.devices_ms;
		if (s.inflight < min_inflight)
			min_inflight = s.inflight;
		if (clone_once(b, 0, &s))
			return 1;
		idle[r] = s.paused_ms;
		idle_fork[r] = s.fork_ms;
		idle_dev[r] = s.devices_ms;
		if (s.inflight > max_idle)
			max_idle = s.inflight;
	}
	printf("clone_pause_inflight.reps: %d\n", reps);
	printf("clone_pause_inflight.inflight.requests_min: %u\n", min_inflight);
	printf("clone_pause_inflight.none.requests_max: %u\n", max_idle);
	printf("clone_pause_inflight.inflight.paused_ms: %.2f (fork %.2f, devices %.2f)\n",
	       median(busy, reps), median(busy_fork, reps), median(busy_dev, reps));
	printf("clone_pause_inflight.none.paused_ms: %.2f (fork %.2f, devices %.2f)\n",
	       median(idle, reps), median(idle_fork, reps), median(idle_dev, reps));
	printf("clone_pause_inflight.ratio: %.2f\n", median(busy, reps) / median(idle, reps));
	machine_destroy(a);
	machine_destroy(b);
	unlink(disk_a);
	unlink(disk_b);
	(void)argc;
	(void)argv;
	return 0;
}
