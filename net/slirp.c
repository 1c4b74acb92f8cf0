#include "net/slirp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <slirp/libslirp.h>

#include "net/backend.h"
#include "net/net_config.h"
#include "vmm/eventloop.h"
#include "vmm/log.h"

/* Version 4 is the first with timer_new_opaque, which lets a timer be a
 * plain (id, opaque) pair instead of a function pointer slirp keeps. */
#if SLIRP_CONFIG_VERSION_MAX < 4
#error "libslirp 4.5 or later is needed (SlirpConfig version 4)"
#endif

#define ETH_HDR_LEN 14
/* A 64 KiB IP packet plus its Ethernet header: the most any guest MTU can
 * produce. Anything longer is not a frame a NIC could have sent. */
#define FRAME_MAX (65536 + ETH_HDR_LEN)
/* Distinct guest_error messages logged before going quiet: a misbehaving
 * guest could otherwise fill the host's log. */
#define GUEST_ERRORS_LOGGED 8

struct slirp_backend;

/* One libslirp timer: slirp only knows it as an opaque pointer. */
struct slirp_timer {
	struct evloop_timer t;
	struct slirp_backend *sb;
	SlirpTimerId id;
	void *cb_opaque;
	struct slirp_timer *next;   /* so close can free what slirp left armed */
};

struct slirp_backend {
	struct net_backend be;      /* first: ops get a net_backend * */
	Slirp *slirp;
	/* A copy, so the device's own struct may live anywhere. */
	struct net_port port;
	bool attached;
	struct evloop_hook hook;
	struct slirp_timer *timers;
	uint8_t *linear;            /* FRAME_MAX bytes for frames in several pieces */

	/* rx: to the guest; tx: from the guest. */
	uint64_t rx_frames, rx_bytes;
	uint64_t tx_frames, tx_bytes;
	uint64_t tx_short, tx_long;
	uint64_t guest_errors;
	unsigned nseen;
	char seen[GUEST_ERRORS_LOGGED][64];
};

static struct slirp_backend *to_sb(struct net_backend *be)
{
	return (struct slirp_backend *)be;
}

/* ---- libslirp callbacks ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_backend *sb = opaque;
	if (!sb->attached) {
		sb->be.dropped_rx++;
	} else {
		sb->rx_frames++;
		sb->rx_bytes += len;
		sb->port.receive(sb->port.ctx, buf, len);
	}
	/* Even for a dropped frame: slirp never resends, it would only print a
	 * glib warning for a negative value. TCP retransmits what the guest
	 * missed; the rest is datagrams. */
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct slirp_backend *sb = opaque;
	sb->guest_errors++;
	for (unsigned i = 0; i < sb->nseen; i++)
		if (strncmp(sb->seen[i], msg, sizeof(sb->seen[i]) - 1) == 0)
			return;
	if (sb->nseen == GUEST_ERRORS_LOGGED)
		return;
	snprintf(sb->seen[sb->nseen++], sizeof(sb->seen[0]), "%s", msg);
	log_warn("--net user: guest error: %s (logged once)", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	return (int64_t)evloop_now_ns();
}

static void timer_fired(void *ctx)
{
	struct slirp_timer *st = ctx;
	slirp_handle_timer(st->sb->slirp, st->id, st->cb_opaque);
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct slirp_backend *sb = opaque;
	struct slirp_timer *st = calloc(1, sizeof(*st));
	if (!st) {
		/* slirp copes with NULL by never firing it: only IPv6 router
		 * advertisements are lost. */
		log_warn("--net user: out of memory for a timer");
		return NULL;
	}
	st->sb = sb;
	st->id = id;
	st->cb_opaque = cb_opaque;
	st->t.fn = timer_fired;
	st->t.ctx = st;
	st->next = sb->timers;
	sb->timers = st;
	return st;
}

static void timer_unlink_free(struct slirp_backend *sb, struct slirp_timer *st)
{
	evloop_timer_cancel(sb->be.loop, &st->t);
	for (struct slirp_timer **p = &sb->timers; *p; p = &(*p)->next)
		if (*p == st) {
			*p = st->next;
			break;
		}
	free(st);
}

