/* ACPI tables, checked the way a guest reads them: start at the RSDP and
 * follow addresses through the bytes only, never through kvmini's structs. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "boot/acpi.h"
#include "vmm/layout.h"

static uint8_t mem[LAYOUT_ACPI_SIZE];

/* ---- guest-side byte access -------------------------------------------- */

static const uint8_t *gp(uint64_t gpa, uint64_t len)
{
	assert_true(gpa >= LAYOUT_ACPI_BASE);
	assert_true(gpa - LAYOUT_ACPI_BASE + len <= sizeof(mem));
	return mem + (gpa - LAYOUT_ACPI_BASE);
}

static uint64_t rd(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

/* Checks an SDT's signature, length and checksum; returns its bytes. */
static const uint8_t *table(uint64_t gpa, const char *sig, uint32_t *len)
{
	const uint8_t *h = gp(gpa, 36);

	assert_memory_equal(h, sig, 4);
	*len = (uint32_t)rd(h + 4, 4);
	assert_true(*len >= 36);
	h = gp(gpa, *len);
	assert_int_equal(sum(h, *len), 0);
	assert_memory_equal(h + 10, "KVMINI", 6);
	return h;
}

/* ---- a small AML reader, enough for what kvmini emits ------------------- */

struct dsdt_found {
	bool s5, com1, rtc, pci0;
	bool in_com1;         /* inside Device (COM1) while walking */
	bool in_pci0;         /* inside Device (PCI0) while walking */
	uint64_t pci0_hid;
	unsigned prt_entries; /* _PRT packages {0xSSSSFFFF, pin, 0, GSI} seen */
	bool prt_ok;          /* every one routes to PCI_INTX_GSI(slot, pin) */
	uint64_t rtc_hid;
	uint64_t s5_typ;
	uint64_t com1_hid, com1_uid;
	uint8_t crs[32];
	size_t crs_len;
	/* \_SB.GED_ and \_SB.PWRB, the power button */
	bool in_ged, in_pwrb, pwrb;
	char ged_hid[16];
	uint8_t ged_crs[32];
	size_t ged_crs_len;
	uint64_t pwrb_hid;
	bool region_ok, field_ok;
	uint8_t evt[64];      /* _EVT's flags byte and body */
	size_t evt_len;
};

static size_t pkglen(const uint8_t *p, size_t *val)
{
	size_t n = (p[0] >> 6) + 1;

	if (n == 1) {
		*val = p[0] & 0x3f;
	} else {
		assert_int_equal(p[0] & 0x30, 0); /* bits 5:4 reserved */
		*val = p[0] & 0x0f;
		for (size_t i = 1; i < n; i++)
			*val |= (size_t)p[i] << (4 + 8 * (i - 1));
	}
	return n;
}

/* Reads a NameString into "\\A___.B___" form; returns bytes consumed. */
static size_t namestring(const uint8_t *p, const uint8_t *end, char *out)
{
	const uint8_t *s = p;
	size_t nsegs = 1;

	if (*s == '\\')
		*out++ = *s++;
	if (*s == 0x2e)
		nsegs = 2, s++;
	else if (*s == 0x2f)
		nsegs = s[1], s += 2;
	assert_true(s + 4 * nsegs <= end);
	for (size_t i = 0; i < nsegs; i++, s += 4) {
		for (int j = 0; j < 4; j++)
			assert_true((s[j] >= 'A' && s[j] <= 'Z') || s[j] == '_' ||
				    (j && s[j] >= '0' && s[j] <= '9'));
		memcpy(out, s, 4);
		out += 4;
		if (i + 1 < nsegs)
			*out++ = '.';
	}
	*out = 0;
	return (size_t)(s - p);
}

static size_t integer(const uint8_t *p, uint64_t *v)
{
	switch (p[0]) {
	case 0x00: *v = 0; return 1;
	case 0x01: *v = 1; return 1;
	case 0xff: *v = ~0ull; return 1;
	case 0x0a: *v = rd(p + 1, 1); return 2;
	case 0x0b: *v = rd(p + 1, 2); return 3;
	case 0x0c: *v = rd(p + 1, 4); return 5;
	case 0x0e: *v = rd(p + 1, 8); return 9;
	}
	fail_msg("not an integer: opcode 0x%02x", p[0]);
	return 0;
}

/* A DataRefObject after a NameOp: integer, Package of integers or Buffer.
 * Checks that every PkgLength ends exactly where its contents end. */
static size_t data_object(const uint8_t *p, const uint8_t *end, const char *name,
			  struct dsdt_found *f)
{
	size_t len, n, off;
	uint64_t v;

	if (p[0] == 0x12) { /* Package of integers, or of such packages (_PRT) */
		uint64_t el[4] = { 0 };

		n = pkglen(p + 1, &len);
		assert_true(p + 1 + len <= end);
		unsigned nel = p[1 + n];
		off = 1 + n + 1;
		for (unsigned i = 0; i < nel; i++) {
			if (p[off] == 0x12) {
				off += data_object(p + off, p + 1 + len, name, f);
				continue;
			}
			off += integer(p + off, &v);
			if (i < 4)
				el[i] = v;
			if (i == 0 && !strcmp(name + (name[0] == '\\'), "_S5_"))
				f->s5 = true, f->s5_typ = v;
		}
		if (f->in_pci0 && !strcmp(name, "_PRT") && nel == 4) {
			uint64_t slot = el[0] >> 16;

			f->prt_entries++;
			if ((el[0] & 0xffff) != 0xffff || slot < 1 || slot > 31 || el[1] > 3 ||
			    el[2] != 0 || el[3] != 16 + (slot + el[1]) % 8)
				f->prt_ok = false;
		}
		assert_int_equal(off, 1 + len);
		return off;
	}
	if (p[0] == 0x0d) { /* String */
		const uint8_t *nul = memchr(p + 1, 0, (size_t)(end - p - 1));

		assert_non_null(nul);
		if (f->in_ged && !strcmp(name, "_HID") && (size_t)(nul - p) <= sizeof(f->ged_hid))
			memcpy(f->ged_hid, p + 1, (size_t)(nul - p));
		return (size_t)(nul - p) + 1;
	}
	if (p[0] == 0x11) { /* Buffer */
		n = pkglen(p + 1, &len);
		assert_true(p + 1 + len <= end);
		off = 1 + n + integer(p + 1 + n, &v);
		assert_int_equal(off + v, 1 + len);
		if (f->in_com1 && !strcmp(name, "_CRS") && v <= sizeof(f->crs)) {
			memcpy(f->crs, p + off, v);
			f->crs_len = v;
		}
		if (f->in_ged && !strcmp(name, "_CRS") && v <= sizeof(f->ged_crs)) {
			memcpy(f->ged_crs, p + off, v);
			f->ged_crs_len = v;
		}
		return 1 + len;
	}
	off = integer(p, &v);
	if (!strcmp(name, "_HID")) {
		if (f->in_pwrb)
			f->pwrb_hid = v;
		else if (f->in_pci0)
			f->pci0_hid = v;
		else if (f->in_com1)
			f->com1_hid = v;
		else
			f->rtc_hid = v;
	}
	if (f->in_com1 && !strcmp(name, "_UID"))
		f->com1_uid = v;
	return off;
}

/* TermList of Name, Scope and Device objects, consumed exactly. \_S5_ may
 * be written with or without the root prefix: it sits at the root. */
static void term_list(const uint8_t *p, const uint8_t *end, struct dsdt_found *f)
{
	char name[64];

	while (p < end) {
		size_t len, n;

		if (p[0] == 0x08) { /* NameOp NameString DataRefObject */
			p += 1 + namestring(p + 1, end, name);
			p += data_object(p, end, name, f);
		} else if (p[0] == 0x5b && p[1] == 0x80) { /* OperationRegion */
			uint64_t off, rlen;

			p += 2 + namestring(p + 2, end, name);
			uint8_t space = *p++;
			p += integer(p, &off);
			p += integer(p, &rlen);
			assert_true(f->in_ged);
			f->region_ok = !strcmp(name, "GDST") && space == 1 && off == PORT_ACPI_GED &&
				       rlen == 1;
		} else if (p[0] == 0x5b && p[1] == 0x81) { /* Field: one byte-wide field */
			n = pkglen(p + 2, &len);
			const uint8_t *fend = p + 2 + len;

			assert_true(fend <= end);
			n += namestring(p + 2 + n, fend, name);
			const uint8_t *q = p + 2 + n;
			assert_true(f->in_ged);
			f->field_ok = !strcmp(name, "GDST") && q + 6 == fend && q[0] == 0x41 &&
				      !memcmp(q + 1, "GDAT", 4) && q[5] == 8;
			p = fend;
		} else if (p[0] == 0x14) { /* Method: kept whole, compared below */
			n = pkglen(p + 1, &len);
			const uint8_t *mend = p + 1 + len;

			assert_true(mend <= end);
			n += namestring(p + 1 + n, mend, name);
			assert_true(f->in_ged);
			assert_string_equal(name, "_EVT");
			f->evt_len = (size_t)(mend - (p + 1 + n));
			assert_true(f->evt_len <= sizeof(f->evt));
			memcpy(f->evt, p + 1 + n, f->evt_len);
			p = mend;
		} else if (p[0] == 0x10 || (p[0] == 0x5b && p[1] == 0x82)) { /* Scope, Device */
			const uint8_t *body = p + (p[0] == 0x5b ? 2 : 1);

			n = pkglen(body, &len);
			assert_true(body + len <= end);
			n += namestring(body + n, body + len, name);
			bool was_com1 = f->in_com1, was_pci0 = f->in_pci0, was_ged = f->in_ged,
			     was_pwrb = f->in_pwrb;
			if (!strcmp(name, "GED_"))
				f->in_ged = true;
			if (!strcmp(name, "PWRB"))
				f->pwrb = f->in_pwrb = true;
			if (!strcmp(name, "COM1"))
				f->com1 = f->in_com1 = true;
			if (!strcmp(name, "PCI0"))
				f->pci0 = f->in_pci0 = true;
			if (!strcmp(name, "RTC_"))
				f->rtc = true;
			term_list(body + n, body + len, f);
			f->in_com1 = was_com1;
			f->in_pci0 = was_pci0;
			f->in_ged = was_ged;
			f->in_pwrb = was_pwrb;
			p = body + len;
		} else {
			fail_msg("unexpected AML opcode 0x%02x", p[0]);
		}
	}
	assert_ptr_equal(p, end);
}

/* ---- the walk --------------------------------------------------------- */

static void check_gas_io8(const uint8_t *g, uint16_t port)
{
	assert_int_equal(g[0], 1); /* System I/O */
	assert_int_equal(g[1], 8); /* bit width */
	assert_int_equal(g[2], 0); /* bit offset */
	assert_int_equal(g[3], 1); /* byte access */
	assert_int_equal(rd(g + 4, 8), port);
}

static void check_fadt(const uint8_t *t, uint32_t len)
{
	uint32_t flags = (uint32_t)rd(t + 112, 4);
	uint16_t boot = (uint16_t)rd(t + 109, 2);

	assert_int_equal(len, 276);
	assert_int_equal(t[8], 6);
	assert_true(flags & (1u << 20));        /* HW_REDUCED_ACPI */
	assert_true(flags & (1u << 10));        /* RESET_REG_SUP */
	assert_true(flags & (1u << 4));         /* no fixed power button */
	assert_true(flags & (1u << 5));         /* no fixed sleep button */
	assert_false(boot & (1u << 1));         /* no 8042 declared (reset-only i8042) */
	assert_true(boot & (1u << 2));          /* VGA not present */
	assert_false(boot & (1u << 3));         /* MSIs work */
	assert_false(boot & (1u << 5));         /* CMOS RTC present */
	check_gas_io8(t + 116, PORT_ACPI_RESET);
	assert_int_equal(t[128], ACPI_RESET_VALUE);
	check_gas_io8(t + 244, PORT_ACPI_SLEEP_CTL);
	check_gas_io8(t + 256, PORT_ACPI_SLEEP_STS);
	assert_int_equal(rd(t + 36, 4), 0);     /* no FACS (optional when reduced) */
	assert_int_equal(rd(t + 46, 2), 0);     /* no SCI */
}

static void check_dsdt(uint64_t gpa)
{
	static const uint8_t com1_crs[] = {
		0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, /* IO 0x3F8, len 8 */
		0x22, 0x10, 0x00,                               /* IRQNoFlags {4} */
		0x79, 0x00,                                     /* end tag */
	};
	struct dsdt_found f = { .prt_ok = true };
	uint32_t len;
	const uint8_t *t = table(gpa, "DSDT", &len);

	assert_int_equal(t[8], 2);
	term_list(t + 36, t + len, &f);
	assert_true(f.s5);
	assert_int_equal(f.s5_typ, ACPI_S5_SLP_TYP);
	assert_true(f.com1);
	assert_int_equal(f.com1_hid, 0x0105d041); /* EisaId("PNP0501") */
	assert_int_equal(f.com1_uid, 0);
	assert_true(f.rtc);
	assert_int_equal(f.rtc_hid, 0x000bd041); /* EisaId("PNP0B00") */
	assert_int_equal(f.crs_len, sizeof(com1_crs));
	assert_memory_equal(f.crs, com1_crs, sizeof(com1_crs));
	/* PCI root bridge: INTA..INTD of slots 1..31 -> GSI 16 + (slot + pin) % 8. */
	assert_true(f.pci0);
	assert_int_equal(f.pci0_hid, 0x030ad041); /* EisaId("PNP0A03") */
	assert_int_equal(f.prt_entries, 31 * 4);
	assert_true(f.prt_ok);
	/* The power button: a GED whose _EVT reads the event register and
	 * notifies PWRB (ACPI 6.3 sections 5.6.9 and 4.8.3.1). */
	static const uint8_t ged_crs[] = {
		0x89, 0x06, 0x00, 0x03, 0x01, IRQ_GED, 0, 0, 0, /* Interrupt(Consumer, Edge, High) */
		0x79, 0x00,
	};
	static const uint8_t evt[] = {
		0x09,                                   /* 1 argument, Serialized */
		0x70, 'G', 'D', 'A', 'T', 0x60,         /* Store (GDAT, Local0) */
		0xa0, 0x12,                             /* If, PkgLength 18 */
		0x7b, 0x60, 0x01, 0x00,                 /* And (Local0, One, ) */
		0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', /* Notify (\_SB.PWRB, */
		0x0a, 0x80,                             /* 0x80) */
	};
	assert_string_equal(f.ged_hid, "ACPI0013");
	assert_int_equal(f.ged_crs_len, sizeof(ged_crs));
	assert_memory_equal(f.ged_crs, ged_crs, sizeof(ged_crs));
	assert_true(f.region_ok);
	assert_true(f.field_ok);
	assert_int_equal(f.evt_len, sizeof(evt));
	assert_memory_equal(f.evt, evt, sizeof(evt));
	assert_true(f.pwrb);
	assert_int_equal(f.pwrb_hid, 0x0c0cd041); /* EisaId("PNP0C0C") */
}

static void check_madt(const uint8_t *t, uint32_t len, unsigned ncpus)
{
	uint8_t *seen = calloc(ncpus, 1);
	unsigned ncpu_entries = 0, nioapic = 0, niso = 0, nnmi = 0;

	assert_non_null(seen);
	assert_int_equal(t[8], 5);
	assert_int_equal(rd(t + 36, 4), LAYOUT_LAPIC);
	for (uint32_t off = 44; off < len; off += t[off + 1]) {
		const uint8_t *e = t + off;
		uint32_t id = 0;

		assert_true(off + 2 <= len && e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0: /* Processor Local APIC */
			assert_int_equal(e[1], 8);
			id = e[3];
			assert_int_equal(e[2], id);             /* UID = APIC ID */
			assert_true(id < 255);
			assert_true(rd(e + 4, 4) & 1);          /* enabled */
			break;
		case 9: /* Processor Local x2APIC */
			assert_int_equal(e[1], 16);
			id = (uint32_t)rd(e + 4, 4);
			assert_true(id >= 255);
			assert_int_equal(rd(e + 12, 4), id);
			assert_true(rd(e + 8, 4) & 1);
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(rd(e + 4, 4), LAYOUT_IOAPIC);
			assert_int_equal(rd(e + 8, 4), 0);      /* GSI base */
			nioapic++;
			continue;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0);              /* ISA */
			assert_int_equal(e[3], 0);              /* IRQ0 */
			assert_int_equal(rd(e + 4, 4), 2);      /* -> GSI 2 */
			assert_int_equal(rd(e + 8, 2) & 0xc, 0);/* not level-triggered */
			niso++;
			continue;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff);           /* all processors */
			assert_int_equal(e[5], 1);              /* LINT1 */
			nnmi++;
			continue;
		case 10:
			assert_int_equal(e[1], 12);
			assert_true(ncpus > 255);
			continue;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		assert_true(id < ncpus);
		assert_int_equal(seen[id], 0);
		seen[id] = 1;
		ncpu_entries++;
	}
	assert_int_equal(ncpu_entries, ncpus);
	assert_int_equal(nioapic, 1);
	assert_int_equal(niso, 1);
	assert_int_equal(nnmi, 1);
	free(seen);
}

