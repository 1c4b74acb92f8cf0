/* Starting the other CPUs (APs). Under PVH only the BSP runs; the others
 * wait for INIT-SIPI-SIPI. The BSP sends those from ring 3 by writing the
 * local APIC's ICR (its MMIO page is mapped user-accessible like all of
 * the low 4 GiB). Each AP runs the real-mode trampoline of entry.S, goes to
 * long mode with its own TSS and stacks, and enters ap_main() in ring 3. */
#include "guest.h"

#define LAPIC_ID       0x020
#define LAPIC_ICR_LO   0x300
#define LAPIC_ICR_HI   0x310
#define ICR_INIT       0x00004500   /* delivery mode INIT, level assert */
#define ICR_STARTUP    0x00004600   /* delivery mode start-up, level assert */
#define ICR_BUSY       0x00001000   /* delivery status: send pending */

/* Read by entry.S ap64 (offsets 0, 8, 16, 20 are fixed there). */
struct ap_boot {
	uint64_t kstack;   /* top of the AP's ring-0 stack */
	uint64_t ustack;   /* initial ring-3 RSP */
	uint32_t cpu;      /* argument of ap_main() */
	uint16_t tss_sel;
} __attribute__((packed));
struct ap_boot ap_boot;
_Static_assert(sizeof(struct ap_boot) == 22, "entry.S ap64 offsets");

volatile uint32_t cpus_up;
void (*volatile ap_work)(unsigned cpu);

extern uint64_t gdt[GDT_ENTRIES];
extern uint8_t kstack[], ustack[];
extern const uint8_t ap_trampoline_start[], ap_trampoline_end[];

static uint8_t ap_tss[GUEST_MAX_CPUS - 1][TSS_SIZE] __attribute__((aligned(16)));

void ap_main(unsigned cpu) __attribute__((noreturn, used));
void ap_main(unsigned cpu)
{
	__atomic_add_fetch(&cpus_up, 1, __ATOMIC_SEQ_CST);
	void (*w)(unsigned) = ap_work;
	if (w)
		w(cpu);
	cpu_park();
}

uint32_t lapic_id(void)
{
	return mmio_read32(LAPIC_BASE + LAPIC_ID) >> 24;
}

/* TSS for CPU cpu (>= 1): RSP0 and an all-zero I/O bitmap, like the BSP's. */
static void tss_setup(unsigned cpu)
{
	uint8_t *t = ap_tss[cpu - 1];
	memset(t, 0, TSS_SIZE);
	uint64_t rsp0 = (uint64_t)(kstack + (cpu + 1) * KSTACK_SIZE);
	uint16_t iomap = TSS_HDR_SIZE;
	memcpy(t + 4, &rsp0, 8);
	memcpy(t + 102, &iomap, 2);
	t[TSS_SIZE - 1] = 0xff;
	uint64_t base = (uint64_t)t, limit = TSS_SIZE - 1;
	unsigned slot = (SEL_TSS0 >> 3) + 2 * cpu;
	gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
		    (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[slot + 1] = base >> 32;
}

static void icr_send(uint32_t apic_id, uint32_t cmd)
{
	mmio_write32(LAPIC_BASE + LAPIC_ICR_HI, apic_id << 24);
	mmio_write32(LAPIC_BASE + LAPIC_ICR_LO, cmd);
	for (unsigned i = 0; i < 100000 && (mmio_read32(LAPIC_BASE + LAPIC_ICR_LO) & ICR_BUSY); i++)
		cpu_relax();
}

/* Busy-waits about n TSC ticks; returns early once cpus_up exceeds target. */
static bool wait_up(uint64_t ticks, uint32_t target)
{
	uint64_t t0 = rdtsc();
	while (rdtsc() - t0 < ticks)
		if (cpus_up >= target)
			return true;
	return cpus_up >= target;
}

unsigned smp_start_aps(void)
{
	uint32_t ids[64];
	unsigned n = acpi_cpus(ids, 64);
	uint32_t me = lapic_id();
	size_t len = (size_t)(ap_trampoline_end - ap_trampoline_start);
	memcpy((void *)AP_TRAMPOLINE, ap_trampoline_start, len);

	unsigned cpu = 1, started = 0;
	for (unsigned i = 0; i < n && i < 64; i++) {
		if (ids[i] == me)
			continue;
		if (cpu >= GUEST_MAX_CPUS) {
			say("smp: only %u CPUs supported, apic id %u not started", GUEST_MAX_CPUS, ids[i]);
			continue;
		}
		tss_setup(cpu);
		ap_boot.kstack = (uint64_t)(kstack + (cpu + 1) * KSTACK_SIZE);
		ap_boot.ustack = (uint64_t)(ustack + (cpu + 1) * USTACK_SIZE - 8);
		ap_boot.cpu = cpu;
		ap_boot.tss_sel = (uint16_t)(SEL_TSS0 + 16 * cpu);
		uint32_t target = cpus_up + 1;
		__atomic_thread_fence(__ATOMIC_SEQ_CST);

		/* The classic sequence: INIT, ~10 ms, SIPI, ~200 us, SIPI. The
		 * waits assume a TSC of at least 1 GHz (shorter on faster ones;
		 * KVM needs none of them). */
		uint64_t t0 = rdtsc();
		icr_send(ids[i], ICR_INIT);
		wait_up(10000000, target);
		icr_send(ids[i], ICR_STARTUP | (AP_TRAMPOLINE >> 12));
		if (!wait_up(200000, target))
			icr_send(ids[i], ICR_STARTUP | (AP_TRAMPOLINE >> 12));
		if (wait_up(5000000000ULL, target)) {
			say("ap up cpu=%u apic_id=%u tsc_ticks=%lu", cpu, ids[i], rdtsc() - t0);
			started++;
		} else {
			say("smp: apic id %u did not come up", ids[i]);
		}
		cpu++;
	}
	return started;
}
