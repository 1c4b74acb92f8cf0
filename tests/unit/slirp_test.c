/* The libslirp backend, driven from a real event loop in the test thread.
 * A fake guest builds Ethernet frames by hand (checksums included) and a
 * fake port records what slirp sends back; the "outside world" is sockets
 * on 127.0.0.1, which slirp reaches through the gateway address 10.0.2.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/backend.h"
#include "net/net_config.h"
#include "net/slirp.h"
#include "vmm/eventloop.h"

#define GUEST_IP   0x0a00020fu   /* 10.0.2.15 */
#define HOST_IP    0x0a000202u   /* 10.0.2.2 */
#define DNS_IP     0x0a000203u   /* 10.0.2.3 */
#define ETH_ARP    0x0806
#define ETH_IPV4   0x0800
#define ETH_IPV6   0x86dd
#define MAX_FRAMES 512

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
/* libslirp answers for every address of its network with 52:55 followed by
 * that address. */
static const uint8_t slirp_mac[6] = { 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02 };

struct frame {
	uint8_t *data;
	size_t len;
};

struct fixture {
	struct event_loop loop;
	struct net_config cfg;
	struct net_backend *be;
	struct net_port port;
	struct frame frames[MAX_FRAMES];
	unsigned nframes;
	unsigned arp_scanned;   /* frames checked for ARP requests to answer */
	char err[1024];         /* stderr of the last open_backend */
};

/* ---- byte helpers ---- */

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v & 0xff; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += get16(p + i);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The IPv4 pseudo-header sum of an L4 segment. */
static uint32_t pseudo4(const uint8_t *ip, uint8_t proto, size_t l4len)
{
	uint32_t sum = csum_add(0, ip + 12, 8);
	return sum + proto + (uint32_t)l4len;
}

static size_t put_eth(uint8_t *b, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(b, dst, 6);
	memcpy(b + 6, src, 6);
	put16(b + 12, type);
	return 14;
}

static void put_ipv4(uint8_t *ip, uint8_t proto, uint32_t src, uint32_t dst, size_t l4len)
{
	static uint16_t id = 1;
	memset(ip, 0, 20);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(20 + l4len));
	put16(ip + 4, id++);
	ip[8] = 64;
	ip[9] = proto;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
}

/* A whole UDP/IPv4 frame from the guest; returns its length. */
static size_t udp_frame(uint8_t *b, const uint8_t dst_mac[6], uint32_t src, uint16_t sport,
			uint32_t dst, uint16_t dport, const void *data, size_t len)
{
	size_t off = put_eth(b, dst_mac, guest_mac, ETH_IPV4);
	uint8_t *ip = b + off, *udp = ip + 20;
	put16(udp, sport);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(8 + len));
	put16(udp + 6, 0);
	memcpy(udp + 8, data, len);
	put_ipv4(ip, IPPROTO_UDP, src, dst, 8 + len);
	uint16_t c = csum_fold(csum_add(pseudo4(ip, IPPROTO_UDP, 8 + len), udp, 8 + len));
	put16(udp + 6, c ? c : 0xffff);
	return off + 20 + 8 + len;
}

enum { TH_FIN = 1, TH_SYN = 2, TH_RST = 4, TH_PSH = 8, TH_ACK = 16 };

static size_t tcp_frame(uint8_t *b, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
			uint32_t seq, uint32_t ack, uint8_t flags, const void *data, size_t len)
{
	size_t off = put_eth(b, slirp_mac, guest_mac, ETH_IPV4);
	uint8_t *ip = b + off, *tcp = ip + 20;
	memset(tcp, 0, 20);
	put16(tcp, sport);
	put16(tcp + 2, dport);
	put32(tcp + 4, seq);
	put32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	put16(tcp + 14, 65535);
	if (len)
		memcpy(tcp + 20, data, len);
	put_ipv4(ip, IPPROTO_TCP, src, dst, 20 + len);
	put16(tcp + 16, csum_fold(csum_add(pseudo4(ip, IPPROTO_TCP, 20 + len), tcp, 20 + len)));
	return off + 20 + 20 + len;
}

static size_t arp_frame(uint8_t *b, uint16_t op, const uint8_t eth_dst[6], uint32_t sip,
			const uint8_t tha[6], uint32_t tip)
{
	size_t off = put_eth(b, eth_dst, guest_mac, ETH_ARP);
	uint8_t *a = b + off;
	put16(a, 1);           /* Ethernet */
	put16(a + 2, ETH_IPV4);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, guest_mac, 6);
	put32(a + 14, sip);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tip);
	return off + 28;
}

/* ---- what slirp sent ---- */

struct parsed {
	uint16_t type;
	const uint8_t *l3;
	size_t l3len;
	/* IPv4 */
	uint8_t proto;
	uint32_t src, dst;
	bool ip_csum_ok, l4_csum_ok;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	const uint8_t *data;
	size_t datalen;
};

static bool parse(const struct frame *fr, struct parsed *p)
{
	memset(p, 0, sizeof(*p));
	if (fr->len < 14)
		return false;
	p->type = get16(fr->data + 12);
	p->l3 = fr->data + 14;
	p->l3len = fr->len - 14;
	if (p->type != ETH_IPV4)
		return true;
	const uint8_t *ip = p->l3;
	if (p->l3len < 20 || (ip[0] >> 4) != 4)
		return false;
	size_t ihl = (size_t)(ip[0] & 15) * 4, tot = get16(ip + 2);
	if (ihl < 20 || tot < ihl || tot > p->l3len)
		return false;
	p->proto = ip[9];
	p->src = get32(ip + 12);
	p->dst = get32(ip + 16);
	p->ip_csum_ok = csum_fold(csum_add(0, ip, ihl)) == 0;
	const uint8_t *l4 = ip + ihl;
	size_t l4len = tot - ihl;
	if (p->proto == IPPROTO_UDP && l4len >= 8) {
		if (get16(l4 + 4) < 8 || get16(l4 + 4) > l4len)
			return false;
		p->sport = get16(l4);
		p->dport = get16(l4 + 2);
		p->data = l4 + 8;
		p->datalen = get16(l4 + 4) - 8u;
		p->l4_csum_ok = get16(l4 + 6) == 0 ||
				csum_fold(csum_add(pseudo4(ip, IPPROTO_UDP, l4len), l4, l4len)) == 0;
	} else if (p->proto == IPPROTO_TCP && l4len >= 20) {
		size_t doff = (size_t)(l4[12] >> 4) * 4;
		p->sport = get16(l4);
		p->dport = get16(l4 + 2);
		p->seq = get32(l4 + 4);
		p->ack = get32(l4 + 8);
		p->flags = l4[13];
		p->data = l4 + doff;
		p->datalen = l4len - doff;
		p->l4_csum_ok = csum_fold(csum_add(pseudo4(ip, IPPROTO_TCP, l4len), l4, l4len)) == 0;
	}
	return true;
}

