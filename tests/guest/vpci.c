/* Modern virtio-pci transport and split virtqueues (see vpci.h). Follows
 * virtio 1.x: 4.1.4 (PCI capabilities), 3.1.1 (device initialisation),
 * 4.1.5.1.3 (virtqueue configuration) and 2.7 (split virtqueues). Runs in
 * ring 3; every register access is one VM exit except the notify write,
 * which a VMM may catch with an ioeventfd. */
#include "vpci.h"

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

static inline void mfence(void) { __asm__ volatile("mfence" ::: "memory"); }

static uint8_t cc_read8(struct vpci *v, unsigned off) { return mmio_read8(v->common + off); }
static uint16_t cc_read16(struct vpci *v, unsigned off) { return mmio_read16(v->common + off); }
static uint32_t cc_read32(struct vpci *v, unsigned off) { return mmio_read32(v->common + off); }
static void cc_write8(struct vpci *v, unsigned off, uint8_t x) { mmio_write8(v->common + off, x); }
static void cc_write16(struct vpci *v, unsigned off, uint16_t x) { mmio_write16(v->common + off, x); }
static void cc_write32(struct vpci *v, unsigned off, uint32_t x) { mmio_write32(v->common + off, x); }
/* 64-bit fields as two 32-bit writes, low half first (4.1.3.1 allows it). */
static void cc_write64(struct vpci *v, unsigned off, uint64_t x)
{
	cc_write32(v, off, (uint32_t)x);
	cc_write32(v, off + 4, (uint32_t)(x >> 32));
}

uint8_t vpci_cfg_read8(struct vpci *v, unsigned off)
{
	return off + 1 <= v->devcfg_len ? mmio_read8(v->devcfg + off) : 0;
}

uint16_t vpci_cfg_read16(struct vpci *v, unsigned off)
{
	return off + 2 <= v->devcfg_len ? mmio_read16(v->devcfg + off) : 0;
}

uint32_t vpci_cfg_read32(struct vpci *v, unsigned off)
{
	return off + 4 <= v->devcfg_len ? mmio_read32(v->devcfg + off) : 0;
}

uint8_t vpci_cfg_generation(struct vpci *v) { return cc_read8(v, CC_CONFIG_GENERATION); }

/* Walks the vendor capabilities (4.1.4): the first of each type wins. */
static void find_caps(struct vpci *v, uint32_t min_devcfg)
{
	bool have[5] = { false };
	for (uint8_t pos = pci_cap_next(&v->pci, 0), n = 0; pos; pos = pci_cap_next(&v->pci, pos)) {
		CHECK(++n < 48, "virtio-pci: capability list loops");
		if (pci_read8(&v->pci, pos) != PCI_CAP_ID_VNDR)
			continue;
		uint8_t type = pci_read8(&v->pci, (uint16_t)(pos + 3));
		uint8_t bar = pci_read8(&v->pci, (uint16_t)(pos + 4));
		if (type < 1 || type > 4 || have[type] || bar > 5)
			continue;
		uint32_t off = pci_read32(&v->pci, (uint16_t)(pos + 8));
		uint32_t len = pci_read32(&v->pci, (uint16_t)(pos + 12));
		uint64_t barsize;
		uint64_t base = pci_bar_map(&v->pci, bar, &barsize);
		CHECK((uint64_t)off + len <= barsize,
		      "virtio-pci: cap type %u: offset %x + length %x beyond BAR%u (size %lx)",
		      type, off, len, bar, barsize);
		have[type] = true;
		switch (type) {
		case VIRTIO_PCI_CAP_COMMON_CFG:
			CHECK(len >= CC_MIN_LEN, "virtio-pci: common cfg length %u < %u", len, CC_MIN_LEN);
			v->common = base + off;
			break;
		case VIRTIO_PCI_CAP_NOTIFY_CFG:
			CHECK(pci_read8(&v->pci, (uint16_t)(pos + 2)) >= 20,
			      "virtio-pci: notify cap shorter than 20 bytes");
			v->notify = base + off;  /* + queue_notify_off * multiplier later */
			v->notify_mult = pci_read32(&v->pci, (uint16_t)(pos + 16));
			v->notify_len = len;
			break;
		case VIRTIO_PCI_CAP_ISR_CFG:
			CHECK(len >= 1, "virtio-pci: ISR cap length 0");
			v->isr = base + off;
			break;
		case VIRTIO_PCI_CAP_DEVICE_CFG:
			v->devcfg = base + off;
			v->devcfg_len = len;
			break;
		}
	}
	CHECK(have[1], "virtio-pci: no common cfg capability");
	CHECK(have[2], "virtio-pci: no notify capability");
	CHECK(have[3], "virtio-pci: no ISR capability");
	CHECK(have[4], "virtio-pci: no device cfg capability");
	CHECK(v->devcfg_len >= min_devcfg, "%s: device cfg length %u < %u", v->name, v->devcfg_len, min_devcfg);
}

