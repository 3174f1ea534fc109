/* SPDX-License-Identifier: MIT */
/*
 * One ops table for every device a machine holds (the 8250, each virtio-blk
 * behind its virtio-mmio window, ...): the machine keeps a list of struct
 * device and drives them through these pointers only.  It does not know a
 * device's insides, and devices/ never sees the machine: the wrappers that
 * fill these tables live in vmm/ (vmm/uart.c, vmm/disks.c).
 *
 * The id of a device names it in a saved machine state (vmm/machine_state.h):
 * a clone's device keeps its parent's id, so a state is matched to a device
 * by id and checked by type, never by position.
 *
 * Clone order (vmm/clone.c): inside the parent's pause, hold every device ->
 * space_fork -> save each state -> clone each device (only what must be
 * taken at that instant, e.g. the disk's contents) -> release; then, the
 * parent running again, attach each child device to the child's machine
 * (transport, threads, interrupt lines) and restore its state.
 */
#ifndef FORKVM_VMM_DEVICE_H
#define FORKVM_VMM_DEVICE_H

#include <stddef.h>
#include <stdint.h>

struct machine;

/* Device types as saved (struct mstate_section.type). */
enum device_type {
	DEVICE_SERIAL = 1, /* 8250 UART, COM1 */
	DEVICE_VIRTIO_BLK_MMIO = 2, /* virtio-blk behind a virtio-mmio window */
};

struct device_stats {
	unsigned int inflight; /* requests submitted and not completed */
};

/*
 * Every pointer but @destroy may be NULL: no hold needed, nothing to save, no
 * stats.  A device without @clone cannot be cloned, and a machine holding one
 * refuses machine_clone() with a message naming it.
 *
 * Context: @hold, @save, @clone and @release run on the cloning thread with
 * the machine's vCPUs paused; @attach and @restore on the cloning thread
 * before the child's vCPUs start.
 */
struct device_ops {
	const char *type; /* "serial", "virtio-blk": for messages */
	uint32_t type_id; /* enum device_type */
	/* Hold completions (not the I/O itself): from return until @release,
	 * the device's bookkeeping and what it wrote to guest memory describe
	 * one instant.  Requests in flight stay in flight. */
	void (*hold)(void *obj);
	void (*release)(void *obj);
	/* Bytes @save writes, known before the pause (no allocation in it). */
	uint32_t (*state_size)(void *obj);
	/* Held: write the device state (a plain struct) into @buf. */
	int (*save)(void *obj, void *buf, uint32_t size);
	/* Held, at the instant of the memory fork: a device for @child, with
	 * only what must be taken now (keep the pause short). */
	int (*clone)(void *obj, struct machine *child, void **child_obj, char *err, size_t errlen);
	/* Parent running again: put a device made by @clone into @child (its
	 * VM, space and console exist): buses, transport, interrupt lines.
	 * NULL: @clone did it all. */
	int (*attach)(void *obj, struct machine *child, char *err, size_t errlen);
	/* Load a saved state, validated like untrusted input, into a device
	 * made by @clone (its machine not running yet). */
	int (*restore)(void *obj, const void *buf, uint32_t size, char *err, size_t errlen);
	void (*stats)(void *obj, struct device_stats *st);
	/* Free it; its machine's vCPUs are stopped. */
	void (*destroy)(void *obj);
};

struct device {
	const struct device_ops *ops;
	void *obj;
	uint32_t id; /* unique in the machine; kept by its clones */
};

#endif /* FORKVM_VMM_DEVICE_H */
