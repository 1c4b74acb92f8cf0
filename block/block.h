/* The block-driver interface: what virtio-blk (and kvmini-img) see of a disk
 * image, whatever its format. Every operation is asynchronous on the calling
 * thread's I/O engine and completes through a callback on that thread.
 *
 * Threads: one struct block is shared by every I/O thread of its disk
 * (one per virtqueue by default). Requests may be submitted on several
 * engines at once; a request and its completion belong to the engine it
 * was submitted on. The fields below are set at open and read-only after;
 * a driver guards its own shared state (block/file.h, block/qcow2*.c). */
#ifndef KVMINI_BLOCK_H
#define KVMINI_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block/file.h"
#include "block/io_engine.h"

struct block;

enum block_format { BLOCK_FMT_AUTO, BLOCK_FMT_RAW, BLOCK_FMT_QCOW2 };
enum block_cache { BLOCK_CACHE_WRITEBACK, BLOCK_CACHE_NONE };

/* The images above one being opened as a backing file (to refuse loops). */
struct block_chain {
	unsigned long long dev, ino;
	const struct block_chain *up;
};

struct block_config {
	const char *path;
	enum block_format format;
	enum block_cache cache;
	bool readonly;
	bool lock;           /* take QEMU-compatible image locks */
	uint64_t l2_cache;   /* qcow2 L2 cache bytes; 0: cover the disk, up to 32 MiB */
	unsigned chain_depth;  /* internal: how deep in a backing chain this image is */
	const struct block_chain *chain;  /* internal: the images above it */
};

/* result: bytes transferred (>= 0) or -errno. */
typedef void (*block_done_fn)(void *opaque, int64_t result);

struct block_req {
	uint64_t offset;             /* bytes */
	const struct iovec *iov;     /* caller keeps iov and buffers alive until done */
	unsigned iovcnt;             /* at most BLOCK_MAX_IOV */
	uint64_t len;                /* for discard/write_zeroes: length; for reads and
	                              * writes the block layer sets it to the iov sum */
	bool may_unmap;              /* write_zeroes: may deallocate */
	block_done_fn done;
	void *opaque;
	/* The driver's working area for this request: block_req_priv_size(b)
	 * bytes, 16-byte aligned, owned by the caller (allocated once, with
	 * the request), so the data path allocates nothing. */
	void *drv;
	/* private to the block layer */
	struct io_engine *e;
	struct io_post post;
};

/* What block_status says of the extent starting at an offset. */
struct block_extent {
	uint64_t len;        /* bytes from the offset with the same answer (> 0) */
	bool data;           /* reads may return non-zero bytes (stored data) */
	bool zero;           /* reads return zeroes */
	bool present;        /* some layer of the chain stores it */
	bool compressed;     /* qcow2 compressed cluster */
	unsigned depth;      /* the layer that answers: 0 = this image, 1 = its backing, ... */
	int64_t host_offset; /* where the data sits in the layer's file, or -1 */
	const char *file;    /* that layer's path */
};

struct block_ops {
	const char *name;
	int (*read)(struct block *b, struct block_req *r);
	int (*write)(struct block *b, struct block_req *r);
	int (*flush)(struct block *b, struct block_req *r);
	int (*discard)(struct block *b, struct block_req *r);
	int (*write_zeroes)(struct block *b, struct block_req *r);
	/* Optional (qcow2): see block_write_compressed. */
	int (*write_compressed)(struct block *b, struct block_req *r);
	/* Optional: start writing back what the driver caches for requests
	 * of engine e (metadata); block_drain then waits for it. */
	void (*drain)(struct block *b, struct io_engine *e);
	/* Synchronous, for tools (kvmini-img map/convert), never the data
	 * path: see block_status and block_resize. */
	int (*status)(struct block *b, uint64_t offset, uint64_t len, struct block_extent *ext);
	int (*resize)(struct block *b, uint64_t size);
	/* Synchronous: write caches back, release the driver's state. */
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
	bool write_zeroes_supported;
	uint32_t cluster_size;       /* qcow2: the unit of compressed writes; 0 for raw */
	struct host_file file;       /* the image file itself */
	size_t req_priv_size;        /* what each block_req's drv must hold */
	void *priv;                  /* driver state */
};

/* Opens the image with the driver its format names (auto: probe). Errors
 * are logged in one line; -ENOENT/-EISDIR/-EINVAL etc. are the user's.
 * cfg->lock is not implemented yet (it belongs to the qcow2 issue). */
int block_open(struct block **out, const struct block_config *cfg);
/* Writes caches back and closes. Call after block_drain on every engine
 * that submitted requests. */
void block_close(struct block *b);
static inline size_t block_req_priv_size(const struct block *b) { return b->req_priv_size; }
/* fsyncgate state: true once a flush of the image failed. */
bool block_flush_failed(const struct block *b);

/* Submission helpers: check bounds and read-only, then call the driver. A
 * request that fails validation completes immediately with -EINVAL/-EROFS
 * through its callback (never synchronously returned), so the caller has
 * one completion path. The callback never runs inside these calls: at the
 * earliest from the next io_engine_run on e.
 *   read/write: the byte count is the sum of the iovec (r->len is not
 *   used); result = that count. Length 0 completes with 0.
 *   cache=none: offset and length must be multiples of logical_block_size
 *   (-EINVAL otherwise, also for write_zeroes); misaligned buffers are fine.
 *   flush: 0, or -EIO for ever once one failed (block_flush_failed).
 *   discard: -EOPNOTSUPP when !discard_supported; otherwise 0 (a hint: a
 *   file system without hole punching ignores it).
 *   write_zeroes: 0; the range reads back zero afterwards.
 * The struct block_req must stay alive until its callback ran. */
void block_read(struct block *b, struct io_engine *e, struct block_req *r);
void block_write(struct block *b, struct io_engine *e, struct block_req *r);
void block_flush(struct block *b, struct io_engine *e, struct block_req *r);
void block_discard(struct block *b, struct io_engine *e, struct block_req *r);
void block_write_zeroes(struct block *b, struct io_engine *e, struct block_req *r);

/* One cluster stored compressed (kvmini-img convert -c): the offset a
 * multiple of b->cluster_size, the length one cluster or what is left of
 * the disk. Data that does not shrink is stored as a normal cluster.
 * -ENOTSUP for formats without compression and under cache=none (the
 * compressed bytes sit at any byte offset); -EINVAL off the grid. */
void block_write_compressed(struct block *b, struct io_engine *e, struct block_req *r);

/* Runs e until every request submitted on it has completed and the
 * driver's write-back for them is done. 0 or the engine's -errno. */
int block_drain(struct block *b, struct io_engine *e);

/* The allocation status of [offset, offset + len) from offset on (as
 * qemu-img map shows it): fills ext for the longest prefix with one
 * answer. Synchronous; call with no request in flight. 0 or -errno. */
int block_status(struct block *b, uint64_t offset, uint64_t len, struct block_extent *ext);
/* Changes the virtual size (kvmini-img resize); shrinking is refused with
 * -ENOTSUP unless the driver can prove the tail unused. Synchronous, with
 * no request in flight. 0 or -errno (logged). */
int block_resize(struct block *b, uint64_t size);

#endif
