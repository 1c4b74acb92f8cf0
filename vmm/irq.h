/* Interrupt routing shared by all devices: the KVM GSI routing table (the
 * IOAPIC/PIC pins plus one MSI route per allocated vector) and irqfds.
 * KVM_SET_GSI_ROUTING replaces the whole table, so the VM keeps the only
 * copy here and every change goes through these functions. */
#ifndef KVMINI_IRQ_H
#define KVMINI_IRQ_H

#include <pthread.h>
#include <stdint.h>

struct vm;
struct kvm_irq_routing;

#define IRQ_GSI_IOAPIC_PINS 24   /* GSIs 0..23 are IOAPIC pins (0..15 also PIC) */
#define IRQ_GSI_MAX         1024

struct irq_routing {
	pthread_mutex_t lock;
	struct kvm_irq_routing *table;   /* capacity IRQ_GSI_MAX entries */
	unsigned next_msi_gsi;           /* first free GSI for MSI routes */
};

/* Installs the default IOAPIC/PIC routes; call once after KVM_CREATE_IRQCHIP. */
int irq_routing_init(struct vm *vm);
void irq_routing_free(struct vm *vm);
/* Allocates a GSI for an MSI route (initially masked: no route). */
int irq_msi_gsi_alloc(struct vm *vm, unsigned *gsi);
/* Points gsi at an MSI message (addr/data as the guest programmed them),
 * or removes the route when enabled is 0. Pushes the table to KVM. */
int irq_msi_route_set(struct vm *vm, unsigned gsi, uint64_t addr, uint32_t data, int enabled);
/* KVM_IRQFD: writes to efd raise gsi without leaving the kernel. */
int irq_irqfd_assign(struct vm *vm, int efd, unsigned gsi);
int irq_irqfd_deassign(struct vm *vm, int efd, unsigned gsi);

#endif
