/* SPDX-License-Identifier: MIT */
/*
 * What the control API needs from the VMM: a small ops table over "the
 * machines of one family", so that the HTTP layer (vmm/api/api_server.c,
 * api_routes.c) knows nothing of struct machine and is tested against a
 * fake backend (tests/unit/test_api.c).
 *
 * Threading rule: the server calls every op from its one thread (the
 * libmicrohttpd polling thread), one call at a time, never two at once.
 * An op may block (a clone takes tens of milliseconds); no other request is
 * answered meanwhile.  The backend's own threads (vCPUs, device completions,
 * the clone worker) still run concurrently with an op: whatever state they
 * share with it, the backend locks.  An op must not call api_server_stop()
 * (it would wait for its own thread).
 *
 * Every op returns 0 or -errno.  The server maps errors to HTTP statuses:
 * -ENOENT 404 (no such VM), -ESRCH 409 (the VM stopped), -EBUSY and -EALREADY
 * 409, -ENOSPC 409 (the family is full), -EEXIST 409 (a path exists),
 * -EINVAL 400, -EOPNOTSUPP and -ENOSYS 501, anything else 500.  Where an op takes @err, a one-line reason
 * written there becomes the error message.
 */
#ifndef FORKVM_VMM_API_API_BACKEND_H
#define FORKVM_VMM_API_API_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A statistic the backend does not measure: JSON null. */
#define API_STAT_NONE UINT64_MAX

/* At most this many VMs in one listing, and clones in one call. */
#define API_MAX_VMS 1024u
#define API_MAX_CLONE_COUNT 64u
/* A console tail: at most this many lines, and bytes the backend may write. */
#define API_MAX_CONSOLE_LINES 1000u
#define API_CONSOLE_BYTES (64u * 1024)

enum api_vm_state {
	API_VM_CREATED, /* made, vCPUs not started */
	API_VM_RUNNING,
	API_VM_PAUSED,
	API_VM_STOPPED, /* the guest exited, crashed or was killed */
};

enum api_snapshot_kind {
	API_SNAPSHOT_FULL, /* pause, write everything, resume */
	API_SNAPSHOT_LIVE, /* COW reference, resume at once, write behind */
	API_SNAPSHOT_DIFF, /* only what changed since its base (a kept snapshot) */
};

/* A snapshot call, as the API checked it. */
struct api_snapshot_req {
	const char *dir; /* 1..4095 bytes, no NUL (the backend checks the rest) */
	enum api_snapshot_kind kind;
	const char *base; /* API_SNAPSHOT_DIFF: the dir of the kept base; else NULL */
	bool keep; /* keep this snapshot as the base of a later diff */
};

/* What a snapshot took (API_STAT_NONE: not measured). */
struct api_snapshot_result {
	uint64_t paused_us; /* the guest stopped */
	uint64_t total_us; /* from the pause to the snapshot on disk */
	uint64_t pages; /* pages written */
	uint64_t disk_bytes; /* the memory file's blocks on disk */
};

/* One VM as a listing shows it. */
struct api_vm_info {
	uint32_t id;
	uint32_t parent; /* the VM it was cloned from; meaningless when !has_parent */
	bool has_parent; /* false for the family's first VM */
	bool guest_fork; /* made by its parent's guest, not through a clone call */
	enum api_vm_state state;
	int exit_status; /* API_VM_STOPPED: the exit status (0-255, or the VMM's code) */
};

/* One VM's memory and device figures (API_STAT_NONE: not measured). */
struct api_vm_stats {
	uint64_t pages; /* guest pages */
	uint64_t private_frames; /* present pages whose frame only this VM maps */
	uint64_t shared_frames; /* present pages whose frame is shared (COW) */
	uint64_t pinned_frames; /* frames pinned by a device right now */
	uint64_t cow_copies; /* write faults that copied a frame */
	uint64_t cow_reuses; /* write faults that reused the frame (sole owner) */
	uint64_t faults; /* write-protect faults served */
	uint64_t inflight; /* device requests in flight */
	uint64_t vmas; /* host VMAs covering the guest window */
};

/* The family's memory: one frame pool for all its VMs. */
struct api_family_stats {
	uint32_t vms; /* VMs made so far (stopped ones included) */
	uint32_t running; /* VMs running or paused */
	uint64_t frames_used; /* frames of the pool referenced by a VM */
	uint64_t frames_total; /* frames the pool can hold */
	uint64_t bytes_resident; /* bytes of the pool in host memory */
	uint64_t vmas; /* host VMAs of the whole process */
	uint64_t cow_copies; /* the pool's COW copies (faults, pins, forks of pinned frames) */
	uint64_t cow_reuses; /* the pool's write faults that reused a frame */
	uint64_t faults; /* the pool's write faults served */
	uint64_t pinned_frames; /* frames pinned right now, all VMs */
};

struct api_backend_ops {
	/** list() - fill @out with up to @max VMs in id order; *@n: how many. */
	int (*list)(void *ctx, struct api_vm_info *out, size_t max, size_t *n);
	/** get() - VM @id's info and stats.  -ENOENT: no such VM. */
	int (*get)(void *ctx, uint32_t id, struct api_vm_info *info, struct api_vm_stats *st);
	/** pause() - stop VM @id's vCPUs and hold its devices.  -EALREADY: paused. */
	int (*pause)(void *ctx, uint32_t id);
	/** resume() - undo pause().  -EALREADY: not paused. */
	int (*resume)(void *ctx, uint32_t id);
	/** kill() - stop VM @id for good (its clones keep running). */
	int (*kill)(void *ctx, uint32_t id);
	/**
	 * clone() - make @count live clones of VM @id, started.  @ids gets the
	 * new ids, *@made how many were made, also on failure (the clones made
	 * before the failure keep running).  -ENOSPC: the family is full.
	 */
	int (*clone)(void *ctx, uint32_t id, unsigned int count, uint32_t *ids, unsigned int *made,
		     char *err, size_t errlen);
	/**
	 * snapshot() - write VM @id as @rq says; *@res what it took.  -EEXIST:
	 * the directory exists; -EINVAL: a value refused (@err says which);
	 * -EOPNOTSUPP: not possible for this VM or backend.  The VM runs on
	 * (or stays paused) whatever the answer.
	 */
	int (*snapshot)(void *ctx, uint32_t id, const struct api_snapshot_req *rq,
			struct api_snapshot_result *res, char *err, size_t errlen);
	/**
	 * console() - the last @lines lines of VM @id's console into @buf (at
	 * most @buflen bytes, lines ending in '\n'), *@len the bytes written.
	 */
	int (*console)(void *ctx, uint32_t id, unsigned int lines, char *buf, size_t buflen,
		       size_t *len);
	/** family() - the family's memory. */
	int (*family)(void *ctx, struct api_family_stats *st);
};

/** api_vm_state_name() - "created", "running", "paused" or "stopped". */
const char *api_vm_state_name(enum api_vm_state s);

/** api_snapshot_kind_name() - "full", "live" or "diff". */
const char *api_snapshot_kind_name(enum api_snapshot_kind k);

#endif /* FORKVM_VMM_API_API_BACKEND_H */
