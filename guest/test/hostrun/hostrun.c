// SPDX-License-Identifier: MIT
/*
 * hostrun: run the freestanding test guest as an ordinary Linux process,
 * without KVM, to test it where /dev/kvm is missing.  Guest memory is
 * mapped at its guest-physical addresses in this process (from 0x1000 up),
 * the ELF is loaded there and a device tree like the VMM's is written at
 * 0x10000.  Every vCPU is a thread jumping to the entry point with RDI/RSI/
 * RDX as docs/boot-protocol.md says.  The guest's in/out instructions fault
 * (no IOPL here) and MMIO accesses fault (nothing mapped at 0xd0000000): a
 * SIGSEGV handler decodes the instruction and emulates the 8250 THR/LSR,
 * the exit and result ports and a virtio-mmio v2 block device over an
 * in-memory disk.  The device follows the error rules the guest expects
 * (docs/test-guest.md); it is a model for testing the guest, not the real
 * devices/ code.
 *
 * With --disk-latency MS the device completes each request MS milliseconds
 * after it popped it, on its own thread, so many requests are in flight at
 * once.  The guest-fork port (guest/abi.h) is fork(2) of this process: the
 * device's bookkeeping (requests popped and not completed) is copied with
 * guest memory at the same instant (the fork runs under the device lock),
 * and each process completes its copy of those requests into its own copy
 * of guest memory: the child re-executes what was in flight, as the VMM does.
 * --dma-bug wrongway is the negative control: the parent's device writes the
 * data of the requests in flight at a fork into the child's memory instead
 * of its own (process_vm_writev), as a device writing a frame its VM copied
 * away from would (wrong-way COW): the parent's reads are lost.
 * --dma-bug overrun: every device write of read data lands 8 bytes past its
 * buffer, over bytes the CPU owns: dmastress must count it misplaced.
 *
 * Usage: hostrun ELF WORKLOAD [--args S] [--cpus N] [--mem MiB]
 *        [--disk-mib N] [--disk-seed S] [--check-seed S] [--disk FILE]
 *        [--start-cpus N] (start only N of the vCPUs, to test the guest's waits)
 *        [--disk-latency MS] [--dma-bug wrongway|overrun]
 * Exit status: the guest's exit code, or when it is 0 the first non-zero one
 * among the VMs forked from it; 70 for a guest crash, 124 on timeout.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libfdt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "guest/abi.h"
#include "guest/test/pattern.h"
#include "guest/test/virtio_blk.h"
#include "guest/test/vring.h"

#define LOW_GPA 0x1000ULL
#define FDT_GPA 0x10000ULL
#define MMIO_BASE 0xd0000000ULL
#define QMAX 64

static uint64_t mem_size = 64ULL << 20;
static uint8_t *disk;
static uint64_t disk_size = 1ULL << 20;
static uint64_t check_seed;
static bool do_check;
static volatile int dev_lock;
static int ncpus = 1;
static uint64_t latency_ns; /* --disk-latency: 0 = complete at the notify */
static bool bug_wrongway; /* --dma-bug wrongway */
static bool bug_overrun; /* --dma-bug overrun */
static uint64_t deadline_ns; /* CLOCK_MONOTONIC: the whole family's timeout */

/* Forks: ids come from one counter shared by the family (MAP_SHARED). */
static uint32_t *family_next_id;
static uint32_t vm_id; /* 0 for the first VM */
static uint32_t fork_ret = FORK_NONE; /* what the next inl of PORT_FORK reads */

/* The console, a line at a time: forked VMs share stdout. */
static char con_line[256];
static size_t con_len;

static struct {
	uint32_t status, dfsel, drfsel, qsel, qnum, qready;
	uint64_t drv_features, desc, avail, used;
	uint16_t last_avail;
} dev;

