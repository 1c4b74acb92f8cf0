/* virtio-net (virtio 1.x section 5.1). Queues rx0, tx0, rx1, tx1, ..., ctrl.
 *
 * Each queue pair is served on one event loop: a pull backend (TAP) gets an
 * I/O thread per pair, a push backend (libslirp) is served on the backend's
 * own loop, since libslirp is single-threaded. Everything a pair touches
 * while it runs is touched on that loop's thread only, so the data path has
 * no locks; ops->start/stop run on a vCPU thread (vd->lock held) and hand
 * their work to the loop with evloop_call(). The control queue lives on
 * pair 0's loop.
 *
 * Guest memory is hostile: headers are copied once and the copy is what we
 * validate and hand to the backend; every rule the driver breaks is
 * counted, its chain returned with length 0, and the queue keeps going.
 * See docs/networking.md. */
#include "virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_net.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "net/backend.h"
#include "net/net_config.h"
#include "virtio/virtio.h"
#include "vmm/eventloop.h"
#include "vmm/log.h"

#define QUEUE_SIZE   256
#define HDR_LEN      NET_VNET_HDR_LEN
#define DEFAULT_MTU  1500
#define ETH_HDR      14
#define VLAN_HDR     4
/* 64 KiB of GSO packet plus its Ethernet header: the most a TAP hands over
 * (and QEMU's VIRTIO_NET_MAX_BUFSIZE). */
#define GSO_MAX_FRAME 65550u
#define MAX_PAIRS    NET_MAX_QUEUES
#define RX_BATCH     64      /* frames per wakeup before we let the loop run others */
#define TX_BATCH     256
#define RX_IOV_MAX   1024    /* IOV_MAX: one readv */
#define PUSH_FRAMES  256
#define PUSH_BYTES   (512u << 10)
#define MAC_TABLE_MAX 64
/* Transient errors in a row from one backend fd before we call it broken:
 * an fd that fails without consuming anything would otherwise spin. */
#define ERR_STREAK_MAX 1024

#define BIT(b) (1ULL << (b))

/* The header bits we can offer only when the backend takes offloads. */
#define OFFLOAD_FEATURES                                                                       \
	(BIT(VIRTIO_NET_F_CSUM) | BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) |   \
	 BIT(VIRTIO_NET_F_GUEST_TSO6) | BIT(VIRTIO_NET_F_GUEST_ECN) |                              \
	 BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) | BIT(VIRTIO_NET_F_HOST_ECN))

/* What VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET may switch (5.1.6.5.6.1): the
 * receive offloads, named by their feature bits. */
#define GUEST_OFFLOAD_BITS                                                                     \
	(BIT(VIRTIO_NET_F_GUEST_CSUM) | BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6) | \
	 BIT(VIRTIO_NET_F_GUEST_ECN) | BIT(VIRTIO_NET_F_GUEST_UFO))

_Static_assert(sizeof(struct virtio_net_hdr_v1) == HDR_LEN, "virtio_net_hdr_v1");


/* One RX chain we popped and hold until a frame fills it. */
struct rx_chain {
	uint16_t head;
	uint16_t slot;         /* where it was in the avail ring (mod 2^16) */
	uint64_t len;          /* writable bytes */
	unsigned iov, niov;    /* its buffers in the window's iov array */
};

/* The RX chains a pair holds, oldest first, and their buffers as one iovec
 * array, so one readv can spread a frame over many mergeable buffers. A
 * frame consumes chains from the front; the rest stay for the next frame
 * (popping and unpopping 40 chains per small frame would be most of the
 * work), and go back to the ring only when the pair stops serving. */
struct rx_window {
	struct rx_chain chain[VIRTQ_MAX_SIZE];
	unsigned first, count;
	uint64_t space;
	unsigned iov_lo, iov_hi;
	struct iovec iov[2 * RX_IOV_MAX];
};

/* Push backends: frames that came while the driver had no RX buffers,
 * copied into one preallocated pool (no allocation per frame, and a bound
 * on what a guest that never reads can make us hold). */
struct push_queue {
	uint8_t *buf;
	struct { uint32_t off, len; } f[PUSH_FRAMES];
	unsigned first, count;
};

struct virtio_net;

struct net_pair {
	struct virtio_net *n;
	unsigned index, rxq, txq;
	struct event_loop *loop;    /* serves the pair while the device runs */
	struct iothread iot;        /* pull backends: the pair's thread */
	/* From here on: the loop thread's, while the device runs. */
	bool serving;
	bool rx_on, tx_on;          /* the driver enabled the queue */
	bool rx_wait;               /* out of RX buffers: backend EPOLLIN off, RX kicks on */
	bool tx_wait;               /* the backend said -EAGAIN: waiting for EPOLLOUT */
	bool tx_resched;            /* we kicked ourselves to go on after a full batch */
	bool rx_dirty;              /* used RX entries not yet considered for an interrupt */
	bool failed;                /* the backend or a ring broke: NEEDS_RESET is set */
	unsigned err_streak;
	uint32_t be_events;
	struct event_source rx_src, tx_src, be_src;
	struct rx_window win;
	/* Two: libslirp may hand us a frame from inside our own send. */
	struct virtq_elem rx_elem, tx_elem;
	struct iovec iov[VIRTQ_MAX_CHAIN + 1];
	struct iovec rxs[RX_IOV_MAX];    /* the window minus the header, without vnet_hdr */
	struct push_queue pq;
	struct virtio_net_stats st;
};

struct virtio_net {
	struct virtio_dev vd;
	struct net_backend *be;
	char name[16];
	bool pull;
	bool main_loop;             /* a pull backend served on be->loop (iothread=main) */
	unsigned max_pairs, ctrlq;
	struct net_pair *pairs;
	struct net_port port;
	/* What the driver negotiated, set in start before any loop runs. */
	uint64_t features;
	bool mrg;
	uint16_t mtu;
	uint32_t rx_need;           /* header + largest frame the backend may hand us */
	uint32_t tx_max;            /* largest frame (no header) we pass on */
	/* Control queue state: pair 0's loop thread. */
	bool ctrl_on;
	struct event_source ctrl_src;
	struct virtq_elem ctrl_elem;
	unsigned active_pairs;
	bool promisc, allmulti;
	unsigned n_uc, n_mc;
	bool uc_overflow, mc_overflow;
	uint8_t uc[MAC_TABLE_MAX][6], mc[MAC_TABLE_MAX][6];
	/* Under vd->config_lock: vCPUs read it, the control queue's loop
	 * thread changes it (and must not take vd->lock, which a reset holds
	 * while it waits for that thread). */
	struct virtio_net_config config;
	uint8_t mac[6];             /* the configured MAC, back at every reset */
};

