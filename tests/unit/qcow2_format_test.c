/* qcow2 format code against QEMU as the reference: headers of images made
 * by qemu-img create (v2/v3, cluster sizes, refcount widths, lazy
 * refcounts, backing files, zstd) parsed and compared with qemu-img info;
 * refcount packing at every width read from and written into qemu-made
 * refcount blocks; hostile headers built in memory; compressed clusters of
 * qemu-img convert -c decompressed and compared with the raw source;
 * qcow2_create over a sweep of options, checked by qemu-img check/info and
 * written by qemu-io; qcow2_check compared with qemu-img check on clean,
 * leaking and corrupted images, and its repairs verified by qemu-img.
 * Cases needing qemu-img skip with a "# skip:" line when it is absent. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "block/qcow2_check.h"
#include "block/qcow2_create.h"
#include "block/qcow2_format.h"

/* ---- helpers ---------------------------------------------------------- */

static const char *tmp_dir(void)
{
	const char *d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

static char *tmp_path(const char *name)
{
	char *p;
	assert_true(asprintf(&p, "%s/kvmini-qcow2-%d-%s", tmp_dir(), (int)getpid(), name) > 0);
	return p;
}

/* Runs a shell command; its stdout in *out (if out), stderr discarded
 * unless KVMINI_TEST_VERBOSE is set. Returns the exit status. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int sh(char **out, const char *fmt, ...)
{
	char *cmd, *full;
	va_list ap;
	va_start(ap, fmt);
	assert_true(vasprintf(&cmd, fmt, ap) > 0);
	va_end(ap);
	assert_true(asprintf(&full, "%s%s", cmd, getenv("KVMINI_TEST_VERBOSE") ? "" : " 2>/dev/null") > 0);
	FILE *f = popen(full, "r");
	assert_non_null(f);
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t r;
	while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (cap - n < 2)
			buf = realloc(buf, cap *= 2);
	}
	buf[n] = '\0';
	int st = pclose(f);
	free(cmd);
	free(full);
	if (out)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_qemu(void)
{
	return sh(NULL, "qemu-img --version >/dev/null && qemu-io --version >/dev/null") == 0;
}

#define NEED_QEMU()                                                      \
	do {                                                             \
		if (!have_qemu()) {                                      \
			printf("# skip: qemu-img/qemu-io not installed (apt-get install qemu-utils)\n"); \
			skip();                                          \
		}                                                        \
	} while (0)

/* The number after "key": in qemu's JSON, or -1 if absent. */
static long long json_num(const char *json, const char *key)
{
	char pat[80];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(json, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* The string or literal after "key": (without quotes), into out. */
static const char *json_str(const char *json, const char *key, char *out, size_t len)
{
	char pat[80];
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	const char *p = strstr(json, pat);
	out[0] = '\0';
	if (!p)
		return out;
	p += strlen(pat);
	if (*p == '"')
		p++;
	size_t n = strcspn(p, "\",\n}");
	snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
	return out;
}

static uint64_t file_size_of(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_size;
}

static void pread_exact(int fd, void *buf, size_t len, uint64_t off)
{
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
}

/* Reads the first cluster of an image the way a caller of the parser
 * should: 64 KiB, peek the cluster size, read more if needed. */
static int parse_file(const char *path, struct qcow2_header *h, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	uint64_t fs = file_size_of(fd);
	size_t len = fs < 65536 ? fs : 65536;
	uint8_t *buf = malloc(2 << 20);
	pread_exact(fd, buf, len, 0);
	int bits = qcow2_peek_cluster_bits(buf, len);
	assert_true(bits >= 9);
	if ((1ull << bits) > len) {
		len = fs < (1ull << bits) ? fs : (1ull << bits);
		pread_exact(fd, buf, len, 0);
	}
	int rc = qcow2_header_parse(h, buf, len, fs, err, errlen);
	free(buf);
	close(fd);
	return rc;
}

/* ---- parsing qemu-made images ------------------------------------------ */

struct qimg {
	const char *opts;       /* qemu-img create -o */
	unsigned version, cluster_bits, refcount_order;
	bool lazy, zstd, backing;
};

static const struct qimg qimgs[] = {
	{ "compat=0.10", 2, 16, 4, false, false, false },
	{ "compat=0.10,cluster_size=512", 2, 9, 4, false, false, false },
	{ "compat=1.1,cluster_size=4096", 3, 12, 4, false, false, false },
	{ "cluster_size=2M", 3, 21, 4, false, false, false },
	{ "refcount_bits=1", 3, 16, 0, false, false, false },
	{ "refcount_bits=2,cluster_size=512", 3, 9, 1, false, false, false },
	{ "refcount_bits=4", 3, 16, 2, false, false, false },
	{ "refcount_bits=8", 3, 16, 3, false, false, false },
	{ "refcount_bits=32", 3, 16, 5, false, false, false },
	{ "refcount_bits=64,cluster_size=4096", 3, 12, 6, false, false, false },
	{ "lazy_refcounts=on", 3, 16, 4, true, false, false },
	{ "compression_type=zstd", 3, 16, 4, false, true, false },
	{ "compat=0.10", 2, 16, 4, false, false, true },
	{ "cluster_size=4096,lazy_refcounts=on,compression_type=zstd", 3, 12, 4, true, true, true },
};

static void test_parse_qemu_images(void **state)
{
	NEED_QEMU();
	char *base = tmp_path("base.raw"), *img = tmp_path("parse.qcow2");
	assert_int_equal(sh(NULL, "qemu-img create -q -f raw '%s' 1M", base), 0);
	unsigned named = 0;
	for (size_t i = 0; i < sizeof(qimgs) / sizeof(qimgs[0]); i++) {
		const struct qimg *q = &qimgs[i];
		char *info;
		unlink(img);
		if (q->backing)
			assert_int_equal(sh(NULL, "qemu-img create -q -f qcow2 -o %s -b '%s' -F raw '%s' 100M",
					    q->opts, base, img), 0);
		else
			assert_int_equal(sh(NULL, "qemu-img create -q -f qcow2 -o %s '%s' 100M", q->opts, img), 0);
		assert_int_equal(sh(&info, "qemu-img info --output json '%s'", img), 0);

		struct qcow2_header h;
		char err[200];
		int rc = parse_file(img, &h, err, sizeof(err));
		if (rc)
			fail_msg("%s: %s", q->opts, err);
		char s[256];
		assert_int_equal(h.version, q->version);
		assert_int_equal(h.cluster_bits, q->cluster_bits);
		assert_int_equal(h.refcount_order, q->refcount_order);
		assert_int_equal(h.size, 104857600);
		assert_int_equal(h.size, json_num(info, "virtual-size"));
		assert_int_equal(qcow2_cluster_size(&h), json_num(info, "cluster-size"));
		assert_string_equal(json_str(info, "compat", s, sizeof(s)), q->version == 2 ? "0.10" : "1.1");
		if (q->version == 3) {
			assert_int_equal(1u << h.refcount_order, json_num(info, "refcount-bits"));
			assert_string_equal(json_str(info, "lazy-refcounts", s, sizeof(s)),
					    q->lazy ? "true" : "false");
			assert_int_equal(!!(h.compatible_features & 1), q->lazy);
			assert_string_equal(json_str(info, "compression-type", s, sizeof(s)),
					    q->zstd ? "zstd" : "zlib");
			assert_int_equal(h.compression_type, q->zstd ? 1 : 0);
			assert_int_equal(!!(h.incompatible_features & 8), q->zstd);
			assert_true(h.header_length >= 104);
			/* QEMU names its features (not always: compat=1.1 given
			 * explicitly, or no room in a 512-byte cluster). */
			if (h.nb_feature_names) {
				named++;
				assert_non_null(qcow2_feature_name(&h, 0, 0));
				assert_string_equal(qcow2_feature_name(&h, 0, 0), "dirty bit");
				assert_null(qcow2_feature_name(&h, 0, 40));
			}
		} else {
			assert_int_equal(h.header_length, 72);
			assert_int_equal(h.refcount_order, 4);
		}
		if (q->backing) {
			assert_non_null(h.backing_file);
			assert_string_equal(h.backing_file, json_str(info, "backing-filename", s, sizeof(s)));
			assert_string_equal(h.backing_format, "raw");
		} else {
			assert_null(h.backing_file);
			assert_null(h.backing_format);
		}
		assert_int_equal(h.incompatible_features & 3, 0);

		/* A rewrite of the unchanged header must be byte-identical to
		 * what QEMU wrote, and parse back to the same. */
		uint64_t cs = qcow2_cluster_size(&h);
		uint8_t *orig = calloc(1, cs), *mine = malloc(cs);
		int fd = open(img, O_RDONLY);
		assert_true(pread(fd, orig, cs, 0) > 0);
		close(fd);
		size_t used;
		assert_int_equal(qcow2_header_serialize(&h, mine, cs, &used), 0);
		if (memcmp(orig, mine, used))
			fail_msg("%s: serialized header differs from qemu's", q->opts);
		struct qcow2_header h2;
		assert_int_equal(qcow2_header_parse(&h2, mine, cs, 1ull << 40, err, sizeof(err)), 0);
		assert_int_equal(h2.l1_table_offset, h.l1_table_offset);
		assert_int_equal(h2.nb_feature_names, h.nb_feature_names);
		qcow2_header_free(&h2);
		free(orig);
		free(mine);
		free(info);
		qcow2_header_free(&h);
	}
	unlink(img);
	unlink(base);
	free(img);
	free(base);
}

static struct qcow2_check_result check_file(const char *img, enum qcow2_repair fix);
static void agree_with_qemu(const char *img, const char *what);

/* Unknown extensions and header fields survive a rewrite; dirty bit set,
 * autoclear cleared as a driver would before its first write. */
static void test_rewrite_keeps_unknown(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("bitmap.qcow2");
	assert_int_equal(sh(NULL, "qemu-img create -q -f qcow2 '%s' 64M && qemu-img bitmap --add '%s' b0",
			    img, img), 0);
	struct qcow2_header h;
	char err[200];
	assert_int_equal(parse_file(img, &h, err, sizeof(err)), 0);
	assert_int_equal(h.autoclear_features, 1);                 /* bitmaps consistent */
	assert_int_equal(qcow2_autoclear_to_clear(&h), 1);
	assert_int_equal(h.nb_extensions, 1);
	assert_int_equal(h.extensions[0].type, 0x23852875);
	h.autoclear_features &= ~qcow2_autoclear_to_clear(&h);
	h.incompatible_features |= 1;
	uint8_t *buf = malloc(65536);
	size_t used;
	assert_int_equal(qcow2_header_serialize(&h, buf, 65536, &used), 0);
	int fd = open(img, O_RDWR);
	assert_int_equal(pwrite(fd, buf, 65536, 0), 65536);
	close(fd);
	char *info;
	assert_int_equal(sh(&info, "qemu-img info -U --output json '%s'", img), 0);
	char s[64];
	assert_string_equal(json_str(info, "dirty-flag", s, sizeof(s)), "true");
	/* The extension is kept, but QEMU no longer trusts the bitmap: it
	 * is not listed, and its clusters count as leaks (ours too). */
	assert_null(strstr(info, "\"b0\""));
	free(info);
	agree_with_qemu(img, "stale bitmap");
	assert_int_equal(check_file(img, QCOW2_REPAIR_NONE).leaks, 2);
	struct qcow2_header h2;
	assert_int_equal(parse_file(img, &h2, err, sizeof(err)), 0);
	assert_int_equal(h2.nb_extensions, 1);
	assert_int_equal(h2.extensions[0].len, h.extensions[0].len);
	assert_memory_equal(h2.extensions[0].data, h.extensions[0].data, h.extensions[0].len);
	assert_int_equal(h2.autoclear_features, 0);
	assert_int_equal(h2.incompatible_features, 1);
	qcow2_header_free(&h);
	qcow2_header_free(&h2);
	free(buf);
	unlink(img);
	free(img);
}

/* ---- refcount packing --------------------------------------------------- */

static void test_refcount_bytes(void **state)
{
	/* Values from the spec: sub-byte entries start at the least
	 * significant bit, wider ones are big-endian. */
	uint8_t b[64];
	memset(b, 0, sizeof(b));
	assert_int_equal(qcow2_refcount_set(b, 1, 0, 1), 0);
	assert_int_equal(b[0], 0x02);
	assert_int_equal(qcow2_refcount_set(b, 9, 0, 1), 0);
	assert_int_equal(b[1], 0x02);
	memset(b, 0, sizeof(b));
	assert_int_equal(qcow2_refcount_set(b, 1, 1, 3), 0);
	assert_int_equal(b[0], 0x0c);
	memset(b, 0, sizeof(b));
	assert_int_equal(qcow2_refcount_set(b, 1, 2, 0xa), 0);
	assert_int_equal(b[0], 0xa0);
	memset(b, 0, sizeof(b));
	assert_int_equal(qcow2_refcount_set(b, 1, 4, 0x1234), 0);
	assert_int_equal(b[2], 0x12);
	assert_int_equal(b[3], 0x34);
	assert_int_equal(qcow2_refcount_set(b, 2, 6, 0x0102030405060708ull), 0);
	assert_int_equal(b[16], 0x01);
	assert_int_equal(b[23], 0x08);
	assert_int_equal(qcow2_refcount_get(b, 2, 6), 0x0102030405060708ull);

	for (unsigned order = 0; order <= 6; order++) {
		uint64_t max = qcow2_refcount_max(order);
		unsigned n = 512 / (1u << order);
		memset(b, 0, sizeof(b));
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(qcow2_refcount_set(b, i, order, (i * 0x9e3779b97f4a7c15ull) & max), 0);
		for (unsigned i = 0; i < n; i++)
			assert_int_equal(qcow2_refcount_get(b, i, order), (i * 0x9e3779b97f4a7c15ull) & max);
		/* Setting one entry leaves its neighbours alone. */
		assert_int_equal(qcow2_refcount_set(b, 3, order, max), 0);
		assert_int_equal(qcow2_refcount_get(b, 3, order), max);
		assert_int_equal(qcow2_refcount_get(b, 2, order), (2 * 0x9e3779b97f4a7c15ull) & max);
		assert_int_equal(qcow2_refcount_get(b, 4, order), (4 * 0x9e3779b97f4a7c15ull) & max);
		if (order < 6)
			assert_int_equal(qcow2_refcount_set(b, 0, order, max + 1), -ERANGE);
	}
}

/* The refcount block of a qemu-made image with 4 KiB clusters reads as 1
 * for each used cluster and 0 after; and a refcount we set is one that
 * qemu-img check then sees as a leak. */
static void test_refcount_qemu(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("refc.qcow2");
	for (unsigned order = 0; order <= 6; order++) {
		unlink(img);
		assert_int_equal(sh(NULL, "qemu-img create -q -f qcow2 -o refcount_bits=%u,cluster_size=4096 '%s' 64M"
				    " && qemu-io -c 'write -P 0x11 0 300k' '%s' >/dev/null", 1u << order, img, img), 0);
		struct qcow2_header h;
		char err[200];
		assert_int_equal(parse_file(img, &h, err, sizeof(err)), 0);
		int fd = open(img, O_RDWR);
		uint64_t fs = file_size_of(fd), used = (fs + 4095) / 4096;
		uint8_t e[8], blk[4096];
		pread_exact(fd, e, 8, h.refcount_table_offset);
		uint64_t boff = qcow2_be64(e);
		assert_true(boff > 0);
		pread_exact(fd, blk, sizeof(blk), boff);
		/* 300k of data: 75 clusters, plus header, reftable, refblock,
		 * L1 and one L2. */
		assert_true(used >= 80);
		uint64_t n = 4096 * 8 >> order;
		for (uint64_t i = 0; i < n; i++)
			if (qcow2_refcount_get(blk, i, order) != (i < used))
				fail_msg("refcount_bits %u: cluster %llu reads %llu", 1u << order,
					 (unsigned long long)i, (unsigned long long)qcow2_refcount_get(blk, i, order));
		/* One more cluster in the file, refcounted but unused. */
		assert_int_equal(ftruncate(fd, (off_t)(used + 1) * 4096), 0);
		assert_int_equal(qcow2_refcount_set(blk, used, order, 1), 0);
		assert_int_equal(pwrite(fd, blk, sizeof(blk), boff), 4096);
		close(fd);
		char *out;
		assert_int_equal(sh(&out, "qemu-img check --output json '%s'", img), 3);
		if (json_num(out, "leaks") != 1)
			fail_msg("refcount_bits %u: qemu sees %lld leaks", 1u << order, json_num(out, "leaks"));
		free(out);
		qcow2_header_free(&h);
	}
	unlink(img);
	free(img);
}

/* ---- hostile headers ---------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

#define HFILE 0x40000ull   /* header, refcount table, refcount block, L1 */

/* A valid v3 header in a 64 KiB buffer, offsets and sizes as numbers from
 * the spec: 1 GiB, 64 KiB clusters, L1 of 2 entries at 0x30000, refcount
 * table at 0x10000, header_length 112, end marker at 112. */
static void good_header(uint8_t *b)
{
	memset(b, 0, 65536);
	put32(b, 0x514649fb);
	put32(b + 4, 3);
	put32(b + 20, 16);
	qcow2_put_be64(b + 24, 1ull << 30);
	put32(b + 36, 2);
	qcow2_put_be64(b + 40, 0x30000);
	qcow2_put_be64(b + 48, 0x10000);
	put32(b + 56, 1);
	put32(b + 96, 4);
	put32(b + 100, 112);
}

static void feature_entry(uint8_t *e, uint8_t type, uint8_t bit, const char *name)
{
	e[0] = type;
	e[1] = bit;
	memcpy(e + 2, name, strlen(name));
}

struct hostile {
	const char *what;
	void (*mutate)(uint8_t *b, size_t *len, uint64_t *fs);
	int rc;
	const char *msg;
};

static void m_none(uint8_t *b, size_t *len, uint64_t *fs) {}
static void m_truncated(uint8_t *b, size_t *len, uint64_t *fs) { *len = *fs = 50; }
static void m_short_buffer(uint8_t *b, size_t *len, uint64_t *fs) { *len = 4096; }
static void m_magic(uint8_t *b, size_t *len, uint64_t *fs) { b[3] = 0xfa; }
static void m_version(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 4, 4); }
static void m_bits8(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 20, 8); }
static void m_bits22(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 20, 22); }
static void m_hdrlen(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 100, 100); }
static void m_hdrlen_odd(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 100, 108); }
static void m_order(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 96, 7); }
static void m_crypt(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 32, 2); }
static void m_l1_huge(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 36, 0x10000000); }
static void m_l1_small(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 24, 3ull << 29); }
static void m_l1_past_eof(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 40, 0x100000); }
static void m_l1_misaligned(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 40, 0x30200); }
static void m_size_huge(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 24, (1ull << 61) + 512); }
static void m_rt_misaligned(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 48, 0x10008); }
static void m_rt_past_eof(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 48, 0x40000); }
static void m_rt_huge(uint8_t *b, size_t *len, uint64_t *fs) { put32(b + 56, 129); }
static void m_snap_misaligned(uint8_t *b, size_t *len, uint64_t *fs)
{
	put32(b + 60, 1);
	qcow2_put_be64(b + 64, 0x20100);
}
static void m_ext_past_cluster(uint8_t *b, size_t *len, uint64_t *fs)
{
	put32(b + 112, 0x12345678);
	put32(b + 116, 65536 - 120 + 1);
}
static void m_no_end(uint8_t *b, size_t *len, uint64_t *fs)
{
	put32(b + 112, 0x12345678);       /* fills the cluster exactly */
	put32(b + 116, 65536 - 120);
	memset(b + 120, 0xee, 65536 - 120);
}
static void m_incompat7(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 72, 1u << 7); }
static void m_incompat7_named(uint8_t *b, size_t *len, uint64_t *fs)
{
	qcow2_put_be64(b + 72, 1u << 7);
	put32(b + 112, 0x6803f857);
	put32(b + 116, 96);
	feature_entry(b + 120, 0, 0, "dirty bit");
	feature_entry(b + 168, 0, 7, "foo");
}
static void m_data_file(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 72, 1u << 2); }
static void m_extl2(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 72, 1u << 4); }
static void m_ctype_bad(uint8_t *b, size_t *len, uint64_t *fs)
{
	qcow2_put_be64(b + 72, 1u << 3);
	b[104] = 2;
}
static void m_ctype_nobit(uint8_t *b, size_t *len, uint64_t *fs) { b[104] = 1; }
static void m_ctype_bit_zlib(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 72, 1u << 3); }
static void m_backing_outside(uint8_t *b, size_t *len, uint64_t *fs)
{
	qcow2_put_be64(b + 8, 65530);
	put32(b + 16, 10);
}
static void m_raw_data_nofile(uint8_t *b, size_t *len, uint64_t *fs) { qcow2_put_be64(b + 88, 2); }
static void m_zstd_ok(uint8_t *b, size_t *len, uint64_t *fs)
{
	qcow2_put_be64(b + 72, 1u << 3);
	b[104] = 1;
}
static void m_v2_old_backing(uint8_t *b, size_t *len, uint64_t *fs)
{
	/* Pre-extension QEMU: backing name right after the 72-byte header. */
	put32(b + 4, 2);
	memset(b + 72, 0, 40);
	qcow2_put_be64(b + 8, 72);
	put32(b + 16, 8);
	memcpy(b + 72, "base.img", 8);
}

