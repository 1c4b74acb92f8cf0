/* The host side of COM1: terminal setup, the Ctrl-A escape filter and the
 * plumbing of bytes between the UART and stdin/stdout or a file. */
#include "vmm/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/eventloop.h"
#include "vmm/log.h"

struct console {
	enum console_mode mode;
	int in_fd;       /* -1: no input */
	int out_fd;      /* -1: output dropped */
	bool own_out_fd; /* file mode, or stdout reopened non-blocking: close it */
	bool out_socket; /* stdout is a socket: send(MSG_DONTWAIT) */

	/* Output buffer: console_write (any thread) appends, the loop writes
	 * it out. Everything below is guarded by out_lock. */
	pthread_mutex_t out_lock;
	uint8_t *ring;
	size_t head, len;       /* ring[head..] holds len bytes */
	bool out_broken;        /* a write failed: drop from now on */
	bool refused;           /* console_write took fewer bytes than offered */
	bool flush_posted;      /* flush_work is queued on the loop */
	uint64_t dropped;

	/* Loop side (the loop's thread only, but loop is set under out_lock). */
	struct event_loop *loop;
	struct evloop_work flush_work;
	struct event_source out_src;   /* EPOLLOUT while the fd is full */
	void (*tx_ready)(void *ctx);
	void *tx_ctx;
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

/* Writes all of buf to a blocking fd (stderr, for the help text). */
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
		return r < 0 ? -errno : -EIO;
	}
	return 0;
}

/* The fd guest output goes to, such that a write never blocks: stdout is
 * shared with the shell, so rather than setting O_NONBLOCK on it (which
 * the shell would see too) a terminal or pipe is opened again through
 * /proc, giving kvmini its own file description. A socket gets
 * MSG_DONTWAIT instead; regular files and /dev/null never block. */
