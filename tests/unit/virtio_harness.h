/* A virtio 1.x guest driver for the unit tests, played against a fake VM
 * without /dev/kvm (virtio_blk_test.c, virtio_net_test.c,
 * virtio_pci_test.c link virtio_harness.c).
 *
 * The struct vm is built by hand: vm_fd = kvm_fd = -1 (vmm/irq.c and
 * vm_ioeventfd() then skip their ioctls), calloc'd "guest RAM", the two buses
 * and a PCI bus. The driver finds its function with config cycles on ports
 * 0xCF8/0xCFC, reads BAR0 and walks the vendor capabilities, talks to the
 * common configuration through MMIO (bus_dispatch on vm->mmio), puts rings
 * and descriptors in guest RAM and polls the used ring. Without KVM there is
 * no ioeventfd: a kick is an MMIO write to the queue's notify address, which
 * the transport forwards to the queue's eventfd. Interrupts are read from
 * the MSI-X vectors' eventfds (as KVM's irqfd would consume them), the ISR
 * byte and the recorded INTx level.
 *
 * There is one fake VM at a time, in the global vh; a test's own state
 * (backends, files) stays in the test. Numbers are the virtio 1.x spec's
 * (2.7, 4.1) and PCI 3.0's, written out here rather than taken from
 * kvmini's macros or the UAPI headers the device uses. Helpers check what
 * every driver relies on with cmocka's assertions; what a test is about it
 * checks itself.
 *
 * The names are the short ones the tests used before they shared this; the
 * test programs link only this and kvmini_core, which exports none of them. */
#ifndef KVMINI_TESTS_VIRTIO_HARNESS_H
#define KVMINI_TESTS_VIRTIO_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/pci.h"
#include "virtio/virtio.h"
#include "vmm/vm.h"

/* ---- spec numbers ---------------------------------------------------------------- */

/* Device status (2.1). */
#define ST_ACK 1
#define ST_DRIVER 2
#define ST_DRIVER_OK 4
#define ST_FEATURES_OK 8
#define ST_NEEDS_RESET 64
#define ST_FAILED 128
#define ST_READY (ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK)

/* Feature bits every device type shares (6). */
#define BIT(n) (1ULL << (n))
#define F_INDIRECT 28
#define F_EVENT_IDX 29
#define F_VERSION_1 32

/* Descriptor flags (2.7.5). */
#define D_NEXT 1
#define D_WRITE 2
#define D_INDIRECT 4

#define NO_VECTOR 0xffff

/* Common configuration fields (4.1.4.3). */
enum { DFSEL = 0x00, DF = 0x04, GFSEL = 0x08, GF = 0x0c, MSIX = 0x10, NUMQ = 0x12, STATUS = 0x14,
       CFGGEN = 0x15, QSEL = 0x16, QSIZE = 0x18, QMSIX = 0x1a, QENABLE = 0x1c, QNOFF = 0x1e,
       QDESC = 0x20, QDRIVER = 0x28, QDEVICE = 0x30 };

/* ---- the fake VM and the driver's state ---------------------------------------------- */

/* Where drv_setup puts queue q's rings: the descriptor table, the driver
 * area 0x1000 on, the device area 0x2000 on; 64 KiB a queue from 0x10000 (a
 * test keeps its own buffers above the queues it uses). */
#define RING(q)  (0x10000u + 0x10000u * (q))
#define AVAIL(q) (RING(q) + 0x1000u)
#define USED(q)  (RING(q) + 0x2000u)
#define VH_MAXQ  8

/* The driver's view of one queue. */
struct vh_queue {
	uint16_t size;
	uint16_t avail_idx;     /* the driver's copy */
	uint16_t used_seen;     /* used entries consumed */
	uint16_t next_desc;     /* descriptors are used in turn */
	uint16_t notify_off;
	bool held;              /* publish() fills entries but leaves the index */
	uint64_t desc, avail, used;
};

struct vh {
	struct vm vm;
	struct pci_bus pbus;
	struct virtio_dev *vd;
	/* Where the function is (discover(), or set by the test). */
	unsigned slot;
	uint64_t bar;
	uint32_t common, isr, devcfg, notify, notify_mult, devcfg_len;
	uint8_t msix_cap;
	/* Set by the test: the maximum queue size the device offers (checked
	 * at every queue set-up), and whether the driver writes 64-bit
	 * registers as two 4-byte halves, low first, as Linux does (else as
	 * one 8-byte access). */
	uint16_t qmax;
	bool split64;
	/* Negotiated by drv_setup (kick_wanted follows it). */
	bool event_idx;
	struct vh_queue q[VH_MAXQ];
};

extern struct vh vh;

/* Clears vh and builds the VM: ram_size bytes of zeroed RAM, the buses, the
 * interrupt routing and the PCI bus (vm->pci). -1 on failure. */
int fake_vm_init(size_t ram_size);
/* Frees what fake_vm_init built; the device goes first, as in vmm/run.c. */
void fake_vm_free(void);

/* ---- guest memory ------------------------------------------------------------------- */

void w16(uint64_t gpa, uint16_t v);
void w32(uint64_t gpa, uint32_t v);
void w64(uint64_t gpa, uint64_t v);
uint16_t r16(uint64_t gpa);
uint32_t r32(uint64_t gpa);
void msleep(unsigned ms);

