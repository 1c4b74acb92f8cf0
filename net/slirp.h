/* The libslirp backend: user networking (QEMU's -netdev user). The guest
 * gets a NATed 10.0.2.0/24 with a DHCP server, a DNS forwarder and port
 * forwards, and kvmini needs no privileges or host set-up.
 *
 * A push backend (net/backend.h). libslirp is not thread-safe, so the whole
 * backend belongs to the one event loop it is opened on: open, every op and
 * close run on that loop's thread, and frames for the guest are handed to
 * the attached port from that thread too, sometimes from inside ops->send
 * (slirp answers ARP and DHCP at once), so port->receive must not call back
 * into the backend: libslirp is not reentrant either. docs/networking.md. */
#ifndef KVMINI_NET_SLIRP_H
#define KVMINI_NET_SLIRP_H

#include <stdint.h>
#include <stdio.h>

struct event_loop;
struct net_backend;
struct net_config;

/* Opens a backend for cfg (kind NET_USER) on loop, with every hostfwd rule
 * listening. Returns 0, or -errno after one error line: -EADDRINUSE (a
 * host port is taken), -EADDRNOTAVAIL (a host address is not this host's),
 * -EACCES (a privileged port), -EINVAL (a configuration libslirp refuses),
 * -ENOMEM. */
int slirp_backend_open(struct net_backend **out, const struct net_config *cfg,
		       struct event_loop *loop);

/* rx: frames to the guest; tx: frames from the guest. */
struct slirp_backend_stats {
	uint64_t rx_frames, rx_bytes;
	uint64_t rx_dropped;       /* no device attached (be->dropped_rx) */
	uint64_t tx_frames, tx_bytes;
	uint64_t tx_short;         /* shorter than an Ethernet header */
	uint64_t tx_long;          /* longer than 64 KiB plus the header */
	uint64_t guest_errors;     /* libslirp's guest_error reports */
};

/* Returns 0, or -EINVAL when be is not a slirp backend. */
int slirp_backend_get_stats(struct net_backend *be, struct slirp_backend_stats *st);

/* The backend's counters, for --trace-exits (does nothing for another kind
 * of backend). */
void slirp_backend_print_stats(FILE *f, struct net_backend *be);

#endif