static struct virtq *vq_of(struct virtio_net *n, unsigned q) { return &n->vd.queues[q].vq; }
static bool has(const struct virtio_net *n, unsigned bit) { return (n->features >> bit) & 1; }

/* ---- features and configuration ------------------------------------------ */

static uint64_t net_features(struct virtio_dev *vd)
{
	struct virtio_net *n = vd->priv;
	uint64_t f = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) | BIT(VIRTIO_NET_F_MTU) |
		     BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_CTRL_VQ) |
		     BIT(VIRTIO_NET_F_CTRL_RX) | BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |
		     BIT(VIRTIO_NET_F_GUEST_ANNOUNCE);
	/* Offload state travels in the vnet header: without one (libslirp)
	 * the guest must checksum and segment everything itself. */
	if (n->be->offloads && n->be->vnet_hdr)
		f |= OFFLOAD_FEATURES | BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS);
	if (n->max_pairs > 1)
		f |= BIT(VIRTIO_NET_F_MQ);
	return f;
}

static void net_config_read(struct virtio_dev *vd, uint32_t off, uint8_t *data, uint32_t len)
{
	struct virtio_net *n = vd->priv;
	memcpy(data, (uint8_t *)&n->config + off, len);
}

/* ---- failures --------------------------------------------------------------- */

/* Errors after which an fd will never work again: retrying would spin. */
static bool fatal_error(int err)
{
	switch (err) {
	case -EBADF: case -EBADFD: case -EPIPE: case -ENOTCONN: case -ECONNRESET: case -ENODEV:
	case -ENXIO:
		return true;
	}
	return false;
}

static void del_src(struct event_loop *l, struct event_source *s)
{
	if (s->added)
		evloop_del(l, s);
}

/* The pair cannot be served any more: one line, stop watching its fds (so
 * nothing spins on a broken one) and have the driver reset the device,
 * which starts everything afresh. */
static void pair_fail(struct net_pair *p, const char *what, int err)
{
	struct virtio_net *n = p->n;
	if (!p->failed)
		log_err("virtio-net %s (%s %s) queue pair %u: %s: %s; the device needs a reset",
			n->name, n->be->kind, n->be->name, p->index, what, strerror(-err));
	p->failed = true;
	del_src(p->loop, &p->rx_src);
	del_src(p->loop, &p->tx_src);
	del_src(p->loop, &p->be_src);
	virtio_set_needs_reset(&n->vd);
}

static void set_be_events(struct net_pair *p, uint32_t ev)
{
	if (!p->n->pull || ev == p->be_events || !p->be_src.added)
		return;
	int r = evloop_mod(p->loop, &p->be_src, ev);
	if (r) {
		pair_fail(p, "cannot watch the backend", r);
		return;
	}
	p->be_events = ev;
}

/* Empties a kick eventfd. False when it failed (and the pair with it). */
static bool kick_read(struct net_pair *p, int fd)
{
	uint64_t v;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR) {
		pair_fail(p, "the kick eventfd failed", -errno);
		return false;
	}
	return true;
}

/* ---- RX: the window of held chains --------------------------------------------- */

static struct rx_chain *win_chain(struct rx_window *w, unsigned i)
{
	return &w->chain[(w->first + i) % VIRTQ_MAX_SIZE];
}

static void win_reset(struct rx_window *w)
{
	w->first = w->count = 0;
	w->space = 0;
	w->iov_lo = w->iov_hi = 0;
}

static void win_compact(struct rx_window *w)
{
	unsigned lo = w->iov_lo;
	memmove(w->iov, w->iov + lo, (w->iov_hi - lo) * sizeof(*w->iov));
	for (unsigned i = 0; i < w->count; i++)
		win_chain(w, i)->iov -= lo;
	w->iov_hi -= lo;
	w->iov_lo = 0;
}

static void win_consume(struct rx_window *w, unsigned k)
{
	for (unsigned i = 0; i < k; i++)
		w->space -= win_chain(w, i)->len;
	w->first = (w->first + k) % VIRTQ_MAX_SIZE;
	w->count -= k;
	if (w->count)
		w->iov_lo = win_chain(w, 0)->iov;
	else
		win_reset(w);
}

/* Pops one more RX chain into the window. 1: added; 0: the ring is empty;
 * -ENOSPC: the window holds all it may; -EPROTO: the ring is broken. A
 * chain we cannot use goes back at once with length 0. */
static int win_pop(struct net_pair *p, struct virtq *vq)
{
	struct rx_window *w = &p->win;
	struct virtq_elem *e = &p->rx_elem;
	for (;;) {
		/* A driver re-posting heads it has not got back yet could
		 * otherwise make us hold more chains than the used ring fits. */
		if (w->count >= vq->size)
			return -ENOSPC;
		int r = virtq_pop(vq, e);
		if (r == 0 || r == -EPROTO)
			return r;
		/* Each mergeable buffer must hold a header (5.1.6.3.1), and a
		 * lone one must hold more than that. */
		if (r < 0 || e->in_len <= (p->n->mrg ? HDR_LEN - 1 : HDR_LEN)) {
			STAT_INC(p->st.rx_bad_chain);
			virtq_push(vq, e->head, 0);
			p->rx_dirty = true;
			continue;
		}
		if (w->iov_hi - w->iov_lo + e->nin > RX_IOV_MAX) {
			virtq_unpop(vq, 1);
			return -ENOSPC;
		}
		if (w->iov_hi + e->nin > 2 * RX_IOV_MAX)
			win_compact(w);
		struct rx_chain *c = win_chain(w, w->count);
		c->head = e->head;
		c->slot = (uint16_t)(vq->last_avail - 1);
		c->len = e->in_len;
		c->iov = w->iov_hi;
		for (unsigned i = 0; i < e->nin; i++)
			if (e->in[i].iov_len)
				w->iov[w->iov_hi++] = e->in[i];
		c->niov = w->iov_hi - c->iov;
		w->count++;
		w->space += c->len;
		return 1;
	}
}

/* Makes the window ready for a frame of need bytes (header included): with
 * MRG_RXBUF chains until they cover it, without one chain. 1: ready; 0: the
 * driver has not posted enough yet; -EPROTO: broken ring. When the window
 * cannot grow any more (every chain the ring can hold is ours) it is ready
 * with what it has: waiting for more would wait forever. */
static int win_fill(struct net_pair *p, struct virtq *vq, uint64_t need)
{
	struct rx_window *w = &p->win;
	for (;;) {
		if (p->n->mrg ? w->space >= need : w->count >= 1)
			return 1;
		int r = win_pop(p, vq);
		if (r == -EPROTO)
			return r;
		if (r == -ENOSPC)
			return w->count ? 1 : 0;
		if (r == 0)
			return 0;
	}
}

