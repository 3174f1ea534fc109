/* SPDX-License-Identifier: MIT */
/*
 * A snapshot directory on disk (docs/snapshot.md): the manifest and the
 * sparse memory file, written under a temporary name and renamed into place
 * once every byte is on disk, and read back as untrusted input.  No KVM: the
 * memory comes from and goes to an mm space.
 */
#ifndef FORKVM_VMM_SNAPSHOT_STORE_H
#define FORKVM_VMM_SNAPSHOT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/snapshot/manifest.h"

struct disk;
struct space;

struct snap_write {
	const char *dir; /* must not exist; its parent must */
	struct snap_manifest *man; /* pages_present is filled in here */
	struct space *space; /* the memory, nobody writing it */
	/* SNAP_DIFF: the space kept from the base snapshot (a fork of the same
	 * guest at that instant): only pages whose frame differs from its are
	 * written, zero pages included (a hole means "as in the base"). */
	struct space *base;
	/* man->ndisks disks, written as the files disk<i> (store_disks.h): each
	 * a handle nobody writes while this runs. */
	struct disk *const *disks;
	/* Tests only: writing more than this many bytes of data fails with
	 * ENOSPC, as a full disk would (0: never). */
	uint64_t fail_after;
	/* Tests only: called after each page was read (NULL: none), e.g. to
	 * write the source's guest as if it ran during the snapshot. */
	void (*after_page)(void *arg, uint64_t gpa);
	void *after_page_arg;
};

struct snap_write_stats {
	uint64_t pages; /* pages written (present and not all zero) */
	uint64_t bytes; /* data bytes written */
	uint64_t disk_bytes; /* the memory file's blocks on disk */
	uint64_t memory_ns; /* writing the memory file */
	uint64_t sync_ns; /* fsync of both files and the directories, rename */
	uint64_t disk_blocks; /* disks: 4 KiB blocks written */
	uint64_t disks_disk_bytes; /* disks: the files' blocks on disk */
	uint64_t disks_ns; /* writing and fsyncing the disk files */
};

/**
 * snap_store_write() - write a snapshot directory: @w->dir's temporary
 * sibling gets the memory file (only present, non-zero pages: the rest are
 * holes) and the manifest, both fsynced; the directory is fsynced, renamed
 * to @w->dir (never replacing anything) and its parent fsynced.  On any
 * failure the temporary directory is removed and @w->dir does not exist: a
 * crash or a full disk never leaves something that loads half.
 * Return: 0 or -errno with @err (-EEXIST: @w->dir exists).
 */
int snap_store_write(const struct snap_write *w, struct snap_write_stats *st, char *err,
		     size_t errlen) __attribute__((warn_unused_result));

struct snap_loaded {
	struct snap_manifest man; /* man.state points into blob */
	void *blob; /* the manifest's bytes */
	size_t blob_size;
	int mem_fd;
};

/**
 * snap_store_open() - read and check @dir's manifest (snap_manifest_parse())
 * and open its memory file, a regular file of exactly the layout's size.
 * Return: 0 or -errno with @err (one line naming the file and the fault).
 */
int snap_store_open(const char *dir, struct snap_loaded *l, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * snap_store_load_memory() - copy every non-zero page of @l's memory file
 * into @space (whose ranges are the manifest's), found with SEEK_DATA /
 * SEEK_HOLE; zero pages stay unwritten, except in a diff, where data is
 * what changed since the base (load the base first).  Data outside the
 * layout's ranges is refused.  Return: 0 or -errno with @err.
 */
int snap_store_load_memory(struct snap_loaded *l, struct space *space, uint64_t *pages, char *err,
			   size_t errlen) __attribute__((warn_unused_result));

/** snap_store_close() - free what snap_store_open() took; safe twice. */
void snap_store_close(struct snap_loaded *l);

#endif /* FORKVM_VMM_SNAPSHOT_STORE_H */
