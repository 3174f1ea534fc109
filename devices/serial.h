/* SPDX-License-Identifier: MIT */
/* 8250/16550 UART (COM1).  Output goes to a file descriptor. */
#ifndef FORKVM_DEVICES_SERIAL_H
#define FORKVM_DEVICES_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "devices/bus.h"

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_GSI 4

struct serial;

/**
 * serial_create() - a UART whose transmitted bytes are written to @out_fd.
 * @host: may be NULL (no interrupt); else its irqfd() gives the line for @gsi.
 * Return: 0 or -errno.
 */
int serial_create(int out_fd, const struct dev_host *host, unsigned int gsi, struct serial **out)
    __attribute__((warn_unused_result));
void serial_destroy(struct serial *s);
/** serial_region() - the port region (base 0x3f8, length 8) to put on the I/O bus. */
struct bus_region serial_region(struct serial *s);

/*
 * The UART's saved state (fixed-width fields, no pointers, no implicit
 * padding): what a clone's 8250 must keep of the parent's, since a Linux
 * driver does not expect its UART to forget its setup (divisor, LCR, IER,
 * MCR) under it.  A change of layout bumps SERIAL_STATE_VERSION.
 */
#define SERIAL_STATE_MAGIC 0x38323530u /* "8250" */
#define SERIAL_STATE_VERSION 1u

struct serial_state {
	uint32_t magic;
	uint32_t version;
	uint8_t ier, lcr, mcr, scr, fcr;
	uint8_t dll, dlm;
	uint8_t rbr; /* loopback: the byte in RBR */
	uint8_t thri_pending; /* 0 or 1: THR-empty interrupt owed */
	uint8_t rx_full; /* 0 or 1: loopback byte in RBR */
	uint8_t line; /* 0 or 1: the interrupt output as last computed */
	uint8_t reserved[5];
};

/** serial_save() - the registers into @out (zeroed first: equal states, equal bytes). */
void serial_save(struct serial *s, struct serial_state *out);

/**
 * serial_restore() - check @in like untrusted input (magic, version, bits
 * only where the registers have them, flags 0 or 1, reserved 0), then load
 * it.  The interrupt line takes the saved level without a new edge (the
 * edge, if any, was the parent's; its irqchip state travels with the VM).
 * The output fd and the irqfd stay this UART's.
 * Return: 0, or -EINVAL with @err (the UART unchanged).
 */
int serial_restore(struct serial *s, const struct serial_state *in, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/** serial_irq_count() - interrupts raised so far (edges of the line; tests). */
uint64_t serial_irq_count(struct serial *s);

#endif /* FORKVM_DEVICES_SERIAL_H */
