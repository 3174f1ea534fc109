/* SPDX-License-Identifier: MIT */
/*
 * A whole machine for the test guest: KVM, guest memory (an mm space), the VM,
 * its vCPUs, the console and the virtio disks, the guest image and its FDT.
 * Devices are kept as a list of opaque handles with their destroy function:
 * the machine does not know their insides and they do not know the machine.
 */
#ifndef FORKVM_VMM_MACHINE_H
#define FORKVM_VMM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/cpus.h"
#include "vmm/elf.h"
#include "vmm/kvm.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

struct console_tap;
struct pool;
struct space;

struct machine_disk {
	const char *path;
	bool readonly;
};

struct machine_config {
	uint64_t mem_size;
	unsigned int ncpus;
	const char *workload;
	const char *args; /* NULL: "" */
	const char *guest_elf; /* path of the test guest */
	const char *console; /* NULL: stdout */
	const char *console_prefix; /* non-NULL: each console line gets it (a tap) */
	unsigned int ndisks;
	struct machine_disk disks[LAYOUT_MAX_DISKS];
	bool quiet_results; /* do not print "result:" lines (in-process tests) */
};

#define MACHINE_MAX_DEVS (LAYOUT_MAX_DISKS + 4)

struct machine_dev {
	void *obj;
	void (*destroy)(void *obj);
	/* Optional: quiesce in-flight requests (no pins held) and restart. */
	void (*pause)(void *obj);
	void (*resume)(void *obj);
};

struct machine {
	struct kvm_sys kvm;
	struct pool *pool;
	bool owns_pool; /* false in a clone: the family's pool is the parent's */
	struct space *space;
	struct vm vm;
	bool vm_created;
	struct cpus cpus;
	bool cpus_created;
	int console_fd; /* -1: none of ours */
	struct console_tap *tap; /* NULL: the serial writes straight to the output */
	unsigned int ndisks;
	unsigned int ndevs;
	struct machine_dev devs[MACHINE_MAX_DEVS];
	struct elf_image image;
};

/**
 * machine_create() - build the machine of @cfg, ready to start: memory,
 * VM, devices, guest image, FDT, boot tables, vCPUs at the entry.
 * Return: 0 or -errno; @err gets a one-line reason.
 */
int machine_create(const struct machine_config *cfg, struct machine **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * machine_add_console() - the COM1 serial port of @m (whose VM exists), writing
 * to @path (NULL: stdout), through a tap prefixing each line with @prefix
 * when @prefix is not NULL.  Return: 0 or -errno; @err gets a one-line reason.
 */
int machine_add_console(struct machine *m, const char *path, const char *prefix, char *err,
			size_t errlen) __attribute__((warn_unused_result));

/**
 * machine_wait_console() - wait until the guest printed @lines lines, at most
 * @timeout_ms.  Return: 0, -ETIMEDOUT, or -ENOTSUP without a console prefix.
 */
int machine_wait_console(struct machine *m, unsigned long lines, unsigned int timeout_ms);

/** machine_start() - start the vCPU threads. */
int machine_start(struct machine *m) __attribute__((warn_unused_result));

/** machine_wait() - cpus_wait(): run until the guest exits; the exit status. */
int machine_wait(struct machine *m, unsigned int timeout_ms);

/** machine_stopped() - the guest exited or the machine was stopped. */
bool machine_stopped(struct machine *m);

/** machine_stop_reason() - why it stopped, "" for a clean guest exit. */
const char *machine_stop_reason(struct machine *m);

/**
 * machine_pause_check() - pause every vCPU, read its full state, check that
 * it is the test guest's (64-bit, CPL 3, paging), write it back unchanged,
 * resume.  Return: 0, -ESRCH (the guest already stopped), or -errno with @err.
 */
int machine_pause_check(struct machine *m, char *err, size_t errlen);

/**
 * machine_pause() - pause every vCPU at an instruction boundary, then every
 * device that can quiesce (no request in flight, no pin held): the state a
 * clone or snapshot copies.  Return: 0, or -ESRCH if the guest already stopped.
 */
int machine_pause(struct machine *m);

/** machine_resume() - undo machine_pause(): devices first, then vCPUs. */
void machine_resume(struct machine *m);

/**
 * machine_destroy() - stop and free everything; NULL is a no-op.  A parent
 * must be destroyed after its clones: they share its frame pool.
 */
void machine_destroy(struct machine *m);

#endif /* FORKVM_VMM_MACHINE_H */
