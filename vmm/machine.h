/* SPDX-License-Identifier: MIT */
/*
 * A whole machine: KVM, guest memory (an mm space), the VM, its vCPUs, the
 * console and the virtio disks, and its board (vmm/board.h): the test guest
 * (ELF + FDT) or Linux (bzImage + ACPI), which loads the guest and sets the
 * vCPUs' entry.
 * Devices are a list of struct device (vmm/device.h), one ops table for all:
 * the machine does not know their insides and they do not know the machine.
 */
#ifndef FORKVM_VMM_MACHINE_H
#define FORKVM_VMM_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/mm.h"
#include "vmm/cpus.h"
#include "vmm/device.h"
#include "vmm/elf.h"
#include "vmm/kvm.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

struct console_tap;
struct machine_state;
struct pool;
struct space;

struct machine_disk {
	const char *path;
	bool readonly;
	uint64_t latency_ns; /* each request completes no earlier (tests, demo); 0: none */
	const char *id; /* the disk's GET_ID answer; NULL: the file's base name */
	bool overlay; /* the file is never written: writes go to an overlay (a snapshot's) */
};

struct machine_config {
	uint64_t mem_size;
	unsigned int ncpus;
	const char *workload;
	const char *args; /* NULL: "" */
	const char *guest_elf; /* path of the test guest */
	const char *kernel; /* non-NULL: boot this Linux bzImage (the Linux board) */
	const char *initrd; /* Linux: NULL for none */
	const char *cmdline; /* Linux: NULL for LINUX_DEFAULT_CMDLINE */
	const char *console; /* NULL: stdout */
	const char *console_prefix; /* non-NULL: each console line gets it (a tap) */
	unsigned int ndisks;
	struct machine_disk disks[LAYOUT_MAX_DISKS];
	bool quiet_results; /* do not print "result:" lines (in-process tests) */
	enum mm_policy policy; /* the family's COW policy (tests: --mm-policy) */
};

#define MACHINE_MAX_DEVS (LAYOUT_MAX_DISKS + 4)

struct board_ops;
struct pool_ref;

/*
 * A machine's life (machine_life()), changed under its life lock only:
 * created -> running (machine_start) -> paused <-> running (the first
 * machine_pause, the last machine_resume) -> stopped (the guest exited,
 * crashed, or machine_stop(); never left).
 */
enum machine_life {
	MACHINE_CREATED = 0, /* built, vCPUs not started (calloc'ed machines start here) */
	MACHINE_RUNNING,
	MACHINE_PAUSED,
	MACHINE_STOPPED,
};

struct machine {
	const struct board_ops *board; /* test guest or Linux (a clone: its parent's) */
	struct kvm_sys kvm;
	struct pool *pool;
	bool owns_pool; /* false in a clone: the family's pool is the parent's */
	/* Non-NULL: @pool is held by this reference (machine_share_pool()), not owned. */
	struct pool_ref *pool_ref;
	struct space *space;
	struct vm vm;
	bool vm_created;
	struct cpus cpus;
	bool cpus_created;
	int console_fd; /* -1: none of ours */
	int console_out; /* what the serial writes to: the tap, console_fd or stdout */
	struct console_tap *tap; /* NULL: the serial writes straight to the output */
	unsigned int ndisks;
	unsigned int ndevs;
	uint32_t next_dev_id;
	struct device dev[MACHINE_MAX_DEVS];
	struct elf_image image;
	/* The life lock: @life and the pause depth. */
	pthread_mutex_t pause_lock;
	unsigned int pause_depth; /* machine_pause()/machine_resume() nest */
	enum machine_life life;
	unsigned int refs; /* atomic: references besides the first (machine_get()) */
};

/**
 * machine_create() - build the machine of @cfg, ready to start: memory,
 * VM, devices, guest image, FDT, boot tables, vCPUs at the entry.
 * Return: 0 or -errno; @err gets a one-line reason.
 */
int machine_create(const struct machine_config *cfg, struct machine **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * machine_open_console() - where @m's serial port will write: @path (NULL:
 * stdout), through a tap prefixing each line with @prefix when @prefix is
 * not NULL (m->console_out).  Return: 0 or -errno with @err.
 */
