// SPDX-License-Identifier: MIT
/* One vCPU: creation (CPUID, MSR list) and the run loop with its exits. */
#include "vmm/vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/cpus.h"
#include "vmm/ports.h"
#include "vmm/vm.h"

#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif

/* The MSRs a paused vCPU's state must carry, when this KVM has them. */
static const uint32_t wanted_msrs[] = {
	0xc0000080, /* EFER */
	0xc0000081, /* STAR */
	0xc0000082, /* LSTAR */
	0xc0000083, /* CSTAR */
	0xc0000084, /* SFMASK */
	0xc0000100, /* FS_BASE */
	0xc0000101, /* GS_BASE */
	0xc0000102, /* KERNEL_GS_BASE */
	0xc0000103, /* TSC_AUX */
	0x00000010, /* TSC */
	0x0000003b, /* TSC_ADJUST */
	0x00000174, /* SYSENTER_CS */
	0x00000175, /* SYSENTER_ESP */
	0x00000176, /* SYSENTER_EIP */
	0x00000277, /* PAT */
	0x0000001b, /* APIC_BASE */
	0x000001a0, /* MISC_ENABLE */
	0x000002ff, /* MTRR default type */
	0x000006e0, /* TSC_DEADLINE */
	/* KVM's paravirtual MSRs (Documentation/virt/kvm/x86/msr.rst): a Linux
	 * guest's kvmclock, steal time, PV EOI and async PF areas.  Without them
	 * a clone's KVM never updates the guest's pvclock page again.  The
	 * async-PF vector before the enable that uses it. */
	0x4b564d00, /* KVM_WALL_CLOCK_NEW */
	0x4b564d01, /* KVM_SYSTEM_TIME_NEW */
	0x4b564d03, /* KVM_STEAL_TIME */
	0x4b564d04, /* KVM_PV_EOI_EN */
	0x4b564d06, /* KVM_ASYNC_PF_INT */
	0x4b564d02, /* KVM_ASYNC_PF_EN */
};

static bool msr_readable(int fd, uint32_t index)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} req;

	memset(&req, 0, sizeof(req));
	req.hdr.nmsrs = 1;
	req.e.index = index;
	return ioctl(fd, KVM_GET_MSRS, &req) == 1;
}

/* Keep the wanted MSRs that this KVM lists and that read back. */
static void probe_msrs(struct vcpu *v)
{
	struct kvm_msr_list *list;
	unsigned int n = 512, i, j;

	list = calloc(1, sizeof(*list) + n * sizeof(list->indices[0]));
	if (!list)
		return;
	list->nmsrs = n;
	if (ioctl(v->vm->kvm->fd, KVM_GET_MSR_INDEX_LIST, list) < 0)
		list->nmsrs = 0;

	for (i = 0; i < sizeof(wanted_msrs) / sizeof(wanted_msrs[0]); i++) {
		bool listed = false;

		for (j = 0; j < list->nmsrs; j++)
			listed |= list->indices[j] == wanted_msrs[i];
		/* EFER, FS/GS base and APIC_BASE are not always listed but always there. */
		if (!listed && wanted_msrs[i] != 0xc0000080 && wanted_msrs[i] != 0x1b &&
		    wanted_msrs[i] != 0xc0000100 && wanted_msrs[i] != 0xc0000101 &&
		    wanted_msrs[i] != 0x1a0)
			continue;
		if (v->nmsrs < VCPU_STATE_MAX_MSRS && msr_readable(v->fd, wanted_msrs[i]))
			v->msr_index[v->nmsrs++] = wanted_msrs[i];
	}
	free(list);
}

static int set_cpuid(struct vcpu *v, const struct kvm_cpuid2 *supported)
{
	size_t size = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *cpuid = malloc(size);
	unsigned int i;
	int ret = 0;

	if (!cpuid)
		return -ENOMEM;
	memcpy(cpuid, supported, size);
	for (i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		switch (e->function) {
		case 1:
			/* Initial APIC id in EBX[31:24]. */
			e->ebx = (e->ebx & 0x00ffffffu) | (v->index << 24);
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC id of this vCPU in every topology sub-leaf. */
			e->edx = v->index;
			break;
		}
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0)
		ret = -errno;
	free(cpuid);
	return ret;
}

