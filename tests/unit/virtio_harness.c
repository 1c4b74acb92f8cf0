/* The guest driver the virtio unit tests share: see virtio_harness.h. */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "virtio_harness.h"
#include "vmm/irq.h"

struct vh vh;

/* ---- the fake VM ------------------------------------------------------------------------ */

int fake_vm_init(size_t ram_size)
{
	memset(&vh, 0, sizeof(vh));
	vh.vm.kvm_fd = vh.vm.vm_fd = vh.vm.stop_fd = -1;
	vh.vm.ram = calloc(1, ram_size);
	if (!vh.vm.ram)
		return -1;
	vh.vm.ram_size = vh.vm.ram_low = ram_size;
	bus_init(&vh.vm.pio, "pio");
	bus_init(&vh.vm.mmio, "mmio");
	if (irq_routing_init(&vh.vm) || pci_bus_init(&vh.pbus, &vh.vm))
		return -1;
	vh.vm.pci = &vh.pbus;
	return 0;
}

void fake_vm_free(void)
{
	pci_bus_free(&vh.pbus);
	irq_routing_free(&vh.vm);
	bus_free(&vh.vm.pio);
	bus_free(&vh.vm.mmio);
	free(vh.vm.ram);
	vh.vm.ram = NULL;
}

/* ---- guest memory ------------------------------------------------------------------------- */

void w16(uint64_t gpa, uint16_t v) { memcpy(vh.vm.ram + gpa, &v, 2); }
void w32(uint64_t gpa, uint32_t v) { memcpy(vh.vm.ram + gpa, &v, 4); }
void w64(uint64_t gpa, uint64_t v) { memcpy(vh.vm.ram + gpa, &v, 8); }
uint16_t r16(uint64_t gpa) { uint16_t v; memcpy(&v, vh.vm.ram + gpa, 2); return v; }
uint32_t r32(uint64_t gpa) { uint32_t v; memcpy(&v, vh.vm.ram + gpa, 4); return v; }

