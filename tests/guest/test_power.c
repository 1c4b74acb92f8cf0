/* test=power_button: a guest that answers the ACPI power button by powering
 * off, as Linux does through the GED, the button driver and logind. In
 * ring 3 the guest takes no interrupt, so it polls the GED's event register
 * (the one its _EVT method reads) instead of waiting for the GSI: that
 * checks the register half of the path here; the interrupt and the AML
 * are checked with a Linux guest in the e2e tests.
 *
 * Prints "power_button: waiting", then, once the register reads the power
 * event, checks the read cleared it and writes SLP_TYP=S5|SLP_EN to the
 * sleep control register: kvmini exits 0 (a guest power-off).
 * ignore=1: never power off (for the host's shutdown-timeout test). */
#include "guest.h"

#define PORT_ACPI_SLEEP_CTL 0x600
#define PORT_ACPI_GED       0x603
#define GED_EV_POWER        0x1

static void test_power_button(void)
{
	bool ignore = cmdline_get_u64("ignore", 0) != 0;
	CHECK(inb(PORT_ACPI_GED) == 0, "power_button: an event is pending at boot");
	say("power_button: waiting%s", ignore ? " (and ignoring it)" : "");
	uint64_t polls = 0;
	uint8_t ev;
	while (!((ev = inb(PORT_ACPI_GED)) & GED_EV_POWER)) {
		CHECK(ev == 0, "power_button: unknown event bits 0x%x", ev);
		polls++;
	}
	CHECK(inb(PORT_ACPI_GED) == 0, "power_button: the register did not clear on read");
	say("power_button: pressed (after %lu polls)", (unsigned long)polls);
	if (ignore) {
		for (;;)
			cpu_relax();
	}
	say("power_button: powering off");
	outb(PORT_ACPI_SLEEP_CTL, (5 << 2) | (1 << 5));
	fail("power_button: still running after the S5 write");
}

GUEST_TEST("power_button", test_power_button, "polls the ACPI GED for the power button, then S5");