/* Builds for ncpus and walks everything; returns the end of the last table
 * as an offset into mem. */
static size_t build_and_walk(unsigned ncpus)
{
	struct acpi_config cfg = { .ncpus = ncpus };
	uint64_t rsdp_gpa = 0, xsdt;
	const uint8_t *r, *x;
	uint32_t xlen, len;
	bool fadt = false, madt = false;
	size_t end;

	memset(mem, 0xa5, sizeof(mem));
	assert_int_equal(acpi_build(mem, sizeof(mem), LAYOUT_ACPI_BASE, &cfg, &rsdp_gpa), 0);
	assert_int_equal(rsdp_gpa & 15, 0);
	assert_true(rsdp_gpa >= 0xe0000 && rsdp_gpa + 36 <= 0x100000);

	r = gp(rsdp_gpa, 36);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum(r, 20), 0);
	assert_int_equal(r[15], 2);
	assert_int_equal(rd(r + 20, 4), 36);
	assert_int_equal(sum(r, 36), 0);
	xsdt = rd(r + 24, 8);

	x = table(xsdt, "XSDT", &xlen);
	assert_int_equal((xlen - 36) % 8, 0);
	end = xsdt + xlen - LAYOUT_ACPI_BASE;
	for (uint32_t off = 36; off < xlen; off += 8) {
		uint64_t gpa = rd(x + off, 8);
		const uint8_t *t = gp(gpa, 4);

		if (!memcmp(t, "FACP", 4)) {
			assert_false(fadt);
			fadt = true;
			t = table(gpa, "FACP", &len);
			check_fadt(t, len);
			check_dsdt(rd(t + 140, 8));
		} else if (!memcmp(t, "APIC", 4)) {
			assert_false(madt);
			madt = true;
			t = table(gpa, "APIC", &len);
			check_madt(t, len, ncpus);
		} else {
			fail_msg("unexpected table %.4s", (const char *)t);
		}
		if (gpa + len - LAYOUT_ACPI_BASE > end)
			end = gpa + len - LAYOUT_ACPI_BASE;
	}
	assert_true(fadt && madt);
	return end;
}

