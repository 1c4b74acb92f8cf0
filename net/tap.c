/* The TAP backend (net/tap.h). Links are looked at and changed through
 * rtnetlink rather than /sys/class/net and ioctls: netlink answers for the
 * caller's network namespace (sysfs shows the one it was mounted in), and
 * tells a TAP from a TUN from a bridge, and how many queues a TAP has
 * attached, in one request. */
#include "net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "net/backend.h"
#include "net/net_config.h"
#include "vmm/log.h"

struct tap {
	struct net_backend be;      /* first: ops get a net_backend * */
	int fds[NET_MAX_QUEUES];
	int ifindex;
	bool created;               /* non-persistent: the kernel deletes it with our fds */
	/* What opening changed on a TAP that existed, for close to give back. */
	bool upped;
	bool joined;
	int old_master;             /* ifindex, 0: none */
};

static struct tap *to_tap(struct net_backend *be)
{
	return (struct tap *)be;
}

/* ---- rtnetlink ---------------------------------------------------------- */

struct link_info {
	int index;
	unsigned flags;             /* IFF_UP, ... */
	int master;                 /* 0: none */
	char kind[32];              /* IFLA_INFO_KIND: "tun", "bridge", ""(a NIC, lo) */
	/* IFLA_INFO_DATA of a "tun" (kernel 4.15 and later) */
	bool tun_info;
	unsigned tun_type;          /* IFF_TUN or IFF_TAP */
	bool tun_mq;
	unsigned tun_queues;        /* attached queues: > 0 means in use */
};

struct nl_req {
	struct nlmsghdr nh;
	struct ifinfomsg ifi;
	char attrs[128];
};

static void nl_put(struct nl_req *r, unsigned short type, const void *data, size_t len)
{
	size_t off = NLMSG_ALIGN(r->nh.nlmsg_len);
	struct rtattr *rta = (struct rtattr *)((char *)r + off);
	/* Callers add at most an address and two ints. */
	if (off + RTA_SPACE(len) > sizeof(*r))
		abort();
	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	r->nh.nlmsg_len = (uint32_t)(off + RTA_SPACE(len));
}

static void nl_init(struct nl_req *r, uint16_t type, uint16_t flags, int index)
{
	memset(r, 0, sizeof(*r));
	r->nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	r->nh.nlmsg_type = type;
	r->nh.nlmsg_flags = NLM_F_REQUEST | flags;
	r->ifi.ifi_family = AF_UNSPEC;
	r->ifi.ifi_index = index;
}

static int nl_open(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	return fd < 0 ? -errno : fd;
}

/* Sends req and waits for its answer. Returns the kernel's error (0 for an
 * ACK), or 1 with the reply message moved to the start of buf. */
