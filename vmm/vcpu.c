/* One thread per vCPU runs KVM_RUN and dispatches each exit to the port-I/O
 * or MMIO bus. Exits reaching here are register accesses (UART, config
 * space); data paths use ioeventfd/irqfd and never come through. */
#include "vmm/vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/cpuid.h"
#include "vmm/eventloop.h"
#include "vmm/layout.h"
#include "vmm/log.h"
#include "vmm/stat.h"

#define KICK_SIGNAL SIGUSR1

static void kick_handler(int sig) { (void)sig; }

int vcpu_signals_init(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: KVM_RUN must return EINTR so the thread sees the stop. */
	return sigaction(KICK_SIGNAL, &sa, NULL) < 0 ? -errno : 0;
}

static int vcpu_ioctl(struct vcpu *v, unsigned long req, const char *name, void *arg)
{
	if (ioctl(v->fd, req, arg) < 0) {
		int e = errno;
		log_err("vCPU %d: %s: %s", v->id, name, strerror(e));
		return -e;
	}
	return 0;
}

static int setup_msrs(struct vcpu *v)
{
	/* The state Linux expects from firmware: syscall MSRs cleared, fast
	 * strings on, MTRRs enabled with write-back as the default type. */
	static const struct { uint32_t index; uint64_t data; } init[] = {
		{ 0x174, 0 }, { 0x175, 0 }, { 0x176, 0 },           /* SYSENTER_CS/ESP/EIP */
		{ 0xc0000081, 0 }, { 0xc0000082, 0 }, { 0xc0000083, 0 }, /* STAR, LSTAR, CSTAR */
		{ 0xc0000084, 0 }, { 0xc0000102, 0 },                /* SFMASK, KERNEL_GS_BASE */
		{ 0x10, 0 },                                         /* TSC */
		{ 0x1a0, 1 },                                        /* MISC_ENABLE: fast strings */
		{ 0x2ff, (1 << 11) | 6 },                            /* MTRRdefType: enabled, WB */
	};
	enum { N = sizeof(init) / sizeof(init[0]) };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[N];
	} msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = N;
	for (int i = 0; i < N; i++) {
		msrs.e[i].index = init[i].index;
		msrs.e[i].data = init[i].data;
	}
	int n = ioctl(v->fd, KVM_SET_MSRS, &msrs);
	if (n < 0)
		return -errno;
	if (n != N)
		/* Seen on paravirtual KVMs without MTRR emulation: not fatal. */
		log_debug("vCPU %d: KVM set %d of %d boot MSRs (first refused: 0x%x)", v->id, n, N,
			  init[n].index);
	return 0;
}

static int setup_lapic(struct vcpu *v)
{
	/* LINT0 as ExtINT (the 8259 path) and LINT1 as NMI, as a BIOS would. */
	struct kvm_lapic_state lapic;
	if (ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	uint32_t *lvt0 = (uint32_t *)(void *)&lapic.regs[0x350];
	uint32_t *lvt1 = (uint32_t *)(void *)&lapic.regs[0x360];
	*lvt0 = (*lvt0 & ~0x700u) | (7 << 8);
	*lvt1 = (*lvt1 & ~0x700u) | (4 << 8);
	return ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0 ? -errno : 0;
}

int vcpu_init(struct vm *vm, struct vcpu *v, int id)
{
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		int e = errno;
		log_err("KVM_CREATE_VCPU %d: %s", id, strerror(e));
		return -e;
	}
	int sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run))
		return -EINVAL;
	v->run_size = (size_t)sz;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -errno;
	}

	if (!vm->cpuid) {
		vm->cpuid = cpuid_supported(vm->kvm_fd);
		if (!vm->cpuid) {
			log_err("KVM_GET_SUPPORTED_CPUID failed");
			return -EIO;
		}
	}
	size_t csz = sizeof(*vm->cpuid) + vm->cpuid->nent * sizeof(vm->cpuid->entries[0]);
	struct kvm_cpuid2 *c = malloc(csz);
	if (!c)
		return -ENOMEM;
	memcpy(c, vm->cpuid, csz);
	cpuid_patch_for_vcpu(c, (unsigned)id, vm->ncpus);
	int r = vcpu_ioctl(v, KVM_SET_CPUID2, "KVM_SET_CPUID2", c);
	free(c);
	if (r)
		return r;
	if ((r = setup_msrs(v))) {
		log_err("vCPU %d: KVM_SET_MSRS: %s", id, strerror(-r));
		return r;
	}
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if ((r = vcpu_ioctl(v, KVM_SET_FPU, "KVM_SET_FPU", &fpu)))
		return r;
	if ((r = setup_lapic(v))) {
		log_err("vCPU %d: LAPIC set-up: %s", id, strerror(-r));
		return r;
	}
	return 0;
}

