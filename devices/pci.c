/* PCI bus 0: configuration mechanism #1, a host bridge, BARs placed by kvmini
 * before boot, MSI-X routed through KVM irqfds, and INTx on IOAPIC pins.
 * See devices/pci.h for the API and docs/pci.md for how it all fits.
 *
 * Locking: bus->lock covers the CONFIG_ADDRESS latch, every device's config
 * space and MSI-X state. It is taken by config cycles (any vCPU), MSI-X table
 * accesses (any vCPU) and pci_intx_set (any thread). cfg_written callbacks
 * run after it is released. The MSI-X interrupt path (pci_msix_enabled,
 * pci_msix_eventfd) takes no lock; see pci_msix.enabled_flag.
 *
 * Test mode: with vm->vm_fd < 0 (unit tests) vmm/irq.c skips its ioctls and
 * INTx changes are only recorded (d->intx_asserted); everything else,
 * eventfds included, is real. */
#include "devices/pci.h"
#include "vmm/le.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/irq.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/vm.h"

#define PORT_PCI_CONFIG      0xcf8   /* 0xCF8 address latch, 0xCFC..0xCFF data */
#define PCI_CF8_ENABLE       0x80000000u
#define PCI_CF8_MASK         0x80fffffcu /* enable, bus, device, function, register */
#define PCI_BAR_END          (PCI_BAR0 + 4 * PCI_NUM_BARS)

/* The host bridge looks like QEMU q35's (Intel 82G33 DRAM controller). */
#define HOST_BRIDGE_VENDOR   0x8086
#define HOST_BRIDGE_DEVICE   0x29c0
#define HOST_BRIDGE_CLASS    0x060000 /* bridge, host */


static void lock(struct pci_device *d)
{
	if (d->bus)
		pthread_mutex_lock(&d->bus->lock);
}

static void unlock(struct pci_device *d)
{
	if (d->bus)
		pthread_mutex_unlock(&d->bus->lock);
}

/* ---- device set-up ------------------------------------------------------ */

void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(d, 0, sizeof(*d));
	d->name = name;
	for (unsigned v = 0; v < PCI_MSIX_MAX; v++)
		d->msix.vec[v].efd = -1;
	wr_le(d->cfg + PCI_VENDOR_ID, vendor, 2);
	wr_le(d->cfg + PCI_DEVICE_ID, device, 2);
	wr_le(d->cfg + PCI_CLASS_REV, class_code << 8, 4); /* revision 0 */
	d->cfg[PCI_HEADER_TYPE] = 0;                       /* type 0, single function */
	wr_le(d->cfg + PCI_SUBSYS_VENDOR, subsys_vendor, 2);
	wr_le(d->cfg + PCI_SUBSYS_ID, subsys_id, 2);
	wr_le(d->wmask + PCI_COMMAND, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				      PCI_COMMAND_INTX_DISABLE, 2);
	/* Scratch registers firmware and OSes write: cache line size and the
	 * interrupt line (pure bookkeeping for the OS, not used by kvmini). */
	d->wmask[PCI_CACHE_LINE] = 0xff;
	d->wmask[PCI_INT_LINE] = 0xff;
}

static bool bar_is_upper_half(const struct pci_device *d, int bar)
{
	return bar > 0 && d->bars[bar - 1].size && d->bars[bar - 1].is64;
}

int pci_bar_define(struct pci_device *d, int bar, uint64_t size, bool is64, bus_io_fn fn,
		   void *ctx)
{
	uint64_t sz = 4096;

	if (bar < 0 || bar >= PCI_NUM_BARS || (is64 && bar + 1 >= PCI_NUM_BARS) || !fn ||
	    size == 0 || size > LAYOUT_PCI_MMIO_END - LAYOUT_PCI_MMIO)
		return -EINVAL;
	if (d->bars[bar].size || bar_is_upper_half(d, bar) || (is64 && d->bars[bar + 1].size))
		return -EEXIST;
	while (sz < size)
		sz <<= 1;
	d->bars[bar] = (struct pci_bar){ .size = sz, .is64 = is64, .fn = fn, .ctx = ctx };
	wr_le(d->cfg + PCI_BAR0 + 4 * bar, is64 ? PCI_BAR_MEM_64 : 0, 4);
	return 0;
}

