// SPDX-License-Identifier: MIT
/*
 * The ACPI tables of the Linux board: checksums, lengths and pointers of
 * every table, MADT entries for 1..64 vCPUs, the FADT's hardware-reduced
 * flag, the DSDT's AML walked by a small decoder here, and (where acpica's
 * iasl is installed) disassembled by iasl, an independent decoder.
 */
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <criterion/criterion.h>

#include "vmm/linux/acpi.h"

#define GPA 0xe0000ULL

static uint8_t buf[65536];

static uint64_t get(const uint8_t *p, size_t off, unsigned int n)
{
	uint64_t v = 0;

	memcpy(&v, p + off, n);
	return v;
}

static struct acpi_config two_disks(unsigned int ncpus)
{
	struct acpi_config c = { .ncpus = ncpus, .ndevs = 2, .com1_port = 0x3f8, .com1_irq = 4 };

	c.dev[0] = (struct acpi_mmio_dev){ 0xd0000000, 0x1000, 5 };
	c.dev[1] = (struct acpi_mmio_dev){ 0xd0001000, 0x1000, 6 };
	return c;
}

/* The table at guest address @gpa, checked to lie inside the @len bytes built. */
static const uint8_t *table_at(uint64_t gpa, long len, const char *sig)
{
	const uint8_t *t;
	uint32_t tlen;

	cr_assert(gpa >= GPA && gpa + ACPI_HDR_SIZE <= GPA + (uint64_t)len, "%s outside", sig);
	t = buf + (gpa - GPA);
	tlen = (uint32_t)get(t, 4, 4);
	cr_assert(gpa + tlen <= GPA + (uint64_t)len, "%s runs past the end", sig);
	cr_assert_eq(memcmp(t, sig, 4), 0, "expected %s, found %.4s", sig, (const char *)t);
	cr_assert_eq(acpi_checksum(t, tlen), 0, "%s checksum", sig);
	return t;
}