static void die(const char *msg)
{
	fprintf(stderr, "hostrun: %s\n", msg);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void con_flush(void)
{
	if (con_len && write(1, con_line, con_len) < 0)
		_exit(71);
	con_len = 0;
}

static bool gpa_ok(uint64_t gpa, uint64_t len)
{
	uint64_t end;

	/* guest-controlled: both ends checked, with overflow */
	if (__builtin_add_overflow(gpa, len, &end))
		return false;
	return gpa >= LOW_GPA && end <= mem_size;
}

/* ---- virtio-blk model --------------------------------------------------------- */

struct chain {
	struct vring_desc d[QMAX * 2];
	unsigned int n;
	int err; /* the walk broke a rule */
	bool have_last; /* the walk reached a last descriptor (docs/virtio-errors.md) */
	struct vring_desc last;
};

/* The chain walk of docs/virtio-errors.md section 1, modelled. */
static void walk(uint16_t head, struct chain *c)
{
	const struct vring_desc *table = (const struct vring_desc *)dev.desc;
	unsigned int tsize = dev.qnum, hops = 0, i = head;
	bool indirect = false, seen_write = false;

	c->n = 0;
	c->err = 0;
	c->have_last = false;
	for (;;) {
		struct vring_desc d = table[i]; /* copied once, then validated */

		if ((d.flags & VRING_DESC_F_INDIRECT) && !indirect &&
		    (dev.drv_features & (1ULL << VIRTIO_F_INDIRECT_DESC))) {
			if (d.flags & VRING_DESC_F_NEXT)
				c->err = 1;
			if (!d.len || d.len % 16 || d.len / 16 > dev.qnum ||
			    !gpa_ok(d.addr, d.len)) {
				c->err = 1;
				return;
			}
			indirect = true;
			table = (const struct vring_desc *)d.addr;
			tsize = d.len / 16;
			i = 0;
			continue;
		}
		if (d.flags & VRING_DESC_F_INDIRECT)
			c->err = 1; /* nested, or not negotiated: never followed */
		if (++hops > dev.qnum) {
			c->err = 1; /* loop or chain longer than the queue: no last */
			return;
		}
		if (d.len && !gpa_ok(d.addr, d.len))
			c->err = 1;
		if (seen_write && !(d.flags & VRING_DESC_F_WRITE))
			c->err = 1;
		seen_write |= !!(d.flags & VRING_DESC_F_WRITE);
		if (!(d.flags & VRING_DESC_F_INDIRECT))
			c->d[c->n++] = d;
		c->last = d;
		c->have_last = true;
		if (!(d.flags & VRING_DESC_F_NEXT))
			return;
		if (d.next >= tsize) {
			c->err = 1;
			c->have_last = false;
			return;
		}
		i = d.next;
	}
}

/*
 * Device writes of data: into this process's guest memory, or with
 * --dma-bug wrongway into the memory of process @to (a child forked while
 * the request was in flight), where this VM will never see them.
 */
static void dma_write(pid_t to, uint64_t gpa, const void *src, size_t len)
{
	struct iovec local = { (void *)src, len }, remote = { (void *)gpa, len };

	if (!to) {
		memcpy((void *)gpa, src, len);
		return;
	}
	if (process_vm_writev(to, &local, 1, &remote, 1, 0) != (ssize_t)len)
		fprintf(stderr, "hostrun: wrongway write into pid %d: %s\n", (int)to,
			strerror(errno));
}

/* A well-formed chain: hdr, data..., status (1 byte).  Return: used.len. */
static uint32_t execute(struct chain *c, pid_t to)
{
	struct vring_desc *last = &c->d[c->n - 1];
	struct virtio_blk_req_hdr h;
	uint8_t *status = (uint8_t *)(last->addr + last->len - 1);
	uint64_t off, total = 0;
	uint32_t written = 0, k;

	if (!(last->flags & VRING_DESC_F_WRITE) || !last->len)
		return 0; /* nowhere to put a status */
	if (c->n < 2 || c->d[0].len < sizeof(h) || (c->d[0].flags & VRING_DESC_F_WRITE)) {
		*status = VIRTIO_BLK_S_IOERR;
		return 1;
	}
	memcpy(&h, (void *)c->d[0].addr, sizeof(h));
	if (h.type != VIRTIO_BLK_T_IN && h.type != VIRTIO_BLK_T_OUT &&
	    h.type != VIRTIO_BLK_T_FLUSH && h.type != VIRTIO_BLK_T_GET_ID) {
		*status = VIRTIO_BLK_S_UNSUPP;
		return 1;
	}
	for (k = 1; k + 1 < c->n; k++)
		total += c->d[k].len;
	off = h.sector * 512;
	if ((h.type == VIRTIO_BLK_T_IN || h.type == VIRTIO_BLK_T_OUT) &&
	    (total % 512 || h.sector > disk_size / 512 || total > disk_size - off)) {
		*status = VIRTIO_BLK_S_IOERR;
		return 1;
	}
	for (k = 1; k + 1 < c->n; k++) {
		struct vring_desc *d = &c->d[k];
		bool w = d->flags & VRING_DESC_F_WRITE;

		if (h.type == VIRTIO_BLK_T_GET_ID && w) {
			char id[VIRTIO_BLK_ID_BYTES] = "hostrun-disk";

			memcpy((void *)d->addr, id, d->len < sizeof(id) ? d->len : sizeof(id));
			written += d->len < sizeof(id) ? d->len : sizeof(id);
			continue;
		}
		if (h.type == VIRTIO_BLK_T_FLUSH)
			continue;
		if (w != (h.type == VIRTIO_BLK_T_IN)) {
			*status = VIRTIO_BLK_S_IOERR;
			return 1;
		}
		if (w) {
			uint64_t at = d->addr;

			/* --dma-bug overrun: 8 bytes too far, over what follows the buffer. */
			if (bug_overrun && gpa_ok(at + 8, d->len))
				at += 8;
			dma_write(to, at, disk + off, d->len);
			written += d->len;
		} else {
			memcpy(disk + off, (void *)d->addr, d->len);
		}
		off += d->len;
	}
	*status = VIRTIO_BLK_S_OK;
	return written + 1;
}

static void needs_reset(const char *why)
{
	fprintf(stderr, "hostrun: device: %s: needs reset\n", why);
	dev.status |= VIRTIO_STATUS_NEEDS_RESET;
}

/*
 * Requests popped and not completed yet (--disk-latency), oldest first.
 * Copied by fork(2) with guest memory under the device lock: that is the
 * device state of the clone instant.
 */
static struct inflight {
	uint16_t head;
	uint64_t due_ns;
	pid_t to; /* --dma-bug wrongway: write the data into this process */
	struct chain c;
} inflight[QMAX];
static unsigned int inflight_first, inflight_count;

/* Execute a chain walked by walk() (or refused) and publish its used element. */
static void complete(uint16_t head, struct chain *c, pid_t to)
{
	struct vring_used *u = (struct vring_used *)dev.used;
	uint32_t len = 0;

	if (!c->err) {
		len = execute(c, to);
	} else if (c->have_last && (c->last.flags & VRING_DESC_F_WRITE) &&
		   !(c->last.flags & VRING_DESC_F_INDIRECT) && c->last.len &&
		   gpa_ok(c->last.addr, c->last.len)) {
		*(uint8_t *)(c->last.addr + c->last.len - 1) = VIRTIO_BLK_S_IOERR;
	}
	u->ring[u->idx % dev.qnum].id = head;
	u->ring[u->idx % dev.qnum].len = len;
	/* The element before the index: pairs with the driver's acquire of used->idx. */
	__atomic_store_n(&u->idx, u->idx + 1, __ATOMIC_RELEASE);
}

static void process_queue(void)
{
	struct vring_avail *av = (struct vring_avail *)dev.avail;
	static struct chain c;
	uint16_t avail_idx;

	if (!dev.qready || (dev.status & VIRTIO_STATUS_NEEDS_RESET))
		return;
	avail_idx = __atomic_load_n(&av->idx, __ATOMIC_ACQUIRE);
	if ((uint16_t)(avail_idx - dev.last_avail) > dev.qnum) {
		needs_reset("avail index jumped");
		return;
	}
	while (dev.last_avail != avail_idx) {
		uint16_t head = av->ring[dev.last_avail % dev.qnum];
		struct chain *cp = &c;

		if (latency_ns) {
			/* The driver cannot have more chains out than the queue holds. */
			if (inflight_count == QMAX)
				return;
			cp = &inflight[(inflight_first + inflight_count) % QMAX].c;
		}
		dev.last_avail++;
		if (head >= dev.qnum) {
			cp->err = 1;
			cp->have_last = false;
		} else {
			walk(head, cp);
		}
		if (!latency_ns) {
			complete(head, cp, 0);
			continue;
		}
		inflight[(inflight_first + inflight_count) % QMAX].head = head;
		inflight[(inflight_first + inflight_count) % QMAX].due_ns = now_ns() + latency_ns;
		inflight[(inflight_first + inflight_count) % QMAX].to = 0;
		inflight_count++;
	}
}

static void lock_dev(void)
{
	while (__atomic_exchange_n(&dev_lock, 1, __ATOMIC_ACQUIRE))
		sched_yield();
}

static void unlock_dev(void)
{
	__atomic_store_n(&dev_lock, 0, __ATOMIC_RELEASE);
}

/*
 * The device's own thread: completes requests once their latency has
 * passed, and ends the process at the family's deadline.  It takes the
 * device lock, so a fork (under the lock) sees no completion half done.
 */
static void *service_thread(void *arg)
{
	sigset_t all;

	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		struct timespec ts = { 0, 200000 };
		uint64_t now = now_ns();

		if (now > deadline_ns) {
			if (vm_id)
				fprintf(stderr, "hostrun: vm %u: timeout\n", vm_id);
			else
				fprintf(stderr, "hostrun: timeout\n");
			_exit(124);
		}
		lock_dev();
		while (inflight_count && inflight[inflight_first].due_ns <= now) {
			struct inflight *f = &inflight[inflight_first];

			inflight_first = (inflight_first + 1) % QMAX;
			inflight_count--;
			if (!(dev.status & VIRTIO_STATUS_NEEDS_RESET) && dev.qready)
				complete(f->head, &f->c, f->to);
		}
		unlock_dev();
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void start_service(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, service_thread, NULL))
		die("pthread_create");
}