static int nl_talk(int fd, struct nl_req *req, void *buf, size_t bufsz)
{
	static uint32_t seq;
	req->nh.nlmsg_seq = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	if (sendto(fd, req, req->nh.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -errno;
	for (;;) {
		ssize_t n = recv(fd, buf, bufsz, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if ((size_t)n > bufsz)
			return -EMSGSIZE;
		size_t left = (size_t)n;
		for (struct nlmsghdr *h = buf; left >= sizeof(*h) && h->nlmsg_len >= sizeof(*h) &&
						h->nlmsg_len <= left;
		     left -= NLMSG_ALIGN(h->nlmsg_len) < left ? NLMSG_ALIGN(h->nlmsg_len) : left,
		     h = (struct nlmsghdr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len))) {
			if (h->nlmsg_seq != req->nh.nlmsg_seq)
				continue;
			if (h->nlmsg_type == NLMSG_ERROR) {
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
					return -EPROTO;
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			}
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			memmove(buf, h, h->nlmsg_len);
			return 1;
		}
	}
}

/* Walks the attributes in [data, data + len); uses up len. */
#define for_each_rta(rta, data, len)                                                   \
	for (struct rtattr *rta = (struct rtattr *)(data); (len) >= sizeof(struct rtattr) && \
	     rta->rta_len >= sizeof(struct rtattr) && rta->rta_len <= (len);            \
	     (len) -= RTA_ALIGN(rta->rta_len) < (len) ? RTA_ALIGN(rta->rta_len) : (len), \
	     rta = (struct rtattr *)((char *)rta + RTA_ALIGN(rta->rta_len)))

static void parse_tun_data(struct link_info *li, struct rtattr *data)
{
	size_t len = RTA_PAYLOAD(data);
	for_each_rta(a, RTA_DATA(data), len) {
		size_t plen = RTA_PAYLOAD(a);
		const uint8_t *p = RTA_DATA(a);
		if (a->rta_type == IFLA_TUN_TYPE && plen >= 1)
			li->tun_type = p[0];
		else if (a->rta_type == IFLA_TUN_MULTI_QUEUE && plen >= 1)
			li->tun_mq = p[0];
		else if (a->rta_type == IFLA_TUN_NUM_QUEUES && plen >= 4)
			memcpy(&li->tun_queues, p, 4);
		else
			continue;
		li->tun_info = true;
	}
}

/* The link called name: 0, -ENODEV when there is none, other -errno. */
static int link_get(int nl, const char *name, struct link_info *li)
{
	struct nl_req req;
	nl_init(&req, RTM_GETLINK, 0, 0);
	nl_put(&req, IFLA_IFNAME, name, strlen(name) + 1);
	/* The reply carries statistics and per-family settings: a few KiB. */
	enum { BUFSZ = 32768 };
	char *buf = malloc(BUFSZ);
	if (!buf)
		return -ENOMEM;
	int r = nl_talk(nl, &req, buf, BUFSZ);
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (r == 1 && (h->nlmsg_type != RTM_NEWLINK ||
		       h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))))
		r = -EPROTO;
	if (r <= 0) {
		free(buf);
		return r ? r : -EPROTO;
	}
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	memset(li, 0, sizeof(*li));
	li->index = ifi->ifi_index;
	li->flags = ifi->ifi_flags;
	size_t len = h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));
	for_each_rta(a, IFLA_RTA(ifi), len) {
		if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) >= 4) {
			memcpy(&li->master, RTA_DATA(a), 4);
		} else if (a->rta_type == IFLA_LINKINFO) {
			size_t ilen = RTA_PAYLOAD(a);
			for_each_rta(b, RTA_DATA(a), ilen) {
				if (b->rta_type == IFLA_INFO_KIND)
					snprintf(li->kind, sizeof(li->kind), "%.*s",
						 (int)RTA_PAYLOAD(b), (const char *)RTA_DATA(b));
				else if (b->rta_type == IFLA_INFO_DATA)
					parse_tun_data(li, b);
			}
		}
	}
	if (strcmp(li->kind, "tun"))
		li->tun_info = false;
	free(buf);
	return 0;
}

/* Changes a link: flags under change (IFF_UP), master (>= 0: that
 * ifindex, 0 leaves a bridge; -1: unchanged), mac (NULL: unchanged). */
static int link_set(int nl, int index, unsigned flags, unsigned change, int master,
		    const uint8_t *mac)
{
	struct nl_req req;
	nl_init(&req, RTM_SETLINK, NLM_F_ACK, index);
	req.ifi.ifi_flags = flags;
	req.ifi.ifi_change = change;
	if (master >= 0) {
		uint32_t m = (uint32_t)master;
		nl_put(&req, IFLA_MASTER, &m, sizeof(m));
	}
	if (mac)
		nl_put(&req, IFLA_ADDRESS, mac, 6);
	char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
	int r = nl_talk(nl, &req, buf, sizeof(buf));
	return r > 0 ? -EPROTO : r;
}

/* ---- opening ------------------------------------------------------------ */

static const char perm_create[] =
	"permission denied: creating or attaching a TAP needs CAP_NET_ADMIN "
	"(run as root or give kvmini cap_net_admin)";

static int check_bridge(int nl, const struct net_config *cfg, int *index)
{
	struct link_info br;
	int r = link_get(nl, cfg->bridge, &br);
	if (r == -ENODEV) {
		log_err("tap %s: bridge %s does not exist", cfg->ifname, cfg->bridge);
		return -ENODEV;
	}
	if (r) {
		log_err("tap %s: cannot look up bridge %s: %s", cfg->ifname, cfg->bridge, strerror(-r));
		return r;
	}
	if (!strcmp(br.kind, "openvswitch")) {
		log_err("tap %s: %s is an Open vSwitch bridge, not a Linux bridge (add the TAP "
			"with ovs-vsctl add-port %s %s and leave out bridge=)",
			cfg->ifname, cfg->bridge, cfg->bridge, cfg->ifname);
		return -EMEDIUMTYPE;
	}
	if (strcmp(br.kind, "bridge")) {
		log_err("tap %s: %s is not a bridge (it is %s%s%s)", cfg->ifname, cfg->bridge,
			br.kind[0] ? "a " : "a network device", br.kind, br.kind[0] ? " interface" : "");
		return -EMEDIUMTYPE;
	}
	*index = br.index;
	return 0;
}

