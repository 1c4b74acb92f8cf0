/* The life of a qcow2 request. A guest request is cut into steps, each a
 * run of clusters that map the same way: contiguous allocated clusters
 * become one host read or write, zero and unallocated ones are filled in
 * memory or read from the backing file, a compressed cluster is read and
 * inflated, and a write to a cluster that is not yet the image's own
 * allocates (copying what the cluster held before, when the write covers
 * only part of it). A step that waits for I/O returns; its callback runs
 * the next step on the same thread.
 *
 * Ordering: a write's data reaches the file before the L2 entry that maps
 * it is set, and that entry reaches the disk only at write-back, after a
 * sync (qcow2_meta.c). Write-type steps register the guest clusters they
 * change, and a step touching a registered range waits for it, so a
 * cluster is never allocated twice. */
#include "block/qcow2.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/iov.h"
#include "vmm/log.h"

static void step(struct qcow2_req *q);

/* ---- finishing and waiting ----------------------------------------------- */

static void range_release(struct qcow2_req *q);
static void buf_put(struct qcow2_req *q);

static void finish(struct qcow2_req *q, int64_t res)
{
	struct qcow2 *s = q->s;
	if (q->range_held || q->bufi >= 0) {
		pthread_mutex_lock(&s->lock);
		range_release(q);
		buf_put(q);
		pthread_mutex_unlock(&s->lock);
	}
	if (res >= 0)
		res = q->kind == Q_READ || q->kind == Q_WRITE || q->kind == Q_COMPRESSED
			      ? (int64_t)q->r->len
			      : 0;
	if (q->in_submit)
		block_complete_later(q->r, res);   /* never inside the caller */
	else
		block_complete(q->r, res);
}

static void resume_cb(void *opaque, int res)
{
	struct qcow2_req *q = opaque;
	io_engine_release(q->r->e);
	q->resume(q);
}

/* Parks q on a wait list (lock held); resume runs on q's thread later. */
static void park(struct qcow2_req *q, struct qcow2_req **list, void (*resume)(struct qcow2_req *))
{
	q->resume = resume;
	q->next_waiter = NULL;
	while (*list)
		list = &(*list)->next_waiter;
	*list = q;
	io_engine_hold(q->r->e);
}

static void wake(struct qcow2_req *q)
{
	io_engine_post(q->r->e, &q->post, 0, resume_cb, q);
}

/* ---- in-flight cluster ranges (lock held) ---------------------------------- */

/* Registers [c0, c1) for q, or parks q behind a range it overlaps (then
 * returns false and step runs again when that range is released). */
static bool range_take(struct qcow2_req *q, uint64_t c0, uint64_t c1)
{
	struct qcow2 *s = q->s;
	for (struct qcow2_range *g = s->ranges; g; g = g->next) {
		if (g->c0 < c1 && c0 < g->c1) {
			park(q, &g->waiters, step);
			return false;
		}
	}
	q->range = (struct qcow2_range){ .c0 = c0, .c1 = c1, .next = s->ranges };
	s->ranges = &q->range;
	q->range_held = true;
	return true;
}

static void range_release(struct qcow2_req *q)
{
	if (!q->range_held)
		return;
	struct qcow2 *s = q->s;
	for (struct qcow2_range **pp = &s->ranges; *pp; pp = &(*pp)->next) {
		if (*pp == &q->range) {
			*pp = q->range.next;
			break;
		}
	}
	q->range_held = false;
	for (struct qcow2_req *w = q->range.waiters, *next; w; w = next) {
		next = w->next_waiter;
		wake(w);
	}
	q->range.waiters = NULL;
}

/* ---- cluster buffers (lock held) ------------------------------------------- */

