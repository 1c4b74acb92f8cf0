/* VM creation: /dev/kvm, capabilities, guest RAM, in-kernel irqchip and PIT,
 * and the stop protocol every thread uses. */
#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/layout.h"
#include "vmm/log.h"

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << 26)
#endif

void *gpa_ptr(struct vm *vm, uint64_t gpa, uint64_t len)
{
	if (gpa < vm->ram_low) {
		if (len > vm->ram_low - gpa)
			return NULL;
		return vm->ram + gpa;
	}
	if (gpa >= LAYOUT_HIGH_RAM && gpa - LAYOUT_HIGH_RAM < vm->ram_high) {
		uint64_t off = gpa - LAYOUT_HIGH_RAM;
		if (len > vm->ram_high - off)
			return NULL;
		return vm->ram + vm->ram_low + off;
	}
	return NULL;
}

/* Every capability kvmini relies on, checked up front so that a missing one
 * is named instead of surfacing as an obscure ioctl failure later. */
static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
	{ KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING" },
	{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
	{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
};

static int check_kvm(struct vm *vm)
{
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;
		log_err("cannot open /dev/kvm: %s", strerror(e));
		return -e;
	}
	int api = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (api < 0) {
		log_err("/dev/kvm is not KVM: KVM_GET_API_VERSION: %s", strerror(errno));
		return -ENOTSUP;
	}
	if (api != KVM_API_VERSION) {
		log_err("/dev/kvm speaks API %d, kvmini needs %d", api, KVM_API_VERSION);
		return -ENOTSUP;
	}
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0) {
			log_err("/dev/kvm lacks %s, which kvmini requires", required_caps[i].name);
			return -ENOTSUP;
		}
	}
	int max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max <= 0)
		max = 4;
	/* MADT xAPIC entries carry 8-bit APIC IDs; 255 is the broadcast ID. */
	if (max > 254)
		max = 254;
	if (vm->ncpus > (unsigned)max) {
		log_err("--cpus %u is more than this host's KVM allows (%d)", vm->ncpus, max);
		return -ERANGE;
	}
	return 0;
}

/* Guest RAM starts on a 2 MiB boundary, so that transparent huge pages can
 * back all of it (older kernels do not align large anonymous mappings):
 * map 2 MiB more, then unmap the ends. */
static void *map_ram(uint64_t size, int flags, bool hugetlb)
{
	const uint64_t align = 2ULL << 20;
	if (hugetlb)
		return mmap(NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0);
	uint8_t *p = mmap(NULL, size + align, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (p == MAP_FAILED)
		return MAP_FAILED;
	uint64_t head = (align - ((uintptr_t)p & (align - 1))) & (align - 1);
	if (head)
		munmap(p, head);
	munmap(p + head + size, align - head);
	return p + head;
}

static int setup_memory(struct vm *vm, const struct vm_config *cfg)
{
	vm->ram_size = cfg->mem_size;
	vm->ram_low = LAYOUT_RAM_LOW(cfg->mem_size);
	vm->ram_high = cfg->mem_size - vm->ram_low;
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	if (cfg->hugepages)
		flags |= MAP_HUGETLB | MAP_HUGE_2MB;
	void *p = map_ram(vm->ram_size, flags, cfg->hugepages);
	if (p == MAP_FAILED) {
		int e = errno;
		if (cfg->hugepages)
			log_err("cannot map %llu MiB of 2 MiB huge pages: %s (reserve them in "
				"/proc/sys/vm/nr_hugepages)",
				(unsigned long long)(vm->ram_size >> 20), strerror(e));
		else
			log_err("cannot map %llu MiB of guest memory: %s",
				(unsigned long long)(vm->ram_size >> 20), strerror(e));
		return -e;
	}
	vm->ram = p;
	/* Guest RAM never goes into a core dump of the VMM or to a child. */
	madvise(p, vm->ram_size, MADV_DONTDUMP);
	madvise(p, vm->ram_size, MADV_DONTFORK);
	/* Transparent huge pages, as QEMU asks for: 2 MiB mappings in the
	 * guest's EPT/NPT, and guest buffers that are physically contiguous
	 * in 2 MiB pieces, so an O_DIRECT transfer into them is a few large
	 * segments rather than one per 4 KiB page (hosts with THP in
	 * "madvise" mode, Debian's default, only give them when asked). */
	if (!cfg->hugepages && madvise(p, vm->ram_size, cfg->thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		log_debug("madvise(%s) on guest RAM: %s", cfg->thp ? "MADV_HUGEPAGE" : "MADV_NOHUGEPAGE",
			  strerror(errno));

	struct kvm_userspace_memory_region low = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = vm->ram_low,
		.userspace_addr = (uintptr_t)vm->ram,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &low) < 0)
		goto fail;
	if (vm->ram_high) {
		struct kvm_userspace_memory_region high = {
			.slot = 1, .guest_phys_addr = LAYOUT_HIGH_RAM, .memory_size = vm->ram_high,
			.userspace_addr = (uintptr_t)(vm->ram + vm->ram_low),
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &high) < 0)
			goto fail;
	}
	return 0;
fail:;
	int e = errno;
	log_err("KVM_SET_USER_MEMORY_REGION: %s", strerror(e));
	return -e;
}

