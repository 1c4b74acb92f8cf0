/* The virtio 1.x modern PCI transport (virtio spec 4.1). One 64-bit memory
 * BAR holds, at fixed offsets, the common configuration, the ISR byte, the
 * device-specific configuration, the notification area (one 4-byte slot per
 * queue, each bound to an ioeventfd so a kick never leaves the kernel) and
 * the MSI-X table and PBA. Vendor capabilities in config space point the
 * driver at each region. */
#include "virtio/virtio.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/le.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define BAR_COMMON   0x0000
#define BAR_ISR      0x1000
#define BAR_DEVICE   0x2000
#define BAR_NOTIFY   0x3000
#define BAR_MSIX_TBL 0x4000
#define BAR_MSIX_PBA 0x6000
#define BAR_SIZE     0x8000
#define NOTIFY_MULT  4
#define REGION_SIZE  0x1000

#define VIRTIO_PCI_VENDOR   0x1af4
#define VIRTIO_PCI_DEV_BASE 0x1040

#define ISR_QUEUE    0x1   /* no UAPI name; VIRTIO_PCI_ISR_CONFIG is bit 1 */

/* Status bits a driver may set; NEEDS_RESET belongs to the device. */
#define DRIVER_STATUS_BITS (VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | \
			    VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK | \
			    VIRTIO_CONFIG_S_FAILED)

/* The common configuration (4.1.4.3): struct virtio_pci_common_cfg, whose
 * field offsets the header also gives as VIRTIO_PCI_COMMON_*. */
#define CC_SIZE sizeof(struct virtio_pci_common_cfg)
_Static_assert(sizeof(struct virtio_pci_common_cfg) == 0x38, "virtio_pci_common_cfg");
_Static_assert(offsetof(struct virtio_pci_common_cfg, queue_msix_vector) ==
	       VIRTIO_PCI_COMMON_Q_MSIX, "VIRTIO_PCI_COMMON_Q_MSIX");
_Static_assert(offsetof(struct virtio_pci_common_cfg, queue_used_hi) ==
	       VIRTIO_PCI_COMMON_Q_USEDHI, "VIRTIO_PCI_COMMON_Q_USEDHI");
_Static_assert(sizeof(struct virtio_pci_cap) == 16, "virtio_pci_cap");
_Static_assert(sizeof(struct virtio_pci_notify_cap) == 20, "virtio_pci_notify_cap");

/* Device threads only look at driver_features after FEATURES_OK, when it
 * no longer changes; see virtio.h. */
bool virtio_has_feature(const struct virtio_dev *vd, unsigned bit)
{
	return (vd->driver_features >> bit) & 1;
}

static unsigned msix_vectors(const struct virtio_dev *vd) { return vd->num_queues + 1; }

static uint16_t vector_load(_Atomic uint16_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

static void vector_store(_Atomic uint16_t *v, uint16_t val)
{
	atomic_store_explicit(v, val, memory_order_relaxed);
}

static uint8_t status_load(struct virtio_dev *vd)
{
	return atomic_load_explicit(&vd->status, memory_order_relaxed);
}

/* The hot path: an I/O thread signals the guest. pci_msix_enabled() is one
 * acquire load and the eventfd write goes straight to KVM's irqfd, so no
 * lock is taken. A vector masked by the guest (or the whole function) takes
 * the write all the same: it stays in the eventfd, pending, until the
 * unmask (docs/pci.md, "Masking"). Only INTx (no MSI-X) takes the PCI bus
 * lock, to drive the pin. */
static void raise_interrupt(struct virtio_dev *vd, unsigned isr_bit, uint16_t vector)
{
	atomic_fetch_add_explicit(&vd->interrupts, 1, memory_order_relaxed);
	if (pci_msix_enabled(&vd->pci)) {
		int efd = vector == VIRTIO_MSI_NO_VECTOR ? -1 : pci_msix_eventfd(&vd->pci, vector);
		uint64_t one = 1;
		if (efd >= 0 && write(efd, &one, sizeof(one)) < 0) {
			/* An eventfd counter cannot overflow in practice. */
		}
		return;
	}
	atomic_fetch_or(&vd->isr, isr_bit);
	pci_intx_set(&vd->pci, 1);
}

void virtio_notify_queue(struct virtio_dev *vd, unsigned q)
{
	raise_interrupt(vd, ISR_QUEUE, vector_load(&vd->queues[q].msix_vector));
}

/* Lock-free: an I/O thread calls this, and a reset holding the lock waits
 * for that thread to finish. */
void virtio_set_needs_reset(struct virtio_dev *vd)
{
	if (!atomic_exchange(&vd->needs_reset, true))
		raise_interrupt(vd, VIRTIO_PCI_ISR_CONFIG, vector_load(&vd->config_msix_vector));
}

void virtio_config_lock(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->config_lock);
}

