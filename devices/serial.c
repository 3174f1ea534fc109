// SPDX-License-Identifier: MIT
/*
 * 8250/16550A UART, transmit side.  Output never blocks the guest: THR is
 * written straight to the output fd, so LSR always says THRE|TEMT.  There is
 * no input (RBR reads 0) except in loopback mode, which Linux's probe uses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/serial.h"

/* Register offsets (DLAB = LCR bit 7 selects DLL/DLM at 0 and 1). */
#define UART_RX 0 /* RBR, read */
#define UART_TX 0 /* THR, write */
#define UART_IER 1
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define IER_RDI 0x01 /* received data available */
#define IER_THRI 0x02 /* THR empty */
#define IER_MASK 0x0f
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO 0xc0 /* FIFOs enabled, as a 16550A reports */
#define FCR_ENABLE 0x01
#define LCR_DLAB 0x80
#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

struct serial {
	pthread_mutex_t lock; /* registers; taken by the vCPU threads */
	int out_fd;
	int irq_fd; /* eventfd of the interrupt line, or -1 */
	uint64_t irqs; /* interrupts raised (for tests) */
	uint8_t ier, lcr, mcr, scr, fcr;
	uint8_t dll, dlm;
	bool thri_pending; /* THR-empty interrupt owed to the driver */
	bool rx_full; /* loopback: a byte in RBR */
	uint8_t rbr;
	bool line; /* the interrupt output, as last computed */
};

/* Which interrupt IIR reports now (the highest priority one). */
static uint8_t pending_iir(const struct serial *s)
{
	if ((s->ier & IER_RDI) && s->rx_full)
		return IIR_RDI;
	if ((s->ier & IER_THRI) && s->thri_pending)
		return IIR_THRI;
	return IIR_NO_INT;
}

/* Recompute the line; an edge to asserted pulses the irqfd.  Lock held. */
static void update_irq(struct serial *s)
{
	bool line = pending_iir(s) != IIR_NO_INT;
	uint64_t one = 1;

	if (line && !s->line) {
		s->irqs++;
		if (s->irq_fd >= 0 && write(s->irq_fd, &one, sizeof(one)) < 0) {
			/* The eventfd counter cannot overflow in practice. */
		}
	}
	s->line = line;
}

static void emit(struct serial *s, uint8_t c)
{
	ssize_t n;

	if (s->out_fd < 0)
		return;
	/* Unbuffered: a byte the guest wrote is in the file when out() returns. */
	do {
		n = write(s->out_fd, &c, 1);
	} while (n < 0 && errno == EINTR);
}

static uint8_t serial_in(struct serial *s, unsigned int off)
{
	uint8_t v, iir;

	switch (off) {
	case UART_RX:
		if (s->lcr & LCR_DLAB)
			return s->dll;
		v = s->rbr;
		s->rx_full = false;
		return v;
	case UART_IER:
		if (s->lcr & LCR_DLAB)
			return s->dlm;
		return s->ier;
	case UART_IIR:
		iir = pending_iir(s);
		/* Reading IIR acknowledges a THR-empty interrupt. */
		if (iir == IIR_THRI)
			s->thri_pending = false;
		return iir | ((s->fcr & FCR_ENABLE) ? IIR_FIFO : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		return LSR_THRE | LSR_TEMT | (s->rx_full ? LSR_DR : 0);
	case UART_MSR:
		if (s->mcr & MCR_LOOP)
			/* Loopback wires the modem outputs to the inputs. */
			return ((s->mcr & MCR_RTS) ? MSR_CTS : 0) |
			       ((s->mcr & MCR_DTR) ? MSR_DSR : 0) |
			       ((s->mcr & MCR_OUT1) ? MSR_RI : 0) |
			       ((s->mcr & MCR_OUT2) ? MSR_DCD : 0);
		return MSR_DCD | MSR_DSR | MSR_CTS;
	case UART_SCR:
		return s->scr;
	}
	return 0;
}

static void serial_out(struct serial *s, unsigned int off, uint8_t v)
{
	switch (off) {
	case UART_TX:
		if (s->lcr & LCR_DLAB) {
			s->dll = v;
			return;
		}
		if (s->mcr & MCR_LOOP) {
			s->rbr = v;
			s->rx_full = true;
		} else {
			emit(s, v);
		}
		/* The byte left at once: THR is empty again. */
		s->thri_pending = true;
		return;
	case UART_IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			return;
		}
		/* Enabling THRI with THR empty raises it at once (8250 behaviour
		 * Linux relies on to start transmitting). */
		if ((v & IER_THRI) && !(s->ier & IER_THRI))
			s->thri_pending = true;
		s->ier = v & IER_MASK;
		return;
	case UART_FCR:
		s->fcr = v & FCR_ENABLE;
		return;
	case UART_LCR:
		s->lcr = v;
		return;
	case UART_MCR:
		s->mcr = v & MCR_MASK;
		return;
	case UART_SCR:
		s->scr = v;
		return;
	}
	/* LSR and MSR are read-only. */
}

