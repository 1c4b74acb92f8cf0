#ifndef KVMINI_VIRTIO_BLK_H
#define KVMINI_VIRTIO_BLK_H

#include <stdio.h>

#include "vmm/config.h"

struct vm;
struct virtio_blk;

/* Opens the image and adds a virtio-blk PCI function with num_queues
 * queues (one I/O thread and io_uring each). Errors with the image are the
 * user's (-ENOENT, -EISDIR, -EINVAL...) and were logged. */
int virtio_blk_create(struct virtio_blk **out, struct vm *vm, const struct disk_config *cfg,
		      unsigned num_queues);
void virtio_blk_free(struct virtio_blk *b);
/* The I/O engine serving queue q while the device runs (NULL otherwise):
 * for tests that inject faults through its hook. */
struct io_engine *virtio_blk_queue_engine(struct virtio_blk *b, unsigned q);
/* Per-disk counters for --trace-exits. */
void virtio_blk_print_stats(FILE *f, struct virtio_blk *b);

#endif