static const struct hostile hostile[] = {
	{ "valid", m_none, 0, "" },
	{ "zstd", m_zstd_ok, 0, "" },
	{ "v2 backing at 72", m_v2_old_backing, 0, "" },
	{ "truncated", m_truncated, -EINVAL, "too short" },
	{ "short buffer", m_short_buffer, -ENOBUFS, "first 65536 bytes" },
	{ "magic", m_magic, -EINVAL, "bad magic" },
	{ "version 4", m_version, -ENOTSUP, "version 4" },
	{ "cluster_bits 8", m_bits8, -EINVAL, "cluster_bits 8 out of range (9..21)" },
	{ "cluster_bits 22", m_bits22, -EINVAL, "cluster_bits 22 out of range (9..21)" },
	{ "header_length 100", m_hdrlen, -EINVAL, "header_length 100" },
	{ "header_length 108", m_hdrlen_odd, -EINVAL, "header_length 108" },
	{ "refcount_order 7", m_order, -EINVAL, "refcount_order 7" },
	{ "encryption", m_crypt, -ENOTSUP, "image uses encryption, which kvmini does not support" },
	{ "l1_size huge", m_l1_huge, -EINVAL, "l1_size 268435456 too large" },
	{ "l1_size small", m_l1_small, -EINVAL, "l1_size 2 too small" },
	{ "L1 past EOF", m_l1_past_eof, -EINVAL, "L1 table (offset 1048576) lies past the end of the file" },
	{ "L1 misaligned", m_l1_misaligned, -EINVAL, "L1 table (offset 197120) not cluster-aligned" },
	{ "size 2^61+", m_size_huge, -EINVAL, "virtual size" },
	{ "reftable misaligned", m_rt_misaligned, -EINVAL, "refcount table not cluster-aligned" },
	{ "reftable past EOF", m_rt_past_eof, -EINVAL, "refcount table (offset 262144) lies past" },
	{ "reftable huge", m_rt_huge, -EINVAL, "refcount table (129 clusters) too large" },
	{ "snapshots misaligned", m_snap_misaligned, -EINVAL, "snapshot table not cluster-aligned" },
	{ "extension past cluster", m_ext_past_cluster, -EINVAL, "length 65417 runs past the end" },
	{ "no end marker", m_no_end, -EINVAL, "without an end marker" },
	{ "incompat bit 7", m_incompat7, -ENOTSUP, "unknown incompatible feature bit 7" },
	{ "incompat bit 7 named", m_incompat7_named, -ENOTSUP, "unknown incompatible feature bit 7 ('foo')" },
	{ "external data file", m_data_file, -ENOTSUP, "external data file is not supported" },
	{ "extended L2", m_extl2, -ENOTSUP, "extended L2 entries (subclusters) are not supported" },
	{ "compression type 2", m_ctype_bad, -ENOTSUP, "unknown compression type 2" },
	{ "compression type without bit", m_ctype_nobit, -EINVAL, "without the compression type bit" },
	{ "compression bit with zlib", m_ctype_bit_zlib, -EINVAL, "compression type bit set" },
	{ "backing name outside cluster", m_backing_outside, -EINVAL, "outside the first cluster" },
	{ "raw data bit without file", m_raw_data_nofile, -EINVAL, "raw external data" },
};

