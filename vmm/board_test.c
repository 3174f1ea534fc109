// SPDX-License-Identifier: MIT
/*
 * The test guest's board (docs/boot-protocol.md): its ELF, GDT/IDT/page
 * tables, the FDT that describes memory, CPUs, workload and disks, and the
 * 64-bit CPL-3 entry of every vCPU.
 */
#include "vmm/board.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfdt.h>

#include "mm/mm.h"
#include "vmm/boot.h"
#include "vmm/fdt.h"
#include "vmm/machine.h"

static int write_fdt(struct machine *m, const struct fdt_machine *desc, char *err, size_t errlen)
{
	void *buf = calloc(1, LAYOUT_FDT_MAX);
	int ret;

	if (!buf)
		return -ENOMEM;
	ret = fdt_build(desc, buf, LAYOUT_FDT_MAX);
	if (ret) {
		snprintf(err, errlen, "device tree: %s (--args too long?)", strerror(-ret));
		goto out;
	}
	/* fdt_finish() packed it: write only what it used. */
	ret = space_write(m->space, LAYOUT_FDT, buf, fdt_totalsize(buf));
	if (ret)
		snprintf(err, errlen, "device tree: writing guest memory: %s", strerror(-ret));
out:
	free(buf);
	return ret;
}

static int test_load(struct machine *m, const struct machine_config *cfg, char *err, size_t errlen)
{
	struct fdt_machine desc;
	unsigned int i;
	int ret;

	ret = elf_load_file(m->space, cfg->guest_elf, &m->image, err, errlen);
	if (ret)
		return ret;
	ret = boot_write_tables(m->space);
	if (ret) {
		snprintf(err, errlen, "boot tables: %s", strerror(-ret));
		return ret;
	}
	memset(&desc, 0, sizeof(desc));
	desc.mem_size = cfg->mem_size;
	desc.ncpus = cfg->ncpus;
	desc.workload = cfg->workload;
	desc.args = cfg->args;
	desc.free_start = m->image.end;
	desc.free_size = cfg->mem_size - m->image.end;
	for (i = 0; i < cfg->ndisks; i++) {
		desc.virtio[i].base = board_virtio_base(i);
		desc.virtio[i].size = LAYOUT_VIRTIO_STRIDE;
		desc.virtio[i].gsi = board_virtio_gsi(i);
	}
	desc.nvirtio = cfg->ndisks;
	return write_fdt(m, &desc, err, errlen);
}

static int test_setup_vcpu(struct machine *m, struct vcpu *v, char *err, size_t errlen)
{
	struct boot_entry entry = {
		.rip = m->image.entry,
		.fdt_gpa = LAYOUT_FDT,
		.ncpus = m->cpus.n,
	};

	return boot_setup_vcpu(v, &entry, err, errlen);
}

/* What any vCPU of the test guest must look like whenever it is paused. */
static int test_check_state(const struct vcpu_state *st, char *err, size_t errlen)
{
	if (st->sregs.cs.selector != SEL_UCODE && st->sregs.cs.selector != SEL_KCODE) {
		snprintf(err, errlen, "vCPU %u paused with CS 0x%x", st->index,
			 st->sregs.cs.selector);
		return -EPROTO;
	}
	if (!(st->sregs.efer & (1u << 10)) || st->sregs.cr3 != LAYOUT_PML4) {
		snprintf(err, errlen, "vCPU %u paused outside long mode (EFER 0x%llx CR3 0x%llx)",
			 st->index, (unsigned long long)st->sregs.efer,
			 (unsigned long long)st->sregs.cr3);
		return -EPROTO;
	}
	if (st->nmsrs == 0 || st->xsave_size < 4096) {
		snprintf(err, errlen, "vCPU %u: no MSRs or XSAVE area saved", st->index);
		return -EPROTO;
	}
	return 0;
}

const struct board_ops board_test_ops = {
	.name = "test",
	.mem_max = LAYOUT_MEM_MAX,
	.load = test_load,
	.setup_vcpu = test_setup_vcpu,
	.check_state = test_check_state,
};
