/* SPDX-License-Identifier: MIT */
/*
 * The disks of a snapshot directory (docs/snapshot.md, "Disks"): one sparse
 * file per disk, "disk<i>", holding the disk's contents at the instant,
 * written and checked for store.c.
 */
#ifndef FORKVM_VMM_SNAPSHOT_STORE_DISKS_H
#define FORKVM_VMM_SNAPSHOT_STORE_DISKS_H

#include <stddef.h>

#include "vmm/snapshot/store.h"

/**
 * snap_disks_write() - write each of @w->disks into @tmp/disk<i> (a file of
 * the disk's size, its non-zero blocks written, fsynced), filling
 * w->man->disk[i].blocks and @st's disk counts.
 * Return: 0 or -errno with @err.
 */
int snap_disks_write(const struct snap_write *w, const char *tmp, struct snap_write_stats *st,
		     char *err, size_t errlen) __attribute__((warn_unused_result));

/** snap_disks_remove() - unlink the disk files of a temporary directory. */
void snap_disks_remove(const char *tmp);

/**
 * snap_disks_check() - every disk of @man is a regular file @dir/disk<i>
 * (not a symlink, not a FIFO) of exactly its recorded size.
 * Return: 0 or -errno with @err naming the file.
 */
int snap_disks_check(const char *dir, const struct snap_manifest *man, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_SNAPSHOT_STORE_DISKS_H */
