// SPDX-License-Identifier: MIT
/* The Linux board: kernel, initrd, tables into guest memory; the BSP's entry. */
#include "vmm/linux/board.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/serial.h"
#include "mm/mm.h"
#include "vmm/board.h"
#include "vmm/layout.h"
#include "vmm/linux/acpi.h"
#include "vmm/linux/linux.h"
#include "vmm/machine.h"
#include "vmm/cpus.h"
#include "vmm/vcpu.h"

#define CR0_PE (1ULL << 0)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

/* A file mapped read-only; @size 0 maps nothing. */
struct mapped {
	void *p;
	size_t size;
};

static int map_file(const char *opt, const char *path, uint64_t max, struct mapped *f, char *err,
		    size_t errlen)
{
	struct stat st;
	int fd, ret;

	f->p = NULL;
	f->size = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s %s: %s", opt, path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s %s: %s", opt, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a regular file", opt, path);
		ret = -EINVAL;
		goto out;
	}
	/* The file's size is checked here; its contents by the plan. */
	if ((uint64_t)st.st_size > max) {
		snprintf(err, errlen, "%s %s: %llu MiB, more than the %llu MiB forkvm accepts", opt,
			 path, (unsigned long long)st.st_size >> 20, (unsigned long long)max >> 20);
		ret = -E2BIG;
		goto out;
	}
	ret = 0;
	f->size = (size_t)st.st_size;
	if (!f->size)
		goto out;
	f->p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f->p == MAP_FAILED) {
		ret = -errno;
		f->p = NULL;
		f->size = 0;
		snprintf(err, errlen, "%s %s: mmap: %s", opt, path, strerror(errno));
	}
out:
	close(fd);
	return ret;
}

static void unmap_file(struct mapped *f)
{
	if (f->p)
		munmap(f->p, f->size);
	f->p = NULL;
}

/* The virtio-mmio windows of the machine's disks, as machine.c placed them. */
static void acpi_config_of(const struct machine_config *cfg, struct acpi_config *ac)
{
	unsigned int i;

	memset(ac, 0, sizeof(*ac));
	ac->ncpus = cfg->ncpus;
	ac->com1_port = 0x3f8;
	ac->com1_irq = SERIAL_COM1_GSI;
	for (i = 0; i < cfg->ndisks && i < ACPI_MAX_MMIO; i++) {
		ac->dev[i].base = (uint32_t)board_virtio_base(i);
		ac->dev[i].size = (uint32_t)LAYOUT_VIRTIO_STRIDE;
		ac->dev[i].gsi = board_virtio_gsi(i);
	}
	ac->ndevs = i;
	ac->vmgenid_addr = LINUX_VMGENID;
	ac->ged_gsi = LINUX_GED_GSI;
}

/* A fresh VM generation ID into @m's memory: 16 bytes from the host's RNG. */
static int new_generation(struct machine *m, char *err, size_t errlen)
{
	uint8_t id[LINUX_VMGENID_SIZE];
	ssize_t n = getrandom(id, sizeof(id), 0);
	int ret;

	if (n != (ssize_t)sizeof(id)) {
		ret = n < 0 ? -errno : -EIO;
		snprintf(err, errlen, "VM generation ID: getrandom: %s", strerror(-ret));
		return ret;
	}
	ret = space_write(m->space, LINUX_VMGENID, id, sizeof(id));
	if (ret)
		snprintf(err, errlen, "VM generation ID at 0x%llx: %s",
			 (unsigned long long)LINUX_VMGENID, strerror(-ret));
	return ret;
}

/*
 * A clone is a new VM generation: a new ID, then an edge on the Generic
 * Event Device's pin.  Linux runs the GED's _EVT (Notify VGEN), its vmgenid
 * driver reads the new ID and reseeds the RNG ("crng reseeded due to
 * virtual machine fork").  The irqchip is the parent's, restored: the pin is
 * routed and unmasked if the guest's GED driver bound; the interrupt waits
 * in the LAPIC until the vCPU runs.
 */
static int linux_board_cloned(struct machine *c, char *err, size_t errlen)
{
	struct kvm_irq_level irq = { .irq = LINUX_GED_GSI, .level = 1 };
	int ret = new_generation(c, err, errlen);

	if (ret)
		return ret;
	if (ioctl(c->vm.fd, KVM_IRQ_LINE, &irq) < 0)
		goto fail;
	irq.level = 0;
	if (ioctl(c->vm.fd, KVM_IRQ_LINE, &irq) < 0)
		goto fail;
	return 0;
fail:
	ret = -errno;
	snprintf(err, errlen, "VM generation ID: KVM_IRQ_LINE %u: %s", LINUX_GED_GSI,
		 strerror(errno));
	return ret;
}