/* A v3 header cut short before its v3 fields (found by fuzz_qcow2): the
 * buffer holds exactly the file's 80 bytes, nothing may be read past it. */
static void test_short_v3_header(void **state)
{
	uint8_t *buf = calloc(1, 80);
	assert_non_null(buf);
	memcpy(buf, "QFI\xfb\0\0\0\3", 8);
	buf[23] = 16;                         /* cluster_bits */
	struct qcow2_header h;
	char err[200];
	assert_int_equal(qcow2_header_parse(&h, buf, 80, 80, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too short"));
	free(buf);
}

static void test_hostile_headers(void **state)
{
	uint8_t *b = malloc(65536);
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		const struct hostile *t = &hostile[i];
		size_t len = 65536;
		uint64_t fs = HFILE;
		good_header(b);
		t->mutate(b, &len, &fs);
		struct qcow2_header h;
		char err[200] = "unset";
		int rc = qcow2_header_parse(&h, b, len, fs, err, sizeof(err));
		if (rc != t->rc)
			fail_msg("%s: rc %d, want %d (%s)", t->what, rc, t->rc, err);
		if (!strstr(err, t->msg))
			fail_msg("%s: message '%s' lacks '%s'", t->what, err, t->msg);
		if (rc == 0) {
			assert_string_equal(err, "");
			qcow2_header_free(&h);
		}
	}
	free(b);
}

/* ---- entries ----------------------------------------------------------- */

static void test_entries(void **state)
{
	char err[200];
	uint64_t off;
	bool copied;
	assert_int_equal(qcow2_l1_entry_decode(0x8000000000050000ull, 16, &off, &copied, err, sizeof(err)), 0);
	assert_int_equal(off, 0x50000);
	assert_true(copied);
	assert_int_equal(qcow2_l1_entry_decode(0x0100000000050000ull, 16, &off, &copied, err, sizeof(err)), -EINVAL);
	assert_int_equal(qcow2_l1_entry_decode(0x0000000000050200ull, 16, &off, &copied, err, sizeof(err)), -EINVAL);

	struct qcow2_l2_info e;
	assert_int_equal(qcow2_l2_entry_decode(0x8000000000070000ull, 3, 16, &e, err, sizeof(err)), 0);
	assert_int_equal(e.kind, QCOW2_CLUSTER_NORMAL);
	assert_int_equal(e.host_offset, 0x70000);
	assert_true(e.copied);
	assert_int_equal(qcow2_l2_entry_decode(1, 3, 16, &e, err, sizeof(err)), 0);
	assert_int_equal(e.kind, QCOW2_CLUSTER_ZERO_PLAIN);
	assert_int_equal(qcow2_l2_entry_decode(0x8000000000070001ull, 3, 16, &e, err, sizeof(err)), 0);
	assert_int_equal(e.kind, QCOW2_CLUSTER_ZERO_ALLOC);
	assert_int_equal(qcow2_l2_entry_decode(0, 3, 16, &e, err, sizeof(err)), 0);
	assert_int_equal(e.kind, QCOW2_CLUSTER_UNALLOCATED);
	assert_int_equal(qcow2_l2_entry_decode(1, 2, 16, &e, err, sizeof(err)), -EINVAL);      /* v2 zero */
	assert_int_equal(qcow2_l2_entry_decode(0x70002, 3, 16, &e, err, sizeof(err)), -EINVAL); /* bit 1 */
	assert_non_null(strstr(err, "reserved"));
	assert_int_equal(qcow2_l2_entry_decode(0x0200000000070000ull, 3, 16, &e, err, sizeof(err)), -EINVAL);
	assert_int_equal(qcow2_l2_entry_decode(0x71000, 3, 16, &e, err, sizeof(err)), -EINVAL);  /* misaligned */
	assert_int_equal(qcow2_l2_entry_decode(1ull << 63, 3, 16, &e, err, sizeof(err)), -EINVAL);

	/* Compressed, 64 KiB clusters: x = 62 - 8 = 54; offset 0x12345 with
	 * 3 more sectors holds (3 + 1) * 512 - 0x145 bytes. */
	uint64_t c = 1ull << 62 | 3ull << 54 | 0x12345;
	assert_int_equal(qcow2_l2_entry_decode(c, 3, 16, &e, err, sizeof(err)), 0);
	assert_int_equal(e.kind, QCOW2_CLUSTER_COMPRESSED);
	assert_int_equal(e.host_offset, 0x12345);
	assert_int_equal(e.csize, 4 * 512 - 0x145);
	assert_int_equal(qcow2_compressed_encode(0x12345, 4 * 512 - 0x145, 16), c);
	assert_int_equal(qcow2_compressed_encode(0x12345, 3 * 512 - 0x145, 16), 1ull << 62 | 2ull << 54 | 0x12345);
	assert_int_equal(qcow2_l2_entry_decode(c | 1ull << 63, 3, 16, &e, err, sizeof(err)), -EINVAL);
	/* 512-byte clusters: x = 61, one sector bit; offset bits 56..60 must be 0. */
	assert_int_equal(qcow2_l2_entry_decode(1ull << 62 | 1ull << 56, 3, 9, &e, err, sizeof(err)), -EINVAL);
	assert_int_equal(qcow2_l2_entry_decode(1ull << 62 | 1ull << 61 | 0x200, 3, 9, &e, err, sizeof(err)), 0);
	assert_int_equal(e.csize, 1024);
	/* 2 MiB clusters: x = 49, offsets beyond 2^49 cannot be encoded. */
	assert_int_equal(qcow2_compressed_encode(1ull << 49, 100, 21), 0);
	assert_int_equal(qcow2_compressed_encode((1ull << 49) - 512, 100, 21), 1ull << 62 | ((1ull << 49) - 512));
	/* More than the sector field holds. */
	assert_int_equal(qcow2_compressed_encode(0, 2 * 65536 + 1, 16), 0);
}

/* ---- compression ------------------------------------------------------- */

/* Even MiBs repeat every 3000 bytes: only a deflate window of 4 KiB (as
 * QEMU uses) finds the matches. Odd MiBs are short-period text, which
 * compresses even in 512-byte clusters. */
static void fill_compressible(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (i >> 20) % 2 == 0 ? (uint8_t)(((i % 3000) + seed) * 2654435761u >> 13)
					  : (uint8_t)("kvmini qcow2 "[(i / 7 + seed) % 13] + (i / 4096));
}

static void test_compress_roundtrip(void **state)
{
	size_t cs = 65536;
	uint8_t *src = malloc(cs), *z = malloc(cs + 64), *out = malloc(cs + 16);
	for (int type = 0; type <= 1; type++) {
		fill_compressible(src, cs, 3);
		ssize_t n = qcow2_compress(type, src, cs, z, cs);
		assert_true(n > 0 && n < (ssize_t)cs);
		/* Trailing sector padding after the stream is fine. */
		memset(z + n, 0, 64);
		memset(out, 0x5a, cs + 16);
		assert_int_equal(qcow2_decompress(type, z, (size_t)n + 64, out, cs), 0);
		assert_memory_equal(out, src, cs);
		for (int i = 0; i < 16; i++)
			assert_int_equal(out[cs + i], 0x5a);         /* no overrun */
		/* Cut short: the cluster cannot be filled. */
		assert_int_equal(qcow2_decompress(type, z, (size_t)n / 2, out, cs), -EIO);
		/* A cluster that wants more than the stream holds. */
		assert_int_equal(qcow2_decompress(type, z, (size_t)n + 64, out, cs / 2), 0);
		memset(out, 0, cs + 16);
		assert_int_equal(qcow2_decompress(type, z, (size_t)n, out, cs + 16) , -EIO);
		/* Garbage. */
		memset(z, 0xff, 256);
		assert_int_equal(qcow2_decompress(type, z, 256, out, cs), -EIO);
		/* Random data does not shrink. */
		for (size_t i = 0; i < cs; i++)
			src[i] = (uint8_t)(rand() >> 7);
		assert_int_equal(qcow2_compress(type, src, cs, z, cs), -ENOSPC);
	}
	assert_int_equal(qcow2_decompress(2, z, 1, out, 1), -ENOTSUP);
	free(src);
	free(z);
	free(out);
}

/* Walks the active L1/L2 of img; for each compressed cluster, decompresses
 * it and compares with the raw file at the same guest offset. Returns the
 * number of compressed clusters. */
static unsigned verify_compressed(const char *img, const char *raw)
{
	struct qcow2_header h;
	char err[200];
	if (parse_file(img, &h, err, sizeof(err)))
		fail_msg("%s: %s", img, err);
	int fd = open(img, O_RDONLY), rfd = open(raw, O_RDONLY);
	assert_true(fd >= 0 && rfd >= 0);
	uint64_t cs = qcow2_cluster_size(&h), fs = file_size_of(fd), l2e = cs / 8;
	uint8_t *l1 = malloc(h.l1_size * 8), *l2 = malloc(cs), *z = calloc(1, 2 * cs), *out = malloc(cs),
		*want = malloc(cs);
	pread_exact(fd, l1, h.l1_size * 8, h.l1_table_offset);
	unsigned n = 0;
	for (uint64_t i = 0; i < h.l1_size; i++) {
		uint64_t l2off;
		bool copied;
		assert_int_equal(qcow2_l1_entry_decode(qcow2_be64(l1 + i * 8), h.cluster_bits, &l2off, &copied,
						       err, sizeof(err)), 0);
		if (!l2off)
			continue;
		pread_exact(fd, l2, cs, l2off);
		for (uint64_t k = 0; k < l2e; k++) {
			struct qcow2_l2_info e;
			assert_int_equal(qcow2_l2_entry_decode(qcow2_be64(l2 + k * 8), h.version, h.cluster_bits,
							       &e, err, sizeof(err)), 0);
			if (e.kind != QCOW2_CLUSTER_COMPRESSED)
				continue;
			assert_true(e.csize <= 2 * cs);
			assert_true(e.host_offset < fs);
			/* The last sector may end past EOF. */
			size_t len = e.csize < fs - e.host_offset ? e.csize : fs - e.host_offset;
			pread_exact(fd, z, len, e.host_offset);
			uint64_t g = (i * l2e + k) * cs;
			memset(want, 0, cs);
			assert_true(pread(rfd, want, cs, (off_t)g) > 0);   /* the last cluster may be short */
			memset(out, 0, cs);
			int rc = qcow2_decompress(h.compression_type, z, len, out, cs);
			if (rc || memcmp(out, want, cs))
				fail_msg("%s: guest cluster at %llu: rc %d or data differs", img,
					 (unsigned long long)g, rc);
			n++;
		}
	}
	free(l1);
	free(l2);
	free(z);
	free(out);
	free(want);
	close(fd);
	close(rfd);
	qcow2_header_free(&h);
	return n;
}

static void test_decompress_qemu(void **state)
{
	NEED_QEMU();
	char *raw = tmp_path("src.raw"), *img = tmp_path("comp.qcow2"), *back = tmp_path("back.raw");
	size_t size = 3 << 20;
	uint8_t *data = malloc(size);
	fill_compressible(data, size, 1);
	for (size_t i = 1 << 20; i < (1 << 20) + 70000; i++)
		data[i] = (uint8_t)(rand() >> 5);                      /* stored uncompressed */
	memset(data + (2 << 20), 0, 100000);                        /* zero clusters */
	int fd = open(raw, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, data, size), (ssize_t)size);
	close(fd);
	const char *variants[] = { "", "-o compression_type=zstd", "-o cluster_size=4096",
				   "-o cluster_size=4096,compression_type=zstd", "-o cluster_size=512",
				   "-o compat=0.10,cluster_size=2M" };
	for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
		unlink(img);
		assert_int_equal(sh(NULL, "qemu-img convert -c -f raw -O qcow2 %s '%s' '%s'", variants[v], raw, img), 0);
		/* Compare with what qemu itself reads back, not only our source. */
		assert_int_equal(sh(NULL, "qemu-img convert -f qcow2 -O raw '%s' '%s'", img, back), 0);
		assert_int_equal(sh(NULL, "cmp -s '%s' '%s'", raw, back), 0);
		unsigned n = verify_compressed(img, back);
		if (n < 2)
			fail_msg("%s: only %u compressed clusters", variants[v], n);
		printf("# %s: %u compressed clusters match\n", *variants[v] ? variants[v] : "default", n);
	}
	free(data);
	unlink(raw);
	unlink(img);
	unlink(back);
	free(raw);
	free(img);
	free(back);
}

