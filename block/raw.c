/* The raw driver: guest byte N is file byte N, so every request is one
 * host-file operation at the same offset (block/file.c does the restarts,
 * bounces and fallbacks). It keeps no state of its own: the per-image state
 * lives in the host file, the per-request state in the request's area. */
#include "block/driver.h"
#include "block/file.h"
#include "vmm/log.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct raw_req {
	struct file_io io;
	struct block_req *r;
};

static void raw_done(struct file_io *io, int64_t res)
{
	struct raw_req *q = (struct raw_req *)io;
	block_complete(q->r, res);
}

static struct raw_req *raw_req_of(struct block_req *r)
{
	struct raw_req *q = r->drv;
	q->r = r;
	return q;
}

static int raw_read(struct block *b, struct block_req *r)
{
	struct raw_req *q = raw_req_of(r);
	file_readv(&q->io, &b->file, r->e, r->offset, r->iov, r->iovcnt, raw_done, NULL);
	return 0;
}

static int raw_write(struct block *b, struct block_req *r)
{
	struct raw_req *q = raw_req_of(r);
	file_writev(&q->io, &b->file, r->e, r->offset, r->iov, r->iovcnt, raw_done, NULL);
	return 0;
}

static int raw_flush(struct block *b, struct block_req *r)
{
	file_flush(&raw_req_of(r)->io, &b->file, r->e, raw_done, NULL);
	return 0;
}

static int raw_discard(struct block *b, struct block_req *r)
{
	file_discard(&raw_req_of(r)->io, &b->file, r->e, r->offset, r->len, raw_done, NULL);
	return 0;
}

static int raw_write_zeroes(struct block *b, struct block_req *r)
{
	file_write_zeroes(&raw_req_of(r)->io, &b->file, r->e, r->offset, r->len, r->may_unmap,
			  raw_done, NULL);
	return 0;
}

/* Holes of a sparse file read as zeroes: SEEK_DATA/SEEK_HOLE tell them
 * apart (a file system without them reports everything as data). */
static int raw_status(struct block *b, uint64_t offset, uint64_t len, struct block_extent *ext)
{
	int fd = b->file.fd;
	*ext = (struct block_extent){ .len = len, .data = true, .present = true,
				      .host_offset = (int64_t)offset, .file = b->path };
	off_t data = lseek(fd, (off_t)offset, SEEK_DATA);
	if (data < 0 && errno == ENXIO) {
		data = (off_t)(offset + len);   /* a hole up to EOF */
	} else if (data < 0) {
		return 0;
	}
	if ((uint64_t)data > offset) {
		uint64_t n = (uint64_t)data - offset;
		ext->len = n < len ? n : len;
		ext->data = false;
		ext->zero = true;
		return 0;
	}
	off_t hole = lseek(fd, (off_t)offset, SEEK_HOLE);
	if (hole > (off_t)offset && (uint64_t)hole - offset < len)
		ext->len = (uint64_t)hole - offset;
	return 0;
}

static int raw_resize(struct block *b, uint64_t size)
{
	struct stat st;
	if (fstat(b->file.fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		log_err("disk %s: a block device cannot be resized", b->path);
		return -ENOTSUP;
	}
	if (ftruncate(b->file.fd, (off_t)size) < 0) {
		int err = errno;
		log_err("disk %s: cannot resize: %s", b->path, strerror(err));
		return -err;
	}
	b->size = size;
	return 0;
}

static const struct block_ops raw_ops = {
	.name = "raw",
	.read = raw_read,
	.write = raw_write,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.status = raw_status,
	.resize = raw_resize,
};

static bool raw_probe(const uint8_t *buf, size_t len) { return true; }

static int raw_open(struct block *b, const struct block_config *cfg)
{
	struct stat st;
	uint64_t size;
	int ret = fstat(b->file.fd, &st) < 0 ? -errno : file_size(&b->file, &size);
	if (ret < 0) {
		log_err("disk %s: cannot get the image size: %s", b->path, strerror(-ret));
		return ret;
	}
	/* BLKDISCARD is not wired up: block devices get no discard. Writing
	 * zeroes works everywhere (fallocate, else written zeroes). */
	b->discard_supported = !S_ISBLK(st.st_mode);
	b->write_zeroes_supported = true;
	/* The guest sees whole sectors (whole logical blocks for O_DIRECT):
	 * a partial one at the end is not used. */
	uint64_t unit = b->direct ? b->logical_block_size : 512;
	if (size % unit)
		log_warn("disk %s: size %llu is not a multiple of %llu; the last %llu bytes are not used",
			 b->path, (unsigned long long)size, (unsigned long long)unit,
			 (unsigned long long)(size % unit));
	b->size = size - size % unit;
	b->req_priv_size = sizeof(struct raw_req);
	b->ops = &raw_ops;
	return 0;
}

const struct block_driver raw_driver = {
	.name = "raw",
	.format = BLOCK_FMT_RAW,
	.probe = raw_probe,
	.open = raw_open,
};
