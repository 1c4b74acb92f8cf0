/* The qcow2 driver against the reference implementation: images that
 * Debian's qemu-img and qemu-io write are read back byte for byte; the
 * same seeded random operations applied by kvmini and by qemu-io give
 * images that `qemu-img compare` finds identical and `qemu-img check`
 * finds clean; two threads allocating in one image at once keep it
 * consistent; a writer killed with SIGKILL at random moments never leaves
 * a corrupt image and never loses a write a completed flush covered.
 * Without qemu-img the cases print "# skip:" and are left out. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/block.h"
#include "block/io_engine.h"

static const char *tmp_dir(void)
{
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

static char *tmp_path(const char *name)
{
	char *p;
	assert_true(asprintf(&p, "%s/kvmini-q2t-%d-%s", tmp_dir(), (int)getpid(), name) > 0);
	return p;
}

/* Runs a shell command, stdout/stderr discarded unless KVMINI_TEST_VERBOSE;
 * returns the exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char *cmd, *full;
	va_list ap;
	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	assert_true(asprintf(&full, "( %s )%s", cmd,
			     getenv("KVMINI_TEST_VERBOSE") ? "" : " >/dev/null 2>&1") > 0);
	int st = system(full);
	free(cmd);
	free(full);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- the block layer, one request at a time ---------------------------- */

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

typedef void (*block_fn)(struct block *, struct io_engine *, struct block_req *);

static int64_t do_req(block_fn fn, struct block *b, struct io_engine *e, uint64_t off,
		      void *buf, uint64_t len, bool unmap)
{
	struct done d = { 0, 12345 };
	struct iovec iov = { buf, len };
	void *drv = NULL;
	assert_int_equal(posix_memalign(&drv, 64, block_req_priv_size(b) + 64), 0);
	struct block_req r = { .offset = off, .iov = buf ? &iov : NULL, .iovcnt = buf ? 1 : 0,
			       .len = len, .may_unmap = unmap, .done = on_done, .opaque = &d,
			       .drv = drv };
	fn(b, e, &r);
	assert_int_equal(d.calls, 0);
	while (d.calls == 0)
		assert_true(io_engine_run(e, true) >= 0);
	assert_int_equal(e->block_reqs, 0);
	free(drv);
	return d.res;
}

/* cache=none for the next opens (where the temp dir takes O_DIRECT), and
 * an L2 cache size (0: the default). */
static enum block_cache test_cache = BLOCK_CACHE_WRITEBACK;
static uint64_t test_l2_cache;

static bool tmp_has_direct(void)
{
	char *p = tmp_path("direct");
	int fd = open(p, O_RDWR | O_CREAT | O_DIRECT, 0600);
	unlink(p);
	free(p);
	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

static struct block *open_img(const char *path, bool ro)
{
	struct block *b = NULL;
	struct block_config cfg = { .path = path, .format = BLOCK_FMT_AUTO, .readonly = ro,
				    .cache = test_cache, .l2_cache = test_l2_cache };
	assert_int_equal(block_open(&b, &cfg), 0);
	assert_string_equal(b->ops->name, "qcow2");
	return b;
}

/* The whole virtual disk through kvmini equals qemu-img's raw conversion. */
static void assert_reads_like_qemu(const char *img)
{
	char *raw = tmp_path("ref.raw");
	assert_int_equal(sh("qemu-img convert -O raw '%s' '%s'", img, raw), 0);
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 64), 0);
	struct block *b = open_img(img, true);
	int fd = open(raw, O_RDONLY);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(b->size, (uint64_t)st.st_size & ~511ull);
	enum { CHUNK = 1 << 20 };
	uint8_t *a = malloc(CHUNK), *c = malloc(CHUNK);
	for (uint64_t off = 0; off < b->size; off += CHUNK) {
		uint64_t n = b->size - off < CHUNK ? b->size - off : CHUNK;
		/* Odd request sizes cross clusters in every way. */
		for (uint64_t p = 0; p < n;) {
			uint64_t l = n - p < 3 * 65536 + 512 ? n - p : 3 * 65536 + 512;
			assert_int_equal(do_req(block_read, b, &e, off + p, a + p, l, false), l);
			p += l;
		}
		assert_int_equal(pread(fd, c, n, (off_t)off), (ssize_t)n);
		if (memcmp(a, c, n)) {
			for (uint64_t i = 0; i < n; i++)
				if (a[i] != c[i])
					fail_msg("%s: byte %llu is %#x, qemu reads %#x", img,
						 (unsigned long long)(off + i), a[i], c[i]);
		}
	}
	free(a);
	free(c);
	close(fd);
	block_close(b);
	io_engine_close(&e);
	unlink(raw);
	free(raw);
}

