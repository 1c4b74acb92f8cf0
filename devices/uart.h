/* 16550A UART (COM1): the guest's serial console.
 *
 * The device knows nothing of KVM or of the terminal: it raises its IRQ line
 * and hands transmitted bytes to the owner through struct uart_ops. See
 * docs/console.md for how it fits between the guest and the terminal.
 *
 * Threads: uart_io runs on vCPU threads, uart_receive/uart_rx_room/uart_flush
 * on the event-loop thread. One mutex inside the uart serialises them all.
 * Every callback in uart_ops is called WITH THAT MUTEX HELD, so the IRQ level
 * and the output order seen by the host are exactly the order of the guest's
 * register accesses. Callbacks must therefore not call back into the uart;
 * they may take other locks (e.g. vm->irq_lock) that are never held while
 * calling into the uart. */
#ifndef KVMINI_UART_H
#define KVMINI_UART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART_NR_PORTS   8   /* register it on the port bus as 8 ports */
#define UART_FIFO_SIZE  16  /* RX FIFO, as on a real 16550A */

struct uart_ops {
	/* Drive the IRQ line: level 1 while IIR reports a pending interrupt.
	 * Called only when the level changes. */
	void (*set_irq)(void *ctx, int level);
	/* Bytes the guest transmitted (buffered, see uart_flush). Returns how
	 * many the host took; fewer means its buffer is full: the UART keeps
	 * the rest, and once its own buffer is full it reports the transmitter
	 * busy (LSR without THRE/TEMT, no THRE interrupt) until uart_tx_ready.
	 * NULL: output is dropped. */
	size_t (*output)(void *ctx, const uint8_t *buf, size_t len);
	/* Optional (may be NULL): after uart_receive refused bytes or
	 * uart_rx_room said false, called once when the guest has drained the
	 * RX FIFO, so the event loop can resume reading its input. */
	void (*rx_ready)(void *ctx);
};

struct uart;

/* ops is copied; ctx is passed back to every callback. NULL on ENOMEM. */
struct uart *uart_new(const struct uart_ops *ops, void *ctx);
/* Flushes buffered output, then frees. NULL is fine. */
void uart_free(struct uart *u);

/* bus_io_fn for the 8 ports at PORT_COM1. Accesses with len != 1 or an
 * offset past 7 are ignored (reads return 0xff). */
void uart_io(void *u, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/* Host input to the RX FIFO. Returns how many bytes were accepted; fewer than
 * len when the FIFO is full (or the guest has the UART in loopback mode):
 * keep the rest and retry after ops->rx_ready. */
size_t uart_receive(struct uart *u, const uint8_t *buf, size_t len);
/* Whether uart_receive would accept a byte now. */
bool uart_rx_room(struct uart *u);

/* The host can take output again (after ops->output took less than
 * offered): retries the buffered bytes and, if the transmitter is free
 * again, raises THRE. Any thread but one holding the UART's callbacks. */
void uart_tx_ready(struct uart *u);
/* Bytes the guest wrote to THR while the transmitter was busy (lost, as on
 * a real UART). */
uint64_t uart_tx_overruns(struct uart *u);

/* Transmitted bytes are buffered and passed to ops->output on '\n', when the
 * buffer fills, when the guest reads IIR, writes IER, or reads LSR twice in a
 * row (polling), and here. Call at VM stop so nothing is lost. */
void uart_flush(struct uart *u);

#endif
