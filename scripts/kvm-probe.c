// SPDX-License-Identifier: MIT
/*
 * kvm-probe: is KVM usable here?  Exit 0 when /dev/kvm opens, speaks API 12,
 * has every capability forkvm needs (vmm/kvm_caps.h) and KVM_CREATE_VM
 * succeeds; otherwise print the reason on one line and exit 1.  scripts/in-kvm builds and runs it to choose the direct or nested path:
 * a /dev/kvm node that exists but cannot create a VM is no KVM at all.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/kvm_caps.h"

int main(void)
{
	int kvm, vm, api;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("cannot open /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		printf("/dev/kvm speaks API %d, not %d\n", api, KVM_API_VERSION);
		return 1;
	}
	for (unsigned int i = 0; i < sizeof(kvm_required_caps) / sizeof(kvm_required_caps[0]);
	     i++) {
		if (ioctl(kvm, KVM_CHECK_EXTENSION, kvm_required_caps[i].cap) <= 0) {
			printf("/dev/kvm lacks KVM_CAP_%s, which forkvm needs\n",
			       kvm_required_caps[i].name);
			return 1;
		}
	}
	/* Retry on EINTR only; any other failure means no usable KVM. */
	do {
		vm = ioctl(kvm, KVM_CREATE_VM, 0);
	} while (vm < 0 && errno == EINTR);
	if (vm < 0) {
		printf("KVM_CREATE_VM failed: %s\n", strerror(errno));
		return 1;
	}
	close(vm);
	close(kvm);
	printf("/dev/kvm works (KVM_CREATE_VM succeeded)\n");
	return 0;
}
