#ifndef KVMINI_VCPU_H
#define KVMINI_VCPU_H

#include "boot/loader.h"
#include "vmm/vm.h"

/* Creates vCPU id: fd, kvm_run mapping, CPUID, MSRs, FPU, LAPIC LINTs. */
int vcpu_init(struct vm *vm, struct vcpu *v, int id);
/* Registers of the boot processor for the kernel's first instruction. The
 * other vCPUs stay in wait-for-SIPI until the guest starts them. */
int vcpu_set_boot_state(struct vcpu *v, const struct boot_entry *entry);
int vcpu_start(struct vcpu *v);
/* Kicks every started vCPU out of KVM_RUN and joins its thread. */
struct event_loop;
/* Kicks every vCPU out of KVM_RUN and joins its thread. With a loop, keeps
 * running it meanwhile (this thread must own it): a vCPU may be waiting in
 * evloop_call for that loop (a device being reset), and would never exit. */
void vcpus_stop_and_join(struct vm *vm, struct event_loop *loop);
struct evloop_work;
/* Pause: every started vCPU leaves KVM_RUN and parks; when the last one
 * has, done is posted to loop (at once if they all are already). Main
 * thread only. A vCPU busy in a device call that waits for the loop parks
 * after the loop served it, hence no waiting here. */
void vcpus_pause(struct vm *vm, struct event_loop *loop, struct evloop_work *done);
/* Lets parked vCPUs run again (KVM_KVMCLOCK_CTRL on the way). */
void vcpus_resume(struct vm *vm);
void vcpu_destroy(struct vcpu *v);
/* Writes the vCPU's registers to stderr (crash reports). */
void vcpu_dump_registers(struct vcpu *v);
/* Installs the SIGUSR1 handler used to kick vCPUs; call once per process. */
int vcpu_signals_init(void);

#endif
