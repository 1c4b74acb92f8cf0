/* What the user asked for on the command line (or in a config file). The
 * parser fills it; nothing here has touched /dev/kvm yet. */
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
	unsigned queues;                /* 0: one per vCPU, at most DISK_MAX_QUEUES */
	enum disk_iothread iothread;
};

struct vm_config {
	const char *kernel;
	const char *initrd;
	const char *cmdline;
	unsigned cpus;
	uint64_t mem_size;
	bool hugepages;
	bool thp;                   /* madvise(MADV_HUGEPAGE) the RAM (default; ignored with hugepages) */
	bool no_reboot;
	bool trace_exits;
	bool debug_exit;            /* --debug-exit: port 0xf4 ends the VM */
	enum console_mode console;
	const char *console_path;   /* CONSOLE_FILE */
	unsigned ndisks;
	struct disk_config disks[CONFIG_MAX_DISKS];
	unsigned nnics;             /* --net, in order: eth0, eth1, ... */
	struct net_config nics[CONFIG_MAX_NICS];
};

#define CONFIG_DEFAULT_CMDLINE "console=ttyS0"
#define CONFIG_DEFAULT_MEM     (512ULL << 20)

#endif
