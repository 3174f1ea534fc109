/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the Linux-guest integration tests (test_linux_boot.c,
 * test_linux_clone.c): the build's kernel and initramfs, and forkvm's output
 * with the guest tty's '\r's dropped.
 */
#ifndef FORKVM_TESTS_INTEGRATION_LINUX_HELPERS_H
#define FORKVM_TESTS_INTEGRATION_LINUX_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/integration/test_vmm_helpers.h"

/* The guest's tty writes "\r\n" (ONLCR): drop the '\r's, lines end in '\n'. */
static inline void linux_drop_cr(char *s)
{
	char *r = s, *w = s;

	for (; *r; r++) {
		if (*r != '\r')
			*w++ = *r;
	}
	*w = '\0';
}

/* vmm_run() into @out, the '\r's dropped. */
static inline int linux_run_forkvm(char *out, size_t outlen, const char *const *args)
{
	int rc = vmm_run(out, outlen, args);

	linux_drop_cr(out);
	return rc;
}

/* The build dir: $FORKVM_OUT (in-kvm sets it), else the forkvm binary's dir. */
static inline void linux_file(char *buf, size_t len, const char *name)
{
	const char *o = getenv("FORKVM_OUT");
	char bin[512], *slash;

	if (o && *o) {
		snprintf(buf, len, "%s/linux/%s", o, name);
		return;
	}
	snprintf(bin, sizeof(bin), "%s", vmm_bin());
	slash = strrchr(bin, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(bin, sizeof(bin), ".");
	snprintf(buf, len, "%s/linux/%s", bin, name);
}

/* Skip without KVM; the build's kernel and initramfs in @kernel and @initrd, or fail. */
static inline void linux_files_or_skip(char *kernel, size_t klen, char *initrd, size_t ilen)
{
	vmm_kvm_or_skip();
	linux_file(kernel, klen, "vmlinuz");
	linux_file(initrd, ilen, "initrd.cpio");
	cr_assert_eq(access(kernel, R_OK), 0,
		     "no %s: make builds it (guest/linux/linux.mk, needs apt-get download)",
		     kernel);
	cr_assert_eq(access(initrd, R_OK), 0, "no %s", initrd);
}

#endif /* FORKVM_TESTS_INTEGRATION_LINUX_HELPERS_H */