uint8_t pci_add_capability(struct pci_device *d, uint8_t id, const void *body, unsigned len)
{
	unsigned off = d->next_cap ? d->next_cap : PCI_CAP_START;

	off = (off + 3) & ~3u;
	if (len < 2 || len > PCI_CFG_SIZE || off + len > PCI_CFG_SIZE)
		return 0;
	if (body)
		memcpy(d->cfg + off, body, len);
	else
		memset(d->cfg + off, 0, len);
	memset(d->wmask + off, 0, len);
	d->cfg[off] = id;
	d->cfg[off + 1] = 0;
	if (!d->cfg[PCI_CAP_PTR]) {
		d->cfg[PCI_CAP_PTR] = (uint8_t)off;
	} else {
		unsigned p = d->cfg[PCI_CAP_PTR];

		/* Each capability starts at 0x40 or later, 4-byte aligned: at most 48. */
		for (unsigned n = 0; d->cfg[p + 1] && n < 48; n++)
			p = d->cfg[p + 1];
		d->cfg[p + 1] = (uint8_t)off;
	}
	d->cfg[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
	/* 0xff means full: it rounds up to 0x100 next time. */
	d->next_cap = (uint8_t)(off + len < 0xff ? off + len : 0xff);
	return (uint8_t)off;
}

int pci_msix_init(struct pci_device *d, unsigned nvec, int bar, uint64_t table_off,
		  uint64_t pba_off)
{
	struct pci_msix *m = &d->msix;
	uint64_t table_len = (uint64_t)nvec * PCI_MSIX_ENTRY_SIZE;
	uint64_t pba_len = ((nvec + 63) / 64) * 8;
	uint8_t cap[PCI_MSIX_CAP_LEN] = { 0 };
	uint8_t off;

	if (m->nvec || nvec == 0 || nvec > PCI_MSIX_MAX || bar < 0 || bar >= PCI_NUM_BARS ||
	    !d->bars[bar].size || (table_off & 7) || (pba_off & 7) ||
	    table_off > UINT32_MAX || pba_off > UINT32_MAX ||
	    table_off + table_len > d->bars[bar].size || pba_off + pba_len > d->bars[bar].size ||
	    (table_off < pba_off + pba_len && pba_off < table_off + table_len))
		return -EINVAL;
	wr_le(cap + 2, nvec - 1, 2);                     /* table size N-1, disabled */
	wr_le(cap + 4, (uint32_t)table_off | (uint32_t)bar, 4);
	wr_le(cap + 8, (uint32_t)pba_off | (uint32_t)bar, 4);
	off = pci_add_capability(d, PCI_CAP_ID_MSIX, cap, sizeof(cap));
	if (!off)
		return -ENOSPC;
	d->wmask[off + 3] = (PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL) >> 8;

	for (unsigned v = 0; v < nvec; v++) {
		struct msix_vector *vec = &m->vec[v];

		*vec = (struct msix_vector){ .masked = true, .efd = -1 };
		vec->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (vec->efd < 0) {
			int e = errno;

			while (v--) {
				close(m->vec[v].efd);
				m->vec[v].efd = -1;
			}
			log_err("%s: eventfd for MSI-X: %s", d->name, strerror(e));
			return -e;
		}
	}
	m->nvec = nvec;
	m->bar = bar;
	m->table_off = table_off;
	m->pba_off = pba_off;
	m->cap = off;
	return 0;
}

/* ---- interrupts --------------------------------------------------------- */

/* Brings the IOAPIC pin in line with the INTx level and its gates. Lock held. */
static void intx_update(struct pci_device *d)
{
	uint16_t cmd = (uint16_t)rd_le(d->cfg + PCI_COMMAND, 2);
	bool want = d->intx_level && !(cmd & PCI_COMMAND_INTX_DISABLE) && !d->msix.enabled;

	/* Status bit 3 (Interrupt Status) shows the device's request whatever
	 * the gates say (PCI 3.0 section 6.2.3). */
	if (d->intx_level)
		d->cfg[PCI_STATUS] |= 0x08;
	else
		d->cfg[PCI_STATUS] &= (uint8_t)~0x08;
	if (want == d->intx_asserted || !d->cfg[PCI_INT_PIN])
		return;
	d->intx_asserted = want;
	if (d->vm && d->vm->vm_fd >= 0)
		vm_irq_line(d->vm, d->intx_gsi, want);
}

void pci_intx_set(struct pci_device *d, int level)
{
	lock(d);
	d->intx_level = level != 0;
	intx_update(d);
	unlock(d);
}

/* Makes KVM match one vector's state. Lock held. Order matters: the route
 * exists before the irqfd is assigned (KVM injects a pending eventfd count
 * at assign time) and the irqfd is gone before the route goes. */
static void msix_sync(struct pci_device *d, unsigned v)
{
	struct pci_msix *m = &d->msix;
	struct msix_vector *vec = &m->vec[v];
	bool want = m->enabled && !m->func_masked && !vec->masked;

	if (!d->vm)
		return;
	if (want && !vec->routed) {
		if (irq_msi_route_set(d->vm, vec->gsi, vec->addr, vec->data, 1))
			return;
		if (irq_irqfd_assign(d->vm, vec->efd, vec->gsi)) {
			irq_msi_route_set(d->vm, vec->gsi, 0, 0, 0);
			return;
		}
		vec->routed = true;
	} else if (!want && vec->routed) {
		/* Writes from now on accumulate in the eventfd; the next assign
		 * delivers them (see docs/pci.md, "masking"). */
		irq_irqfd_deassign(d->vm, vec->efd, vec->gsi);
		irq_msi_route_set(d->vm, vec->gsi, 0, 0, 0);
		vec->routed = false;
	}
}

/* The guest wrote MSI-X Message Control. Lock held. */
static void msix_ctrl_written(struct pci_device *d)
{
	struct pci_msix *m = &d->msix;
	uint16_t ctrl = (uint16_t)rd_le(d->cfg + m->cap + 2, 2);

	m->enabled = ctrl & PCI_MSIX_CTRL_ENABLE;
	m->func_masked = ctrl & PCI_MSIX_CTRL_MASKALL;
	/* Device threads read the flag without the lock: a thread that sees
	 * it set must find the routes and irqfds of the live vectors in place,
	 * one that sees it clear goes to pci_intx_set, which waits for this
	 * lock and then finds MSI-X off. The function mask does not clear it:
	 * masked interrupts must stay pending in the eventfds, not go to INTx. */
	if (!m->enabled)
		atomic_store_explicit(&m->enabled_flag, false, memory_order_release);
	for (unsigned v = 0; v < m->nvec; v++)
		msix_sync(d, v);
	if (m->enabled)
		atomic_store_explicit(&m->enabled_flag, true, memory_order_release);
	intx_update(d); /* INTx is silent while MSI-X is enabled */
}

bool pci_msix_enabled(const struct pci_device *d)
{
	return atomic_load_explicit(&d->msix.enabled_flag, memory_order_acquire);
}

int pci_msix_eventfd(const struct pci_device *d, unsigned vec)
{
	return vec < d->msix.nvec ? d->msix.vec[vec].efd : -1;
}

static bool overlaps(uint64_t off, uint32_t len, uint64_t start, uint64_t rlen)
{
	return off < start + rlen && start < off + len;
}

bool pci_msix_bar_access(struct pci_device *d, int bar, uint64_t off, uint8_t *data,
			 uint32_t len, bool is_write)
{
	struct pci_msix *m = &d->msix;
	uint64_t table_len, pba_len, rel;
	struct msix_vector *vec;
	uint8_t entry[PCI_MSIX_ENTRY_SIZE];
	unsigned v, reg;

	if (!m->nvec || bar != m->bar || len == 0)
		return false;
	table_len = (uint64_t)m->nvec * PCI_MSIX_ENTRY_SIZE;
	pba_len = ((m->nvec + 63) / 64) * 8;
	if (!overlaps(off, len, m->table_off, table_len)) {
		if (!overlaps(off, len, m->pba_off, pba_len))
			return false;
		/* PBA: pending bits are not tracked; reads 0, writes dropped. */
		if (!is_write)
			memset(data, 0, len);
		return true;
	}
	/* Only aligned dword and qword accesses fully inside the table. */
	if ((len != 4 && len != 8) || (off & (len - 1)) || off < m->table_off ||
	    off + len > m->table_off + table_len) {
		if (!is_write)
			memset(data, 0, len);
		return true;
	}
	rel = off - m->table_off;
	v = (unsigned)(rel / PCI_MSIX_ENTRY_SIZE);
	reg = (unsigned)(rel % PCI_MSIX_ENTRY_SIZE);
	vec = &m->vec[v];

	lock(d);
	wr_le(entry + PCI_MSIX_ENTRY_ADDR_LO, (uint32_t)vec->addr, 4);
	wr_le(entry + PCI_MSIX_ENTRY_ADDR_HI, (uint32_t)(vec->addr >> 32), 4);
	wr_le(entry + PCI_MSIX_ENTRY_DATA, vec->data, 4);
	wr_le(entry + PCI_MSIX_ENTRY_CTRL, vec->masked ? PCI_MSIX_ENTRY_MASKED : 0, 4);
	if (!is_write) {
		memcpy(data, entry + reg, len);
	} else {
		uint64_t addr;
		uint32_t msg;

		memcpy(entry + reg, data, len);
		addr = rd_le(entry + PCI_MSIX_ENTRY_ADDR_LO, 4) |
		       (uint64_t)rd_le(entry + PCI_MSIX_ENTRY_ADDR_HI, 4) << 32;
		msg = rd_le(entry + PCI_MSIX_ENTRY_DATA, 4);
		vec->masked = rd_le(entry + PCI_MSIX_ENTRY_CTRL, 4) & PCI_MSIX_ENTRY_MASKED;
		if (addr != vec->addr || msg != vec->data) {
			vec->addr = addr;
			vec->data = msg;
			/* A live vector retargeted in place (Linux may do so
			 * without masking first): update its route only. */
			if (vec->routed && !vec->masked && d->vm)
				irq_msi_route_set(d->vm, vec->gsi, addr, msg, 1);
		}
		msix_sync(d, v);
	}
	unlock(d);
	return true;
}

/* ---- config space ------------------------------------------------------- */

/* A write to one BAR dword; v is the dword after merging the written bytes.
 * Addresses are fixed: all-ones sizes the BAR, anything else puts the
 * assigned address back (see docs/pci.md, "BARs are fixed"). */
static void bar_write(struct pci_device *d, int i, uint32_t v)
{
	uint8_t *reg = d->cfg + PCI_BAR0 + 4 * i;
	const struct pci_bar *b = &d->bars[i];

	if (b->size) {
		uint32_t type = b->is64 ? PCI_BAR_MEM_64 : 0;

		if ((v & ~0xfu) == ~0xfu)
			wr_le(reg, ((uint32_t)~(b->size - 1) & ~0xfu) | type, 4);
		else
			wr_le(reg, (uint32_t)b->addr | type, 4);
	} else if (bar_is_upper_half(d, i)) {
		b = &d->bars[i - 1];
		if (v == 0xffffffffu)
			wr_le(reg, (uint32_t)(~(b->size - 1) >> 32), 4);
		else
			wr_le(reg, (uint32_t)(b->addr >> 32), 4);
	}
	/* An unused BAR stays 0: not implemented. */
}

/* Applies a guest write of len bytes at off (within one dword). Lock held. */
static void cfg_write(struct pci_device *d, unsigned off, const uint8_t *data, unsigned len)
{
	unsigned dw = off & ~3u;

	if (dw >= PCI_BAR0 && dw < PCI_BAR_END) {
		uint8_t tmp[4];

		memcpy(tmp, d->cfg + dw, 4);
		memcpy(tmp + (off - dw), data, len);
		bar_write(d, (int)(dw - PCI_BAR0) / 4, rd_le(tmp, 4));
		return;
	}
	for (unsigned i = 0; i < len; i++) {
		uint8_t w = d->wmask[off + i];

		d->cfg[off + i] = (uint8_t)((d->cfg[off + i] & ~w) | (data[i] & w));
	}
	if (d->msix.nvec && overlaps(off, len, d->msix.cap + 2u, 2))
		msix_ctrl_written(d);
	else if (overlaps(off, len, PCI_COMMAND, 2))
		intx_update(d);
}

void pci_config_access(struct pci_bus *bus, uint32_t cf8, unsigned byte_off, uint8_t *data,
		       unsigned len, bool is_write)
{
	unsigned busno = (cf8 >> 16) & 0xff, slot = (cf8 >> 11) & 0x1f, fn = (cf8 >> 8) & 7;
	unsigned off = (cf8 & 0xfc) + byte_off;
	struct pci_device *d;

	if (!(cf8 & PCI_CF8_ENABLE) || len == 0 || byte_off + len > 4 || busno || fn ||
	    !(d = bus->devs[slot])) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&bus->lock);
	if (is_write)
		cfg_write(d, off, data, len);
	else
		memcpy(data, d->cfg + off, len);
	pthread_mutex_unlock(&bus->lock);
	if (is_write && d->cfg_written)
		d->cfg_written(d, off, len);
}

