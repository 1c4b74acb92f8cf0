/* The I/O engine: one io_uring per I/O thread (liburing). Requests queue
 * SQEs and are submitted in batches; completions run callbacks on the same
 * thread. The engine also waits for eventfds (virtqueue kicks), so an I/O
 * thread blocks in one place for both kicks and disk completions.
 *
 * Threads: an engine belongs to the thread that runs it. Every call and
 * every callback happens on that thread, except io_engine_post, which any
 * thread may call to have a callback run on the owner's thread. */
#ifndef KVMINI_IO_ENGINE_H
#define KVMINI_IO_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct io_uring;
struct io_ctx;        /* per-operation context (private to io_uring.c) */

/* res: the CQE result (bytes or -errno). */
typedef void (*io_cb)(void *opaque, int res);

/* A completion that needs no SQE: deferred on the same thread or posted
 * from another one. The caller owns the node (usually inside its request),
 * so queueing it cannot fail; it must stay alive until cb has run. */
struct io_post {
	io_cb cb;
	void *opaque;
	int res;
	struct io_post *next;
};

enum io_op { IO_OP_READ, IO_OP_WRITE, IO_OP_FSYNC, IO_OP_FALLOCATE, IO_OP_EVENTFD,
	     IO_OP_INTERNAL };

/* Test hook: sees every completion of an SQE operation before its
 * callback and returns the result to deliver (fault injection). */
typedef int (*io_fault_fn)(void *opaque, enum io_op op, int res);

struct io_engine {
	struct io_uring *ring;
	unsigned depth;
	unsigned queued;      /* SQEs prepared but not yet submitted */
	unsigned inflight;    /* submitted, not yet completed (the post read included) */
	unsigned holds;       /* requests parked until another thread posts to us */
	uint64_t submits;     /* io_uring_submit calls (batching statistics) */
	uint64_t completions;
	unsigned block_reqs;  /* block-layer requests submitted here and not yet done */
	io_fault_fn fault;
	void *fault_opaque;
	/* private: a free list of contexts sized to the completion queue, the
	 * deferred list, and the cross-thread post list with its eventfd. */
	struct io_ctx *pool;
	struct io_ctx *free_ctx;
	struct io_post *deferred_head, *deferred_tail;
	unsigned deferred;    /* completions waiting in the deferred list */
	pthread_mutex_t post_lock;
	struct io_post *post_head, *post_tail;   /* under post_lock */
	int post_fd;
	uint64_t post_buf;
	bool post_armed;      /* a read of post_fd is queued or in flight */
	unsigned posts_run;   /* posts the last post read ran */
};

/* depth: submission queue entries (rounded up to a power of two by the
 * kernel); 0 picks 256. Returns 0 or -errno (logged). */
int io_engine_init(struct io_engine *e, unsigned depth);
/* Drops everything queued or in flight without running callbacks: call it
 * only when nothing that a callback would touch is still alive, and no
 * other thread can post to this engine any more. */
void io_engine_close(struct io_engine *e);

/* Each prep call queues one operation; it returns 0 or -EAGAIN when the
 * submission queue is full even after submitting what was queued (or
 * -ENOMEM). On error the callback will never run. */
int io_engine_readv(struct io_engine *e, int fd, const struct iovec *iov, unsigned n,
		    uint64_t off, io_cb cb, void *opaque);
int io_engine_writev(struct io_engine *e, int fd, const struct iovec *iov, unsigned n,
		     uint64_t off, io_cb cb, void *opaque);
int io_engine_fdatasync(struct io_engine *e, int fd, io_cb cb, void *opaque);
int io_engine_fallocate(struct io_engine *e, int fd, int mode, uint64_t off, uint64_t len,
			io_cb cb, void *opaque);
/* One-shot read of an eventfd's 8-byte counter into *buf: completes when
 * the eventfd is signalled. Re-arm after each completion. */
int io_engine_read_eventfd(struct io_engine *e, int efd, uint64_t *buf, io_cb cb, void *opaque);

/* Completes cb(opaque, res) from the next io_engine_run, never from inside
 * this call: how the block layer fails a request without calling back into
 * its caller. Owner thread only; cannot fail. */
void io_engine_defer(struct io_engine *e, struct io_post *p, int res, io_cb cb, void *opaque);
/* The same from any thread: cb runs on e's owner thread, woken through an
 * eventfd read that the engine keeps in its ring. The poster must know e
 * is alive (the request that will receive it holds e). Cannot fail. */
void io_engine_post(struct io_engine *e, struct io_post *p, int res, io_cb cb, void *opaque);
/* A request parks (waiting for a post from another thread) with hold and
 * resumes with release: io_engine_run(wait) then sleeps instead of
 * returning "nothing to wait for". Owner thread only. */
void io_engine_hold(struct io_engine *e);
void io_engine_release(struct io_engine *e);

/* Submits everything queued. Returns 0 or -errno. */
int io_engine_submit(struct io_engine *e);
/* Submits what is queued, then runs deferred and posted completions and
 * reaps CQEs, running their callbacks. wait: block until at least one
 * completion, unless nothing is queued, in flight, deferred or held (then
 * it returns 0 at once rather than sleep forever). A signal interrupting
 * the wait returns 0 (no completions) so the caller's loop can look at its
 * stop flag. Returns completions run or -errno. Callbacks may queue more
 * work; it is submitted before this call returns. Not re-entrant: never
 * call it from a callback. */
int io_engine_run(struct io_engine *e, bool wait);

#endif
