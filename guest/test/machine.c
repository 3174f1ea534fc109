// SPDX-License-Identifier: MIT
#include <stdlib.h>
#include <string.h>
#include <libfdt.h>

#include "guest/test/fmt.h"
#include "guest/test/machine.h"

/* Read a big-endian number of @cells 32-bit cells (1 or 2). */
static uint64_t read_cells(const fdt32_t *p, int cells)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < cells; i++)
		v = (v << 32) | fdt32_to_cpu(p[i]);
	return v;
}

/* The first (address, size) pair of @node's "reg", sized by its parent's cells. */
static int read_reg(const void *fdt, int node, uint64_t *addr, uint64_t *size)
{
	int parent = fdt_parent_offset(fdt, node);
	int ac, sc, len;
	const fdt32_t *reg;

	if (parent < 0)
		return parent;
	ac = fdt_address_cells(fdt, parent);
	sc = fdt_size_cells(fdt, parent);
	if (ac < 1 || ac > 2 || sc < 0 || sc > 2)
		return -FDT_ERR_BADNCELLS;
	reg = fdt_getprop(fdt, node, "reg", &len);
	if (!reg)
		return len;
	if (len < (ac + sc) * 4)
		return -FDT_ERR_BADVALUE;
	*addr = read_cells(reg, ac);
	*size = sc ? read_cells(reg + ac, sc) : 0;
	return 0;
}

static uint32_t read_u32_prop(const void *fdt, int node, const char *name, uint32_t dflt)
{
	const fdt32_t *p;
	int len;

	p = fdt_getprop(fdt, node, name, &len);
	if (!p || len < 4)
		return dflt;
	return fdt32_to_cpu(p[0]);
}

static int read_chosen(const void *fdt, struct machine *m, char *err, size_t errlen)
{
	const fdt32_t *fm;
	const char *s;
	int chosen, len;

	chosen = fdt_path_offset(fdt, "/chosen");
	if (chosen < 0) {
		fmt_snprintf(err, errlen, "no /chosen: %s", fdt_strerror(chosen));
		return chosen;
	}
	s = fdt_getprop(fdt, chosen, "forkvm,workload", &len);
	if (!s || len < 1 || strnlen(s, len) >= (size_t)len || len > MACHINE_NAME_MAX) {
		fmt_snprintf(err, errlen, "/chosen/forkvm,workload missing or not a short string");
		return -FDT_ERR_BADVALUE;
	}
	memcpy(m->workload, s, len);
	s = fdt_getprop(fdt, chosen, "forkvm,args", &len);
	m->args = s && len >= 1 && strnlen(s, len) < (size_t)len ? s : "";
	fm = fdt_getprop(fdt, chosen, "forkvm,free-memory", &len);
	if (!fm || len != 16) {
		fmt_snprintf(err, errlen, "/chosen/forkvm,free-memory missing or not 4 cells");
		return -FDT_ERR_BADVALUE;
	}
	m->free_start = read_cells(fm, 2);
	m->free_size = read_cells(fm + 2, 2);
	return 0;
}

static int count_cpus(const void *fdt, struct machine *m)
{
	int cpus, node;
	const char *type;

	cpus = fdt_path_offset(fdt, "/cpus");
	if (cpus < 0)
		return cpus;
	m->ncpus = 0;
	fdt_for_each_subnode(node, fdt, cpus)
	{
		type = fdt_getprop(fdt, node, "device_type", NULL);
		if (type && !strcmp(type, "cpu"))
			m->ncpus++;
	}
	return 0;
}

int machine_from_fdt(const void *fdt, struct machine *m, char *err, size_t errlen)
{
	uint64_t addr, size;
	int ret, node;

	memset(m, 0, sizeof(*m));
	m->args = "";
	m->uart_port = 0x3f8;
	ret = fdt_check_header(fdt);
	if (ret) {
		fmt_snprintf(err, errlen, "bad FDT header: %s", fdt_strerror(ret));
		return ret;
	}
	ret = read_chosen(fdt, m, err, errlen);
	if (ret)
		return ret;
	ret = count_cpus(fdt, m);
	if (ret || !m->ncpus) {
		fmt_snprintf(err, errlen, "no /cpus/cpu@N nodes");
		return ret ? ret : -FDT_ERR_NOTFOUND;
	}
	node = fdt_path_offset(fdt, "/memory@0");
	if (node >= 0 && !read_reg(fdt, node, &addr, &size))
		m->mem_size = addr + size;
	node = fdt_node_offset_by_compatible(fdt, -1, "ns16550a");
	if (node >= 0 && !read_reg(fdt, node, &addr, &size) && addr < 0x10000)
		m->uart_port = (uint16_t)addr;
	for (node = fdt_node_offset_by_compatible(fdt, -1, "virtio,mmio"); node >= 0;
	     node = fdt_node_offset_by_compatible(fdt, node, "virtio,mmio")) {
		if (m->nvirtio == MACHINE_MAX_VIRTIO)
			break;
		ret = read_reg(fdt, node, &addr, &size);
		if (ret) {
			fmt_snprintf(err, errlen, "virtio,mmio node without a usable reg: %s",
				     fdt_strerror(ret));
			return ret;
		}
		m->virtio[m->nvirtio].base = addr;
		m->virtio[m->nvirtio].size = size;
		m->virtio[m->nvirtio].irq = read_u32_prop(fdt, node, "interrupts", 0);
		m->nvirtio++;
	}
	return 0;
}

int args_get_u64(const char *args, const char *key, uint64_t *val)
{
	size_t klen = strlen(key);
	const char *p = args;
	char *end;
	uint64_t v;

	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			v = strtoul(p + klen + 1, &end, 0);
			if (end == p + klen + 1)
				return -1;
			switch (*end) {
			case 'K':
			case 'k':
				v <<= 10, end++;
				break;
			case 'M':
			case 'm':
				v <<= 20, end++;
				break;
			case 'G':
			case 'g':
				v <<= 30, end++;
				break;
			}
			if (*end && *end != ' ' && *end != ',')
				return -1;
			*val = v;
			return 1;
		}
		while (*p && *p != ' ' && *p != ',')
			p++;
	}
	return 0;
}
