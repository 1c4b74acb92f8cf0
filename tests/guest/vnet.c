/* Polling virtio-net driver over modern virtio-pci (see vnet.h). Follows
 * virtio 1.x 5.1 (network device) on the transport and split rings of
 * vpci.c.
 *
 * Receive buffers are rxbufs fixed slots of rxbuf_len bytes, each one
 * device-writable descriptor; a slot's address is its token, and a slot
 * goes straight back to the receive queue once vnet_recv has copied it
 * out. Transmit slots are indexed by the head descriptor of their chain
 * (unique among chains in flight), so no allocator is needed. */
#include "vnet.h"

/* Network device configuration layout (5.1.4): byte offsets. */
#define NC_MAC     0
#define NC_STATUS  6
#define NC_MTU     10

#define TX_SLOT    (VIRTIO_NET_HDR_LEN + VNET_MAX_FRAME + 6)   /* 1536: keeps slots 16-byte aligned */

void mac_format(const uint8_t mac[6], char buf[18])
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < 6; i++) {
		buf[3 * i] = hex[mac[i] >> 4];
		buf[3 * i + 1] = hex[mac[i] & 15];
		buf[3 * i + 2] = i < 5 ? ':' : '\0';
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool mac_parse(const char *s, uint8_t mac[6])
{
	for (unsigned i = 0; i < 6; i++) {
		int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
		if (lo < 0 || (i < 5 ? s[2] != ':' : s[2] != '\0'))
			return false;
		mac[i] = (uint8_t)(hi << 4 | lo);
		s += 3;
	}
	return true;
}

void vnet_opts_from_cmdline(struct vnet_opts *o)
{
	char buf[16];
	memset(o, 0, sizeof(*o));
	o->index = (unsigned)cmdline_get_u64("net_dev", 0);
	o->qsize = (uint16_t)cmdline_get_u64("net_qsize", 0);
	uint64_t rxbuf = cmdline_get_u64("net_rxbuf", 0);
	CHECK(rxbuf == 0 || (rxbuf >= VIRTIO_NET_HDR_LEN + 2 && rxbuf <= 65536),
	      "cmdline: net_rxbuf=%lu: want %u..65536", rxbuf, VIRTIO_NET_HDR_LEN + 2);
	o->rxbuf = (uint32_t)rxbuf;
	uint64_t nbufs = cmdline_get_u64("net_rxbufs", 0);
	CHECK(nbufs <= VNET_MAX_RXBUFS, "cmdline: net_rxbufs=%lu: want at most %u", nbufs, VNET_MAX_RXBUFS);
	o->rxbufs = (uint16_t)nbufs;
	o->mrg = true;
	if (cmdline_get("net_mrg", buf, sizeof(buf))) {
		o->need_mrg = strcmp(buf, "need") == 0;
		o->mrg = o->need_mrg || strcmp(buf, "1") == 0;
		CHECK(o->mrg || strcmp(buf, "0") == 0, "cmdline: net_mrg=%s: want 0, 1 or need", buf);
	}
	o->event_idx = cmdline_get_u64("event_idx", 1) != 0;
	o->csum = cmdline_get_u64("net_csum", 0) != 0;
	o->strict_num_buffers = cmdline_get_u64("net_nb1", 0) != 0;
	o->tx_split = cmdline_get_u64("net_txsplit", 0) != 0;
	o->kick_always = cmdline_get("net_kick", buf, sizeof(buf)) && strcmp(buf, "always") == 0;
	o->refuse = vpci_cmdline_bits("net_refuse");
}

void vnet_reset(struct vnet *n) { vpci_reset(&n->v); }

/* MAC, status and MTU, consistent across a config_generation change
 * (4.1.4.3.1); the MAC in single bytes, since the spec gives no wider
 * access to a 6-byte field. */
static void read_config(struct vnet *n)
{
	for (unsigned tries = 0;; tries++) {
		CHECK(tries < 100, "virtio: config_generation never settles");
		uint8_t gen = vpci_cfg_generation(&n->v);
		if (vnet_has(n, VIRTIO_NET_F_MAC))
			for (unsigned i = 0; i < 6; i++)
				n->mac[i] = vpci_cfg_read8(&n->v, NC_MAC + i);
		n->status = vnet_has(n, VIRTIO_NET_F_STATUS) ? vpci_cfg_read16(&n->v, NC_STATUS) : VIRTIO_NET_S_LINK_UP;
		n->mtu = vnet_has(n, VIRTIO_NET_F_MTU) ? vpci_cfg_read16(&n->v, NC_MTU) : 1500;
		if (vpci_cfg_generation(&n->v) == gen)
			return;
	}
}

uint16_t vnet_link_status(struct vnet *n)
{
	read_config(n);
	return n->status;
}

static void rx_post(struct vnet *n, uint8_t *b)
{
	struct vq *vq = &n->rx;
	CHECK(vq->nfree, "virtio-net: receive queue full while reposting a buffer");
	/* Without MRG_RXBUF a device need not write num_buffers (QEMU does
	 * not); zeroing the header makes what it left behind recognisable. */
	memset(b, 0, VIRTIO_NET_HDR_LEN);
	uint16_t d = vq_desc_get(vq);
	vq->desc[d].addr = (uint64_t)b;
	vq->desc[d].len = n->rxbuf_len;
	vq->desc[d].flags = VRING_DESC_F_WRITE;
	vq_publish(vq, d, b);
}

void vnet_init(struct vnet *n, const struct vnet_opts *o)
{
	memset(n, 0, sizeof(*n));
	n->timeout_tsc = cmdline_get_u64("net_timeout", 20) * 1000000000ull;
	n->strict_num_buffers = o->strict_num_buffers;
	n->tx_split = o->tx_split;
	n->v.name = "virtio-net";
	n->v.timeout_tsc = n->timeout_tsc;
	vpci_open(&n->v, VIRTIO_PCI_DEV_NET, o->index, 6, o->quiet);

	uint64_t offered = vpci_begin(&n->v);
	uint64_t want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MAC |
			1ull << VIRTIO_NET_F_STATUS | 1ull << VIRTIO_NET_F_MTU;
	if (o->mrg)
		want |= 1ull << VIRTIO_NET_F_MRG_RXBUF;
	if (o->event_idx)
		want |= 1ull << VIRTIO_F_RING_EVENT_IDX;
	if (o->csum)
		want |= 1ull << VIRTIO_NET_F_CSUM | 1ull << VIRTIO_NET_F_GUEST_CSUM;
	want &= ~o->refuse | 1ull << VIRTIO_F_VERSION_1;
	CHECK(!o->need_mrg || (offered & want & 1ull << VIRTIO_NET_F_MRG_RXBUF),
	      "virtio-net: net_mrg=need, but VIRTIO_NET_F_MRG_RXBUF is %s (offered %lx)",
	      offered & 1ull << VIRTIO_NET_F_MRG_RXBUF ? "refused by net_refuse" : "not offered", offered);
	vpci_accept(&n->v, offered & want);
	read_config(n);
	CHECK(n->mtu >= 68, "virtio-net: config mtu %u < 68 (RFC 791's minimum)", n->mtu);
	n->max_frame = n->mtu + 18u < VNET_MAX_FRAME ? (uint16_t)(n->mtu + 18) : VNET_MAX_FRAME;
	CHECK(n->v.num_queues >= 2, "virtio-net: num_queues %u: no receiveq1/transmitq1 pair", n->v.num_queues);

	vpci_vq_setup(&n->v, &n->rx, 0, o->qsize);
	vpci_vq_setup(&n->v, &n->tx, 1, o->qsize);
	n->rx.kick_always = n->tx.kick_always = o->kick_always;

	/* 5.1.6.3.1: without MRG_RXBUF (and without guest GSO, which we never
	 * accept) every buffer must hold a whole frame of the MTU. */
	n->rxbuf_len = o->rxbuf ? o->rxbuf : 2048;
	uint32_t biggest = VIRTIO_NET_HDR_LEN + ETH_HLEN + (n->mtu > 1500 ? n->mtu : 1500);
	n->rxbufs = o->rxbufs && o->rxbufs < n->rx.qsize ? o->rxbufs : n->rx.qsize;
	if (!vnet_has(n, VIRTIO_NET_F_MRG_RXBUF))
		CHECK(n->rxbuf_len >= biggest, "virtio-net: net_rxbuf=%u without MRG_RXBUF: buffers must hold %u bytes",
		      n->rxbuf_len, biggest);
	else
		CHECK((uint64_t)n->rxbuf_len * n->rxbufs >= biggest,
		      "virtio-net: %u buffers of %u bytes cannot hold one frame of %u bytes",
		      n->rxbufs, n->rxbuf_len, biggest);
	n->rxmem = mem_alloc((uint64_t)n->rxbufs * n->rxbuf_len, 4096);
	n->txmem = mem_alloc((uint64_t)n->tx.qsize * TX_SLOT, 4096);
	/* 3.1.1 step 7 and 5.1.5: receive buffers before DRIVER_OK; the
	 * notification only after it. */
	for (uint16_t i = 0; i < n->rxbufs; i++)
		rx_post(n, n->rxmem + (uint64_t)i * n->rxbuf_len);
	vpci_driver_ok(&n->v);
	vnet_rx_kick(n);
	if (!o->quiet) {
		char m[18];
		mac_format(n->mac, m);
		say("virtio-net: features offered %lx accepted %lx queues=%u qsize=%u/%u notify=%lx/%lx (off mult %u)",
		    n->v.offered, n->v.features, n->v.num_queues, n->rx.qsize, n->tx.qsize,
		    n->rx.notify, n->tx.notify, n->v.notify_mult);
		say("virtio-net: mac=%s%s status=%x (link %s) mtu=%u mrg_rxbuf=%u event_idx=%u csum=%u rxbufs=%ux%u",
		    m, vnet_has(n, VIRTIO_NET_F_MAC) ? "" : " (no MAC feature)", n->status,
		    n->status & VIRTIO_NET_S_LINK_UP ? "up" : "down", n->mtu,
		    vnet_has(n, VIRTIO_NET_F_MRG_RXBUF) ? 1u : 0u, vnet_has(n, VIRTIO_F_RING_EVENT_IDX) ? 1u : 0u,
		    vnet_has(n, VIRTIO_NET_F_CSUM) ? 1u : 0u, n->rxbufs, n->rxbuf_len);
	}
}

static void kick(struct vq *vq, uint64_t *kicks, uint64_t *skipped)
{
	uint64_t k = vq->kicks, s = vq->kicks_skipped;
	vq_kick(vq);
	*kicks += vq->kicks - k;
	*skipped += vq->kicks_skipped - s;
}

void vnet_rx_kick(struct vnet *n) { kick(&n->rx, &n->st.rx_kicks, &n->st.rx_kicks_skipped); }
void vnet_tx_kick(struct vnet *n) { kick(&n->tx, &n->st.tx_kicks, &n->st.tx_kicks_skipped); }

unsigned vnet_tx_reclaim(struct vnet *n)
{
	unsigned k = 0;
	while (vq_poll(&n->tx, NULL))
		k++;
	return k;
}

void vnet_tx_queue_hdr(struct vnet *n, const struct virtio_net_hdr *h, const void *frame, uint32_t len)
{
	struct vq *vq = &n->tx;
	CHECK(len >= ETH_HLEN && len <= n->max_frame, "virtio-net: frame of %u bytes to send: want %u..%u",
	      len, ETH_HLEN, n->max_frame);
	unsigned need = n->tx_split ? 2 : 1;
	if (vq->nfree < need)
		vnet_tx_reclaim(n);
	if (vq->nfree < need) {
		n->st.tx_full++;
		vnet_tx_kick(n);  /* what is queued must reach the device before we wait for it */
		uint64_t t0 = rdtsc();
		while (vq->nfree < need) {
			if (!vnet_tx_reclaim(n)) {
				CHECK(rdtsc() - t0 < n->timeout_tsc,
				      "virtio-net: transmit queue full and the device takes nothing (avail %u, used %u)",
				      vq->avail_next, vq->used[1]);
				cpu_relax();
			}
		}
	}
	uint16_t head = vq_desc_get(vq);
	uint8_t *slot = n->txmem + (uint64_t)head * TX_SLOT;
	if (h) {
		CHECK(!(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || vnet_has(n, VIRTIO_NET_F_CSUM),
		      "virtio-net: NEEDS_CSUM to send without VIRTIO_NET_F_CSUM");
		memcpy(slot, h, VIRTIO_NET_HDR_LEN);
	} else {
		memset(slot, 0, VIRTIO_NET_HDR_LEN);
	}
	memcpy(slot + VIRTIO_NET_HDR_LEN, frame, len);
	if (n->tx_split) {
		uint16_t d = vq_desc_get(vq);
		vq->desc[head].addr = (uint64_t)slot;
		vq->desc[head].len = VIRTIO_NET_HDR_LEN;
		vq->desc[head].flags = VRING_DESC_F_NEXT;
		vq->desc[head].next = d;
		vq->desc[d].addr = (uint64_t)slot + VIRTIO_NET_HDR_LEN;
		vq->desc[d].len = len;
		vq->desc[d].flags = 0;
	} else {
		vq->desc[head].addr = (uint64_t)slot;
		vq->desc[head].len = VIRTIO_NET_HDR_LEN + len;
		vq->desc[head].flags = 0;
	}
	vq_publish(vq, head, slot);
	n->st.tx_frames++;
	n->st.tx_bytes += len;
}

void vnet_tx_queue(struct vnet *n, const void *frame, uint32_t len) { vnet_tx_queue_hdr(n, NULL, frame, len); }

void vnet_send(struct vnet *n, const void *frame, uint32_t len)
{
	vnet_tx_queue(n, frame, len);
	vnet_tx_kick(n);
}

/* The next used RX buffer, waiting for it (the rest of a merged frame may
 * be published after its first buffer). */
static uint8_t *rx_next(struct vnet *n, uint32_t *len, unsigned k, unsigned nb)
{
	uint64_t t0 = rdtsc();
	uint8_t *b;
	while (!(b = vq_poll(&n->rx, len))) {
		CHECK(rdtsc() - t0 < n->timeout_tsc,
		      "virtio-net: frame of num_buffers=%u: buffer %u never came (used %u)", nb, k, n->rx.used[1]);
		cpu_relax();
	}
	return b;
}

uint32_t vnet_recv_hdr(struct vnet *n, void *buf, uint32_t max, struct virtio_net_hdr *hdr_out, bool do_kick)
{
	uint32_t len;
	uint8_t *b = vq_poll(&n->rx, &len);
	if (!b)
		return 0;
	CHECK(len >= VIRTIO_NET_HDR_LEN && len <= n->rxbuf_len,
	      "virtio-net: used RX buffer len %u: want %u..%u", len, VIRTIO_NET_HDR_LEN, n->rxbuf_len);
	struct virtio_net_hdr h;
	memcpy(&h, b, sizeof(h));
	bool mrg = vnet_has(n, VIRTIO_NET_F_MRG_RXBUF);
	unsigned nb = 1;
	if (mrg) {
		nb = h.num_buffers;
		CHECK(nb >= 1 && nb <= n->rxbufs, "virtio-net: num_buffers=%u with %u buffers posted", nb, n->rxbufs);
	} else if (h.num_buffers != 1) {
		/* 5.1.6.4: "the device MUST set num_buffers to 1" */
		CHECK(!n->strict_num_buffers, "virtio-net: num_buffers=%u without MRG_RXBUF (must be 1)", h.num_buffers);
		n->st.rx_num_buffers_odd++;
	}
	CHECK(h.gso_type == VIRTIO_NET_HDR_GSO_NONE, "virtio-net: gso_type %u with no guest GSO negotiated", h.gso_type);
	CHECK(!(h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || vnet_has(n, VIRTIO_NET_F_GUEST_CSUM),
	      "virtio-net: NEEDS_CSUM in a received header without GUEST_CSUM");
	uint32_t total = 0;
	for (unsigned k = 0;; k++) {
		uint32_t off = k ? 0 : VIRTIO_NET_HDR_LEN, part = len - off;
		CHECK(total + part <= max, "virtio-net: received frame longer than %u bytes", max);
		memcpy((uint8_t *)buf + total, b + off, part);
		total += part;
		rx_post(n, b);
		n->st.rx_buffers++;
		if (k + 1 == nb)
			break;
		/* 5.1.6.4: every buffer but the last is used to its end. */
		CHECK(len == n->rxbuf_len, "virtio-net: buffer %u of %u holds %u bytes, not all %u",
		      k, nb, len, n->rxbuf_len);
		b = rx_next(n, &len, k + 1, nb);
		CHECK(len <= n->rxbuf_len, "virtio-net: used RX buffer len %u > %u", len, n->rxbuf_len);
	}
	CHECK(total >= ETH_HLEN, "virtio-net: received frame of %u bytes", total);
	if (nb > 1)
		n->st.rx_merged++;
	if (nb > n->st.rx_max_buffers)
		n->st.rx_max_buffers = (uint16_t)nb;
	if (h.flags & VIRTIO_NET_HDR_F_DATA_VALID)
		n->st.rx_data_valid++;
	if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
		n->st.rx_needs_csum++;
	n->st.rx_frames++;
	n->st.rx_bytes += total;
	if (hdr_out)
		*hdr_out = h;
	if (do_kick)
		vnet_rx_kick(n);
	return total;
}

uint32_t vnet_recv(struct vnet *n, void *buf, uint32_t max) { return vnet_recv_hdr(n, buf, max, NULL, true); }

uint32_t vnet_recv_wait(struct vnet *n, void *buf, uint32_t max, uint64_t timeout_tsc)
{
	uint64_t t0 = rdtsc();
	for (;;) {
		uint32_t l = vnet_recv(n, buf, max);
		if (l)
			return l;
		if (rdtsc() - t0 >= timeout_tsc)
			return 0;
		cpu_relax();
	}
}

void vnet_stats(struct vnet *n, struct vnet_stats *out) { *out = n->st; }
