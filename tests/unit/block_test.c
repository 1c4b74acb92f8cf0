/* The block layer on real temp files: the io_uring engine (many operations
 * in flight, batching, a full SQ, eventfd reads, deferred completions) and
 * the raw driver (open errors, size rounding, read/write round trips with
 * multi-segment iovecs, bounds, read-only, discard, write_zeroes and its
 * fallback, flush and the fsyncgate rule, short reads, cache=none with
 * aligned and misaligned buffers). Results are checked with plain
 * pread/pwrite/fstat, not through the code under test. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>

#include "block/block.h"
#include "block/io_engine.h"
#include "vmm/iov.h"

#define TMPFS_MAGIC_NUM 0x01021994

/* ---- helpers ---------------------------------------------------------- */

static const char *tmp_dir(void)
{
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

/* A temp file of `size` bytes in dir, filled with pattern(offset). */
static uint8_t pattern(uint64_t off, unsigned seed) { return (uint8_t)(off * 7 + seed + (off >> 9)); }

static char *make_file_in(const char *dir, uint64_t size, unsigned seed)
{
	char *path;
	if (asprintf(&path, "%s/kvmini-block-XXXXXX", dir) < 0)
		return NULL;
	int fd = mkstemp(path);
	if (fd < 0) {
		free(path);
		return NULL;
	}
	uint8_t buf[4096];
	for (uint64_t off = 0; off < size; off += sizeof(buf)) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);
		for (size_t i = 0; i < n; i++)
			buf[i] = pattern(off + i, seed);
		if (pwrite(fd, buf, n, off) != (ssize_t)n) {
			close(fd);
			unlink(path);
			free(path);
			return NULL;
		}
	}
	close(fd);
	return path;
}

static char *make_file(uint64_t size, unsigned seed)
{
	char *p = make_file_in(tmp_dir(), size, seed);
	assert_non_null(p);
	return p;
}

static void drop_file(char *path)
{
	unlink(path);
	free(path);
}

static void read_file_at(const char *path, void *buf, size_t len, uint64_t off)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

/* One completion recorded by a callback. */
struct done {
	int calls;
	int64_t res;
};

static void on_done(void *opaque, int64_t res)
{
	struct done *d = opaque;
	d->calls++;
	d->res = res;
}

static void run_until(struct io_engine *e, const int *count, int target)
{
	for (int i = 0; i < 100000 && *count < target; i++) {
		int n = io_engine_run(e, true);
		assert_true(n >= 0);
	}
	assert_int_equal(*count, target);
}

typedef void (*block_fn)(struct block *, struct io_engine *, struct block_req *);

/* The driver's area of a request, as virtio-blk allocates it. */
static void *drv_area(const struct block *b)
{
	void *p = NULL;
	size_t n = block_req_priv_size(b);
	if (n)
		assert_int_equal(posix_memalign(&p, 64, n), 0);
	return p;
}

/* Submits one request, checks that its callback did not run inside the
 * submission, runs the engine until it completes, returns the result. */
static int64_t do_req(block_fn fn, struct block *b, struct io_engine *e, uint64_t offset,
		      const struct iovec *iov, unsigned iovcnt, uint64_t len, bool may_unmap)
{
	struct done d = { 0, 12345 };
	struct block_req r = {
		.offset = offset, .iov = iov, .iovcnt = iovcnt, .len = len,
		.may_unmap = may_unmap, .done = on_done, .opaque = &d, .drv = drv_area(b),
	};
	fn(b, e, &r);
	assert_int_equal(d.calls, 0);   /* never re-entrant */
	run_until(e, &d.calls, 1);
	assert_int_equal(e->block_reqs, 0);
	free(r.drv);
	return d.res;
}

static int64_t rw(block_fn fn, struct block *b, struct io_engine *e, uint64_t off, void *buf,
		  size_t len)
{
	struct iovec iov = { buf, len };
	return do_req(fn, b, e, off, &iov, 1, len, false);
}

static struct block *open_ok(const char *path, enum block_format fmt, enum block_cache cache,
			     bool ro)
{
	struct block *b = NULL;
	struct block_config cfg = { .path = path, .format = fmt, .cache = cache, .readonly = ro };
	assert_int_equal(block_open(&b, &cfg), 0);
	assert_non_null(b);
	return b;
}

static int open_err(const char *path, enum block_format fmt, enum block_cache cache, bool ro)
{
	struct block *b = (struct block *)0x1;
	struct block_config cfg = { .path = path, .format = fmt, .cache = cache, .readonly = ro };
	int ret = block_open(&b, &cfg);
	assert_null(b);
	return ret;
}

/* ---- engine ------------------------------------------------------------ */

struct io_done {
	int calls;
	int res[512];
	int order[512];
};

struct io_slot {
	struct io_done *d;
	int idx;
};

static void on_io(void *opaque, int res)
{
	struct io_slot *s = opaque;
	s->d->res[s->idx] = res;
	s->d->order[s->d->calls++] = s->idx;
}

static void engine_many_in_flight(void **state)
{
	enum { N = 200, BS = 4096 };
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 256), 0);
	char *path = make_file(0, 0);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);

	static uint8_t wbuf[N][BS], rbuf[N][BS];
	struct iovec wiov[N], riov[N];
	struct io_slot slot[N];
	struct io_done d = { 0 };
	for (int i = 0; i < N; i++) {
		memset(wbuf[i], i + 1, BS);
		wiov[i] = (struct iovec){ wbuf[i], BS };
		slot[i] = (struct io_slot){ &d, i };
		assert_int_equal(io_engine_writev(&e, fd, &wiov[i], 1, (uint64_t)i * BS, on_io, &slot[i]), 0);
	}
	assert_int_equal(e.queued, N + 1);     /* the post read is queued at init */
	assert_int_equal(d.calls, 0);
	assert_int_equal(io_engine_submit(&e), 0);
	assert_int_equal(e.submits, 1);        /* one system call for 200 ops */
	assert_int_equal(e.queued, 0);
	assert_int_equal(e.inflight, N + 1);   /* and the engine's own post read */
	run_until(&e, &d.calls, N);
	assert_int_equal(e.inflight, 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(d.res[i], BS);

	memset(rbuf, 0, sizeof(rbuf));
	d.calls = 0;
	for (int i = 0; i < N; i++) {
		riov[i] = (struct iovec){ rbuf[i], BS };
		assert_int_equal(io_engine_readv(&e, fd, &riov[i], 1, (uint64_t)i * BS, on_io, &slot[i]), 0);
	}
	run_until(&e, &d.calls, N);
	assert_true(e.submits < 2 * N);       /* batched: far fewer submits than ops */
	assert_int_equal(e.submits, 2);
	assert_int_equal(e.completions, 2 * N);
	assert_int_equal(e.holds, 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(d.res[i], BS);
		assert_memory_equal(rbuf[i], wbuf[i], BS);
	}
	/* Checked independently of the engine too. */
	uint8_t chk[BS];
	assert_int_equal(pread(fd, chk, BS, 123 * BS), BS);
	assert_memory_equal(chk, wbuf[123], BS);

	close(fd);
	drop_file(path);
	io_engine_close(&e);
}

