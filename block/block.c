/* The format-independent half of the block layer: opening an image (path
 * checks, open flags, O_DIRECT alignment, the format table and probe), the
 * submission helpers that validate a request before the driver sees it,
 * and the completion and drain accounting. */
#include "block/block.h"
#include "block/driver.h"
#include "block/io_engine.h"
#include "block/lock.h"
#include "vmm/iov.h"
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

static bool in_range(const struct block *b, uint64_t offset, uint64_t len);

/* Probed in order; raw claims everything, so it comes last. */
static const struct block_driver *const drivers[] = { &qcow2_driver, &raw_driver };

static bool is_pow2(uint32_t x) { return x && !(x & (x - 1)); }

/* cache=none: what O_DIRECT requires of offsets/lengths (logical block
 * size) and of buffer addresses. statx(STATX_DIOALIGN) answers both on
 * Linux >= 6.1 for files (and later kernels for block devices); otherwise a
 * block device's BLKSSZGET, else 512 — right for nearly all disks, and a
 * 4K-native disk then fails its I/O with EINVAL rather than corrupting. */
static int direct_alignment(struct block *b, int fd, bool blkdev)
{
	uint32_t lbs = 0, mem = 0;
#ifdef STATX_DIOALIGN
	struct statx sx;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
	    (sx.stx_mask & STATX_DIOALIGN)) {
		if (sx.stx_dio_offset_align == 0)
			return -EINVAL;  /* the file system says: no O_DIRECT */
		lbs = sx.stx_dio_offset_align;
		mem = sx.stx_dio_mem_align;
	}