static void win_unpop_all(struct net_pair *p)
{
	struct virtq *vq = vq_of(p->n, p->rxq);
	struct rx_window *w = &p->win;
	/* virtq_unpop() rewinds the ring, which is right only when the chains
	 * we hold are the last ones popped. A chain refused while we held
	 * older ones went back at once and sits between them: rewinding would
	 * pop it a second time and never return the oldest. Then the chains
	 * go back unused instead, with length 0 like refused ones. */
	if (w->count && (uint16_t)(vq->last_avail - win_chain(w, 0)->slot) == w->count) {
		virtq_unpop(vq, w->count);
	} else if (w->count) {
		for (unsigned i = 0; i < w->count; i++)
			virtq_fill(vq, win_chain(w, i)->head, 0, i);
		virtq_flush(vq, w->count);
	}
	win_reset(w);
}

/* Publishes a frame of total bytes (header included) that is now in the
 * window's first chains: one used entry per chain it reached, num_buffers
 * in the first one's header, all made visible with one flush. full_hdr:
 * the header is ours to write (the backend has none). */
static void rx_publish(struct net_pair *p, struct virtq *vq, uint64_t total, bool full_hdr)
{
	struct rx_window *w = &p->win;
	unsigned k = 0;
	for (uint64_t rem = total; rem && k < w->count; k++) {
		struct rx_chain *c = win_chain(w, k);
		uint64_t l = c->len < rem ? c->len : rem;
		virtq_fill(vq, c->head, (uint32_t)l, k);
		rem -= l;
	}
	struct rx_chain *c0 = win_chain(w, 0);
	struct virtio_net_hdr_v1 h;
	if (full_hdr) {
		memset(&h, 0, sizeof(h));
		h.num_buffers = htole16((uint16_t)k);
		buf_to_iov(w->iov + c0->iov, c0->niov, 0, &h, HDR_LEN);
	} else {
		uint16_t nb = htole16((uint16_t)k);
		buf_to_iov(w->iov + c0->iov, c0->niov, offsetof(struct virtio_net_hdr_v1, num_buffers),
			   &nb, sizeof(nb));
		/* A TAP may mark a frame DATA_VALID whatever its offloads; a
		 * driver without GUEST_CSUM must see flags 0 (5.1.6.4.1). */
		if (!has(p->n, VIRTIO_NET_F_GUEST_CSUM)) {
			uint8_t zero = 0;
			buf_to_iov(w->iov + c0->iov, c0->niov, 0, &zero, 1);
		}
	}
	virtq_flush(vq, k);
	win_consume(w, k);
	STAT_INC(p->st.rx_frames);
	STAT_ADD(p->st.rx_bytes, total - HDR_LEN);
	p->rx_dirty = true;
}

static void rx_notify(struct net_pair *p)
{
	if (!p->rx_dirty)
		return;
	p->rx_dirty = false;
	if (virtq_should_notify(vq_of(p->n, p->rxq))) {
		STAT_INC(p->st.rx_irqs);
		virtio_notify_queue(&p->n->vd, p->rxq);
	}
}

/* No (or not enough) RX buffers: ask the driver to kick when it posts more
 * and stop reading the backend meanwhile, so frames wait in the TAP's queue
 * (back-pressure) and nothing spins. True when buffers came in the
 * meantime and the caller should try again. */
static bool rx_wait_buffers(struct net_pair *p, struct virtq *vq)
{
	virtq_set_notify(vq, true);
	if (virtq_has_avail(vq)) {
		virtq_set_notify(vq, false);
		return true;
	}
	p->rx_wait = true;
	set_be_events(p, p->be_events & ~(uint32_t)EPOLLIN);
	return false;
}

/* ---- RX from a pull backend ------------------------------------------------ */

static void rx_pull(struct net_pair *p)
{
	struct virtio_net *n = p->n;
	struct net_backend *be = n->be;
	struct virtq *vq = vq_of(n, p->rxq);
	struct rx_window *w = &p->win;
	size_t skip = be->vnet_hdr ? 0 : HDR_LEN;

	for (unsigned frames = 0; frames < RX_BATCH && !p->failed;) {
		int r = win_fill(p, vq, n->rx_need);
		if (r == -EPROTO) {
			pair_fail(p, "RX ring broken by the driver", r);
			break;
		}
		if (r == 0) {
			if (rx_wait_buffers(p, vq))
				continue;
			break;
		}
		/* Without MRG_RXBUF, one chain per frame: the one at the front. */
		unsigned nchains = n->mrg ? w->count : 1;
		struct rx_chain *last = win_chain(w, nchains - 1);
		struct iovec *iov = w->iov + w->iov_lo;
		unsigned cnt = last->iov + last->niov - w->iov_lo;
		uint64_t space = 0;
		for (unsigned i = 0; i < nchains; i++)
			space += win_chain(w, i)->len;
		if (skip) {
			int c = iov_slice(p->rxs, RX_IOV_MAX, iov, cnt, skip, space - skip);
			if (c < 0)
				break; /* cannot happen: chains hold more than a header */
			iov = p->rxs;
			cnt = (unsigned)c;
		}
		ssize_t got = be->ops->recv(be, p->index, iov, cnt);
		if (got == -EAGAIN || got == -EINTR) {
			p->err_streak = 0;
			break;
		}
		if (got == 0)
			got = -EPIPE; /* a closed peer reads as 0 forever */
		if (got == -EFAULT || got == -EMSGSIZE) {
			/* A backend that refuses a frame too large for the
			 * buffers has consumed it: progress, not a fault. */
			STAT_INC(p->st.rx_too_big);
			p->err_streak = 0;
			frames++;
			continue;
		}
		if (got < 0) {
			if (fatal_error((int)got) || ++p->err_streak >= ERR_STREAK_MAX) {
				pair_fail(p, "cannot read from the backend", (int)got);
				break;
			}
			STAT_INC(p->st.rx_backend_errors);
			continue;
		}
		p->err_streak = 0;
		frames++;
		uint64_t total = (uint64_t)got + skip;
		if (total > space) {
			/* A TAP (like recvmsg with MSG_TRUNC) returns the frame's
			 * real length and drops what did not fit. The chains
			 * stay for the next frame. */
			STAT_INC(p->st.rx_too_big);
			continue;
		}
		if (total < HDR_LEN + ETH_HDR) {
			STAT_INC(p->st.rx_backend_errors); /* a runt the guest would drop */
			continue;
		}
		rx_publish(p, vq, total, skip != 0);
	}
	rx_notify(p);
}

