/* SPDX-License-Identifier: MIT */
/*
 * The complete architectural state of one vCPU, as a plain struct (fixed-width
 * fields, no pointers): what a snapshot stores and a clone copies.  Read and
 * written only while the vCPU is paused (cpus_pause()).
 */
#ifndef FORKVM_VMM_VCPU_STATE_H
#define FORKVM_VMM_VCPU_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#define VCPU_STATE_MAGIC 0x66766370u /* "fvcp" */
#define VCPU_STATE_VERSION 1u
#define VCPU_STATE_MAX_MSRS 32u
/* KVM_CAP_XSAVE2 may report more than the legacy 4 KiB (AVX-512, AMX). */
#define VCPU_STATE_XSAVE_MAX 16384u

struct vcpu_state_msr {
	uint32_t index;
	uint32_t reserved;
	uint64_t data;
};

struct vcpu_state {
	uint32_t magic;
	uint32_t version;
	uint32_t index; /* the vCPU's index (and APIC id) */
	uint32_t nmsrs;
	uint32_t xsave_size; /* bytes of xsave[] in use */
	uint32_t has_xcrs;
	uint32_t has_debugregs;
	uint32_t reserved;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp_state;
	struct vcpu_state_msr msrs[VCPU_STATE_MAX_MSRS];
	uint8_t xsave[VCPU_STATE_XSAVE_MAX] __attribute__((aligned(64)));
};

struct vcpu;

/**
 * vcpu_save_state() - read the full state of a paused vCPU into @st.
 * Pending port/MMIO completions are finished before a vCPU parks, so the
 * state is at an instruction boundary.  Return: 0 or -errno.
 */
int vcpu_save_state(struct vcpu *v, struct vcpu_state *st) __attribute__((warn_unused_result));

/**
 * vcpu_restore_state() - load @st into a paused vCPU.  @st is checked
 * (magic, version, vCPU index, sizes, MSR count) first.  Return: 0 or -errno.
 */
int vcpu_restore_state(struct vcpu *v, const struct vcpu_state *st)
    __attribute__((warn_unused_result));

/** vcpu_state_msr() - the saved value of @index, or false if not saved. */
int vcpu_state_msr(const struct vcpu_state *st, uint32_t index, uint64_t *val);

#endif /* FORKVM_VMM_VCPU_STATE_H */
