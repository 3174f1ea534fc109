/* SPDX-License-Identifier: MIT */
/*
 * forkvm's hypervisor memory manager: the public API.
 *
 * A family of VMs (a template and everything cloned from it) shares one frame
 * pool.  Each VM's guest-physical memory is a space: a GPA -> frame table and a
 * host window that KVM memslots point at.  Copy-on-write follows Linux's rule:
 * reuse a frame only when it is obvious that we are its exclusive owner
 * (the page is marked exclusive, or page_count == 1); copy otherwise.  A
 * frame exclusive to its space that may be pinned is never shared: whoever
 * would share it (a fork's child, a reader) gets a copy.  Devices pin frames
 * before DMA.
 *
 * Nothing here includes a KVM header.  See docs/mm.md for the design.
 */
#ifndef FORKVM_MM_MM_H
#define FORKVM_MM_MM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define MM_PAGE_SHIFT 12
#define MM_PAGE_SIZE (1UL << MM_PAGE_SHIFT)
/* A pin counts this much in page_count, as Linux's GUP_PIN_COUNTING_BIAS. */
#define MM_PIN_BIAS 1024u
/* A frame number that names no frame. */
#define MM_NO_FRAME UINT64_MAX

struct pool;
struct space;

/**
 * typedef space_error_fn - a space's memory stopped working.
 * @opaque: what space_set_error_handler() was given.
 * @err: -errno of the first failure (-ENOSPC: no free frame, -ENOMEM: the
 * copy could not be mapped).
 * @gpa: the guest address of the write that could not be served.
 *
 * Context: called once per space, from the fault service's thread, with the
 * family lock held: it must not call into mm.  Record, signal, or ask the
 * machine to stop (e.g. cpus_stop()); nothing that waits for a vCPU.
 */
typedef void (*space_error_fn)(void *opaque, int err, uint64_t gpa);

/* The write-fault rule.  Only PAGECOUNT is correct; the others exist to show
 * that the DMA-safety tests can see the bugs they cause. */
enum mm_policy {
	MM_POLICY_PAGECOUNT = 0, /* reuse iff page_count == 1 (default) */
	MM_POLICY_MAPCOUNT, /* reuse iff one space maps the frame; fork shares pinned frames */
	MM_POLICY_NOPIN, /* page_count reuse, but fork shares pinned frames */
};

struct pool_config {
	/* Most guest memory the family may address at once (offset space of
	 * the pool, and the size of the direct map; both sparse).  0: 1 TiB. */
	uint64_t max_bytes;
	enum mm_policy policy;
	/* Pages copied together on a COW fault (aligned block; 1 = only the
	 * faulting page).  0: the default (see docs/mm.md). */
	unsigned int cow_batch;
	/* Use only what Linux 6.1's userfaultfd offers, even on a newer
	 * kernel (to test that path).  Also forced by FORKVM_UFFD_COMPAT=1. */
	bool uffd_compat;
};

struct pool_stats {
	uint64_t live_frames; /* frames with page_count > 0 */
	uint64_t fresh; /* frames given to never-written pages */
	uint64_t copies; /* COW copies (faults, pins, fork of pinned) */
	uint64_t reuses; /* COW faults resolved by reusing in place */
	uint64_t fork_copies; /* maybe-pinned frames copied for a child */
	uint64_t ref_copies; /* maybe-pinned frames copied for a reader (space_ref_page) */
	uint64_t underflows; /* puts of a frame whose count was 0 (a caller's bug) */
	uint64_t fault_errors; /* write faults that could not be resolved */
	uint64_t pins; /* pin calls */
	uint64_t pinned_frames; /* frames pinned right now */
	uint64_t faults; /* write faults served */
	uint64_t spaces; /* live spaces */
};

struct space_stats {
	uint64_t pages; /* guest pages */
	uint64_t present; /* pages that own or share a frame */
	uint64_t shared; /* present pages whose frame has page_count > 1 */
	uint64_t protected_pages; /* pages write-protected in the window */
	uint64_t vmas; /* host VMAs covering the window */
	bool has_pinned;
};

/* One range of guest-physical memory; a space has one or more. */
struct space_range {
	uint64_t gpa;
	uint64_t size;
};

