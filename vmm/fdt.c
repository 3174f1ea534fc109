// SPDX-License-Identifier: MIT
/* Building the test guest's device tree with libfdt's sequential writer. */
#include "vmm/fdt.h"

#include <errno.h>
#include <libfdt.h>
#include <stdio.h>

#include "devices/serial.h"

/* Each step returns 0 or a negative FDT_ERR_*; stop at the first. */
#define TRY(x)                       \
	do {                         \
		int err_ = (x);      \
		if (err_ < 0)        \
			return err_; \
	} while (0)

static int prop_reg(void *fdt, uint64_t base, uint64_t size)
{
	fdt32_t cells[4] = {
		cpu_to_fdt32(base >> 32),
		cpu_to_fdt32((uint32_t)base),
		cpu_to_fdt32(size >> 32),
		cpu_to_fdt32((uint32_t)size),
	};

	return fdt_property(fdt, "reg", cells, sizeof(cells));
}

static int add_chosen(void *fdt, const struct fdt_machine *m)
{
	fdt32_t free_mem[4] = {
		cpu_to_fdt32(m->free_start >> 32),
		cpu_to_fdt32((uint32_t)m->free_start),
		cpu_to_fdt32(m->free_size >> 32),
		cpu_to_fdt32((uint32_t)m->free_size),
	};

	TRY(fdt_begin_node(fdt, "chosen"));
	TRY(fdt_property_string(fdt, "forkvm,workload", m->workload));
	TRY(fdt_property_string(fdt, "forkvm,args", m->args ? m->args : ""));
	TRY(fdt_property(fdt, "forkvm,free-memory", free_mem, sizeof(free_mem)));
	TRY(fdt_property_string(fdt, "stdout-path", "/uart@3f8"));
	return fdt_end_node(fdt);
}

static int add_cpus(void *fdt, unsigned int ncpus)
{
	char name[32];
	unsigned int i;

	TRY(fdt_begin_node(fdt, "cpus"));
	TRY(fdt_property_u32(fdt, "#address-cells", 1));
	TRY(fdt_property_u32(fdt, "#size-cells", 0));
	for (i = 0; i < ncpus; i++) {
		snprintf(name, sizeof(name), "cpu@%u", i);
		TRY(fdt_begin_node(fdt, name));
		TRY(fdt_property_string(fdt, "device_type", "cpu"));
		TRY(fdt_property_u32(fdt, "reg", i));
		TRY(fdt_end_node(fdt));
	}
	return fdt_end_node(fdt);
}

static int add_uart(void *fdt)
{
	TRY(fdt_begin_node(fdt, "uart@3f8"));
	TRY(fdt_property_string(fdt, "compatible", "ns16550a"));
	TRY(prop_reg(fdt, SERIAL_COM1_BASE, 8));
	TRY(fdt_property(fdt, "forkvm,io-port", NULL, 0));
	TRY(fdt_property_u32(fdt, "interrupts", SERIAL_COM1_GSI));
	TRY(fdt_property_u32(fdt, "clock-frequency", 1843200));
	return fdt_end_node(fdt);
}

static int add_virtio(void *fdt, const struct fdt_mmio_dev *d)
{
	char name[48];

	snprintf(name, sizeof(name), "virtio_mmio@%llx", (unsigned long long)d->base);
	TRY(fdt_begin_node(fdt, name));
	TRY(fdt_property_string(fdt, "compatible", "virtio,mmio"));
	TRY(prop_reg(fdt, d->base, d->size));
	TRY(fdt_property_u32(fdt, "interrupts", d->gsi));
	return fdt_end_node(fdt);
}

static int build(const struct fdt_machine *m, void *fdt, size_t size)
{
	unsigned int i;

	TRY(fdt_create(fdt, (int)size));
	TRY(fdt_finish_reservemap(fdt));
	TRY(fdt_begin_node(fdt, ""));
	TRY(fdt_property_u32(fdt, "#address-cells", 2));
	TRY(fdt_property_u32(fdt, "#size-cells", 2));
	TRY(fdt_property_string(fdt, "compatible", "forkvm,test"));
	TRY(add_chosen(fdt, m));

	TRY(fdt_begin_node(fdt, "memory@0"));
	TRY(fdt_property_string(fdt, "device_type", "memory"));
	TRY(prop_reg(fdt, 0, m->mem_size));
	TRY(fdt_end_node(fdt));

	TRY(add_cpus(fdt, m->ncpus));
	TRY(add_uart(fdt));
	for (i = 0; i < m->nvirtio; i++)
		TRY(add_virtio(fdt, &m->virtio[i]));
	TRY(fdt_end_node(fdt));
	return fdt_finish(fdt);
}

int fdt_build(const struct fdt_machine *m, void *buf, size_t size)
{
	int ret;

	if (!m->workload || m->nvirtio > LAYOUT_MAX_DISKS || size > LAYOUT_FDT_MAX)
		return -EINVAL;
	ret = build(m, buf, size);
	if (ret == -FDT_ERR_NOSPACE)
		return -ENOSPC;
	return ret < 0 ? -EINVAL : 0;
}
