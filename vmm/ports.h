/* SPDX-License-Identifier: MIT */
/*
 * The VMM's own ports of docs/boot-protocol.md: 0x501 exit, 0x502 exception
 * report (written by the VMM's ring-0 stubs), 0x503 result.  They act on the
 * whole machine (stop, collect), so the vCPU loop handles them itself rather
 * than through a device on the bus.
 */
#ifndef FORKVM_VMM_PORTS_H
#define FORKVM_VMM_PORTS_H

#include <stdbool.h>
#include <stdint.h>

#define PORT_EXIT 0x501
#define PORT_EXCEPTION 0x502
#define PORT_RESULT 0x503

struct vcpu;

/**
 * ports_out() - handle a guest write to one of the VMM ports.
 * Return: true if @port is a VMM port (handled), false to try the bus.
 */
bool ports_out(struct vcpu *v, uint16_t port, uint32_t value);

/** ports_exception_name() - "#PF" etc. for an exception vector, "" otherwise. */
const char *ports_exception_name(uint32_t vector);

#endif /* FORKVM_VMM_PORTS_H */
