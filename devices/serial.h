/* SPDX-License-Identifier: MIT */
/* 8250/16550 UART (COM1).  Output goes to a file descriptor. */
#ifndef FORKVM_DEVICES_SERIAL_H
#define FORKVM_DEVICES_SERIAL_H

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

/** serial_irq_count() - interrupts raised so far (edges of the line; tests). */
uint64_t serial_irq_count(struct serial *s);

#endif /* FORKVM_DEVICES_SERIAL_H */
