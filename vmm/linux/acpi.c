// SPDX-License-Identifier: MIT
/*
 * RSDP, XSDT, FADT, MADT and a DSDT of hand-assembled AML (ACPI 6.5,
 * sections 5.2 and 20).  Byte offsets as the specification numbers them.
 */
#include "vmm/linux/acpi.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define OEM_ID "FORKVM"
#define OEM_TABLE_ID "FORKVM  "
#define CREATOR_ID "FKVM"

/* AML opcodes (ACPI 6.5, 20.3). */
#define AML_ZERO 0x00
#define AML_ONE 0x01
#define AML_NAME 0x08
#define AML_BYTE 0x0a
#define AML_DWORD 0x0c
#define AML_STRING 0x0d
#define AML_SCOPE 0x10
#define AML_BUFFER 0x11
#define AML_PACKAGE 0x12
#define AML_METHOD 0x14
#define AML_DUAL_NAME 0x2e
#define AML_NOTIFY 0x86
#define AML_EXT 0x5b
#define AML_DEVICE 0x82
#define AML_ROOT '\\'

/* Small resource descriptors (ACPI 6.5, 6.4.2): tag and length in one byte. */
#define RES_IRQ_NOFLAGS 0x22 /* IRQ, 2 bytes: a mask; edge, active high */
#define RES_IO 0x47 /* I/O port, 7 bytes */

/* Large resource descriptors (ACPI 6.5, 6.4.3). */
#define RES_MEMORY32_FIXED 0x86
#define RES_EXT_IRQ 0x89
#define RES_END 0x79
#define IRQ_CONSUMER (1u << 0)
#define IRQ_EDGE (1u << 1)

/* MADT entry types and flags. */
#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_LAPIC_NMI 4
#define MADT_PCAT_COMPAT 1u
#define MADT_LAPIC_ENABLED 1u

/* FADT fields used (offsets in the table). */
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_MINOR_VERSION 131
#define FADT_X_DSDT 140
#define FADT_HYPERVISOR_ID 268
#define IAPC_VGA_NOT_PRESENT (1u << 2)
#define IAPC_MSI_NOT_SUPPORTED (1u << 3)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)
#define FADT_PWR_BUTTON (1u << 4) /* no fixed power button */
#define FADT_SLP_BUTTON (1u << 5) /* no fixed sleep button */

/* A byte buffer that remembers running out instead of overflowing. */
struct out {
	uint8_t *p;
	size_t len;
	size_t pos;
	bool full;
};

static void emit(struct out *o, const void *data, size_t n)
{
	if (o->full || n > o->len - o->pos) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->pos, data, n);
	o->pos += n;
}

static void emit8(struct out *o, uint8_t v)
{
	emit(o, &v, 1);
}

static void emit16(struct out *o, uint16_t v)
{
	emit(o, &v, 2);
}

static void emit32(struct out *o, uint32_t v)
{
	emit(o, &v, 4);
}

static void emit64(struct out *o, uint64_t v)
{
	emit(o, &v, 8);
}

static void align16(struct out *o)
{
	static const uint8_t zero[16];

	emit(o, zero, (16 - o->pos % 16) % 16);
}

uint8_t acpi_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return sum;
}

unsigned int aml_pkg_length(size_t body, uint8_t out[4])
{
	unsigned int n, i;
	size_t total;

	/* One byte holds 6 bits; n > 1 bytes hold 4 + 8 * (n - 1) bits. */
	if (body + 1 < 0x40) {
		out[0] = (uint8_t)(body + 1);
		return 1;
	}
	for (n = 2; n <= 4; n++) {
		total = body + n;
		if (total < (1ULL << (4 + 8 * (n - 1)))) {
			out[0] = (uint8_t)((n - 1) << 6 | (total & 0xf));
			for (i = 1; i < n; i++)
				out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
			return n;
		}
	}
	return 0;
}

/* A table header with length and checksum to fill in by table_end(). */
static size_t table_start(struct out *o, const char *sig, uint8_t rev)
{
	size_t at = o->pos;

	emit(o, sig, 4);
	emit32(o, 0); /* length */
	emit8(o, rev);
	emit8(o, 0); /* checksum */
	emit(o, OEM_ID, 6);
	emit(o, OEM_TABLE_ID, 8);
	emit32(o, 1); /* OEM revision */
	emit(o, CREATOR_ID, 4);
	emit32(o, 1); /* creator revision */
	return at;
}

