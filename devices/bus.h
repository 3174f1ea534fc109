/* SPDX-License-Identifier: MIT */
/*
 * What a device needs from the machine it sits in, passed in as small structs
 * so that devices/ never includes vmm/ (and unit tests can fake all of it).
 */
#ifndef FORKVM_DEVICES_BUS_H
#define FORKVM_DEVICES_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* An I/O port or MMIO region the vCPU loop dispatches accesses to. */
struct bus_region {
	uint64_t base;
	uint64_t len;
	/* Called on a vCPU thread; @off is relative to @base; len 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t off, void *data, unsigned int len);
	void (*write)(void *opaque, uint64_t off, const void *data, unsigned int len);
	void *opaque;
};

/*
 * Guest memory as a device may touch it.  Every address is a guest value:
 * the implementation checks bounds and overflow and returns -errno.
 * The mm-backed implementation pins frames (mm/mm.h space_pin); a device
 * keeps no host pointer past unpin.
 */
struct dma_buf {
	unsigned int niov;
	struct iovec *iov;
	void *priv; /* the implementation's pin record */
};

struct guest_mem {
	int (*read)(void *opaque, uint64_t gpa, void *buf, size_t len);
	int (*write)(void *opaque, uint64_t gpa, const void *buf, size_t len);
	/* Pin [gpa, gpa+len) for the device; @write: the device will write it. */
	int (*pin)(void *opaque, uint64_t gpa, uint64_t len, bool write, struct dma_buf *out);
	void (*unpin)(void *opaque, struct dma_buf *buf);
	/* Optional (may be NULL): 0 if [gpa, gpa+len) is all guest memory,
	 * else -EFAULT (-EINVAL for len 0 or overflow).  Without it the
	 * virtqueue probes the first and last byte with read(). */
	int (*check)(void *opaque, uint64_t gpa, uint64_t len);
	void *opaque;
};

/* The machine's side of a device: interrupts and doorbells. */
struct dev_host {
	/* Assert an edge/pulse on @gsi through an irqfd-backed eventfd the
	 * host owns; returns the eventfd to write, or -errno. */
	int (*irqfd)(void *opaque, unsigned int gsi);
	/* Register @fd to be signalled when the guest writes @datamatch
	 * (32-bit) to MMIO address @addr; returns 0 or -errno. */
	int (*ioeventfd)(void *opaque, uint64_t addr, uint32_t datamatch, int fd);
	void *opaque;
};

#endif /* FORKVM_DEVICES_BUS_H */