/* More operations than the SQ holds: a prep that finds the SQ full
 * submits what is queued and takes the freed entry, so nothing queued ever
 * exceeds the SQ and each submit carries a full SQ's worth. */
static void engine_sq_full(void **state)
{
	enum { N = 50, DEPTH = 8 };
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, DEPTH), 0);
	assert_int_equal(e.depth, DEPTH);
	char *path = make_file(N * 512, 3);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	static uint8_t buf[N][512];
	struct iovec iov[N];
	struct io_slot slot[N];
	struct io_done d = { 0 };
	for (int i = 0; i < N; i++) {
		iov[i] = (struct iovec){ buf[i], 512 };
		slot[i] = (struct io_slot){ &d, i };
		uint64_t before = e.submits;
		unsigned queued = e.queued;
		assert_int_equal(io_engine_readv(&e, fd, &iov[i], 1, (uint64_t)i * 512, on_io, &slot[i]), 0);
		assert_true(e.queued <= DEPTH);
		/* A full SQ was submitted by this very prep, and only then. */
		assert_int_equal(e.submits - before, queued == DEPTH ? 1 : 0);
		/* Reap now and then so the CQ (16) never overflows. */
		if (i % 8 == 7)
			assert_true(io_engine_run(&e, false) >= 0);
	}
	run_until(&e, &d.calls, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(d.res[i], 512);
		assert_int_equal(buf[i][5], pattern((uint64_t)i * 512 + 5, 3));
	}
	close(fd);
	drop_file(path);
	io_engine_close(&e);
}

static void engine_eventfd(void **state)
{
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 16), 0);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(efd >= 0);
	uint64_t val = 0;
	struct io_slot slot = { NULL, 0 };
	struct io_done d = { 0 };
	slot.d = &d;
	assert_int_equal(io_engine_read_eventfd(&e, efd, &val, on_io, &slot), 0);
	/* Not signalled: nothing completes. */
	assert_int_equal(io_engine_run(&e, false), 0);
	assert_int_equal(d.calls, 0);
	assert_int_equal(e.inflight, 2);       /* ours and the post read */
	uint64_t one = 5;
	assert_int_equal(write(efd, &one, 8), 8);
	run_until(&e, &d.calls, 1);
	assert_int_equal(d.res[0], 8);
	assert_int_equal(val, 5);
	/* Re-armed, it waits for the next signal only. */
	assert_int_equal(io_engine_read_eventfd(&e, efd, &val, on_io, &slot), 0);
	assert_int_equal(io_engine_run(&e, false), 0);
	assert_int_equal(d.calls, 1);
	one = 2;
	assert_int_equal(write(efd, &one, 8), 8);
	run_until(&e, &d.calls, 2);
	assert_int_equal(val, 2);
	close(efd);
	io_engine_close(&e);
}

static void engine_defer_and_idle(void **state)
{
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 0), 0);
	assert_int_equal(e.depth, 256);
	/* Nothing to wait for: run(wait) returns instead of sleeping. */
	assert_int_equal(io_engine_run(&e, true), 0);
	struct io_done d = { 0 };
	struct io_slot s0 = { &d, 0 }, s1 = { &d, 1 };
	struct io_post p0, p1;
	io_engine_defer(&e, &p0, -EROFS, on_io, &s0);
	io_engine_defer(&e, &p1, 7, on_io, &s1);
	assert_int_equal(d.calls, 0);
	assert_int_equal(io_engine_run(&e, true), 2);
	assert_int_equal(d.calls, 2);
	assert_int_equal(d.order[0], 0);      /* in order */
	assert_int_equal(d.res[0], -EROFS);
	assert_int_equal(d.res[1], 7);
	assert_int_equal(io_engine_run(&e, false), 0);
	io_engine_close(&e);
}

/* ---- raw: open ----------------------------------------------------------- */

static void raw_open_errors(void **state)
{
	char *missing;
	assert_true(asprintf(&missing, "%s/kvmini-no-such-file-%d", tmp_dir(), getpid()) > 0);
	assert_int_equal(open_err(missing, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false), -ENOENT);
	free(missing);
	assert_int_equal(open_err(tmp_dir(), BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false), -EISDIR);
	assert_int_equal(open_err("/dev/null", BLOCK_FMT_RAW, BLOCK_CACHE_WRITEBACK, true), -EINVAL);
	assert_int_equal(open_err("", BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false), -EINVAL);

	/* No read permission (meaningless as root, which bypasses it). */
	if (geteuid() != 0) {
		char *p = make_file(512, 0);
		assert_int_equal(chmod(p, 0), 0);
		assert_int_equal(open_err(p, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false), -EACCES);
		drop_file(p);
	}
}

static void raw_qcow2_magic(void **state)
{
	char *p = make_file(4096, 0);
	int fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "QFI\xfb\0\0\0\3", 8, 0), 8);
	close(fd);
	/* The qcow2 magic makes it qcow2, never raw: this header is broken. */
	assert_int_equal(open_err(p, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false), -EINVAL);
	assert_int_equal(open_err(p, BLOCK_FMT_QCOW2, BLOCK_CACHE_WRITEBACK, false), -EINVAL);
	/* format=raw takes the bytes as they are. */
	struct block *b = open_ok(p, BLOCK_FMT_RAW, BLOCK_CACHE_WRITEBACK, false);
	assert_string_equal(b->ops->name, "raw");
	assert_int_equal(b->size, 4096);
	block_close(b);
	/* A magic elsewhere than at 0 is just data. */
	fd = open(p, O_WRONLY);
	assert_int_equal(pwrite(fd, "RAW!", 4, 0), 4);
	assert_int_equal(pwrite(fd, "QFI\xfb", 4, 512), 4);
	close(fd);
	b = open_ok(p, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false);
	assert_string_equal(b->ops->name, "raw");
	block_close(b);
	drop_file(p);
}

