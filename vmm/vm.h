/* struct vm owns everything of one guest: the KVM fds, guest RAM, the buses,
 * the devices, the vCPUs and the event loop. There is no other global
 * mutable state (the log level aside). */
#ifndef KVMINI_VM_H
#define KVMINI_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/bus.h"
#include "vmm/config.h"
#include "vmm/irq.h"

struct kvm_run;
struct kvm_cpuid2;
struct console;
struct uart;
struct rtc;
struct i8042;
struct acpi_pm;
struct acpi_ged;
struct debug_exit;
struct pci_bus;
struct virtio_blk;
struct virtio_net;
struct event_loop;
struct evloop_work;

/* Why the VM stopped; the first reason recorded wins. */
enum vm_stop {
	VM_RUNNING = 0,
	VM_STOP_POWEROFF,   /* guest powered off: exit 0 */
	VM_STOP_REBOOT,     /* guest asked for a reset: restart, or exit 0 with --no-reboot */
	VM_STOP_USER,       /* SIGINT/SIGTERM or Ctrl-A x: exit 0 */
	VM_STOP_DEBUG_EXIT, /* test exit port: status in vm->debug_exit_status */
	VM_STOP_CRASH,      /* triple fault, internal error, unhandled exit: exit 1 */
	VM_STOP_ERROR,      /* VMM or device failure: exit 1 */
	VM_STOP_SHUTDOWN_TIMEOUT, /* the power button's deadline passed: exit 1 */
};

/* Exit reasons counted per vCPU for --trace-exits. */
enum vcpu_exit_kind {
	EXITK_IO, EXITK_MMIO, EXITK_HLT, EXITK_INTR, EXITK_SHUTDOWN, EXITK_SYSTEM_EVENT,
	EXITK_INTERNAL_ERROR, EXITK_FAIL_ENTRY, EXITK_OTHER, EXITK_COUNT
};

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	atomic_bool kick;
	/* Written only by this vCPU's thread, read by any (vmm/stat.h) */
	uint64_t exits[EXITK_COUNT];
};

struct vm {
	const struct vm_config *cfg;
	int kvm_fd;
	int vm_fd;

	/* Guest RAM: one anonymous mapping. GPA [0, ram_low) maps to ram[0..],
	 * GPA [4 GiB, 4 GiB + ram_high) maps to ram[ram_low..]. */
	uint8_t *ram;
	uint64_t ram_size;
	uint64_t ram_low;
	uint64_t ram_high;

	struct bus pio;
	struct bus mmio;

	unsigned ncpus;
	struct vcpu *vcpus;
	struct kvm_cpuid2 *cpuid; /* what KVM supports, patched per vCPU */

	struct console *console;
	struct uart *uart;
	struct rtc *rtc;
	struct i8042 *i8042;
	struct acpi_pm *acpi_pm;
	struct acpi_ged *acpi_ged;
	struct debug_exit *debug_exit;
	struct pci_bus *pci;
	unsigned ndisks;
	struct virtio_blk *disks[CONFIG_MAX_DISKS];
	unsigned nnics;
	struct virtio_net *nics[CONFIG_MAX_NICS];
	struct irq_routing irq;       /* GSI routing table and MSI GSI allocator */

	/* Stop protocol: vm_request_stop() records the reason once, kicks every
	 * vCPU out of KVM_RUN and wakes the event loop through stop_fd. */
	atomic_int stop_reason;
	int stop_fd;               /* eventfd */
	int debug_exit_status;
	pthread_mutex_t irq_lock;  /* serialises KVM_IRQ_LINE from devices */

	/* Pause protocol (vcpus_pause): the main thread sets pause_req and
	 * kicks; each vCPU thread parks in pause_cond, counted in npaused; the
	 * last one to park posts pause_done to the main loop. All under
	 * pause_lock. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	atomic_bool pause_req;     /* read unlocked by vCPUs before each KVM_RUN */
	unsigned npaused, nstarted;
	struct event_loop *pause_loop;
	struct evloop_work *pause_done;
};

/* The only way to turn a guest physical address into a pointer: NULL unless
 * every byte of [gpa, gpa + len) is guest RAM in one region. */
void *gpa_ptr(struct vm *vm, uint64_t gpa, uint64_t len);

int vm_create(struct vm *vm, const struct vm_config *cfg);
void vm_destroy(struct vm *vm);
int vm_irq_line(struct vm *vm, unsigned gsi, int level);
/* Binds (or unbinds) an eventfd to 2-byte guest writes at an MMIO address,
 * so those writes signal the eventfd inside KVM without a VM exit. */
int vm_ioeventfd(struct vm *vm, uint64_t addr, int efd, bool assign);
void vm_request_stop(struct vm *vm, enum vm_stop reason);
enum vm_stop vm_stop_reason(struct vm *vm);

#endif