static void port_receive(void *ctx, const uint8_t *frame, size_t len)
{
	struct fixture *f = ctx;
	if (f->nframes == MAX_FRAMES)
		return;
	struct frame *fr = &f->frames[f->nframes++];
	fr->data = malloc(len);
	assert_non_null(fr->data);
	memcpy(fr->data, frame, len);
	fr->len = len;
}

static int guest_send(struct fixture *f, const void *frame, size_t len)
{
	struct iovec iov = { .iov_base = (void *)frame, .iov_len = len };
	return f->be->ops->send(f->be, 0, &iov, 1);
}

/* A guest answers who-has for its address, later, from its TX queue: never
 * from inside port->receive, which runs inside libslirp. */
static void answer_arp(struct fixture *f)
{
	for (; f->arp_scanned < f->nframes; f->arp_scanned++) {
		const struct frame *fr = &f->frames[f->arp_scanned];
		if (fr->len < 42 || get16(fr->data + 12) != ETH_ARP)
			continue;
		const uint8_t *a = fr->data + 14;
		if (get16(a + 6) != 1 || get32(a + 24) != GUEST_IP)
			continue;
		uint8_t b[64];
		size_t n = arp_frame(b, 2, a + 8, GUEST_IP, a + 8, get32(a + 14));
		assert_int_equal(guest_send(f, b, n), 0);
	}
}

static void pump(struct fixture *f, int ms)
{
	uint64_t end = evloop_now_ns() + (uint64_t)ms * 1000000;
	do {
		assert_true(evloop_run_once(&f->loop, 5) >= 0);
		answer_arp(f);
	} while (evloop_now_ns() < end);
}

typedef bool (*frame_match)(const struct parsed *p, const void *arg);

/* Runs the loop until a frame recorded at index >= from matches; its index,
 * or -1 after timeout_ms. */
static int wait_frame(struct fixture *f, unsigned from, frame_match m, const void *arg,
		      int timeout_ms)
{
	uint64_t end = evloop_now_ns() + (uint64_t)timeout_ms * 1000000;
	for (;;) {
		for (unsigned i = from; i < f->nframes; i++) {
			struct parsed p;
			if (parse(&f->frames[i], &p) && m(&p, arg))
				return (int)i;
		}
		if (evloop_now_ns() >= end)
			return -1;
		assert_true(evloop_run_once(&f->loop, 5) >= 0);
		answer_arp(f);
	}
}

/* Runs the loop until fd is readable; false after timeout_ms. */
static bool wait_readable(struct fixture *f, int fd, int timeout_ms)
{
	uint64_t end = evloop_now_ns() + (uint64_t)timeout_ms * 1000000;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, 0) == 1)
			return true;
		if (evloop_now_ns() >= end)
			return false;
		assert_true(evloop_run_once(&f->loop, 5) >= 0);
		answer_arp(f);
	}
}

/* ---- set-up ---- */

static void default_cfg(struct net_config *c)
{
	memset(c, 0, sizeof(*c));
	c->kind = NET_USER;
	memcpy(c->mac, guest_mac, 6);
	c->net.s_addr = htonl(0x0a000200);
	c->mask.s_addr = htonl(0xffffff00);
	c->host.s_addr = htonl(HOST_IP);
	c->dns.s_addr = htonl(DNS_IP);
	c->dhcp_start.s_addr = htonl(GUEST_IP);
	c->ipv6 = true;
}

static void add_fwd(struct net_config *c, bool udp, uint32_t host_ip, uint16_t hport,
		    uint16_t gport)
{
	struct net_hostfwd *h = &c->hostfwd[c->nhostfwd++];
	h->udp = udp;
	h->host_addr.s_addr = htonl(host_ip);
	h->host_port = hport;
	h->guest_addr.s_addr = htonl(GUEST_IP);
	h->guest_port = gport;
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &h->host_addr, ip, sizeof(ip));
	snprintf(h->text, sizeof(h->text), "%s:%s:%u-:%u", udp ? "udp" : "tcp", ip, hport, gport);
}

/* stderr goes to a file from capture_begin until capture_end puts what was
 * written into f->err. */
struct capture {
	FILE *tmp;
	int saved;
};

static struct capture capture_begin(void)
{
	struct capture c = { tmpfile(), -1 };
	assert_non_null(c.tmp);
	fflush(stderr);
	c.saved = dup(2);
	assert_true(dup2(fileno(c.tmp), 2) >= 0);
	return c;
}

static void capture_end(struct fixture *f, struct capture c)
{
	fflush(stderr);
	dup2(c.saved, 2);
	close(c.saved);
	rewind(c.tmp);
	size_t n = fread(f->err, 1, sizeof(f->err) - 1, c.tmp);
	f->err[n] = 0;
	fclose(c.tmp);
}

/* Opens f->cfg with stderr captured into f->err. */
static int open_backend(struct fixture *f)
{
	struct capture c = capture_begin();
	int r = slirp_backend_open(&f->be, &f->cfg, &f->loop);
	capture_end(f, c);
	if (r == 0) {
		f->port = (struct net_port){ .receive = port_receive, .ctx = f };
		f->be->ops->attach(f->be, &f->port);
	}
	return r;
}

