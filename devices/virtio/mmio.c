// SPDX-License-Identifier: MIT
/*
 * virtio-mmio transport, version 2.
 *
 * Threads and locking: vm->lock protects the registers, the queues and the
 * device.  The vCPU threads take it for register accesses; the service
 * thread takes it to run the device on a notified queue.  A request therefore
 * completes (pins released) before a reset, a pause or a destroy returns.
 */
#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/log.h"
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

struct virtio_mmio {
	uint64_t base;
	struct virtio_dev *dev;
	struct guest_mem mem;
	struct dev_host host;

	pthread_mutex_t lock;
	uint32_t status;
	uint32_t isr;
	uint32_t dev_feat_sel;
	uint32_t drv_feat_sel;
	uint32_t queue_sel;
	uint32_t config_gen;
	uint64_t drv_features;
	bool paused;
	bool stopped; /* virtio_mmio_stop() ran: notifications are dropped */
	bool *kick_pending; /* kicks that arrived while paused */
	struct virtqueue *vqs;

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
		vq->broken = true;
	if (vm->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	vm->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	vm->config_gen++;
	raise_irq(vm, INT_CONFIG);
}

/* Run the device on queue @q.  Lock held. */
static void service(struct virtio_mmio *vm, unsigned int q)
{
	struct virtqueue *vq = &vm->vqs[q];
	int ret;

	if (vm->paused) {
		vm->kick_pending[q] = true;
		return;
	}
	/* A notify before DRIVER_OK, on a queue not ready, or after a fatal
	 * error is ignored (the driver broke the protocol or must reset). */
	if (!(vm->status & VIRTIO_CONFIG_S_DRIVER_OK) ||
	    (vm->status & VIRTIO_CONFIG_S_NEEDS_RESET) || !vq->ready || vq->broken)
		return;
	ret = vm->dev->ops->queue_notify(vm->dev, vq);
	if (ret < 0)
		needs_reset(vm, vq, "queue error", ret);
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

/* Device reset: status 0.  Lock held. */
static void reset(struct virtio_mmio *vm)
{
	unsigned int i;

	for (i = 0; i < vm->dev->nqueues; i++) {
		vq_reset(&vm->vqs[i]);
		vm->kick_pending[i] = false;
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
	vq = &vm->vqs[vm->queue_sel];
	if (!v) {
		vq->ready = false;
		return;
	}
	if (vq->ready)
		return;
	vq->event_idx = virtio_has_feature(vm->dev->acked, VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = virtio_has_feature(vm->dev->acked, VIRTIO_RING_F_INDIRECT_DESC);
	ret = vq_enable(vq, vm->dev->queue_max);
	if (ret)
		needs_reset(vm, vq, "bad ring size or addresses at QueueReady", ret);
}

/* The queue QueueSel names, if its registers may be written now. */
static struct virtqueue *sel_vq_writable(struct virtio_mmio *vm)
{
	if (vm->queue_sel >= vm->dev->nqueues)
		return NULL;
	/* The ring layout is fixed while the queue runs. */
	if (vm->vqs[vm->queue_sel].ready)
		return NULL;
	return &vm->vqs[vm->queue_sel];
}

/*
 * The ring address field a QueueDesc/QueueDriver/QueueDevice Low or High
 * register (@off) is half of, or NULL; bit 2 of @off picks the half.
 */
static uint64_t *ring_addr_reg(struct virtqueue *vq, uint64_t off)
{
	switch (off & ~4ull) {
	case REG_QUEUE_DESC_LOW:
		return &vq->desc_gpa;
	case REG_QUEUE_DRIVER_LOW:
		return &vq->avail_gpa;
	case REG_QUEUE_DEVICE_LOW:
		return &vq->used_gpa;
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
	struct virtqueue *vq = vm->queue_sel < dev->nqueues ? &vm->vqs[vm->queue_sel] : NULL;
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
		return vq ? vq->num : 0;
	case REG_QUEUE_READY:
		return vq ? vq->ready : 0;
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
			vq->num = (uint16_t)(v > 0xffff ? 0 : v);
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
	struct virtio_mmio *vm;
	unsigned int i;
	int ret;

	if (!dev || !mem || dev->nqueues == 0 || dev->queue_max == 0 ||
	    dev->queue_max > VQ_MAX_SIZE || (dev->queue_max & (dev->queue_max - 1)) ||
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
	vm->vqs = calloc(dev->nqueues, sizeof(*vm->vqs));
	vm->kick_pending = calloc(dev->nqueues, sizeof(*vm->kick_pending));
	if (!vm->vqs || !vm->kick_pending) {
		ret = -ENOMEM;
		goto err_arrays;
	}
	for (i = 0; i < dev->nqueues; i++)
		vq_init(&vm->vqs[i], i, &vm->mem);
	dev->mem = &vm->mem;
	dev->acked = 0;
	dev->transport = (struct virtio_transport){
		.used = transport_used,
		.opaque = vm,
	};
	if (host) {
		vm->host = *host;
		if (host->irqfd) {
			ret = host->irqfd(host->opaque, gsi);
			if (ret < 0)
				goto err_arrays;
			vm->irq_fd = ret;
		}
		ret = start_service(vm);
		if (ret)
			goto err_arrays;
	}
	*out = vm;
	return 0;

err_arrays:
	free(vm->kick_pending);
	free(vm->vqs);
	pthread_mutex_destroy(&vm->lock);
err_free:
	free(vm);
	return ret;
}

void virtio_mmio_stop(struct virtio_mmio *vm)
{
	uint64_t one = 1;

	if (!vm || !vm->thread_running)
		return;
	/* Under the lock kick() reads it with: from here on no vCPU runs a
	 * request itself, nor looks at thread_running. */
	pthread_mutex_lock(&vm->lock);
	vm->stopped = true;
	pthread_mutex_unlock(&vm->lock);
	if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
		/* Cannot fail: the counter is fresh. */
	}
	pthread_join(vm->thread, NULL);
	vm->thread_running = false;
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
	free(vm->kick_pending);
	free(vm->vqs);
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

void virtio_mmio_pause(struct virtio_mmio *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->paused = true;
	pthread_mutex_unlock(&vm->lock);
}

void virtio_mmio_resume(struct virtio_mmio *vm)
{
	unsigned int i;

	pthread_mutex_lock(&vm->lock);
	vm->paused = false;
	/* Kicks held back by the pause go the way of any notify: to the
	 * service thread, never run on the thread that resumes. */
	for (i = 0; i < vm->dev->nqueues; i++) {
		if (!vm->kick_pending[i])
			continue;
		vm->kick_pending[i] = false;
		kick(vm, i);
	}
	pthread_mutex_unlock(&vm->lock);
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
