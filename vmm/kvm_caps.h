/* SPDX-License-Identifier: MIT */
/*
 * The KVM capabilities without which forkvm cannot run a guest.  One list
 * for the VMM (vmm/kvm.c) and for scripts/kvm-probe.c, which scripts/in-kvm
 * runs to decide whether this machine's /dev/kvm is usable or the nested
 * guest must be used instead.
 */
#ifndef FORKVM_VMM_KVM_CAPS_H
#define FORKVM_VMM_KVM_CAPS_H

#include <linux/kvm.h>

/* One capability per line, which clang-format would not keep. */
/* clang-format off */
#define KVM_REQUIRED_CAPS(X)	\
	X(USER_MEMORY)		\
	X(IRQCHIP)		\
	X(PIT2)			\
	X(IRQFD)		\
	X(IOEVENTFD)		\
	X(EXT_CPUID)		\
	X(MP_STATE)		\
	X(VCPU_EVENTS)		\
	X(IMMEDIATE_EXIT)	\
	X(XSAVE)		\
	X(SYNC_MMU)
/* clang-format on */

#define KVM_CAP_ENTRY(name) { KVM_CAP_##name, #name },

struct kvm_required_cap {
	long cap;
	const char *name;
};

static const struct kvm_required_cap kvm_required_caps[] = { KVM_REQUIRED_CAPS(KVM_CAP_ENTRY) };

#endif /* FORKVM_VMM_KVM_CAPS_H */