static int setup_bare(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(evloop_init(&f->loop), 0);
	default_cfg(&f->cfg);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	setup_bare(state);
	struct fixture *f = *state;
	int r = open_backend(f);
	if (r != 0)
		fail_msg("open: %s (stderr: %s)", strerror(-r), f->err);
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->be)
		f->be->ops->close(f->be);
	assert_null(f->loop.hooks);   /* close removed the hook */
	assert_null(f->loop.timers);  /* and every timer */
	evloop_close(&f->loop);
	for (unsigned i = 0; i < f->nframes; i++)
		free(f->frames[i].data);
	free(f);
	return 0;
}

/* A free port on 127.0.0.1 (bound and closed again: good enough for a test). */
static uint16_t free_port(int type)
{
	int s = socket(AF_INET, type, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	close(s);
	return ntohs(a.sin_port);
}

static int bound_socket(int type, uint16_t port)
{
	int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	if (type == SOCK_STREAM)
		assert_int_equal(listen(s, 4), 0);
	return s;
}

static uint16_t local_port(int s)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	return ntohs(a.sin_port);
}

/* The guest says who it is, as it would after DHCP: slirp learns its MAC. */
static void guest_hello(struct fixture *f)
{
	static const uint8_t zero[6];
	uint8_t b[64];
	size_t n = arp_frame(b, 1, bcast_mac, GUEST_IP, zero, HOST_IP);
	assert_int_equal(guest_send(f, b, n), 0);
}

/* ---- ARP ---- */

struct arp_want {
	uint16_t op;
	uint32_t spa, tpa;
};

static bool is_arp(const struct parsed *p, const void *arg)
{
	const struct arp_want *w = arg;
	return p->type == ETH_ARP && p->l3len >= 28 && get16(p->l3 + 6) == w->op &&
	       get32(p->l3 + 14) == w->spa && get32(p->l3 + 24) == w->tpa;
}

static void test_arp_gateway(void **state)
{
	struct fixture *f = *state;
	static const uint8_t zero[6];
	uint8_t b[64];
	/* First as a guest that has no address yet (an ARP probe's sender),
	 * then with the address DHCP gave it. */
	const uint32_t senders[] = { 0, GUEST_IP };
	for (unsigned i = 0; i < 2; i++) {
		unsigned from = f->nframes;
		size_t n = arp_frame(b, 1, bcast_mac, senders[i], zero, HOST_IP);
		assert_int_equal(guest_send(f, b, n), 0);
		struct arp_want w = { .op = 2, .spa = HOST_IP, .tpa = senders[i] };
		int k = wait_frame(f, from, is_arp, &w, 1000);
		assert_true(k >= 0);
		const uint8_t *fr = f->frames[k].data;
		assert_memory_equal(fr, guest_mac, 6);        /* to the asker */
		assert_memory_equal(fr + 6, slirp_mac, 6);
		assert_memory_equal(fr + 14 + 8, slirp_mac, 6); /* sender MAC */
		assert_memory_equal(fr + 14 + 18, guest_mac, 6);
	}
	/* The DNS address answers too; one outside the network does not. */
	unsigned from = f->nframes;
	size_t n = arp_frame(b, 1, bcast_mac, GUEST_IP, zero, DNS_IP);
	assert_int_equal(guest_send(f, b, n), 0);
	struct arp_want w = { .op = 2, .spa = DNS_IP, .tpa = GUEST_IP };
	assert_true(wait_frame(f, from, is_arp, &w, 1000) >= 0);
	from = f->nframes;
	n = arp_frame(b, 1, bcast_mac, GUEST_IP, zero, 0xc0000201);
	assert_int_equal(guest_send(f, b, n), 0);
	pump(f, 50);
	assert_int_equal(f->nframes, from);
}

/* ---- DHCP ---- */

#define BOOTP_LEN 548   /* what Linux clients send: 236 fixed bytes, 312 of options */

static size_t dhcp_frame(uint8_t *b, uint32_t xid, uint8_t type, uint32_t req_ip,
			 uint32_t server)
{
	uint8_t bp[BOOTP_LEN];
	memset(bp, 0, sizeof(bp));
	bp[0] = 1;         /* BOOTREQUEST */
	bp[1] = 1;
	bp[2] = 6;
	put32(bp + 4, xid);
	memcpy(bp + 28, guest_mac, 6);
	put32(bp + 236, 0x63825363);
	uint8_t *o = bp + 240;
	*o++ = 53; *o++ = 1; *o++ = type;
	if (req_ip) {
		*o++ = 50; *o++ = 4; put32(o, req_ip); o += 4;
	}
	if (server) {
		*o++ = 54; *o++ = 4; put32(o, server); o += 4;
	}
	*o++ = 55; *o++ = 3; *o++ = 1; *o++ = 3; *o++ = 6;  /* mask, router, DNS */
	*o = 255;
	return udp_frame(b, bcast_mac, 0, 68, 0xffffffff, 67, bp, sizeof(bp));
}

struct dhcp_reply {
	uint32_t xid, yiaddr;
	int type;
	uint32_t mask, router, dns, server;
};

/* Options of a BOOTP reply; false if it is not a well-formed one. */
static bool dhcp_parse(const struct parsed *p, struct dhcp_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->type = -1;
	if (p->type != ETH_IPV4 || p->proto != IPPROTO_UDP || p->sport != 67 || p->dport != 68 ||
	    p->datalen < 240 || p->data[0] != 2 || get32(p->data + 236) != 0x63825363)
		return false;
	r->xid = get32(p->data + 4);
	r->yiaddr = get32(p->data + 16);
	const uint8_t *o = p->data + 240, *end = p->data + p->datalen;
	while (o < end && *o != 255) {
		if (*o == 0) {
			o++;
			continue;
		}
		if (o + 2 > end || o + 2 + o[1] > end)
			return false;
		uint8_t code = o[0], len = o[1];
		const uint8_t *v = o + 2;
		if (code == 53 && len == 1)
			r->type = v[0];
		else if (code == 1 && len == 4)
			r->mask = get32(v);
		else if (code == 3 && len >= 4)
			r->router = get32(v);
		else if (code == 6 && len >= 4)
			r->dns = get32(v);
		else if (code == 54 && len == 4)
			r->server = get32(v);
		o += 2 + len;
	}
	return true;
}