static void assert_check(const char *img, bool leaks_ok);

/* ---- reading what qemu wrote --------------------------------------------- */

static void read_qemu_images(void **state)
{
	char *img = tmp_path("a.qcow2"), *raw = tmp_path("a.raw");
	/* Defaults, writes everywhere incl. across 4 GiB, zero clusters with
	 * and without an offset, discards. */
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 5G", img), 0);
	assert_int_equal(sh("qemu-io -c 'write -P 0x11 0 100k' -c 'write -P 0x22 4194272k 64k' "
			    "-c 'write -P 0x33 1M 1M' -c 'write -z 1088k 128k' "
			    "-c 'write -z -u 1536k 64k' -c 'discard 1920k 64k' "
			    "-c 'write -P 0x44 5242816k 64k' '%s'", img), 0);
	/* Only the written windows, not 5 GiB: a shortened copy. */
	char *small = tmp_path("small.qcow2");
	assert_int_equal(sh("qemu-img create -f qcow2 -o cluster_size=4096 '%s' 8M && "
			    "qemu-io -c 'write -P 0x55 3k 10k' -c 'write -z 64k 16k' "
			    "-c 'write -P 0x66 2M 3M' -c 'write -z -u 3M 64k' -c 'discard 4M 8k' '%s'",
			    small, small), 0);
	assert_reads_like_qemu(small);

	/* The 5G image: compare the windows through qemu-io's read -P. */
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 64), 0);
	struct block *b = open_img(img, true);
	assert_int_equal(b->size, 5ull << 30);
	static const struct { uint64_t off, len; uint8_t v; } win[] = {
		{ 0, 100 << 10, 0x11 }, { 4194272ull << 10, 64 << 10, 0x22 },
		{ 1 << 20, 64 << 10, 0x33 }, { 1088 << 10, 128 << 10, 0 },
		{ 1536 << 10, 64 << 10, 0 }, { 1920 << 10, 64 << 10, 0 },
		{ 5242816ull << 10, 64 << 10, 0x44 }, { 3ull << 30, 1 << 20, 0 },
	};
	uint8_t *buf = malloc(1 << 20);
	/* 3 TiB, sparse: qemu's writes at both ends and in the middle, ours
	 * near the end, each read by the other. */
	char *big = tmp_path("big.qcow2");
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 3T && qemu-io -c 'write -P 0x31 0 64k' "
			    "-c 'write -P 0x32 1649267441664 128k' -c 'write -P 0x33 3298534817792 64k' "
			    "'%s'", big, big), 0);
	struct block *bb = open_img(big, false);
	assert_int_equal(bb->size, 3ull << 40);
	static const struct { uint64_t off; uint8_t v; } bw[] = {
		{ 0, 0x31 }, { 1649267441664ull, 0x32 }, { 1649267441664ull + 65536, 0x32 },
		{ 3298534817792ull, 0x33 }, { 2ull << 40, 0 },
	};
	for (size_t i = 0; i < sizeof(bw) / sizeof(bw[0]); i++) {
		assert_int_equal(do_req(block_read, bb, &e, bw[i].off, buf, 65536, false), 65536);
		assert_int_equal(buf[0], bw[i].v);
		assert_int_equal(buf[65535], bw[i].v);
	}
	memset(buf, 0x34, 65536);
	assert_int_equal(do_req(block_write, bb, &e, (3ull << 40) - 131072, buf, 65536, false),
			 65536);
	block_close(bb);
	assert_check(big, false);
	assert_int_equal(sh("qemu-io -r -c 'read -P 0x34 3298534752256 64k' '%s' | grep -q '^read'",
			    big), 0);
	unlink(big);
	free(big);
	for (size_t i = 0; i < sizeof(win) / sizeof(win[0]); i++) {
		memset(buf, 0xee, win[i].len);
		assert_int_equal(do_req(block_read, b, &e, win[i].off, buf, win[i].len, false),
				 win[i].len);
		for (uint64_t j = 0; j < win[i].len; j++)
			if (buf[j] != win[i].v)
				fail_msg("window %zu byte %llu: %#x, want %#x", i,
					 (unsigned long long)j, buf[j], win[i].v);
	}
	free(buf);
	block_close(b);
	io_engine_close(&e);

	/* Compressed images at 4k/64k/2M clusters, v3 and compat=0.10, zlib
	 * and zstd. */
	assert_int_equal(sh("qemu-img create -f raw '%s' 6M && qemu-io -f raw "
			    "-c 'write -P 0x77 0 1M' -c 'write -P 0x78 1500k 700k' "
			    "-c 'write -P 0x79 4M 64k' '%s'", raw, raw), 0);
	static const char *const opts[] = {
		"cluster_size=4096", "cluster_size=65536", "cluster_size=2097152",
		"compat=0.10,cluster_size=65536", "compression_type=zstd,cluster_size=65536",
	};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		assert_int_equal(sh("qemu-img convert -c -O qcow2 -o %s '%s' '%s'", opts[i], raw,
				    small), 0);
		assert_reads_like_qemu(small);
		/* O_DIRECT: compressed bytes sit at any byte offset. */
		if (tmp_has_direct()) {
			test_cache = BLOCK_CACHE_NONE;
			assert_reads_like_qemu(small);
			test_cache = BLOCK_CACHE_WRITEBACK;
		}
	}
	/* Cluster size x refcount width. */
	static const char *const sweep[] = { "512", "4096", "65536", "2097152" };
	static const char *const widths[] = { "1", "16", "64" };
	for (size_t i = 0; i < 4; i++)
		for (size_t j = 0; j < 3; j++) {
			assert_int_equal(sh("qemu-img convert -O qcow2 -o cluster_size=%s,"
					    "refcount_bits=%s '%s' '%s'", sweep[i], widths[j], raw,
					    small), 0);
			assert_reads_like_qemu(small);
		}
	unlink(img);
	unlink(raw);
	unlink(small);
	free(img);
	free(raw);
	free(small);
}

