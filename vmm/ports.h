/* SPDX-License-Identifier: MIT */
/*
 * The VMM's own ports of docs/boot-protocol.md (numbers: guest/abi.h): 0x501
 * exit, 0x502 exception report (written by the VMM's ring-0 stubs), 0x503
 * result, 0x504 guest-initiated fork.  They act on the whole machine (stop,
 * collect, clone), so the vCPU loop handles them itself rather than through
 * a device on the bus.
 */
#ifndef FORKVM_VMM_PORTS_H
#define FORKVM_VMM_PORTS_H

#include <stdbool.h>
#include <stdint.h>

#include "guest/abi.h"

struct vcpu;

/**
 * ports_out() - handle a guest write to one of the VMM ports.
 * Return: true if @port is a VMM port (handled), false to try the bus.
 */
bool ports_out(struct vcpu *v, uint16_t port, uint32_t value);

/**
 * ports_in() - a guest read of @size bytes from @port into @data.
 * Return: true if @port is a VMM port (handled), false to try the bus.
 */
bool ports_in(struct vcpu *v, uint16_t port, void *data, unsigned int size);

/** ports_exception_name() - "#PF" etc. for an exception vector, "" otherwise. */
const char *ports_exception_name(uint32_t vector);

#endif /* FORKVM_VMM_PORTS_H */
