/* virtio-net (virtio 1.x section 5.1) on the virtio-pci transport, in front
 * of a network backend (net/backend.h). See docs/networking.md. */
#ifndef KVMINI_VIRTIO_NET_H
#define KVMINI_VIRTIO_NET_H

#include <stdint.h>
#include <stdio.h>

struct vm;
struct net_backend;
struct net_config;
struct virtio_net;

/* Registers a virtio-net PCI function on vm's PCI bus, backed by be (which
 * it does not own). Queues: rx0, tx0, rx1, tx1, ..., ctrl; as many pairs
 * as be->queue_pairs. index names the NIC in messages (eth0, eth1). */
int virtio_net_create(struct virtio_net **out, struct vm *vm, const struct net_config *cfg,
		      struct net_backend *be, unsigned index);
/* Stops serving and detaches from the backend; the backend stays open. */
void virtio_net_free(struct virtio_net *n);
/* VM pause/resume, main thread, all vCPUs paused (virtio_dev_pause). */
void virtio_net_pause(struct virtio_net *n);
void virtio_net_resume(struct virtio_net *n);

/* Totals over all queue pairs since the device was created (they survive
 * guest resets). Readable from any thread; each field is read on its own,
 * so a snapshot taken while traffic flows is not exactly consistent. */
struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
	uint64_t rx_kicks, tx_kicks, ctrl_kicks;
	uint64_t rx_irqs, tx_irqs, ctrl_irqs;
	uint64_t backend_wakeups;      /* pull: callbacks for the backend's fds */
	uint64_t tx_backpressure;      /* pull: send said -EAGAIN, waited for POLLOUT */
	/* Frames lost, by reason: none of these is ever silent. */
	uint64_t rx_dropped_no_buffers; /* push: the bounded queue was full */
	uint64_t rx_dropped_reset;      /* push: still queued when the driver reset us */
	uint64_t rx_too_big;            /* larger than the buffers the driver gave */
	uint64_t rx_backend_errors;     /* recv failed with something else than -EAGAIN */
	uint64_t tx_dropped;            /* the backend refused a valid frame */
	/* Hostile or broken input from the driver. */
	uint64_t rx_bad_chain;          /* outside RAM, or too small for a header */
	uint64_t tx_bad_header;         /* shorter than 12 bytes, or inconsistent */
	uint64_t tx_too_big;
	uint64_t tx_empty;
	uint64_t tx_bad_chain;          /* virtq_pop refused the chain */
	uint64_t ctrl_cmds;
	uint64_t ctrl_bad;              /* malformed or unsupported control commands */
	uint64_t kicks_by_exit;         /* kicks that missed the ioeventfd */
};
void virtio_net_get_stats(const struct virtio_net *n, struct virtio_net_stats *s);

/* For --trace-exits: frames and bytes each way, kicks, interrupts and every
 * drop counter, per queue pair that saw traffic. */
void virtio_net_print_stats(FILE *f, const struct virtio_net *n);

#endif
