/* virtio-net over the virtio 1.x PCI transport (virtio/net.c, virtio/pci.c),
 * driven from the guest's side without /dev/kvm by the driver of
 * virtio_harness.[ch], as in virtio_blk_test.c: a hand-made struct vm
 * (vm_fd = -1, calloc'd RAM), the PCI bus, config cycles on 0xCF8/0xCFC,
 * MMIO to the BAR, rings and buffers in guest RAM, kicks as MMIO writes to
 * the notify area, interrupts read from the MSI-X vectors' eventfds.
 *
 * Two fake backends stand in for TAP and libslirp:
 * - pull: one SOCK_SEQPACKET socketpair per queue pair (frames keep their
 *   boundaries), vnet_hdr and offloads on. The test writes frames (with a
 *   12-byte header) into its end and reads what the guest sent from it.
 * - push: an I/O thread is "the backend's loop"; frames for the guest are
 *   injected by calling the attached port's receive on that thread, and
 *   sent frames are recorded. With echo on it answers from inside send, as
 *   libslirp does for ARP and DHCP.
 *
 * Expected values come from the virtio 1.x spec (5.1) and are written as
 * numbers, not taken from the UAPI headers the device uses. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/backend.h"
#include "net/net_config.h"
#include "virtio/net.h"
#include "virtio_harness.h"
#include "vmm/eventloop.h"

/* ---- guest memory map ----------------------------------------------------------- */

#define RAM_SIZE   (8u << 20)
/* The rings: RING(q) (virtio_harness.h). */
#define BUF(q)     (0x100000u + 0x100000u * (q)) /* 1 MiB of buffers per queue */
#define CTRLBUF    0x700000u
#define OUTSIDE    0x40000000u                   /* not RAM */
#define MAXQ       5

/* virtio-net numbers (spec 5.1) */
#define F_CSUM 0
#define F_GUEST_CSUM 1
#define F_CTRL_GUEST_OFFLOADS 2
#define F_MTU 3
#define F_MAC 5
#define F_GUEST_TSO4 7
#define F_GUEST_TSO6 8
#define F_GUEST_ECN 9
#define F_GUEST_UFO 10
#define F_HOST_TSO4 11
#define F_HOST_TSO6 12
#define F_HOST_ECN 13
#define F_HOST_UFO 14
#define F_MRG_RXBUF 15
#define F_STATUS 16
#define F_CTRL_VQ 17
#define F_CTRL_RX 18
#define F_CTRL_VLAN 19
#define F_GUEST_ANNOUNCE 21
#define F_MQ 22
#define F_CTRL_MAC_ADDR 23
#define HDR 12
#define NEEDS_CSUM 1
#define DATA_VALID 2
#define GSO_TCPV4 1
#define GSO_UDP 3
#define GSO_TCPV6 4
#define GSO_ECN 0x80
#define CTRL_RX 0
#define CTRL_MAC 1
#define CTRL_ANNOUNCE 3
#define CTRL_MQ 4
#define CTRL_GUEST_OFFLOADS 5
#define ACK_OK 0
#define ACK_ERR 1

#define OFFLOADS (BIT(F_CSUM) | BIT(F_GUEST_CSUM) | BIT(F_GUEST_TSO4) | BIT(F_GUEST_TSO6) | \
		  BIT(F_GUEST_ECN) | BIT(F_HOST_TSO4) | BIT(F_HOST_TSO6) | BIT(F_HOST_ECN))
/* What a plain driver takes: no offloads, no mergeable buffers. */
#define BASE (BIT(F_VERSION_1) | BIT(F_MAC) | BIT(F_STATUS) | BIT(F_MTU) | BIT(F_EVENT_IDX))
#define CTRL_F (BIT(F_CTRL_VQ) | BIT(F_CTRL_RX) | BIT(F_CTRL_MAC_ADDR) | BIT(F_GUEST_ANNOUNCE))

