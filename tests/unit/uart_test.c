/* 16550A UART: registers, interrupts, the probe Linux's 8250 driver runs,
 * buffering and back-pressure, against a fake ops recorder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "devices/uart.h"

struct rec {
	int level;       /* last level set */
	int irq_calls;
	uint8_t out[8192];
	size_t out_len;
	int output_calls;
	int rx_ready_calls;
	size_t limit;    /* host takes output only up to this total (0: no limit) */
};

static void rec_set_irq(void *ctx, int level)
{
	struct rec *r = ctx;
	r->level = level;
	r->irq_calls++;
}

static size_t rec_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct rec *r = ctx;
	if (r->limit && r->out_len + len > r->limit)
		len = r->limit - r->out_len;
	assert_true(r->out_len + len <= sizeof(r->out));
	memcpy(r->out + r->out_len, buf, len);
	r->out_len += len;
	r->output_calls++;
	return len;
}

static void rec_rx_ready(void *ctx)
{
	struct rec *r = ctx;
	r->rx_ready_calls++;
}

static const struct uart_ops rec_ops = {
	.set_irq = rec_set_irq, .output = rec_output, .rx_ready = rec_rx_ready,
};

/* Register offsets and bits as Linux's include/uapi/linux/serial_reg.h. */
enum { RX = 0, TX = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, EFR = 2, LCR = 3,
       MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct fix {
	struct rec rec;
	struct uart *u;
};

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));
	f->u = uart_new(&rec_ops, &f->rec);
	assert_non_null(f->u);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	uart_free(f->u);
	free(f);
	return 0;
}

static uint8_t in8(struct uart *u, unsigned off)
{
	uint8_t v = 0x5a;
	uart_io(u, off, &v, 1, false);
	return v;
}

static void out8(struct uart *u, unsigned off, uint8_t v)
{
	uart_io(u, off, &v, 1, true);
}

static void test_thr_output_newline_and_flush(void **state)
{
	struct fix *f = *state;
	const char *s = "hello\nwor";
	for (const char *p = s; *p; p++)
		out8(f->u, TX, (uint8_t)*p);
	/* Up to the newline went out in one call; the rest waits. */
	assert_int_equal(f->rec.out_len, 6);
	assert_int_equal(f->rec.output_calls, 1);
	assert_memory_equal(f->rec.out, "hello\n", 6);
	uart_flush(f->u);
	assert_int_equal(f->rec.out_len, 9);
	assert_memory_equal(f->rec.out, s, 9);
	/* Nothing left: flush again emits nothing. */
	uart_flush(f->u);
	assert_int_equal(f->rec.output_calls, 2);
}

static void test_output_flushed_on_iir_ier_and_lsr_polling(void **state)
{
	struct fix *f = *state;
	out8(f->u, TX, '$');
	assert_int_equal(f->rec.out_len, 0);
	in8(f->u, IIR);
	assert_int_equal(f->rec.out_len, 1);

	out8(f->u, TX, '#');
	out8(f->u, IER, 0);
	assert_int_equal(f->rec.out_len, 2);

	/* Polled writer: LSR, THR, LSR, THR ... stays buffered; a second LSR
	 * read in a row (waiting) flushes. */
	for (int i = 0; i < 4; i++) {
		assert_true(in8(f->u, LSR) & 0x20);
		out8(f->u, TX, 'a');
	}
	in8(f->u, LSR);
	assert_int_equal(f->rec.out_len, 2);
	in8(f->u, LSR);
	assert_int_equal(f->rec.out_len, 6);
	assert_memory_equal(f->rec.out, "$#aaaa", 6);
}

static void test_output_buffer_full(void **state)
{
	struct fix *f = *state;
	for (int i = 0; i < 2000; i++)
		out8(f->u, TX, 'x');
	assert_true(f->rec.out_len > 0);
	assert_true(f->rec.out_len < 2000);
	uart_flush(f->u);
	assert_int_equal(f->rec.out_len, 2000);
}

