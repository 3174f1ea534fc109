/* SPDX-License-Identifier: MIT */
/*
 * A KVM virtual machine: the VM fd, its memslots over an mm guest space, the
 * in-kernel irqchip and PIT, the port and MMIO buses, and the dev_host
 * (irqfd / ioeventfd) that devices receive.  It knows no device.
 */
#ifndef FORKVM_VMM_VM_H
#define FORKVM_VMM_VM_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"
#include "vmm/iobus.h"
#include "vmm/kvm.h"

struct space;

#define VM_MAX_GSI 24 /* the in-kernel IOAPIC's pins */
#define VM_MAX_RANGES 8 /* RAM ranges, one memslot each */

struct vm {
	struct kvm_sys *kvm;
	int fd;
	struct iobus pio;
	struct iobus mmio;
	int irqfds[VM_MAX_GSI]; /* eventfd per GSI, -1 if none yet */
	struct dev_host host; /* what devices get: irqfd() and ioeventfd() */
};

/**
 * vm_create() - a VM whose RAM is @space (its ranges, one memslot each),
 * with an in-kernel IOAPIC/PIC/LAPIC and PIT.  Create vCPUs afterwards.
 * @space may be NULL: the VM has no RAM until vm_set_space() (a clone builds
 * its VM before it pauses the parent, and forks the memory during the pause).
 * Return: 0 or -errno; @err gets a one-line reason.
 */
int vm_create(struct kvm_sys *kvm, struct space *space, struct vm *vm, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * vm_set_space() - give a VM made without RAM a memslot over each range of
 * @space (at most VM_MAX_RANGES).
 * Return: 0 or -errno; @err gets a one-line reason.
 */
int vm_set_space(struct vm *vm, struct space *space, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** vm_destroy() - close the irqfds and the VM fd; safe to call twice. */
void vm_destroy(struct vm *vm);

/** vm_irqfd() - the eventfd wired to @gsi through KVM_IRQFD (made once). Return: fd or -errno. */
int vm_irqfd(struct vm *vm, unsigned int gsi);

/** vm_ioeventfd() - signal @fd on a 32-bit guest write of @datamatch at MMIO @addr. */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t datamatch, int fd);

#endif /* FORKVM_VMM_VM_H */
