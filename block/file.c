/* The host-file layer: every image format's reads, writes, flushes and
 * hole punching on the file it lives in (block/file.h). */
#include "block/file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/iov.h"
#include "vmm/log.h"

#define ZERO_BUF_LEN (1u << 20)   /* write-zeroes fallback: 1 MiB per write */

int file_init(struct host_file *f, int fd, const char *path, bool readonly, bool direct,
	      uint32_t lbs, uint32_t buf_align)
{
	memset(f, 0, sizeof(*f));
	f->fd = fd;
	f->path = path;
	f->readonly = readonly;
	f->direct = direct;
	f->lbs = lbs ? lbs : 512;
	f->buf_align = buf_align ? buf_align : 1;
	f->bounce_free_mask = (1u << BOUNCE_CHUNKS) - 1;
	int r = pthread_mutex_init(&f->lock, NULL);
	return -r;
}

void file_fini(struct host_file *f)
{
	free(f->zero_buf);
	free(f->bounce_mem);
	f->zero_buf = NULL;
	f->bounce_mem = NULL;
	pthread_mutex_destroy(&f->lock);
}

static size_t mem_align(const struct host_file *f)
{
	return f->buf_align > 4096 ? f->buf_align : 4096;
}

/* ---- completion ---------------------------------------------------------- */

static void finish(struct file_io *io, int64_t res);

static void finish_cb(void *opaque, int res) { finish(opaque, res); }

/* First submission: an error completes from the next run, never inside the
 * caller. */
static void fail_later(struct file_io *io, int res)
{
	io_engine_defer(io->e, &io->post, res, finish_cb, io);
}

/* ---- bounce chunks ------------------------------------------------------- */

static bool iov_direct_ok(const struct host_file *f, const struct iovec *iov, unsigned n)
{
	uintptr_t amask = f->buf_align - 1, lmask = f->lbs - 1;
	for (unsigned i = 0; i < n; i++)
		if (((uintptr_t)iov[i].iov_base & amask) || (iov[i].iov_len & lmask))
			return false;
	return true;
}

static void rw_step(struct file_io *io);
static void bounce_round(struct file_io *io);

/* A waiter got a chunk from another request (possibly another thread). */
static void bounce_resume(void *opaque, int res)
{
	struct file_io *io = opaque;
	io_engine_release(io->e);
	bounce_round(io);
}

/* Takes a free chunk, or parks io until one is released. Returns 1 when io
 * holds a chunk now, 0 when parked, -errno when no pool could be made. */
static int chunk_get(struct file_io *io)
{
	struct host_file *f = io->f;
	int got = 0;
	pthread_mutex_lock(&f->lock);
	if (!f->bounce_mem) {
		void *m;
		if (posix_memalign(&m, mem_align(f), (size_t)BOUNCE_CHUNK * BOUNCE_CHUNKS)) {
			pthread_mutex_unlock(&f->lock);
			return -ENOMEM;
		}
		f->bounce_mem = m;
	}
	if (f->bounce_free_mask) {
		io->chunk = __builtin_ctz(f->bounce_free_mask);
		f->bounce_free_mask &= ~(1u << io->chunk);
		got = 1;
	} else {
		io->next = NULL;
		if (f->bounce_waiting_tail)
			f->bounce_waiting_tail->next = io;
		else
			f->bounce_waiting = io;
		f->bounce_waiting_tail = io;
		io_engine_hold(io->e);
	}
	pthread_mutex_unlock(&f->lock);
	return got;
}

/* Gives the chunk to the first waiter, or back to the pool. */
static void chunk_put(struct file_io *io)
{
	struct host_file *f = io->f;
	if (io->chunk < 0)
		return;
	pthread_mutex_lock(&f->lock);
	struct file_io *w = f->bounce_waiting;
	if (w) {
		f->bounce_waiting = w->next;
		if (!f->bounce_waiting)
			f->bounce_waiting_tail = NULL;
		w->chunk = io->chunk;
	} else {
		f->bounce_free_mask |= 1u << io->chunk;
	}
	pthread_mutex_unlock(&f->lock);
	io->chunk = -1;
	if (w)
		io_engine_post(w->e, &w->post, 0, bounce_resume, w);
}

