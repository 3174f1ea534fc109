/* SPDX-License-Identifier: MIT */
/* The host's KVM: /dev/kvm, its API version and the capabilities forkvm needs. */
#ifndef FORKVM_VMM_KVM_H
#define FORKVM_VMM_KVM_H

#include <stdbool.h>
#include <stddef.h>

struct kvm_sys {
	int fd; /* /dev/kvm */
	size_t run_size; /* mmap size of a vCPU's struct kvm_run */
	unsigned int max_vcpus; /* KVM_CAP_MAX_VCPUS (or NR_VCPUS) */
	bool has_xsave2; /* KVM_GET_XSAVE2: the XSAVE area may exceed 4 KiB */
	bool has_xcrs;
	bool has_debugregs;
};

/**
 * kvm_open() - open /dev/kvm (or $FORKVM_KVM_DEV), check the API version and
 * every capability forkvm relies on.
 * @kvm: filled in; kvm_close() releases it.
 * @err: a one-line reason on failure (points to scripts/in-kvm when there is
 *       no usable KVM here).
 * Return: 0 or -errno (-ENOENT: no /dev/kvm, -EACCES, -ENOTSUP: a capability is missing).
 */
int kvm_open(struct kvm_sys *kvm, char *err, size_t errlen) __attribute__((warn_unused_result));

/** kvm_close() - safe to call twice. */
void kvm_close(struct kvm_sys *kvm);

/** kvm_check_cap() - KVM_CHECK_EXTENSION on @fd (/dev/kvm or a VM fd); <= 0: absent. */
int kvm_check_cap(int fd, long cap);

#endif /* FORKVM_VMM_KVM_H */