static void raw_size_rounding(void **state)
{
	static const struct { uint64_t file, size; } cases[] = {
		{ 0, 0 }, { 100, 0 }, { 512, 512 }, { 1000, 512 }, { 4096, 4096 },
		{ 1048576 + 511, 1048576 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *p = make_file(cases[i].file, 1);
		struct block *b = open_ok(p, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false);
		assert_int_equal(b->size, cases[i].size);
		assert_int_equal(b->logical_block_size, 512);
		assert_true(b->discard_supported);
		assert_false(b->direct);
		assert_false(b->readonly);
		assert_false(block_flush_failed(b));
		assert_string_equal(b->path, p);
		block_close(b);
		drop_file(p);
	}
}

/* ---- raw: I/O ------------------------------------------------------------ */

struct fixture {
	struct io_engine e;
	struct block *b;
	char *path;
};

static int fx_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f || io_engine_init(&f->e, 64) < 0)
		return -1;
	f->path = make_file_in(tmp_dir(), 1 << 20, 9);
	if (!f->path)
		return -1;
	struct block_config cfg = { .path = f->path };
	if (block_open(&f->b, &cfg) < 0)
		return -1;
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *f = *state;
	block_close(f->b);
	io_engine_close(&f->e);
	drop_file(f->path);
	free(f);
	return 0;
}

static void raw_write_read_patterns(void **state)
{
	struct fixture *f = *state;
	static const struct { uint64_t off; size_t len; } cases[] = {
		{ 0, 512 }, { 512, 4096 }, { 1, 1 }, { 777, 3000 }, { 65536 - 100, 200 },
		{ (1 << 20) - 512, 512 }, { (1 << 20) - 1, 1 }, { 12345, 100000 },
	};
	uint8_t *w = malloc(100000), *r = malloc(100000), *chk = malloc(100000);
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t len = cases[c].len;
		for (size_t i = 0; i < len; i++)
			w[i] = (uint8_t)(c * 31 + i * 13 + 1);
		assert_int_equal(rw(block_write, f->b, &f->e, cases[c].off, w, len), len);
		read_file_at(f->path, chk, len, cases[c].off);
		assert_memory_equal(chk, w, len);
		memset(r, 0, len);
		assert_int_equal(rw(block_read, f->b, &f->e, cases[c].off, r, len), len);
		assert_memory_equal(r, w, len);
	}
	/* Untouched bytes are still the original pattern. */
	uint8_t one;
	read_file_at(f->path, &one, 1, 300000);
	assert_int_equal(one, pattern(300000, 9));
	free(w);
	free(r);
	free(chk);
}

static void raw_multi_iovec(void **state)
{
	struct fixture *f = *state;
	/* Odd segment sizes, an empty one in the middle. */
	static const size_t seg[] = { 3, 509, 0, 4096, 1, 7000 };
	enum { NSEG = sizeof(seg) / sizeof(seg[0]) };
	uint8_t *wb[NSEG], *rb[NSEG];
	struct iovec wiov[NSEG], riov[NSEG];
	size_t total = 0;
	for (int i = 0; i < NSEG; i++) {
		wb[i] = malloc(seg[i] + 1);
		rb[i] = calloc(1, seg[i] + 1);
		for (size_t j = 0; j < seg[i]; j++)
			wb[i][j] = (uint8_t)(i * 50 + j);
		wiov[i] = (struct iovec){ wb[i], seg[i] };
		riov[i] = (struct iovec){ rb[i], seg[i] };
		total += seg[i];
	}
	uint64_t off = 70001;
	assert_int_equal(do_req(block_write, f->b, &f->e, off, wiov, NSEG, total, false), total);
	uint8_t *chk = malloc(total);
	read_file_at(f->path, chk, total, off);
	size_t pos = 0;
	for (int i = 0; i < NSEG; i++) {
		assert_memory_equal(chk + pos, wb[i], seg[i]);
		pos += seg[i];
	}
	assert_int_equal(do_req(block_read, f->b, &f->e, off, riov, NSEG, total, false), total);
	for (int i = 0; i < NSEG; i++) {
		assert_memory_equal(rb[i], wb[i], seg[i]);
		free(wb[i]);
		free(rb[i]);
	}
	free(chk);
}

/* Many block requests queued before the engine runs once. */
static void raw_many_requests(void **state)
{
	struct fixture *f = *state;
	enum { N = 48, BS = 2048 };
	static uint8_t buf[N][BS];
	struct iovec iov[N];
	struct done d[N];
	struct block_req r[N];
	for (int i = 0; i < N; i++) {
		memset(buf[i], 0xA0 + i, BS);
		iov[i] = (struct iovec){ buf[i], BS };
		d[i] = (struct done){ 0, -1 };
		r[i] = (struct block_req){ .offset = (uint64_t)i * BS, .iov = &iov[i], .iovcnt = 1,
					   .len = BS, .done = on_done, .opaque = &d[i],
					   .drv = drv_area(f->b) };
		block_write(f->b, &f->e, &r[i]);
	}
	assert_int_equal(f->e.block_reqs, N);
	uint64_t submits = f->e.submits;
	for (int k = 0; k < 1000; k++) {
		int all = 1;
		for (int i = 0; i < N; i++)
			all &= d[i].calls == 1;
		if (all)
			break;
		assert_true(io_engine_run(&f->e, true) >= 0);
	}
	assert_true(f->e.submits - submits < N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].res, BS);
	}
	uint8_t chk[BS];
	read_file_at(f->path, chk, BS, 17 * BS);
	assert_memory_equal(chk, buf[17], BS);
	for (int i = 0; i < N; i++)
		free(r[i].drv);
}

static void raw_out_of_range(void **state)
{
	struct fixture *f = *state;
	struct block *b = f->b;
	uint64_t size = b->size;
	assert_int_equal(size, 1 << 20);
	uint8_t buf[1024];
	assert_int_equal(rw(block_read, b, &f->e, size, buf, 1), -EINVAL);
	assert_int_equal(rw(block_read, b, &f->e, size - 512, buf, 1024), -EINVAL);
	assert_int_equal(rw(block_write, b, &f->e, size - 1, buf, 2), -EINVAL);
	assert_int_equal(rw(block_write, b, &f->e, UINT64_MAX - 10, buf, 512), -EINVAL);
	assert_int_equal(rw(block_read, b, &f->e, UINT64_MAX, buf, 1), -EINVAL);
	assert_int_equal(rw(block_read, b, &f->e, size + 512, buf, 0), -EINVAL);
	/* Exactly at the end is fine; length 0 too. */
	assert_int_equal(rw(block_read, b, &f->e, size - 1024, buf, 1024), 1024);
	assert_int_equal(rw(block_read, b, &f->e, size, buf, 0), 0);
	assert_int_equal(rw(block_write, b, &f->e, 0, buf, 0), 0);
	/* iovec sums that overflow. */
	struct iovec big[2] = { { buf, SIZE_MAX / 2 + 1 }, { buf, SIZE_MAX / 2 + 1 } };
	assert_int_equal(do_req(block_read, b, &f->e, 0, big, 2, 0, false), -EINVAL);
	assert_int_equal(do_req(block_discard, b, &f->e, size - 512, NULL, 0, 1024, false), -EINVAL);
	assert_int_equal(do_req(block_discard, b, &f->e, 512, NULL, 0, UINT64_MAX - 100, false), -EINVAL);
	assert_int_equal(do_req(block_write_zeroes, b, &f->e, UINT64_MAX - 511, NULL, 0, 1024, true), -EINVAL);
	assert_int_equal(do_req(block_write_zeroes, b, &f->e, size, NULL, 0, 1, false), -EINVAL);
	/* Nothing was written by the failures. */
	read_file_at(f->path, buf, 1, size - 1);
	assert_int_equal(buf[0], pattern(size - 1, 9));
}

