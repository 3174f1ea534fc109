/* SPDX-License-Identifier: MIT */
/*
 * The VM-wide state KVM keeps in the kernel, besides the vCPUs': the PICs and
 * the IOAPIC of the in-kernel irqchip, the PIT and the kvmclock base.  Plain
 * data, so that a clone (and one day a snapshot) can carry it.
 */
#ifndef FORKVM_VMM_VM_STATE_H
#define FORKVM_VMM_VM_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#define VM_STATE_MAGIC 0x766d7374u /* "vmst" */
#define VM_STATE_VERSION 1u

struct vm_state {
	uint32_t magic;
	uint32_t version;
	struct kvm_irqchip pic_master;
	struct kvm_irqchip pic_slave;
	struct kvm_irqchip ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
};

struct vm;

/**
 * vm_save_state() - read the irqchip, PIT and clock state of @vm, whose vCPUs
 * are paused.  Return: 0 or -errno.
 */
int vm_save_state(struct vm *vm, struct vm_state *st) __attribute__((warn_unused_result));

/**
 * vm_restore_state() - load @st into @vm (made by vm_create(), before its
 * vCPUs run).  @st is checked (magic, version, chip ids) first.
 * Return: 0 or -errno.
 */
int vm_restore_state(struct vm *vm, const struct vm_state *st) __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_VM_STATE_H */