static const uint8_t MAC[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

/* ---- fake backends ---------------------------------------------------------------- */

struct fake_pull {
	struct net_backend be;
	int dev[2], peer[2];
	atomic_uint recv_calls, send_calls, offload_calls, bad_qp;
	_Atomic uint64_t offloads;
};

struct fake_push {
	struct net_backend be;
	struct iothread iot;
	struct net_port port;       /* loop thread only */
	bool attached;
	atomic_uint attach_calls, detach_calls, wrong_thread, unattached_drops;
	pthread_mutex_t lock;
	unsigned nsent;
	uint8_t sent[300][2048];
	size_t sent_len[300];
	bool echo;
};

static struct fx {
	struct virtio_net *n;
	bool push;
	struct fake_pull pull;
	struct fake_push *psh;
	struct net_config cfg;
	unsigned pairs, nq;
	uint32_t next_buf[MAXQ];    /* bump allocator in BUF(q) */
} fx;

static struct fake_pull *to_pull(struct net_backend *be) { return (struct fake_pull *)be; }
static struct fake_push *to_push(struct net_backend *be) { return (struct fake_push *)be; }

/* A queue pair the backend has; one it has not is counted (the device
 * must never ask for it). */
static bool pull_qp_ok(struct fake_pull *f, unsigned qp)
{
	if (qp < f->be.queue_pairs)
		return true;
	f->bad_qp++;
	return false;
}

static int fp_send(struct net_backend *be, unsigned qp, const struct iovec *iov, unsigned n)
{
	struct fake_pull *f = to_pull(be);
	if (!pull_qp_ok(f, qp))
		return -EINVAL;
	f->send_calls++;
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	return sendmsg(f->dev[qp], &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static ssize_t fp_recv(struct net_backend *be, unsigned qp, const struct iovec *iov, unsigned n)
{
	struct fake_pull *f = to_pull(be);
	if (!pull_qp_ok(f, qp))
		return -EINVAL;
	f->recv_calls++;
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	/* MSG_TRUNC: the real length, so the device can tell a frame it cut. */
	ssize_t r = recvmsg(f->dev[qp], &m, MSG_DONTWAIT | MSG_TRUNC);
	return r < 0 ? -errno : r;
}

static int fp_fd(struct net_backend *be, unsigned qp)
{
	return qp < be->queue_pairs ? to_pull(be)->dev[qp] : -EINVAL;
}

static int fp_set_offloads(struct net_backend *be, uint64_t features)
{
	struct fake_pull *f = to_pull(be);
	f->offload_calls++;
	f->offloads = features;
	return 0;
}

static const struct net_backend_ops fake_pull_ops = {
	.send = fp_send, .recv = fp_recv, .fd = fp_fd, .set_offloads = fp_set_offloads,
};

static void push_record(struct fake_push *f, const struct iovec *iov, unsigned n)
{
	pthread_mutex_lock(&f->lock);
	if (f->nsent < 300) {
		size_t len = iov_size(iov, n);
		if (len > sizeof(f->sent[0]))
			len = sizeof(f->sent[0]);
		f->sent_len[f->nsent] = iov_to_buf(iov, n, 0, f->sent[f->nsent], len);
		f->nsent++;
	}
	pthread_mutex_unlock(&f->lock);
}

static int fpush_send(struct net_backend *be, unsigned qp, const struct iovec *iov, unsigned n)
{
	struct fake_push *f = to_push(be);
	if (!evloop_on_owner(be->loop))
		f->wrong_thread++;
	push_record(f, iov, n);
	if (f->echo && f->attached) {
		/* Answer at once, from inside send, with the frame reversed. */
		uint8_t in[2048], outb[2048];
		size_t len = iov_to_buf(iov, n, 0, in, sizeof(in));
		for (size_t i = 0; i < len; i++)
			outb[i] = in[len - 1 - i];
		f->port.receive(f->port.ctx, outb, len);
	}
	return 0;
}

static void fpush_attach(struct net_backend *be, const struct net_port *port)
{
	struct fake_push *f = to_push(be);
	if (!evloop_on_owner(be->loop))
		f->wrong_thread++;
	if (port) {
		f->port = *port;
		f->attached = true;
		f->attach_calls++;
	} else {
		f->attached = false;
		f->detach_calls++;
	}
}

static const struct net_backend_ops fake_push_ops = { .send = fpush_send, .attach = fpush_attach };

struct inject {
	size_t len;
	unsigned count;
	unsigned seq0;
};

static uint8_t fbyte(unsigned seq, size_t i) { return (uint8_t)(seq * 7 + i * 13 + (i >> 8)); }

static void make_frame(uint8_t *b, unsigned seq, size_t len)
{
	for (size_t i = 0; i < len; i++)
		b[i] = fbyte(seq, i);
	if (len >= 2) {
		b[0] = (uint8_t)seq;        /* a sequence number to check the order */
		b[1] = (uint8_t)(seq >> 8);
	}
}

static void inject_cb(void *ctx)
{
	struct inject *in = ctx;
	static uint8_t b[65536];
	for (unsigned i = 0; i < in->count; i++) {
		make_frame(b, in->seq0 + i, in->len);
		if (fx.psh->attached)
			fx.psh->port.receive(fx.psh->port.ctx, b, in->len);
		else
			fx.psh->unattached_drops++;
	}
}

/* Frames for the guest, from the backend's own thread. */
static void push_inject(unsigned seq0, unsigned count, size_t len)
{
	struct inject in = { .len = len, .count = count, .seq0 = seq0 };
	evloop_call(&fx.psh->iot.loop, inject_cb, &in);
}

/* ---- little helpers ----------------------------------------------------------------- */

static struct virtio_net_stats stats(void)
{
	struct virtio_net_stats s;
	virtio_net_get_stats(fx.n, &s);
	return s;
}

/* The device's I/O threads ("eth0-q0", ...) now running. Only those count:
 * other threads of the test process (io_uring workers, a thread of an
 * earlier test still on its way out) come and go on their own, which under
 * a loaded CI machine made a plain count of /proc/self/task wrong. */
static unsigned thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	unsigned n = 0;
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], comm[32] = "";
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue; /* gone meanwhile */
		if (fgets(comm, sizeof(comm), f) && strncmp(comm, "eth", 3) == 0 && strstr(comm, "-q"))
			n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

/* Bytes waiting unread in the device's end of queue pair qp's socket. */
static int queued_bytes(unsigned qp)
{
	int v = -1;
	assert_int_equal(ioctl(fx.pull.dev[qp], FIONREAD, &v), 0);
	return v;
}

/* ---- fixture -------------------------------------------------------------------------- */

static int vm_setup(void)
{
	if (fake_vm_init(RAM_SIZE))
		return -1;
	vh.qmax = 256;
	memset(&fx.cfg, 0, sizeof(fx.cfg));
	memcpy(fx.cfg.mac, MAC, 6);
	fx.cfg.mac_set = true;
	return 0;
}

static int setup_pull_n(unsigned pairs)
{
	memset(&fx, 0, sizeof(fx));
	if (vm_setup())
		return -1;
	fx.cfg.kind = NET_TAP;
	fx.cfg.queues = pairs;
	struct fake_pull *f = &fx.pull;
	f->be = (struct net_backend){ .ops = &fake_pull_ops, .kind = "tap", .queue_pairs = pairs,
				      .vnet_hdr = true, .offloads = true };
	strcpy(f->be.name, "faketap0");
	for (unsigned i = 0; i < pairs; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			return -1;
		f->dev[i] = sv[0];
		f->peer[i] = sv[1];
	}
	fx.pairs = pairs;
	fx.nq = 2 * pairs + 1;
	if (virtio_net_create(&fx.n, &vh.vm, &fx.cfg, &f->be, 0))
		return -1;
	discover(0x1041); /* 0x1040 + 1 (network) */
	return 0;
}

static int setup_pull(void **state) { (void)state; return setup_pull_n(1); }
static int setup_pull2(void **state) { (void)state; return setup_pull_n(2); }

static int setup_push(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	if (vm_setup())
		return -1;
	fx.push = true;
	fx.cfg.kind = NET_USER;
	fx.psh = calloc(1, sizeof(*fx.psh));
	if (!fx.psh || iothread_start(&fx.psh->iot, "fake-slirp"))
		return -1;
	pthread_mutex_init(&fx.psh->lock, NULL);
	/* offloads is set to show the device still offers none without a
	 * vnet header to carry them. */
	fx.psh->be = (struct net_backend){ .ops = &fake_push_ops, .kind = "user", .queue_pairs = 1,
					   .vnet_hdr = false, .offloads = true,
					   .loop = &fx.psh->iot.loop };
	strcpy(fx.psh->be.name, "user");
	fx.pairs = 1;
	fx.nq = 3;
	if (virtio_net_create(&fx.n, &vh.vm, &fx.cfg, &fx.psh->be, 1))
		return -1;
	discover(0x1041); /* 0x1040 + 1 (network) */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	virtio_net_free(fx.n);
	fake_vm_free();
	if (fx.push) {
		unsigned wrong = fx.psh->wrong_thread;
		iothread_stop(&fx.psh->iot);
		pthread_mutex_destroy(&fx.psh->lock);
		free(fx.psh);
		assert_int_equal(wrong, 0); /* every backend op ran on the backend's loop */
	} else {
		unsigned bad = fx.pull.bad_qp;
		for (unsigned i = 0; i < fx.pairs; i++) {
			close(fx.pull.dev[i]);
			if (fx.pull.peer[i] >= 0)
				close(fx.pull.peer[i]);
		}
		assert_int_equal(bad, 0);
	}
	return 0;
}

/* ---- the driver ------------------------------------------------------------------------- */

/* Reset, features, MSI-X, the first nq queues of 256, DRIVER_OK. */
static uint8_t drv_init_q(uint64_t want, unsigned nq)
{
	memset(fx.next_buf, 0, sizeof(fx.next_buf));
	return drv_init_n(want, nq, 256, true);
}

static void drv_init(uint64_t want)
{
	assert_int_equal(drv_init_q(want, fx.nq), ST_READY);
}

static unsigned rxq(unsigned pair) { return 2 * pair; }
static unsigned txq(unsigned pair) { return 2 * pair + 1; }
static unsigned ctrlq(void) { return 2 * fx.pairs; }

/* Guest memory for a buffer of queue q (a bump allocator that wraps). */
static uint64_t qbuf(unsigned q, uint32_t len)
{
	if (fx.next_buf[q] + len > 0x100000u)
		fx.next_buf[q] = 0;
	uint64_t g = BUF(q) + fx.next_buf[q];
	fx.next_buf[q] += (len + 63) & ~63u;
	return g;
}

/* An RX buffer of len bytes, one descriptor. Returns its address. */
static uint64_t post_rx(unsigned q, uint32_t len, uint16_t *head)
{
	uint64_t g = qbuf(q, len);
	memset(vh.vm.ram + g, 0xcc, len);
	struct seg s = { g, len, true };
	uint16_t h = post(q, &s, 1);
	if (head)
		*head = h;
	return g;
}

/* What a driver does: post, then kick if the device asked for it. */
static uint64_t post_rx_kick(unsigned q, uint32_t len, uint16_t *head)
{
	uint16_t old = vh.q[q].avail_idx;
	uint64_t g = post_rx(q, len, head);
	if (kick_wanted(q, old))
		kick(q);
	return g;
}

/* n RX buffers of len bytes, then the kick if the device asks for one.
 * Returns whether it asked. */
static bool post_rx_n(unsigned q, unsigned n, uint32_t len)
{
	uint16_t old = vh.q[q].avail_idx;
	for (unsigned i = 0; i < n; i++)
		post_rx(q, len, NULL);
	bool wanted = kick_wanted(q, old);
	if (wanted)
		kick(q);
	return wanted;
}

/* Interrupts on vector v, waiting up to ms for the first one. */
static uint64_t irqs_wait(unsigned v, int ms)
{
	if (!wait_irq(v, ms))
		return 0;
	msleep(10);
	return irqs(v);
}

/* Three RX chains of 600 bytes, which a 1400-byte frame (1412 bytes with
 * its header) fills in order: 600, 600, 212. */
struct chains3 {
	uint16_t h[3];
	uint64_t g[3];
};

static struct chains3 post_rx3(void)
{
	struct chains3 c;
	for (unsigned i = 0; i < 3; i++)
		c.g[i] = post_rx(0, 600, &c.h[i]);
	return c;
}

/* Waits for that frame, checks the used entries and gathers header and
 * frame into got. */
static void take_rx3(const struct chains3 *c, uint8_t got[HDR + 1400])
{
	assert_true(wait_used(0, 3, 5000));
	const uint32_t lens[3] = { 600, 600, 212 };
	for (unsigned i = 0; i < 3; i++) {
		struct used u = take_used(0);
		assert_int_equal(u.id, c->h[i]);
		assert_int_equal(u.len, lens[i]);
	}
	for (unsigned i = 0; i < 3; i++)
		memcpy(got + 600 * i, vh.vm.ram + c->g[i], lens[i]);
}

/* A frame for the guest from the pull backend's side: header, then data. */
static void peer_send(unsigned qp, const uint8_t hdr[HDR], const uint8_t *frame, size_t len)
{
	static uint8_t b[HDR + 70000];
	memcpy(b, hdr, HDR);
	memcpy(b + HDR, frame, len);
	assert_int_equal(send(fx.pull.peer[qp], b, HDR + len, 0), (ssize_t)(HDR + len));
}

static void peer_send_seq(unsigned qp, unsigned seq, size_t len)
{
	static uint8_t f[70000];
	uint8_t h[HDR] = { 0 };
	make_frame(f, seq, len);
	peer_send(qp, h, f, len);
}

/* What the guest sent, as the pull backend's peer reads it. -1: nothing
 * within ms. */
static ssize_t peer_recv(unsigned qp, uint8_t *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = fx.pull.peer[qp], .events = POLLIN };
	if (poll(&p, 1, ms) != 1)
		return -1;
	return recv(fx.pull.peer[qp], buf, len, MSG_DONTWAIT);
}

/* One TX frame: a 12-byte header and the frame in a second descriptor. */
static uint16_t post_tx(unsigned q, const uint8_t hdr[HDR], const uint8_t *frame, size_t len)
{
	uint64_t h = qbuf(q, HDR), d = qbuf(q, (uint32_t)len);
	memcpy(vh.vm.ram + h, hdr, HDR);
	memcpy(vh.vm.ram + d, frame, len);
	struct seg s[2] = { { h, HDR, false }, { d, (uint32_t)len, false } };
	return post(q, s, 2);
}

static void hdr_set(uint8_t h[HDR], uint8_t flags, uint8_t gso, uint16_t hdr_len,
		    uint16_t gso_size, uint16_t cstart, uint16_t coff)
{
	memset(h, 0, HDR);
	h[0] = flags;
	h[1] = gso;
	memcpy(h + 2, &hdr_len, 2);
	memcpy(h + 4, &gso_size, 2);
	memcpy(h + 6, &cstart, 2);
	memcpy(h + 8, &coff, 2);
}

/* One control command; returns the ack byte (0xee: untouched). */
static uint8_t ctrl_cmd(uint8_t cls, uint8_t cmd, const void *data, size_t len, uint32_t *ulen)
{
	unsigned q = ctrlq();
	uint64_t b = CTRLBUF, ack = CTRLBUF + 0x8000;
	vh.vm.ram[b] = cls;
	vh.vm.ram[b + 1] = cmd;
	if (len)
		memcpy(vh.vm.ram + b + 2, data, len);
	vh.vm.ram[ack] = 0xee;
	struct seg s[3];
	unsigned n = 0;
	s[n++] = (struct seg){ b, 2, false };
	if (len)
		s[n++] = (struct seg){ b + 2, (uint32_t)len, false };
	s[n++] = (struct seg){ ack, 1, true };
	uint16_t head = post(q, s, n);
	kick(q);
	assert_true(wait_used(q, 1, 5000));
	struct used u = take_used(q);
	assert_int_equal(u.id, head);
	if (ulen)
		*ulen = u.len;
	return vh.vm.ram[ack];
}

/* ---- identity, features, configuration -------------------------------------------------------- */

static void test_identity_and_features_pull(void **state)
{
	(void)state;
	assert_int_equal(cfg_rd(0x08, 1), 1);        /* modern */
	assert_int_equal(cfg_rd(0x09, 3), 0x020000); /* network, Ethernet */
	assert_int_equal(cc_rd(NUMQ, 2), 3);         /* rx0, tx0, ctrl */
	assert_int_equal(vh.devcfg_len, 24);         /* struct virtio_net_config */
	uint64_t f = read_device_features();
	uint64_t want = BIT(F_VERSION_1) | BIT(F_MAC) | BIT(F_STATUS) | BIT(F_MTU) |
			BIT(F_MRG_RXBUF) | BIT(F_CTRL_VQ) | BIT(F_CTRL_RX) | BIT(F_CTRL_MAC_ADDR) |
			BIT(F_EVENT_IDX) | BIT(F_INDIRECT) | OFFLOADS;
	assert_int_equal(f & want, want);
	assert_false(f & BIT(F_HOST_UFO));
	assert_false(f & BIT(F_GUEST_UFO));
	assert_false(f & BIT(F_MQ));            /* one queue pair */
	assert_false(f & BIT(F_CTRL_VLAN));
	assert_true(f & BIT(F_CTRL_GUEST_OFFLOADS));  /* with the offloads */
	/* Negotiating the offloads hands them to the backend at DRIVER_OK. */
	drv_init(BASE | OFFLOADS | BIT(F_MRG_RXBUF));
	assert_int_equal(fx.pull.offloads, BASE | OFFLOADS | BIT(F_MRG_RXBUF));
	/* A feature we do not offer is refused. */
	assert_false(drv_init_q(BASE | BIT(F_HOST_UFO), 3) & ST_FEATURES_OK);
}

static void test_features_push(void **state)
{
	(void)state;
	uint64_t f = read_device_features();
	assert_false(f & OFFLOADS);              /* no vnet header: no offloads */
	assert_false(f & BIT(F_CTRL_GUEST_OFFLOADS));
	assert_true(f & BIT(F_MRG_RXBUF));
	assert_true(f & BIT(F_MAC));
	assert_true(f & BIT(F_CTRL_VQ));
	assert_false(f & BIT(F_MQ));
	assert_false(drv_init_q(BASE | BIT(F_CSUM), 3) & ST_FEATURES_OK);
	drv_init(BASE | BIT(F_MRG_RXBUF));
	assert_int_equal(fx.psh->attach_calls, 1);
}

static void test_config_space(void **state)
{
	(void)state;
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(dev_cfg(i, 1), MAC[i]);
	assert_int_equal(dev_cfg(0, 4), 0x12005452u);     /* read as a word too */
	assert_int_equal(dev_cfg(6, 2), 1);               /* status: LINK_UP */
	assert_int_equal(dev_cfg(8, 2), fx.pairs);        /* max_virtqueue_pairs */
	assert_int_equal(dev_cfg(10, 2), 1500);           /* mtu */
	assert_int_equal(dev_cfg(12, 4), 0xffffffffu);    /* speed: unknown */
	assert_int_equal(dev_cfg(16, 1), 0xff);           /* duplex: unknown */
	assert_int_equal(dev_cfg(20, 4), 0);              /* no RSS hash types */
	drv_init(BASE);
	assert_int_equal(dev_cfg(6, 2), 1);
}

/* ---- RX ------------------------------------------------------------------------------------------ */

static void test_rx_mergeable_three_chains(void **state)
{
	(void)state;
	/* No GUEST_TSO: the largest frame is MTU + 18, which 3 x 600 covers. */
	drv_init(BASE | BIT(F_MRG_RXBUF));
	struct chains3 c = post_rx3();
	uint8_t hdr[HDR], frame[1400];
	/* DATA_VALID from the TAP must not reach a driver without GUEST_CSUM;
	 * num_buffers is whatever the backend left there. */
	hdr_set(hdr, DATA_VALID, 0, 0, 0, 0, 0);
	hdr[10] = 0xaa;
	hdr[11] = 0xbb;
	make_frame(frame, 1, sizeof(frame));
	peer_send(0, hdr, frame, sizeof(frame));
	uint8_t got[HDR + 1400];
	take_rx3(&c, got);
	assert_int_equal(got[0], 0);              /* flags cleared */
	assert_int_equal(got[10] | got[11] << 8, 3); /* num_buffers */
	assert_memory_equal(got + 1, hdr + 1, 9);
	assert_memory_equal(got + HDR, frame, sizeof(frame));
	assert_int_equal(vh.vm.ram[c.g[2] + 212], 0xcc); /* nothing written past the frame */
	assert_int_equal(irqs_wait(1, 1000), 1);
	struct virtio_net_stats s = stats();
	assert_int_equal(s.rx_frames, 1);
	assert_int_equal(s.rx_bytes, 1400);
}

static void test_rx_mergeable_with_gso(void **state)
{
	(void)state;
	/* GUEST_TSO: the device must cover 12 + 65550 bytes before it reads,
	 * since it cannot know the next frame's size. */
	drv_init(BASE | BIT(F_MRG_RXBUF) | BIT(F_GUEST_CSUM) | BIT(F_GUEST_TSO4) |
		 BIT(F_GUEST_TSO6));
	for (unsigned i = 0; i < 3; i++)
		post_rx(0, 600, NULL);
	kick(0);
	peer_send_seq(0, 1, 1000);
	msleep(100);
	assert_int_equal(used_new(0), 0);
	assert_int_equal(queued_bytes(0), HDR + 1000);   /* still in the backend */
	assert_int_equal(fx.pull.recv_calls, 0);
	/* It asked for a kick when more buffers come. */
	assert_true(post_rx_n(0, 120, 600));
	assert_true(wait_used(0, 2, 5000));
	struct used u0 = take_used(0), u1 = take_used(0);
	assert_int_equal(u0.id, 0);   /* the first three chains went first */
	assert_int_equal(u0.len, 600);
	assert_int_equal(u1.id, 1);
	assert_int_equal(u1.len, 412);
	assert_int_equal(r16(BUF(0) + 10), 2);
	/* The chains it still holds serve the next frame, in order. */
	peer_send_seq(0, 2, 2000);
	assert_true(wait_used(0, 4, 5000));
	uint32_t lens[4] = { 600, 600, 600, 212 };
	for (unsigned i = 0; i < 4; i++) {
		struct used u = take_used(0);
		assert_int_equal(u.id, 2 + i);
		assert_int_equal(u.len, lens[i]);
	}
	assert_int_equal(stats().rx_frames, 2);
}

static void test_rx_no_mrg(void **state)
{
	(void)state;
	drv_init(BASE);
	/* Each chain: a header descriptor and a 1518-byte one, as a driver
	 * without mergeable buffers posts them. */
	uint16_t h[2];
	uint64_t hg[2], dg[2];
	for (unsigned i = 0; i < 2; i++) {
		hg[i] = qbuf(0, HDR);
		dg[i] = qbuf(0, 1518);
		struct seg s[2] = { { hg[i], HDR, true }, { dg[i], 1518, true } };
		h[i] = post(0, s, 2);
	}
	peer_send_seq(0, 1, 100);
	peer_send_seq(0, 2, 1514);
	assert_true(wait_used(0, 2, 5000));
	struct used u0 = take_used(0), u1 = take_used(0);
	assert_int_equal(u0.id, h[0]);
	assert_int_equal(u0.len, 112);
	assert_int_equal(u1.id, h[1]);
	assert_int_equal(u1.len, 1526);
	uint8_t f[1514];
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(r16(hg[i] + 10), 1);  /* num_buffers is 1 without MRG_RXBUF */
		make_frame(f, 1 + i, i ? 1514 : 100);
		assert_memory_equal(vh.vm.ram + dg[i], f, i ? 1514 : 100);
	}
	/* A frame larger than the chain is dropped and counted; the chain
	 * stays for the next one. */
	uint16_t hs;
	uint64_t gs = post_rx_kick(0, 200, &hs);
	peer_send_seq(0, 3, 500);
	peer_send_seq(0, 4, 100);
	assert_true(wait_used(0, 1, 5000));
	struct used u = take_used(0);
	assert_int_equal(u.id, hs);
	assert_int_equal(u.len, 112);
	make_frame(f, 4, 100);
	assert_memory_equal(vh.vm.ram + gs + HDR, f, 100);
	assert_int_equal(stats().rx_too_big, 1);
}

