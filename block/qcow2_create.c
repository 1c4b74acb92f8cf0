/* qcow2_create: one layout, written front to back and the header last, so a
 * crash half way leaves a file no one takes for a qcow2 image.
 *
 *   cluster 0                header, extensions, backing name
 *   1 .. rt                  refcount table
 *   then rb clusters         refcount blocks, covering every cluster below
 *   then l1c clusters        L1 table
 *   then (metadata prealloc) all L2 tables, then all data clusters
 *
 * Everything is contiguous from cluster 0, so every cluster below the end
 * has refcount exactly 1 and the refcount blocks are easy to fill. */
#include "block/qcow2_create.h"
#include "block/file.h"
#include "block/qcow2_format.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int qcow2_parse_compat(const char *s)
{
	if (!strcmp(s, "0.10") || !strcmp(s, "v2"))
		return 2;
	if (!strcmp(s, "1.1") || !strcmp(s, "v3"))
		return 3;
	return -EINVAL;
}

static uint64_t div_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

struct layout {
	unsigned cluster_bits, refcount_order;
	uint64_t cs;
	uint64_t data, l1_entries, l1c, l2c, dc;  /* counts */
	uint64_t rt, rb;                           /* reftable, refblock clusters */
	uint64_t reftable, refblocks, l1, l2, data_start, end;  /* cluster indexes */
};

static int plan(struct layout *L, const struct qcow2_create_opts *o, char *err, size_t errlen)
{
	unsigned version = o->version ? o->version : 3;
	uint64_t cs = o->cluster_size ? o->cluster_size : 65536;
	unsigned rbits = o->refcount_bits ? o->refcount_bits : 16;

	if (version != 2 && version != 3)
		return fail(err, errlen, "qcow2 version %u invalid (compat=0.10 or 1.1)", version);
	if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)))
		return fail(err, errlen, "cluster size %llu invalid (a power of two, 512..2M)",
			    (unsigned long long)cs);
	if (rbits > 64 || (rbits & (rbits - 1)))
		return fail(err, errlen, "refcount_bits %u invalid (a power of two, 1..64)", rbits);
	if (version == 2 && rbits != 16)
		return fail(err, errlen, "compat=0.10 images only support refcount_bits=16");
	if (version == 2 && o->lazy_refcounts)
		return fail(err, errlen, "lazy refcounts need compat=1.1");
	if (o->compression_type != QCOW2_COMPRESSION_ZLIB &&
	    o->compression_type != QCOW2_COMPRESSION_ZSTD)
		return fail(err, errlen, "unknown compression type %d", o->compression_type);
	if (version == 2 && o->compression_type != QCOW2_COMPRESSION_ZLIB)
		return fail(err, errlen, "compat=0.10 images only support zlib compression");
	if (o->size % 512)
		return fail(err, errlen, "image size must be a multiple of 512 bytes");
	if (o->size > QCOW2_MAX_VIRTUAL_SIZE)
		return fail(err, errlen, "image size too large");
	if (o->backing_format && !o->backing_file)
		return fail(err, errlen, "a backing format needs a backing file");
	if (o->backing_file && (!*o->backing_file || strlen(o->backing_file) > QCOW2_MAX_BACKING_NAME))
		return fail(err, errlen, "backing file name must be 1..1023 bytes");

	memset(L, 0, sizeof(*L));
	L->cs = cs;
	L->cluster_bits = (unsigned)__builtin_ctzll(cs);
	L->refcount_order = (unsigned)__builtin_ctz(rbits);
	L->data = div_up(o->size, cs);
	L->l1_entries = div_up(L->data, cs / 8);
	if (L->l1_entries * 8 > QCOW2_MAX_L1_BYTES)
		return fail(err, errlen, "image size too large for cluster size %llu (L1 table over 32 MiB)",
			    (unsigned long long)cs);
	L->l1c = div_up(L->l1_entries * 8, cs);
	if (o->prealloc == QCOW2_PREALLOC_METADATA) {
		L->l2c = L->l1_entries;
		L->dc = L->data;
	}
	/* The refcount structures must cover themselves: iterate to the
	 * fixed point (two or three rounds). */
	uint64_t per_block = cs * 8 / rbits;
	L->rt = L->rb = 1;
	for (;;) {
		uint64_t n = 1 + L->rt + L->rb + L->l1c + L->l2c + L->dc;
		uint64_t rb = div_up(n, per_block);
		uint64_t rt = div_up(rb * 8, cs);
		if (rb == L->rb && rt == L->rt)
			break;
		L->rb = rb > L->rb ? rb : L->rb;
		L->rt = rt > L->rt ? rt : L->rt;
	}
	if (L->rt * cs > QCOW2_MAX_REFTABLE_BYTES)
		return fail(err, errlen, "image too large for its refcount table (over 8 MiB)");
	L->reftable = 1;
	L->refblocks = L->reftable + L->rt;
	L->l1 = L->refblocks + L->rb;
	L->l2 = L->l1 + L->l1c;
	L->data_start = L->l2 + L->l2c;
	L->end = L->data_start + L->dc;
	return 0;
}

static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	return fd_pio_full(fd, (void *)buf, len, off, true);
}