struct dhcp_want {
	uint32_t xid;
	int type;
};

static bool is_dhcp(const struct parsed *p, const void *arg)
{
	const struct dhcp_want *w = arg;
	struct dhcp_reply r;
	return dhcp_parse(p, &r) && r.xid == w->xid && r.type == w->type;
}

static void test_dhcp(void **state)
{
	struct fixture *f = *state;
	uint8_t b[1024];
	unsigned from = f->nframes;
	assert_int_equal(guest_send(f, b, dhcp_frame(b, 0x1234abcd, 1, 0, 0)), 0);
	struct dhcp_want w = { 0x1234abcd, 2 };
	int k = wait_frame(f, from, is_dhcp, &w, 1000);
	assert_true(k >= 0);
	struct parsed p;
	struct dhcp_reply r;
	assert_true(parse(&f->frames[k], &p));
	assert_true(p.ip_csum_ok);
	assert_true(p.l4_csum_ok);
	assert_int_equal(p.src, HOST_IP);
	assert_true(dhcp_parse(&p, &r));
	assert_int_equal(r.yiaddr, GUEST_IP);
	assert_int_equal(r.mask, 0xffffff00);
	assert_int_equal(r.router, HOST_IP);
	assert_int_equal(r.dns, DNS_IP);
	assert_int_equal(r.server, HOST_IP);

	from = f->nframes;
	assert_int_equal(guest_send(f, b, dhcp_frame(b, 0x1234abce, 3, GUEST_IP, HOST_IP)), 0);
	w = (struct dhcp_want){ 0x1234abce, 5 };
	k = wait_frame(f, from, is_dhcp, &w, 1000);
	assert_true(k >= 0);
	assert_true(parse(&f->frames[k], &p));
	assert_true(p.ip_csum_ok && p.l4_csum_ok);
	assert_true(dhcp_parse(&p, &r));
	assert_int_equal(r.yiaddr, GUEST_IP);
	assert_int_equal(r.router, HOST_IP);
	assert_int_equal(r.dns, DNS_IP);
}

/* ---- UDP ---- */

struct l4_want {
	uint8_t proto;
	uint32_t src, dst;
	uint16_t sport, dport;   /* 0: any */
	const char *data;        /* NULL: any */
	uint8_t flags;           /* TCP: these must be set */
};

static bool is_l4(const struct parsed *p, const void *arg)
{
	const struct l4_want *w = arg;
	if (p->type != ETH_IPV4 || p->proto != w->proto || p->src != w->src || p->dst != w->dst)
		return false;
	if ((w->sport && p->sport != w->sport) || (w->dport && p->dport != w->dport))
		return false;
	if (w->proto == IPPROTO_TCP && (p->flags & w->flags) != w->flags)
		return false;
	return !w->data || (p->datalen == strlen(w->data) &&
			    memcmp(p->data, w->data, p->datalen) == 0);
}

/* The guest sends "ping" to 10.0.2.2:port from 5555; true if the socket
 * got it, with where it came from in *from. */
static bool udp_ping(struct fixture *f, int s, struct sockaddr_in *from)
{
	uint8_t b[128];
	size_t n = udp_frame(b, slirp_mac, GUEST_IP, 5555, HOST_IP, local_port(s), "ping", 4);
	assert_int_equal(guest_send(f, b, n), 0);
	if (!wait_readable(f, s, 300))
		return false;
	char buf[64];
	socklen_t fl = sizeof(*from);
	ssize_t got = recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)from, &fl);
	assert_int_equal(got, 4);
	assert_memory_equal(buf, "ping", 4);
	return true;
}

static void test_udp_out(void **state)
{
	struct fixture *f = *state;
	guest_hello(f);
	int s = bound_socket(SOCK_DGRAM, 0);
	struct sockaddr_in from;
	assert_true(udp_ping(f, s, &from));
	/* slirp's own socket: on loopback, not the guest's address. */
	assert_int_equal(ntohl(from.sin_addr.s_addr), INADDR_LOOPBACK);

	unsigned first = f->nframes;
	assert_int_equal(sendto(s, "pong!", 5, 0, (struct sockaddr *)&from, sizeof(from)), 5);
	struct l4_want w = { IPPROTO_UDP, HOST_IP, GUEST_IP, local_port(s), 5555, "pong!", 0 };
	int k = wait_frame(f, first, is_l4, &w, 1000);
	assert_true(k >= 0);
	struct parsed p;
	assert_true(parse(&f->frames[k], &p));
	assert_true(p.ip_csum_ok);
	assert_true(p.l4_csum_ok);
	assert_memory_equal(f->frames[k].data, guest_mac, 6);
	close(s);
}

static int setup_restricted(void **state)
{
	setup_bare(state);
	struct fixture *f = *state;
	f->cfg.restrict_ = true;
	assert_int_equal(open_backend(f), 0);
	return 0;
}

static void test_restrict_drops_udp_out(void **state)
{
	struct fixture *f = *state;
	guest_hello(f);
	int s = bound_socket(SOCK_DGRAM, 0);
	struct sockaddr_in from;
	assert_false(udp_ping(f, s, &from));
	close(s);
	/* The virtual services still answer. */
	uint8_t b[1024];
	unsigned first = f->nframes;
	assert_int_equal(guest_send(f, b, dhcp_frame(b, 77, 1, 0, 0)), 0);
	struct dhcp_want w = { 77, 2 };
	assert_true(wait_frame(f, first, is_dhcp, &w, 1000) >= 0);
}

/* ---- host forwarding ---- */

static int setup_hostfwd(void **state)
{
	setup_bare(state);
	struct fixture *f = *state;
	add_fwd(&f->cfg, false, INADDR_LOOPBACK, free_port(SOCK_STREAM), 2222);
	add_fwd(&f->cfg, true, INADDR_LOOPBACK, free_port(SOCK_DGRAM), 3333);
	int r = open_backend(f);
	if (r)
		fail_msg("open: %s (stderr: %s)", strerror(-r), f->err);
	return 0;
}