static void table_end(struct out *o, size_t at)
{
	uint32_t len = (uint32_t)(o->pos - at);

	if (o->full)
		return;
	memcpy(o->p + at + 4, &len, 4);
	o->p[at + 9] = (uint8_t)(0 - acpi_checksum(o->p + at, len));
}

/*
 * AML objects are built inside-out: a body is assembled in a scratch buffer,
 * then framed (opcode, PkgLength, name) into its parent.
 */
static void aml_name_seg(struct out *o, const char *name)
{
	char seg[4] = { '_', '_', '_', '_' };
	size_t n = strlen(name);

	memcpy(seg, name, n < 4 ? n : 4);
	emit(o, seg, 4);
}

static void aml_pkg(struct out *o, const uint8_t *op, size_t oplen, const uint8_t *body,
		    size_t blen)
{
	uint8_t pl[4];
	unsigned int n = aml_pkg_length(blen, pl);

	if (!n) {
		o->full = true;
		return;
	}
	emit(o, op, oplen);
	emit(o, pl, n);
	emit(o, body, blen);
}

static void aml_name_string(struct out *o, const char *name, const char *str)
{
	emit8(o, AML_NAME);
	aml_name_seg(o, name);
	emit8(o, AML_STRING);
	emit(o, str, strlen(str) + 1);
}

static void aml_name_int(struct out *o, const char *name, uint32_t v)
{
	emit8(o, AML_NAME);
	aml_name_seg(o, name);
	if (v <= 1) {
		emit8(o, v ? AML_ONE : AML_ZERO);
	} else if (v <= 0xff) {
		emit8(o, AML_BYTE);
		emit8(o, (uint8_t)v);
	} else {
		emit8(o, AML_DWORD);
		emit32(o, v);
	}
}

/* Name(_CRS, ResourceTemplate() { Memory32Fixed(ReadWrite, base, size)
 *                                 Interrupt(ResourceConsumer, Edge, ActiveHigh,
 *                                           Exclusive) { gsi } }) */
static void aml_crs(struct out *o, const struct acpi_mmio_dev *d)
{
	uint8_t res[32], body[40];
	struct out r = { .p = res, .len = sizeof(res) }, b = { .p = body, .len = sizeof(body) };
	uint8_t op = AML_BUFFER;

	emit8(&r, RES_MEMORY32_FIXED);
	emit16(&r, 9);
	emit8(&r, 1); /* read/write */
	emit32(&r, d->base);
	emit32(&r, d->size);
	emit8(&r, RES_EXT_IRQ);
	emit16(&r, 6);
	emit8(&r, IRQ_CONSUMER | IRQ_EDGE); /* active high, exclusive */
	emit8(&r, 1);
	emit32(&r, d->gsi);
	emit8(&r, RES_END);
	emit8(&r, 0); /* checksum 0: "treat as correct" */

	emit8(&b, AML_BYTE); /* BufferSize */
	emit8(&b, (uint8_t)r.pos);
	emit(&b, res, r.pos);

	emit8(o, AML_NAME);
	aml_name_seg(o, "_CRS");
	aml_pkg(o, &op, 1, body, b.pos);
	if (r.full || b.full)
		o->full = true;
}

static void aml_device(struct out *o, unsigned int index, const struct acpi_mmio_dev *d)
{
	static const uint8_t op[] = { AML_EXT, AML_DEVICE };
	uint8_t body[128];
	struct out b = { .p = body, .len = sizeof(body) };
	char name[5] = { 'V', '0', '0', (char)('0' + index % 10), '\0' };

	/* index < ACPI_MAX_MMIO (8): one digit. */
	aml_name_seg(&b, name);
	aml_name_string(&b, "_HID", "LNRO0005");
	aml_name_int(&b, "_UID", index);
	aml_crs(&b, d);
	if (b.full)
		o->full = true;
	aml_pkg(o, op, sizeof(op), body, b.pos);
}