/* Takes a buffer (1), parks q until one is free (0), or -ENOMEM. */
static int buf_get(struct qcow2_req *q, void (*resume)(struct qcow2_req *))
{
	struct qcow2 *s = q->s;
	if (!s->buf_free) {
		park(q, &s->buf_waiters, resume);
		return 0;
	}
	int i = __builtin_ctzll(s->buf_free);
	if (!s->buf[i]) {
		void *m;
		if (posix_memalign(&m, 4096, s->buf_len))
			return -ENOMEM;
		s->buf[i] = m;
	}
	s->buf_free &= ~(1ull << i);
	q->bufi = i;
	return 1;
}

static void buf_put(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	if (q->bufi < 0)
		return;
	struct qcow2_req *w = s->buf_waiters;
	if (w) {
		s->buf_waiters = w->next_waiter;
		w->bufi = q->bufi;
		wake(w);
	} else {
		s->buf_free |= 1ull << q->bufi;
	}
	q->bufi = -1;
}

static uint8_t *buf_of(const struct qcow2_req *q) { return q->s->buf[q->bufi]; }

/* ---- mapping (lock held) ---------------------------------------------------- */

static int decode(struct qcow2 *s, uint64_t gc, struct qcow2_l2_info *info)
{
	uint64_t e;
	int r = qcow2_l2_get(s, gc, &e);
	if (r < 0)
		return r;
	char err[128];
	if (qcow2_l2_entry_decode(e, s->h.version, s->cluster_bits, info, err, sizeof(err)) < 0) {
		if (!s->broken)
			log_err("disk %s: the image is corrupt (%s); writes are refused", s->b->path,
				err);
		s->broken = true;
		return -EIO;
	}
	if (info->kind == QCOW2_CLUSTER_NORMAL && info->host_offset + s->cs > s->end * s->cs) {
		if (!s->broken)
			log_err("disk %s: the image is corrupt (data cluster past the end); writes "
				"are refused", s->b->path);
		s->broken = true;
		return -EIO;
	}
	return 0;
}

/* Clusters the same step may take after one of kind `first`: the same
 * kind, and for data the next host cluster. */
static bool continues(const struct qcow2_l2_info *first, const struct qcow2_l2_info *next,
		      uint64_t i, uint64_t cs, bool write)
{
	if (next->kind != first->kind)
		return false;
	switch (first->kind) {
	case QCOW2_CLUSTER_NORMAL:
		return next->host_offset == first->host_offset + i * cs &&
		       (!write || next->copied == first->copied);
	case QCOW2_CLUSTER_COMPRESSED:
		return false;
	default:
		return true;
	}
}

/* The run of clusters from guest offset off mapping like its first one,
 * at most len bytes: info describes the first, *n the run's bytes. */
static int map_run(struct qcow2 *s, uint64_t off, uint64_t len, bool write,
		   struct qcow2_l2_info *info, uint64_t *n)
{
	uint64_t gc = off >> s->cluster_bits, in = off & (s->cs - 1);
	int r = decode(s, gc, info);
	if (r < 0)
		return r;
	uint64_t run = s->cs - in;
	/* Bounded so one step never holds the lock for long. */
	for (uint64_t i = 1; run < len && i < 1024; i++) {
		struct qcow2_l2_info next;
		if ((r = decode(s, gc + i, &next)) < 0)
			return r;
		if (!continues(info, &next, i, s->cs, write))
			break;
		run += s->cs;
	}
	*n = run < len ? run : len;
	return 0;
}

/* ---- the guest's buffers ------------------------------------------------------ */

/* q->slice = the source or destination of bytes [pos, pos + n) of the
 * request: the guest's iovec, or zero pages for a zero write. */
static int slice_of(struct qcow2_req *q, uint64_t pos, uint64_t n)
{
	struct qcow2 *s = q->s;
	if (q->op == Q_READ || q->op == Q_WRITE) {
		int k = iov_slice(q->slice, BLOCK_MAX_IOV, q->r->iov, q->r->iovcnt, pos, n);
		if (k < 0)
			return -EINVAL;
		q->nslice = (unsigned)k;
		return 0;
	}
	unsigned k = 0;
	while (n) {
		size_t l = n < s->zeroes_len ? (size_t)n : s->zeroes_len;
		if (k == BLOCK_MAX_IOV)
			return -EINVAL;
		q->slice[k++] = (struct iovec){ s->zeroes, l };
		n -= l;
	}
	q->nslice = k;
	return 0;
}

