/* The qcow2 driver's own state, shared by its files: qcow2.c (open,
 * close, the block_ops), qcow2_io.c (the life of a request), qcow2_meta.c
 * (metadata caches, refcounts, allocation, ordered write-back). The
 * on-disk format itself is qcow2_format.h; docs/qcow2.md explains it.
 *
 * Threads: one struct qcow2 serves every I/O thread of its disk. All of its
 * metadata (L1, the L2 and refcount caches, the refcount table, the
 * allocator, the in-flight cluster ranges, the buffer pool) is guarded by
 * `lock`; metadata I/O happens synchronously under it (a cache miss or a
 * write-back), guest data I/O asynchronously outside it. A request belongs
 * to the engine it was submitted on; requests parked on a range or a
 * buffer are woken by posts to their engine. */
#ifndef KVMINI_QCOW2_H
#define KVMINI_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "block/driver.h"
#include "block/file.h"
#include "block/qcow2_format.h"

/* A metadata cache: fixed-size slices of L2 tables or refcount blocks,
 * keyed by their host offset, evicted least recently used. */
struct qcow2_cache_slot {
	uint64_t key;             /* host offset of the slice; valid if data */
	uint64_t last_use;
	bool dirty;
};

struct qcow2_cache {
	const char *name;         /* "L2", "refcount" (messages) */
	unsigned nslots;
	unsigned nused;           /* slots [0, nused) have held a slice */
	size_t slice;             /* bytes per slice */
	uint8_t *mem;             /* nslots * slice */
	struct qcow2_cache_slot *slots;
	bool *used;               /* slot holds a slice */
	uint32_t *index;          /* hash: slot + 1, 0 = empty; open addressing */
	unsigned index_mask;
	uint64_t tick;
	unsigned ndirty;
	uint64_t hits, misses;
};

/* A range of guest clusters a write-type request is changing: others that
 * touch it wait (so one cluster is never allocated twice and a discard
 * never races a write into the cluster it frees). */
struct qcow2_range {
	uint64_t c0, c1;          /* [c0, c1) guest cluster indices */
	struct qcow2_range *next; /* s->ranges */
	struct qcow2_req *waiters;
};

/* Cluster buffers per image (copy-on-write, compressed clusters): as many
 * as QCOW2_BUF_BUDGET holds, 2 to 64, allocated as first needed. */
#define QCOW2_MAX_BUFS 64
#define QCOW2_BUF_BUDGET (8u << 20)
#define QCOW2_MAX_FREES 4096      /* pending refcount decrements before a write-back */
#define QCOW2_MAX_CHAIN 32        /* backing chain depth */

struct qcow2 {
	struct block *b;
	struct host_file *f;
	struct qcow2_header h;
	unsigned cluster_bits;
	uint64_t cs;              /* cluster size */
	uint64_t l2_entries;      /* entries per L2 table */
	uint64_t rb_entries;      /* refcount entries per refcount block */
	size_t slice;             /* cache slice bytes: min(cluster, 4 KiB) */
	uint64_t virtual_size;    /* header size (the guest sees it rounded down to 512) */

	pthread_mutex_t lock;
	uint64_t *l1;             /* host-endian copy of the L1 table */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint32_t l1_dirty_lo, l1_dirty_hi;   /* dirty entries [lo, hi) */
	uint64_t *rt;             /* host-endian refcount table */
	uint64_t rt_entries;
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_dirty_lo, rt_dirty_hi;
	struct qcow2_cache l2c, rbc;
	uint64_t free_hint;       /* no free host cluster below this index */
	uint64_t end;             /* first cluster index past everything allocated */
	uint64_t file_len;        /* the file's length, grown ahead of end (UINT64_MAX: cannot) */
	uint64_t open_len;        /* its length at open */
	uint64_t compressed_next; /* where the next compressed extent may go, or 0 */
	uint64_t *frees;          /* host cluster indices to decrement at write-back */
	unsigned nfrees;
	bool l2_dirty_since_sync; /* L2/L1 point at data not yet known durable */
	struct qcow2_range *ranges;
	uint8_t *buf[QCOW2_MAX_BUFS];
	unsigned nbufs;
	uint64_t buf_free;        /* bit i: buffer i free */
	struct qcow2_req *buf_waiters;
	size_t buf_len;           /* 2 clusters + a sector: compressed + plain */
	bool broken;              /* metadata corruption seen: writes refused */

