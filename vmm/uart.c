// SPDX-License-Identifier: MIT
/*
 * COM1 as a machine device.  A clone gets a new 8250 on its own console (the
 * child's console_out), created at the clone and loaded with the parent's
 * registers (divisor, LCR, IER, MCR, ...): a Linux driver does not expect its
 * UART to forget its setup.
 */
#include "vmm/uart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/serial.h"
#include "vmm/iobus.h"
#include "vmm/machine.h"

/* A clone's UART exists from the pause (clone) but is made at attach. */
struct uart {
	struct serial *s;
};

static void uart_destroy(void *obj)
{
	struct uart *u = obj;

	serial_destroy(u->s);
	free(u);
}

static int make(struct machine *m, struct uart *u, char *err, size_t errlen)
{
	struct bus_region r;
	int ret;

	ret = serial_create(m->console_out, &m->vm.host, SERIAL_COM1_GSI, &u->s);
	if (ret) {
		u->s = NULL;
		snprintf(err, errlen, "serial: %s", strerror(-ret));
		return ret;
	}
	r = serial_region(u->s);
	ret = iobus_add(&m->vm.pio, &r);
	if (ret) {
		snprintf(err, errlen, "serial: port region: %s", strerror(-ret));
		serial_destroy(u->s);
		u->s = NULL;
	}
	return ret;
}

/* Nothing of the UART's is taken at the instant but its saved state. */
static int uart_clone(void *obj, struct machine *child, void **child_obj, char *err, size_t errlen)
{
	struct uart *u = calloc(1, sizeof(*u));

	if (!u) {
		snprintf(err, errlen, "serial: out of memory");
		return -ENOMEM;
	}
	*child_obj = u;
	return 0;
}

static int uart_attach(void *obj, struct machine *child, char *err, size_t errlen)
{
	return make(child, obj, err, errlen);
}

static uint32_t uart_state_size(void *obj)
{
	return sizeof(struct serial_state);
}

static int uart_save(void *obj, void *buf, uint32_t size)
{
	if (size != sizeof(struct serial_state))
		return -EINVAL;
	serial_save(((struct uart *)obj)->s, buf);
	return 0;
}

static int uart_restore(void *obj, const void *buf, uint32_t size, char *err, size_t errlen)
{
	/* The section's size is untrusted like its contents. */
	if (size != sizeof(struct serial_state)) {
		snprintf(err, errlen, "serial: state of %u bytes, expected %zu", size,
			 sizeof(struct serial_state));
		return -EINVAL;
	}
	return serial_restore(((struct uart *)obj)->s, buf, err, errlen);
}

static const struct device_ops uart_ops = {
	.type = "serial",
	.type_id = DEVICE_SERIAL,
	.state_size = uart_state_size,
	.save = uart_save,
	.clone = uart_clone,
	.attach = uart_attach,
	.restore = uart_restore,
	.destroy = uart_destroy,
};

int uart_add(struct machine *m, char *err, size_t errlen)
{
	struct uart *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return -ENOMEM;
	ret = make(m, u, err, errlen);
	if (ret) {
		free(u);
		return ret;
	}
	/* A machine whose creation fails here is destroyed before it runs:
	 * the region left on its bus is never dispatched to. */
	ret = machine_add_device(m, &uart_ops, u, 0);
	if (ret) {
		snprintf(err, errlen, "serial: too many devices");
		uart_destroy(u);
	}
	return ret;
}
