/* Creating an empty qcow2 image (qemu-img create -f qcow2), synchronously. */
#ifndef KVMINI_QCOW2_CREATE_H
#define KVMINI_QCOW2_CREATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qcow2_prealloc { QCOW2_PREALLOC_OFF, QCOW2_PREALLOC_METADATA };

/* Zero fields take the defaults qemu-img uses. */
struct qcow2_create_opts {
	uint64_t size;               /* virtual size in bytes, a multiple of 512 */
	unsigned version;            /* 2 (compat=0.10) or 3 (compat=1.1); 0 = 3 */
	uint32_t cluster_size;       /* power of two, 512..2M; 0 = 65536 */
	unsigned refcount_bits;      /* power of two, 1..64 (v2: 16 only); 0 = 16 */
	bool lazy_refcounts;         /* v3 only */
	const char *backing_file;    /* NULL for none; stored as given */
	const char *backing_format;  /* NULL: no backing format extension */
	enum qcow2_prealloc prealloc;
	int compression_type;        /* QCOW2_COMPRESSION_ZLIB (0) or _ZSTD (v3) */
};

/* Writes a new image into fd, a regular file (truncated first) or, with
 * prealloc off, a block device. Every cluster up to the end of the
 * metadata has refcount 1. Returns 0, -EINVAL for bad options (err holds
 * one line), or -errno from the writes. */
int qcow2_create(int fd, const struct qcow2_create_opts *o, char *err, size_t errlen);

/* "0.10" -> 2, "1.1"/"v3" -> 3, else -EINVAL. */
int qcow2_parse_compat(const char *s);

#endif