/* ---- qcow2_create ------------------------------------------------------- */

struct copt {
	struct qcow2_create_opts o;
	const char *compat;
};

static void test_create_sweep(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("create.qcow2"), *base = tmp_path("cbase.qcow2");
	assert_int_equal(sh(NULL, "qemu-img create -q -f qcow2 '%s' 64M", base), 0);
	const struct copt opts[] = {
		{ { .size = 1ull << 30 }, "1.1" },
		{ { .size = 1ull << 30, .version = 2 }, "0.10" },
		{ { .size = 0 }, "1.1" },
		{ { .size = 100ull << 20, .cluster_size = 512, .refcount_bits = 1 }, "1.1" },
		{ { .size = 100ull << 20, .cluster_size = 512, .refcount_bits = 64,
		    .prealloc = QCOW2_PREALLOC_METADATA }, "1.1" },
		{ { .size = 64ull << 20, .cluster_size = 4096, .refcount_bits = 2,
		    .prealloc = QCOW2_PREALLOC_METADATA }, "1.1" },
		{ { .size = 10ull << 30, .cluster_size = 2u << 20, .version = 2 }, "0.10" },
		{ { .size = 1ull << 40, .refcount_bits = 1 }, "1.1" },
		{ { .size = 1ull << 40, .cluster_size = 4096, .refcount_bits = 4 }, "1.1" },
		{ { .size = 3ull << 30, .refcount_bits = 8, .lazy_refcounts = true }, "1.1" },
		{ { .size = 512ull << 20, .refcount_bits = 32, .compression_type = 1 }, "1.1" },
		{ { .size = 300ull << 20, .cluster_size = 4096, .refcount_bits = 1,
		    .prealloc = QCOW2_PREALLOC_METADATA }, "1.1" },
		{ { .size = 1ull << 26, .cluster_size = 2u << 20, .prealloc = QCOW2_PREALLOC_METADATA,
		    .version = 2 }, "0.10" },
		{ { .size = 64ull << 20, .backing_file = base, .backing_format = "qcow2" }, "1.1" },
		{ { .size = 64ull << 20, .backing_file = base, .cluster_size = 512, .version = 2 }, "0.10" },
		{ { .size = 12345 * 512, .cluster_size = 8192, .prealloc = QCOW2_PREALLOC_METADATA }, "1.1" },
	};
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		const struct qcow2_create_opts *o = &opts[i].o;
		int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
		char err[200] = "";
		int rc = qcow2_create(fd, o, err, sizeof(err));
		close(fd);
		if (rc)
			fail_msg("case %zu: %d %s", i, rc, err);
		char *chk, *info, s[256];
		rc = sh(&chk, "qemu-img check --output json '%s'", img);
		if (rc != 0 || json_num(chk, "leaks") > 0 || json_num(chk, "corruptions") > 0 ||
		    json_num(chk, "check-errors") != 0)
			fail_msg("case %zu: qemu-img check %d: %s", i, rc, chk);
		assert_int_equal(sh(&info, "qemu-img info --output json '%s'", img), 0);
		uint64_t cs = o->cluster_size ? o->cluster_size : 65536;
		assert_int_equal(json_num(info, "virtual-size"), o->size);
		assert_int_equal(json_num(info, "cluster-size"), cs);
		assert_string_equal(json_str(info, "compat", s, sizeof(s)), opts[i].compat);
		if (!o->version || o->version == 3) {
			assert_int_equal(json_num(info, "refcount-bits"), o->refcount_bits ? o->refcount_bits : 16);
			assert_string_equal(json_str(info, "lazy-refcounts", s, sizeof(s)),
					    o->lazy_refcounts ? "true" : "false");
			assert_string_equal(json_str(info, "compression-type", s, sizeof(s)),
					    o->compression_type ? "zstd" : "zlib");
		}
		if (o->backing_file) {
			assert_string_equal(json_str(info, "backing-filename", s, sizeof(s)), o->backing_file);
			if (o->backing_format)
				assert_string_equal(json_str(info, "backing-filename-format", s, sizeof(s)),
						    o->backing_format);
		}
		if (o->prealloc == QCOW2_PREALLOC_METADATA)
			assert_int_equal(json_num(chk, "allocated-clusters"), (o->size + cs - 1) / cs);
		/* Our own checker agrees. */
		fd = open(img, O_RDONLY);
		struct qcow2_check_result r = { .filename = img };
		assert_int_equal(qcow2_check(fd, QCOW2_REPAIR_NONE, &r), 0);
		close(fd);
		if (r.corruptions || r.leaks || r.check_errors)
			fail_msg("case %zu: qcow2_check: %s", i, r.message);
		assert_int_equal(r.image_end_offset, json_num(chk, "image-end-offset"));
		/* And qemu writes into it. */
		if (o->size >= (1 << 20)) {
			assert_int_equal(sh(NULL, "qemu-io -c 'write -P 0xab 0 1M' '%s'", img), 0);
			assert_int_equal(sh(NULL, "qemu-io -c 'read -P 0xab 0 1M' '%s' | grep -q 'read 1048576'",
					    img), 0);
			assert_int_equal(sh(NULL, "qemu-img check '%s'", img), 0);
		}
		free(chk);
		free(info);
	}
	/* Bad options, one line each. */
	const struct qcow2_create_opts bad[] = {
		{ .size = 1000 },
		{ .size = 1 << 20, .cluster_size = 3000 },
		{ .size = 1 << 20, .cluster_size = 4u << 20 },
		{ .size = 1 << 20, .refcount_bits = 128 },
		{ .size = 1 << 20, .version = 2, .refcount_bits = 8 },
		{ .size = 1 << 20, .version = 2, .lazy_refcounts = true },
		{ .size = 1 << 20, .version = 4 },
		{ .size = 1ull << 40, .cluster_size = 512 },
		{ .size = 1 << 20, .backing_format = "raw" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
		char err[200] = "";
		assert_int_equal(qcow2_create(fd, &bad[i], err, sizeof(err)), -EINVAL);
		assert_true(err[0] && !strchr(err, '\n'));
		close(fd);
	}
	unlink(img);
	unlink(base);
	free(img);
	free(base);
}