static void test_rx_backpressure(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	for (unsigned i = 0; i < 5; i++)
		peer_send_seq(0, i, 1000);
	msleep(50);
	struct virtio_net_stats s1 = stats();
	msleep(250);
	struct virtio_net_stats s2 = stats();
	/* No buffers: the backend is not read and the loop sleeps. */
	assert_int_equal(fx.pull.recv_calls, 0);
	assert_int_equal(queued_bytes(0), 5 * (HDR + 1000));
	assert_true(s1.backend_wakeups <= 1);
	assert_int_equal(s2.backend_wakeups, s1.backend_wakeups);
	assert_int_equal(used_new(0), 0);
	/* Posting buffers needs a kick (the device asked for one)... */
	assert_true(post_rx_n(0, 5, 1600));
	/* ...which brings everything in. */
	assert_true(wait_used(0, 5, 5000));
	for (unsigned i = 0; i < 5; i++) {
		struct used u = take_used(0);
		assert_int_equal(u.len, HDR + 1000);
		uint8_t *p = vh.vm.ram + BUF(0) + 1600 * u.id;
		assert_int_equal(p[HDR], i);  /* in order */
	}
	assert_int_equal(queued_bytes(0), 0);
	assert_true(stats().rx_kicks >= 1);
	/* Out of buffers again, but the device keeps kicks wanted: a frame
	 * now waits until the next buffer. */
	peer_send_seq(0, 9, 60);
	msleep(50);
	assert_int_equal(used_new(0), 0);
	assert_true(post_rx_n(0, 1, 1600));
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(0).len, HDR + 60);
}

