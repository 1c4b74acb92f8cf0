/* Polling virtio-blk driver over modern virtio-pci (see vblk.h). Follows
 * virtio 1.x: 4.1.4 (PCI capabilities), 3.1.1 (device initialisation),
 * 4.1.5.1.3 (virtqueue configuration), 2.7 (split virtqueues) and 5.2 (block
 * device). Runs in ring 3; every register access is one VM exit except the
 * notify write, which a VMM may catch with an ioeventfd. Several queues
 * (5.2.5, VIRTIO_BLK_F_MQ) are just several independent split rings, each
 * with its own notify address. */
#include "vblk.h"

/* Common configuration structure (4.1.4.3). */
#define CC_DEVICE_FEATURE_SELECT 0x00
#define CC_DEVICE_FEATURE        0x04
#define CC_DRIVER_FEATURE_SELECT 0x08
#define CC_DRIVER_FEATURE        0x0c
#define CC_CONFIG_MSIX_VECTOR    0x10
#define CC_NUM_QUEUES            0x12
#define CC_DEVICE_STATUS         0x14
#define CC_CONFIG_GENERATION     0x15
#define CC_QUEUE_SELECT          0x16
#define CC_QUEUE_SIZE            0x18
#define CC_QUEUE_MSIX_VECTOR     0x1a
#define CC_QUEUE_ENABLE          0x1c
#define CC_QUEUE_NOTIFY_OFF      0x1e
#define CC_QUEUE_DESC            0x20
#define CC_QUEUE_DRIVER          0x28
#define CC_QUEUE_DEVICE          0x30
#define CC_MIN_LEN               0x38

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4

#define S_ACKNOWLEDGE      1
#define S_DRIVER           2
#define S_DRIVER_OK        4
#define S_FEATURES_OK      8
#define S_DEVICE_NEEDS_RESET 64
#define S_FAILED           128

#define NO_VECTOR 0xffff

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

static inline void mfence(void) { __asm__ volatile("mfence" ::: "memory"); }

static uint8_t cc_read8(struct vblk *b, unsigned off) { return mmio_read8(b->common + off); }
static uint16_t cc_read16(struct vblk *b, unsigned off) { return mmio_read16(b->common + off); }
static uint32_t cc_read32(struct vblk *b, unsigned off) { return mmio_read32(b->common + off); }
static void cc_write8(struct vblk *b, unsigned off, uint8_t v) { mmio_write8(b->common + off, v); }
static void cc_write16(struct vblk *b, unsigned off, uint16_t v) { mmio_write16(b->common + off, v); }
static void cc_write32(struct vblk *b, unsigned off, uint32_t v) { mmio_write32(b->common + off, v); }
/* 64-bit fields as two 32-bit writes, low half first (4.1.3.1 allows it). */
static void cc_write64(struct vblk *b, unsigned off, uint64_t v)
{
	cc_write32(b, off, (uint32_t)v);
	cc_write32(b, off + 4, (uint32_t)(v >> 32));
}

static uint32_t cfg_read32(struct vblk *b, unsigned off)
{
	return off + 4 <= b->devcfg_len ? mmio_read32(b->devcfg + off) : 0;
}

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