/* ---- PCI: config cycles on vh.slot, BAR0 MMIO, common configuration ------------------ */

uint32_t cfg_rd(unsigned off, unsigned len);
void cfg_wr(unsigned off, uint32_t v, unsigned len);
/* At BAR0 + off; the access must hit a device. */
uint64_t mmio_rd(uint64_t off, unsigned len);
void mmio_wr(uint64_t off, uint64_t v, unsigned len);
uint64_t cc_rd(unsigned f, unsigned len);
void cc_wr(unsigned f, uint64_t v, unsigned len);
uint8_t status(void);
void set_status(uint8_t s);
/* Polls the status up to ms for any of bits; returns status() & bits. */
uint8_t wait_status(uint8_t bits, int ms);
uint8_t generation(void);
uint64_t dev_cfg(unsigned off, unsigned len);
/* Reads (and so acknowledges) the ISR byte. */
uint8_t isr_read(void);

/* Finds the function with vendor 0x1af4 and this device ID by config
 * cycles, turns on memory decoding and bus mastering, and reads BAR0 and
 * where the capabilities put the common, notify, ISR and device
 * configuration and the MSI-X table: what a driver does before anything
 * else. Sets vh.slot, bar, common ... msix_cap and vd. */
void discover(uint16_t device_id);

/* ---- feature negotiation and initialisation ------------------------------------------- */

uint64_t read_device_features(void);
void write_driver_features(uint64_t f);
uint64_t read_driver_features(void);
/* Reset, ACK, DRIVER, the device's features read, want written,
 * FEATURES_OK; returns the status after FEATURES_OK. */
uint8_t negotiate(uint64_t want);

/* Queue q's registers, as a driver sets a queue up (4.1.5.1.3): select it,
 * check the maximum size (vh.qmax), set the size and the MSI-X vector and
 * read both back, the ring addresses, then enable it. The rings are zeroed
 * first (what lies in RAM of them), and the driver's view vh.q[q] starts
 * afresh. Whether the device took the queue (QENABLE reads 1) is the
 * caller's to check. */
void queue_setup_at(unsigned q, uint16_t size, uint16_t vector, uint64_t desc, uint64_t avail,
		    uint64_t used);
/* The same with the rings at RING(q). */
void queue_setup(unsigned q, uint16_t size, uint16_t vector);

/* The initialisation (3.1.1) up to, not including, DRIVER_OK: negotiate
 * want, then with msix every vector of the table programmed and MSI-X on,
 * vector 0 for configuration changes and vector q+1 for queue q, or
 * without it MSI-X off and NO_VECTOR, and queues 0..nq-1 of qsize entries
 * at RING(q), each checked enabled. Interrupts already counted on the
 * vectors are drained. Stops early if FEATURES_OK did not stick. Returns
 * the status. */
uint8_t drv_setup(uint64_t want, unsigned nq, uint16_t qsize, bool msix);
/* drv_setup, then DRIVER_OK (and the vectors drained again). Returns the
 * final status: ST_READY when all went well. */
uint8_t drv_init_n(uint64_t want, unsigned nq, uint16_t qsize, bool msix);

/* ---- interrupts ---------------------------------------------------------------------- */

/* Table entry v: a message (data 0x30 + v), unmasked. */
void msix_vector_setup(unsigned v);
/* Writes the MSI-X capability's message control word. */
void msix_ctrl(uint16_t ctrl);
/* Every vector of the table set up, then MSI-X enabled. */
void msix_enable(void);
/* Interrupts delivered on vector v since the last call (the eventfd's
 * counter, read and cleared). */
uint64_t irqs(unsigned v);
/* Whether an interrupt is pending on vector v within ms (not consumed). */
bool wait_irq(unsigned v, int ms);

/* ---- rings ---------------------------------------------------------------------------- */

struct seg {
	uint64_t gpa;
	uint32_t len;
	bool w;                 /* device-writable */
};

struct used {
	uint32_t id, len;
};

void set_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
	      uint16_t next);
/* Puts head in the next avail entry and publishes the new avail index
 * (unless the queue is held). */
void publish(unsigned q, uint16_t head);
/* Held, a queue's new entries stay invisible to the device; released, all
 * of them appear with one store of the avail index (one batch). */
void hold_avail(unsigned q);
void release_avail(unsigned q);
/* Writes a chain of n descriptors in queue q's table (the next ones in
 * turn) and publishes it; returns its head. */
uint16_t post(unsigned q, const struct seg *s, unsigned n);
/* A kick as the guest does it: the 16-bit queue index written to the
 * queue's notify address. */
void kick(unsigned q);
/* Linux's virtqueue_kick_prepare: does the device want a kick for what was
 * published since avail index old_idx (avail_event with EVENT_IDX, else the
 * used ring's NO_NOTIFY flag)? */
bool kick_wanted(unsigned q, uint16_t old_idx);
uint16_t used_idx(unsigned q);
/* Used entries not taken yet. */
uint16_t used_new(unsigned q);
/* Polls up to ms for n new used entries. */
bool wait_used(unsigned q, uint16_t n, int ms);
/* The next used entry. */
struct used take_used(unsigned q);

#endif
