/* The micro-guest's whole "libc": constants shared with entry.S, port and
 * MMIO accessors, the UART printer, the PVH start info, ACPI lookups and the
 * test registry. Freestanding: no headers beyond what gcc ships
 * (stdint.h, stddef.h, stdbool.h, stdarg.h). See tests/guest/README.md. */
#ifndef MICROGUEST_GUEST_H
#define MICROGUEST_GUEST_H

/* ---- constants shared with entry.S ---- */
#define GUEST_MAX_CPUS   4
#define SEL_CODE32       0x08   /* ring 0, 32-bit (AP trampoline) */
#define SEL_KCODE        0x10   /* ring 0, 64-bit */
#define SEL_KDATA        0x18
#define SEL_UDATA        0x23   /* ring 3 data, RPL 3 */
#define SEL_UCODE        0x2b   /* ring 3, 64-bit, RPL 3 */
#define SEL_TSS0         0x30   /* CPU i uses SEL_TSS0 + 16 * i */
#define GDT_ENTRIES      (6 + 2 * GUEST_MAX_CPUS)
#define TSS_HDR_SIZE     104
#define TSS_IOMAP_SIZE   8192   /* one bit per port, 65536 ports */
#define TSS_SIZE         (TSS_HDR_SIZE + TSS_IOMAP_SIZE + 1) /* + 0xff terminator */
#define KSTACK_SIZE      4096   /* ring-0 stack per CPU (exceptions only) */
#define USTACK_SIZE      16384  /* ring-3 stack per CPU */
#define AP_TRAMPOLINE    0x10000 /* real-mode AP entry page (SIPI vector 0x10) */

/* Ports and addresses the tests use (kvmini's are in vmm/layout.h). */
#define PORT_COM1        0x3f8
#define PORT_DEBUG_EXIT  0xf4   /* 4-byte out; kvmini --debug-exit: status = value */
#define PORT_UNCLAIMED   0x450  /* nothing decodes it in kvmini or QEMU -M pc */
#define MMIO_UNCLAIMED   0xd0000000UL /* inside the PCI hole, no BAR there */
#define LAPIC_BASE       0xfee00000UL

#ifndef __ASSEMBLER__
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- port I/O (ring 3 may use every port: the TSS I/O bitmap is all zero) ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" :: "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" :: "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* ---- MMIO: every physical address below 4 GiB is mapped 1:1, the hole
 * 0xC0000000-0xFFFFFFFF uncached. One access of exactly the given width. ---- */
static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)a; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)a; }
static inline uint64_t mmio_read64(uint64_t a) { return *(volatile uint64_t *)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)a = v; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)a = v; }
static inline void mmio_write64(uint64_t a, uint64_t v) { *(volatile uint64_t *)a = v; }

static inline void cpuid(uint32_t leaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
#define barrier() __asm__ volatile("" ::: "memory")

/* ---- console (COM1, polled) and run control ---- */
void put_char(char c);
void put_str(const char *s);
void put_hex(uint64_t v);          /* 0x-prefixed, no leading zeros */
void put_dec(uint64_t v);
/* printf subset: %s %c %d %u %x %lu %lx %llu %llx %p %%. */
void put_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whole-line lock between CPUs (say() and fail() take it). */
void console_lock(void);
void console_unlock(void);
/* "microguest: " + message + newline. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes the status to the debug exit port and, if that returns, parks. */
__attribute__((noreturn)) void guest_exit(uint32_t status);
/* Prints "microguest: FAIL <what>" and exits with status 1. */
__attribute__((noreturn, format(printf, 1, 2))) void fail(const char *fmt, ...);
#define CHECK(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)

/* ---- small string helpers (gcc may also emit calls to memcpy/memset) ---- */
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/* ---- PVH boot information (Xen include/public/arch-x86/hvm/start_info.h) ---- */
#define HVM_START_MAGIC 0x336ec578
struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	/* version >= 1 */
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};
struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};
extern const struct hvm_start_info *start_info;
extern const char *cmdline;        /* "" when none was given */
/* Value of the last "key=value" (or bare "key": "") word of the command
 * line, copied into buf; NULL when key is absent. */
const char *cmdline_get(const char *key, char *buf, size_t size);
/* Decimal value of "key=N", or def. */
uint64_t cmdline_get_u64(const char *key, uint64_t def);
/* The TSC's rate as CPUID leaf 0x15 (or 0x16) gives it, 0 when neither does
 * (the benchmarks' hosts time the console marks instead). */