static void test_rx_bad_chain(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	struct seg bad = { OUTSIDE, 1600, true };
	uint16_t hb = post(0, &bad, 1);
	struct seg tiny = { BUF(0) + 0x80000, 8, true }; /* smaller than a header */
	uint16_t ht = post(0, &tiny, 1);
	uint16_t hg;
	post_rx(0, 1600, &hg);
	peer_send_seq(0, 1, 100);
	assert_true(wait_used(0, 3, 5000));
	struct used u = take_used(0);
	assert_int_equal(u.id, hb);
	assert_int_equal(u.len, 0);
	u = take_used(0);
	assert_int_equal(u.id, ht);
	assert_int_equal(u.len, 0);
	u = take_used(0);
	assert_int_equal(u.id, hg);
	assert_int_equal(u.len, HDR + 100);
	assert_int_equal(stats().rx_bad_chain, 2);
}

/* ---- RX and TX through a push backend ------------------------------------------------------------ */

static void test_push_rx_tx(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	struct chains3 c = post_rx3();
	push_inject(7, 1, 1400);
	uint8_t got[HDR + 1400], f[1400];
	take_rx3(&c, got);
	static const uint8_t zero[10];
	assert_memory_equal(got, zero, 10);                /* a header of our own */
	assert_int_equal(got[10] | got[11] << 8, 3);
	make_frame(f, 7, 1400);
	assert_memory_equal(got + HDR, f, 1400);
	assert_int_equal(irqs(1), 1);

	/* TX: the backend gets the bare frame. */
	uint8_t hdr[HDR] = { 0 };
	make_frame(f, 8, 300);
	post_tx(1, hdr, f, 300);
	kick(1);
	assert_true(wait_used(1, 1, 5000));
	assert_int_equal(take_used(1).len, 0);
	pthread_mutex_lock(&fx.psh->lock);
	assert_int_equal(fx.psh->nsent, 1);
	assert_int_equal(fx.psh->sent_len[0], 300);
	assert_memory_equal(fx.psh->sent[0], f, 300);
	pthread_mutex_unlock(&fx.psh->lock);

	/* A checksum offload the device never offered is refused. */
	hdr_set(hdr, NEEDS_CSUM, 0, 0, 0, 14, 16);
	post_tx(1, hdr, f, 300);
	kick(1);
	assert_true(wait_used(1, 1, 5000));
	take_used(1);
	assert_int_equal(stats().tx_bad_header, 1);

	/* libslirp answers some frames from inside send: the answer lands in
	 * an RX buffer while the TX chain is still being sent. */
	fx.psh->echo = true;
	uint64_t gr = post_rx(0, 600, NULL);
	hdr_set(hdr, 0, 0, 0, 0, 0, 0);
	make_frame(f, 9, 100);
	post_tx(1, hdr, f, 100);
	kick(1);
	assert_true(wait_used(1, 1, 5000));
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(1).len, 0);
	assert_int_equal(take_used(0).len, HDR + 100);
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(vh.vm.ram[gr + HDR + i], f[99 - i]);
	struct virtio_net_stats s = stats();
	assert_int_equal(s.tx_frames, 2);
	assert_int_equal(s.rx_frames, 2);
}