static void raw_readonly(void **state)
{
	char *p = make_file(8192, 4);
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 16), 0);
	struct block *b = open_ok(p, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, true);
	assert_true(b->readonly);
	uint8_t buf[512];
	memset(buf, 0xEE, sizeof(buf));
	assert_int_equal(rw(block_write, b, &e, 0, buf, 512), -EROFS);
	assert_int_equal(rw(block_write, b, &e, 0, buf, 0), -EROFS);
	assert_int_equal(do_req(block_discard, b, &e, 0, NULL, 0, 4096, false), -EROFS);
	assert_int_equal(do_req(block_write_zeroes, b, &e, 0, NULL, 0, 4096, false), -EROFS);
	assert_int_equal(rw(block_read, b, &e, 512, buf, 512), 512);
	assert_int_equal(buf[0], pattern(512, 4));
	assert_int_equal(do_req(block_flush, b, &e, 0, NULL, 0, 0, false), 0);
	read_file_at(p, buf, 1, 0);
	assert_int_equal(buf[0], pattern(0, 4));
	block_close(b);
	io_engine_close(&e);
	drop_file(p);
}

static blkcnt_t blocks_of(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_blocks;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void raw_discard(void **state)
{
	struct fixture *f = *state;
	/* The fixture's file is fully written (1 MiB of data). */
	blkcnt_t before = blocks_of(f->path);
	assert_true(before >= 2048);
	assert_int_equal(do_req(block_discard, f->b, &f->e, 256 * 1024, NULL, 0, 512 * 1024, false), 0);
	blkcnt_t after = blocks_of(f->path);
	assert_true(after <= before - 1000);   /* ~1024 blocks of 512 freed */
	uint8_t *buf = malloc(1 << 20);
	assert_int_equal(rw(block_read, f->b, &f->e, 0, buf, 1 << 20), 1 << 20);
	assert_true(all_zero(buf + 256 * 1024, 512 * 1024));
	assert_int_equal(buf[256 * 1024 - 1], pattern(256 * 1024 - 1, 9));
	assert_int_equal(buf[768 * 1024], pattern(768 * 1024, 9));
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);   /* KEEP_SIZE */
	free(buf);
}

static void check_zeroed(struct fixture *f, uint64_t off, uint64_t len, unsigned seed)
{
	uint8_t *buf = malloc(f->b->size);
	read_file_at(f->path, buf, f->b->size, 0);
	assert_true(all_zero(buf + off, len));
	if (off)
		assert_int_equal(buf[off - 1], pattern(off - 1, seed));
	if (off + len < f->b->size)
		assert_int_equal(buf[off + len], pattern(off + len, seed));
	free(buf);
}

static void raw_write_zeroes(void **state)
{
	struct fixture *f = *state;
	blkcnt_t before = blocks_of(f->path);
	/* ZERO_RANGE: zeroes; unaligned range, unaligned ends are zeroed too. */
	assert_int_equal(do_req(block_write_zeroes, f->b, &f->e, 1000, NULL, 0, 10000, false), 0);
	check_zeroed(f, 1000, 10000, 9);
	/* may_unmap: punches a hole. */
	assert_int_equal(do_req(block_write_zeroes, f->b, &f->e, 512 * 1024, NULL, 0, 256 * 1024, true), 0);
	check_zeroed(f, 512 * 1024, 256 * 1024, 9);
	assert_true(blocks_of(f->path) <= before - 400);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
}

/* tmpfs has no FALLOC_FL_ZERO_RANGE: write_zeroes falls back to writing
 * zero buffers (more than one 1 MiB buffer's worth here). */
static void raw_write_zeroes_fallback(void **state)
{
	struct statfs sfs;
	if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != TMPFS_MAGIC_NUM) {
		printf("# skip: /dev/shm is not tmpfs (needed for a file system without ZERO_RANGE)\n");
		skip();
	}
	int probe_fd = -1;
	char *p = make_file_in("/dev/shm", 3 << 20, 5);
	if (!p) {
		printf("# skip: cannot create a file in /dev/shm\n");
		skip();
	}
	probe_fd = open(p, O_RDWR);
	assert_true(probe_fd >= 0);
	if (fallocate(probe_fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 512) == 0 ||
	    errno != EOPNOTSUPP) {
		close(probe_fd);
		drop_file(p);
		printf("# skip: this tmpfs supports ZERO_RANGE, the fallback is not reached\n");
		skip();
	}
	close(probe_fd);
	struct fixture fx = { 0 };
	assert_int_equal(io_engine_init(&fx.e, 16), 0);
	fx.path = p;
	fx.b = open_ok(p, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false);
	uint64_t off = 4096 + 3, len = (2 << 20) + 1000;
	assert_int_equal(do_req(block_write_zeroes, fx.b, &fx.e, off, NULL, 0, len, false), 0);
	check_zeroed(&fx, off, len, 5);
	/* Again, now that the driver knows ZERO_RANGE is missing. */
	assert_int_equal(do_req(block_write_zeroes, fx.b, &fx.e, 100, NULL, 0, 50, false), 0);
	check_zeroed(&fx, 100, 50, 5);
	block_close(fx.b);
	io_engine_close(&fx.e);
	drop_file(p);
}

static void raw_flush(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];
	memset(buf, 0x5A, sizeof(buf));
	assert_int_equal(rw(block_write, f->b, &f->e, 0, buf, sizeof(buf)), 4096);
	assert_int_equal(do_req(block_flush, f->b, &f->e, 0, NULL, 0, 0, false), 0);
	assert_false(block_flush_failed(f->b));
	assert_int_equal(do_req(block_flush, f->b, &f->e, 0, NULL, 0, 0, false), 0);
}

