/* The raw driver: guest byte N is file byte N. Each request becomes one
 * io_uring operation, resubmitted for the remainder after a short transfer.
 * cache=none requests whose buffers O_DIRECT cannot take go through an
 * aligned bounce buffer. write_zeroes falls back from fallocate to writing
 * zeroes when the file system cannot. */
#include "block/block.h"
#include "block/io_engine.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define ZERO_BUF_LEN (1u << 20)   /* write_zeroes fallback: 1 MiB per write */
#define INLINE_IOV 4

struct raw_state {
	bool no_punch;       /* PUNCH_HOLE returned EOPNOTSUPP once */
	bool no_zero_range;  /* ZERO_RANGE returned EOPNOTSUPP once */
	void *zero_buf;      /* shared, read-only, aligned; allocated on first use */
	size_t zero_len;
};

enum raw_op { RAW_READ, RAW_WRITE, RAW_FLUSH, RAW_DISCARD, RAW_WZ_PUNCH, RAW_WZ_RANGE,
	      RAW_WZ_WRITE };

struct raw_req {
	struct block *b;
	struct io_engine *e;
	block_done_fn done;
	void *opaque;
	enum raw_op op;
	uint64_t offset, len, pos;     /* pos: bytes transferred so far */
	struct iovec *iov;             /* what is left to transfer (our copy) */
	unsigned iovcnt;
	struct iovec *iov_alloc;       /* heap copy when more than INLINE_IOV */
	const struct iovec *user_iov;  /* bounce: where a read is copied out to */
	unsigned user_iovcnt;
	void *bounce;
	struct iovec one;              /* the bounce or zero buffer */
	struct iovec inline_iov[INLINE_IOV];
};

static void raw_cb(void *opaque, int res);

static struct raw_req *req_new(struct block *b, struct io_engine *e, struct block_req *r,
			       enum raw_op op)
{
	struct raw_req *q = calloc(1, sizeof(*q));
	if (!q) {
		log_err("disk %s: out of memory", b->path);
		abort();
	}
	q->b = b;
	q->e = e;
	q->done = r->done;
	q->opaque = r->opaque;
	q->op = op;
	q->offset = r->offset;
	q->len = r->len;
	return q;
}

static void req_free(struct raw_req *q)
{
	free(q->iov_alloc);
	free(q->bounce);
	free(q);
}

static void finish(struct raw_req *q, int64_t res)
{
	block_done_fn done = q->done;
	void *opaque = q->opaque;
	req_free(q);
	done(opaque, res);
}

static void finish_cb(void *opaque, int res) { finish(opaque, res); }

