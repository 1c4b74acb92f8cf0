/* ACPI tables, in the spirit of Cloud Hypervisor's: the smallest set a Linux
 * guest needs to find its CPUs, interrupt controllers, the serial port, and
 * a way to power off and reboot. Layout in the guest (all from gpa):
 *
 *   RSDP -> XSDT -> FADT -> DSDT (AML: \_S5_, \_SB.COM1, \_SB.RTC_, \_SB.PCI0)
 *                -> MADT (LAPIC per vCPU, IOAPIC, IRQ0 override, LINT1 NMI)
 *
 * The FADT is "hardware-reduced" (ACPI 6.3 section 4.1): no PM1 event and
 * control blocks, no PM timer, no GPEs, no SCI, no FACS. Power off and reset
 * are two plain I/O ports the VMM traps (see docs/acpi.md).
 *
 * Field names and offsets follow ACPI 6.3 chapter 5; x86 is little-endian,
 * so the packed structs below are the wire format. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "boot/acpi.h"
#include "devices/pci.h"
#include "vmm/layout.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ACPI tables are little-endian");

#define ACPI_OEM_ID        "KVMINI"
#define ACPI_CREATOR_ID    "KVMI"
#define ACPI_BIOS_AREA     0xe0000ULL /* Linux scans [0xE0000, 1 MiB) for the RSDP */
#define ACPI_BIOS_AREA_END 0x100000ULL

/* ---- table formats ---------------------------------------------------- */

struct acpi_rsdp {                  /* 5.2.5.3 */
	char signature[8];          /* "RSD PTR " */
	uint8_t checksum;           /* over the first 20 bytes (the ACPI 1.0 part) */
	char oem_id[6];
	uint8_t revision;           /* 2: has length, XSDT and extended checksum */
	uint32_t rsdt_address;      /* 0: we only offer the XSDT */
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t ext_checksum;       /* over all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP");

struct acpi_header {                /* 5.2.6, common to every SDT */
	char signature[4];
	uint32_t length;            /* whole table, header included */
	uint8_t revision;
	uint8_t checksum;           /* all bytes of the table sum to 0 */
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_header) == 36, "SDT header");

