/* SPDX-License-Identifier: MIT */
/*
 * virtio-blk over virtio-mmio version 2, driver side: one request queue,
 * polled (interrupts stay off).  Two ways to use it: vblk_request() sends one
 * request and waits for it; vblk_submit() / vblk_kick() / vblk_reap() keep
 * up to a queue's worth of requests in flight and collect their completions.
 * Both share the bookkeeping (struct vblk_req per request), so a synchronous
 * request may run while asynchronous ones are in flight.
 */
#ifndef FORKVM_GUEST_TEST_VIRTIO_BLK_H
#define FORKVM_GUEST_TEST_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest/test/vring.h"

/* virtio-mmio registers (virtio 1.x, 4.2.2) */
#define VIRTIO_MMIO_MAGIC 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW 0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976 /* "virt" */
#define VIRTIO_ID_BLOCK 2

/* device status bits */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* feature bits */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* request types and status values (virtio 1.x, 5.2.6) */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20
#define VBLK_QUEUE_SIZE 64
#define VBLK_SECTOR 512

struct virtio_blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* Descriptors of one asynchronous request: header, up to 4 data segments, status. */
#define VBLK_ASYNC_DESC 6

enum vblk_req_state {
	VBLK_REQ_FREE = 0,
	VBLK_REQ_INFLIGHT, /* made available to the device, no used element yet */
	VBLK_REQ_DONE, /* used element seen, not reaped yet */
};

/*
 * One request's driver-side memory: what the device reads (header, the
 * indirect table) and writes (status).  Indexed by token.
 */
struct vblk_req {
	struct vring_desc ind[VBLK_ASYNC_DESC]; /* indirect table (16-byte aligned) */
	struct virtio_blk_req_hdr hdr;
	uint8_t status;
	uint8_t state; /* enum vblk_req_state */
	bool sync; /* vblk_request()'s own: never handed out by vblk_reap() */
	uint16_t head; /* its head descriptor while in flight */
	uint32_t used_len;
} __attribute__((aligned(16)));

/* A completed asynchronous request, as vblk_reap() hands it back. */
struct vblk_done {
	int token;
	int status; /* VIRTIO_BLK_S_*, as the device wrote it */
	uint32_t used_len;
};

struct vblk {
	uint64_t base;
	uint64_t features; /* negotiated */
	uint64_t capacity; /* in 512-byte sectors */
	uint32_t size_max; /* largest data segment, 0 = no limit */
	uint32_t seg_max; /* most data segments per request, 0 = no limit */
	struct vring vr;
	/* Request bookkeeping, reset with the queue. */
	struct vblk_req req[VBLK_QUEUE_SIZE];
	uint8_t head_token[VBLK_QUEUE_SIZE]; /* head descriptor -> token, while in flight */
	uint16_t ndev; /* requests made available whose used element is not consumed yet */
	uint16_t nbusy; /* tokens not FREE (in flight, or done and not reaped) */
	uint32_t bad_used; /* used elements naming no request in flight (device bug) */
	uint8_t done_fifo[VBLK_QUEUE_SIZE]; /* asynchronous tokens DONE, in completion order */
	uint16_t done_head, done_count;
};

static inline bool vblk_has(const struct vblk *b, unsigned int bit)
{
	return b->features & (1ULL << bit);
}

/** vblk_probe() - check the device at @base is a virtio-blk v2 and bring it up. */
int vblk_probe(struct vblk *b, uint64_t base, char *err, size_t errlen);

/** vblk_find() - probe each virtio-mmio window of @m; the first block device wins. */
struct machine;
int vblk_find(struct vblk *b, const struct machine *m, char *err, size_t errlen);

/**
 * vblk_request() - one request, waited for: header, @len bytes at @data
 * (none when @len is 0; device-writable for IN and GET_ID), status, as a
 * direct chain (up to a queue of segments).  Asynchronous requests may be in
 * flight meanwhile: their completions stay DONE for vblk_reap().
 * Return: the device's status byte (VIRTIO_BLK_S_*), or -1 on timeout, a
 * full queue or a used element that names no request in flight;
 * *@used_len gets used.len if not NULL.
 */
int vblk_request(struct vblk *b, uint32_t type, uint64_t sector, void *data, uint32_t len,
		 uint32_t *used_len);

/**
 * vblk_submit() - make one request available without waiting for it: header,
 * @len bytes at @data (device-writable for IN and GET_ID), status.  With
 * VIRTIO_F_INDIRECT_DESC it takes one ring descriptor (an indirect table in
 * the request's own memory), else a direct chain.  The device is not told:
 * call vblk_kick() once a batch is queued.  @data must stay untouched by the
 * CPU (IN) or unchanged (OUT) until the request is reaped.
 * Return: a token (0..VBLK_QUEUE_SIZE-1) naming the request until it is
 * reaped, or -1 when no request slot or too few descriptors are free, or
 * @len needs more than VBLK_ASYNC_DESC - 2 segments.
 */
int vblk_submit(struct vblk *b, uint32_t type, uint64_t sector, void *data, uint32_t len);

/** vblk_kick() - tell the device that requests are available (queue 0). */
void vblk_kick(struct vblk *b);

/**
 * vblk_poll() - consume the used ring: each element marks its request DONE.
 * Return: how many elements were consumed.
 */
unsigned int vblk_poll(struct vblk *b);

/**
 * vblk_reap() - poll, then hand back up to @max completed asynchronous
 * requests, oldest completion first, and free their tokens.
 * Return: how many were stored in @done.
 */
unsigned int vblk_reap(struct vblk *b, struct vblk_done *done, unsigned int max);

/** vblk_inflight() - requests submitted and not reaped yet (the driver's count). */
static inline unsigned int vblk_inflight(const struct vblk *b)
{
	return b->nbusy;
}

/**
 * vblk_pending() - requests the device has not completed yet: made available,
 * and not in the used ring as of this call (read with acquire order).  This is
 * what is in flight at the device, e.g. at the instant of a fork.
 */
unsigned int vblk_pending(const struct vblk *b);

/** vblk_async_max() - how many asynchronous requests of @len bytes fit in flight at once. */
unsigned int vblk_async_max(const struct vblk *b, uint32_t len);

/**
 * vblk_max_transfer() - the largest data length (whole sectors, at most
 * @want) one request may carry; 0 when the device's limits allow no sector.
 */
uint32_t vblk_max_transfer(const struct vblk *b, uint32_t want);

/* Lower-level pieces for badvirtio. */
uint32_t vblk_read(const struct vblk *b, uint32_t reg);
void vblk_write(const struct vblk *b, uint32_t reg, uint32_t v);
void vblk_notify(const struct vblk *b, uint32_t queue);
/**
 * vblk_wait_used() - poll for a used element for up to @tsc_ticks, outside
 * the request bookkeeping (badvirtio's hand-built chains; nothing else may
 * be in flight).  Return: true if one came.
 */
bool vblk_wait_used(struct vblk *b, uint64_t tsc_ticks, uint32_t *id, uint32_t *len);
/** vblk_reinit() - reset the device and bring it up again (after NEEDS_RESET). */
int vblk_reinit(struct vblk *b, char *err, size_t errlen);

/* TSC ticks we wait for a request that must complete (seconds at a few GHz). */
#define VBLK_TIMEOUT_TSC (30ULL * 1000 * 1000 * 1000)

#endif /* FORKVM_GUEST_TEST_VIRTIO_BLK_H */
