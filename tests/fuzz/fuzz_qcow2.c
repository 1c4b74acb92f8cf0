/* The qcow2 driver (block/qcow2*.c through block/block.c) and the checker
 * (block/qcow2_check.c) on any image.
 *
 * A qcow2 image is user input like a kernel, but it is also what the guest
 * writes into: the metadata a driver reads back was shaped by the guest's
 * earlier requests, so a hostile image must not be able to make the VMM
 * read or write outside its buffers, crash, hang or corrupt the image.
 *
 * Input: a 128-byte script, then the image file (layout below). Per input,
 * in a private temporary directory (under /dev/shm, else $TMPDIR or /tmp,
 * removed at the end) that holds the image as disk.qcow2 and a 128 KiB raw
 * file backing.raw (bytes backing_byte(i)): a backing file name in the
 * image has each '/' replaced by '_' before it is written out, so it always
 * names a file inside that directory (backing.raw for the seeds that have
 * one; the image itself, a loop; or nothing) and no input reaches outside.
 *  1. qcow2_check(QCOW2_REPAIR_NONE) on the pristine image: "clean" means it
 *     returned 0 with no corruption and no check error (leaks are harmless).
 *  2. block_open readonly (format auto, cache=writeback, lock off) and the
 *     script: reads complete with their length or an -errno, every write,
 *     write_zeroes and discard with -EROFS.
 *  3. block_open read-write, the same script on one io_engine (requests in
 *     flight together unless a barrier separates them), a final flush,
 *     block_drain, block_close.
 *  4. If the image was clean, every write-type request and the final flush
 *     succeeded: reopen (readonly) and read back. Where the last request
 *     touching a byte is ordered after every other one touching it (it was
 *     submitted after they had completed) and was a write, the byte is what
 *     it wrote; a write_zeroes, zero. Bytes within 64 KiB of each changed
 *     range that no request touched read as they did before the requests
 *     (copy-on-write keeps the rest of a cluster). Discards and concurrent
 *     overlaps leave bytes unspecified. Then qcow2_check(NONE) on the
 *     written image finds no corruption and no check error.
 *  5. qcow2_check(NONE) on the image as it is now and qcow2_check(
 *     QCOW2_REPAIR_ALL) on a copy; when the repair says it fixed all it
 *     found, a second check of the copy finds nothing.
 * Always: results are the request's length (read/write) or 0, or -errno;
 * out-of-range requests get -EINVAL; every request completes exactly once,
 * never inside its submission call; nothing is left on the engine.
 *
 * Script (little-endian): byte 0 flags (bit 0: skip step 2; bit 1: a
 * 16-slice L2 cache, so metadata is evicted and written back mid-run),
 * byte 1 the number of requests (at most 15), bytes 2..7 unused, then 15
 * requests of 8 bytes: kind (mod 8: 0-1 read, 2-3 write, 4 write_zeroes,
 * 5 discard, 6 flush, 7 write_zeroes may_unmap), flags (bit 0: offset
 * counted from the end; bits 1-2: iovec pieces - 1; bit 4: barrier, wait
 * for everything before; bit 5: offset and length as given, unclamped;
 * bits 6-7: length shift 0/3/6/9 bits), offset u32 (mod the disk size),
 * length u16 (at most 256 KiB after the shift, clamped to the disk). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/block.h"
#include "block/io_engine.h"
#include "block/qcow2_check.h"
#include "fuzz.h"

#define PREFIX 128
#define MAX_OPS 15
#define MAX_LEN (256u << 10)
#define EDGE (64u << 10)
#define BACKING_SIZE (128u << 10)
#define MAX_PIECES 4

enum { K_READ, K_WRITE, K_WZ, K_DISCARD, K_FLUSH, K_WZ_UNMAP };

struct op {
	int kind;
	unsigned idx;      /* bit in done_mask (31: not a script request) */
	bool raw, barrier;
	unsigned pieces;
	uint64_t off, len;
	bool submitted, expect_einval;
	uint8_t *buf;
	void *drv;
	struct iovec iov[MAX_PIECES];
	struct block_req r;
	int calls;
	int64_t res;
	uint32_t before;   /* ops complete when this one was submitted */
};