/**
 * pool_create() - make the frame pool of a new family.
 * @cfg: settings, or NULL for the defaults.
 * @out: the new pool.
 * Return: 0 or -errno (-ENOSYS: the kernel lacks userfaultfd write-protect
 * on shared memory, Linux >= 5.19 is needed).
 */
int pool_create(const struct pool_config *cfg, struct pool **out)
    __attribute__((warn_unused_result));

/**
 * pool_destroy() - free a pool.  Every space of it must be destroyed and
 * every pin released first; frames still referenced (space_ref_page) are
 * dropped.  NULL is a no-op.
 */
void pool_destroy(struct pool *pool);

void pool_get_stats(struct pool *pool, struct pool_stats *st);
enum mm_policy pool_policy(const struct pool *pool);
const char *mm_policy_name(enum mm_policy policy);
/** mm_policy_parse() - "pagecount", "mapcount", "nopin". Return: 0 or -EINVAL. */
int mm_policy_parse(const char *name, enum mm_policy *out);

/**
 * pool_frame_ptr() - the direct map of one frame: never write-protected,
 * the way devices (and snapshot writers) reach frames.  Valid while the
 * caller holds a reference or a pin on the frame.
 */
void *pool_frame_ptr(struct pool *pool, uint64_t frame);

/** pool_frame_count() - page_count of a frame (references + pins * bias). */
uint32_t pool_frame_count(struct pool *pool, uint64_t frame);

/**
 * pool_frame_put() - drop a reference taken by space_ref_page().  Putting a
 * frame whose count is already 0 is a caller's bug: debug builds abort with
 * a message, release builds count it (pool_stats.underflows) and ignore it.
 */
void pool_frame_put(struct pool *pool, uint64_t frame);

/**
 * space_create() - a new guest space of @nranges GPA ranges.  Ranges must be
 * page-aligned, non-empty, sorted, non-overlapping, and end below 2^64
 * (gpa + size may not wrap); all pages read as zero.
 * Return: 0 or -errno (-EINVAL bad ranges, -ENOMEM, -ENOSPC pool full).
 */
int space_create(struct pool *pool, const struct space_range *ranges, unsigned int nranges,
		 struct space **out) __attribute__((warn_unused_result));

/**
 * space_destroy() - unmap the window and drop every frame reference.
 * NULL is a no-op.  Pins still held keep their frames and the space's
 * bookkeeping alive: the device may finish its I/O into the pinned frames,
 * and the last space_unpin() frees what remains.  Nothing else may be done
 * with @space after this call.
 */
void space_destroy(struct space *space);

/**
 * space_fork() - clone @parent into a new space of the same family.
 *
 * Exclusive frames that may be pinned, in a space that has pinned, are
 * copied for the child and stay writable in the parent (policies NOPIN and
 * MAPCOUNT share them instead); every other present frame is shared and
 * write-protected in both.  The caller stops the parent's vCPUs first: the child is the
 * parent's memory at the moment of the call.  A failed fork leaves the
 * parent as it was.
 * Return: 0 or -errno (the space's error if its memory failed, see
 * space_error()).
 */
int space_fork(struct space *parent, struct space **child) __attribute__((warn_unused_result));

struct pool *space_pool(const struct space *space);
const struct space_range *space_ranges(const struct space *space, unsigned int *nranges);
/** space_size() - bytes of guest memory (sum of the ranges). */
uint64_t space_size(const struct space *space);

/**
 * space_hva() - host address of @gpa in the space's window (what a vCPU
 * writes through, and what KVM memslots point at), or NULL if @gpa is not
 * guest memory.  The window of one range is contiguous.
 */
void *space_hva(const struct space *space, uint64_t gpa);

/** space_frame_of() - the frame behind @gpa, or MM_NO_FRAME (never written). */
uint64_t space_frame_of(struct space *space, uint64_t gpa);

/*
 * The error channel.  A guest write that the fault service cannot serve (no
 * free frame for the copy, or the copy cannot be mapped) cannot be retried
 * usefully, and the other pages' sharers must not see it.  The service then:
 *  - records the error in the space (space_error()), once;
 *  - calls the space's error handler, if any, which stops the machine;
 *  - fences the space: its window is replaced by private anonymous memory,
 *    so the faulting vCPU (and any other) is woken and runs on until the
 *    machine stops it, without touching a frame of the family.  The table
 *    and frames stay as they were before the failure (space_read() and the
 *    direct map still see them), and space_destroy() frees them as usual.
 *    If even that remap fails, the writer is left blocked in its fault
 *    (never woken), and the error says so on stderr.
 * The other spaces of the family, and other families, go on.
 */