/* EisaId("PNP0501"): three 5-bit letters and four hex digits, big-endian. */
static uint32_t eisa_id(const char *id)
{
	uint32_t v = (uint32_t)((id[0] - 0x40) << 10 | (id[1] - 0x40) << 5 | (id[2] - 0x40)) << 16;
	unsigned int i;

	for (i = 3; i < 7; i++) {
		char c = id[i];

		v |= (uint32_t)(c <= '9' ? c - '0' : c - 'A' + 10) << (4 * (6 - i));
	}
	/* Stored most significant byte first. */
	return __builtin_bswap32(v);
}

/* Device(COM1) { _HID PNP0501, _UID 0, _CRS { IO(Decode16, port, port, 0, 8)
 *                                             IRQNoFlags() { irq } } } */
static void aml_com1(struct out *o, uint16_t port, uint8_t irq)
{
	static const uint8_t dev_op[] = { AML_EXT, AML_DEVICE };
	uint8_t res[] = {
		RES_IO,
		1,
		port & 0xff,
		port >> 8,
		port & 0xff,
		port >> 8,
		0,
		8,
		RES_IRQ_NOFLAGS,
		(uint8_t)(1u << irq),
		(uint8_t)((1u << irq) >> 8),
		RES_END,
		0,
	};
	uint8_t body[64], buf[32];
	struct out b = { .p = body, .len = sizeof(body) }, r = { .p = buf, .len = sizeof(buf) };
	uint8_t op = AML_BUFFER;

	aml_name_seg(&b, "COM1");
	emit8(&b, AML_NAME);
	aml_name_seg(&b, "_HID");
	emit8(&b, AML_DWORD);
	emit32(&b, eisa_id("PNP0501"));
	aml_name_int(&b, "_UID", 0);
	emit8(&r, AML_BYTE);
	emit8(&r, sizeof(res));
	emit(&r, res, sizeof(res));
	emit8(&b, AML_NAME);
	aml_name_seg(&b, "_CRS");
	aml_pkg(&b, &op, 1, buf, r.pos);
	if (b.full || r.full)
		o->full = true;
	aml_pkg(o, dev_op, sizeof(dev_op), body, b.pos);
}

/* Device(VGEN) { Name(_HID, "VMGENCTR")
 *               Name(ADDR, Package(2) { low 32 bits, high 32 bits }) }
 * Linux's vmgenid driver (drivers/virt/vmgenid.c, 6.1) matches "VMGENCTR",
 * evaluates ADDR for the 16-byte generation ID and re-reads it on a Notify. */
static void aml_vmgenid(struct out *o, uint64_t addr)
{
	static const uint8_t dev_op[] = { AML_EXT, AML_DEVICE };
	uint8_t body[64], pkg[16];
	struct out b = { .p = body, .len = sizeof(body) }, k = { .p = pkg, .len = sizeof(pkg) };
	uint8_t op = AML_PACKAGE;

	aml_name_seg(&b, "VGEN");
	aml_name_string(&b, "_HID", "VMGENCTR");
	emit8(&k, 2); /* NumElements */
	emit8(&k, AML_DWORD);
	emit32(&k, (uint32_t)addr);
	emit8(&k, AML_DWORD);
	emit32(&k, (uint32_t)(addr >> 32));
	emit8(&b, AML_NAME);
	aml_name_seg(&b, "ADDR");
	aml_pkg(&b, &op, 1, pkg, k.pos);
	if (b.full || k.full)
		o->full = true;
	aml_pkg(o, dev_op, sizeof(dev_op), body, b.pos);
}

/* Device(GED0) { Name(_HID, "ACPI0013")
 *                Name(_CRS, ResourceTemplate() { Interrupt(ResourceConsumer,
 *                                  Edge, ActiveHigh, Exclusive) { gsi } })
 *                Method(_EVT, 1) { Notify(\_SB.VGEN, 0x80) } }
 * A hardware-reduced machine has no GPE blocks: the Generic Event Device
 * (ACPI 6.5, 5.6.9) is how an interrupt runs AML; Linux's evged.c calls _EVT
 * on the interrupt, and the Notify reaches the vmgenid driver. */