static int connect_to(uint16_t port)
{
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	/* The kernel completes the handshake with slirp's listening socket at
	 * once; slirp accepts it on its next round. */
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	return c;
}

static void tcp_hostfwd_session(struct fixture *f, uint16_t hport)
{
	int c = connect_to(hport);
	unsigned first = f->nframes;
	struct l4_want syn = { IPPROTO_TCP, HOST_IP, GUEST_IP, 0, 2222, NULL, TH_SYN };
	int k = wait_frame(f, first, is_l4, &syn, 2000);
	assert_true(k >= 0);
	struct parsed p;
	assert_true(parse(&f->frames[k], &p));
	assert_true(p.ip_csum_ok);
	assert_true(p.l4_csum_ok);
	assert_false(p.flags & TH_ACK);
	assert_memory_equal(f->frames[k].data, guest_mac, 6);
	uint16_t sport = p.sport;
	uint32_t s_seq = p.seq + 1, g_seq = 1000000;

	/* The fake guest accepts. */
	uint8_t b[256];
	size_t n = tcp_frame(b, GUEST_IP, 2222, HOST_IP, sport, g_seq, s_seq, TH_SYN | TH_ACK,
			     NULL, 0);
	assert_int_equal(guest_send(f, b, n), 0);
	g_seq++;

	/* Host to guest. */
	first = f->nframes;
	assert_int_equal(send(c, "hello", 5, 0), 5);
	struct l4_want data = { IPPROTO_TCP, HOST_IP, GUEST_IP, sport, 2222, "hello", TH_ACK };
	k = wait_frame(f, first, is_l4, &data, 2000);
	assert_true(k >= 0);
	assert_true(parse(&f->frames[k], &p));
	assert_true(p.ip_csum_ok && p.l4_csum_ok);
	assert_int_equal(p.seq, s_seq);
	assert_int_equal(p.ack, g_seq);
	s_seq += 5;

	/* Guest to host, acknowledging the hello. */
	n = tcp_frame(b, GUEST_IP, 2222, HOST_IP, sport, g_seq, s_seq, TH_PSH | TH_ACK, "world", 5);
	assert_int_equal(guest_send(f, b, n), 0);
	assert_true(wait_readable(f, c, 2000));
	char buf[16];
	assert_int_equal(recv(c, buf, sizeof(buf), 0), 5);
	assert_memory_equal(buf, "world", 5);
	g_seq += 5;

	/* The host closes; slirp passes the FIN on; the guest resets (no
	 * lingering state to wait for). */
	first = f->nframes;
	close(c);
	struct l4_want fin = { IPPROTO_TCP, HOST_IP, GUEST_IP, sport, 2222, NULL, TH_FIN };
	assert_true(wait_frame(f, first, is_l4, &fin, 2000) >= 0);
	n = tcp_frame(b, GUEST_IP, 2222, HOST_IP, sport, g_seq, s_seq + 1, TH_RST | TH_ACK, NULL, 0);
	assert_int_equal(guest_send(f, b, n), 0);
	pump(f, 20);
}

static void test_tcp_hostfwd(void **state)
{
	struct fixture *f = *state;
	guest_hello(f);
	tcp_hostfwd_session(f, f->cfg.hostfwd[0].host_port);
}

/* Sends "to-guest" to the UDP rule's host port and lets the guest answer
 * "back"; true if the answer arrived. */
static bool udp_hostfwd_exchange(struct fixture *f)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(f->cfg.hostfwd[1].host_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(sendto(s, "to-guest", 8, 0, (struct sockaddr *)&a, sizeof(a)), 8);
	struct l4_want w = { IPPROTO_UDP, HOST_IP, GUEST_IP, local_port(s), 3333, "to-guest", 0 };
	int k = wait_frame(f, 0, is_l4, &w, 2000);
	assert_true(k >= 0);
	struct parsed p;
	assert_true(parse(&f->frames[k], &p));
	assert_true(p.ip_csum_ok && p.l4_csum_ok);
	/* The guest's answer goes back to the sender. */
	uint8_t b[128];
	size_t n = udp_frame(b, slirp_mac, GUEST_IP, 3333, HOST_IP, p.sport, "back", 4);
	assert_int_equal(guest_send(f, b, n), 0);
	bool answered = wait_readable(f, s, 300);
	if (answered) {
		char buf[16];
		assert_int_equal(recv(s, buf, sizeof(buf), 0), 4);
		assert_memory_equal(buf, "back", 4);
	}
	close(s);
	return answered;
}

/* Without guest_hello: slirp has to find the guest's MAC with ARP itself. */
static void test_udp_hostfwd(void **state)
{
	assert_true(udp_hostfwd_exchange(*state));
}

static int setup_restricted_hostfwd(void **state)
{
	setup_bare(state);
	struct fixture *f = *state;
	f->cfg.restrict_ = true;
	add_fwd(&f->cfg, false, INADDR_LOOPBACK, free_port(SOCK_STREAM), 2222);
	add_fwd(&f->cfg, true, INADDR_LOOPBACK, free_port(SOCK_DGRAM), 3333);
	assert_int_equal(open_backend(f), 0);
	return 0;
}

/* restrict=on keeps forwarded TCP connections working both ways, but
 * libslirp drops every UDP datagram from a restricted guest before looking
 * for its socket, so a UDP forward only reaches in. */
static void test_restrict_hostfwd(void **state)
{
	struct fixture *f = *state;
	guest_hello(f);
	tcp_hostfwd_session(f, f->cfg.hostfwd[0].host_port);
	assert_false(udp_hostfwd_exchange(f));
}

/* A reboot: the device detaches, frames meanwhile are dropped and
 * counted, a new device attaches and the same forwards keep working. */