/* The longest zero write one step can send from the zero pages. */
static uint64_t zero_step_max(const struct qcow2 *s)
{
	return (uint64_t)BLOCK_MAX_IOV * s->zeroes_len;
}

static void copy_in(struct qcow2_req *q, uint8_t *dst, uint64_t pos, uint64_t n)
{
	if (q->op == Q_WRITE)
		iov_to_buf(q->r->iov, q->r->iovcnt, pos, dst, n);
	else
		memset(dst, 0, n);
}

/* ---- reads -------------------------------------------------------------------- */

/* The step's n bytes are done (or it failed): on to the next step. */
static void advance(struct qcow2_req *q, int64_t res)
{
	if (res < 0) {
		finish(q, res);
		return;
	}
	q->pos += q->n;
	step(q);
}

static void advance_cb(struct file_io *io, int64_t res) { advance(io->opaque, res); }

/* A data read that met the end of the file: the rest reads as zeroes (a
 * last cluster written only in part, as QEMU reads it too). */
static void data_read_done(struct file_io *io, int64_t res)
{
	struct qcow2_req *q = io->opaque;
	if (res >= 0 && (uint64_t)res < q->n)
		iov_memset(q->r->iov, q->r->iovcnt, q->pos + (uint64_t)res, 0, q->n - (uint64_t)res);
	advance_cb(io, res);
}

static void sub_cb(void *opaque, int64_t res) { advance(opaque, res); }

static void read_backing(struct qcow2_req *q, uint64_t off, uint64_t n, struct iovec *iov,
			 unsigned iovcnt, void (*done)(void *, int64_t))
{
	struct qcow2 *s = q->s;
	q->sub = (struct block_req){ .offset = off, .iov = iov, .iovcnt = iovcnt, .len = n,
				     .done = done, .opaque = q,
				     .drv = s->backing_priv ? q->backing_area : NULL };
	block_read(s->backing, q->r->e, &q->sub);
}

/* Compressed cluster: its bytes into the upper part of the buffer (an
 * aligned window around them under O_DIRECT), then inflated into the lower
 * part. The descriptor counts whole sectors and may run past the end of
 * the file, where the last cluster was written short: reading stops there. */
static void compressed_read(struct qcow2_req *q, void (*then)(struct file_io *, int64_t))
{
	struct qcow2 *s = q->s;
	uint64_t a = s->f->direct ? s->f->lbs : 1;
	uint64_t start = q->old.host_offset & ~(a - 1);
	uint64_t end = (q->old.host_offset + q->old.csize + a - 1) & ~(a - 1);
	q->skip = q->old.host_offset - start;
	if (end - start > s->buf_len - s->cs) {
		then(&q->io, -EIO);
		return;
	}
	q->one = (struct iovec){ buf_of(q) + s->cs, end - start };
	file_read_upto(&q->io, s->f, q->r->e, start, &q->one, 1, then, q);
}

static int inflate(struct qcow2_req *q, int64_t got)
{
	struct qcow2 *s = q->s;
	if ((uint64_t)got <= q->skip)
		return -EIO;
	size_t avail = (size_t)got - q->skip;
	if (avail > q->old.csize)
		avail = q->old.csize;
	int r = qcow2_decompress(s->h.compression_type, buf_of(q) + s->cs + q->skip, avail,
				 buf_of(q), s->cs);
	if (r < 0) {
		log_err("disk %s: a compressed cluster does not inflate: %s", s->b->path,
			strerror(-r));
		return -EIO;
	}
	return 0;
}

