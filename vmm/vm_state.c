// SPDX-License-Identifier: MIT
/* Saving and restoring the in-kernel irqchip, PIT and clock of a VM. */
#include "vmm/vm_state.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/vm.h"

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static int get_chip(struct vm *vm, uint32_t id, struct kvm_irqchip *chip)
{
	memset(chip, 0, sizeof(*chip));
	chip->chip_id = id;
	return xioctl(vm->fd, KVM_GET_IRQCHIP, chip);
}

int vm_save_state(struct vm *vm, struct vm_state *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	st->magic = VM_STATE_MAGIC;
	st->version = VM_STATE_VERSION;
	ret = get_chip(vm, KVM_IRQCHIP_PIC_MASTER, &st->pic_master);
	if (!ret)
		ret = get_chip(vm, KVM_IRQCHIP_PIC_SLAVE, &st->pic_slave);
	if (!ret)
		ret = get_chip(vm, KVM_IRQCHIP_IOAPIC, &st->ioapic);
	if (!ret)
		ret = xioctl(vm->fd, KVM_GET_PIT2, &st->pit);
	if (!ret)
		ret = xioctl(vm->fd, KVM_GET_CLOCK, &st->clock);
	return ret;
}

/* @st may come from a file one day: check it before any of it reaches KVM. */
static bool is_valid_state(const struct vm_state *st)
{
	if (st->magic != VM_STATE_MAGIC || st->version != VM_STATE_VERSION)
		return false;
	/* KVM_SET_IRQCHIP picks the chip by chip_id: each must name its own. */
	return st->pic_master.chip_id == KVM_IRQCHIP_PIC_MASTER &&
	       st->pic_slave.chip_id == KVM_IRQCHIP_PIC_SLAVE &&
	       st->ioapic.chip_id == KVM_IRQCHIP_IOAPIC;
}

int vm_restore_state(struct vm *vm, const struct vm_state *st)
{
	struct kvm_irqchip chip;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	int ret;

	if (!is_valid_state(st))
		return -EINVAL;
	chip = st->pic_master;
	ret = xioctl(vm->fd, KVM_SET_IRQCHIP, &chip);
	if (!ret) {
		chip = st->pic_slave;
		ret = xioctl(vm->fd, KVM_SET_IRQCHIP, &chip);
	}
	if (!ret) {
		chip = st->ioapic;
		ret = xioctl(vm->fd, KVM_SET_IRQCHIP, &chip);
	}
	if (!ret) {
		pit = st->pit;
		ret = xioctl(vm->fd, KVM_SET_PIT2, &pit);
	}
	if (!ret) {
		/* Only the clock value: the host-TSC and realtime fields describe the
		 * parent's read, and a clone runs on from the same instant. */
		memset(&clock, 0, sizeof(clock));
		clock.clock = st->clock.clock;
		ret = xioctl(vm->fd, KVM_SET_CLOCK, &clock);
	}
	return ret;
}
