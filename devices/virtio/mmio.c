// SPDX-License-Identifier: MIT
/*
 * virtio-mmio transport, version 2.
 *
 * Threads and locking: vm->lock, the transport lock, protects the registers,
 * the queues (it is the ring lock: struct virtqueue is not thread-safe), the
 * in-flight lists and the device's callbacks.  Three kinds of threads take
 * it, each for a bounded time and never across host I/O:
 * - vCPU threads, for one register access;
 * - the service thread, to pop chains and submit them (a submit only queues
 *   the I/O: the device's disk runs it elsewhere);
 * - the device's completion thread, to publish one completed request
 *   (status byte, unpin, used entry, interrupt), in transport_req_done().
 * A reset, a stop or a destroy waits for the I/O in flight on vm->idle
 * (which releases the lock, so completions get through) and drops those
 * requests.  A hold only sets a flag under the lock: from then on, what
 * would publish anything queues it instead.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "devices/log.h"
#include "devices/thread_hook.h"
#include "devices/time.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio.h"

/* Register offsets (virtio 1.x, 4.2.2). */
#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define MMIO_MAGIC 0x74726976 /* "virt" */
#define MMIO_VERSION 2
#define MMIO_VENDOR 0x4d564b46 /* "FKVM" */
#define INT_VRING 0x1 /* InterruptStatus: used buffer */
#define INT_CONFIG 0x2 /* InterruptStatus: config change */

/* The Status bits of virtio 1.x 2.1; the register keeps no others. */
#define STATUS_KNOWN                                                                          \
	(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | \
	 VIRTIO_CONFIG_S_DRIVER_OK | VIRTIO_CONFIG_S_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED)

/* One queue: the virtqueue and the requests popped from it, in pop order. */
struct mmio_queue {
	struct virtqueue vq;
	struct virtio_req *first, *last;
	unsigned int ninflight;
	uint32_t gen; /* bumped at enable and reset: older requests are dropped */
	uint64_t busy[VQ_MAX_SIZE / 64]; /* heads in flight (this generation) */
	bool kick_pending; /* a kick arrived while held */
};

struct virtio_mmio {
	uint64_t base;
	struct virtio_dev *dev;
	struct guest_mem mem;
	struct dev_host host;

	pthread_mutex_t lock;
	pthread_cond_t idle; /* broadcast when a request's I/O ends or one leaves */
	uint32_t status;
	uint32_t isr;
	uint32_t dev_feat_sel;
	uint32_t drv_feat_sel;
	uint32_t queue_sel;
	uint32_t config_gen;
	uint64_t drv_features;
	bool held; /* virtio_mmio_hold(): publish nothing, pop nothing */
	unsigned int draining; /* resets/stops waiting: completions are dropped */
	bool stopped; /* virtio_mmio_stop() ran: notifications are dropped */
	unsigned int nrunning; /* requests whose I/O has not finished */
	unsigned int ninflight; /* requests popped and not completed */
	struct mmio_queue *q;

	int irq_fd; /* eventfd of the interrupt line, or -1 */
	uint64_t irqs; /* interrupts raised (tests read it) */

	/* The service thread: one eventfd per queue (an ioeventfd when KVM
	 * took it) and one to stop the thread. */
	int *kick_fds;
	unsigned int nkick_registered;
	int stop_fd;
	pthread_t thread;
	bool thread_running;
};

/* Raise @bits in InterruptStatus and pulse the line.  Lock held. */
static void raise_irq(struct virtio_mmio *vm, uint32_t bits)
{
	uint64_t one = 1;

	vm->isr |= bits;
	vm->irqs++;
	if (vm->irq_fd >= 0 && write(vm->irq_fd, &one, sizeof(one)) < 0) {
		/* An eventfd write only fails on counter overflow. */
	}
}

/* transport.used: the device pushed used buffers on @vq.  Lock held. */
static void transport_used(void *opaque, struct virtqueue *vq)
{
	struct virtio_mmio *vm = opaque;

	if (vq_should_notify(vq))
		raise_irq(vm, INT_VRING);
}

