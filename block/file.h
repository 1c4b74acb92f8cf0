/* The host-file layer ("protocol" in QEMU's terms): what every image
 * format does to the file it lives in. Asynchronous reads and writes at
 * host offsets that restart after short transfers and bounce misaligned
 * O_DIRECT buffers through a bounded per-file pool; flushes serialised per
 * file with the fsyncgate rule; discard and write-zeroes with their
 * fallbacks; and plain synchronous helpers for metadata at open and close.
 * raw maps guest offsets 1:1 onto it; qcow2 sends it data and metadata.
 *
 * Threads: a host_file is shared by every I/O thread of its disk. Its
 * fields below the line are per file and guarded by `lock` or atomic; a
 * file_io belongs to the thread whose engine it was started on, and its
 * completion always runs there. */
#ifndef KVMINI_FILE_H
#define KVMINI_FILE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block/io_engine.h"

/* The most iovec segments one request may carry (virtio-blk advertises
 * seg_max 254; kvmini-img uses one). */
#define BLOCK_MAX_IOV 256

/* Bounce pool for cache=none requests whose buffers O_DIRECT cannot take:
 * requests bounce in chunks, at most BOUNCE_CHUNKS of them per file at
 * once, so a guest cannot make the host allocate more than this. */
#define BOUNCE_CHUNK  (256u << 10)
#define BOUNCE_CHUNKS 16u

struct file_io;
typedef void (*file_done_fn)(struct file_io *io, int64_t res);

struct host_file {
	int fd;
	const char *path;         /* for messages; owned by the block */
	bool readonly;
	bool direct;              /* O_DIRECT */
	uint32_t lbs;             /* O_DIRECT offset/length alignment (512 otherwise) */
	uint32_t buf_align;       /* O_DIRECT buffer alignment (1 otherwise) */
	/* ---- shared between I/O threads ---- */
	pthread_mutex_t lock;
	/* fsyncgate: once an fdatasync failed, the page cache may have dropped
	 * the dirty data, so no later flush may claim success. Under lock;
	 * read without it only as a hint. */
	atomic_bool flush_failed;
	bool flush_running;       /* an fdatasync is in flight (lock) */
	struct file_io *flush_batch;    /* flushes it answers (lock) */
	struct io_post flush_post;      /* its "could not queue" completion */
	struct file_io *flush_waiting;  /* flushes that arrived since (lock) */
	atomic_bool no_punch;     /* PUNCH_HOLE returned EOPNOTSUPP once */
	atomic_bool no_zero_range;
	void *zero_buf;           /* write-zeroes fallback, made once (lock) */
	uint8_t *bounce_mem;      /* BOUNCE_CHUNKS chunks, made on first use (lock) */
	unsigned bounce_free_mask;      /* bit i: chunk i is free (lock) */
	struct file_io *bounce_waiting; /* FIFO of requests waiting for a chunk (lock) */
	struct file_io *bounce_waiting_tail;
};

enum file_op { FILE_READ, FILE_WRITE, FILE_FLUSH, FILE_DISCARD, FILE_WZ_PUNCH, FILE_WZ_RANGE,
	       FILE_WZ_WRITE };

/* One operation on the file. It lives in the caller's request (a driver's
 * private area), so the data path allocates nothing. */
struct file_io {
	struct host_file *f;
	struct io_engine *e;
	file_done_fn done;
	void *opaque;             /* the caller's */
	enum file_op op;
	uint64_t off, len, pos;   /* pos: bytes done so far */
	const struct iovec *user_iov;   /* the caller's buffers */
	unsigned user_iovcnt;
	struct iovec *iov;        /* what is left of the current transfer */
	unsigned iovcnt;
	int chunk;                /* bounce chunk held, or -1 */
	uint64_t chunk_len;       /* bytes of the current bounce round */
	struct io_post post;      /* deferred or cross-thread completion */
	struct file_io *next;     /* flush and bounce wait lists */
	bool parked;              /* a flush waiting for another thread's fdatasync */
	bool eof_ok;              /* file_read_upto: EOF ends the read early */
	struct iovec iov_buf[BLOCK_MAX_IOV];
};

/* Sets up the shared state of an open fd; file_fini releases it. */
int file_init(struct host_file *f, int fd, const char *path, bool readonly, bool direct,
	      uint32_t lbs, uint32_t buf_align);
void file_fini(struct host_file *f);

/* Asynchronous operations. Each completes exactly once through done, on
 * e's thread and never inside the call: reads and writes with the byte
 * count (a transfer ending at EOF early is -EIO), the others with 0, all
 * failures with -errno. iov (at most BLOCK_MAX_IOV segments) and its
 * buffers stay the caller's until done. */
void file_readv(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		const struct iovec *iov, unsigned iovcnt, file_done_fn done, void *opaque);
/* The same, but the end of the file ends the read without an error: the
 * result is the bytes read (qcow2's compressed clusters may be described
 * as running past the end of the file, and its last data cluster may be
 * written only in part). */
void file_read_upto(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		    const struct iovec *iov, unsigned iovcnt, file_done_fn done, void *opaque);
void file_writev(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		 const struct iovec *iov, unsigned iovcnt, file_done_fn done, void *opaque);
/* fdatasync, serialised per file: a flush that arrives while one is in
 * flight waits for it and then shares one new fdatasync with every other
 * waiter, so a failure anywhere fails every flush that could have relied on
 * it, and every later one (-EIO). */
void file_flush(struct file_io *io, struct host_file *f, struct io_engine *e, file_done_fn done,
		void *opaque);
/* Punches a hole (a hint: without hole punching it completes with 0). */
void file_discard(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		  uint64_t len, file_done_fn done, void *opaque);
/* The range reads back as zeroes afterwards: a hole when unmap is allowed,
 * else ZERO_RANGE, else written zeroes. */
void file_write_zeroes(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		       uint64_t len, bool unmap, file_done_fn done, void *opaque);

/* Synchronous helpers for metadata at open and close (never on a guest's
 * data path): whole transfers (EINTR and short transfers retried; EOF
 * inside the range is -EIO), through an aligned buffer under O_DIRECT. */
int file_pread(struct host_file *f, void *buf, size_t len, uint64_t off);
int file_pwrite(struct host_file *f, const void *buf, size_t len, uint64_t off);
int file_sync(struct host_file *f);
/* The loop under them, for any fd (the qcow2 creator and checker): the
 * whole range, EINTR and short transfers retried, EOF inside it -EIO. */
int fd_pio_full(int fd, void *buf, size_t len, uint64_t off, bool write);
/* The file's current size in bytes (block devices: the device size). */
int file_size(struct host_file *f, uint64_t *size);

#endif