/* Fault injection: every fdatasync the kernel completes is reported to the
 * caller as -EIO (what a lost NFS lease or a failing disk gives). */
struct fault {
	int fsyncs;            /* fdatasyncs the engine completed */
	int fail_res;          /* what to report instead (0: the real result) */
	sem_t *entered, *go;   /* if set: pause inside the completion */
};

static int fault_hook(void *opaque, enum io_op op, int res)
{
	struct fault *ft = opaque;
	if (op != IO_OP_FSYNC)
		return res;
	ft->fsyncs++;
	if (ft->entered) {
		sem_post(ft->entered);
		sem_wait(ft->go);
	}
	return ft->fail_res ? ft->fail_res : res;
}

/* fsyncgate: once a real fdatasync failed, no later flush may succeed (and
 * none asks the kernel again); writes and reads go on. */
static void raw_flush_failed_sticky(void **state)
{
	struct fixture *f = *state;
	struct fault ft = { .fail_res = -EIO };
	f->e.fault = fault_hook;
	f->e.fault_opaque = &ft;
	assert_int_equal(do_req(block_flush, f->b, &f->e, 0, NULL, 0, 0, false), -EIO);
	assert_int_equal(ft.fsyncs, 1);
	assert_true(block_flush_failed(f->b));
	f->e.fault = NULL;     /* the disk "recovers": it must not matter */
	assert_int_equal(do_req(block_flush, f->b, &f->e, 0, NULL, 0, 0, false), -EIO);
	uint8_t buf[512] = { 1, 2, 3 };
	assert_int_equal(rw(block_write, f->b, &f->e, 512, buf, 512), 512);
	assert_int_equal(rw(block_read, f->b, &f->e, 512, buf, 512), 512);
	assert_int_equal(buf[2], 3);
	f->e.fault = fault_hook;
	ft.fail_res = 0;
	assert_int_equal(do_req(block_flush, f->b, &f->e, 0, NULL, 0, 0, false), -EIO);
	assert_int_equal(ft.fsyncs, 1);   /* answered without a new fdatasync */
	assert_true(block_flush_failed(f->b));
}

/* ---- one image, several I/O threads ------------------------------------- */

/* Another thread's posts run on the owner's thread, in order, and wake a
 * run that waits for them (held). */
struct poster {
	struct io_engine *e;
	struct io_post posts[300];
	pthread_t owner_seen[300];
	int order[300];
	int ran;
};

static void on_posted(void *opaque, int res)
{
	struct poster *p = opaque;
	p->owner_seen[p->ran] = pthread_self();
	p->order[p->ran++] = res;
	io_engine_release(p->e);
}

static void *post_thread(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < 300; i++)
		io_engine_post(p->e, &p->posts[i], i, on_posted, p);
	return NULL;
}

static void engine_post_cross_thread(void **state)
{
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 16), 0);
	static struct poster p;
	memset(&p, 0, sizeof(p));
	p.e = &e;
	for (int i = 0; i < 300; i++)
		io_engine_hold(&e);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, post_thread, &p), 0);
	for (int k = 0; k < 100000 && p.ran < 300; k++)
		assert_true(io_engine_run(&e, true) >= 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(p.ran, 300);
	assert_int_equal(e.holds, 0);
	for (int i = 0; i < 300; i++) {
		assert_int_equal(p.order[i], i);
		assert_true(pthread_equal(p.owner_seen[i], pthread_self()));
	}
	/* Nothing held or in flight but the post read: run(wait) returns. */
	assert_int_equal(io_engine_run(&e, true), 0);
	io_engine_close(&e);
}

/* One thread's share of a two-thread run: its own engine, writes to its
 * own half of the image with a flush after every 16, all in flight. */
struct worker_run {
	struct block *b;
	struct io_engine e;
	struct fault ft;
	int half;
	enum { W_N = 96, W_BS = 4096 } n;
	uint8_t buf[W_N][W_BS];
	struct iovec iov[W_N];
	struct block_req r[W_N + W_N / 16];
	struct done d[W_N + W_N / 16];
	int flush_ok, flush_err, write_ok, engine_err;
	sem_t *ready, *start;
};

static void *worker_main(void *arg)
{
	struct worker_run *w = arg;
	if (w->ready)
		sem_post(w->ready);
	if (w->start)
		sem_wait(w->start);
	unsigned nr = 0;
	for (int i = 0; i < W_N; i++) {
		memset(w->buf[i], 0x10 * w->half + (i & 15) + 1, W_BS);
		w->iov[i] = (struct iovec){ w->buf[i], W_BS };
		w->r[nr] = (struct block_req){ .offset = ((uint64_t)w->half * W_N + i) * W_BS,
					       .iov = &w->iov[i], .iovcnt = 1, .done = on_done,
					       .opaque = &w->d[nr], .drv = malloc(8192) };
		block_write(w->b, &w->e, &w->r[nr]);
		nr++;
		if (i % 16 == 15) {
			w->r[nr] = (struct block_req){ .done = on_done, .opaque = &w->d[nr],
						       .drv = malloc(8192) };
			block_flush(w->b, &w->e, &w->r[nr]);
			nr++;
		}
		if (i % 8 == 7 && io_engine_run(&w->e, false) < 0)
			w->engine_err++;
	}
	if (block_drain(w->b, &w->e) < 0)
		w->engine_err++;
	for (unsigned i = 0; i < nr; i++) {
		bool flush = w->r[i].iov == NULL;
		if (w->d[i].calls != 1)
			w->engine_err++;
		else if (flush)
			w->d[i].res == 0 ? w->flush_ok++ : w->flush_err++;
		else if (w->d[i].res == W_BS)
			w->write_ok++;
		free(w->r[i].drv);
	}
	return NULL;
}

static void raw_two_threads(void **state)
{
	char *p = make_file(2 * W_N * W_BS, 2);
	struct block *b = open_ok(p, BLOCK_FMT_AUTO, BLOCK_CACHE_WRITEBACK, false);
	assert_true(block_req_priv_size(b) <= 8192);
	static struct worker_run w[2];
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].b = b;
		w[i].half = i;
		assert_int_equal(io_engine_init(&w[i].e, 64), 0);
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].engine_err, 0);
		assert_int_equal(w[i].write_ok, W_N);
		assert_int_equal(w[i].flush_ok, W_N / 16);
		assert_int_equal(w[i].e.block_reqs, 0);
		assert_int_equal(w[i].e.holds, 0);
		io_engine_close(&w[i].e);
	}
	uint8_t chk[W_BS];
	for (int half = 0; half < 2; half++)
		for (int i = 0; i < W_N; i += 7) {
			read_file_at(p, chk, W_BS, ((uint64_t)half * W_N + i) * W_BS);
			assert_int_equal(chk[0], 0x10 * half + (i & 15) + 1);
			assert_int_equal(chk[W_BS - 1], 0x10 * half + (i & 15) + 1);
		}
	assert_false(block_flush_failed(b));
	block_close(b);
	drop_file(p);
}

