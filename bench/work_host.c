/* kvmini-bench-work: the host side of kvmini-bench's compute, memory and
 * exit workloads. It runs tests/guest/workloads.c, built with the same
 * compiler and flags as the micro-guest's copy, and prints the same marks
 * as test_work.c (@b NAME / @e / @r NAME units=N sum=X), so the harness
 * times both sides the same way: by when the lines arrive.
 *
 *   kvmini-bench-work work=cpu-int|cpu-fp|mem-bw|mem-lat|exit [key=value...]
 *
 * keys as test_work.c; thp=1 (default) backs the buffers with transparent
 * huge pages (MADV_HUGEPAGE, as kvmini backs guest RAM), thp=0 forbids
 * them. Exit status 2 on a bad argument. */
#define _GNU_SOURCE
#include "workloads.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int g_argc;
static char **g_argv;

static uint64_t arg_u64(const char *key, uint64_t def)
{
	size_t klen = strlen(key);
	for (int i = g_argc - 1; i >= 1; i--)   /* the last one wins, as in the guest */
		if (!strncmp(g_argv[i], key, klen) && g_argv[i][klen] == '=') {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(g_argv[i] + klen + 1, &end, 0);
			if (errno || *end || end == g_argv[i] + klen + 1) {
				fprintf(stderr, "kvmini-bench-work: bad number in %s\n", g_argv[i]);
				exit(2);
			}
			return v;
		}
	return def;
}

static void mark_begin(const char *name)
{
	printf("@b %s\n", name);
	fflush(stdout);
}

static void mark_end(void)
{
	fputs("@e\n", stdout);
	fflush(stdout);
}

/* 2 MiB-aligned anonymous memory, touched (zeroed) before any timing, as
 * the guest's mem_alloc zeroes its RAM. */
static void *buf_alloc(uint64_t size)
{
	size_t align = 2u << 20;
	size_t len = (size + 2 * align - 1) & ~(align - 1);
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "kvmini-bench-work: cannot map %" PRIu64 " bytes: %s\n", size,
			strerror(errno));
		exit(1);
	}
	char *a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	madvise(a, size, arg_u64("thp", 1) ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	memset(a, 0, size);
	return a;
}

static void cpu_int(void)
{
	uint64_t size = arg_u64("size", 64 << 10) & ~7ull;
	uint64_t rounds = arg_u64("rounds", 4000);
	uint64_t *buf = buf_alloc(size ? size : 8);
	uint64_t s = 1;
	for (uint64_t i = 0; i < size / 8; i++)
		buf[i] = (s = s * 6364136223846793005ull + 1442695040888963407ull);
	mark_begin("cpu-int");
	uint64_t h = wl_hash(buf, size, rounds);
	mark_end();
	printf("@r cpu-int units=%" PRIu64 " sum=0x%" PRIx64 "\n", size * rounds, h);
}

static void cpu_fp(void)
{
	uint64_t n = arg_u64("n", 128), rounds = arg_u64("rounds", 100);
	if (n < 1 || n > 2048) {
		fprintf(stderr, "kvmini-bench-work: n=%" PRIu64 " out of range\n", n);
		exit(2);
	}
	void *buf = buf_alloc(24 * n * n);
	wl_matmul_init(buf, (unsigned)n, 1);
	mark_begin("cpu-fp");
	uint64_t sum = wl_matmul(buf, (unsigned)n, rounds);
	mark_end();
	printf("@r cpu-fp units=%" PRIu64 " sum=0x%" PRIx64 "\n", 2 * n * n * n * rounds, sum);
}

static void mem_bw(void)
{
	uint64_t size = arg_u64("size", 64 << 20) & ~7ull, rounds = arg_u64("rounds", 10);
	uint64_t n = size / 8;
	void *buf = buf_alloc(3 * size + 8);
	wl_stream_init(buf, n);
	mark_begin("mem-bw-copy");
	uint64_t s1 = wl_copy(buf, n, rounds);
	mark_end();
	printf("@r mem-bw-copy units=%" PRIu64 " sum=0x%" PRIx64 "\n", 16 * n * rounds, s1);
	mark_begin("mem-bw-triad");
	uint64_t s2 = wl_triad(buf, n, rounds);
	mark_end();
	printf("@r mem-bw-triad units=%" PRIu64 " sum=0x%" PRIx64 "\n", 24 * n * rounds, s2);
}

static void mem_lat(void)
{
	uint64_t lo = arg_u64("lat_min", 4096), hi = arg_u64("lat_max", 1ull << 30);
	uint64_t steps = arg_u64("steps", 2000000);
	if (lo < 4096 || (lo & (lo - 1)) || hi < lo) {
		fprintf(stderr, "kvmini-bench-work: lat_min=%" PRIu64 " lat_max=%" PRIu64 "\n", lo, hi);
		exit(2);
	}
	char *buf = buf_alloc(hi);
	for (uint64_t size = lo; size <= hi; size *= 4) {
		wl_chase_init(buf, size);
		uint64_t n = wl_chase_steps(size, steps);
		wl_chase(buf, size / 64 < n ? size / 64 : n);   /* warm */
		char name[32];
		wl_size_name(name, "mem-lat-", size);
		mark_begin(name);
		uint64_t end = wl_chase(buf, n);
		mark_end();
		printf("@r %s units=%" PRIu64 " sum=0x%" PRIx64 " bytes=%" PRIu64 "\n", name, n,
		       end - (uint64_t)(uintptr_t)buf, size);
	}
}

/* The host's counterpart of a guest exit: a system call that does nothing. */
static void exits(void)
{
	uint64_t count = arg_u64("count", 20000), sum = 0;
	mark_begin("exit-syscall");
	for (uint64_t i = 0; i < count; i++)
		sum += (uint64_t)syscall(SYS_getppid);
	mark_end();
	printf("@r exit-syscall units=%" PRIu64 " sum=0x%" PRIx64 "\n", count, sum);
}

int main(int argc, char **argv)
{
	g_argc = argc;
	g_argv = argv;
	const char *w = NULL;
	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "work=", 5))
			w = argv[i] + 5;
	static const struct { const char *name; void (*fn)(void); } works[] = {
		{ "cpu-int", cpu_int }, { "cpu-fp", cpu_fp }, { "mem-bw", mem_bw },
		{ "mem-lat", mem_lat }, { "exit", exits },
	};
	for (size_t i = 0; w && i < sizeof(works) / sizeof(works[0]); i++)
		if (!strcmp(w, works[i].name)) {
			mark_begin("null");   /* what the marks cost (see test_work.c) */
			mark_end();
			works[i].fn();
			return fflush(stdout) ? 1 : 0;
		}
	fprintf(stderr, "usage: kvmini-bench-work work=cpu-int|cpu-fp|mem-bw|mem-lat|exit [key=N...]\n");
	return 2;
}