#endif
	if (!lbs && blkdev) {
		int ssz = 0;
		if (ioctl(fd, BLKSSZGET, &ssz) == 0 && ssz > 0)
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

#define PROBE_LEN 4096

/* Reads the first bytes through a buffer aligned for O_DIRECT. */
static int probe_read(struct block *b, uint8_t *out, size_t *got)
{
	size_t len = b->logical_block_size > PROBE_LEN ? b->logical_block_size : PROBE_LEN;
	void *buf;
	if (posix_memalign(&buf, len, len))
		return -ENOMEM;
	ssize_t n;
	do
		n = pread(b->file.fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	int ret = n < 0 ? -errno : 0;
	*got = n > 0 ? ((size_t)n < PROBE_LEN ? (size_t)n : PROBE_LEN) : 0;
	memcpy(out, buf, *got);
	free(buf);
	return ret;
}

static const struct block_driver *driver_for(enum block_format fmt, const uint8_t *buf,
					     size_t len)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (fmt == BLOCK_FMT_AUTO ? drivers[i]->probe(buf, len) : drivers[i]->format == fmt)
			return drivers[i];
	return NULL;
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
	b->readonly = cfg->readonly;
	b->direct = cfg->cache == BLOCK_CACHE_NONE;
	b->logical_block_size = 512;
	b->buf_align = 1;

	int flags = (b->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (b->direct ? O_DIRECT : 0);
	int ret;
	int fd = open(path, flags);
	if (fd < 0) {
		ret = -errno;
		if (b->direct && ret == -EINVAL)
			log_err("cache=none: the filesystem of %s does not support O_DIRECT", path);
		else
			log_err("disk %s: %s", path, strerror(-ret));
		free(p);
		free(b);
		return ret;
	}
	b->file.fd = fd;
	if (b->direct) {
		ret = direct_alignment(b, fd, blkdev);
		if (ret < 0) {
			log_err("cache=none: the filesystem of %s does not support O_DIRECT", path);
			goto fail_fd;
		}
	}
	ret = file_init(&b->file, fd, p, b->readonly, b->direct, b->logical_block_size,
			b->buf_align);
	if (ret < 0)
		goto fail_fd;
	/* Before anything is read: another process (QEMU, or another kvmini)
	 * writing the image refuses us, as we refuse it. Backing layers are
	 * read-only and share with other readers. */
	if (cfg->lock &&
	    (ret = image_lock(fd, p, b->readonly ? IMAGE_LOCK_READ : IMAGE_LOCK_WRITE)) < 0)
		goto fail_file;

	uint8_t head[PROBE_LEN];
	size_t got = 0;
	ret = probe_read(b, head, &got);
	if (ret < 0) {
		log_err("disk %s: cannot read the image header: %s", path, strerror(-ret));
		goto fail_file;
	}
	/* A qcow2 magic is never taken for raw data (kvmtool falls back to
	 * raw, which would hand the guest the image's metadata). */
	bool is_qcow2 = got >= 4 && memcmp(head, qcow2_magic, 4) == 0;
	enum block_format fmt = cfg->format == BLOCK_FMT_AUTO && is_qcow2 ? BLOCK_FMT_QCOW2
									   : cfg->format;
	const struct block_driver *drv = driver_for(fmt, head, got);
	if (!drv) {
		if (fmt == BLOCK_FMT_QCOW2)
			log_err("disk %s: qcow2 images are not supported yet", path);
		else
			log_err("disk %s: no driver for this image format", path);
		ret = -ENOTSUP;
		goto fail_file;
	}
	ret = drv->open(b, cfg);
	if (ret < 0)
		goto fail_file;
	*out = b;
	return 0;
fail_file:
	file_fini(&b->file);
fail_fd:
	close(fd);
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
	file_fini(&b->file);
	close(b->file.fd);
	free((char *)b->path);
	free(b);
}

bool block_flush_failed(const struct block *b)
{
	return atomic_load(&b->file.flush_failed);
}

/* ---- completion -------------------------------------------------------- */

void block_complete(struct block_req *r, int64_t res)
{
	struct io_engine *e = r->e;
	if (e->block_reqs)
		e->block_reqs--;
	r->done(r->opaque, res);
}

static void complete_cb(void *opaque, int res) { block_complete(opaque, res); }

void block_complete_later(struct block_req *r, int64_t res)
{
	io_engine_defer(r->e, &r->post, (int)res, complete_cb, r);
}

int block_status(struct block *b, uint64_t offset, uint64_t len, struct block_extent *ext)
{
	if (!in_range(b, offset, len) || len == 0)
		return -EINVAL;
	if (!b->ops->status)
		return -ENOTSUP;
	int ret = b->ops->status(b, offset, len, ext);
	if (ret == 0 && (ext->len == 0 || ext->len > len))
		return -EIO;   /* a driver bug must not loop a caller forever */
	return ret;
}

int block_resize(struct block *b, uint64_t size)
{
	if (b->readonly)
		return -EROFS;
	if (size % 512) {
		log_err("disk %s: size %llu is not a multiple of 512", b->path,
			(unsigned long long)size);
		return -EINVAL;
	}
	if (!b->ops->resize) {
		log_err("disk %s: the %s driver cannot resize", b->path, b->ops->name);
		return -ENOTSUP;
	}
	return b->ops->resize(b, size);
}

int block_drain(struct block *b, struct io_engine *e)
{
	if (b->ops && b->ops->drain)
		b->ops->drain(b, e);
	while (e->block_reqs || e->holds) {
		int n = io_engine_run(e, true);
		if (n < 0)
			return n;
	}
	return 0;
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
	if (r->iovcnt && !r->iov)
		return -1;
	size_t sum = iov_size(r->iov, r->iovcnt);
	return sum > INT64_MAX ? -1 : (int64_t)sum;
}

/* Reads and writes: the result is the byte count, so it must fit an int
 * (the io_uring CQE result): 1 GiB is far above any virtio request. */
#define MAX_RW_BYTES (1u << 30)

static int check_rw(struct block *b, struct block_req *r, bool write, int64_t *len)
{
	if (write && b->readonly)
		return -EROFS;
	*len = iov_bytes(r);
	if (*len < 0 || *len > MAX_RW_BYTES || r->iovcnt > BLOCK_MAX_IOV)
		return -EINVAL;
	if (!in_range(b, r->offset, (uint64_t)*len) || !aligned(b, r->offset, (uint64_t)*len))
		return -EINVAL;
	return 0;
}

/* Every request enters here: counted on its engine until block_complete,
 * and failed from the next run when it is refused. */
static void start(struct block *b, struct io_engine *e, struct block_req *r)
{
	r->e = e;
	e->block_reqs++;
}

static void submit(struct block *b, struct block_req *r,
		   int (*op)(struct block *, struct block_req *))
{
	int ret = op ? op(b, r) : -EOPNOTSUPP;
	if (ret < 0)
		block_complete_later(r, ret);
}

/* The driver's working area must be there when the driver needs one. */
static bool has_priv(const struct block *b, const struct block_req *r)
{
	return b->req_priv_size == 0 || r->drv;
}

static void read_or_write(struct block *b, struct io_engine *e, struct block_req *r, bool write)
{
	int64_t len;
	start(b, e, r);
	int ret = has_priv(b, r) ? check_rw(b, r, write, &len) : -EINVAL;
	if (ret < 0)
		block_complete_later(r, ret);
	else if (len == 0)
		block_complete_later(r, 0);
	else {
		r->len = (uint64_t)len;
		submit(b, r, write ? b->ops->write : b->ops->read);
	}
}

void block_read(struct block *b, struct io_engine *e, struct block_req *r)
{
	read_or_write(b, e, r, false);
}

void block_write(struct block *b, struct io_engine *e, struct block_req *r)
{
	read_or_write(b, e, r, true);
}

void block_write_compressed(struct block *b, struct io_engine *e, struct block_req *r)
{
	int64_t len;
	start(b, e, r);
	int ret = has_priv(b, r) ? check_rw(b, r, true, &len) : -EINVAL;
	uint64_t cs = b->cluster_size;
	if (ret == 0 && (!b->ops->write_compressed || !cs || b->direct))
		ret = -ENOTSUP;
	if (ret == 0 && (r->offset % cs || len == 0 ||
			 ((uint64_t)len != cs && r->offset + (uint64_t)len != b->size)))
		ret = -EINVAL;
	if (ret < 0) {
		block_complete_later(r, ret);
		return;
	}
	r->len = (uint64_t)len;
	submit(b, r, b->ops->write_compressed);
}

void block_flush(struct block *b, struct io_engine *e, struct block_req *r)
{
	start(b, e, r);
	/* fsyncgate: after a failed fdatasync the kernel may have dropped the
	 * dirty pages and a second fdatasync would "succeed". The host-file
	 * layer checks again under its lock. */
	if (!has_priv(b, r))
		block_complete_later(r, -EINVAL);
	else if (block_flush_failed(b))
		block_complete_later(r, -EIO);
	else
		submit(b, r, b->ops->flush);
}

void block_discard(struct block *b, struct io_engine *e, struct block_req *r)
{
	start(b, e, r);
	if (!has_priv(b, r))
		block_complete_later(r, -EINVAL);
	else if (b->readonly)
		block_complete_later(r, -EROFS);
	else if (!in_range(b, r->offset, r->len))
		block_complete_later(r, -EINVAL);
	else if (!b->discard_supported)
		block_complete_later(r, -EOPNOTSUPP);
	else if (r->len == 0)
		block_complete_later(r, 0);
	else
		submit(b, r, b->ops->discard);
}

void block_write_zeroes(struct block *b, struct io_engine *e, struct block_req *r)
{
	start(b, e, r);
	if (!has_priv(b, r))
		block_complete_later(r, -EINVAL);
	else if (b->readonly)
		block_complete_later(r, -EROFS);
	else if (!in_range(b, r->offset, r->len) || !aligned(b, r->offset, r->len))
		block_complete_later(r, -EINVAL);
	else if (!b->write_zeroes_supported)
		block_complete_later(r, -EOPNOTSUPP);
	else if (r->len == 0)
		block_complete_later(r, 0);
	else
		submit(b, r, b->ops->write_zeroes);
}
