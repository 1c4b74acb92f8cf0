/* test=net_slirp, test=net_echo, test=net_reflect, test=netbench: the virtio-net driver
 * (vnet.c) against a user-mode (libslirp) or TAP backend, from ring 3,
 * polling. The host side is tests/guest/run-net.sh (and net_reflector.py);
 * bench/net_bench.py runs netbench.
 *
 * Driver options for all three (vnet_opts_from_cmdline): net_dev, net_qsize,
 * net_rxbuf, net_rxbufs, net_mrg=0|1|need, event_idx, net_csum, net_nb1,
 * net_txsplit, net_kick=always, net_refuse, net_timeout.
 *
 * test=net_slirp (QEMU's user networking defaults): net_ip=10.0.2.15
 * net_gw=10.0.2.2 net_dns=10.0.2.3 (what DHCP must hand out),
 * net_udp_port=PORT (a UDP echo server the host runs on 127.0.0.1:PORT,
 * reached as net_gw:PORT; without it the UDP part is skipped),
 * net_udp_burst=N (datagrams in flight at once, default 16).
 *
 * test=net_echo (a reflector on the other side sends every frame of
 * EtherType 0x88b5 back with the MAC addresses swapped): net_peer=MAC
 * (default broadcast), net_frames=N (one at a time, default 200),
 * net_bursts=N x net_burst=M (M frames sent at once, then received after
 * net_hold=TICKS; defaults 4 x 64, 10^8 ticks), net_window=W x
 * net_stream=N (N frames with W in flight, defaults 16 x 1000). With
 * fewer RX buffers than a burst (net_rxbufs defaults to 8 here) the device
 * must hold frames back until buffers are reposted, and lose none.
 * net_done=1 ends with a "done" frame to the peer; net_tail=N leaves N
 * frames in flight at the end (for reboot=1 runs).
 *
 * test=net_reflect: the peer of net_echo as a second guest on the same
 * bridge (run-net.sh --peer-guest), until the done frame.
 *
 * test=netbench: raw frames to net_peer (as net_echo) or, with
 * net_udp_port=PORT, UDP datagrams to net_gw:PORT (as net_slirp); size=N
 * (frame bytes, default 60; in UDP mode the frame too), window=W (default
 * 32) x frames=N (default 20000) for packets/s, rr=N (default 2000)
 * round trips one at a time; tsc_hz=H (else CPUID 0x15/0x16, else 0).
 * Output, one line each (bench/net_bench.py parses them):
 *   microguest: netbench mark start tsc=T
 *   microguest: netbench pps mode=raw|udp size=S window=W frames=N lost=L ticks=T
 *   microguest: netbench rr mode=... size=S n=N lost=L min_ticks=.. median_ticks=..
 *               p90_ticks=.. p99_ticks=.. max_ticks=.. total_ticks=..
 *   microguest: netbench mark end tsc=T
 *   microguest: netbench pps=P rr_median_ticks=M rr_per_s=R tsc_hz=H ...
 * (pps and rr_per_s are 0 without a TSC rate; the host times the marks.) */
#include "vnet.h"

#define ETH_P_IP    0x0800
#define ETH_P_ARP   0x0806
#define ETH_P_TEST  0x88b5      /* IEEE 802 local experimental EtherType 1 */
#define TEST_MAGIC  0x6b766d6eu /* "kvmn" */
#define DONE_MAGIC  0x646f6e65u /* "done": the last frame to a reflecting guest */
#define IPPROTO_UDP 17
#define DHCP_DISCOVER 1
#define DHCP_OFFER    2
#define DHCP_REQUEST  3
#define DHCP_ACK      5
#define DHCP_NAK      6
#define BOOTP_LEN     548       /* 236 + 312 bytes of options: RFC 2131's minimum message */
#define UDP_SPORT     40000

static struct vnet net;
static uint8_t rxf[VNET_MAX_FRAME + 64] __attribute__((aligned(16)));
static uint8_t txf[VNET_MAX_FRAME + 64] __attribute__((aligned(16)));
static struct virtio_net_hdr rxh;
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static uint8_t my_ip[4], gw_ip[4], dns_ip[4], gw_mac[6], peer[6];
static bool have_peer;
static uint16_t ip_id = 1;
static uint64_t ignored, arp_answered;

static inline void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static inline uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static const char *ipstr(const uint8_t ip[4])
{
	static char bufs[4][16];
	static unsigned k;
	char *b = bufs[k++ % 4], *p = b;
	for (unsigned i = 0; i < 4; i++) {
		unsigned v = ip[i];
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = i < 3 ? '.' : '\0';
	}
	return b;
}

static const char *macstr(const uint8_t mac[6])
{
	static char bufs[2][18];
	static unsigned k;
	char *b = bufs[k++ % 2];
	mac_format(mac, b);
	return b;
}

static void ip_from_cmdline(const char *key, uint8_t ip[4], const char *def)
{
	char buf[20];
	const char *s = cmdline_get(key, buf, sizeof(buf)) ? buf : def;
	for (unsigned i = 0; i < 4; i++) {
		unsigned v = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4)
			v = v * 10 + (unsigned)(*s++ - '0'), digits++;
		CHECK(digits && v < 256 && (i < 3 ? *s == '.' : *s == '\0'), "cmdline: %s: want a dotted IPv4 address", key);
		ip[i] = (uint8_t)v;
		s++;
	}
}

/* Internet checksum (RFC 1071): 16-bit big-endian words summed with end-around carry. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
	uint32_t i = 0;
	for (; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t pseudo_sum(const uint8_t src[4], const uint8_t dst[4], uint8_t proto, uint32_t len)
{
	return csum_add(csum_add(0, src, 4), dst, 4) + proto + len;
}

/* With GUEST_CSUM the device may hand over a frame whose checksum at
 * csum_start + csum_offset holds only the pseudo-header sum (5.1.6.4.1):
 * finish it, so the checks below see what the wire would carry. */
