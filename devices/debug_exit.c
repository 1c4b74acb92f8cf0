/* Test exit port (--debug-exit): a 1-4 byte write of v ends the VM and makes
 * kvmini exit with status v & 0xff. Same port as QEMU's isa-debug-exit, but
 * the status is v itself rather than (v << 1) | 1, so 0 means success. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

struct debug_exit {
	struct vm *vm;
};

static void debug_exit_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct debug_exit *d = dev;
	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	if (offset != 0)
		return;
	d->vm->debug_exit_status = data[0];
	vm_request_stop(d->vm, VM_STOP_DEBUG_EXIT);
}

int debug_exit_register(struct vm *vm)
{
	struct debug_exit *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vm = vm;
	vm->debug_exit = d;
	return bus_register(&vm->pio, PORT_DEBUG_EXIT, 4, debug_exit_io, d, "debug-exit");
}