static void test_push_queue_bound(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	/* No RX buffers: 256 frames wait, the rest are dropped and counted. */
	push_inject(0, 300, 1000);
	assert_int_equal(stats().rx_dropped_no_buffers, 44);
	assert_int_equal(used_new(0), 0);
	/* The driver posts buffers as it goes; the queue drains in order on
	 * each kick. */
	for (unsigned round = 0; round < 4; round++) {
		assert_true(post_rx_n(0, 64, 1100));
		assert_true(wait_used(0, 64, 5000));
		for (unsigned i = 0; i < 64; i++) {
			struct used u = take_used(0);
			assert_int_equal(u.len, HDR + 1000);
			/* Descriptor i holds buffer i: frame i, in order. */
			assert_int_equal(u.id, 64 * round + i);
			assert_int_equal(vh.vm.ram[BUF(0) + 1152ull * u.id + HDR], 64 * round + i);
		}
	}
	struct virtio_net_stats s = stats();
	assert_int_equal(s.rx_frames, 256);
	/* A new frame now goes straight in... */
	post_rx(0, 1100, NULL);
	push_inject(1000, 1, 60);
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(0).len, HDR + 60);
	/* ...and the byte bound holds too: 512 KiB of 3000-byte frames. */
	push_inject(2000, 200, 3000);
	assert_int_equal(stats().rx_dropped_no_buffers, 44 + 200 - 174);
}

static void test_push_queue_order(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	push_inject(0, 10, 200);
	uint64_t g[10];
	for (unsigned i = 0; i < 10; i++)
		g[i] = post_rx(0, 256, NULL);
	kick(0);
	assert_true(wait_used(0, 10, 5000));
	for (unsigned i = 0; i < 10; i++) {
		struct used u = take_used(0);
		assert_int_equal(u.id, i);
		assert_int_equal(vh.vm.ram[g[i] + HDR], i);
	}
	/* Frames that wait when the driver resets are counted. */
	push_inject(10, 5, 200);
	drv_init(BASE | BIT(F_MRG_RXBUF));
	assert_int_equal(stats().rx_dropped_reset, 5);
}

/* ---- TX -------------------------------------------------------------------------------------------- */

static void test_tx_batch(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF) | OFFLOADS);
	uint8_t hdr[HDR], f[1000];
	for (unsigned i = 0; i < 32; i++) {
		hdr_set(hdr, NEEDS_CSUM, 0, 0, 0, 34, 16);
		make_frame(f, i, 1000);
		post_tx(1, hdr, f, 1000);
	}
	kick(1);
	assert_true(wait_used(1, 32, 5000));
	for (unsigned i = 0; i < 32; i++)
		assert_int_equal(take_used(1).len, 0);
	for (unsigned i = 0; i < 32; i++) {
		uint8_t b[2000];
		assert_int_equal(peer_recv(0, b, sizeof(b), 1000), HDR + 1000);
		assert_int_equal(b[0], NEEDS_CSUM);          /* the header passes through */
		assert_int_equal(b[6], 34);
		make_frame(f, i, 1000);
		assert_memory_equal(b + HDR, f, 1000);
	}
	assert_int_equal(fx.pull.send_calls, 32);
	msleep(20);
	assert_int_equal(irqs(2), 1);                   /* one interrupt for the batch */
	assert_int_equal(stats().tx_frames, 32);
}

/* VM pause: while paused nothing moves either way (frames wait in the
 * backend, TX chains stay in the ring, no RX buffer is written); after
 * resume both directions carry on with the negotiated state kept. */
static void test_pause_resume(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	assert_true(post_rx_n(0, 4, 1600));
	peer_send_seq(0, 1, 200);
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(0).len, HDR + 200);

	virtio_net_pause(fx.n);
	struct virtio_net_stats s1 = stats();
	peer_send_seq(0, 2, 300);
	uint8_t hdr[HDR] = { 0 }, f[500];
	make_frame(f, 7, 500);
	post_tx(1, hdr, f, 500);
	kick(1);
	post_rx_n(0, 2, 1600);
	/* Nothing may happen: give a running device ample time to be wrong. */
	assert_false(wait_used(0, 1, 300));
	assert_int_equal(used_new(1), 0);
	assert_int_equal(fx.pull.send_calls, 0);
	struct virtio_net_stats s2 = stats();
	assert_int_equal(s2.rx_frames, s1.rx_frames);
	assert_int_equal(s2.tx_frames, s1.tx_frames);
	assert_int_equal(status() & ST_READY, ST_READY);

	virtio_net_resume(fx.n);
	assert_true(wait_used(0, 1, 5000));
	struct used u = take_used(0);
	assert_int_equal(u.len, HDR + 300);
	assert_int_equal(vh.vm.ram[BUF(0) + 1600 * u.id + HDR], 2);
	assert_true(wait_used(1, 1, 5000));
	assert_int_equal(take_used(1).len, 0);
	uint8_t b[2000];
	assert_int_equal(peer_recv(0, b, sizeof(b), 1000), HDR + 500);
	assert_memory_equal(b + HDR, f, 500);
	struct virtio_net_stats s3 = stats();
	assert_int_equal(s3.rx_frames, 2);
	assert_int_equal(s3.tx_frames, 1);
}

