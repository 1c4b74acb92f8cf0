/* The block-driver interface: what virtio-blk (and kvmini-img) see of a disk
 * image, whatever its format. Every operation is asynchronous on the calling
 * thread's I/O engine and completes through a callback on that thread. */
#ifndef KVMINI_BLOCK_H
#define KVMINI_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct io_engine;
struct block;

enum block_format { BLOCK_FMT_AUTO, BLOCK_FMT_RAW, BLOCK_FMT_QCOW2 };
enum block_cache { BLOCK_CACHE_WRITEBACK, BLOCK_CACHE_NONE };

struct block_config {
	const char *path;
	enum block_format format;
	enum block_cache cache;
	bool readonly;
	bool lock;           /* take QEMU-compatible image locks (qcow2 issue) */
};

/* result: bytes transferred (>= 0) or -errno. */
typedef void (*block_done_fn)(void *opaque, int64_t result);

struct block_req {
	uint64_t offset;             /* bytes */
	const struct iovec *iov;     /* caller keeps iov and buffers alive until done */
	unsigned iovcnt;
	uint64_t len;                /* for discard/write_zeroes: length; else sum of iov */
	bool may_unmap;              /* write_zeroes: may deallocate */
	block_done_fn done;
	void *opaque;
};

struct block_ops {
	const char *name;
	int (*read)(struct block *b, struct io_engine *e, struct block_req *r);
	int (*write)(struct block *b, struct io_engine *e, struct block_req *r);
	int (*flush)(struct block *b, struct io_engine *e, struct block_req *r);
	int (*discard)(struct block *b, struct io_engine *e, struct block_req *r);
	int (*write_zeroes)(struct block *b, struct io_engine *e, struct block_req *r);
	void (*close)(struct block *b);
};

struct block {
	const struct block_ops *ops;
	const char *path;
	uint64_t size;               /* bytes, a multiple of 512 as the guest sees it */
	uint32_t logical_block_size; /* 512, or the device's for cache=none */
	uint32_t buf_align;          /* cache=none: buffer address alignment O_DIRECT
	                              * needs (misaligned buffers are bounced);
	                              * 1 otherwise */
	bool readonly;
	bool direct;                 /* cache=none: O_DIRECT */
	bool discard_supported;
	int fd;
	/* Once an fdatasync fails, the page cache may have dropped the dirty
	 * data: no later flush may claim success (the "fsyncgate" rule). */
	bool flush_failed;
	void *priv;                  /* driver state */
};

/* cfg->lock is not implemented yet (it belongs to the qcow2 issue) and is
 * ignored. block_open fills path, readonly, direct, fd, logical_block_size
 * and buf_align, probes the format, then the driver's open sets ops, size,
 * discard_supported and priv. */

/* Opens the image with the driver its format names (auto: probe). Errors
 * are logged in one line; -ENOENT/-EISDIR/-EINVAL etc. are the user's. */
int block_open(struct block **out, const struct block_config *cfg);
void block_close(struct block *b);

/* Submission helpers: check bounds and read-only, then call the driver. A
 * request that fails validation completes immediately with -EINVAL/-EROFS
 * through its callback (never synchronously returned), so the caller has
 * one completion path. The callback never runs inside these calls: at the
 * earliest from the next io_engine_run on e.
 *   read/write: the byte count is the sum of the iovec (r->len is not
 *   used); result = that count. Length 0 completes with 0.
 *   cache=none: offset and length must be multiples of logical_block_size
 *   (-EINVAL otherwise, also for write_zeroes); misaligned buffers are fine.
 *   flush: 0, or -EIO for ever once one failed (flush_failed).
 *   discard: -EOPNOTSUPP when !discard_supported; otherwise 0 (a hint: a
 *   file system without hole punching ignores it).
 *   write_zeroes: 0; the range reads back zero afterwards.
 * The struct block_req itself may be reused once the call returns. */
void block_read(struct block *b, struct io_engine *e, struct block_req *r);
void block_write(struct block *b, struct io_engine *e, struct block_req *r);
void block_flush(struct block *b, struct io_engine *e, struct block_req *r);
void block_discard(struct block *b, struct io_engine *e, struct block_req *r);
void block_write_zeroes(struct block *b, struct io_engine *e, struct block_req *r);

/* After a short transfer of n bytes: drops the segments done (and empty
 * ones at the front) and trims the partly done one, editing *iov (a
 * caller-owned copy of the array) in place. */
void block_iov_advance(struct iovec **iov, unsigned *iovcnt, uint64_t n);

/* Drivers: the open function of each format, called by block_open. */
int raw_open(struct block *b);

#endif
