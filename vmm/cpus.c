// SPDX-License-Identifier: MIT
/* vCPU threads as a group: start, kick, pause/resume, stop, wait. */
#include "vmm/cpus.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "devices/time.h"
#include "guest/abi.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"

#define CPUID_MAX_ENTRIES 256

static void kick_handler(int sig)
{
	/* Nothing: its delivery is what makes KVM_RUN return -EINTR. */
	(void)sig;
}

/* The vCPU thread, confined first (vmm/seccomp.c) when the run asked for it. */
static void *vcpu_main(void *arg)
{
	vmm_thread_start("vcpu");
	return vcpu_thread(arg);
}

static int install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(CPUS_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/* Called with c->lock held. */
static void kick_all(struct cpus *c)
{
	unsigned int i;

	for (i = 0; i < c->n; i++) {
		struct vcpu *v = &c->vcpu[i];

		if (!v->thread_live)
			continue;
		/*
		 * After the request was raised (seq_cst); pairs with
		 * vcpu_thread() clearing it before it reads the requests.
		 */
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		pthread_kill(v->thread, CPUS_KICK_SIGNAL);
	}
}

static struct kvm_cpuid2 *get_supported_cpuid(int kvm_fd)
{
	unsigned int n = CPUID_MAX_ENTRIES;
	struct kvm_cpuid2 *cpuid;

	for (;;) {
		cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
		if (!cpuid)
			return NULL;
		cpuid->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			return cpuid;
		free(cpuid);
		if (errno != E2BIG || n >= 4096)
			return NULL;
		n *= 2;
	}
}

int cpus_create(struct vm *vm, unsigned int n, struct cpus *c, char *err, size_t errlen)
{
	pthread_condattr_t attr;
	unsigned int i;
	int ret;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < CPUS_MAX; i++)
		c->vcpu[i].fd = -1;
	c->stop_fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	/* Timed waits (cpus_wait) against CLOCK_MONOTONIC: no clock jumps. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &attr);
	pthread_condattr_destroy(&attr);
	c->print_results = true;
	c->fork_result = FORK_NONE;

	if (n < 1 || n > CPUS_MAX || n > vm->kvm->max_vcpus) {
		snprintf(err, errlen, "--cpus %u: this KVM allows 1..%u", n,
			 vm->kvm->max_vcpus < CPUS_MAX ? vm->kvm->max_vcpus : CPUS_MAX);
		return -EINVAL;
	}
	ret = install_kick_handler();
	if (ret) {
		snprintf(err, errlen, "sigaction: %s", strerror(-ret));
		return ret;
	}
	c->cpuid = get_supported_cpuid(vm->kvm->fd);
	if (!c->cpuid) {
		ret = -errno ? -errno : -ENOMEM;
		snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-ret));
		return ret;
	}
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(-ret));
		goto err_vcpus;
	}
	for (i = 0; i < n; i++) {
		ret = vcpu_create(vm, c, i, c->cpuid, &c->vcpu[i], err, errlen);
		if (ret)
			goto err_vcpus;
		c->n = i + 1;
	}
	return 0;

err_vcpus:
	cpus_destroy(c);
	return ret;
}

int cpus_start(struct cpus *c)
{
	sigset_t block, old;
	unsigned int i;
	int ret = 0;

	/* Threads start with the kick blocked; each unblocks it for itself. */
	sigemptyset(&block);
	sigaddset(&block, CPUS_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &block, &old);

	pthread_mutex_lock(&c->lock);
	c->started = true;
	for (i = 0; i < c->n; i++) {
		struct vcpu *v = &c->vcpu[i];

		ret = -pthread_create(&v->thread, NULL, vcpu_main, v);
		if (ret) {
			v->thread = 0;
			break;
		}
		v->thread_live = true;
		c->nlive++;
	}
	pthread_mutex_unlock(&c->lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		cpus_stop(c, CPUS_STATUS_HOST_ERROR, "cannot start a vCPU thread");
	return ret;
}

int cpus_pause(struct cpus *c)
{
	int ret = 0;

	pthread_mutex_lock(&c->lock);
	if (c->stop) {
		pthread_mutex_unlock(&c->lock);
		return -ESRCH;
	}
	/* Before kick_all()'s immediate_exit = 1: pairs with vcpu_thread()'s fast path. */
	__atomic_store_n(&c->pause_req, true, __ATOMIC_SEQ_CST);
	kick_all(c);
	while (!c->stop && c->nparked < c->nlive)
		pthread_cond_wait(&c->cond, &c->lock);
	if (c->stop)
		ret = -ESRCH;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

void cpus_resume(struct cpus *c)
{
	pthread_mutex_lock(&c->lock);
	__atomic_store_n(&c->pause_req, false, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void cpus_stop(struct cpus *c, int status, const char *reason)
{
	pthread_mutex_lock(&c->lock);
	if (!c->stop) {
		/* Before kick_all()'s immediate_exit = 1, as in cpus_pause(). */
		__atomic_store_n(&c->stop, true, __ATOMIC_SEQ_CST);
		c->status = status;
		if (reason)
			snprintf(c->reason, sizeof(c->reason), "%s", reason);
		/* Once vCPUs exist the eventfd does (cpus_create); one write, ever. */
		if (c->n && write(c->stop_fd, &(uint64_t){ 1 }, sizeof(uint64_t)) < 0)
			perror("forkvm: stop eventfd");
	}
	kick_all(c);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void join_all(struct cpus *c)
{
	unsigned int i;

	for (i = 0; i < c->n; i++) {
		struct vcpu *v = &c->vcpu[i];
		bool joinable;

		pthread_mutex_lock(&c->lock);
		joinable = c->started && v->thread;
		pthread_mutex_unlock(&c->lock);
		if (joinable) {
			pthread_join(v->thread, NULL);
			v->thread = 0;
		}
	}
}

int cpus_wait(struct cpus *c, unsigned int timeout_ms)
{
	struct timespec deadline;
	char msg[64];
	int status;

	if (timeout_ms)
		deadline_after_ms(&deadline, timeout_ms);
	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (!timeout_ms) {
			pthread_cond_wait(&c->cond, &c->lock);
			continue;
		}
		if (pthread_cond_timedwait(&c->cond, &c->lock, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&c->lock);
			snprintf(msg, sizeof(msg), "guest timed out after %u ms", timeout_ms);
			cpus_stop(c, CPUS_STATUS_GUEST_CRASH, msg);
			pthread_mutex_lock(&c->lock);
		}
	}
	status = c->status;
	pthread_mutex_unlock(&c->lock);
	join_all(c);
	return status;
}

void cpus_fork_request(struct cpus *c, struct vcpu *v)
{
	if (!c->fork_hook.request) {
		fprintf(stderr,
			"forkvm: guest fork on vCPU %u refused: this machine has no family\n",
			v->index);
		__atomic_store_n(&c->fork_result, FORK_FAILED, __ATOMIC_SEQ_CST);
		return;
	}
	pthread_mutex_lock(&c->lock);
	/* seq_cst: read unlocked by requested() in this same thread's loop. */
	__atomic_store_n(&v->held, true, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&c->lock);
	c->fork_hook.request(c->fork_hook.opaque, c, v->index);
}

void cpus_fork_done(struct cpus *c, unsigned int vcpu, uint32_t result)
{
	/* Before the release: the vCPU's next instruction may read it.  Pairs
	 * with the lock the parked vCPU reacquires. */
	__atomic_store_n(&c->fork_result, result, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&c->lock);
	if (vcpu < c->n)
		__atomic_store_n(&c->vcpu[vcpu].held, false, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void cpus_add_result(struct cpus *c, uint32_t value)
{
	pthread_mutex_lock(&c->lock);
	if (c->nresults < CPUS_MAX_RESULTS)
		c->results[c->nresults++] = value;
	if (c->print_results) {
		printf("result: 0x%08x\n", value);
		fflush(stdout);
	}
	pthread_mutex_unlock(&c->lock);
}

void cpus_destroy(struct cpus *c)
{
	unsigned int i;

	if (c->started) {
		cpus_stop(c, CPUS_STATUS_HOST_ERROR, "machine destroyed");
		join_all(c);
		c->started = false;
	}
	for (i = 0; i < c->n; i++)
		vcpu_destroy(&c->vcpu[i]);
	c->n = 0;
	free(c->cpuid);
	c->cpuid = NULL;
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	c->stop_fd = -1;
}
