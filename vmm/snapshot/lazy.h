/* SPDX-License-Identifier: MIT */
/*
 * Lazy restore (docs/snapshot.md): the guest starts before its memory is
 * read; each page comes from the snapshot's memory file on first touch (mm's
 * backing source, mm/lazy.c).  A working set (the pages touched in the first
 * N ms of a lazy restore) can be recorded into the snapshot directory and
 * loaded ahead, in one sequential pass, by the next lazy restore.
 */
#ifndef FORKVM_VMM_SNAPSHOT_LAZY_H
#define FORKVM_VMM_SNAPSHOT_LAZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/snapshot/store.h"

struct machine;
struct space;

/* The working-set file of a snapshot directory. */
#define SNAP_WS_NAME "working-set"
#define SNAP_WS_MAGIC "FORKVMWS"
#define SNAP_WS_VERSION 1u
#define SNAP_WS_HEADER 32u
#define SNAP_WS_HASH_SEED 0xcbf29ce484222325ULL /* FNV-1a's offset basis */
/* Pages a guest fault loads at once (64 KiB; FORKVM_LAZY_READAROUND overrides). */
#define SNAP_LAZY_READAROUND 16u
/* --record-ws: at most this long (ms). */
#define SNAP_WS_RECORD_MAX_MS 600000u

struct snap_lazy_opts {
	bool lazy; /* --lazy (implied by the two below) */
	bool prefetch; /* --prefetch: load the recorded working set before start */
	unsigned int record_ms; /* --record-ws MS: record the first MS ms (0: no) */
	/* Results, filled by snap_lazy_memory(): */
	uint64_t lazy_pages; /* pages left to load on touch at start */
	uint64_t ws_pages; /* pages in the working-set file read */
	uint64_t prefetched; /* pages loaded before start */
	uint64_t man_hash; /* snap_ws_hash() of the snapshot's manifest */
};

/**
 * snap_lazy_option() - the restore option at @argv[@i], if it is one of
 * --lazy, --prefetch, --record-ws MS.  Return: words taken (0: not ours),
 * or -1 after one line on stderr (a bad value).
 */
int snap_lazy_option(int argc, char **argv, int i, struct snap_lazy_opts *lo);

/**
 * snap_lazy_memory() - make @space's memory the chain's (@chain[0] the
 * snapshot in @dir, then its bases), lazily: every data extent of each
 * memory file, oldest first, becomes lazy pages of @space.  Data outside the
 * layout is refused as the eager load refuses it.  With @lo->prefetch, the
 * working set of @dir is read (checked as untrusted input; a missing or bad
 * file is a warning on stderr, and the restore goes on without it) and
 * loaded.  With @lo->record_ms, the space starts recording.
 * Return: 0 or -errno with @err.
 */
int snap_lazy_memory(struct snap_loaded *chain, int n, const char *dir, struct space *space,
		     struct snap_lazy_opts *lo, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/**
 * snap_lazy_started() - after machine_start() of a lazy restore: one line on
 * stderr; with --record-ws, wait the recording time (or until the guest
 * stops), then save the working set into @dir (a warning if that fails).
 */
void snap_lazy_started(struct machine *m, const char *dir, const struct snap_lazy_opts *lo);

/** snap_lazy_report() - one line on stderr: what the guest loaded on touch. */
void snap_lazy_report(struct machine *m, const struct snap_lazy_opts *lo);

/* A working set read and checked: its addresses and their pages' data. */
struct snap_ws {
	uint64_t *gpas;
	uint8_t *data; /* n pages, in the order of gpas */
	size_t n;
};

/** snap_ws_hash() - FNV-1a (64 bits) of @len bytes, from @h (SNAP_WS_HASH_SEED). */
uint64_t snap_ws_hash(const void *buf, size_t len, uint64_t h);

/**
 * snap_ws_write() - @n guest addresses (sorted, page-aligned) and their
 * pages' data at the snapshot's instant as @dir's working-set file, bound to
 * the snapshot by @man_hash (snap_ws_hash() of its manifest file), written
 * atomically (temporary name, fsync, rename, fsync of @dir).
 * Return: 0 or -errno with @err.
 */
int snap_ws_write(const char *dir, uint64_t man_hash, const uint64_t *gpas, const void *data,
		  size_t n, char *err, size_t errlen) __attribute__((warn_unused_result));

/**
 * snap_ws_read() - @dir's working-set file, checked (docs/snapshot.md): a
 * regular file, magic and version, length = the data's offset + 4 KiB x
 * count, count at most the layout's pages, @man_hash its manifest's, each
 * address page-aligned, inside a range and strictly ascending, the data's
 * checksum.  Return: 0 and *@ws (snap_ws_free()), -ENOENT if there is none,
 * or -errno with @err.
 */
int snap_ws_read(const char *dir, const struct snap_manifest *man, uint64_t man_hash,
		 struct snap_ws *ws, char *err, size_t errlen) __attribute__((warn_unused_result));

void snap_ws_free(struct snap_ws *ws);

#endif /* FORKVM_VMM_SNAPSHOT_LAZY_H */
