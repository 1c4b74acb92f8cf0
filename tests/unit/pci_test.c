/* PCI bus 0 and the GSI routing table, without KVM: the struct vm is built by
 * hand with vm_fd = -1, which makes vmm/irq.c skip its ioctls but keep its
 * table, so every config cycle, BAR access and MSI-X transition can be
 * checked from the guest's side (ports 0xCF8/0xCFC, MMIO through the bus)
 * and from KVM's side (the routing table kvmini would push).
 *
 * Expected values are written from the PCI 3.0 spec and the ACPI _PRT
 * formula (slot N pin P -> GSI 16 + (N + P) % 8), not from kvmini's macros. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci.h"
#include "vmm/irq.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

static struct vm vm;
static struct pci_bus pbus;

/* A test device: BAR accesses the MSI-X code does not take are counted.
 * Devices in the tests are static: the bus still points at them when
 * teardown() runs pci_bus_free. */
struct tdev {
	struct pci_device pci;
	int msix_bar;
	unsigned other;         /* accesses left to the device model */
	uint64_t last_off;
	unsigned written_calls; /* cfg_written */
	unsigned written_off, written_len;
};

static void tdev_bar(void *ctx, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct tdev *t = ctx;

	if (pci_msix_bar_access(&t->pci, t->msix_bar, off, data, len, is_write))
		return;
	t->other++;
	t->last_off = off;
	if (!is_write)
		memset(data, 0x5a, len);
}

static void tdev_written(struct pci_device *d, unsigned off, unsigned len)
{
	struct tdev *t = (struct tdev *)d;

	t->written_calls++;
	t->written_off = off;
	t->written_len = len;
}

static int setup(void **state)
{
	memset(&vm, 0, sizeof(vm));
	vm.kvm_fd = vm.vm_fd = vm.stop_fd = -1;
	bus_init(&vm.pio, "pio");
	bus_init(&vm.mmio, "mmio");
	assert_int_equal(irq_routing_init(&vm), 0);
	assert_int_equal(pci_bus_init(&pbus, &vm), 0);
	vm.pci = &pbus;
	return 0;
}

static int teardown(void **state)
{
	pci_bus_free(&pbus);
	irq_routing_free(&vm);
	bus_free(&vm.pio);
	bus_free(&vm.mmio);
	return 0;
}

/* ---- guest-side accessors ------------------------------------------------ */