static void finish_partial_csum(uint8_t *f, uint32_t len)
{
	uint32_t start = rxh.csum_start, off = rxh.csum_offset;
	CHECK(start + off + 2 <= len, "virtio-net: NEEDS_CSUM with csum_start %u + csum_offset %u beyond %u bytes",
	      start, off, len);
	put16(f + start + off, csum_fold(csum_add(0, f + start, len - start)));
}

static uint32_t eth_hdr(uint8_t *f, const uint8_t dst[6], uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, net.mac, 6);
	put16(f + 12, type);
	return ETH_HLEN;
}

static bool is_multicast(const uint8_t mac[6]) { return mac[0] & 1; }

static uint32_t arp_build(uint8_t *f, uint16_t op, const uint8_t dmac[6], const uint8_t tha[6], const uint8_t tpa[4])
{
	eth_hdr(f, dmac, ETH_P_ARP);
	uint8_t *a = f + ETH_HLEN;
	put16(a, 1);
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, net.mac, 6);
	memcpy(a + 14, my_ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	memset(f + 42, 0, ETH_MIN_FRAME - 42);
	return ETH_MIN_FRAME;
}

/* A peer that wants to send to us asks for our MAC first (slirp does so
 * before every reply it cannot address yet): answer while waiting. */
static bool answer_arp(const uint8_t *f, uint32_t len)
{
	if (len < 42 || get16(f + 12) != ETH_P_ARP)
		return false;
	const uint8_t *a = f + ETH_HLEN;
	if (get16(a + 6) != 1 || memcmp(a + 24, my_ip, 4) != 0 || !my_ip[0])
		return false;
	uint8_t sha[6], spa[4];
	memcpy(sha, a + 8, 6);
	memcpy(spa, a + 14, 4);
	uint8_t reply[ETH_MIN_FRAME];
	arp_build(reply, 2, sha, sha, spa);
	vnet_send(&net, reply, sizeof(reply));
	arp_answered++;
	return true;
}

/* The next frame addressed to us (our MAC or broadcast) into rxf, with a
 * partial checksum finished and ARP requests for my_ip answered on the
 * way; 0 after timeout ticks. */