void msleep(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* What of [gpa, gpa + len) lies in RAM, zeroed. */
static void zero_in_ram(uint64_t gpa, uint64_t len)
{
	if (gpa >= vh.vm.ram_size)
		return;
	if (len > vh.vm.ram_size - gpa)
		len = vh.vm.ram_size - gpa;
	memset(vh.vm.ram + gpa, 0, len);
}

/* ---- port I/O, config cycles, MMIO ----------------------------------------------------------- */

static void out(uint16_t port, uint32_t v, unsigned len)
{
	uint8_t b[4];
	for (unsigned i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	bus_dispatch(&vh.vm.pio, port, b, len, true);
}

static uint32_t in(uint16_t port, unsigned len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;
	bus_dispatch(&vh.vm.pio, port, b, len, false);
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint32_t slot_rd(unsigned slot, unsigned off, unsigned len)
{
	out(0xcf8, 0x80000000u | slot << 11 | (off & 0xfc), 4);
	return in((uint16_t)(0xcfc + (off & 3)), len);
}

uint32_t cfg_rd(unsigned off, unsigned len) { return slot_rd(vh.slot, off, len); }

void cfg_wr(unsigned off, uint32_t v, unsigned len)
{
	out(0xcf8, 0x80000000u | vh.slot << 11 | (off & 0xfc), 4);
	out((uint16_t)(0xcfc + (off & 3)), v, len);
}

uint64_t mmio_rd(uint64_t off, unsigned len)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;
	assert_true(bus_dispatch(&vh.vm.mmio, vh.bar + off, b, len, false));
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

void mmio_wr(uint64_t off, uint64_t v, unsigned len)
{
	uint8_t b[8];
	for (unsigned i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_true(bus_dispatch(&vh.vm.mmio, vh.bar + off, b, len, true));
}

uint64_t cc_rd(unsigned f, unsigned len) { return mmio_rd(vh.common + f, len); }
void cc_wr(unsigned f, uint64_t v, unsigned len) { mmio_wr(vh.common + f, v, len); }
uint8_t status(void) { return (uint8_t)cc_rd(STATUS, 1); }
void set_status(uint8_t s) { cc_wr(STATUS, s, 1); }
uint8_t generation(void) { return (uint8_t)cc_rd(CFGGEN, 1); }
uint64_t dev_cfg(unsigned off, unsigned len) { return mmio_rd(vh.devcfg + off, len); }
uint8_t isr_read(void) { return (uint8_t)mmio_rd(vh.isr, 1); }

uint8_t wait_status(uint8_t bits, int ms)
{
	for (int t = 0; t < ms && !(status() & bits); t++)
		msleep(1);
	return status() & bits;
}

/* A 64-bit common-configuration register, as vh.split64 says. */
static void cc_wr64(unsigned f, uint64_t v)
{
	if (vh.split64) {
		cc_wr(f, (uint32_t)v, 4);
		cc_wr(f + 4, v >> 32, 4);
	} else {
		cc_wr(f, v, 8);
	}
}

void discover(uint16_t device_id)
{
	vh.slot = 0;
	for (unsigned s = 0; s < 32; s++)
		if (slot_rd(s, 0, 4) == ((uint32_t)device_id << 16 | 0x1af4u))
			vh.slot = s;
	assert_int_not_equal(vh.slot, 0);
	uint32_t lo = cfg_rd(0x10, 4), hi = cfg_rd(0x14, 4);
	assert_int_equal(lo & 0x7, 0x4);  /* memory, 64-bit */
	vh.bar = ((uint64_t)hi << 32) | (lo & ~0xfu);
	assert_true(vh.bar != 0);
	/* Memory decoding and bus mastering on, as firmware/Linux would. */
	cfg_wr(0x04, 0x0006, 2);

	assert_true(cfg_rd(0x06, 2) & 0x10); /* capability list */
	unsigned found = 0, n = 0;
	for (uint8_t p = (uint8_t)cfg_rd(0x34, 1); p && n < 48; n++) {
		uint8_t id = (uint8_t)cfg_rd(p, 1);
		if (id == 0x11)
			vh.msix_cap = p;
		if (id == 0x09) {
			uint8_t type = (uint8_t)cfg_rd(p + 3u, 1);
			assert_int_equal(cfg_rd(p + 4u, 1), 0); /* BAR0 */
			uint32_t off = cfg_rd(p + 8u, 4), len = cfg_rd(p + 12u, 4);
			switch (type) {
			case 1: vh.common = off; assert_true(len >= 0x38); break;
			case 2:
				vh.notify = off;
				assert_true(cfg_rd(p + 2u, 1) >= 20);
				vh.notify_mult = cfg_rd(p + 16u, 4);
				break;
			case 3: vh.isr = off; assert_true(len >= 1); break;
			case 4: vh.devcfg = off; vh.devcfg_len = len; break;
			}
			found |= 1u << type;
		}
		p = (uint8_t)cfg_rd(p + 1u, 1);
	}
	assert_int_equal(found, 0x1e); /* common, notify, ISR, device */
	assert_int_not_equal(vh.msix_cap, 0);
	vh.vd = vh.pbus.devs[vh.slot]->opaque;
	assert_non_null(vh.vd);
}

/* ---- features and initialisation ---------------------------------------------------------------- */

/* A 64-bit feature word through its select register, as two 32-bit reads. */
static uint64_t read_features(unsigned sel, unsigned f)
{
	cc_wr(sel, 0, 4);
	uint64_t v = cc_rd(f, 4);
	cc_wr(sel, 1, 4);
	return v | cc_rd(f, 4) << 32;
}

uint64_t read_device_features(void) { return read_features(DFSEL, DF); }
uint64_t read_driver_features(void) { return read_features(GFSEL, GF); }

void write_driver_features(uint64_t f)
{
	cc_wr(GFSEL, 0, 4);
	cc_wr(GF, (uint32_t)f, 4);
	cc_wr(GFSEL, 1, 4);
	cc_wr(GF, (uint32_t)(f >> 32), 4);
}

uint8_t negotiate(uint64_t want)
{
	set_status(0);
	assert_int_equal(status(), 0);
	set_status(ST_ACK);
	set_status(ST_ACK | ST_DRIVER);
	(void)read_device_features();
	write_driver_features(want);
	set_status(ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	return status();
}

void queue_setup_at(unsigned q, uint16_t size, uint16_t vector, uint64_t desc, uint64_t avail,
		    uint64_t used)
{
	assert_true(q < VH_MAXQ);
	zero_in_ram(desc, 16u * size);
	zero_in_ram(avail, 6 + 2u * size);
	zero_in_ram(used, 6 + 8u * size);
	cc_wr(QSEL, q, 2);
	assert_int_equal(cc_rd(QSIZE, 2), vh.qmax); /* max size offered */
	cc_wr(QSIZE, size, 2);
	assert_int_equal(cc_rd(QSIZE, 2), size);
	cc_wr(QMSIX, vector, 2);
	assert_int_equal(cc_rd(QMSIX, 2), vector);
	cc_wr64(QDESC, desc);
	cc_wr64(QDRIVER, avail);
	cc_wr64(QDEVICE, used);
	vh.q[q] = (struct vh_queue){ .size = size, .notify_off = (uint16_t)cc_rd(QNOFF, 2),
				     .desc = desc, .avail = avail, .used = used };
	cc_wr(QENABLE, 1, 2);
}

void queue_setup(unsigned q, uint16_t size, uint16_t vector)
{
	queue_setup_at(q, size, vector, RING(q), AVAIL(q), USED(q));
}

static void drain_irqs(unsigned nq)
{
	for (unsigned v = 0; v <= nq; v++)
		irqs(v);
}

uint8_t drv_setup(uint64_t want, unsigned nq, uint16_t qsize, bool msix)
{
	uint8_t s = negotiate(want);
	if (!(s & ST_FEATURES_OK))
		return s;
	vh.event_idx = want & BIT(F_EVENT_IDX);
	if (msix) {
		msix_enable();
		cc_wr(MSIX, 0, 2);
		assert_int_equal(cc_rd(MSIX, 2), 0);
	} else {
		msix_ctrl(0x0000);
	}
	for (unsigned q = 0; q < nq; q++) {
		queue_setup(q, qsize, msix ? (uint16_t)(q + 1) : NO_VECTOR);
		assert_int_equal(cc_rd(QENABLE, 2), 1);
	}
	if (msix)
		drain_irqs(nq);
	return status();
}

uint8_t drv_init_n(uint64_t want, unsigned nq, uint16_t qsize, bool msix)
{
	uint8_t s = drv_setup(want, nq, qsize, msix);
	if (!(s & ST_FEATURES_OK))
		return s;
	set_status(ST_READY);
	if (msix)
		drain_irqs(nq);
	return status();
}

/* ---- interrupts ---------------------------------------------------------------------------------- */

void msix_vector_setup(unsigned v)
{
	uint64_t e = 0x4000 + 16u * v;  /* the table at BAR0 0x4000 (docs/virtio.md) */
	mmio_wr(e + 0, 0xfee00000u, 4);
	mmio_wr(e + 4, 0, 4);
	mmio_wr(e + 8, 0x30 + v, 4);
	mmio_wr(e + 12, 0, 4); /* unmasked */
}

void msix_ctrl(uint16_t ctrl) { cfg_wr(vh.msix_cap + 2u, ctrl, 2); }

void msix_enable(void)
{
	unsigned nvec = (cfg_rd(vh.msix_cap + 2u, 2) & 0x7ff) + 1;
	for (unsigned v = 0; v < nvec; v++)
		msix_vector_setup(v);
	msix_ctrl(0x8000);
	assert_true(pci_msix_enabled(&vh.vd->pci));
}

uint64_t irqs(unsigned v)
{
	uint64_t n = 0;
	int efd = pci_msix_eventfd(&vh.vd->pci, v);
	assert_true(efd >= 0);
	if (read(efd, &n, sizeof(n)) != sizeof(n))
		n = 0;
	return n;
}

bool wait_irq(unsigned v, int ms)
{
	struct pollfd p = { .fd = pci_msix_eventfd(&vh.vd->pci, v), .events = POLLIN };
	return poll(&p, 1, ms) == 1;
}

/* ---- rings ----------------------------------------------------------------------------------------- */

void set_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
	      uint16_t next)
{
	w64(table + 16u * i, addr);
	w32(table + 16u * i + 8, len);
	w16(table + 16u * i + 12, flags);
	w16(table + 16u * i + 14, next);
}

void publish(unsigned q, uint16_t head)
{
	struct vh_queue *d = &vh.q[q];
	w16(d->avail + 4 + 2u * (d->avail_idx % d->size), head);
	d->avail_idx++;
	if (!d->held)
		__atomic_store_n((uint16_t *)(vh.vm.ram + d->avail + 2), d->avail_idx,
				 __ATOMIC_RELEASE);
}

void hold_avail(unsigned q)
{
	vh.q[q].held = true;
}

void release_avail(unsigned q)
{
	struct vh_queue *d = &vh.q[q];
	d->held = false;
	__atomic_store_n((uint16_t *)(vh.vm.ram + d->avail + 2), d->avail_idx, __ATOMIC_RELEASE);
}

uint16_t post(unsigned q, const struct seg *s, unsigned n)
{
	struct vh_queue *d = &vh.q[q];
	uint16_t head = d->next_desc;
	for (unsigned i = 0; i < n; i++) {
		uint16_t idx = d->next_desc, next = (uint16_t)((idx + 1) % d->size);
		set_desc(d->desc, idx, s[i].gpa, s[i].len,
			 (uint16_t)((s[i].w ? D_WRITE : 0) | (i + 1 < n ? D_NEXT : 0)), next);
		d->next_desc = next;
	}
	publish(q, head);
	return head;
}

void kick(unsigned q)
{
	mmio_wr(vh.notify + (uint64_t)vh.q[q].notify_off * vh.notify_mult, q, 2);
}

bool kick_wanted(unsigned q, uint16_t old_idx)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	struct vh_queue *d = &vh.q[q];
	if (vh.event_idx) {
		uint16_t ev = __atomic_load_n((uint16_t *)(vh.vm.ram + d->used + 4 + 8u * d->size),
					      __ATOMIC_RELAXED);
		return (uint16_t)(d->avail_idx - ev - 1) < (uint16_t)(d->avail_idx - old_idx);
	}
	return !(__atomic_load_n((uint16_t *)(vh.vm.ram + d->used), __ATOMIC_RELAXED) & 1);
}

uint16_t used_idx(unsigned q)
{
	return __atomic_load_n((uint16_t *)(vh.vm.ram + vh.q[q].used + 2), __ATOMIC_ACQUIRE);
}

uint16_t used_new(unsigned q) { return (uint16_t)(used_idx(q) - vh.q[q].used_seen); }

bool wait_used(unsigned q, uint16_t n, int ms)
{
	for (int t = 0; t < ms && used_new(q) < n; t++)
		msleep(1);
	return used_new(q) >= n;
}

struct used take_used(unsigned q)
{
	struct vh_queue *d = &vh.q[q];
	uint64_t e = d->used + 4 + 8u * (d->used_seen % d->size);
	d->used_seen++;
	return (struct used){ r32(e), r32(e + 4) };
}
