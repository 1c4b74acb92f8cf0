/* A minimal i8042 keyboard controller: enough for Linux to probe it and to
 * reboot through the 0xFE "pulse reset line" command. No keyboard. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/platform.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

#define I8042_CMD_READ_CTR  0x20
#define I8042_CMD_WRITE_CTR 0x60
#define I8042_CMD_SELF_TEST 0xaa
#define I8042_CMD_RESET     0xfe
#define I8042_STS_OBF       0x01
#define I8042_STS_SYS       0x04

struct i8042 {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t ctr;      /* controller configuration byte */
	uint8_t out;      /* output buffer */
	bool out_full;
	bool want_ctr;    /* next data byte is the new configuration byte */
};

static void i8042_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = dev;
	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	uint64_t port = PORT_I8042_DATA + offset;
	pthread_mutex_lock(&k->lock);
	if (port == PORT_I8042_CMD) {
		if (!is_write) {
			data[0] = I8042_STS_SYS | (k->out_full ? I8042_STS_OBF : 0);
		} else {
			switch (data[0]) {
			case I8042_CMD_RESET:
				pthread_mutex_unlock(&k->lock);
				vm_request_stop(k->vm, VM_STOP_REBOOT);
				return;
			case I8042_CMD_READ_CTR:
				k->out = k->ctr;
				k->out_full = true;
				break;
			case I8042_CMD_WRITE_CTR:
				k->want_ctr = true;
				break;
			case I8042_CMD_SELF_TEST:
				k->out = 0x55;
				k->out_full = true;
				break;
			default:
				break;
			}
		}
	} else {
		if (!is_write) {
			data[0] = k->out;
			k->out_full = false;
		} else if (k->want_ctr) {
			k->ctr = data[0];
			k->want_ctr = false;
		}
	}
	pthread_mutex_unlock(&k->lock);
}

static void i8042_io_cmd(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	i8042_io(dev, PORT_I8042_CMD - PORT_I8042_DATA + offset, data, len, is_write);
}

int i8042_register(struct vm *vm)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->vm = vm;
	pthread_mutex_init(&k->lock, NULL);
	vm->i8042 = k;
	/* Port 0x61 (PC speaker/NMI status) belongs to the in-kernel PIT, so
	 * register the two ports separately. */
	int r = bus_register(&vm->pio, PORT_I8042_DATA, 1, i8042_io, k, "i8042");
	if (!r)
		r = bus_register(&vm->pio, PORT_I8042_CMD, 1, i8042_io_cmd, k, "i8042");
	return r;
}
