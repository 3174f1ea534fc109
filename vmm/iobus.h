/* SPDX-License-Identifier: MIT */
/*
 * An address space of device regions (the I/O-port space or the MMIO space):
 * a sorted list of struct bus_region, dispatch by address.
 *
 * Regions are added before the vCPUs start and never change while they run,
 * so dispatch takes no lock; each device serializes its own state.
 */
#ifndef FORKVM_VMM_IOBUS_H
#define FORKVM_VMM_IOBUS_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/bus.h"

#define IOBUS_MAX_REGIONS 64

struct iobus {
	unsigned int nregions;
	struct bus_region regions[IOBUS_MAX_REGIONS]; /* sorted by base, disjoint */
};

void iobus_init(struct iobus *bus);

/**
 * iobus_add() - add @r.  Return: 0, -EINVAL (empty or wrapping region, no
 * handlers), -EEXIST (overlaps a region), -ENOSPC (full).
 */
int iobus_add(struct iobus *bus, const struct bus_region *r) __attribute__((warn_unused_result));

/** iobus_find() - the region containing @addr, or NULL. */
const struct bus_region *iobus_find(const struct iobus *bus, uint64_t addr);

/**
 * iobus_read() / iobus_write() - dispatch one guest access of @len bytes at
 * @addr.  An access nobody claims reads as all ones and writes are dropped,
 * as on a PC.  Return: true when a region handled it.
 */
bool iobus_read(const struct iobus *bus, uint64_t addr, void *data, unsigned int len);
bool iobus_write(const struct iobus *bus, uint64_t addr, const void *data, unsigned int len);

#endif /* FORKVM_VMM_IOBUS_H */