static int write_mem(struct machine *m, uint64_t gpa, const void *buf, size_t len, const char *what,
		     char *err, size_t errlen)
{
	int ret = space_write(m->space, gpa, buf, len);

	if (ret)
		snprintf(err, errlen, "Linux board: writing the %s at 0x%llx: %s", what,
			 (unsigned long long)gpa, strerror(-ret));
	return ret;
}

int linux_board_load(struct machine *m, const struct machine_config *cfg,
		     const struct linux_boot *lb, char *err, size_t errlen)
{
	struct space_range ram[LINUX_MAX_RANGES];
	struct mapped kernel = { 0 }, initrd = { 0 };
	struct linux_plan_input in;
	struct acpi_config ac;
	struct linux_plan *plan;
	uint8_t *buf = NULL;
	long acpi_len;
	int ret;

	plan = malloc(sizeof(*plan));
	buf = calloc(1, LINUX_ACPI_MAX > LINUX_LOW_END ? LINUX_ACPI_MAX : LINUX_LOW_END);
	if (!plan || !buf) {
		ret = -ENOMEM;
		snprintf(err, errlen, "Linux board: out of memory");
		goto out;
	}
	ret = map_file("--kernel", lb->kernel, LINUX_MAX_IMAGE, &kernel, err, errlen);
	if (ret)
		goto out;
	if (lb->initrd) {
		ret = map_file("--initrd", lb->initrd, LINUX_MAX_INITRD, &initrd, err, errlen);
		if (ret)
			goto out;
	}

	acpi_config_of(cfg, &ac);
	acpi_len = acpi_build(&ac, LINUX_ACPI, buf, LINUX_ACPI_MAX);
	if (acpi_len < 0) {
		ret = (int)acpi_len;
		snprintf(err, errlen, "ACPI tables: %s", strerror(-ret));
		goto out;
	}
	ret = write_mem(m, LINUX_ACPI, buf, (size_t)acpi_len, "ACPI tables", err, errlen);
	if (ret)
		goto out;
	ret = new_generation(m, err, errlen);
	if (ret)
		goto out;

	memset(&in, 0, sizeof(in));
	in.image = kernel.p;
	in.image_size = kernel.size;
	in.initrd_size = initrd.size;
	in.cmdline = lb->cmdline ? lb->cmdline : LINUX_DEFAULT_CMDLINE;
	in.nram = linux_ram_ranges(cfg->mem_size, ram);
	in.ram = ram;
	in.acpi_rsdp = LINUX_ACPI;
	ret = linux_plan(&in, plan, err, errlen);
	if (ret) {
		/* The message names the kernel; say which file. */
		if (ret == -ENOEXEC) {
			char why[400];

			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen, "--kernel %s: %s", lb->kernel, why);
		}
		goto out;
	}

	linux_build_low(buf);
	/* Page 0 is left alone: Linux finds nothing of ours there. */
	ret = write_mem(m, LINUX_GDT, buf + LINUX_GDT, LINUX_LOW_END - LINUX_GDT, "page tables",
			err, errlen);
	if (ret)
		goto out;
	ret = write_mem(m, LINUX_ZERO_PAGE, plan->zero_page, BP_SIZE, "zero page", err, errlen);
	if (ret)
		goto out;
	ret = write_mem(m, LINUX_CMDLINE, in.cmdline, plan->cmdline_len + 1, "command line", err,
			errlen);
	if (ret)
		goto out;
	ret = write_mem(m, plan->kernel_gpa, (const uint8_t *)kernel.p + plan->bz.kernel_offset,
			plan->bz.kernel_size, "kernel", err, errlen);
	if (ret)
		goto out;
	if (plan->initrd_size) {
		ret = write_mem(m, plan->initrd_gpa, initrd.p, plan->initrd_size, "initrd", err,
				errlen);
		if (ret)
			goto out;
	}
	m->image.entry = plan->entry;
	m->image.end = plan->kernel_gpa + plan->bz.init_size;
out:
	unmap_file(&initrd);
	unmap_file(&kernel);
	free(buf);
	free(plan);
	return ret;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->l = code;
	s->db = !code;
	s->g = 1;
}

static int fail(char *err, size_t errlen, unsigned int index, const char *what)
{
	int ret = -errno;

	snprintf(err, errlen, "vCPU %u: %s: %s", index, what, strerror(errno));
	return ret ? ret : -EIO;
}

