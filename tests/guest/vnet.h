/* A polling virtio-net driver for the micro-guest: modern virtio-pci
 * (virtio 1.x 5.1, PCI device 0x1af4:0x1041), queue pair 0 only (receiveq
 * 0, transmitq 1), no interrupts, no control queue, no offloads unless
 * asked (net_csum=1). Frames go out with a zeroed 12-byte virtio_net_hdr_v1
 * in front; frames come back reassembled from one or (with MRG_RXBUF)
 * several receive buffers. Used by test_net.c.
 * Walkthrough: docs/microguest.md ("virtio-net"). */
#ifndef MICROGUEST_VNET_H
#define MICROGUEST_VNET_H

#include "vpci.h"

#define VIRTIO_PCI_DEV_NET    0x1041   /* 0x1040 + device type 1 */

/* Feature bits (5.1.3; the generic ones are in vpci.h). */
#define VIRTIO_NET_F_CSUM          0
#define VIRTIO_NET_F_GUEST_CSUM    1
#define VIRTIO_NET_F_CTRL_GUEST_OFFLOADS 2
#define VIRTIO_NET_F_MTU           3
#define VIRTIO_NET_F_MAC           5
#define VIRTIO_NET_F_GUEST_TSO4    7
#define VIRTIO_NET_F_GUEST_TSO6    8
#define VIRTIO_NET_F_GUEST_ECN     9
#define VIRTIO_NET_F_GUEST_UFO     10
#define VIRTIO_NET_F_HOST_TSO4     11
#define VIRTIO_NET_F_HOST_TSO6     12
#define VIRTIO_NET_F_HOST_ECN      13
#define VIRTIO_NET_F_HOST_UFO      14
#define VIRTIO_NET_F_MRG_RXBUF     15
#define VIRTIO_NET_F_STATUS        16
#define VIRTIO_NET_F_CTRL_VQ       17
#define VIRTIO_NET_F_CTRL_RX       18
#define VIRTIO_NET_F_CTRL_VLAN     19
#define VIRTIO_NET_F_GUEST_ANNOUNCE 21
#define VIRTIO_NET_F_MQ            22
#define VIRTIO_NET_F_CTRL_MAC_ADDR 23
#define VIRTIO_NET_F_SPEED_DUPLEX  63

#define VIRTIO_NET_S_LINK_UP       1
#define VIRTIO_NET_S_ANNOUNCE      2

/* struct virtio_net_hdr_v1 (5.1.6): 12 bytes, num_buffers included with
 * VERSION_1 whether or not MRG_RXBUF is negotiated. */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};
#define VIRTIO_NET_HDR_LEN         12
_Static_assert(sizeof(struct virtio_net_hdr) == VIRTIO_NET_HDR_LEN, "virtio_net_hdr_v1 is 12 bytes");
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE    0

#define ETH_HLEN        14
#define ETH_MIN_FRAME   60      /* without the FCS, which virtio never carries */
#define ETH_MAX_FRAME   1514    /* 1500-byte MTU */
#define VNET_MAX_FRAME  (ETH_MAX_FRAME + 4)  /* room for a VLAN tag */
#define VNET_MAX_RXBUFS 1024

struct vnet_opts {
	unsigned index;          /* which virtio-net function on bus 0 (0 = first) */
	uint16_t qsize;          /* wanted size of both queues (0: min(device max, 256)) */
	uint32_t rxbuf;          /* bytes per receive buffer, header included (0: 2048) */
	uint16_t rxbufs;         /* receive buffers posted (0: the RX queue's size) */
	bool mrg;                /* accept MRG_RXBUF if offered */
	bool need_mrg;           /* ... and fail if it is not */
	bool event_idx;          /* accept VIRTIO_F_RING_EVENT_IDX if offered */
	bool csum;               /* accept CSUM and GUEST_CSUM if offered */
	bool strict_num_buffers; /* without MRG_RXBUF, num_buffers must be 1 (5.1.6.4) */
	bool tx_split;           /* header and frame in two TX descriptors (default one) */
	bool kick_always;        /* notify on every kick, ignoring suppression */
	uint64_t refuse;         /* feature bits not to accept even if offered */
	bool quiet;
};