int machine_open_console(struct machine *m, const char *path, const char *prefix, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/**
 * machine_add_device() - add a device (ops, object) to @m with id @id (0: the
 * next free one).  On failure the caller still owns @obj.  Return: 0 or
 * -ENOSPC.
 */
int machine_add_device(struct machine *m, const struct device_ops *ops, void *obj, uint32_t id)
    __attribute__((warn_unused_result));

/**
 * machine_hold_devices() - hold every device's completions (vCPUs paused):
 * in-flight requests stay in flight, but no device state changes until
 * machine_release_devices().
 */
void machine_hold_devices(struct machine *m);
void machine_release_devices(struct machine *m);

/** machine_inflight() - device requests in flight right now, all devices. */
unsigned int machine_inflight(struct machine *m);

/**
 * machine_state_room() - bytes machine_save_state() needs for @m: allocate
 * them before the pause.
 */
size_t machine_state_room(struct machine *m);

/**
 * machine_save_state() - append @m's VM, vCPU and device sections to @ms.
 * Context: @m paused (machine_pause()), so its devices are held.
 * Return: 0 or -errno with @err.
 */
int machine_save_state(struct machine *m, struct machine_state *ms, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * machine_restore_state() - load @ms (checked first) into @m, a machine
 * made by machine_clone() whose devices exist and whose vCPUs have not run.
 * Every device of @m must find its section (same id, same type).
 * Return: 0 or -errno with @err naming the section or device.
 */
int machine_restore_state(struct machine *m, const struct machine_state *ms, char *err,
			  size_t errlen) __attribute__((warn_unused_result));

/**
 * machine_wait_console() - wait until the guest printed @lines lines, at most
 * @timeout_ms.  Return: 0, -ETIMEDOUT, or -ENOTSUP without a console prefix.
 */
int machine_wait_console(struct machine *m, unsigned long lines, unsigned int timeout_ms);

/** machine_console_lines() - lines the guest printed so far (0 without a tap). */
unsigned long machine_console_lines(struct machine *m);

/** machine_start() - start the vCPU threads. */
int machine_start(struct machine *m) __attribute__((warn_unused_result));

/** machine_wait() - cpus_wait(): run until the guest exits; the exit status. */
int machine_wait(struct machine *m, unsigned int timeout_ms);

/** machine_stopped() - the guest exited or the machine was stopped. */
bool machine_stopped(struct machine *m);

/** machine_stop_reason() - why it stopped, "" for a clean guest exit. */
const char *machine_stop_reason(struct machine *m);

/**
 * machine_board() - @m's board (a clone has its parent's); NULL (a spare
 * machine) reads as the test guest's.
 */
const struct board_ops *machine_board(const struct machine *m);

/**
 * machine_pause_check() - pause every vCPU, read its full state, check that
 * it is one its board's guest can be in (the test guest: 64-bit, CPL 3,
 * paging), write it back unchanged, resume.
 * Return: 0, -ESRCH (the guest already stopped), or -errno with @err.
 */
int machine_pause_check(struct machine *m, char *err, size_t errlen);

/**
 * machine_pause() - pause every vCPU at an instruction boundary, then hold
 * every device (machine_hold_devices(): requests stay in flight, pins stay
 * held, completions wait): the state a clone or snapshot copies.
 * Pauses nest (the control API's, a clone's): only the first pauses, only
 * the last machine_resume() resumes.
 * Return: 0, or -ESRCH if the guest already stopped.
 */
int machine_pause(struct machine *m);

/** machine_resume() - undo machine_pause(): release devices, then resume vCPUs. */
void machine_resume(struct machine *m);

/*
 * Accessors: what code outside the machine reads of it, so that struct
 * machine can become opaque (issue 12; family.c and the API use only
 * these, other callers still reach inside).
 */
struct space *machine_space(const struct machine *m);
struct pool *machine_pool(const struct machine *m);
struct cpus *machine_cpus(struct machine *m);
unsigned int machine_ncpus(const struct machine *m);
unsigned int machine_ndisks(const struct machine *m);

/** machine_exit_status() - the exit status once stopped (cpus_stop()'s first). */
int machine_exit_status(struct machine *m);

/** machine_last_result() - the last port-0x503 value into *@out; false if none. */
bool machine_last_result(struct machine *m, uint32_t *out);

/** machine_set_fork_hook() - where @m's guest forks go; before machine_start(). */
void machine_set_fork_hook(struct machine *m, struct cpus_fork_hook hook);

/**
 * machine_life() - @m's state.  A guest that stopped by itself (exit, crash)
 * is seen, and recorded, here.
 */
enum machine_life machine_life(struct machine *m);

/** machine_life_name() - "created", "running", "paused" or "stopped". */
const char *machine_life_name(enum machine_life l);

/**
 * machine_stop() - stop @m for good: its vCPUs leave (paused ones too), the
 * first stop's @status and @reason are kept.  A no-op once stopped.
 */
void machine_stop(struct machine *m, int status, const char *reason);

/**
 * machine_stop_fd() - an eventfd that becomes readable when @m stops (the
 * guest exits, crashes, or is stopped): poll() it instead of polling
 * machine_stopped().  Owned by @m; -1 before its vCPUs exist.
 */
int machine_stop_fd(struct machine *m);

/**
 * machine_get() - one more reference to @m (a caller that must not see it
 * freed meanwhile).  machine_put() drops one; the last one destroys @m.
 * A machine starts with one reference, its maker's.
 */
struct machine *machine_get(struct machine *m);
void machine_put(struct machine *m);

/*
 * A frame pool held by reference: machines of one family each hold one,
 * the family too, so that they may go in any order (the template first);
 * the last pool_ref_put() destroys the pool.
 */
/** pool_ref_create() - a reference (count 1) to @pool, which it now owns. */
int pool_ref_create(struct pool *pool, struct pool_ref **out) __attribute__((warn_unused_result));
struct pool_ref *pool_ref_get(struct pool_ref *r);
void pool_ref_put(struct pool_ref *r);
struct pool *pool_ref_pool(const struct pool_ref *r);

/**
 * machine_share_pool() - @m holds its pool through @r from now on (one
 * more reference), no longer owning it: @m's pool must be @r's.
 */
void machine_share_pool(struct machine *m, struct pool_ref *r);

/**
 * machine_destroy() - stop and free everything, whatever the references;
 * NULL is a no-op.  A machine whose pool is its own (no machine_share_pool())
 * must be destroyed after its clones: they share that pool.
 */
void machine_destroy(struct machine *m);

#endif /* FORKVM_VMM_MACHINE_H */