/* ---- guest fork ---------------------------------------------------------------- */

/* Context: the device lock held (in the fault handler), so no completion runs. */
static void guest_fork_request(void)
{
	uint32_t id;
	unsigned int i;
	pid_t pid;

	if (ncpus != 1) {
		fprintf(stderr, "hostrun: vm %u: fork: only a 1-vCPU guest can fork here\n", vm_id);
		fork_ret = FORK_FAILED;
		return;
	}
	con_flush();
	fflush(stdout);
	fflush(stderr);
	id = __atomic_add_fetch(family_next_id, 1, __ATOMIC_RELAXED);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hostrun: vm %u: fork: %s\n", vm_id, strerror(errno));
		fork_ret = FORK_FAILED;
		return;
	}
	if (pid == 0) {
		/* Only this thread survives fork(2): the device thread starts again. */
		vm_id = id;
		fork_ret = 0;
		start_service();
		return;
	}
	fork_ret = id;
	if (bug_wrongway)
		for (i = 0; i < inflight_count; i++)
			if (!inflight[(inflight_first + i) % QMAX].to)
				inflight[(inflight_first + i) % QMAX].to = pid;
}

static uint64_t dev_features(void)
{
	return (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_INDIRECT_DESC) |
	       (1ULL << VIRTIO_BLK_F_FLUSH) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
	       (1ULL << VIRTIO_F_EVENT_IDX);
}

