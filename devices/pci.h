/* PCI: a host bridge at 00:00.0 with configuration mechanism #1 (ports
 * 0xCF8/0xCFC), devices on bus 0, BARs assigned by kvmini before boot like
 * firmware would, MSI-X with table and PBA in a BAR, and INTx through the
 * IOAPIC. */
#ifndef KVMINI_PCI_H
#define KVMINI_PCI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm/bus.h"

struct vm;

#define PCI_CFG_SIZE      256
#define PCI_MAX_DEVICES   32    /* bus 0, function 0 only */
#define PCI_NUM_BARS      6
#define PCI_MSIX_MAX      64

/* Standard config space offsets used across kvmini. */
#define PCI_VENDOR_ID     0x00
#define PCI_DEVICE_ID     0x02
#define PCI_COMMAND       0x04
#define PCI_STATUS        0x06
#define PCI_CLASS_REV     0x08
#define PCI_HEADER_TYPE   0x0e
#define PCI_BAR0          0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID     0x2e
#define PCI_CAP_PTR       0x34
#define PCI_INT_LINE      0x3c
#define PCI_INT_PIN       0x3d
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAP_ID_MSIX   0x11
#define PCI_CAP_ID_VNDR   0x09
#define PCI_CACHE_LINE    0x0c
#define PCI_CAP_START     0x40  /* first capability; 0x00..0x3f is the header */

/* Command register bits the guest may change; nothing else is writable. */
#define PCI_COMMAND_IO            0x0001
#define PCI_COMMAND_MEMORY        0x0002
#define PCI_COMMAND_MASTER        0x0004
#define PCI_COMMAND_INTX_DISABLE  0x0400

/* BAR register low bits: memory space, 64-bit type (bits 2:1 = 10b). */
#define PCI_BAR_MEM_64    0x04

/* MSI-X capability (PCI 3.0 section 6.8.2): Message Control at +2, Table
 * offset/BIR at +4, PBA offset/BIR at +8; 16-byte table entries. */
#define PCI_MSIX_CAP_LEN      12
#define PCI_MSIX_CTRL_ENABLE  0x8000
#define PCI_MSIX_CTRL_MASKALL 0x4000
#define PCI_MSIX_ENTRY_SIZE   16
#define PCI_MSIX_ENTRY_ADDR_LO 0
#define PCI_MSIX_ENTRY_ADDR_HI 4
#define PCI_MSIX_ENTRY_DATA    8
#define PCI_MSIX_ENTRY_CTRL    12
#define PCI_MSIX_ENTRY_MASKED  0x1

/* Legacy INTx wiring, the one formula shared by pci_device_add and the
 * DSDT's _PRT: slot N, pin P (0 = INTA .. 3 = INTD) -> IOAPIC GSI 16..23. */
#define PCI_INTX_GSI(slot, pin) (16u + ((unsigned)(slot) + (unsigned)(pin)) % 8u)

struct pci_device;
struct pci_bus;

struct pci_bar {
	uint64_t size;         /* power of two, 0 = BAR unused */
	bool is64;             /* 64-bit memory BAR (takes two BAR slots) */
	uint64_t addr;         /* guest physical address assigned by kvmini */
	bus_io_fn fn;          /* MMIO handler; offset is relative to the BAR */
	void *ctx;
};

struct msix_vector {
	uint64_t addr;
	uint32_t data;
	bool masked;           /* per-vector mask bit */
	unsigned gsi;
	int efd;               /* eventfd bound to gsi with an irqfd */
	bool routed;           /* the route and irqfd are live in KVM */
};

struct pci_msix {
	unsigned nvec;
	int bar;
	uint64_t table_off, pba_off;
	uint8_t cap;           /* config offset of the capability */
	bool enabled, func_masked;   /* Message Control, under the bus lock */
	/* A copy of `enabled` for pci_msix_enabled(), which device threads call
	 * on every interrupt without the bus lock. Stored with release under
	 * the lock: set after the routes and irqfds of an enable are in place,
	 * cleared before those of a disable go. */
	atomic_bool enabled_flag;
	struct msix_vector vec[PCI_MSIX_MAX];
};

struct pci_device {
	const char *name;
	struct vm *vm;                 /* set by pci_device_add */
	struct pci_bus *bus;           /* set by pci_device_add */
	unsigned slot;                 /* set by pci_device_add */
	uint8_t cfg[PCI_CFG_SIZE];     /* what config reads return */
	uint8_t wmask[PCI_CFG_SIZE];   /* which bits the guest may write */
	uint8_t next_cap;              /* where pci_add_capability puts the next one */
	struct pci_bar bars[PCI_NUM_BARS];
	struct pci_msix msix;
	unsigned intx_gsi;             /* IOAPIC pin for INTA#, set by pci_device_add */
	int intx_level;                /* what the device model last asked for */
	bool intx_asserted;            /* what the IOAPIC pin currently sees */
	/* Called after the guest wrote config space at [off, off+len), after
	 * the write was applied (command register, capabilities...). Runs on
	 * the vCPU thread, outside the bus lock, so it may call pci_intx_set. */
	void (*cfg_written)(struct pci_device *d, unsigned off, unsigned len);
	void *opaque;                  /* the device model behind this function */
};

