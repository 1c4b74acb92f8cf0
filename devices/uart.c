/* 16550A UART. Register model after the National Semiconductor PC16550D
 * data sheet; the details that matter are the ones Linux's 8250 driver
 * checks (drivers/tty/serial/8250/8250_port.c: autoconfig, size_fifo,
 * serial8250_do_startup's THRE tests). Transmission is instantaneous: THR
 * is empty again as soon as it is written, so LSR has THRE|TEMT, unless
 * the host's output buffer is full: then the transmitter is "busy" (no
 * THRE, no TEMT, no THRE interrupt) until the host drains, as a line with
 * hardware flow control would hold the guest back. */
#include "devices/uart.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Register offsets (DLAB = LCR bit 7 switches 0/1 to the divisor latch). */
enum {
	REG_RBR_THR = 0, /* DLL when DLAB */
	REG_IER = 1,     /* DLM when DLAB */
	REG_IIR_FCR = 2,
	REG_LCR = 3,
	REG_MCR = 4,
	REG_LSR = 5,
	REG_MSR = 6,
	REG_SCR = 7,
};

#define IER_RDI   0x01 /* received data available */
#define IER_THRI  0x02 /* THR empty */
#define IER_RLSI  0x04 /* receiver line status */
#define IER_MSI   0x08 /* modem status */
#define IER_MASK  0x0f /* bits 4-7 read as 0 on a 16550A (Linux checks) */

#define IIR_NO_INT 0x01
#define IIR_MSI    0x00
#define IIR_THRI   0x02
#define IIR_RDI    0x04
#define IIR_RLSI   0x06
#define IIR_FIFO   0xc0 /* "FIFOs enabled": what makes Linux say 16550A */

#define FCR_ENABLE    0x01
#define FCR_CLEAR_RX  0x02
#define FCR_CLEAR_TX  0x04
#define FCR_KEEP      0xc9 /* enable, DMA mode, trigger level */

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_PE   0x04
#define LSR_FE   0x08
#define LSR_BI   0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS  0x10
#define MSR_DSR  0x20
#define MSR_RI   0x40
#define MSR_DCD  0x80

#define OUT_BUF_SIZE 512

/* Which register the previous access touched; only to spot LSR polling. */
enum last_access { LAST_OTHER, LAST_THR, LAST_LSR };

struct uart {
	pthread_mutex_t lock;
	struct uart_ops ops;
	void *ctx;

	uint8_t ier, lcr, mcr, fcr, scr, dll, dlm;
	uint8_t lsr_errs;  /* sticky LSR error bits, cleared by reading LSR */
	uint8_t msr_delta; /* MSR bits 0-3, cleared by reading MSR */
	bool thr_ipending; /* THRE interrupt latched, cleared by IIR read/THR write */
	bool irq_level;    /* what we last told ops->set_irq */
	bool rx_blocked;   /* the host was refused: tell it when the FIFO drains */
	enum last_access last;

	uint8_t rx[UART_FIFO_SIZE];
	unsigned rx_head, rx_count;

	uint8_t out[OUT_BUF_SIZE];
	size_t out_len;
	bool tx_busy;      /* out[] is full and the host refused more */
	uint64_t tx_overruns;
};

/* ---- helpers, all called with u->lock held ---- */

/* Modem status inputs. Outside loopback the "modem" always has carrier and is
 * ready (DCD|DSR|CTS), as QEMU's UART; in loopback they are wired to MCR. */
static uint8_t msr_lines(const struct uart *u)
{
	if (!(u->mcr & MCR_LOOP))
		return MSR_DCD | MSR_DSR | MSR_CTS;
	uint8_t m = 0;
	if (u->mcr & MCR_RTS)
		m |= MSR_CTS;
	if (u->mcr & MCR_DTR)
		m |= MSR_DSR;
	if (u->mcr & MCR_OUT1)
		m |= MSR_RI;
	if (u->mcr & MCR_OUT2)
		m |= MSR_DCD;
	return m;
}

static unsigned rx_capacity(const struct uart *u)
{
	return (u->fcr & FCR_ENABLE) ? UART_FIFO_SIZE : 1; /* 16450 mode: 1 byte */
}

static bool rx_push(struct uart *u, uint8_t b)
{
	if (u->rx_count >= rx_capacity(u))
		return false;
	u->rx[(u->rx_head + u->rx_count) % UART_FIFO_SIZE] = b;
	u->rx_count++;
	return true;
}

