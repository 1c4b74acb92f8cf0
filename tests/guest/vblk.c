/* Polling virtio-blk driver over modern virtio-pci (see vblk.h). Follows
 * virtio 1.x 5.2 (block device) on the transport and split rings of
 * vpci.c. Several queues (5.2.5, VIRTIO_BLK_F_MQ) are just several
 * independent split rings, each with its own notify address. */
#include "vblk.h"

/* Block device configuration layout (5.2.4): byte offsets. */
#define BC_CAPACITY        0
#define BC_SIZE_MAX        8
#define BC_SEG_MAX         12
#define BC_BLK_SIZE        20
#define BC_NUM_QUEUES      34
#define BC_MAX_DISCARD_SECTORS 36
#define BC_MAX_DISCARD_SEG 40
#define BC_DISCARD_ALIGN   44
#define BC_MAX_WZ_SECTORS  48
#define BC_MAX_WZ_SEG      52
#define BC_WZ_MAY_UNMAP    56

const char *vblk_status_name(uint8_t s)
{
	switch (s) {
	case VIRTIO_BLK_S_OK: return "OK";
	case VIRTIO_BLK_S_IOERR: return "IOERR";
	case VIRTIO_BLK_S_UNSUPP: return "UNSUPP";
	case 0xff: return "untouched";
	default: return "bogus";
	}
}

void vblk_opts_from_cmdline(struct vblk_opts *o)
{
	char buf[64];
	memset(o, 0, sizeof(*o));
	o->index = (unsigned)cmdline_get_u64("blk_dev", 0);
	o->qsize = (uint16_t)cmdline_get_u64("blk_qsize", 0);
	o->event_idx = cmdline_get_u64("event_idx", 1) != 0;
	uint64_t nq = cmdline_get_u64("blk_queues", 1);
	CHECK(nq >= 1 && nq <= VBLK_MAX_QUEUES, "cmdline: blk_queues=%lu: want 1..%u", nq, VBLK_MAX_QUEUES);
	o->queues = (uint16_t)nq;
	/* More than one queue means MQ, so blk_mq defaults to 1 then; saying
	 * blk_mq=0 as well is a contradiction, not a request to fall back. */
	o->mq = cmdline_get_u64("blk_mq", nq > 1) != 0;
	CHECK(o->mq || nq == 1, "cmdline: blk_queues=%lu needs VIRTIO_BLK_F_MQ, but blk_mq=0 refuses it", nq);
	o->kick_always = cmdline_get("blk_kick", buf, sizeof(buf)) && strcmp(buf, "always") == 0;
	o->refuse = vpci_cmdline_bits("blk_refuse");
}

void vblk_reset(struct vblk *b) { vpci_reset(&b->v); }

/* Device configuration, consistent across a config_generation change
 * (4.1.4.3.1): 32-bit accesses for 32- and 64-bit fields, 8-bit for 8-bit. */
static void read_config(struct vblk *b)
{
	for (unsigned tries = 0;; tries++) {
		CHECK(tries < 100, "virtio: config_generation never settles");
		uint8_t gen = vpci_cfg_generation(&b->v);
		b->capacity = vpci_cfg_read32(&b->v, BC_CAPACITY) | (uint64_t)vpci_cfg_read32(&b->v, BC_CAPACITY + 4) << 32;
		if (vblk_has(b, VIRTIO_BLK_F_SIZE_MAX))
			b->size_max = vpci_cfg_read32(&b->v, BC_SIZE_MAX);
		if (vblk_has(b, VIRTIO_BLK_F_SEG_MAX))
			b->seg_max = vpci_cfg_read32(&b->v, BC_SEG_MAX);
		if (vblk_has(b, VIRTIO_BLK_F_BLK_SIZE))
			b->blk_size = vpci_cfg_read32(&b->v, BC_BLK_SIZE);
		if (vblk_has(b, VIRTIO_BLK_F_MQ))
			b->num_queues = vpci_cfg_read16(&b->v, BC_NUM_QUEUES);
		if (vblk_has(b, VIRTIO_BLK_F_DISCARD)) {
			b->max_discard_sectors = vpci_cfg_read32(&b->v, BC_MAX_DISCARD_SECTORS);
			b->max_discard_seg = vpci_cfg_read32(&b->v, BC_MAX_DISCARD_SEG);
			b->discard_align = vpci_cfg_read32(&b->v, BC_DISCARD_ALIGN);
		}
		if (vblk_has(b, VIRTIO_BLK_F_WRITE_ZEROES)) {
			b->max_wz_sectors = vpci_cfg_read32(&b->v, BC_MAX_WZ_SECTORS);
			b->max_wz_seg = vpci_cfg_read32(&b->v, BC_MAX_WZ_SEG);
			b->wz_may_unmap = vpci_cfg_read8(&b->v, BC_WZ_MAY_UNMAP);
		}
		if (vpci_cfg_generation(&b->v) == gen)
			return;
	}
}