/* Three layers (raw under qcow2 under qcow2), each bigger than the one
 * below it, with relative backing names. */
static void read_backing_chain(void **state)
{
	char *dir = tmp_path("chain");
	assert_int_equal(sh("rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
	assert_int_equal(sh("cd '%s' && qemu-img create -f raw base.raw 1M && "
			    "qemu-io -f raw -c 'write -P 0x0a 0 1M' base.raw && "
			    "qemu-img create -f qcow2 -b base.raw -F raw mid.qcow2 3M && "
			    "qemu-io -c 'write -P 0x0b 512k 1M' -c 'write -z 128k 64k' mid.qcow2 && "
			    "qemu-img create -f qcow2 -o compat=0.10 -b mid.qcow2 -F qcow2 "
			    "top.qcow2 5M && qemu-io -c 'write -P 0x0c 1M 64k' "
			    "-c 'write -P 0x0d 4M 100k' top.qcow2", dir), 0);
	char *top;
	assert_true(asprintf(&top, "%s/top.qcow2", dir) > 0);
	assert_reads_like_qemu(top);
	/* A loop in the chain is one clear error, no hang. */
	assert_int_equal(sh("cd '%s' && qemu-img create -f qcow2 -b top.qcow2 -F qcow2 -u "
			    "loop.qcow2 5M && qemu-img rebase -u -b loop.qcow2 -F qcow2 top.qcow2",
			    dir), 0);
	struct block *b = NULL;
	struct block_config cfg = { .path = top, .readonly = true };
	assert_int_equal(block_open(&b, &cfg), -ELOOP);
	assert_null(b);
	assert_int_equal(sh("rm -rf '%s'", dir), 0);
	free(top);
	free(dir);
}

/* ---- writing like qemu writes --------------------------------------------- */

struct op {
	char kind;      /* w: write, z: write zeroes, u: zeroes with unmap, d: discard */
	uint64_t off, len;
	uint8_t pat;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void make_ops(struct op *ops, int n, uint64_t size, uint64_t seed)
{
	uint64_t s = seed * 2654435761u + 1;
	for (int i = 0; i < n; i++) {
		uint64_t r = rnd(&s);
		static const char kinds[] = "wwwwwwzud";
		char k = kinds[r % 9];
		uint64_t len = (rnd(&s) % 256 + 1) * 512;
		if (rnd(&s) % 4 == 0)
			len = (rnd(&s) % 8 + 1) * 65536;   /* whole clusters now and then */
		uint64_t off = (rnd(&s) % (size / 512)) * 512;
		if (rnd(&s) % 3 == 0)
			off &= ~65535ull;
		if (off + len > size)
			len = size - off;
		ops[i] = (struct op){ k, off, len, (uint8_t)(r >> 40) | 1 };
	}
}

/* The same operations through qemu-io, in one run. */
static void qemu_apply(const char *img, const struct op *ops, int n)
{
	char *script = tmp_path("ops.sh");
	FILE *f = fopen(script, "w");
	assert_non_null(f);
	fprintf(f, "qemu-io");
	for (int i = 0; i < n; i++) {
		const struct op *o = &ops[i];
		if (o->kind == 'w')
			fprintf(f, " -c 'write -P %u %llu %llu'", o->pat, (unsigned long long)o->off,
				(unsigned long long)o->len);
		else if (o->kind == 'z' || o->kind == 'u')
			fprintf(f, " -c 'write -z%s %llu %llu'", o->kind == 'u' ? " -u" : "",
				(unsigned long long)o->off, (unsigned long long)o->len);
		else
			fprintf(f, " -c 'discard %llu %llu'", (unsigned long long)o->off,
				(unsigned long long)o->len);
	}
	fprintf(f, " '%s'\n", img);
	fclose(f);
	assert_int_equal(sh("sh '%s'", script), 0);
	unlink(script);
	free(script);
}

static void kvmini_apply(const char *img, const struct op *ops, int n, int reopen_every)
{
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 64), 0);
	struct block *b = open_img(img, false);
	uint8_t *buf = malloc(8 << 20);
	for (int i = 0; i < n; i++) {
		const struct op *o = &ops[i];
		int64_t r;
		if (o->kind == 'w') {
			memset(buf, o->pat, o->len);
			r = do_req(block_write, b, &e, o->off, buf, o->len, false);
			assert_int_equal(r, o->len);
		} else if (o->kind == 'd') {
			assert_int_equal(do_req(block_discard, b, &e, o->off, NULL, o->len, false), 0);
		} else {
			assert_int_equal(do_req(block_write_zeroes, b, &e, o->off, NULL, o->len,
						o->kind == 'u'), 0);
		}
		if (i % 37 == 36)
			assert_int_equal(do_req(block_flush, b, &e, 0, NULL, 0, false), 0);
		if (reopen_every && i % reopen_every == reopen_every - 1) {
			assert_int_equal(block_drain(b, &e), 0);
			block_close(b);
			b = open_img(img, false);
		}
	}
	free(buf);
	block_close(b);
	io_engine_close(&e);
}

/* qemu-img check: 0 clean; with leaks allowed, 3 is fine too. */
static void assert_check(const char *img, bool leaks_ok)
{
	int st = sh("qemu-img check '%s'", img);
	if (st != 0 && !(leaks_ok && st == 3)) {
		sh("qemu-img check '%s' >&2", img);
		fail_msg("qemu-img check %s: exit %d", img, st);
	}
}

static void random_ops_case(const char *create_opts, const char *base_cmd, int nops,
			    uint64_t seed)
{
	char *dir = tmp_path("ops");
	assert_int_equal(sh("rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
	if (base_cmd)
		assert_int_equal(sh("cd '%s' && %s", dir, base_cmd), 0);
	assert_int_equal(sh("cd '%s' && qemu-img create -f qcow2 %s ours.qcow2 24M && "
			    "cp ours.qcow2 theirs.qcow2", dir, create_opts), 0);
	char *ours, *theirs;
	assert_true(asprintf(&ours, "%s/ours.qcow2", dir) > 0);
	assert_true(asprintf(&theirs, "%s/theirs.qcow2", dir) > 0);
	struct op *ops = calloc(nops, sizeof(*ops));
	make_ops(ops, nops, 24 << 20, seed);
	kvmini_apply(ours, ops, nops, nops / 3);
	qemu_apply(theirs, ops, nops);
	assert_check(ours, false);
	if (sh("qemu-img compare '%s' '%s'", ours, theirs) != 0) {
		sh("qemu-img compare '%s' '%s' >&2", ours, theirs);
		fail_msg("seed %llu, %s: kvmini and qemu-io disagree", (unsigned long long)seed,
			 create_opts);
	}
	assert_reads_like_qemu(ours);
	free(ops);
	assert_int_equal(sh("rm -rf '%s'", dir), 0);
	free(ours);
	free(theirs);
	free(dir);
}

static void write_random_ops(void **state)
{
	/* No backing file, v3 and v2, small and default clusters. */
	random_ops_case("-o cluster_size=4096", NULL, 300, 1);
	random_ops_case("-o compat=0.10,cluster_size=65536", NULL, 200, 2);
	random_ops_case("-o refcount_bits=1,cluster_size=512", NULL, 150, 3);
	/* 64-bit refcounts in 512-byte clusters: a refcount block covers 32
	 * KiB and a table cluster 2 MiB, so the table grows many times. */
	random_ops_case("-o refcount_bits=64,cluster_size=512", NULL, 150, 8);
	/* A 16-slice L2 cache on 512-byte clusters (96 slices of L2 in use):
	 * slices are evicted, dirty ones written back on the way. */
	test_l2_cache = 4096;
	random_ops_case("-o cluster_size=512", NULL, 200, 10);
	test_l2_cache = 0;
	/* Over a patterned raw base (smaller than the overlay), v3 and v2. */
	static const char base[] = "qemu-img create -f raw base.raw 16M && qemu-io -f raw "
				   "-c 'write -P 0x5a 0 16M' base.raw";
	random_ops_case("-b base.raw -F raw", base, 300, 4);
	random_ops_case("-o compat=0.10 -b base.raw -F raw", base, 200, 5);
	random_ops_case("-o cluster_size=16384 -b base.raw -F raw", base, 200, 6);
	if (tmp_has_direct()) {
		test_cache = BLOCK_CACHE_NONE;
		random_ops_case("-o cluster_size=4096 -b base.raw -F raw", base, 200, 9);
		test_cache = BLOCK_CACHE_WRITEBACK;
	} else {
		printf("# write_random_ops: no O_DIRECT in %s, cache=none case left out\n",
		       tmp_dir());
	}
}

/* Rewriting compressed clusters: the image itself holds them. */
static void write_over_compressed(void **state)
{
	char *dir = tmp_path("comp");
	assert_int_equal(sh("rm -rf '%s' && mkdir -p '%s' && cd '%s' && "
			    "qemu-img create -f raw src.raw 24M && qemu-io -f raw "
			    "-c 'write -P 0x61 0 20M' src.raw && "
			    "qemu-img convert -c -O qcow2 src.raw ours.qcow2 && "
			    "cp ours.qcow2 theirs.qcow2", dir, dir, dir), 0);
	char *ours, *theirs;
	assert_true(asprintf(&ours, "%s/ours.qcow2", dir) > 0);
	assert_true(asprintf(&theirs, "%s/theirs.qcow2", dir) > 0);
	enum { N = 200 };
	struct op ops[N];
	make_ops(ops, N, 24 << 20, 7);
	if (tmp_has_direct())
		test_cache = BLOCK_CACHE_NONE;
	kvmini_apply(ours, ops, N, 0);
	test_cache = BLOCK_CACHE_WRITEBACK;
	qemu_apply(theirs, ops, N);
	assert_check(ours, false);
	assert_int_equal(sh("qemu-img compare '%s' '%s'", ours, theirs), 0);
	assert_int_equal(sh("rm -rf '%s'", dir), 0);
	free(ours);
	free(theirs);
	free(dir);
}

/* ---- opening, growing, sharing ----------------------------------------- */

static void set_be64_at(const char *path, off_t off, uint64_t v)
{
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, 8, off), 8);
	close(fd);
}

static int open_rc(const char *path, bool ro)
{
	struct block *b = (struct block *)1;
	struct block_config cfg = { .path = path, .readonly = ro };
	int r = block_open(&b, &cfg);
	if (r == 0)
		block_close(b);
	else
		assert_null(b);
	return r;
}

/* Hostile or unsupported images: one error line, the right errno, and
 * read-only opens where QEMU would allow them. */
static void open_bad_images(void **state)
{
	char *img = tmp_path("bad.qcow2");
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 1M && "
			    "qemu-io -c 'write -P 1 0 64k' '%s'", img, img), 0);
	assert_int_equal(open_rc(img, false), 0);
	assert_int_equal(truncate(img, 100), 0);                  /* truncated header */
	assert_int_equal(open_rc(img, false), -EINVAL);
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 1M", img), 0);
	set_be64_at(img, 40, 1ull << 40);                         /* L1 past EOF */
	assert_int_equal(open_rc(img, false), -EINVAL);
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 1M", img), 0);
	set_be64_at(img, 72, 1ull << 9);                          /* unknown incompatible bit */
	assert_int_equal(open_rc(img, true), -ENOTSUP);
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 1M", img), 0);
	set_be64_at(img, 72, 2);                                  /* corrupt bit */
	assert_int_equal(open_rc(img, false), -EINVAL);
	assert_int_equal(open_rc(img, true), 0);
	/* Internal snapshots: read-only only. */
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 1M && qemu-img snapshot -c s1 '%s'",
			    img, img), 0);
	assert_int_equal(open_rc(img, false), -ENOTSUP);
	assert_int_equal(open_rc(img, true), 0);
	/* A dirty image (lazy refcounts, killed writer) is repaired on a
	 * read-write open; its data survives. */
	assert_int_equal(sh("qemu-img create -f qcow2 -o lazy_refcounts=on '%s' 4M && "
			    "qemu-io -c 'write -P 7 0 1M' -c 'sigraise 9' '%s'; true", img, img), 0);
	assert_int_equal(sh("qemu-img check '%s'", img) == 0, 0);   /* dirty: check says so */
	assert_int_equal(open_rc(img, false), 0);
	assert_check(img, false);
	assert_int_equal(sh("qemu-io -r -c 'read -P 7 0 1M' '%s' | grep -q 'read 1048576'", img), 0);
	unlink(img);
	free(img);
}