static uint8_t iir_value(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
	/* Priority order of the 16550: line status, RX data, THRE, modem. */
	if ((u->ier & IER_RLSI) && (u->lsr_errs & LSR_ERRS))
		return fifo | IIR_RLSI;
	if ((u->ier & IER_RDI) && u->rx_count)
		return fifo | IIR_RDI;
	if ((u->ier & IER_THRI) && u->thr_ipending)
		return fifo | IIR_THRI;
	if ((u->ier & IER_MSI) && (u->msr_delta & 0x0f))
		return fifo | IIR_MSI;
	return fifo | IIR_NO_INT;
}

static void update_irq(struct uart *u)
{
	bool level = !(iir_value(u) & IIR_NO_INT);
	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->ops.set_irq)
			u->ops.set_irq(u->ctx, level);
	}
}

static void flush_out(struct uart *u)
{
	if (!u->out_len)
		return;
	size_t n = u->ops.output ? u->ops.output(u->ctx, u->out, u->out_len) : u->out_len;
	if (n > u->out_len)
		n = u->out_len;
	memmove(u->out, u->out + n, u->out_len - n);
	u->out_len -= n;
	bool was_busy = u->tx_busy;
	u->tx_busy = u->out_len == sizeof(u->out);
	/* A busy transmitter's THR is not empty: no THRE until it comes free,
	 * and then THRE, as after any byte. */
	if (u->tx_busy)
		u->thr_ipending = false;
	else if (was_busy && (u->ier & IER_THRI))
		u->thr_ipending = true;
}

/* After the guest drained the FIFO, wake a host that was refused. */
static void maybe_rx_ready(struct uart *u)
{
	if (u->rx_blocked && u->rx_count == 0 && !(u->mcr & MCR_LOOP)) {
		u->rx_blocked = false;
		if (u->ops.rx_ready)
			u->ops.rx_ready(u->ctx);
	}
}

static void write_thr(struct uart *u, uint8_t b)
{
	if (u->mcr & MCR_LOOP) {
		/* Loopback: the transmitter feeds the receiver, nothing leaves.
		 * Linux's size_fifo counts how many bytes fit. */
		if (!rx_push(u, b))
			u->lsr_errs |= LSR_OE;
	} else if (u->tx_busy) {
		/* The guest wrote without waiting for THRE (Linux's console
		 * gives up after 10 ms): the byte is lost, as on hardware. */
		u->tx_overruns++;
		return;
	} else {
		u->out[u->out_len++] = b;
		if (b == '\n' || u->out_len == sizeof(u->out))
			flush_out(u);
		if (u->tx_busy)
			return;
	}
	/* The byte is gone at once: THR empty again. */
	u->thr_ipending = true;
}

static uint8_t read_rbr(struct uart *u)
{
	if (!u->rx_count)
		return 0;
	uint8_t b = u->rx[u->rx_head];
	u->rx_head = (u->rx_head + 1) % UART_FIFO_SIZE;
	u->rx_count--;
	return b;
}

static void write_ier(struct uart *u, uint8_t v)
{
	uint8_t old = u->ier;
	u->ier = v & IER_MASK;
	/* Enabling THRI while THR is empty raises THRE at once; Linux's
	 * startup tests this and its start_tx depends on it. */
	if ((u->ier & IER_THRI) && !(old & IER_THRI) && !u->tx_busy)
		u->thr_ipending = true;
	else if (!(u->ier & IER_THRI))
		u->thr_ipending = false;
	/* Linux's polled console write ends by restoring IER: a good moment to
	 * push what it wrote. */
	flush_out(u);
}

static void write_fcr(struct uart *u, uint8_t v)
{
	/* Toggling the enable bit resets both FIFOs. */
	if ((v ^ u->fcr) & FCR_ENABLE)
		u->rx_count = 0;
	if (!(v & FCR_ENABLE)) {
		u->fcr = 0;
		return;
	}
	if (v & FCR_CLEAR_RX) {
		u->rx_count = 0;
		u->lsr_errs &= ~LSR_OE;
	}
	/* FCR_CLEAR_TX: the TX FIFO is always empty. */
	u->fcr = v & FCR_KEEP;
}

static void write_mcr(struct uart *u, uint8_t v)
{
	uint8_t before = msr_lines(u);
	u->mcr = v & MCR_MASK;
	uint8_t after = msr_lines(u);
	uint8_t changed = before ^ after;
	if (changed & MSR_CTS)
		u->msr_delta |= MSR_DCTS;
	if (changed & MSR_DSR)
		u->msr_delta |= MSR_DDSR;
	if ((before & MSR_RI) && !(after & MSR_RI))
		u->msr_delta |= MSR_TERI; /* trailing edge only */
	if (changed & MSR_DCD)
		u->msr_delta |= MSR_DDCD;
}