/* A host that stops taking output (a stalled terminal) makes the
 * transmitter busy: no THRE/TEMT, no THRE interrupt, bytes written anyway
 * are counted as overruns; uart_tx_ready brings it back. */
static void test_output_host_full_makes_tx_busy(void **state)
{
	struct fix *f = *state;
	f->rec.limit = 100;
	out8(f->u, IER, 0x02);          /* THRI */
	out8(f->u, MCR, 0x08);          /* OUT2 */
	int i = 0;
	while ((in8(f->u, LSR) & 0x60) == 0x60 && i < 5000) {
		out8(f->u, TX, (uint8_t)('a' + i % 26));
		i++;
	}
	/* 100 went to the host, 512 wait in the UART. */
	assert_int_equal(i, 100 + 512);
	assert_int_equal(f->rec.out_len, 100);
	assert_int_equal(in8(f->u, LSR) & 0x60, 0);
	/* No THRE interrupt while busy. */
	assert_int_equal(in8(f->u, IIR) & 0x0f, 0x01);
	out8(f->u, TX, 'Z');
	assert_int_equal(uart_tx_overruns(f->u), 1);
	/* Polling LSR does not get it moving while the host is full. */
	in8(f->u, LSR);
	assert_int_equal(in8(f->u, LSR) & 0x60, 0);

	f->rec.limit = 0;
	int calls = f->rec.irq_calls;
	uart_tx_ready(f->u);
	assert_int_equal(f->rec.out_len, 612);
	assert_int_equal(in8(f->u, LSR) & 0x60, 0x60);
	/* Coming free raised THRE. */
	assert_true(f->rec.irq_calls > calls);
	assert_int_equal(in8(f->u, IIR) & 0x0f, 0x02);
	for (int k = 0; k < 612; k++)
		assert_int_equal(f->rec.out[k], 'a' + k % 26);
}

static void test_dlab(void **state)
{
	struct fix *f = *state;
	out8(f->u, IER, 0x05);
	out8(f->u, LCR, 0x83); /* DLAB, 8N1 */
	out8(f->u, DLL, 0x01);
	out8(f->u, DLM, 0x02);
	assert_int_equal(in8(f->u, DLL), 0x01);
	assert_int_equal(in8(f->u, DLM), 0x02);
	assert_int_equal(f->rec.out_len, 0); /* DLL write is not a THR write */
	uart_flush(f->u);
	assert_int_equal(f->rec.out_len, 0);
	out8(f->u, LCR, 0x03);
	assert_int_equal(in8(f->u, LCR), 0x03);
	assert_int_equal(in8(f->u, IER), 0x05); /* IER untouched by DLM */
	out8(f->u, LCR, 0x83);
	assert_int_equal(in8(f->u, DLL), 0x01);
}

static void test_loopback(void **state)
{
	struct fix *f = *state;
	out8(f->u, FCR, 0x01);
	/* Outside loopback the modem lines are DCD|DSR|CTS. */
	assert_int_equal(in8(f->u, MSR) & 0xf0, 0xb0);
	out8(f->u, MCR, 0x10 | 0x0a); /* LOOP | OUT2 | RTS */
	assert_int_equal(in8(f->u, MSR) & 0xf0, 0x90); /* DCD | CTS */
	out8(f->u, MCR, 0x10 | 0x05); /* LOOP | OUT1 | DTR */
	assert_int_equal(in8(f->u, MSR), 0x40 | 0x20 | 0x0b); /* RI|DSR, deltas DCTS|DDSR|DDCD */
	assert_int_equal(in8(f->u, MSR), 0x60);                /* deltas cleared */
	out8(f->u, MCR, 0x10);
	assert_int_equal(in8(f->u, MSR), 0x06); /* DDSR, TERI (RI fell) */

	/* TX loops into RX, nothing reaches the host. */
	out8(f->u, TX, 'Q');
	assert_true(in8(f->u, LSR) & 0x01);
	assert_int_equal(in8(f->u, RX), 'Q');
	assert_false(in8(f->u, LSR) & 0x01);
	/* The host cannot feed the receiver while in loopback. */
	assert_false(uart_rx_room(f->u));
	assert_int_equal(uart_receive(f->u, (const uint8_t *)"z", 1), 0);
	out8(f->u, MCR, 0x0b);
	uart_flush(f->u);
	assert_int_equal(f->rec.out_len, 0);
	assert_true(uart_rx_room(f->u));
}

