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
 * Threads: console_read and the output flushing run on the VM process's
 * event loop (console_attach); console_write may be called from any thread
 * (the UART calls it from vCPU threads, under the UART's lock) and never
 * blocks: it copies into a bounded buffer that the loop writes out with
 * non-blocking writes. When the buffer is full it takes fewer bytes than
 * offered, and once there is room again the loop calls the tx_ready
 * callback: the UART then reports its transmitter empty again, so a
 * stalled stdout makes the guest wait (as a real serial line with flow
 * control would) instead of blocking a vCPU in write(). */
#ifndef KVMINI_CONSOLE_H
#define KVMINI_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/config.h"

struct event_loop;

#define CONSOLE_ESCAPE_CHAR 0x01 /* Ctrl-A */
#define CONSOLE_OUT_BUF     (16 * 1024) /* guest output waiting for the terminal */

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

/* Guest output: stdio → stdout, file → the file, none → dropped. Any
 * thread; never blocks. Returns how many bytes were taken: all of them
 * unless the buffer is full (dropped output counts as taken: none mode,
 * or after a write error, which logs one warning). Without an attached loop
 * the bytes wait for console_drain. */
size_t console_write(struct console *c, const uint8_t *buf, size_t len);

/* Flushing moves to l's thread (the caller must be it). tx_ready (may be
 * NULL) is called there when console_write had refused bytes and there is
 * room again. */
int console_attach(struct console *c, struct event_loop *l, void (*tx_ready)(void *ctx),
		   void *ctx);
void console_detach(struct console *c);

/* Writes out what is buffered, waiting at most timeout_ms for a stalled
 * output (then what is left is dropped, with one warning). Returns the
 * number of bytes dropped. Call at exit, on the loop thread. */
size_t console_drain(struct console *c, int timeout_ms);

/* Bytes buffered right now, and bytes refused/dropped since open. */
size_t console_pending(struct console *c);
uint64_t console_dropped(struct console *c);

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
