/* ACPI tables for the guest: RSDP, XSDT, a hardware-reduced FADT, the MADT
 * and a DSDT written in hand-encoded AML. See docs/acpi.md. */
#ifndef KVMINI_ACPI_H
#define KVMINI_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct acpi_config {
	unsigned ncpus; /* vCPUs; APIC ID and ACPI processor UID = index */
};

/* Lays the tables out in buf, which the guest sees at gpa (normally
 * LAYOUT_ACPI_BASE with LAYOUT_ACPI_SIZE bytes). The RSDP goes first, so gpa
 * must be 16-byte aligned and inside the BIOS area 0xE0000..0xFFFFF where
 * guests scan for it. Returns 0 and the RSDP's guest address in *rsdp_gpa;
 * -EINVAL for a bad argument (ncpus 0, misplaced gpa), -ENOSPC when the
 * tables do not fit in size bytes. */
int acpi_build(uint8_t *buf, size_t size, uint64_t gpa, const struct acpi_config *cfg,
	       uint64_t *rsdp_gpa);

/* What the guest writes to PORT_ACPI_SLEEP_CTL (the FADT SLEEP_CONTROL_REG,
 * ACPI 6.3 section 4.8.3.7): SLP_TYP in bits 4:2 and SLP_EN in bit 5. The
 * DSDT's \_S5_ package gives SLP_TYP 5 for soft-off. */
#define ACPI_SLEEP_CTL_SLP_EN       0x20
#define ACPI_SLEEP_CTL_SLP_TYP(v)   (((v) >> 2) & 0x7)
#define ACPI_S5_SLP_TYP             5

#endif
