/* SPDX-License-Identifier: MIT */
/*
 * Snapshots of a running machine (DESIGN.md 3.3, docs/snapshot.md): a
 * directory with a manifest (format version, the host's CPU and the CPUID
 * the guest saw, memory layout, machine state: VM, vCPUs, devices) and a
 * sparse memory file; restored in a new process by `forkvm restore DIR`.
 *
 * Full: pause, write everything, resume.  Live: pause, take a copy-on-write
 * reference to every frame (space_fork(): a clone without vCPUs), save the
 * state, resume; the frames are written while the guest runs, its writes
 * copying away from them, so the file is the memory at the pause.
 */
#ifndef FORKVM_VMM_SNAPSHOT_SNAPSHOT_H
#define FORKVM_VMM_SNAPSHOT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>

#include "vmm/snapshot/manifest.h"
#include "vmm/snapshot/store.h"

struct machine;

struct snapshot_timing {
	uint64_t paused_ns; /* the guest stopped */
	uint64_t total_ns; /* from the pause to the snapshot on disk */
	unsigned int inflight; /* device requests in flight at the instant */
	unsigned int ndisks;
	unsigned int folded; /* live/diff: disks whose writes reach their image again */
	struct snap_write_stats w;
};

/*
 * A snapshot kept as the base of later diffs: the space forked at its pause
 * (it holds a reference to every frame the guest had then, so a frame the
 * guest wrote since differs from it: mm's own record of what changed).
 */
struct snap_base {
	struct space *frozen;
	char dir[PATH_MAX]; /* where it was written */
	char name[SNAP_BASE_MAX]; /* its directory's name, what a diff's manifest names */
};

struct snapshot_opts {
	const char *dir;
	enum snap_kind kind;
	/* SNAP_DIFF: the base (a snapshot of this machine kept with @keep);
	 * the diff goes into the same parent directory. */
	const struct snap_base *base;
	/* Non-NULL: keep this snapshot as a base (*@keep, freed with
	 * snap_base_free()); its frames stay referenced until then. */
	struct snap_base **keep;
	uint64_t fail_after; /* tests: snap_write.fail_after */
};

/** snap_base_free() - drop a kept base and its frame references; NULL is a no-op. */
void snap_base_free(struct snap_base *b);

/**
 * machine_snapshot() - snapshot the started machine @m into @o->dir, which
 * must not exist; @m runs on afterwards.  Its disks' contents at the
 * instant go into the snapshot (live and diff: a disk_fork() in the pause,
 * written while the guest runs, then the fork closed and the guest's disk
 * folded back onto its image (disk_fold()); full: written from the disk
 * itself, paused).  Refused
 * (-EOPNOTSUPP, naming it) if a device cannot be snapshotted.
 * Return: 0; -ESRCH if @m already stopped; or -errno with @err.
 */
int machine_snapshot(struct machine *m, const struct snapshot_opts *o, struct snapshot_timing *t,
		     char *err, size_t errlen) __attribute__((warn_unused_result));

struct restore_opts {
	const char *console; /* NULL: stdout */
	const char *console_prefix; /* NULL: none */
	bool quiet_results;
	/* Lazy restore (vmm/snapshot/lazy.h); NULL or not ->lazy: eager. */
	struct snap_lazy_opts *lazy;
};

struct restore_timing {
	uint64_t open_ns; /* manifest read and checked */
	uint64_t build_ns; /* KVM VM, vCPUs, devices */
	uint64_t memory_ns; /* the memory file loaded */
	uint64_t state_ns; /* VM, vCPU and device state loaded */
	uint64_t pages;
};

/**
 * snapshot_restore() - a machine built from the snapshot in @dir, not
 * started (machine_start() runs it from the saved instruction).  Every part
 * of the snapshot is checked as untrusted input before the machine could
 * run; a host CPU lacking a feature the guest saw is refused, naming it.
 * Return: 0 or -errno with @err (one line).
 */
int snapshot_restore(const char *dir, const struct restore_opts *o, struct machine **out,
		     struct restore_timing *t, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * snap_cpuid_missing() - the features (CPUID feature bits) in @saved that
 * @host lacks, as one readable list in @out ("avx2, cpuid 0x7.0 ecx bit 3").
 * Return: how many are missing.
 */
unsigned int snap_cpuid_missing(const struct snap_cpuid *saved, unsigned int nsaved,
				const struct snap_cpuid *host, unsigned int nhost, char *out,
				size_t outlen);

#endif /* FORKVM_VMM_SNAPSHOT_SNAPSHOT_H */