struct edge {
	uint64_t off, len;
	uint8_t *data;     /* NULL: the read failed */
};

static struct io_engine engine;
static int verbose = -1;       /* KVMINI_FUZZ_VERBOSE set: one line per input */
static unsigned verified;      /* bytes compared by verify() */
static bool engine_ready;
static bool in_submit;
static unsigned outstanding;
static uint32_t done_mask;

/* The harness's own byte loops need no coverage feedback (they would cost
 * most of the run time). */
#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(no_sanitize_coverage)
#define NO_COVERAGE __attribute__((no_sanitize_coverage))
#endif
#endif
#ifndef NO_COVERAGE
#define NO_COVERAGE
#endif

static uint8_t backing_byte(uint64_t i) { return (uint8_t)(i * 7 + (i >> 9) + 1); }

/* What request op writes at disk offsets [pos, pos + len). */
NO_COVERAGE static void fill_pattern(uint8_t *buf, unsigned op, uint64_t pos, uint64_t len)
{
	for (uint64_t j = 0; j < len; j++, pos++)
		buf[j] = (uint8_t)((pos ^ (pos >> 8) ^ (pos >> 16)) * 0x3b + op * 0x51 + 1);
}

NO_COVERAGE static void fill_backing(uint8_t *buf, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		buf[i] = backing_byte(i);
}

NO_COVERAGE static uint64_t first_diff(const uint8_t *a, const uint8_t *b, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return i;
	return len;
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void on_done(void *opaque, int64_t res)
{
	struct op *o = opaque;
	FUZZ_CHECK(!in_submit);       /* never inside the submission call */
	FUZZ_CHECK(o->submitted);
	FUZZ_CHECK(o->calls == 0);    /* exactly once */
	o->calls++;
	o->res = res;
	FUZZ_CHECK(outstanding > 0);
	outstanding--;
	done_mask |= 1u << o->idx;
}

/* ---- files ------------------------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0);
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		FUZZ_CHECK(n > 0);
		p += n;
		len -= (size_t)n;
	}
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	int fd = open(from, O_RDONLY | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	struct stat st;
	FUZZ_CHECK(fstat(fd, &st) == 0);
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len ? len : 1);
	FUZZ_CHECK(buf);
	FUZZ_CHECK(pread(fd, buf, len, 0) == (ssize_t)len);
	close(fd);
	write_file(to, buf, len);
	free(buf);
}

static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	FUZZ_CHECK(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *p;
		FUZZ_CHECK(asprintf(&p, "%s/%s", dir, de->d_name) > 0);
		FUZZ_CHECK(unlink(p) == 0);
		free(p);
	}
	closedir(d);
	FUZZ_CHECK(rmdir(dir) == 0);
}

static int check_file(const char *path, enum qcow2_repair fix, struct qcow2_check_result *res)
{
	int fd = open(path, (fix ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	FUZZ_CHECK(fd >= 0);
	res->filename = path;
	int r = qcow2_check(fd, fix, res);
	close(fd);
	FUZZ_CHECK(r <= 0);
	FUZZ_CHECK(res->corruptions_fixed <= res->corruptions);
	FUZZ_CHECK(res->leaks_fixed <= res->leaks);
	FUZZ_CHECK(memchr(res->message, 0, sizeof(res->message)));
	return r;
}

/* ---- requests ---------------------------------------------------------- */

/* Runs the engine until no request is outstanding. */
static void wait_all(void)
{
	while (outstanding) {
		int n = io_engine_run(&engine, true);
		FUZZ_CHECK(n >= 0);
		/* Nothing left that could complete the rest: a lost request. */
		FUZZ_CHECK(!(n == 0 && outstanding && !engine.inflight && !engine.queued &&
			     !engine.deferred && !engine.holds));
	}
}

static void decode_ops(const uint8_t *script, struct op *ops, unsigned *nops, uint64_t size)
{
	unsigned n = script[1] < MAX_OPS ? script[1] : MAX_OPS;
	static const int kinds[8] = { K_READ, K_READ, K_WRITE, K_WRITE, K_WZ, K_DISCARD,
				      K_FLUSH, K_WZ_UNMAP };
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = script + 8 + 8 * i;
		struct op *o = &ops[i];
		memset(o, 0, sizeof(*o));
		o->kind = kinds[p[0] & 7];
		uint8_t fl = p[1];
		o->pieces = 1 + ((fl >> 1) & 3);
		o->barrier = fl & 0x10;
		o->raw = fl & 0x20;
		uint64_t off = le(p + 2, 4), len = le(p + 6, 2) << (3 * (fl >> 6));
		if (len > MAX_LEN)
			len = MAX_LEN;
		if (!o->raw) {
			off = size ? off % size : 0;
			if (fl & 1)
				off = size - 1 - off;
			if (!size)
				off = 0;
			if (len > size - off)
				len = size - off;
		}
		o->off = off;
		o->len = len;
		o->expect_einval = o->kind != K_FLUSH && (off > size || len > size - off);
	}
	*nops = n;
}

