/* SPDX-License-Identifier: MIT */
/* COM1 (devices/serial.c) as a machine device: its ops table and port region. */
#ifndef FORKVM_VMM_UART_H
#define FORKVM_VMM_UART_H

#include <stddef.h>

struct machine;

/**
 * uart_add() - an 8250 at COM1 writing to @m->console_out, on @m's port bus,
 * in @m's device list.  Return: 0 or -errno with @err.
 */
int uart_add(struct machine *m, char *err, size_t errlen) __attribute__((warn_unused_result));

#endif /* FORKVM_VMM_UART_H */