static void test_detach_reattach(void **state)
{
	struct fixture *f = *state;
	static const uint8_t zero[6];
	f->be->ops->attach(f->be, NULL);
	uint8_t b[64];
	size_t n = arp_frame(b, 1, bcast_mac, GUEST_IP, zero, HOST_IP);
	assert_int_equal(guest_send(f, b, n), 0);
	assert_int_equal(guest_send(f, b, n), 0);
	pump(f, 20);
	assert_int_equal(f->nframes, 0);
	assert_int_equal(f->be->dropped_rx, 2);
	struct slirp_backend_stats st;
	assert_int_equal(slirp_backend_get_stats(f->be, &st), 0);
	assert_int_equal(st.rx_dropped, 2);
	assert_int_equal(st.rx_frames, 0);
	assert_int_equal(st.tx_frames, 2);

	struct net_port fresh = { .receive = port_receive, .ctx = f };
	f->be->ops->attach(f->be, &fresh);
	tcp_hostfwd_session(f, f->cfg.hostfwd[0].host_port);
	assert_int_equal(slirp_backend_get_stats(f->be, &st), 0);
	assert_int_equal(st.rx_dropped, 2);
	assert_int_equal(st.rx_frames, f->nframes);
}

/* ---- errors ---- */

static void expect_open_fails(struct fixture *f, int err, const char *what)
{
	int r = open_backend(f);
	assert_int_equal(r, -err);
	assert_null(f->be);
	const char *rule = f->cfg.hostfwd[f->cfg.nhostfwd - 1].text;
	if (!strstr(f->err, rule) || !strstr(f->err, what))
		fail_msg("stderr '%s' does not name '%s' and say '%s'", f->err, rule, what);
	/* One line. */
	char *nl = strchr(f->err, '\n');
	assert_non_null(nl);
	assert_int_equal(nl[1], 0);
	assert_null(f->loop.hooks);
	assert_null(f->loop.timers);
}

static void test_hostfwd_port_in_use(void **state)
{
	struct fixture *f = *state;
	int types[] = { SOCK_STREAM, SOCK_DGRAM };
	for (unsigned i = 0; i < 2; i++) {
		int s = bound_socket(types[i], 0);
		default_cfg(&f->cfg);
		/* A good rule before the bad one. */
		uint16_t good = free_port(SOCK_DGRAM);
		add_fwd(&f->cfg, true, INADDR_LOOPBACK, good, 53);
		add_fwd(&f->cfg, types[i] == SOCK_DGRAM, INADDR_LOOPBACK, local_port(s), 22);
		expect_open_fails(f, EADDRINUSE, "is in use");
		char want[32];
		snprintf(want, sizeof(want), "host port %u", local_port(s));
		assert_non_null(strstr(f->err, want));
		/* The failed open closed the good rule's socket again. */
		close(bound_socket(SOCK_DGRAM, good));
		/* Bound on every address, the port clashes with the rule too. */
		default_cfg(&f->cfg);
		add_fwd(&f->cfg, types[i] == SOCK_DGRAM, INADDR_ANY, local_port(s), 22);
		expect_open_fails(f, EADDRINUSE, "is in use");
		close(s);
	}
}

static void test_hostfwd_address_not_local(void **state)
{
	struct fixture *f = *state;
	add_fwd(&f->cfg, false, 0xc0000201 /* 192.0.2.1, TEST-NET-1 */, 2222, 22);
	expect_open_fails(f, EADDRNOTAVAIL, "192.0.2.1 is not an address of this host");
}

/* Without CAP_NET_BIND_SERVICE (dropped in a child when the test runs as
 * root), a port below ip_unprivileged_port_start is refused with EACCES. */
static void test_hostfwd_privileged_port(void **state)
{
	struct fixture *f = *state;
	FILE *sc = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "r");
	int start = 1024;
	if (sc) {
		if (fscanf(sc, "%d", &start) != 1)
			start = 1024;
		fclose(sc);
	}
	if (start <= 1) {
		print_message("every port is unprivileged on this host\n");
		skip();
	}
	add_fwd(&f->cfg, false, INADDR_LOOPBACK, (uint16_t)(start - 1), 22);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct data[2];
		if (syscall(SYS_capget, &hdr, data) < 0)
			_exit(2);
		data[CAP_NET_BIND_SERVICE / 32].effective &= ~(1u << (CAP_NET_BIND_SERVICE % 32));
		if (syscall(SYS_capset, &hdr, data) < 0)
			_exit(3);
		FILE *tmp = tmpfile();
		if (!tmp || dup2(fileno(tmp), 2) < 0)
			_exit(4);
		int r = slirp_backend_open(&f->be, &f->cfg, &f->loop);
		fflush(stderr);
		rewind(tmp);
		size_t n = fread(f->err, 1, sizeof(f->err) - 1, tmp);
		f->err[n] = 0;
		if (r != -EACCES)
			_exit(5);
		_exit(strstr(f->err, f->cfg.hostfwd[0].text) && strstr(f->err, "needs privileges")
			      ? 0 : 6);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_bad_config(void **state)
{
	struct fixture *f = *state;
	f->cfg.dns.s_addr = htonl(0x0a000303);
	assert_int_equal(open_backend(f), -EINVAL);
	assert_non_null(strstr(f->err, "dns=10.0.3.3"));
	assert_null(f->be);
}

/* ---- frames from the guest that are not frames ---- */