/**
 * space_set_error_handler() - call @fn (see space_error_fn) when a fault of
 * @space cannot be resolved; NULL removes it.  On return no call of the old
 * handler is running, so a machine unregisters before it goes away.  If the
 * space failed already, @fn is called at once (from this thread).
 */
void space_set_error_handler(struct space *space, space_error_fn fn, void *opaque);

/**
 * space_error() - 0, or the -errno of the first fault of @space that could
 * not be resolved (and its guest address in *@gpa, if @gpa is not NULL).
 */
int space_error(struct space *space, uint64_t *gpa);

void space_get_stats(struct space *space, struct space_stats *st);

/*
 * Pins: the device side.  A device pins the guest buffer of a request before
 * it starts the I/O and unpins at completion.  Between the two it reaches the
 * buffer through the iovecs, which point into the direct map.
 */
#define MM_PIN_WRITE (1u << 0) /* the device will write the buffer */

#define MM_PIN_MAX_PAGES 1024 /* one pin covers at most 4 MiB */

struct mm_pin {
	struct space *space;
	uint64_t gpa;
	uint64_t len;
	unsigned int flags;
	unsigned int nframes;
	uint64_t *frames;
	unsigned int niov;
	struct iovec *iov; /* into the direct map; adjacent frames merged */
};

/**
 * space_pin() - pin [@gpa, @gpa + @len) for device access.
 *
 * For MM_PIN_WRITE the pages are made exclusive to this space first (COW is
 * broken, never-written pages get a fresh frame), so that the device writes
 * exactly the frames the guest will read.  A read pin of a shared frame does
 * not unshare it: see docs/mm.md.  The first pin sets has_pinned for good.
 * Return: 0 or -errno (-EFAULT outside guest memory, -EINVAL zero length or
 * overflow, -E2BIG longer than MM_PIN_MAX_PAGES pages, -EOVERFLOW a frame
 * would exceed its pin limit); on error nothing is pinned.
 */
int space_pin(struct space *space, uint64_t gpa, uint64_t len, unsigned int flags,
	      struct mm_pin *pin) __attribute__((warn_unused_result));

/**
 * space_unpin() - release a pin taken by space_pin(); resets @pin.  Valid
 * after space_destroy() of the pin's space (the pin holds what it needs).
 */
void space_unpin(struct mm_pin *pin);

/**
 * space_read() / space_write() - copy between a host buffer and guest memory
 * through the direct map, page by page under the family lock; space_write
 * breaks COW like a CPU write.  Any length (no pin limit): for device rings
 * and fields, and for loading an image.
 * Return: 0, -EINVAL (zero length, @gpa + @len overflows) or -EFAULT (not
 * all guest memory, or across a hole between ranges).
 */
int space_read(struct space *space, uint64_t gpa, void *buf, size_t len);
int space_write(struct space *space, uint64_t gpa, const void *buf, size_t len);

/**
 * space_ref_page() - a snapshot writer's view of the page at @gpa, as of
 * now: a frame the reader holds a reference on, and that nobody writes.
 * A never-written page gets a zero frame first.
 *
 * The exclusive rule (as fork's): if the page's frame is exclusive to the
 * space and may be pinned (a device may be writing it), the reader gets a
 * copy in a new frame, and the page keeps its frame, writable; a device's
 * later writes land where the guest reads.  Otherwise the reader shares the
 * frame, the page loses its exclusive mark and is write-protected, so that
 * the next guest write (or write pin) copies.  NOPIN and MAPCOUNT share pinned
 * frames too (to show the bug).  As for space_fork(), the caller stops the
 * space's vCPUs for a consistent view: the copy is taken while the page
 * stays writable.  A device's write in flight may land in the copy or not,
 * as at fork: the I/O is not complete, the snapshot cannot rely on it.
 * Return: 0 and *@frame, or -errno.  Drop with pool_frame_put().
 */
int space_ref_page(struct space *space, uint64_t gpa, uint64_t *frame);