static void aml_ged(struct out *o, uint32_t gsi)
{
	static const uint8_t dev_op[] = { AML_EXT, AML_DEVICE };
	uint8_t body[96], res[16], buf[24], meth[32];
	struct out b = { .p = body, .len = sizeof(body) }, r = { .p = res, .len = sizeof(res) };
	struct out c = { .p = buf, .len = sizeof(buf) }, m = { .p = meth, .len = sizeof(meth) };
	uint8_t bop = AML_BUFFER, mop = AML_METHOD;

	aml_name_seg(&b, "GED0");
	aml_name_string(&b, "_HID", "ACPI0013");
	emit8(&r, RES_EXT_IRQ);
	emit16(&r, 6);
	emit8(&r, IRQ_CONSUMER | IRQ_EDGE); /* active high, exclusive */
	emit8(&r, 1);
	emit32(&r, gsi);
	emit8(&r, RES_END);
	emit8(&r, 0);
	emit8(&c, AML_BYTE);
	emit8(&c, (uint8_t)r.pos);
	emit(&c, res, r.pos);
	emit8(&b, AML_NAME);
	aml_name_seg(&b, "_CRS");
	aml_pkg(&b, &bop, 1, buf, c.pos);
	aml_name_seg(&m, "_EVT");
	emit8(&m, 1); /* MethodFlags: one argument, not serialized */
	emit8(&m, AML_NOTIFY);
	emit8(&m, AML_ROOT);
	emit8(&m, AML_DUAL_NAME);
	aml_name_seg(&m, "_SB_");
	aml_name_seg(&m, "VGEN");
	emit8(&m, AML_BYTE);
	emit8(&m, 0x80);
	aml_pkg(&b, &mop, 1, meth, m.pos);
	if (b.full || r.full || c.full || m.full)
		o->full = true;
	aml_pkg(o, dev_op, sizeof(dev_op), body, b.pos);
}

static void build_dsdt_aml(struct out *o, const struct acpi_config *cfg)
{
	uint8_t body[128 * ACPI_MAX_MMIO + 256];
	struct out b = { .p = body, .len = sizeof(body) };
	uint8_t op = AML_SCOPE;
	unsigned int i;

	emit8(&b, AML_ROOT);
	aml_name_seg(&b, "_SB_");
	if (cfg->com1_port)
		aml_com1(&b, cfg->com1_port, cfg->com1_irq);
	for (i = 0; i < cfg->ndevs; i++)
		aml_device(&b, i, &cfg->dev[i]);
	if (cfg->vmgenid_addr) {
		aml_vmgenid(&b, cfg->vmgenid_addr);
		aml_ged(&b, cfg->ged_gsi);
	}
	if (b.full)
		o->full = true;
	aml_pkg(o, &op, 1, body, b.pos);
}

static void build_madt(struct out *o, const struct acpi_config *cfg)
{
	size_t at = table_start(o, "APIC", 5);
	unsigned int i;

	emit32(o, ACPI_LAPIC_BASE);
	emit32(o, MADT_PCAT_COMPAT); /* the in-kernel irqchip has the 8259s too */
	for (i = 0; i < cfg->ncpus; i++) {
		emit8(o, MADT_LAPIC);
		emit8(o, 8);
		emit8(o, (uint8_t)i); /* processor UID */
		emit8(o, (uint8_t)i); /* APIC id: vmm/vcpu.c's CPUID gives vCPU i id i */
		emit32(o, MADT_LAPIC_ENABLED);
	}
	emit8(o, MADT_IOAPIC);
	emit8(o, 12);
	emit8(o, (uint8_t)cfg->ncpus); /* IOAPIC id, after the LAPICs' */
	emit8(o, 0);
	emit32(o, ACPI_IOAPIC_BASE);
	emit32(o, 0); /* GSI base: KVM's routing is GSI n -> pin n, ISA IRQs identity */
	/* LINT1 of every processor is NMI, as on a PC. */
	emit8(o, MADT_LAPIC_NMI);
	emit8(o, 6);
	emit8(o, 0xff); /* all processors */
	emit16(o, 0); /* flags: conforming to the bus */
	emit8(o, 1); /* LINT1 */
	table_end(o, at);
}