/* A compressed cluster written by us (qcow2_compress + encode) reads back
 * in qemu: prealloc one cluster, then turn its L2 entry into a compressed
 * descriptor pointing into the same host cluster. */
static void test_compressed_written_by_us(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("ourcomp.qcow2"), *raw = tmp_path("ourcomp.raw");
	for (int type = 0; type <= 1; type++) {
		struct qcow2_create_opts o = { .size = 65536, .prealloc = QCOW2_PREALLOC_METADATA,
					       .compression_type = type };
		int fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
		char err[200];
		assert_int_equal(qcow2_create(fd, &o, err, sizeof(err)), 0);
		struct qcow2_header h;
		close(fd);
		assert_int_equal(parse_file(img, &h, err, sizeof(err)), 0);
		fd = open(img, O_RDWR);
		uint8_t e[8], *src = malloc(65536), *z = malloc(65536);
		pread_exact(fd, e, 8, h.l1_table_offset);
		uint64_t l2 = qcow2_be64(e) & QCOW2_OFFSET_MASK;
		pread_exact(fd, e, 8, l2);
		uint64_t host = qcow2_be64(e) & QCOW2_OFFSET_MASK;
		fill_compressible(src, 65536, 5);
		ssize_t n = qcow2_compress(type, src, 65536, z, 65536);
		assert_true(n > 0);
		/* Not at the cluster start, to exercise the offset split. */
		assert_int_equal(pwrite(fd, z, (size_t)n, (off_t)host + 1000), n);
		qcow2_put_be64(e, qcow2_compressed_encode(host + 1000, (uint64_t)n, 16));
		assert_int_equal(pwrite(fd, e, 8, (off_t)l2), 8);
		close(fd);
		assert_int_equal(sh(NULL, "qemu-img convert -O raw '%s' '%s'", img, raw), 0);
		fd = open(raw, O_RDONLY);
		pread_exact(fd, z, 65536, 0);
		close(fd);
		assert_memory_equal(z, src, 65536);
		char *chk;
		assert_int_equal(sh(&chk, "qemu-img check --output json '%s'", img), 0);
		assert_int_equal(json_num(chk, "compressed-clusters"), 1);
		free(chk);
		free(src);
		free(z);
		qcow2_header_free(&h);
	}
	unlink(img);
	unlink(raw);
	free(img);
	free(raw);
}

