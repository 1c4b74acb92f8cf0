/* qcow2 header parsing, validation and rewriting; L1/L2/refcount entry
 * codecs; cluster (de)compression. Everything an image says is treated as
 * hostile: each field is checked before it is used to compute an offset or
 * a size. */
#include "block/qcow2_format.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int qcow2_peek_cluster_bits(const uint8_t *buf, size_t len)
{
	if (len < 24 || be32(buf) != QCOW2_MAGIC)
		return -EINVAL;
	uint32_t bits = be32(buf + 20);
	if (bits < QCOW2_MIN_CLUSTER_BITS || bits > QCOW2_MAX_CLUSTER_BITS)
		return -EINVAL;
	return (int)bits;
}

void qcow2_header_free(struct qcow2_header *h)
{
	free(h->extra_fields);
	free(h->backing_file);
	free(h->backing_format);
	free(h->feature_names);
	for (size_t i = 0; i < h->nb_extensions; i++)
		free(h->extensions[i].data);
	free(h->extensions);
	memset(h, 0, sizeof(*h));
}

const char *qcow2_feature_name(const struct qcow2_header *h, unsigned type, unsigned bit)
{
	for (size_t i = 0; i < h->nb_feature_names; i++)
		if (h->feature_names[i].type == type && h->feature_names[i].bit == bit)
			return h->feature_names[i].name;
	return NULL;
}

uint64_t qcow2_autoclear_to_clear(const struct qcow2_header *h)
{
	const uint64_t maintained = 0;
	return h->autoclear_features & ~maintained;
}

/* Does the table [off, off + bytes) lie inside the file? No overflow:
 * off and bytes are both far below 2^63 by the time this is called. */
static bool in_file(uint64_t off, uint64_t bytes, uint64_t file_size)
{
	return off <= file_size && bytes <= file_size - off;
}

static int parse_feature_names(struct qcow2_header *h, const uint8_t *d, uint32_t len,
			       char *err, size_t errlen)
{
	/* QEMU ignores a partial trailing entry; so do we. */
	size_t n = len / 48;
	h->feature_names = calloc(n ? n : 1, sizeof(*h->feature_names));
	if (!h->feature_names)
		return fail(err, errlen, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = d + i * 48;
		struct qcow2_feature_name *f = &h->feature_names[i];
		f->type = e[0];
		f->bit = e[1];
		memcpy(f->name, e + 2, 46);
		f->name[46] = '\0';
	}
	h->nb_feature_names = n;
	return 0;
}