/* The fsyncgate rule across threads: thread A's fdatasync fails while it
 * is in flight; a flush submitted meanwhile on thread B must wait for it
 * and fail too (a second fdatasync of its own would "succeed" after the
 * kernel dropped the dirty pages), and so must every later flush. */
struct flush_thread {
	struct block *b;
	struct io_engine e;
	struct fault ft;
	struct done d;
	struct block_req r;
};

static void *flush_main(void *arg)
{
	struct flush_thread *a = arg;
	a->r = (struct block_req){ .done = on_done, .opaque = &a->d, .drv = malloc(8192) };
	block_flush(a->b, &a->e, &a->r);
	while (a->d.calls == 0 && io_engine_run(&a->e, true) >= 0)
		;
	free(a->r.drv);
	return NULL;
}

static void raw_flush_failure_shared(void **state)
{
	struct fixture *f = *state;
	sem_t entered, go;
	sem_init(&entered, 0, 0);
	sem_init(&go, 0, 0);
	static struct flush_thread a;
	memset(&a, 0, sizeof(a));
	a.b = f->b;
	assert_int_equal(io_engine_init(&a.e, 16), 0);
	a.ft = (struct fault){ .fail_res = -EIO, .entered = &entered, .go = &go };
	a.e.fault = fault_hook;
	a.e.fault_opaque = &a.ft;
	struct fault bft = { 0 };
	f->e.fault = fault_hook;      /* B: counts fdatasyncs, fails none */
	f->e.fault_opaque = &bft;

	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, flush_main, &a), 0);
	sem_wait(&entered);           /* A's fdatasync is done in the kernel, not yet seen */
	struct done d = { 0, 12345 };
	struct block_req r = { .done = on_done, .opaque = &d, .drv = drv_area(f->b) };
	block_flush(f->b, &f->e, &r);
	assert_true(io_engine_run(&f->e, false) >= 0);
	assert_int_equal(d.calls, 0);
	assert_int_equal(f->e.holds, 1);   /* B waits for A's outcome */
	sem_post(&go);
	run_until(&f->e, &d.calls, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(a.d.res, -EIO);
	assert_int_equal(d.res, -EIO);
	assert_int_equal(bft.fsyncs, 0);   /* B never asked the kernel */
	assert_int_equal(f->e.holds, 0);
	assert_int_equal(do_req(block_flush, f->b, &f->e, 0, NULL, 0, 0, false), -EIO);
	assert_int_equal(bft.fsyncs, 0);
	free(r.drv);
	f->e.fault = NULL;
	io_engine_close(&a.e);
	sem_destroy(&entered);
	sem_destroy(&go);
}

/* Flushes from two threads while neither fails: a flush that arrives
 * during another's fdatasync waits and then gets one of its own (shared
 * with every other waiter), and all succeed. */
static void raw_flush_serialised(void **state)
{
	struct fixture *f = *state;
	sem_t entered, go;
	sem_init(&entered, 0, 0);
	sem_init(&go, 0, 0);
	static struct flush_thread a;
	memset(&a, 0, sizeof(a));
	a.b = f->b;
	assert_int_equal(io_engine_init(&a.e, 16), 0);
	a.ft = (struct fault){ .entered = &entered, .go = &go };
	a.e.fault = fault_hook;
	a.e.fault_opaque = &a.ft;
	struct fault bft = { 0 };
	f->e.fault = fault_hook;
	f->e.fault_opaque = &bft;
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, flush_main, &a), 0);
	sem_wait(&entered);
	enum { K = 3 };
	struct done d[K];
	struct block_req r[K];
	for (int i = 0; i < K; i++) {
		d[i] = (struct done){ 0, 12345 };
		r[i] = (struct block_req){ .done = on_done, .opaque = &d[i], .drv = drv_area(f->b) };
		block_flush(f->b, &f->e, &r[i]);
	}
	assert_true(io_engine_run(&f->e, false) >= 0);
	assert_int_equal(f->e.holds, K);
	a.ft.entered = NULL;
	sem_post(&go);
	int all = 0;
	for (int k = 0; k < 100000 && all < K; k++) {
		assert_true(io_engine_run(&f->e, true) >= 0);
		all = 0;
		for (int i = 0; i < K; i++)
			all += d[i].calls;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	for (int i = 0; i < K; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].res, 0);
		free(r[i].drv);
	}
	assert_int_equal(a.d.res, 0);
	/* One fdatasync for A; the three waiters share one, run on their own
	 * thread (A's may be gone by then). */
	assert_int_equal(a.ft.fsyncs, 1);
	assert_int_equal(bft.fsyncs, 1);
	assert_false(block_flush_failed(f->b));
	f->e.fault = NULL;
	io_engine_close(&a.e);
	sem_destroy(&entered);
	sem_destroy(&go);
}

/* The image shrank under us: a read crossing the new end is short, the
 * retry reads 0 bytes, and the request fails with -EIO. */
static void raw_truncated_image(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(truncate(f->path, 4096 + 1000), 0);
	uint8_t buf[8192];
	assert_int_equal(rw(block_read, f->b, &f->e, 0, buf, 8192), -EIO);
	assert_int_equal(rw(block_read, f->b, &f->e, 0, buf, 4096), 4096);
	assert_int_equal(buf[4095], pattern(4095, 9));
	assert_int_equal(rw(block_read, f->b, &f->e, 65536, buf, 512), -EIO);
}

/* The resubmission after a short transfer continues exactly where the
 * kernel stopped: at a segment boundary, inside a segment, over empty ones. */