/*
 * Lazy pages: a backing source (docs/mm.md).  A space can be given pages that
 * it has no frame for but whose data is in a file (a snapshot's memory file):
 * they are loaded on first touch, by the fault service when the window
 * touches them (the window is then registered in missing mode too), or by
 * space_pin(), space_read(), space_write(), space_ref_page() and
 * space_frame_of() before they reach the frame.  A loaded page owns its
 * home frame as if it had been written.  A fork's child keeps the pages not
 * loaded yet lazy, from the same files.  A page that cannot be loaded (the
 * file shrank, an I/O error) fails its caller with -EIO (or -errno), and a
 * window touch goes to the error channel, which stops the machine.
 * A space that is never given a backing source behaves as before.
 */
#define MM_LAZY_MAX_FILES 32

/**
 * space_lazy_file() - add a file to @space's backing source (dup()ed; the
 * caller keeps its own descriptor) and register the window in missing mode.
 * Call before anything runs in the space.  Return: 0 and *@id, or -errno
 * (-ENOSYS: no missing mode on shared memory, -EMFILE: too many files).
 */
int space_lazy_file(struct space *space, int fd, unsigned int *id)
    __attribute__((warn_unused_result));

/**
 * space_lazy_add() - pages [@gpa, @gpa + @len) read from file @id at
 * @file_off on first touch.  Page-aligned; pages already lazy take the new
 * source (a later diff over its base).  Return: 0, or -errno (-EINVAL bad
 * alignment or id, -EFAULT not guest memory, -EBUSY a page has a frame).
 */
int space_lazy_add(struct space *space, unsigned int id, uint64_t gpa, uint64_t len,
		   uint64_t file_off) __attribute__((warn_unused_result));

/**
 * space_lazy_prefetch() - load the lazy pages among @gpas (sorted ascending,
 * page-aligned; others are skipped) now, one read per run of neighbours.
 * Return: 0 and the pages loaded in *@loaded, or -errno (the first failure).
 */
int space_lazy_prefetch(struct space *space, const uint64_t *gpas, size_t n, uint64_t *loaded)
    __attribute__((warn_unused_result));

/**
 * space_lazy_fill() - give the lazy pages among @gpas (page-aligned; others
 * are skipped) the contents @pages (@n pages, in the order of @gpas), as
 * if read from their files: a prefetch from a copy of the data the caller
 * read and checked.  Return: 0 and the pages filled in *@loaded.
 */
int space_lazy_fill(struct space *space, const uint64_t *gpas, const void *pages, size_t n,
		    uint64_t *loaded);

/**
 * space_lazy_read_source() - read into @buf the file data of the page at
 * @gpa as space_lazy_add() gave it, loaded since or not (what it held at
 * the snapshot).  Return: 0, -ENOENT (the page never had a source), -EFAULT
 * or the read's -errno.
 */
int space_lazy_read_source(struct space *space, uint64_t gpa, void *buf)
    __attribute__((warn_unused_result));

/**
 * space_lazy_record() - start (@on) or stop logging the pages loaded on
 * touch (faults, pins, copies; not prefetches).  space_lazy_take_log()
 * returns them sorted by address (malloc()ed, the caller frees) and empties
 * the log.  Return: how many, or -ENOMEM.
 */
void space_lazy_record(struct space *space, bool on);

/**
 * space_lazy_set_readaround() - a missing fault of the window loads up to
 * @pages (a power of 2, 1..1024; default 1) at once: the lazy pages of the
 * faulting page's aligned block that neighbour it in the file, in one read.
 * Return: 0, or -EINVAL (a bad count, or no backing source).
 */
int space_lazy_set_readaround(struct space *space, unsigned int pages);
ssize_t space_lazy_take_log(struct space *space, uint64_t **gpas);

struct space_lazy_stats {
	uint64_t pending; /* lazy pages not loaded yet */
	uint64_t loaded; /* lazy pages loaded, by any path */
	uint64_t faults; /* of those, by a missing fault of the window (the page touched) */
	uint64_t read_around; /* of those, loaded along with a faulting neighbour */
	uint64_t prefetched; /* of those, by space_lazy_prefetch() */
	uint64_t zero_faults; /* missing faults of pages with no data (zero-filled) */
	uint64_t load_ns; /* time spent reading the files */
};

/** space_lazy_get_stats() - all zero for a space without a backing source. */
void space_lazy_get_stats(struct space *space, struct space_lazy_stats *st);

#endif /* FORKVM_MM_MM_H */