int vcpu_set_boot_state(struct vcpu *v, const struct boot_entry *entry)
{
	struct kvm_sregs sregs;
	int r = vcpu_ioctl(v, KVM_GET_SREGS, "KVM_GET_SREGS", &sregs);
	if (r)
		return r;
	boot_sregs(&sregs, entry->mode);
	if ((r = vcpu_ioctl(v, KVM_SET_SREGS, "KVM_SET_SREGS", &sregs)))
		return r;
	struct kvm_regs regs = {
		.rip = entry->rip,
		.rsi = entry->rsi,
		.rbx = entry->rbx,
		.rsp = LAYOUT_BOOT_STACK,
		.rbp = LAYOUT_BOOT_STACK,
		.rflags = 0x2, /* bit 1 is reserved-one; interrupts off */
	};
	return vcpu_ioctl(v, KVM_SET_REGS, "KVM_SET_REGS", &regs);
}

void vcpu_dump_registers(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0) {
		log_err("vCPU %d: cannot read registers", v->id);
		return;
	}
	fprintf(stderr,
		"kvmini: vCPU %d registers:\r\n"
		"  rip %016llx rsp %016llx rflags %016llx\r\n"
		"  rax %016llx rbx %016llx rcx %016llx rdx %016llx\r\n"
		"  rsi %016llx rdi %016llx rbp %016llx\r\n"
		"  r8  %016llx r9  %016llx r10 %016llx r11 %016llx\r\n"
		"  r12 %016llx r13 %016llx r14 %016llx r15 %016llx\r\n"
		"  cs %04x (base %llx l %d db %d dpl %d) ss %04x\r\n"
		"  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx efer %llx\r\n",
		v->id, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp,
		r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, s.cs.selector,
		s.cs.base, s.cs.l, s.cs.db, s.cs.dpl, s.ss.selector, s.cr0, s.cr2, s.cr3, s.cr4,
		s.efer);
}

static void crash(struct vcpu *v, const char *what)
{
	log_err("vCPU %d: %s", v->id, what);
	vcpu_dump_registers(v);
	vm_request_stop(v->vm, VM_STOP_CRASH);
}

/* Returns false when the vCPU must stop. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	struct vm *vm = v->vm;
	char msg[128];
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		STAT_INC(v->exits[EXITK_IO]);
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		uint32_t size = run->io.size;
		/* rep ins/outs arrive as count elements back to back. */
		if (run->io.data_offset + (uint64_t)size * run->io.count > v->run_size)
			break;
		for (uint32_t i = 0; i < run->io.count; i++, data += size)
			bus_dispatch(&vm->pio, run->io.port, data, size,
				     run->io.direction == KVM_EXIT_IO_OUT);
		return true;
	}
	case KVM_EXIT_MMIO:
		STAT_INC(v->exits[EXITK_MMIO]);
		if (run->mmio.len <= sizeof(run->mmio.data))
			bus_dispatch(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
				     run->mmio.is_write);
		return true;
	case KVM_EXIT_HLT:
		STAT_INC(v->exits[EXITK_HLT]);
		return true;
	case KVM_EXIT_INTR:
		STAT_INC(v->exits[EXITK_INTR]);
		return true;
	case KVM_EXIT_SHUTDOWN:
		STAT_INC(v->exits[EXITK_SHUTDOWN]);
		crash(v, "triple fault (KVM_EXIT_SHUTDOWN)");
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		STAT_INC(v->exits[EXITK_SYSTEM_EVENT]);
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_stop(vm, VM_STOP_POWEROFF);
			return false;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(vm, VM_STOP_REBOOT);
			return false;
		default:
			snprintf(msg, sizeof(msg), "system event %u", run->system_event.type);
			crash(v, msg);
			return false;
		}
	case KVM_EXIT_INTERNAL_ERROR:
		STAT_INC(v->exits[EXITK_INTERNAL_ERROR]);
		snprintf(msg, sizeof(msg), "KVM internal error, suberror %u",
			 run->internal.suberror);
		crash(v, msg);
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		STAT_INC(v->exits[EXITK_FAIL_ENTRY]);
		snprintf(msg, sizeof(msg), "VM entry failed, hardware reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		crash(v, msg);
		return false;
	default:
		break;
	}
	STAT_INC(v->exits[EXITK_OTHER]);
	snprintf(msg, sizeof(msg), "unhandled exit reason %u", run->exit_reason);
	crash(v, msg);
	return false;
}