static uint32_t next_frame(uint64_t timeout)
{
	uint64_t t0 = rdtsc();
	for (;;) {
		uint32_t len = vnet_recv_hdr(&net, rxf, sizeof(rxf), &rxh, true);
		if (len) {
			if (rxh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
				finish_partial_csum(rxf, len);
			if (memcmp(rxf, net.mac, 6) != 0 && memcmp(rxf, bcast, 6) != 0) {
				ignored++;
				continue;
			}
			if (answer_arp(rxf, len))
				continue;
			return len;
		}
		if (rdtsc() - t0 > timeout)
			return 0;
		cpu_relax();
	}
}

/* ---- IPv4 / UDP ---- */

/* Writes Ethernet, IPv4 and UDP headers in front of the plen bytes of
 * payload already at f + 42; returns the frame length (padded to 60).
 * partial: leave the UDP checksum to the device (NEEDS_CSUM; *h filled). */
static uint32_t udp_build(uint8_t *f, const uint8_t dmac[6], const uint8_t src[4], const uint8_t dst[4],
			  uint16_t sport, uint16_t dport, uint32_t plen, struct virtio_net_hdr *h)
{
	eth_hdr(f, dmac, ETH_P_IP);
	uint8_t *ip = f + ETH_HLEN, *u = ip + 20;
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(28 + plen));
	put16(ip + 4, ip_id++);
	put16(ip + 6, 0x4000);  /* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	put16(ip + 10, 0);
	memcpy(ip + 12, src, 4);
	memcpy(ip + 16, dst, 4);
	put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, (uint16_t)(8 + plen));
	put16(u + 6, 0);
	uint32_t ps = pseudo_sum(src, dst, IPPROTO_UDP, 8 + plen);
	if (h) {
		memset(h, 0, sizeof(*h));
		h->flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		h->csum_start = 34;
		h->csum_offset = 6;
		put16(u + 6, (uint16_t)~csum_fold(ps));
	} else {
		uint16_t c = csum_fold(csum_add(ps, u, 8 + plen));
		put16(u + 6, c ? c : 0xffff);
	}
	uint32_t len = 42 + plen;
	if (len < ETH_MIN_FRAME) {
		memset(f + len, 0, ETH_MIN_FRAME - len);
		len = ETH_MIN_FRAME;
	}
	return len;
}

struct udp_view {
	uint8_t src[4], dst[4];
	uint16_t sport, dport;
	const uint8_t *data;
	uint32_t dlen;
	bool had_csum;
};

/* An IPv4/UDP frame, its headers and both checksums checked (a bad one
 * fails the test: the device corrupted it or mangled the checksum). */
static bool udp_parse(const uint8_t *f, uint32_t len, struct udp_view *v)
{
	if (len < 42 || get16(f + 12) != ETH_P_IP)
		return false;
	const uint8_t *ip = f + ETH_HLEN;
	unsigned ihl = (ip[0] & 15) * 4u;
	CHECK((ip[0] >> 4) == 4 && ihl >= 20 && ETH_HLEN + ihl <= len, "net: IPv4 header %x in a %u-byte frame", ip[0], len);
	uint32_t tot = get16(ip + 2);
	CHECK(tot >= ihl && ETH_HLEN + tot <= len, "net: IPv4 total length %u in a %u-byte frame", tot, len);
	CHECK(csum_fold(csum_add(0, ip, ihl)) == 0, "net: IPv4 header checksum %x wrong (from %s)", get16(ip + 10),
	      ipstr(ip + 12));
	if (ip[9] != IPPROTO_UDP)
		return false;
	CHECK((get16(ip + 6) & 0x3fff) == 0, "net: IPv4 fragment (flags/offset %x) from %s", get16(ip + 6), ipstr(ip + 12));
	const uint8_t *u = ip + ihl;
	uint32_t ulen = get16(u + 4);
	CHECK(ulen >= 8 && ulen == tot - ihl, "net: UDP length %u in an IPv4 datagram of %u", ulen, tot);
	memcpy(v->src, ip + 12, 4);
	memcpy(v->dst, ip + 16, 4);
	v->had_csum = get16(u + 6) != 0;
	if (v->had_csum)
		CHECK(csum_fold(csum_add(pseudo_sum(v->src, v->dst, IPPROTO_UDP, ulen), u, ulen)) == 0,
		      "net: UDP checksum %x wrong (%s:%u -> %s:%u, %u bytes)", get16(u + 6), ipstr(v->src), get16(u),
		      ipstr(v->dst), get16(u + 2), ulen);
	v->sport = get16(u);
	v->dport = get16(u + 2);
	v->data = u + 8;
	v->dlen = ulen - 8;
	return true;
}

/* ---- ARP ---- */

/* Asks who has ip (up to 5 tries); the reply's sender MAC goes to mac. */
static void arp_resolve(const uint8_t ip[4], uint8_t mac[6])
{
	static const uint8_t zero[6];
	for (unsigned tries = 0; tries < 5; tries++) {
		vnet_send(&net, txf, arp_build(txf, 1, bcast, zero, ip));
		uint64_t t0 = rdtsc();
		uint32_t len;
		while (rdtsc() - t0 < net.timeout_tsc / 10 && (len = next_frame(net.timeout_tsc / 10))) {
			const uint8_t *a = rxf + ETH_HLEN;
			if (len < 42 || get16(rxf + 12) != ETH_P_ARP || get16(a + 6) != 2 || memcmp(a + 14, ip, 4) != 0) {
				ignored++;
				continue;
			}
			CHECK(memcmp(rxf, net.mac, 6) == 0, "net: ARP reply for %s sent to %s, not to us", ipstr(ip), macstr(rxf));
			CHECK(get16(a) == 1 && get16(a + 2) == ETH_P_IP && a[4] == 6 && a[5] == 4,
			      "net: ARP reply for %s: hardware/protocol %x/%x %u/%u", ipstr(ip), get16(a), get16(a + 2), a[4], a[5]);
			CHECK(memcmp(a + 18, net.mac, 6) == 0 && memcmp(a + 24, my_ip, 4) == 0,
			      "net: ARP reply for %s names target %s %s, not us", ipstr(ip), macstr(a + 18), ipstr(a + 24));
			CHECK(!is_multicast(a + 8), "net: ARP reply: %s is at multicast %s", ipstr(ip), macstr(a + 8));
			memcpy(mac, a + 8, 6);
			CHECK(memcmp(rxf + 6, mac, 6) == 0, "net: ARP reply from %s for %s at %s", macstr(rxf + 6), ipstr(ip),
			      macstr(mac));
			return;
		}
	}
	fail("net: no ARP reply for %s after 5 tries (%lu frames ignored)", ipstr(ip), ignored);
}

/* ---- DHCP (RFC 2131) ---- */

struct dhcp_reply {
	uint8_t type;
	uint8_t yiaddr[4], server[4], router[4], dns[4], mask[4];
	uint32_t lease;
};

static uint32_t dhcp_build(uint8_t *f, uint8_t type, uint32_t xid, const uint8_t *req_ip, const uint8_t *server)
{
	static const uint8_t any[4], all[4] = { 255, 255, 255, 255 };
	uint8_t *b = f + 42;
	memset(b, 0, BOOTP_LEN);
	b[0] = 1;               /* BOOTREQUEST */
	b[1] = 1;               /* Ethernet */
	b[2] = 6;
	put32(b + 4, xid);
	put16(b + 10, 0x8000);  /* broadcast: we cannot receive unicast IP before we have an address */
	memcpy(b + 28, net.mac, 6);
	put32(b + 236, 0x63825363);
	uint8_t *o = b + 240;
	*o++ = 53, *o++ = 1, *o++ = type;
	if (req_ip)
		*o++ = 50, *o++ = 4, memcpy(o, req_ip, 4), o += 4;
	if (server)
		*o++ = 54, *o++ = 4, memcpy(o, server, 4), o += 4;
	*o++ = 55, *o++ = 4, *o++ = 1, *o++ = 3, *o++ = 6, *o++ = 51;
	*o++ = 255;
	return udp_build(f, bcast, any, all, 68, 67, BOOTP_LEN, NULL);
}

static bool dhcp_parse(const struct udp_view *v, uint32_t xid, struct dhcp_reply *r)
{
	const uint8_t *b = v->data;
	if (v->sport != 67 || v->dport != 68 || v->dlen < 240 || b[0] != 2 || get32(b + 4) != xid)
		return false;
	CHECK(memcmp(b + 28, net.mac, 6) == 0, "net: DHCP reply for chaddr %s, not us", macstr(b + 28));
	CHECK(get32(b + 236) == 0x63825363, "net: DHCP reply without the magic cookie");
	memset(r, 0, sizeof(*r));
	memcpy(r->yiaddr, b + 16, 4);
	for (uint32_t i = 240; i < v->dlen;) {
		uint8_t code = b[i];
		if (code == 255)
			break;
		if (code == 0) {
			i++;
			continue;
		}
		CHECK(i + 2 <= v->dlen && i + 2 + b[i + 1] <= v->dlen, "net: DHCP option %u runs past the message", code);
		uint8_t l = b[i + 1];
		const uint8_t *d = b + i + 2;
		if (code == 53 && l == 1)
			r->type = d[0];
		else if (code == 54 && l == 4)
			memcpy(r->server, d, 4);
		else if (code == 3 && l >= 4)
			memcpy(r->router, d, 4);
		else if (code == 6 && l >= 4)
			memcpy(r->dns, d, 4);
		else if (code == 1 && l == 4)
			memcpy(r->mask, d, 4);
		else if (code == 51 && l == 4)
			r->lease = get32(d);
		i += 2u + l;
	}
	return true;
}

/* Sends the message (up to 4 tries) and returns the matching reply. */
static void dhcp_exchange(uint8_t type, uint32_t xid, const uint8_t *req_ip, const uint8_t *server,
			  struct dhcp_reply *r, const char *what)
{
	for (unsigned tries = 0; tries < 4; tries++) {
		vnet_send(&net, txf, dhcp_build(txf, type, xid, req_ip, server));
		uint64_t t0 = rdtsc();
		uint32_t len;
		while (rdtsc() - t0 < net.timeout_tsc / 8 && (len = next_frame(net.timeout_tsc / 8))) {
			struct udp_view v;
			if (udp_parse(rxf, len, &v) && dhcp_parse(&v, xid, r)) {
				CHECK(v.had_csum, "net: DHCP %s reply without a UDP checksum", what);
				return;
			}
			ignored++;
		}
	}
	fail("net: no reply to DHCP %s after 4 tries", what);
}

static void check_ip(const char *what, const uint8_t got[4], const uint8_t want[4])
{
	CHECK(memcmp(got, want, 4) == 0, "net: DHCP %s %s, want %s", what, ipstr(got), ipstr(want));
}

/* ---- UDP echo through slirp ---- */

static uint8_t udp_pat(uint32_t seq, uint32_t i) { return (uint8_t)(seq * 0x9d + i * 0x3b + (i >> 8)); }

static uint32_t udp_echo_build(uint32_t seq, uint32_t plen, uint16_t port, struct virtio_net_hdr *h)
{
	uint8_t *p = txf + 42;
	for (uint32_t i = 0; i < plen; i++)
		p[i] = udp_pat(seq, i);
	if (plen >= 4)
		put32(p, seq);
	return udp_build(txf, gw_mac, my_ip, gw_ip, UDP_SPORT, port, plen, h);
}

/* An echo of one of our datagrams: returns its seq (payload checked) or
 * -1 for a frame that is something else. */
static int64_t udp_echo_match(uint32_t len, uint16_t port, uint32_t want_seq, uint32_t want_len, bool seq_in_data)
{
	struct udp_view v;
	if (!udp_parse(rxf, len, &v) || v.sport != port || v.dport != UDP_SPORT || memcmp(v.src, gw_ip, 4) != 0)
		return -1;
	CHECK(memcmp(v.dst, my_ip, 4) == 0, "net: UDP echo to %s, not %s", ipstr(v.dst), ipstr(my_ip));
	CHECK(v.had_csum, "net: UDP echo without a checksum");
	CHECK(memcmp(rxf + 6, gw_mac, 6) == 0, "net: UDP echo from MAC %s, the gateway is %s", macstr(rxf + 6),
	      macstr(gw_mac));
	uint32_t seq = seq_in_data ? get32(v.data) : want_seq;
	if (seq_in_data)
		CHECK(v.dlen >= 4, "net: UDP echo of %u bytes, too short for a sequence number", v.dlen);
	if (want_len)
		CHECK(v.dlen == want_len, "net: UDP echo of %u bytes, sent %u", v.dlen, want_len);
	for (uint32_t i = seq_in_data ? 4 : 0; i < v.dlen; i++)
		CHECK(v.data[i] == udp_pat(seq, i), "net: UDP echo %u: byte %u is %x, sent %x", seq, i, v.data[i],
		      udp_pat(seq, i));
	return seq;
}

static void udp_echo_test(uint16_t port, bool csum_offload)
{
	static const uint32_t sizes[] = { 1, 17, 18, 100, 512, 1000, 1471, 1472 };
	uint32_t maxp = net.mtu - 28u;
	unsigned n = 0;
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		uint32_t plen = sizes[k] < maxp ? sizes[k] : maxp;
		bool ok = false;
		for (unsigned tries = 0; tries < 3 && !ok; tries++) {
			struct virtio_net_hdr h;
			uint32_t len = udp_echo_build(k, plen, port, csum_offload ? &h : NULL);
			vnet_tx_queue_hdr(&net, csum_offload ? &h : NULL, txf, len);
			vnet_tx_kick(&net);
			uint64_t t0 = rdtsc();
			while (rdtsc() - t0 < net.timeout_tsc / 8) {
				uint32_t l = next_frame(net.timeout_tsc / 8);
				if (!l)
					break;
				if (udp_echo_match(l, port, k, plen, plen >= 4) == (int64_t)k) {
					ok = true;
					break;
				}
				ignored++;
			}
		}
		CHECK(ok, "net: no UDP echo of %u bytes from %s:%u after 3 tries", plen, ipstr(gw_ip), port);
		n++;
	}
	say("net: udp echo %s:%u: %u datagrams of 1..%u bytes came back intact%s", ipstr(gw_ip), port, n,
	    sizes[n - 1] < maxp ? sizes[n - 1] : maxp, csum_offload ? " (checksums by the device)" : "");

	/* Several in flight: slirp keeps one host socket, so they come back
	 * in order; none may be missing. */
	uint32_t burst = (uint32_t)cmdline_get_u64("net_udp_burst", 16);
	CHECK(burst >= 1 && burst <= 64, "cmdline: net_udp_burst=%u: want 1..64", burst);
	uint64_t seen = 0;
	for (uint32_t i = 0; i < burst; i++) {
		uint32_t plen = 4 + (i * 97) % (maxp - 4);
		struct virtio_net_hdr h;
		uint32_t len = udp_echo_build(100 + i, plen, port, csum_offload ? &h : NULL);
		vnet_tx_queue_hdr(&net, csum_offload ? &h : NULL, txf, len);
	}
	vnet_tx_kick(&net);
	for (uint32_t got = 0; got < burst;) {
		uint32_t l = next_frame(net.timeout_tsc / 4);
		CHECK(l, "net: UDP burst: %u of %u echoes came back (seen mask %lx)", got, burst, seen);
		int64_t s = udp_echo_match(l, port, 0, 0, true);
		if (s < 0) {
			ignored++;
			continue;
		}
		CHECK(s >= 100 && s < 100 + burst && !(seen >> (s - 100) & 1), "net: UDP burst: unexpected echo %ld", s);
		seen |= 1ull << (s - 100);
		got++;
	}
	say("net: udp echo burst of %u datagrams: all back", burst);
}

