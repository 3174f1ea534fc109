// SPDX-License-Identifier: MIT
/* The 8250 UART through its port region, output to a pipe. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
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

/* ---- saved state ---------------------------------------------------------- */

/* A UART set up the way Linux's 8250 driver leaves it. */
static void linux_like_setup(void)
{
	out(3, 0x80); /* DLAB */
	out(0, 0x01); /* 115200 baud */
	out(1, 0x00);
	out(3, 0x03); /* 8N1 */
	out(2, 0x01); /* FIFO on */
	out(4, 0x0b); /* DTR RTS OUT2 */
	out(7, 0x5a); /* scratch */
	out(1, 0x02); /* THRI */
}

Test(serial, save_restore_save_gives_identical_bytes_and_the_registers)
{
	struct serial_state a, b;
	struct serial *clone;
	struct bus_region creg;
	char err[128] = "";
	uint8_t v;

	linux_like_setup();
	serial_save(uart, &a);
	cr_assert_eq(serial_create(-1, NULL, SERIAL_COM1_GSI, &clone), 0);
	cr_assert_eq(serial_restore(clone, &a, err, sizeof(err)), 0, "%s", err);
	serial_save(clone, &b);
	cr_expect_eq(memcmp(&a, &b, sizeof(a)), 0, "save -> restore -> save differs");
	/* The clone's driver sees its registers as it left them. */
	creg = serial_region(clone);
	creg.read(creg.opaque, 3, &v, 1);
	cr_expect_eq(v, 0x03, "LCR");
	creg.read(creg.opaque, 1, &v, 1);
	cr_expect_eq(v, 0x02, "IER");
	creg.read(creg.opaque, 4, &v, 1);
	cr_expect_eq(v, 0x0b, "MCR");
	creg.read(creg.opaque, 7, &v, 1);
	cr_expect_eq(v, 0x5a, "SCR");
	v = 0x83;
	creg.write(creg.opaque, 3, &v, 1);
	creg.read(creg.opaque, 0, &v, 1);
	cr_expect_eq(v, 0x01, "the divisor");
	serial_destroy(clone);
}

Test(serial, restore_sets_the_line_level_without_a_new_edge)
{
	struct serial_state st;
	struct serial *clone;
	char err[128] = "";

	linux_like_setup(); /* IER THRI with THR empty: the line is up */
	serial_save(uart, &st);
	cr_assert_eq(st.line, 1);
	cr_assert_eq(serial_create(-1, NULL, SERIAL_COM1_GSI, &clone), 0);
	cr_assert_eq(serial_restore(clone, &st, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(serial_irq_count(clone), 0, "the parent's edge is not raised again");
	serial_destroy(clone);
}

static void expect_serial_refused(void (*spoil)(struct serial_state *), const char *what)
{
	struct serial_state st, after;
	char err[128] = "";

	linux_like_setup();
	serial_save(uart, &st);
	spoil(&st);
	cr_expect_eq(serial_restore(uart, &st, err, sizeof(err)), -EINVAL);
	cr_expect(strstr(err, what), "message '%s' does not say '%s'", err, what);
	serial_save(uart, &after);
	cr_expect_eq(after.lcr, 0x03, "the UART is unchanged");
}

static void bad_magic(struct serial_state *st)
{
	st->magic = 0;
}

static void bad_version(struct serial_state *st)
{
	st->version = SERIAL_STATE_VERSION + 1;
}

static void bad_ier(struct serial_state *st)
{
	st->ier = 0xf2;
	st->lcr = 0;
}

static void bad_flag(struct serial_state *st)
{
	st->rx_full = 2;
	st->lcr = 0;
}

Test(serial, restore_refuses_a_bad_magic)
{
	expect_serial_refused(bad_magic, "magic");
}

Test(serial, restore_refuses_another_version)
{
	expect_serial_refused(bad_version, "version");
}

Test(serial, restore_refuses_register_bits_a_16550a_does_not_keep)
{
	expect_serial_refused(bad_ier, "ier");
}

Test(serial, restore_refuses_a_flag_that_is_not_0_or_1)
{
	expect_serial_refused(bad_flag, "flag");
}
