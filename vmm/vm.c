// SPDX-License-Identifier: MIT
/* The KVM VM: memslot over the mm window, irqchip, PIT, irqfd and ioeventfd. */
#include "vmm/vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "mm/mm.h"

/* Above 3 GiB of RAM and outside the virtio-mmio windows; used only by VMX. */
#define VM_IDENTITY_MAP_ADDR 0xfeffc000ULL
#define VM_TSS_ADDR 0xfeffd000ULL

static int host_irqfd(void *opaque, unsigned int gsi)
{
	return vm_irqfd(opaque, gsi);
}

static int host_ioeventfd(void *opaque, uint64_t addr, uint32_t datamatch, int fd)
{
	return vm_ioeventfd(opaque, addr, datamatch, fd);
}

/* One memslot per RAM range (the Linux board's: below the hole and from 4 GiB). */
int vm_set_space(struct vm *vm, struct space *space, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region slot;
	const struct space_range *ranges;
	unsigned int nranges, i;
	void *hva;
	int ret;

	ranges = space_ranges(space, &nranges);
	if (nranges == 0 || nranges > VM_MAX_RANGES) {
		snprintf(err, errlen, "guest memory of %u ranges: 1 to %u", nranges, VM_MAX_RANGES);
		return -EINVAL;
	}
	for (i = 0; i < nranges; i++) {
		hva = space_hva(space, ranges[i].gpa);
		if (!hva) {
			snprintf(err, errlen, "guest memory at 0x%llx has no host window",
				 (unsigned long long)ranges[i].gpa);
			return -EINVAL;
		}
		memset(&slot, 0, sizeof(slot));
		slot.slot = i;
		slot.guest_phys_addr = ranges[i].gpa;
		slot.memory_size = ranges[i].size;
		slot.userspace_addr = (uintptr_t)hva;
		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			ret = -errno;
			snprintf(err, errlen,
				 "KVM_SET_USER_MEMORY_REGION (%llu bytes at 0x%llx): %s",
				 (unsigned long long)ranges[i].size,
				 (unsigned long long)ranges[i].gpa, strerror(errno));
			return ret;
		}
	}
	return 0;
}

int vm_create(struct kvm_sys *kvm, struct space *space, struct vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = 0 };
	unsigned int i;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->fd = -1;
	vm->kvm = kvm;
	for (i = 0; i < VM_MAX_GSI; i++)
		vm->irqfds[i] = -1;
	iobus_init(&vm->pio);
	iobus_init(&vm->mmio);
	vm->host.irqfd = host_irqfd;
	vm->host.ioeventfd = host_ioeventfd;
	vm->host.opaque = vm;

	vm->fd = ioctl(kvm->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return ret;
	}

	/* Intel needs these before the first vCPU; harmless elsewhere. */
	if (kvm_check_cap(kvm->fd, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
		__u64 addr = VM_IDENTITY_MAP_ADDR;

		if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) {
			ret = -errno;
			snprintf(err, errlen, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
			goto err_close;
		}
	}
	if (kvm_check_cap(kvm->fd, KVM_CAP_SET_TSS_ADDR) > 0 &&
	    ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)VM_TSS_ADDR) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_SET_TSS_ADDR: %s", strerror(errno));
		goto err_close;
	}

	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
		goto err_close;
	}
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_PIT2: %s", strerror(errno));
		goto err_close;
	}
	if (space) {
		ret = vm_set_space(vm, space, err, errlen);
		if (ret)
			goto err_close;
	}
	return 0;

err_close:
	close(vm->fd);
	vm->fd = -1;
	return ret;
}

void vm_destroy(struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < VM_MAX_GSI; i++) {
		if (vm->irqfds[i] >= 0)
			close(vm->irqfds[i]);
		vm->irqfds[i] = -1;
	}
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
}

int vm_irqfd(struct vm *vm, unsigned int gsi)
{
	struct kvm_irqfd req;
	int fd, ret;

	if (gsi >= VM_MAX_GSI)
		return -EINVAL;
	if (vm->irqfds[gsi] >= 0)
		return vm->irqfds[gsi];

	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	req.fd = (__u32)fd;
	req.gsi = gsi;
	if (ioctl(vm->fd, KVM_IRQFD, &req) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	vm->irqfds[gsi] = fd;
	return fd;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t datamatch, int fd)
{
	struct kvm_ioeventfd req;

	memset(&req, 0, sizeof(req));
	req.datamatch = datamatch;
	req.addr = addr;
	req.len = 4;
	req.fd = fd;
	req.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
	if (ioctl(vm->fd, KVM_IOEVENTFD, &req) < 0)
		return -errno;
	return 0;
}
