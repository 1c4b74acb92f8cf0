/* Small platform devices whose only job is to end or restart the VM:
 * the i8042 reset line, the ACPI sleep/reset registers and the test exit
 * port. Each registers itself on the VM's port bus. */
#ifndef KVMINI_PLATFORM_H
#define KVMINI_PLATFORM_H

struct vm;

int i8042_register(struct vm *vm);
int acpi_pm_register(struct vm *vm);
int debug_exit_register(struct vm *vm);

#endif