static int tun_open(const char *name)
{
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	int err = errno;
	if (err == ENOENT || err == ENODEV || err == ENXIO)
		log_err("tap %s: /dev/net/tun is missing (load the tun module: modprobe tun)", name);
	else
		log_err("tap %s: cannot open /dev/net/tun: %s", name, strerror(err));
	return err == ENXIO || err == ENODEV ? -ENOENT : -err;
}

static int tun_setiff(int fd, const char *name, short flags)
{
	struct ifreq ifr = { 0 };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = flags;
	return ioctl(fd, TUNSETIFF, &ifr) < 0 ? -errno : 0;
}

/* Why an existing interface cannot be attached as a TAP of nq queue
 * pairs, as its errno after one line; 0 when it can, with *mq saying
 * whether to attach with IFF_MULTI_QUEUE. */
static int check_existing(const struct link_info *li, const char *name, unsigned nq, bool *mq)
{
	if (strcmp(li->kind, "tun")) {
		log_err("tap %s: an interface called %s exists and is not a TAP (it is %s%s%s)", name,
			name, li->kind[0] ? "a " : "a network device", li->kind,
			li->kind[0] ? " interface" : "");
		return -EEXIST;
	}
	if (!li->tun_info) {
		/* A kernel before 4.15 does not say: TUNSETIFF will. */
		*mq = nq > 1;
		return 0;
	}
	if (li->tun_type != IFF_TAP) {
		log_err("tap %s: %s is a TUN device (IP packets, no Ethernet), not a TAP", name, name);
		return -EEXIST;
	}
	if (li->tun_queues > 0) {
		log_err("tap %s is in use by another process", name);
		return -EBUSY;
	}
	if (!li->tun_mq && nq > 1) {
		log_err("tap %s: queues=%u needs a multi-queue TAP, and %s is single-queue "
			"(recreate it with: ip tuntap add %s mode tap multi_queue)", name, nq, name,
			name);
		return -ECHRNG;
	}
	/* A multi-queue TAP with one queue pair is fine: attach as multi-queue,
	 * which is what the kernel insists on for that TAP. */
	*mq = li->tun_mq;
	return 0;
}

/* Opens the nq queue fds: creates the TAP, or attaches to the one that
 * exists. IFF_TUN_EXCL makes the first TUNSETIFF fail with EBUSY instead
 * of attaching when the name is taken, so "created" is known exactly, with
 * no window between looking and creating. */
static int open_queues(struct tap *t, int nl, const struct net_config *cfg, unsigned nq)
{
	const char *name = cfg->ifname;
	int fd = tun_open(name);
	if (fd < 0)
		return fd;
	t->fds[0] = fd;
	unsigned features = 0;
	if (ioctl(fd, TUNGETFEATURES, &features) < 0 || !(features & IFF_VNET_HDR)) {
		log_err("tap %s: this kernel's TUN driver has no IFF_VNET_HDR", name);
		return -EOPNOTSUPP;
	}
	if (nq > 1 && !(features & IFF_MULTI_QUEUE)) {
		log_err("tap %s: queues=%u: this kernel's TUN driver has no IFF_MULTI_QUEUE", name, nq);
		return -EOPNOTSUPP;
	}
	const short base = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	bool mq = nq > 1, existed = false;
	int r = tun_setiff(fd, name, (short)(base | (mq ? IFF_MULTI_QUEUE : 0) | IFF_TUN_EXCL));
	if (r == 0) {
		t->created = true;
	} else if (r == -EBUSY) {
		struct link_info li;
		r = link_get(nl, name, &li);
		if (r == -ENODEV) {
			/* It went away between the two calls: whoever held it is done. */
			r = tun_setiff(fd, name, (short)(base | (mq ? IFF_MULTI_QUEUE : 0) |
							 IFF_TUN_EXCL));
			t->created = r == 0;
		} else if (r == 0) {
			r = check_existing(&li, name, nq, &mq);
			if (r)
				return r;
			existed = true;
			r = tun_setiff(fd, name, (short)(base | (mq ? IFF_MULTI_QUEUE : 0)));
		} else {
			log_err("tap %s: cannot look up the existing interface: %s", name, strerror(-r));
			return r;
		}
	}
	if (r == -EPERM) {
		if (!existed)
			log_err("tap %s: %s", name, perm_create);
		else
			log_err("tap %s: %s; or make the TAP for your user: ip tuntap add %s mode tap "
				"user USER", name, perm_create, name);
		return -EPERM;
	}
	if (r == -EBUSY) {
		log_err("tap %s is in use by another process", name);
		return -EBUSY;
	}
	if (r == -EINVAL && existed) {
		/* The kernel's answer for a TUN, or a queue mode that differs,
		 * where netlink could not tell us which. */
		log_err("tap %s: %s exists and cannot be attached as a TAP with %s queue%s (a TUN "
			"device, or a %s-queue TAP?)", name, name, nq > 1 ? "multiple" : "one",
			nq > 1 ? "s" : "", nq > 1 ? "single" : "multi");
		return nq > 1 ? -ECHRNG : -EEXIST;
	}
	if (r) {
		log_err("tap %s: TUNSETIFF: %s", name, strerror(-r));
		return r;
	}
	for (unsigned q = 1; q < nq; q++) {
		if ((fd = tun_open(name)) < 0)
			return fd;
		t->fds[q] = fd;
		r = tun_setiff(fd, name, (short)(base | IFF_MULTI_QUEUE));
		if (r) {
			log_err("tap %s: attaching queue %u: %s", name, q, strerror(-r));
			return r;
		}
	}
	int hdr = NET_VNET_HDR_LEN;
	for (unsigned q = 0; q < nq; q++) {
		if (ioctl(t->fds[q], TUNSETVNETHDRSZ, &hdr) < 0) {
			r = -errno;
			log_err("tap %s: TUNSETVNETHDRSZ %d: %s", name, hdr, strerror(-r));
			return r;
		}
	}
	/* A TAP that existed keeps the offloads its last user set: none until
	 * the guest's driver says what it takes. */
	if (ioctl(t->fds[0], TUNSETOFFLOAD, 0UL) < 0) {
		r = -errno;
		log_err("tap %s: TUNSETOFFLOAD 0: %s", name, strerror(-r));
		return r;
	}
	return 0;
}