static uint8_t read_lsr(struct uart *u)
{
	/* A polled writer reads LSR once before each THR write; two LSR reads
	 * in a row mean the guest is waiting (for input, for TEMT before going
	 * idle, or for a busy transmitter), so show what it printed. */
	if (u->last == LAST_LSR)
		flush_out(u);
	uint8_t v = (u->tx_busy ? 0 : LSR_THRE | LSR_TEMT) | u->lsr_errs;
	if (u->rx_count)
		v |= LSR_DR;
	u->lsr_errs = 0;
	return v;
}

/* ---- public ---- */

struct uart *uart_new(const struct uart_ops *ops, void *ctx)
{
	struct uart *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	if (pthread_mutex_init(&u->lock, NULL)) {
		free(u);
		return NULL;
	}
	if (ops)
		u->ops = *ops;
	u->ctx = ctx;
	/* Power-on state: 8N1 not set yet (LCR 0), divisor 12 = 9600 baud,
	 * OUT2 off, FIFOs off. */
	u->dll = 12;
	return u;
}

void uart_free(struct uart *u)
{
	if (!u)
		return;
	uart_flush(u);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

void uart_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart *u = opaque;
	if (len != 1 || offset >= UART_NR_PORTS) {
		if (!is_write && data)
			memset(data, 0xff, len);
		return;
	}

	pthread_mutex_lock(&u->lock);
	bool dlab = u->lcr & LCR_DLAB;
	enum last_access now = LAST_OTHER;
	if (is_write) {
		uint8_t v = data[0];
		switch (offset) {
		case REG_RBR_THR:
			if (dlab) {
				u->dll = v;
			} else {
				write_thr(u, v);
				now = LAST_THR;
			}
			break;
		case REG_IER:
			if (dlab)
				u->dlm = v;
			else
				write_ier(u, v);
			break;
		case REG_IIR_FCR:
			write_fcr(u, v);
			break;
		case REG_LCR:
			u->lcr = v;
			break;
		case REG_MCR:
			write_mcr(u, v);
			break;
		case REG_LSR:
		case REG_MSR:
			break; /* read-only (factory test on real parts) */
		case REG_SCR:
			u->scr = v;
			break;
		}
	} else {
		uint8_t v = 0xff;
		switch (offset) {
		case REG_RBR_THR:
			v = dlab ? u->dll : read_rbr(u);
			break;
		case REG_IER:
			v = dlab ? u->dlm : u->ier;
			break;
		case REG_IIR_FCR:
			v = iir_value(u);
			/* Reading IIR while it reports THRE acknowledges it. */
			if ((v & 0x0f) == IIR_THRI)
				u->thr_ipending = false;
			flush_out(u);
			break;
		case REG_LCR:
			v = u->lcr;
			break;
		case REG_MCR:
			v = u->mcr;
			break;
		case REG_LSR:
			v = read_lsr(u);
			now = LAST_LSR;
			break;
		case REG_MSR:
			v = msr_lines(u) | u->msr_delta;
			u->msr_delta = 0;
			break;
		case REG_SCR:
			v = u->scr;
			break;
		}
		data[0] = v;
	}
	u->last = now;
	update_irq(u);
	maybe_rx_ready(u);
	pthread_mutex_unlock(&u->lock);
}

size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;
	pthread_mutex_lock(&u->lock);
	/* In loopback the receiver is disconnected from the outside world:
	 * hold the host off until the guest leaves loopback. */
	if (!(u->mcr & MCR_LOOP)) {
		while (n < len && rx_push(u, buf[n]))
			n++;
	}
	if (n < len)
		u->rx_blocked = true;
	if (n)
		update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

bool uart_rx_room(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	bool room = !(u->mcr & MCR_LOOP) && u->rx_count < rx_capacity(u);
	if (!room)
		u->rx_blocked = true;
	pthread_mutex_unlock(&u->lock);
	return room;
}

void uart_tx_ready(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	flush_out(u);
	update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

uint64_t uart_tx_overruns(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	uint64_t n = u->tx_overruns;
	pthread_mutex_unlock(&u->lock);
	return n;
}

void uart_flush(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	flush_out(u);
	pthread_mutex_unlock(&u->lock);
}