/* Growing past what the L1 table covers (a new L1 is written and switched
 * to), then writing at the new end; shrinking only over unused space. */
static void resize_grow_shrink(void **state)
{
	char *img = tmp_path("grow.qcow2");
	assert_int_equal(sh("qemu-img create -f qcow2 -o cluster_size=4096 '%s' 2M && "
			    "qemu-io -c 'write -P 3 0 64k' '%s'", img, img), 0);
	struct io_engine e;
	assert_int_equal(io_engine_init(&e, 16), 0);
	struct block *b = open_img(img, false);
	/* 4 KiB clusters: one L1 entry maps 2 MiB; 200 MiB needs 100. */
	assert_int_equal(block_resize(b, 200 << 20), 0);
	assert_int_equal(b->size, 200 << 20);
	uint8_t buf[8192];
	memset(buf, 9, sizeof(buf));
	assert_int_equal(do_req(block_write, b, &e, (200 << 20) - 8192, buf, 8192, false), 8192);
	assert_int_equal(block_resize(b, 100 << 20), -ENOTSUP);   /* data up there */
	assert_int_equal(block_resize(b, 250 << 20), 0);
	assert_int_equal(block_resize(b, 220 << 20), 0);          /* only empty space dropped */
	block_close(b);
	io_engine_close(&e);
	assert_check(img, false);
	assert_int_equal(sh("qemu-img info '%s' | grep -q 'virtual size: 220 MiB'", img), 0);
	assert_int_equal(sh("qemu-io -r -c 'read -P 9 %d 8192' -c 'read -P 3 0 64k' '%s' "
			    "| grep -c '^read' | grep -q 2", (200 << 20) - 8192, img), 0);
	unlink(img);
	free(img);
}