/* ---- RX from a push backend -------------------------------------------------- */

/* Copies one frame into RX buffers. 1: delivered; 0: no room yet; -1:
 * dropped (counted). */
static int rx_copy(struct net_pair *p, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = p->n;
	struct virtq *vq = vq_of(n, p->rxq);
	struct rx_window *w = &p->win;
	uint64_t need = HDR_LEN + (uint64_t)len;
	int r = win_fill(p, vq, need);
	if (r == -EPROTO) {
		pair_fail(p, "RX ring broken by the driver", r);
		return -1;
	}
	if (r == 0)
		return 0;
	uint64_t room = n->mrg ? w->space : win_chain(w, 0)->len;
	if (room < need) {
		STAT_INC(p->st.rx_too_big);
		return -1;
	}
	unsigned cnt = w->iov_hi - w->iov_lo;
	buf_to_iov(w->iov + w->iov_lo, cnt, HDR_LEN, frame, len);
	rx_publish(p, vq, need, true);
	return 1;
}

static bool pq_add(struct push_queue *q, const uint8_t *frame, size_t len)
{
	if (q->count == PUSH_FRAMES || len > PUSH_BYTES)
		return false;
	uint32_t off = 0;
	if (q->count) {
		uint32_t old = q->f[q->first].off;
		unsigned last = (q->first + q->count - 1) % PUSH_FRAMES;
		uint32_t end = q->f[last].off + q->f[last].len;
		if (end > old) {            /* one run: free at the top and below old */
			if (len <= PUSH_BYTES - end)
				off = end;
			else if (len <= old)
				off = 0;
			else
				return false;
		} else if (len <= old - end) { /* wrapped: free between end and old */
			off = end;
		} else {
			return false;
		}
	}
	memcpy(q->buf + off, frame, len);
	unsigned slot = (q->first + q->count) % PUSH_FRAMES;
	q->f[slot].off = off;
	q->f[slot].len = (uint32_t)len;
	q->count++;
	return true;
}

static void pq_drop_front(struct push_queue *q)
{
	q->first = (q->first + 1) % PUSH_FRAMES;
	if (--q->count == 0)
		q->first = 0;
}

static void push_drain(struct net_pair *p)
{
	struct push_queue *q = &p->pq;
	struct virtq *vq = vq_of(p->n, p->rxq);
	while (q->count && !p->failed) {
		int r = rx_copy(p, q->buf + q->f[q->first].off, q->f[q->first].len);
		if (r == 0) {
			if (rx_wait_buffers(p, vq))
				continue;
			break;
		}
		pq_drop_front(q);
	}
	rx_notify(p);
}

/* net_port.receive: on the backend's loop thread, which serves pair 0. */
static void port_receive(void *ctx, const uint8_t *frame, size_t len)
{
	struct virtio_net *n = ctx;
	struct net_pair *p = &n->pairs[0];
	if (!p->serving || !p->rx_on || p->failed) {
		STAT_INC(p->st.rx_dropped_no_buffers);
		return;
	}
	if (len == 0 || len > GSO_MAX_FRAME) {
		STAT_INC(p->st.rx_too_big);
		return;
	}
	/* Frames already waiting go first. */
	if (p->pq.count == 0) {
		int r = rx_copy(p, frame, len);
		if (r != 0) {
			rx_notify(p);
			return;
		}
	}
	if (!pq_add(&p->pq, frame, len)) {
		STAT_INC(p->st.rx_dropped_no_buffers);
		return;
	}
	if (!p->rx_wait)
		push_drain(p);
}

static void on_rx_kick(void *ctx, uint32_t events)
{
	struct net_pair *p = ctx;
	struct virtq *vq = vq_of(p->n, p->rxq);
	if (!kick_read(p, p->rx_src.fd))
		return;
	STAT_INC(p->st.rx_kicks);
	if (!p->rx_wait)
		return;
	p->rx_wait = false;
	virtq_set_notify(vq, false);
	if (p->n->pull) {
		set_be_events(p, p->be_events | EPOLLIN);
		rx_pull(p);
	} else {
		push_drain(p);
	}
}

/* ---- TX ---------------------------------------------------------------------- */

/* The driver's header against what it negotiated (5.1.6.2.1). */
static bool tx_hdr_ok(const struct virtio_net *n, const struct virtio_net_hdr_v1 *h,
		      uint64_t flen)
{
	uint8_t gso = h->gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
	bool ecn = h->gso_type & VIRTIO_NET_HDR_GSO_ECN;
	/* DATA_VALID and RSC_INFO are the device's to set, never the driver's. */
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return false;
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		uint32_t start = le16toh(h->csum_start), off = le16toh(h->csum_offset);
		if (!has(n, VIRTIO_NET_F_CSUM) || start + off + 2 > flen)
			return false;
	}
	switch (gso) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return !ecn && le16toh(h->hdr_len) <= flen;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!has(n, VIRTIO_NET_F_HOST_TSO4))
			return false;
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!has(n, VIRTIO_NET_F_HOST_TSO6))
			return false;
		break;
	default:
		return false; /* UDP (UFO is never offered) and unknown types */
	}
	return (!ecn || has(n, VIRTIO_NET_F_HOST_ECN)) &&
	       (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && le16toh(h->gso_size) != 0 &&
	       le16toh(h->hdr_len) <= flen;
}

/* Validates and sends the chain in p->tx_elem. 0: done with it (sent or
 * dropped and counted); -EAGAIN: the backend is full, try it again later. */