int vcpu_create(struct vm *vm, struct cpus *cpus, unsigned int index,
		const struct kvm_cpuid2 *cpuid, struct vcpu *v, char *err, size_t errlen)
{
	int ret, n;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->cpus = cpus;
	v->index = index;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", index, strerror(errno));
		return ret;
	}
	v->run_size = vm->kvm->run_size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		ret = -errno;
		v->run = NULL;
		snprintf(err, errlen, "mmap of vCPU %u's kvm_run: %s", index, strerror(errno));
		goto err_close;
	}
	ret = set_cpuid(v, cpuid);
	if (ret) {
		snprintf(err, errlen, "KVM_SET_CPUID2 on vCPU %u: %s", index, strerror(-ret));
		goto err_unmap;
	}
	v->xsave_size = sizeof(struct kvm_xsave);
	if (vm->kvm->has_xsave2) {
		n = kvm_check_cap(vm->fd, KVM_CAP_XSAVE2);
		if (n > (int)v->xsave_size)
			v->xsave_size = (uint32_t)n;
	}
	if (v->xsave_size > VCPU_STATE_XSAVE_MAX) {
		snprintf(err, errlen, "XSAVE area of %u bytes exceeds forkvm's %u", v->xsave_size,
			 VCPU_STATE_XSAVE_MAX);
		ret = -E2BIG;
		goto err_unmap;
	}
	probe_msrs(v);
	return 0;

err_unmap:
	munmap(v->run, v->run_size);
	v->run = NULL;
err_close:
	close(v->fd);
	v->fd = -1;
	return ret;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	v->run = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}

void vcpu_describe(struct vcpu *v, char *buf, size_t len)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(buf, len, "(registers unreadable: %s)", strerror(errno));
		return;
	}
	snprintf(
	    buf, len,
	    "RIP 0x%llx RSP 0x%llx CS 0x%x CR0 0x%llx CR2 0x%llx CR3 0x%llx CR4 0x%llx EFER 0x%llx",
	    (unsigned long long)regs.rip, (unsigned long long)regs.rsp, sregs.cs.selector,
	    (unsigned long long)sregs.cr0, (unsigned long long)sregs.cr2,
	    (unsigned long long)sregs.cr3, (unsigned long long)sregs.cr4,
	    (unsigned long long)sregs.efer);
}

/* A guest-side failure: print what and where, stop the machine non-zero. */
static void fail(struct vcpu *v, int status, const char *what)
{
	char regs[256], msg[640];

	vcpu_describe(v, regs, sizeof(regs));
	snprintf(msg, sizeof(msg), "vCPU %u: %s; %s", v->index, what, regs);
	cpus_stop(v->cpus, status, msg);
}

static uint32_t load_le(const uint8_t *p, unsigned int size)
{
	uint32_t val = 0;

	memcpy(&val, p, size > 4 ? 4 : size);
	return val;
}

/*
 * The data of a port I/O exit: size, count and data_offset come from the
 * kvm_run page, and count follows the guest's rep prefix.  KVM keeps them
 * inside the page; check anyway before the VMM reads or writes there.
 */
static bool io_data_ok(const struct vcpu *v)
{
	const struct kvm_run *run = v->run;
	uint64_t end;

	if (run->io.size != 1 && run->io.size != 2 && run->io.size != 4)
		return false;
	/* size * count < 2^35: only the sum can overflow. */
	if (__builtin_add_overflow((uint64_t)run->io.size * run->io.count, run->io.data_offset,
				   &end))
		return false;
	return run->io.data_offset >= sizeof(*run) && end <= v->run_size;
}

/* Return: true to keep running. */
static bool handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *p = (uint8_t *)run + run->io.data_offset;
	char what[128];
	unsigned int i;

	if (!io_data_ok(v)) {
		snprintf(what, sizeof(what),
			 "malformed port I/O exit (port 0x%x, size %u, count %u, data offset %llu)",
			 run->io.port, run->io.size, run->io.count,
			 (unsigned long long)run->io.data_offset);
		fail(v, CPUS_STATUS_HOST_ERROR, what);
		return false;
	}
	/* count > 1 for rep ins/outs; KVM packs the elements back to back. */
	for (i = 0; i < run->io.count; i++, p += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			if (!ports_out(v, run->io.port, load_le(p, run->io.size)))
				iobus_write(&v->vm->pio, run->io.port, p, run->io.size);
		} else if (!ports_in(v, run->io.port, p, run->io.size)) {
			iobus_read(&v->vm->pio, run->io.port, p, run->io.size);
		}
	}
	return true;
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	unsigned int len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		len = sizeof(run->mmio.data);
	if (run->mmio.is_write)
		iobus_write(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
	else
		iobus_read(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, len);
}

