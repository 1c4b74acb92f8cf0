/* Small platform devices whose only job is to end or restart the VM:
 * the i8042 reset line, the ACPI sleep/reset registers, the ACPI power
 * button and the test exit port. Each registers itself on the VM's port bus. */
#ifndef KVMINI_PLATFORM_H
#define KVMINI_PLATFORM_H

struct vm;

int i8042_register(struct vm *vm);
int acpi_pm_register(struct vm *vm);
int debug_exit_register(struct vm *vm);
/* The ACPI Generic Event Device with the power button (devices/acpi_ged.c). */
int acpi_ged_register(struct vm *vm);
/* Presses the power button: main thread. -ENODEV before the device exists. */
int acpi_ged_press_power(struct vm *vm);

#endif