uint64_t tsc_hz_cpuid(void);

/* ---- ACPI (acpi.c) ---- */
struct acpi_sdt {
	char sig[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __attribute__((packed));
/* Finds the RSDP (start info first, then the BIOS area), validates it and
 * every table it lists; returns the table with the signature (NULL if absent).
 * Any checksum or structure error is a test failure. */
const struct acpi_sdt *acpi_find(const char *sig);
/* Enabled processors in the MADT (Local APIC and x2APIC entries); their APIC
 * IDs go to ids[0..max). */
unsigned acpi_cpus(uint32_t *ids, unsigned max);

/* ---- CPUs (smp.c) ---- */
/* Time stamps for kvmini-bench's start-up figure: the TSC at the guest's
 * first instruction (entry.S) and just before its first UART byte (lib.c). */
extern uint64_t entry_tsc, first_out_tsc;
extern volatile uint32_t cpus_up;    /* incremented by each CPU reaching ring 3 */
uint32_t lapic_id(void);
/* Starts every other enabled CPU of the MADT with INIT-SIPI-SIPI; returns how
 * many reached ring 3 before the timeout. */
unsigned smp_start_aps(void);
/* Ring-3 code an AP runs after start (NULL: park right away). Runs with the
 * CPU index as argument; parks when it returns. */
extern void (*volatile ap_work)(unsigned cpu);
/* Halts this CPU for good: ring-3 `hlt` traps (#GP) and the exception
 * handler halts the CPU in ring 0 instead of reporting a failure. */
__attribute__((noreturn)) void cpu_park(void);

/* ---- memory (mem.c): a bump allocator over the RAM after the image ---- */
/* Zeroed, identity-mapped (physical = virtual) memory for device rings and
 * buffers; never freed. Fails the test when RAM runs out. */
void *mem_alloc(uint64_t size, uint64_t align);

/* ---- PCI (pci.c): configuration mechanism #1, bus 0 only ---- */
#define PCI_MMIO_BASE    0xc0000000ull /* window for BARs the guest assigns */
#define PCI_MMIO_END     0xfc000000ull
#define PCI_VENDOR_ID    0x00
#define PCI_COMMAND      0x04
#define PCI_COMMAND_IO           0x0001
#define PCI_COMMAND_MEMORY       0x0002
#define PCI_COMMAND_MASTER       0x0004
#define PCI_COMMAND_INTX_DISABLE 0x0400
#define PCI_STATUS       0x06
#define PCI_STATUS_CAP_LIST      0x0010
#define PCI_HEADER_TYPE  0x0e
#define PCI_BAR0         0x10
#define PCI_CAP_PTR      0x34
#define PCI_CAP_ID_VNDR  0x09
#define PCI_CAP_ID_MSIX  0x11
struct pci_dev {
	uint8_t bus, dev, fn;
};
uint32_t pci_read32(const struct pci_dev *d, uint16_t off);
uint16_t pci_read16(const struct pci_dev *d, uint16_t off);
uint8_t pci_read8(const struct pci_dev *d, uint16_t off);
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v);
void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v);
/* The index-th (from 0) function on bus 0 with these IDs. */
bool pci_find(uint16_t vendor, uint16_t device, unsigned index, struct pci_dev *out);
/* Capability list walk: pos 0 gives the first capability, else the one
 * after pos; 0 ends the list. */
uint8_t pci_cap_next(const struct pci_dev *d, uint8_t pos);
/* Address of memory BAR bar (32- or 64-bit); assigns it in the window if it
 * is unassigned (0). Enables memory decoding and bus mastering and disables
 * INTx. *size (if not NULL) gets the BAR's size. */
uint64_t pci_bar_map(const struct pci_dev *d, unsigned bar, uint64_t *size);

/* ---- tests ---- */
struct guest_test {
	const char *name;
	void (*run)(void);   /* returns on success; calls fail() otherwise */
	const char *help;
};
/* Registers a test selectable with test=NAME; one file per test. */
#define GUEST_TEST(nm, fn, hlp) \
	static const struct guest_test test_##fn \
	__attribute__((used, section(".tests"), aligned(8))) = { nm, fn, hlp }

#endif /* __ASSEMBLER__ */
#endif
