/* The I/O engine on io_uring (liburing). One ring per I/O thread: prep
 * functions fill SQEs, io_engine_submit hands them to the kernel in one
 * system call, io_engine_run reaps CQEs and runs the callbacks. Every SQE
 * carries a pooled context {cb, opaque} as its user_data. */
#include "block/io_engine.h"
#include "vmm/log.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

struct io_ctx {
	io_cb cb;
	void *opaque;
	struct io_ctx *next;  /* free list or deferred list */
	int res;              /* deferred completions: the result to deliver */
	bool heap;            /* malloc'ed because the pool was empty */
};

/* Most completions the reaper takes from the ring before running their
 * callbacks: the CQ space is released before any callback queues more. */
#define REAP_BATCH 64

static struct io_ctx *ctx_get(struct io_engine *e, io_cb cb, void *opaque)
{
	struct io_ctx *c = e->free_ctx;
	if (c) {
		e->free_ctx = c->next;
	} else {
		/* More operations outstanding than the CQ holds (deferred
		 * completions, or callers ignoring inflight): grow. */
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
		c->heap = true;
	}
	c->cb = cb;
	c->opaque = opaque;
	c->next = NULL;
	c->res = 0;
	return c;
}

static void ctx_put(struct io_engine *e, struct io_ctx *c)
{
	if (c->heap) {
		free(c);
		return;
	}
	c->next = e->free_ctx;
	e->free_ctx = c;
}

int io_engine_init(struct io_engine *e, unsigned depth)
{
	memset(e, 0, sizeof(*e));
	if (depth == 0)
		depth = 256;
	e->ring = calloc(1, sizeof(*e->ring));
	if (!e->ring)
		return -ENOMEM;
	int ret = io_uring_queue_init(depth, e->ring, 0);
	if (ret < 0) {
		log_err("io_uring: cannot create a ring of %u entries: %s%s", depth,
			strerror(-ret),
			ret == -EPERM ? " (see /proc/sys/kernel/io_uring_disabled)" : "");
		free(e->ring);
		e->ring = NULL;
		return ret;
	}
	e->depth = e->ring->sq.ring_entries;
	/* The CQ (normally twice the SQ) bounds what can be in flight. */
	unsigned n = e->ring->cq.ring_entries;
	e->pool = calloc(n, sizeof(*e->pool));
	if (!e->pool) {
		io_uring_queue_exit(e->ring);
		free(e->ring);
		e->ring = NULL;
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		e->pool[i].next = i + 1 < n ? &e->pool[i + 1] : NULL;
		e->pool[i].heap = false;
	}
	e->free_ctx = &e->pool[0];
	return 0;
}

void io_engine_close(struct io_engine *e)
{
	if (!e->ring)
		return;
	io_uring_queue_exit(e->ring);
	free(e->ring);
	e->ring = NULL;
	for (struct io_ctx *c = e->deferred_head, *next; c; c = next) {
		next = c->next;
		if (c->heap)
			free(c);
	}
	/* Heap contexts of operations still in flight are lost with the ring;
	 * io_engine_close is for when nothing is in flight. */
	free(e->pool);
	e->pool = NULL;
	e->free_ctx = NULL;
	e->deferred_head = e->deferred_tail = NULL;
	e->deferred = 0;
}

int io_engine_submit(struct io_engine *e)
{
	if (e->queued == 0)
		return 0;
	int ret = io_uring_submit(e->ring);
	if (ret < 0)
		return ret;
	e->submits++;
	unsigned n = (unsigned)ret > e->queued ? e->queued : (unsigned)ret;
	e->queued -= n;
	e->inflight += n;
	return 0;
}

/* An SQE, submitting what is queued once if the SQ is full. */
static struct io_uring_sqe *get_sqe(struct io_engine *e)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(e->ring);
	if (sqe)
		return sqe;
	if (io_engine_submit(e) < 0)
		return NULL;
	return io_uring_get_sqe(e->ring);
}

/* Common tail of every prep: attach a context. The SQE is already taken,
 * so on -ENOMEM it is turned into a NOP whose completion is ignored. */
static int finish_prep(struct io_engine *e, struct io_uring_sqe *sqe, io_cb cb, void *opaque)
{
	struct io_ctx *c = ctx_get(e, cb, opaque);
	if (!c) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		e->queued++;
		return -ENOMEM;
	}
	io_uring_sqe_set_data(sqe, c);
	e->queued++;
	return 0;
}