static int tx_one(struct net_pair *p)
{
	struct virtio_net *n = p->n;
	struct net_backend *be = n->be;
	struct virtq_elem *e = &p->tx_elem;
	struct virtio_net_hdr_v1 h;

	if (e->out_len == 0 || e->out_len == HDR_LEN) {
		STAT_INC(p->st.tx_empty);
		return 0;
	}
	if (e->out_len < HDR_LEN) {
		STAT_INC(p->st.tx_bad_header);
		return 0;
	}
	uint64_t flen = e->out_len - HDR_LEN;
	/* One copy: what we check is what the backend gets, whatever the
	 * guest writes into its buffer meanwhile. */
	iov_to_buf(e->out, e->nout, 0, &h, HDR_LEN);
	bool gso = (h.gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_NONE;
	if (flen > n->tx_max || (!gso && has(n, VIRTIO_NET_F_MTU) &&
				 flen > (uint64_t)n->mtu + ETH_HDR + VLAN_HDR)) {
		STAT_INC(p->st.tx_too_big);
		return 0;
	}
	if (!tx_hdr_ok(n, &h, flen)) {
		STAT_INC(p->st.tx_bad_header);
		return 0;
	}
	h.num_buffers = 0;
	struct iovec *iov = p->iov;
	unsigned cnt = 0;
	if (be->vnet_hdr)
		iov[cnt++] = (struct iovec){ &h, HDR_LEN };
	int c = iov_slice(iov + cnt, VIRTQ_MAX_CHAIN, e->out, e->nout, HDR_LEN, flen);
	if (c < 0) {
		STAT_INC(p->st.tx_bad_chain); /* cannot happen: out_len covers it */
		return 0;
	}
	cnt += (unsigned)c;
	int r = be->ops->send(be, p->index, iov, cnt);
	if (r == -EAGAIN && n->pull)
		return -EAGAIN;
	if (r < 0) {
		STAT_INC(p->st.tx_dropped);
		if (fatal_error(r))
			pair_fail(p, "cannot send to the backend", r);
		return 0;
	}
	STAT_INC(p->st.tx_frames);
	STAT_ADD(p->st.tx_bytes, flen);
	return 0;
}

/* Sends what the driver queued, with TX kicks off while we drain (as
 * virtio-blk does), completing a batch with one flush and at most one
 * interrupt. After a full batch we kick ourselves, so the loop serves
 * other sources before we go on. */
static void tx_process(struct net_pair *p)
{
	struct virtio_net *n = p->n;
	struct virtq *vq = vq_of(n, p->txq);
	unsigned done = 0, budget = TX_BATCH < vq->size ? TX_BATCH : vq->size;
	if (p->tx_wait || p->failed || !p->tx_on)
		return;
	virtq_set_notify(vq, false);
	for (;;) {
		if (budget == 0) {
			uint64_t one = 1;
			p->tx_resched = true;
			if (write(p->tx_src.fd, &one, sizeof(one)) < 0)
				pair_fail(p, "cannot kick the TX queue", -errno);
			break;
		}
		int r = virtq_pop(vq, &p->tx_elem);
		if (r == 0) {
			virtq_set_notify(vq, true);
			if (!virtq_has_avail(vq))
				break;
			virtq_set_notify(vq, false);
			continue;
		}
		if (r == -EPROTO) {
			pair_fail(p, "TX ring broken by the driver", r);
			break;
		}
		budget--;
		if (r < 0) {
			STAT_INC(p->st.tx_bad_chain);
		} else if (tx_one(p) == -EAGAIN) {
			/* Kicks stay off: EPOLLOUT brings us back. */
			virtq_unpop(vq, 1);
			STAT_INC(p->st.tx_backpressure);
			p->tx_wait = true;
			set_be_events(p, p->be_events | EPOLLOUT);
			break;
		}
		/* TX buffers are only read: the used length is 0. */
		virtq_fill(vq, p->tx_elem.head, 0, done++);
		if (p->failed)
			break;
	}
	virtq_flush(vq, done);
	if (done && virtq_should_notify(vq)) {
		STAT_INC(p->st.tx_irqs);
		virtio_notify_queue(&n->vd, p->txq);
	}
}

static void on_tx_kick(void *ctx, uint32_t events)
{
	struct net_pair *p = ctx;
	if (!kick_read(p, p->tx_src.fd))
		return;
	if (p->tx_resched)
		p->tx_resched = false;
	else
		STAT_INC(p->st.tx_kicks);
	tx_process(p);
}

static void on_backend(void *ctx, uint32_t events)
{
	struct net_pair *p = ctx;
	STAT_INC(p->st.backend_wakeups);
	if (events & (EPOLLERR | EPOLLHUP)) {
		/* Reported whatever we asked for: with the fd still in the set
		 * it would fire forever. */
		pair_fail(p, "the backend hung up", -EPIPE);
		return;
	}
	if ((events & EPOLLOUT) && p->tx_wait) {
		p->tx_wait = false;
		set_be_events(p, p->be_events & ~(uint32_t)EPOLLOUT);
		tx_process(p);
	}
	if ((events & EPOLLIN) && !p->rx_wait && !p->failed)
		rx_pull(p);
}

/* ---- the control queue --------------------------------------------------------- */

static int set_active_pairs(struct virtio_net *n, unsigned want);

static uint8_t ctrl_mac_table(struct virtio_net *n, const struct virtq_elem *e, size_t dlen)
{
	uint8_t tab[2][MAC_TABLE_MAX][6];
	uint32_t cnt[2];
	size_t off = 2, end = 2 + dlen;
	for (unsigned t = 0; t < 2; t++) {
		uint32_t c;
		if (end - off < sizeof(c))
			return VIRTIO_NET_ERR;
		iov_to_buf(e->out, e->nout, off, &c, sizeof(c));
		off += sizeof(c);
		c = le32toh(c);
		if (c > (end - off) / 6)
			return VIRTIO_NET_ERR;
		cnt[t] = c;
		iov_to_buf(e->out, e->nout, off, tab[t], 6 * (c < MAC_TABLE_MAX ? c : MAC_TABLE_MAX));
		off += 6 * (size_t)c;
	}
	if (off != end)
		return VIRTIO_NET_ERR;
	/* A TAP takes every frame anyway; the table is kept, not enforced. */
	n->n_uc = cnt[0] < MAC_TABLE_MAX ? cnt[0] : MAC_TABLE_MAX;
	n->n_mc = cnt[1] < MAC_TABLE_MAX ? cnt[1] : MAC_TABLE_MAX;
	n->uc_overflow = cnt[0] > MAC_TABLE_MAX;
	n->mc_overflow = cnt[1] > MAC_TABLE_MAX;
	memcpy(n->uc, tab[0], 6 * n->n_uc);
	memcpy(n->mc, tab[1], 6 * n->n_mc);
	return VIRTIO_NET_OK;
}

/* One command (5.1.6.5). Commands whose feature the driver did not
 * negotiate are refused, as the spec tells the driver not to send them. */
static uint8_t ctrl_cmd(struct virtio_net *n, uint8_t cls, uint8_t cmd,
			const struct virtq_elem *e, size_t dlen)
{
	uint8_t d[8] = { 0 };
	if (dlen <= sizeof(d))
		iov_to_buf(e->out, e->nout, 2, d, dlen);
	switch (cls) {
	case VIRTIO_NET_CTRL_RX:
		if (!has(n, VIRTIO_NET_F_CTRL_RX) || dlen != 1 ||
		    (cmd != VIRTIO_NET_CTRL_RX_PROMISC && cmd != VIRTIO_NET_CTRL_RX_ALLMULTI))
			return VIRTIO_NET_ERR;
		/* We are a TAP (or a NAT): every frame reaches us anyway. */
		if (cmd == VIRTIO_NET_CTRL_RX_PROMISC)
			n->promisc = d[0];
		else
			n->allmulti = d[0];
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_MAC:
		if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET && has(n, VIRTIO_NET_F_CTRL_RX))
			return ctrl_mac_table(n, e, dlen);
		if (cmd == VIRTIO_NET_CTRL_MAC_ADDR_SET && has(n, VIRTIO_NET_F_CTRL_MAC_ADDR) &&
		    dlen == 6) {
			virtio_config_lock(&n->vd);
			memcpy(n->config.mac, d, 6);
			virtio_config_changed(&n->vd);
			virtio_config_unlock(&n->vd);
			return VIRTIO_NET_OK;
		}
		return VIRTIO_NET_ERR;
	case VIRTIO_NET_CTRL_ANNOUNCE:
		if (cmd != VIRTIO_NET_CTRL_ANNOUNCE_ACK || !has(n, VIRTIO_NET_F_GUEST_ANNOUNCE) ||
		    dlen != 0)
			return VIRTIO_NET_ERR;
		virtio_config_lock(&n->vd);
		if (n->config.status & htole16(VIRTIO_NET_S_ANNOUNCE)) {
			n->config.status &= htole16((uint16_t)~VIRTIO_NET_S_ANNOUNCE);
			virtio_config_changed(&n->vd);
		}
		virtio_config_unlock(&n->vd);
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_GUEST_OFFLOADS: {
		/* Only offloads the driver negotiated may be switched on; the
		 * backend then stops handing us frames that need the others. */
		if (cmd != VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET ||
		    !has(n, VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) || dlen != 8)
			return VIRTIO_NET_ERR;
		uint64_t v;
		memcpy(&v, d, sizeof(v));
		v = le64toh(v);
		if (v & ~(n->features & GUEST_OFFLOAD_BITS))
			return VIRTIO_NET_ERR;
		if (!n->be->ops->set_offloads ||
		    n->be->ops->set_offloads(n->be, (n->features & ~GUEST_OFFLOAD_BITS) | v))
			return VIRTIO_NET_ERR;
		return VIRTIO_NET_OK;
	}
	case VIRTIO_NET_CTRL_MQ: {
		if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || !has(n, VIRTIO_NET_F_MQ) || dlen != 2)
			return VIRTIO_NET_ERR;
		unsigned v = (unsigned)d[0] | (unsigned)d[1] << 8;
		if (v < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || v > n->max_pairs)
			return VIRTIO_NET_ERR;
		return set_active_pairs(n, v) ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
	}
	}
	return VIRTIO_NET_ERR;
}

