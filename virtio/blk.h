#ifndef KVMINI_VIRTIO_BLK_H
#define KVMINI_VIRTIO_BLK_H

#include <stdint.h>
#include <stdio.h>

#include "vmm/config.h"

struct block;
struct vm;
struct virtio_blk;

/* Adds a virtio-blk PCI function with num_queues queues (one I/O thread
 * and io_uring each) serving disk, an image the caller opened (it outlives
 * the device: the VM process keeps its images, and their locks, across
 * guest reboots). cfg gives the serial and the thread model. */
int virtio_blk_create(struct virtio_blk **out, struct vm *vm, const struct disk_config *cfg,
		      struct block *disk, unsigned num_queues);
/* Stops the I/O threads (each drains its requests first) and frees the
 * device; the image stays open. */
void virtio_blk_free(struct virtio_blk *b);
/* VM pause/resume, main thread, all vCPUs paused (virtio_dev_pause). */
void virtio_blk_pause(struct virtio_blk *b);
void virtio_blk_resume(struct virtio_blk *b);
/* The I/O engine serving queue q while the device runs (NULL otherwise):
 * for tests that inject faults through its hook. */
struct io_engine *virtio_blk_queue_engine(struct virtio_blk *b, unsigned q);
/* Totals over all queues since the device was created (they survive guest
 * resets). Readable from any thread; each field is read on its own. Reads,
 * writes and their bytes count requests as the guest sent them (before
 * merging); errors count requests that completed with a failure. */
struct virtio_blk_stats {
	uint64_t requests, merged, reads, writes, flushes, read_bytes, write_bytes, errors;
	uint64_t kicks, irqs, kicks_by_exit, malformed;
};
void virtio_blk_get_stats(const struct virtio_blk *b, struct virtio_blk_stats *s);
/* Per-disk counters for --trace-exits. */
void virtio_blk_print_stats(FILE *f, struct virtio_blk *b);

#endif