static uint8_t *chunk_mem(const struct file_io *io)
{
	return io->f->bounce_mem + (size_t)io->chunk * BOUNCE_CHUNK;
}

/* ---- reads and writes ---------------------------------------------------- */

static void finish(struct file_io *io, int64_t res)
{
	chunk_put(io);
	io->done(io, res);
}

static void rw_cb(void *opaque, int res);

/* Queues the next transfer of io (a first one, or the rest after a short
 * one). */
static void rw_step(struct file_io *io)
{
	uint64_t off = io->off + io->pos;
	int ret;
	if (io->op == FILE_READ)
		ret = io_engine_readv(io->e, io->f->fd, io->iov, io->iovcnt, off, rw_cb, io);
	else
		ret = io_engine_writev(io->e, io->f->fd, io->iov, io->iovcnt, off, rw_cb, io);
	if (ret < 0)
		fail_later(io, ret);
}

/* The next bounce round: up to one chunk of the request through the chunk
 * io holds. */
static void bounce_round(struct file_io *io)
{
	uint64_t n = io->len - io->pos;
	if (n > BOUNCE_CHUNK)
		n = BOUNCE_CHUNK;
	io->chunk_len = n;
	uint8_t *mem = chunk_mem(io);
	if (io->op == FILE_WRITE)
		iov_to_buf(io->user_iov, io->user_iovcnt, io->pos, mem, n);
	io->iov_buf[0] = (struct iovec){ mem, n };
	io->iov = io->iov_buf;
	io->iovcnt = 1;
	rw_step(io);
}

static void rw_cb(void *opaque, int res)
{
	struct file_io *io = opaque;
	if (res < 0) {
		finish(io, res);
		return;
	}
	if (res == 0) {
		/* A fixed-size image has no EOF inside the range unless it was
		 * truncated under us (or the caller asked to read up to it). */
		if (!io->eof_ok) {
			finish(io, -EIO);
			return;
		}
		if (io->chunk >= 0) {
			/* What this bounce round read before the end. */
			uint64_t got = io->chunk_len - io->iov[0].iov_len;
			buf_to_iov(io->user_iov, io->user_iovcnt, io->pos - got, chunk_mem(io), got);
		}
		finish(io, (int64_t)io->pos);
		return;
	}
	io->pos += (uint64_t)res;
	if (io->chunk >= 0) {
		/* A bounce round: its one segment shrinks with each short
		 * transfer until the whole chunk is done. */
		if ((size_t)res < io->iov[0].iov_len) {
			iov_advance(&io->iov, &io->iovcnt, (size_t)res);
			rw_step(io);
			return;
		}
		if (io->op == FILE_READ)
			buf_to_iov(io->user_iov, io->user_iovcnt, io->pos - io->chunk_len,
				   chunk_mem(io), io->chunk_len);
		if (io->pos < io->len)
			bounce_round(io);
		else
			finish(io, (int64_t)io->len);
		return;
	}
	if (io->pos < io->len) {
		iov_advance(&io->iov, &io->iovcnt, (size_t)res);
		rw_step(io);
		return;
	}
	finish(io, (int64_t)io->len);
}

static void io_setup(struct file_io *io, struct host_file *f, struct io_engine *e, enum file_op op,
		     uint64_t off, uint64_t len, file_done_fn done, void *opaque)
{
	io->f = f;
	io->e = e;
	io->done = done;
	io->opaque = opaque;
	io->op = op;
	io->off = off;
	io->len = len;
	io->pos = 0;
	io->chunk = -1;
	io->next = NULL;
	io->parked = false;
	io->eof_ok = false;
}

