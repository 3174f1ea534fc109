// SPDX-License-Identifier: MIT
/* Saving and restoring the full state of a paused vCPU. */
#include "vmm/vcpu_state.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/cpus.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

struct msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[VCPU_STATE_MAX_MSRS];
};

static int xioctl(int fd, unsigned long req, void *arg)
{
	return ioctl(fd, req, arg) < 0 ? -errno : 0;
}

static int save_msrs(struct vcpu *v, struct vcpu_state *st)
{
	struct msr_buf buf;
	unsigned int i;
	int n;

	memset(&buf, 0, sizeof(buf));
	buf.hdr.nmsrs = v->nmsrs;
	for (i = 0; i < v->nmsrs; i++)
		buf.e[i].index = v->msr_index[i];
	n = ioctl(v->fd, KVM_GET_MSRS, &buf);
	if (n < 0)
		return -errno;
	if ((unsigned int)n != v->nmsrs)
		return -EIO;
	st->nmsrs = v->nmsrs;
	for (i = 0; i < v->nmsrs; i++) {
		st->msrs[i].index = buf.e[i].index;
		st->msrs[i].data = buf.e[i].data;
	}
	return 0;
}

static int save_xsave(struct vcpu *v, struct vcpu_state *st)
{
	unsigned long req = v->vm->kvm->has_xsave2 ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	int ret;

	/* KVM writes xsave_size bytes (>= sizeof(struct kvm_xsave)). */
	ret = xioctl(v->fd, req, st->xsave);
	if (ret)
		return ret;
	st->xsave_size = v->xsave_size;
	return 0;
}

int vcpu_save_state(struct vcpu *v, struct vcpu_state *st)
{
	int ret;

	memset(st, 0, sizeof(*st));
	st->magic = VCPU_STATE_MAGIC;
	st->version = VCPU_STATE_VERSION;
	st->index = v->index;

	/* Firecracker's order: MP state first, events and MSRs after the rest. */
	ret = xioctl(v->fd, KVM_GET_MP_STATE, &st->mp_state);
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_REGS, &st->regs);
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_SREGS, &st->sregs);
	if (!ret)
		ret = save_xsave(v, st);
	if (!ret && v->vm->kvm->has_xcrs) {
		ret = xioctl(v->fd, KVM_GET_XCRS, &st->xcrs);
		st->has_xcrs = 1;
	}
	if (!ret && v->vm->kvm->has_debugregs) {
		ret = xioctl(v->fd, KVM_GET_DEBUGREGS, &st->debugregs);
		st->has_debugregs = 1;
	}
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_LAPIC, &st->lapic);
	if (!ret)
		ret = save_msrs(v, st);
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_VCPU_EVENTS, &st->events);
	return ret;
}

int vcpu_state_msr(const struct vcpu_state *st, uint32_t index, uint64_t *val)
{
	unsigned int i;

	for (i = 0; i < st->nmsrs && i < VCPU_STATE_MAX_MSRS; i++) {
		if (st->msrs[i].index == index) {
			*val = st->msrs[i].data;
			return 1;
		}
	}
	return 0;
}

/* @st comes from a file one day: check it before any of it reaches KVM. */
static int check_state(struct vcpu *v, const struct vcpu_state *st)
{
	if (st->magic != VCPU_STATE_MAGIC || st->version != VCPU_STATE_VERSION)
		return -EINVAL;
	if (st->nmsrs > VCPU_STATE_MAX_MSRS)
		return -EINVAL;
	/* The APIC id in the LAPIC state and in CPUID must agree. */
	if (st->index != v->index)
		return -EINVAL;
	if (st->xsave_size < sizeof(struct kvm_xsave) || st->xsave_size > VCPU_STATE_XSAVE_MAX ||
	    st->xsave_size > v->xsave_size)
		return -EINVAL;
	return 0;
}

static int restore_msrs(struct vcpu *v, const struct vcpu_state *st)
{
	struct msr_buf buf;
	unsigned int i;
	int n;

	memset(&buf, 0, sizeof(buf));
	buf.hdr.nmsrs = st->nmsrs;
	for (i = 0; i < st->nmsrs; i++) {
		buf.e[i].index = st->msrs[i].index;
		buf.e[i].data = st->msrs[i].data;
	}
	n = ioctl(v->fd, KVM_SET_MSRS, &buf);
	if (n < 0)
		return -errno;
	return (unsigned int)n == st->nmsrs ? 0 : -EIO;
}

#define MSR_IA32_TSC 0x10

