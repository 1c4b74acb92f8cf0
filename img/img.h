/* kvmini-img: disk image tool (like qemu-img) on top of kvmini's own block
 * layer. What the subcommands share: option and size parsing in qemu-img's
 * spelling, synchronous I/O over the asynchronous block API, the qcow2
 * header (for info, check and create, which need no driver) and a JSON
 * printer laid out like qemu-img's. */
#ifndef KVMINI_IMG_H
#define KVMINI_IMG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "block/block.h"

struct json_object;

/* qemu-img's exit statuses. */
enum {
	IMG_OK = 0,
	IMG_ERR = 1,             /* usage error, bad image, failed operation */
	IMG_CHECK_CORRUPT = 2,
	IMG_CHECK_LEAKS = 3,
	IMG_CHECK_UNSUPPORTED = 63,
};

int cmd_create(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_resize(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* ---- parsing (img/util.c) ---------------------------------------------- */

/* qemu-img sizes: a number (decimals allowed with a suffix), optional
 * b/k/K/M/G/T/P/E suffix, powers of 1024. 0 or -EINVAL/-ERANGE. */
int img_parse_size(const char *s, uint64_t *out);
/* A plain non-negative integer, decimal or 0x hex (counts, depths). */
int img_parse_uint(const char *s, uint64_t max, uint64_t *out);
/* "raw"/"qcow2" -> the block format; -EINVAL otherwise. */
int img_parse_format(const char *s, enum block_format *fmt);
/* The same for a -f/-O option: an unknown name is one error line. */
int img_format_option(const char *s, enum block_format *fmt);
const char *img_format_name(enum block_format fmt);
/* --output human|json: true for json. Logs qemu-img's line on error. */
int img_parse_output(const char *s, bool *json);
/* qemu's size_to_str: "196 KiB", "1.5 GiB". */
void img_size_str(uint64_t v, char *buf, size_t len);
/* A usage error of a subcommand: one line, exit status 1 (as qemu-img). */
int img_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A getopt error (c is '?' or ':', the optstring starting with ':'). */
int img_bad_option(const char *cmd, int c, char **argv);
/* qemu-img's "Invalid image size specified" line; returns IMG_ERR. */
int img_size_error(void);

/* Format of the file at path from its first bytes (qcow2 magic or raw),
 * after qemu-img's "Could not open" checks. 0 or -errno (logged). */
int img_probe(const char *path, enum block_format *fmt);
/* Opens an image through the block layer; a missing file gets qemu-img's
 * one line instead of block_open's. 0 or -errno (logged). */
int img_open(struct block **b, const char *path, enum block_format fmt, bool readonly,
	     enum block_cache cache);

/* qemu's path_combine: a relative backing name is relative to the
 * directory of the image naming it. Returns a malloc'd string or NULL. */
char *img_backing_path(const char *image, const char *backing);

/* ---- synchronous I/O (img/sync_io.c) ----------------------------------- */

/* One engine and one request area: each call submits one request and runs
 * the engine until it completes, for the tools that need no queue depth. */
struct img_sync {
	struct io_engine e;
	struct block *b;
	void *drv;
};
int img_sync_init(struct img_sync *s, struct block *b);
void img_sync_fini(struct img_sync *s);
int img_sync_read(struct img_sync *s, uint64_t off, void *buf, size_t len);
int img_sync_write(struct img_sync *s, uint64_t off, const void *buf, size_t len);
/* One cluster, compressed (block_write_compressed). */
int img_sync_write_compressed(struct img_sync *s, uint64_t off, const void *buf, size_t len);
int img_sync_write_zeroes(struct img_sync *s, uint64_t off, uint64_t len);
int img_sync_flush(struct img_sync *s);

/* ---- qcow2 (img/qcow2.c, or img/qcow2_none.c without the helpers) ------ */

/* What `create -o` and -b/-F ask for; -1 (or 0, NULL) = not given. */
enum img_prealloc { IMG_PREALLOC_OFF, IMG_PREALLOC_METADATA, IMG_PREALLOC_FALLOC,
		    IMG_PREALLOC_FULL };
struct img_create_opts {
	uint64_t size;
	const char *backing;         /* as given, stored as given */
	const char *backing_fmt;
	uint32_t cluster_size;       /* 0: default */
	unsigned refcount_bits;      /* 0: default */
	int compat;                  /* 0: default, 2 (0.10) or 3 (1.1) */
	int lazy_refcounts;          /* -1, 0, 1 */
	int prealloc;                /* -1 or enum img_prealloc */
	int compression;             /* -1, 0 zlib, 1 zstd */
	int extended_l2;             /* -1, 0, 1 */
	/* as typed, for the "Formatting" line (qemu echoes them) */
	const char *compat_str, *lazy_str, *prealloc_str, *compression_str;
};
#define IMG_CREATE_OPTS_INIT { .lazy_refcounts = -1, .prealloc = -1, .compression = -1, \
			       .extended_l2 = -1 }

/* img/create.c: one -o list (key=value,...) of a raw or qcow2 image named
 * file (for messages) into o; and the creation itself. 0 or -errno, logged. */
int img_create_parse(const char *file, bool qcow2, char *list, struct img_create_opts *o);
int img_create_image(const char *file, bool qcow2, const struct img_create_opts *o);

/* qemu-img check's result; the JSON fields are named after these. */
struct img_check_result {
	uint64_t corruptions, leaks, check_errors, corruptions_fixed, leaks_fixed;
	uint64_t image_end_offset, total_clusters, allocated_clusters;
	uint64_t fragmented_clusters, compressed_clusters;
};

struct img_qcow2;            /* a parsed header, opaque to callers */
/* false when kvmini-img was built without the qcow2 helpers; every call
 * below then logs "qcow2 support is not built" and fails with -ENOTSUP. */
bool img_qcow2_built(void);
/* Reads and parses the header of the qcow2 image at path. 0 or -errno
 * (logged in one line). */
/* lock: take the lock qemu-img info takes (none with -U). */
int img_qcow2_load(const char *path, bool lock, struct img_qcow2 **out);
void img_qcow2_free(struct img_qcow2 *q);
uint64_t img_qcow2_size(const struct img_qcow2 *q);
const char *img_qcow2_backing(const struct img_qcow2 *q);
const char *img_qcow2_backing_format(const struct img_qcow2 *q);
/* Adds qemu-img info's qcow2 fields (cluster-size, format-specific,
 * dirty-flag) to an info object; the human output is made from the same
 * object, as qemu-img makes both from one ImageInfo. */
void img_qcow2_info(const struct img_qcow2 *q, struct json_object *info);
/* Creates path (truncating it) as a qcow2 image. 0 or -errno (logged). */
int img_qcow2_create(const char *path, const struct img_create_opts *o);
/* qemu-img check [-r]: fix 0 none, 1 leaks, 3 all. 0 when the check ran,
 * whatever it found; -errno (logged) when it could not. */
/* lock: qemu-img check's lock (a writer's with fix), none with -U. */
int img_qcow2_check(const char *path, int fix, bool lock, struct img_check_result *r);

/* ---- output (img/json_out.c) -------------------------------------------- */

/* Prints v the way qemu-img does (4-space indents, "key": value). */
void img_json_print(FILE *f, struct json_object *v);

#endif