static void cb_timer_free(void *timer, void *opaque)
{
	if (timer)
		timer_unlink_free(opaque, timer);
}

/* expire_ms is absolute, in milliseconds of cb_clock_get_ns's clock. */
static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_backend *sb = opaque;
	struct slirp_timer *st = timer;
	if (!st)
		return;
	uint64_t deadline;
	if (expire_ms <= 0)
		deadline = 0;
	else if ((uint64_t)expire_ms > UINT64_MAX / 1000000)
		deadline = UINT64_MAX;
	else
		deadline = (uint64_t)expire_ms * 1000000;
	evloop_timer_arm(sb->be.loop, &st->t, deadline);
}

/* The loop polls slirp's sockets afresh every round, so there is nothing to
 * register and no thread to wake. */
static void cb_poll_fd_nop(int fd, void *opaque) {}
static void cb_notify_nop(void *opaque) {}

static void cb_init_completed(Slirp *slirp, void *opaque)
{
	/* Before slirp_new returns, in case slirp calls back into us with
	 * the new instance during set-up. */
	to_sb(opaque)->slirp = slirp;
}

static const SlirpCb slirp_callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_poll_fd_nop,
	.unregister_poll_fd = cb_poll_fd_nop,
	.notify = cb_notify_nop,
	.init_completed = cb_init_completed,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ---- the event loop hook ---- */

static int add_poll(int fd, int slirp_events, void *opaque)
{
	struct slirp_backend *sb = opaque;
	short ev = 0;
	if (slirp_events & SLIRP_POLL_IN)
		ev |= POLLIN;
	if (slirp_events & SLIRP_POLL_OUT)
		ev |= POLLOUT;
	if (slirp_events & SLIRP_POLL_PRI)
		ev |= POLLPRI;
	if (slirp_events & SLIRP_POLL_ERR)
		ev |= POLLERR;
	if (slirp_events & SLIRP_POLL_HUP)
		ev |= POLLHUP;
	/* -1 (no memory) is what slirp takes as "not polled this round". */
	return evloop_poll_add(sb->be.loop, fd, ev);
}

static int get_revents(int idx, void *opaque)
{
	struct slirp_backend *sb = opaque;
	if (idx < 0)
		return 0;
	short rev = evloop_poll_revents(sb->be.loop, idx);
	int r = 0;
	if (rev & POLLIN)
		r |= SLIRP_POLL_IN;
	if (rev & POLLOUT)
		r |= SLIRP_POLL_OUT;
	if (rev & POLLPRI)
		r |= SLIRP_POLL_PRI;
	if (rev & POLLERR)
		r |= SLIRP_POLL_ERR;
	if (rev & POLLHUP)
		r |= SLIRP_POLL_HUP;
	return r;
}

static void hook_prepare(void *ctx, struct event_loop *l, int *timeout_ms)
{
	struct slirp_backend *sb = ctx;
	uint32_t t = *timeout_ms < 0 ? UINT32_MAX : (uint32_t)*timeout_ms;
	/* slirp lowers t for its TCP timers (2 ms delayed ACKs, 500 ms
	 * retransmits), which it only runs from slirp_pollfds_poll. */
	slirp_pollfds_fill(sb->slirp, &t, add_poll, sb);
	if (t != UINT32_MAX && (*timeout_ms < 0 || t < (uint32_t)*timeout_ms))
		*timeout_ms = t > INT_MAX ? INT_MAX : (int)t;
}

static void hook_dispatch(void *ctx, struct event_loop *l, bool error)
{
	struct slirp_backend *sb = ctx;
	slirp_pollfds_poll(sb->slirp, error, get_revents, sb);
}

/* ---- backend ops ---- */