void vpci_open(struct vpci *v, uint16_t device, unsigned index, uint32_t min_devcfg, bool quiet)
{
	CHECK(pci_find(VIRTIO_PCI_VENDOR, device, index, &v->pci),
	      "%s: no PCI device %x:%x (index %u) on bus 0", v->name, VIRTIO_PCI_VENDOR, device, index);
	uint32_t cls = pci_read32(&v->pci, 0x08) >> 8;
	uint16_t subsys = pci_read16(&v->pci, 0x2e);
	uint8_t rev = pci_read8(&v->pci, 0x08);
	if (!quiet)
		say("%s: pci %u:%u.%u class %x revision %u subsystem %x",
		    v->name, v->pci.bus, v->pci.dev, v->pci.fn, cls, rev, subsys);
	CHECK(rev >= 1, "%s: modern (non-transitional) device must have revision >= 1, has %u", v->name, rev);
	find_caps(v, min_devcfg);

	/* MSI-X stays disabled: we poll. */
	for (uint8_t pos = pci_cap_next(&v->pci, 0), n = 0; pos && n < 48; pos = pci_cap_next(&v->pci, pos), n++)
		if (pci_read8(&v->pci, pos) == PCI_CAP_ID_MSIX) {
			uint16_t ctl = pci_read16(&v->pci, (uint16_t)(pos + 2));
			if (ctl & 0x8000)
				pci_write16(&v->pci, (uint16_t)(pos + 2), ctl & 0x7fff);
		}
}

void vpci_set_status(struct vpci *v, uint8_t add)
{
	uint8_t s = cc_read8(v, CC_DEVICE_STATUS);
	cc_write8(v, CC_DEVICE_STATUS, s | add);
}

uint8_t vpci_status(struct vpci *v) { return cc_read8(v, CC_DEVICE_STATUS); }

void vpci_reset(struct vpci *v)
{
	cc_write8(v, CC_DEVICE_STATUS, 0);
	uint64_t t0 = rdtsc();
	while (cc_read8(v, CC_DEVICE_STATUS) != 0) {
		CHECK(rdtsc() - t0 < v->timeout_tsc, "virtio: device_status not 0 after reset");
		cpu_relax();
	}
}

uint64_t vpci_begin(struct vpci *v)
{
	vpci_reset(v);
	vpci_set_status(v, S_ACKNOWLEDGE);
	vpci_set_status(v, S_DRIVER);
	cc_write32(v, CC_DEVICE_FEATURE_SELECT, 0);
	uint64_t f = cc_read32(v, CC_DEVICE_FEATURE);
	cc_write32(v, CC_DEVICE_FEATURE_SELECT, 1);
	f |= (uint64_t)cc_read32(v, CC_DEVICE_FEATURE) << 32;
	v->offered = f;
	CHECK(f & (1ull << VIRTIO_F_VERSION_1),
	      "%s: device does not offer VIRTIO_F_VERSION_1 (features %lx)", v->name, f);
	return f;
}

