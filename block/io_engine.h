/* The I/O engine: one io_uring per I/O thread (liburing). Requests queue
 * SQEs and are submitted in batches; completions run callbacks on the same
 * thread. The engine also waits for eventfds (virtqueue kicks), so an I/O
 * thread blocks in one place for both kicks and disk completions.
 *
 * An engine is not thread-safe: every call, and every callback, happens on
 * the thread that owns it. */
#ifndef KVMINI_IO_ENGINE_H
#define KVMINI_IO_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct io_uring;
struct io_ctx;        /* per-operation context (private to io_uring.c) */

/* res: the CQE result (bytes or -errno). */
typedef void (*io_cb)(void *opaque, int res);

struct io_engine {
	struct io_uring *ring;
	unsigned depth;
	unsigned queued;      /* SQEs prepared but not yet submitted */
	unsigned inflight;    /* submitted, not yet completed */
	uint64_t submits;     /* io_uring_submit calls (batching statistics) */
	uint64_t completions;
	/* private: a free list of contexts, sized to the completion queue
	 * (grows with malloc if ever exhausted), and the deferred list. */
	struct io_ctx *pool;
	struct io_ctx *free_ctx;
	struct io_ctx *deferred_head, *deferred_tail;
	unsigned deferred;    /* completions waiting in the deferred list */
};

/* depth: submission queue entries (rounded up to a power of two by the
 * kernel); 0 picks 256. Returns 0 or -errno (logged). */
int io_engine_init(struct io_engine *e, unsigned depth);
/* Drops everything queued or in flight without running callbacks: call it
 * only when nothing that a callback would touch is still alive. */
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
 * its caller. Needs no SQE, so it cannot fail (on out-of-memory it aborts
 * with a log line). */
void io_engine_defer(struct io_engine *e, int res, io_cb cb, void *opaque);

/* Submits everything queued. Returns 0 or -errno. */
int io_engine_submit(struct io_engine *e);
/* Submits what is queued, then runs deferred completions and reaps CQEs,
 * running their callbacks. wait: block until at least one completion,
 * unless nothing is queued, in flight or deferred (then it returns 0 at
 * once rather than sleep forever). A signal interrupting the wait returns
 * 0 (no completions) so the caller's loop can look at its stop flag.
 * Returns completions run or -errno. Callbacks may queue more work; it is
 * submitted before this call returns. Not re-entrant: never call it from
 * a callback. */
int io_engine_run(struct io_engine *e, bool wait);

#endif
