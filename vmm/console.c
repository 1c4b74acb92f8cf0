/* The host side of COM1: terminal setup, the Ctrl-A escape filter and the
 * plumbing of bytes between the UART and stdin/stdout or a file. */
#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/log.h"

struct console {
	enum console_mode mode;
	int in_fd;       /* -1: no input */
	int out_fd;      /* -1: output dropped */
	bool own_out_fd; /* file mode: close it */
	bool out_broken; /* a write failed: drop from now on */
	bool raw;        /* saved_tio is valid and the terminal was changed */
	int tty_fd;
	struct termios saved_tio;
	struct console_escape esc;
};

static const char help_text[] =
	"\r\n"
	"C-a h    print this help\r\n"
	"C-a x    exit kvmini\r\n"
	"C-a C-a  send C-a to the guest\r\n";

size_t console_escape_filter(struct console_escape *e, const uint8_t *in, size_t n,
			     uint8_t *out, bool *quit, bool *help)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t b = in[i];
		if (!e->pending) {
			if (b == CONSOLE_ESCAPE_CHAR)
				e->pending = true;
			else
				out[o++] = b;
			continue;
		}
		e->pending = false;
		switch (b) {
		case 'x':
			*quit = true;
			return o;
		case 'h':
			*help = true;
			break;
		case CONSOLE_ESCAPE_CHAR:
			out[o++] = CONSOLE_ESCAPE_CHAR;
			break;
		default:
			out[o++] = CONSOLE_ESCAPE_CHAR;
			out[o++] = b;
			break;
		}
	}
	return o;
}

/* Writes all of buf to fd; returns 0 or -errno. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t r = write(fd, buf, len);
		if (r > 0) {
			buf += r;
			len -= (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* Someone made the fd non-blocking (it may be shared
			 * with the parent shell): wait until it drains. */
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (poll(&p, 1, -1) < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		return r < 0 ? -errno : -EIO;
	}
	return 0;
}

/* Decide whether stdin can be console input. */
static int stdin_input_fd(void)
{
	int fl = fcntl(STDIN_FILENO, F_GETFL);
	if (fl < 0 || (fl & O_ACCMODE) == O_WRONLY)
		return -1;
	struct stat st;
	if (fstat(STDIN_FILENO, &st) == 0 && S_ISCHR(st.st_mode) &&
	    st.st_rdev == makedev(1, 3))
		return -1; /* /dev/null: nothing will ever come */
	if (isatty(STDIN_FILENO)) {
		pid_t fg = tcgetpgrp(STDIN_FILENO);
		if (fg >= 0 && fg != getpgrp()) {
			log_info("console: running in the background, not reading the terminal");
			return -1;
		}
	}
	return STDIN_FILENO;
}

static void make_raw(struct console *c)
{
	struct termios tio;
	if (tcgetattr(c->in_fd, &tio) < 0)
		return;
	c->saved_tio = tio;
	/* As QEMU's stdio chardev: cfmakeraw() for input and line discipline,
	 * but output processing stays as the user had it. */
	tio.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL |
				   IXON);
	tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	tio.c_cflag |= CS8;
	tio.c_cc[VMIN] = 1;
	tio.c_cc[VTIME] = 0;
	if (tcsetattr(c->in_fd, TCSANOW, &tio) < 0) {
		log_warn("console: cannot set raw mode on the terminal: %s", strerror(errno));
		return;
	}
	c->tty_fd = c->in_fd;
	c->raw = true;
}

int console_open(struct console **out, enum console_mode mode, const char *path)
{
	*out = NULL;
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->mode = mode;
	c->in_fd = c->out_fd = c->tty_fd = -1;

	switch (mode) {
	case CONSOLE_STDIO:
		c->out_fd = STDOUT_FILENO;
		c->in_fd = stdin_input_fd();
		if (c->in_fd >= 0 && isatty(c->in_fd))
			make_raw(c);
		break;
	case CONSOLE_FILE:
		if (!path || !*path) {
			free(c);
			return -EINVAL;
		}
		c->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
		if (c->out_fd < 0) {
			int err = -errno;
			free(c);
			return err;
		}
		c->own_out_fd = true;
		break;
	case CONSOLE_NONE:
		break;
	default:
		free(c);
		return -EINVAL;
	}
	*out = c;
	return 0;
}

int console_input_fd(const struct console *c)
{
	return c ? c->in_fd : -1;
}

ssize_t console_read(struct console *c, uint8_t *buf, size_t len, bool *quit, bool *eof)
{
	*eof = false;
	if (c->in_fd < 0) {
		*eof = true;
		return 0;
	}
	if (len < 2)
		return -EINVAL;

	/* The filter can emit one byte more than it reads (a held Ctrl-A). */
	uint8_t in[4096];
	size_t want = len - 1 < sizeof(in) ? len - 1 : sizeof(in);
	ssize_t r;
	do
		r = read(c->in_fd, in, want);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	if (r == 0) {
		*eof = true;
		return 0;
	}

	bool help = false;
	size_t n = console_escape_filter(&c->esc, in, (size_t)r, buf, quit, &help);
	if (help)
		(void)write_all(STDERR_FILENO, (const uint8_t *)help_text, sizeof(help_text) - 1);
	return (ssize_t)n;
}

void console_write(struct console *c, const uint8_t *buf, size_t len)
{
	if (!c || c->out_fd < 0 || c->out_broken || !len)
		return;
	int err = write_all(c->out_fd, buf, len);
	if (err) {
		c->out_broken = true;
		log_warn("console: cannot write guest output: %s; dropping it from now on",
			 strerror(-err));
	}
}

void console_restore_terminal(struct console *c)
{
	if (c && c->raw)
		tcsetattr(c->tty_fd, TCSANOW, &c->saved_tio);
}

void console_close(struct console *c)
{
	if (!c)
		return;
	console_restore_terminal(c);
	if (c->own_out_fd)
		close(c->out_fd);
	free(c);
}