static void build_fadt(struct out *o, uint64_t dsdt)
{
	uint8_t f[ACPI_FADT_SIZE];
	size_t at = o->pos;
	uint16_t boot_arch =
	    IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED | IAPC_CMOS_RTC_NOT_PRESENT;
	uint32_t flags = ACPI_FADT_HW_REDUCED | FADT_PWR_BUTTON | FADT_SLP_BUTTON;
	uint32_t dsdt32 = (uint32_t)dsdt;
	uint16_t sci = 9;

	/* The header through table_start(), the body as one zeroed block. */
	table_start(o, "FACP", 6);
	memset(f, 0, sizeof(f));
	memcpy(f + FADT_DSDT, &dsdt32, 4);
	memcpy(f + FADT_SCI_INT, &sci, 2);
	memcpy(f + FADT_IAPC_BOOT_ARCH, &boot_arch, 2);
	memcpy(f + FADT_FLAGS, &flags, 4);
	f[FADT_MINOR_VERSION] = 5;
	memcpy(f + FADT_X_DSDT, &dsdt, 8);
	memcpy(f + FADT_HYPERVISOR_ID, "FORKVM\0\0", 8);
	emit(o, f + ACPI_HDR_SIZE, ACPI_FADT_SIZE - ACPI_HDR_SIZE);
	table_end(o, at);
}

/* Patch a table's 64-bit pointer field at @off and its checksum. */
static void patch64(uint8_t *table, size_t off, uint64_t v)
{
	uint32_t len;

	memcpy(&len, table + 4, 4);
	memcpy(table + off, &v, 8);
	table[9] = 0;
	table[9] = (uint8_t)(0 - acpi_checksum(table, len));
}

long acpi_build(const struct acpi_config *cfg, uint64_t gpa, uint8_t *buf, size_t len)
{
	struct out o = { .p = buf, .len = len };
	size_t xsdt, fadt, madt, dsdt;
	uint32_t dsdt32;
	unsigned int i;

	if (!cfg->ncpus || cfg->ncpus > ACPI_MAX_CPUS || cfg->ndevs > ACPI_MAX_MMIO ||
	    cfg->com1_irq > 15 || (cfg->vmgenid_addr && cfg->ged_gsi >= ACPI_IOAPIC_PINS))
		return -EINVAL;
	for (i = 0; i < cfg->ndevs; i++) {
		if (cfg->dev[i].gsi >= ACPI_IOAPIC_PINS || !cfg->dev[i].size)
			return -EINVAL;
	}
	/* RSDP, revision 2: an XSDT only; its address patched below. */
	emit(&o, "RSD PTR ", 8);
	emit8(&o, 0);
	emit(&o, OEM_ID, 6);
	emit8(&o, 2);
	emit32(&o, 0); /* no RSDT */
	emit32(&o, ACPI_RSDP_SIZE);
	emit64(&o, 0);
	emit8(&o, 0);
	emit(&o, "\0\0\0", 3);
	align16(&o);

	/* Tables first, pointers patched once every offset is known. */
	xsdt = table_start(&o, "XSDT", 1);
	emit64(&o, 0);
	emit64(&o, 0);
	table_end(&o, xsdt);
	align16(&o);
	fadt = o.pos;
	build_fadt(&o, 0);
	align16(&o);
	madt = o.pos;
	build_madt(&o, cfg);
	align16(&o);
	dsdt = table_start(&o, "DSDT", 2);
	build_dsdt_aml(&o, cfg);
	table_end(&o, dsdt);
	if (o.full)
		return -ENOSPC;

	dsdt32 = (uint32_t)(gpa + dsdt);
	memcpy(buf + fadt + FADT_DSDT, &dsdt32, 4);
	patch64(buf + fadt, FADT_X_DSDT, gpa + dsdt);
	patch64(buf + xsdt, ACPI_HDR_SIZE, gpa + fadt);
	patch64(buf + xsdt, ACPI_HDR_SIZE + 8, gpa + madt);
	memcpy(buf + 24, &(uint64_t){ gpa + xsdt }, 8);
	buf[8] = (uint8_t)(0 - acpi_checksum(buf, 20));
	buf[32] = 0;
	buf[32] = (uint8_t)(0 - acpi_checksum(buf, ACPI_RSDP_SIZE));
	return (long)o.pos;
}