static void rw_start(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		     const struct iovec *iov, unsigned iovcnt, file_done_fn done, void *opaque,
		     enum file_op op, bool eof_ok)
{
	io_setup(io, f, e, op, off, iov_size(iov, iovcnt), done, opaque);
	io->eof_ok = eof_ok;
	io->user_iov = iov;
	io->user_iovcnt = iovcnt;
	if (op == FILE_WRITE && f->readonly) {
		fail_later(io, -EROFS);
		return;
	}
	if (iovcnt > BLOCK_MAX_IOV || io->len > INT32_MAX) {
		fail_later(io, -EINVAL);
		return;
	}
	if (io->len == 0) {
		fail_later(io, 0);
		return;
	}
	if (f->direct && !iov_direct_ok(f, iov, iovcnt)) {
		if (f->lbs > BOUNCE_CHUNK) {
			fail_later(io, -EINVAL);
			return;
		}
		int got = chunk_get(io);
		if (got < 0)
			fail_later(io, got);
		else if (got)
			bounce_round(io);
		return;   /* parked: bounce_resume continues */
	}
	/* Our own copy of the array: a short transfer edits it. */
	memcpy(io->iov_buf, iov, iovcnt * sizeof(*iov));
	io->iov = io->iov_buf;
	io->iovcnt = iovcnt;
	iov_advance(&io->iov, &io->iovcnt, 0);
	rw_step(io);
}

void file_readv(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		const struct iovec *iov, unsigned iovcnt, file_done_fn done, void *opaque)
{
	rw_start(io, f, e, off, iov, iovcnt, done, opaque, FILE_READ, false);
}

void file_read_upto(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		    const struct iovec *iov, unsigned iovcnt, file_done_fn done, void *opaque)
{
	rw_start(io, f, e, off, iov, iovcnt, done, opaque, FILE_READ, true);
}

void file_writev(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		 const struct iovec *iov, unsigned iovcnt, file_done_fn done, void *opaque)
{
	rw_start(io, f, e, off, iov, iovcnt, done, opaque, FILE_WRITE, false);
}

/* ---- flush ----------------------------------------------------------------- */

/* A parked flush learns its outcome on its own thread. */
static void flush_resume(void *opaque, int res)
{
	struct file_io *io = opaque;
	io_engine_release(io->e);
	io->done(io, res);
}

/* Delivers res to every flush of a list. The one flush that issued the
 * fdatasync itself runs on this thread; parked ones are posted home. */
static void flush_answer(struct file_io *list, int res)
{
	while (list) {
		struct file_io *next = list->next;
		if (list->parked)
			io_engine_post(list->e, &list->post, res, flush_resume, list);
		else
			list->done(list, res);
		list = next;
	}
}

static void flush_issue(struct host_file *f, struct io_engine *e);

/* The lead of a new batch runs its fdatasync on its own thread: that
 * engine is sure to keep running, because the lead is held there until the
 * batch is answered. */
static void flush_lead_cb(void *opaque, int res)
{
	struct file_io *lead = opaque;
	flush_issue(lead->f, lead->e);
}

/* The fdatasync of the current batch ended with res, or could not be
 * queued (queued = false: that fails the batch but says nothing of the
 * file). Runs on the thread that ran it. */
static void flush_end(struct host_file *f, int res, bool queued)
{
	pthread_mutex_lock(&f->lock);
	if (res < 0 && queued && !atomic_load(&f->flush_failed)) {
		atomic_store(&f->flush_failed, true);
		log_err("disk %s: flush failed: %s; every later flush fails too", f->path,
			strerror(-res));
	}
	struct file_io *batch = f->flush_batch, *next = f->flush_waiting;
	f->flush_waiting = NULL;
	bool failed = atomic_load(&f->flush_failed);
	if (next && !failed) {
		f->flush_batch = next;   /* one new fdatasync answers all of them */
	} else {
		f->flush_batch = NULL;
		f->flush_running = false;
	}
	pthread_mutex_unlock(&f->lock);
	flush_answer(batch, res < 0 ? res : 0);
	if (next && failed)
		flush_answer(next, -EIO);
	else if (next)
		io_engine_post(next->e, &next->post, 0, flush_lead_cb, next);
}

static void fsync_cb(void *opaque, int res) { flush_end(opaque, res, true); }
static void fsync_unqueued_cb(void *opaque, int res) { flush_end(opaque, res, false); }

