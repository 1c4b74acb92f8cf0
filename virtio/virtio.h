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

/* The wire formats come from the kernel's UAPI headers, as in kvmtool:
 * feature bits and status bits (virtio_config.h), VIRTIO_RING_F_* and the
 * ring layout (virtio_ring.h, through virtq.h), VIRTIO_MSI_NO_VECTOR and the
 * modern capability and common-config layout (virtio_pci.h). The legacy
 * half of virtio_pci.h (an I/O BAR with other offsets for the same names of
 * registers) is left out, so its numbers cannot be picked up by mistake. */
#ifndef VIRTIO_PCI_NO_LEGACY
#define VIRTIO_PCI_NO_LEGACY
#endif
#include <linux/virtio_config.h>
#include <linux/virtio_pci.h>

#include "devices/pci.h"
#include "virtio/virtq.h"
#include "vmm/stat.h"

struct vm;
struct virtio_dev;

#define VIRTIO_MAX_QUEUES    64

struct virtio_ops {
	const char *name;         /* "virtio-blk": bus and trace names */
	uint16_t device_id;       /* virtio device type: 2 = block */
	uint32_t class_code;      /* PCI class */
	uint64_t (*features)(struct virtio_dev *vd);
	/* Device-specific configuration: reads and writes within
	 * [0, config_size); the transport checks the bounds. Both run with
	 * vd->config_lock held (see virtio_config_lock). */
	uint32_t config_size;
	void (*config_read)(struct virtio_dev *vd, uint32_t off, uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *vd, uint32_t off, const uint8_t *data, uint32_t len);
	/* DRIVER_OK: the queues the driver enabled are ready; start serving
	 * them. Non-zero makes the device NEEDS_RESET. Runs with vd->lock held. */
	int (*start)(struct virtio_dev *vd);
	/* Device reset (or VM teardown): stop serving queues and wait until no
	 * request is in flight, so guest memory is no longer touched. Runs with
	 * vd->lock held, so the threads it waits for must never take vd->lock
	 * (they may take vd->config_lock). */
	void (*stop)(struct virtio_dev *vd);
	/* VM pause and resume (virtio_dev_pause): like stop and start, but
	 * guest-visible state negotiated since DRIVER_OK (and the rings'
	 * positions) is kept. Only called on a started device, with every vCPU
	 * paused, under vd->lock. */
	void (*pause)(struct virtio_dev *vd);
	int (*resume)(struct virtio_dev *vd);
};

struct virtio_queue {
	uint16_t size;            /* driver-chosen size (<= max_size) */
	uint16_t max_size;
	/* Written by vCPUs under vd->lock at any time, even while the queue
	 * runs; read without the lock by the thread that interrupts for the
	 * queue. Each store is one atomic 16-bit store of a value already
	 * checked (a vector of the table, or NO_VECTOR), so an interrupt
	 * raised during a rewrite goes to the old or the new vector. */
	_Atomic uint16_t msix_vector;
	bool enabled;
	uint64_t desc, driver, device;
	int kick_fd;              /* ioeventfd on this queue's notify address */
	struct virtq vq;          /* the device side, valid once enabled */
};

/* Locks, outermost first: vd->lock, vd->config_lock, the PCI bus lock.
 *   vd->lock         common configuration (features, status, queue
 *                    registers), taken by vCPUs; ops->start and ops->stop
 *                    run under it.
 *   vd->config_lock  the device-specific configuration and
 *                    config_generation: config reads and writes from vCPUs,
 *                    and any thread of the device model changing its
 *                    configuration (virtio_config_lock). It is separate
 *                    because a reset holds vd->lock while ops->stop waits
 *                    for the device's threads: a thread that needed vd->lock
 *                    to change the configuration would deadlock with it.
 * Interrupts (virtio_notify_queue) take no lock with MSI-X. */
struct virtio_dev {
	struct pci_device pci;
	const struct virtio_ops *ops;
	void *priv;               /* the device model */
	struct vm *vm;
	pthread_mutex_t lock;
	pthread_mutex_t config_lock;
	uint64_t device_features;
	/* Frozen from FEATURES_OK until the next reset (see virtio_has_feature). */
	uint64_t driver_features;
	uint32_t device_feature_select, driver_feature_select;
	_Atomic uint16_t config_msix_vector;   /* like virtio_queue.msix_vector */
	/* Written under vd->lock, and under config_lock too when it goes to 0
	 * (reset); read by virtio_config_changed under config_lock. */
	_Atomic uint8_t status;
	_Atomic uint8_t config_generation;
	uint16_t queue_select;
	bool started;             /* ops->start succeeded and ops->stop not yet called */
	bool paused;              /* ops->pause called, ops->resume not yet */
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
/* Stops the device and releases eventfds. The device model's own threads
 * must be done with virtio_notify_queue and virtio_config_changed first. */
void virtio_dev_free(struct virtio_dev *vd);
/* VM pause/resume from the main thread while every vCPU is paused: a
 * started device stops touching guest memory until the resume. A device
 * that cannot resume is marked NEEDS_RESET (one line). */
void virtio_dev_pause(struct virtio_dev *vd);
void virtio_dev_resume(struct virtio_dev *vd);

/* Whether the driver accepted feature bit `bit`. Reads driver_features
 * without a lock: device threads only run between ops->start and ops->stop,
 * and all that time FEATURES_OK is set, so the value is frozen (writes are
 * ignored after FEATURES_OK, the bit cannot be cleared without a reset, and
 * a reset calls ops->stop before it clears the features). Starting a thread
 * orders the features before everything it does, so it never sees a torn or
 * stale value. */
bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit);
/* Interrupts the driver for queue q (its MSI-X vector, or INTx + ISR bit 0).
 * Called from I/O threads; takes no lock with MSI-X. */
void virtio_notify_queue(struct virtio_dev *vd, unsigned q);
/* Device went wrong in a way the driver must reset (a broken ring). Only
 * from threads that ops->stop waits for (a reset clears the bit after
 * ops->stop returned). */
void virtio_set_needs_reset(struct virtio_dev *vd);

/* A device model changes its configuration at run time (virtio-net's link
 * status or MAC) from any thread, in three steps:
 *
 *     virtio_config_lock(vd);
 *     ... change what ops->config_read returns ...
 *     virtio_config_changed(vd);
 *     virtio_config_unlock(vd);
 *
 * virtio_config_changed needs config_lock held: config_generation must
 * change in the same critical section as the fields, or a driver reading
 * generation, fields, generation (spec 4.1.4.3.1) could see half of a change
 * under one generation. It then raises the configuration-change interrupt
 * (the MSI-X config vector, or INTx with ISR bit 1) once the driver is
 * ready (DRIVER_OK); before that only the generation changes, and the driver
 * reads the new values when it gets there. vd->lock comes before
 * config_lock, so ops->start may do this too; the other way round (vd->lock
 * taken while holding config_lock) deadlocks. */
void virtio_config_lock(struct virtio_dev *vd);
void virtio_config_unlock(struct virtio_dev *vd);
void virtio_config_changed(struct virtio_dev *vd);

#endif
