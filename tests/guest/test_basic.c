/* test=basic: UART output, port I/O and MMIO to unclaimed addresses (both
 * must read all-ones), the ACPI tables and the CPU count of the MADT.
 *
 * Exact accesses, for checking --trace-exits counts:
 *   port PORT_UNCLAIMED (0x450): pio_reads (default 1000) 1-byte reads,
 *     1 2-byte read, 1 4-byte read, 1 1-byte write;
 *   MMIO_UNCLAIMED (0xd0000000): reads of 1, 2, 4 and 8 bytes, one 4-byte
 *     write, one 4-byte read.
 * Command line: pio_reads=N, expect_cpus=N (fail unless the MADT has N),
 * unclaimed_mmio=any (do not check the MMIO values; for QEMU). */
#include "guest.h"

static void test_basic(void)
{
	uint64_t reads = cmdline_get_u64("pio_reads", 1000);
	uint64_t t0 = rdtsc();
	for (uint64_t i = 0; i < reads; i++) {
		uint8_t v = inb(PORT_UNCLAIMED);
		CHECK(v == 0xff, "pio: inb(%x) = %x, want 0xff", PORT_UNCLAIMED, v);
	}
	uint64_t t1 = rdtsc();
	uint16_t w = inw(PORT_UNCLAIMED);
	CHECK(w == 0xffff, "pio: inw(%x) = %x, want 0xffff", PORT_UNCLAIMED, w);
	uint32_t l = inl(PORT_UNCLAIMED);
	CHECK(l == 0xffffffff, "pio: inl(%x) = %x, want 0xffffffff", PORT_UNCLAIMED, l);
	outb(PORT_UNCLAIMED, 0x5a);
	say("pio: %lu reads of port %x ok, %lu tsc ticks each", reads, PORT_UNCLAIMED,
	    reads ? (t1 - t0) / reads : 0);

	/* QEMU reads unassigned memory as 0, so its runs pass unclaimed_mmio=any
	 * (the accesses still happen, the values are not checked). */
	char mode[8];
	bool ones = !cmdline_get("unclaimed_mmio", mode, sizeof(mode)) || strcmp(mode, "any") != 0;
	uint8_t b = mmio_read8(MMIO_UNCLAIMED);
	uint16_t h = mmio_read16(MMIO_UNCLAIMED);
	uint32_t d = mmio_read32(MMIO_UNCLAIMED);
	uint64_t q = mmio_read64(MMIO_UNCLAIMED);
	mmio_write32(MMIO_UNCLAIMED, 0x12345678);
	uint32_t d2 = mmio_read32(MMIO_UNCLAIMED);
	if (ones) {
		CHECK(b == 0xff, "mmio: read8(%lx) = %x, want 0xff", MMIO_UNCLAIMED, b);
		CHECK(h == 0xffff, "mmio: read16(%lx) = %x, want 0xffff", MMIO_UNCLAIMED, h);
		CHECK(d == 0xffffffff, "mmio: read32(%lx) = %x, want 0xffffffff", MMIO_UNCLAIMED, d);
		CHECK(q == ~0ULL, "mmio: read64(%lx) = %lx, want all-ones", MMIO_UNCLAIMED, q);
		CHECK(d2 == 0xffffffff, "mmio: read32(%lx) after a write = %x, want 0xffffffff",
		      MMIO_UNCLAIMED, d2);
	}
	say("mmio: unclaimed %lx %s", MMIO_UNCLAIMED,
	    ones ? "reads all-ones, write dropped" : "accessed (values not checked)");

	uint32_t ids[64];
	unsigned n = acpi_cpus(ids, 64);
	say("cpus=%u", n);
	CHECK(n >= 1, "acpi: no enabled processor in the MADT");
	uint64_t want = cmdline_get_u64("expect_cpus", 0);
	CHECK(!want || want == n, "acpi: MADT lists %u enabled CPUs, expect_cpus=%lu", n, want);
}
GUEST_TEST("basic", test_basic, "UART, unclaimed PIO/MMIO read all-ones, ACPI, cpus=N");