/* Gives back what opening changed on a TAP that existed; a TAP kvmini
 * created goes away with its fds, bridge port and all. */
static void tap_restore(struct tap *t)
{
	if (t->created || !t->ifindex || (!t->joined && !t->upped))
		return;
	int nl = nl_open();
	if (nl < 0) {
		log_warn("tap %s: cannot restore its settings: netlink: %s", t->be.name,
			 strerror(-nl));
		return;
	}
	if (t->joined) {
		int r = link_set(nl, t->ifindex, 0, 0, t->old_master, NULL);
		if (r)
			log_warn("tap %s: leaving the bridge: %s", t->be.name, strerror(-r));
	}
	if (t->upped) {
		int r = link_set(nl, t->ifindex, 0, IFF_UP, -1, NULL);
		if (r)
			log_warn("tap %s: setting it down again: %s", t->be.name, strerror(-r));
	}
	close(nl);
}

static void tap_free(struct tap *t)
{
	for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
		if (t->fds[q] >= 0)
			close(t->fds[q]);
	free(t);
}

/* ---- ops ---------------------------------------------------------------- */

/* No logging in send and recv: what fails there is the guest's frame, and
 * a guest must not be able to fill the host's log. The device counts. */
static int tap_send(struct net_backend *be, unsigned qp, const struct iovec *iov, unsigned iovcnt)
{
	if (qp >= be->queue_pairs)
		return -EINVAL;
	for (;;) {
		if (writev(to_tap(be)->fds[qp], iov, (int)iovcnt) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

static ssize_t tap_recv(struct net_backend *be, unsigned qp, const struct iovec *iov,
			unsigned iovcnt)
{
	if (qp >= be->queue_pairs)
		return -EINVAL;
	for (;;) {
		ssize_t n = readv(to_tap(be)->fds[qp], iov, (int)iovcnt);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static int tap_fd(struct net_backend *be, unsigned qp)
{
	return qp < be->queue_pairs ? to_tap(be)->fds[qp] : -EINVAL;
}

#define F(bit) (1ULL << (bit))

static int tap_set_offloads(struct net_backend *be, uint64_t features)
{
	/* TUN_F_* say what the reader of the TAP (the guest) can take. The
	 * kernel refuses TSO without CSUM, and ECN without TSO. */
	unsigned long off = 0;
	if (features & F(VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (features & F(VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (features & F(VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
		if ((off & (TUN_F_TSO4 | TUN_F_TSO6)) && (features & F(VIRTIO_NET_F_GUEST_ECN)))
			off |= TUN_F_TSO_ECN;
		if (features & F(VIRTIO_NET_F_GUEST_UFO))
			off |= TUN_F_UFO;
	}
	int fd = to_tap(be)->fds[0];
	if (ioctl(fd, TUNSETOFFLOAD, off) == 0)
		return 0;
	/* Kernels between UFO's removal (4.14) and its return as a no-op
	 * refuse the bit; the guest then just never gets UFO frames. */
	if ((off & TUN_F_UFO) && ioctl(fd, TUNSETOFFLOAD, off & ~(unsigned long)TUN_F_UFO) == 0)
		return 0;
	int err = errno;
	log_err("tap %s: TUNSETOFFLOAD 0x%lx: %s", be->name, off, strerror(err));
	return -err;
}

static void tap_close(struct net_backend *be)
{
	struct tap *t = to_tap(be);
	tap_restore(t);
	tap_free(t);
}

static const struct net_backend_ops tap_ops = {
	.send = tap_send,
	.recv = tap_recv,
	.fd = tap_fd,
	.set_offloads = tap_set_offloads,
	.close = tap_close,
};

bool tap_error_is_usage(int err)
{
	switch (err) {
	case -EPERM: case -EBUSY: case -ENODEV: case -EMEDIUMTYPE: case -EEXIST: case -ECHRNG:
		return true;
	default:
		return false;
	}
}

int tap_backend_open(struct net_backend **out, const struct net_config *cfg)
{
	*out = NULL;
	const char *name = cfg->ifname;
	unsigned nq = cfg->queues ? cfg->queues : 1;
	if (cfg->kind != NET_TAP || !name[0] || nq > NET_MAX_QUEUES) {
		log_err("tap: not a TAP configuration");
		return -EINVAL;
	}
	struct tap *t = calloc(1, sizeof(*t));
	if (!t) {
		log_err("tap %s: out of memory", name);
		return -ENOMEM;
	}
	for (unsigned q = 0; q < NET_MAX_QUEUES; q++)
		t->fds[q] = -1;
	snprintf(t->be.name, sizeof(t->be.name), "%s", name);

	int r, nl = nl_open();
	if (nl < 0) {
		log_err("tap %s: netlink socket: %s", name, strerror(-nl));
		free(t);
		return nl;
	}
	/* The bridge first, so a missing one leaves no TAP behind. */
	int br = 0;
	if (cfg->bridge[0] && (r = check_bridge(nl, cfg, &br)))
		goto fail;
	if ((r = open_queues(t, nl, cfg, nq)))
		goto fail;

	struct link_info li;
	if ((r = link_get(nl, name, &li))) {
		log_err("tap %s: cannot look it up after opening: %s", name, strerror(-r));
		goto fail;
	}
	t->ifindex = li.index;
	if (t->created) {
		/* A bridge takes the lowest MAC of its ports as its own unless one
		 * was set: 0xfe first keeps a TAP's from being picked (as libvirt
		 * does), and the rest from the guest's keeps TAPs apart. */
		uint8_t mac[6];
		memcpy(mac, cfg->mac, 6);
		mac[0] = cfg->mac[0] == 0xfe ? 0xfa : 0xfe;
		if ((r = link_set(nl, t->ifindex, 0, 0, -1, mac))) {
			log_err("tap %s: setting its MAC address: %s", name, strerror(-r));
			goto fail;
		}
	}
	if (br && li.master != br) {
		if ((r = link_set(nl, t->ifindex, 0, 0, br, NULL))) {
			if (r == -EPERM)
				log_err("tap %s: permission denied: joining bridge %s needs "
					"CAP_NET_ADMIN", name, cfg->bridge);
			else
				log_err("tap %s: joining bridge %s: %s", name, cfg->bridge,
					strerror(-r));
			goto fail;
		}
		t->joined = true;
		t->old_master = li.master;
	}
	if (!(li.flags & IFF_UP)) {
		if ((r = link_set(nl, t->ifindex, IFF_UP, IFF_UP, -1, NULL))) {
			if (r == -EPERM)
				log_err("tap %s: permission denied: bringing it up needs CAP_NET_ADMIN "
					"(or bring it up first: ip link set %s up)", name, name);
			else
				log_err("tap %s: bringing it up: %s", name, strerror(-r));
			goto fail;
		}
		t->upped = true;
	}
	close(nl);

	t->be.ops = &tap_ops;
	t->be.kind = "tap";
	t->be.queue_pairs = nq;
	t->be.vnet_hdr = true;
	t->be.offloads = true;
	log_info("tap %s: %s, %u queue pair%s%s%s", name, t->created ? "created" : "attached", nq,
		 nq > 1 ? "s" : "", br ? ", in bridge " : "", br ? cfg->bridge : "");
	*out = &t->be;
	return 0;

fail:
	close(nl);
	tap_restore(t);
	tap_free(t);
	return r;
}
