/* A polling virtio-blk driver for the micro-guest: modern virtio-pci
 * (virtio 1.x, PCI device 0x1af4:0x1042) with one or more split virtqueues
 * (queue 0 by default; blk_queues=N with VIRTIO_BLK_F_MQ), no interrupts
 * (MSI-X vectors set to NO_VECTOR, INTx disabled, used-buffer notifications
 * suppressed). Used by test_blk.c and test_blkbench.c.
 * Walkthrough: docs/microguest.md ("virtio-blk"). */
#ifndef MICROGUEST_VBLK_H
#define MICROGUEST_VBLK_H

#include "vpci.h"

#define VIRTIO_PCI_DEV_BLK    0x1042   /* 0x1040 + device type 2 */

/* Feature bits (5.2.3; the generic ones are in vpci.h). */
#define VIRTIO_BLK_F_SIZE_MAX      1
#define VIRTIO_BLK_F_SEG_MAX       2
#define VIRTIO_BLK_F_GEOMETRY      4
#define VIRTIO_BLK_F_RO            5
#define VIRTIO_BLK_F_BLK_SIZE      6
#define VIRTIO_BLK_F_FLUSH         9
#define VIRTIO_BLK_F_TOPOLOGY      10
#define VIRTIO_BLK_F_CONFIG_WCE    11
#define VIRTIO_BLK_F_MQ            12
#define VIRTIO_BLK_F_DISCARD       13
#define VIRTIO_BLK_F_WRITE_ZEROES  14

/* Request types and status values (5.2.6). */
#define VIRTIO_BLK_T_IN            0
#define VIRTIO_BLK_T_OUT           1
#define VIRTIO_BLK_T_FLUSH         4
#define VIRTIO_BLK_T_GET_ID        8
#define VIRTIO_BLK_T_DISCARD       11
#define VIRTIO_BLK_T_WRITE_ZEROES  13
#define VIRTIO_BLK_S_OK            0
#define VIRTIO_BLK_S_IOERR         1
#define VIRTIO_BLK_S_UNSUPP        2
#define VIRTIO_BLK_ID_BYTES        20
#define VIRTIO_BLK_WZ_F_UNMAP      1

#define VBLK_MAX_QSIZE VQ_MAX_QSIZE
#define VBLK_MAX_QUEUES 64      /* as many as kvmini's disks can have */

/* One request. It lives in guest memory the device reads (hdr, dwz) and
 * writes (status), so it must stay put until done. */
struct vblk_req {
	struct {
		uint32_t type;
		uint32_t reserved;
		uint64_t sector;
	} hdr;                       /* device-readable, 16 bytes */
	volatile uint8_t status;     /* device-writable, 1 byte */
	void *buf;                   /* data; NULL with len 0 for FLUSH */
	uint32_t len;                /* bytes of data */
	uint32_t seg;                /* split data into descriptors of at most seg bytes (0: one) */
	bool dev_writes;             /* data is device-writable (IN, GET_ID) */
	volatile bool done;
	uint16_t queue;              /* the virtqueue it was submitted to (set by vblk_submit_q) */
	uint32_t used_len;           /* len of the used element */
	uint64_t tag;                /* free for the caller */
};

/* Discard / write-zeroes segment (5.2.6). */
struct vblk_dwz {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};

/* Several queues are independent split rings (vpci.h), so a caller may keep
 * requests in flight on several at once; the device serves them in
 * whatever order and on whatever host threads it likes. */
struct vblk {
	struct vpci v;                         /* transport: capabilities, features */
	/* device configuration (fields of features not negotiated stay 0) */
	uint64_t capacity;                     /* 512-byte sectors */
	uint32_t size_max, seg_max, blk_size;
	uint16_t num_queues;                   /* device config num_queues (MQ only) */
	uint32_t max_discard_sectors, max_discard_seg, discard_align;
	uint32_t max_wz_sectors, max_wz_seg;
	uint8_t wz_may_unmap;
	/* queues 0..nqueues-1; the functions without _q use queue 0; the
	 * token of a chain is its struct vblk_req */
	uint16_t nqueues;
	uint16_t qsize;                        /* the smallest queue's size (they are all equal on kvmini and QEMU) */
	struct vq q[VBLK_MAX_QUEUES];
	bool kick_always;
	uint64_t timeout_tsc;
	/* counters: sums over the queues (each queue also counts its own) */
	uint64_t kicks, kicks_skipped, submitted, completed;
};

struct vblk_opts {
	unsigned index;          /* which virtio-blk function on bus 0 (0 = first) */
	uint16_t qsize;          /* wanted queue size (0: min(device max, 256)) */
	uint64_t refuse;         /* feature bits not to accept even if offered */
	bool event_idx;          /* accept VIRTIO_F_RING_EVENT_IDX if offered */
	uint16_t queues;         /* virtqueues to set up (0 means 1); more than 1 needs MQ */
	bool mq;                 /* accept VIRTIO_BLK_F_MQ if offered (implied by queues > 1) */
	bool kick_always;        /* notify on every kick, ignoring suppression */
	bool quiet;
};

static inline bool vblk_has(const struct vblk *b, unsigned bit) { return vpci_has(&b->v, bit); }

/* Options from the command line: blk_dev=N blk_qsize=N blk_queues=N
 * event_idx=0|1 blk_mq=0|1 blk_kick=always blk_refuse=BIT[,BIT...]
 * blk_timeout=SECONDS(at 1 GHz). */
void vblk_opts_from_cmdline(struct vblk_opts *o);
/* Finds, resets and initialises the device and queues 0..o->queues-1;
 * DRIVER_OK on return. Any deviation from the spec is a test failure, and
 * so is asking for more queues than the device has or without MQ. */
void vblk_init(struct vblk *b, const struct vblk_opts *o);
/* Adds r to queue qi's available ring without notifying; false when the
 * ring has too few free descriptors. Sets status to 0xff, done to false
 * and queue to qi. */
bool vblk_submit_q(struct vblk *b, unsigned qi, struct vblk_req *r);
/* Publishes queue qi's available index and notifies the device (MMIO write
 * of the queue index to the queue's notify address) unless it asked not to
 * be. Does nothing when nothing was submitted since the last kick. */
void vblk_kick_q(struct vblk *b, unsigned qi);
/* One completed request of queue qi, or NULL when its used ring has
 * nothing new. */
struct vblk_req *vblk_poll_q(struct vblk *b, unsigned qi);
/* The same on queue 0. */
bool vblk_submit(struct vblk *b, struct vblk_req *r);
void vblk_kick(struct vblk *b);
struct vblk_req *vblk_poll(struct vblk *b);
/* Polls r's queue until r is done; fails the test after the timeout. */
void vblk_wait(struct vblk *b, struct vblk_req *r);
/* Prepares r for type/sector/buf/len (dev_writes from the type). */
void vblk_req_set(struct vblk_req *r, uint32_t type, uint64_t sector, void *buf, uint32_t len);
/* Submit, kick, wait on queue 0: returns the status byte. */
uint8_t vblk_sync(struct vblk *b, struct vblk_req *r);
/* Writes 0 to device_status and waits for it to read 0. */
void vblk_reset(struct vblk *b);
const char *vblk_status_name(uint8_t s);

#endif