static char *dup_string(const uint8_t *s, size_t len)
{
	char *p = malloc(len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

static int keep_extension(struct qcow2_header *h, uint32_t type, const uint8_t *d, uint32_t len)
{
	struct qcow2_extension *x = realloc(h->extensions, (h->nb_extensions + 1) * sizeof(*x));
	if (!x)
		return -ENOMEM;
	h->extensions = x;
	x = &h->extensions[h->nb_extensions];
	x->type = type;
	x->len = len;
	x->data = malloc(len ? len : 1);
	if (!x->data)
		return -ENOMEM;
	memcpy(x->data, d, len);
	h->nb_extensions++;
	return 0;
}

/* Extensions run from the end of the header to the backing file name (or
 * the end of the first cluster). An area too small to hold even the end
 * marker is accepted as empty: old QEMU wrote v2 images with the backing
 * name right after the 72-byte header. */
static int parse_extensions(struct qcow2_header *h, const uint8_t *buf, uint64_t end,
			    char *err, size_t errlen)
{
	uint64_t off = h->header_length;
	if (end < off + 8)
		return 0;
	bool seen_format = false, seen_names = false;
	for (;;) {
		if (off + 8 > end)
			return fail(err, errlen, -EINVAL,
				    "header extensions at %llu run past the end of their area (%llu) without an end marker",
				    (unsigned long long)off, (unsigned long long)end);
		uint32_t type = be32(buf + off), len = be32(buf + off + 4);
		off += 8;
		if (type == QCOW2_EXT_END)
			return 0;
		if (len > end - off)
			return fail(err, errlen, -EINVAL,
				    "header extension 0x%08x: length %u runs past the end of the first cluster",
				    type, len);
		const uint8_t *d = buf + off;
		int rc = 0;
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			if (seen_format)
				return fail(err, errlen, -EINVAL, "backing format extension appears twice");
			if (len > QCOW2_MAX_BACKING_NAME || memchr(d, '\0', len))
				return fail(err, errlen, -EINVAL, "backing format name is malformed (length %u)", len);
			seen_format = true;
			h->backing_format = dup_string(d, len);
			rc = h->backing_format ? 0 : -ENOMEM;
		} else if (type == QCOW2_EXT_FEATURE_NAMES) {
			if (seen_names)
				return fail(err, errlen, -EINVAL, "feature name table appears twice");
			seen_names = true;
			rc = parse_feature_names(h, d, len, err, errlen);
			if (rc)
				return rc;
		} else {
			rc = keep_extension(h, type, d, len);
		}
		if (rc)
			return fail(err, errlen, rc, "out of memory");
		/* Padding to 8: len <= end - off and end is a cluster size or a
		 * backing offset, so this cannot wrap. */
		off += ((uint64_t)len + 7) & ~7ull;
	}
}

/* Fills the fixed fields; v2 images get what v2 implies. */
static void read_fields(struct qcow2_header *h, const uint8_t *b)
{
	h->version = be32(b + 4);
	h->backing_file_offset = qcow2_be64(b + 8);
	h->backing_file_size = be32(b + 16);
	h->cluster_bits = be32(b + 20);
	h->size = qcow2_be64(b + 24);
	h->crypt_method = be32(b + 32);
	h->l1_size = be32(b + 36);
	h->l1_table_offset = qcow2_be64(b + 40);
	h->refcount_table_offset = qcow2_be64(b + 48);
	h->refcount_table_clusters = be32(b + 56);
	h->nb_snapshots = be32(b + 60);
	h->snapshots_offset = qcow2_be64(b + 64);
	if (h->version == 2) {
		h->refcount_order = 4;
		h->header_length = QCOW2_V2_HEADER_LEN;
		return;
	}
	h->incompatible_features = qcow2_be64(b + 72);
	h->compatible_features = qcow2_be64(b + 80);
	h->autoclear_features = qcow2_be64(b + 88);
	h->refcount_order = be32(b + 96);
	h->header_length = be32(b + 100);
}

static int check_features(const struct qcow2_header *h, char *err, size_t errlen)
{
	uint64_t in = h->incompatible_features;
	if (in & QCOW2_INCOMPAT_DATA_FILE)
		return fail(err, errlen, -ENOTSUP, "external data file is not supported");
	if (in & QCOW2_INCOMPAT_EXTL2)
		return fail(err, errlen, -ENOTSUP,
			    "extended L2 entries (subclusters) are not supported");
	const uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
			       QCOW2_INCOMPAT_COMPRESSION;
	if (in & ~known) {
		unsigned bit = (unsigned)__builtin_ctzll(in & ~known);
		const char *name = qcow2_feature_name(h, 0, bit);
		if (name && *name)
			return fail(err, errlen, -ENOTSUP, "unknown incompatible feature bit %u ('%s')",
				    bit, name);
		return fail(err, errlen, -ENOTSUP, "unknown incompatible feature bit %u", bit);
	}
	bool has_field = h->header_length > 104;
	if (in & QCOW2_INCOMPAT_COMPRESSION) {
		if (!has_field || h->compression_type == QCOW2_COMPRESSION_ZLIB)
			return fail(err, errlen, -EINVAL,
				    "compression type bit set but compression_type is zlib or absent");
	} else if (h->compression_type != QCOW2_COMPRESSION_ZLIB) {
		return fail(err, errlen, -EINVAL,
			    "compression_type %u set without the compression type bit",
			    h->compression_type);
	}
	if (h->compression_type > QCOW2_COMPRESSION_ZSTD)
		return fail(err, errlen, -ENOTSUP, "unknown compression type %u", h->compression_type);
	if (h->autoclear_features & QCOW2_AUTOCLEAR_DATA_FILE_RAW)
		return fail(err, errlen, -EINVAL,
			    "raw external data bit set without an external data file");
	return 0;
}

static int check_tables(const struct qcow2_header *h, uint64_t file_size, char *err, size_t errlen)
{
	uint64_t cs = qcow2_cluster_size(h), cmask = cs - 1;

	if (h->size > QCOW2_MAX_VIRTUAL_SIZE)
		return fail(err, errlen, -EINVAL, "virtual size %llu too large (limit 2^61)",
			    (unsigned long long)h->size);
	if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
		return fail(err, errlen, -EINVAL, "l1_size %u too large (limit %u entries)",
			    h->l1_size, QCOW2_MAX_L1_BYTES / 8);
	unsigned shift = h->cluster_bits * 2 - 3;   /* bytes one L2 table maps */
	uint64_t needed = (h->size >> shift) + ((h->size & ((1ull << shift) - 1)) != 0);
	if (h->l1_size < needed)
		return fail(err, errlen, -EINVAL,
			    "l1_size %u too small for virtual size %llu (needs %llu entries)",
			    h->l1_size, (unsigned long long)h->size, (unsigned long long)needed);
	if (h->l1_table_offset & cmask)
		return fail(err, errlen, -EINVAL, "L1 table (offset %llu) not cluster-aligned",
			    (unsigned long long)h->l1_table_offset);
	if (h->l1_size && (h->l1_table_offset == 0 ||
			   !in_file(h->l1_table_offset, (uint64_t)h->l1_size * 8, file_size)))
		return fail(err, errlen, -EINVAL, "L1 table (offset %llu) lies past the end of the file",
			    (unsigned long long)h->l1_table_offset);

	if (h->refcount_table_clusters == 0)
		return fail(err, errlen, -EINVAL, "refcount table is empty");
	if ((uint64_t)h->refcount_table_clusters << h->cluster_bits > QCOW2_MAX_REFTABLE_BYTES)
		return fail(err, errlen, -EINVAL, "refcount table (%u clusters) too large (limit 8 MiB)",
			    h->refcount_table_clusters);
	if (h->refcount_table_offset & cmask)
		return fail(err, errlen, -EINVAL, "refcount table not cluster-aligned");
	if (h->refcount_table_offset == 0 ||
	    !in_file(h->refcount_table_offset, (uint64_t)h->refcount_table_clusters << h->cluster_bits,
		     /* QEMU may leave the last cluster short of its size. */
		     (file_size + cmask) & ~cmask))
		return fail(err, errlen, -EINVAL,
			    "refcount table (offset %llu) lies past the end of the file",
			    (unsigned long long)h->refcount_table_offset);

	if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
		return fail(err, errlen, -EINVAL, "too many snapshots (%u)", h->nb_snapshots);
	if (h->nb_snapshots) {
		if (h->snapshots_offset & cmask)
			return fail(err, errlen, -EINVAL, "snapshot table not cluster-aligned");
		if (h->snapshots_offset == 0 || h->snapshots_offset >= file_size)
			return fail(err, errlen, -EINVAL,
				    "snapshot table (offset %llu) lies past the end of the file",
				    (unsigned long long)h->snapshots_offset);
	}
	return 0;
}

static int parse(struct qcow2_header *h, const uint8_t *buf, size_t len, uint64_t file_size,
		 char *err, size_t errlen)
{
	if (len < QCOW2_V2_HEADER_LEN || file_size < QCOW2_V2_HEADER_LEN)
		return fail(err, errlen, -EINVAL, "image too short for a qcow2 header (%llu bytes)",
			    (unsigned long long)(len < file_size ? len : file_size));
	if (be32(buf) != QCOW2_MAGIC)
		return fail(err, errlen, -EINVAL, "not a qcow2 image (bad magic)");
	/* The v3 fields (bytes 72..103) are read only when they are there
	 * (found by fuzz_qcow2: an 80-byte v3 header read past the buffer). */
	uint32_t version = be32(buf + 4);
	if (version == 3 && (len < QCOW2_V3_HEADER_LEN || file_size < QCOW2_V3_HEADER_LEN))
		return fail(err, errlen, -EINVAL, "image too short for a qcow2 v3 header (%llu bytes)",
			    (unsigned long long)(len < file_size ? len : file_size));
	if (version != 2 && version != 3)
		return fail(err, errlen, -ENOTSUP, "qcow2 version %u is not supported (2 or 3)",
			    version);
	read_fields(h, buf);
	if (h->version != 2 && h->version != 3)
		return fail(err, errlen, -ENOTSUP, "qcow2 version %u is not supported (2 or 3)", h->version);
	if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return fail(err, errlen, -EINVAL, "cluster_bits %u out of range (9..21)", h->cluster_bits);
	uint64_t cs = qcow2_cluster_size(h);
	uint64_t first = file_size < cs ? file_size : cs;
	if (len < first)
		return fail(err, errlen, -ENOBUFS, "parser needs the first %llu bytes of the image",
			    (unsigned long long)first);
	if (h->version == 3) {
		if (h->header_length < QCOW2_V3_HEADER_LEN || h->header_length % 8)
			return fail(err, errlen, -EINVAL,
				    "header_length %u invalid (at least 104, a multiple of 8)",
				    h->header_length);
		if (h->header_length > first)
			return fail(err, errlen, -EINVAL, "header_length %u exceeds the first cluster",
				    h->header_length);
		if (h->header_length > 104)
			h->compression_type = buf[104];
		if (h->header_length > 105) {
			h->extra_fields_len = h->header_length - 105;
			h->extra_fields = malloc(h->extra_fields_len);
			if (!h->extra_fields)
				return fail(err, errlen, -ENOMEM, "out of memory");
			memcpy(h->extra_fields, buf + 105, h->extra_fields_len);
		}
	}
	if (h->refcount_order > QCOW2_MAX_REFCOUNT_ORDER)
		return fail(err, errlen, -EINVAL, "refcount_order %u out of range (0..6)", h->refcount_order);
	if (h->crypt_method != 0)
		return fail(err, errlen, -ENOTSUP, "image uses encryption, which kvmini does not support");

	/* The backing name must sit in the first cluster, after the header:
	 * the spec says it fills the space the extensions leave. */
	uint64_t ext_end = first;
	if (h->backing_file_offset) {
		if (h->backing_file_size == 0 || h->backing_file_size > QCOW2_MAX_BACKING_NAME)
			return fail(err, errlen, -EINVAL, "backing file name length %u invalid (1..1023)",
				    h->backing_file_size);
		if (h->backing_file_offset < h->header_length ||
		    h->backing_file_offset > first || h->backing_file_size > first - h->backing_file_offset)
			return fail(err, errlen, -EINVAL,
				    "backing file name (offset %llu, %u bytes) lies outside the first cluster",
				    (unsigned long long)h->backing_file_offset, h->backing_file_size);
		const uint8_t *name = buf + h->backing_file_offset;
		if (memchr(name, '\0', h->backing_file_size))
			return fail(err, errlen, -EINVAL, "backing file name contains a NUL byte");
		h->backing_file = dup_string(name, h->backing_file_size);
		if (!h->backing_file)
			return fail(err, errlen, -ENOMEM, "out of memory");
		ext_end = h->backing_file_offset;
	}
	int rc = parse_extensions(h, buf, ext_end, err, errlen);
	if (rc)
		return rc;
	rc = check_features(h, err, errlen);
	if (rc)
		return rc;
	return check_tables(h, file_size, err, errlen);
}

int qcow2_header_parse(struct qcow2_header *h, const uint8_t *buf, size_t len,
		       uint64_t file_size, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	if (err && errlen)
		err[0] = '\0';
	int rc = parse(h, buf, len, file_size, err, errlen);
	if (rc)
		qcow2_header_free(h);
	return rc;
}

/* Appends one extension at *off; false if it does not fit in limit. */
static bool put_ext(uint8_t *buf, size_t limit, size_t *off, uint32_t type,
		    const void *data, uint32_t len)
{
	size_t padded = ((size_t)len + 7) & ~(size_t)7;
	if (*off > limit || 8 + padded > limit - *off)
		return false;
	put_be32(buf + *off, type);
	put_be32(buf + *off + 4, len);
	if (len)
		memcpy(buf + *off + 8, data, len);
	*off += 8 + padded;
	return true;
}

int qcow2_header_serialize(const struct qcow2_header *h, uint8_t *buf, size_t len, size_t *used)
{
	uint64_t cs = qcow2_cluster_size(h);
	size_t limit = len < cs ? len : (size_t)cs;
	uint32_t hlen = h->version == 2 ? QCOW2_V2_HEADER_LEN
			: h->extra_fields_len ? 105 + h->extra_fields_len
			: 112;   /* compression_type and its padding, as QEMU writes */
	if (limit < hlen)
		return -ENOSPC;
	memset(buf, 0, len);
	put_be32(buf, QCOW2_MAGIC);
	put_be32(buf + 4, h->version);
	put_be32(buf + 20, h->cluster_bits);
	qcow2_put_be64(buf + 24, h->size);
	put_be32(buf + 32, h->crypt_method);
	put_be32(buf + 36, h->l1_size);
	qcow2_put_be64(buf + 40, h->l1_table_offset);
	qcow2_put_be64(buf + 48, h->refcount_table_offset);
	put_be32(buf + 56, h->refcount_table_clusters);
	put_be32(buf + 60, h->nb_snapshots);
	qcow2_put_be64(buf + 64, h->snapshots_offset);
	if (h->version != 2) {
		qcow2_put_be64(buf + 72, h->incompatible_features);
		qcow2_put_be64(buf + 80, h->compatible_features);
		qcow2_put_be64(buf + 88, h->autoclear_features);
		put_be32(buf + 96, h->refcount_order);
		put_be32(buf + 100, hlen);
		buf[104] = h->compression_type;
		if (h->extra_fields_len)
			memcpy(buf + 105, h->extra_fields, h->extra_fields_len);
	}

	size_t off = hlen;
	if (h->backing_format &&
	    !put_ext(buf, limit, &off, QCOW2_EXT_BACKING_FORMAT, h->backing_format,
		     (uint32_t)strlen(h->backing_format)))
		return -ENOSPC;
	if (h->nb_feature_names) {
		for (size_t i = 0; i < h->nb_feature_names; i++) {
			size_t at = off + 8 + i * 48;
			if (at > limit || 48 > limit - at)
				return -ENOSPC;
			buf[at] = h->feature_names[i].type;
			buf[at + 1] = h->feature_names[i].bit;
			memcpy(buf + at + 2, h->feature_names[i].name,
			       strnlen(h->feature_names[i].name, 46));
		}
		uint32_t flen = (uint32_t)(h->nb_feature_names * 48);
		/* The entries are in place already; write just the type/length. */
		put_be32(buf + off, QCOW2_EXT_FEATURE_NAMES);
		put_be32(buf + off + 4, flen);
		off += 8 + flen;
	}
	for (size_t i = 0; i < h->nb_extensions; i++)
		if (!put_ext(buf, limit, &off, h->extensions[i].type, h->extensions[i].data,
			     h->extensions[i].len))
			return -ENOSPC;
	if (!put_ext(buf, limit, &off, QCOW2_EXT_END, NULL, 0))
		return -ENOSPC;

	if (h->backing_file) {
		size_t n = strlen(h->backing_file);
		if (n == 0 || n > QCOW2_MAX_BACKING_NAME || n > limit - off)
			return -ENOSPC;
		memcpy(buf + off, h->backing_file, n);
		qcow2_put_be64(buf + 8, off);
		put_be32(buf + 16, (uint32_t)n);
		off += n;
	}
	*used = off;
	return 0;
}

/* ---- table entries ---------------------------------------------------- */

int qcow2_l1_entry_decode(uint64_t e, unsigned cluster_bits, uint64_t *l2_offset,
			  bool *copied, char *err, size_t errlen)
{
	if (e & QCOW2_L1_RESERVED)
		return fail(err, errlen, -EINVAL, "L1 entry 0x%016llx has reserved bits set",
			    (unsigned long long)e);
	uint64_t off = e & QCOW2_OFFSET_MASK;
	if (off & ((1ull << cluster_bits) - 1))
		return fail(err, errlen, -EINVAL, "L2 table offset 0x%llx not cluster-aligned",
			    (unsigned long long)off);
	*l2_offset = off;
	*copied = e & QCOW2_OFLAG_COPIED;
	return 0;
}

int qcow2_reftable_entry_decode(uint64_t e, unsigned cluster_bits, uint64_t *block_offset,
				char *err, size_t errlen)
{
	if (e & QCOW2_REFT_RESERVED)
		return fail(err, errlen, -EINVAL,
			    "refcount table entry 0x%016llx has reserved bits set",
			    (unsigned long long)e);
	if (e & ((1ull << cluster_bits) - 1))
		return fail(err, errlen, -EINVAL, "refcount block offset 0x%llx not cluster-aligned",
			    (unsigned long long)e);
	*block_offset = e;
	return 0;
}

/* The split of a compressed descriptor: bits 0..x-1 hold the byte offset,
 * bits x..61 the number of 512-byte sectors after the first one. */
static unsigned csize_shift(unsigned cluster_bits) { return 62 - (cluster_bits - 8); }

int qcow2_l2_entry_decode(uint64_t e, unsigned version, unsigned cluster_bits,
			  struct qcow2_l2_info *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (e & QCOW2_OFLAG_COMPRESSED) {
		if (e & QCOW2_OFLAG_COPIED)
			return fail(err, errlen, -EINVAL, "compressed L2 entry 0x%016llx has COPIED set",
				    (unsigned long long)e);
		unsigned x = csize_shift(cluster_bits);
		uint64_t off = e & ((1ull << x) - 1);
		/* Offsets are 56 bits at most; with small clusters the field is
		 * wider and its top bits must be zero. */
		if (off >> 56)
			return fail(err, errlen, -EINVAL,
				    "compressed L2 entry 0x%016llx has an offset beyond 2^56",
				    (unsigned long long)e);
		uint64_t sectors = (e >> x) & ((1ull << (cluster_bits - 8)) - 1);
		out->kind = QCOW2_CLUSTER_COMPRESSED;
		out->host_offset = off;
		/* The first sector counts only from the offset on. */
		out->csize = (sectors + 1) * 512 - (off & 511);
		return 0;
	}
	if (e & QCOW2_L2_RESERVED)
		return fail(err, errlen, -EINVAL, "L2 entry 0x%016llx has reserved bits set",
			    (unsigned long long)e);
	uint64_t off = e & QCOW2_OFFSET_MASK;
	bool zero = e & QCOW2_OFLAG_ZERO;
	if (zero && version < 3)
		return fail(err, errlen, -EINVAL, "L2 entry 0x%016llx has the zero flag in a v2 image",
			    (unsigned long long)e);
	if (off & ((1ull << cluster_bits) - 1))
		return fail(err, errlen, -EINVAL, "data cluster offset 0x%llx not cluster-aligned",
			    (unsigned long long)off);
	out->copied = e & QCOW2_OFLAG_COPIED;
	out->host_offset = off;
	if (off == 0) {
		/* Offset 0 with COPIED is only meaningful with a data file. */
		if (out->copied)
			return fail(err, errlen, -EINVAL, "L2 entry 0x%016llx has COPIED but no offset",
				    (unsigned long long)e);
		out->kind = zero ? QCOW2_CLUSTER_ZERO_PLAIN : QCOW2_CLUSTER_UNALLOCATED;
	} else {
		out->kind = zero ? QCOW2_CLUSTER_ZERO_ALLOC : QCOW2_CLUSTER_NORMAL;
	}
	return 0;
}

uint64_t qcow2_compressed_encode(uint64_t host_offset, uint64_t csize, unsigned cluster_bits)
{
	unsigned x = csize_shift(cluster_bits);
	if (csize == 0 || host_offset >> (x < 56 ? x : 56) || csize > (1ull << 56))
		return 0;
	uint64_t sectors = ((host_offset + csize - 1) >> 9) - (host_offset >> 9);
	if (sectors >= 1ull << (cluster_bits - 8))
		return 0;
	return QCOW2_OFLAG_COMPRESSED | sectors << x | host_offset;
}

uint64_t qcow2_refcount_get(const void *block, uint64_t i, unsigned order)
{
	const uint8_t *b = block;
	if (order < 3) {
		unsigned bits = 1u << order;
		unsigned shift = (unsigned)(i & ((8u >> order) - 1)) * bits;
		return (b[i >> (3 - order)] >> shift) & ((1u << bits) - 1);
	}
	size_t bytes = 1u << (order - 3);
	const uint8_t *p = b + i * bytes;
	uint64_t v = 0;
	for (size_t k = 0; k < bytes; k++)
		v = v << 8 | p[k];
	return v;
}

int qcow2_refcount_set(void *block, uint64_t i, unsigned order, uint64_t v)
{
	if (v > qcow2_refcount_max(order))
		return -ERANGE;
	uint8_t *b = block;
	if (order < 3) {
		unsigned bits = 1u << order;
		unsigned shift = (unsigned)(i & ((8u >> order) - 1)) * bits;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
		uint8_t *p = &b[i >> (3 - order)];
		*p = (uint8_t)((*p & ~mask) | (v << shift));
		return 0;
	}
	size_t bytes = 1u << (order - 3);
	uint8_t *p = b + i * bytes;
	for (size_t k = bytes; k-- > 0; v >>= 8)
		p[k] = (uint8_t)v;
	return 0;
}

/* ---- compression ------------------------------------------------------ */

/* QEMU writes raw deflate with a 4 KiB window (-12 window bits). */
#define QCOW2_ZLIB_WBITS (-12)

static int zlib_decompress(const void *src, size_t srclen, void *dst, size_t dstlen)
{
	z_stream s = { 0 };
	if (inflateInit2(&s, QCOW2_ZLIB_WBITS) != Z_OK)
		return -ENOMEM;
	s.next_in = (Bytef *)(uintptr_t)src;
	s.avail_in = (uInt)srclen;
	s.next_out = dst;
	s.avail_out = (uInt)dstlen;
	int ret = inflate(&s, Z_FINISH);
	/* Z_BUF_ERROR with a full output: the cluster is complete and the
	 * stream's end marker lies beyond what we asked for, which is fine. */
	bool ok = (ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) && s.avail_out == 0;
	inflateEnd(&s);
	return ok ? 0 : -EIO;
}

static int zstd_decompress(const void *src, size_t srclen, void *dst, size_t dstlen)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	if (!d)
		return -ENOMEM;
	ZSTD_inBuffer in = { src, srclen, 0 };
	ZSTD_outBuffer out = { dst, dstlen, 0 };
	int rc = 0;
	/* Stop as soon as the cluster is full: what follows in the last
	 * sector is padding or another cluster's data. */
	while (out.pos < out.size) {
		size_t in_before = in.pos, out_before = out.pos;
		size_t r = ZSTD_decompressStream(d, &out, &in);
		if (ZSTD_isError(r) || (in.pos == in_before && out.pos == out_before)) {
			rc = -EIO;
			break;
		}
	}
	ZSTD_freeDCtx(d);
	return rc;
}

