// SPDX-License-Identifier: MIT
/*
 * seccomp_cost: what the seccomp filters of vmm/seccomp.c cost forkvm.
 *
 *   seccomp_cost.start_us            vmm_seccomp_start(): compile the five
 *                                    kinds' filters to BPF, load the main one
 *   seccomp_cost.thread_off_us       pthread_create + vmm_seccomp_enter(vcpu)
 *                                    + join, filters off (the thread is named)
 *   seccomp_cost.thread_on_us        the same with the filters on (one more
 *                                    seccomp(2) per thread)
 *   seccomp_cost.enter.ratio         thread_on_us / thread_off_us
 *   seccomp_cost.syscall_off_ns      a 1-byte write(2) to a pipe from a
 *                                    vCPU-kind thread, filters off
 *   seccomp_cost.syscall_on_ns       the same under the main and vcpu filters
 *                                    (write is early in neither list)
 *   seccomp_cost.syscall.ratio       on / off
 *
 * Each mode runs in its own child (a filter is for the life of a process).
 * Medians of ROUNDS rounds.  No KVM needed.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "vmm/seccomp.h"

#define ROUNDS 7
#define THREADS 200
#define CALLS 20000

struct result {
	double start_us, thread_us, syscall_ns;
};

static int devnull[2];

static void *vcpu_like(void *arg)
{
	if (vmm_seccomp_enter(VMM_THREAD_VCPU))
		_exit(2);
	return arg;
}

static void *syscalls(void *arg)
{
	struct result *r = arg;
	double t0;
	char c = 0;

	if (vmm_seccomp_enter(VMM_THREAD_VCPU))
		_exit(2);
	t0 = now_us();
	for (int i = 0; i < CALLS; i++)
		if (write(devnull[1], &c, 1) != 1)
			_exit(3);
	r->syscall_ns = (now_us() - t0) * 1e3 / CALLS;
	return NULL;
}

/* One round in a child: its figures come back through a pipe. */
static int round_in_child(enum vmm_seccomp_mode mode, struct result *out)
{
	int p[2], status;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		struct result r;
		char err[256];
		pthread_t t;
		double t0;

		close(p[0]);
		/* CALLS bytes fit in a pipe's 64 KiB: nobody needs to read them. */
		if (pipe(devnull))
			_exit(1);
		t0 = now_us();
		if (vmm_seccomp_start(mode, err, sizeof(err))) {
			fprintf(stderr, "%s\n", err);
			_exit(1);
		}
		r.start_us = now_us() - t0;
		t0 = now_us();
		for (int i = 0; i < THREADS; i++) {
			if (pthread_create(&t, NULL, vcpu_like, NULL))
				_exit(1);
			pthread_join(t, NULL);
		}
		r.thread_us = (now_us() - t0) / THREADS;
		if (pthread_create(&t, NULL, syscalls, &r))
			_exit(1);
		pthread_join(t, NULL);
		_exit(write(p[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], out, sizeof(*out)) != sizeof(*out)) {
		close(p[0]);
		return -1;
	}
	close(p[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int main(void)
{
	int rounds = bench_reps(ROUNDS);
	double start[ROUNDS], thr_off[ROUNDS], on_t[ROUNDS], off_s[ROUNDS], on_s[ROUNDS];
	struct result r;

	for (int i = 0; i < rounds; i++) {
		/* Interleaved, so that the machine's load hits both alike. */
		if (round_in_child(VMM_SECCOMP_OFF, &r))
			return 1;
		thr_off[i] = r.thread_us;
		off_s[i] = r.syscall_ns;
		if (round_in_child(VMM_SECCOMP_REPORT, &r))
			return 1;
		start[i] = r.start_us;
		on_t[i] = r.thread_us;
		on_s[i] = r.syscall_ns;
	}
	double so = median(thr_off, rounds), sn = median(on_t, rounds);
	double co = median(off_s, rounds), cn = median(on_s, rounds);

	printf("seccomp_cost.start_us: %.1f\n", median(start, rounds));
	printf("seccomp_cost.thread_off_us: %.1f\n", so);
	printf("seccomp_cost.thread_on_us: %.1f\n", sn);
	printf("seccomp_cost.enter.ratio: %.2f\n", sn / so);
	printf("seccomp_cost.syscall_off_ns: %.0f\n", co);
	printf("seccomp_cost.syscall_on_ns: %.0f\n", cn);
	printf("seccomp_cost.syscall.ratio: %.2f\n", cn / co);
	return 0;
}