/* How many queues to use: o->queues, checked against what the device has.
 * Without MQ only queue 0 may be used (5.2.5: num_queues is valid only
 * with MQ), even when the common config lists more queues. */
static uint16_t queues_to_use(struct vblk *b, const struct vblk_opts *o, uint16_t cc_queues)
{
	uint16_t n = o->queues ? o->queues : 1;
	CHECK(n <= VBLK_MAX_QUEUES, "virtio-blk: %u queues wanted, the driver handles %u", n, VBLK_MAX_QUEUES);
	if (n == 1)
		return 1;
	CHECK(vblk_has(b, VIRTIO_BLK_F_MQ), "virtio-blk: blk_queues=%u needs VIRTIO_BLK_F_MQ, %s (offered %lx)",
	      n, b->v.offered & (1ull << VIRTIO_BLK_F_MQ) ? "refused by blk_refuse" : "which the device does not offer",
	      b->v.offered);
	CHECK(n <= b->num_queues, "virtio-blk: blk_queues=%u, but the device has num_queues=%u",
	      n, b->num_queues);
	CHECK(n <= cc_queues, "virtio-blk: blk_queues=%u, but the common config has num_queues=%u",
	      n, cc_queues);
	return n;
}

void vblk_init(struct vblk *b, const struct vblk_opts *o)
{
	memset(b, 0, sizeof(*b));
	b->timeout_tsc = cmdline_get_u64("blk_timeout", 20) * 1000000000ull;
	b->kick_always = o->kick_always;
	b->v.name = "virtio-blk";
	b->v.timeout_tsc = b->timeout_tsc;
	vpci_open(&b->v, VIRTIO_PCI_DEV_BLK, o->index, 8, o->quiet);

	uint64_t offered = vpci_begin(&b->v);
	uint64_t want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BLK_F_SIZE_MAX |
			1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_GEOMETRY |
			1ull << VIRTIO_BLK_F_RO | 1ull << VIRTIO_BLK_F_BLK_SIZE |
			1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_TOPOLOGY |
			1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	if (o->event_idx)
		want |= 1ull << VIRTIO_F_RING_EVENT_IDX;
	if (o->mq || o->queues > 1)
		want |= 1ull << VIRTIO_BLK_F_MQ;
	want &= ~o->refuse | 1ull << VIRTIO_F_VERSION_1;
	vpci_accept(&b->v, offered & want);

	uint16_t cc_queues = b->v.num_queues;
	read_config(b);
	b->nqueues = queues_to_use(b, o, cc_queues);
	for (uint16_t qi = 0; qi < b->nqueues; qi++) {
		vpci_vq_setup(&b->v, &b->q[qi], qi, o->qsize);
		b->q[qi].kick_always = b->kick_always;
		if (!qi || b->q[qi].qsize < b->qsize)
			b->qsize = b->q[qi].qsize;
	}
	vpci_driver_ok(&b->v);
	if (!o->quiet) {
		say("virtio-blk: features offered %lx accepted %lx queues=%u qsize=%u notify=%lx (off mult %u)",
		    b->v.offered, b->v.features, cc_queues, b->qsize, b->q[0].notify, b->v.notify_mult);
		if (b->nqueues > 1)
			say("virtio-blk: using %u queues (device config num_queues=%u), queue %u notify=%lx",
			    b->nqueues, b->num_queues, b->nqueues - 1, b->q[b->nqueues - 1].notify);
		say("virtio-blk: size_max=%u seg_max=%u blk_size=%u discard=%u/%u/%u write_zeroes=%u/%u/%u",
		    b->size_max, b->seg_max, b->blk_size, b->max_discard_sectors, b->max_discard_seg,
		    b->discard_align, b->max_wz_sectors, b->max_wz_seg, b->wz_may_unmap);
	}
}

