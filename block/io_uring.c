/* The I/O engine on io_uring (liburing). One ring per I/O thread: prep
 * functions fill SQEs, io_engine_submit hands them to the kernel in one
 * system call, io_engine_run reaps CQEs and runs the callbacks. Every SQE
 * carries a pooled context {cb, opaque} as its user_data. Other threads
 * reach the owner through a locked list and an eventfd whose read stays
 * queued in the ring, so the owner sleeps in one place for everything. */
#include "block/io_engine.h"
#include "vmm/log.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct io_ctx {
	io_cb cb;
	void *opaque;
	struct io_ctx *next;  /* free list */
	enum io_op op;        /* for the fault-injection hook */
	bool heap;            /* malloc'ed because the pool was empty */
};

static void arm_post(struct io_engine *e);

/* Most completions the reaper takes from the ring before running their
 * callbacks: the CQ space is released before any callback queues more. */
#define REAP_BATCH 64

static struct io_ctx *ctx_get(struct io_engine *e, enum io_op op, io_cb cb, void *opaque)
{
	struct io_ctx *c = e->free_ctx;
	if (c) {
		e->free_ctx = c->next;
	} else {
		/* More operations outstanding than the CQ holds (callers
		 * ignoring inflight): grow, or fail the prep with -ENOMEM. */
		c = malloc(sizeof(*c));
		if (!c)
			return NULL;
		c->heap = true;
	}
	c->cb = cb;
	c->opaque = opaque;
	c->next = NULL;
	c->op = op;
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
	e->post_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->post_fd < 0) {
		ret = -errno;
		log_err("io_uring: cannot create an eventfd: %s", strerror(-ret));
		io_uring_queue_exit(e->ring);
		free(e->ring);
		free(e->pool);
		e->ring = NULL;
		return ret;
	}
	pthread_mutex_init(&e->post_lock, NULL);
	arm_post(e);
	return 0;
}

