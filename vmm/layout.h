/* Guest physical address map and fixed ports. One place, so the loaders,
 * the ACPI tables and the devices agree. See docs/boot.md. */
#ifndef KVMINI_LAYOUT_H
#define KVMINI_LAYOUT_H

#define KiB(x) ((uint64_t)(x) << 10)
#define MiB(x) ((uint64_t)(x) << 20)
#define GiB(x) ((uint64_t)(x) << 30)

/* Low memory used by the VMM to hand the kernel its boot state. */
#define LAYOUT_GDT          0x0500ULL   /* boot GDT (4 entries) */
#define LAYOUT_IDT          0x0520ULL   /* empty IDT */
#define LAYOUT_PVH_INFO     0x6000ULL   /* hvm_start_info + memmap (PVH boot) */
#define LAYOUT_ZERO_PAGE    0x7000ULL   /* struct boot_params (bzImage boot) */
#define LAYOUT_PML4         0x9000ULL   /* identity page tables: PML4, PDPT, 4 PDs */
#define LAYOUT_PDPT         0xa000ULL
#define LAYOUT_PD           0xb000ULL   /* 4 pages: 0xb000..0xefff map 4 GiB in 2 MiB pages */
#define LAYOUT_BOOT_STACK   0x8ff0ULL
#define LAYOUT_CMDLINE      0x20000ULL
#define LAYOUT_CMDLINE_MAX  0x10000ULL  /* 64 KiB, more than any kernel accepts */
#define LAYOUT_EBDA         0x9fc00ULL  /* low RAM ends here: [EBDA, 1 MiB) is reserved */
#define LAYOUT_ACPI_BASE    0xe0000ULL  /* RSDP then the tables, inside the BIOS area */
#define LAYOUT_ACPI_SIZE    0x10000ULL
#define LAYOUT_RESET_VECTOR 0xffff0ULL  /* F000:FFF0, where a real-mode jump to the BIOS lands */
#define LAYOUT_HIMEM        0x100000ULL /* 1 MiB: protected-mode kernel default */

/* The 32-bit hole for PCI and platform MMIO: RAM past 3 GiB moves above 4 GiB. */
#define LAYOUT_MMIO_HOLE    0xc0000000ULL
#define LAYOUT_MMIO_HOLE_END 0x100000000ULL
/* Guest RAM below the hole; the rest of mem_size goes above 4 GiB. */
#define LAYOUT_RAM_LOW(mem_size) ((mem_size) < LAYOUT_MMIO_HOLE ? (mem_size) : LAYOUT_MMIO_HOLE)
#define LAYOUT_PCI_MMIO     0xc0000000ULL /* BARs are placed from here */
#define LAYOUT_PCI_MMIO_END 0xfc000000ULL
#define LAYOUT_IOAPIC       0xfec00000ULL
#define LAYOUT_LAPIC        0xfee00000ULL
#define LAYOUT_HIGH_RAM     0x100000000ULL

/* Legacy ports. */
#define PORT_COM1           0x3f8
#define IRQ_COM1            4
#define PORT_I8042_DATA     0x60
#define PORT_I8042_CMD      0x64
#define PORT_CMOS           0x70
#define IRQ_RTC             8
/* ACPI hardware-reduced registers (FADT sleep control/status, reset). */
#define PORT_ACPI_SLEEP_CTL 0x600
#define PORT_ACPI_SLEEP_STS 0x601
#define PORT_ACPI_RESET     0x602
#define ACPI_RESET_VALUE    0x1
/* The Generic Event Device's event register (devices/acpi_ged.c) and its
 * interrupt: reading the register returns the pending events and clears
 * them. Bit 0: the power button was pressed. */
#define PORT_ACPI_GED       0x603
#define IRQ_GED             5
#define ACPI_GED_EV_POWER   0x1
/* Test exit port, same place and meaning as QEMU's isa-debug-exit; only
 * present with --debug-exit (used by the micro-guest tests). */
#define PORT_DEBUG_EXIT     0xf4

#endif