/* Returns the used length: 1 with the ack written, 0 when the chain has no
 * room for one (nothing can be reported). */
static uint32_t ctrl_one(struct virtio_net *n, const struct virtq_elem *e)
{
	struct net_pair *p0 = &n->pairs[0];
	uint8_t hdr[2];
	if (e->nin == 0 || e->in[e->nin - 1].iov_len == 0 || e->out_len < sizeof(hdr)) {
		STAT_INC(p0->st.ctrl_bad);
		return 0;
	}
	const struct iovec *last = &e->in[e->nin - 1];
	uint8_t *ack = (uint8_t *)last->iov_base + last->iov_len - 1;
	iov_to_buf(e->out, e->nout, 0, hdr, sizeof(hdr));
	uint8_t st = ctrl_cmd(n, hdr[0], hdr[1], e, e->out_len - sizeof(hdr));
	STAT_INC(p0->st.ctrl_cmds);
	if (st != VIRTIO_NET_OK)
		STAT_INC(p0->st.ctrl_bad);
	*ack = st;
	return 1;
}

static void ctrl_process(struct virtio_net *n)
{
	struct net_pair *p0 = &n->pairs[0];
	struct virtq *vq = vq_of(n, n->ctrlq);
	bool done = false;
	int r;
	while ((r = virtq_pop(vq, &n->ctrl_elem)) != 0) {
		if (r == -EPROTO) {
			log_err("virtio-net %s: control ring broken by the driver; the device needs a reset",
				n->name);
			del_src(p0->loop, &n->ctrl_src);
			virtio_set_needs_reset(&n->vd);
			break;
		}
		uint32_t len = 0;
		if (r < 0)
			STAT_INC(p0->st.ctrl_bad);
		else
			len = ctrl_one(n, &n->ctrl_elem);
		virtq_push(vq, n->ctrl_elem.head, len);
		done = true;
	}
	if (done && virtq_should_notify(vq)) {
		STAT_INC(p0->st.ctrl_irqs);
		virtio_notify_queue(&n->vd, n->ctrlq);
	}
}

static void on_ctrl_kick(void *ctx, uint32_t events)
{
	struct virtio_net *n = ctx;
	struct net_pair *p0 = &n->pairs[0];
	uint64_t v;
	if (read(n->ctrl_src.fd, &v, sizeof(v)) < 0 && errno != EAGAIN && errno != EINTR) {
		log_err("virtio-net %s: the control kick eventfd failed: %s; the device needs a reset",
			n->name, strerror(errno));
		del_src(p0->loop, &n->ctrl_src);
		virtio_set_needs_reset(&n->vd);
		return;
	}
	STAT_INC(p0->st.ctrl_kicks);
	ctrl_process(n);
}

/* ---- serving a pair (on its loop) ------------------------------------------------- */

static int add_src(struct event_loop *l, struct event_source *s, int fd, event_fn fn, void *ctx,
		   uint32_t events)
{
	s->fd = fd;
	s->fn = fn;
	s->ctx = ctx;
	return evloop_add(l, s, events);
}

static void pair_unserve(struct net_pair *p)
{
	struct virtio_net *n = p->n;
	if (!p->serving)
		return;
	del_src(p->loop, &p->rx_src);
	del_src(p->loop, &p->tx_src);
	del_src(p->loop, &p->be_src);
	if (p->index == 0) {
		del_src(p->loop, &n->ctrl_src);
		if (!n->pull)
			n->be->ops->attach(n->be, NULL);
		if (n->be->ops->set_offloads)
			n->be->ops->set_offloads(n->be, 0);
	}
	/* Chains we held go back: the driver may serve this pair again (MQ)
	 * without a reset, and after a reset the rings are gone anyway. */
	win_unpop_all(p);
	if (p->pq.count)
		STAT_ADD(p->st.rx_dropped_reset, p->pq.count);
	p->pq.count = p->pq.first = 0;
	p->serving = false;
}