/* Return: true to keep running. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[256];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		if (!handle_io(v))
			return false;
		v->io_pending = true;
		return true;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		v->io_pending = true;
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_HLT:
		fail(v, CPUS_STATUS_GUEST_CRASH, "halted with no way to wake (KVM_EXIT_HLT)");
		return false;
	case KVM_EXIT_SHUTDOWN:
		fail(v, CPUS_STATUS_GUEST_CRASH, "triple fault (KVM_EXIT_SHUTDOWN)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(
		    what, sizeof(what),
		    "KVM could not enter the guest (KVM_EXIT_FAIL_ENTRY, reason 0x%llx, cpu %u)",
		    (unsigned long long)run->fail_entry.hardware_entry_failure_reason,
		    run->fail_entry.cpu);
		fail(v, CPUS_STATUS_GUEST_CRASH, what);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what),
			 "KVM internal error (KVM_EXIT_INTERNAL_ERROR, suberror %u%s, data 0x%llx "
			 "0x%llx)",
			 run->internal.suberror,
			 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? " emulation" : "",
			 run->internal.ndata > 0 ? (unsigned long long)run->internal.data[0] : 0ULL,
			 run->internal.ndata > 1 ? (unsigned long long)run->internal.data[1]
						 : 0ULL);
		fail(v, CPUS_STATUS_GUEST_CRASH, what);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		snprintf(what, sizeof(what), "system event %u (KVM_EXIT_SYSTEM_EVENT)",
			 run->system_event.type);
		fail(v, CPUS_STATUS_GUEST_CRASH, what);
		return false;
	case KVM_EXIT_MEMORY_FAULT:
		fail(v, CPUS_STATUS_GUEST_CRASH, "memory fault (KVM_EXIT_MEMORY_FAULT)");
		return false;
	default:
		snprintf(what, sizeof(what), "unexpected exit reason %u", run->exit_reason);
		fail(v, CPUS_STATUS_GUEST_CRASH, what);
		return false;
	}
}

/* A pause, a stop or a fork was asked: read without c->lock on every exit. */
static bool requested(struct cpus *c, struct vcpu *v)
{
	/* seq_cst: ordered after the immediate_exit clear in vcpu_thread(). */
	return __atomic_load_n(&c->pause_req, __ATOMIC_SEQ_CST) ||
	       __atomic_load_n(&c->stop, __ATOMIC_SEQ_CST) ||
	       __atomic_load_n(&v->held, __ATOMIC_SEQ_CST);
}

/* Must park at the next instruction boundary.  Context: c->lock held. */
static bool should_park(const struct cpus *c, const struct vcpu *v)
{
	/* A pause of the whole machine. */
	if (c->pause_req)
		return true;
	/* This vCPU asked for a fork that is not over yet. */
	return v->held;
}

/*
 * Park under c->lock until resumed or stopped.  The thread's pending I/O was
 * completed first, so the vCPU sits at an instruction boundary.
 */
static void park(struct cpus *c, struct vcpu *v)
{
	c->nparked++;
	pthread_cond_broadcast(&c->cond);
	while (should_park(c, v) && !c->stop)
		pthread_cond_wait(&c->cond, &c->lock);
	c->nparked--;
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct cpus *c = v->cpus;
	sigset_t kick;
	char what[128];

	sigemptyset(&kick);
	sigaddset(&kick, CPUS_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);

	for (;;) {
		int ret;

		/*
		 * A kick already taken is cleared before the requests are
		 * read, both seq_cst (pairs with cpus_pause()/cpus_stop()
		 * raising the request before kick_all()): either this thread
		 * sees the request, or the kicker's immediate_exit = 1 lands
		 * after the clear and KVM_RUN returns at once.  The relaxed
		 * read only saves the store: a kick it misses is still
		 * followed by its signal.  No request, no lock: the common
		 * exit goes straight back into the guest.
		 */
		if (__atomic_load_n(&v->run->immediate_exit, __ATOMIC_RELAXED))
			__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (requested(c, v)) {
			pthread_mutex_lock(&c->lock);
			if (c->stop) {
				pthread_mutex_unlock(&c->lock);
				break;
			}
			if (should_park(c, v) && !v->io_pending) {
				park(c, v);
				pthread_mutex_unlock(&c->lock);
				continue;
			}
			/*
			 * With a pause or fork pending, enter only to complete
			 * the last I/O exit (the fork's OUT itself): KVM
			 * finishes it, then sees immediate_exit and returns
			 * -EINTR without running a guest instruction.
			 */
			if (should_park(c, v))
				__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
			pthread_mutex_unlock(&c->lock);
		}

		ret = ioctl(v->fd, KVM_RUN, 0);
		v->io_pending = false;
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			snprintf(what, sizeof(what), "vCPU %u: KVM_RUN: %s", v->index,
				 strerror(errno));
			cpus_stop(c, CPUS_STATUS_HOST_ERROR, what);
			break;
		}
		if (!handle_exit(v))
			break;
	}

	pthread_mutex_lock(&c->lock);
	v->thread_live = false;
	c->nlive--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}
