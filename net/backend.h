/* A network backend: where a NIC's frames go to and come from. virtio-net
 * (virtio/net.c) talks to every backend through this one interface, as
 * QEMU's NetClientState and kvmtool's net backends do.
 *
 * Two kinds:
 * - pull (TAP): the device reads frames itself with ops->recv when its RX
 *   queue has buffers and polls ops->fd; with no buffers posted it stops
 *   polling for input, which is back-pressure all the way into the host's
 *   qdisc.
 * - push (libslirp): the backend hands frames to the device through the
 *   port given with ops->attach, on the backend's own event loop thread
 *   (be->loop); the device must serve that NIC's queues on that loop.
 *
 * Lifetime: a backend is opened once per --net option when the VM process
 * starts and lives until it exits; devices come and go with guest boots and
 * attach to it (so a TAP and slirp's port forwards survive a reboot). */
#ifndef KVMINI_NET_BACKEND_H
#define KVMINI_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct event_loop;
struct net_config;
struct net_backend;

/* Size of the header that precedes each frame when be->vnet_hdr: struct
 * virtio_net_hdr_v1 (linux/virtio_net.h), num_buffers included. */
#define NET_VNET_HDR_LEN 12

/* The device side of a push backend. */
struct net_port {
	/* One Ethernet frame (no vnet header) for the guest. The frame is only
	 * valid during the call: copy it or drop it (and count the drop). */
	void (*receive)(void *ctx, const uint8_t *frame, size_t len);
	void *ctx;
};

struct net_backend_ops {
	/* One frame from the guest on queue pair qp. With be->vnet_hdr the iov
	 * starts with the guest's 12-byte header; without, it is the bare
	 * frame (the device then offers no offloads). Returns 0; -EAGAIN when
	 * the backend cannot take it now (pull: wait for POLLOUT on ops->fd and
	 * send it again); other -errno: dropped (the device counts it). */
	int (*send)(struct net_backend *be, unsigned qp, const struct iovec *iov, unsigned iovcnt);
	/* Pull: reads one frame (header first when vnet_hdr) into iov. Returns
	 * its length, -EAGAIN when none is waiting, other -errno. A frame longer
	 * than iov is truncated by the kernel: the device gives room for the
	 * largest it negotiated. NULL for push backends. */
	ssize_t (*recv)(struct net_backend *be, unsigned qp, const struct iovec *iov,
			unsigned iovcnt);
	/* Pull: the fd of queue pair qp (poll POLLIN/POLLOUT). NULL for push. */
	int (*fd)(struct net_backend *be, unsigned qp);
	/* The guest offloads the driver accepted (VIRTIO_NET_F_GUEST_CSUM,
	 * GUEST_TSO4/6, GUEST_ECN, GUEST_UFO bits of the feature word): TAP
	 * turns them into TUNSETOFFLOAD. 0 on reset. May be NULL. */
	int (*set_offloads)(struct net_backend *be, uint64_t guest_features);
	/* Push: where frames for the guest go from now on; NULL detaches
	 * (frames are then dropped and counted). Called on be->loop's thread.
	 * NULL for pull backends. */
	void (*attach)(struct net_backend *be, const struct net_port *port);
	/* Undoes what opening did (a TAP kvmini created is deleted, a bridge
	 * port removed) and frees. */
	void (*close)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	const char *kind;          /* "tap" or "user" */
	char name[32];             /* for messages: the TAP's name, "user" */
	unsigned queue_pairs;      /* pull backends: fds; push: 1 */
	bool vnet_hdr;             /* frames carry NET_VNET_HDR_LEN bytes of header */
	bool offloads;             /* can take checksum/TSO offloads (TAP with vnet_hdr) */
	struct event_loop *loop;   /* push: the loop thread that owns the backend */
	/* Statistics (written by the thread serving the backend). */
	uint64_t dropped_rx;       /* push: frames dropped because no device took them */
};

#endif