static uint64_t parse_bits(const char *s)
{
	uint64_t m = 0, v = 0;
	bool any = false;
	for (;; s++) {
		if (*s >= '0' && *s <= '9') {
			v = v * 10 + (uint64_t)(*s - '0');
			any = true;
		} else if (*s == ',' || *s == '\0') {
			if (any && v < 64)
				m |= 1ull << v;
			v = 0;
			any = false;
			if (!*s)
				return m;
		} else {
			fail("cmdline: blk_refuse wants bit numbers separated by commas");
		}
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
	if (cmdline_get("blk_refuse", buf, sizeof(buf)))
		o->refuse = parse_bits(buf);
}

/* Walks the vendor capabilities (4.1.4): the first of each type wins. */
static void find_caps(struct vblk *b)
{
	bool have[5] = { false };
	for (uint8_t pos = pci_cap_next(&b->pci, 0), n = 0; pos; pos = pci_cap_next(&b->pci, pos)) {
		CHECK(++n < 48, "virtio-pci: capability list loops");
		if (pci_read8(&b->pci, pos) != PCI_CAP_ID_VNDR)
			continue;
		uint8_t type = pci_read8(&b->pci, (uint16_t)(pos + 3));
		uint8_t bar = pci_read8(&b->pci, (uint16_t)(pos + 4));
		if (type < 1 || type > 4 || have[type] || bar > 5)
			continue;
		uint32_t off = pci_read32(&b->pci, (uint16_t)(pos + 8));
		uint32_t len = pci_read32(&b->pci, (uint16_t)(pos + 12));
		uint64_t barsize;
		uint64_t base = pci_bar_map(&b->pci, bar, &barsize);
		CHECK((uint64_t)off + len <= barsize,
		      "virtio-pci: cap type %u: offset %x + length %x beyond BAR%u (size %lx)",
		      type, off, len, bar, barsize);
		have[type] = true;
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			CHECK(len >= CC_MIN_LEN, "virtio-pci: common cfg length %u < %u", len, CC_MIN_LEN);
			b->common = base + off;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			CHECK(pci_read8(&b->pci, (uint16_t)(pos + 2)) >= 20,
			      "virtio-pci: notify cap shorter than 20 bytes");
			b->notify = base + off;  /* + queue_notify_off * multiplier later */
			b->notify_mult = pci_read32(&b->pci, (uint16_t)(pos + 16));
			b->notify_len = len;
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			CHECK(len >= 1, "virtio-pci: ISR cap length 0");
			b->isr = base + off;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			b->devcfg = base + off;
			b->devcfg_len = len;
			break;
		}
	}
	CHECK(have[1], "virtio-pci: no common cfg capability");
	CHECK(have[2], "virtio-pci: no notify capability");
	CHECK(have[3], "virtio-pci: no ISR capability");
	CHECK(have[4], "virtio-pci: no device cfg capability");
	CHECK(b->devcfg_len >= 8, "virtio-blk: device cfg length %u < 8", b->devcfg_len);
}

static void set_status(struct vblk *b, uint8_t add)
{
	uint8_t s = cc_read8(b, CC_DEVICE_STATUS);
	cc_write8(b, CC_DEVICE_STATUS, s | add);
}

void vblk_reset(struct vblk *b)
{
	cc_write8(b, CC_DEVICE_STATUS, 0);
	uint64_t t0 = rdtsc();
	while (cc_read8(b, CC_DEVICE_STATUS) != 0) {
		CHECK(rdtsc() - t0 < b->timeout_tsc, "virtio: device_status not 0 after reset");
		cpu_relax();
	}
}

static uint64_t read_features(struct vblk *b)
{
	cc_write32(b, CC_DEVICE_FEATURE_SELECT, 0);
	uint64_t f = cc_read32(b, CC_DEVICE_FEATURE);
	cc_write32(b, CC_DEVICE_FEATURE_SELECT, 1);
	f |= (uint64_t)cc_read32(b, CC_DEVICE_FEATURE) << 32;
	return f;
}

/* Device configuration, consistent across a config_generation change
 * (4.1.4.3.1): 32-bit accesses for 32- and 64-bit fields, 8-bit for 8-bit. */
static void read_config(struct vblk *b)
{
	for (unsigned tries = 0;; tries++) {
		CHECK(tries < 100, "virtio: config_generation never settles");
		uint8_t gen = cc_read8(b, CC_CONFIG_GENERATION);
		b->capacity = cfg_read32(b, BC_CAPACITY) | (uint64_t)cfg_read32(b, BC_CAPACITY + 4) << 32;
		if (vblk_has(b, VIRTIO_BLK_F_SIZE_MAX))
			b->size_max = cfg_read32(b, BC_SIZE_MAX);
		if (vblk_has(b, VIRTIO_BLK_F_SEG_MAX))
			b->seg_max = cfg_read32(b, BC_SEG_MAX);
		if (vblk_has(b, VIRTIO_BLK_F_BLK_SIZE))
			b->blk_size = cfg_read32(b, BC_BLK_SIZE);
		if (vblk_has(b, VIRTIO_BLK_F_MQ) && BC_NUM_QUEUES + 2 <= b->devcfg_len)
			b->num_queues = mmio_read16(b->devcfg + BC_NUM_QUEUES);
		if (vblk_has(b, VIRTIO_BLK_F_DISCARD)) {
			b->max_discard_sectors = cfg_read32(b, BC_MAX_DISCARD_SECTORS);
			b->max_discard_seg = cfg_read32(b, BC_MAX_DISCARD_SEG);
			b->discard_align = cfg_read32(b, BC_DISCARD_ALIGN);
		}
		if (vblk_has(b, VIRTIO_BLK_F_WRITE_ZEROES)) {
			b->max_wz_sectors = cfg_read32(b, BC_MAX_WZ_SECTORS);
			b->max_wz_seg = cfg_read32(b, BC_MAX_WZ_SEG);
			if (BC_WZ_MAY_UNMAP < b->devcfg_len)
				b->wz_may_unmap = mmio_read8(b->devcfg + BC_WZ_MAY_UNMAP);
		}
		if (cc_read8(b, CC_CONFIG_GENERATION) == gen)
			return;
	}
}