static void test_malformed_frames(void **state)
{
	struct fixture *f = *state;
	uint8_t b[2048];
	struct iovec iov[3] = { 0 };

	assert_int_equal(f->be->ops->send(f->be, 0, iov, 0), -EINVAL);
	memset(b, 0xff, sizeof(b));
	iov[0] = (struct iovec){ b, 13 };
	assert_int_equal(f->be->ops->send(f->be, 0, iov, 1), -EINVAL);
	uint8_t *big = calloc(1, 65536 + 15);
	assert_non_null(big);
	iov[0] = (struct iovec){ big, 65536 + 15 };
	assert_int_equal(f->be->ops->send(f->be, 0, iov, 1), -EMSGSIZE);
	/* Pieces whose lengths would wrap a size_t sum. */
	iov[0] = (struct iovec){ big, 100 };
	iov[1] = (struct iovec){ big, SIZE_MAX - 50 };
	assert_int_equal(f->be->ops->send(f->be, 0, iov, 2), -EMSGSIZE);
	iov[0] = (struct iovec){ big, 40000 };
	iov[1] = (struct iovec){ big, 40000 };
	assert_int_equal(f->be->ops->send(f->be, 0, iov, 2), -EMSGSIZE);
	/* Exactly the largest is taken (and slirp drops the nonsense). */
	iov[0] = (struct iovec){ big, 65536 + 14 };
	assert_int_equal(f->be->ops->send(f->be, 0, iov, 1), 0);
	free(big);

	/* Frames of the right size but broken inside: slirp must shrug them
	 * off. */
	static const uint8_t zero[6];
	size_t n = udp_frame(b, slirp_mac, GUEST_IP, 1, HOST_IP, 9, "x", 1);
	uint8_t bad[16][128];
	memset(bad, 0, sizeof(bad));
	size_t badlen[16];
	unsigned nbad = 0;
	for (unsigned i = 0; i < 12; i++) {
		memcpy(bad[i], b, n);
		badlen[i] = n;
	}
	bad[0][14] = 0x41;                 /* IHL 1 */
	bad[1][14] = 0x4f;                 /* IHL 15: past the end */
	put16(bad[2] + 16, 1400);          /* total length past the end */
	put16(bad[3] + 16, 10);            /* total length inside the header */
	bad[4][14] = 0x65;                 /* version 6 in an IPv4 frame */
	bad[5][24] ^= 0x55;                /* header checksum */
	put16(bad[6] + 38, 4000);          /* UDP length past the end */
	put16(bad[7] + 38, 3);             /* UDP length below its header */
	put16(bad[8] + 20, 0x2001);        /* a fragment at offset 8, more to come */
	badlen[9] = 14 + 10;               /* IPv4 cut inside its header */
	badlen[10] = 14 + 21;              /* UDP cut inside its header */
	bad[11][23] = 1;                   /* ICMP with no ICMP in it */
	/* Past the header checks, so that what follows them is what fails. */
	static const unsigned refix[] = { 2, 3, 4, 8, 11 };
	for (unsigned i = 0; i < sizeof(refix) / sizeof(refix[0]); i++) {
		uint8_t *ip = bad[refix[i]] + 14;
		put16(ip + 10, 0);
		put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	}
	nbad = 12;
	n = tcp_frame(bad[nbad], GUEST_IP, 40000, HOST_IP, 9, 1, 0, TH_SYN, NULL, 0);
	bad[nbad][14 + 20 + 12] = 15 << 4; /* TCP header longer than the segment */
	badlen[nbad++] = n;
	n = arp_frame(bad[nbad], 1, bcast_mac, GUEST_IP, zero, HOST_IP);
	badlen[nbad++] = n - 10;           /* ARP cut short */
	n = arp_frame(bad[nbad], 1, bcast_mac, GUEST_IP, zero, HOST_IP);
	bad[nbad][14 + 4] = 32;            /* hardware address length 32 */
	badlen[nbad++] = n;
	memset(bad[nbad], 0, 60);          /* IPv6 with nothing in it */
	put16(bad[nbad] + 12, ETH_IPV6);
	bad[nbad][14] = 0x60;
	put16(bad[nbad] + 18, 1000);
	badlen[nbad++] = 60;
	for (unsigned i = 0; i < nbad; i++) {
		iov[0] = (struct iovec){ bad[i], badlen[i] };
		assert_int_equal(f->be->ops->send(f->be, 0, iov, 1), 0);
	}
	pump(f, 20);

	struct slirp_backend_stats st;
	assert_int_equal(slirp_backend_get_stats(f->be, &st), 0);
	assert_int_equal(st.tx_short, 2);
	assert_int_equal(st.tx_long, 3);
	assert_int_equal(st.tx_frames, 1 + nbad);

	/* Still working: an ARP request in three pieces (apart in memory, so
	 * only a copy makes them one frame) gets its answer. */
	unsigned from = f->nframes;
	n = arp_frame(b, 1, bcast_mac, GUEST_IP, zero, HOST_IP);
	uint8_t *head = malloc(5), *tail = malloc(n - 5);
	assert_non_null(head);
	assert_non_null(tail);
	memcpy(head, b, 5);
	memcpy(tail, b + 5, n - 5);
	memset(b, 0, n);
	iov[0] = (struct iovec){ head, 5 };
	iov[1] = (struct iovec){ b, 0 };
	iov[2] = (struct iovec){ tail, n - 5 };
	assert_int_equal(f->be->ops->send(f->be, 0, iov, 3), 0);
	free(head);
	free(tail);
	struct arp_want w = { .op = 2, .spa = HOST_IP, .tpa = GUEST_IP };
	assert_true(wait_frame(f, from, is_arp, &w, 1000) >= 0);

	char *text = NULL;
	size_t tlen = 0;
	FILE *m = open_memstream(&text, &tlen);
	assert_non_null(m);
	slirp_backend_print_stats(m, f->be);
	fclose(m);
	assert_non_null(strstr(text, "2 shorter than 14 bytes, 3 longer than 65550"));
	free(text);
}

/* ---- IPv6 ---- */

static size_t router_solicitation(uint8_t *b)
{
	static const uint8_t all_routers_mac[6] = { 0x33, 0x33, 0, 0, 0, 2 };
	size_t off = put_eth(b, all_routers_mac, guest_mac, ETH_IPV6);
	uint8_t *ip = b + off, *icmp = ip + 40;
	memset(ip, 0, 40 + 8);
	ip[0] = 0x60;
	put16(ip + 4, 8);
	ip[6] = 58;    /* ICMPv6 */
	ip[7] = 255;
	/* fe80::5054:ff:fe12:3456 (the guest's EUI-64 link-local) */
	ip[8] = 0xfe; ip[9] = 0x80;
	ip[16] = 0x50; ip[17] = 0x54; ip[18] = 0x00; ip[19] = 0xff;
	ip[20] = 0xfe; ip[21] = 0x12; ip[22] = 0x34; ip[23] = 0x56;
	ip[24] = 0xff; ip[25] = 0x02; ip[39] = 0x02;   /* ff02::2 */
	icmp[0] = 133;
	uint32_t sum = csum_add(0, ip + 8, 32) + 8 + 58;
	put16(icmp + 2, csum_fold(csum_add(sum, icmp, 8)));
	return off + 48;
}

