/* Synchronous I/O over the asynchronous block API: one request at a time,
 * run to completion on a private engine. For create, convert and resize,
 * whose speed is the disk's, not the queue's; bench drives its own queue. */
#include "img/img.h"
#include "vmm/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int img_sync_init(struct img_sync *s, struct block *b)
{
	memset(s, 0, sizeof(*s));
	s->b = b;
	size_t n = block_req_priv_size(b);
	if (n && posix_memalign(&s->drv, 16, n))
		return -ENOMEM;
	int ret = io_engine_init(&s->e, 8);
	if (ret < 0)
		free(s->drv);
	return ret;
}

void img_sync_fini(struct img_sync *s)
{
	block_drain(s->b, &s->e);
	io_engine_close(&s->e);
	free(s->drv);
}

struct waiter {
	bool done;
	int64_t res;
};

static void sync_done(void *opaque, int64_t res)
{
	struct waiter *w = opaque;
	w->done = true;
	w->res = res;
}

typedef void (*submit_fn)(struct block *, struct io_engine *, struct block_req *);

static int run(struct img_sync *s, submit_fn fn, struct block_req *r)
{
	struct waiter w = { 0 };
	r->done = sync_done;
	r->opaque = &w;
	r->drv = s->drv;
	fn(s->b, &s->e, r);
	while (!w.done) {
		int ret = io_engine_run(&s->e, true);
		if (ret < 0)
			return ret;
	}
	return w.res < 0 ? (int)w.res : 0;
}

int img_sync_read(struct img_sync *s, uint64_t off, void *buf, size_t len)
{
	struct iovec iov = { buf, len };
	struct block_req r = { .offset = off, .iov = &iov, .iovcnt = 1 };
	return run(s, block_read, &r);
}

int img_sync_write(struct img_sync *s, uint64_t off, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	struct block_req r = { .offset = off, .iov = &iov, .iovcnt = 1 };
	return run(s, block_write, &r);
}

int img_sync_write_compressed(struct img_sync *s, uint64_t off, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	struct block_req r = { .offset = off, .iov = &iov, .iovcnt = 1 };
	return run(s, block_write_compressed, &r);
}

int img_sync_write_zeroes(struct img_sync *s, uint64_t off, uint64_t len)
{
	struct block_req r = { .offset = off, .len = len, .may_unmap = true };
	return run(s, block_write_zeroes, &r);
}

int img_sync_flush(struct img_sync *s)
{
	struct block_req r = { 0 };
	return run(s, block_flush, &r);
}
