/* The hardware-reduced ACPI registers the FADT points at: a sleep control
 * register (writing SLP_EN with SLP_TYP 5, the _S5_ value in the DSDT, powers
 * off), a sleep status register, and a reset register. This is how Debian's
 * stock kernel powers off and reboots with no firmware underneath. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

#define SLP_EN          (1 << 5)
#define SLP_TYP_SHIFT   2
#define SLP_TYP_MASK    0x7
#define SLP_TYP_S5      5
#define WAK_STS         0x80

struct acpi_pm {
	struct vm *vm;
};

static void acpi_pm_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct acpi_pm *pm = dev;
	uint64_t port = PORT_ACPI_SLEEP_CTL + offset;
	if (!is_write) {
		/* Sleep status reads as "woken"; nothing else is readable. */
		memset(data, 0, len);
		if (port == PORT_ACPI_SLEEP_STS)
			data[0] = WAK_STS;
		return;
	}
	if (len != 1)
		return;
	if (port == PORT_ACPI_SLEEP_CTL && (data[0] & SLP_EN) &&
	    ((data[0] >> SLP_TYP_SHIFT) & SLP_TYP_MASK) == SLP_TYP_S5)
		vm_request_stop(pm->vm, VM_STOP_POWEROFF);
	else if (port == PORT_ACPI_RESET && data[0] == ACPI_RESET_VALUE)
		vm_request_stop(pm->vm, VM_STOP_REBOOT);
}

int acpi_pm_register(struct vm *vm)
{
	struct acpi_pm *pm = calloc(1, sizeof(*pm));
	if (!pm)
		return -ENOMEM;
	pm->vm = vm;
	vm->acpi_pm = pm;
	return bus_register(&vm->pio, PORT_ACPI_SLEEP_CTL, PORT_ACPI_RESET - PORT_ACPI_SLEEP_CTL + 1,
			    acpi_pm_io, pm, "acpi-pm");
}