static void submit(struct block *b, struct op *o, unsigned i)
{
	size_t priv = block_req_priv_size(b);
	if (o->barrier)
		wait_all();
	o->idx = i;
	o->calls = 0;
	o->res = 0;
	o->before = done_mask;
	o->drv = NULL;
	if (priv)
		FUZZ_CHECK(posix_memalign(&o->drv, 16, priv) == 0);
	o->buf = NULL;
	memset(&o->r, 0, sizeof(o->r));
	o->r.offset = o->off;
	o->r.done = on_done;
	o->r.opaque = o;
	o->r.drv = o->drv;
	if (o->kind == K_READ || o->kind == K_WRITE) {
		/* An exact-size buffer, cut into pieces, so ASan sees any byte
		 * the driver touches outside it. */
		o->buf = malloc(o->len ? o->len : 1);
		FUZZ_CHECK(o->buf);
		if (o->kind == K_WRITE)
			fill_pattern(o->buf, i, o->off, o->len);
		else
			memset(o->buf, 0xa5, o->len);
		uint64_t pos = 0;
		for (unsigned k = 0; k < o->pieces; k++) {
			uint64_t l = k + 1 == o->pieces ? o->len - pos : o->len / o->pieces;
			o->iov[k] = (struct iovec){ o->buf + pos, l };
			pos += l;
		}
		o->r.iov = o->iov;
		o->r.iovcnt = o->pieces;
	} else {
		o->r.len = o->len;
		o->r.may_unmap = o->kind == K_WZ_UNMAP;
	}
	o->submitted = true;
	outstanding++;
	in_submit = true;
	switch (o->kind) {
	case K_READ:
		block_read(b, &engine, &o->r);
		break;
	case K_WRITE:
		block_write(b, &engine, &o->r);
		break;
	case K_WZ:
	case K_WZ_UNMAP:
		block_write_zeroes(b, &engine, &o->r);
		break;
	case K_DISCARD:
		block_discard(b, &engine, &o->r);
		break;
	default:
		block_flush(b, &engine, &o->r);
		break;
	}
	in_submit = false;
}

static void check_result(const struct block *b, const struct op *o)
{
	FUZZ_CHECK(o->calls == 1);
	bool rw = o->kind == K_READ || o->kind == K_WRITE;
	if (o->res >= 0)
		FUZZ_CHECK(o->res == (rw ? (int64_t)o->len : 0));
	else
		FUZZ_CHECK(o->res >= -4095);
	if (o->expect_einval)
		FUZZ_CHECK(o->res == -EINVAL || (b->readonly && o->kind != K_READ &&
						  o->res == -EROFS));
	else if (b->readonly && o->kind != K_READ && o->kind != K_FLUSH)
		FUZZ_CHECK(o->res == -EROFS);
}