static void net_init_common(struct vnet_opts *o)
{
	vnet_init(&net, o);
	CHECK(net.status & VIRTIO_NET_S_LINK_UP, "net: link is down (config status %x)", net.status);
	CHECK(!is_multicast(net.mac) && memcmp(net.mac, "\0\0\0\0\0\0", 6) != 0, "net: MAC %s is not a unicast address",
	      macstr(net.mac));
	char want[20];
	uint8_t m[6];
	if (cmdline_get("net_mac", want, sizeof(want))) {
		CHECK(mac_parse(want, m), "cmdline: net_mac=%s is not a MAC address", want);
		CHECK(memcmp(m, net.mac, 6) == 0, "net: MAC %s, want %s", macstr(net.mac), want);
	}
}

static void report_stats(void)
{
	struct vnet_stats s;
	vnet_stats(&net, &s);
	say("net: stats tx_frames=%lu tx_bytes=%lu rx_frames=%lu rx_bytes=%lu rx_buffers=%lu merged=%lu max_buffers=%u "
	    "tx_kicks=%lu tx_kicks_skipped=%lu rx_kicks=%lu rx_kicks_skipped=%lu tx_full=%lu nb_not_1=%lu "
	    "data_valid=%lu needs_csum=%lu ignored=%lu arp_answered=%lu",
	    s.tx_frames, s.tx_bytes, s.rx_frames, s.rx_bytes, s.rx_buffers, s.rx_merged, s.rx_max_buffers,
	    s.tx_kicks, s.tx_kicks_skipped, s.rx_kicks, s.rx_kicks_skipped, s.tx_full, s.rx_num_buffers_odd,
	    s.rx_data_valid, s.rx_needs_csum, ignored, arp_answered);
}

