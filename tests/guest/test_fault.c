/* test=fault: takes a #GP in ring 3 on purpose, to check that an exception
 * ends the run with a message ("microguest: FAIL exception 13 ...") and
 * status 1 instead of a triple fault. */
#include "guest.h"

static void test_fault(void)
{
	say("fault: reading a non-canonical address, expect exception 13");
	(void)mmio_read32(0x8000000000000000ULL);
	fail("fault: no exception");
}
GUEST_TEST("fault", test_fault, "deliberate #GP: exception report path (exits 1)");