static uint32_t mmio_read(uint64_t off)
{
	switch (off) {
	case VIRTIO_MMIO_MAGIC:
		return VIRTIO_MMIO_MAGIC_VALUE;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return VIRTIO_ID_BLOCK;
	case VIRTIO_MMIO_VENDOR_ID:
		return 0x554d4551;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return dev.dfsel > 1 ? 0 : (uint32_t)(dev_features() >> (32 * dev.dfsel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return dev.qsel == 0 ? QMAX : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return dev.qsel == 0 ? dev.qready : 0;
	case VIRTIO_MMIO_STATUS:
		return dev.status;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return 0;
	case VIRTIO_MMIO_CONFIG + 0:
		return (uint32_t)(disk_size / 512);
	case VIRTIO_MMIO_CONFIG + 4:
		return (uint32_t)(disk_size / 512 >> 32);
	case VIRTIO_MMIO_CONFIG + 12:
		return QMAX - 2;
	}
	return 0;
}

static void mmio_write(uint64_t off, uint32_t v)
{
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		dev.dfsel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		dev.drfsel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (dev.drfsel < 2) {
			dev.drv_features &= ~(0xffffffffULL << (32 * dev.drfsel));
			dev.drv_features |= (uint64_t)v << (32 * dev.drfsel);
		}
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		dev.qsel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (dev.qsel == 0 && v && v <= QMAX && !(v & (v - 1)))
			dev.qnum = v;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (dev.qsel == 0)
			dev.qready = v & 1;
		else if (v & 1)
			needs_reset("QueueReady on a queue past the configured queues");
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (v == 0)
			process_queue();
		else
			needs_reset("notify of a queue past the configured queues");
		break;
	case VIRTIO_MMIO_STATUS:
		if (v == 0) {
			/* A reset drops the requests in flight: they never complete. */
			memset(&dev, 0, sizeof(dev));
			inflight_count = 0;
			break;
		}
		if ((v & VIRTIO_STATUS_FEATURES_OK) &&
		    (dev.drv_features & ~dev_features() ||
		     !(dev.drv_features & (1ULL << VIRTIO_F_VERSION_1))))
			v &= ~VIRTIO_STATUS_FEATURES_OK;
		dev.status = v | (dev.status & VIRTIO_STATUS_NEEDS_RESET);
		break;
#define ADDR_REG(reg, field, shift)                                                           \
	case reg:                                                                             \
		if (dev.qsel == 0)                                                            \
			dev.field =                                                           \
			    (dev.field & ~(0xffffffffULL << shift)) | ((uint64_t)v << shift); \
		break;
		ADDR_REG(VIRTIO_MMIO_QUEUE_DESC_LOW, desc, 0)
		ADDR_REG(VIRTIO_MMIO_QUEUE_DESC_HIGH, desc, 32)
		ADDR_REG(VIRTIO_MMIO_QUEUE_DRIVER_LOW, avail, 0)
		ADDR_REG(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, avail, 32)
		ADDR_REG(VIRTIO_MMIO_QUEUE_DEVICE_LOW, used, 0)
		ADDR_REG(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, used, 32)
	}
}

/* ---- instruction emulation ----------------------------------------------------- */

static const int reg_map[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
				 REG_RSI, REG_RDI, REG_R8,  REG_R9,  REG_R10, REG_R11,
				 REG_R12, REG_R13, REG_R14, REG_R15 };

/* Wait for every VM forked from this one. Return: the first non-zero exit status. */
static int wait_children(void)
{
	int st, worst = 0;
	pid_t pid;

	while ((pid = waitpid(-1, &st, 0)) > 0) {
		int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);

		if (code && !worst)
			worst = code;
	}
	return worst;
}