struct acpi_gas {                   /* 5.2.3.2 Generic Address Structure */
	uint8_t space_id;           /* 1 = System I/O */
	uint8_t bit_width;
	uint8_t bit_offset;
	uint8_t access_size;        /* 1 = byte access */
	uint64_t address;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS");

struct acpi_fadt {                  /* 5.2.9, revision 6 (ACPI 6.x) */
	struct acpi_header h;
	uint32_t firmware_ctrl;     /* FACS: optional when hardware-reduced */
	uint32_t dsdt;              /* 0: X_DSDT is used instead */
	uint8_t reserved0;
	uint8_t preferred_pm_profile;
	uint16_t sci_int;
	uint32_t smi_cmd;
	uint8_t acpi_enable, acpi_disable, s4bios_req, pstate_cnt;
	uint32_t pm1a_evt_blk, pm1b_evt_blk, pm1a_cnt_blk, pm1b_cnt_blk;
	uint32_t pm2_cnt_blk, pm_tmr_blk, gpe0_blk, gpe1_blk;
	uint8_t pm1_evt_len, pm1_cnt_len, pm2_cnt_len, pm_tmr_len;
	uint8_t gpe0_blk_len, gpe1_blk_len, gpe1_base, cst_cnt;
	uint16_t p_lvl2_lat, p_lvl3_lat, flush_size, flush_stride;
	uint8_t duty_offset, duty_width, day_alrm, mon_alrm, century;
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	struct acpi_gas reset_reg;
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	struct acpi_gas x_pm1a_evt_blk, x_pm1b_evt_blk, x_pm1a_cnt_blk, x_pm1b_cnt_blk;
	struct acpi_gas x_pm2_cnt_blk, x_pm_tmr_blk, x_gpe0_blk, x_gpe1_blk;
	struct acpi_gas sleep_control_reg;
	struct acpi_gas sleep_status_reg;
	char hypervisor_vendor[8];
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT");
_Static_assert(offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "FADT X_DSDT");
_Static_assert(offsetof(struct acpi_fadt, sleep_control_reg) == 244, "FADT sleep ctl");

/* FADT Flags (table 5-35) and IA-PC boot architecture flags (table 5-36). */
#define FADT_F_PWR_BUTTON     (1u << 4)  /* 1: no fixed-feature power button */
#define FADT_F_SLP_BUTTON     (1u << 5)  /* 1: no fixed-feature sleep button */
#define FADT_F_RESET_REG_SUP  (1u << 10) /* RESET_REG/RESET_VALUE are valid */
#define FADT_F_HW_REDUCED     (1u << 20)
/* IAPC_8042 (bit 1) is left clear: kvmini's i8042 only resets the machine
 * (reboot=k); declaring a controller would make Linux probe for a keyboard
 * and time out for seconds during boot. */
#define IAPC_VGA_NOT_PRESENT  (1u << 2)  /* don't poke at legacy VGA */
/* Left clear on purpose: MSI_NOT_SUPPORTED (bit 3) and CMOS_RTC_NOT_PRESENT
 * (bit 5): kvmini has MSIs and emulates the CMOS RTC at PORT_CMOS. */

struct acpi_madt {                  /* 5.2.12 */
	struct acpi_header h;
	uint32_t lapic_address;
	uint32_t flags;
} __attribute__((packed));
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT");

enum { MADT_LAPIC = 0, MADT_IOAPIC = 1, MADT_ISO = 2, MADT_LAPIC_NMI = 4,
       MADT_X2APIC = 9, MADT_X2APIC_NMI = 10 };
#define MADT_ENABLED 1u

struct madt_lapic { uint8_t type, length, uid, apic_id; uint32_t flags; } __attribute__((packed));
struct madt_ioapic {
	uint8_t type, length, ioapic_id, reserved;
	uint32_t address, gsi_base;
} __attribute__((packed));
struct madt_iso {
	uint8_t type, length, bus, source;
	uint32_t gsi;
	uint16_t flags;
} __attribute__((packed));
struct madt_lapic_nmi { uint8_t type, length, uid; uint16_t flags; uint8_t lint; } __attribute__((packed));
struct madt_x2apic {
	uint8_t type, length;
	uint16_t reserved;
	uint32_t x2apic_id, flags, uid;
} __attribute__((packed));
struct madt_x2apic_nmi {
	uint8_t type, length;
	uint16_t flags;
	uint32_t uid;
	uint8_t lint, reserved[3];
} __attribute__((packed));
_Static_assert(sizeof(struct madt_lapic) == 8, "MADT LAPIC");
_Static_assert(sizeof(struct madt_ioapic) == 12, "MADT IOAPIC");
_Static_assert(sizeof(struct madt_iso) == 10, "MADT ISO");
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "MADT LAPIC NMI");
_Static_assert(sizeof(struct madt_x2apic) == 16, "MADT x2APIC");
_Static_assert(sizeof(struct madt_x2apic_nmi) == 12, "MADT x2APIC NMI");

/* xAPIC IDs are 8 bits and 0xFF is the broadcast ID, so CPU 255 and up need
 * x2APIC entries (5.2.12.12: IDs below 255 must use the LAPIC structure). */
#define XAPIC_MAX_CPUS 255u

/* ---- placing tables in the buffer ------------------------------------- */

struct place {
	uint8_t *buf;
	size_t size, off;
	uint64_t gpa;
};

/* Reserves len zeroed bytes, 16-byte aligned (the RSDP needs it; the rest
 * just stays tidy). NULL when the buffer is full. */
static void *place_alloc(struct place *p, size_t len, uint64_t *gpa)
{
	size_t off = (p->off + 15) & ~(size_t)15;

	if (off > p->size || len > p->size - off)
		return NULL;
	p->off = off + len;
	memset(p->buf + off, 0, len);
	*gpa = p->gpa + off;
	return p->buf + off;
}

static uint8_t acpi_checksum(const void *data, size_t len)
{
	const uint8_t *b = data;
	uint8_t sum = 0;

	while (len--)
		sum += *b++;
	return (uint8_t)-sum;
}

static void header_init(struct acpi_header *h, const char sig[4], uint32_t length, uint8_t rev)
{
	memcpy(h->signature, sig, 4);
	h->length = length;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	/* "KVMI" + signature, e.g. "KVMIAPIC": unique per table, like QEMU's "BXPC....". */
	memcpy(h->oem_table_id, "KVMI", 4);
	memcpy(h->oem_table_id + 4, sig, 4);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
}

/* Call last, once every byte of the table is final. */
static void header_seal(struct acpi_header *h)
{
	h->checksum = 0;
	h->checksum = acpi_checksum(h, h->length);
}

/* ---- AML (ACPI 6.3 chapter 20) ----------------------------------------
 * A tiny AML writer. Objects with a PkgLength (Scope, Device, Package,
 * Buffer) are written body-first: *_open() emits the opcode and returns where
 * the PkgLength belongs, *_close() measures the body and inserts the encoded
 * length there. Overflow is sticky and reported once at the end. */

struct aml {
	uint8_t *p;
	size_t len, cap;
	bool overflow;
};

enum {
	AML_ZERO = 0x00, AML_ONE = 0x01, AML_NAME = 0x08, AML_BYTE = 0x0a, AML_WORD = 0x0b,
	AML_DWORD = 0x0c, AML_QWORD = 0x0e, AML_SCOPE = 0x10, AML_BUFFER = 0x11,
	AML_PACKAGE = 0x12, AML_DUAL_NAME = 0x2e, AML_MULTI_NAME = 0x2f, AML_EXT = 0x5b,
	AML_EXT_DEVICE = 0x82, AML_ROOT = 0x5c, AML_STRING = 0x0d, AML_METHOD = 0x14,
	AML_LOCAL0 = 0x60, AML_STORE = 0x70, AML_AND = 0x7b, AML_NOTIFY = 0x86, AML_IF = 0xa0,
	AML_EXT_OPREGION = 0x80, AML_EXT_FIELD = 0x81,
};

static void aml_insert(struct aml *a, size_t pos, const uint8_t *b, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memmove(a->p + pos + n, a->p + pos, a->len - pos);
	memcpy(a->p + pos, b, n);
	a->len += n;
}

static void aml_bytes(struct aml *a, const uint8_t *b, size_t n)
{
	aml_insert(a, a->len, b, n);
}

static void aml_byte(struct aml *a, uint8_t b)
{
	aml_bytes(a, &b, 1);
}

/* Smallest encoding of an integer constant (20.2.3 ComputationalData). */
static size_t aml_int_encode(uint8_t out[9], uint64_t v)
{
	size_t n = v <= 1 ? 0 : v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffff ? 4 : 8;

	out[0] = n == 0 ? (v ? AML_ONE : AML_ZERO) : n == 1 ? AML_BYTE : n == 2 ? AML_WORD :
		 n == 4 ? AML_DWORD : AML_QWORD;
	for (size_t i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return 1 + n;
}

static void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];