void vpci_accept(struct vpci *v, uint64_t features)
{
	v->features = features;
	cc_write32(v, CC_DRIVER_FEATURE_SELECT, 0);
	cc_write32(v, CC_DRIVER_FEATURE, (uint32_t)features);
	cc_write32(v, CC_DRIVER_FEATURE_SELECT, 1);
	cc_write32(v, CC_DRIVER_FEATURE, (uint32_t)(features >> 32));
	vpci_set_status(v, S_FEATURES_OK);
	uint8_t st = cc_read8(v, CC_DEVICE_STATUS);
	CHECK(st & S_FEATURES_OK, "%s: device refused features %lx (status %x)", v->name, features, st);

	cc_write16(v, CC_CONFIG_MSIX_VECTOR, NO_VECTOR);
	CHECK(cc_read16(v, CC_CONFIG_MSIX_VECTOR) == NO_VECTOR, "virtio: config_msix_vector is not NO_VECTOR");
	v->num_queues = cc_read16(v, CC_NUM_QUEUES);
	CHECK(v->num_queues >= 1, "%s: num_queues is 0", v->name);
}

void vpci_vq_setup(struct vpci *v, struct vq *vq, uint16_t qi, uint16_t want)
{
	memset(vq, 0, sizeof(*vq));
	vq->name = v->name;
	vq->index = qi;
	vq->event_idx = vpci_has(v, VIRTIO_F_RING_EVENT_IDX);
	cc_write16(v, CC_QUEUE_SELECT, qi);
	uint16_t max = cc_read16(v, CC_QUEUE_SIZE);
	CHECK(max, "virtio: queue %u does not exist (queue_size 0)", qi);
	CHECK(cc_read16(v, CC_QUEUE_ENABLE) == 0, "virtio: queue %u enabled after reset", qi);
	uint16_t q = want ? want : 256;
	if (q > max)
		q = max;
	if (q > VQ_MAX_QSIZE)
		q = VQ_MAX_QSIZE;
	CHECK(q >= 4 && (q & (q - 1)) == 0, "virtio: queue %u: size %u is not a power of two >= 4", qi, q);
	vq->qsize = q;
	cc_write16(v, CC_QUEUE_SIZE, q);
	CHECK(cc_read16(v, CC_QUEUE_SIZE) == q, "virtio: queue %u: queue_size does not read back %u", qi, q);

	/* Split ring (2.7): descriptors (16-byte aligned), driver area (2),
	 * device area (4); one zeroed, page-aligned block. */
	uint64_t desc_sz = 16ull * q, avail_sz = 6 + 2ull * q, used_sz = 6 + 8ull * q;
	uint64_t used_off = (desc_sz + avail_sz + 4095) & ~4095ull;
	uint8_t *ring = mem_alloc(used_off + used_sz, 4096);
	vq->desc = (struct vring_desc *)ring;
	vq->avail = (volatile uint16_t *)(ring + desc_sz);
	vq->used = (volatile uint16_t *)(ring + used_off);
	vq->token = mem_alloc(sizeof(*vq->token) * q, 8);
	for (uint16_t i = 0; i < q; i++)
		vq->desc[i].next = (uint16_t)(i + 1);
	vq->free_head = 0;
	vq->nfree = q;
	/* We poll: ask for no used-buffer notifications (2.7.7). With
	 * EVENT_IDX the flag is ignored and used_event does the job. */
	vq->avail[0] = vq->event_idx ? 0 : VRING_AVAIL_F_NO_INTERRUPT;
	vq->avail[2 + q] = 0x8000;

	cc_write16(v, CC_QUEUE_MSIX_VECTOR, NO_VECTOR);
	CHECK(cc_read16(v, CC_QUEUE_MSIX_VECTOR) == NO_VECTOR,
	      "virtio: queue %u: queue_msix_vector is not NO_VECTOR", qi);
	cc_write64(v, CC_QUEUE_DESC, (uint64_t)vq->desc);
	cc_write64(v, CC_QUEUE_DRIVER, (uint64_t)vq->avail);
	cc_write64(v, CC_QUEUE_DEVICE, (uint64_t)vq->used);
	uint32_t lo = cc_read32(v, CC_QUEUE_DESC), hi = cc_read32(v, CC_QUEUE_DESC + 4);
	CHECK((lo | (uint64_t)hi << 32) == (uint64_t)vq->desc, "virtio: queue %u: queue_desc reads %x:%x",
	      qi, hi, lo);
	/* Every queue has a notify address of its own (4.1.4.4), though a
	 * device may make them all equal; kvmini and QEMU give one per queue,
	 * so that an ioeventfd per address tells the host which queue to serve. */
	uint16_t noff = cc_read16(v, CC_QUEUE_NOTIFY_OFF);
	uint64_t nbyte = (uint64_t)noff * v->notify_mult;
	CHECK(nbyte + 2 <= v->notify_len,
	      "virtio: queue %u: notify offset %lx (queue_notify_off %u x %u) beyond the notify region (%u bytes)",
	      qi, nbyte, noff, v->notify_mult, v->notify_len);
	vq->notify = v->notify + nbyte;
	cc_write16(v, CC_QUEUE_ENABLE, 1);
	CHECK(cc_read16(v, CC_QUEUE_ENABLE) == 1, "virtio: queue %u: queue_enable does not read 1", qi);
}