static void test_tx_backpressure(void **state)
{
	(void)state;
	/* A small send buffer makes the backend say -EAGAIN after a few frames. */
	int sz = 4096;
	assert_int_equal(setsockopt(fx.pull.dev[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz)), 0);
	drv_init(BASE | BIT(F_MRG_RXBUF));
	uint8_t hdr[HDR] = { 0 }, f[1000];
	for (unsigned i = 0; i < 64; i++) {
		make_frame(f, i, 1000);
		post_tx(1, hdr, f, 1000);
	}
	kick(1);
	msleep(100);
	assert_true(used_new(1) < 64);
	assert_true(stats().tx_backpressure >= 1);
	unsigned sends = fx.pull.send_calls;
	msleep(100);
	assert_int_equal(fx.pull.send_calls, sends);      /* waiting, not retrying */
	/* Reading makes room; everything arrives, in order, once. */
	for (unsigned i = 0; i < 64; i++) {
		uint8_t b[2000];
		assert_int_equal(peer_recv(0, b, sizeof(b), 2000), HDR + 1000);
		assert_int_equal(b[HDR] | b[HDR + 1] << 8, i);
	}
	assert_true(wait_used(1, 64, 5000));
	assert_int_equal(stats().tx_frames, 64);
	assert_int_equal(stats().tx_dropped, 0);
}

static void test_tx_hostile(void **state)
{
	(void)state;
	/* Checksum and TSO4 only: TSO6 and ECN were not negotiated. */
	drv_init(BASE | BIT(F_MRG_RXBUF) | BIT(F_CSUM) | BIT(F_HOST_TSO4));
	static uint8_t f[70000];
	uint8_t h[HDR];
	make_frame(f, 0, sizeof(f));
	unsigned q = 1;
	/* out_len 0: only a writable buffer. */
	struct seg w = { qbuf(q, 64), 64, true };
	post(q, &w, 1);
	/* Header only. */
	hdr_set(h, 0, 0, 0, 0, 0, 0);
	uint64_t hg = qbuf(q, HDR);
	memcpy(vh.vm.ram + hg, h, HDR);
	struct seg ho = { hg, HDR, false };
	post(q, &ho, 1);
	/* Shorter than a header. */
	struct seg sh = { hg, 8, false };
	post(q, &sh, 1);
	/* Bad headers. */
	hdr_set(h, DATA_VALID, 0, 0, 0, 0, 0);
	post_tx(q, h, f, 60);
	hdr_set(h, NEEDS_CSUM, 0, 0, 0, 50, 16);       /* checksum past the frame */
	post_tx(q, h, f, 60);
	hdr_set(h, NEEDS_CSUM, GSO_TCPV6, 74, 1440, 54, 16);
	post_tx(q, h, f, 3000);
	hdr_set(h, 0, GSO_TCPV4, 54, 1448, 0, 0);        /* GSO without NEEDS_CSUM */
	post_tx(q, h, f, 3000);
	hdr_set(h, NEEDS_CSUM, GSO_TCPV4, 54, 0, 34, 16); /* gso_size 0 */
	post_tx(q, h, f, 3000);
	hdr_set(h, NEEDS_CSUM, GSO_UDP, 42, 1472, 34, 6);
	post_tx(q, h, f, 3000);
	hdr_set(h, NEEDS_CSUM, 5, 54, 1448, 34, 16);
	post_tx(q, h, f, 3000);
	hdr_set(h, NEEDS_CSUM, GSO_TCPV4 | GSO_ECN, 54, 1448, 34, 16);
	post_tx(q, h, f, 3000);
	hdr_set(h, 0, 0, 2000, 0, 0, 0);                 /* hdr_len past the frame */
	post_tx(q, h, f, 100);
	/* Too big: a plain frame over MTU + 18, a GSO one over 65550. */
	hdr_set(h, 0, 0, 0, 0, 0, 0);
	post_tx(q, h, f, 1519);
	hdr_set(h, NEEDS_CSUM, GSO_TCPV4, 54, 1448, 34, 16);
	post_tx(q, h, f, 65551);
	/* Outside RAM. */
	struct seg out2[2] = { { hg, HDR, false }, { OUTSIDE, 100, false } };
	post(q, out2, 2);
	/* And good frames between them all still go: a plain one of exactly
	 * MTU + 18 and a TSO one. */
	hdr_set(h, 0, 0, 0, 0, 0, 0);
	post_tx(q, h, f, 1518);
	hdr_set(h, NEEDS_CSUM, GSO_TCPV4, 54, 1448, 34, 16);
	post_tx(q, h, f, 20000);
	kick(q);
	assert_true(wait_used(q, 17, 5000));
	for (unsigned i = 0; i < 17; i++)
		assert_int_equal(take_used(q).len, 0);
	uint8_t b[70000];
	assert_int_equal(peer_recv(0, b, sizeof(b), 1000), HDR + 1518);
	assert_int_equal(peer_recv(0, b, sizeof(b), 1000), HDR + 20000);
	assert_int_equal(b[1], GSO_TCPV4);
	assert_memory_equal(b + HDR, f, 20000);
	assert_int_equal(peer_recv(0, b, sizeof(b), 50), -1);
	struct virtio_net_stats s = stats();
	assert_int_equal(s.tx_empty, 2);
	assert_int_equal(s.tx_bad_header, 10);
	assert_int_equal(s.tx_too_big, 2);
	assert_int_equal(s.tx_bad_chain, 1);
	assert_int_equal(s.tx_frames, 2);
	assert_int_equal(status() & ST_NEEDS_RESET, 0);
	/* The device still works both ways. */
	post_tx(q, h, f, 5000);
	kick(q);
	assert_true(wait_used(q, 1, 5000));
	take_used(q);
	assert_int_equal(peer_recv(0, b, sizeof(b), 1000), HDR + 5000);
	post_rx(0, 1600, NULL);
	peer_send_seq(0, 1, 100);
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(0).len, HDR + 100);
}

/* ---- control queue ---------------------------------------------------------------------------------- */

/* VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET: the driver turns its receive
 * offloads off and on at run time (Linux: ethtool -K eth0 rx-gro-hw);
 * the backend must hear of it, a reset must bring back all negotiated. */
