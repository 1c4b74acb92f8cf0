#include "vmm/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The level is set once from the command line before any thread starts and
 * only read afterwards, so it is the one process-wide setting kvmini keeps
 * outside the VM object. */
static enum log_level current_level = LOG_WARN;

void log_set_level(enum log_level level) { current_level = level; }
enum log_level log_get_level(void) { return current_level; }

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > current_level)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line keeps lines from different threads whole; \r\n
	 * because the terminal may be in raw mode while the guest runs. */
	static const char *const prefix[] = { "error: ", "warning: ", "", "debug: " };
	fprintf(stderr, "kvmini: %s%s\r\n", prefix[level], line);
}
