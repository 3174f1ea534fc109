// SPDX-License-Identifier: MIT
#include <stdarg.h>

#include "guest/test/console.h"
#include "guest/test/fmt.h"
#include "guest/test/io.h"

#define UART_THR 0
#define UART_IER 1
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_THRE 0x20

/* Bound the THRE wait: a missing UART must not hang the guest. */
#define UART_THRE_SPINS 100000

static uint16_t con_base = 0x3f8;
static volatile uint32_t con_lock;

void con_init(uint16_t base)
{
	con_base = base;
	outb(con_base + UART_IER, 0); /* no interrupts: IF stays 0 anyway */
	outb(con_base + UART_LCR, 0x03); /* 8N1 */
	outb(con_base + UART_FCR, 0x07); /* FIFO on, cleared */
	outb(con_base + UART_MCR, 0x03); /* DTR | RTS */
}

static void con_putc(char c, void *ctx)
{
	int i;

	(void)ctx;
	if (c == '\n')
		con_putc('\r', NULL);
	for (i = 0; i < UART_THRE_SPINS; i++)
		if (inb(con_base + UART_LSR) & UART_LSR_THRE)
			break;
	outb(con_base + UART_THR, (uint8_t)c);
}

static void con_lock_acquire(void)
{
	/* Pairs with the release store in con_lock_release(). */
	while (__atomic_exchange_n(&con_lock, 1, __ATOMIC_ACQUIRE))
		while (READ_ONCE(con_lock))
			cpu_relax();
}

static void con_lock_release(void)
{
	__atomic_store_n(&con_lock, 0, __ATOMIC_RELEASE);
}

int con_printf(const char *fmt, ...)
{
	va_list ap;
	int n;

	con_lock_acquire();
	va_start(ap, fmt);
	n = fmt_vformat(con_putc, NULL, fmt, ap);
	va_end(ap);
	con_lock_release();
	return n;
}