static void compressed_read_done(struct file_io *io, int64_t res)
{
	struct qcow2_req *q = io->opaque;
	if (res >= 0)
		res = inflate(q, res);
	if (res < 0) {
		finish(q, res);
		return;
	}
	uint64_t in = q->off & (q->s->cs - 1);
	buf_to_iov(q->r->iov, q->r->iovcnt, q->pos, buf_of(q) + in, q->n);
	pthread_mutex_lock(&q->s->lock);
	buf_put(q);
	pthread_mutex_unlock(&q->s->lock);
	advance(q, 0);
}

static void compressed_start(struct qcow2_req *q) { compressed_read(q, compressed_read_done); }

/* Starts the read step at q->pos; false when it needed no I/O (then the
 * caller loops). */
static bool read_step(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	q->off = q->r->offset + q->pos;
	uint64_t left = q->r->len - q->pos;
	pthread_mutex_lock(&s->lock);
	int r = map_run(s, q->off, left, false, &q->old, &q->n);
	int got = 0;
	if (r == 0 && q->old.kind == QCOW2_CLUSTER_COMPRESSED)
		got = buf_get(q, compressed_start);
	pthread_mutex_unlock(&s->lock);
	if (r < 0 || got < 0) {
		finish(q, r < 0 ? r : got);
		return true;
	}
	uint64_t in = q->off & (s->cs - 1);
	switch (q->old.kind) {
	case QCOW2_CLUSTER_NORMAL:
		if ((r = slice_of(q, q->pos, q->n)) < 0) {
			finish(q, r);
			return true;
		}
		file_read_upto(&q->io, s->f, q->r->e, q->old.host_offset + in, q->slice,
			       q->nslice, data_read_done, q);
		return true;
	case QCOW2_CLUSTER_COMPRESSED:
		if (got)
			compressed_start(q);
		return true;   /* parked otherwise: compressed_start resumes */
	case QCOW2_CLUSTER_UNALLOCATED:
		if (s->backing && q->off < s->backing_size) {
			if (q->n > s->backing_size - q->off)
				q->n = s->backing_size - q->off;
			if ((r = slice_of(q, q->pos, q->n)) < 0) {
				finish(q, r);
				return true;
			}
			read_backing(q, q->off, q->n, q->slice, q->nslice, sub_cb);
			return true;
		}
		/* no backing data here: zeroes */
		__attribute__((fallthrough));
	default:
		iov_memset(q->r->iov, q->r->iovcnt, q->pos, 0, q->n);
		q->pos += q->n;
		return false;
	}
}

/* ---- writes ------------------------------------------------------------------- */

/* The new clusters hold the data: map them, and drop what they replace. */
static void alloc_done(struct file_io *io, int64_t res)
{
	struct qcow2_req *q = io->opaque;
	struct qcow2 *s = q->s;
	uint64_t gc = q->off >> s->cluster_bits;
	pthread_mutex_lock(&s->lock);
	int r = res < 0 ? (int)res : 0;
	for (uint64_t i = 0; i < q->nclusters && r == 0; i++) {
		struct qcow2_l2_info old;
		r = decode(s, gc + i, &old);
		if (r == 0)
			r = qcow2_l2_set(s, gc + i, (q->host + i * s->cs) | QCOW2_OFLAG_COPIED);
		if (r == 0)
			r = qcow2_free_entry(s, &old);
	}
	if (r < 0) {
		/* The new clusters are not mapped: give them back (a leak at
		 * worst if the write-back fails too). */
		for (uint64_t i = 0; i < q->nclusters; i++) {
			struct qcow2_l2_info mine = { .kind = QCOW2_CLUSTER_NORMAL,
						      .host_offset = q->host + i * s->cs };
			qcow2_free_entry(s, &mine);
		}
	}
	range_release(q);
	buf_put(q);
	pthread_mutex_unlock(&s->lock);
	advance(q, r);
}

static void range_done(struct file_io *io, int64_t res)
{
	struct qcow2_req *q = io->opaque;
	pthread_mutex_lock(&q->s->lock);
	range_release(q);
	pthread_mutex_unlock(&q->s->lock);
	advance_cb(io, res);
}

/* Copy-on-write of one cluster, step 3: the buffer holds the old content
 * with the new bytes over it; it goes to a newly allocated cluster. */