static void test_net_slirp(void)
{
	struct vnet_opts o;
	vnet_opts_from_cmdline(&o);
	net_init_common(&o);
	ip_from_cmdline("net_ip", my_ip, "10.0.2.15");
	ip_from_cmdline("net_gw", gw_ip, "10.0.2.2");
	ip_from_cmdline("net_dns", dns_ip, "10.0.2.3");

	uint8_t want_ip[4];
	memcpy(want_ip, my_ip, 4);
	arp_resolve(gw_ip, gw_mac);
	uint8_t dns_mac[6];
	arp_resolve(dns_ip, dns_mac);
	say("net: arp %s is at %s, %s is at %s", ipstr(gw_ip), macstr(gw_mac), ipstr(dns_ip), macstr(dns_mac));

	/* DHCP from scratch: the answers must not depend on the ARP above. */
	memset(my_ip, 0, 4);
	uint32_t xid = (uint32_t)rdtsc() ^ 0x4b564d49u;
	struct dhcp_reply offer, ack;
	dhcp_exchange(DHCP_DISCOVER, xid, NULL, NULL, &offer, "DISCOVER");
	CHECK(offer.type == DHCP_OFFER, "net: DHCP DISCOVER answered with message type %u, want OFFER", offer.type);
	check_ip("OFFER address", offer.yiaddr, want_ip);
	check_ip("OFFER server id", offer.server, gw_ip);
	check_ip("OFFER router", offer.router, gw_ip);
	check_ip("OFFER DNS", offer.dns, dns_ip);
	say("net: dhcp offer %s from %s", ipstr(offer.yiaddr), ipstr(offer.server));
	dhcp_exchange(DHCP_REQUEST, xid, offer.yiaddr, offer.server, &ack, "REQUEST");
	CHECK(ack.type == DHCP_ACK, "net: DHCP REQUEST answered with message type %u, want ACK", ack.type);
	check_ip("ACK address", ack.yiaddr, want_ip);
	check_ip("ACK router", ack.router, gw_ip);
	check_ip("ACK DNS", ack.dns, dns_ip);
	memcpy(my_ip, ack.yiaddr, 4);
	say("net: dhcp %s router %s dns %s mask %s lease %u s", ipstr(my_ip), ipstr(ack.router), ipstr(ack.dns),
	    ipstr(ack.mask), ack.lease);

	uint64_t port = cmdline_get_u64("net_udp_port", 0);
	CHECK(port < 65536, "cmdline: net_udp_port=%lu", port);
	if (port) {
		udp_echo_test((uint16_t)port, false);
		if (vnet_has(&net, VIRTIO_NET_F_CSUM))
			udp_echo_test((uint16_t)port, true);
	} else {
		say("net: no net_udp_port: UDP echo not tested");
	}
	report_stats();
}
GUEST_TEST("net_slirp", test_net_slirp,
	   "virtio-net on user networking: ARP, DHCP, UDP echo via the gateway (net_udp_port=)");

/* ---- raw frames to a reflector ---- */

static const uint16_t echo_sizes[] = {
	60, 61, 64, 99, 128, 243, 244, 245, 256, 499, 500, 501, 512, 755, 756, 757, 1000,
	1011, 1012, 1013, 1024, 1267, 1268, 1269, 1400, 1499, 1500, 1513, 1514,
};
#define NSIZES (sizeof(echo_sizes) / sizeof(echo_sizes[0]))

/* TEST_MAGIC mixed with the TSC at start: a TAP keeps frames across a
 * guest reboot, and the echoes of the last boot's frames must not pass for
 * this boot's (they count as ignored). */
static uint32_t echo_magic = TEST_MAGIC;

static uint32_t echo_size(uint32_t seq)
{
	uint32_t s = echo_sizes[seq % NSIZES], max = net.mtu + (uint32_t)ETH_HLEN;
	return s < max ? s : max;
}