	aml_bytes(a, b, aml_int_encode(b, v));
}

/* NameString: optional '\' root prefix, then NameSegs separated by '.';
 * a segment shorter than 4 characters is padded with '_' ("_SB" = "_SB_"). */
static void aml_namestring(struct aml *a, const char *path)
{
	const char *s = path;
	size_t nsegs = 1;

	if (*s == '\\') {
		aml_byte(a, AML_ROOT);
		s++;
	}
	for (const char *c = s; *c; c++)
		nsegs += *c == '.';
	if (nsegs == 2)
		aml_byte(a, AML_DUAL_NAME);
	else if (nsegs > 2) {
		aml_byte(a, AML_MULTI_NAME);
		aml_byte(a, (uint8_t)nsegs);
	}
	while (nsegs--) {
		uint8_t seg[4] = { '_', '_', '_', '_' };

		for (size_t i = 0; *s && *s != '.'; s++)
			if (i < 4)
				seg[i++] = (uint8_t)*s;
		aml_bytes(a, seg, 4);
		s += *s == '.';
	}
}

/* 5.4 / 20.2.4 PkgLength: counts itself and the body. One byte holds up to
 * 63; otherwise bits 7:6 of the lead byte say how many bytes follow, the lead
 * byte's low nibble carries bits 3:0 and each following byte 8 more bits. */
static void aml_close(struct aml *a, size_t start)
{
	size_t body = a->len - start, n, total;
	uint8_t enc[4];

	if (a->overflow)
		return;
	n = body + 1 <= 0x3f ? 1 : body + 2 <= 0xfff ? 2 : body + 3 <= 0xfffff ? 3 : 4;
	total = body + n;
	if (total > 0xfffffff) {
		a->overflow = true;
		return;
	}
	if (n == 1) {
		enc[0] = (uint8_t)total;
	} else {
		enc[0] = (uint8_t)(((n - 1) << 6) | (total & 0xf));
		for (size_t i = 1; i < n; i++)
			enc[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	}
	aml_insert(a, start, enc, n);
}

/* Name(path, <the value the caller emits next>) */
static void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME);
	aml_namestring(a, path);
}