/* A queue error the device cannot recover from.  Lock held. */
static void needs_reset(struct virtio_mmio *vm, struct virtqueue *vq, const char *why, int err)
{
	dev_guest_err(vm->dev->name, "queue %d: %s (%d): device needs reset",
		      vq ? (int)vq->index : (int)vm->queue_sel, why, err);
	if (vq)
		vq->st.broken = true;
	if (vm->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	vm->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	vm->config_gen++;
	raise_irq(vm, INT_CONFIG);
}

/* Run the device on queue @q.  Lock held. */
static void service(struct virtio_mmio *vm, unsigned int q)
{
	struct virtqueue *vq = &vm->q[q].vq;
	int ret;

	/* Held: nothing is popped until release, which serves the kick. */
	if (vm->held) {
		vm->q[q].kick_pending = true;
		return;
	}
	/* A reset or stop waits for the I/O in flight: it starts no more (a
	 * reset drops the rings anyway). */
	if (vm->draining)
		return;
	/* A notify before DRIVER_OK, on a queue not ready, or after a fatal
	 * error is ignored (the driver broke the protocol or must reset). */
	if (!(vm->status & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    (vm->status & VIRTIO_CONFIG_S_NEEDS_RESET) || !vq->cfg.ready || vq->st.broken)
		return;
	ret = vm->dev->ops->queue_notify(vm->dev, vq);
	if (ret < 0)
		needs_reset(vm, vq, "queue error", ret);
}

/* transport.req_start: @req, popped from @vq, is in flight.  Lock held. */
static void transport_req_start(void *opaque, struct virtqueue *vq, struct virtio_req *req)
{
	struct virtio_mmio *vm = opaque;
	struct mmio_queue *mq = &vm->q[vq->index];

	req->queue = (uint16_t)vq->index;
	req->gen = mq->gen;
	/* The device checked transport_head_busy(): a head < VQ_MAX_SIZE. */
	mq->busy[req->head / 64] |= 1ull << (req->head % 64);
	req->done = false;
	req->next = NULL;
	req->prev = mq->last;
	if (mq->last)
		mq->last->next = req;
	else
		mq->first = req;
	mq->last = req;
	mq->ninflight++;
	vm->ninflight++;
	vm->nrunning++;
}

static void unlink_req(struct virtio_mmio *vm, struct virtio_req *req)
{
	struct mmio_queue *mq = &vm->q[req->queue];

	if (req->prev)
		req->prev->next = req->next;
	else
		mq->first = req->next;
	if (req->next)
		req->next->prev = req->prev;
	else
		mq->last = req->prev;
	mq->ninflight--;
	vm->ninflight--;
	if (req->gen == mq->gen)
		mq->busy[req->head / 64] &= ~(1ull << (req->head % 64));
}

/* Bump @mq's generation: what is in flight on it will be dropped.  Lock held. */
static void new_gen(struct mmio_queue *mq)
{
	mq->gen++;
	memset(mq->busy, 0, sizeof(mq->busy));
}

/*
 * transport.head_busy: is chain @head of @vq in flight already?  A driver
 * may not make a head available again before it is used (virtio 1.x 2.7.13);
 * one that does would have two requests answer under one id, and could keep
 * an unbounded number in flight.  Lock held.
 */
static bool transport_head_busy(void *opaque, struct virtqueue *vq, uint16_t head)
{
	struct virtio_mmio *vm = opaque;
	const struct mmio_queue *mq = &vm->q[vq->index];

	if (head >= VQ_MAX_SIZE)
		return true;
	return mq->busy[head / 64] >> (head % 64) & 1;
}

/* Drop a finished request: pins released, nothing written.  Lock held. */
static void drop(struct virtio_mmio *vm, struct virtio_req *req)
{
	unlink_req(vm, req);
	(void)vm->dev->ops->finish(vm->dev, req, false);
}

/*
 * Is a request's answer still wanted?  Its queue must run as it did when
 * the request was popped (a reset or re-enable since then: the ring is not
 * the one the chain came from).  Lock held.
 */
static bool should_publish(struct virtio_mmio *vm, const struct virtio_req *req)
{
	const struct mmio_queue *mq = &vm->q[req->queue];

	return mq->gen == req->gen && mq->vq.cfg.ready && !mq->vq.st.broken;
}

/*
 * Publish a finished request: the device writes its status and releases the
 * pins, then the used entry.  The caller notifies.  Return: true if a used
 * entry was pushed.  Lock held, not held back.
 */
static bool publish(struct virtio_mmio *vm, struct virtio_req *req)
{
	struct virtqueue *vq = &vm->q[req->queue].vq;
	uint16_t head = req->head;
	uint32_t len;
	int ret;

	if (!should_publish(vm, req)) {
		drop(vm, req);
		return false;
	}
	unlink_req(vm, req);
	/* The status byte, then the pins go; req is freed. */
	len = vm->dev->ops->finish(vm->dev, req, true);
	ret = vq_push_used(vq, head, len);
	if (ret) {
		needs_reset(vm, vq, "used ring unwritable", ret);
		return false;
	}
	return true;
}

/*
 * transport.req_done, on the device's completion thread (or any thread),
 * lock not held: publish @req now, keep it for release while held, or drop
 * it while a reset or stop waits.
 */
static void transport_req_done(void *opaque, struct virtio_req *req)
{
	struct virtio_mmio *vm = opaque;
	unsigned int q;

	/* The lock also orders us after transport_req_start(), which the
	 * submitter may not have reached when the disk called back. */
	pthread_mutex_lock(&vm->lock);
	q = req->queue; /* req is freed once published */
	req->done = true;
	vm->nrunning--;
	if (vm->draining)
		drop(vm, req);
	else if (!vm->held && publish(vm, req))
		transport_used(vm, &vm->q[q].vq);
	/* Who waits: a reset, a stop, virtio_mmio_drain(). */
	pthread_cond_broadcast(&vm->idle);
	pthread_mutex_unlock(&vm->lock);
}

/*
 * Wait for every request's I/O to finish, then drop them all (pins released,
 * nothing published).  Completions that arrive meanwhile are dropped too.
 * Lock held; released while waiting.
 */
static void drain_and_drop(struct virtio_mmio *vm)
{
	unsigned int i;

	vm->draining++;
	while (vm->nrunning)
		pthread_cond_wait(&vm->idle, &vm->lock);
	/* Only completions held back are left (their I/O is done). */
	for (i = 0; i < vm->dev->nqueues; i++)
		while (vm->q[i].first)
			drop(vm, vm->q[i].first);
	vm->draining--;
	pthread_cond_broadcast(&vm->idle);
}

/* The guest notified queue @q through the MMIO write path.  Lock held. */
static void kick(struct virtio_mmio *vm, uint32_t q)
{
	uint64_t one = 1;

	/* Guest value: the queue index written to QueueNotify. */
	if (q >= vm->dev->nqueues) {
		needs_reset(vm, NULL, "notify of a queue past the configured queues", -EINVAL);
		return;
	}
	/* Stopped on the way to destroy: the notification is lost, as
	 * documented (and thread_running is no longer ours to read). */
	if (vm->stopped)
		return;
	/* With a service thread the request runs there, never on a vCPU. */
	if (vm->thread_running) {
		if (write(vm->kick_fds[q], &one, sizeof(one)) < 0) {
			/* Counter overflow: a kick is already pending. */
		}
		return;
	}
	service(vm, q);
}

static void *service_thread(void *arg)
{
	struct virtio_mmio *vm = arg;
	unsigned int n = vm->dev->nqueues, i;
	struct pollfd pfd[n + 1];
	uint64_t v;

	devices_thread_start("device");
	for (i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = vm->kick_fds[i], .events = POLLIN };
	pfd[n] = (struct pollfd){ .fd = vm->stop_fd, .events = POLLIN };
	for (;;) {
		if (poll(pfd, n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[n].revents)
			break;
		for (i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			if (read(vm->kick_fds[i], &v, sizeof(v)) < 0)
				continue;
			pthread_mutex_lock(&vm->lock);
			service(vm, i);
			pthread_mutex_unlock(&vm->lock);
		}
	}
	return NULL;
}

/*
 * Device reset: status 0.  Requests in flight are waited for (their I/O
 * cannot be called back) and dropped: no used entry, no status byte for
 * them, their pins released; then the rings are forgotten.  Lock held
 * (released while waiting).
 */
static void reset(struct virtio_mmio *vm)
{
	unsigned int i;

	drain_and_drop(vm);
	for (i = 0; i < vm->dev->nqueues; i++) {
		vq_reset(&vm->q[i].vq);
		vm->q[i].kick_pending = false;
		new_gen(&vm->q[i]);
	}
	vm->status = 0;
	vm->isr = 0;
	vm->dev_feat_sel = vm->drv_feat_sel = vm->queue_sel = 0;
	vm->drv_features = 0;
	vm->dev->acked = 0;
	if (vm->dev->ops->reset)
		vm->dev->ops->reset(vm->dev);
}

static void write_status(struct virtio_mmio *vm, uint32_t v)
{
	uint64_t offered = vm->dev->features;

	if (v == 0) {
		reset(vm);
		return;
	}
	/* Guest value: only the defined bits are kept (a saved state has no
	 * others, see virtio_mmio_restore). */
	v &= STATUS_KNOWN;
	/* Guest value: the driver's features, checked when it sets FEATURES_OK:
	 * a subset of ours, VERSION_1 included.  Else FEATURES_OK stays clear,
	 * which tells the driver the device refused (virtio 1.x 3.1.1). */
	if ((v & VIRTIO_CONFIG_S_FEATURES_OK) && !(vm->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
		if ((vm->drv_features & ~offered) ||
		    !virtio_has_feature(vm->drv_features, VIRTIO_F_VERSION_1)) {
			dev_guest_err(vm->dev->name, "features %#llx refused (offered %#llx)",
				      (unsigned long long)vm->drv_features,
				      (unsigned long long)offered);
			v &= ~VIRTIO_CONFIG_S_FEATURES_OK;
		} else {
			vm->dev->acked = vm->drv_features;
		}
	}
	/* DRIVER_OK without FEATURES_OK is not a working device. */
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(v & VIRTIO_CONFIG_S_FEATURES_OK))
		v &= ~VIRTIO_CONFIG_S_DRIVER_OK;
	/* NEEDS_RESET is the device's bit: only a reset clears it. */
	v = (v & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (vm->status & VIRTIO_CONFIG_S_NEEDS_RESET);
	if ((v & VIRTIO_CONFIG_S_DRIVER_OK) && !(vm->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	    vm->dev->ops->start) {
		vm->status = v;
		vm->dev->ops->start(vm->dev);
	}
	vm->status = v;
}

static void queue_ready(struct virtio_mmio *vm, uint32_t v)
{
	struct virtqueue *vq;
	int ret;

	/* Guest value: QueueSel, checked where it is used. */
	if (vm->queue_sel >= vm->dev->nqueues) {
		if (v)
			needs_reset(vm, NULL, "QueueReady on a queue past the configured queues",
				    -EINVAL);
		return;
	}
	vq = &vm->q[vm->queue_sel].vq;
	if (!v) {
		/* Requests in flight on it are dropped when they complete. */
		vq->cfg.ready = false;
		new_gen(&vm->q[vm->queue_sel]);
		return;
	}
	if (vq->cfg.ready)
		return;
	vq->cfg.event_idx = virtio_has_feature(vm->dev->acked, VIRTIO_RING_F_EVENT_IDX);
	vq->cfg.indirect = virtio_has_feature(vm->dev->acked, VIRTIO_RING_F_INDIRECT_DESC);
	ret = vq_enable(vq, vm->dev->queue_max);
	new_gen(&vm->q[vm->queue_sel]);
	if (ret)
		needs_reset(vm, vq, "bad ring size or addresses at QueueReady", ret);
}

/* The queue QueueSel names, if its registers may be written now. */
static struct virtqueue *sel_vq_writable(struct virtio_mmio *vm)
{
	if (vm->queue_sel >= vm->dev->nqueues)
		return NULL;
	/* The ring layout is fixed while the queue runs. */
	if (vm->q[vm->queue_sel].vq.cfg.ready)
		return NULL;
	return &vm->q[vm->queue_sel].vq;
}

/*
 * The ring address field a QueueDesc/QueueDriver/QueueDevice Low or High
 * register (@off) is half of, or NULL; bit 2 of @off picks the half.
 */
static uint64_t *ring_addr_reg(struct virtqueue *vq, uint64_t off)
{
	switch (off & ~4ull) {
	case REG_QUEUE_DESC_LOW:
		return &vq->cfg.desc_gpa;
	case REG_QUEUE_DRIVER_LOW:
		return &vq->cfg.avail_gpa;
	case REG_QUEUE_DEVICE_LOW:
		return &vq->cfg.used_gpa;
	}
	return NULL;
}

static void set_lo(uint64_t *r, uint32_t v)
{
	*r = (*r & ~0xffffffffull) | v;
}

static void set_hi(uint64_t *r, uint32_t v)
{
	*r = (*r & 0xffffffffull) | (uint64_t)v << 32;
}

static uint32_t reg_read(struct virtio_mmio *vm, uint64_t off)
{
	struct virtio_dev *dev = vm->dev;
	struct virtqueue *vq = vm->queue_sel < dev->nqueues ? &vm->q[vm->queue_sel].vq : NULL;
	const uint64_t *addr;

	switch (off) {
	case REG_MAGIC:
		return MMIO_MAGIC;
	case REG_VERSION:
		return MMIO_VERSION;
	case REG_DEVICE_ID:
		return dev->device_id;
	case REG_VENDOR_ID:
		return MMIO_VENDOR;
	case REG_DEVICE_FEATURES:
		if (vm->dev_feat_sel > 1)
			return 0;
		return (uint32_t)(dev->features >> (32 * vm->dev_feat_sel));
	case REG_QUEUE_NUM_MAX:
		return vq ? dev->queue_max : 0;
	case REG_QUEUE_NUM:
		return vq ? vq->cfg.num : 0;
	case REG_QUEUE_READY:
		return vq ? vq->cfg.ready : 0;
	case REG_INTERRUPT_STATUS:
		return vm->isr;
	case REG_STATUS:
		return vm->status;
	case REG_CONFIG_GENERATION:
		return vm->config_gen;
	}
	addr = vq ? ring_addr_reg(vq, off) : NULL;
	if (!addr)
		return 0;
	return (uint32_t)(*addr >> ((off & 4) ? 32 : 0));
}

static void reg_write(struct virtio_mmio *vm, uint64_t off, uint32_t v)
{
	struct virtqueue *vq;
	uint64_t *addr;

	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		vm->dev_feat_sel = v;
		return;
	case REG_DRIVER_FEATURES:
		/* Guest value: DriverFeaturesSel, only banks 0 and 1 exist;
		 * features are frozen once FEATURES_OK is set. */
		if (vm->status & VIRTIO_CONFIG_S_FEATURES_OK)
			return;
		if (vm->drv_feat_sel == 0)
			set_lo(&vm->drv_features, v);
		else if (vm->drv_feat_sel == 1)
			set_hi(&vm->drv_features, v);
		return;
	case REG_DRIVER_FEATURES_SEL:
		vm->drv_feat_sel = v;
		return;
	case REG_QUEUE_SEL:
		vm->queue_sel = v;
		return;
	case REG_QUEUE_NUM:
		/* Guest value: QueueNum, validated at QueueReady. */
		if ((vq = sel_vq_writable(vm)))
			vq->cfg.num = (uint16_t)(v > 0xffff ? 0 : v);
		return;
	case REG_QUEUE_READY:
		queue_ready(vm, v);
		return;
	case REG_QUEUE_NOTIFY:
		kick(vm, v);
		return;
	case REG_INTERRUPT_ACK:
		vm->isr &= ~v;
		return;
	case REG_STATUS:
		write_status(vm, v);
		return;
	}
	/* Guest values: ring addresses, validated at QueueReady. */
	vq = sel_vq_writable(vm);
	addr = vq ? ring_addr_reg(vq, off) : NULL;
	if (!addr)
		return;
	if (off & 4)
		set_hi(addr, v);
	else
		set_lo(addr, v);
}

/* Config space: guest values @off and @len, checked against its size. */
static bool config_access_ok(struct virtio_mmio *vm, uint64_t off, unsigned int len)
{
	uint64_t end;

	return off >= REG_CONFIG && !__builtin_add_overflow(off - REG_CONFIG, len, &end) &&
	       end <= vm->dev->config_size && (len == 1 || len == 2 || len == 4 || len == 8);
}

static void mmio_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct virtio_mmio *vm = opaque;
	uint32_t v;

	memset(data, 0, len);
	pthread_mutex_lock(&vm->lock);
	if (off >= REG_CONFIG) {
		if (config_access_ok(vm, off, len) && vm->dev->ops->config_read)
			vm->dev->ops->config_read(vm->dev, (uint32_t)(off - REG_CONFIG), data, len);
		else
			dev_guest_err(vm->dev->name, "config read of %u at %#llx", len,
				      (unsigned long long)off);
	} else if (len == 4 && !(off & 3)) {
		v = htole32(reg_read(vm, off));
		memcpy(data, &v, 4);
	} else {
		dev_guest_err(vm->dev->name, "register read of %u bytes at %#llx", len,
			      (unsigned long long)off);
	}
	pthread_mutex_unlock(&vm->lock);
}

static void mmio_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct virtio_mmio *vm = opaque;
	uint32_t v;

	pthread_mutex_lock(&vm->lock);
	if (off >= REG_CONFIG) {
		if (config_access_ok(vm, off, len) && vm->dev->ops->config_write)
			vm->dev->ops->config_write(vm->dev, (uint32_t)(off - REG_CONFIG), data,
						   len);
	} else if (len == 4 && !(off & 3)) {
		memcpy(&v, data, 4);
		reg_write(vm, off, le32toh(v));
	} else {
		dev_guest_err(vm->dev->name, "register write of %u bytes at %#llx", len,
			      (unsigned long long)off);
	}
	pthread_mutex_unlock(&vm->lock);
}

static void close_kick_fds(struct virtio_mmio *vm)
{
	unsigned int i;

	if (!vm->kick_fds)
		return;
	for (i = 0; i < vm->dev->nqueues; i++)
		if (vm->kick_fds[i] >= 0)
			close(vm->kick_fds[i]);
	free(vm->kick_fds);
	vm->kick_fds = NULL;
}

/* With a host: eventfds, ioeventfds where KVM takes them, the thread. */
static int start_service(struct virtio_mmio *vm)
{
	unsigned int i, n = vm->dev->nqueues;
	int ret;

	vm->kick_fds = malloc(n * sizeof(*vm->kick_fds));
	if (!vm->kick_fds)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		vm->kick_fds[i] = -1;
	for (i = 0; i < n; i++) {
		vm->kick_fds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vm->kick_fds[i] < 0) {
			ret = -errno;
			goto err_fds;
		}
		/* If KVM does not take it, the MMIO write path signals it. */
		if (vm->host.ioeventfd &&
		    vm->host.ioeventfd(vm->host.opaque, vm->base + REG_QUEUE_NOTIFY, i,
				       vm->kick_fds[i]) == 0)
			vm->nkick_registered++;
	}
	vm->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->stop_fd < 0) {
		ret = -errno;
		goto err_fds;
	}
	ret = -pthread_create(&vm->thread, NULL, service_thread, vm);
	if (ret)
		goto err_stop;
	vm->thread_running = true;
	return 0;

err_stop:
	close(vm->stop_fd);
	vm->stop_fd = -1;
err_fds:
	close_kick_fds(vm);
	return ret;
}

