/* Split virtqueues (virtio 1.x, section 2.7) from the device side.
 *
 * Guest memory is hostile: every descriptor is copied out of guest memory
 * once before use, every address/length is checked with gpa_ptr(), chains
 * longer than the queue (or looping) are rejected, nested indirect tables
 * are rejected, and queue sizes and indexes are only ever taken from the
 * device's own copies (set when the driver enabled the queue), never re-read
 * from guest-writable memory. */
#ifndef KVMINI_VIRTQ_H
#define KVMINI_VIRTQ_H

#include <linux/virtio_ring.h>   /* the ring layout and VRING_* flags, as the guest sees them */
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/iov.h"   /* iov_to_buf, buf_to_iov for headers and status bytes */

struct vm;

#define VIRTQ_MAX_SIZE   256   /* largest queue kvmini offers */
#define VIRTQ_MAX_CHAIN  256   /* descriptors per request, indirect included */

/* One request popped from the available ring: the driver-readable
 * ("out") buffers first, then the device-writable ("in") ones, as host
 * pointers already checked to lie inside guest RAM. */
struct virtq_elem {
	uint16_t head;
	unsigned nout, nin;
	struct iovec out[VIRTQ_MAX_CHAIN];
	struct iovec in[VIRTQ_MAX_CHAIN];
	uint64_t out_len, in_len;   /* totals */
};

/* Why a chain was refused; counted per queue (and shown by --trace-exits). */
enum virtq_error {
	VQ_ERR_DESC_INDEX,      /* descriptor index >= queue size */
	VQ_ERR_ADDR,            /* buffer outside guest RAM */
	VQ_ERR_CHAIN_TOO_LONG,  /* more descriptors than allowed: loop or abuse */
	VQ_ERR_INDIRECT,        /* bad indirect table (size, nesting, with NEXT) */
	VQ_ERR_ORDER,           /* readable descriptor after a writable one */
	VQ_ERR_AVAIL_IDX,       /* driver's avail idx moved by more than size */
	VQ_ERR_COUNT
};

struct virtq {
	struct vm *vm;
	uint16_t size;              /* negotiated; power of two, <= VIRTQ_MAX_SIZE */
	bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;              /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool enabled;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Host views of the three areas, checked once at enable time. They
	 * hold guest (little-endian) values: virtq.c converts every field it
	 * reads or writes. */
	const struct vring_desc *desc;
	volatile uint16_t *avail;   /* flags, idx, ring[size], used_event */
	volatile uint8_t *used;     /* flags, idx, ring[size] {id,len}, avail_event */
	uint16_t last_avail;        /* next avail ring slot the device reads */
	uint16_t used_idx;          /* device's copy of used->idx */
	uint16_t signalled_used;    /* used_idx when the driver was last notified */
	bool signalled_valid;
	bool notify;                /* device wants kicks (virtq_set_notify) */
	/* Diagnostic counters: kept across virtq_reset()/virtq_enable(). */
	uint64_t errors[VQ_ERR_COUNT];
};

/* Validates and maps the three areas (alignment, inside RAM, each with its
 * trailing event field: 16*size, 6+2*size, 6+8*size bytes). 0 or -EINVAL; on
 * failure the queue is left disabled. Guest memory is not written. */
int virtq_enable(struct virtq *q, struct vm *vm, uint16_t size, uint64_t desc_gpa,
		 uint64_t avail_gpa, uint64_t used_gpa, bool event_idx, bool indirect);
/* Back to the disabled state (everything but q->errors cleared). */
void virtq_reset(struct virtq *q);

/* Pops the next available chain into e. Limits: at most q->size descriptors
 * from the queue's own table, at most len/16 from an indirect table (which
 * may hold at most VIRTQ_MAX_CHAIN entries), and at most VIRTQ_MAX_CHAIN
 * buffers in all, so a device should advertise e.g. seg_max <= 254. A
 * zero-length buffer is accepted as {NULL, 0}, whatever its address. A bad
 * address of an indirect table counts as VQ_ERR_ADDR, an out-of-table next
 * index (queue or indirect table) as VQ_ERR_DESC_INDEX.
 * Returns 1 when one was popped, 0 when the ring is empty (or the queue is
 * not enabled), or -EIO when the chain is malformed: the head was
 * consumed and e->head is valid, so the device can complete it with an
 * error (len 0); the reason is counted in q->errors. -EPROTO when the ring
 * itself is broken (avail idx jumped by more than the queue size): the
 * device should go to NEEDS_RESET. */
int virtq_pop(struct virtq *q, struct virtq_elem *e);
/* Puts (head, len) on the used ring and publishes it: virtq_fill(q, head,
 * len, 0), then virtq_flush(q, 1). */
void virtq_push(struct virtq *q, uint16_t head, uint32_t len);
/* Writes (head, len) into the used ring slot `offset` places past the
 * published used idx, without publishing it: one packet spread over several
 * mergeable RX buffers is filled buffer by buffer (offsets 0, 1, ...), then
 * published at once with virtq_flush, so the driver never sees part of a
 * packet (as Linux's vhost_add_used_n). An offset of the queue size or more
 * is ignored: that slot may hold an element the driver has not read yet. */
void virtq_fill(struct virtq *q, uint16_t head, uint32_t len, unsigned offset);
/* Publishes the next n filled elements (used->idx += n, with release); then
 * the caller asks virtq_should_notify() once, as after pushes. n must not be
 * more than were filled (n above the queue size is ignored). */
void virtq_flush(struct virtq *q, unsigned n);
/* Hands the last n popped chains back, unused (an RX buffer taken but not
 * needed): the next pops return the same heads again, walked and checked
 * afresh. n is cut to the number popped and not yet used. avail_event is
 * left where it is: moving it back below buffers the driver already
 * published would mean the driver never kicks for new ones (see
 * docs/virtqueues.md, "Taking buffers back"). */
void virtq_unpop(struct virtq *q, unsigned n);
/* Whether the driver wants an interrupt for what was pushed since the last
 * notification (EVENT_IDX used_event, or NO_INTERRUPT). Updates the
 * bookkeeping: call once per batch and notify when it says true. */
bool virtq_should_notify(struct virtq *q);
/* Tells the driver whether to kick. Off: with EVENT_IDX avail_event stops
 * moving, otherwise the NO_NOTIFY flag. On: with EVENT_IDX avail_event is set
 * to the driver's avail->idx as it is now ("kick me for the next buffer you
 * add", also right after virtq_unpop), otherwise the flag is cleared. After
 * turning them on, the caller must look at the ring once more
 * (virtq_has_avail, or a new try at what it was waiting for) to close the
 * race with a driver that published just before it saw the change. */
void virtq_set_notify(struct virtq *q, bool enable);
/* Whether the driver made chains available that were not popped yet. */
bool virtq_has_avail(struct virtq *q);

#endif