/* The vCPU is out of KVM_RUN and stays out until the resume (or a stop).
 * On the way back it tells KVM it was stopped on purpose, so the guest's
 * soft-lockup and RCU-stall watchdogs don't count the pause against it. */
static void park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	pthread_mutex_lock(&vm->pause_lock);
	if (++vm->npaused == vm->nstarted && vm->pause_done)
		evloop_post(vm->pause_loop, vm->pause_done);
	while (atomic_load(&vm->pause_req) && !atomic_load(&v->kick))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->npaused--;
	pthread_mutex_unlock(&vm->pause_lock);
	if (ioctl(v->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL)
		log_debug("vCPU %d: KVM_KVMCLOCK_CTRL: %s", v->id, strerror(errno));
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	sigset_t kick;
	sigemptyset(&kick);
	sigaddset(&kick, KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	char name[16];
	snprintf(name, sizeof(name), "vcpu%d", v->id);
	pthread_setname_np(pthread_self(), name);

	while (!atomic_load(&v->kick)) {
		if (atomic_load_explicit(&v->vm->pause_req, memory_order_acquire)) {
			park(v);
			continue;
		}
		int r = ioctl(v->fd, KVM_RUN, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->run->immediate_exit = 0;
				continue;
			}
			char msg[96];
			snprintf(msg, sizeof(msg), "KVM_RUN: %s", strerror(errno));
			log_err("vCPU %d: %s", v->id, msg);
			vm_request_stop(v->vm, VM_STOP_ERROR);
			break;
		}
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int r = pthread_create(&v->thread, NULL, vcpu_thread, v);
	if (r) {
		log_err("cannot start vCPU %d thread: %s", v->id, strerror(r));
		return -r;
	}
	v->thread_started = true;
	return 0;
}

static void kick_all(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (!v->thread_started)
			continue;
		v->run->immediate_exit = 1;
		pthread_kill(v->thread, KICK_SIGNAL);
	}
}

void vcpus_pause(struct vm *vm, struct event_loop *loop, struct evloop_work *done)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, true);
	vm->pause_loop = loop;
	vm->pause_done = done;
	vm->nstarted = 0;
	for (unsigned i = 0; i < vm->ncpus; i++)
		vm->nstarted += vm->vcpus[i].thread_started;
	bool all = vm->npaused == vm->nstarted;
	pthread_mutex_unlock(&vm->pause_lock);
	if (all)
		evloop_post(loop, done);
	else
		kick_all(vm);
}

void vcpus_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	atomic_store(&vm->pause_req, false);
	vm->pause_done = NULL;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

void vcpus_stop_and_join(struct vm *vm, struct event_loop *loop)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].thread_started)
			atomic_store(&vm->vcpus[i].kick, true);
	kick_all(vm);
	/* A parked vCPU waits for the resume: wake it to see the kick. */
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_done = NULL;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (!v->thread_started)
			continue;
		if (loop) {
			/* A posted call wakes the loop at once; the short timeout
			 * only bounds how late we notice the thread has ended. */
			while (pthread_tryjoin_np(v->thread, NULL) == EBUSY) {
				evloop_run_once(loop, 2);
				/* A vCPU entering KVM_RUN just now missed the kick. */
				pthread_kill(v->thread, KICK_SIGNAL);
			}
		} else {
			pthread_join(v->thread, NULL);
		}
		v->thread_started = false;
	}
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd > 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}