static void cow_write(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	uint64_t in = q->off & (s->cs - 1), got;
	copy_in(q, buf_of(q) + in, q->pos, q->n);
	if (!q->have_host) {
		pthread_mutex_lock(&s->lock);
		int64_t host = qcow2_alloc(s, 1, &got, NULL);
		pthread_mutex_unlock(&s->lock);
		if (host < 0) {
			finish(q, host);
			return;
		}
		q->host = (uint64_t)host;
		q->nclusters = 1;
	}
	q->one = (struct iovec){ buf_of(q), s->cs };
	file_writev(&q->io, s->f, q->r->e, q->host, &q->one, 1, alloc_done, q);
}

static void cow_filled(struct file_io *io, int64_t res)
{
	struct qcow2_req *q = io->opaque;
	if (res >= 0 && q->old.kind == QCOW2_CLUSTER_COMPRESSED)
		res = inflate(q, res);
	else if (res >= 0 && q->old.kind == QCOW2_CLUSTER_NORMAL && (uint64_t)res < q->s->cs)
		memset(buf_of(q) + res, 0, q->s->cs - (uint64_t)res);   /* past EOF */
	if (res < 0) {
		finish(q, res);
		return;
	}
	cow_write(q);
}

static void cow_backing_done(void *opaque, int64_t res)
{
	struct qcow2_req *q = opaque;
	cow_filled(&q->io, res);
}

/* Step 2: the buffer gets what the cluster held so far. */
static void cow_fill(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	uint8_t *buf = buf_of(q);
	uint64_t base = q->off & ~(s->cs - 1);
	q->io.opaque = q;
	switch (q->old.kind) {
	case QCOW2_CLUSTER_NORMAL:
		q->one = (struct iovec){ buf, s->cs };
		file_read_upto(&q->io, s->f, q->r->e, q->old.host_offset, &q->one, 1, cow_filled, q);
		return;
	case QCOW2_CLUSTER_COMPRESSED:
		compressed_read(q, cow_filled);
		return;
	case QCOW2_CLUSTER_UNALLOCATED:
		if (s->backing && base < s->backing_size) {
			uint64_t n = s->backing_size - base < s->cs ? s->backing_size - base : s->cs;
			memset(buf + n, 0, s->cs - n);
			q->one = (struct iovec){ buf, n };
			read_backing(q, base, n, &q->one, 1, cow_backing_done);
			return;
		}
		__attribute__((fallthrough));
	default:
		memset(buf, 0, s->cs);
		cow_write(q);
	}
}

/* What a cluster held reads as zeroes: nothing to copy on write. */
static bool old_reads_zero(const struct qcow2 *s, const struct qcow2_l2_info *old, uint64_t off)
{
	if (old->kind == QCOW2_CLUSTER_ZERO_PLAIN || old->kind == QCOW2_CLUSTER_ZERO_ALLOC)
		return true;
	uint64_t base = off & ~(s->cs - 1);
	return old->kind == QCOW2_CLUSTER_UNALLOCATED && (!s->backing || base >= s->backing_size);
}