static void check_disk_and_exit(int code)
{
	uint64_t o;
	int kids;

	if (do_check) {
		for (o = 0; o < disk_size; o += 8)
			if (*(uint64_t *)(disk + o) != disk_word(o, check_seed)) {
				fprintf(stderr,
					"hostrun: disk differs from seed 0x%llx at 0x%llx\n",
					(unsigned long long)check_seed, (unsigned long long)o);
				_exit(code ? code : 65);
			}
		fprintf(stderr, "hostrun: disk matches seed 0x%llx\n",
			(unsigned long long)check_seed);
	}
	con_flush();
	fflush(stdout);
	if (vm_id)
		fprintf(stderr, "hostrun: vm %u: guest exit %d\n", vm_id, code);
	else
		fprintf(stderr, "hostrun: guest exit %d\n", code);
	fflush(stderr);
	/* The guest is done: the device thread may run while we wait. */
	unlock_dev();
	kids = wait_children();
	_exit(code ? code : kids);
}

static void port_io(ucontext_t *uc, bool out, int width)
{
	greg_t *g = uc->uc_mcontext.gregs;
	uint16_t port = (uint16_t)g[REG_RDX];
	uint32_t v = (uint32_t)g[REG_RAX];
	uint8_t c;

	if (!out) {
		uint32_t r = port == 0x3fd ? 0x60 : 0;

		if (port == PORT_FORK) {
			r = fork_ret;
			fork_ret = FORK_NONE;
		}
		if (width == 1)
			g[REG_RAX] = (g[REG_RAX] & ~0xffULL) | r;
		else
			g[REG_RAX] = r;
		return;
	}
	switch (port) {
	case 0x3f8:
		c = (uint8_t)v;
		if (c == '\r')
			break;
		con_line[con_len++] = (char)c;
		if (c == '\n' || con_len == sizeof(con_line))
			con_flush();
		break;
	case 0x501:
		check_disk_and_exit((int)(v & 0xff));
		break;
	case 0x502:
		fprintf(stderr, "hostrun: exception report 0x%x\n", v);
		_exit(70);
	case 0x503:
		con_flush();
		printf("result: 0x%08x\n", v);
		fflush(stdout);
		break;
	case PORT_FORK:
		if (v == FORK_MAGIC)
			guest_fork_request();
		break;
	}
}

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	greg_t *g = uc->uc_mcontext.gregs;
	uint8_t *ip = (uint8_t *)g[REG_RIP];
	uint64_t addr = (uint64_t)si->si_addr;
	unsigned int len = 0, rex = 0, op, modrm, mod, rm, reg;

	lock_dev();
	if (sig == SIGSEGV && (ip[0] & 0xfe) == 0xec) { /* in al/eax, dx */
		port_io(uc, false, ip[0] == 0xec ? 1 : 4);
		g[REG_RIP] += 1;
		goto out;
	}
	if (sig == SIGSEGV && (ip[0] & 0xfe) == 0xee) { /* out dx, al/eax */
		port_io(uc, true, ip[0] == 0xee ? 1 : 4);
		g[REG_RIP] += 1;
		goto out;
	}
	if (sig == SIGSEGV && addr >= MMIO_BASE && addr < MMIO_BASE + 0x1000) {
		if ((ip[len] & 0xf0) == 0x40)
			rex = ip[len++];
		op = ip[len++];
		modrm = ip[len++];
		mod = modrm >> 6;
		rm = modrm & 7;
		reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
		if (mod == 3 || (op != 0x8b && op != 0x89 && op != 0x8a))
			goto bad;
		if (rm == 4)
			len++; /* SIB */
		if (mod == 1)
			len += 1;
		else if (mod == 2 || (mod == 0 && rm == 5))
			len += 4;
		if (op == 0x89)
			mmio_write(addr - MMIO_BASE, (uint32_t)g[reg_map[reg]]);
		else if (op == 0x8b)
			g[reg_map[reg]] = mmio_read(addr - MMIO_BASE);
		else
			g[reg_map[reg]] =
			    (g[reg_map[reg]] & ~0xffULL) |
			    (mmio_read((addr - MMIO_BASE) & ~3ULL) >> (8 * (addr & 3)) & 0xff);
		g[REG_RIP] += len;
		goto out;
	}