static int pair_serve(struct net_pair *p)
{
	struct virtio_net *n = p->n;
	struct virtio_dev *vd = &n->vd;
	int r = 0;
	if (p->serving)
		return 0;
	p->serving = true;
	p->rx_wait = p->tx_wait = p->tx_resched = p->rx_dirty = p->failed = false;
	p->err_streak = 0;
	win_reset(&p->win);
	p->pq.count = p->pq.first = 0;
	/* On the loop thread, as a push backend wants every op. A failure is
	 * the backend's to log; the guest then gets no GSO frames, which it
	 * copes with. */
	/* After a reset every negotiated offload is on again (5.1.6.5.6.1). */
	if (p->index == 0 && n->be->ops->set_offloads)
		n->be->ops->set_offloads(n->be, n->features);
	/* RX kicks matter only while we wait for buffers: a frame to deliver
	 * finds the buffers itself. */
	if (p->rx_on) {
		virtq_set_notify(vq_of(n, p->rxq), false);
		if ((r = add_src(p->loop, &p->rx_src, vd->queues[p->rxq].kick_fd, on_rx_kick, p,
				 EPOLLIN)))
			goto fail;
	}
	if (p->tx_on && (r = add_src(p->loop, &p->tx_src, vd->queues[p->txq].kick_fd, on_tx_kick,
				     p, EPOLLIN)))
		goto fail;
	if (n->pull) {
		int fd = n->be->ops->fd(n->be, p->index);
		p->be_events = p->rx_on ? EPOLLIN : 0;
		if (fd < 0 ||
		    (r = add_src(p->loop, &p->be_src, fd, on_backend, p, p->be_events))) {
			r = fd < 0 ? fd : r;
			goto fail;
		}
	}
	if (p->index == 0) {
		if (n->ctrl_on && (r = add_src(p->loop, &n->ctrl_src, vd->queues[n->ctrlq].kick_fd,
					       on_ctrl_kick, n, EPOLLIN)))
			goto fail;
		if (!n->pull)
			n->be->ops->attach(n->be, &n->port);
	}
	/* Whatever the driver queued before DRIVER_OK (or before this pair
	 * was switched on) will not be kicked again. */
	tx_process(p);
	if (p->index == 0 && n->ctrl_on)
		ctrl_process(n);
	return 0;
fail:
	log_err("virtio-net %s: cannot serve queue pair %u: %s", n->name, p->index, strerror(-r));
	pair_unserve(p);
	return r;
}

struct pair_call {
	struct net_pair *p;
	int ret;
};

static void serve_cb(void *ctx)
{
	struct pair_call *c = ctx;
	c->ret = pair_serve(c->p);
}

static void unserve_cb(void *ctx)
{
	struct pair_call *c = ctx;
	pair_unserve(c->p);
}

static int on_loop(struct net_pair *p, bool serve)
{
	struct pair_call c = { .p = p };
	evloop_call(p->loop, serve ? serve_cb : unserve_cb, &c);
	return c.ret;
}

/* VQ_PAIRS_SET, on pair 0's loop: other pairs live on their own loops, which
 * never call back into this one, so waiting for them cannot deadlock. */
static int set_active_pairs(struct virtio_net *n, unsigned want)
{
	int r = 0;
	for (unsigned i = 1; i < n->max_pairs; i++) {
		bool on = i < want;
		if (on == (i < n->active_pairs))
			continue;
		int e = on_loop(&n->pairs[i], on);
		if (e && !r)
			r = e;
	}
	n->active_pairs = want;
	return r;
}

/* ---- start and stop (vCPU thread, vd->lock held) ------------------------------------- */

/* Takes every queue pair off its loop and stops the I/O threads: after
 * this nothing of the device touches guest memory. */
static void stop_pairs(struct virtio_net *n)
{
	/* Pair 0 first: it owns the control queue, which could otherwise
	 * switch another pair back on behind us. */
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		if (p->loop)
			on_loop(p, false);
	}
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		if (n->pull && p->loop && p->loop != n->be->loop)
			iothread_stop(&p->iot);
		p->loop = NULL;
	}
}

/* The other way: I/O threads (or the main loop) serve the pairs again,
 * with the state the driver negotiated kept as it is. */
static int start_pairs(struct virtio_net *n)
{
	struct net_backend *be = n->be;
	int r;
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		if (!n->pull || n->main_loop) {
			p->loop = be->loop;
			continue;
		}
		char name[16];
		snprintf(name, sizeof(name), "%.8s-q%u", n->name, (unsigned char)i); /* i < MAX_PAIRS */
		if ((r = iothread_start(&p->iot, name))) {
			log_err("virtio-net %s: cannot start an I/O thread: %s", n->name, strerror(-r));
			stop_pairs(n);
			return r;
		}
		p->loop = &p->iot.loop;
	}
	/* Pair 0, and after a pause every pair the driver had switched on
	 * (VQ_PAIRS_SET); at a start active_pairs is 1. */
	for (unsigned i = 0; i < n->active_pairs && i < n->max_pairs; i++)
		if ((r = on_loop(&n->pairs[i], true))) {
			stop_pairs(n);
			return r;
		}
	return 0;
}

static void net_stop(struct virtio_dev *vd)
{
	struct virtio_net *n = vd->priv;
	stop_pairs(n);
	/* A MAC the driver set lasts until the reset: the next boot reads the
	 * configured one before DRIVER_OK (QEMU does the same). */
	virtio_config_lock(vd);
	memcpy(n->config.mac, n->mac, 6);
	virtio_config_unlock(vd);
}

static int net_start(struct virtio_dev *vd)
{
	struct virtio_net *n = vd->priv;

	n->features = vd->driver_features;
	n->mrg = has(n, VIRTIO_NET_F_MRG_RXBUF);
	bool guest_gso = has(n, VIRTIO_NET_F_GUEST_TSO4) || has(n, VIRTIO_NET_F_GUEST_TSO6) ||
			 has(n, VIRTIO_NET_F_GUEST_UFO);
	n->rx_need = HDR_LEN + (guest_gso ? GSO_MAX_FRAME : (uint32_t)n->mtu + ETH_HDR + VLAN_HDR);
	bool host_gso = has(n, VIRTIO_NET_F_HOST_TSO4) || has(n, VIRTIO_NET_F_HOST_TSO6);
	n->tx_max = host_gso ? GSO_MAX_FRAME : (uint32_t)n->mtu + ETH_HDR + VLAN_HDR;
	n->ctrl_on = vd->queues[n->ctrlq].enabled;
	n->active_pairs = 1; /* multiqueue starts off (5.1.6.5.5) */
	n->promisc = n->allmulti = false;
	n->n_uc = n->n_mc = 0;
	virtio_config_lock(vd);
	n->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	virtio_config_unlock(vd);

	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		p->rx_on = vd->queues[p->rxq].enabled;
		p->tx_on = vd->queues[p->txq].enabled;
	}
	return start_pairs(n);
}