/* Ports 0xCF8..0xCFF. CONFIG_ADDRESS only answers dword accesses (as on
 * real chipsets, where byte accesses around it reach other registers). */
static void pci_cfg_io(void *dev, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_bus *bus = dev;
	uint32_t cf8;

	if (offset < 4) {
		if (offset == 0 && len == 4) {
			pthread_mutex_lock(&bus->lock);
			if (is_write)
				bus->cf8 = rd_le(data, 4) & PCI_CF8_MASK;
			else
				wr_le(data, bus->cf8, 4);
			pthread_mutex_unlock(&bus->lock);
		} else if (!is_write) {
			memset(data, 0xff, len);
		}
		return;
	}
	pthread_mutex_lock(&bus->lock);
	cf8 = bus->cf8;
	pthread_mutex_unlock(&bus->lock);
	pci_config_access(bus, cf8, (unsigned)offset - 4, data, len, is_write);
}

/* ---- the bus ------------------------------------------------------------ */

int pci_bus_init(struct pci_bus *bus, struct vm *vm)
{
	struct pci_device *hb = &bus->host_bridge;
	int err;

	memset(bus, 0, sizeof(*bus));
	bus->vm = vm;
	bus->mmio_next = LAYOUT_PCI_MMIO;
	pthread_mutex_init(&bus->lock, NULL);
	/* Subsystem IDs as QEMU gives its chipset devices (Red Hat, QEMU). */
	pci_device_init(hb, "host-bridge", HOST_BRIDGE_VENDOR, HOST_BRIDGE_DEVICE,
			HOST_BRIDGE_CLASS, 0x1af4, 0x1100);
	hb->vm = vm;
	hb->bus = bus;
	hb->slot = 0;
	bus->devs[0] = hb;
	err = bus_register(&vm->pio, PORT_PCI_CONFIG, 8, pci_cfg_io, bus, "pci-cfg");
	if (err) {
		log_err("cannot register PCI config ports 0xcf8-0xcff: %s", strerror(-err));
		pthread_mutex_destroy(&bus->lock);
		bus->vm = NULL;
		return err;
	}
	return 0;
}