int linux_setup_vcpu(struct vcpu *v, uint64_t entry, char *err, size_t errlen)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0)
		return fail(err, errlen, v->index, "KVM_GET_SREGS");
	/* boot.rst, "64-bit Boot Protocol": long mode, paging, the boot selectors. */
	set_seg(&sregs.cs, LINUX_SEL_CS, 0xb, 1);
	set_seg(&sregs.ds, LINUX_SEL_DS, 0x3, 0);
	set_seg(&sregs.es, LINUX_SEL_DS, 0x3, 0);
	set_seg(&sregs.ss, LINUX_SEL_DS, 0x3, 0);
	set_seg(&sregs.fs, LINUX_SEL_DS, 0x3, 0);
	set_seg(&sregs.gs, LINUX_SEL_DS, 0x3, 0);
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = LINUX_TSS;
	sregs.tr.limit = 0x67;
	sregs.tr.selector = LINUX_SEL_TSS;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.type = 0x2;
	sregs.ldt.unusable = 1;
	sregs.gdt.base = LINUX_GDT;
	sregs.gdt.limit = LINUX_SEL_TSS + 16 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = CR0_PE | CR0_ET | CR0_NE | CR0_PG;
	sregs.cr3 = LINUX_PML4;
	sregs.cr4 = CR4_PAE;
	sregs.efer = EFER_LME | EFER_LMA;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		return fail(err, errlen, v->index, "KVM_SET_SREGS (Linux 64-bit entry)");

	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rsi = LINUX_ZERO_PAGE; /* boot_params */
	regs.rsp = LINUX_ZERO_PAGE - 16;
	regs.rflags = 0x2; /* interrupts off */
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return fail(err, errlen, v->index, "KVM_SET_REGS");
	return 0;
}

/*
 * KVM's supported CPUID lacks the "running on a hypervisor" bit (leaf 1
 * ECX[31]; QEMU adds it too).  Without it Linux never looks at KVM's leaves
 * 0x40000000+: no kvmclock, no PV EOI, and its TSC calibration against the
 * PIT fails.  Set it, with the per-vCPU APIC ids vcpu_create() set, before
 * the vCPU first runs.
 */
static int set_linux_cpuid(struct vcpu *v, char *err, size_t errlen)
{
	const struct kvm_cpuid2 *sup = v->cpus->cpuid;
	size_t size = sizeof(*sup) + sup->nent * sizeof(sup->entries[0]);
	struct kvm_cpuid2 *c = malloc(size);
	unsigned int i;
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, sup, size);
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ecx |= 1u << 31;
			e->ebx = (e->ebx & 0x00ffffffu) | (v->index << 24);
			break;
		case 0xb:
		case 0x1f:
			e->edx = v->index;
			break;
		}
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		ret = fail(err, errlen, v->index, "KVM_SET_CPUID2 (hypervisor bit)");
	free(c);
	return ret;
}

int linux_board_setup_vcpu(struct machine *m, struct vcpu *v, char *err, size_t errlen)
{
	int ret = set_linux_cpuid(v, err, errlen);

	/* APs stay in KVM's wait-for-SIPI state: Linux starts them itself. */
	if (ret || v->index)
		return ret;
	return linux_setup_vcpu(v, m->image.entry, err, errlen);
}

int linux_board_check_state(const struct vcpu_state *st, char *err, size_t errlen)
{
	/* An AP that Linux has not started yet (e.g. booted with nosmp). */
	if (st->index && (st->mp_state.mp_state == KVM_MP_STATE_UNINITIALIZED ||
			  st->mp_state.mp_state == KVM_MP_STATE_INIT_RECEIVED))
		return 0;
	if (!(st->sregs.efer & EFER_LMA) || !(st->sregs.cr0 & CR0_PG)) {
		snprintf(err, errlen, "vCPU %u paused outside long mode (EFER 0x%llx CR0 0x%llx)",
			 st->index, (unsigned long long)st->sregs.efer,
			 (unsigned long long)st->sregs.cr0);
		return -EPROTO;
	}
	if (st->nmsrs == 0) {
		snprintf(err, errlen, "vCPU %u: no MSRs saved", st->index);
		return -EPROTO;
	}
	return 0;
}

static int board_load(struct machine *m, const struct machine_config *cfg, char *err, size_t errlen)
{
	struct linux_boot lb = {
		.kernel = cfg->kernel,
		.initrd = cfg->initrd,
		.cmdline = cfg->cmdline,
	};

	return linux_board_load(m, cfg, &lb, err, errlen);
}

const struct board_ops board_linux_ops = {
	.name = "linux",
	.mem_max = LAYOUT_LINUX_MEM_MAX,
	.ram_ranges = linux_ram_ranges,
	.load = board_load,
	.setup_vcpu = linux_board_setup_vcpu,
	.check_state = linux_board_check_state,
	.cloned = linux_board_cloned,
};