static void copy_from_iov(void *dst, const struct iovec *iov, unsigned n)
{
	char *p = dst;
	for (unsigned i = 0; i < n; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

static void copy_to_iov(const struct iovec *iov, unsigned n, const void *src)
{
	const char *p = src;
	for (unsigned i = 0; i < n; i++) {
		memcpy(iov[i].iov_base, p, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

/* Can O_DIRECT take these buffers as they are? Each segment's address
 * must be aligned to buf_align and its length to the logical block size. */
static bool iov_direct_ok(const struct block *b, const struct iovec *iov, unsigned n)
{
	uintptr_t amask = b->buf_align - 1, lmask = b->logical_block_size - 1;
	for (unsigned i = 0; i < n; i++)
		if (((uintptr_t)iov[i].iov_base & amask) || (iov[i].iov_len & lmask))
			return false;
	return true;
}

/* Queues the next (or first) operation of q. */
static int step(struct raw_req *q)
{
	struct raw_state *st = q->b->priv;
	int fd = q->b->fd;
	uint64_t off = q->offset + q->pos;
	switch (q->op) {
	case RAW_READ:
		return io_engine_readv(q->e, fd, q->iov, q->iovcnt, off, raw_cb, q);
	case RAW_WRITE:
		return io_engine_writev(q->e, fd, q->iov, q->iovcnt, off, raw_cb, q);
	case RAW_WZ_WRITE:
		q->one.iov_base = st->zero_buf;
		q->one.iov_len = q->len - q->pos < st->zero_len ? q->len - q->pos : st->zero_len;
		return io_engine_writev(q->e, fd, &q->one, 1, off, raw_cb, q);
	case RAW_FLUSH:
		return io_engine_fdatasync(q->e, fd, raw_cb, q);
	case RAW_DISCARD:
	case RAW_WZ_PUNCH:
		return io_engine_fallocate(q->e, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					   q->offset, q->len, raw_cb, q);
	case RAW_WZ_RANGE:
		return io_engine_fallocate(q->e, fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					   q->offset, q->len, raw_cb, q);
	}
	return -EINVAL;
}

/* First submission: an error completes later, never inside the caller. */
static int start(struct raw_req *q)
{
	int ret = step(q);
	if (ret < 0)
		io_engine_defer(q->e, ret, finish_cb, q);
	return 0;
}

/* Resubmission from a callback: an error completes now. */
static void restart(struct raw_req *q)
{
	int ret = step(q);
	if (ret < 0)
		finish(q, ret);
}

static int zero_buf_get(struct block *b)
{
	struct raw_state *st = b->priv;
	if (st->zero_buf)
		return 0;
	size_t align = b->buf_align > 4096 ? b->buf_align : 4096;
	if (posix_memalign(&st->zero_buf, align, ZERO_BUF_LEN))
		return -ENOMEM;
	memset(st->zero_buf, 0, ZERO_BUF_LEN);
	st->zero_len = ZERO_BUF_LEN;
	return 0;
}

/* write_zeroes: the next, slower way after the file system refused one. */
static void wz_fallback(struct raw_req *q)
{
	struct raw_state *st = q->b->priv;
	if (q->op == RAW_WZ_PUNCH) {
		st->no_punch = true;
		if (!st->no_zero_range) {
			q->op = RAW_WZ_RANGE;
			restart(q);
			return;
		}
	} else {
		st->no_zero_range = true;
	}
	int ret = zero_buf_get(q->b);
	if (ret < 0) {
		finish(q, ret);
		return;
	}
	q->op = RAW_WZ_WRITE;
	q->pos = 0;
	restart(q);
}

static void raw_cb(void *opaque, int res)
{
	struct raw_req *q = opaque;
	struct block *b = q->b;
	switch (q->op) {
	case RAW_READ:
	case RAW_WRITE:
	case RAW_WZ_WRITE:
		if (res < 0) {
			finish(q, res);
			return;
		}
		if (res == 0) {
			/* The size is fixed at open: no EOF inside it unless
			 * someone truncated the image under us. */
			finish(q, -EIO);
			return;
		}
		q->pos += (uint64_t)res;
		if (q->pos < q->len) {
			if (q->op != RAW_WZ_WRITE)
				block_iov_advance(&q->iov, &q->iovcnt, (uint64_t)res);
			restart(q);
			return;
		}
		if (q->op == RAW_READ && q->bounce)
			copy_to_iov(q->user_iov, q->user_iovcnt, q->bounce);
		finish(q, q->op == RAW_WZ_WRITE ? 0 : (int64_t)q->len);
		return;
	case RAW_FLUSH:
		if (res < 0) {
			if (!b->flush_failed)
				log_err("disk %s: flush failed: %s; every later flush fails too",
					b->path, strerror(-res));
			b->flush_failed = true;
		}
		finish(q, res < 0 ? res : 0);
		return;
	case RAW_DISCARD:
		/* Discard is a hint: a file system without hole punching
		 * completes it as a no-op. */
		finish(q, res == -EOPNOTSUPP ? 0 : (res < 0 ? res : 0));
		return;
	case RAW_WZ_PUNCH:
	case RAW_WZ_RANGE:
		if (res == -EOPNOTSUPP) {
			wz_fallback(q);
			return;
		}
		finish(q, res < 0 ? res : 0);
		return;
	}
}

static int raw_rw(struct block *b, struct io_engine *e, struct block_req *r, bool write)
{
	struct raw_req *q = req_new(b, e, r, write ? RAW_WRITE : RAW_READ);
	uint64_t len = 0;
	for (unsigned i = 0; i < r->iovcnt; i++)
		len += r->iov[i].iov_len;
	q->len = len;

	if (b->direct && !iov_direct_ok(b, r->iov, r->iovcnt)) {
		size_t align = b->buf_align > 4096 ? b->buf_align : 4096;
		if (posix_memalign(&q->bounce, align, len)) {
			q->bounce = NULL;
			io_engine_defer(e, -ENOMEM, finish_cb, q);
			return 0;
		}
		if (write)
			copy_from_iov(q->bounce, r->iov, r->iovcnt);
		q->user_iov = r->iov;
		q->user_iovcnt = r->iovcnt;
		q->one.iov_base = q->bounce;
		q->one.iov_len = len;
		q->iov = &q->one;
		q->iovcnt = 1;
		return start(q);
	}

	/* Our own copy of the iovec array: a short transfer edits it. */
	if (r->iovcnt > INLINE_IOV) {
		q->iov_alloc = malloc(r->iovcnt * sizeof(*q->iov_alloc));
		if (!q->iov_alloc) {
			io_engine_defer(e, -ENOMEM, finish_cb, q);
			return 0;
		}
		q->iov = q->iov_alloc;
	} else {
		q->iov = q->inline_iov;
	}
	memcpy(q->iov, r->iov, r->iovcnt * sizeof(*q->iov));
	q->iovcnt = r->iovcnt;
	return start(q);
}

static int raw_read(struct block *b, struct io_engine *e, struct block_req *r)
{
	return raw_rw(b, e, r, false);
}

static int raw_write(struct block *b, struct io_engine *e, struct block_req *r)
{
	return raw_rw(b, e, r, true);
}

static int raw_flush(struct block *b, struct io_engine *e, struct block_req *r)
{
	return start(req_new(b, e, r, RAW_FLUSH));
}

static int raw_discard(struct block *b, struct io_engine *e, struct block_req *r)
{
	return start(req_new(b, e, r, RAW_DISCARD));
}

static int raw_write_zeroes(struct block *b, struct io_engine *e, struct block_req *r)
{
	struct raw_state *st = b->priv;
	struct raw_req *q;
	if (r->may_unmap && !st->no_punch) {
		q = req_new(b, e, r, RAW_WZ_PUNCH);
	} else if (!st->no_zero_range) {
		q = req_new(b, e, r, RAW_WZ_RANGE);
	} else {
		q = req_new(b, e, r, RAW_WZ_WRITE);
		int ret = zero_buf_get(b);
		if (ret < 0) {
			io_engine_defer(e, ret, finish_cb, q);
			return 0;
		}
	}
	return start(q);
}

static void raw_close(struct block *b)
{
	struct raw_state *st = b->priv;
	if (st)
		free(st->zero_buf);
	free(st);
	b->priv = NULL;
}

static const struct block_ops raw_ops = {
	.name = "raw",
	.read = raw_read,
	.write = raw_write,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.close = raw_close,
};

int raw_open(struct block *b)
{
	struct stat st;
	if (fstat(b->fd, &st) < 0) {
		int err = errno;
		log_err("disk %s: %s", b->path, strerror(err));
		return -err;
	}
	uint64_t size;
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(b->fd, BLKGETSIZE64, &size) < 0) {
			int err = errno;
			log_err("disk %s: cannot get the device size: %s", b->path, strerror(err));
			return -err;
		}
		/* BLKDISCARD is not wired up: discard is not offered. */
		b->discard_supported = false;
	} else {
		size = (uint64_t)st.st_size;
		b->discard_supported = true;
	}
	/* The guest sees whole sectors (whole logical blocks for O_DIRECT):
	 * a partial one at the end is not used. */
	uint64_t unit = b->direct ? b->logical_block_size : 512;
	if (size % unit)
		log_warn("disk %s: size %llu is not a multiple of %llu; the last %llu bytes are not used",
			 b->path, (unsigned long long)size, (unsigned long long)unit,
			 (unsigned long long)(size % unit));
	b->size = size - size % unit;

	struct raw_state *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return -ENOMEM;
	b->priv = rs;
	b->ops = &raw_ops;
	return 0;
}