int pci_device_add(struct pci_bus *bus, struct pci_device *d)
{
	struct vm *vm = bus->vm;
	uint64_t next = bus->mmio_next, addr[PCI_NUM_BARS] = { 0 };
	unsigned slot;
	int err;

	for (slot = 1; slot < PCI_MAX_DEVICES && bus->devs[slot]; slot++)
		;
	if (slot == PCI_MAX_DEVICES) {
		log_err("%s: no free PCI slot", d->name);
		return -ENOSPC;
	}
	/* Like firmware: each BAR naturally aligned, upward from the window,
	 * largest first so that alignment wastes as little as possible. */
	for (int n = 0; n < PCI_NUM_BARS; n++) {
		int i = -1;

		for (int j = 0; j < PCI_NUM_BARS; j++)
			if (d->bars[j].size && !addr[j] && (i < 0 || d->bars[j].size > d->bars[i].size))
				i = j;
		if (i < 0)
			break;
		uint64_t size = d->bars[i].size;

		addr[i] = (next + size - 1) & ~(size - 1);
		if (addr[i] + size > LAYOUT_PCI_MMIO_END || addr[i] + size < addr[i]) {
			log_err("%s: BAR%d (%" PRIu64 " KiB) does not fit in the PCI window",
				d->name, i, size >> 10);
			return -ENOSPC;
		}
		next = addr[i] + size;
	}
	for (unsigned v = 0; v < d->msix.nvec; v++) {
		if ((err = irq_msi_gsi_alloc(vm, &d->msix.vec[v].gsi))) {
			log_err("%s: no GSI left for MSI-X vector %u", d->name, v);
			return err;
		}
	}
	for (int i = 0; i < PCI_NUM_BARS; i++) {
		struct pci_bar *b = &d->bars[i];

		if (!b->size)
			continue;
		err = bus_register(&vm->mmio, addr[i], b->size, b->fn, b->ctx, d->name);
		if (err) {
			log_err("%s: cannot map BAR%d at 0x%" PRIx64 ": %s", d->name, i, addr[i],
				strerror(-err));
			return err;
		}
		b->addr = addr[i];
		wr_le(d->cfg + PCI_BAR0 + 4 * i, (uint32_t)b->addr | (b->is64 ? PCI_BAR_MEM_64 : 0), 4);
		if (b->is64)
			wr_le(d->cfg + PCI_BAR0 + 4 * (i + 1), (uint32_t)(b->addr >> 32), 4);
	}
	bus->mmio_next = next;

	pthread_mutex_lock(&bus->lock);
	d->vm = vm;
	d->bus = bus;
	d->slot = slot;
	d->intx_gsi = PCI_INTX_GSI(slot, 0);
	d->cfg[PCI_INT_PIN] = 1; /* INTA# */
	d->cfg[PCI_INT_LINE] = (uint8_t)d->intx_gsi;
	bus->devs[slot] = d;
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

/* Deassigns live irqfds and closes the eventfds of one device. */
static void device_release(struct pci_device *d)
{
	for (unsigned v = 0; v < d->msix.nvec && v < PCI_MSIX_MAX; v++) {
		struct msix_vector *vec = &d->msix.vec[v];

		if (vec->routed && d->vm) {
			irq_irqfd_deassign(d->vm, vec->efd, vec->gsi);
			irq_msi_route_set(d->vm, vec->gsi, 0, 0, 0);
			vec->routed = false;
		}
		if (vec->efd >= 0) {
			close(vec->efd);
			vec->efd = -1;
		}
	}
}

void pci_device_release(struct pci_device *d)
{
	struct pci_bus *bus = d->bus;

	if (bus && bus->vm) {
		pthread_mutex_lock(&bus->lock);
		if (d->slot < PCI_MAX_DEVICES && bus->devs[d->slot] == d)
			bus->devs[d->slot] = NULL;
		device_release(d);
		pthread_mutex_unlock(&bus->lock);
	} else {
		device_release(d);
	}
	d->bus = NULL;
}

void pci_bus_free(struct pci_bus *bus)
{
	if (!bus || !bus->vm)
		return;
	for (unsigned slot = 1; slot < PCI_MAX_DEVICES; slot++) {
		if (bus->devs[slot])
			device_release(bus->devs[slot]);
		bus->devs[slot] = NULL;
	}
	bus->devs[0] = NULL;
	pthread_mutex_destroy(&bus->lock);
	bus->vm = NULL;
}

void pci_print_devices(FILE *f, struct pci_bus *bus)
{
	pthread_mutex_lock(&bus->lock);
	for (unsigned slot = 0; slot < PCI_MAX_DEVICES; slot++) {
		const struct pci_device *d = bus->devs[slot];

		if (!d)
			continue;
		fprintf(f, "pci 00:%02x.0 %04x:%04x %-12s", slot,
			(unsigned)rd_le(d->cfg + PCI_VENDOR_ID, 2),
			(unsigned)rd_le(d->cfg + PCI_DEVICE_ID, 2), d->name ? d->name : "?");
		for (int i = 0; i < PCI_NUM_BARS; i++)
			if (d->bars[i].size)
				fprintf(f, " BAR%d 0x%" PRIx64 "+0x%" PRIx64 "%s", i, d->bars[i].addr,
					d->bars[i].size, d->bars[i].is64 ? " (64-bit)" : "");
		if (d->msix.nvec)
			fprintf(f, " MSI-X %u vectors GSI %u-%u (%s)", d->msix.nvec,
				d->msix.vec[0].gsi, d->msix.vec[d->msix.nvec - 1].gsi,
				d->msix.enabled ? "enabled" : "disabled");
		if (d->cfg[PCI_INT_PIN])
			fprintf(f, " INTA GSI %u", d->intx_gsi);
		fputc('\n', f);
	}
	pthread_mutex_unlock(&bus->lock);
}