/* Emits op and returns where its PkgLength will go (see aml_close()). */
static size_t aml_open(struct aml *a, uint8_t op)
{
	aml_byte(a, op);
	return a->len;
}

static size_t aml_scope_open(struct aml *a, const char *path)
{
	size_t start = aml_open(a, AML_SCOPE);

	aml_namestring(a, path);
	return start;
}

static size_t aml_device_open(struct aml *a, const char *path)
{
	size_t start;

	aml_byte(a, AML_EXT);
	start = aml_open(a, AML_EXT_DEVICE);
	aml_namestring(a, path);
	return start;
}

/* Package(nelems) { the caller emits exactly nelems data objects } */
static size_t aml_package_open(struct aml *a, uint8_t nelems)
{
	size_t start = aml_open(a, AML_PACKAGE);

	aml_byte(a, nelems);
	return start;
}

/* Buffer(){ bytes }: BufferSize precedes the bytes, so it is inserted on
 * close too. ResourceTemplate() is a Buffer of resource descriptors. */
static size_t aml_buffer_open(struct aml *a)
{
	return aml_open(a, AML_BUFFER);
}

static void aml_buffer_close(struct aml *a, size_t start)
{
	uint8_t size[9];

	if (!a->overflow)
		aml_insert(a, start, size, aml_int_encode(size, a->len - start));
	aml_close(a, start);
}

/* "text": a NUL-terminated ASCII string (20.2.3 String). */
static void aml_string(struct aml *a, const char *text)
{
	aml_byte(a, AML_STRING);
	aml_bytes(a, (const uint8_t *)text, strlen(text) + 1);
}

/* OperationRegion(name, SystemIO, port, len) */
static void aml_opregion_io(struct aml *a, const char *name, uint16_t port, uint8_t len)
{
	aml_byte(a, AML_EXT);
	aml_byte(a, AML_EXT_OPREGION);
	aml_namestring(a, name);
	aml_byte(a, 0x01); /* RegionSpace: SystemIO */
	aml_int(a, port);
	aml_int(a, len);
}

/* Field(region, ByteAcc, NoLock, WriteAsZeros) { name, 8 }: one byte-wide
 * field at the start of the region (20.2.5.2 FieldFlags: AccessType 1,
 * LockRule 0, UpdateRule 2). */
static void aml_field_byte(struct aml *a, const char *region, const char *name)
{
	size_t f;
	uint8_t seg[4] = { '_', '_', '_', '_' };

	aml_byte(a, AML_EXT);
	f = aml_open(a, AML_EXT_FIELD);
	aml_namestring(a, region);
	aml_byte(a, 0x41);
	memcpy(seg, name, strnlen(name, 4));
	aml_bytes(a, seg, 4);
	aml_byte(a, 8); /* PkgLength of a NamedField: its width in bits */
	aml_close(a, f);
}

/* Method(name, nargs, Serialized) { the caller's TermList } */
static size_t aml_method_open(struct aml *a, const char *name, uint8_t nargs)
{
	size_t start = aml_open(a, AML_METHOD);

	aml_namestring(a, name);
	aml_byte(a, (uint8_t)((nargs & 7) | 0x08)); /* MethodFlags: SerializeFlag */
	return start;
}

/* EisaId("PNP0501"): three 5-bit letters and four hex digits, stored
 * big-endian in a DWord (6.1.5). */
static void aml_eisaid(struct aml *a, const char id[7])
{
	uint32_t v = (uint32_t)(id[0] & 0x1f) << 26 | (uint32_t)(id[1] & 0x1f) << 21 |
		     (uint32_t)(id[2] & 0x1f) << 16;

	for (int i = 3; i < 7; i++) {
		char c = id[i];

		v |= (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10) << (4 * (6 - i));
	}
	aml_int(a, __builtin_bswap32(v));
}