/* Queue qi (4.1.5.1.3): size, rings, MSI-X vector, notify address, enable. */
static void setup_queue(struct vblk *b, uint16_t qi, uint16_t want)
{
	struct vblk_queue *vq = &b->q[qi];
	vq->index = qi;
	cc_write16(b, CC_QUEUE_SELECT, qi);
	uint16_t max = cc_read16(b, CC_QUEUE_SIZE);
	CHECK(max, "virtio: queue %u does not exist (queue_size 0)", qi);
	CHECK(cc_read16(b, CC_QUEUE_ENABLE) == 0, "virtio: queue %u enabled after reset", qi);
	uint16_t q = want ? want : 256;
	if (q > max)
		q = max;
	if (q > VBLK_MAX_QSIZE)
		q = VBLK_MAX_QSIZE;
	CHECK(q >= 4 && (q & (q - 1)) == 0, "virtio: queue %u: size %u is not a power of two >= 4", qi, q);
	vq->qsize = q;
	cc_write16(b, CC_QUEUE_SIZE, q);
	CHECK(cc_read16(b, CC_QUEUE_SIZE) == q, "virtio: queue %u: queue_size does not read back %u", qi, q);

	/* Split ring (2.7): descriptors (16-byte aligned), driver area (2),
	 * device area (4); one zeroed, page-aligned block. */
	uint64_t desc_sz = 16ull * q, avail_sz = 6 + 2ull * q, used_sz = 6 + 8ull * q;
	uint64_t used_off = (desc_sz + avail_sz + 4095) & ~4095ull;
	uint8_t *ring = mem_alloc(used_off + used_sz, 4096);
	vq->desc = (struct vring_desc *)ring;
	vq->avail = (volatile uint16_t *)(ring + desc_sz);
	vq->used = (volatile uint16_t *)(ring + used_off);
	vq->inflight = mem_alloc(sizeof(*vq->inflight) * q, 8);
	for (uint16_t i = 0; i < q; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->nfree = q;
	/* We poll: ask for no used-buffer notifications (2.7.7). With
	 * EVENT_IDX the flag is ignored and used_event does the job. */
	vq->avail[0] = vblk_has(b, VIRTIO_F_RING_EVENT_IDX) ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
	vq->avail[2 + q] = 0x8000;

	cc_write16(b, CC_QUEUE_MSIX_VECTOR, NO_VECTOR);
	CHECK(cc_read16(b, CC_QUEUE_MSIX_VECTOR) == NO_VECTOR,
	      "virtio: queue %u: queue_msix_vector is not NO_VECTOR", qi);
	cc_write64(b, CC_QUEUE_DESC, (uint64_t)vq->desc);
	cc_write64(b, CC_QUEUE_DRIVER, (uint64_t)vq->avail);
	cc_write64(b, CC_QUEUE_DEVICE, (uint64_t)vq->used);
	uint32_t lo = cc_read32(b, CC_QUEUE_DESC), hi = cc_read32(b, CC_QUEUE_DESC + 4);
	CHECK((lo | (uint64_t)hi << 32) == (uint64_t)vq->desc, "virtio: queue %u: queue_desc reads %x:%x",
	      qi, hi, lo);
	/* Every queue has a notify address of its own (4.1.4.4), though a
	 * device may make them all equal; kvmini and QEMU give one per queue,
	 * so that an ioeventfd per address tells the host which queue to serve. */
	uint16_t noff = cc_read16(b, CC_QUEUE_NOTIFY_OFF);
	uint64_t nbyte = (uint64_t)noff * b->notify_mult;
	CHECK(nbyte + 2 <= b->notify_len,
	      "virtio: queue %u: notify offset %lx (queue_notify_off %u x %u) beyond the notify region (%u bytes)",
	      qi, nbyte, noff, b->notify_mult, b->notify_len);
	vq->notify = b->notify + nbyte;
	cc_write16(b, CC_QUEUE_ENABLE, 1);
	CHECK(cc_read16(b, CC_QUEUE_ENABLE) == 1, "virtio: queue %u: queue_enable does not read 1", qi);
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
	      n, b->offered & (1ull << VIRTIO_BLK_F_MQ) ? "refused by blk_refuse" : "which the device does not offer",
	      b->offered);
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
	CHECK(pci_find(VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEV_BLK, o->index, &b->pci),
	      "virtio-blk: no PCI device %x:%x (index %u) on bus 0",
	      VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEV_BLK, o->index);
	uint32_t cls = pci_read32(&b->pci, 0x08) >> 8;
	uint16_t subsys = pci_read16(&b->pci, 0x2e);
	uint8_t rev = pci_read8(&b->pci, 0x08);
	if (!o->quiet)
		say("virtio-blk: pci %u:%u.%u class %x revision %u subsystem %x",
		    b->pci.bus, b->pci.dev, b->pci.fn, cls, rev, subsys);
	CHECK(rev >= 1, "virtio-blk: modern (non-transitional) device must have revision >= 1, has %u", rev);
	find_caps(b);

	/* MSI-X stays disabled: we poll. */
	for (uint8_t pos = pci_cap_next(&b->pci, 0), n = 0; pos && n < 48; pos = pci_cap_next(&b->pci, pos), n++)
		if (pci_read8(&b->pci, pos) == PCI_CAP_ID_MSIX) {
			uint16_t ctl = pci_read16(&b->pci, (uint16_t)(pos + 2));
			if (ctl & 0x8000)
				pci_write16(&b->pci, (uint16_t)(pos + 2), ctl & 0x7fff);
		}

	/* 3.1.1 Driver requirements: device initialisation. */
	vblk_reset(b);
	set_status(b, S_ACKNOWLEDGE);
	set_status(b, S_DRIVER);
	b->offered = read_features(b);
	CHECK(b->offered & (1ull << VIRTIO_F_VERSION_1),
	      "virtio-blk: device does not offer VIRTIO_F_VERSION_1 (features %lx)", b->offered);
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
	b->features = b->offered & want;
	cc_write32(b, CC_DRIVER_FEATURE_SELECT, 0);
	cc_write32(b, CC_DRIVER_FEATURE, (uint32_t)b->features);
	cc_write32(b, CC_DRIVER_FEATURE_SELECT, 1);
	cc_write32(b, CC_DRIVER_FEATURE, (uint32_t)(b->features >> 32));
	set_status(b, S_FEATURES_OK);
	uint8_t st = cc_read8(b, CC_DEVICE_STATUS);
	CHECK(st & S_FEATURES_OK, "virtio-blk: device refused features %lx (status %x)", b->features, st);

	cc_write16(b, CC_CONFIG_MSIX_VECTOR, NO_VECTOR);
	CHECK(cc_read16(b, CC_CONFIG_MSIX_VECTOR) == NO_VECTOR, "virtio: config_msix_vector is not NO_VECTOR");
	uint16_t cc_queues = cc_read16(b, CC_NUM_QUEUES);
	CHECK(cc_queues >= 1, "virtio-blk: num_queues is 0");
	read_config(b);
	b->nqueues = queues_to_use(b, o, cc_queues);
	for (uint16_t qi = 0; qi < b->nqueues; qi++) {
		setup_queue(b, qi, o->qsize);
		if (!qi || b->q[qi].qsize < b->qsize)
			b->qsize = b->q[qi].qsize;
	}
	(void)mmio_read8(b->isr);  /* read-to-clear; we never look at it again */
	set_status(b, S_DRIVER_OK);
	st = cc_read8(b, CC_DEVICE_STATUS);
	CHECK(st == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK),
	      "virtio-blk: device_status %x after DRIVER_OK", st);
	if (!o->quiet) {
		say("virtio-blk: features offered %lx accepted %lx queues=%u qsize=%u notify=%lx (off mult %u)",
		    b->offered, b->features, cc_queues, b->qsize, b->q[0].notify, b->notify_mult);
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
static struct vblk_queue *queue(struct vblk *b, unsigned qi)
{
	CHECK(qi < b->nqueues, "virtio-blk: queue %u used, only %u set up", qi, b->nqueues);
	return &b->q[qi];
}

static uint16_t desc_get(struct vblk_queue *vq)
{
	uint16_t i = vq->free_head;
	vq->free_head = vq->desc[i].next;
	vq->nfree--;
	return i;
}

bool vblk_submit_q(struct vblk *b, unsigned qi, struct vblk_req *r)
{
	struct vblk_queue *vq = queue(b, qi);
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

	uint16_t head = desc_get(vq), i = head;
	vq->desc[i].addr = (uint64_t)&r->hdr;
	vq->desc[i].len = sizeof(r->hdr);
	vq->desc[i].flags = VRING_DESC_F_NEXT;
	vq->desc[i].next = vq->free_head;
	for (uint32_t k = 0, off = 0; k < ndata; k++) {
		i = desc_get(vq);
		uint32_t l = seg && r->len - off > seg ? seg : r->len - off;
		vq->desc[i].addr = (uint64_t)r->buf + off;
		vq->desc[i].len = l;
		vq->desc[i].flags = VRING_DESC_F_NEXT | (r->dev_writes ? VRING_DESC_F_WRITE : 0);
		vq->desc[i].next = vq->free_head;
		off += l;
	}
	i = desc_get(vq);
	vq->desc[i].addr = (uint64_t)&r->status;
	vq->desc[i].len = 1;
	vq->desc[i].flags = VRING_DESC_F_WRITE;
	vq->desc[i].next = 0;

	vq->inflight[head] = r;
	vq->avail[2 + vq->avail_next % vq->qsize] = head;
	vq->avail_next++;
	vq->submitted++;
	b->submitted++;
	return true;
}

void vblk_kick_q(struct vblk *b, unsigned qi)
{
	struct vblk_queue *vq = queue(b, qi);
	uint16_t new = vq->avail_next, old = vq->avail_kicked;
	if (new == old)
		return;
	barrier();                  /* descriptors and ring entries before idx (x86: stores in order) */
	vq->avail[1] = new;
	mfence();                   /* idx store before the suppression load (2.7.13) */
	bool need;
	if (b->kick_always)
		need = true;
	else if (vblk_has(b, VIRTIO_F_RING_EVENT_IDX)) {
		uint16_t ev = vq->used[2 + 4 * vq->qsize];  /* avail_event */
		need = (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
	} else {
		need = !(vq->used[0] & VRING_USED_F_NO_NOTIFY);
	}
	vq->avail_kicked = new;
	if (need) {
		mmio_write16(vq->notify, vq->index);  /* the queue's index (4.1.5.2) */
		vq->kicks++;
		b->kicks++;
	} else {
		vq->kicks_skipped++;
		b->kicks_skipped++;
	}
}

struct vblk_req *vblk_poll_q(struct vblk *b, unsigned qi)
{
	struct vblk_queue *vq = queue(b, qi);
	if (vq->used[1] == vq->used_last)
		return NULL;
	barrier();                  /* idx before the element (x86: loads in order) */
	volatile uint32_t *e = (volatile uint32_t *)(vq->used + 2) + 2 * (vq->used_last % vq->qsize);
	uint32_t id = e[0], len = e[1];
	vq->used_last++;
	if (vblk_has(b, VIRTIO_F_RING_EVENT_IDX))
		vq->avail[2 + vq->qsize] = (uint16_t)(vq->used_last + 0x8000);  /* used_event: far away */
	CHECK(id < vq->qsize && vq->inflight[id], "virtio-blk: queue %u: used ring returned bogus id %u", qi, id);
	struct vblk_req *r = vq->inflight[id];
	vq->inflight[id] = NULL;
	/* Give the chain back to the free list. */
	uint16_t i = (uint16_t)id, n = 1;
	while (vq->desc[i].flags & VRING_DESC_F_NEXT) {
		i = vq->desc[i].next;
		n++;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = (uint16_t)id;
	vq->nfree += n;
	r->used_len = len;
	r->done = true;
	vq->completed++;
	b->completed++;
	return r;
}

bool vblk_submit(struct vblk *b, struct vblk_req *r) { return vblk_submit_q(b, 0, r); }
void vblk_kick(struct vblk *b) { vblk_kick_q(b, 0); }
struct vblk_req *vblk_poll(struct vblk *b) { return vblk_poll_q(b, 0); }

void vblk_wait(struct vblk *b, struct vblk_req *r)
{
	struct vblk_queue *vq = queue(b, r->queue);
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