static void out(uint16_t port, uint32_t v, unsigned len)
{
	uint8_t b[4];

	for (unsigned i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	bus_dispatch(&vm.pio, port, b, len, true);
}

static uint32_t in(uint16_t port, unsigned len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	bus_dispatch(&vm.pio, port, b, len, false);
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static uint32_t addr(unsigned bus, unsigned slot, unsigned fn, unsigned reg)
{
	return 0x80000000u | bus << 16 | slot << 11 | fn << 8 | (reg & 0xfc);
}

static uint32_t cfg_rd(unsigned slot, unsigned off, unsigned len)
{
	out(0xcf8, addr(0, slot, 0, off), 4);
	return in((uint16_t)(0xcfc + (off & 3)), len);
}

static void cfg_wr(unsigned slot, unsigned off, uint32_t v, unsigned len)
{
	out(0xcf8, addr(0, slot, 0, off), 4);
	out((uint16_t)(0xcfc + (off & 3)), v, len);
}

static uint64_t mmio_rd(uint64_t gpa, unsigned len)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	bus_dispatch(&vm.mmio, gpa, b, len, false);
	for (unsigned i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void mmio_wr(uint64_t gpa, uint64_t v, unsigned len)
{
	uint8_t b[8];

	for (unsigned i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	bus_dispatch(&vm.mmio, gpa, b, len, true);
}

/* A virtio-like device: BAR0 16 KiB (64-bit) with MSI-X nvec vectors,
 * table at 0x2000, PBA at 0x3000. */
static void tdev_make(struct tdev *t, unsigned nvec)
{
	memset(t, 0, sizeof(*t));
	pci_device_init(&t->pci, "tdev", 0x1af4, 0x1042, 0x010000, 0x1af4, 0x0002);
	assert_int_equal(pci_bar_define(&t->pci, 0, 0x4000, true, tdev_bar, t), 0);
	if (nvec)
		assert_int_equal(pci_msix_init(&t->pci, nvec, 0, 0x2000, 0x3000), 0);
	t->pci.cfg_written = tdev_written;
	assert_int_equal(pci_device_add(&pbus, &t->pci), 0);
}

/* ---- configuration mechanism #1 ------------------------------------------ */

static void test_conf1_latch(void **state)
{
	out(0xcf8, 0x80000000, 4);
	assert_int_equal(in(0xcf8, 4), 0x80000000);
	/* Reserved bits 30:24 and 1:0 read as zero. */
	out(0xcf8, 0xffffffff, 4);
	assert_int_equal(in(0xcf8, 4), 0x80fffffc);
	/* Byte and word accesses at 0xCF8..0xCFB do not touch the latch
	 * (Linux's conf1 probe writes 0x01 to 0xCFB and expects that). */
	out(0xcf8, 0x80001234 & ~3u, 4);
	out(0xcfb, 0x01, 1);
	out(0xcf8, 0xbeef, 2);
	assert_int_equal(in(0xcf8, 4), 0x80001234 & ~3u);
	assert_int_equal(in(0xcf8, 1), 0xff);
	assert_int_equal(in(0xcfa, 2), 0xffff);
	/* A word straddling the latch and the data port reads all-ones. */
	assert_int_equal(in(0xcfb, 2), 0xffff);
}

static void test_host_bridge(void **state)
{
	assert_int_equal(cfg_rd(0, 0x00, 4), 0x29c08086);
	assert_int_equal(cfg_rd(0, 0x00, 2), 0x8086);
	assert_int_equal(cfg_rd(0, 0x02, 2), 0x29c0);
	assert_int_equal(cfg_rd(0, 0x08, 4) >> 8, 0x060000); /* host bridge class */
	assert_int_equal(cfg_rd(0, 0x0b, 1), 0x06);
	assert_int_equal(cfg_rd(0, 0x0a, 1), 0x00);
	assert_int_equal(cfg_rd(0, 0x0e, 1), 0x00);           /* header type 0 */
	assert_int_equal(cfg_rd(0, 0x3d, 1), 0);              /* no interrupt pin */
	assert_int_equal(cfg_rd(0, 0x10, 4), 0);              /* no BARs */
}

static void test_data_port_offsets(void **state)
{
	uint32_t dw = cfg_rd(0, 0x00, 4);

	out(0xcf8, addr(0, 0, 0, 0), 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(in((uint16_t)(0xcfc + i), 1), (dw >> (8 * i)) & 0xff);
	assert_int_equal(in(0xcfc, 2), dw & 0xffff);
	assert_int_equal(in(0xcfd, 2), (dw >> 8) & 0xffff);
	assert_int_equal(in(0xcfe, 2), dw >> 16);
	/* Byte offset within the dword comes from the port, not the latch. */
	assert_int_equal(cfg_rd(0, 0x0b, 1), cfg_rd(0, 0x08, 4) >> 24);
	/* A dword at 0xCFD runs past 0xCFF: nobody claims it. */
	assert_int_equal(in(0xcfd, 4), 0xffffffff);
}

static void test_absent_reads_ones(void **state)
{
	static struct tdev t;

	tdev_make(&t, 0);
	assert_int_equal(cfg_rd(5, 0x00, 4), 0xffffffff);
	assert_int_equal(cfg_rd(31, 0x00, 2), 0xffff);
	/* Function 1 of present devices, other buses. */
	out(0xcf8, addr(0, 0, 1, 0), 4);
	assert_int_equal(in(0xcfc, 4), 0xffffffff);
	out(0xcf8, addr(0, 1, 7, 0), 4);
	assert_int_equal(in(0xcfc, 4), 0xffffffff);
	out(0xcf8, addr(1, 0, 0, 0), 4);
	assert_int_equal(in(0xcfc, 4), 0xffffffff);
	/* Enable bit clear: no config cycle at all. */
	out(0xcf8, addr(0, 0, 0, 0) & ~0x80000000u, 4);
	assert_int_equal(in(0xcfc, 4), 0xffffffff);
	assert_int_equal(in(0xcfe, 1), 0xff);
	/* Writes there go nowhere (and break nothing). */
	out(0xcfc, 0, 4);
	assert_int_equal(cfg_rd(0, 0x00, 4), 0x29c08086);
	out(0xcf8, addr(0, 9, 0, 0x04), 4);
	out(0xcfc, 0xffffffff, 4);
	assert_int_equal(cfg_rd(9, 0x00, 4), 0xffffffff);
	/* The direct entry point agrees. */
	uint8_t b[4];
	pci_config_access(&pbus, addr(0, 0, 0, 0), 2, b, 4, false); /* runs past the dword */
	assert_int_equal(b[0] & b[1] & b[2] & b[3], 0xff);
}

/* ---- BARs ----------------------------------------------------------------- */

static void nop_bar(void *ctx, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	unsigned *count = ctx;

	(*count)++;
	if (!is_write)
		memset(data, 0, len);
}

static void test_bar_sizing(void **state)
{
	static struct pci_device d;
	unsigned hits = 0;

	pci_device_init(&d, "bars", 0x1234, 0x5678, 0xff0000, 0, 0);
	/* BAR0: 32-bit, 0x3000 -> rounded up to 16 KiB. BAR2/3: 64-bit 1 MiB. */
	assert_int_equal(pci_bar_define(&d, 0, 0x3000, false, nop_bar, &hits), 0);
	assert_int_equal(pci_bar_define(&d, 2, 1 << 20, true, nop_bar, &hits), 0);
	assert_int_equal(pci_device_add(&pbus, &d), 0);
	assert_int_equal(d.slot, 1);
	assert_int_equal(d.bars[0].size, 0x4000);

	uint32_t b0 = cfg_rd(1, 0x10, 4);
	assert_int_equal(b0 & 0xf, 0);                        /* memory, 32-bit */
	assert_int_equal(b0, (uint32_t)d.bars[0].addr);
	cfg_wr(1, 0x10, 0xffffffff, 4);
	assert_int_equal(cfg_rd(1, 0x10, 4), 0xffffc000);     /* ~(16K-1) */
	cfg_wr(1, 0x10, b0, 4);                               /* restore */
	assert_int_equal(cfg_rd(1, 0x10, 4), b0);

	uint32_t lo = cfg_rd(1, 0x18, 4), hi = cfg_rd(1, 0x1c, 4);
	assert_int_equal(lo & 0xf, 0x4);                      /* memory, 64-bit */
	assert_int_equal(((uint64_t)hi << 32) | (lo & ~0xfu), d.bars[2].addr);
	cfg_wr(1, 0x18, 0xffffffff, 4);
	assert_int_equal(cfg_rd(1, 0x18, 4), 0xfff00000 | 0x4);
	cfg_wr(1, 0x1c, 0xffffffff, 4);
	assert_int_equal(cfg_rd(1, 0x1c, 4), 0xffffffff);     /* size < 4 GiB */
	cfg_wr(1, 0x18, lo, 4);
	cfg_wr(1, 0x1c, hi, 4);
	assert_int_equal(cfg_rd(1, 0x18, 4), lo);
	assert_int_equal(cfg_rd(1, 0x1c, 4), hi);

	/* Sizing takes a dword of all-ones; a byte merges into the assigned
	 * address, which is then not all-ones and so is ignored. */
	cfg_wr(1, 0x13, 0xff, 1);
	assert_int_equal(cfg_rd(1, 0x10, 4), b0);

	/* Unused BARs (1, 4, 5) are not implemented: they stay 0. */
	for (unsigned off = 0x14; off <= 0x24; off += 4) {
		if (off == 0x18 || off == 0x1c)
			continue;
		cfg_wr(1, off, 0xffffffff, 4);
		assert_int_equal(cfg_rd(1, off, 4), 0);
	}
	/* The guest reaches the BAR on the MMIO bus, offsets relative to it. */
	mmio_rd(d.bars[0].addr + 0x3ffc, 4);
	mmio_wr(d.bars[2].addr, 1, 4);
	assert_int_equal(hits, 2);
}

static void test_bar_fixed(void **state)
{
	static struct pci_device d;
	unsigned hits = 0;

	pci_device_init(&d, "fixed", 0x1234, 0x5678, 0xff0000, 0, 0);
	assert_int_equal(pci_bar_define(&d, 0, 0x1000, false, nop_bar, &hits), 0);
	assert_int_equal(pci_bar_define(&d, 1, 0x1000, true, nop_bar, &hits), 0);
	assert_int_equal(pci_device_add(&pbus, &d), 0);
	uint32_t b0 = cfg_rd(1, 0x10, 4), b1 = cfg_rd(1, 0x14, 4);

	/* A foreign address is ignored: the BAR keeps what kvmini assigned. */
	cfg_wr(1, 0x10, 0xd0000000, 4);
	assert_int_equal(cfg_rd(1, 0x10, 4), b0);
	cfg_wr(1, 0x10, 0, 4);
	assert_int_equal(cfg_rd(1, 0x10, 4), b0);
	cfg_wr(1, 0x12, 0xdead, 2);
	assert_int_equal(cfg_rd(1, 0x10, 4), b0);
	cfg_wr(1, 0x14, 0xe0000000, 4);
	cfg_wr(1, 0x18, 0x1, 4);                              /* upper half: 4 GiB */
	assert_int_equal(cfg_rd(1, 0x14, 4), b1);
	assert_int_equal(cfg_rd(1, 0x18, 4), 0);
	/* After sizing, any write but the assigned address also restores it. */
	cfg_wr(1, 0x10, 0xffffffff, 4);
	cfg_wr(1, 0x10, 0x12345000, 4);
	assert_int_equal(cfg_rd(1, 0x10, 4), b0);
	assert_int_equal(d.bars[0].addr, b0);
	/* And the bus mapping never moved. */
	mmio_rd(b0, 4);
	assert_int_equal(hits, 1);
	mmio_rd(0xd0000000, 4);
	assert_int_equal(hits, 1);
}

static void test_bar_placement(void **state)
{
	static struct pci_device d[6];
	static const uint64_t sizes[6] = { 0x1000, 0x100000, 0x2000, 0x400000, 0x1000, 0x8000 };
	unsigned hits = 0;

	for (int i = 0; i < 6; i++) {
		pci_device_init(&d[i], "p", 0x1234, (uint16_t)i, 0xff0000, 0, 0);
		assert_int_equal(pci_bar_define(&d[i], 0, sizes[i], i & 1, nop_bar, &hits), 0);
		assert_int_equal(pci_bar_define(&d[i], 2, sizes[5 - i], false, nop_bar, &hits), 0);
		assert_int_equal(pci_device_add(&pbus, &d[i]), 0);
		assert_int_equal(d[i].slot, (unsigned)i + 1);
	}
	for (int i = 0; i < 6; i++) {
		for (int b = 0; b < 3; b += 2) {
			const struct pci_bar *x = &d[i].bars[b];

			assert_true(x->addr >= LAYOUT_PCI_MMIO);
			assert_true(x->addr + x->size <= LAYOUT_PCI_MMIO_END);
			assert_int_equal(x->addr & (x->size - 1), 0);  /* naturally aligned */
			for (int j = 0; j < 6; j++)
				for (int c = 0; c < 3; c += 2) {
					const struct pci_bar *y = &d[j].bars[c];

					if (x == y)
						continue;
					assert_true(x->addr + x->size <= y->addr ||
						    y->addr + y->size <= x->addr);
				}
			/* The last byte of each BAR reaches the device. */
			unsigned before = hits;
			mmio_rd(x->addr + x->size - 1, 1);
			assert_int_equal(hits, before + 1);
		}
	}
}

static void test_bar_errors(void **state)
{
	static struct pci_device d, e;
	unsigned hits = 0;

	pci_device_init(&d, "err", 0x1234, 0x5678, 0xff0000, 0, 0);
	assert_int_equal(pci_bar_define(&d, -1, 0x1000, false, nop_bar, &hits), -EINVAL);
	assert_int_equal(pci_bar_define(&d, 6, 0x1000, false, nop_bar, &hits), -EINVAL);
	assert_int_equal(pci_bar_define(&d, 5, 0x1000, true, nop_bar, &hits), -EINVAL);
	assert_int_equal(pci_bar_define(&d, 0, 0, false, nop_bar, &hits), -EINVAL);
	assert_int_equal(pci_bar_define(&d, 0, 0x1000, false, NULL, &hits), -EINVAL);
	assert_int_equal(pci_bar_define(&d, 0, 0x1000, true, nop_bar, &hits), 0);
	assert_int_equal(pci_bar_define(&d, 1, 0x1000, false, nop_bar, &hits), -EEXIST);
	assert_int_equal(pci_bar_define(&d, 0, 0x1000, false, nop_bar, &hits), -EEXIST);
	/* 512 MiB fits the 960 MiB window once, not twice; the big BAR goes
	 * first so the small one does not push it past the window. */
	assert_int_equal(pci_bar_define(&d, 2, 512u << 20, false, nop_bar, &hits), 0);
	assert_int_equal(pci_device_add(&pbus, &d), 0);
	assert_int_equal(d.bars[2].addr, 0xc0000000);
	assert_int_equal(d.bars[0].addr, 0xe0000000);
	pci_device_init(&e, "err2", 0x1234, 0x5679, 0xff0000, 0, 0);
	assert_int_equal(pci_bar_define(&e, 0, 512u << 20, false, nop_bar, &hits), 0);
	assert_int_equal(pci_device_add(&pbus, &e), -ENOSPC);
	assert_int_equal(cfg_rd(2, 0, 4), 0xffffffff);        /* not on the bus */
}

static void test_slots_full(void **state)
{
	static struct pci_device d[32];

	for (unsigned i = 0; i < 31; i++) {
		pci_device_init(&d[i], "n", 0x1234, (uint16_t)i, 0xff0000, 0, 0);
		assert_int_equal(pci_device_add(&pbus, &d[i]), 0);
		assert_int_equal(d[i].slot, i + 1);
	}
	pci_device_init(&d[31], "n", 0x1234, 31, 0xff0000, 0, 0);
	assert_int_equal(pci_device_add(&pbus, &d[31]), -ENOSPC);
	assert_int_equal(cfg_rd(31, 0x02, 2), 30);
}

/* ---- capabilities and write masks ----------------------------------------- */

static void test_capability_chain(void **state)
{
	static struct tdev t;
	uint8_t vndr[16] = { 0xaa, 0xbb, 16, 1, 2, 3 };
	uint8_t ids[8];
	unsigned n = 0;

	memset(&t, 0, sizeof(t));
	pci_device_init(&t.pci, "caps", 0x1af4, 0x1042, 0x010000, 0, 0);
	assert_int_equal(pci_bar_define(&t.pci, 0, 0x4000, false, tdev_bar, &t), 0);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, vndr, 5), 0x40);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, vndr, sizeof(vndr)), 0x48);
	assert_int_equal(pci_msix_init(&t.pci, 2, 0, 0x2000, 0x3000), 0);
	assert_int_equal(pci_add_capability(&t.pci, PCI_CAP_ID_VNDR, NULL, 4), 0x64);
	t.pci.cfg_written = tdev_written;
	assert_int_equal(pci_device_add(&pbus, &t.pci), 0);

	assert_true(cfg_rd(1, 0x06, 2) & 0x10);              /* capabilities list */
	for (unsigned p = cfg_rd(1, 0x34, 1); p; p = cfg_rd(1, p + 1, 1)) {
		assert_true(p >= 0x40 && p <= 0xfc && (p & 3) == 0);
		assert_true(n < sizeof(ids));
		ids[n++] = (uint8_t)cfg_rd(1, p, 1);
	}
	assert_int_equal(n, 4);
	assert_int_equal(ids[0], 0x09);
	assert_int_equal(ids[1], 0x09);
	assert_int_equal(ids[2], 0x11);
	assert_int_equal(ids[3], 0x09);
	/* The body is kept after the header; header bytes are replaced. */
	assert_int_equal(cfg_rd(1, 0x48, 4), 0x01105809);    /* 09, next 0x58, 16, 1 */
	assert_int_equal(cfg_rd(1, 0x4c, 2), 0x0302);
	/* Capability bytes are read-only unless the device opens them. */
	cfg_wr(1, 0x4a, 0xff, 1);
	assert_int_equal(cfg_rd(1, 0x4a, 1), 16);
	t.pci.wmask[0x4b] = 0xff;
	cfg_wr(1, 0x4b, 0x77, 1);
	assert_int_equal(cfg_rd(1, 0x4b, 1), 0x77);
	/* The callback saw the write after it was applied. */
	assert_int_equal(t.written_off, 0x4b);
	assert_int_equal(t.written_len, 1);

	/* Config space fills up: then 0 is returned and the chain is intact. */
	static struct pci_device full;
	pci_device_init(&full, "full", 1, 2, 0, 0, 0);
	assert_int_equal(pci_add_capability(&full, 0x09, NULL, 0xc0), 0x40);
	assert_int_equal(pci_add_capability(&full, 0x09, NULL, 0x40), 0);
	assert_int_equal(pci_add_capability(&full, 0x09, NULL, 1), 0);
	assert_int_equal(full.cfg[0x41], 0);
}

static void test_wmask(void **state)
{
	static struct tdev t;

	tdev_make(&t, 1);
	cfg_wr(1, 0x00, 0xffffffff, 4);                       /* vendor/device ID */
	assert_int_equal(cfg_rd(1, 0x00, 4), 0x10421af4);
	cfg_wr(1, 0x08, 0, 4);                                /* class */
	assert_int_equal(cfg_rd(1, 0x08, 4) >> 8, 0x010000);
	cfg_wr(1, 0x2c, 0, 4);                                /* subsystem */
	assert_int_equal(cfg_rd(1, 0x2c, 4), 0x00021af4);
	/* Command: I/O, memory, bus master and INTx disable only. */
	cfg_wr(1, 0x04, 0xffff, 2);
	assert_int_equal(cfg_rd(1, 0x04, 2), 0x0407);
	cfg_wr(1, 0x05, 0x00, 1);
	assert_int_equal(cfg_rd(1, 0x04, 2), 0x0007);
	assert_int_equal(t.written_calls, 5);                 /* every write reported */
	assert_int_equal(t.written_off, 0x05);
	/* Status is read-only here: the capability bit survives. */
	cfg_wr(1, 0x06, 0, 2);
	assert_true(cfg_rd(1, 0x06, 2) & 0x10);
	/* Interrupt line is scratch for the OS; the pin is fixed. */
	cfg_wr(1, 0x3c, 0xffff, 2);
	assert_int_equal(cfg_rd(1, 0x3c, 1), 0xff);
	assert_int_equal(cfg_rd(1, 0x3d, 1), 1);
	/* Capability pointer and header type are read-only. */
	cfg_wr(1, 0x34, 0, 1);
	assert_int_equal(cfg_rd(1, 0x34, 1), 0x40);
	cfg_wr(1, 0x0e, 0x80, 1);
	assert_int_equal(cfg_rd(1, 0x0e, 1), 0);
	/* Host bridge too. */
	cfg_wr(0, 0x00, 0, 4);
	assert_int_equal(cfg_rd(0, 0x00, 4), 0x29c08086);
}

/* ---- MSI-X ------------------------------------------------------------------ */

static unsigned msi_routes(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < vm.irq.table->nr; i++)
		n += vm.irq.table->entries[i].type == KVM_IRQ_ROUTING_MSI;
	return n;
}

