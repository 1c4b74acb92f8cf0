#ifndef KVMINI_CPUID_H
#define KVMINI_CPUID_H

struct kvm_cpuid2;
/* KVM_GET_SUPPORTED_CPUID; NULL on failure. The caller frees it. */
struct kvm_cpuid2 *cpuid_supported(int kvm_fd);
/* Adjusts topology leaves in place for one vCPU. */
void cpuid_patch_for_vcpu(struct kvm_cpuid2 *c, unsigned apic_id, unsigned ncpus);

#endif