/* Locks: a second writer (kvmini or QEMU) is refused while one writes;
 * readers of a base share it. */
static void locks_between_users(void **state)
{
	char *img = tmp_path("lock.qcow2"), *top = tmp_path("lock-top.qcow2");
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' 1M", img), 0);
	struct block *w = NULL, *b2 = (struct block *)1;
	struct block_config cfg = { .path = img, .lock = true };
	assert_int_equal(block_open(&w, &cfg), 0);
	assert_int_equal(block_open(&b2, &cfg), -EBUSY);
	cfg.readonly = true;
	assert_int_equal(block_open(&b2, &cfg), -EBUSY);
	assert_true(sh("qemu-io -c 'write 0 512' '%s'", img) != 0);
	assert_true(sh("qemu-img info '%s'", img) != 0);
	block_close(w);
	assert_int_equal(sh("qemu-io -c 'write 0 512' '%s'", img), 0);
	/* Two overlays' users share the base read-only; the base cannot be
	 * written meanwhile. */
	assert_int_equal(sh("qemu-img create -f qcow2 -b '%s' -F qcow2 '%s'", img, top), 0);
	struct block *o = NULL, *r = NULL;
	struct block_config oc = { .path = top, .lock = true };
	assert_int_equal(block_open(&o, &oc), 0);
	cfg.readonly = true;
	assert_int_equal(block_open(&r, &cfg), 0);
	cfg.readonly = false;
	assert_int_equal(block_open(&b2, &cfg), -EBUSY);
	block_close(r);
	block_close(o);
	unlink(img);
	unlink(top);
	free(img);
	free(top);
}