/* Starts the write step at q->pos (lock not held). */
static void write_step(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	q->have_host = false;
	q->off = q->r->offset + q->pos;
	uint64_t end = q->op == Q_ZERO_WRITE && q->kind == Q_WZ ? q->zero_end : q->r->len;
	uint64_t left = end - q->pos, in = q->off & (s->cs - 1);
	uint64_t gc = q->off >> s->cluster_bits;
	if (q->op == Q_ZERO_WRITE && left > zero_step_max(s))
		left = zero_step_max(s);
	pthread_mutex_lock(&s->lock);
	int r = s->broken ? -EIO : map_run(s, q->off, left, true, &q->old, &q->n);
	if (r < 0) {
		pthread_mutex_unlock(&s->lock);
		finish(q, r);
		return;
	}
	bool in_place = q->old.kind == QCOW2_CLUSTER_NORMAL && q->old.copied;
	if (!in_place && (in != 0 || left < s->cs))
		q->n = left < s->cs - in ? left : s->cs - in;   /* one cluster, copied on write */
	else if (!in_place)
		q->n = q->n / s->cs * s->cs;   /* whole clusters only: no copy needed */
	uint64_t c1 = (q->off + q->n + s->cs - 1) >> s->cluster_bits;
	if (!range_take(q, gc, c1)) {
		pthread_mutex_unlock(&s->lock);
		return;   /* parked: step runs again */
	}
	if (in_place) {
		pthread_mutex_unlock(&s->lock);
		if ((r = slice_of(q, q->pos, q->n)) < 0) {
			finish(q, r);
			return;
		}
		file_writev(&q->io, s->f, q->r->e, q->old.host_offset + in, q->slice, q->nslice,
			    range_done, q);
		return;
	}
	if (q->n >= s->cs && in == 0) {
		uint64_t got;
		int64_t host = qcow2_alloc(s, q->n / s->cs, &got, NULL);
		pthread_mutex_unlock(&s->lock);
		if (host < 0) {
			finish(q, host);
			return;
		}
		q->host = (uint64_t)host;
		q->nclusters = got;
		q->n = got * s->cs;
		if ((r = slice_of(q, q->pos, q->n)) < 0) {
			finish(q, r);
			return;
		}
		file_writev(&q->io, s->f, q->r->e, q->host, q->slice, q->nslice, alloc_done, q);
		return;
	}
	if (old_reads_zero(s, &q->old, q->off)) {
		/* Nothing to copy: a cluster past everything ever allocated
		 * reads zeroes already, so only the new bytes are written (no
		 * 64 KiB write for a 4 KiB one, as QEMU avoids it too). */
		uint64_t got;
		bool fresh;
		int64_t host = qcow2_alloc(s, 1, &got, &fresh);
		if (host < 0) {
			pthread_mutex_unlock(&s->lock);
			finish(q, host);
			return;
		}
		q->host = (uint64_t)host;
		q->nclusters = 1;
		q->have_host = true;
		if (fresh) {
			pthread_mutex_unlock(&s->lock);
			if ((r = slice_of(q, q->pos, q->n)) < 0) {
				finish(q, r);
				return;
			}
			file_writev(&q->io, s->f, q->r->e, q->host + in, q->slice, q->nslice,
				    alloc_done, q);
			return;
		}
	}
	int got = buf_get(q, cow_fill);
	pthread_mutex_unlock(&s->lock);
	if (got < 0)
		finish(q, got);
	else if (got)
		cow_fill(q);
}

/* ---- discard and write-zeroes ------------------------------------------------- */

/* The entry that makes a whole cluster read as zeroes (or, for discard,
 * as "anything"), and whether the old host cluster is dropped. Returns
 * false when only real zeroes can do it (a v2 image with a backing file,
 * or a write-zeroes that must keep its allocation). */
static bool zero_entry(struct qcow2 *s, const struct qcow2_l2_info *old, bool discard,
		       bool unmap, uint64_t *entry, bool *drop)
{
	bool v3 = s->h.version >= 3;
	*drop = old->kind == QCOW2_CLUSTER_NORMAL || old->kind == QCOW2_CLUSTER_COMPRESSED ||
		old->kind == QCOW2_CLUSTER_ZERO_ALLOC;
	if (!s->backing && (discard || unmap || old->kind != QCOW2_CLUSTER_NORMAL)) {
		*entry = 0;
		return true;
	}
	if (v3 && !discard && !unmap && old->kind == QCOW2_CLUSTER_NORMAL && old->copied) {
		*entry = old->host_offset | QCOW2_OFLAG_ZERO | QCOW2_OFLAG_COPIED;
		*drop = false;
		return true;
	}
	if (v3) {
		*entry = QCOW2_OFLAG_ZERO;
		return true;
	}
	*drop = false;
	return false;
}

