/* The qcow2 on-disk format as pure functions over buffers: header parsing
 * and validation, header rewriting, L1/L2 and refcount entry codecs, and
 * cluster (de)compression. Nothing here does I/O; the driver, the creator
 * (qcow2_create.c) and the checker (qcow2_check.c) read the file and hand
 * the bytes in. The layout is QEMU's docs/interop/qcow2.txt. */
#ifndef KVMINI_QCOW2_FORMAT_H
#define KVMINI_QCOW2_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QCOW2_MAGIC 0x514649fbu                 /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72u
#define QCOW2_V3_HEADER_LEN 104u                /* without compression_type */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_REFCOUNT_ORDER 6
#define QCOW2_MAX_BACKING_NAME 1023u

/* QEMU's implementation limits, kept so that every image QEMU can open is
 * one we can open and nothing much bigger: the L1 table at most 32 MiB,
 * the refcount table at most 8 MiB. */
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
/* Virtual size limit: what a maximal L1 with 2 MiB clusters maps
 * (2^22 entries * 2^18 L2 entries * 2^21 bytes). It keeps every guest
 * offset + length computation far from 2^63. */
#define QCOW2_MAX_VIRTUAL_SIZE (1ull << 61)
/* QEMU's limits on internal snapshots. */
#define QCOW2_MAX_SNAPSHOTS 65536u

/* Header extension types. */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_NAMES 0x6803f857u
#define QCOW2_EXT_BITMAPS 0x23852875u
#define QCOW2_EXT_CRYPTO 0x0537be77u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* incompatible_features */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
/* compatible_features */
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)
/* autoclear_features */
#define QCOW2_AUTOCLEAR_BITMAPS (1ull << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (1ull << 1)

enum qcow2_compression { QCOW2_COMPRESSION_ZLIB = 0, QCOW2_COMPRESSION_ZSTD = 1 };

/* One entry of the feature name table (type 0 incompatible, 1 compatible,
 * 2 autoclear). */
struct qcow2_feature_name {
	uint8_t type;
	uint8_t bit;
	char name[47];                  /* 46 bytes on disk, NUL added */
};

/* A header extension kvmini does not interpret, kept byte for byte so that
 * a header rewrite preserves it. */
struct qcow2_extension {
	uint32_t type;
	uint32_t len;
	uint8_t *data;
};

struct qcow2_header {
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	/* v3 fields; for v2 the parser fills in what v2 implies. */
	uint64_t incompatible_features;
	uint64_t compatible_features;
	uint64_t autoclear_features;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
	/* Header bytes past compression_type up to header_length (fields of
	 * later versions, or padding), to be written back unchanged. */
	uint8_t *extra_fields;
	uint32_t extra_fields_len;

	char *backing_file;             /* NULL if none */
	char *backing_format;           /* NULL if no extension */
	struct qcow2_feature_name *feature_names;
	size_t nb_feature_names;
	struct qcow2_extension *extensions;   /* all other extensions, in order */
	size_t nb_extensions;
};

static inline uint64_t qcow2_cluster_size(const struct qcow2_header *h)
{
	return 1ull << h->cluster_bits;
}

static inline uint64_t qcow2_l2_entries(const struct qcow2_header *h)
{
	return 1ull << (h->cluster_bits - 3);
}

static inline uint64_t qcow2_refblock_entries(const struct qcow2_header *h)
{
	return 1ull << (h->cluster_bits + 3 - h->refcount_order);
}

/* The cluster size of the image in buf (at least 24 bytes of it), or
 * -EINVAL if it is no qcow2 image or the size is out of range. */
int qcow2_peek_cluster_bits(const uint8_t *buf, size_t len);

/* Parses and validates the header at the start of a file of file_size
 * bytes. buf must hold the first min(cluster size, file_size) bytes (the
 * header, its extensions and the backing file name all live in the first
 * cluster); read 64 KiB, call qcow2_peek_cluster_bits, and read more if the
 * cluster is bigger. A shorter buf gives -ENOBUFS.
 * Returns 0, -EINVAL for a malformed or hostile image, -ENOTSUP for a
 * valid image using a feature kvmini lacks, -ENOMEM; on failure err holds
 * one line and *h needs no free. */
int qcow2_header_parse(struct qcow2_header *h, const uint8_t *buf, size_t len,
		       uint64_t file_size, char *err, size_t errlen);
void qcow2_header_free(struct qcow2_header *h);

/* Writes header, extensions (backing format, feature names, then the kept
 * ones), the end marker and the backing file name into buf, which is then
 * the new first cluster's leading *used bytes (the rest of buf is zeroed).
 * backing_file_offset/size and header_length are computed here, not taken
 * from h. Returns 0, or -ENOSPC if it does not fit in len or in one
 * cluster. */
int qcow2_header_serialize(const struct qcow2_header *h, uint8_t *buf, size_t len,
			   size_t *used);

