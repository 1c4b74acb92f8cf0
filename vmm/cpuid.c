/* CPUID for each vCPU: what KVM supports, with the topology made to match
 * the number of vCPUs and each vCPU's own APIC ID (as Firecracker and
 * kvmtool do). Linux counts CPUs from ACPI, but sizes its topology from
 * these leaves. */
#include "vmm/cpuid.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_MAX_ENTRIES 256

struct kvm_cpuid2 *cpuid_supported(int kvm_fd)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + CPUID_MAX_ENTRIES * sizeof(c->entries[0]));
	if (!c)
		return NULL;
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		free(c);
		return NULL;
	}
	return c;
}

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

void cpuid_patch_for_vcpu(struct kvm_cpuid2 *c, unsigned apic_id, unsigned ncpus)
{
	unsigned core_bits = bits_for(ncpus);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		switch (e->function) {
		case 1:
			/* EBX: initial APIC ID and logical processors per package. */
			e->ebx = (e->ebx & 0x0000ffff) | (apic_id << 24) |
				 ((ncpus > 255 ? 255 : ncpus) << 16);
			e->ecx |= 1u << 31; /* running under a hypervisor */
			if (ncpus > 1)
				e->edx |= 1u << 28; /* HTT: the package has several CPUs */
			break;
		case 4:
			/* Cores per package; caches are private except the last level. */
			if (e->eax & 0x1f) {
				unsigned level = (e->eax >> 5) & 7;
				e->eax &= 0x3ff;
				e->eax |= ((ncpus > 64 ? 63 : ncpus - 1) & 0x3f) << 26;
				if (level >= 3)
					e->eax |= ((ncpus - 1) & 0xfff) << 14;
			}
			break;
		case 0xb:
		case 0x1f:
			/* Extended topology: one thread per core, ncpus cores. */
			e->edx = apic_id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1 << 8) | 0;
			} else if (e->index == 1) {
				e->eax = core_bits;
				e->ebx = ncpus;
				e->ecx = (2 << 8) | 1;
			} else {
				e->eax = 0;
				e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x8000001e:
			e->eax = apic_id; /* extended APIC ID (AMD) */
			break;
		default:
			break;
		}
	}
}