bad:
	fprintf(stderr, "hostrun: guest crash: signal %d at RIP 0x%llx, address 0x%llx\n", sig,
		(unsigned long long)g[REG_RIP], (unsigned long long)addr);
	_exit(70);
out:
	unlock_dev();
}

/* ---- loading and starting ------------------------------------------------------ */

static uint64_t load_elf(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
	uint64_t end = 0;
	uint8_t *f;
	int i;

	if (fd < 0 || fstat(fd, &st))
		die("cannot open the guest ELF");
	f = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f == MAP_FAILED)
		die("cannot map the guest ELF");
	eh = (Elf64_Ehdr *)f;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_machine != EM_X86_64)
		die("not an x86-64 ELF");
	for (i = 0; i < eh->e_phnum; i++) {
		ph = (Elf64_Phdr *)(f + eh->e_phoff + i * eh->e_phentsize);
		if (ph->p_type != PT_LOAD)
			continue;
		if (!gpa_ok(ph->p_paddr, ph->p_memsz))
			die("segment outside RAM");
		memcpy((void *)ph->p_paddr, f + ph->p_offset, ph->p_filesz);
		if (ph->p_paddr + ph->p_memsz > end)
			end = ph->p_paddr + ph->p_memsz;
	}
	close(fd);
	return (end + 4095) & ~4095ULL;
}