static void iov_advance_cases(void **state)
{
	char buf[64];
	struct iovec orig[4] = { { buf, 10 }, { buf + 10, 0 }, { buf + 20, 5 }, { buf + 30, 20 } };
	struct iovec work[4], *iov;
	unsigned cnt;
#define RESET() (memcpy(work, orig, sizeof(work)), iov = work, cnt = 4)
	RESET();
	iov_advance(&iov, &cnt, 0);
	assert_ptr_equal(iov, work);
	assert_int_equal(cnt, 4);
	iov_advance(&iov, &cnt, 3);
	assert_int_equal(cnt, 4);
	assert_ptr_equal(iov[0].iov_base, buf + 3);
	assert_int_equal(iov[0].iov_len, 7);
	iov_advance(&iov, &cnt, 7);       /* the empty segment goes too */
	assert_int_equal(cnt, 2);
	assert_ptr_equal(iov[0].iov_base, buf + 20);
	iov_advance(&iov, &cnt, 9);       /* across a boundary */
	assert_int_equal(cnt, 1);
	assert_ptr_equal(iov[0].iov_base, buf + 34);
	assert_int_equal(iov[0].iov_len, 16);
	iov_advance(&iov, &cnt, 16);
	assert_int_equal(cnt, 0);
	RESET();
	iov_advance(&iov, &cnt, 35);      /* all: 10 + 0 + 5 + 20 */
	assert_int_equal(cnt, 0);
	RESET();
	iov_advance(&iov, &cnt, 1000);    /* more than there is: stops */
	assert_int_equal(cnt, 0);
	/* The caller's array is not touched. */
	assert_int_equal(orig[0].iov_len, 10);
#undef RESET
}

/* ---- cache=none ----------------------------------------------------------- */

/* A directory whose file system takes O_DIRECT, or NULL. */
static const char *direct_dir(void)
{
	const char *cands[] = { getenv("TMPDIR"), "/var/tmp", "/tmp" };
	for (size_t i = 0; i < 3; i++) {
		if (!cands[i] || !*cands[i])
			continue;
		char *p = make_file_in(cands[i], 4096, 0);
		if (!p)
			continue;
		int fd = open(p, O_RDWR | O_DIRECT);
		drop_file(p);
		if (fd >= 0) {
			close(fd);
			return cands[i];
		}
	}
	return NULL;
}

static void raw_cache_none(void **state)
{
	const char *dir = direct_dir();
	if (!dir) {
		printf("# skip: none of $TMPDIR, /var/tmp, /tmp supports O_DIRECT\n");
		skip();
	}
	enum { SIZE = 1 << 20 };
	char *p = make_file_in(dir, SIZE + 100, 6);
	assert_non_null(p);
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 32), 0);
	struct block *b = open_ok(p, BLOCK_FMT_AUTO, BLOCK_CACHE_NONE, false);
	assert_true(b->direct);
	uint32_t lbs = b->logical_block_size, al = b->buf_align;
	printf("# cache=none in %s: logical block %u, buffer alignment %u\n", dir, lbs, al);
	assert_true(lbs >= 512 && (lbs & (lbs - 1)) == 0);
	assert_true(al >= 1 && (al & (al - 1)) == 0);
	assert_int_equal(b->size % lbs, 0);
	assert_true(b->size <= SIZE && b->size > SIZE - lbs - 100);

	size_t len = 4 * (size_t)lbs;
	uint8_t *mem = NULL, *chk = malloc(len);
	assert_int_equal(posix_memalign((void **)&mem, 4096, 2 * len + 4096), 0);
	/* Aligned buffer. */
	for (size_t i = 0; i < len; i++)
		mem[i] = (uint8_t)(i * 3 + 1);
	assert_int_equal(rw(block_write, b, &e, lbs, mem, len), len);
	read_file_at(p, chk, len, lbs);
	assert_memory_equal(chk, mem, len);
	memset(mem, 0, len);
	assert_int_equal(rw(block_read, b, &e, lbs, mem, len), len);
	assert_memory_equal(mem, chk, len);

	/* Misaligned buffer addresses: bounced. */
	uint8_t *odd = mem + 1;
	for (size_t i = 0; i < len; i++)
		odd[i] = (uint8_t)(i * 5 + 2);
	assert_int_equal(rw(block_write, b, &e, 8 * (uint64_t)lbs, odd, len), len);
	read_file_at(p, chk, len, 8 * (uint64_t)lbs);
	assert_memory_equal(chk, odd, len);
	memset(mem, 0xFF, 2 * len);
	odd = mem + 3;
	assert_int_equal(rw(block_read, b, &e, 8 * (uint64_t)lbs, odd, len), len);
	assert_memory_equal(odd, chk, len);
	assert_int_equal(mem[2], 0xFF);             /* no byte before... */
	assert_int_equal(odd[len], 0xFF);           /* ...or after is touched */

	/* Multi-segment, segment lengths not multiples of the block size. */
	struct iovec iov[3] = { { mem + 7, 100 }, { mem + 2000, len - 300 }, { mem + len + 900, 200 } };
	for (int s = 0; s < 3; s++)
		memset(iov[s].iov_base, 0x30 + s, iov[s].iov_len);
	assert_int_equal(do_req(block_write, b, &e, 0, iov, 3, len, false), len);
	read_file_at(p, chk, len, 0);
	assert_int_equal(chk[99], 0x30);
	assert_int_equal(chk[100], 0x31);
	assert_int_equal(chk[len - 201], 0x31);
	assert_int_equal(chk[len - 200], 0x32);
	for (int s = 0; s < 3; s++)
		memset(iov[s].iov_base, 0, iov[s].iov_len);
	assert_int_equal(do_req(block_read, b, &e, 0, iov, 3, len, false), len);
	assert_int_equal(((uint8_t *)iov[0].iov_base)[0], 0x30);
	assert_int_equal(((uint8_t *)iov[1].iov_base)[len - 301], 0x31);
	assert_int_equal(((uint8_t *)iov[2].iov_base)[199], 0x32);

	/* Offsets and lengths must be whole logical blocks. */
	assert_int_equal(rw(block_read, b, &e, 1, mem, lbs), -EINVAL);
	assert_int_equal(rw(block_write, b, &e, 0, mem, lbs + 1), -EINVAL);
	assert_int_equal(do_req(block_write_zeroes, b, &e, 0, NULL, 0, 100, false), -EINVAL);
	/* write_zeroes and flush work. */
	assert_int_equal(do_req(block_write_zeroes, b, &e, lbs, NULL, 0, lbs, false), 0);
	read_file_at(p, chk, lbs, lbs);
	assert_true(all_zero(chk, lbs));
	assert_int_equal(do_req(block_flush, b, &e, 0, NULL, 0, 0, false), 0);

	free(mem);
	free(chk);
	block_close(b);
	io_engine_close(&e);
	drop_file(p);
}

/* cache=none with misaligned buffers on many requests at once: they bounce
 * through the per-file pool of BOUNCE_CHUNKS chunks (256 KiB each), so 40
 * requests of 1 MiB wait their turn for a chunk instead of each bouncing
 * its whole length, and every byte still lands where it belongs. */