int virtio_mmio_create(uint64_t base, unsigned int gsi, struct virtio_dev *dev,
		       const struct guest_mem *mem, const struct dev_host *host,
		       struct virtio_mmio **out)
{
	pthread_condattr_t ca;
	struct virtio_mmio *vm;
	unsigned int i;
	int ret;

	if (!dev || !mem || dev->nqueues == 0 || dev->nqueues > VIRTIO_MMIO_STATE_MAX_QUEUES ||
	    dev->queue_max == 0 || dev->queue_max > VQ_MAX_SIZE ||
	    (dev->queue_max & (dev->queue_max - 1)) ||
	    REG_CONFIG + (uint64_t)dev->config_size > VIRTIO_MMIO_SIZE)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->base = base;
	vm->dev = dev;
	vm->mem = *mem;
	vm->irq_fd = -1;
	vm->stop_fd = -1;
	ret = -pthread_mutex_init(&vm->lock, NULL);
	if (ret)
		goto err_free;
	/* Timed waits (virtio_mmio_drain) on the monotonic clock. */
	ret = -pthread_condattr_init(&ca);
	if (ret)
		goto err_lock;
	ret = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!ret)
		ret = -pthread_cond_init(&vm->idle, &ca);
	pthread_condattr_destroy(&ca);
	if (ret)
		goto err_lock;
	vm->q = calloc(dev->nqueues, sizeof(*vm->q));
	if (!vm->q) {
		ret = -ENOMEM;
		goto err_cond;
	}
	for (i = 0; i < dev->nqueues; i++)
		vq_init(&vm->q[i].vq, i, &vm->mem);
	dev->mem = &vm->mem;
	dev->acked = 0;
	dev->transport = (struct virtio_transport){
		.used = transport_used,
		.req_start = transport_req_start,
		.req_done = transport_req_done,
		.head_busy = transport_head_busy,
		.opaque = vm,
	};
	if (host) {
		vm->host = *host;
		if (host->irqfd) {
			ret = host->irqfd(host->opaque, gsi);
			if (ret < 0)
				goto err_q;
			vm->irq_fd = ret;
		}
		ret = start_service(vm);
		if (ret)
			goto err_q;
	}
	*out = vm;
	return 0;