/* ---- qcow2_check -------------------------------------------------------- */

static struct qcow2_check_result check_file(const char *img, enum qcow2_repair fix)
{
	int fd = open(img, fix ? O_RDWR : O_RDONLY);
	assert_true(fd >= 0);
	struct qcow2_check_result r = { .filename = img };
	int rc = qcow2_check(fd, fix, &r);
	if (rc)
		fail_msg("%s: qcow2_check %d: %s", img, rc, r.message);
	close(fd);
	return r;
}

/* Our result against qemu-img check --output json on the same file. */
static void agree_with_qemu(const char *img, const char *what)
{
	char *out;
	sh(&out, "qemu-img check --output json '%s'", img);
	struct qcow2_check_result r = check_file(img, QCOW2_REPAIR_NONE);
	long long ql = json_num(out, "leaks"), qc = json_num(out, "corruptions");
	if ((long long)r.leaks != (ql < 0 ? 0 : ql) || (long long)r.corruptions != (qc < 0 ? 0 : qc) ||
	    r.check_errors != (uint64_t)json_num(out, "check-errors"))
		fail_msg("%s: ours leaks %llu corruptions %llu errors %llu, qemu's %s", what,
			 (unsigned long long)r.leaks, (unsigned long long)r.corruptions,
			 (unsigned long long)r.check_errors, out);
	if (!qc || qc < 0) {    /* qemu's counts are only meaningful on a sane image */
		assert_int_equal(r.image_end_offset, json_num(out, "image-end-offset"));
		assert_int_equal(r.total_clusters, json_num(out, "total-clusters"));
		long long qa = json_num(out, "allocated-clusters"), qf = json_num(out, "fragmented-clusters");
		assert_int_equal(r.allocated_clusters, qa < 0 ? 0 : qa);
		assert_int_equal(r.fragmented_clusters, qf < 0 ? 0 : qf);
	}
	free(out);
}

