// SPDX-License-Identifier: MIT
/*
 * Question: what does a clone of a running guest cost through the VMM,
 * against the host kernel's fork() of a process with the same memory
 * touched the same way?  (clone_vs_fork asks it of space_fork() alone.)
 *
 * forkvm: a test guest (bench_guest.h, default 512 MiB) held mid-run, its
 * memory from 16 MiB up written from the host, every page or one in 8,
 * cloned with machine_clone() (the child's VM built beforehand, as a
 * family does).  Host: this process with an anonymous mapping of the same
 * size, the same pages written (those of the guest below 16 MiB too),
 * fork()ed once the guest is gone: twice, with the host's transparent
 * huge page setting and with 4 KiB pages (MADV_NOHUGEPAGE) like the
 * guest's frames.  The same parent is cloned (forked)
 * again at each repetition; medians are printed.
 *
 *  - clone: the parent's pause (paused_ms) and the whole machine_clone()
 *    call, against fork()'s return in the parent;
 *  - child running: from the clone call to the child's first write fault
 *    and to its first console line (the released guest finishes its loop
 *    and prints one line, one exit per byte), against fork() to a byte the
 *    child writes to a pipe first thing;
 *  - teardown: machine_destroy() of the exited child, against letting the
 *    blocked host child _exit() until waitpid() returns;
 *  - memory: the family's frames against the anonymous Pss of the two
 *    processes (the host side's counts this program's own heap too).
 * While the child runs the guest parent is paused, as the host parent
 * waits in read(): a held guest spins, and would share the CPU with its
 * child.  The child starts held (clone_config.hold_child) so that the
 * host can write its hold word alone before it runs.
 *
 * First, without KVM: space_fork() alone of a bare space filled the same
 * way, against fork() of as much memory in 4 KiB pages (what the pause's
 * memory fork costs where there is no nesting).
 *
 * Usage: clone_vm_vs_fork [MiB]   (default 512; more than 16).
 * Prints name: value lines; a ratio < 1 means forkvm is faster.  Needs KVM:
 * run it through scripts/in-kvm.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/bench_guest.h"
#include "mm/mm.h"
#include "vmm/clone.h"
#include "vmm/machine.h"

#define MAX_REPS 16
#define PAGE 4096ULL

/* One repetition's figures, in microseconds (memory in MiB). */
struct rep {
	double fork_us; /* the parent's pause (forkvm) or fork()'s return (host) */
	double call_us; /* the whole machine_clone() call (forkvm) */
	double vcpus_us, space_fork_us, save_us; /* of the pause (forkvm) */
	double spare_us; /* building the child's VM ahead (forkvm) */
	double fault_us; /* clone to the child's first write fault (forkvm) */
	double run_us; /* clone to the child's first line / byte */
	double teardown_us;
	double family_mib;
	double child_vmas; /* host mappings of the child's window (forkvm) */
};

struct side {
	struct rep r[MAX_REPS];
	int n;
};

static double med(struct side *s, size_t off)
{
	double v[MAX_REPS];

	for (int i = 0; i < s->n; i++)
		v[i] = *(double *)((char *)&s->r[i] + off);
	return median(v, s->n);
}

#define MED(s, field) med(s, offsetof(struct rep, field))

/* "Key:   N kB" of /proc/@pid/@file, in kB (0 if absent). */
static double proc_kb(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	double kb = 0;
	size_t klen = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			kb = strtod(line + klen + 1, NULL);
	fclose(f);
	return kb;
}

/*
 * Host: fork() this process, @mem bytes mapped, the pages of @present
 * written.  @small: 4 KiB pages (MADV_NOHUGEPAGE) like the guest's frames,
 * else the host's transparent huge page setting.
 */