/* Autoclear bits that must be cleared before the first write: all of them,
 * since kvmini maintains none of the data they vouch for. In particular
 * bit 0 (bitmaps): kvmini does not update persistent dirty bitmaps, so
 * after it writes they are stale; clearing the bit is how the spec says to
 * mark them so (QEMU then ignores them). */
uint64_t qcow2_autoclear_to_clear(const struct qcow2_header *h);

/* The name of a feature bit from the image's feature name table, or NULL. */
const char *qcow2_feature_name(const struct qcow2_header *h, unsigned type, unsigned bit);

/* ---- table entries (values already converted from big-endian) --------- */

#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull   /* bits 9..55 */
#define QCOW2_OFLAG_COPIED (1ull << 63)
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO 1ull
#define QCOW2_L1_RESERVED 0x7f000000000001ffull   /* bits 0..8, 56..62 */
#define QCOW2_L2_RESERVED 0x3f000000000001feull   /* bits 1..8, 56..61 */
#define QCOW2_REFT_RESERVED 0x00000000000001ffull /* bits 0..8 */

static inline uint64_t qcow2_be64(const void *p)
{
	const uint8_t *b = p;
	return (uint64_t)b[0] << 56 | (uint64_t)b[1] << 48 | (uint64_t)b[2] << 40 |
	       (uint64_t)b[3] << 32 | (uint64_t)b[4] << 24 | (uint64_t)b[5] << 16 |
	       (uint64_t)b[6] << 8 | b[7];
}

static inline void qcow2_put_be64(void *p, uint64_t v)
{
	uint8_t *b = p;
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

/* Decodes an L1 (or refcount table, with QCOW2_REFT_RESERVED semantics:
 * no COPIED flag) entry. Returns 0, or -EINVAL if reserved bits are set or
 * the offset is not cluster-aligned (corruption; err says which). */
int qcow2_l1_entry_decode(uint64_t e, unsigned cluster_bits, uint64_t *l2_offset,
			  bool *copied, char *err, size_t errlen);
int qcow2_reftable_entry_decode(uint64_t e, unsigned cluster_bits, uint64_t *block_offset,
				char *err, size_t errlen);

enum qcow2_cluster_kind {
	QCOW2_CLUSTER_UNALLOCATED,  /* read from backing file / zeroes */
	QCOW2_CLUSTER_ZERO_PLAIN,   /* reads as zeroes, no host cluster */
	QCOW2_CLUSTER_ZERO_ALLOC,   /* reads as zeroes, host cluster preallocated */
	QCOW2_CLUSTER_NORMAL,
	QCOW2_CLUSTER_COMPRESSED,
};

struct qcow2_l2_info {
	enum qcow2_cluster_kind kind;
	uint64_t host_offset;   /* cluster-aligned, or byte offset if compressed */
	uint64_t csize;         /* compressed: bytes that may hold the data */
	bool copied;
};

/* Decodes a standard (not extended) L2 entry of an image with the given
 * version and cluster_bits. Returns 0, or -EINVAL for corruption: reserved
 * bits, a misaligned host offset, COPIED on a compressed or unallocated
 * cluster, the zero flag in a v2 image. */
int qcow2_l2_entry_decode(uint64_t e, unsigned version, unsigned cluster_bits,
			  struct qcow2_l2_info *out, char *err, size_t errlen);

/* A compressed cluster descriptor (with QCOW2_OFLAG_COMPRESSED set) for
 * csize bytes at host_offset, or 0 if it cannot be encoded (offset beyond
 * the descriptor's offset field, or more than a cluster plus a sector of
 * data). */
uint64_t qcow2_compressed_encode(uint64_t host_offset, uint64_t csize, unsigned cluster_bits);

/* Refcount i of a refcount block with entries of 1 << order bits. Entries
 * narrower than a byte are packed from the least significant bit; wider
 * ones are big-endian. set returns -ERANGE if v does not fit. */
uint64_t qcow2_refcount_get(const void *block, uint64_t i, unsigned order);
int qcow2_refcount_set(void *block, uint64_t i, unsigned order, uint64_t v);

static inline uint64_t qcow2_refcount_max(unsigned order)
{
	return order == 6 ? UINT64_MAX : (1ull << (1u << order)) - 1;
}

/* ---- compression ------------------------------------------------------ */

/* Decompresses one cluster: dst must be filled exactly (dstlen bytes);
 * src may continue past the end of the compressed stream (the descriptor
 * counts whole sectors). -EIO if the data is bad or too short, -ENOTSUP
 * for an unknown type, -ENOMEM. Never writes past dst + dstlen. */
int qcow2_decompress(int type, const void *src, size_t srclen, void *dst, size_t dstlen);

/* Compresses srclen bytes into dst (dstlen bytes); returns the compressed
 * length, -ENOSPC if it is not smaller than srclen (store the cluster
 * uncompressed then) or does not fit, -ENOTSUP, -ENOMEM, -EIO. */
ssize_t qcow2_compress(int type, const void *src, size_t srclen, void *dst, size_t dstlen);

#endif