static uint8_t echo_pat(uint32_t seq, uint32_t i) { return (uint8_t)(seq * 0x6b + i * 0x1d + (i >> 8) * 3); }

static uint32_t echo_build(uint8_t *f, uint32_t seq, uint32_t size)
{
	eth_hdr(f, have_peer ? peer : bcast, ETH_P_TEST);
	put32(f + 14, echo_magic);
	put32(f + 18, seq);
	put16(f + 22, (uint16_t)size);
	for (uint32_t i = 24; i < size; i++)
		f[i] = echo_pat(seq, i);
	return size;
}

static bool is_echo(uint32_t len) { return len >= 24 && get16(rxf + 12) == ETH_P_TEST && get32(rxf + 14) == echo_magic; }

/* The reflected frame in rxf must be exactly the one sent with seq, with
 * the MAC addresses swapped. */
static void echo_check(uint32_t len, uint32_t seq, bool full)
{
	uint32_t got = get32(rxf + 18), size = echo_size(seq);
	CHECK(got == seq, "net: echo %u came back where %u was due (lost, reordered or duplicated)", got, seq);
	CHECK(len == size, "net: echo %u is %u bytes, sent %u", seq, len, size);
	CHECK(memcmp(rxf, net.mac, 6) == 0, "net: echo %u sent to %s, not to us", seq, macstr(rxf));
	CHECK(!have_peer || memcmp(rxf + 6, peer, 6) == 0, "net: echo %u from %s, not the peer %s", seq, macstr(rxf + 6),
	      macstr(peer));
	CHECK(get16(rxf + 22) == size, "net: echo %u: size field %u, sent %u", seq, get16(rxf + 22), size);
	if (!full)
		return;
	for (uint32_t i = 24; i < size; i++)
		CHECK(rxf[i] == echo_pat(seq, i), "net: echo %u (%u bytes): byte %u is %x, sent %x", seq, size, i, rxf[i],
		      echo_pat(seq, i));
}

static uint32_t wait_echo(uint64_t timeout)
{
	for (;;) {
		uint32_t len = next_frame(timeout);
		if (!len || is_echo(len))
			return len;
		ignored++;
	}
}

static void peer_from_cmdline(void)
{
	char buf[20];
	have_peer = cmdline_get("net_peer", buf, sizeof(buf)) != NULL;
	if (have_peer)
		CHECK(mac_parse(buf, peer) && !is_multicast(peer), "cmdline: net_peer=%s is not a unicast MAC", buf);
}

static void test_net_echo(void)
{
	struct vnet_opts o;
	vnet_opts_from_cmdline(&o);
	if (!o.rxbufs)
		o.rxbufs = 8;
	net_init_common(&o);
	peer_from_cmdline();
	echo_magic = TEST_MAGIC ^ (uint32_t)(rdtsc() >> 4);
	uint32_t frames = (uint32_t)cmdline_get_u64("net_frames", 200);
	uint32_t bursts = (uint32_t)cmdline_get_u64("net_bursts", 4);
	uint32_t burst = (uint32_t)cmdline_get_u64("net_burst", 64);
	uint64_t hold = cmdline_get_u64("net_hold", 100000000);
	uint32_t window = (uint32_t)cmdline_get_u64("net_window", 16);
	uint32_t stream = (uint32_t)cmdline_get_u64("net_stream", 1000);
	/* More than the TX queue holds is fine: vnet_tx_queue then waits for
	 * the device, while the echoes pile up behind the RX buffers. */
	CHECK(burst >= 1 && window >= 1, "cmdline: net_burst and net_window must be at least 1");
	uint64_t to = net.timeout_tsc / 4;
	uint32_t seq = 0;

	/* One at a time, every size. */
	for (uint32_t i = 0; i < frames; i++, seq++) {
		vnet_send(&net, txf, echo_build(txf, seq, echo_size(seq)));
		uint32_t len = wait_echo(to);
		CHECK(len, "net: no echo of frame %u (%u bytes) from %s", seq, echo_size(seq),
		      have_peer ? macstr(peer) : "the broadcast domain");
		echo_check(len, seq, true);
	}
	say("net: echo %u frames of %u..%u bytes one at a time: all back intact", frames, echo_size(0),
	    echo_size(NSIZES - 1));

	/* Bursts larger than the receive buffers: the device has to leave the
	 * rest in the backend until buffers come back. */
	uint16_t most_waiting = 0;
	for (uint32_t b = 0; b < bursts; b++) {
		uint32_t first = seq;
		for (uint32_t i = 0; i < burst; i++, seq++)
			vnet_tx_queue(&net, txf, echo_build(txf, seq, echo_size(seq)));
		vnet_tx_kick(&net);
		uint64_t t0 = rdtsc();
		while (rdtsc() - t0 < hold) {
			vnet_tx_reclaim(&net);
			cpu_relax();
		}
		uint16_t waiting = vq_used_pending(&net.rx);
		if (waiting > most_waiting)
			most_waiting = waiting;
		for (uint32_t s = first; s < seq; s++) {
			uint32_t len = wait_echo(to);
			CHECK(len, "net: burst %u: no echo of frame %u (%u of %u back)", b, s, s - first, burst);
			echo_check(len, s, true);
		}
	}
	if (bursts)
		say("net: echo %u bursts of %u frames with %u receive buffers: all back in order "
		    "(at most %u frames were waiting in buffers)", bursts, burst, net.rxbufs, most_waiting);

	/* A stream with a window of frames in flight. */
	uint32_t sent = 0, got = 0, base = seq;
	while (got < stream) {
		while (sent < stream && sent - got < window) {
			vnet_tx_queue(&net, txf, echo_build(txf, base + sent, echo_size(base + sent)));
			sent++;
		}
		vnet_tx_kick(&net);
		uint32_t len = wait_echo(to);
		CHECK(len, "net: stream: no echo of frame %u (%u sent, %u back)", base + got, sent, got);
		echo_check(len, base + got, true);
		got++;
	}
	seq += stream;
	if (stream)
		say("net: echo stream of %u frames, %u in flight: all back in order", stream, window);

	/* A reset with frames in flight both ways, then a second
	 * initialisation: the device must work again on the new rings. Echoes
	 * of the frames before the reset may still arrive (a TAP keeps what
	 * the device did not take): skipped by sequence number. */
	uint32_t resets = (uint32_t)cmdline_get_u64("net_reset", 1), stale = 0;
	for (uint32_t r = 0; r < resets; r++) {
		for (uint32_t i = 0; i < 16; i++, seq++)
			vnet_tx_queue(&net, txf, echo_build(txf, seq, echo_size(seq)));
		vnet_tx_kick(&net);
		vnet_reset(&net);
		struct vnet_stats before = net.st;
		o.quiet = true;
		net_init_common(&o);
		net.st = before;
		uint32_t fresh = seq;
		for (uint32_t i = 0; i < 50; i++, seq++) {
			vnet_send(&net, txf, echo_build(txf, seq, echo_size(seq)));
			uint32_t len;
			while ((len = wait_echo(to)) && get32(rxf + 18) < fresh)
				stale++;
			CHECK(len, "net: after reset %u: no echo of frame %u", r + 1, seq);
			echo_check(len, seq, true);
		}
	}
	if (resets)
		say("net: reset with frames in flight and initialised again %u times: echoes work (%u stale echoes skipped)",
		    resets, stale);
	report_stats();
	/* net_done=1: tell a reflecting guest (test=net_reflect) we are done. */
	if (cmdline_get_u64("net_done", 0)) {
		eth_hdr(txf, have_peer ? peer : bcast, ETH_P_TEST);
		put32(txf + 14, DONE_MAGIC);
		memset(txf + 18, 0, 60 - 18);
		vnet_send(&net, txf, 60);
		say("net: sent the done frame");
	}
	/* net_tail=N: N frames left in flight at the end (with reboot=1 the
	 * VMM tears the device down under them). */
	uint32_t tail = (uint32_t)cmdline_get_u64("net_tail", 0);
	for (uint32_t i = 0; i < tail; i++, seq++)
		vnet_tx_queue(&net, txf, echo_build(txf, seq, echo_size(seq)));
	if (tail) {
		vnet_tx_kick(&net);
		say("net: %u frames left in flight", tail);
	}
}
GUEST_TEST("net_echo", test_net_echo,
	   "virtio-net against a frame reflector: one at a time, bursts past the RX buffers, a window (net_peer=)");