static long build(const struct acpi_config *c)
{
	long n;

	memset(buf, 0xee, sizeof(buf));
	n = acpi_build(c, GPA, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	return n;
}

static const uint8_t *dsdt_of(long n)
{
	const uint8_t *xsdt = table_at(get(buf, 24, 8), n, "XSDT");
	const uint8_t *fadt = table_at(get(xsdt, 36, 8), n, "FACP");

	return table_at(get(fadt, 140, 8), n, "DSDT");
}

Test(linux_acpi, rsdp_and_every_table_have_valid_checksums_and_pointers)
{
	struct acpi_config c = two_disks(2);
	const uint8_t *xsdt, *fadt, *madt, *dsdt;
	long n = build(&c);

	cr_assert_eq(memcmp(buf, "RSD PTR ", 8), 0);
	cr_assert_eq(acpi_checksum(buf, 20), 0, "RSDP v1 checksum");
	cr_assert_eq(acpi_checksum(buf, ACPI_RSDP_SIZE), 0, "RSDP extended checksum");
	cr_assert_eq(buf[15], 2, "revision 2: XSDT");
	cr_assert_eq(get(buf, 20, 4), ACPI_RSDP_SIZE);
	xsdt = table_at(get(buf, 24, 8), n, "XSDT");
	cr_assert_eq(get(xsdt, 4, 4), ACPI_HDR_SIZE + 16, "two entries");
	fadt = table_at(get(xsdt, 36, 8), n, "FACP");
	madt = table_at(get(xsdt, 44, 8), n, "APIC");
	dsdt = table_at(get(fadt, 140, 8), n, "DSDT");
	cr_assert_eq(get(fadt, 40, 4), GPA + (uint64_t)(dsdt - buf), "32-bit DSDT pointer too");
	(void)madt;
	/* 16-byte aligned, as the RSDP's scan needs and the others like. */
	cr_assert_eq((get(buf, 24, 8)) % 16, 0);
	cr_assert_eq((dsdt - buf) % 16, 0);
}

Test(linux_acpi, the_fadt_is_hardware_reduced_revision_6)
{
	struct acpi_config c = two_disks(1);
	long n = build(&c);
	const uint8_t *xsdt = table_at(get(buf, 24, 8), n, "XSDT");
	const uint8_t *fadt = table_at(get(xsdt, 36, 8), n, "FACP");

	cr_assert_eq(get(fadt, 4, 4), ACPI_FADT_SIZE);
	cr_assert_eq(fadt[8], 6);
	cr_assert(get(fadt, 112, 4) & ACPI_FADT_HW_REDUCED);
	/* No PM1 blocks: hardware-reduced has none. */
	cr_assert_eq(get(fadt, 56, 4), 0);
	cr_assert_eq(get(fadt, 64, 4), 0);
}

static void check_madt(unsigned int ncpus)
{
	struct acpi_config c = { .ncpus = ncpus };
	long n = build(&c);
	const uint8_t *xsdt = table_at(get(buf, 24, 8), n, "XSDT");
	const uint8_t *madt = table_at(get(xsdt, 44, 8), n, "APIC");
	uint32_t len = (uint32_t)get(madt, 4, 4), off = 44;
	unsigned int lapics = 0, ioapics = 0, nmis = 0;

	cr_assert_eq(get(madt, 36, 4), ACPI_LAPIC_BASE);
	while (off < len) {
		uint8_t type = madt[off], elen = madt[off + 1];

		cr_assert_geq(elen, 2, "entry length");
		cr_assert_leq(off + elen, len);
		if (type == 0) {
			cr_assert_eq(elen, 8);
			cr_assert_eq(madt[off + 2], lapics, "processor UID in order");
			cr_assert_eq(madt[off + 3], lapics, "APIC id = vCPU index");
			cr_assert_eq(get(madt, off + 4, 4) & 1, 1, "enabled");
			lapics++;
		} else if (type == 1) {
			cr_assert_eq(elen, 12);
			cr_assert_eq(get(madt, off + 4, 4), ACPI_IOAPIC_BASE);
			cr_assert_eq(get(madt, off + 8, 4), 0, "GSI base 0");
			cr_assert_geq(madt[off + 2], ncpus, "IOAPIC id after the LAPICs");
			ioapics++;
		} else if (type == 4) {
			nmis++;
		} else {
			cr_assert_fail("unexpected MADT entry type %u", type);
		}
		off += elen;
	}
	cr_assert_eq(off, len, "entries fill the table exactly");
	cr_assert_eq(lapics, ncpus);
	cr_assert_eq(ioapics, 1);
	cr_assert_eq(nmis, 1);
}

Test(linux_acpi, the_madt_has_one_lapic_per_vcpu_and_one_ioapic)
{
	check_madt(1);
	check_madt(2);
	check_madt(7);
	check_madt(ACPI_MAX_CPUS);
}

/* ---- a small AML decoder: just what the DSDT uses -------------------------- */

/* PkgLength at @p: its value (counting its own bytes) and *@nbytes. */
static size_t pkg_len(const uint8_t *p, unsigned int *nbytes)
{
	unsigned int extra = p[0] >> 6, i;
	size_t v;

	*nbytes = extra + 1;
	if (!extra)
		return p[0] & 0x3f;
	v = p[0] & 0x0f;
	for (i = 0; i < extra; i++)
		v |= (size_t)p[1 + i] << (4 + 8 * i);
	return v;
}

struct found {
	unsigned int com1;
	unsigned int devices;
	unsigned int hid_ok;
	uint32_t base[8], size[8], gsi[8];
	unsigned int uid[8];
};

/* A Name(_CRS, Buffer) body: Memory32Fixed, Extended Interrupt, End tag. */
static void walk_crs(const uint8_t *p, size_t len, struct found *f, unsigned int dev)
{
	unsigned int nb;
	size_t blen, bsize, off;

	cr_assert_eq(p[0], 0x11, "BufferOp");
	blen = pkg_len(p + 1, &nb);
	cr_assert_leq(blen + 1, len);
	cr_assert_eq(p[1 + nb], 0x0a, "BufferSize as a byte");
	bsize = p[2 + nb];
	cr_assert_eq(bsize, blen - nb - 2, "BufferSize matches the package");
	p += 3 + nb;
	off = 0;
	cr_assert_eq(p[off], 0x86, "Memory32Fixed");
	cr_assert_eq(get(p, off + 1, 2), 9);
	f->base[dev] = (uint32_t)get(p, off + 4, 4);
	f->size[dev] = (uint32_t)get(p, off + 8, 4);
	off += 12;
	cr_assert_eq(p[off], 0x89, "Extended Interrupt");
	cr_assert_eq(get(p, off + 1, 2), 6);
	cr_assert_eq(p[off + 3], 0x03, "consumer, edge, active high, exclusive");
	cr_assert_eq(p[off + 4], 1, "one interrupt");
	f->gsi[dev] = (uint32_t)get(p, off + 5, 4);
	off += 9;
	cr_assert_eq(p[off], 0x79, "End tag");
	cr_assert_eq(off + 2, bsize);
}

/* Device(COM1): _HID EisaId("PNP0501"), _UID 0, _CRS IO 0x3f8/8 + IRQNoFlags {4}. */
static void walk_com1(const uint8_t *p, size_t len, struct found *f)
{
	static const uint8_t want[] = {
		'C',  'O',  'M',  '1',	0x08, '_',  'H',  'I',	'D',  0x0c, 0x41, 0xd0, 0x05, 0x01,
		0x08, '_',  'U',  'I',	'D',  0x00, 0x08, '_',	'C',  'R',  'S',  0x11, 0x10, 0x0a,
		0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08, 0x22, 0x10, 0x00, 0x79, 0x00,
	};

	cr_assert_eq(len, sizeof(want));
	cr_assert_eq(memcmp(p, want, len), 0, "COM1's AML");
	f->com1++;
}

static void walk_device(const uint8_t *p, size_t len, struct found *f)
{
	unsigned int dev;
	size_t off = 4; /* the NameSeg */

	if (!memcmp(p, "COM1", 4)) {
		walk_com1(p, len, f);
		return;
	}
	dev = f->devices++;
	cr_assert_lt(dev, 8);
	while (off < len) {
		cr_assert_eq(p[off], 0x08, "NameOp in a device");
		if (!memcmp(p + off + 1, "_HID", 4)) {
			cr_assert_eq(p[off + 5], 0x0d, "a string _HID");
			cr_assert_str_eq((const char *)p + off + 6, "LNRO0005");
			f->hid_ok++;
			off += 6 + strlen("LNRO0005") + 1;
		} else if (!memcmp(p + off + 1, "_UID", 4)) {
			uint8_t op = p[off + 5];

			cr_assert(op == 0x00 || op == 0x01 || op == 0x0a, "small integer _UID");
			f->uid[dev] = op == 0x0a ? p[off + 6] : op;
			off += op == 0x0a ? 7 : 6;
		} else if (!memcmp(p + off + 1, "_CRS", 4)) {
			unsigned int nb;
			size_t blen = pkg_len(p + off + 6, &nb);

			walk_crs(p + off + 5, len - off - 5, f, dev);
			off += 5 + 1 + blen;
		} else {
			cr_assert_fail("unexpected name %.4s", (const char *)p + off + 1);
		}
	}
	cr_assert_eq(off, len, "the device's package ends with its last object");
}

static void walk_dsdt(const uint8_t *dsdt, struct found *f)
{
	uint32_t len = (uint32_t)get(dsdt, 4, 4);
	const uint8_t *p = dsdt + ACPI_HDR_SIZE;
	unsigned int nb;
	size_t slen, off;

	memset(f, 0, sizeof(*f));
	cr_assert_eq(p[0], 0x10, "ScopeOp");
	slen = pkg_len(p + 1, &nb);
	cr_assert_eq(ACPI_HDR_SIZE + 1 + slen, len, "the scope fills the DSDT");
	cr_assert_eq(memcmp(p + 1 + nb, "\\_SB_", 5), 0);
	off = 1 + nb + 5;
	while (off < 1 + slen) {
		size_t dlen;

		cr_assert(p[off] == 0x5b && p[off + 1] == 0x82, "DeviceOp");
		dlen = pkg_len(p + off + 2, &nb);
		walk_device(p + off + 2 + nb, dlen - nb, f);
		off += 2 + dlen;
	}
	cr_assert_eq(off, 1 + slen);
}

Test(linux_acpi, each_virtio_mmio_window_is_an_lnro0005_device_with_its_resources)
{
	struct acpi_config c = {
		.ncpus = 1, .ndevs = ACPI_MAX_MMIO, .com1_port = 0x3f8, .com1_irq = 4
	};
	struct found f;
	unsigned int i;
	long n;

	for (i = 0; i < c.ndevs; i++)
		c.dev[i] = (struct acpi_mmio_dev){ 0xd0000000 + i * 0x1000, 0x1000, 5 + i };
	n = build(&c);
	walk_dsdt(dsdt_of(n), &f);
	cr_assert_eq(f.devices, ACPI_MAX_MMIO);
	cr_assert_eq(f.hid_ok, ACPI_MAX_MMIO);
	cr_assert_eq(f.com1, 1);
	for (i = 0; i < c.ndevs; i++) {
		cr_assert_eq(f.base[i], 0xd0000000 + i * 0x1000);
		cr_assert_eq(f.size[i], 0x1000);
		cr_assert_eq(f.gsi[i], 5 + i);
		cr_assert_eq(f.uid[i], i);
	}
}

Test(linux_acpi, no_devices_gives_an_empty_scope)
{
	struct acpi_config c = { .ncpus = 1 };
	struct found f;

	walk_dsdt(dsdt_of(build(&c)), &f);
	cr_assert_eq(f.devices, 0);
	cr_assert_eq(f.com1, 0);
}

Test(linux_acpi, pkg_length_uses_the_shortest_encoding_counting_itself)
{
	uint8_t out[4];
	unsigned int nb;

	cr_assert_eq(aml_pkg_length(0, out), 1);
	cr_assert_eq(out[0], 1);
	cr_assert_eq(aml_pkg_length(62, out), 1);
	cr_assert_eq(out[0], 63);
	cr_assert_eq(aml_pkg_length(63, out), 2);
	cr_assert_eq(pkg_len(out, &nb), 65);
	cr_assert_eq(aml_pkg_length(4093, out), 2);
	cr_assert_eq(pkg_len(out, &nb), 4095);
	cr_assert_eq(aml_pkg_length(4094, out), 3);
	cr_assert_eq(pkg_len(out, &nb), 4097);
	cr_assert_eq(nb, 3);
	cr_assert_eq(aml_pkg_length((1u << 20) - 4, out), 3);
	cr_assert_eq(pkg_len(out, &nb), (1u << 20) - 1);
	cr_assert_eq(aml_pkg_length((1u << 20) - 3, out), 4);
	cr_assert_eq(pkg_len(out, &nb), (1u << 20) + 1);
	cr_assert_eq(aml_pkg_length(1u << 28, out), 0);
}

Test(linux_acpi, bad_configurations_and_small_buffers_are_refused)
{
	struct acpi_config c = two_disks(0);
	uint8_t small[200];

	cr_assert_eq(acpi_build(&c, GPA, buf, sizeof(buf)), -EINVAL);
	c.ncpus = ACPI_MAX_CPUS + 1;
	cr_assert_eq(acpi_build(&c, GPA, buf, sizeof(buf)), -EINVAL);
	c = two_disks(1);
	c.dev[1].gsi = ACPI_IOAPIC_PINS;
	cr_assert_eq(acpi_build(&c, GPA, buf, sizeof(buf)), -EINVAL);
	c = two_disks(1);
	c.ndevs = ACPI_MAX_MMIO + 1;
	cr_assert_eq(acpi_build(&c, GPA, buf, sizeof(buf)), -EINVAL);
	c = two_disks(1);
	c.com1_irq = 16;
	cr_assert_eq(acpi_build(&c, GPA, buf, sizeof(buf)), -EINVAL);
	c = two_disks(1);
	cr_assert_eq(acpi_build(&c, GPA, small, sizeof(small)), -ENOSPC);
}

/* iasl (Debian acpica-tools) disassembles what we assembled by hand. */
Test(linux_acpi, iasl_disassembles_the_dsdt_to_the_devices_we_meant)
{
	struct acpi_config c = two_disks(2);
	char dir[] = "/tmp/forkvm-acpi-XXXXXX", path[128], cmd[512], line[256];
	const uint8_t *dsdt;
	unsigned int hids = 0, irq5 = 0, base1 = 0, com1 = 0, io = 0;
	FILE *f;
	long n;

	if (system("command -v iasl >/dev/null 2>&1"))
		cr_skip_test("iasl not installed (Debian package acpica-tools): the AML is "
			     "checked by this file's own decoder only");
	n = build(&c);
	dsdt = dsdt_of(n);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	fwrite(dsdt, 1, get(dsdt, 4, 4), f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1", dir);
	cr_assert_eq(system(cmd), 0, "iasl -d failed (see %s/iasl.log)", dir);
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		hids += strstr(line, "Name (_HID, \"LNRO0005\")") != NULL;
		irq5 += strstr(line, "0x00000005,") != NULL;
		base1 += strstr(line, "0xD0001000,") != NULL;
		com1 += strstr(line, "Name (_HID, EisaId (\"PNP0501\")") != NULL;
		io += strstr(line, "IO (Decode16,") != NULL;
	}
	fclose(f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(hids, 2);
	cr_assert_eq(irq5, 1);
	cr_assert_eq(base1, 1);
	cr_assert_eq(com1, 1);
	cr_assert_eq(io, 1);
}

/* VMGenID and the Generic Event Device that notifies it, as iasl reads them. */
Test(linux_acpi, the_vmgenid_device_and_its_event_device_disassemble_as_meant)
{
	struct acpi_config c = two_disks(1);
	char dir[] = "/tmp/forkvm-acpi-XXXXXX", path[128], cmd[512], line[256];
	unsigned int hid = 0, addr = 0, ged = 0, evt = 0, notify = 0, gsi = 0;
	const uint8_t *dsdt;
	FILE *f;
	long n;

	if (system("command -v iasl >/dev/null 2>&1"))
		cr_skip_test("iasl not installed (Debian package acpica-tools)");
	c.vmgenid_addr = 0x1234f0000ULL;
	c.ged_gsi = 20;
	n = build(&c);
	dsdt = dsdt_of(n);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	f = fopen(path, "wb");
	cr_assert_not_null(f);
	fwrite(dsdt, 1, get(dsdt, 4, 4), f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1", dir);
	cr_assert_eq(system(cmd), 0, "iasl -d failed (see %s/iasl.log)", dir);
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		hid += strstr(line, "Name (_HID, \"VMGENCTR\")") != NULL;
		/* Package elements: "0x234F0000," then "0x00000001" alone on its line. */
		addr += strstr(line, " 0x234F0000,") != NULL ||
			!strcmp(line + strspn(line, " "), "0x00000001\n");
		ged += strstr(line, "Name (_HID, \"ACPI0013\"") != NULL;
		evt += strstr(line, "Method (_EVT, 1") != NULL;
		notify += strstr(line, "Notify (\\_SB.VGEN, 0x80)") != NULL;
		gsi += strstr(line, "0x00000014,") != NULL;
	}
	fclose(f);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(hid, 1);
	cr_assert_eq(addr, 2, "ADDR: the low and high halves");
	cr_assert_eq(ged, 1);
	cr_assert_eq(evt, 1);
	cr_assert_eq(notify, 1);
	cr_assert_eq(gsi, 1, "the GED's interrupt is GSI 20");
}

Test(linux_acpi, a_vmgenid_event_outside_the_ioapic_is_refused)
{
	struct acpi_config c = two_disks(1);

	c.vmgenid_addr = 0xf0000;
	c.ged_gsi = ACPI_IOAPIC_PINS;
	cr_assert_eq(acpi_build(&c, GPA, buf, sizeof(buf)), -EINVAL);
	c.ged_gsi = 20;
	cr_assert_gt(acpi_build(&c, GPA, buf, sizeof(buf)), 0);
}
