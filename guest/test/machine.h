/* SPDX-License-Identifier: MIT */
/*
 * What the VMM tells the guest about the machine, read from the flattened
 * device tree (docs/boot-protocol.md, "Device tree") with libfdt.  Pure C:
 * the host unit test runs it against FDTs built with libfdt.
 */
#ifndef FORKVM_GUEST_TEST_MACHINE_H
#define FORKVM_GUEST_TEST_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MACHINE_MAX_VIRTIO 8
#define MACHINE_NAME_MAX 32

struct machine_mmio {
	uint64_t base;
	uint64_t size;
	uint32_t irq;
};

struct machine {
	char workload[MACHINE_NAME_MAX];
	const char *args; /* points into the FDT; "" when absent */
	uint64_t mem_size;
	uint64_t free_start;
	uint64_t free_size;
	uint32_t ncpus;
	uint16_t uart_port;
	unsigned int nvirtio;
	struct machine_mmio virtio[MACHINE_MAX_VIRTIO];
};

/**
 * machine_from_fdt() - fill @m from the FDT at @fdt.
 * On failure, @err (of @errlen bytes) says what is wrong.
 * Return: 0 or a negative libfdt error (-FDT_ERR_*).
 */
int machine_from_fdt(const void *fdt, struct machine *m, char *err, size_t errlen);

/**
 * args_get_u64() - find "key=value" in @args (words separated by spaces or
 * commas); value in decimal or 0x-hex, with an optional K/M/G suffix.
 * *@val is left alone unless the key is found and well formed.
 * Return: 1 when found, 0 when absent, -1 when the value is malformed.
 */
int args_get_u64(const char *args, const char *key, uint64_t *val);

#endif /* FORKVM_GUEST_TEST_MACHINE_H */