static void qemu_clean(const char *img, const char *what)
{
	char *out;
	int rc = sh(&out, "qemu-img check --output json '%s'", img);
	if (rc != 0 || json_num(out, "leaks") > 0 || json_num(out, "corruptions") > 0)
		fail_msg("%s: qemu-img check %d after repair: %s", what, rc, out);
	free(out);
}

/* A qemu image with data, a snapshot, more data and (v3) a bitmap: all
 * the places clusters are referenced from. */
static void make_busy(const char *img, const char *opts)
{
	unlink(img);
	assert_int_equal(sh(NULL, "qemu-img create -q -f qcow2 %s '%s' 64M"
			    " && qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 10M 64k' -c 'write -P 3 5M 128k' '%s'"
			    " && qemu-img snapshot -c s1 '%s'"
			    " && qemu-io -c 'write -P 4 0 256k' -c 'write -P 5 30M 8k' '%s'"
			    " && { %s || qemu-img bitmap --add '%s' b0; }", opts, img, img, img, img,
			    strstr(opts, "compat=0.10") ? "true" : "false", img), 0);
}

/* Refcount of the cluster at off, read and written through our codec. */
static uint64_t refcount_io(const char *img, uint64_t off, const uint64_t *set)
{
	struct qcow2_header h;
	char err[200];
	assert_int_equal(parse_file(img, &h, err, sizeof(err)), 0);
	int fd = open(img, O_RDWR);
	uint64_t cs = qcow2_cluster_size(&h), per = qcow2_refblock_entries(&h), cl = off / cs;
	uint8_t e[8], *blk = malloc(cs);
	pread_exact(fd, e, 8, h.refcount_table_offset + cl / per * 8);
	uint64_t boff = qcow2_be64(e);
	assert_true(boff);
	pread_exact(fd, blk, cs, boff);
	uint64_t v = qcow2_refcount_get(blk, cl % per, h.refcount_order);
	if (set) {
		assert_int_equal(qcow2_refcount_set(blk, cl % per, h.refcount_order, *set), 0);
		assert_int_equal(pwrite(fd, blk, cs, (off_t)boff), (ssize_t)cs);
	}
	close(fd);
	free(blk);
	qcow2_header_free(&h);
	return v;
}

/* The host offset of guest cluster g's L2 table and of its L2 entry. */
static void l2_of(const char *img, uint64_t guest, uint64_t *l2, uint64_t *entry)
{
	struct qcow2_header h;
	char err[200];
	assert_int_equal(parse_file(img, &h, err, sizeof(err)), 0);
	uint64_t cs = qcow2_cluster_size(&h), g = guest / cs;
	int fd = open(img, O_RDONLY);
	uint8_t e[8];
	pread_exact(fd, e, 8, h.l1_table_offset + g / (cs / 8) * 8);
	*l2 = qcow2_be64(e) & QCOW2_OFFSET_MASK;
	*entry = *l2 + g % (cs / 8) * 8;
	close(fd);
	qcow2_header_free(&h);
}

static void test_check_clean(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("clean.qcow2"), *raw = tmp_path("clean.raw");
	const char *opts[] = { "-o cluster_size=65536", "-o refcount_bits=2,cluster_size=4096",
			       "-o compat=0.10,cluster_size=512", "-o refcount_bits=64",
			       "-o cluster_size=2M,lazy_refcounts=on" };
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
		make_busy(img, opts[i]);
		agree_with_qemu(img, opts[i]);
		struct qcow2_check_result r = check_file(img, QCOW2_REPAIR_NONE);
		assert_int_equal(r.corruptions + r.leaks + r.check_errors, 0);
		assert_string_equal(r.message, "");
		assert_string_equal(r.format, "qcow2");
		assert_ptr_equal(r.filename, img);
	}
	/* Compressed clusters, zstd. */
	assert_int_equal(sh(NULL, "head -c 2M /dev/zero | tr '\\0' 'k' > '%s' && qemu-img convert -c -f raw"
			    " -O qcow2 -o compression_type=zstd,cluster_size=4096 '%s' '%s'", raw, raw, img), 0);
	agree_with_qemu(img, "compressed");
	assert_int_equal(check_file(img, QCOW2_REPAIR_NONE).compressed_clusters, 512);
	unlink(img);
	unlink(raw);
	free(img);
	free(raw);
}

static void test_check_leaks(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("leak.qcow2");
	make_busy(img, "-o cluster_size=4096");
	uint64_t two = 2, one = 1;
	/* The header cluster's refcount 1 -> 2: a leak. */
	assert_int_equal(refcount_io(img, 0, &two), 1);
	/* A free cluster inside the file given a refcount: another leak. */
	int fd = open(img, O_RDWR);
	uint64_t fs = file_size_of(fd);
	assert_int_equal(ftruncate(fd, (off_t)(fs + 3 * 4096)), 0);
	close(fd);
	refcount_io(img, (fs + 4095) / 4096 * 4096 + 4096, &one);
	agree_with_qemu(img, "leaks");
	struct qcow2_check_result r = check_file(img, QCOW2_REPAIR_NONE);
	assert_int_equal(r.leaks, 2);
	assert_int_equal(r.corruptions, 0);
	assert_non_null(strstr(r.message, "leaked"));
	r = check_file(img, QCOW2_REPAIR_LEAKS);
	assert_int_equal(r.leaks_fixed, 2);
	qemu_clean(img, "leaks repaired");
	assert_int_equal(refcount_io(img, 0, NULL), 1);
	r = check_file(img, QCOW2_REPAIR_NONE);
	assert_int_equal(r.leaks + r.corruptions, 0);
	unlink(img);
	free(img);
}