void vpci_driver_ok(struct vpci *v)
{
	(void)mmio_read8(v->isr);  /* read-to-clear; we never look at it again */
	vpci_set_status(v, S_DRIVER_OK);
	uint8_t st = cc_read8(v, CC_DEVICE_STATUS);
	CHECK(st == (S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK),
	      "%s: device_status %x after DRIVER_OK", v->name, st);
}

uint64_t vpci_cmdline_bits(const char *key)
{
	char buf[64];
	if (!cmdline_get(key, buf, sizeof(buf)))
		return 0;
	uint64_t m = 0, x = 0;
	bool any = false;
	for (const char *s = buf;; s++) {
		if (*s >= '0' && *s <= '9') {
			x = x * 10 + (uint64_t)(*s - '0');
			any = true;
		} else if (*s == ',' || *s == '\0') {
			if (any && x < 64)
				m |= 1ull << x;
			x = 0;
			any = false;
			if (!*s)
				return m;
		} else {
			fail("cmdline: %s wants bit numbers separated by commas", key);
		}
	}
}

uint16_t vq_desc_get(struct vq *vq)
{
	uint16_t i = vq->free_head;
	vq->free_head = vq->desc[i].next;
	vq->nfree--;
	return i;
}

void vq_publish(struct vq *vq, uint16_t head, void *token)
{
	vq->token[head] = token;
	vq->avail[2 + vq->avail_next % vq->qsize] = head;
	vq->avail_next++;
	vq->submitted++;
}

void vq_kick(struct vq *vq)
{
	uint16_t new = vq->avail_next, old = vq->avail_kicked;
	if (new == old)
		return;
	barrier();                  /* descriptors and ring entries before idx (x86: stores in order) */
	vq->avail[1] = new;
	mfence();                   /* idx store before the suppression load (2.7.13) */
	bool need;
	if (vq->kick_always)
		need = true;
	else if (vq->event_idx) {
		uint16_t ev = vq->used[2 + 4 * vq->qsize];  /* avail_event */
		need = (uint16_t)(new - ev - 1) < (uint16_t)(new - old);
	} else {
		need = !(vq->used[0] & VRING_USED_F_NO_NOTIFY);
	}
	vq->avail_kicked = new;
	if (need) {
		mmio_write16(vq->notify, vq->index);  /* the queue's index (4.1.5.2) */
		vq->kicks++;
	} else {
		vq->kicks_skipped++;
	}
}

void *vq_poll(struct vq *vq, uint32_t *len)
{
	if (vq->used[1] == vq->used_last)
		return NULL;
	barrier();                  /* idx before the element (x86: loads in order) */
	volatile uint32_t *e = (volatile uint32_t *)(vq->used + 2) + 2 * (vq->used_last % vq->qsize);
	uint32_t id = e[0], l = e[1];
	vq->used_last++;
	if (vq->event_idx)
		vq->avail[2 + vq->qsize] = (uint16_t)(vq->used_last + 0x8000);  /* used_event: far away */
	CHECK(id < vq->qsize && vq->token[id], "%s: queue %u: used ring returned bogus id %u", vq->name, vq->index, id);
	void *t = vq->token[id];
	vq->token[id] = NULL;
	/* Give the chain back to the free list. */
	uint16_t i = (uint16_t)id, n = 1;
	while (vq->desc[i].flags & VRING_DESC_F_NEXT) {
		i = vq->desc[i].next;
		n++;
	}
	vq->desc[i].next = vq->free_head;
	vq->free_head = (uint16_t)id;
	vq->nfree += n;
	vq->completed++;
	if (len)
		*len = l;
	return t;
}
