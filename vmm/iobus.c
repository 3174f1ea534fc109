// SPDX-License-Identifier: MIT
/* Dispatch of port and MMIO accesses to device regions, by address. */
#include "vmm/iobus.h"

#include <errno.h>
#include <string.h>

void iobus_init(struct iobus *bus)
{
	memset(bus, 0, sizeof(*bus));
}

static bool overlaps(const struct bus_region *a, const struct bus_region *b)
{
	/* Both regions were checked not to wrap, so end = base + len - 1 is exact. */
	return a->base <= b->base + b->len - 1 && b->base <= a->base + a->len - 1;
}

int iobus_add(struct iobus *bus, const struct bus_region *r)
{
	uint64_t last;
	unsigned int i, pos;

	if (!r->len || __builtin_add_overflow(r->base, r->len - 1, &last))
		return -EINVAL;
	if (!r->read && !r->write)
		return -EINVAL;
	if (bus->nregions == IOBUS_MAX_REGIONS)
		return -ENOSPC;

	pos = bus->nregions;
	for (i = 0; i < bus->nregions; i++) {
		if (overlaps(&bus->regions[i], r))
			return -EEXIST;
		if (pos == bus->nregions && r->base < bus->regions[i].base)
			pos = i;
	}
	memmove(&bus->regions[pos + 1], &bus->regions[pos],
		(bus->nregions - pos) * sizeof(bus->regions[0]));
	bus->regions[pos] = *r;
	bus->nregions++;
	return 0;
}

const struct bus_region *iobus_find(const struct iobus *bus, uint64_t addr)
{
	unsigned int lo = 0, hi = bus->nregions;

	/* Binary search for the last region with base <= addr. */
	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;

		if (bus->regions[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	if (addr - bus->regions[lo - 1].base >= bus->regions[lo - 1].len)
		return NULL;
	return &bus->regions[lo - 1];
}

bool iobus_read(const struct iobus *bus, uint64_t addr, void *data, unsigned int len)
{
	const struct bus_region *r = iobus_find(bus, addr);

	if (!r || !r->read) {
		memset(data, 0xff, len);
		return false;
	}
	r->read(r->opaque, addr - r->base, data, len);
	return true;
}

bool iobus_write(const struct iobus *bus, uint64_t addr, const void *data, unsigned int len)
{
	const struct bus_region *r = iobus_find(bus, addr);

	if (!r || !r->write)
		return false;
	r->write(r->opaque, addr - r->base, data, len);
	return true;
}