/* Resource descriptors (6.4.2): small items, tag byte = type << 3 | length. */
static void aml_res_io16(struct aml *a, uint16_t base, uint8_t len)
{
	/* I/O port descriptor: 16-bit decode, fixed base (min = max), align 1. */
	uint8_t d[8] = { 0x47, 0x01, base & 0xff, base >> 8, base & 0xff, base >> 8, 1, len };

	aml_bytes(a, d, sizeof(d));
}

static void aml_res_irq_noflags(struct aml *a, unsigned irq)
{
	/* IRQ descriptor without the flags byte: edge, active-high, exclusive. */
	uint8_t d[3] = { 0x22, (uint8_t)(1u << irq), (uint8_t)((1u << irq) >> 8) };

	aml_bytes(a, d, sizeof(d));
}

/* Extended Interrupt descriptor (6.4.3.6): one GSI, consumed, edge-
 * triggered, active-high, exclusive. */
static void aml_res_interrupt_edge(struct aml *a, uint32_t gsi)
{
	uint8_t d[9] = { 0x89, 6, 0, 0x03, 1, (uint8_t)gsi, (uint8_t)(gsi >> 8),
			 (uint8_t)(gsi >> 16), (uint8_t)(gsi >> 24) };

	aml_bytes(a, d, sizeof(d));
}

/* Large address space descriptors (6.4.3.5) for a bridge's windows: the
 * bridge produces the range (bit 0 clear), min and max fixed (bits 2, 3),
 * positive decode; granularity 0, no translation, length = max - min + 1. */
#define RES_ADDR_PRODUCER_FIXED 0x0c
enum { RES_ADDR_MEMORY = 0, RES_ADDR_IO = 1, RES_ADDR_BUS = 2 };

/* WordBusNumber / WordIO: 16-bit addresses (6.4.3.5.3). */
static void aml_res_word(struct aml *a, uint8_t type, uint8_t type_flags, uint16_t min,
			 uint16_t max)
{
	uint16_t len = (uint16_t)(max - min + 1);
	uint8_t d[16] = { 0x88, 13, 0, type, RES_ADDR_PRODUCER_FIXED, type_flags,
			  0, 0, min & 0xff, min >> 8, max & 0xff, max >> 8,
			  0, 0, len & 0xff, len >> 8 };

	aml_bytes(a, d, sizeof(d));
}

/* DWordMemory, read-write, non-cacheable (6.4.3.5.2). */
static void aml_res_dword_mem(struct aml *a, uint32_t min, uint32_t max)
{
	uint32_t f[5] = { 0, min, max, 0, max - min + 1 }; /* gran, min, max, tra, len */
	uint8_t d[26] = { 0x87, 23, 0, RES_ADDR_MEMORY, RES_ADDR_PRODUCER_FIXED, 0x01 };

	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 4; j++)
			d[6 + 4 * i + j] = (uint8_t)(f[i] >> (8 * j));
	aml_bytes(a, d, sizeof(d));
}

static void aml_res_end(struct aml *a)
{
	uint8_t d[2] = { 0x79, 0x00 }; /* end tag; checksum 0 means "don't check" */

	aml_bytes(a, d, sizeof(d));
}

/* ---- DSDT contents -----------------------------------------------------
 * One function per device; add new devices (PCI root bridge, RTC, ...) as
 * more dsdt_*() functions called from dsdt_build(). */

/* \_S5_: soft-off. Only SLP_TYP for the sleep control register matters
 * (elements 0/1 are the PM1a/PM1b SLP_TYP; 2 and 3 are reserved). */
static void dsdt_s5(struct aml *a)
{
	size_t pkg;

	aml_name(a, "_S5_"); /* at the root: same as \_S5_ */
	pkg = aml_package_open(a, 4);
	aml_int(a, ACPI_S5_SLP_TYP);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_int(a, 0);
	aml_close(a, pkg);
}

/* A legacy ISA device: with hardware-reduced ACPI Linux sets up no legacy
 * PIC and maps no ISA IRQ on its own, so a device it should drive with an
 * interrupt must be declared here with its ports and IRQ (PNP, as on PCs). */
static void dsdt_isa_device(struct aml *a, const char *name, const char *hid, uint16_t port,
			    uint8_t nports, uint8_t irq)
{
	size_t dev = aml_device_open(a, name), crs;

	aml_name(a, "_HID");
	aml_eisaid(a, hid);
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_CRS");
	crs = aml_buffer_open(a);
	aml_res_io16(a, port, nports);
	aml_res_irq_noflags(a, irq);
	aml_res_end(a);
	aml_buffer_close(a, crs);
	aml_close(a, dev);
}

