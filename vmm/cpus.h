/* SPDX-License-Identifier: MIT */
/*
 * The vCPUs of a VM and their life cycle: start, pause and resume at an
 * instruction boundary, stop (guest exit or a fatal exit on any vCPU), wait.
 *
 * Kick: a real-time signal with a no-op handler, unblocked only in vCPU
 * threads, plus kvm_run->immediate_exit (the KVM API's recommended form:
 * "Rather than blocking the signal outside KVM_RUN, userspace can set up a
 * signal handler that sets run->immediate_exit").  The kicker raises the
 * request, then sets immediate_exit; a vCPU thread clears immediate_exit,
 * then reads the requests (all seq_cst), so no kick is lost: either it sees
 * the request or KVM_RUN sees immediate_exit.  Without a request a vCPU
 * thread takes no lock between exits.
 */
#ifndef FORKVM_VMM_CPUS_H
#define FORKVM_VMM_CPUS_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/vcpu.h"

#define CPUS_MAX 64
#define CPUS_MAX_RESULTS 64

/* Exit statuses besides the guest's own (0-255 from port 0x501). */
#define CPUS_STATUS_HOST_ERROR 1 /* a KVM call failed */
#define CPUS_STATUS_GUEST_CRASH 3 /* exception, triple fault, KVM could not run it */

struct vm;
struct cpus;

/*
 * Guest-initiated fork (guest/abi.h PORT_FORK): the vCPU that wrote
 * FORK_MAGIC is held (it completes its OUT, then parks as for a pause) and
 * @request hands the fork to the machine's owner, which clones on its own
 * thread and ends with cpus_fork_done().  Called on the vCPU thread with no
 * lock held: it must not block.
 */
struct cpus_fork_hook {
	void (*request)(void *opaque, struct cpus *c, unsigned int vcpu);
	void *opaque;
};

/* The kick: a real-time signal, unblocked only in vCPU threads. */
#define CPUS_KICK_SIGNAL (SIGRTMIN + 1)

struct cpus {
	unsigned int n;
	struct vcpu vcpu[CPUS_MAX];
	struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, shared by all */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: */
	bool started;
	bool stop; /* every vCPU leaves its loop; also read unlocked (seq_cst) */
	int status; /* the VMM's exit status once stopped */
	char reason[640]; /* why it stopped, when not a clean guest exit */
	bool pause_req; /* also read unlocked (seq_cst) */
	unsigned int nlive; /* threads in their loop */
	unsigned int nparked;
	unsigned int nresults;
	uint32_t results[CPUS_MAX_RESULTS]; /* values written to port 0x503 */
	bool print_results; /* print "result: 0x%08x" lines on stdout */
	/* Set before cpus_start(); request NULL: a fork gets FORK_FAILED. */
	struct cpus_fork_hook fork_hook;
	/* What `inl PORT_FORK` reads (atomic): FORK_NONE at creation, 0 in a
	 * guest-forked child, the child's id or FORK_FAILED in its parent. */
	uint32_t fork_result;
	/* An eventfd (cpus_create; valid while n > 0), written once by the
	 * first cpus_stop(): poll it to wait for the stop among other events. */
	int stop_fd;
};

/** cpus_create() - @n vCPUs for @vm (not running yet). Return: 0 or -errno, @err says why. */
int cpus_create(struct vm *vm, unsigned int n, struct cpus *c, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** cpus_start() - one thread per vCPU, all entering the guest at once. */
int cpus_start(struct cpus *c) __attribute__((warn_unused_result));

/**
 * cpus_pause() - stop every vCPU at an instruction boundary and wait until all
 * are parked (their state is then readable with vcpu_save_state()).  Returns
 * -ESRCH if the machine stopped instead.  Return: 0 or -errno.
 */
int cpus_pause(struct cpus *c);

/** cpus_resume() - let paused vCPUs run again. */
void cpus_resume(struct cpus *c);

/**
 * cpus_stop() - make every vCPU leave its loop; the first call sets the
 * status and @reason (NULL or "" for a clean guest exit) and makes
 * @c->stop_fd readable.
 */
void cpus_stop(struct cpus *c, int status, const char *reason);

/**
 * cpus_wait() - wait until the machine stops, or @timeout_ms passes (0: no
 * limit; then it stops it with a "timed out" reason), join the threads.
 * Return: the exit status.
 */
int cpus_wait(struct cpus *c, unsigned int timeout_ms);

/**
 * cpus_fork_request() - vCPU @v wrote FORK_MAGIC to PORT_FORK: hold it and
 * call the fork hook (or answer FORK_FAILED at once without one).
 * Context: @v's thread, no lock held.
 */
void cpus_fork_request(struct cpus *c, struct vcpu *v);

/**
 * cpus_fork_done() - the fork asked by vCPU @vcpu is over: set the fork
 * register to @result and let the vCPU run again (its `inl PORT_FORK` reads
 * @result).
 */
void cpus_fork_done(struct cpus *c, unsigned int vcpu, uint32_t result);

/** cpus_add_result() - record a port-0x503 value (and print it). */
void cpus_add_result(struct cpus *c, uint32_t value);

/** cpus_destroy() - stop and join the threads if needed, close the vCPUs. Safe twice. */
void cpus_destroy(struct cpus *c);

#endif /* FORKVM_VMM_CPUS_H */
