/* The format-independent half of the block layer: opening an image (path
 * checks, open flags, O_DIRECT alignment, format probe) and the submission
 * helpers that validate a request before the driver sees it. */
#include "block/block.h"
#include "block/io_engine.h"
#include "vmm/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char qcow2_magic[4] = { 'Q', 'F', 'I', 0xfb };

static bool is_pow2(uint32_t x) { return x && !(x & (x - 1)); }

/* cache=none: what O_DIRECT requires of offsets/lengths (logical block
 * size) and of buffer addresses. statx(STATX_DIOALIGN) answers both on
 * Linux >= 6.1 for files (and later kernels for block devices); otherwise a
 * block device's BLKSSZGET, else 512 — right for nearly all disks, and a
 * 4K-native disk then fails its I/O with EINVAL rather than corrupting. */
static int direct_alignment(struct block *b, bool blkdev)
{
	uint32_t lbs = 0, mem = 0;
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(b->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		if (sx.stx_dio_offset_align == 0)
			return -EINVAL;  /* the file system says: no O_DIRECT */
		lbs = sx.stx_dio_offset_align;
		mem = sx.stx_dio_mem_align;
	}
#endif
	if (!lbs && blkdev) {
		int ssz = 0;
		if (ioctl(b->fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
			lbs = mem = (uint32_t)ssz;
	}
	if (!lbs || !is_pow2(lbs) || lbs < 512)
		lbs = 512;
	if (!mem || !is_pow2(mem))
		mem = 512;
	b->logical_block_size = lbs;
	b->buf_align = mem;
	return 0;
}

/* Reads the first bytes through a buffer aligned for O_DIRECT. */
static int probe_qcow2(struct block *b, bool *is_qcow2)
{
	size_t len = b->logical_block_size > 4096 ? b->logical_block_size : 4096;
	void *buf;
	if (posix_memalign(&buf, len, len))
		return -ENOMEM;
	ssize_t n;
	do
		n = pread(b->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	int ret = n < 0 ? -errno : 0;
	*is_qcow2 = n >= 4 && memcmp(buf, qcow2_magic, 4) == 0;
	free(buf);
	return ret;
}

int block_open(struct block **out, const struct block_config *cfg)
{
	*out = NULL;
	const char *path = cfg->path;
	if (!path || !*path) {
		log_err("disk: no image path given");
		return -EINVAL;
	}
	struct stat st;
	if (stat(path, &st) < 0) {
		int err = errno;
		log_err("disk %s: %s", path, strerror(err));
		return -err;
	}
	if (S_ISDIR(st.st_mode)) {
		log_err("disk %s: is a directory", path);
		return -EISDIR;
	}
	bool blkdev = S_ISBLK(st.st_mode);
	if (!S_ISREG(st.st_mode) && !blkdev) {
		log_err("disk %s: not a regular file or block device", path);
		return -EINVAL;
	}

	struct block *b = calloc(1, sizeof(*b));
	char *p = strdup(path);
	if (!b || !p) {
		free(b);
		free(p);
		return -ENOMEM;
	}
	b->path = p;
	b->fd = -1;
	b->readonly = cfg->readonly;
	b->direct = cfg->cache == BLOCK_CACHE_NONE;
	b->logical_block_size = 512;
	b->buf_align = 1;

	int flags = (b->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (b->direct ? O_DIRECT : 0);
	int ret;
	b->fd = open(path, flags);
	if (b->fd < 0) {
		ret = -errno;
		if (b->direct && ret == -EINVAL)
			log_err("cache=none: the filesystem of %s does not support O_DIRECT", path);
		else
			log_err("disk %s: %s", path, strerror(-ret));
		goto fail;
	}
	if (b->direct) {
		ret = direct_alignment(b, blkdev);
		if (ret < 0) {
			log_err("cache=none: the filesystem of %s does not support O_DIRECT", path);
			goto fail;
		}
	}

	bool is_qcow2 = false;
	ret = probe_qcow2(b, &is_qcow2);
	if (ret < 0) {
		log_err("disk %s: cannot read the image header: %s", path, strerror(-ret));
		goto fail;
	}
	enum block_format fmt = cfg->format;
	if (fmt == BLOCK_FMT_AUTO)
		fmt = is_qcow2 ? BLOCK_FMT_QCOW2 : BLOCK_FMT_RAW;
	switch (fmt) {
	case BLOCK_FMT_RAW:
		ret = raw_open(b);
		break;
	default:
		log_err("disk %s: qcow2 images are not supported yet", path);
		ret = -ENOTSUP;
		break;
	}
	if (ret < 0)
		goto fail;
	*out = b;
	return 0;
fail:
	if (b->fd >= 0)
		close(b->fd);
	free(p);
	free(b);
	return ret;
}

void block_close(struct block *b)
{
	if (!b)
		return;
	if (b->ops && b->ops->close)
		b->ops->close(b);
	if (b->fd >= 0)
		close(b->fd);
	free((char *)b->path);
	free(b);
}

void block_iov_advance(struct iovec **iovp, unsigned *iovcnt, uint64_t n)
{
	struct iovec *iov = *iovp;
	unsigned cnt = *iovcnt;
	while (n && cnt) {
		if (n >= iov[0].iov_len) {
			n -= iov[0].iov_len;
			iov++;
			cnt--;
		} else {
			iov[0].iov_base = (char *)iov[0].iov_base + n;
			iov[0].iov_len -= n;
			n = 0;
		}
	}
	while (cnt && iov[0].iov_len == 0) {
		iov++;
		cnt--;
	}
	*iovp = iov;
	*iovcnt = cnt;
}

/* Failing a request without calling back into the caller: the callback
 * runs from the next io_engine_run. */
struct fail_ctx {
	block_done_fn done;
	void *opaque;
};

static void fail_cb(void *opaque, int res)
{
	struct fail_ctx f = *(struct fail_ctx *)opaque;
	free(opaque);
	f.done(f.opaque, res);
}

static void complete_later(struct io_engine *e, struct block_req *r, int res)
{
	struct fail_ctx *f = malloc(sizeof(*f));
	if (!f) {
		log_err("block: out of memory");
		abort();
	}
	f->done = r->done;
	f->opaque = r->opaque;
	io_engine_defer(e, res, fail_cb, f);
}

/* offset + len inside the image, without overflowing. */
static bool in_range(const struct block *b, uint64_t offset, uint64_t len)
{
	return offset <= b->size && len <= b->size - offset;
}

static bool aligned(const struct block *b, uint64_t offset, uint64_t len)
{
	uint64_t m = b->logical_block_size - 1;
	return !b->direct || ((offset | len) & m) == 0;
}

/* The byte count of a read/write is the sum of its iovec (r->len is not
 * trusted); -1 when the sum overflows. */
static int64_t iov_bytes(const struct block_req *r)
{
	uint64_t sum = 0;
	if (r->iovcnt && !r->iov)
		return -1;
	for (unsigned i = 0; i < r->iovcnt; i++) {
		if (r->iov[i].iov_len > INT64_MAX - sum)
			return -1;
		sum += r->iov[i].iov_len;
	}
	return (int64_t)sum;
}

/* Reads and writes: the result is the byte count, so it must fit an int
 * (the io_uring CQE result): 1 GiB is far above any virtio request. */
#define MAX_RW_BYTES (1u << 30)

static int check_rw(struct block *b, struct block_req *r, bool write, int64_t *len)
{
	if (write && b->readonly)
		return -EROFS;
	*len = iov_bytes(r);
	if (*len < 0 || *len > MAX_RW_BYTES || r->iovcnt > IOV_MAX)
		return -EINVAL;
	if (!in_range(b, r->offset, (uint64_t)*len) || !aligned(b, r->offset, (uint64_t)*len))
		return -EINVAL;
	return 0;
}

static void submit(struct block *b, struct io_engine *e, struct block_req *r,
		   int (*op)(struct block *, struct io_engine *, struct block_req *))
{
	int ret = op ? op(b, e, r) : -EOPNOTSUPP;
	if (ret < 0)
		complete_later(e, r, ret);
}

void block_read(struct block *b, struct io_engine *e, struct block_req *r)
{
	int64_t len;
	int ret = check_rw(b, r, false, &len);
	if (ret == 0 && len == 0)
		complete_later(e, r, 0);
	else if (ret < 0)
		complete_later(e, r, ret);
	else
		submit(b, e, r, b->ops->read);
}

void block_write(struct block *b, struct io_engine *e, struct block_req *r)
{
	int64_t len;
	int ret = check_rw(b, r, true, &len);
	if (ret == 0 && len == 0)
		complete_later(e, r, 0);
	else if (ret < 0)
		complete_later(e, r, ret);
	else
		submit(b, e, r, b->ops->write);
}

void block_flush(struct block *b, struct io_engine *e, struct block_req *r)
{
	/* fsyncgate: after a failed fdatasync the kernel may have dropped the
	 * dirty pages and a second fdatasync would "succeed". */
	if (b->flush_failed)
		complete_later(e, r, -EIO);
	else
		submit(b, e, r, b->ops->flush);
}

void block_discard(struct block *b, struct io_engine *e, struct block_req *r)
{
	if (b->readonly)
		complete_later(e, r, -EROFS);
	else if (!in_range(b, r->offset, r->len))
		complete_later(e, r, -EINVAL);
	else if (!b->discard_supported)
		complete_later(e, r, -EOPNOTSUPP);
	else if (r->len == 0)
		complete_later(e, r, 0);
	else
		submit(b, e, r, b->ops->discard);
}

void block_write_zeroes(struct block *b, struct io_engine *e, struct block_req *r)
{
	if (b->readonly)
		complete_later(e, r, -EROFS);
	else if (!in_range(b, r->offset, r->len) || !aligned(b, r->offset, r->len))
		complete_later(e, r, -EINVAL);
	else if (r->len == 0)
		complete_later(e, r, 0);
	else
		submit(b, e, r, b->ops->write_zeroes);
}