/* ---- two threads, one image ------------------------------------------------ */

/* Each thread writes its own 512-byte sector of every cluster of a range
 * (so both allocate the same clusters, partly, at the same time), many
 * requests in flight. */
struct writer {
	struct block *b;
	int id;
	uint64_t base;          /* first byte of this round's clusters */
	pthread_barrier_t *go;  /* both start submitting at once */
	int errors;
};

enum { W_CLUSTERS = 256, W_CS = 65536 };

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct io_engine e;
	if (io_engine_init(&e, 256) < 0) {
		w->errors++;
		return NULL;
	}
	static _Thread_local uint8_t buf[W_CLUSTERS][512];
	struct iovec iov[W_CLUSTERS];
	struct block_req r[W_CLUSTERS];
	struct done d[W_CLUSTERS];
	size_t priv = block_req_priv_size(w->b);
	uint8_t *area = malloc(W_CLUSTERS * ((priv + 63) & ~63ul));
	pthread_barrier_wait(w->go);
	for (int i = 0; i < W_CLUSTERS; i++) {
		int c = i;    /* the same order: every cluster is contended */
		memset(buf[i], 0x10 + w->id * 0x40 + (c & 31), 512);
		iov[i] = (struct iovec){ buf[i], 512 };
		d[i] = (struct done){ 0, -1 };
		r[i] = (struct block_req){ .offset = w->base + (uint64_t)c * W_CS + 512 * (1 + w->id),
					   .iov = &iov[i], .iovcnt = 1, .done = on_done,
					   .opaque = &d[i], .drv = area + i * ((priv + 63) & ~63ul) };
		block_write(w->b, &e, &r[i]);
		if (i % 16 == 15 && io_engine_run(&e, false) < 0)
			w->errors++;
	}
	if (block_drain(w->b, &e) < 0)
		w->errors++;
	for (int i = 0; i < W_CLUSTERS; i++)
		if (d[i].calls != 1 || d[i].res != 512)
			w->errors++;
	free(area);
	io_engine_close(&e);
	return NULL;
}