static void build_fdt(const char *workload, const char *args, int ncpu, uint64_t free_start)
{
	void *fdt = (void *)FDT_GPA;
	fdt32_t fm[4] = { cpu_to_fdt32(free_start >> 32), cpu_to_fdt32((uint32_t)free_start),
			  cpu_to_fdt32((mem_size - free_start) >> 32),
			  cpu_to_fdt32((uint32_t)(mem_size - free_start)) };
	fdt32_t memreg[4] = { 0, 0, cpu_to_fdt32(mem_size >> 32),
			      cpu_to_fdt32((uint32_t)mem_size) };
	fdt32_t uartreg[4] = { 0, cpu_to_fdt32(0x3f8), 0, cpu_to_fdt32(8) };
	fdt32_t vreg[4] = { 0, cpu_to_fdt32((uint32_t)MMIO_BASE), 0, cpu_to_fdt32(0x1000) };
	char name[32];
	int i, r = 0;

	r |= fdt_create(fdt, 0x10000);
	r |= fdt_finish_reservemap(fdt);
	r |= fdt_begin_node(fdt, "");
	r |= fdt_property_u32(fdt, "#address-cells", 2);
	r |= fdt_property_u32(fdt, "#size-cells", 2);
	r |= fdt_property_string(fdt, "compatible", "forkvm,test");
	r |= fdt_begin_node(fdt, "chosen");
	r |= fdt_property_string(fdt, "forkvm,workload", workload);
	r |= fdt_property_string(fdt, "forkvm,args", args);
	r |= fdt_property(fdt, "forkvm,free-memory", fm, sizeof(fm));
	r |= fdt_property_string(fdt, "stdout-path", "/uart@3f8");
	r |= fdt_end_node(fdt);
	r |= fdt_begin_node(fdt, "memory@0");
	r |= fdt_property_string(fdt, "device_type", "memory");
	r |= fdt_property(fdt, "reg", memreg, sizeof(memreg));
	r |= fdt_end_node(fdt);
	r |= fdt_begin_node(fdt, "cpus");
	r |= fdt_property_u32(fdt, "#address-cells", 1);
	r |= fdt_property_u32(fdt, "#size-cells", 0);
	for (i = 0; i < ncpu; i++) {
		snprintf(name, sizeof(name), "cpu@%d", i);
		r |= fdt_begin_node(fdt, name);
		r |= fdt_property_string(fdt, "device_type", "cpu");
		r |= fdt_property_u32(fdt, "reg", i);
		r |= fdt_end_node(fdt);
	}
	r |= fdt_end_node(fdt);
	r |= fdt_begin_node(fdt, "uart@3f8");
	r |= fdt_property_string(fdt, "compatible", "ns16550a");
	r |= fdt_property(fdt, "reg", uartreg, sizeof(uartreg));
	r |= fdt_property_u32(fdt, "interrupts", 4);
	r |= fdt_end_node(fdt);
	r |= fdt_begin_node(fdt, "virtio_mmio@d0000000");
	r |= fdt_property_string(fdt, "compatible", "virtio,mmio");
	r |= fdt_property(fdt, "reg", vreg, sizeof(vreg));
	r |= fdt_property_u32(fdt, "interrupts", 5);
	r |= fdt_end_node(fdt);
	r |= fdt_end_node(fdt);
	r |= fdt_finish(fdt);
	if (r)
		die("building the device tree failed");
}

static uint64_t entry_point;

static void *vcpu_thread(void *arg)
{
	uint64_t index = (uint64_t)(uintptr_t)arg;
	stack_t ss = { .ss_sp = malloc(65536), .ss_size = 65536 };

	if (!ss.ss_sp || sigaltstack(&ss, NULL))
		die("sigaltstack");
	/* The boot protocol's entry state: RDI = FDT, RSI = index, RDX = ncpus, RSP = 0. */
	__asm__ volatile("mov %0, %%rdi\n\tmov %1, %%rsi\n\tmov %2, %%rdx\n\t"
			 "xor %%esp, %%esp\n\tjmp *%3"
			 :
			 : "r"(FDT_GPA), "r"(index), "r"((uint64_t)ncpus), "r"(entry_point)
			 : "rdi", "rsi", "rdx", "memory");
	return NULL;
}

