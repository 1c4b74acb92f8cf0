/* test=console_flood: prints lines=N numbered lines of 72 characters,
 * waiting for THRE before every byte as a polled console does. The host
 * side (run-console.sh) checks every line arrived, in order, with a slow
 * reader, and that kvmini stays stoppable when nobody reads at all. */
#include "guest.h"

static void test_console_flood(void)
{
	uint64_t lines = cmdline_get_u64("lines", 1000);
	for (uint64_t i = 0; i < lines; i++) {
		/* "line NNNNNNNN " + 58 letters = 72 characters. */
		put_fmt("line %u ", (unsigned)i);
		for (unsigned k = 0; k < 58; k++)
			put_char((char)('a' + (i + k) % 26));
		put_char('\n');
	}
	say("console_flood: %u lines", (unsigned)lines);
}

GUEST_TEST("console_flood", test_console_flood, "numbered lines for the console tests");
