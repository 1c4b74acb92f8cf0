/* What the user asked for on the command line or in a definition file.
 * vmm/settings.c describes every field (default, check, printed form);
 * nothing here has touched /dev/kvm yet. A vm_config owns its strings
 * (vm_config_free). Owned by the main thread; read-only once the VM runs. */
#ifndef KVMINI_CONFIG_H
#define KVMINI_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "block/block.h"
#include "net/net_config.h"

enum console_mode { CONSOLE_STDIO, CONSOLE_FILE, CONSOLE_NONE };

#define CONFIG_MAX_DISKS   16
#define DISK_SERIAL_MAX    20   /* VIRTIO_BLK_ID_BYTES */

#define DISK_MAX_QUEUES    63   /* each queue takes an MSI-X vector; one more for config */

/* Which I/O threads serve a disk's queues (virtio/blk.c). */
enum disk_iothread {
	DISK_IOTHREAD_QUEUE,    /* one thread and io_uring per queue (the default) */
	DISK_IOTHREAD_DISK,     /* one thread and io_uring for all of the disk's queues */
};

struct disk_config {
	struct block_config block;
	char serial[DISK_SERIAL_MAX + 1];
	unsigned queues;                /* 0 (auto): one per vCPU, at most DISK_MAX_QUEUES */
	enum disk_iothread iothread;
};

struct vm_config {
	char *kernel;
	char *initrd;               /* NULL: none */
	char *cmdline;              /* NULL: CONFIG_DEFAULT_CMDLINE */
	unsigned cpus;
	uint64_t mem_size;
	bool hugepages;
	bool thp;                   /* madvise(MADV_HUGEPAGE) the RAM (default; ignored with hugepages) */
	bool no_reboot;
	bool trace_exits;
	bool debug_exit;            /* --debug-exit: port 0xf4 ends the VM */
	enum console_mode console;
	char *console_path;         /* CONSOLE_FILE */
	unsigned verbose;           /* 0 errors and warnings, 1 info, 2 debug */
	char *api_socket;           /* --api-socket: the control socket's path, or NULL */
	unsigned ndisks;
	struct disk_config disks[CONFIG_MAX_DISKS];
	unsigned nnics;             /* --net, in order: eth0, eth1, ... */
	struct net_config nics[CONFIG_MAX_NICS];
};

#define CONFIG_DEFAULT_CMDLINE "console=ttyS0"
#define CONFIG_DEFAULT_MEM     (512ULL << 20)

#endif
