#include "vmm/trace.h"

#include "vmm/vm.h"

static const char *const exit_names[EXITK_COUNT] = {
	[EXITK_IO] = "io",
	[EXITK_MMIO] = "mmio",
	[EXITK_HLT] = "hlt",
	[EXITK_INTR] = "intr (signal)",
	[EXITK_SHUTDOWN] = "shutdown",
	[EXITK_SYSTEM_EVENT] = "system-event",
	[EXITK_INTERNAL_ERROR] = "internal-error",
	[EXITK_FAIL_ENTRY] = "fail-entry",
	[EXITK_OTHER] = "other",
};

static double share(uint64_t n, uint64_t total) { return total ? 100.0 * (double)n / (double)total : 0; }

static void print_bus(FILE *f, struct bus *bus, uint64_t total)
{
	for (size_t i = 0; i < bus->count; i++) {
		struct bus_range *r = &bus->ranges[i];
		uint64_t n = atomic_load(&r->accesses);
		fprintf(f, "  %-16s %-4s %#-12llx %12llu %6.1f%%\r\n", r->name, bus->name,
			(unsigned long long)r->base, (unsigned long long)n, share(n, total));
	}
	uint64_t ur = atomic_load(&bus->unclaimed_reads), uw = atomic_load(&bus->unclaimed_writes);
	fprintf(f, "  %-16s %-4s %-12s %12llu %6.1f%%\r\n", "unclaimed-read", bus->name, "-",
		(unsigned long long)ur, share(ur, total));
	fprintf(f, "  %-16s %-4s %-12s %12llu %6.1f%%\r\n", "unclaimed-write", bus->name, "-",
		(unsigned long long)uw, share(uw, total));
}

void trace_print_exits(FILE *f, struct vm *vm, double seconds)
{
	uint64_t per_kind[EXITK_COUNT] = { 0 }, total = 0;
	for (unsigned i = 0; i < vm->ncpus; i++)
		for (int k = 0; k < EXITK_COUNT; k++) {
			per_kind[k] += vm->vcpus[i].exits[k];
			total += vm->vcpus[i].exits[k];
		}
	fprintf(f, "\r\nexits: %llu in %.2f s over %u vCPU(s)\r\n", (unsigned long long)total,
		seconds, vm->ncpus);
	fprintf(f, "  %-16s %12s %7s\r\n", "exit reason", "count", "share");
	for (int k = 0; k < EXITK_COUNT; k++)
		if (per_kind[k])
			fprintf(f, "  %-16s %12llu %6.1f%%\r\n", exit_names[k],
				(unsigned long long)per_kind[k], share(per_kind[k], total));
	for (unsigned i = 0; i < vm->ncpus && vm->ncpus > 1; i++) {
		uint64_t t = 0;
		for (int k = 0; k < EXITK_COUNT; k++)
			t += vm->vcpus[i].exits[k];
		fprintf(f, "  vcpu%-12u %12llu %6.1f%%\r\n", i, (unsigned long long)t, share(t, total));
	}
	fprintf(f, "  %-16s %-4s %-12s %12s %7s\r\n", "device", "bus", "base", "accesses", "share");
	print_bus(f, &vm->pio, total);
	print_bus(f, &vm->mmio, total);
}