int qcow2_decompress(int type, const void *src, size_t srclen, void *dst, size_t dstlen)
{
	/* One cluster is at most 2 MiB and its compressed form two clusters:
	 * anything bigger is a caller bug, and zlib counts in uInt. */
	if (dstlen > (4u << 20) || srclen > (8u << 20))
		return -EINVAL;
	switch (type) {
	case QCOW2_COMPRESSION_ZLIB:
		return zlib_decompress(src, srclen, dst, dstlen);
	case QCOW2_COMPRESSION_ZSTD:
		return zstd_decompress(src, srclen, dst, dstlen);
	default:
		return -ENOTSUP;
	}
}

static ssize_t zlib_compress(const void *src, size_t srclen, void *dst, size_t dstlen)
{
	z_stream s = { 0 };
	if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, QCOW2_ZLIB_WBITS, 9,
			 Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	s.next_in = (Bytef *)(uintptr_t)src;
	s.avail_in = (uInt)srclen;
	s.next_out = dst;
	s.avail_out = (uInt)dstlen;
	int ret = deflate(&s, Z_FINISH);
	size_t n = dstlen - s.avail_out;
	deflateEnd(&s);
	return ret == Z_STREAM_END ? (ssize_t)n : -ENOSPC;
}

static ssize_t zstd_compress(const void *src, size_t srclen, void *dst, size_t dstlen)
{
	size_t r = ZSTD_compress(dst, dstlen, src, srclen, ZSTD_CLEVEL_DEFAULT);
	if (ZSTD_isError(r))
		return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EIO;
	return (ssize_t)r;
}

ssize_t qcow2_compress(int type, const void *src, size_t srclen, void *dst, size_t dstlen)
{
	if (srclen == 0 || srclen > (4u << 20))
		return -EINVAL;
	/* Only worth storing if it saves at least a byte. */
	if (dstlen >= srclen)
		dstlen = srclen - 1;
	switch (type) {
	case QCOW2_COMPRESSION_ZLIB:
		return zlib_compress(src, srclen, dst, dstlen);
	case QCOW2_COMPRESSION_ZSTD:
		return zstd_compress(src, srclen, dst, dstlen);
	default:
		return -ENOTSUP;
	}
}