/* Fills clusters [first, first + count) with one big-endian u64 per entry
 * from entry(i, ctx) (0 beyond last), one cluster at a time. */
static int write_table(int fd, uint8_t *buf, const struct layout *L, uint64_t first,
		       uint64_t count, uint64_t nentries,
		       uint64_t (*entry)(const struct layout *, uint64_t))
{
	uint64_t per = L->cs / 8;
	for (uint64_t c = 0; c < count; c++) {
		memset(buf, 0, L->cs);
		for (uint64_t k = 0; k < per && c * per + k < nentries; k++)
			qcow2_put_be64(buf + k * 8, entry(L, c * per + k));
		int rc = write_all(fd, buf, L->cs, (first + c) * L->cs);
		if (rc)
			return rc;
	}
	return 0;
}

static uint64_t reftable_entry(const struct layout *L, uint64_t i)
{
	return (L->refblocks + i) * L->cs;
}

static uint64_t l1_entry(const struct layout *L, uint64_t i)
{
	return L->l2c ? (L->l2 + i) * L->cs | QCOW2_OFLAG_COPIED : 0;
}

static uint64_t l2_entry(const struct layout *L, uint64_t g)
{
	return (L->data_start + g) * L->cs | QCOW2_OFLAG_COPIED;
}

static const struct qcow2_feature_name feature_names[] = {
	{ 0, 0, "dirty bit" },
	{ 0, 1, "corrupt bit" },
	{ 0, 2, "external data file" },
	{ 0, 3, "compression type" },
	{ 0, 4, "extended L2 entries" },
	{ 1, 0, "lazy refcounts" },
	{ 2, 0, "bitmaps" },
	{ 2, 1, "raw external data" },
};

/* Builds the first cluster in buf; false if it does not fit. */
static bool build_header(uint8_t *buf, const struct layout *L, const struct qcow2_create_opts *o)
{
	struct qcow2_header h = {
		.version = o->version ? o->version : 3,
		.cluster_bits = L->cluster_bits,
		.size = o->size,
		.l1_size = (uint32_t)L->l1_entries,
		.l1_table_offset = L->l1_entries ? L->l1 * L->cs : 0,
		.refcount_table_offset = L->reftable * L->cs,
		.refcount_table_clusters = (uint32_t)L->rt,
		.refcount_order = L->refcount_order,
		.compression_type = (uint8_t)o->compression_type,
		.backing_file = (char *)o->backing_file,
		.backing_format = (char *)o->backing_format,
	};
	if (h.version == 3) {
		h.feature_names = (struct qcow2_feature_name *)feature_names;
		h.nb_feature_names = sizeof(feature_names) / sizeof(feature_names[0]);
		if (o->lazy_refcounts)
			h.compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
		if (o->compression_type != QCOW2_COMPRESSION_ZLIB)
			h.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
	}
	size_t used;
	if (qcow2_header_serialize(&h, buf, L->cs, &used) == 0)
		return true;
	/* The name table is only a courtesy to other readers; a 512-byte
	 * cluster with a backing name has no room for it. */
	h.nb_feature_names = 0;
	return qcow2_header_serialize(&h, buf, L->cs, &used) == 0;
}

static int write_image(int fd, uint8_t *buf, const uint8_t *header, const struct layout *L)
{
	int rc = write_table(fd, buf, L, L->reftable, L->rt, L->rb, reftable_entry);
	uint64_t per_block = L->cs * 8 >> L->refcount_order;
	for (uint64_t b = 0; !rc && b < L->rb; b++) {
		memset(buf, 0, L->cs);
		for (uint64_t i = 0; i < per_block && b * per_block + i < L->end; i++)
			qcow2_refcount_set(buf, i, L->refcount_order, 1);
		rc = write_all(fd, buf, L->cs, (L->refblocks + b) * L->cs);
	}
	if (!rc)
		rc = write_table(fd, buf, L, L->l1, L->l1c, L->l1_entries, l1_entry);
	if (!rc)
		rc = write_table(fd, buf, L, L->l2, L->l2c, L->data, l2_entry);
	if (!rc)
		rc = write_all(fd, header, L->cs, 0);
	return rc;
}

/* Truncating to 0 first makes every cluster we do not write (data, the
 * tail of short tables) read as zeroes. */
static int prepare_file(int fd, const struct layout *L, const struct qcow2_create_opts *o,
			char *err, size_t errlen)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return o->prealloc == QCOW2_PREALLOC_OFF
			       ? 0 : fail(err, errlen, "preallocation=metadata needs a regular file");
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)(L->end * L->cs)) < 0)
		return -errno;
	return 0;
}

int qcow2_create(int fd, const struct qcow2_create_opts *o, char *err, size_t errlen)
{
	struct layout L;
	int rc = plan(&L, o, err, errlen);
	if (rc)
		return rc;
	uint8_t *header = malloc(L.cs), *buf = malloc(L.cs);
	if (!header || !buf) {
		rc = -ENOMEM;
	} else if (!build_header(header, &L, o)) {
		rc = fail(err, errlen, "header, extensions and backing file name do not fit in one cluster");
	} else {
		rc = prepare_file(fd, &L, o, err, errlen);
		if (!rc)
			rc = write_image(fd, buf, header, &L);
	}
	free(header);
	free(buf);
	return rc;
}