static int stdout_fd(struct console *c)
{
	struct stat st;
	if (fstat(STDOUT_FILENO, &st) < 0)
		return -1;
	if (S_ISSOCK(st.st_mode)) {
		c->out_socket = true;
		return STDOUT_FILENO;
	}
	if (S_ISFIFO(st.st_mode) || isatty(STDOUT_FILENO)) {
		int fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0) {
			c->own_out_fd = true;
			return fd;
		}
		log_warn("console: cannot reopen stdout non-blocking (%s); a stalled terminal "
			 "may delay guest output", strerror(errno));
	}
	return STDOUT_FILENO;
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
	c->out_src.fd = -1;
	c->ring = malloc(CONSOLE_OUT_BUF);
	if (!c->ring) {
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->out_lock, NULL);

	switch (mode) {
	case CONSOLE_STDIO:
		c->out_fd = stdout_fd(c);
		c->in_fd = stdin_input_fd();
		if (c->in_fd >= 0 && isatty(c->in_fd))
			make_raw(c);
		break;
	case CONSOLE_FILE:
		if (!path || !*path) {
			console_close(c);
			return -EINVAL;
		}
		c->out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
		if (c->out_fd < 0) {
			int err = -errno;
			console_close(c);
			return err;
		}
		c->own_out_fd = true;
		break;
	case CONSOLE_NONE:
		break;
	default:
		console_close(c);
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

static void post_flush_locked(struct console *c)
{
	if (c->loop && !c->flush_posted) {
		c->flush_posted = true;
		evloop_post(c->loop, &c->flush_work);
	}
}

size_t console_write(struct console *c, const uint8_t *buf, size_t len)
{
	if (!c || !len)
		return len;
	pthread_mutex_lock(&c->out_lock);
	size_t n = len;
	if (c->out_fd < 0 || c->out_broken) {
		c->dropped += len;
	} else {
		size_t room = CONSOLE_OUT_BUF - c->len;
		if (n > room) {
			n = room;
			c->refused = true;
		}
		for (size_t i = 0; i < n;) {
			size_t tail = (c->head + c->len) % CONSOLE_OUT_BUF;
			size_t chunk = CONSOLE_OUT_BUF - tail;
			if (chunk > n - i)
				chunk = n - i;
			memcpy(c->ring + tail, buf + i, chunk);
			c->len += chunk;
			i += chunk;
		}
		if (n)
			post_flush_locked(c);
	}
	pthread_mutex_unlock(&c->out_lock);
	return n;
}

/* One non-blocking write of the buffer's first contiguous part. Returns
 * bytes written, 0 when the fd is full, or -errno. Called with out_lock
 * held: the write never blocks, so holding it is short. */
static ssize_t write_some_locked(struct console *c)
{
	size_t chunk = CONSOLE_OUT_BUF - c->head;
	if (chunk > c->len)
		chunk = c->len;
	ssize_t r;
	do {
		if (c->out_socket)
			r = send(c->out_fd, c->ring + c->head, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			r = write(c->out_fd, c->ring + c->head, chunk);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
	if (r == 0)
		return -EIO;
	c->head = (c->head + (size_t)r) % CONSOLE_OUT_BUF;
	c->len -= (size_t)r;
	if (!c->len)
		c->head = 0;
	return r;
}

static void break_output_locked(struct console *c, int err)
{
	c->out_broken = true;
	c->dropped += c->len;
	c->len = c->head = 0;
	log_warn("console: cannot write guest output: %s; dropping it from now on",
		 strerror(-err));
}

static void on_writable(void *ctx, uint32_t events);

/* On the loop: write until the buffer is empty or the fd is full; in the
 * latter case wait for EPOLLOUT. Then tell a refused writer there is room. */
static void flush_out(struct console *c)
{
	pthread_mutex_lock(&c->out_lock);
	c->flush_posted = false;
	bool full = false;
	while (c->len && !c->out_broken) {
		ssize_t r = write_some_locked(c);
		if (r < 0) {
			break_output_locked(c, (int)r);
		} else if (r == 0) {
			full = true;
			break;
		}
	}
	bool wake_writer = c->refused && c->len < CONSOLE_OUT_BUF;
	if (wake_writer)
		c->refused = false;
	pthread_mutex_unlock(&c->out_lock);

	if (full && !c->out_src.added) {
		c->out_src = (struct event_source){ .fd = c->out_fd, .fn = on_writable, .ctx = c };
		if (evloop_add(c->loop, &c->out_src, EPOLLOUT) < 0) {
			/* Not pollable: retry on the next write. */
		}
	} else if (!full && c->out_src.added) {
		evloop_del(c->loop, &c->out_src);
	}
	/* Outside out_lock: the callback takes the UART's lock, which is held
	 * around console_write (lock order uart -> out_lock). */
	if (wake_writer && c->tx_ready)
		c->tx_ready(c->tx_ctx);
}

static void on_writable(void *ctx, uint32_t events)
{
	flush_out(ctx);
}

static void flush_work_fn(void *ctx)
{
	struct console *c = ctx;
	if (c->loop)
		flush_out(c);
}

int console_attach(struct console *c, struct event_loop *l, void (*tx_ready)(void *ctx),
		   void *ctx)
{
	c->tx_ready = tx_ready;
	c->tx_ctx = ctx;
	c->flush_work = (struct evloop_work){ .fn = flush_work_fn, .ctx = c };
	pthread_mutex_lock(&c->out_lock);
	c->loop = l;
	if (c->len)
		post_flush_locked(c);
	pthread_mutex_unlock(&c->out_lock);
	return 0;
}

void console_detach(struct console *c)
{
	if (!c || !c->loop)
		return;
	if (c->out_src.added)
		evloop_del(c->loop, &c->out_src);
	pthread_mutex_lock(&c->out_lock);
	/* A flush still posted runs flush_work_fn later and sees no loop. */
	c->loop = NULL;
	pthread_mutex_unlock(&c->out_lock);
	c->tx_ready = NULL;
}

size_t console_drain(struct console *c, int timeout_ms)
{
	if (!c)
		return 0;
	uint64_t deadline = evloop_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	pthread_mutex_lock(&c->out_lock);
	while (c->len && !c->out_broken) {
		ssize_t r = write_some_locked(c);
		if (r < 0) {
			break_output_locked(c, (int)r);
			break;
		}
		if (r > 0)
			continue;
		uint64_t now = evloop_now_ns();
		if (now >= deadline)
			break;
		struct pollfd p = { .fd = c->out_fd, .events = POLLOUT };
		pthread_mutex_unlock(&c->out_lock);
		int wait_ms = (int)((deadline - now + 999999) / 1000000);
		poll(&p, 1, wait_ms);
		pthread_mutex_lock(&c->out_lock);
	}
	size_t left = c->out_broken ? 0 : c->len;
	if (left) {
		c->dropped += left;
		c->len = c->head = 0;
		log_warn("console: output stalled for %d ms: %zu bytes of guest output dropped",
			 timeout_ms, left);
	}
	pthread_mutex_unlock(&c->out_lock);
	return left;
}

size_t console_pending(struct console *c)
{
	pthread_mutex_lock(&c->out_lock);
	size_t n = c->len;
	pthread_mutex_unlock(&c->out_lock);
	return n;
}

uint64_t console_dropped(struct console *c)
{
	pthread_mutex_lock(&c->out_lock);
	uint64_t n = c->dropped;
	pthread_mutex_unlock(&c->out_lock);
	return n;
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
	console_detach(c);
	/* What the guest printed last still reaches the terminal, unless it
	 * is stalled. */
	console_drain(c, 2000);
	console_restore_terminal(c);
	if (c->own_out_fd && c->out_fd >= 0)
		close(c->out_fd);
	pthread_mutex_destroy(&c->out_lock);
	free(c->ring);
	free(c);
}
