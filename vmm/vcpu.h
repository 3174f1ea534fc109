/* SPDX-License-Identifier: MIT */
/* One vCPU: its KVM fd, its kvm_run page, its CPUID, its run loop. */
#ifndef FORKVM_VMM_VCPU_H
#define FORKVM_VMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vcpu_state.h"

struct kvm_cpuid2;
struct vm;
struct cpus;

struct vcpu {
	struct vm *vm;
	struct cpus *cpus;
	unsigned int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	/* Under cpus->lock: */
	bool thread_live; /* the thread is in its loop and may be kicked */
	bool held; /* a fork it asked for is in progress: park; also read unlocked */
	/* Only the vCPU thread touches these: */
	bool io_pending; /* the last exit was port I/O or MMIO: KVM completes it on re-entry */
	unsigned int nexc; /* words of an exception report received on port 0x502 */
	uint32_t exc[4]; /* vector, error code, RIP low, RIP high */
	/* Which MSRs this vCPU saves (probed at creation). */
	unsigned int nmsrs;
	uint32_t msr_index[VCPU_STATE_MAX_MSRS];
	uint32_t xsave_size;
};

/**
 * vcpu_create() - vCPU @index of @vm, with @cpuid (KVM_GET_SUPPORTED_CPUID)
 * adjusted for this vCPU (APIC id, topology leaves).
 * Return: 0 or -errno; @err says what failed.
 */
int vcpu_create(struct vm *vm, struct cpus *cpus, unsigned int index,
		const struct kvm_cpuid2 *cpuid, struct vcpu *v, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** vcpu_destroy() - unmap and close; the thread must have been joined.  Safe twice. */
void vcpu_destroy(struct vcpu *v);

/** vcpu_thread() - the run loop, a pthread start routine (cpus_start() starts it). */
void *vcpu_thread(void *arg);

/** vcpu_describe() - "RIP 0x... CR0 0x... CR3 0x... CR4 0x..." of a stopped vCPU. */
void vcpu_describe(struct vcpu *v, char *buf, size_t len);

#endif /* FORKVM_VMM_VCPU_H */