/* \_SB.PCI0: the PCI root bridge (bus 0, reached through configuration
 * mechanism #1; no MCFG, so PNP0A03 and no PNP0A08). Only Name objects, no
 * Methods. _CRS gives Linux the windows it may route below the bridge:
 * every I/O port except the config ports 0xCF8..0xCFF, and the 32-bit PCI
 * MMIO window where kvmini places the BARs (Linux keeps BARs inside it as
 * firmware left them). _PRT wires INTA..INTD of slots 1..31 straight to
 * IOAPIC GSIs (Source 0), PCI_INTX_GSI() being the same formula
 * devices/pci.c uses; Linux programs such pins level, active-low. */
static void dsdt_pci_root(struct aml *a)
{
	size_t dev = aml_device_open(a, "PCI0"), crs, prt;

	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0A03");
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_SEG");
	aml_int(a, 0);
	aml_name(a, "_BBN");
	aml_int(a, 0);
	aml_name(a, "_CRS");
	crs = aml_buffer_open(a);
	aml_res_word(a, RES_ADDR_BUS, 0, 0, 0);
	aml_res_word(a, RES_ADDR_IO, 0x03 /* EntireRange */, 0x0000, 0x0cf7);
	aml_res_word(a, RES_ADDR_IO, 0x03, 0x0d00, 0xffff);
	aml_res_dword_mem(a, (uint32_t)LAYOUT_PCI_MMIO, (uint32_t)(LAYOUT_PCI_MMIO_END - 1));
	aml_res_end(a);
	aml_buffer_close(a, crs);

	/* Package { Package { 0xSSSSFFFF (slot, any function), pin, 0, GSI } ... } */
	aml_name(a, "_PRT");
	prt = aml_package_open(a, (PCI_MAX_DEVICES - 1) * 4);
	for (unsigned slot = 1; slot < PCI_MAX_DEVICES; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			size_t e = aml_package_open(a, 4);

			aml_int(a, (uint64_t)slot << 16 | 0xffff);
			aml_int(a, pin);
			aml_int(a, 0);
			aml_int(a, PCI_INTX_GSI(slot, pin));
			aml_close(a, e);
		}
	}
	aml_close(a, prt);
	aml_close(a, dev);
}

/* \_SB.GED_ and \_SB.PWRB: the power button of a hardware-reduced
 * platform (devices/acpi_ged.c). Linux's evged driver requests the GSI in
 * _CRS and, on each interrupt, evaluates _EVT with the GSI as Arg0:
 *
 *   Method (_EVT, 1, Serialized) {
 *       Store (GDAT, Local0)                     // read and clear the events
 *       If (And (Local0, ACPI_GED_EV_POWER)) { Notify (\_SB.PWRB, 0x80) }
 *   }
 *
 * 0x80 on a PNP0C0C device is "button pressed" (ACPI 6.3 section 4.8.3.1). */
static void dsdt_ged(struct aml *a)
{
	size_t dev = aml_device_open(a, "GED_"), crs, m, cond;

	aml_name(a, "_HID");
	aml_string(a, "ACPI0013");
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_name(a, "_CRS");
	crs = aml_buffer_open(a);
	aml_res_interrupt_edge(a, IRQ_GED);
	aml_res_end(a);
	aml_buffer_close(a, crs);
	aml_opregion_io(a, "GDST", PORT_ACPI_GED, 1);
	aml_field_byte(a, "GDST", "GDAT");
	m = aml_method_open(a, "_EVT", 1);
	aml_byte(a, AML_STORE);
	aml_namestring(a, "GDAT");
	aml_byte(a, AML_LOCAL0);
	cond = aml_open(a, AML_IF);
	aml_byte(a, AML_AND);
	aml_byte(a, AML_LOCAL0);
	aml_int(a, ACPI_GED_EV_POWER);
	aml_byte(a, AML_ZERO); /* Target: none (NullName) */
	aml_byte(a, AML_NOTIFY);
	aml_namestring(a, "\\_SB.PWRB");
	aml_int(a, 0x80);
	aml_close(a, cond);
	aml_close(a, m);
	aml_close(a, dev);

	dev = aml_device_open(a, "PWRB");
	aml_name(a, "_HID");
	aml_eisaid(a, "PNP0C0C");
	aml_name(a, "_UID");
	aml_int(a, 0);
	aml_close(a, dev);
}