/* The probe sequence of autoconfig() and autoconfig_16550a() in Linux's
 * drivers/tty/serial/8250/8250_port.c (with size_fifo), step by step. */
static void test_linux_autoconfig_finds_16550a(void **state)
{
	struct fix *f = *state;
	struct uart *u = f->u;

	/* autoconfig: IER existence test. */
	uint8_t scratch = in8(u, IER);
	out8(u, IER, 0);
	uint8_t scratch2 = in8(u, IER) & 0x0f;
	out8(u, IER, 0x0f);
	uint8_t scratch3 = in8(u, IER) & 0x0f;
	out8(u, IER, scratch);
	assert_int_equal(scratch2, 0);
	assert_int_equal(scratch3, 0x0f);

	uint8_t save_mcr = in8(u, MCR);
	uint8_t save_lcr = in8(u, LCR);
	/* Loopback test (UPF_SKIP_TEST is not set for COM1 on x86). */
	out8(u, MCR, 0x10 | 0x0a);
	uint8_t status1 = in8(u, MSR) & 0xf0;
	out8(u, MCR, save_mcr);
	assert_int_equal(status1, 0x90);

	out8(u, LCR, 0xbf); /* UART_LCR_CONF_MODE_B */
	out8(u, EFR, 0);
	out8(u, LCR, 0);
	out8(u, FCR, 0x01); /* UART_FCR_ENABLE_FIFO */
	assert_int_equal(in8(u, IIR) >> 6, 3); /* → autoconfig_16550a */

	/* autoconfig_16550a: no EFR with DLAB (ST16C650V1 test). */
	out8(u, LCR, 0x80);
	assert_int_not_equal(in8(u, EFR), 0);
	/* No EFR under 0xbf either (ST16C650V2, TI16C752). */
	out8(u, LCR, 0xbf);
	assert_int_not_equal(in8(u, EFR), 0);
	/* Not a National SuperIO: EXCR1 (bank 2 offset 2) must not follow
	 * MCR's LOOP bit. */
	out8(u, LCR, 0);
	status1 = in8(u, MCR);
	out8(u, LCR, 0xe0);
	uint8_t status2 = in8(u, 0x02);
	if (!((status2 ^ status1) & 0x10)) {
		out8(u, LCR, 0);
		out8(u, MCR, status1 ^ 0x10);
		out8(u, LCR, 0xe0);
		status2 = in8(u, 0x02);
		out8(u, LCR, 0);
		out8(u, MCR, status1);
		assert_false((status2 ^ status1) & 0x10);
	}
	/* Not a TI16750: IIR bit 5 never follows FCR's 64-byte bit. */
	out8(u, LCR, 0);
	out8(u, FCR, 0x01 | 0x20);
	status1 = in8(u, IIR) >> 5;
	out8(u, FCR, 0x01);
	out8(u, LCR, 0x80);
	out8(u, FCR, 0x01 | 0x20);
	status2 = in8(u, IIR) >> 5;
	out8(u, FCR, 0x01);
	out8(u, LCR, 0);
	assert_int_equal(status1, 6);
	assert_int_equal(status2, 6);
	/* Not an XScale: IER bit 6 (UUE) does not stick. */
	uint8_t iersave = in8(u, IER);
	out8(u, IER, iersave & ~0x40);
	assert_false(in8(u, IER) & 0x40);
	out8(u, IER, iersave | 0x40);
	assert_false(in8(u, IER) & 0x40);
	out8(u, IER, iersave);

	/* size_fifo: must not count 64 (that would be a U6_16550A). */
	uint8_t old_lcr = in8(u, LCR);
	out8(u, LCR, 0);
	uint8_t old_fcr = in8(u, FCR);
	uint8_t old_mcr = in8(u, MCR);
	out8(u, FCR, 0x01 | 0x02 | 0x04);
	out8(u, MCR, 0x10);
	out8(u, LCR, 0x80);
	uint16_t old_dl = (uint16_t)(in8(u, DLL) | in8(u, DLM) << 8);
	out8(u, DLL, 1);
	out8(u, DLM, 0);
	out8(u, LCR, 0x03);
	for (int i = 0; i < 256; i++)
		out8(u, TX, (uint8_t)i);
	int count;
	for (count = 0; (in8(u, LSR) & 0x01) && count < 256; count++)
		in8(u, RX);
	out8(u, FCR, old_fcr);
	out8(u, MCR, old_mcr);
	out8(u, LCR, 0x80);
	out8(u, DLL, (uint8_t)(old_dl & 0xff));
	out8(u, DLM, (uint8_t)(old_dl >> 8));
	out8(u, LCR, old_lcr);
	assert_int_equal(count, UART_FIFO_SIZE);
	assert_int_not_equal(count, 64);

	out8(u, LCR, save_lcr);
	/* Loopback bytes never reached the host. */
	uart_flush(u);
	assert_int_equal(f->rec.out_len, 0);
	/* Line is low with IER 0. */
	assert_int_equal(f->rec.level, 0);
}

