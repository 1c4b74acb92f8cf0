/* The virtio 1.x PCI transport as device models see it. A device (blk,
 * later net) fills a small ops struct; the transport owns feature
 * negotiation, device status, queue configuration, notifications and
 * interrupts, and knows nothing of blk or net (as in kvmtool). */
#ifndef KVMINI_VIRTIO_H
#define KVMINI_VIRTIO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "virtio/virtq.h"

struct vm;
struct virtio_dev;

#define VIRTIO_F_INDIRECT_DESC  28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1      32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER      2
#define VIRTIO_STATUS_DRIVER_OK   4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED      128

#define VIRTIO_MSI_NO_VECTOR 0xffff
#define VIRTIO_MAX_QUEUES    64

struct virtio_ops {
	const char *name;         /* "virtio-blk": bus and trace names */
	uint16_t device_id;       /* virtio device type: 2 = block */
	uint32_t class_code;      /* PCI class */
	uint64_t (*features)(struct virtio_dev *vd);
	/* Device-specific configuration: reads and writes within
	 * [0, config_size); the transport checks the bounds. */
	uint32_t config_size;
	void (*config_read)(struct virtio_dev *vd, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *vd, uint32_t off, const uint8_t *data, uint32_t len);
	/* DRIVER_OK: the queues the driver enabled are ready; start serving
	 * them. Non-zero makes the device NEEDS_RESET. */
	int (*start)(struct virtio_dev *vd);
	/* Device reset (or VM teardown): stop serving queues and wait until no
	 * request is in flight, so guest memory is no longer touched. */
	void (*stop)(struct virtio_dev *vd);
};

struct virtio_queue {
	uint16_t size;            /* driver-chosen size (<= max_size) */
	uint16_t max_size;
	uint16_t msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
	int kick_fd;              /* ioeventfd on this queue's notify address */
	struct virtq vq;          /* the device side, valid once enabled */
};

struct virtio_dev {
	struct pci_device pci;
	const struct virtio_ops *ops;
	void *priv;               /* the device model */
	struct vm *vm;
	pthread_mutex_t lock;     /* common config is written by any vCPU */
	uint64_t device_features;
	uint64_t driver_features;
	uint32_t device_feature_select, driver_feature_select;
	uint16_t config_msix_vector;
	uint8_t status;
	uint8_t config_generation;
	uint16_t queue_select;
	bool started;             /* ops->start succeeded and ops->stop not yet called */
	unsigned num_queues;
	struct virtio_queue queues[VIRTIO_MAX_QUEUES];
	atomic_uint isr;          /* bit 0 queue interrupt, bit 1 config change */
	atomic_bool needs_reset;  /* set by I/O threads without the lock, see virtio_set_needs_reset */
	uint64_t notify_addr;     /* guest address of the notify region */
	/* Counters for --trace-exits. */
	atomic_uint_fast64_t notify_exits;   /* kicks that were not caught by an ioeventfd */
	atomic_uint_fast64_t interrupts;
	atomic_uint_fast64_t malformed;      /* requests failed because the guest broke a rule */
};

/* Sets up the PCI function (IDs, BAR, capabilities, MSI-X), registers it on
 * the VM's PCI bus and binds one ioeventfd per queue. */
int virtio_dev_init(struct virtio_dev *vd, struct vm *vm, const struct virtio_ops *ops,
		    void *priv, unsigned num_queues, uint16_t max_queue_size);
/* Stops the device and releases eventfds. */
void virtio_dev_free(struct virtio_dev *vd);

bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit);
/* Interrupts the driver for queue q (MSI-X vector, or INTx + ISR). Called
 * from I/O threads. */
void virtio_notify_queue(struct virtio_dev *vd, unsigned q);
/* Device went wrong in a way the driver must reset (a broken ring). */
void virtio_set_needs_reset(struct virtio_dev *vd);

#endif