static void dsdt_build(struct aml *a, const struct acpi_config *cfg)
{
	size_t sb;

	dsdt_s5(a);
	sb = aml_scope_open(a, "_SB");
	dsdt_isa_device(a, "COM1", "PNP0501", PORT_COM1, 8, IRQ_COM1);
	dsdt_isa_device(a, "RTC_", "PNP0B00", PORT_CMOS, 2, IRQ_RTC);
	dsdt_pci_root(a);
	dsdt_ged(a);
	aml_close(a, sb);
}

/* ---- the tables ------------------------------------------------------- */

static int build_dsdt(struct place *p, const struct acpi_config *cfg, uint64_t *gpa)
{
	struct acpi_header *h = place_alloc(p, sizeof(*h), gpa);
	struct aml a;

	if (!h)
		return -ENOSPC;
	/* The AML follows the header directly; give it all remaining space and
	 * trim the allocation to what was used. */
	a = (struct aml){ .p = (uint8_t *)(h + 1), .cap = p->size - p->off };
	dsdt_build(&a, cfg);
	if (a.overflow)
		return -ENOSPC;
	p->off += a.len;
	/* Revision 2: integers in this definition block are 64-bit. */
	header_init(h, "DSDT", (uint32_t)(sizeof(*h) + a.len), 2);
	header_seal(h);
	return 0;
}

static struct acpi_gas io_port8(uint16_t port)
{
	return (struct acpi_gas){ .space_id = 1, .bit_width = 8, .access_size = 1, .address = port };
}

static int build_fadt(struct place *p, uint64_t dsdt, uint64_t *gpa)
{
	struct acpi_fadt *f = place_alloc(p, sizeof(*f), gpa);

	if (!f)
		return -ENOSPC;
	header_init(&f->h, "FACP", sizeof(*f), 6);
	f->minor_version = 3; /* ACPI 6.3 */
	f->flags = FADT_F_HW_REDUCED | FADT_F_RESET_REG_SUP | FADT_F_PWR_BUTTON |
		   FADT_F_SLP_BUTTON;
	f->iapc_boot_arch = IAPC_VGA_NOT_PRESENT;
	f->x_dsdt = dsdt;
	f->reset_reg = io_port8(PORT_ACPI_RESET);
	f->reset_value = ACPI_RESET_VALUE;
	/* Hardware-reduced sleep: the OS writes SLP_TYP|SLP_EN to the control
	 * register and polls WAK_STS in the status register. */
	f->sleep_control_reg = io_port8(PORT_ACPI_SLEEP_CTL);
	f->sleep_status_reg = io_port8(PORT_ACPI_SLEEP_STS);
	memcpy(f->hypervisor_vendor, "KVMINI  ", 8);
	header_seal(&f->h);
	return 0;
}

static uint8_t *put(uint8_t *dst, const void *src, size_t n)
{
	memcpy(dst, src, n);
	return dst + n;
}