static void test_rx_irq(void **state)
{
	struct fix *f = *state;
	out8(f->u, FCR, 0x01);
	out8(f->u, IER, 0x01); /* RDI */
	assert_int_equal(f->rec.level, 0);
	assert_int_equal(in8(f->u, IIR), 0xc1);
	assert_int_equal(uart_receive(f->u, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(in8(f->u, IIR), 0xc4);
	assert_int_equal(f->rec.level, 1); /* reading IIR does not ack RX data */
	assert_int_equal(in8(f->u, LSR) & 0x61, 0x61);
	assert_int_equal(in8(f->u, RX), 'a');
	assert_int_equal(f->rec.level, 1);
	assert_int_equal(in8(f->u, RX), 'b');
	assert_int_equal(f->rec.level, 0);
	assert_int_equal(in8(f->u, IIR), 0xc1);
	assert_int_equal(in8(f->u, LSR) & 0x01, 0);
	/* Data without RDI enabled: no interrupt. */
	out8(f->u, IER, 0);
	uart_receive(f->u, (const uint8_t *)"c", 1);
	assert_int_equal(f->rec.level, 0);
	out8(f->u, IER, 0x01);
	assert_int_equal(f->rec.level, 1);
}

static void test_thre_irq(void **state)
{
	struct fix *f = *state;
	/* serial8250_do_startup's THRE re-assert test. */
	out8(f->u, IER, 0x02);
	assert_int_equal(f->rec.level, 1);
	uint8_t iir1 = in8(f->u, IIR);
	assert_int_equal(iir1 & 0x0f, 0x02);
	assert_int_equal(f->rec.level, 0); /* IIR read acknowledged THRE */
	assert_int_equal(in8(f->u, IIR) & 0x0f, 0x01);
	out8(f->u, IER, 0);
	out8(f->u, IER, 0x02);
	assert_int_equal(f->rec.level, 1);
	/* The TXEN test: LSR read in between does not ack. */
	assert_int_equal(in8(f->u, LSR) & 0x60, 0x60);
	assert_int_equal(in8(f->u, IIR) & 0x0f, 0x02);
	/* Rewriting IER with THRI already set does not re-raise. */
	out8(f->u, IER, 0x02);
	assert_int_equal(f->rec.level, 0);
	/* A THR write does. */
	out8(f->u, TX, 'x');
	assert_int_equal(f->rec.level, 1);
	in8(f->u, IIR);
	assert_int_equal(f->rec.level, 0);
	/* Disabling THRI drops a pending THRE. */
	out8(f->u, TX, 'y');
	assert_int_equal(f->rec.level, 1);
	out8(f->u, IER, 0);
	assert_int_equal(f->rec.level, 0);
}

static void test_irq_priority(void **state)
{
	struct fix *f = *state;
	out8(f->u, FCR, 0x01);
	out8(f->u, IER, 0x03);
	uart_receive(f->u, (const uint8_t *)"k", 1);
	assert_int_equal(in8(f->u, IIR), 0xc4); /* RX before THRE */
	in8(f->u, RX);
	assert_int_equal(in8(f->u, IIR), 0xc2);
	assert_int_equal(in8(f->u, IIR), 0xc1);
	/* Only level changes are reported. */
	int calls = f->rec.irq_calls;
	in8(f->u, IIR);
	in8(f->u, LSR);
	assert_int_equal(f->rec.irq_calls, calls);
}

static void test_rx_backpressure(void **state)
{
	struct fix *f = *state;
	uint8_t buf[40];
	for (int i = 0; i < 40; i++)
		buf[i] = (uint8_t)('A' + i);
	/* FIFOs off (16450 mode): one byte. */
	assert_int_equal(uart_receive(f->u, buf, 40), 1);
	assert_false(uart_rx_room(f->u));
	assert_int_equal(in8(f->u, RX), 'A');
	assert_int_equal(f->rec.rx_ready_calls, 1);
	out8(f->u, FCR, 0x01);
	assert_true(uart_rx_room(f->u));
	size_t n = uart_receive(f->u, buf, 40);
	assert_int_equal(n, UART_FIFO_SIZE);
	assert_false(uart_rx_room(f->u));
	assert_int_equal(uart_receive(f->u, buf + n, 40 - n), 0);
	/* rx_ready only once the guest has drained the FIFO. */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(f->rec.rx_ready_calls, 1);
		assert_int_equal(in8(f->u, RX), buf[i]);
	}
	assert_int_equal(f->rec.rx_ready_calls, 2);
	assert_true(uart_rx_room(f->u));
	assert_int_equal(uart_receive(f->u, buf + n, 40 - n), UART_FIFO_SIZE);
	/* FCR clear RX empties it. */
	out8(f->u, FCR, 0x03);
	assert_false(in8(f->u, LSR) & 0x01);
}

static void test_bad_accesses(void **state)
{
	struct fix *f = *state;
	uint8_t buf[8];
	for (uint32_t len = 0; len <= 8; len++) {
		if (len == 1)
			continue;
		for (uint64_t off = 0; off < 10; off++) {
			memset(buf, 0, sizeof(buf));
			uart_io(f->u, off, buf, len, false);
			for (uint32_t i = 0; i < len; i++)
				assert_int_equal(buf[i], 0xff);
			memset(buf, 'z', sizeof(buf));
			uart_io(f->u, off, buf, len, true);
		}
	}
	uint8_t v = 0;
	uart_io(f->u, 8, &v, 1, false);
	assert_int_equal(v, 0xff);
	uart_io(f->u, UINT64_MAX, &v, 1, true);
	uart_io(f->u, 0, NULL, 0, false);
	uart_flush(f->u);
	assert_int_equal(f->rec.out_len, 0);
	/* Reading an empty RBR is harmless. */
	assert_int_equal(in8(f->u, RX), 0);
	/* Writes to LSR/MSR are ignored. */
	out8(f->u, LSR, 0);
	assert_int_equal(in8(f->u, LSR), 0x60);
}

static void test_scratch_and_null_ops(void **state)
{
	struct fix *f = *state;
	out8(f->u, SCR, 0xa5);
	assert_int_equal(in8(f->u, SCR), 0xa5);
	/* A uart with no callbacks works. */
	struct uart *u = uart_new(NULL, NULL);
	assert_non_null(u);
	out8(u, IER, 0x02);
	out8(u, TX, '\n');
	uart_receive(u, (const uint8_t *)"x", 1);
	assert_int_equal(in8(u, RX), 'x');
	uart_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_thr_output_newline_and_flush, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_flushed_on_iir_ier_and_lsr_polling, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_output_buffer_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_host_full_makes_tx_busy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dlab, setup, teardown),
		cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_linux_autoconfig_finds_16550a, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_irq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thre_irq, setup, teardown),
		cmocka_unit_test_setup_teardown(test_irq_priority, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rx_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scratch_and_null_ops, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