void io_engine_close(struct io_engine *e)
{
	if (!e->ring)
		return;
	io_uring_queue_exit(e->ring);
	free(e->ring);
	e->ring = NULL;
	/* Heap contexts of operations still in flight are lost with the ring;
	 * io_engine_close is for when nothing is in flight. */
	free(e->pool);
	e->pool = NULL;
	e->free_ctx = NULL;
	e->deferred_head = e->deferred_tail = NULL;
	e->deferred = 0;
	close(e->post_fd);
	e->post_fd = -1;
	pthread_mutex_destroy(&e->post_lock);
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
static int finish_prep(struct io_engine *e, struct io_uring_sqe *sqe, enum io_op op, io_cb cb,
		       void *opaque)
{
	struct io_ctx *c = ctx_get(e, op, cb, opaque);
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
	return finish_prep(e, sqe, IO_OP_READ, cb, opaque);
}

int io_engine_writev(struct io_engine *e, int fd, const struct iovec *iov, unsigned n,
		     uint64_t off, io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_writev(sqe, fd, iov, n, off);
	return finish_prep(e, sqe, IO_OP_WRITE, cb, opaque);
}

int io_engine_fdatasync(struct io_engine *e, int fd, io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
	return finish_prep(e, sqe, IO_OP_FSYNC, cb, opaque);
}

int io_engine_fallocate(struct io_engine *e, int fd, int mode, uint64_t off, uint64_t len,
			io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_fallocate(sqe, fd, mode, off, len);
	return finish_prep(e, sqe, IO_OP_FALLOCATE, cb, opaque);
}

int io_engine_read_eventfd(struct io_engine *e, int efd, uint64_t *buf, io_cb cb, void *opaque)
{
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return -EAGAIN;
	io_uring_prep_read(sqe, efd, buf, sizeof(*buf), 0);
	return finish_prep(e, sqe, IO_OP_EVENTFD, cb, opaque);
}

static void post_append(struct io_post **head, struct io_post **tail, struct io_post *p)
{
	p->next = NULL;
	if (*tail)
		(*tail)->next = p;
	else
		*head = p;
	*tail = p;
}

void io_engine_defer(struct io_engine *e, struct io_post *p, int res, io_cb cb, void *opaque)
{
	p->cb = cb;
	p->opaque = opaque;
	p->res = res;
	post_append(&e->deferred_head, &e->deferred_tail, p);
	e->deferred++;
}

void io_engine_post(struct io_engine *e, struct io_post *p, int res, io_cb cb, void *opaque)
{
	p->cb = cb;
	p->opaque = opaque;
	p->res = res;
	pthread_mutex_lock(&e->post_lock);
	post_append(&e->post_head, &e->post_tail, p);
	pthread_mutex_unlock(&e->post_lock);
	uint64_t one = 1;
	/* Only a counter overflow (2^64 - 1 posts unread) could fail it. */
	if (write(e->post_fd, &one, sizeof(one)) < 0)
		log_err("io_uring: cannot wake an I/O thread: %s", strerror(errno));
}

void io_engine_hold(struct io_engine *e) { e->holds++; }

void io_engine_release(struct io_engine *e)
{
	if (e->holds)
		e->holds--;
}

/* Runs a list of completions; returns how many. */
static int run_list(struct io_engine *e, struct io_post *p)
{
	int n = 0;
	while (p) {
		struct io_post *next = p->next;
		p->cb(p->opaque, p->res);
		e->completions++;
		n++;
		p = next;
	}
	return n;
}

/* Runs the deferred completions present on entry; those their callbacks
 * add wait for the next run (so a run always ends). */
static int run_deferred(struct io_engine *e)
{
	struct io_post *p = e->deferred_head;
	e->deferred_head = e->deferred_tail = NULL;
	e->deferred = 0;
	return run_list(e, p);
}

/* The post eventfd fired: run what other threads posted, then listen
 * again. A post that arrives after the list was taken has also bumped the
 * counter, so the next read completes at once. */
static void on_post(void *opaque, int res)
{
	struct io_engine *e = opaque;
	e->post_armed = false;
	pthread_mutex_lock(&e->post_lock);
	struct io_post *p = e->post_head;
	e->post_head = e->post_tail = NULL;
	pthread_mutex_unlock(&e->post_lock);
	arm_post(e);
	e->posts_run += run_list(e, p);
}

/* Queues the read of the post eventfd; when the SQ is full it is retried
 * at the start of the next run. */
static void arm_post(struct io_engine *e)
{
	if (e->post_armed)
		return;
	struct io_uring_sqe *sqe = get_sqe(e);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, e->post_fd, &e->post_buf, sizeof(e->post_buf), 0);
	if (finish_prep(e, sqe, IO_OP_INTERNAL, on_post, e) == 0)
		e->post_armed = true;
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
			int r = res[i];
			enum io_op op = c->op;
			if (e->fault && op != IO_OP_INTERNAL)
				r = e->fault(e->fault_opaque, op, r);
			ctx_put(e, c);
			if (op == IO_OP_INTERNAL) {
				/* The post read: what counts is the posts it ran. */
				e->posts_run = 0;
				cb(opaque, r);
				total += (int)e->posts_run;
				continue;
			}
			cb(opaque, r);
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

/* Anything a caller could be waiting for, the post read aside. */
static bool has_work(const struct io_engine *e)
{
	unsigned own = e->post_armed ? 1 : 0;
	return e->queued + e->inflight > own || e->deferred || e->holds;
}

int io_engine_run(struct io_engine *e, bool wait)
{
	arm_post(e);
	int ret = io_engine_submit(e);
	if (ret < 0 && !submit_error_is_transient(ret))
		return ret;
	int n = run_deferred(e);
	if (n == 0 && wait && has_work(e) && !io_uring_cq_ready(e->ring)) {
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