int io_engine_readv(struct io_engine *e, int fd, const struct iovec *iov, unsigned n,
		    uint64_t off, io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_readv(sqe, fd, iov, n, off);
	return finish_prep(e, sqe, cb, opaque);
}

int io_engine_writev(struct io_engine *e, int fd, const struct iovec *iov, unsigned n,
		     uint64_t off, io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_writev(sqe, fd, iov, n, off);
	return finish_prep(e, sqe, cb, opaque);
}

int io_engine_fdatasync(struct io_engine *e, int fd, io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	return finish_prep(e, sqe, cb, opaque);
}

int io_engine_fallocate(struct io_engine *e, int fd, int mode, uint64_t off, uint64_t len,
			io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_fallocate(sqe, fd, mode, off, len);
	return finish_prep(e, sqe, cb, opaque);
}

int io_engine_read_eventfd(struct io_engine *e, int efd, uint64_t *buf, io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_read(sqe, efd, buf, sizeof(*buf), 0);
	return finish_prep(e, sqe, cb, opaque);
}

void io_engine_defer(struct io_engine *e, int res, io_cb cb, void *opaque)
{
	struct io_ctx *c = ctx_get(e, cb, opaque);
	if (!c) {
		log_err("io_uring: out of memory");
		abort();
	}
	c->res = res;
	if (e->deferred_tail)
		e->deferred_tail->next = c;
	else
		e->deferred_head = c;
	e->deferred_tail = c;
	e->deferred++;
}

/* Runs the deferred completions present on entry; those their callbacks
 * add wait for the next run (so a run always ends). */
static int run_deferred(struct io_engine *e)
{
	struct io_ctx *c = e->deferred_head;
	e->deferred_head = e->deferred_tail = NULL;
	e->deferred = 0;
	int n = 0;
	while (c) {
		struct io_ctx *next = c->next;
		io_cb cb = c->cb;
		void *opaque = c->opaque;
		int res = c->res;
		ctx_put(e, c);
		cb(opaque, res);
		e->completions++;
		n++;
		c = next;
	}
	return n;
}

static int reap(struct io_engine *e)
{
	int total = 0;
	/* Bound the work of one run: callbacks that keep resubmitting, or a
	 * peer that keeps signalling, must not starve the caller. */
	unsigned limit = 2 * e->ring->cq.ring_entries;
	for (;;) {
		struct io_ctx *ctx[REAP_BATCH];
		int res[REAP_BATCH];
		unsigned n = 0, head;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(e->ring, head, cqe) {
			ctx[n] = io_uring_cqe_get_data(cqe);
			res[n] = cqe->res;
			if (++n == REAP_BATCH)
				break;
		}
		if (n == 0)
			break;
		io_uring_cq_advance(e->ring, n);
		e->inflight = e->inflight >= n ? e->inflight - n : 0;
		for (unsigned i = 0; i < n; i++) {
			struct io_ctx *c = ctx[i];
			if (!c)
				continue;  /* a NOP left by a failed prep */
			io_cb cb = c->cb;
			void *opaque = c->opaque;
			ctx_put(e, c);
			cb(opaque, res[i]);
			e->completions++;
			total++;
		}
		if ((unsigned)total >= limit)
			break;
	}
	return total;
}

static bool submit_error_is_transient(int ret)
{
	/* -EBUSY/-EAGAIN: the kernel wants completions reaped first. */
	return ret == -EAGAIN || ret == -EBUSY || ret == -EINTR;
}

int io_engine_run(struct io_engine *e, bool wait)
{
	int ret = io_engine_submit(e);
	if (ret < 0 && !submit_error_is_transient(ret))
		return ret;
	int n = run_deferred(e);
	if (n == 0 && wait && e->inflight > 0 && !io_uring_cq_ready(e->ring)) {
		struct io_uring_cqe *cqe;
		ret = io_uring_wait_cqe(e->ring, &cqe);
		if (ret == -EINTR)
			return 0;
		if (ret < 0)
			return ret;
	}
	n += reap(e);
	/* Work the callbacks queued goes to the kernel now, not a wait later. */
	ret = io_engine_submit(e);
	if (ret < 0 && !submit_error_is_transient(ret))
		return ret;
	return n;
}
