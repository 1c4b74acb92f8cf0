/* ACPI table lookup: RSDP (from the PVH start info, else the BIOS area),
 * XSDT (or the RSDT of an ACPI 1.0 RSDP), each table's checksum, and the
 * processors of the MADT. */
#include "guest.h"

struct rsdp {
	char sig[8];
	uint8_t checksum;
	char oem_id[6];
	uint8_t revision;
	uint32_t rsdt;
	/* revision >= 2 */
	uint32_t length;
	uint64_t xsdt;
	uint8_t xchecksum;
	uint8_t reserved[3];
} __attribute__((packed));

static uint8_t sum8(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t s = 0;
	while (n--)
		s = (uint8_t)(s + *b++);
	return s;
}

static const struct rsdp *rsdp_scan(uint64_t start, uint64_t end)
{
	for (uint64_t a = start; a + 20 <= end; a += 16) {
		const struct rsdp *r = (const struct rsdp *)a;
		if (memcmp(r->sig, "RSD PTR ", 8) == 0 && sum8(r, 20) == 0)
			return r;
	}
	return NULL;
}

static const struct rsdp *rsdp_find(void)
{
	const struct rsdp *r = NULL;
	if (start_info && start_info->rsdp_paddr) {
		r = (const struct rsdp *)start_info->rsdp_paddr;
		CHECK(memcmp(r->sig, "RSD PTR ", 8) == 0, "acpi: no RSDP signature at rsdp_paddr %p",
		      (const void *)r);
	} else {
		/* Not in the start info (allowed by PVH): look where a BIOS puts it. */
		uint64_t bda = 0x40e;             /* BIOS data area: EBDA segment */
		__asm__("" : "+r"(bda));          /* a pointer gcc must not reason about */
		uint64_t ebda = (uint64_t)*(volatile uint16_t *)bda << 4;
		if (ebda >= 0x80000 && ebda < 0xa0000)
			r = rsdp_scan(ebda, ebda + 1024);
		if (!r)
			r = rsdp_scan(0xe0000, 0x100000);
		CHECK(r, "acpi: no RSDP (rsdp_paddr is 0 and none in 0xe0000-0xfffff)");
	}
	CHECK(sum8(r, 20) == 0, "acpi: RSDP checksum (first 20 bytes)");
	if (r->revision >= 2) {
		CHECK(r->length >= 36, "acpi: RSDP length %u", r->length);
		CHECK(sum8(r, r->length) == 0, "acpi: RSDP extended checksum (%u bytes)", r->length);
	}
	return r;
}

static void table_check(const struct acpi_sdt *t)
{
	CHECK(t, "acpi: null table pointer");
	CHECK(t->length >= sizeof(*t) && t->length < (1u << 20), "acpi: table %p length %u",
	      (const void *)t, t->length);
	CHECK(sum8(t, t->length) == 0, "acpi: %c%c%c%c checksum", t->sig[0], t->sig[1], t->sig[2],
	      t->sig[3]);
}

const struct acpi_sdt *acpi_find(const char *sig)
{
	static const struct rsdp *r;
	static const struct acpi_sdt *root;
	static unsigned entry_size, nentries;
	if (!r) {
		r = rsdp_find();
		if (r->revision >= 2 && r->xsdt) {
			root = (const struct acpi_sdt *)r->xsdt;
			entry_size = 8;
			table_check(root);
			CHECK(memcmp(root->sig, "XSDT", 4) == 0, "acpi: xsdt signature");
		} else {
			root = (const struct acpi_sdt *)(uint64_t)r->rsdt;
			entry_size = 4;
			table_check(root);
			CHECK(memcmp(root->sig, "RSDT", 4) == 0, "acpi: rsdt signature");
		}
		nentries = (root->length - (unsigned)sizeof(*root)) / entry_size;
		/* Validate every table once, so a bad checksum anywhere fails. */
		for (unsigned i = 0; i < nentries; i++) {
			uint64_t a = 0;
			memcpy(&a, (const uint8_t *)(root + 1) + i * entry_size, entry_size);
			CHECK(a && a < (1ULL << 32), "acpi: table %u at %lx", i, a);
			table_check((const struct acpi_sdt *)a);
		}
		say("acpi: rsdp=%p (%s) rev=%u %s=%p tables=%u", (const void *)r,
		    start_info && start_info->rsdp_paddr ? "start info" : "scanned", r->revision,
		    entry_size == 8 ? "xsdt" : "rsdt", (const void *)root, nentries);
	}
	for (unsigned i = 0; i < nentries; i++) {
		uint64_t a = 0;
		memcpy(&a, (const uint8_t *)(root + 1) + i * entry_size, entry_size);
		const struct acpi_sdt *t = (const struct acpi_sdt *)a;
		if (memcmp(t->sig, sig, 4) == 0)
			return t;
	}
	return NULL;
}

unsigned acpi_cpus(uint32_t *ids, unsigned max)
{
	const struct acpi_sdt *madt = acpi_find("APIC");
	CHECK(madt, "acpi: no MADT");
	CHECK(madt->length >= sizeof(*madt) + 8, "acpi: MADT too short");
	const uint8_t *p = (const uint8_t *)madt + sizeof(*madt) + 8; /* LAPIC addr, flags */
	const uint8_t *end = (const uint8_t *)madt + madt->length;
	unsigned n = 0;
	while (p < end) {
		CHECK(end - p >= 2 && p[1] >= 2 && p[1] <= end - p, "acpi: MADT entry at %p",
		      (const void *)p);
		uint32_t id, flags;
		if (p[0] == 0) {              /* Processor Local APIC */
			CHECK(p[1] >= 8, "acpi: MADT local APIC entry length %u", p[1]);
			id = p[3];
			memcpy(&flags, p + 4, 4);
		} else if (p[0] == 9) {       /* Processor Local x2APIC */
			CHECK(p[1] >= 16, "acpi: MADT x2APIC entry length %u", p[1]);
			memcpy(&id, p + 4, 4);
			memcpy(&flags, p + 8, 4);
		} else {
			p += p[1];
			continue;
		}
		if (flags & 1) {              /* enabled */
			if (n < max)
				ids[n] = id;
			n++;
		}
		p += p[1];
	}
	return n;
}