/* ---- a guest as the reflector (two VMs on one bridge) ---- */

/* test=net_reflect: what net_reflector.py does, from a second guest: every
 * frame of EtherType 0x88b5 addressed to us or broadcast goes back to its
 * sender with the MAC addresses swapped (payload untouched). The echo
 * guest ends with one frame whose magic word is DONE_MAGIC; then this one
 * reports how many it reflected and passes. Silence for net_idle_s seconds
 * (by the TSC, default 60 s at an assumed 1 GHz) fails it. */
static void test_net_reflect(void)
{
	struct vnet_opts o;
	vnet_opts_from_cmdline(&o);
	net_init_common(&o);
	uint64_t idle = cmdline_get_u64("net_idle_s", 60) * (uint64_t)1000000000;
	uint32_t n = 0, batch = 0;
	say("net: reflecting EtherType %x as %s", ETH_P_TEST, macstr(net.mac));
	for (;;) {
		uint32_t len = next_frame(batch ? 2000 : idle);
		if (!len && batch) {
			vnet_tx_kick(&net);   /* nothing more right now: send what we have */
			batch = 0;
			continue;
		}
		CHECK(len, "net: reflect: nothing for %lu s (at 1 GHz) after %u frames", (uint64_t)(idle / 1000000000ull), n);
		if (len < 18 || get16(rxf + 12) != ETH_P_TEST) {
			ignored++;
			continue;
		}
		if (get32(rxf + 14) == DONE_MAGIC)
			break;
		memcpy(txf, rxf + 6, 6);
		memcpy(txf + 6, net.mac, 6);
		memcpy(txf + 12, rxf + 12, len - 12);
		vnet_tx_queue(&net, txf, len);
		n++;
		/* Kick per 8 frames or when the RX side runs dry (above). */
		if (++batch == 8) {
			vnet_tx_kick(&net);
			batch = 0;
		}
	}
	if (batch)
		vnet_tx_kick(&net);
	say("net: reflected %u frames", n);
	report_stats();
}
GUEST_TEST("net_reflect", test_net_reflect,
	   "send EtherType 0x88b5 frames back with MACs swapped until a \"done\" frame (two-guest tests)");

/* ---- netbench ---- */

static uint64_t tsc_hz_guess(void)
{
	uint64_t hz = cmdline_get_u64("tsc_hz", 0);
	return hz ? hz : tsc_hz_cpuid();
}

static void sort_u64(uint64_t *v, uint32_t n)
{
	for (uint32_t gap = n / 2; gap; gap = gap == 2 ? 1 : gap * 5 / 11)
		for (uint32_t i = gap; i < n; i++) {
			uint64_t x = v[i];
			uint32_t j = i;
			for (; j >= gap && v[j - gap] > x; j -= gap)
				v[j] = v[j - gap];
			v[j] = x;
		}
}

static bool bench_udp;
static uint16_t bench_port;
static uint32_t bench_size;

static uint32_t bench_build(uint32_t seq)
{
	if (bench_udp)
		return udp_echo_build(seq, bench_size - 42, bench_port, NULL);
	return echo_build(txf, seq, bench_size);
}

/* The sequence number of the next echo, or -1 after timeout. Only the
 * header is checked: the timed loops must not be dominated by the checks
 * (net_echo and net_slirp check every byte). */
