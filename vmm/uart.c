// SPDX-License-Identifier: MIT
/*
 * COM1 as a machine device.  A clone gets a new 8250 on its own console
 * (the child's console_out), created at the clone.
 */
#include "vmm/uart.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/serial.h"
#include "vmm/iobus.h"
#include "vmm/machine.h"

static void uart_destroy(void *obj)
{
	serial_destroy(obj);
}

static int make(struct machine *m, struct serial **out, char *err, size_t errlen)
{
	struct bus_region r;
	struct serial *s;
	int ret;

	ret = serial_create(m->console_out, &m->vm.host, SERIAL_COM1_GSI, &s);
	if (ret) {
		snprintf(err, errlen, "serial: %s", strerror(-ret));
		return ret;
	}
	r = serial_region(s);
	ret = iobus_add(&m->vm.pio, &r);
	if (ret) {
		snprintf(err, errlen, "serial: port region: %s", strerror(-ret));
		serial_destroy(s);
		return ret;
	}
	*out = s;
	return 0;
}

static int uart_clone(void *obj, struct machine *child, void **child_obj, char *err, size_t errlen)
{
	struct serial *s;
	int ret;

	ret = make(child, &s, err, errlen);
	if (ret)
		return ret;
	*child_obj = s;
	return 0;
}

static const struct device_ops uart_ops = {
	.type = "serial",
	.type_id = DEVICE_SERIAL,
	.clone = uart_clone,
	.destroy = uart_destroy,
};

int uart_add(struct machine *m, char *err, size_t errlen)
{
	struct serial *s;
	int ret;

	ret = make(m, &s, err, errlen);
	if (ret)
		return ret;
	/* A machine whose creation fails here is destroyed before it runs:
	 * the region left on its bus is never dispatched to. */
	ret = machine_add_device(m, &uart_ops, s, 0);
	if (ret) {
		snprintf(err, errlen, "serial: too many devices");
		serial_destroy(s);
	}
	return ret;
}