static void test_cpus_1(void **state) { build_and_walk(1); }
static void test_cpus_2(void **state) { build_and_walk(2); }
static void test_cpus_8(void **state) { build_and_walk(8); }
static void test_cpus_255(void **state) { build_and_walk(255); }
/* CPU 255 and up have no xAPIC ID: they get x2APIC entries. */
static void test_cpus_300(void **state) { build_and_walk(300); }

static void test_too_small(void **state)
{
	struct acpi_config cfg = { .ncpus = 8 };
	uint64_t rsdp;
	size_t need = build_and_walk(8);
	size_t sizes[] = { 0, 1, 35, 36, 100, need / 2, need - 1 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(mem, 0xa5, sizeof(mem));
		assert_int_equal(acpi_build(mem, sizes[i], LAYOUT_ACPI_BASE, &cfg, &rsdp), -ENOSPC);
		/* Nothing written past the given size. */
		for (size_t j = sizes[i]; j < sizes[i] + 512; j++)
			assert_int_equal(mem[j], 0xa5);
	}
	assert_int_equal(acpi_build(mem, need, LAYOUT_ACPI_BASE, &cfg, &rsdp), 0);

	/* Absurd CPU counts fail cleanly instead of overrunning. */
	cfg.ncpus = 1u << 20;
	assert_int_equal(acpi_build(mem, sizeof(mem), LAYOUT_ACPI_BASE, &cfg, &rsdp), -ENOSPC);
}