struct pci_bus {
	struct vm *vm;
	uint32_t cf8;                  /* CONFIG_ADDRESS latch */
	struct pci_device *devs[PCI_MAX_DEVICES];
	struct pci_device host_bridge;
	uint64_t mmio_next;            /* next free BAR address in the PCI window */
	pthread_mutex_t lock;          /* config cycles come from any vCPU */
};

/* Creates the bus and the host bridge, registers 0xCF8..0xCFF on vm->pio
 * ("pci-cfg"). bus is caller-owned memory (vm->pci). Needs vm->irq set up
 * (irq_routing_init) before any device with MSI-X is added. */
int pci_bus_init(struct pci_bus *bus, struct vm *vm);
/* Deassigns every live irqfd and closes the MSI-X eventfds. The devices
 * themselves belong to their models. Call before the VM fd is closed. */
void pci_bus_free(struct pci_bus *bus);

/* Fills vendor/device/class and zeroes the rest; the caller then adds BARs
 * and capabilities and finally calls pci_device_add. */
void pci_device_init(struct pci_device *d, const char *name, uint16_t vendor, uint16_t device,
		     uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id);
/* Declares a memory BAR (64-bit when is64; sizes are rounded up to 4 KiB
 * and to a power of two). */
int pci_bar_define(struct pci_device *d, int bar, uint64_t size, bool is64, bus_io_fn fn,
		   void *ctx);
/* Appends a capability of len bytes (including the 2-byte header) and
 * returns its config offset, or 0 when config space is full. body points to
 * all len bytes, header included (e.g. a whole struct virtio_pci_cap); its
 * first two bytes are replaced by id and the next pointer. NULL body = zeros.
 * Capabilities start at 0x40, 4-byte aligned, and are read-only to the
 * guest (wmask 0) until the caller sets d->wmask bytes itself. */
uint8_t pci_add_capability(struct pci_device *d, uint8_t id, const void *body, unsigned len);
/* Adds an MSI-X capability with nvec vectors; table at table_off and PBA at
 * pba_off inside BAR bar (which must already be defined). Creates one
 * eventfd per vector now; the GSIs are allocated by pci_device_add (the
 * device only knows its VM from then on). Vectors start masked. */
int pci_msix_init(struct pci_device *d, unsigned nvec, int bar, uint64_t table_off,
		  uint64_t pba_off);
/* Places the device in the next free slot, assigns BAR addresses, maps
 * them on the MMIO bus and the INTx pin. */
int pci_device_add(struct pci_bus *bus, struct pci_device *d);
/* For a device model's teardown, before it frees the memory holding d and
 * after its I/O threads stopped writing the MSI-X eventfds: deassigns live
 * irqfds, closes the eventfds and takes d off the bus, so that a later
 * pci_bus_free does not touch it. Idempotent; fine if d was never added.
 * (Its BAR ranges stay on vm->mmio: only call it once the vCPUs are gone.) */
void pci_device_release(struct pci_device *d);

/* The BAR's MMIO handler (bus_io_fn of pci_bar_define) must first offer
 * every access to this: it returns true when [off, off+len) touches the
 * MSI-X table or PBA of BAR bar (and handled it), false otherwise. Table
 * entries accept aligned 4- and 8-byte accesses; others read as zeros and
 * are dropped. The PBA reads as zeros (pending bits are not tracked). */
bool pci_msix_bar_access(struct pci_device *d, int bar, uint64_t off, uint8_t *data,
			 uint32_t len, bool is_write);

/* Interrupt delivery for device models. Both take no lock: they are on
 * every interrupt of every I/O thread.
 *
 * Whether MSI-X is enabled (Message Control bit 15), function mask or not:
 * while it is, the device signals vectors (pci_msix_eventfd) and never INTx,
 * even when the function or the vector is masked, because the pending
 * interrupt lives in the eventfd and is delivered on unmask. One acquire
 * load. An interrupt raised while the guest flips the enable bit may go the
 * old way (Linux enables MSI-X before DRIVER_OK and disables it after a
 * reset, so no device is running then). */
bool pci_msix_enabled(const struct pci_device *d);
/* The eventfd that raises MSI-X vector vec (so an I/O thread can signal
 * the guest without a syscall into kvmini's own code: write 1 to it).
 * -1 when vec is out of range. Writes while masked stay pending in the
 * eventfd and are delivered when the guest unmasks the vector. The fds
 * never change from pci_msix_init to pci_device_release (which comes after
 * the device's threads stopped). */
int pci_msix_eventfd(const struct pci_device *d, unsigned vec);
/* Sets the INTA# level (1 = asserted). The IOAPIC pin only follows while
 * the command register's INTx-disable bit is clear and MSI-X is off; the
 * level is remembered and applied when that changes. */
void pci_intx_set(struct pci_device *d, int level);

/* For --trace-exits and the unit tests: config access as the guest does it. */
void pci_config_access(struct pci_bus *bus, uint32_t cf8, unsigned byte_off, uint8_t *data,
		       unsigned len, bool is_write);
/* One line per function: slot, vendor:device, name, BARs, MSI-X, INTx. */
void pci_print_devices(FILE *f, struct pci_bus *bus);

#endif