err_q:
	free(vm->q);
err_cond:
	pthread_cond_destroy(&vm->idle);
err_lock:
	pthread_mutex_destroy(&vm->lock);
err_free:
	free(vm);
	return ret;
}

void virtio_mmio_stop(struct virtio_mmio *vm)
{
	uint64_t one = 1;

	if (!vm)
		return;
	/* Under the lock kick() reads it with: from here on no vCPU runs a
	 * request itself, nor looks at thread_running. */
	pthread_mutex_lock(&vm->lock);
	vm->stopped = true;
	pthread_mutex_unlock(&vm->lock);
	if (vm->thread_running) {
		if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
			/* Cannot fail: the counter is fresh. */
		}
		pthread_join(vm->thread, NULL);
		vm->thread_running = false;
	}
	/* No more pops: wait for the I/O in flight, drop what it answers. */
	pthread_mutex_lock(&vm->lock);
	drain_and_drop(vm);
	pthread_mutex_unlock(&vm->lock);
}

void virtio_mmio_destroy(struct virtio_mmio *vm)
{
	if (!vm)
		return;
	virtio_mmio_stop(vm);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	/* KVM keeps its own reference to a registered ioeventfd. */
	close_kick_fds(vm);
	if (vm->dev->ops->destroy)
		vm->dev->ops->destroy(vm->dev);
	free(vm->q);
	pthread_cond_destroy(&vm->idle);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

struct bus_region virtio_mmio_region(struct virtio_mmio *vm)
{
	return (struct bus_region){
		.base = vm->base,
		.len = VIRTIO_MMIO_SIZE,
		.read = mmio_read,
		.write = mmio_write,
		.opaque = vm,
	};
}

struct virtio_dev *virtio_mmio_dev(struct virtio_mmio *vm)
{
	return vm->dev;
}

void virtio_mmio_hold(struct virtio_mmio *vm)
{
	unsigned int i;

	/* Every pop and every publication runs under the lock and looks at
	 * held first: once we have set it, none is half done and none starts. */
	pthread_mutex_lock(&vm->lock);
	/*
	 * What the driver made available before its vCPUs stopped is taken
	 * first: the instant then finds it in flight (a clone re-executes it),
	 * not waiting in a kick the service thread has yet to read.
	 */
	if (!vm->held)
		for (i = 0; i < vm->dev->nqueues; i++)
			service(vm, i);
	vm->held = true;
	pthread_mutex_unlock(&vm->lock);
}

void virtio_mmio_release(struct virtio_mmio *vm)
{
	struct virtio_req *req, *next;
	unsigned int i;
	bool pushed;

	pthread_mutex_lock(&vm->lock);
	vm->held = false;
	for (i = 0; i < vm->dev->nqueues; i++) {
		pushed = false;
		/* The completions held back, in pop order; one interrupt
		 * decision per queue for the whole batch. */
		for (req = vm->q[i].first; req; req = next) {
			next = req->next;
			if (req->done)
				pushed |= publish(vm, req);
		}
		if (pushed)
			transport_used(vm, &vm->q[i].vq);
	}
	/* Kicks held back go the way of any notify: to the service thread,
	 * never run on the thread that releases (unless there is no thread). */
	for (i = 0; i < vm->dev->nqueues; i++) {
		if (!vm->q[i].kick_pending)
			continue;
		vm->q[i].kick_pending = false;
		kick(vm, i);
	}
	pthread_cond_broadcast(&vm->idle);
	pthread_mutex_unlock(&vm->lock);
}

unsigned int virtio_mmio_inflight(struct virtio_mmio *vm)
{
	unsigned int n;

	pthread_mutex_lock(&vm->lock);
	n = vm->ninflight;
	pthread_mutex_unlock(&vm->lock);
	return n;
}

/* No I/O runs and, unless held, nothing waits to be published.  Lock held. */
static bool is_drained(const struct virtio_mmio *vm)
{
	return vm->nrunning == 0 && (vm->held || vm->ninflight == 0);
}

int virtio_mmio_drain(struct virtio_mmio *vm, int timeout_ms)
{
	struct timespec until;
	int ret = 0;

	deadline_after_ms(&until, (unsigned int)timeout_ms);
	pthread_mutex_lock(&vm->lock);
	while (!is_drained(vm) && ret == 0)
		ret = pthread_cond_timedwait(&vm->idle, &vm->lock, &until);
	ret = is_drained(vm) ? 0 : -ETIMEDOUT;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* ---- saved state ------------------------------------------------------ */

/* The in-flight heads of queue @i whose answer is still wanted.  Lock held. */
static void save_inflight(struct virtio_mmio *vm, unsigned int i, struct vq_state *out)
{
	const struct virtio_req *req;

	out->ninflight = 0;
	for (req = vm->q[i].first; req; req = req->next) {
		/* A request of a queue since reset, disabled or broken will be
		 * dropped, never answered: not part of the state. */
		if (!should_publish(vm, req))
			continue;
		/* At most one per head of a running queue (the driver cannot
		 * make available a head we hold): bounded by the size. */
		if (out->ninflight >= VQ_MAX_SIZE)
			break;
		out->inflight[out->ninflight++] = req->head;
	}
}

int virtio_mmio_save(struct virtio_mmio *vm, struct virtio_mmio_state *out)
{
	struct virtio_dev *dev = vm->dev;
	unsigned int i;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&vm->lock);
	if (!vm->held) {
		ret = -EBUSY;
		goto out;
	}
	out->magic = VIRTIO_MMIO_STATE_MAGIC;
	out->version = VIRTIO_MMIO_STATE_VERSION;
	out->device_id = dev->device_id;
	out->nqueues = dev->nqueues;
	out->features = dev->features;
	out->drv_features = vm->drv_features;
	out->acked = dev->acked;
	out->status = vm->status;
	out->isr = vm->isr;
	out->dev_feat_sel = vm->dev_feat_sel;
	out->drv_feat_sel = vm->drv_feat_sel;
	out->queue_sel = vm->queue_sel;
	out->config_gen = vm->config_gen;
	if (dev->ops->save) {
		ret = dev->ops->save(dev, out->dev_state, sizeof(out->dev_state));
		if (ret < 0)
			goto out;
		out->dev_state_size = (uint32_t)ret;
		ret = 0;
	}
	for (i = 0; i < dev->nqueues; i++) {
		vq_save(&vm->q[i].vq, &out->vq[i]);
		save_inflight(vm, i, &out->vq[i]);
	}
out:
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

static bool is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		if (*b++)
			return false;
	return true;
}

/* The transport's part of @st: every field is untrusted. */
static int check_state(const struct virtio_mmio *vm, const struct virtio_mmio_state *st, char *err,
		       size_t errlen)
{
	const struct virtio_dev *dev = vm->dev;
	unsigned int i;

	if (st->magic != VIRTIO_MMIO_STATE_MAGIC) {
		snprintf(err, errlen, "virtio-mmio state: magic %#x, expected %#x", st->magic,
			 VIRTIO_MMIO_STATE_MAGIC);
		return -EINVAL;
	}
	if (st->version != VIRTIO_MMIO_STATE_VERSION) {
		snprintf(err, errlen, "virtio-mmio state: version %u, expected %u", st->version,
			 VIRTIO_MMIO_STATE_VERSION);
		return -EINVAL;
	}
	if (st->device_id != dev->device_id) {
		snprintf(err, errlen, "virtio-mmio state: device type %u, this device is %u (%s)",
			 st->device_id, dev->device_id, dev->name);
		return -EINVAL;
	}
	if (st->nqueues != dev->nqueues) {
		snprintf(err, errlen, "virtio-mmio state: %u queues, the device has %u",
			 st->nqueues, dev->nqueues);
		return -EINVAL;
	}
	if (st->features != dev->features) {
		snprintf(err, errlen,
			 "virtio-mmio state: offered features %#llx, the device offers %#llx",
			 (unsigned long long)st->features, (unsigned long long)dev->features);
		return -EINVAL;
	}
	if (st->acked & ~dev->features) {
		snprintf(err, errlen,
			 "virtio-mmio state: acked features %#llx not a subset of offered %#llx",
			 (unsigned long long)st->acked, (unsigned long long)dev->features);
		return -EINVAL;
	}
	if (st->status & ~STATUS_KNOWN) {
		snprintf(err, errlen, "virtio-mmio state: status %#x has unknown bits", st->status);
		return -EINVAL;
	}
	if (st->isr & ~(uint32_t)(INT_VRING | INT_CONFIG)) {
		snprintf(err, errlen, "virtio-mmio state: interrupt status %#x has unknown bits",
			 st->isr);
		return -EINVAL;
	}
	if (st->dev_state_size > sizeof(st->dev_state) || st->reserved ||
	    !is_zero(st->dev_state + st->dev_state_size,
		     sizeof(st->dev_state) - st->dev_state_size)) {
		snprintf(err, errlen,
			 "virtio-mmio state: device state of %u bytes (at most %zu), or reserved "
			 "bytes not 0",
			 st->dev_state_size, sizeof(st->dev_state));
		return -EINVAL;
	}
	for (i = dev->nqueues; i < VIRTIO_MMIO_STATE_MAX_QUEUES; i++) {
		if (!is_zero(&st->vq[i], sizeof(st->vq[i]))) {
			snprintf(err, errlen,
				 "virtio-mmio state: queue %u past the device's %u is not 0", i,
				 dev->nqueues);
			return -EINVAL;
		}
	}
	return 0;
}

int virtio_mmio_restore(struct virtio_mmio *vm, const struct virtio_mmio_state *st, char *err,
			size_t errlen)
{
	struct virtio_dev *dev = vm->dev;
	struct virtqueue vqs[VIRTIO_MMIO_STATE_MAX_QUEUES];
	struct vq_chain *chain;
	char why[160];
	unsigned int i, j;
	int ret;

	chain = malloc(sizeof(*chain));
	if (!chain)
		return -ENOMEM;
	pthread_mutex_lock(&vm->lock);
	if (vm->status || vm->ninflight || vm->stopped || vm->held) {
		snprintf(err, errlen, "virtio-mmio restore: the transport is not fresh");
		ret = -EBUSY;
		goto out;
	}
	ret = check_state(vm, st, err, errlen);
	if (ret)
		goto out;
	/* Every queue checked before any changes: all or nothing. */
	for (i = 0; i < dev->nqueues; i++) {
		vqs[i] = vm->q[i].vq;
		ret = vq_restore(&vqs[i], &st->vq[i], dev->queue_max, st->acked, why, sizeof(why));
		if (ret) {
			snprintf(err, errlen, "virtio-mmio state: queue %u: %s", i, why);
			goto out;
		}
	}
	if (dev->ops->restore) {
		ret = dev->ops->restore(dev, st->dev_state, st->dev_state_size, err, errlen);
		if (ret)
			goto out;
	} else if (st->dev_state_size) {
		snprintf(err, errlen, "virtio-mmio state: %s keeps no state of its own", dev->name);
		ret = -EINVAL;
		goto out;
	}

	vm->drv_features = st->drv_features;
	dev->acked = st->acked;
	vm->status = st->status;
	vm->isr = st->isr;
	vm->dev_feat_sel = st->dev_feat_sel;
	vm->drv_feat_sel = st->drv_feat_sel;
	vm->queue_sel = st->queue_sel;
	vm->config_gen = st->config_gen;
	for (i = 0; i < dev->nqueues; i++) {
		vm->q[i].vq = vqs[i];
		new_gen(&vm->q[i]);
	}
	/*
	 * The chains the parent had popped and not completed: read again from
	 * this (the child's) memory, which is the parent's as of the instant,
	 * validated like any chain, and run again (DESIGN.md 3.2), in pop
	 * order.  A chain that fails now is answered as any bad chain is.
	 */
	for (i = 0; i < dev->nqueues; i++) {
		struct virtqueue *vq = &vm->q[i].vq;
		uint16_t used = vq->st.used_idx;

		for (j = 0; j < st->vq[i].ninflight; j++) {
			if (vq_read_chain(vq, st->vq[i].inflight[j], chain))
				break;
			if (dev->ops->submit(dev, vq, chain) < 0) {
				needs_reset(vm, vq, "in-flight chain at restore", -EIO);
				break;
			}
		}
		/* A chain answered at once now (it fails validation in this
		 * memory, say) is owed its interrupt like any answer. */
		if (vq->st.used_idx != used)
			transport_used(vm, vq);
	}
	/* A kick the parent had not served yet (deferred by the hold, or still
	 * in its eventfd) is not in the state: serve every running queue once;
	 * a notify with nothing available costs one avail->idx read. */
	for (i = 0; i < dev->nqueues; i++)
		if (vm->q[i].vq.cfg.ready && !vm->q[i].vq.st.broken)
			kick(vm, i);
	ret = 0;
out:
	pthread_mutex_unlock(&vm->lock);
	free(chain);
	return ret;
}

uint64_t virtio_mmio_irq_count(struct virtio_mmio *vm)
{
	uint64_t n;

	pthread_mutex_lock(&vm->lock);
	n = vm->irqs;
	pthread_mutex_unlock(&vm->lock);
	return n;
}

unsigned int virtio_mmio_ioeventfds(struct virtio_mmio *vm)
{
	return vm->nkick_registered;
}
