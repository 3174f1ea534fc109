// SPDX-License-Identifier: MIT
/*
 * forkvm-fork: the Linux guest's side of forkvm's guest ports (guest/abi.h),
 * a static program in the initramfs.  Root may use ioperm(2).
 *
 *   forkvm-fork            fork the whole VM here, like fork(2): prints the
 *                          child's id (> 0) in the parent and 0 in the child,
 *                          exits 0 in both; exits 1 if the VMM could not fork
 *   forkvm-fork exit N     stop the VM with exit status N (0-255)
 *   forkvm-fork result V   report a 32-bit value ("result: 0x%08x" on the VMM)
 *
 * The fork is of the whole machine: every process, the page cache and the
 * devices' state are copied.  Only this process learns which side it is on.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <unistd.h>

#include "guest/abi.h"

static int usage(void)
{
	fprintf(stderr, "usage: forkvm-fork | forkvm-fork exit N | forkvm-fork result V\n");
	return 2;
}

static int number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 0);
	return errno || !*s || *end || *out > max ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long v;
	uint32_t r;

	/* PORT_EXIT .. PORT_FORK: 0x501-0x504, 4 bytes wide at 0x504. */
	if (ioperm(PORT_EXIT, PORT_FORK + 4 - PORT_EXIT, 1)) {
		fprintf(stderr, "forkvm-fork: ioperm: %s (needs root)\n", strerror(errno));
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "exit")) {
		if (number(argv[2], 255, &v))
			return usage();
		fflush(NULL);
		sync();
		outl((uint32_t)v, PORT_EXIT);
		/* Not reached: the VMM stops every vCPU at the OUT. */
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "result")) {
		if (number(argv[2], 0xffffffffUL, &v))
			return usage();
		outl((uint32_t)v, PORT_RESULT);
		return 0;
	}
	if (argc != 1)
		return usage();
	fflush(NULL);
	outl(FORK_MAGIC, PORT_FORK);
	r = inl(PORT_FORK);
	if (r == FORK_FAILED || r == FORK_NONE) {
		fprintf(stderr, "forkvm-fork: the VMM could not fork (%s)\n",
			r == FORK_NONE ? "no fork happened" : "FORK_FAILED; see its stderr");
		return 1;
	}
	printf("%u\n", r);
	return 0;
}