/* Whole clusters at q->off: their entries change under the lock, no data
 * moves. Returns 1 when done, 0 when parked, -1 when real zeroes must be
 * written instead (q->n set), or -errno. */
static int zero_clusters(struct qcow2_req *q, uint64_t k)
{
	struct qcow2 *s = q->s;
	uint64_t gc = q->off >> s->cluster_bits;
	bool discard = q->kind == Q_DISCARD;
	if (!range_take(q, gc, gc + k))
		return 0;
	int r = 0;
	uint64_t i = 0;
	for (; i < k && r == 0; i++) {
		struct qcow2_l2_info old;
		uint64_t e;
		bool drop;
		if ((r = decode(s, gc + i, &old)) < 0)
			break;
		if (!zero_entry(s, &old, discard, q->r->may_unmap, &e, &drop)) {
			if (discard)
				continue;   /* a hint: v2 overlays keep their data */
			break;
		}
		uint64_t cur;
		if ((r = qcow2_l2_get(s, gc + i, &cur)) < 0 || cur == e)
			continue;
		if ((r = qcow2_l2_set(s, gc + i, e)) == 0 && drop)
			r = qcow2_free_entry(s, &old);
	}
	range_release(q);
	if (r < 0)
		return r;
	if (i < k && !discard) {
		/* Clusters [gc + i, ...) need real zeroes: the write path. */
		if (i) {
			q->n = i * s->cs;
			return 1;
		}
		q->n = s->cs;
		return -1;
	}
	q->n = k * s->cs;
	return 1;
}

/* A partial cluster that already reads as zeroes needs no write. */
static bool reads_zero(struct qcow2 *s, uint64_t off, int *err)
{
	struct qcow2_l2_info info;
	*err = decode(s, off >> s->cluster_bits, &info);
	if (*err < 0)
		return false;
	if (info.kind == QCOW2_CLUSTER_ZERO_PLAIN || info.kind == QCOW2_CLUSTER_ZERO_ALLOC)
		return true;
	return info.kind == QCOW2_CLUSTER_UNALLOCATED && (!s->backing || off >= s->backing_size);
}

/* The step of a discard or write-zeroes request. */
static bool zero_step(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	q->off = q->r->offset + q->pos;
	uint64_t left = q->r->len - q->pos, in = q->off & (s->cs - 1);
	if (in || left < s->cs) {
		/* A partial cluster: discard skips it, write-zeroes writes
		 * zeroes through the write path unless it reads zero already. */
		uint64_t n = s->cs - in < left ? s->cs - in : left;
		int r = 0;
		bool zero = q->kind == Q_DISCARD;
		if (!zero) {
			pthread_mutex_lock(&s->lock);
			zero = reads_zero(s, q->off, &r);
			pthread_mutex_unlock(&s->lock);
		}
		if (r < 0) {
			finish(q, r);
			return true;
		}
		if (zero) {
			q->pos += n;
			return false;
		}
		q->zero_end = q->pos + n;
		q->op = Q_ZERO_WRITE;
		return false;
	}
	uint64_t k = left / s->cs;
	if (k > 4096)
		k = 4096;
	pthread_mutex_lock(&s->lock);
	int r = s->broken ? -EIO : zero_clusters(q, k);
	pthread_mutex_unlock(&s->lock);
	if (r == 0)
		return true;   /* parked */
	if (r == -1) {
		q->zero_end = q->pos + q->n;
		q->op = Q_ZERO_WRITE;
		return false;
	}
	if (r < 0) {
		finish(q, r);
		return true;
	}
	q->pos += q->n;
	return false;
}

/* ---- the step loop ------------------------------------------------------------ */

static void step(struct qcow2_req *q)
{
	for (;;) {
		if (q->op == Q_ZERO_WRITE && q->kind == Q_WZ && q->pos >= q->zero_end)
			q->op = Q_WZ;   /* the zero write inside a write-zeroes ended */
		if (q->pos >= q->r->len) {
			finish(q, 0);
			return;
		}
		switch (q->op) {
		case Q_READ:
			if (read_step(q))
				return;
			break;
		case Q_WRITE:
		case Q_ZERO_WRITE:
			write_step(q);
			return;
		case Q_DISCARD:
		case Q_WZ:
			if (zero_step(q))
				return;
			break;
		case Q_COMPRESSED:
			return;   /* compressed_step drives it */
		}
	}
}