static void test_invalid(void **state)
{
	struct acpi_config cfg = { .ncpus = 0 };
	uint64_t rsdp;

	assert_int_equal(acpi_build(mem, sizeof(mem), LAYOUT_ACPI_BASE, &cfg, &rsdp), -EINVAL);
	cfg.ncpus = 1;
	assert_int_equal(acpi_build(NULL, sizeof(mem), LAYOUT_ACPI_BASE, &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(mem, sizeof(mem), LAYOUT_ACPI_BASE, NULL, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(mem, sizeof(mem), LAYOUT_ACPI_BASE, &cfg, NULL), -EINVAL);
	/* The RSDP must be 16-byte aligned and where guests scan for it. */
	assert_int_equal(acpi_build(mem, sizeof(mem), LAYOUT_ACPI_BASE + 8, &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(mem, sizeof(mem), 0x100000, &cfg, &rsdp), -EINVAL);
	assert_int_equal(acpi_build(mem, sizeof(mem), 0xd0000, &cfg, &rsdp), -EINVAL);
}

/* The DSDT through an independent reader: ACPICA's disassembler (iasl, as
 * in Debian's acpica-tools), which rejects AML it cannot parse, must give
 * back the power button as written in boot/acpi.c. */
static void test_dsdt_iasl(void **state)
{
	struct acpi_config cfg = { .ncpus = 2 };
	uint64_t rsdp = 0;
	uint32_t len;
	char dir[] = "/tmp/kvmini-acpi-XXXXXX", path[64], cmd[256];

	if (system("iasl -v >/dev/null 2>&1") != 0) {
		print_message("iasl (acpica-tools) is not installed: cannot disassemble\n");
		skip();
	}
	assert_int_equal(acpi_build(mem, sizeof(mem), LAYOUT_ACPI_BASE, &cfg, &rsdp), 0);
	const uint8_t *x = table(rd(gp(rsdp, 36) + 24, 8), "XSDT", &len);
	const uint8_t *fadt = NULL;
	for (uint32_t off = 36; off < len; off += 8)
		if (!memcmp(gp(rd(x + off, 8), 4), "FACP", 4))
			fadt = gp(rd(x + off, 8), 276);
	assert_non_null(fadt);
	const uint8_t *dsdt = table(rd(fadt + 140, 8), "DSDT", &len);

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(dsdt, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1", dir);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	static char dsl[256 * 1024];
	size_t n = fread(dsl, 1, sizeof(dsl) - 1, f);
	fclose(f);
	dsl[n] = 0;
	static const char *const want[] = {
		"Device (GED)",
		"Name (_HID, \"ACPI0013\"",
		"Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )",
		"0x00000005,",
		"OperationRegion (GDST, SystemIO, 0x0603, One)",
		"Field (GDST, ByteAcc, NoLock, WriteAsZeros)",
		"GDAT,   8",
		"Method (_EVT, 1, Serialized)",
		"Local0 = GDAT",
		"If ((Local0 & One))",
		"Notify (\\_SB.PWRB, 0x80)",
		"Device (PWRB)",
		"Name (_HID, EisaId (\"PNP0C0C\")",
		"Name (_HID, EisaId (\"PNP0501\")",
		"Name (_HID, EisaId (\"PNP0A03\")",
		"Name (_S5, Package (0x04)",
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		if (!strstr(dsl, want[i]))
			fail_msg("iasl's disassembly lacks '%s' (see %s)", want[i], path);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cpus_1),
		cmocka_unit_test(test_cpus_2),
		cmocka_unit_test(test_cpus_8),
		cmocka_unit_test(test_cpus_255),
		cmocka_unit_test(test_cpus_300),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_dsdt_iasl),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
