/* The compute and memory workloads of kvmini-bench (issue 10), one source
 * compiled twice: into the micro-guest (ring 3, no libc) and into the host
 * binary bench/work_host.c, with the same compiler and the same flags, so
 * that a guest/host ratio compares the same instructions.
 *
 * The interface has no floating-point types: the micro-guest's own code is
 * built with -mgeneral-regs-only, and only workloads.c may use SSE (the
 * guest turns it on in entry.S). Results come back as integer checksums so
 * the compiler cannot drop the work. Pure functions: no I/O, no allocation;
 * the caller owns every buffer. */
#ifndef KVMINI_WORKLOADS_H
#define KVMINI_WORKLOADS_H

#include <stddef.h>
#include <stdint.h>

/* cpu-int: a 64-bit multiply-rotate hash over len bytes (len a multiple
 * of 8), rounds times. Returns the hash. */
uint64_t wl_hash(const uint64_t *buf, size_t len, uint64_t rounds);

/* cpu-fp: C = A x B for n x n doubles, rounds times (2 n^3 flops each).
 * wl_matmul_init fills A and B with values from seed. Returns a checksum
 * of C's bits. buf holds 3 n^2 doubles (24 n^2 bytes, 16-byte aligned). */
void wl_matmul_init(void *buf, unsigned n, uint64_t seed);
uint64_t wl_matmul(void *buf, unsigned n, uint64_t rounds);

/* mem-bw, STREAM-style over three arrays of n 8-byte elements in buf
 * (24 n bytes): copy c = a (16 n bytes moved per round) and triad
 * a = b + 3 c (24 n bytes per round). Returns a checksum. */
void wl_stream_init(void *buf, size_t n);
uint64_t wl_copy(void *buf, size_t n, uint64_t rounds);
uint64_t wl_triad(void *buf, size_t n, uint64_t rounds);

/* mem-lat: a pointer chase over a working set of size bytes (a power of
 * two, at least 4 KiB) split into 64-byte nodes, linked in one cycle in a
 * scattered order no prefetcher follows (a full-period LCG over the node
 * indices). wl_chase follows steps links; each load depends on the last. */
void wl_chase_init(void *buf, size_t size);
uint64_t wl_chase(const void *buf, uint64_t steps);

/* The steps mem-lat takes on a working set of size bytes for a base of
 * steps: more on small sets, which are fast, so that every timed part is
 * long enough to time (about 0.1-1 s each on a 2 GHz machine). */
uint64_t wl_chase_steps(size_t size, uint64_t steps);

/* out = prefix + size as 4k, 16m, 1g, ... (size a power of two of at
 * least 1 KiB; out holds strlen(prefix) + 8 bytes). Row names of mem-lat. */
void wl_size_name(char *out, const char *prefix, uint64_t size);

#endif