static int vm_ioctl(struct vm *vm, unsigned long req, const char *name, unsigned long arg)
{
	if (ioctl(vm->vm_fd, req, arg) < 0) {
		int e = errno;
		log_err("%s: %s", name, strerror(e));
		return -e;
	}
	return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	vm->kvm_fd = vm->vm_fd = vm->stop_fd = -1;
	vm->ncpus = cfg->cpus;
	atomic_init(&vm->stop_reason, VM_RUNNING);
	pthread_mutex_init(&vm->pause_lock, NULL);
	pthread_cond_init(&vm->pause_cond, NULL);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");

	int r = check_kvm(vm);
	if (r)
		return r;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		int e = errno;
		log_err("KVM_CREATE_VM: %s", strerror(e));
		return -e;
	}
	/* Three pages below the IOAPIC that Intel VMX needs for real-mode
	 * emulation; they sit in the MMIO hole, never in RAM. */
	if ((r = vm_ioctl(vm, KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", 0xfffbd000)))
		return r;
	uint64_t ident = 0xfffbc000;
	if ((r = vm_ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR",
			  (unsigned long)&ident)))
		return r;
	if ((r = vm_ioctl(vm, KVM_CREATE_IRQCHIP, "KVM_CREATE_IRQCHIP", 0)))
		return r;
	if ((r = irq_routing_init(vm)))
		return r;
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if ((r = vm_ioctl(vm, KVM_CREATE_PIT2, "KVM_CREATE_PIT2", (unsigned long)&pit)))
		return r;
	if ((r = setup_memory(vm, cfg)))
		return r;
	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0)
		return -errno;
	return 0;
}

void vm_destroy(struct vm *vm)
{
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	bus_free(&vm->pio);
	bus_free(&vm->mmio);
	irq_routing_free(vm);
	free(vm->cpuid);
	/* The platform devices hold no resources beyond their allocation. */
	free(vm->i8042);
	free(vm->acpi_pm);
	free(vm->acpi_ged);
	free(vm->debug_exit);
	vm->cpuid = NULL;
	vm->i8042 = NULL;
	vm->acpi_pm = NULL;
	vm->acpi_ged = NULL;
	vm->debug_exit = NULL;
	vm->ram = NULL;
	vm->stop_fd = vm->vm_fd = vm->kvm_fd = -1;
}

int vm_irq_line(struct vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };
	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, int efd, bool assign)
{
	/* Linux's virtio driver writes the 16-bit queue index; a write of any
	 * other width is not matched and reaches the device's MMIO handler,
	 * which forwards it to the same eventfd. */
	struct kvm_ioeventfd io = {
		.addr = addr, .len = 2, .fd = efd,
		.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};
	if (vm->vm_fd < 0)
		return 0; /* unit tests run devices without a VM */
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

enum vm_stop vm_stop_reason(struct vm *vm)
{
	return (enum vm_stop)atomic_load(&vm->stop_reason);
}

void vm_request_stop(struct vm *vm, enum vm_stop reason)
{
	int expected = VM_RUNNING;
	if (!atomic_compare_exchange_strong(&vm->stop_reason, &expected, (int)reason))
		return; /* someone else already decided how this VM ends */
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (!v->thread_started)
			continue;
		/* immediate_exit covers a vCPU about to enter KVM_RUN; the
		 * signal interrupts one already inside it. */
		atomic_store(&v->kick, true);
		v->run->immediate_exit = 1;
		pthread_kill(v->thread, SIGUSR1);
	}
	uint64_t one = 1;
	if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow with one write per VM; nothing to do. */
	}
}