/* Runs the script on b; returns true when every write-type request and
 * the final flush succeeded. */
static bool run_ops(struct block *b, struct op *ops, unsigned nops)
{
	struct op fin;
	done_mask = 0;
	for (unsigned i = 0; i < nops; i++) {
		ops[i].submitted = false;
		submit(b, &ops[i], i);
	}
	wait_all();
	fin = (struct op){ .kind = K_FLUSH, .barrier = true };
	submit(b, &fin, 31);
	wait_all();
	FUZZ_CHECK(block_drain(b, &engine) == 0);
	FUZZ_CHECK(engine.block_reqs == 0 && !engine.holds);
	bool ok = true;
	for (unsigned i = 0; i < nops; i++) {
		check_result(b, &ops[i]);
		if (ops[i].kind != K_READ && !ops[i].expect_einval && ops[i].res < 0)
			ok = false;
		free(ops[i].buf);
		free(ops[i].drv);
		ops[i].buf = NULL;
		ops[i].drv = NULL;
	}
	check_result(b, &fin);
	free(fin.drv);
	return ok && fin.res == 0 && !block_flush_failed(b);
}

static int open_image(struct block **b, const char *path, bool ro, bool small_cache)
{
	struct block_config cfg = { .path = path, .format = BLOCK_FMT_AUTO,
				    .cache = BLOCK_CACHE_WRITEBACK, .readonly = ro, .lock = false,
				    .l2_cache = small_cache ? 16 * 512 : 0 };
	int r = block_open(b, &cfg);
	FUZZ_CHECK(r <= 0);
	FUZZ_CHECK((r == 0) == (*b != NULL));
	return r;
}

/* One synchronous read for the checks; 0 or -errno. */
static int64_t read_sync(struct block *b, uint64_t off, uint8_t *buf, uint64_t len)
{
	struct op o = { .kind = K_READ, .idx = 31, .off = off, .len = len, .pieces = 1 };
	size_t priv = block_req_priv_size(b);
	if (priv)
		FUZZ_CHECK(posix_memalign(&o.drv, 16, priv) == 0);
	o.iov[0] = (struct iovec){ buf, len };
	o.r = (struct block_req){ .offset = off, .iov = o.iov, .iovcnt = 1, .done = on_done,
				  .opaque = &o, .drv = o.drv };
	o.submitted = true;
	outstanding++;
	in_submit = true;
	block_read(b, &engine, &o.r);
	in_submit = false;
	wait_all();
	FUZZ_CHECK(o.calls == 1);
	free(o.drv);
	FUZZ_CHECK(o.res < 0 || o.res == (int64_t)len);
	return o.res < 0 ? o.res : 0;
}

/* ---- the read-back model ------------------------------------------------ */

