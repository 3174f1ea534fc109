/* SPDX-License-Identifier: MIT */
/*
 * Minimal ACPI tables for a Linux guest (docs/linux-guest.md): RSDP, XSDT,
 * FADT (HW_REDUCED_ACPI: no PM blocks, no SCI hardware), MADT (one LAPIC per
 * vCPU, the in-kernel IOAPIC) and a DSDT whose AML describes each
 * virtio-mmio window as an LNRO0005 device (_HID, _UID, _CRS with
 * Memory32Fixed and an edge Interrupt), the id Linux's virtio_mmio driver
 * matches, and COM1 as PNP0501.  Firecracker describes its devices the same
 * way.  Optionally a VMGenID device and the Generic Event Device that
 * notifies it (a clone's new generation ID reseeds the guest's RNG).
 */
#ifndef FORKVM_VMM_LINUX_ACPI_H
#define FORKVM_VMM_LINUX_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_MAX_CPUS 64
#define ACPI_MAX_MMIO 8
#define ACPI_LAPIC_BASE 0xfee00000u
#define ACPI_IOAPIC_BASE 0xfec00000u
#define ACPI_IOAPIC_PINS 24
#define ACPI_HDR_SIZE 36
#define ACPI_RSDP_SIZE 36
#define ACPI_FADT_SIZE 276
#define ACPI_FADT_HW_REDUCED (1u << 20)

struct acpi_mmio_dev {
	uint32_t base;
	uint32_t size;
	uint32_t gsi; /* below ACPI_IOAPIC_PINS */
};

struct acpi_config {
	unsigned int ncpus; /* 1..ACPI_MAX_CPUS; APIC ids 0..ncpus-1 */
	/* The 8250 at I/O 0x3f8, IRQ 4, as a PNP0501 device (0: none).  A
	 * hardware-reduced guest has no legacy PIC, so Linux maps no ISA IRQ
	 * by itself: the serial's interrupt must be described. */
	uint16_t com1_port;
	uint8_t com1_irq;
	unsigned int ndevs;
	struct acpi_mmio_dev dev[ACPI_MAX_MMIO];
	/* VMGenID (0: none): the GPA of its 16-byte generation ID, and the GSI
	 * of the Generic Event Device whose interrupt notifies a new one. */
	uint64_t vmgenid_addr;
	uint32_t ged_gsi;
};

/**
 * acpi_build() - the tables of @cfg into @buf, laid out as they will sit at
 * guest-physical @gpa: the RSDP at @gpa itself, then XSDT, FADT, MADT, DSDT,
 * each 16-byte aligned, every checksum set.
 * Return: the bytes used, -EINVAL (bad @cfg) or -ENOSPC (@len too small).
 */
long acpi_build(const struct acpi_config *cfg, uint64_t gpa, uint8_t *buf, size_t len);

/**
 * acpi_checksum() - the byte sum of @len bytes at @p (0 for a valid table).
 */
uint8_t acpi_checksum(const uint8_t *p, size_t len);

/**
 * aml_pkg_length() - encode the AML PkgLength of a body of @body bytes (the
 * encoding counts its own bytes) into @out (up to 4 bytes).
 * Return: the bytes written, or 0 if @body is too long for AML (>= 2^28).
 */
unsigned int aml_pkg_length(size_t body, uint8_t out[4]);

#endif /* FORKVM_VMM_LINUX_ACPI_H */