int main(int argc, char **argv)
{
	const char *args = "", *disk_file = NULL;
	int start_cpus = -1;
	uint64_t disk_seed = DISK_SEED_READ, free_start, o;
	struct sigaction sa = { 0 };
	pthread_t t;
	void *m;
	int i;

	if (argc < 3)
		die("usage: hostrun ELF WORKLOAD [--args S] [--cpus N] [--mem MiB] [--disk-mib N] "
		    "[--disk-seed S] [--check-seed S] [--disk FILE] [--start-cpus N] "
		    "[--disk-latency MS] [--dma-bug wrongway|overrun]");
	for (i = 3; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--args"))
			args = argv[i + 1];
		else if (!strcmp(argv[i], "--cpus"))
			ncpus = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--start-cpus"))
			start_cpus = atoi(argv[i + 1]); /* fewer than --cpus: a VMM bug */
		else if (!strcmp(argv[i], "--mem"))
			mem_size = strtoull(argv[i + 1], NULL, 0) << 20;
		else if (!strcmp(argv[i], "--disk-mib"))
			disk_size = strtoull(argv[i + 1], NULL, 0) << 20;
		else if (!strcmp(argv[i], "--disk-seed"))
			disk_seed = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--disk"))
			disk_file = argv[i + 1];
		else if (!strcmp(argv[i], "--disk-latency"))
			latency_ns = strtoull(argv[i + 1], NULL, 0) * 1000000ULL;
		else if (!strcmp(argv[i], "--dma-bug")) {
			if (!strcmp(argv[i + 1], "wrongway"))
				bug_wrongway = true;
			else if (!strcmp(argv[i + 1], "overrun"))
				bug_overrun = true;
			else
				die("--dma-bug: 'wrongway' or 'overrun'");
		} else if (!strcmp(argv[i], "--check-seed")) {
			check_seed = strtoull(argv[i + 1], NULL, 0);
			do_check = true;
		} else
			die("unknown option");
	}
	m = mmap((void *)LOW_GPA, mem_size - LOW_GPA, PROT_READ | PROT_WRITE | PROT_EXEC,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (m != (void *)LOW_GPA)
		die("cannot map guest memory at 0x1000 (vm.mmap_min_addr?)");
	if (disk_file) {
		int fd = open(disk_file, O_RDWR);
		struct stat st;

		if (fd < 0 || fstat(fd, &st))
			die("cannot open the disk");
		disk_size = st.st_size;
		disk = mmap(NULL, disk_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		disk = malloc(disk_size);
		for (o = 0; disk && o < disk_size; o += 8)
			*(uint64_t *)(disk + o) = disk_word(o, disk_seed);
	}
	if (!disk || disk == MAP_FAILED)
		die("no disk memory");
	free_start = load_elf(argv[1]);
	build_fdt(argv[2], args, ncpus, free_start);
	{
		Elf64_Ehdr eh;
		int fd = open(argv[1], O_RDONLY);

		if (fd < 0 || read(fd, &eh, sizeof(eh)) != sizeof(eh))
			die("cannot read the ELF header");
		entry_point = eh.e_entry;
		close(fd);
	}
	family_next_id =
	    mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (family_next_id == MAP_FAILED)
		die("no shared page for the fork ids");
	deadline_ns =
	    now_ns() +
	    (uint64_t)(getenv("HOSTRUN_TIMEOUT") ? atoi(getenv("HOSTRUN_TIMEOUT")) : 120) *
		1000000000ULL;
	start_service();
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	for (i = 0; i < (start_cpus >= 0 ? start_cpus : ncpus); i++)
		if (pthread_create(&t, NULL, vcpu_thread, (void *)(uintptr_t)i))
			die("pthread_create");
	/* The guest's exit or the service thread's timeout ends the process. */
	for (;;)
		pause();
}