static void test_ctrl_guest_offloads(void **state)
{
	(void)state;
	const uint64_t feat = BASE | OFFLOADS | BIT(F_MRG_RXBUF) | CTRL_F | BIT(F_CTRL_GUEST_OFFLOADS);
	const uint64_t rx_offloads = BIT(F_GUEST_CSUM) | BIT(F_GUEST_TSO4) | BIT(F_GUEST_TSO6) |
				     BIT(F_GUEST_ECN);
	drv_init(feat);
	assert_int_equal(fx.pull.offloads, feat);
	uint8_t v[8] = { 0 };
	v[0] = (uint8_t)BIT(F_GUEST_CSUM);   /* checksums only: no TSO frames */
	assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 0, v, 8, NULL), ACK_OK);
	assert_int_equal(fx.pull.offloads, (feat & ~rx_offloads) | BIT(F_GUEST_CSUM));
	memset(v, 0, sizeof(v));              /* none */
	assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 0, v, 8, NULL), ACK_OK);
	assert_int_equal(fx.pull.offloads, feat & ~rx_offloads);
	/* Not negotiated (GUEST_UFO), not a receive offload (HOST_TSO4), a
	 * short value, an unknown command: refused, nothing changes. */
	uint64_t bad[] = { BIT(F_GUEST_UFO), BIT(F_HOST_TSO4), BIT(F_MRG_RXBUF) };
	for (unsigned i = 0; i < 3; i++) {
		for (unsigned b = 0; b < 8; b++)
			v[b] = (uint8_t)(bad[i] >> (8 * b));
		assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 0, v, 8, NULL), ACK_ERR);
	}
	assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 0, v, 4, NULL), ACK_ERR);
	assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 1, v, 8, NULL), ACK_ERR);
	assert_int_equal(fx.pull.offloads, feat & ~rx_offloads);
	/* All back on. */
	for (unsigned b = 0; b < 8; b++)
		v[b] = (uint8_t)(rx_offloads >> (8 * b));
	assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 0, v, 8, NULL), ACK_OK);
	assert_int_equal(fx.pull.offloads, feat);
	/* Off again, then a reset and a new driver: everything negotiated. */
	memset(v, 0, sizeof(v));
	assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 0, v, 8, NULL), ACK_OK);
	set_status(0);
	drv_init(feat);
	assert_int_equal(fx.pull.offloads, feat);
	/* Without the feature the command is refused. */
	set_status(0);
	drv_init(BASE | OFFLOADS | BIT(F_MRG_RXBUF) | CTRL_F);
	assert_int_equal(ctrl_cmd(CTRL_GUEST_OFFLOADS, 0, v, 8, NULL), ACK_ERR);
	assert_int_equal(fx.pull.offloads, BASE | OFFLOADS | BIT(F_MRG_RXBUF) | CTRL_F);
}

static void test_ctrl(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF) | CTRL_F);
	uint8_t on = 1, off = 0;
	uint32_t ulen;
	assert_int_equal(ctrl_cmd(CTRL_RX, 0, &on, 1, &ulen), ACK_OK);   /* PROMISC */
	assert_int_equal(ulen, 1);
	assert_int_equal(ctrl_cmd(CTRL_RX, 1, &off, 1, NULL), ACK_OK);   /* ALLMULTI */
	assert_int_equal(ctrl_cmd(CTRL_RX, 2, &on, 1, NULL), ACK_ERR);   /* ALLUNI: RX_EXTRA */
	assert_int_equal(ctrl_cmd(CTRL_RX, 0, &on, 0, NULL), ACK_ERR);   /* no data */

	/* MAC_TABLE_SET: 1 unicast, 2 multicast entries. */
	uint8_t t[4 + 6 + 4 + 12] = { 1, 0, 0, 0, 0x52, 0x54, 0, 1, 2, 3, 2, 0, 0, 0,
				      0x01, 0, 0x5e, 0, 0, 1, 0x33, 0x33, 0, 0, 0, 1 };
	assert_int_equal(ctrl_cmd(CTRL_MAC, 0, t, sizeof(t), NULL), ACK_OK);
	t[0] = 5; /* claims more entries than it carries */
	assert_int_equal(ctrl_cmd(CTRL_MAC, 0, t, sizeof(t), NULL), ACK_ERR);
	t[0] = 1;
	assert_int_equal(ctrl_cmd(CTRL_MAC, 0, t, sizeof(t) - 1, NULL), ACK_ERR);

	/* MAC_ADDR_SET changes the config MAC, with a new generation and a
	 * configuration interrupt. */
	uint8_t gen = generation();
	irqs(0);
	const uint8_t mac2[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
	assert_int_equal(ctrl_cmd(CTRL_MAC, 1, mac2, 6, NULL), ACK_OK);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(dev_cfg(i, 1), mac2[i]);
	assert_int_not_equal(generation(), gen);
	assert_int_equal(irqs(0), 1);
	assert_int_equal(ctrl_cmd(CTRL_MAC, 1, mac2, 5, NULL), ACK_ERR);

	assert_int_equal(ctrl_cmd(CTRL_ANNOUNCE, 0, NULL, 0, NULL), ACK_OK);
	uint16_t pairs = 1;
	assert_int_equal(ctrl_cmd(CTRL_MQ, 0, &pairs, 2, NULL), ACK_ERR); /* no MQ */
	assert_int_equal(ctrl_cmd(99, 0, NULL, 0, NULL), ACK_ERR);
	assert_int_equal(ctrl_cmd(2, 0, &pairs, 2, NULL), ACK_ERR);       /* VLAN: not offered */

	/* No room for an ack: returned with length 0. */
	uint64_t b = CTRLBUF;
	vh.vm.ram[b] = CTRL_RX;
	vh.vm.ram[b + 1] = 0;
	struct seg s = { b, 3, false };
	post(ctrlq(), &s, 1);
	kick(ctrlq());
	assert_true(wait_used(ctrlq(), 1, 5000));
	assert_int_equal(take_used(ctrlq()).len, 0);
	/* Outside RAM. */
	struct seg s2[2] = { { OUTSIDE, 2, false }, { CTRLBUF + 0x8000, 1, true } };
	post(ctrlq(), s2, 2);
	kick(ctrlq());
	assert_true(wait_used(ctrlq(), 1, 5000));
	assert_int_equal(take_used(ctrlq()).len, 0);

	struct virtio_net_stats st = stats();
	assert_int_equal(st.ctrl_bad, 10);
	assert_int_equal(status() & ST_NEEDS_RESET, 0);
	/* The data path is not disturbed. */
	post_rx(0, 1600, NULL);
	peer_send_seq(0, 1, 100);
	assert_true(wait_used(0, 1, 5000));
	take_used(0);
	/* A reset brings back the configured MAC, which the next boot's driver
	 * reads before DRIVER_OK. */
	set_status(0);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(dev_cfg(i, 1), MAC[i]);
}

/* ---- multiqueue ----------------------------------------------------------------------------------------- */