static void two_threads_allocate(void **state)
{
	char *img = tmp_path("mt.qcow2"), *raw = tmp_path("mt.raw");
	enum { ROUNDS = 4 };
	assert_int_equal(sh("qemu-img create -f qcow2 '%s' %dM", img,
			    ROUNDS * W_CLUSTERS * W_CS >> 20), 0);
	pthread_barrier_t go;
	pthread_barrier_init(&go, NULL, 2);
	for (int round = 0; round < ROUNDS; round++) {
		struct block *b = open_img(img, false);
		uint64_t base = (uint64_t)round * W_CLUSTERS * W_CS;
		struct writer w[2] = { { b, 0, base, &go, 0 }, { b, 1, base, &go, 0 } };
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
		for (int i = 0; i < 2; i++) {
			assert_int_equal(pthread_join(t[i], NULL), 0);
			assert_int_equal(w[i].errors, 0);
		}
		block_close(b);
		assert_check(img, false);
	}
	/* Both sectors of every cluster arrived. */
	assert_int_equal(sh("qemu-img convert -O raw '%s' '%s'", img, raw), 0);
	pthread_barrier_destroy(&go);
	int fd = open(raw, O_RDONLY);
	assert_true(fd >= 0);
	for (int c = 0; c < ROUNDS * W_CLUSTERS; c++) {
		uint8_t s[3][512];
		assert_int_equal(pread(fd, s, sizeof(s), (off_t)c * W_CS), (ssize_t)sizeof(s));
		if (s[1][0] != 0x10 + (c & 31) || s[2][0] != 0x50 + (c & 31))
			fail_msg("cluster %d lost a write: %#x %#x", c, s[1][0], s[2][0]);
		assert_int_equal(s[0][0], 0);
		assert_int_equal(s[1][0], 0x10 + (c & 31));
		assert_int_equal(s[1][511], 0x10 + (c & 31));
		assert_int_equal(s[2][0], 0x50 + (c & 31));
	}
	close(fd);
	unlink(img);
	unlink(raw);
	free(img);
	free(raw);
}

