/* The VM's GSI routing table and irqfds. See vmm/irq.h and docs/pci.md.
 *
 * KVM_SET_GSI_ROUTING replaces the whole table at once, so kvmini keeps the
 * only copy in vm->irq.table and pushes all of it after every change, under
 * vm->irq.lock (MSI-X table writes arrive on any vCPU thread).
 *
 * Test mode: with vm->vm_fd < 0 (a struct vm built by hand in the unit tests)
 * every ioctl is skipped and reported as success; the bookkeeping (the
 * table, the GSI allocator) works exactly as with a real VM. */
#include "vmm/irq.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/log.h"
#include "vmm/vm.h"

/* Entries, not GSIs: GSIs 0..15 take two entries each (PIC and IOAPIC). */
#define IRQ_TABLE_CAP (IRQ_GSI_MAX + 16)

static int push_table(struct vm *vm)
{
	if (vm->vm_fd < 0)
		return 0;
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->irq.table) < 0) {
		int e = errno;
		log_err("KVM_SET_GSI_ROUTING (%u entries): %s", vm->irq.table->nr, strerror(e));
		return -e;
	}
	return 0;
}

static void add_irqchip(struct kvm_irq_routing *t, unsigned gsi, unsigned chip, unsigned pin)
{
	struct kvm_irq_routing_entry *e = &t->entries[t->nr++];

	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

/* The same table as kvmtool and QEMU (kvm_pc_setup_irq_routing):
 *   GSI 0      -> PIC master pin 0 and IOAPIC pin 2: the in-kernel PIT
 *                 raises GSI 0, and the MADT tells the guest that ISA IRQ 0
 *                 arrives on IOAPIC pin 2 (interrupt source override);
 *   GSI 1..15  -> PIC pin (master 0..7, slave 8..15) and IOAPIC pin = GSI;
 *                 GSI 2 has no route at all: PIC pin 2 is the cascade and
 *                 IOAPIC pin 2 belongs to GSI 0. A second GSI on IOAPIC pin
 *                 2 would also steal the PIT's EOI notifications, since KVM
 *                 maps (chip, pin) back to a single GSI for ack notifiers;
 *   GSI 16..23 -> IOAPIC pin = GSI (PCI INTx, see the DSDT's _PRT). */
static void default_routes(struct kvm_irq_routing *t)
{
	t->nr = 0;
	for (unsigned gsi = 0; gsi < 16; gsi++) {
		if (gsi == 2)
			continue;
		if (gsi < 8)
			add_irqchip(t, gsi, KVM_IRQCHIP_PIC_MASTER, gsi);
		else
			add_irqchip(t, gsi, KVM_IRQCHIP_PIC_SLAVE, gsi - 8);
		add_irqchip(t, gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
	}
	for (unsigned gsi = 16; gsi < IRQ_GSI_IOAPIC_PINS; gsi++)
		add_irqchip(t, gsi, KVM_IRQCHIP_IOAPIC, gsi);
}

int irq_routing_init(struct vm *vm)
{
	struct irq_routing *r = &vm->irq;
	int err;

	r->table = calloc(1, sizeof(*r->table) +
				     IRQ_TABLE_CAP * sizeof(struct kvm_irq_routing_entry));
	if (!r->table)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	default_routes(r->table);
	r->next_msi_gsi = IRQ_GSI_IOAPIC_PINS;
	if ((err = push_table(vm))) {
		irq_routing_free(vm);
		return err;
	}
	return 0;
}

void irq_routing_free(struct vm *vm)
{
	if (!vm->irq.table)
		return;
	free(vm->irq.table);
	vm->irq.table = NULL;
	pthread_mutex_destroy(&vm->irq.lock);
}

int irq_msi_gsi_alloc(struct vm *vm, unsigned *gsi)
{
	struct irq_routing *r = &vm->irq;
	int ret = 0;

	if (!r->table)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (r->next_msi_gsi >= IRQ_GSI_MAX)
		ret = -ENOSPC;
	else
		*gsi = r->next_msi_gsi++;
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static struct kvm_irq_routing_entry *find_msi(struct kvm_irq_routing *t, unsigned gsi)
{
	for (unsigned i = 0; i < t->nr; i++)
		if (t->entries[i].gsi == gsi && t->entries[i].type == KVM_IRQ_ROUTING_MSI)
			return &t->entries[i];
	return NULL;
}

int irq_msi_route_set(struct vm *vm, unsigned gsi, uint64_t addr, uint32_t data, int enabled)
{
	struct irq_routing *r = &vm->irq;
	struct kvm_irq_routing_entry *e;
	int ret;

	if (!r->table)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (gsi < IRQ_GSI_IOAPIC_PINS || gsi >= r->next_msi_gsi) {
		ret = -EINVAL; /* not a GSI handed out by irq_msi_gsi_alloc */
		goto out;
	}
	e = find_msi(r->table, gsi);
	if (!enabled) {
		if (!e) {
			ret = 0; /* already gone: nothing to push */
			goto out;
		}
		/* Order does not matter to KVM: move the last entry here. */
		*e = r->table->entries[--r->table->nr];
	} else {
		if (!e) {
			if (r->table->nr >= IRQ_TABLE_CAP) {
				ret = -ENOSPC;
				goto out;
			}
			e = &r->table->entries[r->table->nr++];
			memset(e, 0, sizeof(*e));
			e->gsi = gsi;
			e->type = KVM_IRQ_ROUTING_MSI;
		}
		e->u.msi.address_lo = (uint32_t)addr;
		e->u.msi.address_hi = (uint32_t)(addr >> 32);
		e->u.msi.data = data;
	}
	ret = push_table(vm);
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int irqfd(struct vm *vm, int efd, unsigned gsi, uint32_t flags)
{
	struct kvm_irqfd a = { .fd = (uint32_t)efd, .gsi = gsi, .flags = flags };

	if (efd < 0)
		return -EBADF;
	if (vm->vm_fd < 0)
		return 0;
	if (ioctl(vm->vm_fd, KVM_IRQFD, &a) < 0) {
		int e = errno;
		log_err("KVM_IRQFD (%s gsi %u): %s",
			flags & KVM_IRQFD_FLAG_DEASSIGN ? "deassign" : "assign", gsi, strerror(e));
		return -e;
	}
	return 0;
}

int irq_irqfd_assign(struct vm *vm, int efd, unsigned gsi)
{
	return irqfd(vm, efd, gsi, 0);
}

int irq_irqfd_deassign(struct vm *vm, int efd, unsigned gsi)
{
	return irqfd(vm, efd, gsi, KVM_IRQFD_FLAG_DEASSIGN);
}
