/* SPDX-License-Identifier: MIT */
/*
 * struct guest_mem over an mm guest space: what the VMM hands to devices.
 * Reads and writes go through space_read/space_write (the direct map, COW
 * broken on write); pins are space_pin/space_unpin, their iovecs point into
 * the direct map.
 */
#ifndef FORKVM_DEVICES_MM_GUEST_MEM_H
#define FORKVM_DEVICES_MM_GUEST_MEM_H

#include "devices/bus.h"

struct space;

/**
 * mm_guest_mem_init() - fill @gm to reach the guest memory of @space.
 * @gm stays valid as long as @space does; it allocates nothing itself (each
 * pin allocates its record, freed by unpin).  A clone gets its own guest_mem
 * over the child space.
 */
void mm_guest_mem_init(struct guest_mem *gm, struct space *space);

#endif /* FORKVM_DEVICES_MM_GUEST_MEM_H */