static int slirp_send(struct net_backend *be, unsigned qp, const struct iovec *iov,
		      unsigned iovcnt)
{
	struct slirp_backend *sb = to_sb(be);
	size_t len = 0;
	for (unsigned i = 0; i < iovcnt; i++) {
		/* Stopping early keeps a hostile length from wrapping the sum. */
		if (iov[i].iov_len > FRAME_MAX || len + iov[i].iov_len > FRAME_MAX) {
			sb->tx_long++;
			return -EMSGSIZE;
		}
		len += iov[i].iov_len;
	}
	if (len < ETH_HDR_LEN) {
		sb->tx_short++;
		return -EINVAL;
	}
	const uint8_t *frame = iov[0].iov_base;
	if (iov[0].iov_len != len) {
		size_t off = 0;
		for (unsigned i = 0; i < iovcnt; i++) {
			if (iov[i].iov_len)
				memcpy(sb->linear + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		frame = sb->linear;
	}
	sb->tx_frames++;
	sb->tx_bytes += len;
	slirp_input(sb->slirp, frame, (int)len);
	return 0;
}

static void slirp_attach(struct net_backend *be, const struct net_port *port)
{
	struct slirp_backend *sb = to_sb(be);
	if (port && port->receive) {
		sb->port = *port;
		sb->attached = true;
	} else {
		sb->attached = false;
		memset(&sb->port, 0, sizeof(sb->port));
	}
}

static void slirp_close(struct net_backend *be)
{
	struct slirp_backend *sb = to_sb(be);
	if (sb->hook.added)
		evloop_hook_del(be->loop, &sb->hook);
	if (sb->slirp)
		slirp_cleanup(sb->slirp);
	while (sb->timers)
		timer_unlink_free(sb, sb->timers);
	free(sb->linear);
	free(sb);
}

static const struct net_backend_ops slirp_ops = {
	.send = slirp_send,
	.attach = slirp_attach,
	.close = slirp_close,
};

/* ---- opening ---- */

static bool in_net(struct in_addr a, const struct net_config *cfg)
{
	return (a.s_addr & cfg->mask.s_addr) == (cfg->net.s_addr & cfg->mask.s_addr);
}

/* A rule libslirp could not set up: one line that says why, from the errno
 * its bind() left (libslirp keeps it across its clean-up). */
static int hostfwd_error(const struct net_hostfwd *f, int err)
{
	char addr[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &f->host_addr, addr, sizeof(addr));
	switch (err) {
	case EADDRINUSE:
		log_err("--net user: hostfwd '%s': host port %u is in use", f->text, f->host_port);
		break;
	case EADDRNOTAVAIL:
		log_err("--net user: hostfwd '%s': %s is not an address of this host", f->text,
			addr);
		break;
	case EACCES:
		log_err("--net user: hostfwd '%s': host port %u needs privileges "
			"(CAP_NET_BIND_SERVICE)", f->text, f->host_port);
		break;
	case 0:
		err = EINVAL;
		log_err("--net user: hostfwd '%s': libslirp refused the rule", f->text);
		break;
	default:
		log_err("--net user: hostfwd '%s': %s", f->text, strerror(err));
		break;
	}
	return -err;
}

static int add_hostfwds(struct slirp_backend *sb, const struct net_config *cfg)
{
	for (unsigned i = 0; i < cfg->nhostfwd && i < NET_MAX_HOSTFWD; i++) {
		const struct net_hostfwd *f = &cfg->hostfwd[i];
		struct in_addr guest = f->guest_addr.s_addr ? f->guest_addr : cfg->dhcp_start;
		errno = 0;
		if (slirp_add_hostfwd(sb->slirp, f->udp, f->host_addr, f->host_port, guest,
				      f->guest_port) < 0)
			return hostfwd_error(f, errno);
	}
	return 0;
}

static void set_in6(struct in6_addr *a, uint8_t last)
{
	/* fec0::/64, QEMU's site-local default. */
	memset(a, 0, sizeof(*a));
	a->s6_addr[0] = 0xfe;
	a->s6_addr[1] = 0xc0;
	a->s6_addr[15] = last;
}

static int check_config(const struct net_config *cfg)
{
	static const struct { size_t off; const char *name; } addrs[] = {
		{ offsetof(struct net_config, host), "host" },
		{ offsetof(struct net_config, dns), "dns" },
		{ offsetof(struct net_config, dhcp_start), "dhcpstart" },
	};
	if (cfg->kind != NET_USER) {
		log_err("--net: not a user network");
		return -EINVAL;
	}
	/* net_config_parse checks these too; this guards configurations that
	 * come from elsewhere, since libslirp itself takes anything. */
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		struct in_addr a;
		memcpy(&a, (const char *)cfg + addrs[i].off, sizeof(a));
		if (!in_net(a, cfg)) {
			char s[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &a, s, sizeof(s));
			log_err("--net user: %s=%s is outside the guest network", addrs[i].name, s);
			return -EINVAL;
		}
	}
	return 0;
}

int slirp_backend_open(struct net_backend **out, const struct net_config *cfg,
		       struct event_loop *loop)
{
	*out = NULL;
	int r = check_config(cfg);
	if (r < 0)
		return r;

	struct slirp_backend *sb = calloc(1, sizeof(*sb));
	if (!sb || !(sb->linear = malloc(FRAME_MAX))) {
		free(sb);
		log_err("--net user: out of memory");
		return -ENOMEM;
	}
	sb->be.ops = &slirp_ops;
	sb->be.kind = "user";
	snprintf(sb->be.name, sizeof(sb->be.name), "user");
	sb->be.queue_pairs = 1;
	sb->be.vnet_hdr = false;
	sb->be.offloads = false;
	sb->be.loop = loop;

	SlirpConfig sc = {
		.version = 4,
		.restricted = cfg->restrict_,
		.in_enabled = true,
		.vnetwork = cfg->net,
		.vnetmask = cfg->mask,
		.vhost = cfg->host,
		.in6_enabled = cfg->ipv6,
		.vprefix_len = 64,
		.vdhcp_start = cfg->dhcp_start,
		.vnameserver = cfg->dns,
		.if_mtu = 1500,
		.if_mru = 1500,
		.disable_host_loopback = false,
		.enable_emu = false,
	};
	set_in6(&sc.vprefix_addr6, 0);
	set_in6(&sc.vhost6, 2);
	set_in6(&sc.vnameserver6, 3);

	Slirp *s = slirp_new(&sc, &slirp_callbacks, sb);
	if (!s) {
		log_err("--net user: libslirp refused the configuration");
		slirp_close(&sb->be);
		return -EINVAL;
	}
	sb->slirp = s;

	r = add_hostfwds(sb, cfg);
	if (r < 0) {
		slirp_close(&sb->be);
		return r;
	}

	sb->hook.prepare = hook_prepare;
	sb->hook.dispatch = hook_dispatch;
	sb->hook.ctx = sb;
	evloop_hook_add(loop, &sb->hook);
	*out = &sb->be;
	return 0;
}

int slirp_backend_get_stats(struct net_backend *be, struct slirp_backend_stats *st)
{
	if (!be || be->ops != &slirp_ops)
		return -EINVAL;
	struct slirp_backend *sb = to_sb(be);
	*st = (struct slirp_backend_stats){
		.rx_frames = sb->rx_frames, .rx_bytes = sb->rx_bytes,
		.rx_dropped = be->dropped_rx,
		.tx_frames = sb->tx_frames, .tx_bytes = sb->tx_bytes,
		.tx_short = sb->tx_short, .tx_long = sb->tx_long,
		.guest_errors = sb->guest_errors,
	};
	return 0;
}

void slirp_backend_print_stats(FILE *f, struct net_backend *be)
{
	if (!be || be->ops != &slirp_ops)
		return;
	struct slirp_backend *sb = to_sb(be);
	fprintf(f, "\r\nnet %s (libslirp)\r\n", be->name);
	fprintf(f, "  %-16s %12s %14s %12s\r\n", "direction", "frames", "bytes", "dropped");
	fprintf(f, "  %-16s %12llu %14llu %12llu\r\n", "to guest",
		(unsigned long long)sb->rx_frames, (unsigned long long)sb->rx_bytes,
		(unsigned long long)be->dropped_rx);
	fprintf(f, "  %-16s %12llu %14llu %12llu\r\n", "from guest",
		(unsigned long long)sb->tx_frames, (unsigned long long)sb->tx_bytes,
		(unsigned long long)(sb->tx_short + sb->tx_long));
	if (sb->tx_short || sb->tx_long || sb->guest_errors)
		fprintf(f, "  dropped from guest: %llu shorter than 14 bytes, %llu longer than "
			"%u; guest errors slirp reported: %llu\r\n",
			(unsigned long long)sb->tx_short, (unsigned long long)sb->tx_long,
			FRAME_MAX, (unsigned long long)sb->guest_errors);
}