static const struct kvm_irq_routing_entry *msi_route(unsigned gsi)
{
	for (unsigned i = 0; i < vm.irq.table->nr; i++)
		if (vm.irq.table->entries[i].gsi == gsi &&
		    vm.irq.table->entries[i].type == KVM_IRQ_ROUTING_MSI)
			return &vm.irq.table->entries[i];
	return NULL;
}

static void test_msix_capability(void **state)
{
	static struct tdev t;

	tdev_make(&t, 4);
	unsigned cap = t.pci.msix.cap;
	assert_int_equal(cfg_rd(1, cap, 1), 0x11);
	assert_int_equal(cfg_rd(1, cap + 2, 2), 3);          /* N-1, disabled */
	assert_int_equal(cfg_rd(1, cap + 4, 4), 0x2000 | 0);  /* table offset | BIR 0 */
	assert_int_equal(cfg_rd(1, cap + 8, 4), 0x3000 | 0);
	/* Only enable (15) and function mask (14) are writable. */
	cfg_wr(1, cap + 2, 0xffff, 2);
	assert_int_equal(cfg_rd(1, cap + 2, 2), 0xc003);
	assert_true(t.pci.msix.enabled && t.pci.msix.func_masked);
	assert_true(pci_msix_enabled(&t.pci));
	cfg_wr(1, cap + 3, 0x00, 1);
	assert_int_equal(cfg_rd(1, cap + 2, 2), 0x0003);
	assert_false(pci_msix_enabled(&t.pci));
	cfg_wr(1, cap + 4, 0, 4);
	assert_int_equal(cfg_rd(1, cap + 4, 4), 0x2000);
	/* GSIs come from the MSI range, one per vector, all different. */
	for (unsigned v = 0; v < 4; v++) {
		assert_true(t.pci.msix.vec[v].gsi >= 24);
		for (unsigned w = 0; w < v; w++)
			assert_int_not_equal(t.pci.msix.vec[v].gsi, t.pci.msix.vec[w].gsi);
		int fd = pci_msix_eventfd(&t.pci, v);
		assert_true(fd >= 0);
		assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	}
	assert_int_equal(pci_msix_eventfd(&t.pci, 4), -1);

	/* Bad placements are refused. */
	static struct pci_device d;
	unsigned hits = 0;
	pci_device_init(&d, "bad", 1, 2, 0, 0, 0);
	assert_int_equal(pci_msix_init(&d, 1, 0, 0, 0x800), -EINVAL); /* no BAR yet */
	assert_int_equal(pci_bar_define(&d, 0, 0x1000, false, nop_bar, &hits), 0);
	assert_int_equal(pci_msix_init(&d, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(pci_msix_init(&d, 65, 0, 0, 0x800), -EINVAL);
	assert_int_equal(pci_msix_init(&d, 1, 0, 4, 0x800), -EINVAL);    /* unaligned */
	assert_int_equal(pci_msix_init(&d, 1, 0, 0xff8, 0x800), -EINVAL);/* past the BAR */
	assert_int_equal(pci_msix_init(&d, 2, 0, 0, 0x10), -EINVAL);    /* overlap */
	assert_int_equal(pci_msix_init(&d, 2, 1, 0, 0x800), -EINVAL);   /* BAR 1 unused */
	assert_int_equal(pci_msix_init(&d, 64, 0, 0, 0x400), 0);
	assert_int_equal(pci_msix_init(&d, 1, 0, 0x800, 0x900), -EINVAL);/* only once */
	assert_int_equal(pci_device_add(&pbus, &d), 0);
}

static void test_msix_table(void **state)
{
	static struct tdev t;

	tdev_make(&t, 4);
	uint64_t tbl = t.pci.bars[0].addr + 0x2000, pba = t.pci.bars[0].addr + 0x3000;

	/* Reset state: zero message, every vector masked. */
	for (unsigned v = 0; v < 4; v++) {
		assert_int_equal(mmio_rd(tbl + 16 * v, 8), 0);
		assert_int_equal(mmio_rd(tbl + 16 * v + 8, 4), 0);
		assert_int_equal(mmio_rd(tbl + 16 * v + 12, 4), 1);
	}
	/* Dword writes, then qword ones. */
	mmio_wr(tbl + 16 + 0, 0xfee01000, 4);
	mmio_wr(tbl + 16 + 4, 0x1, 4);
	mmio_wr(tbl + 16 + 8, 0x4041, 4);
	assert_int_equal(t.pci.msix.vec[1].addr, 0x1fee01000ull);
	assert_int_equal(t.pci.msix.vec[1].data, 0x4041);
	assert_int_equal(mmio_rd(tbl + 16, 8), 0x1fee01000ull);
	assert_int_equal(mmio_rd(tbl + 16 + 8, 8), 0x100004041ull);  /* data | masked << 32 */
	mmio_wr(tbl + 32, 0xfee02000, 8);
	mmio_wr(tbl + 40, 0x0000000000004052ull, 8);                /* data, unmask */
	assert_int_equal(t.pci.msix.vec[2].addr, 0xfee02000);
	assert_int_equal(t.pci.msix.vec[2].data, 0x4052);
	assert_false(t.pci.msix.vec[2].masked);
	/* Reserved vector-control bits are not kept. */
	mmio_wr(tbl + 44, 0xfffffffe, 4);
	assert_int_equal(mmio_rd(tbl + 44, 4), 0);
	mmio_wr(tbl + 44, 0xffffffff, 4);
	assert_int_equal(mmio_rd(tbl + 44, 4), 1);
	assert_true(t.pci.msix.vec[2].masked);
	/* Bad lengths and misaligned accesses inside the table: dropped,
	 * reads give zeros, and they stay away from the device model. */
	mmio_wr(tbl + 0, 0xffff, 2);
	mmio_wr(tbl + 1, 0xff, 1);
	mmio_wr(tbl + 2, 0xffffffff, 4);
	mmio_wr(tbl + 4, 0xffffffffffffffffull, 8);
	assert_int_equal(t.pci.msix.vec[0].addr, 0);
	assert_int_equal(mmio_rd(tbl + 12, 2), 0);
	assert_int_equal(mmio_rd(tbl + 13, 1), 0);
	assert_int_equal(t.other, 0);
	/* Past the last entry: not MSI-X, the device model gets it. */
	mmio_wr(tbl + 16 * 4, 0x1234, 4);
	assert_int_equal(t.other, 1);
	assert_int_equal(t.last_off, 0x2000 + 64);
	assert_int_equal(mmio_rd(tbl - 4, 4), 0x5a5a5a5a);
	assert_int_equal(t.other, 2);
	for (unsigned v = 0; v < 4; v++)
		assert_int_equal(t.pci.msix.vec[v].data, v == 1 ? 0x4041 : v == 2 ? 0x4052 : 0);
	/* PBA: zeros, writes dropped; right after it belongs to the device. */
	assert_int_equal(mmio_rd(pba, 8), 0);
	mmio_wr(pba, ~0ull, 8);
	assert_int_equal(mmio_rd(pba, 4), 0);
	assert_int_equal(mmio_rd(pba + 6, 2), 0);
	assert_int_equal(t.other, 2);
	mmio_rd(pba + 8, 4);
	assert_int_equal(t.other, 3);
	/* A different BAR number is never MSI-X. */
	uint8_t b[4];
	assert_false(pci_msix_bar_access(&t.pci, 1, 0x2000, b, 4, false));
}

static void test_msix_routing(void **state)
{
	static struct tdev t;

	tdev_make(&t, 2);
	unsigned cap = t.pci.msix.cap, g0 = t.pci.msix.vec[0].gsi, g1 = t.pci.msix.vec[1].gsi;
	uint64_t tbl = t.pci.bars[0].addr + 0x2000;
	struct msix_vector *v0 = &t.pci.msix.vec[0], *v1 = &t.pci.msix.vec[1];

	mmio_wr(tbl + 0, 0xfee00000, 8);
	mmio_wr(tbl + 8, 0x21, 4);
	mmio_wr(tbl + 16, 0xfee01000, 8);
	mmio_wr(tbl + 24, 0x22, 4);
	/* Unmasked but MSI-X disabled: nothing live. */
	mmio_wr(tbl + 12, 0, 4);
	assert_false(v0->routed);
	assert_int_equal(msi_routes(), 0);

	cfg_wr(1, cap + 2, 0x8000, 2);                        /* enable */
	assert_true(v0->routed);
	assert_false(v1->routed);                             /* still masked */
	assert_int_equal(msi_routes(), 1);
	const struct kvm_irq_routing_entry *e = msi_route(g0);
	assert_non_null(e);
	assert_int_equal(e->u.msi.address_lo, 0xfee00000);
	assert_int_equal(e->u.msi.address_hi, 0);
	assert_int_equal(e->u.msi.data, 0x21);

	mmio_wr(tbl + 28, 0, 4);                              /* unmask vector 1 */
	assert_true(v1->routed);
	assert_int_equal(msi_routes(), 2);

	/* Retarget a live vector: the route changes in place. */
	mmio_wr(tbl + 0, 0xfee03000, 4);
	mmio_wr(tbl + 8, 0x31, 4);
	assert_true(v0->routed);
	assert_int_equal(msi_routes(), 2);
	e = msi_route(g0);
	assert_int_equal(e->u.msi.address_lo, 0xfee03000);
	assert_int_equal(e->u.msi.data, 0x31);

	cfg_wr(1, cap + 3, 0xc0, 1);                          /* function mask */
	assert_false(v0->routed);
	assert_false(v1->routed);
	assert_int_equal(msi_routes(), 0);
	/* Programmed while function-masked: taken when unmasked. */
	mmio_wr(tbl + 24, 0x42, 4);
	cfg_wr(1, cap + 3, 0x80, 1);
	assert_true(v0->routed && v1->routed);
	assert_int_equal(msi_route(g1)->u.msi.data, 0x42);

	mmio_wr(tbl + 12, 1, 4);                              /* mask vector 0 */
	assert_false(v0->routed);
	assert_true(v1->routed);
	assert_null(msi_route(g0));
	assert_non_null(msi_route(g1));

	cfg_wr(1, cap + 2, 0x0000, 2);                        /* disable */
	assert_false(v1->routed);
	assert_int_equal(msi_routes(), 0);
	/* The IOAPIC routes were never touched. */
	assert_int_equal(vm.irq.table->nr, 38);
}

/* pci_msix_enabled() follows every write of Message Control, whatever its
 * width, and the function mask does not turn it off: a masked function's
 * interrupts must stay pending in the eventfds rather than go to INTx. */
static void test_msix_enabled_follows_ctrl(void **state)
{
	static struct tdev t;

	tdev_make(&t, 2);
	unsigned cap = t.pci.msix.cap;
	uint64_t tbl = t.pci.bars[0].addr + 0x2000;
	struct msix_vector *v0 = &t.pci.msix.vec[0];

	mmio_wr(tbl + 0, 0xfee00000, 8);
	mmio_wr(tbl + 8, 0x21, 4);
	mmio_wr(tbl + 12, 0, 4);
	assert_false(pci_msix_enabled(&t.pci));
	cfg_wr(1, cap + 2, 0x8000, 2);                        /* enable */
	assert_true(pci_msix_enabled(&t.pci));
	assert_true(v0->routed);
	cfg_wr(1, cap + 3, 0xc0, 1);                          /* function mask */
	assert_true(pci_msix_enabled(&t.pci));
	assert_false(v0->routed);
	assert_int_equal(msi_routes(), 0);
	cfg_wr(1, cap + 3, 0x80, 1);                          /* unmask */
	assert_true(pci_msix_enabled(&t.pci));
	assert_true(v0->routed);
	cfg_wr(1, cap, 0x00000011, 4);                        /* dword: ID, next, ctrl 0 */
	assert_false(pci_msix_enabled(&t.pci));
	assert_false(v0->routed);
	cfg_wr(1, cap, 0x80000011, 4);
	assert_true(pci_msix_enabled(&t.pci));
	assert_true(v0->routed);
	/* INTx is gated by the same bit. */
	pci_intx_set(&t.pci, 1);
	assert_false(t.pci.intx_asserted);
	cfg_wr(1, cap + 2, 0x4000, 2);                        /* disabled, masked */
	assert_false(pci_msix_enabled(&t.pci));
	assert_true(t.pci.intx_asserted);
	/* A device without MSI-X never has it enabled. */
	static struct tdev u;
	tdev_make(&u, 0);
	assert_false(pci_msix_enabled(&u.pci));
	assert_int_equal(pci_msix_eventfd(&u.pci, 0), -1);
}

struct hot_path {
	struct pci_device *d;
	bool enabled;
	int efd;
};

static void *hot_path_thread(void *arg)
{
	struct hot_path *h = arg;

	h->enabled = pci_msix_enabled(h->d);
	h->efd = pci_msix_eventfd(h->d, 1);
	return NULL;
}

/* An I/O thread raising an interrupt while a vCPU holds the bus lock (a
 * config cycle, an MSI-X table write) does not wait for it. */
static void test_msix_hot_path_lock_free(void **state)
{
	static struct tdev t;
	struct hot_path h = { .efd = -2 };
	struct timespec ts;
	pthread_t th;
	int r;

	tdev_make(&t, 2);
	cfg_wr(1, t.pci.msix.cap + 2, 0x8000, 2);
	h.d = &t.pci;
	pthread_mutex_lock(&pbus.lock);
	assert_int_equal(pthread_create(&th, NULL, hot_path_thread, &h), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	r = pthread_timedjoin_np(th, NULL, &ts);
	pthread_mutex_unlock(&pbus.lock);
	if (r) {
		pthread_join(th, NULL);
		fail_msg("pci_msix_enabled/pci_msix_eventfd waited for the bus lock");
	}
	assert_true(h.enabled);
	assert_int_equal(h.efd, t.pci.msix.vec[1].efd);
}

/* ---- INTx -------------------------------------------------------------------- */

static void test_intx(void **state)
{
	static struct tdev a, b, c;

	tdev_make(&a, 1);
	tdev_make(&b, 0);
	tdev_make(&c, 0);
	/* Slot N, INTA -> GSI 16 + N % 8, as the _PRT says. */
	assert_int_equal(cfg_rd(1, 0x3d, 1), 1);
	assert_int_equal(cfg_rd(1, 0x3c, 1), 17);
	assert_int_equal(cfg_rd(2, 0x3c, 1), 18);
	assert_int_equal(cfg_rd(3, 0x3c, 1), 19);
	assert_int_equal(a.pci.intx_gsi, 17);
	assert_int_equal(PCI_INTX_GSI(7, 1), 16);
	assert_int_equal(PCI_INTX_GSI(31, 3), 18);

	pci_intx_set(&a.pci, 1);
	assert_true(a.pci.intx_asserted);
	assert_true(cfg_rd(1, 0x06, 2) & 0x08);               /* interrupt status */
	cfg_wr(1, 0x04, 0x0400, 2);                           /* INTx disable */
	assert_false(a.pci.intx_asserted);
	assert_true(cfg_rd(1, 0x06, 2) & 0x08);               /* still requested */
	cfg_wr(1, 0x04, 0x0006, 2);
	assert_true(a.pci.intx_asserted);                     /* re-raised */
	cfg_wr(1, a.pci.msix.cap + 2, 0x8000, 2);             /* MSI-X on: INTx off */
	assert_false(a.pci.intx_asserted);
	pci_intx_set(&a.pci, 0);
	pci_intx_set(&a.pci, 1);
	assert_false(a.pci.intx_asserted);
	cfg_wr(1, a.pci.msix.cap + 2, 0x0000, 2);
	assert_true(a.pci.intx_asserted);
	pci_intx_set(&a.pci, 0);
	assert_false(a.pci.intx_asserted);
	assert_false(cfg_rd(1, 0x06, 2) & 0x08);
	/* Disabled before the device raises: nothing reaches the pin. */
	cfg_wr(2, 0x04, 0x0400, 2);
	pci_intx_set(&b.pci, 1);
	assert_false(b.pci.intx_asserted);
	/* The OS rewriting the line register changes nothing in kvmini. */
	cfg_wr(3, 0x3c, 5, 1);
	pci_intx_set(&c.pci, 1);
	assert_true(c.pci.intx_asserted);
	assert_int_equal(c.pci.intx_gsi, 19);
}

/* ---- GSI routing table -------------------------------------------------------- */

static void test_irq_default_routes(void **state)
{
	const struct kvm_irq_routing *t = vm.irq.table;
	int ioapic[24], pic[16];

	memset(ioapic, -1, sizeof(ioapic));
	memset(pic, -1, sizeof(pic));
	assert_int_equal(t->nr, 15 * 2 + 8);
	for (unsigned i = 0; i < t->nr; i++) {
		const struct kvm_irq_routing_entry *e = &t->entries[i];

		assert_int_equal(e->type, KVM_IRQ_ROUTING_IRQCHIP);
		assert_true(e->gsi < 24 && e->gsi != 2);
		if (e->u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC) {
			assert_int_equal(ioapic[e->gsi], -1);
			ioapic[e->gsi] = (int)e->u.irqchip.pin;
		} else {
			assert_true(e->gsi < 16);
			assert_int_equal(e->u.irqchip.irqchip,
					 e->gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE);
			assert_int_equal(pic[e->gsi], -1);
			pic[e->gsi] = (int)e->u.irqchip.pin;
		}
	}
	/* GSI 0 (the PIT) -> IOAPIC pin 2 per the MADT override; PIC pin 0. */
	assert_int_equal(ioapic[0], 2);
	assert_int_equal(pic[0], 0);
	assert_int_equal(ioapic[2], -1);
	assert_int_equal(pic[2], -1);
	for (int g = 1; g < 24; g++) {
		if (g == 2)
			continue;
		assert_int_equal(ioapic[g], g);
		if (g < 16)
			assert_int_equal(pic[g], g % 8);
	}
	/* The MSI allocator starts above the IOAPIC pins. */
	unsigned gsi;
	assert_int_equal(irq_msi_gsi_alloc(&vm, &gsi), 0);
	assert_int_equal(gsi, 24);
}

static void test_irq_msi_routes(void **state)
{
	unsigned a, b;

	assert_int_equal(irq_msi_gsi_alloc(&vm, &a), 0);
	assert_int_equal(irq_msi_gsi_alloc(&vm, &b), 0);
	assert_int_equal(b, a + 1);
	assert_int_equal(irq_msi_route_set(&vm, a, 0xfee00000, 0x41, 1), 0);
	assert_int_equal(irq_msi_route_set(&vm, b, 0x1fee00000ull, 0x42, 1), 0);
	assert_int_equal(msi_routes(), 2);
	assert_int_equal(msi_route(b)->u.msi.address_hi, 1);
	assert_int_equal(irq_msi_route_set(&vm, a, 0xfee00000, 0x51, 1), 0);
	assert_int_equal(msi_routes(), 2);
	assert_int_equal(msi_route(a)->u.msi.data, 0x51);
	assert_int_equal(irq_msi_route_set(&vm, a, 0, 0, 0), 0);
	assert_int_equal(irq_msi_route_set(&vm, a, 0, 0, 0), 0);  /* idempotent */
	assert_null(msi_route(a));
	assert_non_null(msi_route(b));
	/* Only allocated MSI GSIs: never an IOAPIC pin, never a future GSI. */
	assert_int_equal(irq_msi_route_set(&vm, 17, 0xfee00000, 1, 1), -EINVAL);
	assert_int_equal(irq_msi_route_set(&vm, b + 1, 0xfee00000, 1, 1), -EINVAL);
	assert_int_equal(vm.irq.table->nr, 38 + 1);
	/* irqfds need an fd; without a VM fd they are bookkeeping only. */
	assert_int_equal(irq_irqfd_assign(&vm, -1, a), -EBADF);
	assert_int_equal(irq_irqfd_assign(&vm, 0, a), 0);
	assert_int_equal(irq_irqfd_deassign(&vm, 0, a), 0);
	/* The allocator runs out at IRQ_GSI_MAX. */
	unsigned g = 0;
	int err;
	while ((err = irq_msi_gsi_alloc(&vm, &g)) == 0)
		;
	assert_int_equal(err, -ENOSPC);
	assert_int_equal(g, IRQ_GSI_MAX - 1);
}

/* ---- teardown and printing ----------------------------------------------------- */

static void test_bus_free(void **state)
{
	static struct tdev t;

	tdev_make(&t, 3);
	int fd = pci_msix_eventfd(&t.pci, 2);
	cfg_wr(1, t.pci.msix.cap + 2, 0x8000, 2);
	mmio_wr(t.pci.bars[0].addr + 0x2000 + 12, 0, 4);
	assert_true(t.pci.msix.vec[0].routed);
	pci_bus_free(&pbus);
	assert_false(t.pci.msix.vec[0].routed);
	assert_int_equal(msi_routes(), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);             /* closed */
	assert_int_equal(pci_msix_eventfd(&t.pci, 2), -1);
	pci_bus_free(&pbus);                                  /* twice is harmless */
}

/* A device model freeing its function before the bus goes away. */
static void test_device_release(void **state)
{
	static struct tdev t, u;

	tdev_make(&t, 2);
	tdev_make(&u, 1);
	int fd = pci_msix_eventfd(&t.pci, 1);
	cfg_wr(1, t.pci.msix.cap + 2, 0x8000, 2);
	mmio_wr(t.pci.bars[0].addr + 0x2000 + 16 + 12, 0, 4);
	assert_true(t.pci.msix.vec[1].routed);
	pci_device_release(&t.pci);
	assert_false(t.pci.msix.vec[1].routed);
	assert_int_equal(msi_routes(), 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(cfg_rd(1, 0x00, 4), 0xffffffff);     /* off the bus */
	assert_int_equal(cfg_rd(2, 0x00, 4), 0x10421af4);     /* the other stays */
	pci_device_release(&t.pci);                           /* idempotent */
	/* The memory may go now: pci_bus_free (teardown) no longer looks. */
	memset(&t, 0xa5, sizeof(t));
	/* Never added: only its eventfds to close. */
	static struct pci_device d;
	unsigned hits = 0;
	pci_device_init(&d, "lone", 1, 2, 0, 0, 0);
	assert_int_equal(pci_bar_define(&d, 0, 0x1000, false, nop_bar, &hits), 0);
	assert_int_equal(pci_msix_init(&d, 1, 0, 0, 0x800), 0);
	fd = pci_msix_eventfd(&d, 0);
	pci_device_release(&d);
	assert_int_equal(fcntl(fd, F_GETFD), -1);
}

static void test_print(void **state)
{
	static struct tdev t;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	tdev_make(&t, 2);
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	pci_print_devices(f, &pbus);
	fclose(f);
	assert_non_null(strstr(buf, "00:00.0 8086:29c0"));
	assert_non_null(strstr(buf, "00:01.0 1af4:1042 tdev"));
	assert_non_null(strstr(buf, "BAR0 0xc0000000+0x4000 (64-bit)"));
	assert_non_null(strstr(buf, "MSI-X 2 vectors"));
	assert_non_null(strstr(buf, "INTA GSI 17"));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_conf1_latch),
		T(test_host_bridge),
		T(test_data_port_offsets),
		T(test_absent_reads_ones),
		T(test_bar_sizing),
		T(test_bar_fixed),
		T(test_bar_placement),
		T(test_bar_errors),
		T(test_slots_full),
		T(test_capability_chain),
		T(test_wmask),
		T(test_msix_capability),
		T(test_msix_table),
		T(test_msix_routing),
		T(test_msix_enabled_follows_ctrl),
		T(test_msix_hot_path_lock_free),
		T(test_intx),
		T(test_irq_default_routes),
		T(test_irq_msi_routes),
		T(test_bus_free),
		T(test_device_release),
		T(test_print),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
