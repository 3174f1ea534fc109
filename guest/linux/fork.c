// SPDX-License-Identifier: MIT
/*
 * forkvm-fork: the Linux guest's side of forkvm's guest ports (guest/abi.h),
 * a static program in the initramfs.  Root may use ioperm(2).
 *
 *   forkvm-fork            fork the whole VM here, like fork(2): prints the
 *                          child's id (> 0) in the parent and 0 in the child,
 *                          exits 0 in both; exits 1 if the VMM could not fork.
 *                          The child reseeds the kernel's RNG before it
 *                          returns (32 bytes from PORT_ENTROPY, RNDADDENTROPY,
 *                          RNDRESEEDCRNG); --no-reseed skips that (to show
 *                          what the reseed is for)
 *   forkvm-fork exit N     stop the VM with exit status N (0-255)
 *   forkvm-fork result V   report a 32-bit value ("result: 0x%08x" on the VMM)
 *
 * The fork is of the whole machine: every process, the page cache and the
 * devices' state are copied.  Only this process learns which side it is on.
 *
 * The result and the exit status go through /dev/port (the kernel's inb and
 * outb) where it exists: in a clone made on the nested path, a user-space
 * IN or OUT faults even with ioperm (QEMU's TCG accepts only an "available"
 * TSS type for the I/O bitmap, and KVM's saved TR says "busy"; see
 * docs/linux-guest.md), and the child's first instruction is the read of
 * its result.  Child ids fit a byte (the family holds at most 65 VMs).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/random.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "guest/abi.h"

static int usage(void)
{
	fprintf(stderr, "usage: forkvm-fork [--no-reseed] | forkvm-fork exit N | "
			"forkvm-fork result V\n");
	return 2;
}

/* One byte through /dev/port.  Return: 0, or -1 if /dev/port is not there. */
static int port_byte(uint16_t port, uint8_t *v, int write)
{
	int fd = open("/dev/port", write ? O_WRONLY : O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write ? pwrite(fd, v, 1, port) : pread(fd, v, 1, port);
	close(fd);
	return n == 1 ? 0 : -1;
}

/*
 * The child holds its parent's RNG state: the same bytes would come out of
 * both.  Mix 32 fresh bytes from the host into the input pool and reseed at
 * once (the kernel reseeds from VMGenID too, but asynchronously, after this
 * process may already have read): every reader after this sees new output.
 */
static int reseed(void)
{
	enum { N = 32 };
	struct rand_pool_info *info = malloc(sizeof(*info) + N);
	int port = open("/dev/port", O_RDONLY), rnd = -1, ret = -1;
	uint8_t *buf;
	unsigned int i;

	if (!info || port < 0)
		goto out;
	buf = (uint8_t *)info->buf;
	for (i = 0; i < N; i++) {
		if (pread(port, &buf[i], 1, PORT_ENTROPY) != 1)
			goto out;
	}
	info->entropy_count = 8 * N;
	info->buf_size = N;
	rnd = open("/dev/urandom", O_RDWR);
	if (rnd < 0 || ioctl(rnd, RNDADDENTROPY, info) || ioctl(rnd, RNDRESEEDCRNG))
		goto out;
	ret = 0;
out:
	if (ret)
		fprintf(stderr, "forkvm-fork: reseeding the child's RNG: %s\n", strerror(errno));
	if (rnd >= 0)
		close(rnd);
	if (port >= 0)
		close(port);
	free(info);
	return ret;
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
	uint8_t b;

	/* PORT_EXIT .. PORT_FORK: 0x501-0x504, 4 bytes wide at 0x504. */
	if (ioperm(PORT_EXIT, PORT_FORK + 4 - PORT_EXIT, 1)) {
		fprintf(stderr, "forkvm-fork: ioperm: %s (needs root)\n", strerror(errno));
		return 1;
	}
	if (argc == 3 && !strcmp(argv[1], "exit")) {
		if (number(argv[2], 255, &v))
			return usage();
		b = (uint8_t)v;
		fflush(NULL);
		sync();
		if (port_byte(PORT_EXIT, &b, 1))
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
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "--no-reseed")))
		return usage();
	fflush(NULL);
	outl(FORK_MAGIC, PORT_FORK);
	/* The low byte: ids are small, FORK_FAILED/FORK_NONE end in ff/fe. */
	if (!port_byte(PORT_FORK, &b, 0))
		r = b == (FORK_FAILED & 0xff) ? FORK_FAILED
		    : b == (FORK_NONE & 0xff) ? FORK_NONE
					      : b;
	else
		r = inl(PORT_FORK);
	if (r == FORK_FAILED || r == FORK_NONE) {
		fprintf(stderr, "forkvm-fork: the VMM could not fork (%s)\n",
			r == FORK_NONE ? "no fork happened" : "FORK_FAILED; see its stderr");
		return 1;
	}
	if (r == 0 && argc == 1 && reseed())
		return 1;
	printf("%u\n", r);
	return 0;
}
