/* The TAP backend: a pull backend (net/backend.h) on a Linux TAP device,
 * optionally a port of a Linux bridge. One /dev/net/tun fd per queue pair
 * (IFF_MULTI_QUEUE when queues > 1), non-blocking, each frame preceded by
 * the 12-byte virtio-net header (IFF_VNET_HDR, TUNSETVNETHDRSZ 12).
 *
 * recv returns the bytes read, header included; a frame longer than the
 * buffers is cut short by the kernel.
 *
 * For the device (virtio/net.c), two things the kernel does not do:
 * - recv leaves the header's num_buffers (its last 2 bytes) as it found
 *   them (kernels up to 6.x skip them, later ones may zero them): the
 *   device writes num_buffers itself.
 * - the kernel may set VIRTIO_NET_HDR_F_DATA_VALID (a frame a NIC already
 *   checked, bridged to the TAP) whatever set_offloads said; a driver that
 *   did not negotiate VIRTIO_NET_F_GUEST_CSUM must see flags 0 (virtio
 *   1.x, 5.1.6.4.1), so the device clears them then.
 * GSO frames come only after set_offloads allowed them: opening resets the
 * TAP's offloads to none, also on a TAP a previous VM left them set on.
 *
 * A TAP that did not exist is created without TUNSETPERSIST, so the kernel
 * deletes it when kvmini's last fd closes: at close, and also when kvmini
 * is killed. A TAP that existed is attached to, and close gives back what
 * opening changed (IFF_UP, the bridge it was in) but leaves it in place. */
#ifndef KVMINI_NET_TAP_H
#define KVMINI_NET_TAP_H

#include <stdbool.h>

struct net_backend;
struct net_config;

/* Opens cfg's TAP (kind NET_TAP): creates it if missing, brings it up, and
 * joins cfg->bridge when given. Returns 0, or -errno after one error line
 * "tap NAME: ...". The user's mistakes (tap_error_is_usage, exit status 2)
 * each have their own errno:
 *   -EPERM        no CAP_NET_ADMIN: to create a TAP, to attach to one not
 *                 made for this user, to bring it up or join the bridge
 *   -EBUSY        the TAP is in use by another process
 *   -ENODEV       the bridge does not exist
 *   -EMEDIUMTYPE  the bridge is not a Linux bridge (e.g. Open vSwitch)
 *   -EEXIST       an interface of that name exists and is not a TAP (a
 *                 TUN, a veth, a NIC, ...)
 *   -ECHRNG       queues=N > 1, but the existing TAP is single-queue
 * Anything else is the host's or kvmini's (exit 1): -ENOENT (no
 * /dev/net/tun: the tun module is not loaded), -EOPNOTSUPP (the kernel's
 * TUN driver lacks IFF_VNET_HDR or IFF_MULTI_QUEUE), -ENOMEM, ... */
int tap_backend_open(struct net_backend **out, const struct net_config *cfg);

/* Whether an error of tap_backend_open is a usage error (exit status 2). */
bool tap_error_is_usage(int err);

#endif