struct vnet_stats {
	uint64_t tx_frames, tx_bytes, rx_frames, rx_bytes;
	uint64_t rx_buffers;          /* used RX buffers taken */
	uint64_t rx_merged;           /* frames that came in more than one buffer */
	uint16_t rx_max_buffers;      /* most buffers one frame used */
	uint64_t rx_num_buffers_odd;  /* without MRG: num_buffers other than 1 */
	uint64_t rx_data_valid;       /* frames with VIRTIO_NET_HDR_F_DATA_VALID */
	uint64_t rx_needs_csum;       /* frames with NEEDS_CSUM (GUEST_CSUM only) */
	uint64_t tx_kicks, tx_kicks_skipped, rx_kicks, rx_kicks_skipped;
	uint64_t tx_full;             /* times vnet_tx_queue had to wait for a free slot */
};

struct vnet {
	struct vpci v;
	struct vq rx, tx;             /* receiveq1 (queue 0), transmitq1 (queue 1) */
	uint8_t mac[6];
	uint16_t status;              /* config status (LINK_UP assumed without STATUS) */
	uint16_t mtu;                 /* config mtu with MTU, else 1500 */
	uint32_t rxbuf_len;
	uint16_t rxbufs;              /* buffers that take part (posted or being read) */
	uint8_t *rxmem;               /* rxbufs x rxbuf_len */
	uint8_t *txmem;               /* tx.qsize slots of VIRTIO_NET_HDR_LEN + VNET_MAX_FRAME */
	bool strict_num_buffers, tx_split;
	uint16_t max_frame;           /* largest frame vnet_tx_queue sends: min(VNET_MAX_FRAME, mtu + 18) */
	uint64_t timeout_tsc;
	struct vnet_stats st;
};

static inline bool vnet_has(const struct vnet *n, unsigned bit) { return vpci_has(&n->v, bit); }

/* Options from the command line: net_dev=N net_qsize=N net_rxbuf=BYTES
 * net_rxbufs=N net_mrg=0|1|need (default 1: accept if offered) event_idx=0|1
 * net_csum=0|1 net_nb1=0|1 (strict num_buffers) net_txsplit=0|1
 * net_kick=always net_refuse=BIT[,BIT...] net_timeout=N (x 10^9 TSC ticks). */
void vnet_opts_from_cmdline(struct vnet_opts *o);
/* Finds, resets and initialises the device, queue pair 0, reads MAC, status
 * and MTU, posts the receive buffers and kicks; DRIVER_OK on return. */
void vnet_init(struct vnet *n, const struct vnet_opts *o);
/* Copies frame (len bytes, no header, ETH_HLEN..VNET_MAX_FRAME) behind a
 * zeroed header into a TX slot and publishes it without notifying; reclaims
 * completed TX chains, waiting for one when the queue is full. */
void vnet_tx_queue(struct vnet *n, const void *frame, uint32_t len);
/* The same with the header given (NULL: zeroed), e.g. NEEDS_CSUM with
 * csum_start/csum_offset when CSUM was negotiated. */
void vnet_tx_queue_hdr(struct vnet *n, const struct virtio_net_hdr *h, const void *frame, uint32_t len);
/* Notifies the TX queue unless the device suppresses it. */
void vnet_tx_kick(struct vnet *n);
/* vnet_tx_queue + vnet_tx_kick. */
void vnet_send(struct vnet *n, const void *frame, uint32_t len);
/* Takes back the TX chains the device has finished with; returns how many. */
unsigned vnet_tx_reclaim(struct vnet *n);
/* One received frame (no header) copied to buf, its length returned, with
 * its buffers reposted (kicked unless kick is false: vnet_rx_kick later);
 * 0 when nothing has arrived. With MRG_RXBUF it gathers num_buffers used
 * buffers, each but the last filled to its end. A frame longer than max
 * fails the test. *hdr (if not NULL) gets the first buffer's header. */
uint32_t vnet_recv_hdr(struct vnet *n, void *buf, uint32_t max, struct virtio_net_hdr *hdr, bool kick);
uint32_t vnet_recv(struct vnet *n, void *buf, uint32_t max);
/* Notifies the RX queue about reposted buffers. */
void vnet_rx_kick(struct vnet *n);
/* Polls vnet_recv until a frame comes or timeout_tsc ticks pass (0). */
uint32_t vnet_recv_wait(struct vnet *n, void *buf, uint32_t max, uint64_t timeout_tsc);
/* Reads the link status again (STATUS feature). */
uint16_t vnet_link_status(struct vnet *n);
/* Counters, kicks included. */
void vnet_stats(struct vnet *n, struct vnet_stats *out);
/* Writes 0 to device_status and waits for it to read 0. */
void vnet_reset(struct vnet *n);
/* "aa:bb:cc:dd:ee:ff" into buf (18 bytes); parse returns false on bad text. */
void mac_format(const uint8_t mac[6], char buf[18]);
bool mac_parse(const char *s, uint8_t mac[6]);

#endif