static int64_t bench_next(uint64_t timeout)
{
	uint64_t t0 = rdtsc();
	for (;;) {
		uint32_t len = next_frame(timeout);
		if (!len)
			return -1;
		if (bench_udp) {
			struct udp_view v;
			if (udp_parse(rxf, len, &v) && v.sport == bench_port && v.dport == UDP_SPORT && v.dlen >= 4)
				return get32(v.data);
		} else if (is_echo(len)) {
			return get32(rxf + 18);
		}
		ignored++;
		if (rdtsc() - t0 > timeout)
			return -1;
	}
}

static void test_netbench(void)
{
	struct vnet_opts o;
	vnet_opts_from_cmdline(&o);
	net_init_common(&o);
	peer_from_cmdline();
	uint64_t port = cmdline_get_u64("net_udp_port", 0);
	CHECK(port < 65536, "cmdline: net_udp_port=%lu", port);
	bench_udp = port != 0;
	bench_port = (uint16_t)port;
	bench_size = (uint32_t)cmdline_get_u64("size", 60);
	uint32_t window = (uint32_t)cmdline_get_u64("window", 32);
	uint32_t frames = (uint32_t)cmdline_get_u64("frames", 20000);
	uint32_t rr = (uint32_t)cmdline_get_u64("rr", 2000);
	CHECK(bench_size >= (bench_udp ? 46u : 24u) && bench_size <= net.mtu + 14u, "cmdline: size=%u: want %u..%u",
	      bench_size, bench_udp ? 46u : 24u, net.mtu + 14u);
	CHECK(window >= 1, "cmdline: window=0");
	uint64_t loss_to = cmdline_get_u64("loss_ticks", 500000000);
	if (bench_udp) {
		ip_from_cmdline("net_ip", my_ip, "10.0.2.15");
		ip_from_cmdline("net_gw", gw_ip, "10.0.2.2");
		arp_resolve(gw_ip, gw_mac);
	}
	const char *mode = bench_udp ? "udp" : "raw";
	uint64_t *rt = mem_alloc(8ull * (rr ? rr : 1), 8);

	uint64_t mark0 = rdtsc();
	say("netbench mark start tsc=%lu", mark0);

	/* Packets/s: window frames in flight; an echo that does not come within
	 * loss_ticks counts the frames in flight as lost. */
	uint32_t sent = 0, got = 0, lost = 0;
	uint64_t t0 = rdtsc();
	while (got + lost < frames) {
		while (sent < frames && sent - got - lost < window) {
			vnet_tx_queue(&net, txf, bench_build(sent));
			sent++;
		}
		vnet_tx_kick(&net);
		int64_t s = bench_next(loss_to);
		if (s < 0) {
			lost += sent - got - lost;
			continue;
		}
		if ((uint32_t)s < got + lost || (uint32_t)s >= sent)
			continue;  /* late echo of a frame already counted lost */
		lost += (uint32_t)s - (got + lost);  /* the ones it overtook are gone */
		got++;
	}
	uint64_t pps_ticks = rdtsc() - t0;
	say("netbench pps mode=%s size=%u window=%u frames=%u lost=%u ticks=%lu", mode, bench_size, window, frames, lost,
	    pps_ticks);

	/* Request/response: one frame, wait for its echo, again. */
	uint32_t rr_lost = 0, n = 0;
	uint64_t rr0 = rdtsc();
	for (uint32_t i = 0; i < rr; i++) {
		uint32_t seq = frames + i;
		uint64_t a = rdtsc();
		vnet_send(&net, txf, bench_build(seq));
		int64_t s;
		while ((s = bench_next(loss_to)) >= 0 && (uint32_t)s != seq)
			;
		if (s < 0) {
			rr_lost++;
			continue;
		}
		rt[n++] = rdtsc() - a;
	}
	uint64_t rr_ticks = rdtsc() - rr0;
	sort_u64(rt, n);
	uint64_t med = n ? rt[n / 2] : 0;
	say("netbench rr mode=%s size=%u n=%u lost=%u min_ticks=%lu median_ticks=%lu p90_ticks=%lu p99_ticks=%lu "
	    "max_ticks=%lu total_ticks=%lu", mode, bench_size, n, rr_lost, n ? rt[0] : 0, med,
	    n ? rt[n * 9 / 10] : 0, n ? rt[n * 99 / 100] : 0, n ? rt[n - 1] : 0, rr_ticks);
	uint64_t mark1 = rdtsc();
	say("netbench mark end tsc=%lu", mark1);

	uint64_t hz = tsc_hz_guess();
	uint64_t pps = hz && pps_ticks ? (uint64_t)got * hz / pps_ticks : 0;
	uint64_t rrps = hz && rr_ticks ? (uint64_t)n * hz / rr_ticks : 0;
	struct vnet_stats st;
	vnet_stats(&net, &st);
	say("netbench pps=%lu rr_median_ticks=%lu rr_per_s=%lu tsc_hz=%lu lost=%u rr_lost=%u tx_kicks=%lu "
	    "tx_kicks_skipped=%lu rx_kicks=%lu rx_kicks_skipped=%lu event_idx=%u mrg_rxbuf=%u",
	    pps, med, rrps, hz, lost, rr_lost, st.tx_kicks, st.tx_kicks_skipped, st.rx_kicks, st.rx_kicks_skipped,
	    vnet_has(&net, VIRTIO_F_RING_EVENT_IDX) ? 1u : 0u, vnet_has(&net, VIRTIO_NET_F_MRG_RXBUF) ? 1u : 0u);
	report_stats();
	CHECK(cmdline_get_u64("allow_loss", 0) || (lost == 0 && rr_lost == 0), "netbench: %u + %u frames lost", lost,
	      rr_lost);
}
GUEST_TEST("netbench", test_netbench,
	   "virtio-net benchmark: packets/s with window= frames= in flight, rr= round trips (raw, or UDP with net_udp_port=)");