void virtio_config_unlock(struct virtio_dev *vd)
{
	pthread_mutex_unlock(&vd->config_lock);
}

/* config_lock held. No interrupt before DRIVER_OK, nor after a reset
 * (which sets status 0 under config_lock too): the driver may have no
 * handler yet, and an INTx line raised for nobody stays up until Linux
 * disables the shared IRQ. QEMU does the same. */
void virtio_config_changed(struct virtio_dev *vd)
{
	atomic_fetch_add_explicit(&vd->config_generation, 1, memory_order_relaxed);
	if (status_load(vd) & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_interrupt(vd, VIRTIO_PCI_ISR_CONFIG, vector_load(&vd->config_msix_vector));
}

/* Called with the lock held. Returns the device to its initial state. */
static void device_reset(struct virtio_dev *vd)
{
	if (vd->started) {
		vd->ops->stop(vd);
		vd->started = false;
	}
	vd->paused = false;
	vd->driver_features = 0;
	vd->device_feature_select = vd->driver_feature_select = 0;
	vd->queue_select = 0;
	for (unsigned i = 0; i < vd->num_queues; i++) {
		struct virtio_queue *q = &vd->queues[i];
		q->size = q->max_size;
		vector_store(&q->msix_vector, VIRTIO_MSI_NO_VECTOR);
		q->enabled = false;
		q->desc = q->driver = q->device = 0;
		virtq_reset(&q->vq);
	}
	/* Under config_lock, so that a configuration change racing with the
	 * reset either comes first (and its ISR bit and INTx level are cleared
	 * here) or sees status 0 and raises nothing. */
	pthread_mutex_lock(&vd->config_lock);
	atomic_store_explicit(&vd->status, 0, memory_order_relaxed);
	vector_store(&vd->config_msix_vector, VIRTIO_MSI_NO_VECTOR);
	atomic_store(&vd->isr, 0);
	pci_intx_set(&vd->pci, 0);
	pthread_mutex_unlock(&vd->config_lock);
	atomic_store(&vd->needs_reset, false);
}

/* The driver may only add status bits, or write 0 to reset (spec 2.1.2: it
 * MUST NOT clear a bit). A write that clears bits is a driver bug; kvmini
 * ignores the clearing and keeps the old bits rather than go to
 * NEEDS_RESET, because the spec asks nothing of the device there and a
 * running device keeps its invariants: once started it stays started until
 * a reset, and FEATURES_OK (so the features device threads read without a
 * lock) cannot go away under it. */
static void set_status(struct virtio_dev *vd, uint8_t status)
{
	if (status == 0) {
		device_reset(vd);
		return;
	}
	uint8_t old = status_load(vd);
	uint8_t add = (uint8_t)(status & DRIVER_STATUS_BITS & ~old);
	if (add & VIRTIO_CONFIG_S_FEATURES_OK) {
		/* Accept the features only if they are a subset of ours and
		 * include VERSION_1 (we are a modern-only device). Otherwise the
		 * bit does not stick, which is how the driver learns (3.1.1). */
		uint64_t f = vd->driver_features;
		if ((f & ~vd->device_features) || !((f >> VIRTIO_F_VERSION_1) & 1))
			add &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	uint8_t now = old | add;
	atomic_store_explicit(&vd->status, now, memory_order_relaxed);
	if (!(add & VIRTIO_CONFIG_S_DRIVER_OK) || vd->started)
		return;
	if (!(now & VIRTIO_CONFIG_S_FEATURES_OK)) {
		/* DRIVER_OK before the features were accepted (3.1.1 step 8
		 * after step 5): nothing can run until the driver resets. */
		log_warn("%s: DRIVER_OK without FEATURES_OK; device needs reset", vd->ops->name);
		atomic_store(&vd->needs_reset, true);
		return;
	}
	if (vd->ops->start(vd) == 0)
		vd->started = true;
	else
		atomic_store(&vd->needs_reset, true);
}

static void enable_queue(struct virtio_dev *vd, struct virtio_queue *q)
{
	if (q->enabled)
		return;
	if (virtq_enable(&q->vq, vd->vm, q->size, q->desc, q->driver, q->device,
			 virtio_has_feature(vd, VIRTIO_RING_F_EVENT_IDX),
			 virtio_has_feature(vd, VIRTIO_RING_F_INDIRECT_DESC)) == 0) {
		q->enabled = true;
		return;
	}
	log_warn("%s: queue %u: rings outside guest RAM or misaligned; device needs reset",
		 vd->ops->name, (unsigned)(q - vd->queues));
	atomic_fetch_add_explicit(&vd->malformed, 1, memory_order_relaxed);
	atomic_store(&vd->needs_reset, true);
}

/* The common configuration as the driver reads it right now. */
static void common_snapshot(struct virtio_dev *vd, uint8_t *c)
{
	memset(c, 0, CC_SIZE);
	wr32(c + VIRTIO_PCI_COMMON_DFSELECT, vd->device_feature_select);
	if (vd->device_feature_select < 2)
		wr32(c + VIRTIO_PCI_COMMON_DF,
		     (uint32_t)(vd->device_features >> (32 * vd->device_feature_select)));
	wr32(c + VIRTIO_PCI_COMMON_GFSELECT, vd->driver_feature_select);
	if (vd->driver_feature_select < 2)
		wr32(c + VIRTIO_PCI_COMMON_GF,
		     (uint32_t)(vd->driver_features >> (32 * vd->driver_feature_select)));
	wr16(c + VIRTIO_PCI_COMMON_MSIX, vector_load(&vd->config_msix_vector));
	wr16(c + VIRTIO_PCI_COMMON_NUMQ, (uint16_t)vd->num_queues);
	c[VIRTIO_PCI_COMMON_STATUS] = status_load(vd) | (atomic_load(&vd->needs_reset) ?
							 VIRTIO_CONFIG_S_NEEDS_RESET : 0);
	c[VIRTIO_PCI_COMMON_CFGGENERATION] =
		atomic_load_explicit(&vd->config_generation, memory_order_relaxed);
	wr16(c + VIRTIO_PCI_COMMON_Q_SELECT, vd->queue_select);
	if (vd->queue_select < vd->num_queues) {
		struct virtio_queue *q = &vd->queues[vd->queue_select];
		wr16(c + VIRTIO_PCI_COMMON_Q_SIZE, q->size);
		wr16(c + VIRTIO_PCI_COMMON_Q_MSIX, vector_load(&q->msix_vector));
		wr16(c + VIRTIO_PCI_COMMON_Q_ENABLE, q->enabled);
		wr16(c + VIRTIO_PCI_COMMON_Q_NOFF, vd->queue_select);
		wr64(c + VIRTIO_PCI_COMMON_Q_DESCLO, q->desc);
		wr64(c + VIRTIO_PCI_COMMON_Q_AVAILLO, q->driver);
		wr64(c + VIRTIO_PCI_COMMON_Q_USEDLO, q->device);
	}
}

static bool touches(uint32_t off, uint32_t len, uint32_t field, uint32_t size)
{
	return off < field + size && field < off + len;
}

/* A vector number the driver wrote: one of the table, or NO_VECTOR (which
 * is also what an out-of-range number reads back as). */
static uint16_t checked_vector(const struct virtio_dev *vd, uint16_t v)
{
	return v < msix_vectors(vd) ? v : VIRTIO_MSI_NO_VECTOR;
}

/* Writes of any width land in a snapshot first; then each field they
 * touched is applied, so a 64-bit address written as two 32-bit halves
 * (what Linux does) and a 64-bit write behave the same. */
static void common_write(struct virtio_dev *vd, uint32_t off, const uint8_t *data, uint32_t len)
{
	uint8_t c[CC_SIZE];
	common_snapshot(vd, c);
	memcpy(c + off, data, len);
	bool before_features_ok = !(status_load(vd) & VIRTIO_CONFIG_S_FEATURES_OK);
	struct virtio_queue *q =
		vd->queue_select < vd->num_queues ? &vd->queues[vd->queue_select] : NULL;
	/* Queue fields are frozen once the queue is enabled (4.1.4.3.2). */
	bool q_writable = q && !q->enabled;

	if (touches(off, len, VIRTIO_PCI_COMMON_DFSELECT, 4))
		vd->device_feature_select = rd32(c + VIRTIO_PCI_COMMON_DFSELECT);
	if (touches(off, len, VIRTIO_PCI_COMMON_GFSELECT, 4))
		vd->driver_feature_select = rd32(c + VIRTIO_PCI_COMMON_GFSELECT);
	if (touches(off, len, VIRTIO_PCI_COMMON_GF, 4) && before_features_ok &&
	    vd->driver_feature_select < 2) {
		unsigned shift = 32 * vd->driver_feature_select;
		vd->driver_features = (vd->driver_features & ~(0xffffffffULL << shift)) |
				      ((uint64_t)rd32(c + VIRTIO_PCI_COMMON_GF) << shift);
	}
	if (touches(off, len, VIRTIO_PCI_COMMON_MSIX, 2))
		vector_store(&vd->config_msix_vector,
			     checked_vector(vd, rd16(c + VIRTIO_PCI_COMMON_MSIX)));
	if (touches(off, len, VIRTIO_PCI_COMMON_Q_SELECT, 2))
		vd->queue_select = rd16(c + VIRTIO_PCI_COMMON_Q_SELECT);
	if (q_writable && touches(off, len, VIRTIO_PCI_COMMON_Q_SIZE, 2)) {
		uint16_t s = rd16(c + VIRTIO_PCI_COMMON_Q_SIZE);
		/* Split rings need a power of two; keep what was there otherwise
		 * and let the driver read back the size we will use. */
		if (s && s <= q->max_size && !(s & (s - 1)))
			q->size = s;
	}
	/* Writable even while the queue runs (Linux only changes it before
	 * enabling the queue or after a reset, but nothing forbids it): the
	 * queue's I/O thread reads it without the lock, and one atomic store
	 * of a checked value means an interrupt it raises meanwhile goes to
	 * the old vector or the new one. */
	if (q && touches(off, len, VIRTIO_PCI_COMMON_Q_MSIX, 2))
		vector_store(&q->msix_vector, checked_vector(vd, rd16(c + VIRTIO_PCI_COMMON_Q_MSIX)));
	if (q_writable && touches(off, len, VIRTIO_PCI_COMMON_Q_DESCLO, 8))
		q->desc = rd64(c + VIRTIO_PCI_COMMON_Q_DESCLO);
	if (q_writable && touches(off, len, VIRTIO_PCI_COMMON_Q_AVAILLO, 8))
		q->driver = rd64(c + VIRTIO_PCI_COMMON_Q_AVAILLO);
	if (q_writable && touches(off, len, VIRTIO_PCI_COMMON_Q_USEDLO, 8))
		q->device = rd64(c + VIRTIO_PCI_COMMON_Q_USEDLO);
	if (q && touches(off, len, VIRTIO_PCI_COMMON_Q_ENABLE, 2) &&
	    rd16(c + VIRTIO_PCI_COMMON_Q_ENABLE) == 1)
		enable_queue(vd, q);
	if (touches(off, len, VIRTIO_PCI_COMMON_STATUS, 1))
		set_status(vd, c[VIRTIO_PCI_COMMON_STATUS]);
}

static void bar_io(void *ctx, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_dev *vd = ctx;
	if (pci_msix_bar_access(&vd->pci, 0, off, data, len, is_write))
		return;
	if (!is_write)
		memset(data, 0, len);
	if (len > 8)
		return;

	if (off >= BAR_NOTIFY && off < BAR_NOTIFY + REGION_SIZE) {
		/* A kick the ioeventfd did not match (other width): forward it. */
		unsigned qi = (unsigned)((off - BAR_NOTIFY) / NOTIFY_MULT);
		if (is_write && qi < vd->num_queues) {
			uint64_t one = 1;
			atomic_fetch_add_explicit(&vd->notify_exits, 1, memory_order_relaxed);
			if (write(vd->queues[qi].kick_fd, &one, sizeof(one)) < 0) {
				/* cannot fail short of a counter overflow */
			}
		}
		return;
	}
	if (off >= BAR_ISR && off < BAR_ISR + REGION_SIZE) {
		/* Reading ISR acknowledges the interrupt and lowers INTx. */
		if (!is_write && off == BAR_ISR) {
			data[0] = (uint8_t)atomic_exchange(&vd->isr, 0);
			pci_intx_set(&vd->pci, 0);
		}
		return;
	}
	if (off + len <= BAR_COMMON + CC_SIZE) {
		pthread_mutex_lock(&vd->lock);
		if (is_write) {
			common_write(vd, (uint32_t)off, data, len);
		} else {
			uint8_t c[CC_SIZE];
			common_snapshot(vd, c);
			memcpy(data, c + off, len);
		}
		pthread_mutex_unlock(&vd->lock);
	} else if (off >= BAR_DEVICE && off - BAR_DEVICE + len <= vd->ops->config_size) {
		uint32_t o = (uint32_t)(off - BAR_DEVICE);
		pthread_mutex_lock(&vd->config_lock);
		if (is_write && vd->ops->config_write)
			vd->ops->config_write(vd, o, data, len);
		else if (!is_write)
			vd->ops->config_read(vd, o, data, len);
		pthread_mutex_unlock(&vd->config_lock);
	}
}

static void add_cap(struct virtio_dev *vd, uint8_t type, uint32_t off, uint32_t len)
{
	struct virtio_pci_cap cap = {
		.cap_len = sizeof(cap), .cfg_type = type, .bar = 0,
		.offset = htole32(off), .length = htole32(len),
	};
	pci_add_capability(&vd->pci, PCI_CAP_ID_VNDR, &cap, sizeof(cap));
}

int virtio_dev_init(struct virtio_dev *vd, struct vm *vm, const struct virtio_ops *ops,
		    void *priv, unsigned num_queues, uint16_t max_queue_size)
{
	if (num_queues == 0 || num_queues > VIRTIO_MAX_QUEUES || num_queues + 1 > PCI_MSIX_MAX ||
	    ops->config_size > REGION_SIZE)
		return -EINVAL;
	memset(vd, 0, sizeof(*vd));
	vd->vm = vm;
	vd->ops = ops;
	vd->priv = priv;
	vd->num_queues = num_queues;
	pthread_mutex_init(&vd->lock, NULL);
	pthread_mutex_init(&vd->config_lock, NULL);
	for (unsigned i = 0; i < num_queues; i++) {
		vd->queues[i].max_size = max_queue_size;
		vd->queues[i].kick_fd = -1;
	}
	device_reset(vd);
	vd->device_features = ops->features(vd) | (1ULL << VIRTIO_F_VERSION_1) |
			      (1ULL << VIRTIO_RING_F_EVENT_IDX) | (1ULL << VIRTIO_RING_F_INDIRECT_DESC);

	struct pci_device *d = &vd->pci;
	/* Modern-only device: ID 0x1040 + type, revision 1 (4.1.2.1). */
	pci_device_init(d, ops->name, VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEV_BASE + ops->device_id,
			ops->class_code, VIRTIO_PCI_VENDOR, 0x40 + ops->device_id);
	d->cfg[PCI_CLASS_REV] = 1;
	d->opaque = vd;
	int r = pci_bar_define(d, 0, BAR_SIZE, true, bar_io, vd);
	if (r)
		return r;
	add_cap(vd, VIRTIO_PCI_CAP_COMMON_CFG, BAR_COMMON, CC_SIZE);
	add_cap(vd, VIRTIO_PCI_CAP_ISR_CFG, BAR_ISR, 1);
	add_cap(vd, VIRTIO_PCI_CAP_DEVICE_CFG, BAR_DEVICE, ops->config_size ? ops->config_size : 4);
	struct virtio_pci_notify_cap ncap = {
		.cap = { .cap_len = sizeof(ncap), .cfg_type = VIRTIO_PCI_CAP_NOTIFY_CFG, .bar = 0,
			 .offset = htole32(BAR_NOTIFY), .length = htole32(num_queues * NOTIFY_MULT) },
		.notify_off_multiplier = htole32(NOTIFY_MULT),
	};
	pci_add_capability(d, PCI_CAP_ID_VNDR, &ncap, sizeof(ncap));
	if ((r = pci_msix_init(d, msix_vectors(vd), 0, BAR_MSIX_TBL, BAR_MSIX_PBA)))
		return r;
	if ((r = pci_device_add(vm->pci, d))) {
		log_err("%s: cannot add to the PCI bus: %s", ops->name, strerror(-r));
		return r;
	}
	vd->notify_addr = d->bars[0].addr + BAR_NOTIFY;
	for (unsigned i = 0; i < num_queues; i++) {
		struct virtio_queue *q = &vd->queues[i];
		q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->kick_fd < 0)
			return -errno;
		r = vm_ioeventfd(vm, vd->notify_addr + i * NOTIFY_MULT, q->kick_fd, true);
		if (r) {
			log_err("%s: KVM_IOEVENTFD: %s", ops->name, strerror(-r));
			return r;
		}
	}
	return 0;
}

void virtio_dev_pause(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	if (vd->started && !vd->paused && vd->ops->pause) {
		vd->ops->pause(vd);
		vd->paused = true;
	}
	pthread_mutex_unlock(&vd->lock);
}

void virtio_dev_resume(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	if (vd->paused) {
		vd->paused = false;
		int r = vd->ops->resume(vd);
		if (r) {
			log_err("%s: cannot resume: %s; the device needs a reset", vd->ops->name,
				strerror(-r));
			/* Its threads are gone, so nothing else sets it now. */
			virtio_set_needs_reset(vd);
		}
	}
	pthread_mutex_unlock(&vd->lock);
}

void virtio_dev_free(struct virtio_dev *vd)
{
	pthread_mutex_lock(&vd->lock);
	if (vd->started) {
		/* stop after pause is fine: both device models' stop is
		 * idempotent on stopped workers. */
		vd->ops->stop(vd);
		vd->started = false;
		vd->paused = false;
	}
	/* A configuration change racing with teardown then raises nothing
	 * (virtio_config_changed checks the status under config_lock). */
	pthread_mutex_lock(&vd->config_lock);
	atomic_store_explicit(&vd->status, 0, memory_order_relaxed);
	pthread_mutex_unlock(&vd->config_lock);
	pthread_mutex_unlock(&vd->lock);
	for (unsigned i = 0; i < vd->num_queues; i++) {
		struct virtio_queue *q = &vd->queues[i];
		if (q->kick_fd < 0)
			continue;
		vm_ioeventfd(vd->vm, vd->notify_addr + i * NOTIFY_MULT, q->kick_fd, false);
		close(q->kick_fd);
		q->kick_fd = -1;
	}
	/* The PCI function lives inside the device model's allocation: take it
	 * off the bus (irqfds, routes, eventfds) before that memory goes. */
	pci_device_release(&vd->pci);
}
