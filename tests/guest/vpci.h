/* The modern virtio-pci transport (virtio 1.x 4.1) and split virtqueues
 * (2.7) for the micro-guest's polling drivers, vblk.c and vnet.c: the
 * capability walk, reset and status handshake, feature negotiation, queue
 * set-up with every MSI-X vector at NO_VECTOR, notify addresses, and the
 * ring operations every device type shares (descriptor free list, publish,
 * kick with notification suppression, used-ring poll). What a chain holds
 * is the driver's business: the transport only sees descriptor heads and an
 * opaque token per head.
 * Walkthrough: docs/microguest.md ("virtio-blk", "virtio-net"). */
#ifndef MICROGUEST_VPCI_H
#define MICROGUEST_VPCI_H

#include "guest.h"

#define VIRTIO_PCI_VENDOR     0x1af4

/* Device-independent feature bits (6). */
#define VIRTIO_F_INDIRECT_DESC     28
#define VIRTIO_F_RING_EVENT_IDX    29
#define VIRTIO_F_VERSION_1         32
#define VIRTIO_F_ACCESS_PLATFORM   33
#define VIRTIO_F_RING_PACKED       34

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
#define VRING_DESC_F_NEXT   1
#define VRING_DESC_F_WRITE  2
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY     1

#define VQ_MAX_QSIZE 1024

/* One split virtqueue and the driver's state for it. Each queue is
 * independent (own rings, free list, indices, notify address), so a driver
 * may keep chains in flight on several at once. */
struct vq {
	const char *name;                      /* the device's, for messages */
	uint16_t index;                        /* virtqueue number; also the value a notify writes */
	uint16_t qsize;
	struct vring_desc *desc;
	volatile uint16_t *avail;              /* flags, idx, ring[qsize], used_event */
	volatile uint16_t *used;               /* flags, idx, {u32 id, u32 len}[qsize], avail_event */
	uint64_t notify;                       /* MMIO address of this queue's notify register */
	uint16_t avail_next, avail_kicked, used_last;
	uint16_t free_head, nfree;
	void **token;                          /* [qsize], by head descriptor; NULL: free */
	bool event_idx;                        /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool kick_always;                      /* notify on every kick, ignoring suppression */
	uint64_t kicks, kicks_skipped, submitted, completed;
};

/* A virtio-pci function: where its structures are and what was agreed. */
struct vpci {
	struct pci_dev pci;
	const char *name;                      /* "virtio-blk", "virtio-net": message prefix */
	uint64_t common, isr, devcfg, notify;  /* MMIO addresses; notify = start of the notify region */
	uint32_t devcfg_len, notify_len, notify_mult;
	uint64_t offered, features;
	uint16_t num_queues;                   /* common config num_queues (after vpci_accept) */
	uint64_t timeout_tsc;                  /* for waits on the device (reset) */
};

static inline bool vpci_has(const struct vpci *v, unsigned bit) { return (v->features >> bit) & 1; }

/* Finds the index-th function 0x1af4:device on bus 0 (v->name and
 * v->timeout_tsc must be set), checks it is modern (revision >= 1), maps
 * its four vendor capabilities (a device config of at least min_devcfg
 * bytes) and turns MSI-X off. Prints the function's IDs unless quiet. */
void vpci_open(struct vpci *v, uint16_t device, unsigned index, uint32_t min_devcfg, bool quiet);
/* Writes 0 to device_status and waits for it to read 0. */
void vpci_reset(struct vpci *v);
/* device_status |= add. */
void vpci_set_status(struct vpci *v, uint8_t add);
uint8_t vpci_status(struct vpci *v);
/* 3.1.1 steps 1-3: reset, ACKNOWLEDGE, DRIVER; reads the offered features
 * into v->offered (failing without VERSION_1) and returns them. */
uint64_t vpci_begin(struct vpci *v);
/* 3.1.1 steps 4-6: writes features, sets FEATURES_OK and checks the device
 * kept it; then the config vector to NO_VECTOR and v->num_queues (>= 1). */
void vpci_accept(struct vpci *v, uint64_t features);
/* Sets up virtqueue qi with min(device max, want (0: 256), VQ_MAX_QSIZE)
 * entries, no MSI-X vector and used-buffer notifications suppressed; enables it. */
void vpci_vq_setup(struct vpci *v, struct vq *vq, uint16_t qi, uint16_t want);
/* Clears the ISR, sets DRIVER_OK and checks device_status is exactly
 * ACKNOWLEDGE|DRIVER|FEATURES_OK|DRIVER_OK. */
void vpci_driver_ok(struct vpci *v);

/* Device configuration space (4.1.4.6): reads past devcfg_len give 0. */
uint8_t vpci_cfg_read8(struct vpci *v, unsigned off);
uint16_t vpci_cfg_read16(struct vpci *v, unsigned off);
uint32_t vpci_cfg_read32(struct vpci *v, unsigned off);
/* config_generation: read before and after a multi-field read (4.1.4.3.1). */
uint8_t vpci_cfg_generation(struct vpci *v);

/* The value of "key=BIT,BIT,..." on the command line as a mask (0 when
 * absent); bits 64 and up are ignored. */
uint64_t vpci_cmdline_bits(const char *key);

/* A free descriptor from vq's free list; the caller checks vq->nfree first.
 * Its next field already names the following free descriptor, so chaining
 * is setting VRING_DESC_F_NEXT. */
uint16_t vq_desc_get(struct vq *vq);
/* Puts the chain at head (token must not be NULL) in the available ring;
 * the device sees it at the next vq_kick. */
void vq_publish(struct vq *vq, uint16_t head, void *token);
/* Publishes the available index and notifies the device (a 16-bit MMIO
 * write of the queue index to its notify address) unless it asked not to
 * be (avail_event with EVENT_IDX, else NO_NOTIFY). Does nothing when
 * nothing was published since the last kick. */
void vq_kick(struct vq *vq);
/* The token of the next used chain (its used len in *len), with the chain
 * back on the free list; NULL when the used ring has nothing new. */
void *vq_poll(struct vq *vq, uint32_t *len);
/* Used chains the device has returned that vq_poll has not taken yet. */
static inline uint16_t vq_used_pending(const struct vq *vq) { return (uint16_t)(vq->used[1] - vq->used_last); }

#endif