static bool changes(const struct op *o)
{
	return o->kind != K_READ && o->kind != K_FLUSH && !o->expect_einval && o->len;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void verify(struct block *b, const struct op *ops, unsigned nops, const struct edge *edges,
		   unsigned nedges)
{
	uint64_t pts[4 * MAX_OPS + 2];
	unsigned np = 0;
	for (unsigned i = 0; i < nops; i++)
		if (changes(&ops[i])) {
			pts[np++] = ops[i].off;
			pts[np++] = ops[i].off + ops[i].len;
		}
	for (unsigned i = 0; i < nedges; i++) {
		pts[np++] = edges[i].off;
		pts[np++] = edges[i].off + edges[i].len;
	}
	qsort(pts, np, sizeof(pts[0]), cmp_u64);
	for (unsigned k = 0; k + 1 < np; k++) {
		uint64_t a = pts[k], z = pts[k + 1];
		if (a == z)
			continue;
		/* The requests that changed [a, z), and the last of them. */
		uint32_t cover = 0;
		for (unsigned i = 0; i < nops; i++)
			if (changes(&ops[i]) && ops[i].off <= a && z <= ops[i].off + ops[i].len)
				cover |= 1u << i;
		const struct op *last = NULL;
		const struct edge *before = NULL;
		unsigned li = 0;
		if (cover) {
			for (unsigned i = 0; i < nops && !last; i++) {
				if (!(cover >> i & 1))
					continue;
				uint32_t others = cover & ~(1u << i);
				if ((ops[i].before & others) == others) {
					last = &ops[i];
					li = i;
				}
			}
			if (!last || last->kind == K_DISCARD)
				continue;   /* unordered overlap, or a discard: unspecified */
		} else {
			for (unsigned i = 0; i < nedges && !before; i++)
				if (edges[i].data && edges[i].off <= a && z <= edges[i].off + edges[i].len)
					before = &edges[i];
			if (!before)
				continue;
		}
		uint8_t *buf = malloc(z - a);
		FUZZ_CHECK(buf);
		FUZZ_CHECK(read_sync(b, a, buf, z - a) == 0);
		verified += (unsigned)(z - a);
		uint8_t *want = malloc(z - a);
		FUZZ_CHECK(want);
		if (before)
			memcpy(want, before->data + (a - before->off), z - a);
		else if (last->kind == K_WRITE)
			fill_pattern(want, li, a, z - a);
		else
			memset(want, 0, z - a);
		uint64_t d = first_diff(buf, want, z - a);
		if (d < z - a) {
			fprintf(stderr, "fuzz_qcow2: byte %llu reads %#x, want %#x (%s)\n",
				(unsigned long long)(a + d), buf[d], want[d],
				before ? "untouched" : last->kind == K_WRITE ? "written" : "zeroed");
			FUZZ_CHECK(!"written data reads back");
		}
		free(want);
		free(buf);
	}
}

/* ---- the entry point ---------------------------------------------------- */

static const char *tmp_base(void)
{
	if (access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t script[PREFIX] = { 0 };
	memcpy(script, data, size < PREFIX ? size : PREFIX);
	size_t ilen = size > PREFIX ? size - PREFIX : 0;
	uint8_t *img = malloc(ilen ? ilen : 1);
	FUZZ_CHECK(img);
	if (ilen)
		memcpy(img, data + PREFIX, ilen);
	/* Confine the backing file name to the directory (see the top). */
	if (ilen >= 20) {
		uint64_t bo = 0;
		for (int i = 0; i < 8; i++)
			bo = bo << 8 | img[8 + i];
		uint32_t bs = (uint32_t)img[16] << 24 | (uint32_t)img[17] << 16 |
			      (uint32_t)img[18] << 8 | img[19];
		for (uint64_t i = 0; i < bs && bo < ilen && i < ilen - bo; i++)
			if (img[bo + i] == '/')
				img[bo + i] = '_';
	}

	if (verbose < 0)
		verbose = getenv("KVMINI_FUZZ_VERBOSE") != NULL;
	int ro_open = -1, rw_open = -1;
	bool session_ok = false;
	verified = 0;
	if (!engine_ready) {
		FUZZ_CHECK(io_engine_init(&engine, 64) == 0);
		engine_ready = true;
	}
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/kvmini-fuzz-qcow2-XXXXXX", tmp_base());
	FUZZ_CHECK(mkdtemp(dir));
	char path[300], copy[300], bpath[300];
	snprintf(path, sizeof(path), "%s/disk.qcow2", dir);
	snprintf(copy, sizeof(copy), "%s/copy.qcow2", dir);
	snprintf(bpath, sizeof(bpath), "%s/backing.raw", dir);
	write_file(path, img, ilen);
	free(img);
	static uint8_t *bk;
	if (!bk) {
		bk = malloc(BACKING_SIZE);
		FUZZ_CHECK(bk);
		fill_backing(bk, BACKING_SIZE);
	}
	write_file(bpath, bk, BACKING_SIZE);

	/* 1. Is the image clean? */
	struct qcow2_check_result res;
	int cr = check_file(path, QCOW2_REPAIR_NONE, &res);
	bool clean = cr == 0 && res.corruptions == 0 && res.check_errors == 0;

	struct op ops[MAX_OPS];
	unsigned nops;
	struct block *b = NULL;

	/* 2. Read-only. */
	if (!(script[0] & 1) && (ro_open = open_image(&b, path, true, script[0] & 2)) == 0) {
		decode_ops(script, ops, &nops, b->size);
		run_ops(b, ops, nops);
		block_close(b);
	}

	/* 3. Read-write. */
	if ((rw_open = open_image(&b, path, false, script[0] & 2)) == 0) {
		uint64_t dsize = b->size;
		decode_ops(script, ops, &nops, dsize);
		/* What the neighbourhood of each change reads before it. */
		struct edge edges[2 * MAX_OPS];
		unsigned nedges = 0;
		for (unsigned i = 0; i < nops; i++) {
			if (!changes(&ops[i]))
				continue;
			uint64_t s = ops[i].off, e = ops[i].off + ops[i].len;
			struct edge lo = { s > EDGE ? s - EDGE : 0, 0, NULL };
			lo.len = s - lo.off;
			struct edge hi = { e, dsize - e < EDGE ? dsize - e : EDGE, NULL };
			struct edge two[2] = { lo, hi };
			for (int k = 0; k < 2; k++) {
				if (!two[k].len)
					continue;
				two[k].data = malloc(two[k].len);
				FUZZ_CHECK(two[k].data);
				if (read_sync(b, two[k].off, two[k].data, two[k].len) < 0) {
					free(two[k].data);
					two[k].data = NULL;
				}
				edges[nedges++] = two[k];
			}
		}
		bool ok = session_ok = run_ops(b, ops, nops);
		block_close(b);

		/* 4. Read back. */
		if (clean && ok) {
			FUZZ_CHECK(open_image(&b, path, true, false) == 0);
			FUZZ_CHECK(b->size == dsize);
			verify(b, ops, nops, edges, nedges);
			block_close(b);
			struct qcow2_check_result after;
			FUZZ_CHECK(check_file(path, QCOW2_REPAIR_NONE, &after) == 0);
			if (after.corruptions || after.check_errors)
				fprintf(stderr, "fuzz_qcow2: after the writes: %s\n", after.message);
			FUZZ_CHECK(after.corruptions == 0 && after.check_errors == 0);
		}
		for (unsigned i = 0; i < nedges; i++)
			free(edges[i].data);
	}

	/* 5. Check and repair what is there now. */
	check_file(path, QCOW2_REPAIR_NONE, &res);
	copy_file(path, copy);
	cr = check_file(copy, QCOW2_REPAIR_ALL, &res);
	if (cr == 0 && res.corruptions == res.corruptions_fixed && res.leaks == res.leaks_fixed &&
	    res.check_errors == 0) {
		struct qcow2_check_result again;
		FUZZ_CHECK(check_file(copy, QCOW2_REPAIR_NONE, &again) == 0);
		if (again.corruptions || again.leaks || again.check_errors)
			fprintf(stderr, "fuzz_qcow2: after the repair: %s\n", again.message);
		FUZZ_CHECK(again.corruptions == 0 && again.leaks == 0 && again.check_errors == 0);
	}

	FUZZ_CHECK(engine.block_reqs == 0 && outstanding == 0);
	if (verbose)
		fprintf(stderr, "fuzz_qcow2: clean %d, open ro %d rw %d, requests ok %d, "
			"%u bytes read back, repair %d (%llu/%llu corruptions, %llu/%llu leaks)\n",
			clean, ro_open, rw_open, session_ok, verified, cr,
			(unsigned long long)res.corruptions_fixed,
			(unsigned long long)res.corruptions, (unsigned long long)res.leaks_fixed,
			(unsigned long long)res.leaks);
	remove_dir(dir);
	return 0;
}
