/* SPDX-License-Identifier: MIT */
/* 8250 console output (polled), shared by all vCPUs under a spinlock. */
#ifndef FORKVM_GUEST_TEST_CONSOLE_H
#define FORKVM_GUEST_TEST_CONSOLE_H

#include <stdint.h>

/** con_init() - use the 8250 at I/O port @base (COM1 = 0x3f8 until the FDT says otherwise). */
void con_init(uint16_t base);

/** con_printf() - print to the UART; whole lines from different vCPUs do not interleave. */
int con_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* FORKVM_GUEST_TEST_CONSOLE_H */