static void test_check_corruptions(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("corrupt.qcow2");
	uint64_t zero = 0, l2, entry;

	/* An L2 table with refcount 0. */
	make_busy(img, "-o cluster_size=4096");
	l2_of(img, 30 << 20, &l2, &entry);
	refcount_io(img, l2, &zero);
	agree_with_qemu(img, "L2 refcount 0");
	struct qcow2_check_result r = check_file(img, QCOW2_REPAIR_NONE);
	assert_true(r.corruptions >= 1);
	r = check_file(img, QCOW2_REPAIR_LEAKS);
	assert_true(r.corruptions >= 1);
	assert_int_equal(r.corruptions_fixed, 0);
	r = check_file(img, QCOW2_REPAIR_ALL);
	assert_int_equal(r.corruptions_fixed, r.corruptions);
	qemu_clean(img, "L2 refcount repaired");
	assert_int_equal(refcount_io(img, l2, NULL), 1);

	/* Two L2 entries naming one cluster (refcount 1, COPIED on both):
	 * guest 30M + 4k now shares 30M's data cluster. */
	make_busy(img, "-o cluster_size=4096");
	l2_of(img, 30 << 20, &l2, &entry);
	int fd = open(img, O_RDWR);
	uint8_t e[8];
	pread_exact(fd, e, 8, entry);
	assert_true(qcow2_be64(e) & QCOW2_OFLAG_COPIED);
	uint64_t old;
	uint8_t o8[8];
	pread_exact(fd, o8, 8, entry + 8);
	old = qcow2_be64(o8) & QCOW2_OFFSET_MASK;
	assert_int_equal(pwrite(fd, e, 8, (off_t)entry + 8), 8);
	close(fd);
	agree_with_qemu(img, "shared cluster");
	r = check_file(img, QCOW2_REPAIR_NONE);
	assert_int_equal(r.corruptions, 1);
	assert_int_equal(r.leaks, 1);                     /* the cluster 30M+4k had */
	r = check_file(img, QCOW2_REPAIR_ALL);
	assert_int_equal(r.leaks_fixed, 1);
	qemu_clean(img, "shared cluster repaired");
	assert_int_equal(refcount_io(img, qcow2_be64(e) & QCOW2_OFFSET_MASK, NULL), 2);
	assert_int_equal(refcount_io(img, old, NULL), 0);
	/* The COPIED flags are gone from both entries. */
	fd = open(img, O_RDONLY);
	pread_exact(fd, e, 8, entry);
	pread_exact(fd, o8, 8, entry + 8);
	close(fd);
	assert_false(qcow2_be64(e) & QCOW2_OFLAG_COPIED);
	assert_false(qcow2_be64(o8) & QCOW2_OFLAG_COPIED);

	/* A refcount table entry knocked out: the refcount structures are
	 * rebuilt past the end of the file. */
	make_busy(img, "-o cluster_size=4096");
	struct qcow2_header h;
	char err[200];
	assert_int_equal(parse_file(img, &h, err, sizeof(err)), 0);
	fd = open(img, O_RDWR);
	memset(e, 0, 8);
	assert_int_equal(pwrite(fd, e, 8, (off_t)h.refcount_table_offset), 8);
	close(fd);
	agree_with_qemu(img, "refcount block missing");
	r = check_file(img, QCOW2_REPAIR_ALL);
	assert_true(r.corruptions > 0);
	assert_int_equal(r.corruptions_fixed, r.corruptions);
	qemu_clean(img, "refcounts rebuilt");
	assert_int_equal(sh(NULL, "qemu-io -c 'read -P 5 30M 8k' -c 'read -P 4 0 256k' '%s' | grep -c '^read' | grep -q 2",
			    img), 0);
	assert_int_equal(sh(NULL, "qemu-img snapshot -l '%s' | grep -q s1", img), 0);
	qcow2_header_free(&h);

	/* Reserved bits in an L2 entry. */
	make_busy(img, "-o cluster_size=4096");
	l2_of(img, 30 << 20, &l2, &entry);
	fd = open(img, O_RDWR);
	pread_exact(fd, e, 8, entry);
	qcow2_put_be64(e, qcow2_be64(e) | 0x0100000000000000ull);
	assert_int_equal(pwrite(fd, e, 8, (off_t)entry), 8);
	close(fd);
	r = check_file(img, QCOW2_REPAIR_NONE);
	assert_true(r.corruptions >= 1);
	assert_non_null(strstr(r.message, "reserved"));
	unlink(img);
	free(img);
}

/* What the VMM does on a read-write open of a dirty image: a qemu-io
 * killed with lazy refcounts leaves refcounts behind; repair all fixes
 * them and drops the dirty bit. */
static void test_check_dirty(void **state)
{
	NEED_QEMU();
	char *img = tmp_path("dirty.qcow2");
	assert_int_equal(sh(NULL, "qemu-img create -q -f qcow2 -o lazy_refcounts=on,cluster_size=4096 '%s' 64M"
			    " && qemu-io -c 'write -P 1 0 64k' '%s'", img, img), 0);
	sh(NULL, "qemu-io -c 'write -P 7 1M 2M' -c 'write -P 8 40M 4k' -c flush -c 'sigraise 9' '%s'", img);
	char *info, s[32];
	assert_int_equal(sh(&info, "qemu-img info -U --output json '%s'", img), 0);
	assert_string_equal(json_str(info, "dirty-flag", s, sizeof(s)), "true");
	free(info);
	struct qcow2_check_result r = check_file(img, QCOW2_REPAIR_NONE);
	assert_true(r.corruptions > 0);
	r = check_file(img, QCOW2_REPAIR_ALL);
	assert_int_equal(r.corruptions_fixed, r.corruptions);
	assert_int_equal(r.leaks_fixed, r.leaks);
	assert_int_equal(sh(&info, "qemu-img info --output json '%s'", img), 0);
	assert_string_equal(json_str(info, "dirty-flag", s, sizeof(s)), "false");
	free(info);
	qemu_clean(img, "dirty repaired");
	assert_int_equal(sh(NULL, "qemu-io -c 'read -P 7 1M 2M' -c 'read -P 8 40M 4k' '%s' | grep -c '^read' | grep -q 2",
			    img), 0);
	unlink(img);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_qemu_images),
		cmocka_unit_test(test_rewrite_keeps_unknown),
		cmocka_unit_test(test_refcount_bytes),
		cmocka_unit_test(test_refcount_qemu),
		cmocka_unit_test(test_hostile_headers),
		cmocka_unit_test(test_short_v3_header),
		cmocka_unit_test(test_entries),
		cmocka_unit_test(test_compress_roundtrip),
		cmocka_unit_test(test_decompress_qemu),
		cmocka_unit_test(test_create_sweep),
		cmocka_unit_test(test_compressed_written_by_us),
		cmocka_unit_test(test_check_clean),
		cmocka_unit_test(test_check_leaks),
		cmocka_unit_test(test_check_corruptions),
		cmocka_unit_test(test_check_dirty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