static int guest_tsc(struct vcpu *v, uint64_t *tsc)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} req;

	memset(&req, 0, sizeof(req));
	req.hdr.nmsrs = 1;
	req.e.index = MSR_IA32_TSC;
	if (ioctl(v->fd, KVM_GET_MSRS, &req) != 1)
		return -EIO;
	*tsc = req.e.data;
	return 0;
}

/*
 * KVM takes a host write of the TSC MSR for a "synchronization" with the
 * VM's last TSC write when the value is within a second of what that write
 * would read now (kvm_synchronize_tsc()), and then keeps the old offset
 * instead: a clone restored within a second of its (freshly made, TSC 0)
 * vCPU's age would start with a TSC off by up to a second, backwards too,
 * and the guest's rdtsc timeouts fire at once.  Where the vCPU has the TSC
 * offset attribute, set the offset so the TSC reads the saved value now.
 * Context: the vCPU has never run (a clone's, before its threads start).
 */
static void fix_tsc(struct vcpu *v, const struct vcpu_state *st)
{
	struct kvm_device_attr attr = {
		.group = KVM_VCPU_TSC_CTRL,
		.attr = KVM_VCPU_TSC_OFFSET,
	};
	uint64_t want, now, offset;

	if (!vcpu_state_msr(st, MSR_IA32_TSC, &want))
		return;
	attr.addr = (uintptr_t)&offset;
	if (ioctl(v->fd, KVM_HAS_DEVICE_ATTR, &attr) < 0 ||
	    ioctl(v->fd, KVM_GET_DEVICE_ATTR, &attr) < 0 || guest_tsc(v, &now))
		return;
	/* Modular arithmetic: the offset is added to the host TSC. */
	offset += want - now;
	/* On failure the MSR write stands, as it did before. */
	(void)ioctl(v->fd, KVM_SET_DEVICE_ATTR, &attr);
}

static int restore_xsave(struct vcpu *v, const struct vcpu_state *st)
{
	void *buf;
	int ret;

	/* The usual case (a clone, a pause on the same host): the sizes match. */
	if (st->xsave_size == v->xsave_size)
		return xioctl(v->fd, KVM_SET_XSAVE, (void *)st->xsave);
	/* KVM_SET_XSAVE reads the VM's full XSAVE size: give it a zero-padded copy. */
	buf = aligned_alloc(64, VCPU_STATE_XSAVE_MAX);
	if (!buf)
		return -ENOMEM;
	memset(buf, 0, VCPU_STATE_XSAVE_MAX);
	memcpy(buf, st->xsave, st->xsave_size);
	ret = xioctl(v->fd, KVM_SET_XSAVE, buf);
	free(buf);
	return ret;
}

int vcpu_restore_state(struct vcpu *v, const struct vcpu_state *st)
{
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	int ret;

	ret = check_state(v, st);
	if (ret)
		return ret;

	/* SREGS before MSRs (as QEMU and Firecracker do): KVM checks an MSR
	 * against the control registers, e.g. a 5-level guest's KERNEL_GS_BASE
	 * is canonical only once CR4 has LA57. */
	ret = xioctl(v->fd, KVM_SET_REGS, (void *)&st->regs);
	if (!ret)
		ret = xioctl(v->fd, KVM_SET_SREGS, (void *)&st->sregs);
	if (!ret)
		ret = restore_msrs(v, st);
	/* A vCPU that has run keeps KVM's handling: its TSC must not step back
	 * by the length of a pause.  A clone's starts at the saved instant. */
	if (!ret && !v->cpus->started)
		fix_tsc(v, st);
	if (!ret)
		ret = restore_xsave(v, st);
	if (!ret && st->has_xcrs)
		ret = xioctl(v->fd, KVM_SET_XCRS, (void *)&st->xcrs);
	if (!ret && st->has_debugregs)
		ret = xioctl(v->fd, KVM_SET_DEBUGREGS, (void *)&st->debugregs);
	if (!ret)
		ret = xioctl(v->fd, KVM_SET_LAPIC, (void *)&st->lapic);
	if (!ret) {
		mp = st->mp_state;
		ret = xioctl(v->fd, KVM_SET_MP_STATE, &mp);
	}
	if (!ret) {
		events = st->events;
		/* Restore everything the saved events describe. */
		events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
				KVM_VCPUEVENT_VALID_SHADOW;
		ret = xioctl(v->fd, KVM_SET_VCPU_EVENTS, &events);
	}
	return ret;
}