/* ---- compressed writes (kvmini-img convert -c) ------------------------------- */

static void compressed_done(struct file_io *io, int64_t res)
{
	struct qcow2_req *q = io->opaque;
	struct qcow2 *s = q->s;
	uint64_t gc = q->off >> s->cluster_bits;
	int r = res < 0 ? (int)res : 0;
	pthread_mutex_lock(&s->lock);
	struct qcow2_l2_info old;
	uint64_t e = qcow2_compressed_encode(q->host, q->n, s->cluster_bits);
	if (r == 0 && !e)
		r = -EIO;
	if (r == 0)
		r = decode(s, gc, &old);
	if (r == 0 && (r = qcow2_l2_set(s, gc, e)) == 0)
		r = qcow2_free_entry(s, &old);
	range_release(q);
	buf_put(q);
	pthread_mutex_unlock(&s->lock);
	if (r < 0) {
		finish(q, r);
		return;
	}
	q->pos = q->r->len;
	step(q);
}

static void compressed_write(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	uint8_t *plain = buf_of(q), *packed = plain + s->cs;
	size_t len = (size_t)q->r->len;
	iov_to_buf(q->r->iov, q->r->iovcnt, 0, plain, len);
	memset(plain + len, 0, s->cs - len);
	ssize_t clen = qcow2_compress(s->h.compression_type, plain, s->cs, packed,
				      s->buf_len - s->cs);
	if (clen == -ENOSPC) {
		/* It does not shrink: a normal cluster. */
		pthread_mutex_lock(&s->lock);
		range_release(q);
		buf_put(q);
		pthread_mutex_unlock(&s->lock);
		q->op = Q_WRITE;
		q->kind = Q_WRITE;
		step(q);
		return;
	}
	int64_t host = clen;
	if (clen > 0) {
		pthread_mutex_lock(&s->lock);
		host = qcow2_alloc_bytes(s, (uint64_t)clen);
		pthread_mutex_unlock(&s->lock);
	}
	if (host < 0) {
		finish(q, host);
		return;
	}
	q->host = (uint64_t)host;
	q->n = (uint64_t)clen;
	q->one = (struct iovec){ packed, (size_t)clen };
	file_writev(&q->io, s->f, q->r->e, q->host, &q->one, 1, compressed_done, q);
}

static void compressed_step(struct qcow2_req *q)
{
	struct qcow2 *s = q->s;
	q->off = q->r->offset;
	uint64_t gc = q->off >> s->cluster_bits;
	pthread_mutex_lock(&s->lock);
	if (s->broken) {
		pthread_mutex_unlock(&s->lock);
		finish(q, -EIO);
		return;
	}
	if (!range_take(q, gc, gc + 1)) {
		q->resume = compressed_step;   /* range_take parked q for step() */
		pthread_mutex_unlock(&s->lock);
		return;
	}
	int got = buf_get(q, compressed_write);
	pthread_mutex_unlock(&s->lock);
	if (got < 0)
		finish(q, got);
	else if (got)
		compressed_write(q);
}

void qcow2_submit(struct qcow2 *s, struct block_req *r, enum qcow2_op kind)
{
	struct qcow2_req *q = r->drv;
	q->r = r;
	q->s = s;
	q->kind = q->op = kind;
	q->pos = 0;
	q->bufi = -1;
	q->range_held = false;
	q->range.waiters = NULL;
	q->io.opaque = q;
	/* Completions inside this call are deferred; later ones (on this
	 * thread, from the engine) are direct. */
	q->in_submit = true;
	if (kind == Q_COMPRESSED)
		compressed_step(q);
	else
		step(q);
	q->in_submit = false;
}
