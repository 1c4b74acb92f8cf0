/* The host side of the serial console: the terminal (or a file) that COM1's
 * bytes come from and go to. See docs/console.md.
 *
 * With CONSOLE_STDIO and stdin a terminal in the foreground, the terminal is
 * switched to raw input like QEMU's stdio chardev: no line editing, no echo,
 * no signals from Ctrl-C/Ctrl-Z (they go to the guest), 8-bit clean. Output
 * post-processing (OPOST, so ONLCR) is left as it was, also like QEMU: Linux
 * sends "\r\n" (the terminal sees a harmless "\r\r\n") and a guest that only
 * sends "\n" still prints readable lines.
 *
 * Ctrl-A is the escape key: Ctrl-A x quits, Ctrl-A h lists the keys,
 * Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A followed by anything else sends both.
 *
 * Threads: console_read runs on the event loop; console_write is called from
 * the UART output callback, which the UART serialises with its own lock. The
 * console itself takes no lock. */
#ifndef KVMINI_CONSOLE_H
#define KVMINI_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/config.h"

#define CONSOLE_ESCAPE_CHAR 0x01 /* Ctrl-A */

struct console;

/* CONSOLE_FILE creates or truncates path (mode 0644). Returns 0 or -errno
 * (-EINVAL for CONSOLE_FILE without a path). */
int console_open(struct console **out, enum console_mode mode, const char *path);

/* The fd for the event loop to watch, or -1 when there is no input: file and
 * none modes, stdin closed/write-only//dev/null, or stdin a terminal of which
 * we are not in the foreground (reading would stop us with SIGTTIN). It may
 * be a regular file (stdin redirected from one), which epoll refuses with
 * EPERM: such an fd is always readable, so just call console_read until eof. */
int console_input_fd(const struct console *c);

/* One read() of what is waiting on the input fd, through the escape filter.
 * Returns the number of bytes for the guest placed in buf (0 is possible:
 * e.g. a lone Ctrl-A), or -errno (len < 2 is -EINVAL). *quit is set on
 * Ctrl-A x (bytes after it are dropped); Ctrl-A h prints the key list to
 * stderr. At end of input returns 0 with *eof = true: stop watching the fd. */
ssize_t console_read(struct console *c, uint8_t *buf, size_t len, bool *quit, bool *eof);

/* Guest output: stdio → stdout, file → the file, none → dropped. Writes
 * everything (retrying EINTR, partial writes, EAGAIN). On another error it
 * logs one warning and drops output from then on. Note a closed stdout pipe
 * raises SIGPIPE unless the process ignores it. */
void console_write(struct console *c, const uint8_t *buf, size_t len);

/* Restores the terminal and frees. NULL is fine. */
void console_close(struct console *c);

/* Puts the terminal back as it was (only tcsetattr: usable from a signal
 * handler or a crash path). Idempotent; does nothing if it was not changed. */
void console_restore_terminal(struct console *c);

/* ---- escape filter, separate so it can be tested without a terminal ---- */

struct console_escape {
	bool pending; /* the last byte seen was a lone Ctrl-A */
};

/* Filters n input bytes into out, which must have room for n + 1 bytes (a
 * Ctrl-A held over from the previous call may come out with this call's
 * first byte). Returns the number of bytes written. Sets *quit (and stops,
 * dropping the rest) on Ctrl-A x, sets *help on Ctrl-A h; it never clears
 * either. */
size_t console_escape_filter(struct console_escape *e, const uint8_t *in, size_t n,
			     uint8_t *out, bool *quit, bool *help);

#endif