static int host_side(uint64_t mem, const uint8_t *present, int reps, bool small, struct side *s)
{
	uint8_t *p = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t i;

	if (p == MAP_FAILED || (small && madvise(p, mem, MADV_NOHUGEPAGE))) {
		perror("clone_vm_vs_fork: mmap");
		return -1;
	}
	for (i = 0; i < mem / PAGE; i++)
		if (present[i])
			p[i * PAGE] = (uint8_t)i | 1;
	for (s->n = 0; s->n < reps; s->n++) {
		struct rep *r = &s->r[s->n];
		int run[2], go[2];
		double t0, t1;
		char c = 0;
		pid_t pid;

		if (pipe(run) || pipe(go))
			return -1;
		t0 = now_us();
		pid = fork();
		if (pid == 0) {
			if (write(run[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
				_exit(1);
			_exit(0);
		}
		t1 = now_us();
		if (pid < 0 || read(run[0], &c, 1) != 1)
			return -1;
		r->run_us = now_us() - t0;
		r->fork_us = t1 - t0;
		r->family_mib = (proc_kb(getpid(), "smaps_rollup", "Pss_Anon") +
				 proc_kb(pid, "smaps_rollup", "Pss_Anon")) /
				1024;
		t0 = now_us();
		if (write(go[1], "g", 1) != 1 || waitpid(pid, NULL, 0) != pid)
			return -1;
		r->teardown_us = now_us() - t0;
		close(run[0]);
		close(run[1]);
		close(go[0]);
		close(go[1]);
	}
	munmap(p, mem);
	return 0;
}

/* forkvm: one clone of the held guest @m, run until its guest exits, destroyed. */
static int vm_rep(struct machine *m, uint64_t hold, struct rep *r)
{
	struct clone_config cc = {
		.console = "/dev/null",
		.console_prefix = "", /* a tap: the child's lines are counted */
		.quiet_results = true,
		.hold_child = true,
	};
	const uint64_t go = 1;
	struct pool_stats ps;
	struct space_stats ss;
	struct clone_timing t;
	struct machine *child;
	uint64_t faults;
	char err[512];
	double t0, t1, start;
	int status;

	t0 = now_us();
	if (machine_clone_spare(m->cpus.n, &cc.spare, err, sizeof(err))) {
		fprintf(stderr, "clone_vm_vs_fork: %s\n", err);
		return -1;
	}
	r->spare_us = now_us() - t0;
	t0 = now_us();
	if (machine_clone(m, &cc, &child, &t, err, sizeof(err))) {
		fprintf(stderr, "clone_vm_vs_fork: clone: %s\n", err);
		return -1;
	}
	t1 = now_us();
	r->call_us = t1 - t0;
	r->fork_us = t.paused_ns / 1e3;
	r->vcpus_us = t.vcpus_ns / 1e3;
	r->space_fork_us = t.fork_ns / 1e3;
	r->save_us = t.save_ns / 1e3;
	space_get_stats(child->space, &ss);
	r->child_vmas = (double)ss.vmas;
	/* The parent waits while its child runs (not timed). */
	if (machine_pause(m)) {
		fprintf(stderr, "clone_vm_vs_fork: the parent stopped\n");
		return -1;
	}
	start = now_us();
	if (space_write(child->space, hold, &go, sizeof(go)))
		return -1;
	pool_get_stats(m->pool, &ps);
	faults = ps.faults;
	machine_release_devices(child);
	if (machine_start(child))
		return -1;
	r->fault_us = -1;
	while (machine_console_lines(child) < 1) {
		pool_get_stats(m->pool, &ps);
		if (ps.faults != faults && r->fault_us < 0)
			r->fault_us = t1 - t0 + now_us() - start;
		if (machine_stopped(child))
			break;
		usleep(20);
	}
	r->run_us = t1 - t0 + now_us() - start;
	status = machine_wait(child, 60000);
	if (status) {
		fprintf(stderr, "clone_vm_vs_fork: the child exited with %d: %s\n", status,
			machine_stop_reason(child));
		return -1;
	}
	pool_get_stats(m->pool, &ps);
	r->family_mib = ps.live_frames * PAGE / 1048576.0;
	t0 = now_us();
	machine_destroy(child);
	r->teardown_us = now_us() - t0;
	machine_resume(m);
	return 0;
}

/*
 * forkvm: @reps clones of one held guest; @present gets the pages that hold
 * a frame before the first clone (one byte a page), for the host side.
 */
static int vm_side(uint64_t mem, unsigned int every, int reps, struct side *s, double *parent_mib,
		   uint64_t *vmas, uint8_t *present)
{
	char console[] = "/tmp/clone_vm_vs_fork.XXXXXX";
	const uint64_t go = 1;
	struct pool_stats ps;
	struct space_stats ss;
	struct machine *m;
	uint64_t hold;
	int fd, status;

	if ((fd = mkstemp(console)) < 0 || close(fd))
		return -1;
	if (bench_guest_make(&m, mem, every, console) || bench_guest_hold_word(console, &hold))
		return -1;
	pool_get_stats(m->pool, &ps);
	*parent_mib = ps.live_frames * PAGE / 1048576.0;
	space_get_stats(m->space, &ss);
	*vmas = ss.vmas;
	for (uint64_t gpa = 0; gpa < mem; gpa += PAGE)
		present[gpa / PAGE] = space_frame_of(m->space, gpa) != MM_NO_FRAME;
	for (s->n = 0; s->n < reps; s->n++)
		if (vm_rep(m, hold, &s->r[s->n]))
			return -1;
	/* The parent finishes its run: its counters must come out exact. */
	if (space_write(m->space, hold, &go, sizeof(go)))
		return -1;
	status = machine_wait(m, 60000);
	machine_destroy(m);
	unlink(console);
	if (status) {
		fprintf(stderr, "clone_vm_vs_fork: the parent exited with %d\n", status);
		return -1;
	}
	return 0;
}

/* "NAME.WHAT_ms: forkvm", the host's figures (@host_what NULL: printed
 * already), and the two ratios. */
static void print_cmp(const char *name, const char *what, const char *host_what, double v, double h,
		      double h4)
{
	printf("clone_vm_vs_fork.%s.%s: %.3f\n", name, what, v / 1e3);
	if (host_what)
		printf("clone_vm_vs_fork.%s.%s: %.3f (4 KiB pages %.3f)\n", name, host_what,
		       h / 1e3, h4 / 1e3);
	printf("clone_vm_vs_fork.%s.%.*s_ratio: %.2f (4 KiB pages %.2f)\n", name,
	       (int)(strlen(what) - 3), what, v / h, v / h4);
}

static int compare(const char *name, uint64_t mem, unsigned int every, int reps)
{
	static struct side host, host4k, vm;
	double parent_mib, h, h4, v;
	uint8_t *present = calloc(mem / PAGE, 1);
	uint64_t i, vmas, pages = 0;

	/* The guest first, gone before the host forks: its many window
	 * mappings would make this process's fork() slower. */
	if (!present || vm_side(mem, every, reps, &vm, &parent_mib, &vmas, present))
		return -1;
	for (i = 0; i < mem / PAGE; i++)
		pages += present[i];
	if (host_side(mem, present, reps, false, &host) ||
	    host_side(mem, present, reps, true, &host4k)) {
		fprintf(stderr, "clone_vm_vs_fork: host fork failed: %s\n", strerror(errno));
		return -1;
	}
	free(present);

	printf("clone_vm_vs_fork.%s.touched_MiB: %.1f (guest frames %.1f)\n", name,
	       pages * PAGE / 1048576.0, parent_mib);
	printf("clone_vm_vs_fork.%s.window_mappings: parent %llu, child %.0f\n", name,
	       (unsigned long long)vmas, MED(&vm, child_vmas));
	printf("clone_vm_vs_fork.%s.paused_detail_ms: vcpus %.3f, space_fork %.3f, state %.3f\n",
	       name, MED(&vm, vcpus_us) / 1e3, MED(&vm, space_fork_us) / 1e3,
	       MED(&vm, save_us) / 1e3);
	print_cmp(name, "paused_ms", "host_fork_ms", MED(&vm, fork_us), MED(&host, fork_us),
		  MED(&host4k, fork_us));
	printf("clone_vm_vs_fork.%s.spare_ms: %.3f (the child's VM, built ahead)\n", name,
	       MED(&vm, spare_us) / 1e3);
	print_cmp(name, "clone_call_ms", NULL, MED(&vm, call_us), MED(&host, fork_us),
		  MED(&host4k, fork_us));
	printf("clone_vm_vs_fork.%s.child_first_fault_ms: %.3f\n", name, MED(&vm, fault_us) / 1e3);
	print_cmp(name, "child_first_line_ms", "host_child_running_ms", MED(&vm, run_us),
		  MED(&host, run_us), MED(&host4k, run_us));
	print_cmp(name, "destroy_ms", "host_exit_waitpid_ms", MED(&vm, teardown_us),
		  MED(&host, teardown_us), MED(&host4k, teardown_us));
	h = MED(&host, family_mib);
	h4 = MED(&host4k, family_mib);
	v = MED(&vm, family_mib);
	printf("clone_vm_vs_fork.%s.family_frames_MiB: %.1f\n", name, v);
	printf("clone_vm_vs_fork.%s.host_two_processes_Pss_Anon_MiB: %.1f (4 KiB pages %.1f)\n",
	       name, h, h4);
	printf("clone_vm_vs_fork.%s.memory_ratio: %.2f (4 KiB pages %.2f)\n", name, v / h, v / h4);
	return 0;
}

/*
 * The memory fork alone, no KVM (runs on any host, so also where the
 * nested path's 10-50x does not apply): space_fork() of a bare space filled
 * as the guest is, and the host mappings of the child's window it makes.
 */
static int mm_only(const char *name, uint64_t mem, unsigned int every, int reps)
{
	struct space_range r = { 0, mem };
	static uint8_t page[PAGE];
	uint8_t *present = calloc(mem / PAGE, 1);
	double v[MAX_REPS], t0, h;
	static struct side host;
	struct space_stats st;
	struct space *s, *c;
	struct pool *pool;
	uint64_t gpa;

	if (!present || pool_create(NULL, &pool) || space_create(pool, &r, 1, &s))
		return -1;
	for (gpa = BENCH_GUEST_FILL_FROM; gpa < mem; gpa += every * PAGE) {
		memset(page, (int)(gpa >> 12) | 1, sizeof(page));
		if (space_write(s, gpa, page, sizeof(page)))
			return -1;
	}
	for (int i = 0; i < reps; i++) {
		t0 = now_us();
		if (space_fork(s, &c))
			return -1;
		v[i] = now_us() - t0;
		space_get_stats(c, &st);
		space_destroy(c);
	}
	for (gpa = 0; gpa < mem; gpa += PAGE)
		present[gpa / PAGE] = space_frame_of(s, gpa) != MM_NO_FRAME;
	space_destroy(s);
	pool_destroy(pool);
	if (host_side(mem, present, reps, true, &host))
		return -1;
	free(present);
	h = MED(&host, fork_us);
	printf("clone_vm_vs_fork.mm.%s.space_fork_ms: %.3f (child mappings %llu)\n", name,
	       median(v, reps) / 1e3, (unsigned long long)st.vmas);
	printf("clone_vm_vs_fork.mm.%s.host_fork_4k_ms: %.3f\n", name, h / 1e3);
	printf("clone_vm_vs_fork.mm.%s.ratio_4k: %.2f\n", name, median(v, reps) / h);
	return 0;
}

/* The host's transparent huge page mode, the bracketed word of the sysfs file. */
static void print_thp(void)
{
	char buf[128] = "", *a, *b;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = '\0';
		fclose(f);
	}
	a = strchr(buf, '[');
	b = a ? strchr(a, ']') : NULL;
	printf("clone_vm_vs_fork.host_thp: %.*s\n", a && b ? (int)(b - a - 1) : 7,
	       a && b ? a + 1 : "unknown");
}

int main(int argc, char **argv)
{
	unsigned long mib = 512;
	int reps = bench_reps(7);
	char *end;

	if (argc > 1) {
		mib = strtoul(argv[1], &end, 10);
		if (*end || mib <= 16 || mib > 65536) {
			fprintf(stderr,
				"usage: clone_vm_vs_fork [MiB]  (17..65536, default 512)\n");
			return 2;
		}
	}
	printf("clone_vm_vs_fork: %lu MiB guest, median of %d runs\n", mib, reps);
	if (mm_only("all", (uint64_t)mib << 20, 1, reps) ||
	    mm_only("eighth", (uint64_t)mib << 20, 8, reps)) {
		fprintf(stderr, "clone_vm_vs_fork: the space part failed\n");
		return 1;
	}
	if (!bench_guest_have_kvm("clone_vm_vs_fork"))
		return 0;
	print_thp();
	if (compare("all", (uint64_t)mib << 20, 1, reps) ||
	    compare("eighth", (uint64_t)mib << 20, 8, reps))
		return 1;
	return 0;
}
