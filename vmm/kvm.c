// SPDX-License-Identifier: MIT
/* Opening /dev/kvm and checking what we rely on, once, with one clear error. */
#include "vmm/kvm_caps.h"
#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_HINT "run it where KVM works or through scripts/in-kvm (nested QEMU guest)"

int kvm_check_cap(int fd, long cap)
{
	return ioctl(fd, KVM_CHECK_EXTENSION, cap);
}

int kvm_open(struct kvm_sys *kvm, char *err, size_t errlen)
{
	const char *path = getenv("FORKVM_KVM_DEV");
	int ret, version, n;
	size_t i;

	memset(kvm, 0, sizeof(*kvm));
	kvm->fd = -1;
	if (!path || !*path)
		path = "/dev/kvm";

	kvm->fd = open(path, O_RDWR | O_CLOEXEC);
	if (kvm->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open %s: %s; %s", path, strerror(errno), KVM_HINT);
		return ret;
	}

	version = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		snprintf(err, errlen, "%s: KVM API version %d, expected %d; %s", path, version,
			 KVM_API_VERSION, KVM_HINT);
		ret = -ENOTSUP;
		goto err_close;
	}

	for (i = 0; i < sizeof(kvm_required_caps) / sizeof(kvm_required_caps[0]); i++) {
		if (kvm_check_cap(kvm->fd, kvm_required_caps[i].cap) <= 0) {
			snprintf(err, errlen, "%s lacks KVM_CAP_%s; %s", path,
				 kvm_required_caps[i].name, KVM_HINT);
			ret = -ENOTSUP;
			goto err_close;
		}
	}

	n = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (n <= 0) {
		snprintf(err, errlen, "%s: KVM_GET_VCPU_MMAP_SIZE failed; %s", path, KVM_HINT);
		ret = -ENOTSUP;
		goto err_close;
	}
	kvm->run_size = (size_t)n;

	n = kvm_check_cap(kvm->fd, KVM_CAP_MAX_VCPUS);
	if (n <= 0)
		n = kvm_check_cap(kvm->fd, KVM_CAP_NR_VCPUS);
	kvm->max_vcpus = n > 0 ? (unsigned int)n : 4;
	kvm->has_xsave2 = kvm_check_cap(kvm->fd, KVM_CAP_XSAVE2) > 0;
	kvm->has_xcrs = kvm_check_cap(kvm->fd, KVM_CAP_XCRS) > 0;
	kvm->has_debugregs = kvm_check_cap(kvm->fd, KVM_CAP_DEBUGREGS) > 0;
	return 0;

err_close:
	close(kvm->fd);
	kvm->fd = -1;
	return ret;
}

void kvm_close(struct kvm_sys *kvm)
{
	if (kvm->fd >= 0)
		close(kvm->fd);
	kvm->fd = -1;
}