static void serial_read(void *opaque, uint64_t off, void *data, unsigned int len)
{
	struct serial *s = opaque;

	memset(data, 0xff, len);
	if (off >= 8)
		return;
	pthread_mutex_lock(&s->lock);
	*(uint8_t *)data = serial_in(s, (unsigned int)off);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_write(void *opaque, uint64_t off, const void *data, unsigned int len)
{
	struct serial *s = opaque;

	if (off >= 8)
		return;
	pthread_mutex_lock(&s->lock);
	/* Only the low byte: the UART's registers are 8 bits wide. */
	serial_out(s, (unsigned int)off, *(const uint8_t *)data);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

int serial_create(int out_fd, const struct dev_host *host, unsigned int gsi, struct serial **out)
{
	struct serial *s;
	int ret;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	ret = pthread_mutex_init(&s->lock, NULL);
	if (ret)
		goto err_free;
	s->out_fd = out_fd;
	s->irq_fd = -1;
	if (host && host->irqfd) {
		ret = host->irqfd(host->opaque, gsi);
		if (ret < 0)
			goto err_lock;
		s->irq_fd = ret;
	}
	s->dll = 12; /* 9600 baud at 1.8432 MHz, what a PC BIOS leaves */
	*out = s;
	return 0;

err_lock:
	pthread_mutex_destroy(&s->lock);
err_free:
	free(s);
	return ret > 0 ? -ret : ret;
}

void serial_destroy(struct serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

struct bus_region serial_region(struct serial *s)
{
	return (struct bus_region){
		.base = SERIAL_COM1_BASE,
		.len = 8,
		.read = serial_read,
		.write = serial_write,
		.opaque = s,
	};
}

uint64_t serial_irq_count(struct serial *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->irqs;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void serial_save(struct serial *s, struct serial_state *out)
{
	memset(out, 0, sizeof(*out));
	out->magic = SERIAL_STATE_MAGIC;
	out->version = SERIAL_STATE_VERSION;
	pthread_mutex_lock(&s->lock);
	out->ier = s->ier;
	out->lcr = s->lcr;
	out->mcr = s->mcr;
	out->scr = s->scr;
	out->fcr = s->fcr;
	out->dll = s->dll;
	out->dlm = s->dlm;
	out->rbr = s->rbr;
	out->thri_pending = s->thri_pending;
	out->rx_full = s->rx_full;
	out->line = s->line;
	pthread_mutex_unlock(&s->lock);
}

static bool reserved_zero(const struct serial_state *in)
{
	unsigned int i;

	for (i = 0; i < sizeof(in->reserved); i++)
		if (in->reserved[i])
			return false;
	return true;
}

int serial_restore(struct serial *s, const struct serial_state *in, char *err, size_t errlen)
{
	if (in->magic != SERIAL_STATE_MAGIC) {
		snprintf(err, errlen, "serial state: magic %#x, expected %#x", in->magic,
			 SERIAL_STATE_MAGIC);
		return -EINVAL;
	}
	if (in->version != SERIAL_STATE_VERSION) {
		snprintf(err, errlen, "serial state: version %u, expected %u", in->version,
			 SERIAL_STATE_VERSION);
		return -EINVAL;
	}
	/* Only bits the registers keep (serial_out masks the same way). */
	if ((in->ier & ~IER_MASK) || (in->mcr & ~MCR_MASK) || (in->fcr & ~FCR_ENABLE)) {
		snprintf(err, errlen,
			 "serial state: ier %#x mcr %#x fcr %#x have bits no 16550A keeps", in->ier,
			 in->mcr, in->fcr);
		return -EINVAL;
	}
	if (in->thri_pending > 1 || in->rx_full > 1 || in->line > 1 || !reserved_zero(in)) {
		snprintf(err, errlen,
			 "serial state: a flag is neither 0 nor 1, or reserved bytes are set");
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	s->ier = in->ier;
	s->lcr = in->lcr;
	s->mcr = in->mcr;
	s->scr = in->scr;
	s->fcr = in->fcr;
	s->dll = in->dll;
	s->dlm = in->dlm;
	s->rbr = in->rbr;
	s->thri_pending = in->thri_pending;
	s->rx_full = in->rx_full;
	/* The level, no edge: see serial.h. */
	s->line = in->line;
	pthread_mutex_unlock(&s->lock);
	return 0;
}
