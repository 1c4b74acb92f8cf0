/* The kvmini-bench workloads shared by the micro-guest and the host binary
 * (interface and rules: workloads.h). Written for a compiler at -O2 with
 * only SSE2 (the x86-64 baseline) on both sides. */
#include "workloads.h"

static inline uint64_t rotl(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

uint64_t wl_hash(const uint64_t *buf, size_t len, uint64_t rounds)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;
	size_t n = len / 8;
	for (uint64_t r = 0; r < rounds; r++)
		for (size_t i = 0; i < n; i++) {
			h ^= buf[i] * 0xff51afd7ed558ccdull;
			h = rotl(h, 29) * 0xc4ceb9fe1a85ec53ull + r;
		}
	return h;
}

/* A splitmix64 step: the workloads' only source of "random" values. */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t bits_of(double d)
{
	union { double d; uint64_t u; } v = { .d = d };
	return v.u;
}

void wl_matmul_init(void *buf, unsigned n, uint64_t seed)
{
	double *m = buf;
	for (size_t i = 0; i < 2 * (size_t)n * n; i++)
		m[i] = (double)(mix(&seed) >> 11) / 9007199254740992.0 - 0.5;
	for (size_t i = 2 * (size_t)n * n; i < 3 * (size_t)n * n; i++)
		m[i] = 0;
}

uint64_t wl_matmul(void *buf, unsigned n, uint64_t rounds)
{
	const double *a = buf, *b = a + (size_t)n * n;
	double *c = (double *)buf + 2 * (size_t)n * n;
	uint64_t sum = 0;
	for (uint64_t r = 0; r < rounds; r++) {
		/* i-k-j order: the inner loop streams rows of B and C. */
		for (unsigned i = 0; i < n; i++) {
			double *ci = c + (size_t)i * n;
			for (unsigned j = 0; j < n; j++)
				ci[j] = 0;
			for (unsigned k = 0; k < n; k++) {
				double aik = a[(size_t)i * n + k];
				const double *bk = b + (size_t)k * n;
				for (unsigned j = 0; j < n; j++)
					ci[j] += aik * bk[j];
			}
		}
		sum += bits_of(c[(r * 7919) % ((size_t)n * n)]);
	}
	return sum;
}

void wl_stream_init(void *buf, size_t n)
{
	double *a = buf, *b = a + n, *c = b + n;
	for (size_t i = 0; i < n; i++) {
		a[i] = 1.0;
		b[i] = 2.0;
		c[i] = 0.0;
	}
}

uint64_t wl_copy(void *buf, size_t n, uint64_t rounds)
{
	/* Copied as integers: the same bytes move, no FP unit involved. */
	const uint64_t *a = buf;
	uint64_t *c = (uint64_t *)buf + 2 * n;
	for (uint64_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++)
			c[i] = a[i];
		__asm__ volatile("" ::: "memory");
	}
	return c[n / 2] + c[n - 1];
}

uint64_t wl_triad(void *buf, size_t n, uint64_t rounds)
{
	double *a = buf, *b = a + n, *c = b + n;
	for (uint64_t r = 0; r < rounds; r++) {
		for (size_t i = 0; i < n; i++)
			a[i] = b[i] + 3.0 * c[i];
		__asm__ volatile("" ::: "memory");
	}
	return bits_of(a[n / 2]) + bits_of(a[n - 1]);
}

#define NODE 64

void wl_chase_init(void *buf, size_t size)
{
	/* x -> a x + c (mod m) with c odd and a = 1 (mod 4) has full period
	 * m = 2^k (Hull-Dobell): every node is on one cycle. */
	size_t m = size / NODE;
	char *base = buf;
	for (size_t i = 0; i < m; i++) {
		size_t next = (i * 0x5851f42d4c957f2dull + 0x14057b7ef767814full) & (m - 1);
		*(void **)(base + i * NODE) = base + next * NODE;
	}
}

uint64_t wl_chase(const void *buf, uint64_t steps)
{
	void *const *p = buf;
	for (uint64_t i = 0; i < steps; i++)
		p = *p;
	return (uint64_t)(uintptr_t)p;
}

uint64_t wl_chase_steps(size_t size, uint64_t steps)
{
	return steps * (size <= (256u << 10) ? 32 : size <= (4u << 20) ? 4 : 1);
}

void wl_size_name(char *out, const char *prefix, uint64_t size)
{
	static const char units[] = "kmgt";
	unsigned u = 0;
	size >>= 10;
	while (size >= 1024 && !(size & 1023) && u < 3) {
		size >>= 10;
		u++;
	}
	char digits[24];
	int n = 0;
	do {
		digits[n++] = (char)('0' + size % 10);
		size /= 10;
	} while (size);
	while (*prefix)
		*out++ = *prefix++;
	while (n)
		*out++ = digits[--n];
	*out++ = units[u];
	*out = 0;
}