/* ---- kill -9 -------------------------------------------------------------- */

/* The child writes cluster i with pattern i at cluster 2i (never twice),
 * flushes every 4 writes and then reports how many writes that flush
 * covered, until it is killed. */
static void crash_child(const char *img, int out)
{
	struct io_engine e;
	if (io_engine_init(&e, 64) < 0)
		_exit(1);
	struct block *b = NULL;
	struct block_config cfg = { .path = img };
	if (block_open(&b, &cfg) < 0)
		_exit(1);
	static uint8_t buf[4096];
	for (uint32_t i = 0;; i++) {
		memset(buf, (int)(i % 251) + 1, sizeof(buf));
		uint64_t off = (uint64_t)(2 * i) * 4096 % (b->size - 4096);
		if (do_req(block_write, b, &e, off, buf, sizeof(buf), false) != 4096)
			_exit(1);
		if (i % 4 == 3) {
			if (do_req(block_flush, b, &e, 0, NULL, 0, false) != 0)
				_exit(1);
			uint32_t n = i + 1;
			if (write(out, &n, sizeof(n)) != sizeof(n))
				_exit(1);
		}
	}
}

static void crash_kill9(void **state)
{
	char *img = tmp_path("crash.qcow2"), *raw = tmp_path("crash.raw");
	int rounds = getenv("KVMINI_CRASH_ROUNDS") ? atoi(getenv("KVMINI_CRASH_ROUNDS")) : 100;
	uint64_t seed = 12345, total = 0;
	uint32_t most = 0;
	for (int round = 0; round < rounds; round++) {
		/* Small clusters: the 4 KiB writes allocate, L2 tables and
		 * refcount blocks fill and grow. */
		assert_int_equal(sh("qemu-img create -f qcow2 -o cluster_size=4096 '%s' 64M", img), 0);
		int p[2];
		assert_int_equal(pipe(p), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			crash_child(img, p[1]);
		}
		close(p[1]);
		struct timespec ts = { 0, (long)(rnd(&seed) % 40 + 1) * 1000000L };
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFSIGNALED(st));
		uint32_t n = 0, v;
		while (read(p[0], &v, sizeof(v)) == sizeof(v))
			n = v;
		close(p[0]);
		total += n;
		most = n > most ? n : most;
		/* Leaks are allowed after a crash, corruption never. */
		assert_check(img, true);
		assert_int_equal(sh("qemu-img convert -O raw '%s' '%s'", img, raw), 0);
		int fd = open(raw, O_RDONLY);
		assert_true(fd >= 0);
		for (uint32_t i = 0; i < n; i++) {
			uint8_t c[4096];
			uint64_t off = (uint64_t)(2 * i) * 4096 % (64ull << 20);
			assert_int_equal(pread(fd, c, sizeof(c), (off_t)off), (ssize_t)sizeof(c));
			if (c[0] != (uint8_t)(i % 251 + 1) || c[4095] != c[0])
				fail_msg("round %d: write %u of %u flushed writes lost", round, i, n);
		}
		close(fd);
	}
	printf("# crash_kill9: %d kills, %llu flushed writes checked (at most %u in one run)\n",
	       rounds, (unsigned long long)total, most);
	/* A run where the child never got to flush checks nothing. */
	assert_true(total > (uint64_t)rounds);
	unlink(img);
	unlink(raw);
	free(img);
	free(raw);
}

int main(void)
{
	if (sh("qemu-img --version && qemu-io --version") != 0) {
		printf("1..0 # skip: qemu-img/qemu-io not installed (apt-get install qemu-utils)\n");
		return 0;
	}
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(read_qemu_images),
		cmocka_unit_test(read_backing_chain),
		cmocka_unit_test(write_random_ops),
		cmocka_unit_test(write_over_compressed),
		cmocka_unit_test(open_bad_images),
		cmocka_unit_test(resize_grow_shrink),
		cmocka_unit_test(locks_between_users),
		cmocka_unit_test(two_threads_allocate),
		cmocka_unit_test(crash_kill9),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
