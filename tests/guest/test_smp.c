/* test=smp: start every other CPU of the MADT with INIT-SIPI-SIPI and check
 * that each reaches ring 3 ("microguest: ap up ..." per AP). */
#include "guest.h"

static void test_smp(void)
{
	uint32_t ids[64];
	unsigned n = acpi_cpus(ids, 64);
	say("cpus=%u", n);
	uint64_t want = cmdline_get_u64("expect_cpus", 0);
	CHECK(!want || want == n, "acpi: MADT lists %u enabled CPUs, expect_cpus=%lu", n, want);
	unsigned up = smp_start_aps();
	unsigned expect = n > GUEST_MAX_CPUS ? GUEST_MAX_CPUS - 1 : n - 1;
	CHECK(up == expect, "smp: %u of %u APs came up", up, expect);
	CHECK(cpus_up == up + 1, "smp: cpus_up=%u", cpus_up);
}
GUEST_TEST("smp", test_smp, "start the APs (INIT-SIPI-SIPI), each reaches ring 3");
