// SPDX-License-Identifier: MIT
/* The 8250 UART through its port region, output to a pipe. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/serial.h"

static int pipefd[2];
static struct serial *uart;
static struct bus_region reg;

static void setup(void)
{
	cr_assert_eq(pipe2(pipefd, O_NONBLOCK), 0);
	cr_assert_eq(serial_create(pipefd[1], NULL, SERIAL_COM1_GSI, &uart), 0);
	reg = serial_region(uart);
}

static void teardown(void)
{
	serial_destroy(uart);
	close(pipefd[0]);
	close(pipefd[1]);
}

static uint8_t in(unsigned int off)
{
	uint8_t v;

	reg.read(reg.opaque, off, &v, 1);
	return v;
}

static void out(unsigned int off, uint8_t v)
{
	reg.write(reg.opaque, off, &v, 1);
}

TestSuite(serial, .init = setup, .fini = teardown);

Test(serial, region_is_com1_eight_ports)
{
	cr_expect_eq(reg.base, 0x3f8);
	cr_expect_eq(reg.len, 8);
}

Test(serial, thr_bytes_reach_the_output_fd_at_once)
{
	char buf[8] = { 0 };

	out(0, 'h');
	out(0, 'i');
	cr_assert_eq(read(pipefd[0], buf, sizeof(buf)), 2);
	cr_expect_str_eq(buf, "hi");
}

Test(serial, lsr_always_reports_transmitter_empty)
{
	cr_expect_eq(in(5) & 0x60, 0x60);
	out(0, 'x');
	cr_expect_eq(in(5) & 0x60, 0x60);
	cr_expect_eq(in(5) & 0x01, 0, "no received data");
}

Test(serial, dlab_exposes_the_divisor_latch)
{
	char c;

	out(1, 0x00); /* IER = 0 */
	out(3, 0x80); /* DLAB */
	out(0, 0x01);
	out(1, 0x02);
	cr_expect_eq(in(0), 0x01);
	cr_expect_eq(in(1), 0x02);
	cr_expect_eq(read(pipefd[0], &c, 1), -1, "a divisor write is not output");
	out(3, 0x03); /* 8N1, DLAB off */
	cr_expect_eq(in(1), 0x00, "IER is back");
	cr_expect_eq(in(3), 0x03);
}

Test(serial, scratch_register_holds_a_value)
{
	out(7, 0xa5);
	cr_expect_eq(in(7), 0xa5);
	out(7, 0x5a);
	cr_expect_eq(in(7), 0x5a);
}

Test(serial, iir_reports_no_interrupt_when_ier_is_zero)
{
	out(0, 'x');
	cr_expect_eq(in(2) & 0x0f, 0x01);
	cr_expect_eq(serial_irq_count(uart), 0);
}

Test(serial, enabling_thri_raises_thr_empty_interrupt)
{
	out(1, 0x02);
	cr_expect_eq(serial_irq_count(uart), 1);
	cr_expect_eq(in(2) & 0x0f, 0x02);
	cr_expect_eq(in(2) & 0x0f, 0x01, "reading IIR acknowledged it");
}

Test(serial, each_transmitted_byte_raises_thri_again)
{
	out(1, 0x02);
	(void)in(2);
	out(0, 'a');
	cr_expect_eq(serial_irq_count(uart), 2);
	cr_expect_eq(in(2) & 0x0f, 0x02);
}

Test(serial, fifo_enable_shows_in_iir)
{
	out(2, 0x07);
	cr_expect_eq(in(2) & 0xc0, 0xc0, "a 16550A with FIFOs");
	out(2, 0x00);
	cr_expect_eq(in(2) & 0xc0, 0x00);
}

Test(serial, loopback_mirrors_modem_lines_like_linux_probes)
{
	out(4, 0x10 | 0x0a); /* LOOP | RTS | OUT2 */
	cr_expect_eq(in(6) & 0xf0, 0x90);
	out(4, 0x1f);
	cr_expect_eq(in(6) & 0xf0, 0xf0);
	out(4, 0x00);
	cr_expect_eq(in(6) & 0xf0, 0xb0, "DCD, DSR, CTS when not in loopback");
}

Test(serial, loopback_sends_bytes_to_rbr_not_output)
{
	char c;

	out(4, 0x10);
	out(0, 'z');
	cr_expect_eq(in(5) & 0x01, 0x01);
	cr_expect_eq(in(0), 'z');
	cr_expect_eq(in(5) & 0x01, 0x00);
	cr_expect_eq(read(pipefd[0], &c, 1), -1);
}

/* A host whose irqfd() hands out the test's eventfd. */
static int host_irqfd(void *opaque, unsigned int gsi)
{
	cr_expect_eq(gsi, 4);
	return *(int *)opaque;
}

Test(serial, irqfd_from_host_is_signalled)
{
	struct serial *s2;
	struct bus_region r2;
	uint64_t n = 0;
	uint8_t v = 0x02;
	int efd = eventfd(0, EFD_NONBLOCK);
	struct dev_host host = { .irqfd = host_irqfd, .opaque = &efd };

	cr_assert_geq(efd, 0);
	cr_assert_eq(serial_create(-1, &host, 4, &s2), 0);
	r2 = serial_region(s2);
	r2.write(r2.opaque, 1, &v, 1);
	cr_expect_eq(read(efd, &n, sizeof(n)), 8);
	cr_expect_eq(n, 1);
	serial_destroy(s2);
	close(efd);
}
