/* SPDX-License-Identifier: MIT */
/*
 * A snapshot's manifest (docs/snapshot.md): a flattened device tree written
 * with libfdt.  This module turns a struct snap_manifest into a blob and a
 * blob, untrusted, back into a struct: every property is checked (presence,
 * length, range) before it is used, and a blob that fails one check is
 * refused with one line naming the property.  No KVM, no files: the unit
 * tests and the fuzzer drive it directly.
 */
#ifndef FORKVM_VMM_SNAPSHOT_MANIFEST_H
#define FORKVM_VMM_SNAPSHOT_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The version rule: a forkvm reads every snapshot of its own major version,
 * whatever the minor (a minor version only adds optional properties, which
 * an older forkvm ignores); another major is refused naming both.
 */
#define SNAP_FORMAT_MAJOR 1u
/* 1.1: kind "diff" and /memory/base (a 1.0 reader refuses the kind).
 * 1.2: /disks (a 1.1 reader ignores it and refuses the virtio-blk devices
 * of /machine/devices at restore, naming them). */
#define SNAP_FORMAT_MINOR 2u

#define SNAP_MANIFEST_NAME "manifest.dtb"
#define SNAP_MEMORY_NAME "memory"

#define SNAP_MAX_RANGES 8u
#define SNAP_MAX_CPUID 256u
#define SNAP_MAX_DEVS 16u
#define SNAP_MAX_CPUS 64u
/* Disks: the VMM's own limit (LAYOUT_MAX_DISKS), each at most 1 TiB. */
#define SNAP_MAX_DISKS 8u
#define SNAP_DISK_MAX (1ULL << 40)
/* A disk's latency (a test knob, disk_config.latency_ns): at most 10 s. */
#define SNAP_LATENCY_MAX 10000000000ULL
/* A disk's GET_ID answer: at most 20 bytes. */
#define SNAP_DISK_ID_MAX 20u
/* A manifest is small (the state of 64 vCPUs is ~1.2 MiB): refuse more. */
#define SNAP_MANIFEST_MAX (8u << 20)
/* The machine state blob: 64 vCPUs of ~17 KiB, the VM, devices. */
#define SNAP_STATE_MAX (4u << 20)
/* Guest memory a snapshot may describe (the VMM's own limit is 3 GiB). */
#define SNAP_MEM_MAX (64ULL << 30)

enum snap_kind {
	SNAP_FULL = 1, /* paused while written */
	SNAP_LIVE = 2, /* a copy-on-write reference at the pause, written running */
	SNAP_DIFF = 3, /* live, only the pages written since its base snapshot */
};

/* A diff's base: a sibling directory's name, never a path. */
#define SNAP_BASE_MAX 256u
/* Diffs of diffs: how deep a chain may go. */
#define SNAP_CHAIN_MAX 16u

struct snap_cpuid {
	uint32_t function;
	uint32_t index;
	uint32_t eax, ebx, ecx, edx;
};

struct snap_range {
	uint64_t gpa;
	uint64_t size;
};

struct snap_dev {
	uint32_t id; /* struct device.id */
	uint32_t type; /* enum device_type */
};

/*
 * A disk of the machine: its contents at the instant are the file
 * "disk<index>" of the snapshot (snap_disk_name()), index = its place in
 * /disks, which is the order of the virtio-blk devices in /machine/devices
 * (and so its MMIO window and interrupt).
 */
struct snap_disk {
	uint32_t dev_id; /* the virtio-blk device it backs */
	uint32_t readonly; /* 0 or 1 */
	uint64_t size; /* bytes: the file's size, a multiple of 512, not 0 */
	uint64_t blocks; /* 4 KiB blocks with data in the file (informative) */
	uint64_t latency_ns; /* disk_config.latency_ns of the saved machine */
	char id[SNAP_DISK_ID_MAX + 1]; /* the GET_ID answer the guest saw */
};

struct snap_manifest {
	uint32_t major, minor; /* of the blob (parse), or ours (build) */
	enum snap_kind kind;
	char cpu_model[128]; /* the host's /proc/cpuinfo "model name" */
	unsigned int ncpuid;
	struct snap_cpuid cpuid[SNAP_MAX_CPUID]; /* what the guest's vCPUs were given */
	unsigned int nranges;
	struct snap_range range[SNAP_MAX_RANGES];
	uint64_t mem_file_size; /* = end of the last range: the memory file's length */
	uint64_t pages_present; /* pages with data in the memory file (informative) */
	char base[SNAP_BASE_MAX]; /* SNAP_DIFF: the base snapshot's directory name */
	uint32_t ncpus;
	uint32_t policy; /* enum mm_policy of the saved family */
	unsigned int ndevs;
	struct snap_dev dev[SNAP_MAX_DEVS];
	unsigned int ndisks; /* 1.2: as many as virtio-blk devices */
	struct snap_disk disk[SNAP_MAX_DISKS];
	const void *state; /* the machine state (vmm/machine_state.h), not copied */
	uint32_t state_size;
};

/**
 * snap_kind_name() - "full", "live", "diff"; "?" for anything else.
 */
const char *snap_kind_name(enum snap_kind kind);

/** snap_disk_name() - "disk<i>", the file and node name of disk @i. */
void snap_disk_name(unsigned int i, char *buf, size_t len);

/**
 * snap_manifest_build() - write @man as a device tree into @buf.
 * Return: bytes used, or -errno (-ENOSPC: @cap too small).
 */
long snap_manifest_build(const struct snap_manifest *man, void *buf, size_t cap);

/**
 * snap_manifest_parse() - check @size bytes at @blob (untrusted) and fill
 * @man; man->state then points into @blob.  Checks: fdt_check_full(), the
 * format version (another major is refused naming found and expected), every
 * required property present with its exact length, strings terminated,
 * counts within the limits above, memory ranges page-aligned, sorted,
 * non-overlapping and without overflow, the memory file's size equal to the
 * end of the last range, device ids unique, a diff's base a plain name
 * (no '/', not "." or ".."), the disks (/disks/disk<i>, in order, one for
 * each virtio-blk device in its order, sizes multiples of 512 up to
 * SNAP_DISK_MAX, blocks within the size).  The machine state's own framing
 * is checked by the restore (mstate_check()).
 * Return: 0 or -EINVAL (-EPROTONOSUPPORT for another major) with @err.
 */
int snap_manifest_parse(const void *blob, size_t size, struct snap_manifest *man, char *err,
			size_t errlen) __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_SNAPSHOT_MANIFEST_H */
