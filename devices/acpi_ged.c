/* The Generic Event Device (ACPI 6.3 section 5.6.9, _HID ACPI0013): how a
 * hardware-reduced platform, which has no fixed power button and no SCI,
 * tells the OS that something happened. kvmini's has one event, the power
 * button. Pressing it sets a bit in the event register and raises the GED's
 * interrupt; Linux's evged driver runs the DSDT's _EVT method (boot/acpi.c),
 * which reads the register and sends Notify(\_SB.PWRB, 0x80) to the power
 * button device (PNP0C0C), which the button driver turns into KEY_POWER:
 * systemd-logind (or acpid) then shuts the guest down in order.
 *
 * The register is written by the main thread (a press) and read by a vCPU
 * thread (the guest's _EVT): one atomic byte, no lock. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

struct acpi_ged {
	struct vm *vm;
	atomic_uint_fast8_t pending;   /* ACPI_GED_EV_* not yet read by the guest */
};

static void acpi_ged_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct acpi_ged *g = dev;
	if (is_write)
		return;
	memset(data, 0, len);
	/* Read to clear: each press is reported once. */
	data[0] = (uint8_t)atomic_exchange(&g->pending, 0);
}

int acpi_ged_register(struct vm *vm)
{
	struct acpi_ged *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->vm = vm;
	vm->acpi_ged = g;
	return bus_register(&vm->pio, PORT_ACPI_GED, 1, acpi_ged_io, g, "acpi-ged");
}

int acpi_ged_press_power(struct vm *vm)
{
	struct acpi_ged *g = vm->acpi_ged;
	if (!g)
		return -ENODEV;
	atomic_fetch_or(&g->pending, ACPI_GED_EV_POWER);
	/* The GED's interrupt is edge-triggered (its _CRS): a pulse per press,
	 * so a press the guest had no driver for yet does not leave the line
	 * high and swallow the next one. */
	int r = vm_irq_line(vm, IRQ_GED, 1);
	if (!r)
		r = vm_irq_line(vm, IRQ_GED, 0);
	return r;
}