static void raw_cache_none_bounce_pool(void **state)
{
	const char *dir = direct_dir();
	enum { N = 40, LEN = 1 << 20 };
	char *p = make_file_in(dir, (uint64_t)N * LEN, 8);
	assert_non_null(p);
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 128), 0);
	struct block *b = open_ok(p, BLOCK_FMT_AUTO, BLOCK_CACHE_NONE, false);
	uint8_t *mem = malloc((size_t)N * LEN + 64);
	assert_non_null(mem);
	struct iovec iov[N];
	struct block_req r[N];
	struct done d[N];
	for (int i = 0; i < N; i++) {
		uint8_t *buf = mem + (size_t)i * LEN + 1;   /* never aligned */
		memset(buf, 0x40 + i, LEN);
		iov[i] = (struct iovec){ buf, LEN };
		d[i] = (struct done){ 0, -1 };
		r[i] = (struct block_req){ .offset = (uint64_t)i * LEN, .iov = &iov[i], .iovcnt = 1,
					   .done = on_done, .opaque = &d[i], .drv = drv_area(b) };
		block_write(b, &e, &r[i]);
	}
	assert_int_equal(io_engine_run(&e, false) >= 0, 1);
	/* The pool is the bound: 16 chunks busy, the rest parked. */
	assert_int_equal(b->file.bounce_free_mask, 0);
	assert_true(e.holds > 0 && e.holds <= N - 16);
	assert_int_equal(block_drain(b, &e), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_int_equal(d[i].res, LEN);
	}
	assert_int_equal(b->file.bounce_free_mask, 0xffff);
	uint8_t chk[512];
	for (int i = 0; i < N; i += 3) {
		read_file_at(p, chk, sizeof(chk), (uint64_t)i * LEN + LEN - 512);
		assert_int_equal(chk[0], 0x40 + i);
		assert_int_equal(chk[511], 0x40 + i);
	}
	/* Read back through misaligned buffers too. */
	memset(mem, 0, (size_t)N * LEN + 64);
	for (int i = 0; i < N; i++) {
		d[i] = (struct done){ 0, -1 };
		block_read(b, &e, &r[i]);
	}
	assert_int_equal(block_drain(b, &e), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(d[i].res, LEN);
		assert_int_equal(mem[(size_t)i * LEN + 1], 0x40 + i);
		assert_int_equal(mem[(size_t)i * LEN + LEN], 0x40 + i);
		free(r[i].drv);
	}
	free(mem);
	block_close(b);
	io_engine_close(&e);
	drop_file(p);
}

/* cache=none where O_DIRECT is refused: one clear error, -EINVAL. */
static void raw_cache_none_unsupported(void **state)
{
	char *p = make_file_in("/dev/shm", 4096, 0);
	if (!p) {
		printf("# skip: cannot create a file in /dev/shm\n");
		skip();
	}
	int fd = open(p, O_RDWR | O_DIRECT);
	if (fd >= 0) {
		close(fd);
		drop_file(p);
		printf("# skip: /dev/shm supports O_DIRECT on this kernel (tmpfs does since 6.6)\n");
		skip();
	}
	assert_int_equal(open_err(p, BLOCK_FMT_AUTO, BLOCK_CACHE_NONE, false), -EINVAL);
	drop_file(p);
}

/* Preconditions some cases need from the host. A case whose precondition
 * is missing is left out of the run with a "# skip:" line giving the
 * reason (cmocka's skip() prints "not ok # SKIP", which meson's TAP parser
 * counts as a failure). */
static bool shm_is_tmpfs(void)
{
	struct statfs sfs;
	return statfs("/dev/shm", &sfs) == 0 && sfs.f_type == TMPFS_MAGIC_NUM;
}

static int shm_probe(bool *zero_range, bool *direct)
{
	char *p = make_file_in("/dev/shm", 4096, 0);
	if (!p)
		return -1;
	int fd = open(p, O_RDWR);
	*zero_range = fd >= 0 &&
		      fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 512) == 0;
	if (fd >= 0)
		close(fd);
	fd = open(p, O_RDWR | O_DIRECT);
	*direct = fd >= 0;
	if (fd >= 0)
		close(fd);
	drop_file(p);
	return 0;
}

#define MAX_TESTS 32

int main(void)
{
	static const struct CMUnitTest always[] = {
		cmocka_unit_test(engine_many_in_flight),
		cmocka_unit_test(engine_sq_full),
		cmocka_unit_test(engine_eventfd),
		cmocka_unit_test(engine_defer_and_idle),
		cmocka_unit_test(raw_open_errors),
		cmocka_unit_test(raw_qcow2_magic),
		cmocka_unit_test(raw_size_rounding),
		cmocka_unit_test_setup_teardown(raw_write_read_patterns, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_multi_iovec, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_many_requests, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_out_of_range, fx_setup, fx_teardown),
		cmocka_unit_test(raw_readonly),
		cmocka_unit_test_setup_teardown(raw_discard, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_write_zeroes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_flush, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_flush_failed_sticky, fx_setup, fx_teardown),
		cmocka_unit_test(engine_post_cross_thread),
		cmocka_unit_test(raw_two_threads),
		cmocka_unit_test_setup_teardown(raw_flush_failure_shared, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_flush_serialised, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(raw_truncated_image, fx_setup, fx_teardown),
		cmocka_unit_test(iov_advance_cases),
	};
	struct CMUnitTest tests[MAX_TESTS];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++)
		tests[n++] = always[i];

	bool shm_zero_range = true, shm_direct = true;
	bool shm = shm_is_tmpfs() && shm_probe(&shm_zero_range, &shm_direct) == 0;
	if (shm && !shm_zero_range)
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(raw_write_zeroes_fallback);
	else
		printf("# skip: raw_write_zeroes_fallback: needs a tmpfs at /dev/shm without "
		       "FALLOC_FL_ZERO_RANGE\n");
	if (direct_dir())
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(raw_cache_none);
	if (direct_dir())
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(raw_cache_none_bounce_pool);
	else
		printf("# skip: raw_cache_none, raw_cache_none_bounce_pool: none of $TMPDIR, "
		       "/var/tmp, /tmp supports O_DIRECT\n");
	if (shm && !shm_direct)
		tests[n++] = (struct CMUnitTest)cmocka_unit_test(raw_cache_none_unsupported);
	else
		printf("# skip: raw_cache_none_unsupported: needs a file system refusing O_DIRECT "
		       "(tmpfs at /dev/shm before Linux 6.6)\n");
	fflush(stdout);
	return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}
