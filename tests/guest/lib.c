/* Console output, run control, strings and the command line: the helpers
 * every test uses. All of it runs in ring 3 (and in ring 0 for the
 * exception report). */
#include <stdarg.h>

#include "guest.h"

#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20

const struct hvm_start_info *start_info;
const char *cmdline = "";

uint64_t first_out_tsc;

void put_char(char c)
{
	if (c == '\n')
		put_char('\r');
	while (!(inb(PORT_COM1 + UART_LSR) & UART_LSR_THRE))
		;
	if (!first_out_tsc)
		first_out_tsc = rdtsc();
	outb(PORT_COM1 + UART_THR, (uint8_t)c);
}

void put_str(const char *s)
{
	while (*s)
		put_char(*s++);
}

static void put_unsigned(uint64_t v, unsigned base)
{
	char buf[24];
	int i = 0;
	do {
		unsigned d = (unsigned)(v % base);
		buf[i++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	while (i)
		put_char(buf[--i]);
}

void put_hex(uint64_t v)
{
	put_str("0x");
	put_unsigned(v, 16);
}

void put_dec(uint64_t v)
{
	put_unsigned(v, 10);
}

static void vput_fmt(const char *f, va_list ap)
{
	for (; *f; f++) {
		if (*f != '%') {
			put_char(*f);
			continue;
		}
		f++;
		int longs = 0;
		while (*f == 'l') {
			longs++;
			f++;
		}
		switch (*f) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			put_str(s ? s : "(null)");
			break;
		}
		case 'c':
			put_char((char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				put_char('-');
				put_unsigned((uint64_t)0 - (uint64_t)v, 10);
			} else {
				put_unsigned((uint64_t)v, 10);
			}
			break;
		}
		case 'u':
			put_unsigned(longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10);
			break;
		case 'x':
			put_hex(longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned));
			break;
		case 'p':
			put_hex((uint64_t)va_arg(ap, void *));
			break;
		case '%':
			put_char('%');
			break;
		case '\0':
			return;
		default:
			put_char('%');
			put_char(*f);
		}
	}
}

/* Serialises whole lines between CPUs. Bounded, so a CPU that faults while
 * holding it (or a wedged one) cannot silence the others for good. */
static volatile uint32_t console_lock_word;

void console_lock(void)
{
	for (uint32_t spins = 0; spins < 50000000; spins++) {
		if (!__atomic_exchange_n(&console_lock_word, 1, __ATOMIC_ACQUIRE))
			return;
		cpu_relax();
	}
}

void console_unlock(void)
{
	__atomic_store_n(&console_lock_word, 0, __ATOMIC_RELEASE);
}

void put_fmt(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vput_fmt(fmt, ap);
	va_end(ap);
}

void say(const char *fmt, ...)
{
	va_list ap;
	console_lock();
	put_str("microguest: ");
	va_start(ap, fmt);
	vput_fmt(fmt, ap);
	va_end(ap);
	put_char('\n');
	console_unlock();
}

void guest_exit(uint32_t status)
{
	outl(PORT_DEBUG_EXIT, status);
	/* Still here: the VMM has no debug exit port (kvmini without
	 * --debug-exit). Say so and halt this CPU. */
	put_str("microguest: debug exit port did not stop the VM; halting\n");
	cpu_park();
}

void fail(const char *fmt, ...)
{
	va_list ap;
	console_lock();
	put_str("microguest: FAIL ");
	va_start(ap, fmt);
	vput_fmt(fmt, ap);
	va_end(ap);
	put_char('\n');
	console_unlock();
	guest_exit(1);
}

/* ---- strings; gcc may call these for struct copies and initialisers ---- */
void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *dp = d;
	const uint8_t *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *dp = d;
	while (n--)
		*dp++ = (uint8_t)c;
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	for (; n; n--, x++, y++)
		if (*x != *y)
			return *x < *y ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int strcmp(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return (uint8_t)*a - (uint8_t)*b;
}

/* ---- command line: space-separated words, "key=value" or "key" ---- */
const char *cmdline_get(const char *key, char *buf, size_t size)
{
	size_t klen = strlen(key);
	const char *p = cmdline, *val = NULL, *val_end = NULL;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		const char *w = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n')
			p++;
		size_t wlen = (size_t)(p - w);
		if (wlen >= klen && memcmp(w, key, klen) == 0 &&
		    (wlen == klen || w[klen] == '=')) {
			val = wlen == klen ? w + klen : w + klen + 1;
			val_end = p;  /* keep looking: the last one wins */
		}
	}
	if (!val)
		return NULL;
	if (size == 0)
		return buf;
	size_t vlen = (size_t)(val_end - val);
	if (vlen >= size)
		vlen = size - 1;
	memcpy(buf, val, vlen);
	buf[vlen] = '\0';
	return buf;
}

uint64_t cmdline_get_u64(const char *key, uint64_t def)
{
	char buf[24];
	if (!cmdline_get(key, buf, sizeof(buf)) || !buf[0])
		return def;
	uint64_t v = 0;
	for (const char *p = buf; *p; p++) {
		if (*p < '0' || *p > '9')
			fail("cmdline: %s=%s is not a decimal number", key, buf);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	return v;
}

uint64_t tsc_hz_cpuid(void)
{
	uint32_t a, b, c, d;
	cpuid(0, &a, &b, &c, &d);
	uint32_t max = a;
	if (max >= 0x15) {
		cpuid(0x15, &a, &b, &c, &d);
		if (a && b && c)
			return (uint64_t)c * b / a;
	}
	if (max >= 0x16) {
		cpuid(0x16, &a, &b, &c, &d);
		if (a & 0xffff)
			return (uint64_t)(a & 0xffff) * 1000000;
	}
	return 0;
}