static bool is_router_advert(const struct parsed *p, const void *arg)
{
	return p->type == ETH_IPV6 && p->l3len >= 48 && p->l3[6] == 58 && p->l3[40] == 134;
}

/* The RA carries the prefix option fec0::/64. */
static bool has_prefix_fec0(const struct frame *fr)
{
	const uint8_t *o = fr->data + 14 + 40 + 16, *end = fr->data + fr->len;
	while (o + 8 <= end && o[1]) {
		if (o[0] == 3 && o[1] == 4 && o + 32 <= end)
			return o[2] == 64 && o[16] == 0xfe && o[17] == 0xc0;
		o += o[1] * 8;
	}
	return false;
}

static void test_ipv6_router_advert(void **state)
{
	struct fixture *f = *state;
	uint8_t b[128];
	assert_int_equal(guest_send(f, b, router_solicitation(b)), 0);
	int k = wait_frame(f, 0, is_router_advert, NULL, 1000);
	assert_true(k >= 0);
	assert_true(has_prefix_fec0(&f->frames[k]));
}

/* libslirp's one timer: router advertisements, every 200 to 600 s. */
static void test_ipv6_ra_timer(void **state)
{
	struct fixture *f = *state;
	struct evloop_timer *t = f->loop.timers;
	assert_non_null(t);
	assert_null(t->next);
	uint64_t now = evloop_now_ns(), s = 1000000000ull;
	/* slirp's milliseconds became the loop's nanoseconds. */
	assert_true(t->deadline_ns >= now + 190 * s && t->deadline_ns <= now + 610 * s);
	/* Due now: the loop fires it, slirp advertises to all nodes and arms
	 * it again. */
	evloop_timer_arm(&f->loop, t, now);
	assert_true(evloop_run_once(&f->loop, 0) >= 1);
	assert_int_equal(f->nframes, 1);
	struct parsed p;
	assert_true(parse(&f->frames[0], &p));
	assert_true(is_router_advert(&p, NULL));
	assert_true(has_prefix_fec0(&f->frames[0]));
	assert_true(t->armed);
	assert_true(t->deadline_ns >= now + 190 * s);
}

/* A DHCPv6 information request whose client-id option claims more bytes
 * than the packet has: libslirp reports it as a guest error. */
static size_t bad_dhcpv6(uint8_t *b)
{
	static const uint8_t all_dhcp_mac[6] = { 0x33, 0x33, 0, 1, 0, 2 };
	static const uint8_t msg[] = { 11, 0x12, 0x34, 0x56, 0, 1, 0, 100, 1, 2, 3, 4 };
	size_t off = put_eth(b, all_dhcp_mac, guest_mac, ETH_IPV6);
	uint8_t *ip = b + off, *udp = ip + 40;
	size_t ulen = 8 + sizeof(msg);
	memset(ip, 0, 40 + 8);
	ip[0] = 0x60;
	put16(ip + 4, (uint16_t)ulen);
	ip[6] = IPPROTO_UDP;
	ip[7] = 1;
	ip[8] = 0xfe; ip[9] = 0x80;
	ip[16] = 0x50; ip[17] = 0x54; ip[18] = 0x00; ip[19] = 0xff;
	ip[20] = 0xfe; ip[21] = 0x12; ip[22] = 0x34; ip[23] = 0x56;
	ip[24] = 0xff; ip[25] = 0x02; ip[37] = 0x01; ip[39] = 0x02;   /* ff02::1:2 */
	put16(udp, 546);
	put16(udp + 2, 547);
	put16(udp + 4, (uint16_t)ulen);
	memcpy(udp + 8, msg, sizeof(msg));
	uint32_t sum = csum_add(0, ip + 8, 32) + (uint32_t)ulen + IPPROTO_UDP;
	put16(udp + 6, csum_fold(csum_add(sum, udp, ulen)));
	return off + 40 + ulen;
}

static void test_guest_error_logged_once(void **state)
{
	struct fixture *f = *state;
	uint8_t b[128];
	size_t n = bad_dhcpv6(b);
	struct capture c = capture_begin();
	for (int i = 0; i < 3; i++)
		assert_int_equal(guest_send(f, b, n), 0);
	pump(f, 10);
	capture_end(f, c);
	struct slirp_backend_stats st;
	assert_int_equal(slirp_backend_get_stats(f->be, &st), 0);
	assert_int_equal(st.guest_errors, 3);
	const char *first = strstr(f->err, "guest error");
	if (!first || strstr(first + 1, "guest error"))
		fail_msg("expected one warning, stderr was '%s'", f->err);
}

static int setup_no_ipv6(void **state)
{
	setup_bare(state);
	struct fixture *f = *state;
	f->cfg.ipv6 = false;
	assert_int_equal(open_backend(f), 0);
	return 0;
}

static void test_ipv6_off(void **state)
{
	struct fixture *f = *state;
	uint8_t b[128];
	assert_int_equal(guest_send(f, b, router_solicitation(b)), 0);
	assert_int_equal(wait_frame(f, 0, is_router_advert, NULL, 200), -1);
	/* No IPv6, so no router-advertisement timer either. */
	assert_null(f->loop.timers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_arp_gateway, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dhcp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_udp_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restrict_drops_udp_out, setup_restricted,
						teardown),
		cmocka_unit_test_setup_teardown(test_tcp_hostfwd, setup_hostfwd, teardown),
		cmocka_unit_test_setup_teardown(test_udp_hostfwd, setup_hostfwd, teardown),
		cmocka_unit_test_setup_teardown(test_detach_reattach, setup_hostfwd, teardown),
		cmocka_unit_test_setup_teardown(test_restrict_hostfwd, setup_restricted_hostfwd,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostfwd_port_in_use, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_hostfwd_address_not_local, setup_bare,
						teardown),
		cmocka_unit_test_setup_teardown(test_hostfwd_privileged_port, setup_bare,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_config, setup_bare, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_router_advert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_ra_timer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_error_logged_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ipv6_off, setup_no_ipv6, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