/* Queues the fdatasync answering f->flush_batch on e, the engine of the
 * batch's first member. Only that thread touches flush_post until the
 * fdatasync ends. */
static void flush_issue(struct host_file *f, struct io_engine *e)
{
	int ret = io_engine_fdatasync(e, f->fd, fsync_cb, f);
	if (ret < 0)
		io_engine_defer(e, &f->flush_post, ret, fsync_unqueued_cb, f);
}

void file_flush(struct file_io *io, struct host_file *f, struct io_engine *e, file_done_fn done,
		void *opaque)
{
	io_setup(io, f, e, FILE_FLUSH, 0, 0, done, opaque);
	pthread_mutex_lock(&f->lock);
	if (atomic_load(&f->flush_failed)) {
		pthread_mutex_unlock(&f->lock);
		fail_later(io, -EIO);
		return;
	}
	if (f->flush_running) {
		/* Writes completed before this flush may not be covered by the
		 * fdatasync in flight: wait for it, then take the next one. */
		io->parked = true;
		io->next = NULL;
		struct file_io **pp = &f->flush_waiting;
		while (*pp)
			pp = &(*pp)->next;
		*pp = io;
		io_engine_hold(e);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	f->flush_running = true;
	f->flush_batch = io;
	pthread_mutex_unlock(&f->lock);
	flush_issue(f, e);
}

/* ---- discard and write-zeroes ---------------------------------------------- */

static int zero_buf_get(struct host_file *f)
{
	int ret = 0;
	pthread_mutex_lock(&f->lock);
	if (!f->zero_buf) {
		void *m;
		if (posix_memalign(&m, mem_align(f), ZERO_BUF_LEN)) {
			ret = -ENOMEM;
		} else {
			memset(m, 0, ZERO_BUF_LEN);
			f->zero_buf = m;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return ret;
}

static void range_cb(void *opaque, int res);

/* Queues the operation io->op stands for now; errors complete later. */
static void range_step(struct file_io *io)
{
	struct host_file *f = io->f;
	int ret = -EINVAL;
	switch (io->op) {
	case FILE_DISCARD:
	case FILE_WZ_PUNCH:
		ret = io_engine_fallocate(io->e, f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  io->off, io->len, range_cb, io);
		break;
	case FILE_WZ_RANGE:
		ret = io_engine_fallocate(io->e, f->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					  io->off, io->len, range_cb, io);
		break;
	case FILE_WZ_WRITE: {
		uint64_t n = io->len - io->pos;
		io->iov_buf[0] = (struct iovec){ f->zero_buf, n < ZERO_BUF_LEN ? n : ZERO_BUF_LEN };
		ret = io_engine_writev(io->e, f->fd, io->iov_buf, 1, io->off + io->pos, range_cb, io);
		break;
	}
	default:
		break;
	}
	if (ret < 0)
		fail_later(io, ret);
}

/* write-zeroes: the next, slower way after the file system refused one. */
static void wz_fallback(struct file_io *io)
{
	struct host_file *f = io->f;
	if (io->op == FILE_WZ_PUNCH) {
		atomic_store_explicit(&f->no_punch, true, memory_order_relaxed);
		if (!atomic_load_explicit(&f->no_zero_range, memory_order_relaxed)) {
			io->op = FILE_WZ_RANGE;
			range_step(io);
			return;
		}
	} else {
		atomic_store_explicit(&f->no_zero_range, true, memory_order_relaxed);
	}
	int ret = zero_buf_get(f);
	if (ret < 0) {
		finish(io, ret);
		return;
	}
	io->op = FILE_WZ_WRITE;
	io->pos = 0;
	range_step(io);
}

static void range_cb(void *opaque, int res)
{
	struct file_io *io = opaque;
	switch (io->op) {
	case FILE_DISCARD:
		/* A hint: a file system without hole punching ignores it. */
		finish(io, res == -EOPNOTSUPP ? 0 : (res < 0 ? res : 0));
		return;
	case FILE_WZ_PUNCH:
	case FILE_WZ_RANGE:
		if (res == -EOPNOTSUPP)
			wz_fallback(io);
		else
			finish(io, res < 0 ? res : 0);
		return;
	case FILE_WZ_WRITE:
		if (res <= 0) {
			finish(io, res < 0 ? res : -EIO);
			return;
		}
		io->pos += (uint64_t)res;
		if (io->pos < io->len)
			range_step(io);
		else
			finish(io, 0);
		return;
	default:
		finish(io, -EINVAL);
	}
}

void file_discard(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		  uint64_t len, file_done_fn done, void *opaque)
{
	io_setup(io, f, e, FILE_DISCARD, off, len, done, opaque);
	if (f->readonly)
		fail_later(io, -EROFS);
	else if (len == 0)
		fail_later(io, 0);
	else
		range_step(io);
}

void file_write_zeroes(struct file_io *io, struct host_file *f, struct io_engine *e, uint64_t off,
		       uint64_t len, bool unmap, file_done_fn done, void *opaque)
{
	io_setup(io, f, e, FILE_WZ_RANGE, off, len, done, opaque);
	if (f->readonly) {
		fail_later(io, -EROFS);
		return;
	}
	if (len == 0) {
		fail_later(io, 0);
		return;
	}
	if (unmap && !atomic_load_explicit(&f->no_punch, memory_order_relaxed)) {
		io->op = FILE_WZ_PUNCH;
	} else if (atomic_load_explicit(&f->no_zero_range, memory_order_relaxed)) {
		int ret = zero_buf_get(f);
		if (ret < 0) {
			fail_later(io, ret);
			return;
		}
		io->op = FILE_WZ_WRITE;
	}
	range_step(io);
}

/* ---- synchronous helpers ----------------------------------------------- */

int fd_pio_full(int fd, void *buf, size_t len, uint64_t off, bool write)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done))
				  : pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* O_DIRECT: the aligned window around [off, off + len), read (what lies
 * past EOF reads as zeroes), patched for writes, written back. */
static int pio_direct(struct host_file *f, void *buf, size_t len, uint64_t off, bool write)
{
	uint64_t a = f->lbs, start = off & ~(a - 1), end = (off + len + a - 1) & ~(a - 1);
	size_t wlen = (size_t)(end - start);
	void *w;
	if (posix_memalign(&w, mem_align(f), wlen))
		return -ENOMEM;
	memset(w, 0, wlen);
	size_t got = 0;
	int ret = 0;
	while (got < wlen) {
		ssize_t n = pread(f->fd, (char *)w + got, wlen - got, (off_t)(start + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (ret == 0 && !write && got < (size_t)(off - start) + len)
		ret = -EIO;
	if (ret == 0 && write) {
		memcpy((char *)w + (off - start), buf, len);
		ret = fd_pio_full(f->fd, w, wlen, start, true);
	} else if (ret == 0) {
		memcpy(buf, (char *)w + (off - start), len);
	}
	free(w);
	return ret;
}

int file_pread(struct host_file *f, void *buf, size_t len, uint64_t off)
{
	return f->direct ? pio_direct(f, buf, len, off, false) : fd_pio_full(f->fd, buf, len, off, false);
}

int file_pwrite(struct host_file *f, const void *buf, size_t len, uint64_t off)
{
	if (f->readonly)
		return -EROFS;
	return f->direct ? pio_direct(f, (void *)buf, len, off, true)
			 : fd_pio_full(f->fd, (void *)buf, len, off, true);
}

/* Shares the fsyncgate state with the asynchronous flushes. */
int file_sync(struct host_file *f)
{
	if (atomic_load(&f->flush_failed))
		return -EIO;
	int ret = fdatasync(f->fd) < 0 ? -errno : 0;
	if (ret < 0 && ret != -EINVAL && ret != -EROFS) {
		if (!atomic_exchange(&f->flush_failed, true))
			log_err("disk %s: flush failed: %s; every later flush fails too", f->path,
				strerror(-ret));
	}
	return ret;
}

int file_size(struct host_file *f, uint64_t *size)
{
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(f->fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	*size = (uint64_t)st.st_size;
	return 0;
}
