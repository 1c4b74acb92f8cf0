/* PCI for the micro-guest: configuration mechanism #1 (ports 0xCF8/0xCFC,
 * from ring 3 thanks to the TSS I/O bitmap), a bus-0 scan, capability walk
 * and BAR sizing/assignment. Firmware under PVH (qboot, kvmini) may leave BARs
 * unassigned: pci_bar_map() then places them in PCI_MMIO_BASE..PCI_MMIO_END
 * above every BAR already assigned on bus 0, and turns on memory decoding
 * and bus mastering. */
#include "guest.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc

static uint32_t cfg_addr(const struct pci_dev *d, uint16_t off)
{
	return 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 |
	       (uint32_t)d->fn << 8 | (off & 0xfc);
}

uint32_t pci_read32(const struct pci_dev *d, uint16_t off)
{
	outl(PCI_ADDR, cfg_addr(d, off));
	return inl(PCI_DATA);
}

uint16_t pci_read16(const struct pci_dev *d, uint16_t off)
{
	outl(PCI_ADDR, cfg_addr(d, off));
	return inw((uint16_t)(PCI_DATA + (off & 2)));
}

uint8_t pci_read8(const struct pci_dev *d, uint16_t off)
{
	outl(PCI_ADDR, cfg_addr(d, off));
	return inb((uint16_t)(PCI_DATA + (off & 3)));
}

void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v)
{
	outl(PCI_ADDR, cfg_addr(d, off));
	outl(PCI_DATA, v);
}

void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v)
{
	outl(PCI_ADDR, cfg_addr(d, off));
	outw((uint16_t)(PCI_DATA + (off & 2)), v);
}

bool pci_find(uint16_t vendor, uint16_t device, unsigned index, struct pci_dev *out)
{
	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			struct pci_dev d = { 0, (uint8_t)dev, (uint8_t)fn };
			uint32_t id = pci_read32(&d, PCI_VENDOR_ID);
			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			if ((id & 0xffff) == vendor && (id >> 16) == device && index-- == 0) {
				*out = d;
				return true;
			}
			if (fn == 0 && !(pci_read8(&d, PCI_HEADER_TYPE) & 0x80))
				break;  /* single-function device */
		}
	}
	return false;
}

uint8_t pci_cap_next(const struct pci_dev *d, uint8_t pos)
{
	if (pos == 0) {
		if (!(pci_read16(d, PCI_STATUS) & PCI_STATUS_CAP_LIST))
			return 0;
		pos = pci_read8(d, PCI_CAP_PTR);
	} else {
		pos = pci_read8(d, (uint16_t)(pos + 1));
	}
	return pos & 0xfc;
}

/* Size of a memory BAR (64-bit aware), with decoding off while probing.
 * Returns 0 for an unimplemented BAR or an I/O BAR. */
static uint64_t bar_size(const struct pci_dev *d, unsigned bar, bool *is64)
{
	uint16_t off = (uint16_t)(PCI_BAR0 + 4 * bar);
	uint32_t lo = pci_read32(d, off);
	*is64 = (lo & 7) == 4;
	if (lo & 1)
		return 0;
	uint16_t cmd = pci_read16(d, PCI_COMMAND);
	pci_write16(d, PCI_COMMAND, cmd & (uint16_t)~PCI_COMMAND_MEMORY);
	pci_write32(d, off, 0xffffffff);
	uint64_t mask = pci_read32(d, off) & ~0xfull;
	pci_write32(d, off, lo);
	if (*is64) {
		uint32_t hi = pci_read32(d, (uint16_t)(off + 4));
		pci_write32(d, (uint16_t)(off + 4), 0xffffffff);
		mask |= (uint64_t)pci_read32(d, (uint16_t)(off + 4)) << 32;
		pci_write32(d, (uint16_t)(off + 4), hi);
	} else if (mask) {
		mask |= 0xffffffff00000000ull;
	}
	pci_write16(d, PCI_COMMAND, cmd);
	return mask ? ~mask + 1 : 0;
}

static uint64_t bar_base(const struct pci_dev *d, unsigned bar, bool is64)
{
	uint16_t off = (uint16_t)(PCI_BAR0 + 4 * bar);
	uint64_t base = pci_read32(d, off) & ~0xfull;
	if (is64)
		base |= (uint64_t)pci_read32(d, (uint16_t)(off + 4)) << 32;
	return base;
}

/* First free address in the window: above the end of every memory BAR
 * already assigned there on bus 0. */
static uint64_t window_free(void)
{
	uint64_t top = PCI_MMIO_BASE;
	for (unsigned dev = 0; dev < 32; dev++) {
		for (unsigned fn = 0; fn < 8; fn++) {
			struct pci_dev d = { 0, (uint8_t)dev, (uint8_t)fn };
			uint32_t id = pci_read32(&d, PCI_VENDOR_ID);
			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			uint8_t ht = pci_read8(&d, PCI_HEADER_TYPE);
			unsigned nbars = (ht & 0x7f) == 0 ? 6 : (ht & 0x7f) == 1 ? 2 : 0;
			for (unsigned b = 0; b < nbars; b++) {
				bool is64;
				uint64_t size = bar_size(&d, b, &is64);
				uint64_t base = bar_base(&d, b, is64);
				if (size && base >= PCI_MMIO_BASE && base < PCI_MMIO_END &&
				    base + size > top)
					top = base + size;
				if (is64)
					b++;
			}
			if (fn == 0 && !(ht & 0x80))
				break;
		}
	}
	return top;
}

uint64_t pci_bar_map(const struct pci_dev *d, unsigned bar, uint64_t *size_out)
{
	CHECK(bar < 6, "pci: BAR%u does not exist", bar);
	bool is64;
	uint64_t size = bar_size(d, bar, &is64);
	CHECK(size, "pci %u:%u.%u: BAR%u is not a memory BAR", d->bus, d->dev, d->fn, bar);
	uint64_t base = bar_base(d, bar, is64);
	uint16_t off = (uint16_t)(PCI_BAR0 + 4 * bar);
	if (base == 0) {
		base = window_free();
		base = (base + size - 1) & ~(size - 1);
		CHECK(base + size <= PCI_MMIO_END, "pci: no room for BAR%u (%lu bytes)", bar, size);
		pci_write32(d, off, (uint32_t)base);
		if (is64)
			pci_write32(d, (uint16_t)(off + 4), 0);
		uint64_t got = bar_base(d, bar, is64);
		CHECK(got == base, "pci %u:%u.%u: BAR%u reads %lx after writing %lx",
		      d->bus, d->dev, d->fn, bar, got, base);
		say("pci %u:%u.%u: BAR%u assigned %lx size %lx", d->bus, d->dev, d->fn, bar, base, size);
	}
	CHECK(base + size <= 0x100000000ull, "pci: BAR%u at %lx is above 4 GiB (not mapped)", bar, base);
	uint16_t cmd = pci_read16(d, PCI_COMMAND);
	uint16_t want = cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE;
	if (want != cmd)
		pci_write16(d, PCI_COMMAND, want);
	if (size_out)
		*size_out = size;
	return base;
}