static void test_mq_two_pairs(void **state)
{
	(void)state;
	assert_true(read_device_features() & BIT(F_MQ));
	assert_int_equal(dev_cfg(8, 2), 2);
	assert_int_equal(cc_rd(NUMQ, 2), 5);
	unsigned threads0 = thread_count();
	drv_init(BASE | BIT(F_MRG_RXBUF) | CTRL_F | BIT(F_MQ));
	assert_int_equal(thread_count(), threads0 + 2);  /* an I/O thread per pair */
	post_rx(rxq(0), 1600, NULL);
	post_rx(rxq(1), 1600, NULL);
	post_rx(rxq(1), 1600, NULL);
	/* Multiqueue is off until the driver turns it on: pair 1 is not served. */
	peer_send_seq(1, 1, 200);
	msleep(100);
	assert_int_equal(used_new(rxq(1)), 0);
	assert_int_equal(queued_bytes(1), HDR + 200);
	uint16_t v = 3;
	assert_int_equal(ctrl_cmd(CTRL_MQ, 0, &v, 2, NULL), ACK_ERR);
	v = 0;
	assert_int_equal(ctrl_cmd(CTRL_MQ, 0, &v, 2, NULL), ACK_ERR);
	v = 2;
	assert_int_equal(ctrl_cmd(CTRL_MQ, 0, &v, 2, NULL), ACK_OK);
	assert_true(wait_used(rxq(1), 1, 5000));
	assert_int_equal(take_used(rxq(1)).len, HDR + 200);
	assert_int_equal(irqs_wait(rxq(1) + 1, 1000), 1);
	/* Each pair carries its own traffic. */
	peer_send_seq(0, 2, 300);
	assert_true(wait_used(rxq(0), 1, 5000));
	assert_int_equal(take_used(rxq(0)).len, HDR + 300);
	uint8_t hdr[HDR] = { 0 }, f[400], b[1000];
	make_frame(f, 3, 400);
	post_tx(txq(1), hdr, f, 400);
	kick(txq(1));
	assert_int_equal(peer_recv(1, b, sizeof(b), 2000), HDR + 400);
	assert_memory_equal(b + HDR, f, 400);
	assert_int_equal(peer_recv(0, b, sizeof(b), 50), -1);
	make_frame(f, 4, 400);
	post_tx(txq(0), hdr, f, 400);
	kick(txq(0));
	assert_int_equal(peer_recv(0, b, sizeof(b), 2000), HDR + 400);
	assert_memory_equal(b + HDR, f, 400);
	/* Back to one pair: pair 1's backend is left alone again. */
	v = 1;
	assert_int_equal(ctrl_cmd(CTRL_MQ, 0, &v, 2, NULL), ACK_OK);
	peer_send_seq(1, 5, 200);
	msleep(100);
	assert_int_equal(used_new(rxq(1)), 0);
	assert_int_equal(queued_bytes(1), HDR + 200);
	/* And on again: the buffer it held is still there. */
	v = 2;
	assert_int_equal(ctrl_cmd(CTRL_MQ, 0, &v, 2, NULL), ACK_OK);
	assert_true(wait_used(rxq(1), 1, 5000));
	assert_int_equal(take_used(rxq(1)).len, HDR + 200);
	/* A VM pause and resume keeps both pairs served (the driver switched
	 * pair 1 on; a resume must not forget it). */
	virtio_net_pause(fx.n);
	assert_int_equal(thread_count(), threads0);
	virtio_net_resume(fx.n);
	assert_int_equal(thread_count(), threads0 + 2);
	post_rx(rxq(1), 1600, NULL);
	peer_send_seq(1, 6, 250);
	assert_true(wait_used(rxq(1), 1, 5000));
	assert_int_equal(take_used(rxq(1)).len, HDR + 250);
	set_status(0);
	assert_int_equal(thread_count(), threads0);
}

/* ---- reset, restart, failure --------------------------------------------------------------------------- */

static void traffic_round(unsigned seq)
{
	/* Enough for the largest frame even with GUEST_TSO (12 + 65550). */
	post_rx_n(0, 41, 1600);
	peer_send_seq(0, seq, 500);
	assert_true(wait_used(0, 1, 5000));
	assert_int_equal(take_used(0).len, HDR + 500);
	uint8_t hdr[HDR] = { 0 }, f[500], b[1000];
	make_frame(f, seq, 500);
	post_tx(1, hdr, f, 500);
	kick(1);
	assert_int_equal(peer_recv(0, b, sizeof(b), 2000), HDR + 500);
	assert_true(wait_used(1, 1, 5000));
	take_used(1);
}

static void test_reset_restart(void **state)
{
	(void)state;
	unsigned threads0 = thread_count();
	for (unsigned round = 0; round < 2; round++) {
		drv_init(BASE | BIT(F_MRG_RXBUF) | OFFLOADS | CTRL_F);
		assert_int_equal(thread_count(), threads0 + 1);
		assert_true(fx.pull.offloads & BIT(F_GUEST_TSO4));
		traffic_round(10 * round);
		/* Reset: the thread goes, the offloads are withdrawn, and the
		 * backend is left unread (it stays open for the next boot). */
		set_status(0);
		assert_int_equal(status(), 0);
		assert_int_equal(thread_count(), threads0);
		assert_int_equal(fx.pull.offloads, 0);
		unsigned recvs = fx.pull.recv_calls;
		peer_send_seq(0, 99, 100);
		msleep(50);
		assert_int_equal(fx.pull.recv_calls, recvs);
		assert_int_equal(queued_bytes(0), HDR + 100);
		/* The next boot gets the frame that waited. */
		drv_init(BASE | BIT(F_MRG_RXBUF));
		post_rx_kick(0, 1600, NULL);
		assert_true(wait_used(0, 1, 5000));
		assert_int_equal(take_used(0).len, HDR + 100);
		set_status(0);
	}
	assert_int_equal(fx.pull.offload_calls, 8);
}

static void test_push_reset_restart(void **state)
{
	(void)state;
	for (unsigned round = 0; round < 2; round++) {
		drv_init(BASE | BIT(F_MRG_RXBUF));
		assert_int_equal(fx.psh->attach_calls, round + 1);
		post_rx(0, 1600, NULL);
		push_inject(round, 1, 300);
		assert_true(wait_used(0, 1, 5000));
		assert_int_equal(take_used(0).len, HDR + 300);
		set_status(0);
		assert_int_equal(fx.psh->detach_calls, round + 1);
		push_inject(50, 1, 300);
		assert_int_equal(fx.psh->unattached_drops, round + 1);
	}
}

static void test_backend_failure_needs_reset(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	traffic_round(1);
	/* The other end goes away: the fd hangs up. One line, NEEDS_RESET,
	 * and no spinning on the dead fd. */
	close(fx.pull.peer[0]);
	fx.pull.peer[0] = -1;
	assert_true(wait_status(ST_NEEDS_RESET, 2000));
	uint64_t w1 = stats().backend_wakeups;
	msleep(100);
	assert_int_equal(stats().backend_wakeups, w1);
	/* The driver resets; the device comes back (the backend is still
	 * dead, which is the backend's business). */
	set_status(0);
	assert_int_equal(status() & ST_NEEDS_RESET, 0);
}

static void test_print_stats(void **state)
{
	(void)state;
	drv_init(BASE | BIT(F_MRG_RXBUF));
	traffic_round(1);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	virtio_net_print_stats(f, fx.n);
	fclose(f);
	assert_non_null(strstr(buf, "virtio-net eth0 (tap faketap0) q0: rx 1 frames 500 bytes, tx 1 frames 500 bytes"));
	assert_non_null(strstr(buf, "tx_bad_header 0"));
	assert_non_null(strstr(buf, "rx_no_buffers 0"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_identity_and_features_pull, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_features_push, setup_push, teardown),
		cmocka_unit_test_setup_teardown(test_config_space, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_config_space, setup_pull2, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_three_chains, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_rx_mergeable_with_gso, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_rx_no_mrg, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_rx_backpressure, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_rx_bad_chain, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_push_rx_tx, setup_push, teardown),
		cmocka_unit_test_setup_teardown(test_push_queue_bound, setup_push, teardown),
		cmocka_unit_test_setup_teardown(test_push_queue_order, setup_push, teardown),
		cmocka_unit_test_setup_teardown(test_tx_batch, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_pause_resume, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_tx_backpressure, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_tx_hostile, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_ctrl_guest_offloads, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_mq_two_pairs, setup_pull2, teardown),
		cmocka_unit_test_setup_teardown(test_reset_restart, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_push_reset_restart, setup_push, teardown),
		cmocka_unit_test_setup_teardown(test_backend_failure_needs_reset, setup_pull, teardown),
		cmocka_unit_test_setup_teardown(test_print_stats, setup_pull, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