	void *zeroes;             /* read-only zero pages for zero writes */
	size_t zeroes_len;
	struct block *backing;    /* read-only, or NULL */
	uint64_t backing_size;
	size_t backing_priv;      /* its drv area, at the end of ours */
};

/* What a request is (kind), and what its current step does (op): a
 * write-zeroes request writes real zeroes (Q_ZERO_WRITE) where the
 * metadata alone cannot make clusters read as zero. */
enum qcow2_op { Q_READ, Q_WRITE, Q_DISCARD, Q_WZ, Q_ZERO_WRITE, Q_COMPRESSED };

/* One guest request on its way through the image (in the block_req's drv
 * area; the backing driver's area follows it). */
struct qcow2_req {
	struct block_req *r;
	struct qcow2 *s;
	enum qcow2_op kind, op;
	bool in_submit;           /* inside the submitting call: complete later */
	uint64_t pos;             /* bytes of the request done */
	uint64_t zero_end;        /* Q_ZERO_WRITE inside Q_WZ: up to here */
	/* the current step */
	uint64_t off, n;          /* guest offset and length */
	uint64_t host;            /* host offset of the data */
	uint64_t nclusters;       /* allocating write: clusters being mapped */
	struct qcow2_l2_info old; /* what the cluster was before (COW) */
	bool have_host;           /* copy-on-write: the new cluster is allocated already */
	int bufi;                 /* cluster buffer held, or -1 */
	struct qcow2_range range;
	bool range_held;
	void (*resume)(struct qcow2_req *q);   /* after a wait */
	struct qcow2_req *next_waiter;
	struct io_post post;
	struct file_io io;
	struct iovec slice[BLOCK_MAX_IOV];
	unsigned nslice;
	struct iovec one;
	uint64_t skip;            /* compressed data: where it starts in the read window */
	struct block_req sub;     /* a read of the backing file */
	_Alignas(16) uint8_t backing_area[];
};

/* ---- qcow2_meta.c (all with s->lock held) ---- */
int qcow2_cache_init(struct qcow2_cache *c, const char *name, size_t slice, size_t bytes);
void qcow2_cache_free(struct qcow2_cache *c);
/* The slice at host offset key (slice-aligned): loaded from the file, or
 * zeroed without reading when fresh (a newly allocated table). NULL with
 * *err on failure. The pointer lives until the next get on the cache. */
uint8_t *qcow2_cache_get(struct qcow2 *s, struct qcow2_cache *c, uint64_t key, bool fresh,
			 int *err);
void qcow2_cache_dirty(struct qcow2_cache *c, const uint8_t *slice);

/* The L2 entry of guest cluster gc (0 when its L2 table is missing). */
int qcow2_l2_get(struct qcow2 *s, uint64_t gc, uint64_t *entry);
/* Sets it, allocating the L2 table first if needed. */
int qcow2_l2_set(struct qcow2 *s, uint64_t gc, uint64_t entry);
int qcow2_rc_get(struct qcow2 *s, uint64_t hc, uint64_t *rc);
/* n contiguous clusters (or fewer, at least 1: *got) with refcount 1;
 * returns the first host offset or -errno. *fresh (if asked): they lie
 * past everything ever allocated, so the file reads zeroes there. */
int64_t qcow2_alloc(struct qcow2 *s, uint64_t n, uint64_t *got, bool *fresh);
/* len bytes for compressed data, packed after the previous ones in the
 * same host cluster when they fit (each extent counts one reference on
 * its cluster). Returns the host byte offset or -errno. */
int64_t qcow2_alloc_bytes(struct qcow2 *s, uint64_t len);
/* Drops one reference of each host cluster of an entry that is replaced,
 * after the L2 change is durable (at the next write-back). */
int qcow2_free_entry(struct qcow2 *s, const struct qcow2_l2_info *old);
/* Ordered write-back of every dirty piece of metadata: data, then
 * refcounts, then L2 and L1, then the deferred frees. */
int qcow2_writeback(struct qcow2 *s);
/* Grows the L1 table to cover l1_needed entries (resize). */
int qcow2_grow_l1(struct qcow2 *s, uint64_t l1_needed);
int qcow2_write_header_field(struct qcow2 *s, uint64_t off, const void *v, size_t len);

/* ---- qcow2_io.c ---- */
/* Starts a request of the given kind (r->drv is its qcow2_req). */
void qcow2_submit(struct qcow2 *s, struct block_req *r, enum qcow2_op kind);

#endif