/* VM pause: the pairs stop being served, everything the driver set up
 * (MAC, rx mode, active pairs) stays for the resume. Frames arriving
 * meanwhile wait where back-pressure keeps them (the TAP's queue, the
 * slirp backend's bounded one). */
static void net_pause(struct virtio_dev *vd)
{
	stop_pairs(vd->priv);
}

static int net_resume(struct virtio_dev *vd)
{
	return start_pairs(vd->priv);
}

static const struct virtio_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.class_code = 0x020000, /* network controller, Ethernet */
	.features = net_features,
	.config_size = sizeof(struct virtio_net_config),
	.config_read = net_config_read,
	.start = net_start,
	.stop = net_stop,
	.pause = net_pause,
	.resume = net_resume,
};

/* ---- create, free, statistics --------------------------------------------------------- */

int virtio_net_create(struct virtio_net **out, struct vm *vm, const struct net_config *cfg,
		      struct net_backend *be, unsigned index)
{
	if (!be || !be->ops || !be->ops->send)
		return -EINVAL;
	bool pull = be->ops->recv && be->ops->fd;
	if (!pull && (!be->ops->attach || !be->loop))
		return -EINVAL;
	if (pull && cfg && cfg->main_loop && !be->loop)
		return -EINVAL;
	unsigned pairs = pull && be->queue_pairs > 1 ? be->queue_pairs : 1;
	if (pairs > MAX_PAIRS)
		return -EINVAL;

	struct virtio_net *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->be = be;
	n->pull = pull;
	n->main_loop = pull && cfg && cfg->main_loop;
	n->max_pairs = pairs;
	n->ctrlq = 2 * pairs;
	n->mtu = DEFAULT_MTU;
	n->port = (struct net_port){ .receive = port_receive, .ctx = n };
	snprintf(n->name, sizeof(n->name), "eth%u", index);
	int r = -ENOMEM;
	n->pairs = calloc(pairs, sizeof(*n->pairs));
	if (!n->pairs)
		goto fail;
	for (unsigned i = 0; i < pairs; i++) {
		struct net_pair *p = &n->pairs[i];
		p->n = n;
		p->index = i;
		p->rxq = 2 * i;
		p->txq = 2 * i + 1;
		p->rx_src.fd = p->tx_src.fd = p->be_src.fd = -1;
	}
	if (!pull && !(n->pairs[0].pq.buf = malloc(PUSH_BYTES)))
		goto fail;

	struct virtio_net_config *c = &n->config;
	memcpy(n->mac, cfg->mac, 6);
	memcpy(c->mac, cfg->mac, 6);
	c->status = htole16(VIRTIO_NET_S_LINK_UP);
	c->max_virtqueue_pairs = htole16((uint16_t)pairs);
	c->mtu = htole16(n->mtu);
	c->speed = htole32(UINT32_MAX);   /* unknown: only meaningful with SPEED_DUPLEX */
	c->duplex = 0xff;
	if ((r = virtio_dev_init(&n->vd, vm, &net_ops, n, 2 * pairs + 1, QUEUE_SIZE)))
		goto fail;
	*out = n;
	return 0;
fail:
	virtio_net_free(n);
	return r;
}

void virtio_net_free(struct virtio_net *n)
{
	if (!n)
		return;
	if (n->vd.ops)
		virtio_dev_free(&n->vd);
	if (n->pairs)
		free(n->pairs[0].pq.buf);
	free(n->pairs);
	free(n);
}

void virtio_net_get_stats(const struct virtio_net *n, struct virtio_net_stats *s)
{
	uint64_t *dst = (uint64_t *)s;
	const size_t nfields = sizeof(*s) / sizeof(uint64_t);
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < n->max_pairs; i++) {
		const uint64_t *src = (const uint64_t *)&n->pairs[i].st;
		for (size_t f = 0; f < nfields; f++)
			dst[f] += __atomic_load_n(&src[f], __ATOMIC_RELAXED);
	}
	s->kicks_by_exit = atomic_load(&n->vd.notify_exits);
}

#define U(x) ((unsigned long long)(x))

void virtio_net_print_stats(FILE *f, const struct virtio_net *n)
{
	const char *kind = n->be->kind, *be = n->be->name;
	for (unsigned i = 0; i < n->max_pairs; i++) {
		struct virtio_net_stats s;
		const uint64_t *src = (const uint64_t *)&n->pairs[i].st;
		uint64_t *dst = (uint64_t *)&s;
		for (size_t k = 0; k < sizeof(s) / sizeof(uint64_t); k++)
			dst[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
		if (!s.rx_frames && !s.tx_frames && !s.rx_kicks && !s.tx_kicks)
			continue;
		fprintf(f, "  virtio-net %s (%s %s) q%u: rx %llu frames %llu bytes, tx %llu frames "
			"%llu bytes; kicks rx %llu tx %llu; interrupts rx %llu tx %llu; backend "
			"wakeups %llu, tx back-pressure %llu\r\n",
			n->name, kind, be, i, U(s.rx_frames), U(s.rx_bytes), U(s.tx_frames),
			U(s.tx_bytes), U(s.rx_kicks), U(s.tx_kicks), U(s.rx_irqs), U(s.tx_irqs),
			U(s.backend_wakeups), U(s.tx_backpressure));
	}
	struct virtio_net_stats s;
	virtio_net_get_stats(n, &s);
	fprintf(f, "  virtio-net %s (%s %s, served by %s): dropped rx_no_buffers %llu, rx_reset %llu, "
		"rx_too_big %llu, rx_backend_errors %llu, tx_dropped %llu; hostile rx_bad_chain "
		"%llu, tx_bad_header %llu, tx_too_big %llu, tx_empty %llu, tx_bad_chain %llu, "
		"ctrl_bad %llu (of %llu commands); %llu kicks by exit\r\n",
		n->name, kind, be, n->pull && !n->main_loop ? "an I/O thread per queue pair" : "the main loop",
		U(s.rx_dropped_no_buffers), U(s.rx_dropped_reset),
		U(s.rx_too_big), U(s.rx_backend_errors), U(s.tx_dropped), U(s.rx_bad_chain),
		U(s.tx_bad_header), U(s.tx_too_big), U(s.tx_empty), U(s.tx_bad_chain),
		U(s.ctrl_bad), U(s.ctrl_cmds), U(s.kicks_by_exit));
}

void virtio_net_pause(struct virtio_net *n)
{
	virtio_dev_pause(&n->vd);
}

void virtio_net_resume(struct virtio_net *n)
{
	virtio_dev_resume(&n->vd);
}