static int build_madt(struct place *p, unsigned ncpus, uint64_t *gpa)
{
	unsigned nx = ncpus < XAPIC_MAX_CPUS ? ncpus : XAPIC_MAX_CPUS;
	unsigned n2 = ncpus - nx; /* CPUs that need x2APIC entries */
	size_t len = sizeof(struct acpi_madt) + nx * sizeof(struct madt_lapic) +
		     (size_t)n2 * sizeof(struct madt_x2apic) + sizeof(struct madt_ioapic) +
		     sizeof(struct madt_iso) + sizeof(struct madt_lapic_nmi) +
		     (n2 ? sizeof(struct madt_x2apic_nmi) : 0);
	struct acpi_madt *m;
	uint8_t *e;

	if (len > UINT32_MAX || !(m = place_alloc(p, len, gpa)))
		return -ENOSPC;
	header_init(&m->h, "APIC", (uint32_t)len, 5); /* ACPI 6.3 MADT revision */
	m->lapic_address = (uint32_t)LAYOUT_LAPIC;
	/* Flags 0 (no PCAT_COMPAT): a hardware-reduced Linux guest routes
	 * everything through the I/O APIC and never uses the 8259 pair. */
	m->flags = 0;
	e = (uint8_t *)(m + 1);

	for (unsigned i = 0; i < ncpus; i++) {
		if (i < XAPIC_MAX_CPUS) {
			struct madt_lapic l = { MADT_LAPIC, sizeof(l), (uint8_t)i, (uint8_t)i,
						MADT_ENABLED };
			e = put(e, &l, sizeof(l));
		} else {
			struct madt_x2apic x = { .type = MADT_X2APIC, .length = sizeof(x),
						 .x2apic_id = i, .flags = MADT_ENABLED, .uid = i };
			e = put(e, &x, sizeof(x));
		}
	}
	/* I/O APIC ID 0, like QEMU, Firecracker and Cloud Hypervisor, and what
	 * KVM's in-kernel IOAPIC reports after reset. I/O APIC IDs are their own
	 * namespace since the xAPIC (no shared APIC bus), so 0 does not clash
	 * with CPU 0. Its 24 pins are GSIs 0..23. */
	struct madt_ioapic io = { MADT_IOAPIC, sizeof(io), 0, 0, (uint32_t)LAYOUT_IOAPIC, 0 };
	e = put(e, &io, sizeof(io));
	/* The PIT's ISA IRQ0 is wired to I/O APIC pin 2 (pin 0 is the 8259's
	 * cascade on PCs; KVM routes it the same way). Flags 0 = conforms to
	 * the ISA bus: edge-triggered, active-high. */
	struct madt_iso iso = { MADT_ISO, sizeof(iso), 0, 0, 2, 0 };
	e = put(e, &iso, sizeof(iso));
	/* NMI arrives on LINT1 of every local APIC (UID 0xFF = all). */
	struct madt_lapic_nmi nmi = { MADT_LAPIC_NMI, sizeof(nmi), 0xff, 0, 1 };
	e = put(e, &nmi, sizeof(nmi));
	if (n2) {
		struct madt_x2apic_nmi xnmi = { .type = MADT_X2APIC_NMI, .length = sizeof(xnmi),
						.uid = 0xffffffff, .lint = 1 };
		put(e, &xnmi, sizeof(xnmi));
	}
	header_seal(&m->h);
	return 0;
}

static int build_xsdt(struct place *p, const uint64_t *tables, unsigned n, uint64_t *gpa)
{
	size_t len = sizeof(struct acpi_header) + n * sizeof(uint64_t);
	struct acpi_header *h = place_alloc(p, len, gpa);

	if (!h)
		return -ENOSPC;
	header_init(h, "XSDT", (uint32_t)len, 1);
	/* Entries are 8-byte and only 4-byte aligned within the table: memcpy. */
	memcpy(h + 1, tables, n * sizeof(uint64_t));
	header_seal(h);
	return 0;
}

int acpi_build(uint8_t *buf, size_t size, uint64_t gpa, const struct acpi_config *cfg,
	       uint64_t *rsdp_gpa)
{
	struct place p = { .buf = buf, .size = size, .gpa = gpa };
	struct acpi_rsdp *rsdp;
	uint64_t rsdp_at, dsdt, tables[2], xsdt;
	int err;

	if (!buf || !cfg || !rsdp_gpa || cfg->ncpus == 0)
		return -EINVAL;
	/* The RSDP sits at gpa: it must be 16-byte aligned in the BIOS area. */
	if ((gpa & 15) || gpa < ACPI_BIOS_AREA || gpa + sizeof(*rsdp) > ACPI_BIOS_AREA_END)
		return -EINVAL;
	if (!(rsdp = place_alloc(&p, sizeof(*rsdp), &rsdp_at)))
		return -ENOSPC;

	/* Children before parents: each table needs the addresses of the ones
	 * it points to. tables[] is what the XSDT lists: FADT, MADT. */
	if ((err = build_dsdt(&p, cfg, &dsdt)) ||
	    (err = build_fadt(&p, dsdt, &tables[0])) ||
	    (err = build_madt(&p, cfg->ncpus, &tables[1])) ||
	    (err = build_xsdt(&p, tables, 2, &xsdt)))
		return err;

	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->length = sizeof(*rsdp);
	rsdp->xsdt_address = xsdt;
	rsdp->checksum = acpi_checksum(rsdp, 20);
	rsdp->ext_checksum = acpi_checksum(rsdp, sizeof(*rsdp));
	*rsdp_gpa = rsdp_at;
	return 0;
}