void vblk_req_set(struct vblk_req *r, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	r->hdr.type = type;
	r->hdr.reserved = 0;
	r->hdr.sector = sector;
	r->buf = buf;
	r->len = len;
	r->dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
}

/* Queue qi, which must be one vblk_init set up. */
static struct vq *queue(struct vblk *b, unsigned qi)
{
	CHECK(qi < b->nqueues, "virtio-blk: queue %u used, only %u set up", qi, b->nqueues);
	return &b->q[qi];
}

bool vblk_submit_q(struct vblk *b, unsigned qi, struct vblk_req *r)
{
	struct vq *vq = queue(b, qi);
	uint32_t seg = r->seg;
	if (vblk_has(b, VIRTIO_BLK_F_SIZE_MAX) && b->size_max && (!seg || seg > b->size_max))
		seg = b->size_max;
	uint32_t ndata = !r->len ? 0 : seg ? (r->len + seg - 1) / seg : 1;
	CHECK(!vblk_has(b, VIRTIO_BLK_F_SEG_MAX) || !b->seg_max || ndata <= b->seg_max,
	      "virtio-blk: request of %u bytes needs %u segments, seg_max is %u", r->len, ndata, b->seg_max);
	uint32_t n = ndata + 2;
	CHECK(n <= vq->qsize, "virtio-blk: request needs %u descriptors, queue %u has %u", n, qi, vq->qsize);
	if (n > vq->nfree)
		return false;
	r->status = 0xff;
	r->done = false;
	r->used_len = 0;
	r->queue = (uint16_t)qi;

	uint16_t head = vq_desc_get(vq), i = head;
	vq->desc[i].addr = (uint64_t)&r->hdr;
	vq->desc[i].len = sizeof(r->hdr);
	vq->desc[i].flags = VRING_DESC_F_NEXT;
	vq->desc[i].next = vq->free_head;
	for (uint32_t k = 0, off = 0; k < ndata; k++) {
		i = vq_desc_get(vq);
		uint32_t l = seg && r->len - off > seg ? seg : r->len - off;
		vq->desc[i].addr = (uint64_t)r->buf + off;
		vq->desc[i].len = l;
		vq->desc[i].flags = VRING_DESC_F_NEXT | (r->dev_writes ? VRING_DESC_F_WRITE : 0);
		vq->desc[i].next = vq->free_head;
		off += l;
	}
	i = vq_desc_get(vq);
	vq->desc[i].addr = (uint64_t)&r->status;
	vq->desc[i].len = 1;
	vq->desc[i].flags = VRING_DESC_F_WRITE;
	vq->desc[i].next = 0;

	vq_publish(vq, head, r);
	b->submitted++;
	return true;
}

void vblk_kick_q(struct vblk *b, unsigned qi)
{
	struct vq *vq = queue(b, qi);
	uint64_t k = vq->kicks, s = vq->kicks_skipped;
	vq_kick(vq);
	b->kicks += vq->kicks - k;
	b->kicks_skipped += vq->kicks_skipped - s;
}

struct vblk_req *vblk_poll_q(struct vblk *b, unsigned qi)
{
	uint32_t len;
	struct vblk_req *r = vq_poll(queue(b, qi), &len);
	if (!r)
		return NULL;
	r->used_len = len;
	r->done = true;
	b->completed++;
	return r;
}

bool vblk_submit(struct vblk *b, struct vblk_req *r) { return vblk_submit_q(b, 0, r); }
void vblk_kick(struct vblk *b) { vblk_kick_q(b, 0); }
struct vblk_req *vblk_poll(struct vblk *b) { return vblk_poll_q(b, 0); }

void vblk_wait(struct vblk *b, struct vblk_req *r)
{
	struct vq *vq = queue(b, r->queue);
	uint64_t t0 = rdtsc();
	while (!r->done) {
		if (!vblk_poll_q(b, r->queue)) {
			CHECK(rdtsc() - t0 < b->timeout_tsc,
			      "virtio-blk: request type %u sector %lu timed out on queue %u (avail %u, used %u)",
			      r->hdr.type, r->hdr.sector, r->queue, vq->avail_next, vq->used[1]);
			cpu_relax();
		}
	}
}

uint8_t vblk_sync(struct vblk *b, struct vblk_req *r)
{
	CHECK(vblk_submit(b, r), "virtio-blk: no free descriptors for a request");
	vblk_kick(b);
	vblk_wait(b, r);
	return r->status;
}
